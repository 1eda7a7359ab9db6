"""Built-in geometry metrics (docs/metrics.md). One module per metric, each with ``compute(analysis)``.

Every metric reads the shared :class:`ent_harness.geometry.GeometryAnalysis`, so the Gram matrix, the ridge
fit and the held-out estimates are computed once per checkpoint whatever the number of metrics. The record
keys listed here are the contract of ``ent diagnose --json``. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable

from ent_harness.hookspecs import hookimpl
from ent_harness.specs import MetricSpec

_PREFIX = "ent_plugins.metrics"


def builtin_metric_specs() -> tuple[MetricSpec, ...]:
    """The built-in metric specs, in reporting order."""
    return (
        MetricSpec(
            name="spectrum",
            compute=f"{_PREFIX}.spectrum:compute",
            keys=("spectrum", "top_sv", "sv_ratio", "concentration", "effective_rank", "design_rank"),
            description="singular values of the multi-concept ridge W, effective and design rank (spec 2)",
        ),
        MetricSpec(
            name="v-purity",
            compute=f"{_PREFIX}.v_purity:compute",
            keys=("v_purity",),
            description="mean over informative directions of the largest concept share of V's column (spec 3)",
        ),
        MetricSpec(
            name="margin",
            compute=f"{_PREFIX}.margin:compute",
            keys=("sigma", "margin", "margin_normalized"),
            description="per-direction concept variance matrix and the non-degeneracy margin (spec 4)",
        ),
        MetricSpec(
            name="accuracy",
            compute=f"{_PREFIX}.accuracy:compute",
            keys=("accuracy",),
            description="closed-form leave-one-out decoding accuracy per concept (spec 5)",
        ),
        MetricSpec(
            name="entanglement",
            compute=f"{_PREFIX}.entanglement:compute",
            keys=("ei", "ei_sd", "ei_per_concept", "carry_fraction"),
            description="held-out entanglement intensity over stratified splits (spec 6)",
        ),
        MetricSpec(
            name="damage",
            compute=f"{_PREFIX}.damage:compute",
            keys=("damage", "cross_damage"),
            description="held-out damage matrix: concept b's signal on directions serving concept a (spec 7)",
        ),
        MetricSpec(
            name="cross-domain",
            compute=f"{_PREFIX}.cross_domain:compute",
            keys=("cross_domain",),
            description="per pair of domains: centroid cosine, subspace overlap, binary accuracy, cosines (spec 8)",
        ),
        MetricSpec(
            name="drift",
            compute=f"{_PREFIX}.drift:compute",
            keys=("cka_to_base",),
            needs_base=True,
            description="linear CKA between the base model's and this checkpoint's activations (spec 8)",
        ),
        MetricSpec(
            name="null-baseline",
            compute=f"{_PREFIX}.null_baseline:compute",
            keys=("ei_null",),
            description="EI with the label table permuted jointly (seeded); expected near 0 (spec 8)",
        ),
    )


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    for spec in builtin_metric_specs():
        register(spec)
