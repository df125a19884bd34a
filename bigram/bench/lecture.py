"""The baseline: the lecture's bigram code ("Let's build GPT", bigram.py), reproduced exactly.

Nothing here is tuned: list-comprehension get_batch with torch.randint and
torch.stack, nn.Embedding + F.cross_entropy through autograd, the default
torch.optim.AdamW, a generate that feeds the whole sequence back for every
token, and encode as a list comprehension over a stoi dict. Only the
harness around it (step counts, the exact-loss probe) is the benchmark's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

device = "cpu"


def make_encode(text: str):
    """The lecture's tokenizer: chars sorted, stoi dict, encode as a list comprehension."""
    chars = sorted(list(set(text)))
    stoi = {ch: i for i, ch in enumerate(chars)}
    encode = lambda s: [stoi[c] for c in s]  # noqa: E731 - the lecture's own line
    return encode, stoi


class BigramLanguageModel(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B,T,C)
        if targets is None:
            loss = None
        else:
            B, T, C = logits.shape
            logits = logits.view(B * T, C)
            targets = targets.view(B * T)
            loss = F.cross_entropy(logits, targets)
        return logits, loss

    def generate(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            logits, loss = self(idx)  # the whole sequence, every token: quadratic
            logits = logits[:, -1, :]  # (B, C)
            probs = F.softmax(logits, dim=-1)  # (B, C)
            idx_next = torch.multinomial(probs, num_samples=1)  # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)  # (B, T+1)
        return idx


class LectureRun:
    """The lecture's training loop over `train_ids` with its hyperparameters."""

    def __init__(self, train_ids: np.ndarray, vocab_size: int, batch_size=32, block_size=8, lr=1e-3, seed=1337,
                 lr_at=None):
        """lr_at: an lr schedule (step -> lr), set each step the way nanoGPT's train.py does; None: constant lr."""
        torch.manual_seed(seed)
        self.lr_at, self.iter_num = lr_at, 0
        self.train_data = torch.tensor(train_ids.astype(np.int64), dtype=torch.long)
        self.batch_size, self.block_size = batch_size, block_size
        self.model = BigramLanguageModel(vocab_size)
        self.m = self.model.to(device)
        self.optimizer = torch.optim.AdamW(self.m.parameters(), lr=lr)

    def get_batch(self):
        data = self.train_data
        ix = torch.randint(len(data) - self.block_size, (self.batch_size,))
        x = torch.stack([data[i:i + self.block_size] for i in ix])
        y = torch.stack([data[i + 1:i + self.block_size + 1] for i in ix])
        x, y = x.to(device), y.to(device)
        return x, y

    def train(self, steps: int) -> float:
        for _ in range(steps):
            if self.lr_at is not None:  # nanoGPT: lr = get_lr(iter_num); param_group['lr'] = lr
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = self.lr_at(self.iter_num)
            self.iter_num += 1
            xb, yb = self.get_batch()
            logits, loss = self.m(xb, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def exact_loss(self, counts: np.ndarray) -> float:
        """The benchmark's probe (not the lecture's): exact train loss from bigram counts."""
        logp = F.log_softmax(self.m.token_embedding_table.weight.double(), dim=-1)
        c = torch.from_numpy(counts.astype(np.float64))
        return float(-(c * logp).sum() / c.sum())


def count_bigrams(text: str, stoi: dict, vocab_size: int):
    """makemore's counting loop (the series' way to count bigrams): one tensor += per pair."""
    N = torch.zeros((vocab_size, vocab_size), dtype=torch.int32)
    for ch1, ch2 in zip(text, text[1:]):
        ix1 = stoi[ch1]
        ix2 = stoi[ch2]
        N[ix1, ix2] += 1
    return N


def generate_text(weights: np.ndarray, max_new_tokens: int, seed: int = 1337):
    """The lecture's sampling call on a model holding `weights`."""
    torch.manual_seed(seed)
    m = BigramLanguageModel(weights.shape[0])
    with torch.no_grad():
        m.token_embedding_table.weight.copy_(torch.from_numpy(weights))
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    return m.generate(context, max_new_tokens=max_new_tokens)[0].tolist()
