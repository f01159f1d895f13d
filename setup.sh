#!/usr/bin/env bash
# Creates .venv and installs scalesweep with its test extra.
# Without a GPU, torch is pinned to the CPU build first so that pip never pulls a multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
pip install --upgrade pip
if ! command -v nvidia-smi >/dev/null 2>&1 && ! .venv/bin/python -c "import torch" 2>/dev/null; then
  pip install "torch==${SCALESWEEP_CPU_TORCH:-2.13.0}"
fi
pip install -e ".[test]"
