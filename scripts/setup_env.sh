#!/usr/bin/env bash
# Create (or reuse) .venv and install openbind with the given extras.
# TORCH_SPEC pins the torch build: on the project's CPU machines `torch==2.13.0` is a local CPU wheel; an
# unpinned torch would pull a multi-GB CUDA build. Override it elsewhere, e.g. TORCH_SPEC="torch>=2.3".
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-io}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[${extras}]"
