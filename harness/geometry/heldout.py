"""Held-out metrics of spec sections 6-7: entanglement intensity (EI), carry fractions, damage matrix.

Each of ``n_splits`` seeded splits halves the probes, stratified by factorial cell, and is used both ways
(fit on A, measure on B; fit on B, measure on A), so there are 2 * n_splits estimates. A fit is the
section-1 ridge on the fitting half's own centred Gram; the held-out half is projected through the centred
cross Gram, so nothing ever touches the feature dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from .labels import ConceptLabels
from .ridge import centre_columns, double_centre, fit_ridge

# ------------------------------------------------------------------------------------------------------
# splits
# ------------------------------------------------------------------------------------------------------


def stratified_splits(labels: ConceptLabels, n_splits: int, seed: int) -> list[np.ndarray]:
    """``n_splits`` boolean masks (True = half A), each stratified by factorial cell.

    Inside each cell the probes are shuffled and the first half goes to A, the rest to B. Cells with an odd
    count alternate (in cell order, starting from a seeded coin) which half gets the extra probe, so the
    halves differ by at most one probe. The shuffle is drawn in the canonical probe order (by cell, then
    probe key; see :meth:`ConceptLabels.canonical_order`), so with probe keys the splits are the same
    probes whatever the row order.
    """
    n = labels.n
    rng = np.random.default_rng(seed)
    order = labels.canonical_order()
    _, cell_sorted = np.unique(labels.cells[order], return_inverse=True)  # compact, non-decreasing
    cell_sorted = cell_sorted.reshape(-1)
    counts = np.bincount(cell_sorted)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_cell = np.arange(n) - starts[cell_sorted]
    odd = np.flatnonzero(counts % 2 == 1)
    masks = []
    for _ in range(n_splits):
        u = rng.random(n)
        within = np.lexsort((u, cell_sorted))  # cell order kept, shuffled inside each cell
        extra = np.zeros(counts.size, dtype=np.int64)
        start_bit = int(rng.integers(2))
        extra[odd] = (start_bit + np.arange(odd.size)) % 2
        n_a = counts // 2 + extra
        mask = np.zeros(n, dtype=bool)
        mask[order[within]] = rank_in_cell < n_a[cell_sorted]
        masks.append(mask)
    return masks


# ------------------------------------------------------------------------------------------------------
# aggregation (spec 6.5)
# ------------------------------------------------------------------------------------------------------


def ei_from_carry(carry: np.ndarray, d: np.ndarray | tuple[int, ...]) -> tuple[float, np.ndarray, np.ndarray]:
    """EI of one estimate from its carry matrix (r_eff x k booleans) and the concepts' d_j.

    c_j = number of directions carrying concept j; a concept with c_j < d_j is under-encoded and left out;
    EI = max(0, min over encoded j of c_j / d_j - 1). When no concept is encoded, EI = 0 (not NaN: see
    docs/metrics.md, "no concept encoded"); the caller sees it from ``under_encoded.all()``.

    Returns (ei, c, under_encoded).
    """
    carry = np.asarray(carry, dtype=bool)
    d = np.asarray(d, dtype=np.float64)
    if carry.ndim != 2 or carry.shape[1] != d.size:
        raise ValueError(f"carry must be r_eff x k with k = {d.size}, got shape {carry.shape}")
    c = carry.sum(axis=0).astype(np.int64)
    under = c < d
    if under.all():
        return 0.0, c, under
    ratios = c[~under] / d[~under]
    return float(max(0.0, ratios.min() - 1.0)), c, under


# ------------------------------------------------------------------------------------------------------
# held-out variance decomposition
# ------------------------------------------------------------------------------------------------------


def _column_basis(A: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of A (rank by numpy's matrix_rank tolerance)."""
    if A.shape[1] == 0:
        return A
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    tol = (s[0] if s.size else 0.0) * max(A.shape) * np.finfo(np.float64).eps
    return U[:, s > tol]


def additive_decomposition(
    Z: np.ndarray, Y_raw: np.ndarray, labels: ConceptLabels
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per direction (column of Z) and concept: the between-class variance of the additive main-effects
    model, its residual variance and the total variance.

    sigma[i, j] = SS_j / n with SS_j = RSS(model without concept j) - RSS(full additive model) (type-II sum
    of squares); resid[i] = RSS(full) / n; tau[i] = ||z_i - mean||^2 / n. In a balanced design the concepts'
    centred indicator columns are orthogonal, so SS_j / n is exactly the spec's marginal
    (1/n) sum_c n_c (mean_c - mean)^2 and resid = tau - sum_j sigma_j; in an unbalanced one the partial sums
    of squares stop one concept's signal from showing up as between-class variance of another through the
    uneven cell counts (docs/metrics.md, "Unbalanced designs").
    """
    n = Z.shape[0]
    Zc = centre_columns(Z)
    Yc = centre_columns(Y_raw)
    concept_of = labels.column_concept
    # contrast coding: drop the first class column of each concept (full column rank in a full design)
    keep = np.ones(Yc.shape[1], dtype=bool)
    keep[labels.block_starts] = False
    design, owner = Yc[:, keep], concept_of[keep]
    total = np.einsum("ij,ij->j", Zc, Zc)
    Qf = _column_basis(design)
    fitted = np.sum((Qf.T @ Zc) ** 2, axis=0)
    ss = np.empty((Z.shape[1], labels.k))
    for j in range(labels.k):
        Qj = _column_basis(design[:, owner != j])
        ss[:, j] = fitted - np.sum((Qj.T @ Zc) ** 2, axis=0)
    return np.clip(ss, 0.0, None) / n, np.clip(total - fitted, 0.0, None) / n, total / n


# ------------------------------------------------------------------------------------------------------
# one held-out estimate
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldoutEstimate:
    """One fit-on-A, measure-on-B estimate. Arrays are r_eff(A) x k."""

    r_eff: int
    n_test: int
    sigma: np.ndarray
    tau: np.ndarray
    F: np.ndarray
    p: np.ndarray
    carry: np.ndarray


def heldout_estimate(
    G: np.ndarray,
    Y_raw: np.ndarray,
    labels: ConceptLabels,
    fit_mask: np.ndarray,
    ridge_alpha: float,
    rank_tol: float,
    carry_p: float,
) -> HeldoutEstimate:
    """Fit on the probes of ``fit_mask`` and test every direction x concept on the others (spec 6.2-6.4).

    ``G`` is the n x n Gram of the globally centred activations (the subset centring is done here). The
    held-out sigma and residual come from :func:`additive_decomposition` (the spec's marginal formulas in a
    balanced design); the residual is floored at 1e-12 * max(tau) before the F test.
    """
    A = np.flatnonzero(fit_mask)
    B = np.flatnonzero(~fit_mask)
    k, r = labels.k, labels.r
    d = np.asarray(labels.d, dtype=np.float64)
    K_A = double_centre(G[np.ix_(A, A)])
    Y_A = centre_columns(Y_raw[A])
    fit = fit_ridge(K_A, Y_A, ridge_alpha, r, rank_tol)
    coef = centre_columns(fit.direction_coefficients)  # H_A on the right of the cross Gram
    Z = G[np.ix_(B, A)] @ coef  # additive_decomposition centres the columns: H_B on the left
    sigma, resid, tau = additive_decomposition(Z, Y_raw[B], labels)
    n_test = B.size
    df2 = n_test - 1 - r
    tiny = 1e-12 * float(tau.max()) if tau.size and tau.max() > 0 else np.finfo(np.float64).tiny
    resid = np.maximum(resid, tiny)
    F = (sigma / d) / (resid / df2)[:, None]
    p = special.fdtrc(d[None, :], df2, F)
    threshold = carry_p / (max(fit.r_eff, 1) * k)
    carry = p < threshold
    return HeldoutEstimate(r_eff=fit.r_eff, n_test=n_test, sigma=sigma, tau=tau, F=F, p=p, carry=carry)


def damage_from_estimate(est: HeldoutEstimate, k: int) -> np.ndarray:
    """Damage matrix of one estimate (spec 7): D[a, b] = share of concept b's held-out between-class
    variance on the directions whose largest F is for concept a (0 where concept b has no variance)."""
    if est.r_eff == 0:
        return np.zeros((k, k))
    group = np.zeros((est.r_eff, k))
    group[np.arange(est.r_eff), np.argmax(est.F, axis=1)] = 1.0
    num = group.T @ est.sigma
    den = est.sigma.sum(axis=0)
    return np.divide(num, den[None, :], out=np.zeros((k, k)), where=den[None, :] > 0)


# ------------------------------------------------------------------------------------------------------
# all estimates
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldoutResult:
    """Aggregated held-out metrics over all 2 * n_splits estimates.

    ``ei_estimates`` (per estimate), ``ratios`` (estimates x k, c_j / d_j), ``under`` (estimates x k
    booleans), ``carry_fraction`` (r x k), ``damage`` (k x k), ``r_eff`` (per estimate). ``defined`` is False
    when the halves are too small for the F test (n_B - 1 - r < 1); every value is then NaN.
    """

    ei: float
    ei_sd: float
    ei_estimates: np.ndarray
    ratios: np.ndarray
    under: np.ndarray
    carry_fraction: np.ndarray
    damage: np.ndarray
    cross_damage: float
    r_eff: np.ndarray
    defined: bool = True

    @property
    def n_estimates(self) -> int:
        return int(self.ei_estimates.size)

    @property
    def ei_per_concept(self) -> np.ndarray:
        """Mean over estimates of c_j / d_j."""
        return self.ratios.mean(axis=0) if self.ratios.size else np.full(self.ratios.shape[1], np.nan)

    @property
    def under_fraction(self) -> np.ndarray:
        """Per concept, the fraction of estimates in which it is under-encoded."""
        return self.under.mean(axis=0) if self.under.size else np.zeros(self.under.shape[1])

    @property
    def under_encoded(self) -> np.ndarray:
        """Concepts under-encoded in more than half of the estimates."""
        return self.under_fraction > 0.5

    @property
    def no_concept_encoded_fraction(self) -> float:
        """Fraction of estimates where no concept was encoded (their EI_s was set to 0)."""
        return float(self.under.all(axis=1).mean()) if self.under.size else 0.0


def heldout_analysis(
    G: np.ndarray,
    labels: ConceptLabels,
    ridge_alpha: float = 0.1,
    rank_tol: float = 1e-6,
    n_splits: int = 10,
    carry_p: float = 0.01,
    seed: int = 0,
) -> HeldoutResult:
    """EI, carry fractions and the damage matrix over ``n_splits`` stratified splits used both ways."""
    k, r = labels.k, labels.r
    d = np.asarray(labels.d, dtype=np.float64)
    masks = stratified_splits(labels, n_splits, seed)
    smallest_half = min(min(int(m.sum()), int((~m).sum())) for m in masks) if masks else 0
    if not masks or smallest_half - 1 - r < 1:
        nan = float("nan")
        return HeldoutResult(
            ei=nan, ei_sd=nan, ei_estimates=np.full(0, nan), ratios=np.zeros((0, k)), under=np.zeros((0, k), bool),
            carry_fraction=np.full((r, k), nan), damage=np.full((k, k), nan), cross_damage=nan,
            r_eff=np.zeros(0, np.int64), defined=False,
        )
    Y_raw = labels.one_hot()
    eis, ratios, unders, r_effs = [], [], [], []
    carry_sum = np.zeros((r, k))
    damage_sum = np.zeros((k, k))
    for mask in masks:
        for fit_mask in (mask, ~mask):
            est = heldout_estimate(G, Y_raw, labels, fit_mask, ridge_alpha, rank_tol, carry_p)
            ei_s, c, under = ei_from_carry(est.carry, d)
            eis.append(ei_s)
            ratios.append(c / d)
            unders.append(under)
            r_effs.append(est.r_eff)
            q = min(est.r_eff, r)
            carry_sum[:q] += est.carry[:q]
            damage_sum += damage_from_estimate(est, k)
    n_est = len(eis)
    ei_arr = np.array(eis)
    damage = damage_sum / n_est
    off = damage[~np.eye(k, dtype=bool)]
    return HeldoutResult(
        ei=float(ei_arr.mean()),
        ei_sd=float(ei_arr.std(ddof=1)) if n_est > 1 else float("nan"),
        ei_estimates=ei_arr,
        ratios=np.array(ratios),
        under=np.array(unders),
        carry_fraction=carry_sum / n_est,
        damage=damage,
        cross_damage=float(off.mean()) if off.size else 0.0,
        r_eff=np.array(r_effs, dtype=np.int64),
    )
