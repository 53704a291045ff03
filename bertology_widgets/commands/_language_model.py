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


def load_lm_inputs(args, examples: bool = True):
    """:class:`~._inputs.Inputs` for ``--task lm``: the LM bound with its objective, its texts, the mask.

    The texts (``--text-file``, else the EWT test sentences; ``--max-examples``) are read and encoded
    once when ``examples`` is true or ``--ablation mean`` needs them, and where they came from is said
    in one line on stderr; ``args.lm_texts`` keeps them. ``--ablation mean`` makes each head's mean
    output over them the bound model's default ablation. The task is None (``inputs.bound.objective``
    is what is scored). One process only: ``accelerate launch`` is refused.
    """
    from ..analyses.lm_texts import load_lm_texts
    from ..core.bound import bind
    from ..core.lm_objective import lm_objective
    from ..runtime.distributed import ONE_PROCESS, current_processes
    from ._inputs import Inputs, load_mask_file, mask_for_model

    if current_processes().num_processes > 1:
        raise ValueError("--task lm runs in one process; run the command without accelerate launch")
    args.processes = ONE_PROCESS
    mask = load_mask_file(getattr(args, "mask", None))  # a bad file fails before the model loads
    mean = getattr(args, "ablation", "zero") == "mean"
    texts = None
    if examples or mean:
        texts = load_lm_texts(getattr(args, "text_file", None), getattr(args, "max_examples", None))
        print(texts.describe(), file=sys.stderr, flush=True)
    args.lm_texts = texts
    model, tokenizer = load_language_model(args.model, args.device, args.task)
    bound = bind(model, tokenizer, objective=lm_objective(model, args.task))
    eval_set = None if texts is None else bound.encode(list(texts), args.max_length)
    mask = mask_for_model(mask, getattr(args, "mask", None), bound)
    if mean:
        from ..analyses.ablation import head_output_means

        bound.set_ablation("mean", head_output_means(bound, eval_set, progress=not getattr(args, "json", False)))
    return Inputs(bound, eval_set, None, mask)


def data_title(args, task, bound) -> str:
    """What a command ran on, for its report: ``"SST-2 validation"``, or ``"UD English-EWT test (causal_lm)"``."""
    if task is not None:
        return f"{task.display_name} {args.split}"
    texts = getattr(args, "lm_texts", None)
    return f"{texts.name if texts is not None else 'texts'} ({bound.objective.name})"


def data_record(args, task, bound, eval_set=None) -> dict:
    """``task`` and ``split`` for a command's JSON: the GLUE task's; or the LM objective's name, the texts',
    the number of tokens scored and the precision (fp32: the masking curve and pruning score in fp32)."""
    if task is not None:
        return {"task": task.name, "split": args.split}
    texts = getattr(args, "lm_texts", None)
    record = {"task": bound.objective.name, "texts": texts.name if texts is not None else None,
              "precision": "fp32"}
    if eval_set is not None:
        record["tokens"] = scored_tokens(eval_set)
    return record


def scored_tokens(eval_set) -> int:
    """How many tokens a language model's objective scores in ``eval_set``: the masked positions, or every
    token after each text's first."""
    if eval_set.targets is not None:
        return int(sum(len(where) for where, _ in eval_set.targets))
    return int(sum(max(int(n) - 1, 0) for n in eval_set.encoded.lengths))


def run_evaluate_lm(args) -> int:
    """``bertology evaluate --task lm``: perplexity and token accuracy, optionally under ``--mask``."""
    from ..analyses.lm_evaluation import LIVE_LM_BATCH_SIZE, evaluate_lm

    bound, eval_set, _, mask = load_lm_inputs(args)
    batch_size = args.batch_size or LIVE_LM_BATCH_SIZE  # what a live session uses: the same sums, digit for digit
    result = evaluate_lm(bound, None, eval_set, task=args.task, mask=mask, batch_size=batch_size,
                         max_length=args.max_length, precision=args.precision)
    if mask is not None:
        result.update(mask_file=args.mask, heads_masked=int((mask == 0).sum()), mask=mask.tolist())
    if args.ablation == "mean":
        result["ablation"] = "mean"
    if args.json:
        print(json.dumps(result))
        return 0
    under = "" if mask is None else f" with the mask {args.mask}, {result['heads_masked']} of {mask.size} heads masked"
    under += " (mean ablation)" if args.ablation == "mean" else ""
    print(f"{result['task']} on {result['n']} texts ({result['tokens']} tokens scored){under}, "
          f"{result['precision']}: perplexity {result['perplexity']:.4f} (lower is better), "
          f"token accuracy {result['token_accuracy']:.4f}")
    return 0
