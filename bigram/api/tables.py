"""Small tables a learner reads: next-character probabilities and the vocabulary.

Each shows characters, never bare ids (`bigram.core.display.visible`: '\\n',
'␣' for a space, escapes for the invisible), prints as aligned text, renders
as HTML in a notebook, and converts to JSON for `--json`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bigram.core.display import html_table, text_table, token_labels, visible_text


def _char(tokenizer, i: int) -> str | None:
    """The character id i stands for; None for a byte that is only part of a UTF-8 character."""
    chars = getattr(tokenizer, "chars", None)
    if chars is not None:
        return chars[i]
    return chr(i) if i < 0x80 else None


class _Table:
    """A titled table of rows: aligned text to print, HTML for a notebook."""

    align = ""  # one 'l' or 'r' per column

    def title(self) -> str:
        raise NotImplementedError

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        raise NotImplementedError

    def footer(self) -> str:
        return ""

    def __str__(self) -> str:
        header, rows = self._cells()
        return "\n".join(filter(None, [self.title(), text_table(header, rows, self.align), self.footer()]))

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        header, rows = self._cells()
        return html_table(header, rows, caption=self.title())


@dataclass(frozen=True)
class NextChar:
    """One row of a NextChars table."""

    rank: int
    char: str | None  # None: a byte id that is not a whole character
    id: int
    prob: float
    shown: str  # the character as printed: '\n', '␣', '\u200d'


class NextChars(_Table):
    """P(next character | the prompt's last character), most likely first.

    A bigram reads only the last character of a prompt, so `next_probs("th")`
    is the row of 'h' in the model's table, softmaxed by the backend. `rows`
    holds the `top_k` most likely (ties by id); `table["u"]` and `probs`
    give any character's probability, shown or not.
    """

    def __init__(self, prompt: str, context_id: int, probs: np.ndarray, tokenizer, top_k: int | None = 10):
        self.prompt = prompt
        self.context_id = int(context_id)
        self.probs = np.asarray(probs, dtype=np.float64)  # (V,) the whole distribution
        self.tokenizer = tokenizer
        labels = token_labels(tokenizer)
        self.context = labels[self.context_id]  # the character it reads, as shown
        order = np.argsort(-self.probs, kind="stable")  # (V,) most likely first, ties by id
        k = len(order) if top_k is None else min(int(top_k), len(order))
        self.rows = [NextChar(r + 1, _char(tokenizer, int(i)), int(i), float(self.probs[i]), labels[i])
                     for r, i in enumerate(order[:k])]

    @property
    def vocab_size(self) -> int:
        return len(self.probs)

    def __getitem__(self, char: str) -> float:
        """P(char | context) for any character of the vocabulary."""
        ids = self.tokenizer.encode(char)
        if len(ids) != 1:
            raise KeyError(f"{char!r} is not one token of this vocabulary")
        return float(self.probs[int(ids[0])])

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def title(self) -> str:
        shown = f"the {len(self.rows)} most likely" if len(self.rows) < self.vocab_size else "all"
        reads = "" if len(self.prompt) == 1 else f" (the bigram reads only the last character of \"{visible_text(self.prompt)}\")"
        return f"P(next | {self.context}): {shown} of {self.vocab_size} characters{reads}"

    align = "rlrr"

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        return ["rank", "next", "id", "probability"], [
            [str(r.rank), r.shown, str(r.id), f"{r.prob:.6f}"] for r in self.rows]

    def footer(self) -> str:
        return f"(these {len(self.rows)} hold {sum(r.prob for r in self.rows):.4f} of the probability)"

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt, "context": _char(self.tokenizer, self.context_id), "context_id": self.context_id,
            "context_shown": self.context, "vocab_size": self.vocab_size,
            "next": [{"rank": r.rank, "char": r.char, "id": r.id, "prob": r.prob, "shown": r.shown} for r in self.rows],
        }


@dataclass(frozen=True)
class VocabEntry:
    id: int
    char: str | None
    shown: str
    count: int | None  # occurrences in the corpus; None where no corpus was counted


class Vocab(_Table):
    """A vocabulary: each id with its character (shown readably) and how often it occurs in the corpus."""

    def __init__(self, tokenizer, counts: np.ndarray | None = None, source: str | None = None):
        self.tokenizer = tokenizer
        self.source = source
        labels = token_labels(tokenizer)
        self.entries = [VocabEntry(i, _char(tokenizer, i), labels[i], None if counts is None else int(counts[i]))
                        for i in range(tokenizer.vocab_size)]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __getitem__(self, i: int) -> VocabEntry:
        return self.entries[i]

    def title(self) -> str:
        kind = getattr(self.tokenizer, "kind", "char")
        counted = f"; counts in {self.source}" if self.source else ""
        return f"vocabulary: {len(self)} {'bytes' if kind == 'byte' else 'characters'}{counted}"

    align = "rlr"

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        header = ["id", "char", "count"]
        rows = [[str(e.id), e.shown, "-" if e.count is None else f"{e.count:,}"] for e in self.entries]
        return header, rows

    def to_json(self) -> dict:
        return {"kind": getattr(self.tokenizer, "kind", "char"), "vocab_size": len(self), "counts_from": self.source,
                "vocab": [{"id": e.id, "char": e.char, "shown": e.shown, "count": e.count} for e in self.entries]}

