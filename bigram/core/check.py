"""Cross-checks: run backends from the same weights on the same batches and compare every tensor.

In the style of llm.c's test_gpt2: one reference (the NumPy backend by
default), any number of candidates, and for each tensor the largest absolute
and relative difference against a tolerance. Everything crosses the public
Model protocol, so a third-party backend is checked exactly like torch.

It checks what training really runs, not only the textbook step:
- the textbook path (forward, backward, train_step on ids), with the lr
  schedule training uses (cosine, lr -> lr/10 over the N steps) set before
  each step;
- the counts path, driven by core's own make_step exactly as `bigram train`
  drives it (CountsStream, the backend's train_step_counts with its fast
  AdamW, the schedule through set_lr);
- the dtype each backend really computes in.
Candidates are compared with the reference on both paths; each backend's
counts path is compared with its own textbook path ("paths"), which catches a
bug every backend shares (core's counts, the schedule) as well as one in a
single fast path.

The relative difference of a tensor is max|a - ref| / max|ref|: the error
measured against the tensor's own scale, so one tolerance fits a loss of 4.2
and an AdamW second moment of 1e-6 alike. A NaN or infinity where the
reference has a different value counts as an infinite difference.

Where two values disagree, each is measured against a float64 recomputation
(as PyTorch's OpInfo reference tests do): the textbook path of every backend
in the check, run in float64 from the same float32 start. When those agree
with each other, the value closer to them is the right one; when they do not,
the backends compute different things even in float64 and the report says so
rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bigram.core.backend import WEIGHT_KEY, AdamWConfig, backend_capabilities
from bigram.core.data import Batcher, Corpus, check_ids
from bigram.core.errors import BigramError
from bigram.core.fast import make_step
from bigram.core.sampling import draw_coins, init_weights, seed_streams
from bigram.core.schedule import LRSchedule

MAX_STEPS = 10_000  # `bigram check --steps`: each step's batch is drawn up front and kept
HUGE_SCALE = 1000.0  # logits of +-4000: exp() overflows in both dtypes unless softmax subtracts the row max
STATE = ("weights", "adamw.exp_avg", "adamw.exp_avg_sq", "adamw.step")
TRAJECTORY = ("loss trajectory", *STATE)
COUNTS = "counts: "  # prefix of the rows from the counts path

# Tolerances on the relative difference, per dtype and tensor. Why each:
_TOL64 = {
    # Every backend computes the same few float64 ops; they differ only in
    # summation order, so the error is a few ulps (1e-16) times a sum length.
    "logits": 1e-12,  # a row lookup: a copy, exact on any backend
    "loss": 1e-12,
    "dlogits": 1e-12,
    "dW": 1e-12,
    "loss (huge logits)": 1e-12,
    "dW (huge logits)": 1e-10,  # logits of +-4000 carry eps*4000 = 9e-13 (see float32)
    "loss trajectory": 1e-10,  # N AdamW steps; tiny differences grow a little each step
    "weights": 1e-10,
    "adamw.exp_avg": 1e-10,
    "adamw.exp_avg_sq": 1e-10,
    "adamw.step": 0.0,
    "sample ids": 0.0,  # coins are shared, probabilities agree to 1e-16: same tokens
    "sample ids (T=0.8, k=10)": 0.0,
}
_TOL32 = {
    "logits": 0.0,  # a row lookup copies float32 values exactly
    # float32 eps is 1.2e-7; a log-sum-exp over V=65 rounds in a different
    # order on each backend: a few eps. Every loss row also gets the rounding
    # of a float32 mean of B*T terms (see tolerances()).
    "loss": 1e-6,
    "dlogits": 1e-6,  # softmax - onehot per element: a few eps of the largest |dlogit|
    # dW sums about B*T/V dlogits per entry, in any order: error grows
    # like sqrt(terms) * eps, so 1e-5 leaves room for --batch-size 64+.
    "dW": 1e-5,
    "loss (huge logits)": 1e-6,
    # Logits of +-4000 hold only eps*4000 = 5e-4 absolute precision in float32;
    # a softmax that does not subtract the max exactly (a logsumexp, say) puts
    # that error into each exponent. The bug this probe is for (overflow)
    # gives inf/NaN, far past any tolerance.
    "dW (huge logits)": 1e-3,
    "loss trajectory": 1e-5,  # each step's loss: the loss above, on weights that drifted by rounding
    # After N AdamW steps the weights carry N updates of lr * m/sqrt(v);
    # where a gradient entry is near 0, m/sqrt(v) turns float32 rounding of
    # g into a visible change, so the state gets 1e-4. (A dropped bias
    # correction moves the weights by 0.1 of their scale in 10 steps; weight
    # decay dropped from a fast AdamW, lr*wd = 1e-3 of each weight a step,
    # moves them by 5e-3 of their scale over the 10-step cosine schedule.)
    "weights": 1e-4,
    "adamw.exp_avg": 1e-4,
    "adamw.exp_avg_sq": 1e-4,
    "adamw.step": 0.0,
    "sample ids": 0.0,  # both sample from the same float32 table, widened to float64
    "sample ids (T=0.8, k=10)": 0.0,
}
# The counts path computes the same loss from the batch's counts instead of its
# positions: the same values, summed in another order, so the trajectory rows
# keep their tolerances, whether a counts run is compared with another
# backend's counts run or with its own textbook run. The dtype row is exact.
TOLERANCES = {
    dtype: {**tol, **{COUNTS + k: tol[k] for k in TRAJECTORY}}
    for dtype, tol in (("float64", _TOL64), ("float32", _TOL32))
}
# A backend's own paths: its counts run (rows named like the textbook ones) against its textbook run.
PATH_TOLERANCES = {dtype: {"dtype": 0.0, **{k: tol[k] for k in TRAJECTORY}} for dtype, tol in
                   (("float64", _TOL64), ("float32", _TOL32))}


EPS32 = float(np.finfo(np.float32).eps)
LOSS_ROWS = ("loss", "loss (huge logits)", "loss trajectory", COUNTS + "loss trajectory")


def fmt_tol(tol: float) -> str:
    """A tolerance as it is, to 3 digits: 1.62e-05, 1e-04, 0.

    One digit (the table's old `:.0e`) showed 1.62e-05 as 2e-05, so a 1.8e-05 difference would have read FAIL
    beside a tolerance above it.
    """
    if not tol:
        return "0"
    mantissa, exponent = f"{tol:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def tolerances(table: dict[str, float], cfg: "CheckConfig") -> dict[str, float]:
    """`table` (TOLERANCES or PATH_TOLERANCES for cfg.dtype) with float32's summation allowance on the losses.

    A loss is a float32 mean of N = B*T terms (the counts form sums at most N
    nonzero cells), and each library sums in its own order: NumPy pairwise,
    torch in cascade, XLA on CPU largely in sequence (60 eps off at 63x63
    for equal terms). Any order is within (N-1)*u of the exact sum relative
    to sum|terms|, u = eps/2 (Higham, Accuracy and Stability, 4.2), so the loss
    rows get that on top: 1.5e-5 at 32x8. A wrong loss is off by far more.
    """
    tol = dict(table)
    if cfg.dtype == "float32":
        mean_err = (cfg.batch_size * cfg.block_size - 1) * EPS32 / 2
        for name in LOSS_ROWS:
            if name in tol:
                tol[name] += mean_err
    return tol


@dataclass
class CheckConfig:
    dtype: str = "float64"
    steps: int = 10
    batch_size: int = 32
    block_size: int = 8
    seed: int = 1337
    optim: AdamWConfig = field(default_factory=AdamWConfig)
    sample_tokens: int = 256
    schedule: str = "cosine"  # "constant" when a backend in the check has no set_lr

    def lr_schedule(self) -> LRSchedule:
        """Training's default schedule over the check's N steps: cosine from lr to lr/10."""
        from bigram.core.train import TrainConfig

        return TrainConfig(steps=self.steps, optim=self.optim, lr_schedule=self.schedule).schedule(self.steps)


@dataclass
class Row:
    tensor: str
    max_abs: float
    max_rel: float
    tol: float
    note: str = ""  # what a non-numeric row saw (the dtype row), or who is wrong when a row fails
    closer: str | None = None  # of the two values, the one nearer the float64 recomputation
    errors: dict = field(default_factory=dict)  # each value's relative difference from that recomputation

    @property
    def ok(self) -> bool:
        return bool(self.max_rel <= self.tol)

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "max_abs_diff": self.max_abs, "max_rel_diff": self.max_rel,
                "tolerance": self.tol, "ok": self.ok, "note": self.note, "closer_to_float64": self.closer,
                "float64_rel_errors": self.errors}


@dataclass
class Comparison:
    """One candidate backend against the reference, or (kind "paths") a backend's counts path against its textbook path."""

    backend: str
    device: str
    reference: str
    rows: list[Row]
    kind: str = "backends"
    error: str | None = None  # the backend raised (or returned what cannot be compared): it fails

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.rows)

    @property
    def title(self) -> str:
        if self.kind == "paths":
            return f"{self.backend} ({self.device}): counts path vs textbook path, and dtype"
        return f"{self.backend} ({self.device}) vs {self.reference}"

    def worst(self) -> Row:
        """The row closest to (or furthest past) its tolerance."""
        return max(self.rows, key=lambda r: r.max_rel / r.tol if r.tol else (np.inf if r.max_rel else 0.0))

    def to_json(self) -> dict:
        return {"backend": self.backend, "device": self.device, "reference": self.reference, "kind": self.kind,
                "ok": self.ok, "error": self.error, "rows": [r.to_json() for r in self.rows]}


@dataclass
class CheckReport:
    """What `bigram check` prints and `bigram.check` returns.

    Every candidate backend against the reference (`comparisons`), and every
    backend, the reference included, its counts path against its textbook
    path and the dtype it computes in (`paths`).
    """

    reference: str
    config: CheckConfig  # as run: its schedule is "constant" when a backend in the check has no set_lr
    data: str  # the corpus the batches came from
    comparisons: list[Comparison]
    paths: list[Comparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons + self.paths)

    @property
    def backends(self) -> list[str]:
        return [self.reference] + [c.backend for c in self.comparisons]

    @property
    def schedule(self) -> str:
        return self.config.schedule

    def summary(self) -> str:
        c, s = self.config, self.config.lr_schedule()
        lrs = f"lr {s.lr:g}" if s.constant else f"cosine lr {s.lr:g} -> {s.min_lr:g}"
        return (f"bigram check: {c.dtype}, {c.steps} AdamW steps ({lrs}) on the textbook and the counts path, "
                f"batch {c.batch_size}x{c.block_size}, seed {c.seed}, reference {self.reference}, data {self.data}")

    def verdict(self, comp: Comparison) -> str:
        """One line per comparison: OK or FAIL, the largest differences, the row closest to its tolerance."""
        who = comp.title if comp.kind == "paths" else f"{comp.backend} vs {comp.reference}"
        if comp.error is not None:
            return f"{who}: FAIL (the backend failed: {comp.error})"
        w = comp.worst()
        big_abs, big_rel = max(comp.rows, key=lambda r: r.max_abs), max(comp.rows, key=lambda r: r.max_rel)
        verdict = "OK" if comp.ok else f"FAIL ({sum(not r.ok for r in comp.rows)} tensor(s) out of tolerance)"
        return (f"{who}: {verdict}; largest abs diff {big_abs.max_abs:.3g} ({big_abs.tensor}), largest rel "
                f"diff {big_rel.max_rel:.3g} ({big_rel.tensor}); closest to tolerance: {w.tensor} "
                f"({w.max_rel:.3g} vs {fmt_tol(w.tol)})")

    def notes(self, comp: Comparison) -> list[str]:
        """The dtype each backend computes in, and for each failing row who is wrong."""
        return [f"{r.tensor}: {r.note}" for r in comp.rows if r.note and (not r.ok or r.tensor == "dtype")]

    def to_json(self) -> dict:
        c = self.config
        return {"ok": self.ok, "reference": self.reference, "dtype": c.dtype, "steps": c.steps,
                "lr_schedule": c.schedule, "data": self.data, "batch_size": c.batch_size, "block_size": c.block_size,
                "seed": c.seed, "comparisons": [comp.to_json() for comp in self.comparisons],
                "paths": [comp.to_json() for comp in self.paths]}

    def __str__(self) -> str:
        lines = [self.summary()]
        for comp in self.comparisons + self.paths:
            lines.append(comp.title + ":")
            lines += [f"  {r.tensor:<26} abs {r.max_abs:<10.3g} rel {r.max_rel:<10.3g} tol {r.tol:<8.3g} "
                      f"{'OK' if r.ok else 'FAIL'}" + (f"  closer to float64: {r.closer}" if r.closer else "")
                      for r in comp.rows]
            lines += ["  " + n for n in self.notes(comp)]
            lines.append(self.verdict(comp))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CheckReport(ok={self.ok}, backends={self.backends}, dtype={self.config.dtype!r})"

    def _repr_html_(self) -> str:
        from bigram.core.display import html_table

        rows = [[comp.title, r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", fmt_tol(r.tol), "OK" if r.ok else "FAIL",
                 r.closer or ""] for comp in self.comparisons + self.paths for r in comp.rows]
        return html_table(["comparison", "tensor", "max abs diff", "max rel diff", "tolerance", "", "closer to float64"],
                          rows, caption=self.summary() + (": OK" if self.ok else ": FAIL"))


# ----------------------------------------------------------------------------
# differences


def diff(a, ref) -> tuple[float, float]:
    """(max abs, max rel) difference of a against ref; inf for a shape or NaN mismatch."""
    a, ref = np.asarray(a, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return np.inf, np.inf
    if a.size == 0:
        return 0.0, 0.0
    d = np.where(a == ref, 0.0, np.abs(a - ref))  # equal infinities count as equal
    max_abs = float(np.max(np.where(np.isnan(d), np.inf, d)))
    scale = float(np.max(np.abs(ref))) if np.all(np.isfinite(ref)) else np.inf
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return max_abs, (np.inf if not np.isfinite(max_abs) else max_rel)


# ----------------------------------------------------------------------------
# running one backend


def batches(corpus: Corpus, cfg: CheckConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """cfg.steps training batches (B,T), drawn once so every backend sees the same ones."""
    b = _batcher(corpus, cfg)
    out = [b.get_batch() for _ in range(max(cfg.steps, 1))]
    for ids in (ids for batch in out for ids in batch):  # from a damaged token file: one line, not an IndexError
        check_ids(ids, corpus.tokenizer.vocab_size)
    return out


def _batcher(corpus: Corpus, cfg: CheckConfig) -> Batcher:
    return Batcher(corpus.train, cfg.batch_size, cfg.block_size, seed_streams(cfg.seed)["train"])


def backend_grads(model, idx, targets) -> dict:
    """model.grads() where the backend has it; else loss_and_grad() (no dlogits)."""
    if hasattr(model, "grads"):
        return model.grads(idx, targets)
    loss, dW = model.loss_and_grad(idx, targets)
    return {"loss": loss, "dW": dW}


def _state(model, prefix: str = "") -> dict:
    state = model.get_state()
    return {prefix + k: state[key] for k, key in zip(STATE, (WEIGHT_KEY, *STATE[1:]))}


def probe(model, make, data: list, cfg: CheckConfig, samples: bool = True) -> dict:
    """The forward and backward on the first batch, at huge logits too, and sampled ids."""
    x, y = data[0]  # (B,T), (B,T)
    logits, loss = model.forward(x, y)  # (B,T,V), float
    out = {"logits": logits, "loss": loss}
    g = backend_grads(model, x, y)
    out.update({k: g[k] for k in ("dlogits", "dW") if k in g})
    huge = backend_grads(make(HUGE_SCALE), x, y)
    out["loss (huge logits)"], out["dW (huge logits)"] = huge["loss"], huge["dW"]
    if not samples:
        return out
    idx = np.asarray(x[:4, :1], dtype=np.int64)  # (4,1) prompts
    coins = draw_coins(cfg.seed, len(idx), cfg.sample_tokens)  # (4,N)
    out["sample ids"] = model.generate(idx, coins)
    out["sample ids (T=0.8, k=10)"] = model.generate(idx, coins, temperature=0.8, top_k=10)
    return out


def textbook_run(model, data: list, schedule: LRSchedule) -> dict:
    """N train_step()s on the shared batches, the lr set from the schedule before each (as make_step would)."""
    losses = []
    for t, (x, y) in enumerate(data):
        if getattr(model, "set_lr", None) is not None:
            model.set_lr(schedule(t))
        losses.append(model.train_step(x, y))
    return {"loss trajectory": np.array(losses), **_state(model)}


def counts_run(model, corpus: Corpus, cfg: CheckConfig, schedule: LRSchedule) -> dict:
    """N steps the way `bigram train` takes them: core's make_step, counts method, the same schedule."""
    step = make_step(model, _batcher(corpus, cfg), "counts", schedule, 0)
    losses = np.array([step() for _ in range(cfg.steps)])
    return {COUNTS + "loss trajectory": losses, **_state(model, COUNTS)}


def run_backend(cls, weights: np.ndarray, data: list, corpus: Corpus, cfg: CheckConfig, device: str = "auto",
                paths: bool = True) -> dict:
    """Every tensor the check compares, from one backend, as NumPy arrays.

    paths=False (a float64 recomputation): the forward/backward probes and the textbook run only.
    """
    make = lambda scale=1.0: cls.create(weights * scale, device=device, dtype=cfg.dtype, optim=cfg.optim)  # noqa: E731
    model = make()
    schedule = cfg.lr_schedule()
    out = probe(model, make, data, cfg, samples=paths)
    out.update(textbook_run(model, data[: cfg.steps], schedule))
    out["device"] = getattr(model, "device", device)
    out["models"] = [model]
    if paths:
        counts_model = make()
        out.update(counts_run(counts_model, corpus, cfg, schedule))
        out["models"].append(counts_model)
    return out


# ----------------------------------------------------------------------------
# comparing


OPTIONAL = {"dlogits"}  # only from backends with a grads() method
EXACT = {"adamw.step", "dtype", "sample ids", "sample ids (T=0.8, k=10)"}  # integer rows: no float64 verdict


def compare(got: dict, ref: dict, tols: dict[str, float]) -> list[Row]:
    """One row per tensor both produced; a required tensor the candidate lacks fails."""
    rows = []
    for name, tol in tols.items():
        if name not in ref or (name in OPTIONAL and name not in got):
            continue
        abs_, rel = diff(got[name], ref[name]) if name in got else (np.inf, np.inf)
        rows.append(Row(name, abs_, rel, tol))
    return rows


def compare_paths(out: dict, cfg: CheckConfig) -> list[Row]:
    """A backend's counts path against its own textbook path, and the dtype it computes in."""
    rows = [dtype_row(out, cfg.dtype)]
    tols = tolerances(PATH_TOLERANCES[cfg.dtype], cfg)
    for name in TRAJECTORY:
        abs_, rel = diff(out[COUNTS + name], out[name])
        rows.append(Row(name, abs_, rel, tols[name]))
    return rows


FLOAT_ARRAYS = ("logits", "dlogits", "dW", "dW (huge logits)", "weights", "adamw.exp_avg", "adamw.exp_avg_sq")


def dtype_row(out: dict, dtype: str) -> Row:
    """Does the backend compute in the dtype asked for? Its models say so, and so must what they return.

    Every float array that crosses the boundary must have that dtype; in
    float32 the losses of the forward probes must be float32 numbers too
    (a value no float32 can hold was computed in float64).
    """
    wrong = [f"model.dtype {m.dtype}" for m in out["models"] if getattr(m, "dtype", dtype) != dtype]
    for name in FLOAT_ARRAYS + tuple(COUNTS + k for k in STATE[:3]):
        if name in out and np.asarray(out[name]).dtype != np.dtype(dtype):
            wrong.append(f"{name} {np.asarray(out[name]).dtype}")
    if dtype == "float32":
        wrong += [f"{k} {out[k]!r} (not a float32 value)" for k in ("loss", "loss (huge logits)")
                  if float(np.float32(out[k])) != out[k]]
    note = f"{dtype} where asked" if not wrong else f"not {dtype}: " + ", ".join(wrong)
    return Row("dtype", 0.0 if not wrong else np.inf, 0.0 if not wrong else np.inf, 0.0, note=note)


def _base(name: str) -> str:
    """The textbook tensor a row's values estimate: 'counts: weights' -> 'weights'."""
    return name[len(COUNTS):] if name.startswith(COUNTS) else name


def judge(row: Row, values: dict, f64: dict[str, dict]) -> None:
    """For a failing row: which of its two values is nearer the float64 recomputation (set row.closer, row.note).

    values: {label: value} for the two values the row compared. f64: the
    float64 textbook results of every backend in the check; they are the
    recomputation only if they agree with each other within float64 tolerance.
    """
    key = _base(row.tensor)
    if row.ok or row.tensor in EXACT or not f64 or any(v is None for v in values.values()):
        return
    runs = [r[key] for r in f64.values() if key in r]
    if not runs:
        return
    oracle = runs[0]
    spread = max(diff(r, oracle)[1] for r in runs)
    if spread > _TOL64[key]:
        row.note = (f"the float64 textbook runs disagree too (rel {spread:.3g}): the backends compute "
                    "different things, not a rounding difference; tests/test_oracles.py says which is right")
        return
    row.errors = {label: diff(v, oracle)[1] for label, v in values.items()}
    (best, e_best), (worst, e_worst) = sorted(row.errors.items(), key=lambda kv: kv[1])
    row.closer = best
    row.note = (f"{worst} is off: rel {e_worst:.3g} from the float64 recomputation, against {e_best:.3g} for {best}"
                if e_worst > e_best else "both are equally far from the float64 recomputation")


def run_check(backends: list[tuple[str, type]], corpus: Corpus, cfg: CheckConfig,
              devices: dict[str, str] | None = None) -> CheckReport:
    """Compare backends[1:] against backends[0] from the same weights and batches, and each backend's two paths.

    A candidate that raises, or returns what cannot be compared, FAILs with the
    reason instead of ending the check; a reference that fails is a one-line error.
    """
    devices = devices or {}
    if any("set_lr" not in backend_capabilities(cls) for _, cls in backends):
        cfg = CheckConfig(**{**cfg.__dict__, "schedule": "constant"})  # a backend without set_lr cannot follow one
    weights = init_weights(corpus.tokenizer.vocab_size, cfg.seed)  # (V,V) float32: every run starts from these
    data = batches(corpus, cfg)
    (ref_name, _), *others = backends
    runs, f64, errors = {}, {}, {}
    for name, cls in backends:
        try:
            runs[name], f64[name] = _runs(cls, weights, data, corpus, cfg, devices.get(name, "auto"))
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - third-party code: even its sys.exit() is a FAIL, not the end
            if name == ref_name:
                _reference_failed(ref_name, e)
            errors[name] = f"{type(e).__name__}: {e}"
    f64 = {name: r for name, r in f64.items() if r is not None and name in runs}
    comparisons = [_compare(name, runs, ref_name, f64, cfg, devices, errors) for name, _ in others]
    paths = [_paths(name, runs, f64, cfg) for name, _ in backends if name in runs]
    return CheckReport(ref_name, cfg, corpus.source, comparisons, paths)


def _runs(cls, weights, data, corpus, cfg: CheckConfig, device: str) -> tuple[dict, dict | None]:
    """One backend's runs in the check's dtype, and its float64 recomputation (None if it has no float64)."""
    run = run_backend(cls, weights, data, corpus, cfg, device)
    if cfg.dtype == "float64":
        return run, run
    if "float64" not in backend_capabilities(cls):
        return run, None
    return run, run_backend(cls, weights, data, corpus, CheckConfig(**{**cfg.__dict__, "dtype": "float64"}), device,
                            paths=False)


def _reference_failed(ref_name: str, e: BaseException):
    if isinstance(e, BigramError):
        raise e
    raise BigramError(f"the reference backend {ref_name!r} failed ({type(e).__name__}: {e}); choose another "
                      "reference: the first of --backends") from None


def _compare(name: str, runs: dict, ref_name: str, f64: dict, cfg: CheckConfig, devices: dict,
             errors: dict) -> Comparison:
    """One candidate against the reference, each failing row judged against the float64 recomputation."""
    if name in errors:
        return Comparison(name, devices.get(name, "auto"), ref_name, [], error=errors[name])
    got, ref = runs[name], runs[ref_name]
    try:
        rows = compare(got, ref, tolerances(TOLERANCES[cfg.dtype], cfg))
        for row in rows:
            judge(row, {name: got.get(row.tensor), ref_name: ref[row.tensor]}, f64)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - what it returned cannot be compared (a string for logits, say)
        return Comparison(name, str(got["device"]), ref_name, [], error=f"{type(e).__name__}: {e}")
    return Comparison(name, str(got["device"]), ref_name, rows)


def _paths(name: str, runs: dict, f64: dict, cfg: CheckConfig) -> Comparison:
    """A backend's counts path against its textbook path, and its dtype."""
    out = runs[name]
    try:
        rows = compare_paths(out, cfg)
        for row in rows:
            judge(row, {"counts path": out.get(COUNTS + row.tensor), "textbook path": out.get(row.tensor)}, f64)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001
        return Comparison(name, str(out.get("device")), name, [], kind="paths", error=f"{type(e).__name__}: {e}")
    return Comparison(name, str(out["device"]), name, rows, kind="paths")
