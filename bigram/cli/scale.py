"""How `bigram train` runs past one CPU process (a torchrun rank, --distributed, or CUDA), and --tokenizer.

The torch parts are imported only on those paths, so `bigram --help` and the
NumPy backend never load torch.
"""

from __future__ import annotations

import os

from bigram.core.errors import BigramError


TOKENIZER_HELP = "char (one id per distinct character of a text --data; the default) or byte (V=256, any UTF-8)."


def load_corpus_as(data, kind: str | None):
    """The corpus at `data`, tokenized as --tokenizer asks (None: char for a text, a DIR's own for a DIR).

    A char vocabulary is built from the text itself; a fixed one (byte) is
    handed to the loader. A prepared DIR keeps the tokenizer it was prepared
    with: asking for another is an error, never a silent re-tokenization.
    """
    from bigram.core.data import Corpus
    from bigram.core.tokenizer import TOKENIZERS

    if kind is not None and kind not in TOKENIZERS:
        raise BigramError(f"unknown --tokenizer {kind!r}; use one of {', '.join(TOKENIZERS)}")
    cls = TOKENIZERS.get(kind)
    corpus = Corpus.load(data, tokenizer=cls() if cls is not None and cls.fixed_vocabulary else None)
    got = getattr(corpus.tokenizer, "kind", None)
    if kind is not None and got != kind:
        raise BigramError(f"{corpus.source} was prepared with the {got} tokenizer, not {kind}; drop --tokenizer, "
                          f"or prepare it again with `bigram data prepare FILE --out DIR --tokenizer {kind}`")
    return corpus


class TrainRun:
    """One process (rank 0 of 1), or one rank of a torchrun job joined at construction."""

    def __init__(self, backend: str, device: str, distributed: bool):
        self.backend, self.distributed = backend, distributed
        self.rank, self.world = 0, 1
        if distributed:
            if backend != "torch":
                raise BigramError(f"--distributed runs on torch.distributed; use --backend torch, not {backend!r}")
            if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:  # checked before paying for torch
                raise BigramError(
                    "--distributed needs torchrun's environment (RANK, WORLD_SIZE unset); launch with "
                    "`torchrun --nproc_per_node N -m bigram --backend torch train --distributed ...`"
                )
            from bigram.backends.torch_dist import init_distributed

            self.rank, self.world = init_distributed(device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def setup(self, model, corpus, cfg):
        """(model, batcher) for core's train(); batcher None means core's default one."""
        if self.backend != "torch" or not (self.distributed or model.device == "cuda"):
            return model, None
        from bigram.backends.torch_dist import DeviceBatcher, TorchTrainer
        from bigram.core.distributed import rank_batcher

        batcher = rank_batcher(corpus.train, cfg.batch_size, cfg.block_size, cfg.seed, self.rank, self.world)
        model = TorchTrainer(model, distributed=self.distributed)
        if model.device == "cuda":  # the split lives on the GPU; batches are gathered there
            batcher = DeviceBatcher(batcher, model.torch_device)
        return model, batcher

    def close(self) -> None:
        if self.distributed:
            from bigram.backends.torch_dist import close_distributed

            close_distributed()
