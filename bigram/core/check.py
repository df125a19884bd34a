"""Cross-checks: run backends from the same weights on the same batches and compare every tensor.

In the style of llm.c's test_gpt2: one reference (the NumPy backend by
default), any number of candidates, and for each tensor the largest absolute
and relative difference against a tolerance. Everything crosses the public
Model protocol, so a third-party backend is checked exactly like torch.

The relative difference of a tensor is max|a - ref| / max|ref|: the error
measured against the tensor's own scale, so one tolerance fits a loss of 4.2
and an AdamW second moment of 1e-6 alike. A NaN or infinity where the
reference has a different value counts as an infinite difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bigram.core.backend import WEIGHT_KEY, AdamWConfig
from bigram.core.data import Batcher, Corpus, check_ids
from bigram.core.errors import BigramError
from bigram.core.sampling import draw_coins, init_weights, seed_streams

MAX_STEPS = 10_000  # `bigram check --steps`: each step's batch is drawn up front and kept
HUGE_SCALE = 1000.0  # logits of +-4000: exp() overflows in both dtypes unless softmax subtracts the row max

# Tolerances on the relative difference, per dtype and tensor. Why each:
TOLERANCES = {
    "float64": {
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
    },
    "float32": {
        "logits": 0.0,  # a row lookup copies float32 values exactly
        # float32 eps is 1.2e-7; a log-sum-exp over V=65 and a mean over B*T
        # rounds in a different order on each backend: a few eps.
        "loss": 1e-6,
        "dlogits": 1e-6,  # softmax - onehot per element: a few eps of the largest |dlogit|
        # dW sums B*T/V dlogits per row (scatter-add in any order): more roundings.
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
        # correction moves the weights by 0.1 of their scale in 10 steps.)
        "weights": 1e-4,
        "adamw.exp_avg": 1e-4,
        "adamw.exp_avg_sq": 1e-4,
        "adamw.step": 0.0,
        "sample ids": 0.0,  # both sample from the same float32 table, widened to float64
        "sample ids (T=0.8, k=10)": 0.0,
    },
}


@dataclass
class CheckConfig:
    dtype: str = "float64"
    steps: int = 10
    batch_size: int = 32
    block_size: int = 8
    seed: int = 1337
    optim: AdamWConfig = field(default_factory=AdamWConfig)
    sample_tokens: int = 256


@dataclass
class Row:
    tensor: str
    max_abs: float
    max_rel: float
    tol: float

    @property
    def ok(self) -> bool:
        return bool(self.max_rel <= self.tol)

    def to_json(self) -> dict:
        return {"tensor": self.tensor, "max_abs_diff": self.max_abs, "max_rel_diff": self.max_rel,
                "tolerance": self.tol, "ok": self.ok}


@dataclass
class Comparison:
    """One candidate backend against the reference."""

    backend: str
    device: str
    reference: str
    rows: list[Row]
    error: str | None = None  # the backend raised (or returned what cannot be compared): it fails

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.rows)

    def worst(self) -> Row:
        """The row closest to (or furthest past) its tolerance."""
        return max(self.rows, key=lambda r: r.max_rel / r.tol if r.tol else (np.inf if r.max_rel else 0.0))

    def to_json(self) -> dict:
        return {"backend": self.backend, "device": self.device, "reference": self.reference, "ok": self.ok,
                "error": self.error, "rows": [r.to_json() for r in self.rows]}


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
    b = Batcher(corpus.train, cfg.batch_size, cfg.block_size, seed_streams(cfg.seed)["train"])
    out = [b.get_batch() for _ in range(max(cfg.steps, 1))]
    for ids in (ids for batch in out for ids in batch):  # from a damaged token file: one line, not an IndexError
        check_ids(ids, corpus.tokenizer.vocab_size)
    return out


def backend_grads(model, idx, targets) -> dict:
    """model.grads() where the backend has it; else loss_and_grad() (no dlogits)."""
    if hasattr(model, "grads"):
        return model.grads(idx, targets)
    loss, dW = model.loss_and_grad(idx, targets)
    return {"loss": loss, "dW": dW}


def run_backend(cls, weights: np.ndarray, data: list, cfg: CheckConfig, device: str = "auto") -> dict:
    """Every tensor the check compares, from one backend, as NumPy arrays."""
    make = lambda w: cls.create(w, device=device, dtype=cfg.dtype, optim=cfg.optim)  # noqa: E731
    x, y = data[0]  # (B,T), (B,T)
    model = make(weights)
    logits, loss = model.forward(x, y)  # (B,T,V), float
    out = {"logits": logits, "loss": loss}
    g = backend_grads(model, x, y)
    out.update({k: g[k] for k in ("dlogits", "dW") if k in g})
    huge = backend_grads(make(weights * HUGE_SCALE), x, y)
    out["loss (huge logits)"], out["dW (huge logits)"] = huge["loss"], huge["dW"]
    idx = np.asarray(x[:4, :1], dtype=np.int64)  # (4,1) prompts
    coins = draw_coins(cfg.seed, len(idx), cfg.sample_tokens)  # (4,N)
    out["sample ids"] = model.generate(idx, coins)
    out["sample ids (T=0.8, k=10)"] = model.generate(idx, coins, temperature=0.8, top_k=10)
    out["loss trajectory"] = np.array([model.train_step(xb, yb) for xb, yb in data[: cfg.steps]])
    state = model.get_state()
    out["weights"] = state[WEIGHT_KEY]
    out.update({k: state[k] for k in ("adamw.exp_avg", "adamw.exp_avg_sq", "adamw.step")})
    out["device"] = getattr(model, "device", device)
    return out


OPTIONAL = {"dlogits"}  # only from backends with a grads() method


def compare(got: dict, ref: dict, dtype: str) -> list[Row]:
    """One row per tensor both produced; a required tensor the candidate lacks fails."""
    rows = []
    for name, tol in TOLERANCES[dtype].items():
        if name not in ref or (name in OPTIONAL and name not in got):
            continue
        abs_, rel = diff(got[name], ref[name]) if name in got else (np.inf, np.inf)
        rows.append(Row(name, abs_, rel, tol))
    return rows


def run_check(backends: list[tuple[str, type]], corpus: Corpus, cfg: CheckConfig,
              devices: dict[str, str] | None = None) -> list[Comparison]:
    """Compare backends[1:] against backends[0] from the same weights and batches."""
    devices = devices or {}
    weights = init_weights(corpus.tokenizer.vocab_size, cfg.seed).astype(cfg.dtype)  # (V,V)
    data = batches(corpus, cfg)
    (ref_name, ref_cls), *others = backends
    try:
        ref = run_backend(ref_cls, weights, data, cfg, devices.get(ref_name, "auto"))
    except (KeyboardInterrupt, BigramError):
        raise
    except BaseException as e:  # noqa: BLE001 - nothing can be compared against a reference that fails
        raise BigramError(f"the reference backend {ref_name!r} failed ({type(e).__name__}: {e}); choose another "
                          "reference: the first of --backends") from None
    return [compare_backend(name, cls, ref_name, ref, weights, data, cfg, devices.get(name, "auto"))
            for name, cls in others]


def compare_backend(name: str, cls, ref_name: str, ref: dict, weights: np.ndarray, data: list, cfg: CheckConfig,
                    device: str) -> Comparison:
    """One candidate against the reference; a candidate that raises, or returns what cannot be
    compared (create() giving None, a string for logits), FAILs with the reason instead of ending the check."""
    try:
        got = run_backend(cls, weights, data, cfg, device)
        return Comparison(name, str(got["device"]), ref_name, compare(got, ref, cfg.dtype))
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - third-party code: even its sys.exit() is a FAIL, not the end
        return Comparison(name, device, ref_name, [], error=f"{type(e).__name__}: {e}")


@dataclass
class CheckReport:
    """Every candidate backend against the reference: what `bigram check` prints and `bigram.check` returns."""

    reference: str
    config: CheckConfig
    data: str  # the corpus the batches came from
    comparisons: list[Comparison]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons)

    @property
    def backends(self) -> list[str]:
        return [self.reference] + [c.backend for c in self.comparisons]

    def summary(self) -> str:
        c = self.config
        return (f"bigram check: {c.dtype}, {c.steps} AdamW steps (lr {c.optim.lr:g}), batch {c.batch_size}x"
                f"{c.block_size}, seed {c.seed}, reference {self.reference}, data {self.data}")

    def verdict(self, comp: Comparison) -> str:
        """One line per candidate: OK or FAIL, the largest differences, the row closest to its tolerance."""
        if comp.error is not None:
            return f"{comp.backend} vs {comp.reference}: FAIL (the backend failed: {comp.error})"
        w = comp.worst()
        big_abs, big_rel = max(comp.rows, key=lambda r: r.max_abs), max(comp.rows, key=lambda r: r.max_rel)
        verdict = "OK" if comp.ok else f"FAIL ({sum(not r.ok for r in comp.rows)} tensor(s) out of tolerance)"
        return (f"{comp.backend} vs {comp.reference}: {verdict}; largest abs diff {big_abs.max_abs:.3g} "
                f"({big_abs.tensor}), largest rel diff {big_rel.max_rel:.3g} ({big_rel.tensor}); "
                f"closest to tolerance: {w.tensor} ({w.max_rel:.3g} vs {w.tol:g})")

    def to_json(self) -> dict:
        c = self.config
        return {"ok": self.ok, "reference": self.reference, "dtype": c.dtype, "steps": c.steps, "data": self.data,
                "batch_size": c.batch_size, "block_size": c.block_size, "seed": c.seed,
                "comparisons": [comp.to_json() for comp in self.comparisons]}

    def __str__(self) -> str:
        lines = [self.summary()]
        for comp in self.comparisons:
            lines.append(f"{comp.backend} ({comp.device}) vs {comp.reference}:")
            lines += [f"  {r.tensor:<26} abs {r.max_abs:<10.3g} rel {r.max_rel:<10.3g} tol {r.tol:<8g} "
                      f"{'OK' if r.ok else 'FAIL'}" for r in comp.rows]
            lines.append(self.verdict(comp))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CheckReport(ok={self.ok}, backends={self.backends}, dtype={self.config.dtype!r})"

    def _repr_html_(self) -> str:
        from bigram.core.display import html_table

        rows = [[comp.backend, r.tensor, f"{r.max_abs:.3g}", f"{r.max_rel:.3g}", f"{r.tol:g}", "OK" if r.ok else "FAIL"]
                for comp in self.comparisons for r in comp.rows]
        return html_table(["backend", "tensor", "max abs diff", "max rel diff", "tolerance", ""], rows,
                          caption=self.summary() + (": OK" if self.ok else ": FAIL"))
