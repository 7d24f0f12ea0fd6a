#!/usr/bin/env bash
# Set up .venv with the test extras and run the default test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh '.[test]'
.venv/bin/python -m pip install -q --no-deps lvis==0.5.3
.venv/bin/python -m pytest -q "$@"
