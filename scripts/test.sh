#!/usr/bin/env bash
# Set up .venv with the test extras and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh '.[test]'
.venv/bin/python -m pip install -q --no-deps lvis==0.5.3
# The AMG parity and NMS tests run the official SamAutomaticMaskGenerator and torchvision's NMS,
# which need torchvision (and the torch it pins), in a venv of their own: created once, reused.
# ~5.5 GB: the pinned torch is a CUDA build (it runs on CPU). See docs/amg.md.
# The SAM 2 parity tests run the reference sam2 1.1.0 (facebookresearch/sam2 at 2b90b9f) there too,
# built without its CUDA extension (SAM2_BUILD_CUDA=0; docs/models.md).
if ! .venv-official/bin/python -c "import torchvision.ops, segment_anything, pycocotools, cv2, sam2.build_sam" 2>/dev/null; then
    python3 -m venv .venv-official
    .venv-official/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 segment-anything==1.0 \
        numpy pycocotools opencv-python-headless hydra-core omegaconf iopath
    SAM2_BUILD_CUDA=0 .venv-official/bin/python -m pip install -q sam2==1.1.0
fi
export SAMBENCH_OFFICIAL_PYTHON="$PWD/.venv-official/bin/python"  # set: a broken reference fails the tests
.venv/bin/python -m pytest -q "$@"
