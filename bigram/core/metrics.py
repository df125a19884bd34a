"""Run metrics as JSON lines: one object per evaluation, appended as it happens."""

from __future__ import annotations

import json
import math
from pathlib import Path

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
    """The records of a checkpoint directory's metrics.jsonl (or of that file), never through a link."""
    from bigram.core.safefs import STAGE, Dir

    path = Path(path)
    if path.is_dir():
        with Dir.open(path) as d:
            raw = _staged_metrics(d, STAGE)
            raw = d.read(METRICS_FILE) if raw is None else raw
    else:
        from bigram.core.safefs import read_nofollow

        raw = read_nofollow(path) if path.exists() or path.is_symlink() else None
    if raw is None:
        return []
    out = []
    for line in raw.decode("utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: the rest is still good
    return out


def _staged_metrics(d, stage: str) -> bytes | None:
    """metrics.jsonl of a save being installed (bigram.core.checkpoint), which is the newer one."""
    try:
        with d.sub(stage) as s:
            return s.read(METRICS_FILE)
    except FileNotFoundError:
        return None
