#!/usr/bin/env bash
# Prepare .whl/ for scripts/gpu_check.sh on a bare GPU machine with no network.
#
# The GPU image has torch, transformers, tokenizers, accelerate, pytest ... but
# not the pure-Python packages below, nor the MiniLM tokenizer. This downloads
# their wheels (the versions installed in this checkout's .venv) and copies the
# MiniLM tokenizer and config (no weights: the GPU check uses random weights).
# Run it here, with network, then carry .whl/ (it is git-ignored) to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.whl
# ipywidgets imports IPython, which the GPU image lacks; the rest are IPython's own needs.
PACKAGES="traitlets ipywidgets bqplot bqscales traittypes comm widgetsnbextension jupyterlab_widgets
  ipython ipython_pygments_lexers jedi parso matplotlib-inline pexpect ptyprocess prompt_toolkit wcwidth
  stack_data executing asttokens pure_eval pygments"
mkdir -p "$DEST"
for name in $PACKAGES; do
  version=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))")
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform any -d "$DEST" "$name==$version"
done
tokenizer_dir=$("$PY" -c "from bertology_widgets.models.loading import minilm_dir; print(minilm_dir())" 2>/dev/null || true)
if [ -n "$tokenizer_dir" ]; then
  mkdir -p "$DEST/minilm-tokenizer"
  for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
    cp "$tokenizer_dir/$f" "$DEST/minilm-tokenizer/"
  done
fi
du -sh "$DEST"
ls "$DEST"
