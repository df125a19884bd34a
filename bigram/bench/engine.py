"""The benchmark engine: every measure, the lecture's code against bigram's, in one process.

Each measure has contestants: "lecture" (bigram/bench/lecture.py, the
baseline) and one per bigram backend. Rounds are interleaved (round r runs
every contestant of every measure before round r+1 starts, in reversed order
on odd rounds), so load from other processes and each side's after-effects
(freed memory, cold caches) fall on both sides alike; each figure is the
median over rounds, and each ratio compares medians from the same run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np

BASELINE = "lecture"
MB = 1e6


@dataclass
class BenchConfig:
    """What to run. `quick` shrinks every size so the whole run takes seconds, not minutes."""

    data: str | None = None  # corpus path; None: Tiny Shakespeare from the cache
    rounds: int = 5
    quick: bool = False
    threads: int | None = None  # --threads for both sides; None: bigram's own default, the lecture's baseline_threads
    baseline_threads: int = 1  # the lecture's torch threads when `threads` is None: its best here (docs/benchmarks.md)
    backends: tuple[str, ...] = ()  # empty: the built-in ones (DEFAULT_BACKENDS); see resolve_backends
    measures: tuple[str, ...] = ()  # groups of MEASURE_GROUPS to run; empty: every one
    big_corpus_mb: int = 100
    gen_tokens: tuple[int, ...] = (1_000, 10_000, 100_000)
    baseline_gen_max: int = 10_000  # the quadratic baseline beyond this would take minutes
    opt_tolerance: float = 0.01
    opt_check_every: int = 50
    opt_max_steps: int = 60_000
    train_steps: dict = field(default_factory=lambda: {"b32": (400, 4000), "b512": (3, 40)})  # (lecture, ours)
    count_chars_baseline: int = 50_000
    rss_steps: int = 3000
    # The loaded training slope: wall time of the CLI at the larger step count minus the smaller, best of
    # slope_best_of runs each, with slope_busy_cores cores kept busy by other processes.
    slope_steps: dict = field(default_factory=lambda: {"ours": (500, 100_500), "lecture": (500, 4_500)})
    slope_best_of: int = 3
    slope_busy_cores: int = 1

    @classmethod
    def from_options(cls, *, quick: bool, data: str | None, threads: int | None, rounds: int | None,
                     backends: str | None = None, measures: str | None = None) -> "BenchConfig":
        """The config `bigram bench` and benchmarks/run.py build from their options, checked."""
        from bigram.core.errors import require_positive

        require_positive(threads=threads, rounds=rounds)  # medians need at least one round
        cfg = cls.quick_config(data=data, threads=threads) if quick else cls(data=data, threads=threads)
        cfg.override(rounds=rounds, backends=backends, measures=measures)
        return cfg

    def override(self, *, rounds: int | None = None, backends: str | None = None, measures: str | None = None,
                 threads: int | None = None, data: str | None = None) -> "BenchConfig":
        """Set each option given (not None); backends and measures as the comma-separated lists the CLI takes."""
        from bigram.core.errors import require_positive

        require_positive(threads=threads, rounds=rounds)
        if rounds is not None:
            self.rounds = rounds
        if threads is not None:
            self.threads = threads
        if data is not None:
            self.data = data
        if backends is not None:
            self.backends = resolve_backends(backends)
        if measures is not None:
            self.measures = parse_measures(measures)
        return self

    @classmethod
    def from_saved(cls, config: dict) -> "BenchConfig":
        """The config a saved report ran with (its meta.config), so `--compare` reruns the same sizes.

        Fields this version does not know are ignored and missing ones take their defaults (older reports);
        a field of the wrong type is a BigramError.
        """
        from bigram.core.errors import BigramError

        if not isinstance(config, dict):
            raise BigramError("the saved report has no settings (meta.config) to rerun; compare two saved reports "
                              "with --against NEW.json, or against a report written by `bigram bench --report`")
        cfg, kw = cls(), {}
        for f in fields(cls):
            if f.name in config:
                kw[f.name] = _saved_field(f.name, config[f.name], getattr(cfg, f.name))
        if "measures" in kw and kw["measures"]:
            parse_measures(",".join(kw["measures"]))
        return cls(**kw)

    @classmethod
    def quick_config(cls, **kw) -> "BenchConfig":
        return cls(quick=True, rounds=3, big_corpus_mb=2, gen_tokens=(1_000, 2_000, 5_000), baseline_gen_max=2_000,
                   opt_tolerance=1.5, opt_check_every=25, opt_max_steps=20_000,
                   train_steps={"b32": (50, 500), "b512": (1, 4)}, count_chars_baseline=3_000, rss_steps=100,
                   slope_steps={"ours": (50, 2_050), "lecture": (50, 250)}, slope_best_of=1, **kw)

    def lecture_threads(self) -> int:
        return self.threads or self.baseline_threads


def _saved_field(name: str, v, default):
    """One field of a saved config, checked against the type of its default: a tampered report is a
    BigramError here, not a traceback (or a division by zero) in the middle of a run."""
    from bigram.core.errors import BigramError

    # A size at most 10x the full run's (a slow machine's longer run fits; an edited 10**6 MB corpus or 10**9
    # rounds, which would exhaust memory or never end, does not); threads and cores at most MAX_THREADS.
    most = MAX_THREADS if name in ("threads", "baseline_threads", "slope_busy_cores") else 10 * _largest(default)

    def count(x, least=1) -> bool:
        return type(x) is int and least <= x <= most

    if isinstance(default, tuple) and isinstance(v, list):
        v = tuple(v)
    if isinstance(default, dict) and isinstance(v, dict):  # train_steps, slope_steps: name -> (n0, n1)
        v = {k: tuple(x) if isinstance(x, list) else x for k, x in v.items()}
    if isinstance(default, bool):
        ok = type(v) is bool
    elif isinstance(default, float):
        ok = type(v) in (int, float) and math.isfinite(v) and v > 0
    elif isinstance(default, int):
        ok = count(v, 0 if name in ("slope_busy_cores", "baseline_gen_max") else 1)
    elif isinstance(default, tuple):
        ok = type(v) is tuple and all(isinstance(x, str) if name in ("backends", "measures") else count(x) for x in v)
    elif isinstance(default, dict):
        ok = type(v) is dict and v.keys() == default.keys() and all(
            type(x) is tuple and len(x) == 2 and count(x[0]) and count(x[1]) for x in v.values())
    else:  # data (a path or None), threads (None or a count)
        ok = v is None or (isinstance(v, str) if name == "data" else count(v))
    if not ok:
        bound = f" (whole numbers here are at most {most:,})" if most and not isinstance(default, bool) else ""
        raise BigramError(f"the saved report's config has {name} = {_short(v)}, not a bench setting{bound}; compare "
                          "against a report written by `bigram bench --report`")
    return v


MAX_THREADS = 1024


def _largest(default) -> int:
    """The largest number in a full run's setting (5, (1_000, 10_000, 100_000), {"b32": (400, 4000), ...})."""
    if isinstance(default, dict):
        return max(_largest(v) for v in default.values())
    if isinstance(default, tuple):
        return max((_largest(v) for v in default), default=0)
    return default if type(default) is int else 0


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


DEFAULT_BACKENDS = ("numpy", "torch")  # bigram's own; third-party ones only when named or with --backends all
MEASURE_GROUPS = {  # --measures NAME: what it runs
    "train": "training throughput at B=32,T=8 and B=512,T=256, in process",
    "optimum": "seconds to the optimum + tolerance, the lecture's hyperparameters and the project's defaults",
    "generate": "generation tokens/s at three lengths",
    "encode": "encoding speed and peak memory, the corpus and a large copy of it",
    "count": "bigram counting",
    "startup": "`bigram --help`, the numpy training run's peak RSS, and torch commands that take no step",
    "slope": "the CLI's training slope with a core kept busy",
}


def resolve_backends(spec: str | None) -> tuple[str, ...]:
    """The backends `--backends` names: a comma-separated list, `all` (every installed one that runs on the
    cpu), or None for DEFAULT_BACKENDS. An unknown name, or one that cannot run on the cpu, is a BigramError."""
    from bigram.core.errors import BigramError
    from bigram.core.plugins import backend_devices, load_backends

    reg = load_backends()
    on_cpu = {n for n, info in reg.backends.items() if "cpu" in backend_devices(reg, info)}
    if spec is None:
        return tuple(n for n in DEFAULT_BACKENDS if n in on_cpu)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        return tuple(sorted(on_cpu))
    installed = ", ".join(sorted(reg.backends)) or "none"
    for n in names:
        if n not in reg.backends:
            raise BigramError(f"--backends: unknown backend {n!r}; installed: {installed} (`bigram backends` "
                              "lists them), or --backends all")
        if n not in on_cpu:
            raise BigramError(f"--backends: {n!r} cannot run on the cpu here, where bench runs; leave it out")
    if not names or len(set(names)) != len(names):
        raise BigramError(f"--backends {spec!r}: name each backend once, e.g. --backends numpy,torch")
    return tuple(names)


def parse_measures(spec: str) -> tuple[str, ...]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in MEASURE_GROUPS]
    if unknown or not names:
        from bigram.core.errors import BigramError

        raise BigramError(f"--measures {spec!r}: {'unknown ' + repr(unknown[0]) if unknown else 'none named'}; "
                          f"choose from {','.join(MEASURE_GROUPS)}")
    return tuple(dict.fromkeys(names))


@dataclass
class Measure:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    runs: dict[str, Callable[[], float]]  # contestant -> one round's value
    once: bool = False  # deterministic (memory): measured in the first round only
    values: dict[str, list[float]] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    seconds: float = 0.0  # spent on this measure, all rounds

    def medians(self) -> dict[str, float]:
        return {k: _median(v) for k, v in self.values.items()}

    def ratios(self) -> dict[str, float]:
        """Improvement over the lecture, > 1 = better, for each non-baseline contestant."""
        med = self.medians()
        base = med.get(BASELINE, float("nan"))
        out = {}
        for name, v in med.items():
            if name == BASELINE:
                continue
            r = v / base if self.higher_is_better else base / v
            out[name] = r if math.isfinite(r) else float("nan")
        return out


def _median(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if len(finite) == len(values) and finite else float("nan")


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _peak_bytes(fn: Callable[[], object]) -> float:
    """Peak extra memory while fn runs: the larger of its traced allocations and its rise in resident memory.

    tracemalloc sees Python's and NumPy's allocators but not memory mapped by
    other means (an mmap'd buffer); resident memory sees everything fn touches,
    but misses allocations that reuse memory already resident (freed heap).
    So fn runs under tracemalloc in a forked child, whose ru_maxrss starts at
    its current RSS (not the parent's peak), and the larger figure counts.
    Without fork (Windows), tracemalloc alone.
    """
    if not hasattr(os, "fork"):
        return _traced_peak(fn)
    import resource

    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    import warnings

    r, w = os.pipe()
    with warnings.catch_warnings():  # JAX warns at every fork once loaded; the child never calls JAX
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # the child: measure, report, and leave without running the parent's exit handlers
        code, report = 1, "no report"
        try:
            os.close(r)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            traced = _traced_peak(fn)
            rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * unit
            report, code = str(max(traced, float(rss))), 0
        except BaseException as e:  # noqa: BLE001 - whatever it is, the parent must hear of it
            report = f"error: {type(e).__name__}: {e}"
        finally:
            os.write(w, report.encode())
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        reported = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the memory probe failed in its child process ({reported or 'it died silently'})")
    return float(reported)


def _traced_peak(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        fn()
        return float(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


# ----------------------------------------------------------------------------
# the setting every measure shares


class Setup:
    """Corpus, backends and tables, loaded once (outside every timing)."""

    def __init__(self, cfg: BenchConfig):
        from bigram.core.data import Corpus, bigram_counts, read_corpus
        from bigram.core.optimum import optimal_loss, optimal_table
        from bigram.core.plugins import load_backends

        self.cfg = cfg
        self.corpus = Corpus.load(cfg.data)
        self.text = read_corpus(self.corpus.source)
        self.V = self.corpus.tokenizer.vocab_size
        self.train_counts = bigram_counts(self.corpus.train, self.V)
        self.optimum = optimal_loss(self.train_counts)
        self.table = optimal_table(self.train_counts)  # a trained-like table to sample from
        reg = load_backends()
        names = resolve_backends(",".join(cfg.backends) if cfg.backends else None)
        self.infos = {n: reg.get(n) for n in names}
        self.backends = {n: info.cls for n, info in self.infos.items()}
        self.tmp = Path(tempfile.mkdtemp(prefix="bigram-bench-"))  # checkpoints and outputs of the CLI runs
        for name in self.backends:  # one-time imports (torch's optimizer imports torch._dynamo) stay out of every timing
            prepare = getattr(self.model(name), "prepare_training", None)
            if prepare is not None:
                prepare()

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def torch_threads(self, contestant: str) -> int:
        """The lecture's threads, or what `bigram` itself picks for this table (bigram.core.threads)."""
        from bigram.core import threads

        if contestant == BASELINE:
            return self.cfg.lecture_threads()
        return self.cfg.threads or threads.for_table(self.V)

    def model(self, name: str, weights=None, lr: float = 1e-3):
        from bigram.core.backend import AdamWConfig
        from bigram.core.sampling import init_weights

        w = init_weights(self.V, 1337) if weights is None else weights
        return self.backends[name].create(w, device="cpu", optim=AdamWConfig(lr=lr))


# ----------------------------------------------------------------------------
# 1. training throughput


def _train_measure(s: Setup, key: str, B: int, T: int, steps: tuple[int, int], unit: str) -> Measure:
    from bigram.bench import lecture
    from bigram.core.data import Batcher
    from bigram.core.fast import make_step

    base_steps, our_steps = steps
    per_step = B * T if unit == "tokens/s" else 1

    def base() -> float:
        run = lecture.LectureRun(s.corpus.train, s.V, B, T, lr=1e-3)
        return base_steps * per_step / _timed(lambda: run.train(base_steps))

    def ours(name: str) -> Callable[[], float]:
        def run() -> float:
            model = s.model(name)
            batcher = Batcher(s.corpus.train, B, T, 1337)

            def loop():
                step = make_step(model, batcher)  # the default (counts) path, setup included
                for _ in range(our_steps):
                    step()

            return our_steps * per_step / _timed(loop)

        return run

    runs = {BASELINE: base, **{n: ours(n) for n in s.backends}}
    return Measure(key, f"train {unit} at B={B}, T={T}", unit, True, runs,
                   extra={"batch_size": B, "block_size": T, "steps": {"lecture": base_steps, "ours": our_steps}})


# ----------------------------------------------------------------------------
# 2. time to the optimum


def _opt_measure(s: Setup, key: str, tc, label: str) -> Measure:
    """Seconds until the exact train loss <= optimum + tolerance, training as `tc` (a TrainConfig) says."""
    from bigram.bench import lecture
    from bigram.core.fast import make_step
    from bigram.core.train import make_train_batcher

    cfg = s.cfg
    target = s.optimum + cfg.opt_tolerance
    every = cfg.opt_check_every
    steps_used: dict[str, list[int]] = {}
    lr, schedule = tc.optim.lr, tc.schedule(tc.steps)
    lr_at = None if schedule.constant else schedule

    def until(name: str, advance: Callable[[], None], loss: Callable[[], float]) -> float:
        """Train time (probes excluded) until the exact train loss <= target."""
        spent, steps = 0.0, 0
        while steps < cfg.opt_max_steps:
            spent += _timed(advance)
            steps += every
            if loss() <= target:
                steps_used.setdefault(name, []).append(steps)
                return spent
        return float("nan")

    def base() -> float:
        run = lecture.LectureRun(s.corpus.train, s.V, tc.batch_size, tc.block_size, lr=lr, lr_at=lr_at)
        return until(BASELINE, lambda: run.train(every), lambda: run.exact_loss(s.train_counts))

    def ours(name: str) -> Callable[[], float]:
        def run() -> float:
            model = s.model(name, lr=lr)
            t0 = time.perf_counter()
            step = make_step(model, make_train_batcher(s.corpus, tc), tc.method, schedule)  # what `bigram train` builds
            setup = time.perf_counter() - t0

            def advance():
                for _ in range(every):
                    step()

            return setup + until(name, advance, lambda: model.eval_counts(s.train_counts))

        return run

    runs = {BASELINE: base, **{n: ours(n) for n in s.backends}}
    how = (f"lr {lr}" if lr_at is None else
           f"cosine lr {lr:g} -> {schedule.min_lr:g} over {schedule.decay_steps} steps")
    return Measure(key, f"seconds to train loss <= optimum + {cfg.opt_tolerance} ({label}: {how}, "
                        f"B={tc.batch_size}, T={tc.block_size})",
                   "s", False, runs, extra={"optimum": s.optimum, "target_loss": target, "lr": lr,
                                             "lr_schedule": tc.lr_schedule, "min_lr": schedule.min_lr,
                                             "decay_steps": schedule.decay_steps,
                                             "check_every": every, "steps_to_target": steps_used})


# ----------------------------------------------------------------------------
# 3. generation


def _gen_measure(s: Setup, n: int) -> Measure:
    from bigram.bench import lecture
    from bigram.core.sampling import draw_coins

    runs: dict[str, Callable[[], float]] = {}
    if n <= s.cfg.baseline_gen_max:
        runs[BASELINE] = lambda: n / _timed(lambda: lecture.generate_text(s.table, n))
    models = {name: s.model(name, weights=s.table) for name in s.backends}
    idx = np.zeros((1, 1), dtype=np.int64)

    def ours(name: str) -> Callable[[], float]:
        return lambda: n / _timed(lambda: models[name].generate(idx, draw_coins(1337, 1, n)))

    runs.update({name: ours(name) for name in s.backends})
    note = {} if BASELINE in runs else {"lecture": f"not run: quadratic, {n} tokens would take minutes"}
    return Measure(f"generate_{n}", f"generation tokens/s, {n:,} tokens", "tokens/s", True, runs, extra=note)


# ----------------------------------------------------------------------------
# 4. encoding and 5. counting


def _encode_measures(s: Setup, label: str, text: str) -> list[Measure]:
    from bigram.bench import lecture
    from bigram.core.tokenizer import CharTokenizer

    encode, _ = lecture.make_encode(text)
    tok = CharTokenizer.from_text(text)
    mb = len(text.encode("utf-8")) / MB
    speed = Measure(f"encode_{label}", f"encode MB/s, {label} ({mb:.1f} MB)", "MB/s", True, {
        BASELINE: lambda: mb / _timed(lambda: encode(text)),
        "bigram": lambda: mb / _timed(lambda: tok.encode(text)),
    }, extra={"corpus_mb": mb})
    memory = Measure(f"encode_memory_{label}", f"encode peak extra memory, {label} (MB)", "MB", False, {
        BASELINE: lambda: _peak_bytes(lambda: encode(text)) / MB,
        "bigram": lambda: _peak_bytes(lambda: tok.encode(text)) / MB,
    }, once=True, extra={"corpus_mb": mb})
    return [speed, memory]


def _count_measure(s: Setup) -> Measure:
    from bigram.bench import lecture
    from bigram.core.data import bigram_counts

    _, stoi = lecture.make_encode(s.text)
    head = s.text[: s.cfg.count_chars_baseline]
    train = s.corpus.train
    return Measure("count_bigrams", "bigram counting, pairs/s", "pairs/s", True, {
        BASELINE: lambda: (len(head) - 1) / _timed(lambda: lecture.count_bigrams(head, stoi, s.V)),
        "bigram": lambda: (len(train) - 1) / _timed(lambda: bigram_counts(train, s.V)),
    }, extra={"pairs": {"lecture": len(head) - 1, "bigram": len(train) - 1},
              "baseline": "makemore's loop (N[ix1, ix2] += 1 per pair) on the corpus's first characters"})


# ----------------------------------------------------------------------------
# 6. start-up and memory, in fresh processes


def _env(threads: int | None) -> dict:
    """The user's environment; OMP_NUM_THREADS only where the run pins a thread count.

    Bytecode caching stays on, as for a user: with PYTHONDONTWRITEBYTECODE every
    run would recompile bigram's modules (~0.15 s) that a user's runs load from
    __pycache__ (gitignored).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _bigram_cmd(threads: int | None = None) -> list[str]:
    """The `bigram` command a user runs; with --threads N only where the bench was asked to pin it."""
    script = Path(sys.executable).with_name("bigram")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "bigram"]
    return cmd + (["--threads", str(threads)] if threads is not None else [])


def _run_timed(cmd: list[str], threads: int | None, cwd: Path | None = None) -> float:
    """Wall time of one command in a fresh process, start-up included; a failure stops the bench."""
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, env=_env(threads), cwd=cwd, timeout=1800)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {res.returncode}): {res.stderr.decode()[-500:]}")
    return wall


# Peak RSS from VmHWM: ru_maxrss would carry over the parent's peak across fork+exec.
_RSS_PROBE = """
import json, re, resource, sys
{body}
try:
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
except (OSError, AttributeError):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH " + json.dumps({{"maxrss_kb": peak_kb, "torch_imported": "torch" in sys.modules}}))
"""

_OURS_RSS = """
from bigram.cli.app import main
try:
    main({argv!r})
except SystemExit as e:
    if e.code:
        raise
"""

_LECTURE_RSS = """
import torch
torch.set_num_threads({threads})
from bigram.bench import lecture
from bigram.core.data import Corpus
c = Corpus.load({data!r})
run = lecture.LectureRun(c.train, c.tokenizer.vocab_size)
run.train({steps})
"""


def _probe(body: str, threads: int | None) -> dict:
    res = subprocess.run([sys.executable, "-c", _RSS_PROBE.format(body=body)], capture_output=True, text=True,
                         env=_env(threads), timeout=600)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed (exit {res.returncode}): {res.stderr.strip()[-500:]}")
    return json.loads(lines[-1][6:])


def _process_measures(s: Setup) -> list[Measure]:
    cfg = s.cfg
    help_cmd = _bigram_cmd() + ["--help"]
    torch_cmd = [sys.executable, "-c", "import torch"]
    startup = Measure("startup_help", "`bigram --help` wall time (lecture: `import torch`, its first line)", "s",
                      False, {BASELINE: lambda: _run_timed(torch_cmd, cfg.threads),
                              "bigram": lambda: _run_timed(help_cmd, cfg.threads)},
                      once=cfg.quick, extra={"command": " ".join(help_cmd)})
    torch_seen: list[bool] = []

    def ours_rss() -> float:
        with tempfile.TemporaryDirectory() as out:
            argv = (["--threads", str(cfg.threads)] if cfg.threads else []) + [
                "--backend", "numpy", "train", "--data", s.corpus.source, "--out", out, "--max-new-tokens", "0",
                "--steps", str(cfg.rss_steps)]
            r = _probe(_OURS_RSS.format(argv=argv), cfg.threads)
        torch_seen.append(bool(r["torch_imported"]))
        return r["maxrss_kb"] * 1024 / MB

    def base_rss() -> float:
        body = _LECTURE_RSS.format(data=s.corpus.source, steps=cfg.rss_steps, threads=cfg.lecture_threads())
        return _probe(body, cfg.threads)["maxrss_kb"] * 1024 / MB

    rss = Measure("train_peak_rss", f"peak RSS of a {cfg.rss_steps}-step training run (MB)", "MB", False,
                  {BASELINE: base_rss, "numpy": ours_rss}, once=cfg.quick, extra={"torch_imported": torch_seen})
    return [startup, *_no_step_measures(s), rss]


# ----------------------------------------------------------------------------
# 7. torch commands that take no training step, against `import torch`

NO_STEP_COMMANDS = ("generate", "eval", "fit", "vocab", "plot")  # not explain: it takes one real AdamW step
QUICK_NO_STEP = ("generate", "plot")  # --quick checks that the measure runs: two commands (~3 s of torch each)


def _no_step_commands(s: Setup) -> dict[str, list[str]]:
    """Each command as a user types it, on a checkpoint trained once for the bench (numpy: no torch cost)."""
    ck, data = s.tmp / "ck", s.corpus.source
    if not ck.exists():
        _run_timed(_bigram_cmd() + ["--backend", "numpy", "train", "--data", data, "--steps", "20",
                                    "--max-new-tokens", "0", "--out", str(ck)], None)
    cmds = {
        "generate": ["generate", "--checkpoint", str(ck)],
        "eval": ["eval", "--checkpoint", str(ck), "--data", data],
        "fit": ["fit", "--data", data, "--out", str(s.tmp / "fit")],
        "vocab": ["vocab", "--checkpoint", str(ck)],
        "plot": ["plot", "--checkpoint", str(ck), "--out", str(s.tmp / "plot.png")],
    }
    if importlib.util.find_spec("matplotlib") is None:  # `bigram plot` needs the [plot] extra
        del cmds["plot"]
    if s.cfg.quick:
        cmds = {k: v for k, v in cmds.items() if k in QUICK_NO_STEP}
    return {name: _bigram_cmd(s.cfg.threads) + ["--backend", "torch", *args] for name, args in cmds.items()}


def _no_step_measures(s: Setup) -> list[Measure]:
    """Wall time of each torch command that takes no training step, start-up included, against `import torch`.

    These commands never build torch.optim.AdamW (its import of torch._dynamo
    costs as much as torch itself), so each should cost little more than the
    import: issue 11's bound, 1.3x `python -c "import torch"`, for every one
    of them alike (plot included, though it also draws a PNG).
    """
    if "torch" not in s.backends:
        return []
    cmds = _no_step_commands(s)

    def timed(cmd: list[str]) -> Callable[[], float]:
        return lambda: _run_timed(cmd, s.cfg.threads, cwd=s.tmp)

    runs = {BASELINE: timed([sys.executable, "-c", "import torch"]),
            **{f"torch {name}": timed(cmd) for name, cmd in cmds.items()}}
    return [Measure("startup_torch_no_step", "wall time of a torch command that takes no training step "
                    "(lecture: `import torch`)", "s", False, runs, once=s.cfg.quick,
                    extra={"commands": {name: " ".join(cmd) for name, cmd in cmds.items()}})]


# ----------------------------------------------------------------------------
# 8. the CLI's training slope with a core kept busy

_LECTURE_TRAIN = """
import torch
torch.set_num_threads({threads})
from bigram.bench import lecture
from bigram.core.data import Corpus
c = Corpus.load({data!r})
lecture.LectureRun(c.train, c.tokenizer.vocab_size).train({steps})
"""


@contextlib.contextmanager
def busy_cores(n: int):
    """n processes spinning `while True: pass`, as a user's browser or build would hold a core."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.2 if procs else 0)  # let them reach the loop
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _slope(run: Callable[[int], float], small: int, big: int, best_of: int) -> float:
    """Steps per second between two step counts: (big - small) / (best wall at big - best wall at small)."""
    walls = {small: [], big: []}
    for _ in range(best_of):  # alternate, so a slow spell hits both sizes alike
        for n in (small, big):
            walls[n].append(run(n))
    extra = min(walls[big]) - min(walls[small])
    return (big - small) / extra if extra > 0 else float("nan")  # noise larger than the steps: no figure


def _loaded_slope_measure(s: Setup) -> Measure:
    """The CLI's training rate as users run it (its default threads), while other processes hold cores.

    `bigram --backend B train --steps N` for the larger and the smaller N, whole
    processes, start-up and evaluations included; their difference is the cost
    of the extra steps alone. The lecture's loop runs the same way as a script.
    """
    cfg, data = s.cfg, s.corpus.source
    out = s.tmp / "slope"

    def lecture_run(steps: int) -> float:
        script = _LECTURE_TRAIN.format(threads=cfg.lecture_threads(), data=data, steps=steps)
        return _run_timed([sys.executable, "-c", script], cfg.threads)

    def ours(name: str) -> Callable[[], float]:
        def run_steps(steps: int) -> float:
            cmd = _bigram_cmd(cfg.threads) + ["--backend", name, "train", "--data", data, "--steps", str(steps),
                                              "--out", str(out)]
            return _run_timed(cmd, cfg.threads, cwd=s.tmp)

        return lambda: _slope(run_steps, *cfg.slope_steps["ours"], cfg.slope_best_of)

    def loaded(fn: Callable[[], float]) -> Callable[[], float]:
        def run() -> float:
            with busy_cores(cfg.slope_busy_cores):
                return fn()

        return run

    runs = {BASELINE: loaded(lambda: _slope(lecture_run, *cfg.slope_steps["lecture"], cfg.slope_best_of)),
            **{name: loaded(ours(name)) for name in s.backends}}
    return Measure("train_slope_loaded", f"CLI training steps/s with {cfg.slope_busy_cores} core(s) kept busy "
                   f"(wall time of --steps N1 minus --steps N0, best of {cfg.slope_best_of})", "steps/s", True,
                   runs, once=True, extra={"steps": cfg.slope_steps, "best_of": cfg.slope_best_of,
                                           "busy_cores": cfg.slope_busy_cores,
                                           "command": "bigram --backend B train --data CORPUS --steps N --out DIR"})


# ----------------------------------------------------------------------------
# running and reporting


def build_measures(s: Setup) -> list[Measure]:
    """The measures of the groups cfg.measures names (every group when it names none), in MEASURE_GROUPS' order."""
    cfg = s.cfg
    from bigram.core.backend import AdamWConfig
    from bigram.core.train import TrainConfig

    def encode() -> list[Measure]:
        big = s.text * max(1, math.ceil(cfg.big_corpus_mb * MB / len(s.text.encode("utf-8"))))
        return [*_encode_measures(s, "tiny_shakespeare", s.text), *_encode_measures(s, f"{cfg.big_corpus_mb}MB", big)]

    groups = {
        "train": lambda: [_train_measure(s, "train_b32", 32, 8, cfg.train_steps["b32"], "steps/s"),
                          _train_measure(s, "train_b512", 512, 256, cfg.train_steps["b512"], "tokens/s")],
        "optimum": lambda: [
            _opt_measure(s, "optimum_lecture_hparams", TrainConfig(lr_schedule="constant", optim=AdamWConfig(lr=1e-3)),
                         "the lecture's hyperparameters"),
            _opt_measure(s, "optimum_project_defaults", TrainConfig(), "the project's defaults")],
        "generate": lambda: [_gen_measure(s, n) for n in cfg.gen_tokens],
        "encode": encode,
        "count": lambda: [_count_measure(s)],
        "startup": lambda: _process_measures(s),
        "slope": lambda: [_loaded_slope_measure(s)],
    }
    return [m for name in MEASURE_GROUPS if not cfg.measures or name in cfg.measures for m in groups[name]()]


def run_bench(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict:
    """Run every measure for cfg.rounds interleaved rounds; return the JSON-able report."""
    try:
        import torch
    except ImportError:
        from bigram.core.errors import BigramError

        raise BigramError("bigram bench runs the lecture's PyTorch code as its baseline; install torch "
                          "(pip install torch)") from None

    log = log or (lambda msg: print(msg, file=sys.stderr))
    from bigram.core import threads

    t0 = time.perf_counter()
    before = threads.requested(), torch.get_num_threads()
    threads.request(cfg.threads)  # the torch models built here pick their threads as `bigram` would
    s = Setup(cfg)
    try:
        measures = build_measures(s)
        for r in range(cfg.rounds):
            for m in measures:
                if not (m.once and r > 0):
                    _run_round(s, m, r)
            log(f"round {r + 1}/{cfg.rounds} done ({time.perf_counter() - t0:.0f} s)")
    finally:
        s.close()
        threads.request(before[0])
        torch.set_num_threads(before[1])
    report = _report(cfg, s, measures)
    report["meta"]["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def _run_round(s: Setup, m: Measure, r: int) -> None:
    """One value per contestant; each in-process one runs on its own side's torch threads."""
    import torch

    t = time.perf_counter()
    order = list(m.runs.items())
    if r % 2:  # alternate who goes first: one side's garbage (the lecture's 800 MB
        order.reverse()  # encode list) must not always slow the other side's next call
    for name, fn in order:
        torch.set_num_threads(s.torch_threads(name))
        m.values.setdefault(name, []).append(fn())
    m.seconds += time.perf_counter() - t


REPORT_FORMAT = "bigram-bench"  # meta.format of a saved report; --compare also reads older reports without it
REPORT_VERSION = 2


def _report(cfg: BenchConfig, s: Setup, measures: list[Measure]) -> dict:
    out = {}
    for m in measures:
        out[m.key] = {
            "title": m.title, "unit": m.unit, "higher_is_better": m.higher_is_better,
            "median": m.medians(), "ratio": m.ratios(), "values": m.values, "bench_seconds": round(m.seconds, 2),
            **m.extra,
        }
    return {
        "meta": {
            "format": REPORT_FORMAT, "format_version": REPORT_VERSION,
            "command": bench_command(cfg), "config": _jsonable(asdict(cfg)),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine_info(), "versions": versions(s.infos), "commit": git_commit(),
            "backends": list(s.backends), "corpus": s.corpus.source, "vocab_size": s.V, "optimum": s.optimum,
        },
        "measures": out,
        "targets": check_targets(out, cfg, list(s.backends)),
    }


def bench_command(cfg: BenchConfig) -> str:
    """The `bigram bench` command line that runs this config (--compare reruns the whole saved config)."""
    opts = [("--threads", cfg.threads), ("bench", True), ("--quick", cfg.quick),
            ("--backends", ",".join(cfg.backends)), ("--measures", ",".join(cfg.measures)),
            ("--data", cfg.data), ("--rounds", cfg.rounds if cfg.rounds != (3 if cfg.quick else 5) else None)]
    return " ".join(["bigram", *(k if v is True else f"{k} {v}" for k, v in opts if v)])


def machine_info() -> dict:
    """Where the figures came from (asv's machine.json, pytest-benchmark's machine_info)."""
    uname = platform.uname()
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "machine": uname.machine,
            "processor": uname.processor or None, "node": uname.node,
            "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def versions(infos: dict) -> dict:
    """Python, the array libraries loaded (jax only if a backend imported it), bigram, and each backend's
    distribution with its version."""
    import importlib.metadata

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "jax"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", None)
    import bigram

    out["bigram"] = version("bigram") or bigram.__version__
    out["backends"] = {n: {"dist": i.dist, "version": i.version} for n, i in infos.items()}
    return out


def git_commit() -> dict | None:
    """The commit of the bigram checkout that ran, and whether it had uncommitted changes; None outside a git
    checkout of bigram (an installed wheel, no git): a site-packages inside some other repository is not ours."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return None
    sha = git("rev-parse", "HEAD")
    if sha is None:
        return None
    return {"sha": sha, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def check_targets(measures: dict, cfg: BenchConfig, backends: list[str]) -> list[dict]:
    """The issues' targets, each with the value that decides it.

    `met` is None for a target this run did not decide: every target of a
    --quick run (its sizes are too small, start-up swamps its slopes), and in
    a full run a figure it did not give (a group left out with --measures).
    """
    rows = []

    def add(key, name, value, op, threshold):
        """One target of measure `key`; none at all when this run left the measure's group out (--measures)."""
        if key not in measures:
            return
        if cfg.quick or value is None:  # quick sizes cannot decide a target; a full run must give every figure
            met = None
        elif not math.isfinite(value):
            met = False
        else:
            met = bool(value >= threshold if op == ">=" else value <= threshold)
        rows.append({"target": name, "value": value, "op": op, "threshold": threshold, "met": met})

    def get(key, kind, who):
        return measures.get(key, {}).get(kind, {}).get(who)

    def per_token(b, lo, hi):
        a, z = get(f"generate_{lo}", "median", b), get(f"generate_{hi}", "median", b)
        return None if a is None or z is None else (a / z if z else float("nan"))

    for b in backends:
        add("train_b32", f"train steps/s B=32,T=8 vs lecture ({b})", get("train_b32", "ratio", b), ">=", 15)
        add("train_b512", f"train tokens/s B=512,T=256 vs lecture ({b})", get("train_b512", "ratio", b), ">=", 50)
        add("optimum_lecture_hparams", f"time to optimum+{cfg.opt_tolerance}, lecture hparams, speed-up ({b})",
            get("optimum_lecture_hparams", "ratio", b), ">=", 15)
        add("optimum_project_defaults", f"time to optimum+{cfg.opt_tolerance}, project defaults, seconds ({b})",
            get("optimum_project_defaults", "median", b), "<=", 0.2)
    mid, lo, hi = sorted(cfg.gen_tokens)[len(cfg.gen_tokens) // 2], min(cfg.gen_tokens), max(cfg.gen_tokens)
    for b in backends:
        add(f"generate_{mid}", f"generation {mid:,} tokens vs lecture ({b})", get(f"generate_{mid}", "ratio", b),
            ">=", 40 if b == "numpy" else 20)
        add(f"generate_{hi}", f"per-token cost at {hi:,} / at {lo:,} ({b})", per_token(b, lo, hi), "<=", 1.5)
    big = f"encode_{cfg.big_corpus_mb}MB"
    add(big, f"encode {cfg.big_corpus_mb}MB vs lecture", get(big, "ratio", "bigram"), ">=", 20)
    mem, corpus_mb = get(f"encode_memory_{cfg.big_corpus_mb}MB", "median", "bigram"), measures.get(big, {}).get(
        "corpus_mb")
    add(big, f"encode {cfg.big_corpus_mb}MB peak extra memory / corpus bytes",
        None if mem is None else mem / corpus_mb, "<=", 2)
    add("startup_help", "bigram --help seconds", get("startup_help", "median", "bigram"), "<=", 0.5)
    add("train_peak_rss", "numpy training peak RSS MB", get("train_peak_rss", "median", "numpy"), "<=", 120)
    if "train_peak_rss" in measures:
        seen = measures["train_peak_rss"].get("torch_imported", [])
        rows.append({"target": "torch never imported by the numpy training run", "value": any(seen), "op": "==",
                     "threshold": False, "met": (not any(seen)) if seen else None})
    no_step = measures.get("startup_torch_no_step", {}).get("ratio", {})
    for cmd in NO_STEP_COMMANDS:
        ratio = no_step.get(f"torch {cmd}")
        add("startup_torch_no_step", f"`bigram --backend torch {cmd}` wall / `import torch` wall",
            None if ratio is None else 1 / ratio, "<=", 1.3)
    for b in backends:
        add("train_slope_loaded", f"CLI training slope with {cfg.slope_busy_cores} core(s) busy vs lecture ({b})",
            get("train_slope_loaded", "ratio", b), ">=", 15)
    return rows


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:,.1f}M"
    if a >= 1e3:
        return f"{v / 1e3:,.1f}k"
    if a >= 10:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def _threads_note(config: dict) -> str:
    if config.get("threads"):
        return f"{config['threads']} for both sides"
    return f"bigram's own default (by the work), the lecture {config.get('baseline_threads', 1)}"


def describe_run(meta: dict) -> str:
    """One line: the command, rounds, threads, versions and machine of a report (this format or an older one,
    or a tampered one: what is missing or of the wrong type is left out)."""
    def obj(x) -> dict:
        return x if isinstance(x, dict) else {}

    meta = obj(meta)
    v, mach, config, commit = (obj(meta.get("versions", meta)), obj(meta.get("machine")) or meta,
                               obj(meta.get("config")), obj(meta.get("commit")))
    from bigram.core.display import printable

    libs = "".join(f", {k} {v[k]}" for k in ("numpy", "torch", "jax") if v.get(k))
    load = mach.get("load_avg")
    load = [x for x in load if isinstance(x, (int, float))] if isinstance(load, list) else []
    sha = commit.get("sha")
    at = f"; commit {sha[:10]}{' (modified)' if commit.get('dirty') else ''}" if isinstance(sha, str) else ""
    line = (f"Command: `{meta.get('command')}` - {config.get('rounds')} interleaved rounds, medians; "
            f"torch threads {_threads_note(config)}; Python {v.get('python')}{libs}, "
            f"{mach.get('cpus')} CPUs, load average at end {', '.join(f'{x:.1f}' if abs(x) < 1e4 else f'{x:.3g}' for x in load)}{at}.")
    return printable(line)  # a tampered report's newlines or escape sequences are shown, never obeyed


def to_markdown(report: dict) -> str:
    """The report as markdown: one row per measure and contestant, then the targets."""
    lines = [
        describe_run(report["meta"]),
        "",
        "| measure | unit | lecture | bigram | which | × lecture |",
        "|---|---|---:|---:|---|---:|",
    ]
    for m in report["measures"].values():
        base = m["median"].get(BASELINE)
        for who, ratio in m["ratio"].items():
            lines.append(f"| {m['title']} | {m['unit']} | {_fmt(base)} | {_fmt(m['median'][who])} | {who} | "
                         f"{_fmt(ratio)} |")
    lines += ["", "| target | value | needed | met |", "|---|---:|---:|---|"]
    if report["meta"].get("config", {}).get("quick"):
        lines[-2:-2] = ["--quick: the values are shown, not judged (its sizes cannot decide a target); run without "
                        "--quick for that.", ""]
    for t in report["targets"]:
        met = "-" if t["met"] is None else "yes" if t["met"] else "**no**"
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['op']} {_fmt(t['threshold'])} | {met} |")
    return "\n".join(lines) + "\n"
