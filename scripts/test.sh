#!/usr/bin/env bash
# Set up .venv with the test extras and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh '.[test]'
.venv/bin/python -m pip install -q --no-deps lvis==0.5.3
# The AMG parity and NMS tests run the official SamAutomaticMaskGenerator and torchvision's NMS,
# which need torchvision (and the torch it pins), in a venv of their own: created once, reused.
# ~5.5 GB: the pinned torch is a CUDA build (it runs on CPU). See docs/amg.md.
# The family parity tests run their references there too: mobile_sam and segment_anything_hq
# (which imports timm) for tests/test_family_parity.py, efficientsam (EfficientViT-SAM) for
# tests/test_efficientvit_sam_parity.py. The SAM 2 parity tests run the reference sam2 1.1.0
# (facebookresearch/sam2 at 2b90b9f), built without its CUDA extension (SAM2_BUILD_CUDA=0; docs/models.md).
if ! .venv-official/bin/python -c "import torchvision.ops, segment_anything, pycocotools, cv2, mobile_sam, segment_anything_hq, timm, efficientsam, sam2.build_sam" 2>/dev/null; then
    python3 -m venv .venv-official
    .venv-official/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 segment-anything==1.0 \
        numpy pycocotools opencv-python-headless mobilesam-mirror==1.0.0 segment-anything-hq==0.3 timm==1.0.31 \
        efficientsam==1.0.0 hydra-core omegaconf iopath
    SAM2_BUILD_CUDA=0 .venv-official/bin/python -m pip install -q sam2==1.1.0
fi
# SAM 3's package: the cgF1 reference evaluator (tests/test_cgf1.py) and the model the sam3
# adapter wraps (tests/test_sam3.py, which runs sambench itself in this venv, hence its
# requirements). sam3 imports psutil and scipy without declaring them; its CPU hole filling needs
# scikit-image; open_clip_torch ships the CLIP BPE vocabulary the sam3 wheel lacks.
if ! .venv-official/bin/python -c "import sam3.eval.cgf1_eval, skimage, open_clip, yaml, pandas, jinja2, safetensors, faster_coco_eval" 2>/dev/null; then
    .venv-official/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 sam3==0.1.4 psutil scipy \
        scikit-image open_clip_torch pyyaml jinja2 matplotlib pandas tqdm safetensors faster-coco-eval
fi
export SAMBENCH_OFFICIAL_PYTHON="$PWD/.venv-official/bin/python"  # set: a broken reference fails the tests
.venv/bin/python -m pytest -q "$@"
