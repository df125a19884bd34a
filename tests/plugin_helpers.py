"""Fake third-party distributions for plugin tests, the way pluggy's own tests fake them.

importlib.metadata.entry_points() walks importlib.metadata.distributions();
FakeDists (the `fake_dists` fixture of test_plugins.py) appends Distribution objects
whose METADATA and entry_points.txt are strings, so bigram discovers them
exactly as it would an installed package.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types

import numpy as np

from bigram.backends.numpy_backend import NumpyBackend, NumpyBigram
from bigram.core.hookspecs import hookimpl


class FakeDist(importlib.metadata.Distribution):
    def __init__(self, name: str, version: str, entry_points: dict[str, str]):
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": "[bigram.backends]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()),
        }

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):
        return None


class FakeDists:
    """Adds fake distributions and plugin modules for the length of one test."""

    def __init__(self, monkeypatch, tmp_path):
        self.monkeypatch, self.tmp_path, self.dists = monkeypatch, tmp_path, []
        real = importlib.metadata.distributions
        monkeypatch.setattr(importlib.metadata, "distributions", lambda **kw: [*real(**kw), *self.dists])

    def add(self, dist: str, entry_points: dict[str, str], version: str = "1.0") -> None:
        self.dists.append(FakeDist(dist, version, entry_points))

    def module(self, name: str, *backend_classes) -> str:
        """A plugin module in sys.modules whose hook returns backend_classes."""
        mod = types.ModuleType(name)
        mod.bigram_backends = hookimpl(lambda: list(backend_classes))
        self.monkeypatch.setitem(sys.modules, name, mod)
        return name

    def broken_module(self, name: str, message: str = "boom") -> str:
        """A plugin module on disk that raises when imported."""
        return self.source_module(name, f"raise RuntimeError({message!r})\n")

    def source_module(self, name: str, source: str) -> str:
        """A plugin module on disk with this source, imported afresh by each load."""
        (self.tmp_path / f"{name}.py").write_text(source)
        self.monkeypatch.syspath_prepend(str(self.tmp_path))
        self.monkeypatch.delitem(sys.modules, name, raising=False)
        return name


class FakeBackend(NumpyBackend):
    """A third-party backend that reuses the reference math: it must pass `bigram check`."""

    name = "fake"
    description = "fake third-party backend"


class BuggyBigram(NumpyBigram):
    """The classic embedding-backward bug: a buffered scatter keeps one of repeated tokens."""

    def grads(self, idx, targets):
        g = super().grads(idx, targets)
        dW = np.zeros_like(g["dW"])
        dW[idx.reshape(-1)] = g["dlogits"].reshape(-1, self.vocab_size)  # last write wins
        return {**g, "dW": dW}

    def loss_and_grad(self, idx, targets):
        g = self.grads(idx, targets)
        return g["loss"], g["dW"]


class BuggyBackend(NumpyBackend):
    name = "buggy"
    description = "a backend with a scatter bug, which `bigram check` must catch"

    @classmethod
    def create(cls, weights, *, device="auto", dtype="float32", optim=None):
        from bigram.core.backend import AdamWConfig

        return BuggyBigram(weights, dtype=dtype, optim=optim or AdamWConfig())


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """Run the bigram CLI in this process (faked metadata is seen, torch is imported once): code, stdout, stderr."""
    from clirun import run_cli as run

    return run(list(args))
