"""Characters and small tables as people read them: in a terminal, in JSON, in a notebook.

A vocabulary holds newlines, spaces, tabs and sometimes invisible characters
(a zero-width joiner prints as nothing at all). Everything that shows a
character to a person goes through `visible`, so `bigram vocab`, `bigram next`,
`explain`, the plots and the notebook tables spell them the same way.
Imports nothing heavy: the CLI uses it before NumPy is loaded.
"""

from __future__ import annotations

import html
import unicodedata

SPACE = "␣"  # U+2423 OPEN BOX, the usual visible space
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", " ": SPACE}
# Control, format (zero-width joiner, BOM), separators other than space, private use,
# unassigned, surrogates, and combining marks that would sit on the previous glyph.
_HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn", "Cs", "Mn", "Me"}


def escape(ch: str) -> str:
    """Python's escape for one character: \\x7f, \\u200d, \\U0001f600."""
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def visible(ch: str) -> str:
    """One character as something you can see: '\\n', '␣' for a space, escapes for the invisible.

    Printable characters stand for themselves ('a', 'é', '✓'); a character
    that would print as nothing, or as a blank, or would merge with its
    neighbour is written as its escape (a zero-width joiner is '\\u200d').
    """
    if ch in _NAMED:
        return _NAMED[ch]
    if len(ch) != 1:
        return "".join(visible(c) for c in ch)
    return escape(ch) if unicodedata.category(ch) in _HIDDEN else ch


def visible_text(text: str) -> str:
    """A string with its newlines and invisible characters escaped, spaces kept (for a prompt)."""
    return "".join(" " if c == " " else visible(c) for c in text)


def printable(text: str) -> str:
    """Untrusted text (a saved report's command or title) for a terminal: invisible characters, escape
    sequences and newlines escaped, everything else as it is (a backslash stays one)."""
    return "".join(escape(c) if c != " " and unicodedata.category(c) in _HIDDEN else c for c in text)


def byte_label(b: int) -> str:
    """A byte-tokenizer id: the ASCII character it is, or its byte escape (a UTF-8 fragment)."""
    return visible(chr(b)) if b < 0x80 else f"\\x{b:02x}"


def token_labels(tokenizer) -> list[str]:
    """`visible` of every id in the vocabulary, in id order."""
    chars = getattr(tokenizer, "chars", None)
    if chars is None:  # the byte tokenizer
        return [byte_label(i) for i in range(tokenizer.vocab_size)]
    return [visible(c) for c in chars]


def text_table(header: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """Columns padded to their widest cell; `align` is one 'l' or 'r' per column (default: left)."""
    align = align or "l" * len(header)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).rjust(w) if a == "r" else str(c).ljust(w)  # noqa: E731
                              for c, w, a in zip(r, widths, align)).rstrip()
    return "\n".join([fmt(header), *map(fmt, rows)])


def html_table(header: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """The same table as HTML, every cell escaped: what a notebook shows."""
    esc = lambda v: html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
