"""--tokenizer's help. (Choosing the tokenizer is bigram.api.functions.as_corpus; running past one CPU
process, a torchrun rank or CUDA, is bigram/api/parallel.py.)"""

from __future__ import annotations



TOKENIZER_HELP = "char (one id per distinct character of a text --data; the default) or byte (V=256, any UTF-8)."
