#!/usr/bin/env bash
# Regenerate reports/demo/: the demo suite's reference results for each model, their reports
# and the leaderboard across them. One command, deterministic (seed 0):
#
#   bash scripts/make_reference_reports.sh              # the default models below
#   bash scripts/make_reference_reports.sh grabcut sam:path/to/ckpt.pth ...
#   bash scripts/make_reference_reports.sh --example    # only the all-tasks example (below)
#
# Writes reports/demo/<model>/{results.json,report.html} and
# reports/demo/leaderboard.{csv,md,html}, and reports/demo/all-tasks/{results.json,
# report.html,report.pdf}: a run of the example-all-tasks suite (every task once, on synthetic
# data) by the bundled demo model (trained; docs/models.md): what a report of
# every task looks like, with numbers of a model that learned the data. Runs go to a temporary folder (records are not
# committed); set KEEP_RUNS=DIR to keep them there instead.
#
# The defaults: the bundled demo model (repvit-sam:bundled, the demo's default), the GrabCut
# baseline, and a random-weights tiny SAM (written here with seed 0) run through our
# implementation and through the official code: a leaderboard row for each, and two SAM rows
# that must agree (parity).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
runs=${KEEP_RUNS:-$(mktemp -d)}
mkdir -p "$runs" reports/demo
random_ckpt="$runs/sam_tiny_random.pth"
"$PYTHON" -c "from sambench.models.sam import write_random_checkpoint as w; w('$random_ckpt', 'tiny', seed=0)"
sambench() { "$PYTHON" -m sambench "$@"; }

sambench run --suite example-all-tasks --model repvit-sam:bundled --seed 0 --out "$runs/example-all-tasks" --no-report
sambench report "$runs/example-all-tasks" --pdf
mkdir -p reports/demo/all-tasks
cp "$runs/example-all-tasks/"{results.json,report.html,report.pdf} reports/demo/all-tasks/
[ "${1:-}" != "--example" ] || exit 0

models=("$@")
[ ${#models[@]} -gt 0 ] || models=(repvit-sam:bundled grabcut "sam:$random_ckpt" "sam-official:$random_ckpt")

dirs=()
for model in "${models[@]}"; do
    name=${model%%:*}
    ckpt=${model#*:}
    [ "$ckpt" = "$model" ] || name="$name-$(basename "${ckpt%.*}")"
    run="$runs/demo-$name"
    echo "== $model -> $run"
    sambench run --suite demo --model "$model" --seed 0 --out "$run" --no-report
    sambench report "$run"
    mkdir -p "reports/demo/$name"
    cp "$run/results.json" "$run/report.html" "reports/demo/$name/"
    dirs+=("$run")
done
sambench leaderboard "${dirs[@]}" --out reports/demo
echo "reference reports and leaderboard written to reports/demo/ (runs in $runs)"
