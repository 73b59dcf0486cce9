#!/usr/bin/env bash
# Set up .venv and run the main job: the built-in world -> align -> bind audio, depth, thermal, IMU ->
# evaluate -> report (quickstart_out/report.md, report.json and plots). About 9 minutes on 2 CPU cores.
# Usage: bash scripts/quickstart.sh [OUT_DIR [openbind quickstart options, e.g. --seed 1]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh io,plot   # what the quickstart needs (the `all` extra adds eval, search, Ray, Milvus)
.venv/bin/openbind quickstart --out "${1:-quickstart_out}" "${@:2}"
