"""V-purity: how cleanly each informative direction discriminates one concept (spec section 3)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return {"v_purity": float(analysis.v_purity)}
