"""How tokens are written on screen: byte-level BPE markers become visible characters.

Byte-level tokenizers (GPT-2, RoBERTa, BART, ...) map every byte to a printable
character, so a leading space shows as ``"Ġ"`` and a newline as ``"Ċ"``. One
rule serves every such tokenizer: those characters become ``"␣"``, ``"↵"`` and
``"⇥"``. WordPiece and SentencePiece tokens are left as they are.
"""

from __future__ import annotations

BYTE_LEVEL_MARKERS = str.maketrans({"\u0120": "\u2423", "\u010a": "\u21b5", "\u0109": "\u21e5"})


def is_byte_level(tokenizer) -> bool:
    """Whether ``tokenizer`` is a byte-level BPE (slow: ``byte_encoder``; fast: a ``ByteLevel`` pre-tokenizer)."""
    if tokenizer is None:
        return False
    if getattr(tokenizer, "byte_encoder", None) is not None:
        return True
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts = [getattr(backend, "pre_tokenizer", None), getattr(backend, "decoder", None)]
    return any("ByteLevel" in repr(part) for part in parts if part is not None)


def display_tokens(tokens, byte_level: bool) -> list[str]:
    """``tokens`` as shown in tick labels and tooltips (``"Ġcharming"`` -> ``"␣charming"`` if ``byte_level``)."""
    return [str(t).translate(BYTE_LEVEL_MARKERS) for t in tokens] if byte_level else [str(t) for t in tokens]


def session_tokens(session) -> list[str]:
    """``session.tokens`` written for the screen, by the rule of the session's tokenizer."""
    return display_tokens(session.tokens, is_byte_level(getattr(session, "tokenizer", None)))
