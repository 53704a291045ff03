"""The language-model side of the commands that take ``--task lm`` (``causal_lm``, ``masked_lm``)."""

from __future__ import annotations

import json
import sys

from ..core.lm_objective import LM_TASKS

LM_TASK_HELP = ("GLUE task: cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli; or lm for a language model's own "
                "objective (causal_lm or masked_lm, picked from its head; both also accepted)")
TEXT_FILE_HELP = ("with --task lm: score these texts, one per line (UTF-8), instead of the embedded UD "
                  "English-EWT test sentences")


def is_lm_task(args) -> bool:
    """Whether ``--task`` names a language model's own objective."""
    return getattr(args, "task", None) in LM_TASKS


def add_text_file_option(parser) -> None:
    parser.add_argument("--text-file", "--text_file", dest="text_file", default=None, help=TEXT_FILE_HELP)


def load_language_model(name_or_path, device=None, task: str = "lm"):
    """``(model, tokenizer)``: the causal or masked LM at ``name_or_path`` (``"default-lm"`` too) with its own head.

    ``ValueError`` when no ``--model`` is given or the checkpoint has no language-model head (a classifier,
    a base model).
    """
    from ..models.default_model import load_default_or

    if name_or_path is None:
        raise ValueError("--task lm needs a language model: --model default-lm (SmolLM2-135M-Instruct, offline), "
                         "or a folder or hub name of a causal or masked LM")
    return load_default_or(name_or_path, device=device, task=task)


def load_lm_inputs(args):
    """``(model, tokenizer, texts)`` for ``--model``, ``--task lm`` and ``--text-file`` / ``--max-examples``.

    Says where the texts came from in one line on stderr. ``--ablation mean`` is refused for now.
    """
    from ..analyses.lm_texts import load_lm_texts

    if getattr(args, "ablation", "zero") == "mean":
        raise ValueError("--ablation mean is not available with --task lm yet; masked heads output zeros "
                         "(--ablation zero)")
    texts = load_lm_texts(args.text_file, args.max_examples)
    print(texts.describe(), file=sys.stderr, flush=True)
    model, tokenizer = load_language_model(args.model, args.device, args.task)
    return model, tokenizer, texts


def run_evaluate_lm(args) -> int:
    """``bertology evaluate --task lm``: perplexity and token accuracy, optionally under ``--mask``."""
    from ..analyses.lm_evaluation import evaluate_lm
    from ._common import load_mask_file, mask_for_model

    mask = load_mask_file(args.mask)
    from ..core.bound import bind
    from ..core.lm_objective import lm_objective

    model, tokenizer, texts = load_lm_inputs(args)
    bound = bind(model, tokenizer, objective=lm_objective(model, args.task))
    mask = mask_for_model(mask, args.mask, bound)
    result = evaluate_lm(bound, None, texts, task=args.task, mask=mask, batch_size=args.batch_size,
                         max_length=args.max_length, precision=args.precision)
    if mask is not None:
        result.update(mask_file=args.mask, heads_masked=int((mask == 0).sum()), mask=mask.tolist())
    if args.json:
        print(json.dumps(result))
        return 0
    under = "" if mask is None else f" with the mask {args.mask}, {result['heads_masked']} of {mask.size} heads masked"
    print(f"{result['task']} on {result['n']} texts ({result['tokens']} tokens scored){under}, "
          f"{result['precision']}: perplexity {result['perplexity']:.4f} (lower is better), "
          f"token accuracy {result['token_accuracy']:.4f}")
    return 0
