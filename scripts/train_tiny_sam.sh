#!/usr/bin/env bash
# Train the demo-architecture SAM (`--arch demo`, ~1M parameters) from scratch on the synthetic
# data with `sambench train`: the recipe meant for the bundled demo model. On a 2-core CPU it
# takes ~1.5 h and does not yet reach the bundled model's quality bar (docs/training.md has the
# measured numbers); on a GPU add `--device cuda --bf16` and raise the step counts.
#
#   bash scripts/train_tiny_sam.sh [WORK_DIR]
#
# Phase 1 teaches the first prompt (a box or a point, plus one corrective point) with masks
# scored at 64 px; phase 2 continues from it with the paper's 11-iteration prompt simulation.
# Every draw is seeded per step, so the same commands give the same weights.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d)}

source scripts/lib/synth_training_data.sh  # PYTHON, sambench; $work/data; the arrays train and val

sambench train --arch demo "${train[@]}" "${val[@]}" --val-images 4 --out "$work/phase1" \
    --steps 2000 --stop-at 1600 --lr 1e-3 --warmup 50 --iterations 2 --loss-size 64 --val-every 200 \
    --save-every 100 --seed 0
sambench train --model "sam:$work/phase1/model.pth" "${train[@]}" "${val[@]}" --val-images 4 --out "$work/phase2" \
    --steps 900 --lr 8e-4 --warmup 50 --iterations 11 --loss-size 64 --val-every 150 --save-every 50 --seed 1
echo "trained: $work/phase2/model.safetensors"
