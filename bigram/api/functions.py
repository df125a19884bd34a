"""What `import bigram` offers as functions: train, fit, load, check, explain, vocab, backends.

Each is what the CLI command of the same name runs; the CLI only parses
options and prints. Defaults are the CLI's, so the same call gives the same
numbers: `bigram.train(corpus, backend="numpy")` ends at exactly the losses of
`bigram --backend numpy train`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bigram.api.model import Model
from bigram.api.tables import Vocab
from bigram.core.backend import AdamWConfig
from bigram.core.data import Corpus
from bigram.core.defaults import (
    DEFAULT_BATCH_SIZE, DEFAULT_BLOCK_SIZE, DEFAULT_EVAL_INTERVAL, DEFAULT_LR, DEFAULT_LR_SCHEDULE, DEFAULT_METHOD,
    DEFAULT_SEED, DEFAULT_SMOOTHING, DEFAULT_STEPS,
)
from bigram.core.check import CheckReport
from bigram.core.errors import BigramError
from bigram.core.explain import Explanation

CountFn = Callable[[np.ndarray, int], np.ndarray]  # bigram counts of a split: one process, or all-reduced

DEFAULT_BACKEND = "torch"  # the CLI's default too; $BIGRAM_BACKEND overrides both
SAMPLE_INTERVAL_TOKENS = 100  # the short samples of sample_interval


def default_backend() -> str:
    """$BIGRAM_BACKEND when set, else torch."""
    return os.environ.get("BIGRAM_BACKEND") or DEFAULT_BACKEND


def resolve_backend(backend=None) -> tuple[str, type]:
    """(name, backend class) for a name from `bigram backends` (None: the default), or a backend class itself."""
    if backend is None or isinstance(backend, str):
        from bigram.core.plugins import load_backends, report_errors

        reg = load_backends()
        info = reg.get(backend or default_backend())  # a one-line error listing the installed ones
        report_errors(reg)
        return info.name, info.cls
    if hasattr(backend, "cls") and hasattr(backend, "name"):  # a plugin registry entry (BackendInfo)
        return backend.name, backend.cls
    if hasattr(backend, "create"):
        return getattr(backend, "name", type(backend).__name__), backend
    raise BigramError(f"backend must be a name from `bigram backends` or a backend class, got {backend!r}")


def as_corpus(corpus: Corpus | str | Path | None, *, val_fraction: float | None = None,
              val_data: str | Path | None = None, tokenizer: str | None = None) -> Corpus:
    """A Corpus as given, or loaded from a path (None: Tiny Shakespeare, downloaded once and cached).

    tokenizer: "char" (one id per distinct character of the text, the default) or "byte" (V = 256).
    A char vocabulary is built from the text; a fixed one (byte) is handed to the loader. A
    prepared directory keeps the tokenizer it was prepared with: asking for another is an
    error, never a silent re-tokenization.
    """
    if isinstance(corpus, Corpus):
        if val_fraction is not None or val_data is not None or tokenizer is not None:
            raise BigramError("this Corpus is already tokenized and split; pass tokenizer, val_fraction or "
                              "val_data to bigram.Corpus.load (or Corpus.from_text) instead")
        return corpus
    from bigram.core.tokenizer import TOKENIZERS

    if tokenizer is not None and tokenizer not in TOKENIZERS:
        raise BigramError(f"unknown --tokenizer {tokenizer!r}; use one of {', '.join(TOKENIZERS)}")
    cls = TOKENIZERS.get(tokenizer)
    fixed = cls() if cls is not None and cls.fixed_vocabulary else None
    loaded = Corpus.load(corpus, tokenizer=fixed, val_fraction=val_fraction, val_data=val_data)
    got = getattr(loaded.tokenizer, "kind", None)
    if tokenizer is not None and got != tokenizer:
        raise BigramError(f"{loaded.source} was prepared with the {got} tokenizer, not {tokenizer}; drop --tokenizer, "
                          f"or prepare it again with `bigram data prepare FILE --out DIR --tokenizer {tokenizer}`")
    return loaded


def _say(log: Callable[[str], None] | None) -> Callable[[str], None]:
    return log if log is not None else (lambda msg: None)


def train(
    corpus: Corpus | str | Path | None = None,
    backend: str | type | None = None,
    steps: int = DEFAULT_STEPS,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    lr: float = DEFAULT_LR,
    lr_schedule: str = DEFAULT_LR_SCHEDULE,
    min_lr: float | None = None,
    decay_steps: int | None = None,
    weight_decay: float = AdamWConfig.weight_decay,
    seed: int = DEFAULT_SEED,
    eval_interval: int = DEFAULT_EVAL_INTERVAL,
    eval_batches: int | None = None,
    method: str = DEFAULT_METHOD,
    dtype: str = "float32",
    device: str = "auto",
    val_fraction: float | None = None,
    val_data: str | Path | None = None,
    tokenizer: str | None = None,
    out: str | Path | None = None,
    save_interval: int | None = None,
    sample_interval: int | None = None,
    log: Callable[[str], None] | None = print,
    progress: bool = True,
    distributed: bool = False,
) -> Model:
    """Train a bigram model from the seeded N(0,1) table; the same run as `bigram train`.

    corpus: a Corpus, a text file or prepared directory, or None for Tiny Shakespeare.
    backend: "numpy", "torch" or any installed plugin (default: $BIGRAM_BACKEND, else torch).
    The losses logged every `eval_interval` steps and recorded on the model are exact
    (over every position of each split) unless `eval_batches` asks for the lecture's
    estimate over that many random batches. `out` also writes a checkpoint there
    (and `save_interval` every N steps); `sample_interval` N logs a short seeded
    sample every N steps. `log` receives each line (None: silent). `distributed`: run as
    one rank of a torchrun job (torch, DDP); only rank 0 logs and saves (`model.rank`).
    """
    from bigram.api.parallel import TrainRun
    from bigram.core.display import visible_text
    from bigram.core.sampling import init_weights
    from bigram.core.train import TrainConfig
    from bigram.core.train import train as run_train

    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, block_size=block_size, seed=seed, eval_interval=eval_interval,
        eval_batches=eval_batches, optim=AdamWConfig(lr=lr, weight_decay=weight_decay), method=method,
        lr_schedule=lr_schedule, min_lr=min_lr, decay_steps=decay_steps,
    )
    cfg.validate()
    if out is not None:
        from bigram.core.checkpoint import check_out

        check_out(out)  # a directory bigram must not write into is refused before the corpus is read
    name, cls = resolve_backend(backend)  # an unknown backend fails before the corpus is read
    run = TrainRun(name, device, distributed)
    corpus_arg = corpus
    try:
        corpus = as_corpus(corpus, val_fraction=val_fraction, val_data=val_data, tokenizer=tokenizer)
        corpus.check_block_size(block_size)
        impl = cls.create(init_weights(corpus.vocab_size, seed), device=device, dtype=dtype, optim=cfg.optim)
        impl, batcher = run.setup(impl, corpus, cfg)
        say = _say(log if run.is_main else None)
        say(f"backend {name} on {impl.device} ({impl.dtype}); corpus {corpus.source}: {corpus.describe()}")
        model = Model(impl, corpus.tokenizer, backend=name)
        sample = lambda: visible_text(model.generate(SAMPLE_INTERVAL_TOKENS, seed=seed))  # noqa: E731
        result = run_train(impl, corpus, cfg, backend=name, out_dir=out, log=say, progress=progress,
                           run_config={"seed": seed}, save_interval=save_interval, batcher=batcher,
                           is_main=run.is_main, sample_interval=sample_interval, sample=sample, group=run.group,
                           resume_args=_corpus_args(corpus_arg, val_data))
    finally:
        run.close()  # leave the process group even when interrupted
    model.config, model.history, model.result, model.rank = result.config, result.history, result, run.rank
    model.path = Path(result.checkpoint) if result.checkpoint else None
    return model


def _corpus_args(corpus, val_data) -> list[str]:
    """--data/--val-data that read this corpus again, for the resume command an interrupt prints."""
    source = corpus.source if isinstance(corpus, Corpus) else corpus
    args = ["--data", str(source)] if isinstance(source, (str, Path)) and os.path.exists(source) else []
    return args + (["--val-data", str(val_data)] if val_data is not None else [])


def fit(
    corpus: Corpus | str | Path | None = None,
    smoothing: float = DEFAULT_SMOOTHING,
    backend: str | type | None = None,
    *,
    device: str = "auto",
    val_fraction: float | None = None,
    val_data: str | Path | None = None,
    tokenizer: str | None = None,
    out: str | Path | None = None,
    count: CountFn | None = None,
) -> Model:
    """The closed-form best table for the train split, log((C + k) / rowsum), as a model; `bigram fit`.

    No training: one pass counts the train bigrams C, and add-k smoothing
    (k = `smoothing`; 0 is the pure train MLE) gives unseen pairs a finite logit.
    Its losses are measured by the backend, exactly. `out` also writes it as a checkpoint.
    `count(tokens, V)` counts a split's bigrams (a torchrun job passes the all-reduced one).
    """
    from bigram.core.data import bigram_counts
    from bigram.core.evaluate import check_smoothing, evaluate_counts, fit_table, split_counts

    check_smoothing(smoothing)
    if out is not None:
        from bigram.core.checkpoint import check_out

        check_out(out)  # refused before the corpus is read and counted
    name, cls = resolve_backend(backend)
    corpus = as_corpus(corpus, val_fraction=val_fraction, val_data=val_data, tokenizer=tokenizer)
    counts = split_counts(corpus, count=count or bigram_counts)
    W = fit_table(counts["train"], smoothing)  # (V,V) float32 log-probabilities
    impl = cls.create(W, device=device, dtype=str(W.dtype))
    r = evaluate_counts(impl, counts)  # measured by the backend, not assumed
    config = {
        "backend": name, "device": impl.device, "dtype": impl.dtype, "fit": {"smoothing": smoothing},
        "corpus": corpus.record(counts),
        "metrics": {"train_loss": r.train_loss, "val_loss": r.val_loss, "optimum_train_loss": r.optimum_train_loss},
    }
    history = [{"step": 0, "train_loss": r.train_loss, "val_loss": r.val_loss}]  # `bigram plot` shows it
    model = Model(impl, corpus.tokenizer, backend=name, config=config, history=history)
    if out is not None:
        model.save(out)
    return model


def load(path: str | Path = "out", backend: str | type | None = None, *, device: str = "auto") -> Model:
    """A checkpoint directory as a Model on `backend` (any backend loads any backend's checkpoint)."""
    from bigram.core.checkpoint import load_checkpoint
    from bigram.core.metrics import read_metrics

    name, cls = resolve_backend(backend)
    ck = load_checkpoint(path)
    impl = cls.create(ck.weights, device=device, dtype=str(ck.weights.dtype))
    impl.set_state(ck.state)  # the AdamW moments too: save() writes them back unchanged
    return Model(impl, ck.tokenizer, backend=name, config=ck.config, history=read_metrics(path), path=path)


def check(
    backends: Sequence[str] | None = None,
    corpus: Corpus | str | Path | None = None,
    *,
    dtype: str = "float32",
    steps: int = 10,
    batch_size: int = DEFAULT_BATCH_SIZE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    lr: float = DEFAULT_LR,
    seed: int = DEFAULT_SEED,
    device: str = "auto",
    val_fraction: float | None = None,
    val_data: str | Path | None = None,
) -> CheckReport:
    """Cross-check backends tensor by tensor against the first (the reference); `bigram check`.

    Same weights, same real batches: logits, loss, dlogits, the table's gradient,
    the same at huge logits, sampled ids, `steps` AdamW steps on the textbook
    and on the counts path (the default lr schedule) and the final weights and
    moments, each against a per-dtype tolerance; and each backend's counts path
    against its own textbook path and the dtype it computes in. Returns a
    CheckReport (`.ok` is False if any tensor is out of tolerance, or a backend failed).
    """
    from bigram.core.backend import check_dtype
    from bigram.core.check import MAX_STEPS, CheckConfig, run_check
    from bigram.core.plugins import backend_devices, load_backends, report_errors
    from bigram.core.train import TrainConfig

    check_dtype(dtype)
    if isinstance(steps, int) and steps > MAX_STEPS:  # every step's batch is drawn up front, all in memory
        raise BigramError(f"--steps {steps} is more than a cross-check needs; use at most {MAX_STEPS}")
    TrainConfig(steps=steps, batch_size=batch_size, block_size=block_size, seed=seed,
                optim=AdamWConfig(lr=lr)).validate()  # train's checks and messages for the options they share
    reg = load_backends()
    names = check_names(backends, list(reg.backends))
    infos = [reg.get(n) for n in names]  # an unknown name fails here, with the list
    classes = [(i.name, i.cls) for i in infos]
    offered = {i.name: backend_devices(reg, i) for i in infos} if device != "auto" else {}
    if device != "auto" and not any(device in d for d in offered.values()):
        raise BigramError(f"--device {device}: none of {', '.join(names)} can run there; use --device auto")
    devices = {n: device if device in offered.get(n, ()) else "auto" for n in names}
    report_errors(reg)  # broken or disabled plugins, and devices() that failed just now
    corpus = as_corpus(corpus, val_fraction=val_fraction, val_data=val_data)
    corpus.check_block_size(block_size)
    cfg = CheckConfig(dtype=dtype, steps=steps, batch_size=batch_size, block_size=block_size, seed=seed,
                      optim=AdamWConfig(lr=lr))
    return run_check(classes, corpus, cfg, devices)


def explain(
    corpus: Corpus | str | Path | None = None,
    model: Model | str | Path | None = None,
    *,
    backend: str | type | None = None,
    batch_size: int = 4,
    block_size: int = 8,
    seed: int = DEFAULT_SEED,
    device: str = "auto",
) -> Explanation:
    """One real batch through the model, every number from the backend; `bigram explain`.

    Shapes, the embedding lookup, softmax, one NLL by hand, the backward pass
    (dlogits by hand, the scatter-add into the table), one AdamW update of one
    weight by hand against the backend's, and sampling. `model`: a Model or a
    checkpoint directory (default: the untrained N(0,1) table of `seed`); it is
    copied, never changed. `print()` the result to read it.
    """
    from bigram.core.evaluate import check_default_corpus
    from bigram.core.explain import explain as run_explain
    from bigram.core.memory import EXPLAIN_PER_LOGIT, check_batch
    from bigram.core.sampling import init_weights
    from bigram.core.train import TrainConfig

    TrainConfig(batch_size=batch_size, block_size=block_size, seed=seed).validate()  # train's checks, messages
    if model is None:
        name, cls = resolve_backend(backend)
        corpus = as_corpus(corpus)
        state, source = None, f"untrained N(0,1) table (seed {seed})"
        W = init_weights(corpus.vocab_size, seed)
    else:
        if not isinstance(model, Model):
            model = load(model, backend, device=device)
        name, cls = resolve_backend(backend or model.backend)
        if corpus is None:
            check_default_corpus(model.config)
        corpus = corpus if isinstance(corpus, Corpus) else Corpus.load(corpus, tokenizer=model.tokenizer)
        model._check_vocabulary(corpus)
        state, source = model.impl.get_state(), str(model.path or f"a {model.backend} model")
        W = state["token_embedding_table.weight"]
    corpus.check_block_size(block_size)
    check_batch(batch_size, block_size, corpus.vocab_size, per_logit=EXPLAIN_PER_LOGIT)  # before any (B,T,V)
    impl = cls.create(W, device=device, dtype=str(W.dtype), optim=AdamWConfig())  # explain steps a copy
    if state is not None:
        impl.set_state(state)  # the AdamW moments too: the update shown is the next one
    return run_explain(impl, corpus, backend=name, weights=source, batch_size=batch_size, block_size=block_size,
                       seed=seed, optim=AdamWConfig())


def vocab(source: Model | Corpus | str | Path = "out", data: Corpus | str | Path | None = None) -> Vocab:
    """Every token with its id, shown readably, and its count in the corpus; `bigram vocab`.

    source: a Model, a Corpus, a checkpoint directory (counts as recorded when it
    was trained), or a text file or prepared directory. data: count in this text
    instead, encoded with the source's vocabulary.
    """
    from bigram.core.checkpoint import config_tokenizer, load_config
    from bigram.core.prepare import is_prepared

    if isinstance(source, Corpus):
        tok, counts, where = source.tokenizer, source.token_counts(), source.source
    elif isinstance(source, Model) or (Path(source).is_dir() and not is_prepared(Path(source))):
        config = source.config if isinstance(source, Model) else load_config(source)
        tok = source.tokenizer if isinstance(source, Model) else config_tokenizer(config, source)
        counts, where = _saved_counts(config, tok.vocab_size)
    else:
        corpus = Corpus.load(source, val_fraction=0)
        tok, counts, where = corpus.tokenizer, corpus.token_counts(), corpus.source
    if data is not None:
        corpus = data if isinstance(data, Corpus) else Corpus.load(data, tokenizer=tok, val_fraction=0)
        counts, where = corpus.token_counts(), corpus.source
    return Vocab(tok, counts, where)


def _saved_counts(config: dict, V: int) -> tuple[np.ndarray | None, str | None]:
    """A checkpoint's recorded token counts and their corpus; (None, None) where it has none (older ones)."""
    from bigram.core.checkpoint import recorded_token_counts

    counts = recorded_token_counts(config, V)
    if counts is None:
        return None, None
    source = config["corpus"].get("source")
    return counts, f"{source} (as recorded when trained)" if source else None


def check_names(names: Sequence[str] | None, installed: list[str]) -> list[str]:
    """The backends to check: as given (the first is the reference), by default numpy then every other."""
    if names is None:
        names = ["numpy"] + sorted(n for n in installed if n != "numpy")
        if len(names) < 2:
            raise BigramError("only the numpy backend is installed; install another (see `bigram backends`) to check it")
        return names
    names = [n.strip() for n in names if n.strip()]
    shown = ",".join(names)
    if len(set(names)) != len(names):
        raise BigramError(f"--backends {shown!r} names a backend twice; list each once, e.g. --backends numpy,torch")
    if len(names) < 2:
        raise BigramError(f"--backends {shown!r} names {len(names)} backend(s); give a reference and at least "
                          "one more, e.g. --backends numpy,torch")
    return names


def list_backends() -> list[dict]:
    """The installed backends: name, version, devices, the package each came from, a description.

    Not `bigram.backends`: that name is the subpackage of built-in backends, which
    Python binds on the package as soon as any backend is imported.
    """
    from bigram.core.plugins import backend_devices, load_backends, report_errors

    reg = load_backends()
    rows = [{"name": b.name, "version": b.version, "devices": backend_devices(reg, b), "package": b.dist,
             "description": str(getattr(b.cls, "description", ""))}
            for b in sorted(reg.backends.values(), key=lambda b: b.name)]
    report_errors(reg, file=sys.stderr)  # after devices(): a plugin whose devices() fails is reported too
    return rows
