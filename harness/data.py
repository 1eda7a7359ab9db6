"""Training batches: the primary stream and the companion, tokenised, joined with EOS and packed.

Each stream is packed on its own into fixed-length sequences (no padding). Each sequence of a batch is
drawn from the companion with probability ``companion_share`` (seeded), so the share is exact in
expectation and the same seed gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class PackedSequences:
    """Endless fixed-length token sequences from a document iterator (documents joined with EOS).

    Long documents are tokenised in pieces of at most ``piece_chars`` characters (split at line ends), so
    a single large file never stalls the stream; the token buffer is consumed by an offset, not copied.
    """

    def __init__(self, documents: Iterator[str], tokenizer: Any, seq_len: int, piece_chars: int = 16_384) -> None:
        self.documents = documents
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.piece_chars = piece_chars
        self.eos_id = tokenizer.eos_token_id
        self.buffer: list[int] = []
        self.offset = 0
        self.pieces: list[str] = []
        self.documents_read = 0

    def __iter__(self) -> PackedSequences:
        return self

    def _split(self, document: str) -> list[str]:
        pieces: list[str] = []
        start = 0
        while start < len(document):
            end = min(len(document), start + self.piece_chars)
            if end < len(document):
                newline = document.rfind("\n", start, end)
                end = newline + 1 if newline > start else end
            pieces.append(document[start:end])
            start = end
        return pieces

    def _refill(self) -> None:
        if not self.pieces:
            document = next(self.documents)  # StopIteration ends a finite stream
            self.documents_read += 1
            self.pieces = self._split(document) or [""]
            self.pieces.reverse()
        piece = self.pieces.pop()
        if self.offset:
            del self.buffer[: self.offset]
            self.offset = 0
        self.buffer.extend(self.tokenizer(piece, add_special_tokens=False)["input_ids"])
        if not self.pieces:
            self.buffer.append(self.eos_id)

    def __next__(self) -> list[int]:
        while len(self.buffer) - self.offset < self.seq_len:
            self._refill()
        sequence = self.buffer[self.offset : self.offset + self.seq_len]
        self.offset += self.seq_len
        return sequence


@dataclass
class MixedBatches:
    """Batches of packed sequences, each row from the companion with probability ``share``."""

    primary: PackedSequences
    companion: PackedSequences | None
    share: float
    batch_size: int
    seed: int
    rows_primary: int = 0
    rows_companion: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 0x6D6978])
        if self.companion is None:
            self.share = 0.0

    def next_batch(self) -> list[list[int]]:
        rows: list[list[int]] = []
        draws = self.rng.random(self.batch_size)
        for draw in draws:
            if self.companion is not None and draw < self.share:
                rows.append(next(self.companion))
                self.rows_companion += 1
            else:
                rows.append(next(self.primary))
                self.rows_primary += 1
        return rows

    @property
    def companion_fraction(self) -> float:
        total = self.rows_primary + self.rows_companion
        return self.rows_companion / total if total else 0.0
