"""The bigram model as JAX users write it: a jax.Array table, jax.grad, optax.adamw, jit.

B = batch, T = time (block), V = vocab; the table is (V,V), so C (channels) = V.

Precision is scoped, never global: every method runs inside
`jax.enable_x64(True)` (a thread-local context), so a float64 model really
holds float64 arrays while the user's own JAX code keeps whatever x64 setting
it had. A float32 model keeps float32 arrays (every input is cast to the
table's dtype before it meets it); only scalars such as AdamW's bias
corrections 1 - beta^t are then computed in double, as torch.optim.AdamW does.
"""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bigram.core.backend import WEIGHT_KEY, AdamWConfig, check_dtype
from bigram.core.errors import BigramError
from bigram.core.sampling import sample_chain


def device_name(dev) -> str:
    """bigram's name for where a jax device is: cpu, cuda (or rocm) for jax's gpu, tpu."""
    if dev.platform != "gpu":
        return dev.platform
    return "rocm" if "rocm" in getattr(dev.client, "platform_version", "").lower() else "cuda"


def device_names() -> list[str]:
    """The kinds of device jax can run on here, cpu first."""
    found = []
    for platform in ("cpu", "gpu", "tpu"):
        try:
            found.append(device_name(jax.devices(platform)[0]))
        except RuntimeError:  # no such backend, or it failed to initialize
            continue
    return found


def resolve_device(device: str) -> jax.Device:
    """'auto' is jax's default device (a GPU when there is one); cuda and gpu both mean jax's gpu."""
    if device == "auto":
        return jax.devices()[0]
    name, _, index = device.partition(":")
    platform = {"cuda": "gpu", "rocm": "gpu"}.get(name, name)
    if platform not in ("cpu", "gpu", "tpu") or (index and not index.isdigit()):
        raise BigramError(f"unknown device {device!r}; use auto, cpu or cuda")
    try:
        devs = jax.devices(platform)
    except RuntimeError:
        raise BigramError(f"--device {device} was asked for but jax sees no {name} device here; use --device cpu "
                          "or auto (GPU support: pip install 'jax[cuda12]')") from None
    if int(index or 0) >= len(devs):
        raise BigramError(f"--device {device}: jax sees {len(devs)} {name} device(s); use {name}:0")
    return devs[int(index or 0)]


# ----------------------------------------------------------------------------
# the loss, written once; jax.grad derives every gradient from it


def nll(logits, targets):
    """logits (B,T,V), targets (B,T) -> mean cross-entropy, from jax.nn.log_softmax."""
    logp = jax.nn.log_softmax(logits, axis=-1)  # (B,T,V)
    return -jnp.take_along_axis(logp, targets[..., None], axis=-1).mean()


def loss_fn(W, idx, targets):
    """The lecture's model: logits are rows of the table, W[idx] (B,T,V)."""
    return nll(W[idx], targets)


def counts_loss_fn(W, counts, total):
    """The same loss from a batch's bigram counts (V,V): -sum_ij c_ij log softmax(W_i)_j / N."""
    return -jnp.sum(counts * jax.nn.log_softmax(W, axis=-1)) / total


@jax.jit
def _lookup(W, idx):
    return W[idx]  # (B,T,V)


@jax.jit
def _forward(W, idx, targets):
    logits = W[idx]  # (B,T,V)
    return logits, nll(logits, targets)


@jax.jit
def _grads(W, idx, targets):
    """loss, dlogits (B,T,V) and dW (V,V): the lookup's vjp carries dlogits back to the table."""
    logits, lookup_vjp = jax.vjp(lambda w: w[idx], W)  # (B,T,V)
    loss, dlogits = jax.value_and_grad(nll)(logits, targets)
    (dW,) = lookup_vjp(dlogits)  # scatter-add: repeated tokens are summed
    return loss, dlogits, dW


_counts_loss_and_grad = jax.jit(jax.value_and_grad(counts_loss_fn))


@jax.jit
def _eval_counts(W, counts):
    """Exact mean cross-entropy of a split from its counts, in float64 whatever the table's dtype."""
    logp = jax.nn.log_softmax(W.astype(jnp.float64), axis=-1)  # (V,V)
    return -jnp.sum(counts * logp) / jnp.sum(counts)


@functools.partial(jax.jit, static_argnames=("greedy",))
def _next_token_probs(W, temperature, top_k, greedy):
    """(V,V) float64: row i is the distribution of the token after i; top_k = V keeps every token."""
    logits = W.astype(jnp.float64)
    if greedy:  # all mass on the first maximum
        return jax.nn.one_hot(jnp.argmax(logits, axis=1), W.shape[1], dtype=jnp.float64)
    logits = logits / temperature
    kth = jnp.take(jnp.sort(logits, axis=1), W.shape[1] - top_k, axis=1)[:, None]  # (V,1) the k-th largest
    logits = jnp.where(logits < kth, -jnp.inf, logits)  # ties with the k-th are kept
    return jax.nn.softmax(logits, axis=-1)


# ----------------------------------------------------------------------------
# AdamW and the jitted training steps


def adamw(lr, b1, b2, eps, weight_decay) -> optax.GradientTransformation:
    """optax.adamw with torch.optim.AdamW's semantics.

    optax computes m_hat / (sqrt(v_hat) + eps) with m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t), t counted from 1, and decays p by lr * wd * p off
    the weights before the update: torch's algorithm, term for term (eps
    outside the root, eps_root 0).
    """
    return optax.adamw(learning_rate=lr, b1=b1, b2=b2, eps=eps, eps_root=0.0, weight_decay=weight_decay)


def _train_step(loss):
    """One jitted program: loss, gradient by jax.value_and_grad, AdamW, the update.

    The hyperparameters (lr, b1, b2, eps, wd) arrive as Python floats, which
    jit traces as weakly typed scalars: a schedule's new lr each step costs no
    recompile, one program serves every config, and they stay doubles, so
    1 - b2^t is computed as torch computes it while the float32 arrays stay
    float32. (optax.inject_hyperparams would cast them to the table's dtype:
    0.999 in float32 puts a 1.3e-5 error into 1 - b2^t at t = 1.)
    The table and the optimizer state are donated: updated in place.
    """

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(W, opt_state, hyper, *batch):
        value, g = jax.value_and_grad(loss)(W, *batch)
        updates, opt_state = adamw(*hyper).update(g, opt_state, W)
        return optax.apply_updates(W, updates), opt_state, value

    return step


_step_ids = _train_step(loss_fn)  # (W, state, hyper, idx (B,T), targets (B,T))
_step_counts = _train_step(counts_loss_fn)  # (W, state, hyper, counts (V,V), N)


def _adam_index(opt_state) -> int:
    """Where optax.adamw's chain keeps its ScaleByAdamState (count, mu, nu)."""
    return next(i for i, s in enumerate(opt_state) if isinstance(s, optax.ScaleByAdamState))


# ----------------------------------------------------------------------------
# the model


class JaxBigram:
    """Core's Model protocol over a jax.Array table and an optax AdamW state."""

    def __init__(self, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        check_dtype(dtype)
        self.dtype = dtype
        self.jax_device = resolve_device(device)
        self.device = device_name(self.jax_device)
        self.vocab_size = int(np.shape(weights)[0])
        self.optim = optim
        self.lr = optim.lr  # set_lr changes it: a schedule's lr, step by step
        self.W = self._put(weights)  # (V,V)
        zeros = np.zeros_like(self._real(weights))
        self.opt_state = self._opt_state(zeros, zeros, 0)

    def _put(self, a, dtype=None) -> jax.Array:
        """A host array onto our device in the table's dtype (or `dtype`): a copy, nothing to compile.

        Inside the x64 scope: outside it jax would truncate a float64 array to float32.
        """
        with jax.enable_x64(True):
            return jax.device_put(np.asarray(a, dtype=dtype or self.dtype), self.jax_device)

    def _opt_state(self, mu, nu, step: int):
        """optax.adamw's state holding these moments and step count; built, not computed.

        Its structure comes from tracing optax's own init (jax.eval_shape), so
        nothing is compiled and nothing here depends on optax's internals
        beyond the ScaleByAdamState it documents.
        """
        if getattr(self, "_state_shapes", None) is None:
            with self._scope():
                self._state_shapes = jax.eval_shape(adamw(0.0, 0.9, 0.999, 1e-8, 0.0).init, self.W)
        state = jax.tree.map(lambda s: self._put(np.zeros(s.shape), s.dtype), self._state_shapes)
        i = _adam_index(state)
        adam = state[i]._replace(count=self._put(step, np.int32), mu=self._put(mu), nu=self._put(nu))
        return (*state[:i], adam, *state[i + 1:])

    def _hyper(self) -> tuple[float, ...]:
        c = self.optim
        return (float(self.lr), float(c.beta1), float(c.beta2), float(c.eps), float(c.weight_decay))

    def _scope(self):
        """x64 on for this call only (float32 arrays stay float32), arrays created on our device."""
        stack = contextlib.ExitStack()
        stack.enter_context(jax.enable_x64(True))
        stack.enter_context(jax.default_device(self.jax_device))
        return stack

    # Inputs go to the compiled programs as NumPy arrays (jit moves them to the device),
    # cast first: int32 ids whatever the corpus's id dtype, so one program per shape,
    # and reals in the table's dtype, so a float32 model never meets a float64 array.

    def _ids(self, a):
        return np.asarray(a, dtype=np.int32)  # (B,T)

    def _real(self, a):
        return np.asarray(a, dtype=self.dtype)

    def forward(self, idx, targets=None):
        """idx (B,T) -> logits (B,T,V), the mean cross-entropy (float) or None."""
        with self._scope():
            if targets is None:
                return np.asarray(_lookup(self.W, self._ids(idx))), None
            logits, loss = _forward(self.W, self._ids(idx), self._ids(targets))
            return np.asarray(logits), float(loss)

    def grads(self, idx, targets):
        """{loss, dlogits (B,T,V), dW (V,V)} by autodiff; no update."""
        with self._scope():
            loss, dlogits, dW = _grads(self.W, self._ids(idx), self._ids(targets))
            return {"loss": float(loss), "dlogits": np.asarray(dlogits), "dW": np.asarray(dW)}

    def loss_and_grad(self, idx, targets):
        g = self.grads(idx, targets)
        return g["loss"], g["dW"]

    def loss_and_grad_counts(self, counts):
        """counts (V,V) of a batch's (x,y) pairs -> loss, dW (V,V), by jax.grad of the counts loss."""
        with self._scope():
            c = self._real(counts)
            loss, dW = _counts_loss_and_grad(self.W, c, c.sum(dtype=self.dtype))
            return float(loss), np.asarray(dW)

    def train_step(self, idx, targets):
        """Forward, backward and one AdamW update in one compiled program; the loss before it."""
        with self._scope():
            self.W, self.opt_state, loss = _step_ids(self.W, self.opt_state, self._hyper(), self._ids(idx),
                                                     self._ids(targets))
            return float(loss)

    def train_step_counts(self, counts, row_sums=None, total=None):
        """train_step from the batch's counts (V,V): O(V^2), one compiled program. row_sums is not needed."""
        with self._scope():
            N = np.asarray(np.sum(counts) if total is None else total, dtype=self.dtype)
            self.W, self.opt_state, loss = _step_counts(self.W, self.opt_state, self._hyper(), self._real(counts), N)
            return float(loss)

    def prepare_training(self) -> None:
        """Compile the counts step (the default training path) before a run's clock starts.

        core's make_step calls this. The step runs once on copies of the table and
        state with zero counts, so nothing here moves; the textbook step, whose
        program depends on the batch shape, compiles at its first step.
        """
        copy = lambda a: self._put(np.asarray(a), a.dtype)  # noqa: E731 - the step donates its inputs
        with self._scope():
            V = self.vocab_size
            _step_counts(copy(self.W), jax.tree.map(copy, self.opt_state), self._hyper(),
                         np.zeros((V, V), dtype=self.dtype), np.asarray(1, dtype=self.dtype))

    def set_lr(self, lr):
        """The lr of the following steps (core's schedule sets it before each one); no recompile."""
        self.lr = lr

    def eval_counts(self, counts):
        """Exact mean cross-entropy of a split from its (V,V) counts, in float64."""
        counts = np.asarray(counts, dtype=np.float64)
        if not counts.sum():
            return float("nan")
        with self._scope():
            return float(_eval_counts(self.W, counts))

    def next_token_probs(self, temperature=1.0, top_k=None):
        """(V,V) float64 on the host: row i = distribution of the token after i."""
        top_k = self.vocab_size if top_k is None else min(int(top_k), self.vocab_size)
        with self._scope():  # temperature and k are traced: one program per table shape
            return np.asarray(_next_token_probs(self.W, float(temperature or 1.0), top_k, greedy=temperature == 0))

    def generate(self, idx, coins, temperature=1.0, top_k=None):
        """idx (B,T), coins (B,N) -> (B,T+N): core's inverse-CDF chain over this model's probabilities."""
        return sample_chain(self.next_token_probs(temperature, top_k), np.asarray(idx), coins)

    def get_state(self):
        adam = self.opt_state[_adam_index(self.opt_state)]
        return {
            WEIGHT_KEY: np.array(self.W),
            "adamw.exp_avg": np.array(adam.mu),
            "adamw.exp_avg_sq": np.array(adam.nu),
            "adamw.step": np.array(int(adam.count), dtype=np.int64),
        }

    def set_state(self, state):
        """Restore get_state()'s arrays; the learning rate stays this model's (a schedule sets it)."""
        self.W = self._put(state[WEIGHT_KEY])
        self.opt_state = self._opt_state(state["adamw.exp_avg"], state["adamw.exp_avg_sq"], int(state["adamw.step"]))
