"""The framework-agnostic heart of bigram. Never imports torch.

Names are imported on first use (PEP 562), so `import bigram.core.errors`
(which every CLI command does) does not load NumPy: `bigram --help` stays fast.
"""

from importlib import import_module

_EXPORTS = {
    "bigram.core.backend": ("STATE_KEYS", "WEIGHT_KEY", "AdamWConfig", "Backend", "Model"),
    "bigram.core.checkpoint": ("Checkpoint", "load_checkpoint", "save_checkpoint"),
    "bigram.core.data": ("Batcher", "Corpus", "bigram_counts", "read_corpus"),
    "bigram.core.errors": ("BigramError",),
    "bigram.core.plugins": ("get_plugin_manager", "load_backends"),
    "bigram.core.sampling": ("draw_coins", "init_weights", "sample_chain"),
    "bigram.core.tokenizer": ("CharTokenizer", "Tokenizer"),
    "bigram.core.train": ("TrainConfig", "TrainResult"),  # the loop: bigram.core.train.train
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'bigram.core' has no attribute {name!r}")


def __dir__():
    return __all__
