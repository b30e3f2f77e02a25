"""Free text from outside (the model's answers, error messages) as one line of plain text.

``plain_text`` is applied where the model's text enters (``LLMProposer``) and again where
the reports (analysis.md, memory.md) render free text. A field so cleaned cannot forge a
report line (its newlines made ``## Iter 99`` entries, ``# Block 7`` headings), start a
markdown block (``#``, ``>``, ``-``, ``1.``, a fence, a table row…: escaped with a
backslash, which markdown renders as the character itself), drive a terminal (NUL, BEL,
CR, ANSI escape sequences are removed) or hold a lone surrogate (no UTF-8 file can store
one). ``redact`` replaces the API key wherever it was echoed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "one_line", "plain_text", "redact", "shorten"]

REDACTED = "[redacted]"

# ANSI/VT escape sequences: CSI (colours, cursor, clear screen), OSC (window title) and
# DCS/SOS/PM/APC strings up to their terminator, other ESC sequences, 8-bit CSI.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# What starts a markdown block at the beginning of a line.
_BLOCK = re.compile(
    r"""[#>|<=]             # heading, quote, table row, HTML block, setext underline
    | `{3} | ~{3}           # code fence
    | [-+*](?:\s|$)         # bullet
    | ([-*_])\s*\1\s*\1     # thematic break
    | \[[^\]]*\]:           # link reference definition (the line is not shown)
    """,
    re.X,
)
_ORDERED = re.compile(r"\d{1,9}(?=[.)](?:\s|$))")  # "1. " or "1) ": an ordered list


def _keep(ch: str) -> bool:
    """Not a control character, a lone surrogate or an invisible format character (bidi
    overrides among them); the zero-width joiner of emoji sequences stays."""
    cat = unicodedata.category(ch)
    return not (cat in ("Cc", "Cs") or (cat == "Cf" and ch != "\u200d"))


def one_line(text: Any) -> str:
    """``text`` as one line: escape sequences and control characters removed, every run of
    whitespace (newlines, tabs, CR, Unicode line separators) one space, stripped."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if not s.isprintable():
        s = _ESCAPES.sub("", s)
        s = "".join(" " if ch.isspace() else ch for ch in s if ch.isspace() or _keep(ch))
    return " ".join(s.split())


def shorten(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def _neutralise(text: str) -> str:
    m = _ORDERED.match(text)
    if m:
        return f"{text[: m.end()]}\\{text[m.end() :]}"
    return "\\" + text if _BLOCK.match(text) else text


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a string, or lists and mappings of them) with each secret replaced."""
    keys = [s for s in secrets if isinstance(s, str) and s]
    if not keys:
        return value

    def clean(v: Any) -> Any:
        if isinstance(v, str):
            for s in keys:
                v = v.replace(s, REDACTED)
            return v
        if isinstance(v, Mapping):
            return {clean(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(value)


def plain_text(text: Any, limit: int | None = None, secrets: Iterable[str] = ()) -> str:
    """One line of plain text (``one_line``), secrets redacted, at most ``limit``
    characters, a markdown block marker at its start escaped."""
    return _neutralise(shorten(redact(one_line(text), secrets), limit))
