"""``bertology snapshot``: the dashboard as one HTML file that works offline, with no kernel."""

from __future__ import annotations

import sys

from ._common import add_model_task_options, load_mask_file, mask_for_model, positive_int

CURVE_EXAMPLES = 256


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "snapshot", help="write the dashboard as one self-contained HTML page (offline, no kernel): attention "
                         "maps of every head, the mask grid and the score along the masking curve, precomputed")
    add_model_task_options(p, task_required=False)
    p.set_defaults(task="sst2")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--example", type=int, default=0, help="dev example to show (default 0)")
    shown.add_argument("--text", default=None, help="show this text instead of a dev example")
    p.add_argument("--mask", default=None,
                   help="head mask the page opens with: .npy of shape (layers, heads), 1 keep / 0 mask, or .json")
    p.add_argument("--layer", type=int, default=0, help="layer selected when the page opens (default 0)")
    p.add_argument("--head", type=int, default=0, help="head selected when the page opens (default 0)")
    p.add_argument("--no-curve", dest="curve", action="store_false",
                   help="leave the masking curve out (otherwise it is taken from the shared results cache, "
                        "or computed)")
    p.add_argument("--curve-examples", dest="curve_examples", type=positive_int, default=CURVE_EXAMPLES,
                   help=f"compute the masking curve on the first N examples (default {CURVE_EXAMPLES}, a few "
                        "minutes on a CPU); the readout scores each of its masks on all examples")
    p.add_argument("--out", required=True, help="the HTML file to write, e.g. page.html")
    p.set_defaults(run=run)


def check_text_length(text: str, model, tokenizer) -> None:
    """``ValueError`` when ``text`` is longer than the model takes (a snapshot never shows a cut text silently)."""
    from ..core.capturing import check_text, model_max_length

    check_text(text, "--text")
    limit = model_max_length(model, tokenizer)
    count = len(tokenizer(text, add_special_tokens=True)["input_ids"])
    if count > limit:
        raise ValueError(f"--text has {count} tokens; the model takes at most {limit}: shorten the text")


def run(args) -> int:
    from ..session import ModelSession
    from ..snapshot import check_writable, save_snapshot

    out = check_writable(args.out, "--out")  # before any work
    mask = load_mask_file(args.mask)
    session = ModelSession.from_pretrained(args.model, task=args.task, glue_dir=args.glue_dir,
                                           max_examples=args.max_examples, device=args.device, live=False)
    try:
        if mask is not None:
            session.mask = mask_for_model(mask, args.mask, session.bound)
        if args.text is not None:
            check_text_length(args.text, session.model, session.tokenizer)
            session.text, session.text_pair = args.text, None
        elif not 0 <= args.example < len(session.examples):
            raise ValueError(f"--example {args.example} does not exist; choose 0..{len(session.examples) - 1}")
        else:
            session.example_index = args.example
        for name, value, count in (("--layer", args.layer, session.num_layers), ("--head", args.head,
                                                                                 session.num_heads)):
            if not 0 <= value < count:
                raise ValueError(f"{name} {value} does not exist; choose 0..{count - 1}")
        session.layer, session.head = args.layer, args.head
        if args.curve and not session.curve:
            count = min(args.curve_examples, len(session.examples))
            print(f"computing the masking curve on {count} examples (`bertology precompute` keeps one in the "
                  "shared cache)", file=sys.stderr, flush=True)
            session.compute_masking_curve(max_examples=count, background=False, random_seeds=())
            session.wait(analysis=True)
            if session.analysis_error:
                print(f"bertology snapshot: {session.analysis_error}; the page has no masking curve",
                      file=sys.stderr, flush=True)
            else:
                session.curve = dict(session.curve, n_examples=count)
        session.wait()
        path = save_snapshot(session, out, with_curve=args.curve)
    finally:
        session.close()
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser, no kernel or network needed")
    return 0
