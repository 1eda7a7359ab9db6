"""Null baseline: EI with the label table permuted jointly (spec section 8); expected near 0."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return {"ei_null": float(analysis.null.ei)}
