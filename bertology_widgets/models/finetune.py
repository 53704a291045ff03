"""Fine-tune a sequence classifier on a GLUE task's train split.

The result is a standard Hugging Face checkpoint (``save_pretrained`` for the
model and tokenizer) with the task recorded in ``config.bertology_task``.
Training uses length-bucketed batches (little padding), AdamW with linear
warm-up and decay, and optional bf16 autocast (fast on CPUs with AMX).
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from ..core.batching import collate, encode_examples, pad_token_id, uses_token_types
from ..analyses.evaluation import evaluate
from ..glue import get_task, load_glue
from ..runtime.files import output_folder, replace_folder
from .loading import load_model, pick_device
from ..runtime.progress import Progress, progress_reporter, shows_bar

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..glue import Example, GlueTask
    from ..runtime.files import PathLike


@dataclass
class FinetuneConfig:
    """Hyper-parameters of :func:`finetune` (defaults suit MiniLM-sized models)."""

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_fraction: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 128
    max_train_examples: int | None = None
    bf16: bool = False
    seed: int = 0
    freeze_embeddings: bool = False

    def __post_init__(self):
        # Zero epochs would save an untrained classifier and report its chance-level score.
        for name in ("epochs", "batch_size", "learning_rate", "max_length"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples must be at least 1 (or None for all), "
                             f"got {self.max_train_examples!r}")


def check_output_dir(out_dir: PathLike) -> Path:
    """Fail early (before any training) when ``out_dir`` cannot be written (a probe file is written there)."""
    return output_folder(out_dir)


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random batches of similar-length examples: shuffle, sort within chunks of 50 batches, shuffle batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def train_classifier(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    task: str | GlueTask,
    config: FinetuneConfig,
    progress: Progress = True,
) -> dict:
    """Train ``model`` in place on ``examples``; returns ``{"steps", "train_seconds", "final_loss"}``.

    ``progress``: a tqdm bar (True), none (False) or ``progress(done, total)`` in batches.
    """
    glue_task = get_task(task)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    encoded = encode_examples(tokenizer, examples, config.max_length)
    label_dtype = torch.float32 if glue_task.is_regression else torch.long
    labels = torch.tensor([ex.label for ex in examples], dtype=label_dtype)
    device = next(model.parameters()).device
    pad, with_types = pad_token_id(model, tokenizer), uses_token_types(model)
    epochs_whole = max(1, math.ceil(config.epochs))
    plan = []
    for _ in range(epochs_whole):
        plan.extend(bucketed_batches(encoded.lengths, config.batch_size, rng))
    plan = plan[: max(1, int(round(len(plan) * config.epochs / epochs_whole)))]
    if config.freeze_embeddings:  # the word-embedding table dominates the optimizer's work on small models
        model.get_input_embeddings().weight.requires_grad_(False)
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "ln_")
    params = [
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and not any(k in n for k in no_decay)],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if p.requires_grad and any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    total = len(plan)
    warmup = max(1, int(config.warmup_fraction * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if config.bf16
                else torch.autocast(device.type, enabled=False))
    model.train()
    start, running = time.perf_counter(), None
    report = progress_reporter(progress, len(plan), desc=f"fine-tuning on {glue_task.display_name}", unit="batch")
    for indices in report.iterate(plan):
        batch = collate(encoded, indices, pad, device, with_types)
        with autocast:
            loss = model(**batch, labels=labels[indices].to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        report.set_postfix(loss=f"{running:.3f}")
    report.close()
    model.eval()
    model.get_input_embeddings().weight.requires_grad_(True)
    return {"steps": total, "train_seconds": time.perf_counter() - start, "final_loss": running}


def finetune(model: str | None, task: str, out_dir: PathLike, *, glue_dir: PathLike | None = None,
             config: FinetuneConfig | None = None, progress: Progress = True,
             from_scratch_config: Callable[[GlueTask], tuple[PreTrainedModel, PreTrainedTokenizerBase]] | None = None,
             device: str | torch.device | None = None) -> dict:
    """Fine-tune ``model`` on ``task`` and save a checkpoint to ``out_dir``.

    Every input is checked (task, output folder, model and tokenizer, train
    data) before training starts. The checkpoint is written to a temporary
    folder and renamed into place, so ``out_dir`` is never half-written.

    ``device``: ``"cpu"``, ``"cuda"`` or ``None`` (GPU when available).
    ``progress``: True prints the data used and shows bars for training and
    the dev evaluation; a callable gets ``progress(done, total)`` in training batches.

    Returns
    -------
    dict
        ``{"task", "out", "train_examples", "steps", "train_seconds", "eval_seconds", <dev metrics>}``.
    """
    config = config or FinetuneConfig()
    glue_task = get_task(task)
    out = check_output_dir(out_dir)
    if from_scratch_config is not None:
        net, tokenizer = from_scratch_config(glue_task)
        net = net.to(pick_device(device))
    else:
        net, tokenizer = load_model(model or "all-MiniLM-L6-v2", num_labels=glue_task.num_labels, device=device)
    train = load_glue(glue_task.name, "train", glue_dir=glue_dir, max_examples=config.max_train_examples)
    dev = load_glue(glue_task.name, "validation", glue_dir=glue_dir)
    if shows_bar(progress):
        print(train.describe(), dev.describe(), sep="\n", flush=True)
    net.config.bertology_task = glue_task.name
    net.config.id2label = ({i: n for i, n in enumerate(glue_task.label_names)} if not glue_task.is_regression
                           else {0: "score"})
    net.config.label2id = {n: i for i, n in net.config.id2label.items()}
    stats = train_classifier(net, tokenizer, list(train), glue_task.name, config, progress)
    t0 = time.perf_counter()
    metrics = evaluate(net, tokenizer, dev, task=glue_task.name, max_length=config.max_length,
                       progress=shows_bar(progress))
    eval_seconds = time.perf_counter() - t0
    metrics.pop("predictions")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    net.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    replace_folder(staging, out)
    return {"task": glue_task.name, "out": str(out), "train_examples": len(train), **stats,
            "eval_seconds": eval_seconds, **metrics}
