#!/usr/bin/env bash
# Set up .venv and run the demo suite (bundled model and synthetic data, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/sambench run "$@"
