"""Run metrics as JSON lines: one object per evaluation, appended as it happens."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bigram.core.errors import BigramError

METRICS_FILE = "metrics.jsonl"


def json_safe(obj):
    """A copy of obj that JSON can hold: NaN and infinities become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


class MetricsLog:
    """Records {"step", "train_loss", "val_loss", ...} in DIR/metrics.jsonl, and keeps them.

    `out` is the run's CheckpointDir (or None: the records are kept in memory only,
    as the Python API's model.history). A run's metrics.jsonl enters DIR with its
    first save, so until then DIR keeps the metrics of the checkpoint it holds;
    later records are appended as they happen.
    """

    def __init__(self, out=None, records: list[dict] | None = None):
        self.out = out
        self.records: list[dict] = []  # this run's evaluations
        if out is not None:
            out.start_metrics(records or [])

    def append(self, record: dict) -> None:
        self.records.append(json_safe(record))
        if self.out is not None:
            self.out.append_metrics(record)


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a checkpoint directory's metrics.jsonl (or of that file), never through a link;
    oldest first, [] when there is none.

    A line JSON cannot parse is a write cut short by a kill: it is skipped and
    the rest is still good. Anything else that is not a record (bytes that are
    not UTF-8, a value that is not an object, absurd nesting, a step or a loss
    of the wrong type) was never written by bigram: a one-line BigramError.
    """
    from bigram.core.safefs import STAGE, Dir, owned

    path = Path(path)
    if path.is_dir():
        with Dir.open(path) as d:
            raw = _staged_metrics(d, STAGE) if owned(d, STAGE) else None
            raw = d.read(METRICS_FILE) if raw is None else raw
        path = path / METRICS_FILE
    else:
        from bigram.core.safefs import read_nofollow

        raw = read_nofollow(path) if path.exists() or path.is_symlink() else None
    if raw is None:
        return []
    records = (_parse_line(line, path, n) for n, line in enumerate(raw.splitlines(), 1))
    return [r for r in records if r is not None]


def _parse_line(raw: bytes, path: Path, n: int) -> dict | None:
    def damaged(what: str) -> BigramError:
        return BigramError(f"{path} line {n} {what}, so it was not written by bigram; "
                           f"repair or delete that line (or the file: only the loss curves are lost)")

    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise damaged("is not UTF-8") from None
    if not line:
        return None
    try:
        record = json.loads(line)
    except RecursionError:
        raise damaged("is nested too deeply") from None
    except ValueError:
        return None  # a line cut short by a kill: the rest is still good
    if not isinstance(record, dict):
        raise damaged("is not a JSON object")
    _check_record(record, damaged)
    return record


def _check_record(record: dict, damaged) -> None:
    """step a whole number from 0 to 2**53 (as AdamW's step in a checkpoint); losses and times numbers (or null,
    for a non-finite value), a loss never below 0 (a cross-entropy)."""
    step = record.get("step")
    if "step" in record and not (type(step) is int and 0 <= step <= 2**53):
        raise damaged("has a step that is not a whole number from 0 to 2**53")
    for key in ("train_loss", "val_loss", "batch_loss", "wall_s"):
        value = record.get(key)
        if value is not None and not _is_float(value):
            raise damaged(f"has a {key} that is not a number")
        if key != "wall_s" and value is not None and value < 0:
            raise damaged(f"has a negative {key} (a cross-entropy is never below 0)")


def _is_float(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        float(value)
    except OverflowError:  # an integer too large for a float
        return False
    return True


def _staged_metrics(d, stage: str) -> bytes | None:
    """metrics.jsonl of a save being installed (bigram.core.checkpoint), which is the newer one."""
    try:
        with d.sub(stage) as s:
            return s.read(METRICS_FILE)
    except FileNotFoundError:
        return None
