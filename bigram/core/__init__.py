"""The framework-agnostic heart of bigram. Never imports torch."""

from bigram.core.backend import STATE_KEYS, WEIGHT_KEY, AdamWConfig, Backend, Model
from bigram.core.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from bigram.core.data import Batcher, Corpus, bigram_counts, read_corpus
from bigram.core.errors import BigramError
from bigram.core.plugins import get_plugin_manager, load_backends
from bigram.core.sampling import draw_coins, init_weights, sample_chain
from bigram.core.tokenizer import CharTokenizer, Tokenizer
from bigram.core.train import TrainConfig, TrainResult, train

__all__ = [
    "STATE_KEYS", "WEIGHT_KEY", "AdamWConfig", "Backend", "Batcher", "BigramError", "CharTokenizer",
    "Checkpoint", "Corpus", "Model", "Tokenizer", "TrainConfig", "TrainResult", "bigram_counts",
    "draw_coins", "get_plugin_manager", "init_weights", "load_backends", "load_checkpoint",
    "read_corpus", "sample_chain", "save_checkpoint", "train",
]
