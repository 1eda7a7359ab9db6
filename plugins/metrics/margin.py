"""Per-direction concept variance (sigma, r_eff x k) and the non-degeneracy margin (spec section 4)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis, to_builtin


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return to_builtin(
        {"sigma": analysis.sigma, "margin": analysis.margin, "margin_normalized": analysis.margin_normalized}
    )
