"""A byte-level tokenizer built in-process (no download) for the embedded tiny models.

Every UTF-8 byte is one token (ids 0-255), followed by ``<|endoftext|>`` (EOS, 256) and ``<|pad|>`` (257).
Pad is distinct from EOS, so masking padding never hides EOS from the loss.
"""

from __future__ import annotations

from typing import Any

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
EOS_ID = 256
PAD_ID = 257
VOCAB_SIZE = 258


def build_byte_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    vocab[EOS_TOKEN] = EOS_ID
    vocab[PAD_TOKEN] = PAD_ID
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, model_max_length=1 << 20
    )
    return tokenizer
