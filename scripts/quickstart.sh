#!/usr/bin/env bash
# Set up .venv and run the main job: embed sample files of every modality with a small model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh all
.venv/bin/python examples/embed_samples.py --out "${1:-quickstart_out}"
