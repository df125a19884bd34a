"""Past one process with torch: torchrun process groups, DDP training, device batching, distributed counts.

Nothing here is home-made parallelism: the process group, the gradient
all-reduce (DistributedDataParallel) and the counts all-reduce are
torch.distributed's. Imported only by `train --distributed`, `--device cuda`
and code that asks for it, never by core.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from bigram.backends.torch_model import resolve_device
from bigram.core.data import Batcher, bigram_counts, release_pages
from bigram.core.distributed import TIMEOUT_ENV, dist_timeout, shard_bounds, torchrun_env
from bigram.core.errors import BigramError


def init_distributed(device: str = "auto") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment: nccl on CUDA, gloo on CPU.

    On CUDA each rank takes the GPU numbered by its LOCAL_RANK. Returns (rank, world size).
    Joining, and every collective after it, waits at most $BIGRAM_DIST_TIMEOUT seconds (300):
    an unreachable MASTER_ADDR or a dead rank is a one-line error then, not torch's 30-minute wait.
    """
    torchrun_env()  # each variable checked: a bad one would raise deep in torch, RANK >= WORLD_SIZE would hang
    timeout = dist_timeout()
    use_cuda = resolve_device(device).type == "cuda"  # a missing CUDA is a one-line error there
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        with _quiet_stderr() as quiet:
            try:
                _join("nccl" if use_cuda else "gloo", timedelta(seconds=timeout))
            except RuntimeError as e:  # DistNetworkError, DistStoreError: nobody answered in time
                quiet.drop()
                where = f"{os.environ['MASTER_ADDR'].strip()}:{os.environ['MASTER_PORT'].strip()}"
                raise BigramError(
                    f"rank {os.environ['RANK'].strip()} could not join the job at {where} within {timeout:g} s "
                    f"({_first_line(e)}); check MASTER_ADDR/MASTER_PORT and that every rank started, or raise "
                    f"${TIMEOUT_ENV}") from None
    return dist.get_rank(), dist.get_world_size()


def _join(backend: str, timeout: timedelta) -> None:
    """init_process_group on torchrun's store, under a prefix of its own per restart.

    torchrun (2.x) keeps one TCPStore for the whole job and hands it to every restart of the
    workers unprefixed, so a restarted gloo rank would read the dead ranks' addresses and fail
    to connect ("Connection refused"). TORCHELASTIC_RESTART_COUNT names the attempt.
    """
    store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0").strip() or "0"
    store = dist.PrefixStore(f"bigram/attempt_{attempt}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _quiet_stderr:
    """torch's C++ layer logs every rendezvous retry with a stack trace to fd 2: hold that output
    back while joining, and show it only if the join succeeds (a failure is our one line)."""

    def __enter__(self):
        import tempfile

        sys.stderr.flush()
        self.saved, self.buf = os.dup(2), tempfile.TemporaryFile()
        os.dup2(self.buf.fileno(), 2)
        self.keep = True
        return self

    def drop(self) -> None:
        self.keep = False

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        if self.keep and exc[0] is None:
            self.buf.seek(0)
            held = self.buf.read()
            if held:
                sys.stderr.flush()
                os.write(2, held)
        self.buf.close()
        return False


def _first_line(e: BaseException) -> str:
    """A torch.distributed error's first line without its C++ source location."""
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", line).split(". This is typically")[0].strip()


def lost_rank_error(e: BaseException, what: str) -> BigramError:
    """A collective that failed: a rank died (its connection closed) or did not answer in time."""
    rank = dist.get_rank() if dist.is_initialized() else "?"
    return BigramError(
        f"rank {rank}: {what} failed ({_first_line(e)}): another rank died or did not answer within "
        f"{dist_timeout():g} s (${TIMEOUT_ENV}); under `torchrun --max-restarts N` with --resume auto the job "
        "restarts from its last checkpoint")


class TorchGroup:
    """core.distributed.Group on torch.distributed's default process group (gloo or nccl)."""

    distributed = True

    def __init__(self):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None

    def agree(self, flag: int) -> int:
        t = torch.tensor([int(flag)], dtype=torch.int64, device=self.device)
        try:
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        except RuntimeError as e:
            raise lost_rank_error(e, "agreeing on the step") from None
        return int(t.item())

    def gather(self, obj):
        out = [None] * self.world if self.rank == 0 else None
        try:
            dist.gather_object(obj, out, dst=0)
        except RuntimeError as e:
            raise lost_rank_error(e, "gathering the ranks' batch streams") from None
        return out

    def broadcast(self, obj):
        box = [obj]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError as e:
            raise lost_rank_error(e, "receiving rank 0's decision") from None
        return box[0]


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

    def release(self) -> None:
        """Drop the DDP wrapper (its reducer and its hold on the process group) before the group is
        destroyed: one left to interpreter exit can abort the process (gloo's threads, SIGABRT)."""
        if self.module is not self.inner.model:
            self.module = self.inner.model
            import gc

            gc.collect()

    def _ids(self, a) -> torch.Tensor:
        if isinstance(a, torch.Tensor):
            return a.to(self.inner.torch_device, torch.long, non_blocking=True)
        return self.inner._ids(a)

    def train_step(self, idx, targets) -> float:
        if not self.distributed:
            return self._step(idx, targets)
        try:
            return self._step(idx, targets)
        except RuntimeError as e:  # DDP's all-reduce in backward(), or the loss's: a rank is gone
            raise lost_rank_error(e, "a training step's all-reduce") from None

    def _step(self, idx, targets) -> float:
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
    try:
        dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    except RuntimeError as e:
        raise lost_rank_error(e, "summing the bigram counts") from None
    return counts.cpu().numpy()
