"""Cross-domain battery and drift (spec section 8), from Gram matrices only.

For each pair of classes (A, B) of the domain concept: centroid cosine, principal-subspace overlap, binary
leave-one-out ridge accuracy and mean pairwise cosines; and linear CKA between two activation sets.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from .labels import ConceptLabels
from .ridge import centre_columns, double_centre, fit_ridge, loo_predictions

PAIR_KEYS = (
    "centroid_cosine",
    "subspace_overlap",
    "binary_accuracy",
    "cosine_within_a",
    "cosine_within_b",
    "cosine_between",
)


def domain_concept_index(labels: ConceptLabels, name: str = "domain") -> int:
    """The concept named ``name`` if present, else the first concept."""
    return labels.names.index(name) if name in labels.names else 0


def _principal_basis(G: np.ndarray, idx: np.ndarray, q: int) -> np.ndarray:
    """Coefficients C (n_c x q_c) with U = Xc_c^T C the top principal directions of the class's own
    centred activations (orthonormal columns): C = P_top / sqrt(l_top) from the class's centred Gram."""
    K = double_centre(G[np.ix_(idx, idx)])
    evals, P = np.linalg.eigh(K)
    evals, P = evals[::-1], P[:, ::-1]
    floor = K.shape[0] * np.finfo(np.float64).eps * max(float(evals[0]), 0.0) if evals.size else 0.0
    keep = min(q, int(np.count_nonzero(evals > floor)), max(idx.size - 1, 0))
    return P[:, :keep] / np.sqrt(evals[:keep])


def binary_loo_accuracy(G: np.ndarray, idx_a: np.ndarray, idx_b: np.ndarray, ridge_alpha: float) -> float:
    """Closed-form LOO accuracy of the section-1 ridge refitted on the two classes' probes only (their own
    centring and lambda; targets the centred two-column one-hot)."""
    idx = np.concatenate([idx_a, idx_b])
    truth = np.concatenate([np.zeros(idx_a.size, np.int64), np.ones(idx_b.size, np.int64)])
    Y_raw = np.zeros((idx.size, 2))
    Y_raw[np.arange(idx.size), truth] = 1.0
    Y = centre_columns(Y_raw)
    fit = fit_ridge(double_centre(G[np.ix_(idx, idx)]), Y, ridge_alpha, r=1)
    scores = loo_predictions(fit, Y) + Y_raw.mean(axis=0)
    return float(np.mean(np.argmax(scores, axis=1) == truth))


def cross_domain_battery(
    G: np.ndarray, labels: ConceptLabels, concept: int, ridge_alpha: float = 0.1, q: int = 5
) -> dict[str, dict[str, dict[str, float]] | dict[str, float]]:
    """The Hypothesis-B battery for every pair of classes of concept ``concept``.

    ``G`` is the Gram of the globally (grand-mean) centred activations. Returns
    ``{"pairs": {"a|b": {key: value}}, "mean": {key: mean over pairs}}`` with the keys of
    :data:`PAIR_KEYS`; ``q`` is capped by each class's size - 1 and the rank of its activations.
    """
    codes = labels.codes[:, concept]
    names = labels.classes[concept]
    members = [np.flatnonzero(codes == c) for c in range(len(names))]
    # centroids of grand-mean-centred activations: their Gram is E^T G E with E the averaging matrix
    E = np.zeros((labels.n, len(names)))
    for c, idx in enumerate(members):
        if idx.size:
            E[idx, c] = 1.0 / idx.size
    Cg = E.T @ G @ E
    cnorm = np.sqrt(np.clip(np.diag(Cg), 0.0, None))
    norms = np.sqrt(np.clip(np.diag(G), 0.0, None))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    cos = G * inv[:, None] * inv[None, :]  # pairwise cosines of the centred activations
    bases = [_principal_basis(G, idx, q) if idx.size else np.zeros((0, 0)) for idx in members]

    def within(idx: np.ndarray) -> float:
        if idx.size < 2:
            return float("nan")
        block = cos[np.ix_(idx, idx)]
        return float((block.sum() - np.trace(block)) / (idx.size * (idx.size - 1)))

    pairs: dict[str, dict[str, float]] = {}
    for a, b in combinations(range(len(names)), 2):
        ia, ib = members[a], members[b]
        if ia.size == 0 or ib.size == 0:
            continue
        denom = cnorm[a] * cnorm[b]
        centroid_cos = float(Cg[a, b] / denom) if denom > 0 else float("nan")
        qa, qb = bases[a], bases[b]
        q_pair = min(qa.shape[1], qb.shape[1])
        if q_pair > 0:
            M = qb[:, :q_pair].T @ G[np.ix_(ib, ia)] @ qa[:, :q_pair]  # U_B^T U_A
            overlap = float(np.sum(M**2) / q_pair)
        else:
            overlap = float("nan")
        pairs[f"{names[a]}|{names[b]}"] = {
            "centroid_cosine": centroid_cos,
            "subspace_overlap": overlap,
            "binary_accuracy": binary_loo_accuracy(G, ia, ib, ridge_alpha),
            "cosine_within_a": within(ia),
            "cosine_within_b": within(ib),
            "cosine_between": float(cos[np.ix_(ia, ib)].mean()),
        }
    mean = {key: _nanmean([p[key] for p in pairs.values()]) for key in PAIR_KEYS}
    return {"pairs": pairs, "mean": mean}


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def linear_cka(K0: np.ndarray, K1: np.ndarray) -> float:
    """Linear CKA from two centred Grams of the same probes: <K0, K1>_F / (||K0||_F ||K1||_F)."""
    num = float(np.vdot(K0, K1))
    den = float(np.linalg.norm(K0) * np.linalg.norm(K1))
    return num / den if den > 0 else float("nan")
