"""Held-out damage matrix (spec section 7)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis, to_builtin


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    held = analysis.heldout
    return to_builtin({"damage": held.damage, "cross_damage": held.cross_damage})
