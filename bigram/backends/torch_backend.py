"""Plugin entry for the PyTorch backend.

This module is what the entry point loads, so it must not import torch:
`bigram --help` and the NumPy backend never pay for it. The model lives in
torch_model.py and is imported on first use.
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

from bigram.core.backend import CAPABILITIES, AdamWConfig
from bigram.core.hookspecs import hookimpl


class TorchBackend:
    name: ClassVar[str] = "torch"
    description: ClassVar[str] = "PyTorch nn.Module with torch.optim.AdamW (cpu, cuda)"
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES

    @classmethod
    def devices(cls):
        if importlib.util.find_spec("torch") is None:
            return []
        import torch

        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        from bigram.backends.torch_model import TorchBigram

        return TorchBigram(weights, device=device, dtype=dtype, optim=optim)


@hookimpl
def bigram_backends():
    return [TorchBackend]
