"""Synthetic probe sets with known geometry (for tests, benchmarks and sanity checks of a new metric).

Example::

    from ent_harness.geometry import factorial_labels, synthetic_activations, GeometryAnalysis
    labels = factorial_labels((4, 2, 4), per_cell=8, seed=1)       # 256 probes, shuffled rows
    X = synthetic_activations(labels, "entangled", d=256, seed=1)  # EI close to 4/3
    GeometryAnalysis(X, labels).heldout.ei

Structures (X = sum over concepts of the probe's class-mean vector + isotropic Gaussian noise):

- ``"block"``: each concept's class means live in its own subspace (d_j orthonormal directions of R^d,
  disjoint between concepts): EI = 0, V-purity near 1, damage near the identity.
- ``"entangled"``: all concepts' class means (in their own small coordinates) are mapped by one random
  r x r Gaussian matrix (redrawn until well conditioned, :data:`MAX_MIX_CONDITION`) into one shared
  r-dimensional subspace, so every direction mixes every concept:
  EI = (r - d_max) / d_max.
- ``"rank_limited"``: like entangled, but the shared subspace has only ``rank`` < r dimensions: with
  ``noise=0``, r_eff = ``rank`` and EI = rank / d_max - 1 (see :func:`synthetic_activations`).

Default scales: (3, 1, 0.3) for ``"block"`` (spec 9.1), equal for the shared-subspace structures.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from .labels import ConceptLabels

STRUCTURES = ("block", "entangled", "rank_limited")

MAX_MIX_CONDITION = 10.0
"""The shared-subspace mixing matrix is a Gaussian matrix redrawn until its condition number is at most
this: a nearly singular draw leaves one shared direction with almost no signal of some concept, which the
held-out F test then (rightly) misses, and EI falls short of (r - d_max) / d_max for that seed."""


def factorial_labels(
    levels: Sequence[int | Sequence[str]] = (4, 2, 4),
    per_cell: int = 8,
    names: Sequence[str] = ("domain", "register", "shape"),
    seed: int | None = None,
) -> ConceptLabels:
    """A full factorial design with ``per_cell`` probes in every cell.

    ``levels[j]`` is concept j's number of classes (classes are then named ``f"{names[j]}{i}"``, zero-padded
    so that they sort in index order) or the sequence of its class names. Rows come cell by cell unless
    ``seed`` is given, which shuffles them. Probes get keys ``"p00000"``, ... (assigned before the shuffle,
    so they move with their rows), which makes every held-out metric independent of the row order.
    """
    if len(levels) != len(names):
        raise ValueError(f"{len(levels)} levels for {len(names)} concept names")
    if per_cell < 1:
        raise ValueError("per_cell must be at least 1")
    classes = []
    for name, level in zip(names, levels):
        if isinstance(level, (int, np.integer)):
            if level < 2:
                raise ValueError(f"concept '{name}' needs at least 2 classes, got {level}")
            width = len(str(int(level) - 1))
            classes.append(tuple(f"{name}{i:0{width}d}" for i in range(int(level))))
        else:
            cls = tuple(str(c) for c in level)
            if len(cls) < 2 or len(set(cls)) != len(cls):
                raise ValueError(f"concept '{name}' needs at least 2 distinct class names, got {cls}")
            classes.append(tuple(sorted(cls)))
    cells = np.array(list(product(*[range(len(c)) for c in classes])), dtype=np.int64)
    codes = np.repeat(cells, per_cell, axis=0)
    keys = tuple(f"p{i:05d}" for i in range(codes.shape[0]))
    if seed is not None:
        perm = np.random.default_rng(seed).permutation(codes.shape[0])
        codes = codes[perm]
        keys = tuple(keys[i] for i in perm)
    return ConceptLabels(names=tuple(names), classes=tuple(classes), codes=codes, probe_keys=keys)


DEFAULT_BLOCK_SCALES = (3.0, 1.0, 0.3)


def default_scales(structure: str, k: int) -> tuple[float, ...]:
    """Concept scales used when ``scales`` is None: spec 9.1's (3, 1, 0.3) for ``"block"`` (continued by
    factors of 0.3 past three concepts), equal scales (1.0) for the shared-subspace structures."""
    if structure != "block":
        return (1.0,) * k
    return tuple(DEFAULT_BLOCK_SCALES[j] if j < 3 else 0.3 ** (j - 1) for j in range(k))


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((rows, cols)))
    return Q * np.sign(np.diag(R))


def _contrasts(m: int) -> np.ndarray:
    """An m x (m-1) matrix with orthonormal columns orthogonal to the all-ones vector (Helmert)."""
    H = np.zeros((m, m - 1))
    for i in range(1, m):
        H[:i, i - 1] = 1.0
        H[i, i - 1] = -float(i)
        H[:, i - 1] /= np.linalg.norm(H[:, i - 1])
    return H


def class_mean_coordinates(rng: np.random.Generator, m: int, scale: float) -> np.ndarray:
    """Centred class-mean coordinates of one concept (m x (m-1)).

    Helmert contrasts, randomly rotated, with the within-concept strengths spread linearly from 1.0 to 0.6
    (distinct, so that no two singular values of W coincide and no class pair is nearly indistinguishable),
    scaled so that the root-mean-square norm of the class-mean vectors is ``scale``.
    """
    dj = m - 1
    spread = np.linspace(1.0, 0.6, dj) if dj > 1 else np.ones(1)
    coords = _contrasts(m) @ _orthonormal(rng, dj, dj) * spread
    return coords * (scale / np.sqrt(np.mean(np.sum(coords**2, axis=1))))


def synthetic_activations(
    labels: ConceptLabels,
    structure: str = "block",
    d: int = 256,
    noise: float = 0.003,
    scales: Sequence[float] | float | None = None,
    rank: int = 5,
    seed: int = 0,
    offset: float = 0.0,
) -> np.ndarray:
    """Activations (n x d, float64) with a known concept geometry (see the module docstring).

    Concept j's class means are centred coordinates (:func:`class_mean_coordinates`) whose root-mean-square
    class-mean norm is ``scales[j]`` (a single number applies to every concept; None: see
    :func:`default_scales`), placed in R^d according to ``structure``. ``noise`` is the standard deviation
    of the isotropic Gaussian noise; ``offset`` adds a common vector of that norm to every probe (a mean the
    metrics must remove). ``rank`` is the shared dimension of ``"rank_limited"``.

    Note: r_eff counts the singular values of the ridge W, and with noise and n <= d the ridge fits the
    label dimensions the signal lacks with noise directions; so ``"rank_limited"`` data have r_eff = rank
    only for ``noise=0`` (or noise far below the ridge's reach). Graded scales in the shared-subspace
    structures make the ridge directions nearly concept-pure again (the SVD of a graded matrix separates
    its scales), so the entangled EI of spec 9.2 is reached with equal scales, the default there.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    k, r = labels.k, labels.r
    if scales is None:
        scale_arr = np.asarray(default_scales(structure, k))
    elif np.ndim(scales) == 0:
        scale_arr = np.full(k, float(scales))  # type: ignore[arg-type]
    else:
        scale_arr = np.asarray(scales, dtype=np.float64)
        if scale_arr.shape != (k,):
            raise ValueError(f"{scale_arr.size} scales for {k} concepts")
    if structure == "rank_limited" and not 1 <= rank < r:
        raise ValueError(f"rank must be between 1 and r - 1 = {r - 1}, got {rank}")
    width = rank if structure == "rank_limited" else r
    if d < width:
        raise ValueError(f"d = {d} is smaller than the {width} informative dimensions")
    rng = np.random.default_rng(seed)
    Q = _orthonormal(rng, d, width)  # the informative subspace of R^d
    if structure == "block":
        mix = np.eye(r)
    else:
        while True:  # shared coordinates = mix @ concept coordinates
            mix = rng.standard_normal((width, r)) / np.sqrt(r)
            sv = np.linalg.svd(mix, compute_uv=False)
            if sv[-1] > 0 and sv[0] / sv[-1] <= MAX_MIX_CONDITION:
                break
    X = np.zeros((labels.n, d))
    offsets = np.concatenate([[0], np.cumsum(labels.d)])
    for j in range(k):
        coords = class_mean_coordinates(rng, labels.m[j], float(scale_arr[j]))
        embed = np.zeros((labels.m[j], r))
        embed[:, offsets[j] : offsets[j + 1]] = coords
        means = embed @ mix.T @ Q.T  # m_j x d
        X += means[labels.codes[:, j]]
    X += noise * rng.standard_normal(X.shape)
    if offset:
        direction = rng.standard_normal(d)
        X += offset * direction / np.linalg.norm(direction)
    return X
