#!/bin/bash
# Mutation run: plant each bug below, one at a time, as a one-line textual edit of a clean
# file of the core, the NumPy reference or the torch backend; run the few tests aimed at
# it (pytest -x, so the first failure ends the run) and, where marked, `bigram check`;
# record killed or survived; put the file back.
#
#   scripts/mutations.sh                 every mutant (about 10 minutes on two busy cores)
#   scripts/mutations.sh 3 17            only these
#   scripts/mutations.sh --list          the table, nothing run
#   MUTATIONS_MD=FILE scripts/mutations.sh   also write the score table (markdown) to FILE
#
# Needs the test dependencies and Tiny Shakespeare (BIGRAM_TEST_DATA=PATH, or
# ../shared/data/tinyshakespeare.txt as tests/conftest.py finds it). Tests run over
# numpy and torch only (BIGRAM_TEST_BACKENDS); the mutants live in code every backend shares
# or in those two. Refuses to run on a tree with uncommitted changes to tracked files, and
# restores bigram/ on any exit (a mutant is never left behind, even on Ctrl-C).
# The score and what each mutant is killed by: docs/check.md ("Mutation run").
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--list" ] && [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "refusing: the tree has uncommitted changes (commit or stash them first)" >&2
  exit 2
fi
trap 'git checkout -q -- bigram' EXIT
trap 'exit 130' INT TERM
PY=${PYTHON:-python}
export HYPOTHESIS_PROFILE=ci BIGRAM_TEST_BACKENDS=${BIGRAM_TEST_BACKENDS:-numpy,torch}
if [ -z "${BIGRAM_TEST_DATA:-}" ] && [ -f ../shared/data/tinyshakespeare.txt ]; then
  export BIGRAM_TEST_DATA=$PWD/../shared/data/tinyshakespeare.txt
fi
$PY - "$@" <<'PYEOF'
import difflib, os, re, subprocess, sys, time

PT = "tests/test_pinned.py"
FP, OR, PR, SC = "tests/test_fast_paths.py", "tests/test_oracles.py", "tests/test_properties.py", "tests/test_schedule.py"
NB, TM = "bigram/backends/numpy_backend.py", "bigram/backends/torch_model.py"
IND = "\n        "  # a method body's line break: context that makes a repeated line unique

# (file, old, new, what it changes, tests (pytest arguments), run `bigram check`, equivalent: why)
# `old` may carry context lines; `new` changes exactly one of them.
MUTANTS = [
    # --- core: evaluation, data, seeds, sampling, schedule, fast paths
    ("bigram/core/train.py", "bigram_counts(corpus.split(s), V) for s in", "bigram_counts(corpus.train, V) for s in",
     "exact val loss from the train split's counts", [f"{PT}::test_default_run_reports_its_checkpoints_exact_losses[numpy]"], False, ""),
    ("bigram/core/train.py", "if step % cfg.eval_interval == 0 and step not in evaluated:",
     "if step % cfg.eval_interval == 1 and step not in evaluated:", "evaluations one step late",
     [f"{PT}::test_default_run_reports_its_checkpoints_exact_losses[numpy]"], False, ""),
    ("bigram/core/train.py", "min_lr = lr / DEFAULT_MIN_LR_DIVISOR if self.min_lr", "min_lr = lr if self.min_lr",
     "default cosine ends at lr (no decay)", [f"{SC}::test_default_schedule_is_cosine_to_a_tenth"], False, ""),
    ("bigram/core/data.py", "int(o) * item)", "int(o))", "pread offset in items, not bytes",
     ["tests/test_data_properties.py", "-k", "wide"], False, ""),
    ("bigram/core/data.py", "return len(self.data) - self.block_size", "return len(self.data) - self.block_size - 1",
     "one window start fewer", [f"{PT}::test_seed_1337_first_batch_is_the_train_stream"], False, ""),
    ("bigram/core/data.py", "a += tokens[start + 1 : stop + 1]", "a += tokens[start : stop]",
     "bigram counts of (x, x) pairs", [f"{PT}::test_default_run_reports_its_checkpoints_exact_losses[numpy]"], False, ""),
    ("bigram/core/splits.py", "return int((1 - val_fraction) * n_tokens)", "return round((1 - val_fraction) * n_tokens)",
     "split point rounded, not truncated", [f"{PT}::test_tiny_shakespeare_sizes"], False, ""),
    ("bigram/core/sampling.py", 'rng = np.random.Generator(np.random.PCG64(seed_streams(seed)["weights"]))',
     'rng = np.random.Generator(np.random.PCG64(seed_streams(seed)["train"]))',
     "initial weights from the train-batch stream", [PT, "-k", "seed_1337"], False, ""),
    ("bigram/core/sampling.py", "return np.random.default_rng(seed).random((batch, n))",
     "return np.random.default_rng(seed + 1).random((batch, n))", "sampling coins from another seed",
     [f"{PT}::test_seed_1337_sample_is_the_documented_chain"], False, ""),
    ("bigram/core/sampling.py", "(c <= u[:, None])", "(c < u[:, None])", "batched inverse CDF: c < u",
     [FP, OR, "-k", "boundar"], False, ""),
    ("bigram/core/sampling.py", "last = min(bisect_right(rows[last], u * totals[last]), top)",
     'last = min(int(np.searchsorted(rows[last], u * totals[last], side="left")), top)',
     "single-row inverse CDF: bisect_left", [FP, OR, "-k", "boundar"], False, ""),
    ("bigram/core/schedule.py", "coeff = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))",
     "coeff = 0.5 * (1.0 + math.cos(math.pi * (step + 1) / self.decay_steps))", "cosine one step ahead",
     [SC, "-k", "cosine"], False, ""),
    ("bigram/core/schedule.py", "if step >= self.decay_steps:", "if step > self.decay_steps:",
     "cosine's floor from step decay_steps + 1", [SC, "-k", "cosine"], False,
     "at step == decay_steps the formula gives min_lr + 0.5*(1 + cos(pi))*(lr - min_lr), and cos(pi) is "
     "exactly -1.0 in IEEE doubles: min_lr either way"),
    ("bigram/core/fast.py", "[(c, r, self.N) for c, r", "[(c.T, r, self.N) for c, r", "counts transposed",
     [FP, "-k", "streams_match or counts_steps_track or train_counts_reaches"], True, ""),
    ("bigram/core/fast.py", "rows = flat.reshape(S * self.V, self.V) @ np.ones(self.V, dtype=self.dtype)",
     "rows = counts.sum(axis=1).reshape(S * self.V)", "row sums are column sums",
     [FP, "-k", "streams_match or train_counts_reaches"], True, ""),
    ("bigram/core/fast.py", "self.bits.random_raw(self.batcher.batch_size)  # take(), inlined",
     "self.bits.random_raw(self.batcher.batch_size - 1)  # take(), inlined", "counts stream out of lockstep",
     [FP, "-k", "streams_match"], False, ""),
    ("bigram/core/fast.py", 'self.V, self.dtype = V, np.dtype(dtype if exact else "float64")',
     'self.V, self.dtype = V, np.dtype("float64")', "counts always float64 (dtype)",
     [FP, "-k", "counts_stream_uses_the_model_dtype"], False, ""),
    # --- the NumPy reference
    (NB, "np.add.at(dW, idx.reshape(-1), dout.reshape(-1, C))", "dW[idx.reshape(-1)] += dout.reshape(-1, C)",
     "buffered scatter: repeated tokens not summed", [OR, "-k", "repeated"], True, ""),
    (NB, "e = np.exp(logits - logits.max(axis=-1, keepdims=True))", "e = np.exp(logits)",
     "softmax without the max shift", [OR, "-k", "huge"], True, ""),
    (NB, "z = logits - logits.max(axis=-1, keepdims=True)", "z = logits", "log-softmax without the max shift",
     [OR, "-k", "huge"], False, ""),
    (NB, "return dlogits / np.asarray(N, dtype=logits.dtype)", "return dlogits",
     "cross-entropy gradient not divided by N", [OR, "-k", "plain_formulas"], False, ""),
    (NB, "n = counts.sum(axis=1, keepdims=True)  # (V,1)", "n = counts.sum(axis=0, keepdims=True)  # (V,1)",
     "counts gradient with column sums", [FP, "-k", "counts_pair_equals"], False, ""),
    (NB, "if self.se.min() < self.tiny:", "if False:", "fused counts loss: no per-row fallback",
     [FP, "-k", "far_below"], False, ""),
    (NB, "self.optim.step_inplace(self.W, ce.backward(counts, scaled=False), 1 / ce.N)",
     "self.optim.step_inplace(self.W, ce.backward(counts, scaled=True), 1 / ce.N)", "counts gradient scaled twice",
     [FP, "-k", "counts_steps_track"], False, ""),
    (NB, "logp = log_softmax_forward(self.W.astype(np.float64))  # (V,V)",
     "logp = log_softmax_forward(self.W.T.astype(np.float64))  # (V,V)", "exact eval of the transposed table",
     [f"{PT}::test_default_run_reports_its_checkpoints_exact_losses[numpy]"], False, ""),
    (NB, "logits = (logits - logits.max(axis=1, keepdims=True)) / temperature",
     "logits = (logits - logits.max(axis=1, keepdims=True)) * temperature", "temperature multiplies",
     [PR, "-k", "generated"], False, ""),
    (NB, "kth = np.sort(logits, axis=1)[:, -top_k][:, None]", "kth = np.sort(logits, axis=1)[:, -top_k - 1][:, None]",
     "top-k keeps k+1", [OR, PR, "-k", "top_k_and or generated"], False, ""),
    (NB, "self.m += (1 - c.beta1) * (g - self.m)", "self.m += (1 - c.beta2) * (g - self.m)", "step: m with beta2",
     [OR, "-k", "documented"], True, ""),
    (NB, "bias2_sqrt = (1 - c.beta2**self.t) ** 0.5" + IND + "denom", "bias2_sqrt = (1 - c.beta2**self.t)" + IND + "denom",
     "step: beta2 correction unrooted", [OR, "-k", "documented"], False, ""),
    (NB, "denom = np.sqrt(self.v) / bias2_sqrt + c.eps", "denom = np.sqrt(self.v + c.eps) / bias2_sqrt",
     "step: eps inside the root", [OR, "-k", "documented"], False, ""),
    (NB, "p *= 1 - lr * c.weight_decay" + IND + "self.m", "p *= 1 - c.weight_decay" + IND + "self.m",
     "step: decay not scaled by lr", [OR, "-k", "documented"], False, ""),
    (NB, "g *= (1 - c.beta2) * scale * scale", "g *= (1 - c.beta2) * scale", "step_inplace: v scaled by scale, not scale^2",
     [FP, "-k", "step_inplace"], True, ""),
    (NB, "p *= 1 - lr * c.weight_decay" + IND + "m *= c.beta1", "p *= 1" + IND + "m *= c.beta1",
     "step_inplace: weight decay dropped", [FP, "-k", "step_inplace"], True, ""),
    (NB, "bias2_sqrt = (1 - c.beta2**self.t) ** 0.5" + IND + "p *=", "bias2_sqrt = (1 - c.beta2**self.t)" + IND + "p *=",
     "step_inplace: beta2 correction unrooted", [FP, "-k", "step_inplace"], True, ""),
    (NB, "s += c.eps * bias2_sqrt", "s += c.eps", "step_inplace: eps not rescaled", [FP, "-k", "step_inplace"], False,
     ""),
    (NB, "np.multiply(g, (1 - c.beta1) * scale, s)", "np.multiply(g, scale, s)", "step_inplace: m without (1 - beta1)",
     [FP, "-k", "step_inplace"], False, ""),
    # --- the torch backend
    (TM, "loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))" + "\n        return logits, loss",
     "loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T), label_smoothing=0.1)" + "\n        return logits, loss",
     "model loss with label smoothing", [PR, "-k", "logits_loss"], False, ""),
    (TM, "getattr(torch, dtype))", "torch.float64)", "model in float64 under float32 (dtype)",
     ["tests/test_spine_backends.py", "-k", "dtype_asked"], True, ""),
    (TM, 'weight_decay=g["weight_decay"]', "weight_decay=0", "fused counts AdamW: weight decay 0",
     [SC, "-k", "counts_path_matches_the_lecture"], True, ""),
    (TM, "grad_scale=self._grad_scale(-N)", "grad_scale=self._grad_scale(N)", "fused counts step: gradient ascent",
     [FP, "-k", "counts_steps_track"], False, ""),
    (TM, "step.numpy()[()] += 1", "step.numpy()[()] += 2", "fused counts step counts two",
     [FP, "-k", "torch_counts_step_counts"], False, ""),
    (TM, 'group["lr"] = lr', 'group["lr"] = group["lr"]', "set_lr ignored once the optimizer exists",
     [SC, "-k", "every_backend_follows"], False, ""),
    (TM, "logp = F.log_softmax(self.weight.double(), dim=-1)  # (V,V)",
     "logp = F.log_softmax(self.weight.double(), dim=0)  # (V,V)", "exact eval: softmax over columns",
     [f"{PT}::test_default_run_reports_its_checkpoints_exact_losses[torch]"], False, ""),
    (TM, "logits = logits.masked_fill(logits < v[:, [-1]], float(\"-inf\"))",
     "logits = logits.masked_fill(logits <= v[:, [-1]], float(\"-inf\"))", "top-k drops the k-th and its ties",
     [OR, PR, "-k", "top_k_and or generated"], False, ""),
]

args = sys.argv[1:]
if args == ["--list"]:
    for i, (f, _, _, what, tests, check, eq) in enumerate(MUTANTS, 1):
        print(f"{i:2d} {f}: {what}  [{' '.join(tests)}]{'  +check' if check else ''}")
    sys.exit(0)
chosen = [int(a) for a in args] or list(range(1, len(MUTANTS) + 1))
data = os.environ.get("BIGRAM_TEST_DATA")
py = sys.executable


def plant(path, old, new):
    """Write path with old -> new; exactly one occurrence, exactly one line changed."""
    text = open(path).read()
    assert text.count(old) == 1, f"{path}: {old!r} occurs {text.count(old)} times"
    changed = text.replace(old, new)
    diff = [d for d in difflib.ndiff(text.splitlines(), changed.splitlines()) if d[:1] in "+-"]
    assert len(diff) <= 2, f"{path}: not a one-line edit: {diff}"
    open(path, "w").write(changed)
    return text


def run_tests(tests):
    """(killed, first failing test or error)"""
    cmd = [py, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore", *tests]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return True, "timeout"
    out = r.stdout + r.stderr
    if r.returncode == 5:
        raise SystemExit(f"no tests selected by {' '.join(tests)}")
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.M)
    return r.returncode != 0, (m.group(1) if m else out.strip().splitlines()[-1] if out.strip() else "")


def run_check():
    """'caught' if `bigram check --backends numpy,torch` fails in float32 or float64, else 'passed'."""
    fails = []
    for dt in ("float32", "float64"):
        cmd = [py, "-m", "bigram", "check", "--backends", "numpy,torch", "--dtype", dt, *(["--data", data] if data else [])]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            fails.append(dt)
    return f"caught ({', '.join(fails)})" if fails else "passed"


rows, t_all = [], time.perf_counter()
for i in chosen:
    f, old, new, what, tests, check, eq = MUTANTS[i - 1]
    t0 = time.perf_counter()
    clean = plant(f, old, new)
    try:
        killed, by = run_tests(tests)
        chk = run_check() if check else ""
    finally:
        open(f, "w").write(clean)
    status = "killed" if killed else ("equivalent" if eq else "SURVIVED")
    rows.append((i, f, what, status, by if killed else eq, chk))
    print(f"{i:2d} {status:10s} {time.perf_counter() - t0:5.1f}s {f}: {what} -- {by if killed else eq}"
          + (f" [check {chk}]" if chk else ""), flush=True)

n_eq = sum(r[3] == "equivalent" for r in rows)
n_killed = sum(r[3] == "killed" for r in rows)
score = f"{n_killed}/{len(rows) - n_eq} killed ({len(rows)} mutants, {n_eq} equivalent)"
print(f"mutation score: {score} in {time.perf_counter() - t_all:.0f} s")
md = ["| # | file | mutant | result | killed by (or why equivalent) | `bigram check` |", "|---|---|---|---|---|---|"]
md += [f"| {i} | {f.split('/')[-1]} | {what} | {st} | {by} | {chk} |" for i, f, what, st, by, chk in rows]
if os.environ.get("MUTATIONS_MD"):
    open(os.environ["MUTATIONS_MD"], "w").write("\n".join(md) + f"\n\nScore: {score}.\n")
sys.exit(1 if any(r[3] == "SURVIVED" for r in rows) else 0)
PYEOF
