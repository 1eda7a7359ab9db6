"""Training batches: the primary stream and the companion, tokenised, joined with EOS and packed.

Each stream is packed on its own into fixed-length sequences (no padding, so EOS is always seen by the
loss). Each sequence of a batch is drawn from the companion with probability ``companion_share`` (seeded),
so the share is exact in expectation and the same seed gives the same batches. Both classes can report
their position as a small JSON-able state and be restored from it exactly, which is what ``--resume``
uses: a resumed run sees the same sequences as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

DocumentFactory = Callable[[], Iterator[str]]


class PackedSequences:
    """Endless fixed-length token sequences from a document stream (documents joined with EOS).

    Long documents are tokenised in pieces of at most ``piece_chars`` characters (split at line ends), so
    one large file never stalls the stream; the token buffer is consumed by an offset, not copied.
    ``documents`` is a factory (called again on restore), so the stream can be re-created and fast-forwarded.
    """

    def __init__(self, documents: DocumentFactory, tokenizer: Any, seq_len: int, piece_chars: int = 16_384) -> None:
        self.factory = documents
        self.documents = iter(documents())
        self.tokenizer = tokenizer
        self.seq_len = seq_len
        self.piece_chars = piece_chars
        self.eos_id = tokenizer.eos_token_id
        self.buffer: list[int] = []
        self.offset = 0
        self.pieces: list[str] = []  # pieces of the current document still to tokenise, last first
        self.documents_read = 0
        self.sequences = 0

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
        return pieces or [""]

    def _refill(self) -> None:
        if not self.pieces:
            document = next(self.documents)  # StopIteration ends a finite stream
            self.documents_read += 1
            self.pieces = list(reversed(self._split(document)))
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
        self.sequences += 1
        return sequence

    def state(self) -> dict[str, Any]:
        """Where the stream is: documents pulled, pieces of the current one left, tokens not yet used."""
        return {
            "documents_read": self.documents_read,
            "pieces_left": len(self.pieces),
            "tail": self.buffer[self.offset :],
            "sequences": self.sequences,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Re-create the document stream and fast-forward it to ``state`` (no tokenising of skipped text)."""
        self.documents = iter(self.factory())
        read, left = int(state["documents_read"]), int(state["pieces_left"])
        for _ in range(read - (1 if left else 0)):
            next(self.documents)
        self.pieces = []
        if left:
            current = next(self.documents)
            self.pieces = list(reversed(self._split(current)))[:left]
        self.documents_read = read
        self.buffer = list(state["tail"])
        self.offset = 0
        self.sequences = int(state.get("sequences", 0))


class MixedBatches:
    """Batches of packed sequences, each row from the companion with probability ``share``."""

    def __init__(self, primary: PackedSequences, companion: PackedSequences | None, share: float,
                 batch_size: int, seed: int) -> None:
        self.primary = primary
        self.companion = companion
        self.share = share if companion is not None else 0.0
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 0x6D6978])
        self.rows_primary = 0
        self.rows_companion = 0

    def next_batch(self) -> list[list[int]]:
        rows: list[list[int]] = []
        for draw in self.rng.random(self.batch_size):
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

    def state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "rows_primary": self.rows_primary,
            "rows_companion": self.rows_companion,
            "primary": self.primary.state(),
            "companion": self.companion.state() if self.companion is not None else None,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.rows_primary = int(state["rows_primary"])
        self.rows_companion = int(state["rows_companion"])
        self.primary.restore(state["primary"])
        if self.companion is not None and state.get("companion") is not None:
            self.companion.restore(state["companion"])
