"""How a run goes past one CPU process: a torchrun rank (--distributed) or on CUDA.

The torch parts are imported only on those paths, so `bigram --help` and the
NumPy backend never load torch.
"""

from __future__ import annotations

from contextlib import contextmanager

from bigram.core.errors import BigramError


class TrainRun:
    """One process (rank 0 of 1), or one rank of a torchrun job joined at construction."""

    def __init__(self, backend: str, device: str, distributed: bool):
        from bigram.core.distributed import Solo

        self.backend, self.distributed = backend, distributed
        self.rank, self.world = 0, 1
        self.group = Solo()  # the collectives core's loop calls (core.distributed.Group)
        if distributed:
            if backend != "torch":
                raise BigramError(f"--distributed runs on torch.distributed; use --backend torch, not {backend!r}")
            from bigram.core.distributed import torchrun_env

            torchrun_env()  # checked before paying for torch, and before joining a group that could hang
            from bigram.backends.torch_dist import init_distributed

            self.rank, self.world = init_distributed(device)
            from bigram.backends.torch_dist import TorchGroup

            self.group = TorchGroup()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, model, corpus, cfg, batcher_state: dict | None = None):
        """(model, batcher) for core's train(); batcher None means core's default one.

        `batcher_state`: this rank's saved stream, when resuming."""
        if self.backend != "torch" or not (self.distributed or model.device == "cuda"):
            return model, None
        from bigram.backends.torch_dist import DeviceBatcher, TorchTrainer
        from bigram.core.distributed import rank_batcher

        batcher = rank_batcher(corpus.train, cfg.batch_size, cfg.block_size, cfg.seed, self.rank, self.world)
        model = TorchTrainer(model, distributed=self.distributed)
        self.trainer = model
        if model.device == "cuda":  # the split lives on the GPU; batches are gathered there
            batcher = DeviceBatcher(batcher, model.torch_device)
        if batcher_state is not None:
            batcher.set_state(batcher_state)
        return model, batcher

    def close(self) -> None:
        if self.distributed:
            from bigram.backends.torch_dist import close_distributed

            if getattr(self, "trainer", None) is not None:
                self.trainer.release()  # DDP's reducer holds the group: let it go first
            close_distributed()


@contextmanager
def counting(distributed: bool, device: str):
    """Yield (count function, is this the rank that reports): one process, or a torchrun job."""
    if not distributed:
        from bigram.core.data import bigram_counts

        yield bigram_counts, True
        return
    from bigram.core.distributed import torchrun_env

    torchrun_env()  # before importing torch: a bad torchrun environment is one line, at once
    from bigram.backends.torch_dist import close_distributed, distributed_bigram_counts, init_distributed

    rank, _ = init_distributed(device)
    try:
        yield distributed_bigram_counts, rank == 0
    finally:
        close_distributed()
