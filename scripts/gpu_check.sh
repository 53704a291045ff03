#!/usr/bin/env bash
# One short GPU check (< 6 minutes): the `gpu` tests, then `bertology bench --json --device cuda` on a
# MiniLM-shaped and a BERT-base-shaped model with random weights, then one JSON summary as the last line.
#
#   scripts/gpu_check.sh             # on a GPU machine
#   scripts/gpu_check.sh --dry-run   # anywhere: the same steps on the CPU, smaller (also what happens without CUDA)
#
# Needs no network and no install of this package: it runs from the checkout (PYTHONPATH), and installs the
# pure-Python dependencies a bare torch image lacks from .whl/ (made here by scripts/fetch_gpu_wheels.sh).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import traitlets, ipywidgets, bqplot" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --no-deps --no-index .whl/*.whl >&2 || echo "gpu_check: could not install .whl/*.whl" >&2
fi
exec "$PY" scripts/gpu_check.py "$@"
