"""Concept labels of a probe set: codes, classes, factorial cells and the centred one-hot targets.

A :class:`ConceptLabels` is the label table of n probes over k concepts (e.g. domain, register, shape). It
is immutable; every derived array (one-hot matrices, cell indices, counts) is computed on demand from the
integer ``codes``. See docs/metrics.md, section 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True, eq=False)
class ConceptLabels:
    """The labels of n probes over k concepts.

    Attributes
    ----------
    names:
        Concept names, in the order used for every block of every matrix (one-hot columns, sigma columns,
        damage rows and columns).
    classes:
        Per concept, its class names, sorted; ``codes[p, j]`` indexes ``classes[j]``.
    codes:
        n x k integer array of class indices.
    probe_keys:
        Optional per-probe identifiers (e.g. probe ids). They fix the canonical order of probes inside a
        factorial cell, which the held-out splits use, so that the splits (and every held-out metric)
        do not change when the rows are reordered together with their keys. ``None`` means the row index
        is the key (then reordering rows changes the splits).
    """

    names: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...]
    codes: np.ndarray = field(repr=False)
    probe_keys: tuple[str, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        codes = np.asarray(self.codes)
        if codes.ndim != 2 or codes.shape[1] != len(self.names):
            raise ValueError(f"codes must be an n x k array with k = {len(self.names)}, got shape {codes.shape}")
        if len(self.classes) != len(self.names):
            raise ValueError("classes must give one tuple of class names per concept")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate concept names in {self.names}")
        codes = codes.astype(np.int64, copy=True)
        for j, cls in enumerate(self.classes):
            if codes.shape[0] and (codes[:, j].min() < 0 or codes[:, j].max() >= len(cls)):
                raise ValueError(f"codes of concept '{self.names[j]}' out of range for {len(cls)} classes")
        codes.setflags(write=False)
        object.__setattr__(self, "codes", codes)
        if self.probe_keys is not None:
            keys = tuple(str(key) for key in self.probe_keys)
            if len(keys) != codes.shape[0]:
                raise ValueError(f"{len(keys)} probe keys for {codes.shape[0]} probes")
            if len(set(keys)) != len(keys):
                raise ValueError("probe keys must be unique")
            object.__setattr__(self, "probe_keys", keys)

    # ---------------------------------------------------------------------------------------------------
    # construction
    # ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_mappings(
        cls,
        rows: Sequence[Mapping[str, str]],
        concept_order: Sequence[str] | None = None,
        probe_keys: Sequence[str] | None = None,
    ) -> ConceptLabels:
        """Build from one ``{concept: class}`` mapping per probe.

        Concept order: ``concept_order`` if given, else the keys of the first row in their order. Classes of
        each concept are sorted. Every row must label every concept.
        """
        rows = list(rows)
        if not rows:
            raise ValueError("no probes: the label table is empty")
        names = tuple(concept_order) if concept_order is not None else tuple(rows[0].keys())
        if not names:
            raise ValueError("no concepts: the first probe labels nothing")
        table = []
        for p, row in enumerate(rows):
            try:
                table.append([str(row[name]) for name in names])
            except KeyError as exc:
                raise ValueError(f"probe {p} has no label for concept {exc.args[0]!r}") from None
        arr = np.array(table, dtype=object).reshape(len(rows), len(names))
        classes = []
        codes = np.empty(arr.shape, dtype=np.int64)
        for j in range(len(names)):
            uniq, inv = np.unique(arr[:, j].astype(str), return_inverse=True)
            classes.append(tuple(str(u) for u in uniq))
            codes[:, j] = inv.reshape(-1)
        return cls(names=names, classes=tuple(classes), codes=codes, probe_keys=probe_keys)

    def take(self, index: Sequence[int] | np.ndarray) -> ConceptLabels:
        """The labels of the probes ``index`` (in that order); classes are kept, keys move with the rows."""
        index = np.asarray(index, dtype=np.int64)
        keys = None if self.probe_keys is None else tuple(self.probe_keys[i] for i in index)
        return ConceptLabels(self.names, self.classes, self.codes[index], keys)

    def with_keys(self, probe_keys: Sequence[str] | None) -> ConceptLabels:
        """The same labels with other probe keys (see the class docstring)."""
        return ConceptLabels(self.names, self.classes, self.codes, None if probe_keys is None else tuple(probe_keys))

    def permuted(self, seed: int) -> ConceptLabels:
        """The null-baseline labels: the rows of the whole label table permuted jointly (one permutation).

        A joint permutation keeps the design (cell counts, balance, design rank) and breaks only the link
        between activations and labels. The permutation is applied in the canonical probe order (sorted by
        probe key), so with probe keys the result does not depend on the row order. Probe keys stay with
        their rows (they identify the activations, not the labels).
        """
        rng = np.random.default_rng(seed)
        order = self.canonical_order()
        perm = rng.permutation(self.n)
        codes = np.empty_like(self.codes)
        codes[order] = self.codes[order[perm]]
        return ConceptLabels(self.names, self.classes, codes, self.probe_keys)

    # ---------------------------------------------------------------------------------------------------
    # sizes
    # ---------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n(self) -> int:
        return int(self.codes.shape[0])

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def m(self) -> tuple[int, ...]:
        """Number of classes m_j per concept."""
        return tuple(len(c) for c in self.classes)

    @property
    def d(self) -> tuple[int, ...]:
        """Degrees of freedom d_j = m_j - 1 per concept."""
        return tuple(len(c) - 1 for c in self.classes)

    @property
    def r(self) -> int:
        """Informative rank r = sum_j d_j."""
        return int(sum(self.d))

    @property
    def d_max(self) -> int:
        return int(max(self.d))

    @property
    def M(self) -> int:
        """Number of one-hot columns, sum_j m_j."""
        return int(sum(self.m))

    @cached_property
    def block_slices(self) -> tuple[slice, ...]:
        """Column slice of each concept's block in the one-hot matrices."""
        starts = np.concatenate([[0], np.cumsum(self.m)])
        return tuple(slice(int(starts[j]), int(starts[j + 1])) for j in range(self.k))

    @cached_property
    def block_starts(self) -> np.ndarray:
        """First one-hot column of each concept block (for ``np.add.reduceat``)."""
        return np.array([s.start for s in self.block_slices], dtype=np.int64)

    @cached_property
    def column_concept(self) -> np.ndarray:
        """The concept index of each of the M one-hot columns."""
        return np.repeat(np.arange(self.k), self.m)

    # ---------------------------------------------------------------------------------------------------
    # one-hot targets and cells
    # ---------------------------------------------------------------------------------------------------
    def one_hot(self) -> np.ndarray:
        """The raw n x M one-hot matrix [Y_1 | ... | Y_k] (float64)."""
        Y = np.zeros((self.n, self.M))
        offsets = self.block_starts[None, :] + self.codes
        np.put_along_axis(Y, offsets, 1.0, axis=1)
        return Y

    def one_hot_centred(self) -> np.ndarray:
        """The one-hot matrix with each column centred (the ridge targets Y of section 1)."""
        Y = self.one_hot()
        return Y - Y.mean(axis=0)

    @cached_property
    def class_counts(self) -> np.ndarray:
        """Probe count of each one-hot column (length M)."""
        return self.one_hot().sum(axis=0)

    @cached_property
    def cells(self) -> np.ndarray:
        """Factorial cell index of each probe (mixed radix over the concepts' codes)."""
        radix = np.concatenate([np.cumprod(self.m[::-1])[::-1][1:], [1]]).astype(np.int64)
        return self.codes @ radix

    @property
    def n_cells(self) -> int:
        """Number of cells of the full factorial design, prod_j m_j."""
        return int(np.prod(self.m, dtype=np.int64))

    @cached_property
    def cell_counts(self) -> np.ndarray:
        """Probe count of every cell of the full factorial design (zeros for empty cells)."""
        return np.bincount(self.cells, minlength=self.n_cells)

    @property
    def is_balanced(self) -> bool:
        """True when every factorial cell holds the same, non-zero number of probes."""
        counts = self.cell_counts
        return bool(counts.min() > 0 and counts.min() == counts.max())

    @cached_property
    def design_rank(self) -> int:
        """Rank of the centred one-hot Y (r for a full factorial; lower for a confounded design)."""
        return int(np.linalg.matrix_rank(self.one_hot_centred()))

    def canonical_order(self) -> np.ndarray:
        """Row indices sorted by (cell, probe key): an order that does not depend on the row order when
        probe keys are given."""
        if self.probe_keys is None:
            key_rank = np.arange(self.n)
        else:
            _, key_rank = np.unique(np.array(self.probe_keys, dtype=str), return_inverse=True)
        return np.lexsort((key_rank.reshape(-1), self.cells))

    def describe(self) -> str:
        parts = [f"{name} ({m})" for name, m in zip(self.names, self.m)]
        return f"{self.n} probes; concepts " + " x ".join(parts) + f"; r = {self.r}"
