"""``bertology roles``: what kind of head is each head (Clark et al. 2019's attention patterns)?

Writes ``head_roles.npz`` (one ``(layers, heads)`` array per measure, and
``roles``), ``head_roles.json`` (the same, with the thresholds) and
``head_roles.txt`` (a readable table, also printed). For a causal model they
also hold ``induction`` ``(layers, heads)`` and, with an LM head,
``in_context_loss`` (:mod:`~bertology_widgets.analyses.induction`).
"""

from __future__ import annotations

import time

from ..runtime.files import output_folder
from ._common import TASK_HELP, add_batch_size_option, add_model_task_options, add_out_option, add_split_option

LM_TEXTS = "UD English-EWT test texts"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("roles", help="attention statistics and a role per head "
                                            "([CLS], [SEP], previous token, induction, ...)")
    add_model_task_options(p, task_help=TASK_HELP + "; or lm: a causal or masked LM (--model) on the embedded "
                                                    f"{LM_TEXTS}, with induction scores for a causal LM")
    add_out_option(p)
    add_split_option(p)
    add_batch_size_option(p, 16)
    p.set_defaults(run=run)


def _lm_inputs(args):
    """``(bound, eval_set, description)`` for ``--task lm``: the LM with its head, on the EWT texts."""
    from ..analyses.lm_texts import load_lm_texts
    from ..core.bound import bind
    from ._language_model import load_language_model

    model, tokenizer = load_language_model(args.model, device=args.device)
    bound = bind(model, tokenizer)
    return bound, bound.encode(list(load_lm_texts(max_examples=args.max_examples)), args.max_length), LM_TEXTS


def _induction_lines(result) -> str:
    if result.induction is None:
        return ""
    from ..analyses.induction import INDUCTION_LENGTH, INDUCTION_SEQUENCES, top_heads

    top = ", ".join(f"{layer}.{head} {score:.3f}" for layer, head, score in top_heads(result.induction, 10))
    loss = "" if result.in_context_loss is None else f"; in-context copying loss {result.in_context_loss:.3f} nats"
    return (f"Induction (attention to the token after the earlier occurrence, {INDUCTION_SEQUENCES} random "
            f"sequences of {INDUCTION_LENGTH} tokens repeated twice{loss}); highest layer.head: {top}")


def run(args) -> int:
    from ..analyses.head_roles import BROAD_ENTROPY_THRESHOLD, ROLE_SHARE_THRESHOLD, head_roles
    from ._common import load_inputs, write_text

    if args.task == "lm":
        bound, eval_set, described = _lm_inputs(args)
    else:
        bound, eval_set, task, _ = load_inputs(args)
        described = f"{task.display_name} {args.split}"
    out = output_folder(args)
    start = time.perf_counter()
    result = head_roles(bound, eval_set, batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - start
    npz, js = result.save(out)
    sections = [
        (f"Head roles on {described}: {result.n_examples} examples, {result.n_queries} query "
         f"tokens, {seconds:.1f} s. Role = the largest attention share if >= {ROLE_SHARE_THRESHOLD}, else 'broad' "
         f"if entropy / log(keys) >= {BROAD_ENTROPY_THRESHOLD}, else 'mixed'.", result.table()),
    ]
    if result.induction is not None:
        sections.append((_induction_lines(result), ""))
    print(write_text(out / "head_roles.txt", sections), end="")
    print(f"wrote {npz}, {js}, {out / 'head_roles.txt'}")
    return 0
