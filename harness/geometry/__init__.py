"""The scientific core of ent: concept-geometry metrics of probe activations (docs/metrics.md).

numpy/scipy only, float64, computed in Gram (dual) space so that d >> n costs one O(n^2 d) product.

Public API
- :class:`ConceptLabels`: the label table (codes, classes, cells, centred one-hot targets).
- :class:`GeometryConfig`, :class:`GeometryAnalysis`: the shared, lazily computed geometry read by the
  metric plugins (``ent_plugins.metrics``); :func:`run_suite` runs every built-in metric at once.
- :func:`fit_ridge`, :class:`RidgeFit`, :func:`centred_gram`, :func:`loo_predictions`: the section-1 ridge.
- :func:`heldout_analysis`, :func:`ei_from_carry`, :func:`stratified_splits`,
  :func:`additive_decomposition`: EI, carry, damage.
- :func:`cross_domain_battery`, :func:`linear_cka`: section 8.
- :func:`factorial_labels`, :func:`synthetic_activations`: synthetic probe sets of known geometry.
"""

from .analysis import GeometryAnalysis, GeometryConfig, run_suite, to_builtin
from .crossdomain import PAIR_KEYS, cross_domain_battery, domain_concept_index, linear_cka
from .heldout import (
    HeldoutEstimate,
    HeldoutResult,
    additive_decomposition,
    damage_from_estimate,
    ei_from_carry,
    heldout_analysis,
    heldout_estimate,
    stratified_splits,
)
from .labels import ConceptLabels
from .ridge import (
    RidgeFit,
    centred_gram,
    class_variance,
    double_centre,
    fit_ridge,
    loo_predictions,
    ridge_lambda,
)
from .synthetic import STRUCTURES, factorial_labels, synthetic_activations

__all__ = [
    "PAIR_KEYS",
    "STRUCTURES",
    "additive_decomposition",
    "ConceptLabels",
    "GeometryAnalysis",
    "GeometryConfig",
    "HeldoutEstimate",
    "HeldoutResult",
    "RidgeFit",
    "centred_gram",
    "class_variance",
    "cross_domain_battery",
    "damage_from_estimate",
    "domain_concept_index",
    "double_centre",
    "ei_from_carry",
    "factorial_labels",
    "fit_ridge",
    "heldout_analysis",
    "heldout_estimate",
    "linear_cka",
    "loo_predictions",
    "ridge_lambda",
    "run_suite",
    "stratified_splits",
    "synthetic_activations",
    "to_builtin",
]
