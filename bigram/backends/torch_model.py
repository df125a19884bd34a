"""The PyTorch backend: the lecture's BigramLanguageModel, wrapped for core.

B = batch, T = time (block), C = channels = V, the vocab size.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from bigram.core import threads
from bigram.core.backend import WEIGHT_KEY, AdamWConfig, check_dtype
from bigram.core.errors import BigramError
from bigram.core.sampling import sample_chain


class BigramLanguageModel(nn.Module):
    """The lecture's model: each token reads the logits for its successor from a table."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B,T,C)
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        # Reshape only inside the loss: callers always get (B,T,C) back.
        loss = F.cross_entropy(logits.view(B * T, C), targets.view(B * T))
        return logits, loss


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when there is one; asking for a missing one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BigramError("--device cuda was asked for but CUDA is not available here; use --device cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BigramError(f"unknown device {device!r}; use auto, cpu or cuda") from None


def _log_softmax_backward(grad_output: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """(V,C), (V,C) -> grad_output - exp(logp) * grad_output.sum(-1): log_softmax's backward, one kernel.

    torch._log_softmax_backward_data is the kernel autograd calls (its signature
    has been stable since torch 1.11); where it is missing, the same in two ops.
    """
    kernel = getattr(torch, "_log_softmax_backward_data", None)
    if kernel is not None:
        return kernel(grad_output, logp, -1, logp.dtype)
    return torch.addcmul(grad_output, logp.exp(), grad_output.sum(-1, keepdim=True), value=-1.0)


class TorchBigram:
    """Core's Model protocol over BigramLanguageModel and torch.optim.AdamW."""

    def __init__(self, weights: np.ndarray, *, device="auto", dtype="float32", optim=AdamWConfig()):
        check_dtype(dtype)
        self.torch_device = resolve_device(device)
        self.device = self.torch_device.type
        self.dtype = dtype
        self.vocab_size = weights.shape[0]
        # Intra-op threads by the table's size (or --threads): torch's default of one per core
        # makes every small kernel wait on threads that another process may have descheduled.
        torch.set_num_threads(threads.for_table(self.vocab_size))
        self.model = BigramLanguageModel(self.vocab_size).to(self.torch_device, getattr(torch, dtype))
        with torch.no_grad():
            self.model.token_embedding_table.weight.copy_(torch.from_numpy(np.asarray(weights)))
        self.optim = optim
        self._optimizer = None  # built at the first step: see `optimizer`
        self._pending = {}  # AdamW state set before the optimizer exists (set_state on a fresh model)

    @property
    def optimizer(self) -> torch.optim.AdamW:
        """torch.optim.AdamW over the table, built on first use.

        Building it imports torch._dynamo (about 2 s, as long as `import torch`
        itself), which generate, eval, fit, explain and plot never need. Until
        then the lr and any restored state wait in self.optim and self._pending.
        """
        if self._optimizer is None:
            o = self.optim
            opt = torch.optim.AdamW(self.model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                    weight_decay=o.weight_decay)
            if self._pending:
                opt.state[self.weight] = self._pending
            self._optimizer, self._pending = opt, {}
        return self._optimizer

    def prepare_training(self) -> None:
        """Build the optimizer now, before a run's clock starts (core's make_step calls this)."""
        self.optimizer  # noqa: B018 - the property builds it

    def _adamw_state(self) -> dict:
        """AdamW's state for the table ({} before the first step), without building the optimizer."""
        if self._optimizer is None:
            return self._pending
        return self._optimizer.state.get(self.weight, {})

    @property
    def weight(self) -> torch.Tensor:
        return self.model.token_embedding_table.weight

    def _ids(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.int64), device=self.torch_device)

    def forward(self, idx, targets=None):
        with torch.no_grad():
            logits, loss = self.model(self._ids(idx), None if targets is None else self._ids(targets))
        return logits.cpu().numpy(), (None if loss is None else float(loss))

    def loss_and_grad(self, idx, targets):
        self.model.zero_grad(set_to_none=True)
        _, loss = self.model(self._ids(idx), self._ids(targets))
        loss.backward()
        return loss.item(), self.weight.grad.detach().cpu().numpy()

    def train_step(self, idx, targets):
        _, loss = self.model(self._ids(idx), self._ids(targets))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def set_lr(self, lr):
        """The learning rate of the following steps, as nanoGPT sets it: in the param group."""
        if self._optimizer is None:  # the optimizer will be built with it
            self.optim = dataclasses.replace(self.optim, lr=lr)
            return
        for group in self._optimizer.param_groups:
            group["lr"] = lr

    @torch.no_grad()
    def eval_counts(self, counts):
        logp = F.log_softmax(self.weight.double(), dim=-1)  # (V,V)
        c = torch.as_tensor(counts, device=self.torch_device, dtype=torch.float64)
        n = c.sum()
        return float(-(c * logp).sum() / n) if n > 0 else float("nan")

    @torch.no_grad()
    def next_token_probs(self, temperature=1.0, top_k=None):
        """(V,V) float64 on the host: row i = distribution of the token after i."""
        logits = self.weight.double()
        if temperature == 0:
            probs = torch.zeros_like(logits)
            probs[torch.arange(len(logits)), logits.argmax(dim=1)] = 1.0
            return probs.cpu().numpy()
        # Each row's max shifted to 0 first: a tiny T then gives -inf (the T -> 0 limit), never inf - inf = NaN.
        logits = (logits - logits.max(dim=1, keepdim=True).values) / temperature  # (V,V)
        if top_k is not None and top_k < logits.shape[1]:
            v, _ = torch.topk(logits, top_k)  # (V,k)
            logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
        return F.softmax(logits, dim=-1).cpu().numpy()

    def generate(self, idx, coins, temperature=1.0, top_k=None):
        # The table is computed once on the device; the chain then reads one row per token.
        return sample_chain(self.next_token_probs(temperature, top_k), np.asarray(idx), coins)

    def get_state(self):
        st = self._adamw_state()
        zeros = torch.zeros_like(self.weight)
        as_np = lambda t: t.detach().cpu().numpy().copy()  # noqa: E731
        return {
            WEIGHT_KEY: as_np(self.weight),
            "adamw.exp_avg": as_np(st.get("exp_avg", zeros)),
            "adamw.exp_avg_sq": as_np(st.get("exp_avg_sq", zeros)),
            "adamw.step": np.array(int(st["step"]) if "step" in st else 0, dtype=np.int64),
        }

    def set_state(self, state):
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(np.asarray(state[WEIGHT_KEY])))
        step = int(state["adamw.step"])
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=self.weight.dtype, device=self.torch_device).clone()  # noqa: E731
        st = {} if step == 0 else {
            "step": torch.tensor(float(step)),  # torch keeps step as a float32 cpu tensor
            "exp_avg": t(state["adamw.exp_avg"]),
            "exp_avg_sq": t(state["adamw.exp_avg_sq"]),
        }
        if self._optimizer is None:
            self._pending = st
            return
        self._optimizer.state.clear()
        if st:
            self._optimizer.state[self.weight] = st

    def grads(self, idx, targets):
        """idx, targets (B,T) -> {loss, dlogits (B,T,V), dW (V,V)} from autograd; no update."""
        self.model.zero_grad(set_to_none=True)
        logits = self.model.token_embedding_table(self._ids(idx))  # (B,T,C)
        logits.retain_grad()  # keep the non-leaf gradient that autograd would free
        B, T, C = logits.shape
        loss = F.cross_entropy(logits.view(B * T, C), self._ids(targets).view(B * T))
        loss.backward()
        as_np = lambda t: t.detach().cpu().numpy()  # noqa: E731
        return {"loss": loss.item(), "dlogits": as_np(logits.grad), "dW": as_np(self.weight.grad)}

    def loss_and_grad_counts(self, counts):
        """counts (V,V) of a batch's (x,y) pairs -> loss, dW: autograd on the counts loss."""
        self.model.zero_grad(set_to_none=True)
        c = torch.as_tensor(np.asarray(counts), dtype=self.weight.dtype, device=self.torch_device)  # (V,V)
        loss = -(c * F.log_softmax(self.weight, dim=-1)).sum() / c.sum()
        loss.backward()
        return loss.item(), self.weight.grad.detach().cpu().numpy()

    def train_step_counts(self, counts, row_sums=None, total=None):
        """train_step from the batch's counts (V,V): the same gradient in O(V^2), without autograd.

        loss = -sum_ij c_ij logp_ij / N and dL/dW_i = (n_i softmax(W_i) - c_i) / N.
        At V=65 each kernel costs less than its dispatch, so the step is written
        for few of them: it works on a detached view of the table (no autograd
        graph), and the 1/N goes to the AdamW kernel as its gradient scale.

        The gradient is log_softmax's own backward kernel, the one autograd would
        run for this loss: given grad_output g and output logp it returns
        g - exp(logp) * g.sum(-1), so with g = c it is c - n_i p_i = -N dL/dW in
        one pass (n_i = sum_j c_ij is summed inside). row_sums is not needed.
        """
        W, st, fused, _ = self._fast if self._fast_valid() else self._fast_state()
        c = torch.from_numpy(counts)  # (V,V) zero-copy on cpu
        if c.dtype != W.dtype or self.device != "cpu":
            c = c.to(W.device, W.dtype)
        N = float(counts.sum() if total is None else total)  # B*T
        logp = torch.log_softmax(W, -1)  # (V,V)
        loss = -torch.mul(c, logp).sum().item() / N
        grad = _log_softmax_backward(c, logp)  # (V,V) c_i - n_i p_i = -N dL/dW_i
        if fused is None:
            self.weight.grad = grad.div_(-N)
            self.optimizer.step()
            return loss
        g, step = self.optimizer.param_groups[0], st["step"]
        # step += 1 (AdamW increments before the update too). On CPU through a NumPy view of the
        # tensor's storage, made afresh each time: ~1 µs against ~4 µs for a torch kernel.
        if step.is_cpu:
            step.numpy()[()] += 1
        else:
            step.add_(1)
        fused([W], [grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [step],
              lr=g["lr"], beta1=g["betas"][0], beta2=g["betas"][1], weight_decay=g["weight_decay"],
              eps=g["eps"], amsgrad=False, maximize=False, grad_scale=self._grad_scale(-N))
        return loss

    def _fast_valid(self) -> bool:
        """The cached state is still the optimizer's (set_state and the first step replace it)."""
        fast = getattr(self, "_fast", None)
        return fast is not None and fast[1] is self.optimizer.state.get(fast[3]) and bool(fast[1])

    def _fast_state(self):
        """(detached table, AdamW state dict, torch._fused_adamw_ or None), cached per state.

        torch._fused_adamw_ is the kernel behind AdamW(fused=True): one in-place
        pass, without optimizer.step()'s per-call Python, which at (65,65) costs
        more than the math. It updates the optimizer's own state tensors, so
        get_state/set_state and the textbook step see the same moments. Without
        it (older torch, or the step counter kept off the device), the optimizer runs.
        """
        param = self.model.token_embedding_table.weight
        st = self.optimizer.state.get(param)
        if not st:  # what AdamW's first step creates
            st = self.optimizer.state[param]
            st.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(param), exp_avg_sq=torch.zeros_like(param))
        fused = getattr(torch, "_fused_adamw_", None)
        if fused is not None and st["step"].device != param.device:
            fused = None
        self._fast = (param.detach(), st, fused, param)  # the detached view shares the Parameter's storage
        return self._fast

    def _grad_scale(self, value: float) -> torch.Tensor:
        """A cached 0-d tensor holding `value` (the kernel divides the gradient by it)."""
        gs = getattr(self, "_gs", None)
        if gs is None or gs[0] != value:
            self._gs = gs = (value, torch.tensor(value, dtype=torch.float32, device=self.torch_device))
        return gs[1]
