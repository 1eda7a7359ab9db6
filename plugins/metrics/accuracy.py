"""Closed-form leave-one-out decoding accuracy per concept (spec section 5)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    return {"accuracy": dict(analysis.accuracy)}
