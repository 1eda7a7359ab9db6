"""The Hypothesis-B cross-domain battery over pairs of classes of the domain concept (spec section 8)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis, to_builtin


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return {"cross_domain": to_builtin(analysis.cross_domain)}
