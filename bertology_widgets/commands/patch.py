"""``bertology patch``: activation patching of every head from a clean into a corrupted input.

Prints the ``(layers, heads)`` grid of normalised logit differences (1: the
head alone restores the clean prediction, 0: no effect). With ``--task lm``
the grid is the log-probability of the next token ``--target-token`` (default:
the clean input's top next token) after the corrupted input with that head's
clean output patched in. With ``--out`` it also writes ``patching.npy`` (the
grid) and ``patching.json`` (grid, tokens, logits, predictions).
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import add_ablation_option, add_mask_option, add_model_task_options, add_out_option, load_inputs
from ._language_model import add_text_file_option, is_lm_task


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("patch", help="activation patching: which heads carry the decision (or, with --task "
                                            "lm, the next token) for this input?")
    p.add_argument("--clean", required=True, help="the clean input text")
    p.add_argument("--corrupted", required=True, help="the corrupted input text (best: same token length)")
    add_model_task_options(p, task_required=False,
                           task_help="GLUE task whose label order the classes follow (default: the model's own "
                                     "record); --ablation mean takes its head means from this task's examples. "
                                     "Or lm: a language model (--model default-lm, a causal or masked LM), whose "
                                     "metric is the log-probability of the next token --target-token")
    add_text_file_option(p)
    p.add_argument("--target-token", "--target_token", dest="target_token", default=None,
                   help="with --task lm: the next token whose log-probability is measured, written as the "
                        "tokenizer spells it in context (e.g. ' Paris' with its leading space); it must be one "
                        "token (default: the clean input's top next token)")
    add_out_option(p, required=False, help="folder for patching.npy and patching.json")
    p.add_argument("--per-position", "--per_position", dest="per_position", action="store_true",
                   help="patch one position at a time: a (layers, heads, positions) grid (needs equal lengths)")
    add_mask_option(p, help="head mask applied to every run (.npy or .json)")
    add_ablation_option(p)
    p.set_defaults(run=run)


def target_token_id(tokenizer, text: str) -> int:
    """The id of the one token ``text`` is (without special tokens); ``ValueError`` when it is not one token."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(f"--target-token {text!r} is {len(ids)} tokens for this tokenizer ({pieces}); give one "
                         f"token, e.g. the first of them")
    return int(ids[0])


def run(args) -> int:
    import numpy as np

    from ..analyses.importance import format_head_table
    from ..analyses.patching import run_patching
    from .explain import label_name

    lm = is_lm_task(args)
    if args.target_token is not None and not lm:
        raise ValueError("--target-token is the next token of a language model; add --task lm "
                         "(a classifier's patching measures its predicted class)")
    bound, _, _, mask = load_inputs(args, examples=False)
    target = None if args.target_token is None else target_token_id(bound.tokenizer, args.target_token)
    result = run_patching(bound, None, args.clean, args.corrupted, per_position=args.per_position, mask=mask,
                          target=target)
    labels = getattr(bound.model.config, "id2label", {}) or {}  # without a task: the model's own class names
    if lm:
        name = lambda i: repr(bound.tokenizer.decode([i]))  # noqa: E731
    else:
        name = lambda i: label_name(bound, i) if bound.task is not None else labels.get(i, str(i))  # noqa: E731
    print(f"clean: {' '.join(result.clean_tokens)} -> {name(result.clean_prediction)}")
    print(f"corrupted: {' '.join(result.corrupted_tokens)} -> {name(result.corrupted_prediction)}")
    grid = result.grid if not args.per_position else np.nansum(result.grid, axis=-1)
    title = "summed over positions" if args.per_position else "all positions"
    record = result.to_dict()
    if lm:
        token = result.clean_prediction if target is None else target
        clean, corrupted = float(result.clean_logits[token]), float(result.corrupted_logits[token])
        print(f"log-probability of the next token {name(token)} with each head's clean output patched into the "
              f"corrupted run ({title}; clean run {clean:.3f}, corrupted run {corrupted:.3f})")
        del record["clean_logits"], record["corrupted_logits"]  # a vocabulary each: the values that matter
        record.update(metric="log_probability", target_token=bound.tokenizer.decode([token]), target_id=token,
                      clean_log_prob=clean, corrupted_log_prob=corrupted)
    else:
        print(f"normalised logit difference per head ({title}; 1 = restores the clean prediction)")
    print(format_head_table(grid))
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "patching.npy", result.grid.astype(np.float32))
        (out / "patching.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        print(f"wrote {out / 'patching.npy'}, {out / 'patching.json'}")
    return 0
