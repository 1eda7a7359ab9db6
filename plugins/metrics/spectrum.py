"""Spectrum of the multi-concept ridge W (spec section 2)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis, to_builtin


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return to_builtin(
        {
            "spectrum": analysis.spectrum,
            "top_sv": analysis.top_sv,
            "sv_ratio": analysis.sv_ratio,
            "concentration": analysis.concentration,
            "effective_rank": analysis.effective_rank,
            "design_rank": analysis.design_rank,
        }
    )
