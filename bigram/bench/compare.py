"""`bigram bench --compare OLD.json`: before / after / ratio per measure and contestant, and a verdict.

A contestant's measure regressed when it is worse than before by more than
the threshold, in the measure's own direction, as a factor: a rate (tokens/s,
MB/s) with before / after > 1 + threshold, a time or a size (s, MB) with
after / before > 1 + threshold. So 0.10 flags a run that takes 10% longer
per step, token or byte, whichever way its measure is stated. The lecture's rows are shown, never judged: its
code does not change, so a move there is the machine's, which helps to read
the other rows. Exit status 1 when anything regressed (cli/bench.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from bigram.bench.engine import BASELINE, REPORT_FORMAT, _fmt, describe_run
from bigram.core.errors import BigramError
from bigram.core.metrics import _is_float as is_float  # a number float() holds (not 400 digits)

DEFAULT_THRESHOLD = 0.10


@dataclass
class Row:
    measure: str
    title: str
    unit: str
    who: str
    before: float | None
    after: float | None
    higher_is_better: bool
    worse_by: float | None  # before/after - 1 for a rate, after/before - 1 for a time or size; > 0: worse
    verdict: str  # "ok", "regression", "baseline" (the lecture: not judged), "no figure", "only before", "only after"

    @property
    def ratio(self) -> float | None:
        return _ratio(self.after, self.before)


def _ratio(a, b) -> float | None:
    return a / b if _num(a) and _num(b) and b != 0 else None


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


MAX_REPORT_BYTES = 64 << 20  # a report is a few kB: values for a handful of rounds and contestants


def load_report(path: Path | str) -> dict:
    """A saved bench report, checked: a one-line BigramError for a file that is missing, unreadable, not a
    regular file (a FIFO would block, /dev/zero never end), too large, not JSON, or not a `bigram bench` report."""
    p = Path(path)
    try:
        text = _read_text(p)
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise BigramError(f"cannot read the bench report {str(p)!r} ({why}); pass a PREFIX.json written by "
                          "`bigram bench --report PREFIX`") from None
    try:
        report = json.loads(text)
    except RecursionError:
        raise BigramError(f"{str(p)!r} is nested too deeply to be a bench report; pass a PREFIX.json written by "
                          "`bigram bench --report PREFIX`") from None
    except ValueError as e:
        raise BigramError(f"{str(p)!r} is not JSON ({e}); pass a PREFIX.json written by "
                          "`bigram bench --report PREFIX`") from None
    problem = _not_a_report(report)
    if problem:
        raise BigramError(f"{str(p)!r} is not a bigram bench report ({problem}); pass a PREFIX.json written by "
                          "`bigram bench --report PREFIX`")
    return report


def _read_text(p: Path) -> str:
    """The file's text; opened without blocking and checked to be a regular file of a report's size first."""
    import os
    import stat

    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file")
        if st.st_size > MAX_REPORT_BYTES:
            raise OSError(0, f"{st.st_size:,} bytes, far more than a report's few kB")
        return f.read(MAX_REPORT_BYTES + 1).decode("utf-8")


def _not_a_report(report) -> str | None:
    """What makes `report` something other than a bench report (this format or an older one), or None."""
    if not isinstance(report, dict) or not isinstance(report.get("meta", {}), dict):
        return "not a JSON object with meta and measures"
    fmt = report.get("meta", {}).get("format", REPORT_FORMAT)
    if fmt != REPORT_FORMAT:
        return f"its format is {fmt!r}"
    measures = report.get("measures")
    if not isinstance(measures, dict) or not measures:
        return "no measures"
    for key, m in measures.items():
        if not isinstance(m, dict) or not isinstance(m.get("median"), dict) or \
                not isinstance(m.get("higher_is_better"), bool):
            return f"measure {key!r} has no medians or direction"
        bad = [who for who, v in m["median"].items() if not (v is None or is_float(v))]
        if bad:
            return f"measure {key!r} has a median for {bad[0]!r} that is not a number"
    return None


def check_threshold(threshold: float) -> float:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise BigramError(f"--threshold must be a fraction >= 0 (0.10 = 10% worse), got {threshold}; "
                          "e.g. --threshold 0.10")
    return float(threshold)


def worse_by(before, after, higher_is_better: bool) -> float | None:
    """How much worse `after` is than `before`, as a factor minus 1 (0.25: 1.25x worse; negative: better);
    None without both figures."""
    if not (_num(before) and _num(after)) or before <= 0 or after < 0:
        return None
    if higher_is_better:
        return before / after - 1 if after > 0 else math.inf
    return after / before - 1


def compare(old: dict, new: dict, threshold: float = DEFAULT_THRESHOLD) -> list[Row]:
    """One row per measure and contestant in either report, in the new report's order, then the old one's."""
    threshold = check_threshold(threshold)
    rows = []
    om, nm = old["measures"], new["measures"]
    for key in [*nm, *(k for k in om if k not in nm)]:
        o, n = om.get(key, {}), nm.get(key, {})
        if o and n and o["higher_is_better"] != n["higher_is_better"]:
            raise BigramError(f"measure {key!r} is higher-is-better in one report and lower-is-better in the other, "
                              "so one of them was edited; compare reports written by `bigram bench --report`")
        ref = n or o
        hib = bool(ref["higher_is_better"])
        before, after = o.get("median", {}), n.get("median", {})
        for who in [*after, *(w for w in before if w not in after)]:
            b, a = before.get(who), after.get(who)
            w = worse_by(b, a, hib)
            if who not in before or who not in after:
                verdict = "only after" if who not in before else "only before"
            elif w is None:
                verdict = "no figure"
            elif who == BASELINE:
                verdict = "baseline"
            else:
                verdict = "regression" if w > threshold else "ok"
            rows.append(Row(key, ref.get("title", key), ref.get("unit", ""), who, b, a, hib, w, verdict))
    return rows


def check_judged(rows: list[Row]) -> None:
    """A comparison that judged no figure must not pass as 'no regression' (a CI gate that checks nothing)."""
    if not any(r.verdict in ("ok", "regression") for r in rows):
        raise BigramError("the two reports share no figure of a bigram backend to compare (different --measures "
                          "or --backends, or no figures); compare reports of the same --measures and --backends")


def regressions(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == "regression"]


def _change(r: Row) -> str:
    if r.worse_by is None:
        return "-"
    factor = 1 + r.worse_by
    if factor <= 0:
        return "better"
    shown = f"{max(factor, 1 / factor):.2f}"  # a report compared with itself read "1.00x better"
    if shown == "1.00":
        return "unchanged"
    return f"{shown}x worse" if factor > 1 else f"{shown}x better"


SIZE_FIELDS_IGNORED = ("rounds", "backends", "measures", "threads", "data")  # they change rows or noise, not sizes


def differing_settings(old: dict, new: dict) -> list[str]:
    """The saved settings (sizes, --quick) in which two reports differ: their figures measure different work."""
    a, b = (r.get("meta", {}).get("config") for r in (old, new))
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return []
    return sorted(k for k in a.keys() & b.keys() if k not in SIZE_FIELDS_IGNORED and a[k] != b[k])


def to_markdown(rows: list[Row], threshold: float, old: dict, new: dict) -> str:
    differ = differing_settings(old, new)
    lines = [
        f"Before: {describe_run(old.get('meta', {}))}",
        f"After: {describe_run(new.get('meta', {}))}",
        *([f"Note: the runs differ in {', '.join(differ)}: their figures measure different work, compare runs "
           "of the same settings."] if differ else []),
        "",
        "| measure | unit | who | before | after | after / before | change | verdict |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        verdict = "**REGRESSION**" if r.verdict == "regression" else r.verdict
        lines.append(f"| {_cell(r.title)} | {_cell(r.unit)} | {_cell(r.who)} | {_fmt(r.before)} | {_fmt(r.after)} | "
                     f"{_fmt(r.ratio)} | {_change(r)} | {verdict} |")
    lines += ["", summary(rows, threshold)]
    return "\n".join(lines) + "\n"


def _cell(text) -> str:
    """A report's string in a markdown cell: invisible characters escaped, a | kept from splitting the row."""
    from bigram.core.display import printable

    return printable(str(text)).replace("|", "\\|")


def summary(rows: list[Row], threshold: float) -> str:
    bad = regressions(rows)
    if not bad:
        judged = sum(r.verdict == "ok" for r in rows)
        return f"No regression: none of {judged} figures is worse by more than {threshold:.0%}."
    names = ", ".join(f"{_cell(r.measure)} ({_cell(r.who)}, {_change(r)})" for r in bad)
    return f"{len(bad)} regression(s) worse by more than {threshold:.0%}: {names}."


def to_json(rows: list[Row], threshold: float, old: dict, new: dict) -> dict:
    return {"threshold": threshold, "regressions": len(regressions(rows)),
            "differing_settings": differing_settings(old, new),
            "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}
