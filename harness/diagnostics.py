"""Runs every registered metric plugin on one set of probe activations and merges their records."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import EntError
from .plugin_manager import Registry
from .specs import MetricSpec, resolve_target


def run_metric_suite(
    registry: Registry,
    activations: np.ndarray,
    labels: list[dict[str, str]],
    seed: int = 0,
    base_activations: np.ndarray | None = None,
    metrics: list[MetricSpec] | None = None,
    probe_ids: list[str] | None = None,
) -> dict[str, Any]:
    """One diagnostic record: every metric's keys plus ``flags`` (problems of the design or geometry).

    ``probe_ids`` fix the canonical order of probes inside a factorial cell, so the held-out splits (and EI)
    do not depend on the order of the rows.
    """
    from .geometry import ConceptLabels, GeometryAnalysis, GeometryConfig

    concept_labels = ConceptLabels.from_mappings(labels, probe_keys=probe_ids)
    analysis = GeometryAnalysis(
        activations, concept_labels, config=GeometryConfig(seed=seed), base_X=base_activations
    )
    record: dict[str, Any] = {}
    for spec in metrics if metrics is not None else registry.all("metric"):
        if spec.needs_base and base_activations is None:
            continue
        values = resolve_target(spec.compute)(analysis)
        missing = [key for key in spec.keys if key not in values]
        if missing:
            raise EntError(
                f"metric '{spec.name}' ({spec.distribution}) did not return {missing[0]!r}",
                "fix the metric plugin so it returns every key it declares",
            )
        record.update(values)
    record["flags"] = list(analysis.flags)
    return record


def check_activations(activations: np.ndarray, n_probes: int, source: str) -> np.ndarray:
    """Validate an activation matrix against its probe count (one clear line per problem)."""
    if activations.ndim != 2:
        raise EntError(f"{source}: expected an n x d array, got shape {activations.shape}")
    if activations.shape[0] != n_probes:
        raise EntError(
            f"{source}: {activations.shape[0]} activation rows but {n_probes} probes",
            "the activations and the probe file must have one row per probe, in the same order",
        )
    if not np.issubdtype(activations.dtype, np.number):
        raise EntError(f"{source}: activations must be numeric, got {activations.dtype}")
    finite = np.isfinite(activations)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise EntError(f"{source}: non-finite activation at row {row}, column {col}", "remove or fix that probe")
    return activations.astype(np.float64, copy=False)
