"""``bertology lens``: the logit lens, what each layer would predict at each position of one text."""

from __future__ import annotations

import json

from ._common import load_mask_file, mask_for_model, positive_int


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("lens", help="the logit lens: read every layer through the model's final norm and "
                                           "unembedding (causal or masked LM)")
    p.add_argument("--model", default=None,
                   help="default-lm (SmolLM2-135M-Instruct, offline), or a folder (or hub name) of a causal LM "
                        "(GPT-2, GPT, Llama-style) or a masked LM (BERT, RoBERTa, DistilBERT), saved with its LM head")
    p.add_argument("--text", required=True, help="the text to read; tokenized as the tokenizer does by default")
    p.add_argument("--mask", default=None, help="head mask: .npy of shape (layers, heads), 1 keep / 0 mask, or .json")
    p.add_argument("--top-k", "--top_k", dest="top_k", type=positive_int, default=5,
                   help="top tokens kept per layer and position (default 5)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON object: "tokens" (positions), "top_tokens" (layers + 1 x positions x k), '
                        '"top_probs" (the same shape), "final_rank" (layers + 1 x positions; 1 = the model\'s '
                        'own top token), "final_probs" and "kind" (causal or masked). Row 0 is the embeddings.')
    p.set_defaults(run=run)


VISIBLE = str.maketrans({" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"})


def _cell(token: str, width: int) -> str:
    """A decoded token made visible (a space as ``␣``, a newline as ``↵``), cut or padded to ``width``."""
    shown = repr(token.translate(VISIBLE))[1:-1]
    return (shown if len(shown) <= width else shown[:width - 1] + "…").ljust(width)


def table(result, tokenizer, width: int = 10) -> str:
    """Rows = layers (``emb``, then ``0..L-1``), columns = positions: each cell the layer's top token there."""
    inputs = [tokenizer.decode([int(i)]) for i in result.input_ids]
    header = "layer | " + " ".join(_cell(t, width) for t in inputs)
    lines = [header, "-" * len(header)]
    for row, cells in enumerate(result.top_tokens):
        name = "emb" if row == 0 else str(row - 1)
        lines.append(f"{name:>5} | " + " ".join(_cell(cell[0], width) for cell in cells))
    return "\n".join(lines)


def run(args) -> int:
    from ..analyses.logit_lens import logit_lens
    from ..core.bound import bind
    from ..core.unembedding import unembedding_for
    from ._language_model import load_language_model

    mask = load_mask_file(args.mask)
    model, tokenizer = load_language_model(args.model, device=args.device)
    unembedding_for(model)  # a model without an LM head is refused before any work
    bound = bind(model, tokenizer)
    mask = mask_for_model(mask, args.mask, bound)
    result = logit_lens(bound, args.text, k=args.top_k, mask=mask)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    what = "next token" if result.kind == "causal" else "token at each position"
    masked = "" if mask is None else f", {int((mask == 0).sum())} heads masked ({args.mask})"
    print(f"Logit lens: each layer's top prediction of the {what}{masked}")
    print(table(result, tokenizer))
    last = len(result.tokens) - 1
    final = result.top_tokens[-1][last][0]
    first = result.first_top_layer(int(result.final_ids[last]), last)
    when = "the embeddings" if first == 0 else f"layer {first - 1}" if first is not None else "no layer"
    print(f"final prediction at the last position: {final!r} (probability {result.top_probs[-1, last, 0]:.3f}); "
          f"first top-1 after {when}")
    return 0
