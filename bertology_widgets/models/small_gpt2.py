"""Small GPT-2 classifiers built from a config, with a BPE tokenizer trained on the task (offline GPT-2).

``bertology finetune --model gpt2-small-config --from-scratch --task sst2``
trains a byte-level BPE tokenizer on the task's train sentences and a small
GPT-2 classifier (4 layers x 4 heads, hidden 256, random initialisation) on
top, in a few minutes on 2 CPU cores. It is a real GPT-2 architecture with
causal attention, but not OpenAI's pretrained GPT-2: its attention patterns
come from a few minutes of SST-2 training only. Online users pass ``gpt2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import GPT2ForSequenceClassification, GPT2TokenizerFast

    from ..glue import GlueTask
    from ..runtime.files import PathLike

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class ScratchRecipe:
    """Size of a from-scratch model and its tokenizer."""

    description: str
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    n_positions: int = 128
    vocab_size: int = 8000


SCRATCH_CONFIGS = {
    "gpt2-small-config": ScratchRecipe("a small GPT-2 (4 layers x 4 heads, hidden 256) trained from scratch"),
    "gpt2-tiny-config": ScratchRecipe("a tiny GPT-2 (2 layers x 2 heads, hidden 64) trained from scratch",
                                      n_layer=2, n_head=2, n_embd=64, vocab_size=2000),
}


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> GPT2TokenizerFast:
    """A GPT-2 style byte-level BPE tokenizer trained on ``texts`` (pad token = end of text)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS])
    tokenizer = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                  pad_token=EOS, model_max_length=128)
    return tokenizer


def scratch_builder(
    name: str, glue_dir: PathLike | None = None
) -> Callable[[GlueTask], tuple[GPT2ForSequenceClassification, GPT2TokenizerFast]]:
    """A function ``(glue_task) -> (model, tokenizer)`` building the named from-scratch model.

    Raises
    ------
    ValueError
        For an unknown config name, listing the known ones.
    """
    if name not in SCRATCH_CONFIGS:
        raise ValueError(f"--from-scratch knows the configs {sorted(SCRATCH_CONFIGS)}; got {name!r}")
    recipe = SCRATCH_CONFIGS[name]

    def build(glue_task):
        import torch
        from transformers import GPT2Config, GPT2ForSequenceClassification

        from ..glue import load_glue

        train = load_glue(glue_task.name, "train", glue_dir=glue_dir)
        texts = (f"{ex.text_a} {ex.text_b}" if ex.text_b else ex.text_a for ex in train)
        tokenizer = train_bpe_tokenizer(texts, recipe.vocab_size)
        config = GPT2Config(
            vocab_size=len(tokenizer), n_layer=recipe.n_layer, n_head=recipe.n_head, n_embd=recipe.n_embd,
            n_positions=recipe.n_positions, num_labels=glue_task.num_labels, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        config.bertology_origin = recipe.description
        torch.manual_seed(0)
        model = GPT2ForSequenceClassification(config)
        return model, tokenizer

    return build


def ensure_scratch_model(name: str = "gpt2-small-config", task: str = "sst2", glue_dir: PathLike | None = None,
                         max_train_examples: int = 20_000, progress: bool = True, rebuild: bool = False) -> Path:
    """Train the named from-scratch model on ``task`` once, into the user cache; return its folder.

    The folder is ``<cache>/<name>-<task>`` (see
    :func:`bertology_widgets.models.default_model.cache_root`); it is reused when its
    manifest checks out (unless ``rebuild``) and rebuilt otherwise
    (:func:`~bertology_widgets.models.default_model.build_cached_model`). ``bertology default-model --gpt2``
    builds ``gpt2-small-config`` on SST-2 this way, as ``make test`` does before notebooks/04_gpt2.ipynb runs.
    """
    from .default_model import build_cached_model, cache_root
    from .finetune import FinetuneConfig, finetune

    def build(staging):
        config = FinetuneConfig(learning_rate=5e-4, max_length=64, max_train_examples=max_train_examples)
        result = finetune(None, task, staging, glue_dir=glue_dir, config=config, progress=progress,
                          from_scratch_config=scratch_builder(name, glue_dir=glue_dir))
        result.pop("out", None)
        return {"build": result, "origin": SCRATCH_CONFIGS[name].description}

    return build_cached_model(cache_root() / f"{name}-{task}", build, rebuild=rebuild)
