"""Drift from the base model: linear CKA of the activations on the same probes (spec section 8)."""

from __future__ import annotations

from typing import Any

from ent_harness.geometry import GeometryAnalysis


def compute(analysis: GeometryAnalysis) -> dict[str, Any]:
    value = analysis.cka_to_base
    return {"cka_to_base": None if value is None else float(value)}
