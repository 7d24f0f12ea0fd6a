#!/usr/bin/env bash
# Reproduce the bundled demo model (sambench/bundled_model.safetensors) from scratch with
# `sambench train`: a RepViT-SAM (`--model repvit-sam --arch bundled`, ~1.5M parameters, 256-px
# input) trained on synthetic data that the demo never shows (training seed 1000, validation
# seed 2000; the demo's data is seed 0). docs/training.md has the measured CPU time and curves.
#
#   bash scripts/train_bundled.sh [WORK_DIR]      # writes WORK_DIR/bundled_model.safetensors
#
# One thread (OMP_NUM_THREADS=1), as the shipped run: the same CPU then gives the same weights
# bit for bit (other thread counts and CPUs round differently). --bf16 is autocast, fast on CPUs
# with AMX; on a GPU add `--device cuda` to both phases.
#
# Phase 1 teaches the first prompt (a box or a point, plus one corrective point) with masks
# scored at 64 px. Phase 2 continues from it with 4 prompt iterations (corrective clicks with
# the previous mask as input) and adds the text path: a step's first prompt is, with
# probability 0.6, each mask's phrase (rephrased descriptions embedded by all-MiniLM-L6-v2,
# `sambench[text]`), then corrective points.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
work=${1:-$(mktemp -d)}
PHASE1_STEPS=${PHASE1_STEPS:-5000}
PHASE2_STEPS=${PHASE2_STEPS:-1500}
sambench() { OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PYTHON" -m sambench "$@"; }

train=() val=()
for d in shapes texture cells; do
    [ -f "$work/data/train-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/train-$d" --domain "$d" --images 300 --seed 1000
    [ -f "$work/data/val-$d/annotations.json" ] ||
        sambench datasets synth --out "$work/data/val-$d" --domain "$d" --images 20 --seed 2000
    train+=(--dataset "synth-$d=$work/data/train-$d")
    val+=(--val-dataset "synth-$d=$work/data/val-$d")
done

sambench train --model repvit-sam --arch bundled "${train[@]}" "${val[@]}" --val-images 4 \
    --out "$work/phase1" --steps "$PHASE1_STEPS" ${STOP_AT:+--stop-at "$STOP_AT"} --lr 1e-3 --warmup 50 \
    --iterations 2 --loss-size 64 --val-every 50 --save-every 50 --seed 0 --bf16
[ -z "${STOP_AT:-}" ] || exit 0  # a partial phase 1 (the reproduction test)
sambench train --model "repvit-sam:$work/phase1/model.safetensors" "${train[@]}" "${val[@]}" --val-images 4 \
    --out "$work/phase2" --steps "$PHASE2_STEPS" --lr 5e-4 --warmup 20 --iterations 4 --loss-size 64 \
    --text-encoder minilm --p-text 0.6 --val-every 100 --save-every 50 --seed 1 --bf16
# Shipped in half precision (sizes ≤ 5 MB); the loader converts to float32.
"$PYTHON" - "$work/phase2/model.safetensors" "$work/bundled_model.safetensors" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], "pt") as f:
    state = {k: f.get_tensor(k) for k in f.keys()}
    metadata = f.metadata()
save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, sys.argv[2], metadata=metadata)
PY
echo "trained: $work/bundled_model.safetensors (copy it to sambench/bundled_model.safetensors and update its sha256 in sambench/checkpoints.yaml)"
