"""The fast paths against the textbook ones: same numbers within cross-check tolerances.

Counts-based steps, batches drawn many steps at a time, in-place/fused AdamW,
bisect sampling and the Latin-1 encoder each have a slow reference they must
agree with. Speed itself is proven in benchmarks/, never here.
"""

from __future__ import annotations

import mmap
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigram.backends import numpy_backend as nb
from bigram.backends.numpy_backend import NumpyBackend
from bigram.core.backend import WEIGHT_KEY, AdamWConfig
from bigram.core.data import Batcher, Corpus
from bigram.core.errors import BigramError
from bigram.core.fast import CountsStream, WindowStream, make_step
from bigram.core.sampling import init_weights, sample_chain
from bigram.core.tokenizer import CharTokenizer
from bigram.core.train import TrainConfig, make_train_batcher, train

torch = pytest.importorskip("torch")
from backends import BACKENDS, backend as backend_class, params  # noqa: E402
from bigram.backends.torch_backend import TorchBackend  # noqa: E402

COUNTS_BACKENDS = params(BACKENDS, "counts")  # every selected backend with a counts path


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """(65,65) kernels gain nothing from threads, and on a shared CPU OpenMP waits can cost ms each."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
TOL = {"float32": dict(rtol=1e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}
APPROX = {"float32": dict(rel=1e-5, abs=1e-5), "float64": dict(rel=1e-12, abs=1e-12)}


def batch_counts(x, y, V, dtype="float64"):
    """The slow, obvious count of a batch's (x, y) pairs."""
    c = np.zeros((V, V), dtype=dtype)
    for a, b in zip(x.ravel(), y.ravel()):
        c[a, b] += 1
    return c


@pytest.fixture(scope="module")
def small():
    return Corpus.from_text("the quick brown fox jumps over the lazy dog\nto be or not to be\n" * 20)


# ----------------------------------------------------------------------------
# the counts loss and gradient


@settings(max_examples=25)
@given(V=st.integers(2, 12), B=st.integers(1, 4), T=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_numpy_counts_pair_equals_textbook_pair(V, B, T, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(scale=3.0, size=(V, V))  # float64
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    flat = W[x].reshape(B * T, V)
    loss = nb.cross_entropy_forward(flat, y.ravel())
    dW = nb.embedding_backward(nb.cross_entropy_backward(flat, y.ravel()).reshape(B, T, V), x, V)
    c = batch_counts(x, y, V)
    np.testing.assert_allclose(nb.counts_cross_entropy_forward(W, c), loss, rtol=1e-12)
    np.testing.assert_allclose(nb.counts_cross_entropy_backward(W, c), dW, atol=1e-14)
    fused = nb.CountsCrossEntropy(W.shape, W.dtype)
    np.testing.assert_allclose(fused.forward(W, c), loss, rtol=1e-12)
    np.testing.assert_allclose(fused.backward(c.copy()), dW, atol=1e-14)


def test_fused_counts_loss_survives_rows_far_below_the_max():
    """A row 800 below the table's max underflows a shared shift (exp(-745) is 0 in float64, so its
    softmax sum would be 0 and its loss inf); it falls back to its own."""
    W = np.zeros((3, 3))
    W[0] = [800.0, 0.0, 1.0]
    W[2] = [-5.0, 2.0, 0.0]
    c = np.array([[1.0, 2, 0], [0, 1, 3], [2, 0, 1]])
    fused = nb.CountsCrossEntropy(W.shape, W.dtype)
    np.testing.assert_allclose(fused.forward(W, c), nb.counts_cross_entropy_forward(W, c), rtol=1e-12)
    np.testing.assert_allclose(fused.backward(c.copy()), nb.counts_cross_entropy_backward(W, c), atol=1e-14)


@pytest.mark.parametrize("backend", COUNTS_BACKENDS)
def test_loss_and_grad_counts_matches_loss_and_grad(backend, shakespeare):
    backend = backend_class(backend)
    V = shakespeare.tokenizer.vocab_size
    model = backend.create(init_weights(V, 3), dtype="float64")
    x, y = Batcher(shakespeare.train, 32, 8, 5).get_batch()
    loss, dW = model.loss_and_grad(x, y)
    loss_c, dW_c = model.loss_and_grad_counts(batch_counts(x, y, V))
    assert loss_c == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(dW_c, dW, atol=1e-15)


def test_adamw_step_inplace_matches_step():
    rng = np.random.default_rng(0)
    cfg = AdamWConfig(lr=0.05, weight_decay=0.1)
    a, b = nb.AdamW((5, 7), np.float64, cfg), nb.AdamW((5, 7), np.float64, cfg)
    pa = rng.normal(size=(5, 7))
    pb = pa.copy()
    for i in range(50):
        g = rng.normal(size=(5, 7))
        a.step(pa, g)
        b.step_inplace(pb, g.copy()) if i % 2 else b.step_inplace(pb, g * 8.0, 1 / 8.0)
    np.testing.assert_allclose(pb, pa, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.m, a.m, rtol=1e-12)
    np.testing.assert_allclose(b.v, a.v, rtol=1e-12)
    assert a.t == b.t == 50


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", COUNTS_BACKENDS)
def test_counts_steps_track_textbook_steps(backend, dtype, shakespeare):
    """Same batches, 120 AdamW steps each way: weights, moments and losses agree."""
    backend = backend_class(backend)
    V = shakespeare.tokenizer.vocab_size
    w0 = init_weights(V, 7)
    opt = AdamWConfig(lr=0.02)
    text, fast = backend.create(w0, dtype=dtype, optim=opt), backend.create(w0, dtype=dtype, optim=opt)
    batcher = Batcher(shakespeare.train, 16, 8, 11)
    for _ in range(120):
        x, y = batcher.get_batch()
        c = batch_counts(x, y, V, dtype)
        loss_t = text.train_step(x, y)
        loss_f = fast.train_step_counts(c) if _ % 2 else fast.train_step_counts(c, c.sum(1), c.sum())
        assert loss_f == pytest.approx(loss_t, **APPROX[dtype])
    st_t, st_f = text.get_state(), fast.get_state()
    for key in (WEIGHT_KEY, "adamw.exp_avg", "adamw.exp_avg_sq"):
        np.testing.assert_allclose(st_f[key], st_t[key], **TOL[dtype])
    assert int(st_f["adamw.step"]) == int(st_t["adamw.step"]) == 120


@pytest.mark.parametrize("backend", COUNTS_BACKENDS)
def test_methods_share_optimizer_state(backend, shakespeare):
    """Textbook then counts steps equal textbook all the way, and get/set_state see the fast path's state."""
    backend = backend_class(backend)
    V = shakespeare.tokenizer.vocab_size
    w0 = init_weights(V, 2)
    ref, mixed = backend.create(w0, dtype="float64"), backend.create(w0, dtype="float64")
    batcher = Batcher(shakespeare.train, 8, 4, 1)
    batches = [batcher.get_batch() for _ in range(40)]
    for x, y in batches:
        ref.train_step(x, y)
    for i, (x, y) in enumerate(batches):
        if i < 10 or i >= 30:
            mixed.train_step(x, y)
        else:
            mixed.train_step_counts(batch_counts(x, y, V))
        if i == 20:  # a checkpoint round trip in the middle of the fast steps
            fresh = backend.create(w0, dtype="float64")
            fresh.set_state(mixed.get_state())
            mixed = fresh
    for key in (WEIGHT_KEY, "adamw.exp_avg", "adamw.exp_avg_sq"):
        np.testing.assert_allclose(mixed.get_state()[key], ref.get_state()[key], rtol=1e-10, atol=1e-12)
    assert int(mixed.get_state()["adamw.step"]) == 40


# ----------------------------------------------------------------------------
# batches many steps at a time


@pytest.mark.parametrize("B,T", [(32, 8), (3, 5), (1, 1)])
def test_streams_match_get_batch_and_keep_the_batcher_in_lockstep(B, T, shakespeare):
    data = shakespeare.train[:5000]
    V = shakespeare.tokenizer.vocab_size
    ref, b1, b2 = (Batcher(data, B, T, 99) for _ in range(3))
    counts, windows = CountsStream(b1, V, "float64"), WindowStream(b2)
    for step in range(max(2 * counts.chunk, 2 * windows.chunk) + 3):  # crosses chunk boundaries
        x, y = ref.get_batch()
        c, n, N = counts()
        np.testing.assert_array_equal(c, batch_counts(x, y, V))
        np.testing.assert_array_equal(n, c.sum(axis=1))
        assert N == B * T
        xw, yw = windows()
        np.testing.assert_array_equal(xw, x)
        np.testing.assert_array_equal(yw, y)
        assert b1.get_state() == ref.get_state() == b2.get_state(), f"out of lockstep after step {step}"


def test_counts_stream_uses_the_model_dtype(shakespeare):
    b = Batcher(shakespeare.train, 4, 4, 0)
    assert CountsStream(b, shakespeare.tokenizer.vocab_size, "float32")()[0].dtype == np.float32


# ----------------------------------------------------------------------------
# the training loop


@pytest.mark.parametrize("backend", COUNTS_BACKENDS)
def test_train_counts_reaches_textbook_losses(backend, shakespeare):
    backend = backend_class(backend)
    V = shakespeare.tokenizer.vocab_size
    out = {}
    for method in ("textbook", "counts"):
        cfg = TrainConfig(steps=200, eval_interval=100, method=method)
        model = backend.create(init_weights(V, cfg.seed), optim=cfg.optim)
        batcher = make_train_batcher(shakespeare, cfg)
        res = train(model, shakespeare, cfg, backend=backend.name, batcher=batcher, log=lambda m: None)
        out[method] = (res, batcher.get_state())
    (t, t_state), (c, c_state) = out["textbook"], out["counts"]
    assert c.train_loss == pytest.approx(t.train_loss, abs=1e-4)
    assert c.val_loss == pytest.approx(t.val_loss, abs=1e-4)
    assert c_state == t_state  # resume sees the same data position either way
    assert t.train_loss < 3.5  # it did learn


def test_default_method_is_counts_and_bad_method_is_one_line_error():
    assert TrainConfig().method == "counts"
    with pytest.raises(BigramError, match="--method must be one of counts, textbook"):
        TrainConfig(method="fast").validate()
    with pytest.raises(BigramError, match="unknown training method"):
        make_step(None, None, "fast")


def test_cli_train_method_textbook(tmp_path, shakespeare_path, monkeypatch):
    """`train --method textbook` takes the textbook step (the counts step is never called) and
    lands where the lecture's model with torch's AdamW and CosineAnnealingLR lands on the same
    batches, drawn here from NumPy's Generator as core documents it; its reported losses are
    the exact losses of the table it saved."""
    import json

    from safetensors.numpy import load_file

    from bigram.bench import lecture
    from clirun import ok

    def no_counts(self, *a, **k):
        raise AssertionError("--method textbook took the counts step")

    monkeypatch.setattr(nb.NumpyBigram, "train_step_counts", no_counts)
    out, _ = ok(["--backend", "numpy", "train", "--data", shakespeare_path, "--steps", "20", "--eval-interval", "10",
                 "--method", "textbook", "--dtype", "float64", "--out", tmp_path / "o", "--max-new-tokens", "0",
                 "--json"])
    got = json.loads(out)
    assert json.loads((tmp_path / "o" / "config.json").read_text())["train"]["method"] == "textbook"
    # the oracle: ids from the sorted characters, the lecture's 90% split, seed 1337's streams
    text = shakespeare_path.read_text(encoding="utf-8")
    lut = {c: i for i, c in enumerate(sorted(set(text)))}
    ids = np.fromiter((lut[c] for c in text), dtype=np.int64, count=len(text))
    train_ids, val_ids = ids[: int(0.9 * len(ids))], ids[int(0.9 * len(ids)):]
    w_seq, b_seq, _ = np.random.SeedSequence(1337).spawn(3)
    W0 = np.random.Generator(np.random.PCG64(w_seq)).standard_normal((65, 65)).astype(np.float32)
    rng = np.random.Generator(np.random.PCG64(b_seq))
    ref = lecture.BigramLanguageModel(65).double()
    with torch.no_grad():
        ref.token_embedding_table.weight.copy_(torch.from_numpy(W0.astype(np.float64)))
    opt = torch.optim.AdamW(ref.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=0.01)
    for _ in range(20):
        starts = (rng.random(32) * (len(train_ids) - 8)).astype(np.int64)  # (B,)
        win = train_ids[starts[:, None] + np.arange(9)]  # (B,T+1)
        x, y = np.ascontiguousarray(win[:, :-1]), np.ascontiguousarray(win[:, 1:])
        _, loss = ref(torch.from_numpy(x), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    want = ref.token_embedding_table.weight.detach().numpy()
    W = load_file(str(tmp_path / "o" / "model.safetensors"))["token_embedding_table.weight"]
    assert W.dtype == np.float64
    np.testing.assert_allclose(W, want, rtol=0, atol=1e-9)  # float64 both sides: summation order only
    for split, part in (("train", train_ids), ("val", val_ids)):
        logp = torch.log_softmax(torch.from_numpy(want), -1).numpy()  # (V,V)
        assert got[f"{split}_loss"] == pytest.approx(-logp[part[:-1], part[1:]].mean(), abs=1e-9), split


# ----------------------------------------------------------------------------
# sampling and encoding


def reference_chain(probs, idx, coins):
    """The searchsorted loop sample_chain replaced."""
    cdf = np.cumsum(probs.astype(np.float64), axis=1)
    seq = list(idx[0])
    for u in coins[0]:
        last = seq[-1]
        seq.append(min(int(np.searchsorted(cdf[last], u * cdf[last, -1], side="right")), len(probs) - 1))
    return np.array([seq])


@settings(max_examples=25)
@given(V=st.integers(1, 20), n=st.integers(0, 200), seed=st.integers(0, 2**31 - 1))
def test_sample_chain_equals_searchsorted_reference(V, n, seed):
    rng = np.random.default_rng(seed)
    probs = rng.random((V, V)) * (rng.random((V, V)) > 0.3)  # some zero-probability tokens
    probs[:, 0] += 1e-3
    idx = rng.integers(0, V, (1, 3))
    coins = rng.random((1, n))
    np.testing.assert_array_equal(sample_chain(probs, idx, coins), reference_chain(probs, idx, coins))


def first_above(cdf_row, u) -> int:
    """The inverse CDF spelled out: the first j with u < cdf[j] (the last token if none is)."""
    return next((j for j, c in enumerate(cdf_row) if u < c), len(cdf_row) - 1)


@settings(max_examples=40)
@given(V=st.integers(2, 12), B=st.sampled_from([1, 3]), n=st.integers(1, 30), seed=st.integers(0, 2**31 - 1))
def test_sample_chain_at_exact_cdf_boundaries_never_draws_a_zero(V, B, n, seed):
    """Coins that land exactly on a cumulative sum, in the single-row (B=1) and batched paths:
    the pick is the token after the boundary, and a token of probability 0 is never drawn."""
    rng = np.random.default_rng(seed)
    probs = rng.integers(0, 4, (V, V)).astype(np.float64)  # small integers: every cumulative sum exact
    probs[:, rng.integers(0, V)] = 0.0  # a column nobody may draw
    probs[np.arange(V), (np.arange(V) + 1 + rng.integers(0, V - 1)) % V] += 1  # each row keeps some mass
    cdf = np.cumsum(probs, axis=1)  # (V,V)
    total = cdf[:, -1]  # (V,)
    idx = rng.integers(0, V, (B, 1))
    # each coin a boundary of its row's cdf (cdf[j] / total, exact in binary when total is 1, 2, 4, ...),
    # or a random one; the rows are only known as the chain goes, so boundaries of every row are mixed in
    bounds = (cdf / total[:, None]).ravel()
    coins = np.where(rng.random((B, n)) < 0.7, rng.choice(bounds, (B, n)), rng.random((B, n)))
    coins = np.minimum(coins, np.nextafter(1.0, 0.0))  # coins are in [0, 1)
    out = sample_chain(probs, idx, coins)
    for b in range(B):
        last = int(idx[b, 0])
        for t in range(n):
            want = first_above(cdf[last].tolist(), coins[b, t] * total[last])
            assert out[b, 1 + t] == want, (b, t)
            assert probs[last, want] > 0, "a zero-probability token was drawn"
            last = want


def test_sample_chain_boundary_picks_in_both_paths():
    """cdf 0, .25, .5, .5, 1: coin 0 must skip token 0, coin .5 must skip tokens 2 and 3."""
    probs = np.array([[0.0, 0.25, 0.25, 0.0, 0.5]] * 5)  # (V,V) every row the same
    coins = np.array([0.0, 0.25, 0.5, 0.75, 0.9999])
    want = [1, 2, 4, 4, 4]
    one = [int(sample_chain(probs, np.zeros((1, 1), dtype=np.int64), np.array([[c]]))[0, 1]) for c in coins]
    assert one == want  # the single-row path (bisect)
    assert sample_chain(probs, np.zeros((5, 1), dtype=np.int64), coins[:, None])[:, 1].tolist() == want  # batched
    assert sample_chain(probs, np.zeros((1, 1), dtype=np.int64), coins[None, :])[0, 1:].tolist() == want  # a chain


def test_generation_is_the_same_text_on_both_backends(shakespeare):
    from bigram.core.sampling import draw_coins

    w = init_weights(shakespeare.tokenizer.vocab_size, 4)
    coins = draw_coins(4, 1, 2000)
    idx = np.zeros((1, 1), dtype=np.int64)
    a = NumpyBackend.create(w).generate(idx, coins)
    b = TorchBackend.create(w, device="cpu").generate(idx, coins)
    np.testing.assert_array_equal(a, b)


@settings(max_examples=30)
@given(text=st.text(alphabet=st.characters(max_codepoint=300), min_size=1, max_size=200))
def test_latin1_encoder_equals_general_path(text):
    tok = CharTokenizer.from_text(text)
    general = CharTokenizer(tok.chars)
    general._byte_table = None  # force the UTF-32 searchsorted path
    np.testing.assert_array_equal(tok.encode(text), general.encode(text))
    if "\x00" not in text:  # decode drops NUL (NumPy's <U1 strips it): a separate, pre-existing issue
        assert tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("extra", ["é", "中", "\x00"])
def test_latin1_encoder_names_unknown_characters(extra):
    tok = CharTokenizer.from_text("abc\n")
    with pytest.raises(BigramError, match="not in the vocabulary"):
        tok.encode("ab" + extra + "c")


def test_encode_big_text_spans_chunks():
    tok = CharTokenizer.from_text("ab\n")
    text = "ab\n" * 200_000  # several 256 KiB chunks, last one partial
    ids = tok.encode(text)
    assert ids.dtype == np.uint8 and len(ids) == len(text)
    np.testing.assert_array_equal(ids[:6], [1, 2, 0, 1, 2, 0])
    assert tok.decode(ids) == text


@pytest.mark.parametrize("latin1", [True, False], ids=["latin1-path", "general-path"])
def test_a_large_output_is_prefaulted_and_an_ordinary_array(latin1, monkeypatch):
    """Past _PREFAULT_BYTES the ids live in a pre-mapped buffer: same values, writable, usable as any array."""
    import bigram.core.tokenizer as T

    monkeypatch.setattr(T, "_PREFAULT_BYTES", 1 << 16)  # a small threshold keeps the test fast
    tok = CharTokenizer.from_text("ab\n")
    if not latin1:
        tok._byte_table = None
    text = "ab\n" * 100_000
    ids = tok.encode(text)
    small = CharTokenizer(tok.chars).encode("ab\n" * 10)
    assert len(ids) == len(text) and ids.dtype == np.uint8 and ids.flags.writeable
    if hasattr(mmap, "MAP_POPULATE"):  # Linux: the ids really live in the pre-faulted mapping
        assert isinstance(ids.base, memoryview) and isinstance(ids.base.obj, mmap.mmap)
    np.testing.assert_array_equal(ids[:30], small)
    assert np.bincount(ids).tolist() == [100_000] * 3
    ids[0] = 2  # the caller owns it
    assert ids[0] == 2


@pytest.mark.parametrize("n", [1, 255, 256, 257, 5 * 256 + 3])
def test_threaded_encoder_equals_general_path(n, monkeypatch):
    """Above _PARALLEL_CHARS the text is split between threads at chunk boundaries: same ids, any length."""
    import bigram.core.tokenizer as T

    monkeypatch.setattr(T, "_PARALLEL_CHARS", 1)
    monkeypatch.setattr(T, "_BYTE_CHUNK", 64)  # several chunks per thread, a partial last one
    rng = np.random.default_rng(n)
    alphabet = np.array(list("ab\ncd é!"))
    text = "".join(rng.choice(alphabet, size=n))
    tok = CharTokenizer.from_text(text)
    general = CharTokenizer(tok.chars)
    general._byte_table = None  # the UTF-32 searchsorted path
    np.testing.assert_array_equal(tok.encode(text), general.encode(text))
    with pytest.raises(BigramError, match="not in the vocabulary"):
        tok.encode(text + "z")  # unknown in the last thread's last chunk


# ----------------------------------------------------------------------------
# start-up


def test_help_imports_neither_numpy_nor_torch():
    code = "import sys; import bigram.cli.app; print('numpy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_core_exports_stay_the_same_objects():
    import types

    import bigram.core as core
    from bigram.core.train import TrainConfig

    assert core.Corpus is Corpus and core.TrainConfig is TrainConfig and "TrainConfig" in core.__all__
    assert isinstance(core.train, types.ModuleType)  # the submodule, never shadowed by its function


def test_a_backend_without_counts_trains_the_textbook_way(shakespeare):
    """Third-party backends written before train_step_counts still train with the default method."""

    class Old:
        def __init__(self, model):
            self.inner, self.vocab_size, self.dtype = model, model.vocab_size, model.dtype

        def train_step(self, x, y):
            return self.inner.train_step(x, y)

    V = shakespeare.tokenizer.vocab_size
    old = Old(NumpyBackend.create(init_weights(V, 1)))
    ref = NumpyBackend.create(init_weights(V, 1))
    step_old = make_step(old, Batcher(shakespeare.train, 4, 4, 3))  # default method: counts
    step_ref = make_step(ref, Batcher(shakespeare.train, 4, 4, 3), "textbook")
    assert [step_old() for _ in range(5)] == [step_ref() for _ in range(5)]


def test_torch_counts_step_counts_steps_of_a_copied_or_replaced_state():
    """The fused counts step bumps whatever step tensor the optimizer holds now (no stale cached view)."""
    import copy

    rng = np.random.default_rng(0)
    c = rng.poisson(0.1, size=(8, 8)).astype(np.float32)
    m = TorchBackend.create(init_weights(8, 0), device="cpu")
    m.train_step_counts(c)
    twin = copy.deepcopy(m)
    for _ in range(3):
        twin.train_step_counts(c)
    assert int(twin.get_state()["adamw.step"]) == 4 and int(m.get_state()["adamw.step"]) == 1
    m.optimizer.state[m.weight]["step"] = torch.tensor(10.0)  # same dict, new tensor
    m.train_step_counts(c)
    assert int(m.get_state()["adamw.step"]) == 11


def test_torch_counts_gradient_without_the_backward_kernel(monkeypatch):
    """The fallback (exp + addcmul) for a torch without _log_softmax_backward_data gives the same gradient."""
    from bigram.backends import torch_model

    rng = np.random.default_rng(0)
    logp = torch.log_softmax(torch.from_numpy(rng.normal(size=(7, 7))), -1)
    c = torch.from_numpy(rng.poisson(2.0, size=(7, 7)).astype(np.float64))
    fast = torch_model._log_softmax_backward(c, logp)
    monkeypatch.delattr(torch, "_log_softmax_backward_data")
    slow = torch_model._log_softmax_backward(c, logp)
    expected = c - torch.exp(logp) * c.sum(-1, keepdim=True)  # c_i - n_i p_i
    np.testing.assert_allclose(fast.numpy(), expected.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(slow.numpy(), expected.numpy(), rtol=0, atol=1e-12)
