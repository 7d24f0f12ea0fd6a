#!/usr/bin/env bash
# Regenerate reports/demo/: the demo suite's reference results for each model, their reports
# and the leaderboard across them. One command, deterministic (seed 0):
#
#   bash scripts/make_reference_reports.sh              # the default models below
#   bash scripts/make_reference_reports.sh grabcut sam:path/to/ckpt.pth ...
#
# Writes reports/demo/<model>/{results.json,report.html} and
# reports/demo/leaderboard.{csv,md,html}. Runs go to a temporary folder (records are not
# committed); set KEEP_RUNS=DIR to keep them there instead.
#
# Until the bundled tiny SAM exists, the defaults are GrabCut and the tests' stand-in model
# `test-disk` (tests/stand_in.py), which is registered by importing it before the CLI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(grabcut test-disk)

sambench() {  # the CLI, with the test stand-in registered
    "$PYTHON" -c 'import sys; sys.path.insert(0, "tests"); import stand_in; from sambench.cli import main; sys.exit(main(sys.argv[1:]))' "$@"
}

runs=${KEEP_RUNS:-$(mktemp -d)}
mkdir -p "$runs" reports/demo
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
