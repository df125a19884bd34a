"""Past one process with torch: torchrun process groups, DDP training, device batching, distributed counts.

Nothing here is home-made parallelism: the process group, the gradient
all-reduce (DistributedDataParallel) and the counts all-reduce are
torch.distributed's. Imported only by `train --distributed`, `--device cuda`
and code that asks for it, never by core.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bigram.backends.torch_model import resolve_device
from bigram.core.data import Batcher, bigram_counts, release_pages
from bigram.core.distributed import shard_bounds, torchrun_env


def init_distributed(device: str = "auto") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment: nccl on CUDA, gloo on CPU.

    On CUDA each rank takes the GPU numbered by its LOCAL_RANK. Returns (rank, world size).
    """
    torchrun_env()  # each variable checked: a bad one would raise deep in torch, RANK >= WORLD_SIZE would hang
    use_cuda = resolve_device(device).type == "cuda"  # a missing CUDA is a one-line error there
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class TorchTrainer:
    """A TorchBigram whose train_step takes host or device batches and, in a process group,
    averages gradients across ranks with DistributedDataParallel.

    Everything but train_step (forward, eval_counts, get_state, ...) is the wrapped model's.
    """

    def __init__(self, inner, *, distributed: bool = False):
        self.inner = inner
        self.distributed = distributed
        ids = [torch.cuda.current_device()] if inner.torch_device.type == "cuda" else None  # LOCAL_RANK's GPU
        # DDP broadcasts rank 0's weights at wrap time, then all-reduces gradients in backward().
        self.module = DistributedDataParallel(inner.model, device_ids=ids) if distributed else inner.model

    # Gradients must flow through DDP's autograd hooks to be all-reduced, so the
    # counts step (which bypasses autograd) is not offered: core's make_step
    # then takes train_step.
    train_step_counts = None
    loss_and_grad_counts = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _ids(self, a) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            return a.to(self.inner.torch_device, torch.long, non_blocking=True)
        return self.inner._ids(a)

    def train_step(self, idx, targets) -> float:
        _, loss = self.module(self._ids(idx), self._ids(targets))  # loss: mean over this rank's (B/W)*T
        self.inner.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradient averaged over ranks = gradient of the union batch
        self.inner.optimizer.step()
        if self.distributed:  # every rank reports (and checks for NaN) the same loss
            loss = loss.detach().clone()
            dist.all_reduce(loss)
            loss /= dist.get_world_size()
        return loss.item()  # one scalar to the host per step; the batch itself stays on the device


class DeviceBatcher:
    """Batches gathered on the device from the split kept there.

    Window starts still come from the host Batcher's PCG64 stream, `chunk_steps`
    steps per transfer: one small (K,B) copy every K steps, and every device
    sees exactly the batches the CPU would. get_state() is the stream's state
    after the batches handed out, not after the ones prefetched.
    """

    def __init__(self, host: Batcher, device: torch.device, chunk_steps: int = 256):
        self.host = host
        self.device = torch.device(device)
        self.chunk_steps = chunk_steps
        self.data = split_to_device(host.data, self.device)  # (N,)
        self.arange = torch.arange(host.block_size + 1, device=self.device)  # (T+1,)
        self._offsets: torch.Tensor | None = None  # (K,B) prefetched window starts
        self._next = 0
        self._state = host.get_state()

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._offsets is None or self._next == len(self._offsets):
            self._state = self.host.get_state()
            offsets = self.host.offsets(self.chunk_steps)  # (K,B) int64, one draw per row
            self._offsets = torch.from_numpy(offsets).to(self.device)
            self._next = 0
        off = self._offsets[self._next]  # (B,)
        self._next += 1
        win = self.data[off[:, None] + self.arange].long()  # (B,T+1), gathered on the device
        return win[:, :-1].contiguous(), win[:, 1:].contiguous()  # (B,T) each; the model view()s them

    def get_state(self) -> dict:
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = self._state
        rng.random((self._next, self.host.batch_size))  # replay the draws handed out (one u per row)
        return rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.host.set_state(state)
        self._offsets, self._next, self._state = None, 0, state


def split_to_device(data: np.ndarray, device: torch.device, piece: int = 1 << 26) -> torch.Tensor:
    """Copy a (memmapped) split to the device in 64M-token pieces: never a whole host copy.

    uint8 stays uint8; wider ids become int32 (torch indexes those everywhere).
    """
    dtype = torch.uint8 if data.dtype == np.uint8 else torch.int32
    out = torch.empty(len(data), dtype=dtype, device=device)
    np_dtype = np.uint8 if dtype == torch.uint8 else np.int32
    for start in range(0, len(data), piece):
        chunk = np.ascontiguousarray(data[start : start + piece], dtype=np_dtype)
        out[start : start + len(chunk)].copy_(torch.from_numpy(chunk))
        release_pages(data)
    return out


def distributed_bigram_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """Exact (V,V) int64 bigram counts of `tokens`, each rank counting one shard.

    Call it on every rank of an initialized process group with the same
    `tokens` (e.g. the same memmapped split: a rank reads only its shard).
    Shards overlap by one token (core.distributed.shard_bounds), so no pair
    is lost or counted twice; an all-reduce SUM of int64 counts is exact.
    """
    lo, hi = shard_bounds(len(tokens), dist.get_rank(), dist.get_world_size())
    counts = torch.from_numpy(bigram_counts(tokens[lo:hi], vocab_size))  # (V,V) int64
    if dist.get_backend() == "nccl":
        counts = counts.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    return counts.cpu().numpy()
