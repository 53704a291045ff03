"""What the commands that read a language model share: loading it with its own head, and its default texts."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..glue import Example

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
MASKED_SUFFIX = "ForMaskedLM"


def load_language_model(name_or_path, device=None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The causal or masked LM saved at ``name_or_path``, with its LM head, in eval mode, and its tokenizer.

    Raises
    ------
    ValueError
        When the saved model has no language-model head (``config.architectures`` names a classifier or a
        base model), or no ``--model`` is given.
    FileNotFoundError
        When there is no model at ``name_or_path``.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    from ..models.loading import (
        attention_for,
        hub_unreachable,
        load_config,
        load_tokenizer,
        pick_device,
        quiet_loading,
        resolve_model_path,
    )

    if name_or_path is None:
        raise ValueError("name a language model with --model: a folder holding a causal LM (GPT-2, GPT, "
                         "Llama-style) or a masked LM (BERT, RoBERTa, DistilBERT)")
    path = resolve_model_path(name_or_path)
    offline = hub_unreachable(path)
    hub = {"local_files_only": True} if offline else {}
    config = load_config(path, offline)
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith(CAUSAL_SUFFIXES) for a in architectures):
        auto = AutoModelForCausalLM
    elif any(a.endswith(MASKED_SUFFIX) for a in architectures):
        auto = AutoModelForMaskedLM
    else:
        kind = ", ".join(architectures) or "a model of unknown class"
        raise ValueError(f"{name_or_path} holds {kind}, which has no language-model head; give a causal LM "
                         "(…ForCausalLM, …LMHeadModel) or a masked LM (…ForMaskedLM)")
    tokenizer = load_tokenizer(path, **hub)
    with warnings.catch_warnings(), quiet_loading():
        warnings.filterwarnings("ignore", message=".*newly initialized.*")
        model = auto.from_pretrained(path, config=config, trust_remote_code=False,
                                     attn_implementation=attention_for(config), **hub)
    return model.to(pick_device(device)).eval(), tokenizer


def ewt_texts(max_examples: int | None = None) -> list[Example]:
    """The embedded UD English-EWT test sentences (their ``# text =`` lines, in file order), as unlabelled examples."""
    from ..analyses.ud import _open_text, ud_file
    from ..glue import Example

    lines = _open_text(ud_file("test")).splitlines()
    texts = [line.split("=", 1)[1].strip() for line in lines if line.startswith("# text =")]
    texts = texts[:max_examples] if max_examples else texts
    return [Example(text_a=text, text_b=None, label=None, idx=i) for i, text in enumerate(texts)]


__all__ = ["ewt_texts", "load_language_model"]
