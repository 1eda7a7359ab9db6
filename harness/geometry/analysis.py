"""The shared, lazily computed geometry of one checkpoint's probe activations.

:class:`GeometryAnalysis` holds X and the labels and computes, each at most once and only when a metric
asks for it: the centred Gram, the full-data ridge fit (spectrum, V-purity, sigma matrix, LOO accuracy),
the held-out estimates (EI, carry fractions, damage), the null baseline, the cross-domain battery and CKA
drift. The metric plugins (``ent_plugins.metrics.*``) read from it and return JSON-friendly records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .crossdomain import cross_domain_battery, domain_concept_index, linear_cka
from .heldout import HeldoutResult, heldout_analysis
from .labels import ConceptLabels
from .ridge import RidgeFit, block_argmax, centred_gram, class_variance, fit_ridge, loo_predictions


@dataclass(frozen=True)
class GeometryConfig:
    """Settings of every metric (defaults: docs/metrics.md).

    ridge_alpha: lambda = ridge_alpha * trace(K) / n. rank_tol: r_eff threshold relative to s_1.
    n_splits: held-out splits (each used both ways). carry_p: family-wise level of the carry test
    (Bonferroni over r_eff * k tests). seed: splits and null permutation. overlap_q: principal directions per
    domain in the subspace overlap. domain_concept: the concept of the cross-domain battery (falls back to
    the first concept when absent).
    """

    ridge_alpha: float = 0.1
    rank_tol: float = 1e-6
    n_splits: int = 10
    carry_p: float = 0.01
    seed: int = 0
    overlap_q: int = 5
    domain_concept: str = "domain"

    def __post_init__(self) -> None:
        if not (self.ridge_alpha > 0 and math.isfinite(self.ridge_alpha)):
            raise ValueError(f"ridge_alpha must be a positive number, got {self.ridge_alpha!r}")
        if not 0 < self.rank_tol < 1:
            raise ValueError(f"rank_tol must be in (0, 1), got {self.rank_tol!r}")
        if int(self.n_splits) != self.n_splits or self.n_splits < 1:
            raise ValueError(f"n_splits must be a positive integer, got {self.n_splits!r}")
        if not 0 < self.carry_p < 1:
            raise ValueError(f"carry_p must be in (0, 1), got {self.carry_p!r}")
        if int(self.overlap_q) != self.overlap_q or self.overlap_q < 1:
            raise ValueError(f"overlap_q must be a positive integer, got {self.overlap_q!r}")


def _as_matrix(X: Any, what: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D n x d array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{what} has {arr.shape[0]} rows but there are {n} probes (one row per probe)")
    if arr.shape[1] < 1:
        raise ValueError(f"{what} has no feature columns")
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{what} has a non-finite value at row {row}, column {col}")
    return arr


def _ratio(num: float, den: float) -> float:
    """num / den, with inf for a positive number over 0 and NaN for 0 / 0."""
    if den > 0:
        return float(num / den)
    return float("inf") if num > 0 else float("nan")


def _flag(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


class GeometryAnalysis:
    """Geometry metrics of activations ``X`` (n x d) with labels, computed lazily and shared.

    ``labels`` is a :class:`ConceptLabels` or one ``{concept: class}`` mapping per probe. ``base_X`` is the
    base model's activations on the same probes (for CKA drift), or None. Raises ValueError on bad input.
    """

    def __init__(
        self,
        X: Any,
        labels: ConceptLabels | Sequence[Mapping[str, str]],
        config: GeometryConfig | None = None,
        base_X: Any | None = None,
    ) -> None:
        if not isinstance(labels, ConceptLabels):
            labels = ConceptLabels.from_mappings(labels)
        self.labels = labels
        self.config = config if config is not None else GeometryConfig()
        self.X = _as_matrix(X, "activations", labels.n)
        self.base_X = None if base_X is None else _as_matrix(base_X, "base activations", labels.n)
        if labels.n < 3:
            raise ValueError(f"need at least 3 probes, got {labels.n}")
        single = [name for name, m in zip(labels.names, labels.m) if m < 2]
        if single:
            raise ValueError(f"concept '{single[0]}' has a single class; every concept needs at least two")

    # ---------------------------------------------------------------------------------------------------
    # shared pieces
    # ---------------------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return self.labels.n

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @cached_property
    def gram(self) -> np.ndarray:
        """K = Xc Xc^T, Xc = X - mean(X) (n x n); the one O(n^2 d) product."""
        K = centred_gram(self.X)
        if not np.trace(K) > 0:
            raise ValueError("the activations have zero total variance: every probe has the same activation")
        return K

    @cached_property
    def Y_raw(self) -> np.ndarray:
        return self.labels.one_hot()

    @cached_property
    def Y(self) -> np.ndarray:
        """Centred one-hot targets (n x M)."""
        return self.Y_raw - self.Y_raw.mean(axis=0)

    @cached_property
    def fit(self) -> RidgeFit:
        """The full-data ridge fit (spec sections 1-2)."""
        return fit_ridge(self.gram, self.Y, self.config.ridge_alpha, self.labels.r, self.config.rank_tol)

    def directions(self) -> np.ndarray:
        """The informative directions U (d x r_eff, orthonormal columns), formed explicitly from X.

        Not needed by any metric (they work in Gram space); for tests and inspection.
        """
        Xc = self.X - self.X.mean(axis=0)
        return Xc.T @ self.fit.direction_coefficients

    # ---------------------------------------------------------------------------------------------------
    # sections 2-5
    # ---------------------------------------------------------------------------------------------------
    @property
    def spectrum(self) -> np.ndarray:
        return self.fit.spectrum

    @property
    def effective_rank(self) -> int:
        return self.fit.r_eff

    @property
    def design_rank(self) -> int:
        return self.labels.design_rank

    @property
    def top_sv(self) -> float:
        return float(self.spectrum[0])

    @property
    def sv_ratio(self) -> float:
        s = self.spectrum
        return _ratio(float(s[0]), float(s[1])) if s.size > 1 else float("nan")

    @property
    def concentration(self) -> float:
        s, k = self.spectrum, self.labels.k
        return _ratio(float(s[:k].sum()), float(s[k:].sum()))

    @cached_property
    def purities(self) -> np.ndarray:
        """purity_i = max_j (squared norm of V[:, i] on concept j's block), i < r_eff."""
        V = self.fit.V_eff
        p = np.add.reduceat(V**2, self.labels.block_starts, axis=0)  # k x r_eff
        return p.max(axis=0) if p.size else np.zeros(0)

    @property
    def v_purity(self) -> float:
        return float(self.purities.mean()) if self.purities.size else float("nan")

    @cached_property
    def sigma_tau(self) -> tuple[np.ndarray, np.ndarray]:
        """(sigma r_eff x k, tau r_eff) on all probes with the full-data directions (spec section 4)."""
        proj = self.gram @ self.fit.direction_coefficients  # Xc u_i for every probe
        return class_variance(proj, self.Y_raw, self.labels.block_starts)

    @property
    def sigma(self) -> np.ndarray:
        return self.sigma_tau[0]

    @property
    def margin(self) -> float:
        return float(self.sigma.min()) if self.sigma.size else float("nan")

    @property
    def margin_normalized(self) -> float:
        sigma, tau = self.sigma_tau
        if not sigma.size:
            return float("nan")
        return float((sigma / tau[:, None]).min())

    @cached_property
    def loo_predicted(self) -> np.ndarray:
        """Closed-form leave-one-out predicted class per probe and concept (n x k)."""
        scores = loo_predictions(self.fit, self.Y) + self.Y_raw.mean(axis=0)
        return block_argmax(scores, self.labels.block_slices)

    @cached_property
    def accuracy(self) -> dict[str, float]:
        """LOO accuracy per concept (spec section 5)."""
        hits = (self.loo_predicted == self.labels.codes).mean(axis=0)
        return {name: float(h) for name, h in zip(self.labels.names, hits)}

    # ---------------------------------------------------------------------------------------------------
    # sections 6-8
    # ---------------------------------------------------------------------------------------------------
    def _heldout(self, labels: ConceptLabels) -> HeldoutResult:
        c = self.config
        return heldout_analysis(self.gram, labels, c.ridge_alpha, c.rank_tol, c.n_splits, c.carry_p, c.seed)

    @cached_property
    def heldout(self) -> HeldoutResult:
        """EI, carry fractions and damage over the held-out splits (spec sections 6-7)."""
        return self._heldout(self.labels)

    @cached_property
    def null_labels(self) -> ConceptLabels:
        return self.labels.permuted(self.config.seed)

    @cached_property
    def null(self) -> HeldoutResult:
        """The held-out metrics with the label table permuted jointly (the null baseline)."""
        return self._heldout(self.null_labels)

    @cached_property
    def domain_index(self) -> int:
        return domain_concept_index(self.labels, self.config.domain_concept)

    @cached_property
    def cross_domain(self) -> dict[str, Any]:
        """The Hypothesis-B battery over pairs of classes of the domain concept."""
        return cross_domain_battery(
            self.gram, self.labels, self.domain_index, self.config.ridge_alpha, self.config.overlap_q
        )

    @cached_property
    def base_gram(self) -> np.ndarray | None:
        return None if self.base_X is None else centred_gram(self.base_X)

    @cached_property
    def cka_to_base(self) -> float | None:
        """Linear CKA between the base activations and X (None without base activations)."""
        return None if self.base_gram is None else linear_cka(self.base_gram, self.gram)

    # ---------------------------------------------------------------------------------------------------
    # flags
    # ---------------------------------------------------------------------------------------------------
    @property
    def flags(self) -> list[dict[str, str]]:
        """Problems of the design or of the geometry, as ``{"code", "message"}`` dicts."""
        labels, out = self.labels, []
        counts = labels.cell_counts
        if not labels.is_balanced:
            empty = int(np.count_nonzero(counts == 0))
            nonempty = counts[counts > 0]
            out.append(_flag(
                "unbalanced_design",
                f"unbalanced design: cell counts range from {int(nonempty.min())} to {int(nonempty.max())}"
                + (f", {empty} of {counts.size} factorial cells are empty" if empty else "")
                + "; the in-sample sigma matrix is marginal (not additive over concepts), and the held-out "
                "tests use the additive model's partial sums of squares (docs/metrics.md)",
            ))
        if labels.design_rank < labels.r:
            out.append(_flag(
                "design_rank_deficit",
                f"design rank {labels.design_rank} < r = {labels.r}: the probe set's labels are confounded or "
                "cells are missing; this rank deficit comes from the design, not from the model",
            ))
        r_eff = self.effective_rank
        if r_eff < labels.r:
            if labels.design_rank >= labels.r:
                origin = "it comes from the model geometry (the design rank is full)"
            else:
                origin = (f"at least {labels.r - labels.design_rank} of it comes from the design "
                          f"(design rank {labels.design_rank})")
            out.append(_flag(
                "effective_rank_deficit",
                f"effective rank {r_eff} < r = {labels.r} (s_i <= {self.config.rank_tol:g} * s_1); {origin}",
            ))
        held = self.heldout
        if not held.defined:
            out.append(_flag(
                "heldout_too_small",
                f"the held-out halves are too small for the F test (need n_B - 1 - r >= 1 with r = {labels.r}); "
                "EI, carry fractions and damage are undefined (NaN)",
            ))
            return out
        for j in np.flatnonzero(held.under_encoded):
            out.append(_flag(
                "under_encoded",
                f"concept '{labels.names[j]}' is under-encoded: fewer than d_j = {labels.d[j]} held-out "
                f"directions carry it in {int(held.under[:, j].sum())} of {held.n_estimates} estimates "
                f"(mean c_j/d_j = {held.ei_per_concept[j]:.3g}); it is left out of EI there",
            ))
        frac = held.no_concept_encoded_fraction
        if frac > 0:
            out.append(_flag(
                "no_concept_encoded",
                f"no concept is encoded on held-out probes in {frac:.0%} of the estimates; EI counts them as 0",
            ))
        return out


def to_builtin(value: Any) -> Any:
    """Convert numpy scalars and arrays (nested in dicts, lists, tuples) to plain Python values."""
    if isinstance(value, dict):
        return {str(k): to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_builtin(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_builtin(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def run_suite(
    X: Any,
    labels: ConceptLabels | Sequence[Mapping[str, str]],
    config: GeometryConfig | None = None,
    base_X: Any | None = None,
) -> dict[str, Any]:
    """Every built-in metric plugin's record on one shared analysis, merged, plus ``"flags"``.

    The metric list is the one the built-in plugin ``ent_plugins.metrics`` registers; metrics that need
    base activations are skipped when ``base_X`` is None. (The CLI runs whatever metrics are registered,
    third-party ones included; this is the convenience entry point for scripts and benchmarks.)
    """
    from ent_plugins.metrics import builtin_metric_specs

    from ..specs import resolve_target

    analysis = GeometryAnalysis(X, labels, config=config, base_X=base_X)
    record: dict[str, Any] = {}
    for spec in builtin_metric_specs():
        if spec.needs_base and base_X is None:
            continue
        record.update(resolve_target(spec.compute)(analysis))
    record["flags"] = analysis.flags
    return record
