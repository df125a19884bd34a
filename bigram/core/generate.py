"""Text in, text out: prompts, seeded samples and next-character distributions, on any backend.

The coins are drawn here from the seed, so every backend writes the same text
for the same checkpoint and seed; the probabilities are the backend's own
(its next_token_probs table). Nothing here is model math.
"""

from __future__ import annotations

import json
import math

import numpy as np

from bigram.core.errors import BigramError
from bigram.core.memory import PER_SAMPLED_TOKEN, check_fits
from bigram.core.sampling import draw_coins, start_token

MAX_SIZE = 2**31 - 1  # as core.train's: beyond any machine's memory


def check_generation_options(max_new_tokens: int, temperature: float, top_k: int | None) -> None:
    """One-line errors for sampling options no run can use (train checks them before it trains)."""
    if max_new_tokens < 0:
        raise BigramError(f"--max-new-tokens must be >= 0, got {max_new_tokens}; 0 samples nothing")
    if max_new_tokens > MAX_SIZE:
        raise BigramError(f"cannot sample {max_new_tokens} tokens; ask for at most {MAX_SIZE} with --max-new-tokens")
    check_fits("--max-new-tokens", max_new_tokens, PER_SAMPLED_TOKEN, what=" (its coins, ids and text)")
    if not math.isfinite(temperature) or temperature < 0:
        raise BigramError(f"--temperature must be a finite number >= 0, got {temperature}; 1.0 samples the model as is")
    if top_k is not None and top_k < 1:
        raise BigramError(f"--top-k must be >= 1, got {top_k}; leave it out to sample from every token")


def check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise BigramError(f"--seed must be an integer from 0 to 2**64-1, got {seed}; e.g. --seed 1337")


def encode_prompt(tokenizer, prompt: str) -> np.ndarray:
    """(1,T) int64 ids of a prompt; characters outside the vocabulary are a one-line error naming them."""
    bad = tokenizer.unknown_chars(prompt) if hasattr(tokenizer, "unknown_chars") else []
    if bad:
        shown = ", ".join(json.dumps(c, ensure_ascii=False) for c in bad[:20])
        raise BigramError(
            f"--prompt has {len(bad)} character(s) not in the model's vocabulary: {shown}; "
            "use only characters from the training corpus (`bigram vocab --checkpoint DIR` lists them)"
        )
    return tokenizer.encode(prompt).astype(np.int64)[None, :]  # (1,T)


def start_ids(tokenizer) -> np.ndarray:
    """(1,1): where a sample with no prompt starts, a newline (token 0 where the vocabulary has none)."""
    return np.array([[start_token(tokenizer)[0]]], dtype=np.int64)


def sample_text(model, tokenizer, *, prompt: str | None, max_new_tokens: int, seed: int,
                temperature: float = 1.0, top_k: int | None = None) -> str:
    """Prompt + max_new_tokens sampled characters, coins drawn in core from `seed`."""
    check_generation_options(max_new_tokens, temperature, top_k)
    check_seed(seed)
    idx = encode_prompt(tokenizer, prompt) if prompt else start_ids(tokenizer)  # (1,T)
    coins = draw_coins(seed, 1, max_new_tokens)  # (1,N)
    out = model.generate(idx, coins, temperature=temperature, top_k=top_k)  # (1,T+N)
    return tokenizer.decode(out[0])


def probs_table(model) -> np.ndarray:
    """(V,V) float64: row i is P(next | current = i), from the backend.

    The backend's own next_token_probs table (its softmax), or for a backend
    without one the softmax of the logits its forward returns for every token.
    """
    if hasattr(model, "next_token_probs"):
        return np.asarray(model.next_token_probs(), dtype=np.float64)
    rows = np.arange(model.vocab_size, dtype=np.int64)[None, :]  # (1,V): every token once
    return softmax_rows(model.forward(rows)[0][0])


def softmax_rows(logits) -> np.ndarray:
    """(V,V) logits -> (V,V) float64 probabilities, each row's softmax (the max subtracted first, so exp never overflows)."""
    logits = np.asarray(logits, dtype=np.float64)
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def next_distribution(model, tokenizer, prompt: str) -> tuple[int, np.ndarray]:
    """(id of the prompt's last token, P(next | it) (V,)): all a bigram reads of a prompt."""
    if not prompt:
        raise BigramError("--prompt is empty; give at least one character, e.g. --prompt q")
    last = int(encode_prompt(tokenizer, prompt)[0, -1])
    return last, probs_table(model)[last]
