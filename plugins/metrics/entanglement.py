"""Held-out entanglement intensity (spec section 6)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis, to_builtin


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    held = analysis.heldout
    return to_builtin(
        {
            "ei": held.ei,
            "ei_sd": held.ei_sd,
            "ei_per_concept": dict(zip(analysis.labels.names, held.ei_per_concept)),
            "carry_fraction": held.carry_fraction,
        }
    )
