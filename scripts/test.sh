#!/usr/bin/env bash
# Set up .venv with the test extras and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh '.[test]'
.venv/bin/python -m pip install -q --no-deps lvis==0.5.3
# The AMG parity and NMS tests run the official SamAutomaticMaskGenerator and torchvision's NMS,
# which need torchvision (and the torch it pins), in a venv of their own: created once, reused.
# ~5.5 GB: the pinned torch is a CUDA build (it runs on CPU). See docs/amg.md.
# The family parity tests (tests/test_family_parity.py) run mobile_sam and segment_anything_hq
# (which imports timm) there too.
if ! .venv-official/bin/python -c "import torchvision.ops, segment_anything, pycocotools, cv2, mobile_sam, segment_anything_hq, timm" 2>/dev/null; then
    python3 -m venv .venv-official
    .venv-official/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 segment-anything==1.0 \
        numpy pycocotools opencv-python-headless mobilesam-mirror==1.0.0 segment-anything-hq==0.3 timm==1.0.31
fi
export SAMBENCH_OFFICIAL_PYTHON="$PWD/.venv-official/bin/python"  # set: a broken reference fails the tests
.venv/bin/python -m pytest -q "$@"
