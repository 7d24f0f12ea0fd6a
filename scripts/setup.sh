#!/usr/bin/env bash
# Create .venv and install sambench into it (CPU PyTorch 2.13.0: `torch==2.13.0` is pinned so
# pip does not pull a multi-GB CUDA build). Extra pip arguments are passed on, e.g. '.[test]'.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0 -e "${1:-.}"
