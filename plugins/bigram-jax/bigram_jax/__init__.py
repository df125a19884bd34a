"""bigram-jax: the bigram model in JAX, as a bigram backend plugin.

This module is what bigram's entry point loads, so it must stay light: it
never imports jax. `bigram --help` and the other backends do not pay for it;
the model (bigram_jax/model.py) is imported on first use.
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar

from bigram.core.backend import CAPABILITIES, AdamWConfig
from bigram.core.hookspecs import hookimpl

__version__ = "0.1.0"


class JaxBackend:
    name: ClassVar[str] = "jax"
    description: ClassVar[str] = "JAX: jax.grad, optax.adamw, jit-compiled steps (cpu, gpu)"
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES  # everything core can ask for

    @classmethod
    def devices(cls) -> list[str]:
        """cpu, and cuda (also accepted as gpu) where jax sees a GPU; [] without jax or optax."""
        if any(importlib.util.find_spec(m) is None for m in ("jax", "optax")):
            return []
        from bigram_jax.model import device_names

        return device_names()

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=AdamWConfig()):
        from bigram_jax.model import JaxBigram

        return JaxBigram(weights, device=device, dtype=dtype, optim=optim)


@hookimpl
def bigram_backends():
    return [JaxBackend]
