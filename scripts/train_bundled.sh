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
# with AMX; on a GPU add `--device cuda` to the train commands.
#
# Every phase: 4 images x 8 masks a step, masks scored at 64 px, AdamW with warmup and
# x0.1 at 2/3 and 26/27 of the phase.
#   1. From scratch: a box or a uniform point, then one corrective point; 5000 steps, lr 1e-3.
#   2. From phase 1: 80% points, three in four of them the mask's centre (the point task's
#      first click); 3000 steps, lr 3e-4.
#   3. From phase 2: the same first prompts, then 4 corrective points and 1 refinement-only
#      iteration (6 iterations); 800 steps, lr 1e-4.
# FROM_PHASE1=FILE or FROM_PHASE2=FILE starts after that phase, from FILE (training/
# bundled-model/ holds the shipped run's phase-1 and phase-2 weights). STOP_AT=N stops the
# first phase that runs after step N (the reproduction test). The text-path attempts are not
# part of the shipped model (docs/training.md says why and how to run them).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}

source scripts/lib/synth_training_data.sh  # PYTHON, sambench; $work/data; the arrays train and val
common=("${train[@]}" "${val[@]}" --val-images 4 --loss-size 64 --bf16 ${STOP_AT:+--stop-at "$STOP_AT"})
late=(--p-box 0.2 --p-center 0.75 --warmup 20 --val-every 100 --save-every 100)  # phases 2 and 3

phase1=${FROM_PHASE1:-$work/phase1/model.safetensors}
phase2=${FROM_PHASE2:-$work/phase2/model.safetensors}
if [ -z "${FROM_PHASE1:-}${FROM_PHASE2:-}" ]; then
    sambench train --model repvit-sam --arch bundled "${common[@]}" --out "$work/phase1" \
        --steps 5000 --lr 1e-3 --warmup 50 --iterations 2 --seed 0 --val-every 50 --save-every 50
    [ -z "${STOP_AT:-}" ] || exit 0  # a partial run (the reproduction test)
fi
if [ -z "${FROM_PHASE2:-}" ]; then
    sambench train --model "repvit-sam:$phase1" "${common[@]}" "${late[@]}" --out "$work/phase2" \
        --steps 3000 --lr 3e-4 --iterations 2 --seed 3
    [ -z "${STOP_AT:-}" ] || exit 0
fi
sambench train --model "repvit-sam:$phase2" "${common[@]}" "${late[@]}" --out "$work/phase3" \
    --steps 800 --lr 1e-4 --iterations 6 --seed 5
[ -z "${STOP_AT:-}" ] || exit 0
# Shipped in half precision (sizes ≤ 5 MB); the loader converts to float32.
"$PYTHON" - "$work/phase3/model.safetensors" "$work/bundled_model.safetensors" <<'PY'
import sys
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open(sys.argv[1], "pt") as f:
    state = {k: f.get_tensor(k) for k in f.keys()}
    metadata = f.metadata()
save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, sys.argv[2], metadata=metadata)
PY
echo "trained: $work/bundled_model.safetensors (copy it to sambench/bundled_model.safetensors and update its sha256 in sambench/checkpoints.yaml)"
