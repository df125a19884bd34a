"""bigram: the character-level bigram language model of "Let's build GPT".

A (vocab, vocab) embedding table read as next-token logits, trained with
cross-entropy and AdamW and sampled one token at a time, with a hand-written
NumPy reference and a PyTorch backend that check each other.
"""

__version__ = "0.1.0"
