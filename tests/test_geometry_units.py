"""Unit tests of the geometry core (docs/metrics.md): each computation against an explicit, loop-based or
primal-form version of the same formula, plus labels, splits, flags, validation and the metric plugins.

Seeds are fresh on every run and printed in every failure message; set ENT_GEOMETRY_SEEDS="s1,s2,..." to
replay a run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import fresh_seeds
from ent_harness.geometry import (
    ConceptLabels,
    GeometryAnalysis,
    GeometryConfig,
    additive_decomposition,
    centred_gram,
    class_variance,
    cross_domain_battery,
    damage_from_estimate,
    factorial_labels,
    linear_cka,
    loo_predictions,
    run_suite,
    stratified_splits,
    synthetic_activations,
)
from ent_harness.geometry.heldout import HeldoutEstimate


pytestmark = pytest.mark.usefixtures("one_blas_thread")


SEEDS = fresh_seeds(3)
print(f"[geometry unit tests] seeds = {SEEDS} (replay: ENT_GEOMETRY_SEEDS={','.join(map(str, SEEDS))})")


def _random_problem(seed: int, n_per_cell: int = 2, d: int = 300, levels=(4, 2, 4)):
    labels = factorial_labels(levels, per_cell=n_per_cell, seed=seed)
    rng = np.random.default_rng(seed)
    X = synthetic_activations(labels, "entangled", d=d, noise=0.05, seed=seed) + 5.0 * rng.standard_normal(d)
    return X, labels


def _explicit(X: np.ndarray, labels: ConceptLabels, ridge_alpha: float = 0.1):
    """Xc, centred Y, lambda and the explicitly formed dual W."""
    Xc = X - X.mean(axis=0)
    Y = labels.one_hot_centred()
    lam = ridge_alpha * np.trace(Xc @ Xc.T) / X.shape[0]
    W = Xc.T @ np.linalg.solve(Xc @ Xc.T + lam * np.eye(X.shape[0]), Y)
    return Xc, Y, lam, W


# ------------------------------------------------------------------------------------------------------
# labels
# ------------------------------------------------------------------------------------------------------
def test_labels_from_mappings():
    rows = [
        {"domain": "math", "register": "formal"},
        {"domain": "code", "register": "casual"},
        {"domain": "prose", "register": "formal"},
        {"domain": "code", "register": "formal"},
    ]
    lab = ConceptLabels.from_mappings(rows)
    assert lab.names == ("domain", "register")
    assert lab.classes == (("code", "math", "prose"), ("casual", "formal"))
    assert lab.codes.tolist() == [[1, 1], [0, 0], [2, 1], [0, 1]]
    assert lab.m == (3, 2) and lab.d == (2, 1) and lab.r == 3 and lab.d_max == 2 and lab.M == 5
    assert lab.block_slices == (slice(0, 3), slice(3, 5))
    Y = lab.one_hot()
    assert Y.sum(axis=1).tolist() == [2.0] * 4 and Y[0].tolist() == [0, 1, 0, 0, 1]
    assert np.allclose(lab.one_hot_centred().mean(axis=0), 0)
    assert lab.cells.tolist() == [3, 0, 5, 1]
    assert not lab.is_balanced and lab.design_rank == 3
    other = ConceptLabels.from_mappings(rows, concept_order=("register", "domain"))
    assert other.names == ("register", "domain") and other.codes.tolist() == lab.codes[:, ::-1].tolist()
    with pytest.raises(ValueError, match="no label for concept 'register'"):
        ConceptLabels.from_mappings(rows + [{"domain": "code"}])
    with pytest.raises(ValueError, match="unique"):
        ConceptLabels.from_mappings(rows, probe_keys=["a", "a", "b", "c"])


def test_factorial_labels_and_design_rank():
    lab = factorial_labels((4, 2, 4), per_cell=3, seed=SEEDS[0])
    assert lab.n == 96 and lab.is_balanced and lab.design_rank == 7 and lab.r == 7
    assert lab.classes[0] == ("domain0", "domain1", "domain2", "domain3")
    assert np.all(lab.cell_counts == 3)
    named = factorial_labels((["code", "math"], 3), per_cell=1, names=("domain", "shape"))
    assert named.classes == (("code", "math"), ("shape0", "shape1", "shape2"))
    # a confounded design (register determined by domain) has a design-rank deficit
    rows = [{"domain": f"d{i % 4}", "register": "a" if i % 4 < 2 else "b"} for i in range(40)]
    conf = ConceptLabels.from_mappings(rows)
    assert conf.r == 4 and conf.design_rank == 3


def test_permuted_keeps_design_and_is_row_order_free():
    seed = SEEDS[1]
    lab = factorial_labels((4, 2, 4), per_cell=4, seed=seed)
    perm = lab.permuted(seed)
    assert np.array_equal(perm.cell_counts, lab.cell_counts)
    assert perm.design_rank == lab.design_rank and perm.probe_keys == lab.probe_keys
    assert not np.array_equal(perm.codes, lab.codes), f"seed {seed}"
    # joint permutation: every permuted row is some original row
    orig_rows = {tuple(r) for r in lab.codes.tolist()}
    assert {tuple(r) for r in perm.codes.tolist()} <= orig_rows
    # with probe keys, reordering the rows reorders the permuted labels the same way
    order = np.random.default_rng(seed).permutation(lab.n)
    assert np.array_equal(lab.take(order).permuted(seed).codes, perm.codes[order]), f"seed {seed}"


# ------------------------------------------------------------------------------------------------------
# ridge (sections 1-2)
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_dual_ridge_equals_primal_when_n_greater_than_d(seed):
    X, labels = _random_problem(seed, n_per_cell=4, d=40)  # n = 128 > d = 40
    Xc, Y, lam, W_dual = _explicit(X, labels)
    W_primal = np.linalg.solve(Xc.T @ Xc + lam * np.eye(X.shape[1]), Xc.T @ Y)
    a = GeometryAnalysis(X, labels)
    W_gram = Xc.T @ a.fit.alpha
    scale = np.abs(W_primal).max()
    assert np.allclose(W_gram, W_primal, rtol=0, atol=1e-8 * scale), f"seed {seed}"
    assert np.allclose(W_dual, W_primal, rtol=0, atol=1e-8 * scale), f"seed {seed}"
    assert np.isclose(a.fit.lam, lam, rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_gram_space_fit_equals_explicit_dual_and_its_svd_when_d_greater_than_n(seed):
    X, labels = _random_problem(seed, n_per_cell=2, d=600)  # n = 64 < d = 600
    Xc, Y, lam, W = _explicit(X, labels)
    a = GeometryAnalysis(X, labels)
    W_gram = Xc.T @ a.fit.alpha
    assert np.allclose(W_gram, W, rtol=0, atol=1e-8 * np.abs(W).max()), f"seed {seed}"
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    r = labels.r
    assert a.effective_rank == r
    assert np.allclose(a.spectrum, S[:r], rtol=1e-8, atol=0), f"seed {seed}: {a.spectrum} vs {S[:r]}"
    # right singular vectors and the explicit directions agree up to sign
    V_gram = a.fit.V_eff
    signs = np.sign(np.sum(V_gram * Vt[:r].T, axis=0))
    assert np.allclose(V_gram * signs, Vt[:r].T, atol=1e-7), f"seed {seed}"
    U_gram = a.directions()
    assert np.allclose(U_gram * signs, U[:, :r], atol=1e-7), f"seed {seed}"
    assert np.allclose(U_gram.T @ U_gram, np.eye(r), atol=1e-8)
    # spec 2's derived scalars
    assert np.isclose(a.top_sv, S[0]) and np.isclose(a.sv_ratio, S[0] / S[1])
    assert np.isclose(a.concentration, S[:3].sum() / S[3:r].sum())


def test_rank_tol_counts_only_informative_singular_values():
    seed = SEEDS[0]
    labels = factorial_labels(per_cell=4, seed=seed)
    X = synthetic_activations(labels, "rank_limited", rank=5, noise=0.0, seed=seed)
    a = GeometryAnalysis(X, labels)
    assert a.effective_rank == 5, f"seed {seed}: spectrum {a.spectrum}"
    assert a.spectrum[5:].max() < 1e-6 * a.spectrum[0]
    assert a.sigma.shape == (5, 3)
    codes = [f["code"] for f in a.flags]
    assert "effective_rank_deficit" in codes and "design_rank_deficit" not in codes, a.flags
    msg = next(f["message"] for f in a.flags if f["code"] == "effective_rank_deficit")
    assert "model geometry" in msg


# ------------------------------------------------------------------------------------------------------
# sections 3-5
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_loo_closed_form_equals_refit_loop(seed):
    X, labels = _random_problem(seed, n_per_cell=1, d=80)  # n = 32
    Xc, Y, lam, _ = _explicit(X, labels)
    a = GeometryAnalysis(X, labels)
    closed = loo_predictions(a.fit, a.Y)
    n = X.shape[0]
    loop = np.zeros_like(Y)
    for p in range(n):  # refit without probe p, with the full-data centring and lambda (as the closed form)
        keep = np.arange(n) != p
        W_p = Xc[keep].T @ np.linalg.solve(Xc[keep] @ Xc[keep].T + lam * np.eye(n - 1), Y[keep])
        loop[p] = Xc[p] @ W_p
    assert np.allclose(closed, loop, rtol=0, atol=1e-9 * np.abs(loop).max()), f"seed {seed}"
    scores = loop + labels.one_hot().mean(axis=0)
    for j, (name, sl) in enumerate(zip(labels.names, labels.block_slices)):
        expected = float(np.mean(np.argmax(scores[:, sl], axis=1) == labels.codes[:, j]))
        assert a.accuracy[name] == expected, f"seed {seed}, {name}"


@pytest.mark.parametrize("seed", SEEDS)
def test_v_purity_in_range(seed):
    rng = np.random.default_rng(seed)
    labels = factorial_labels((3, 2, 5), per_cell=2, seed=seed)
    for X in (rng.standard_normal((labels.n, 100)), synthetic_activations(labels, "entangled", d=100, seed=seed)):
        a = GeometryAnalysis(X, labels)
        assert 1 / 3 - 1e-12 <= a.v_purity <= 1 + 1e-12, f"seed {seed}: {a.v_purity}"
        assert np.all(a.purities >= 1 / 3 - 1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_sigma_matches_explicit_directions(seed):
    X, labels = _random_problem(seed, n_per_cell=3, d=200)
    # make it unbalanced too: drop a few probes
    keep = np.random.default_rng(seed).permutation(labels.n)[: labels.n - 5]
    X, labels = X[keep], labels.take(keep)
    Xc, _, _, W = _explicit(X, labels)
    U, S, _ = np.linalg.svd(W, full_matrices=False)
    a = GeometryAnalysis(X, labels)
    r_eff = a.effective_rank
    mu = X.mean(axis=0)
    sigma = np.zeros((r_eff, labels.k))
    tau = np.zeros(r_eff)
    for i in range(r_eff):
        u = U[:, i]
        tau[i] = np.sum((Xc @ u) ** 2) / len(labels)
        for j in range(labels.k):
            for c in range(labels.m[j]):
                members = labels.codes[:, j] == c
                sigma[i, j] += members.sum() * (u @ (X[members].mean(axis=0) - mu)) ** 2
    sigma /= len(labels)
    assert np.allclose(a.sigma, sigma, rtol=1e-7, atol=1e-12 * sigma.max()), f"seed {seed}"
    assert np.isclose(a.margin, sigma.min(), rtol=1e-7)
    assert np.isclose(a.margin_normalized, (sigma / tau[:, None]).min(), rtol=1e-7)
    assert "unbalanced_design" in [f["code"] for f in a.flags]


def test_d_smaller_than_n_runs_every_metric():
    seed = SEEDS[1]
    labels = factorial_labels(per_cell=8, seed=seed)
    X = synthetic_activations(labels, "block", d=24, seed=seed)  # n = 256 > d = 24
    out = run_suite(X, labels, base_X=X + 0.01)
    assert out["effective_rank"] == 7 and out["v_purity"] > 0.9, f"seed {seed}"
    assert out["ei"] <= 0.15 and all(v == 1.0 for v in out["accuracy"].values()), f"seed {seed}: {out}"
    assert np.isclose(out["cka_to_base"], 1.0)


# ------------------------------------------------------------------------------------------------------
# held-out machinery (sections 6-7)
# ------------------------------------------------------------------------------------------------------
def test_stratified_splits_halve_every_cell():
    seed = SEEDS[2]
    rows = [{"a": f"a{i % 3}", "b": f"b{(i // 3) % 2}"} for i in range(6 * 5)] + [{"a": "a0", "b": "b0"}] * 3
    labels = ConceptLabels.from_mappings(rows)  # cells of 5, one of 8: odd counts alternate
    masks = stratified_splits(labels, 6, seed)
    for mask in masks:
        in_a = np.bincount(labels.cells[mask], minlength=labels.n_cells)
        assert np.all(np.abs(2 * in_a - labels.cell_counts) <= 1), f"seed {seed}"
        assert abs(2 * int(mask.sum()) - labels.n) <= 1, f"seed {seed}: {mask.sum()} of {labels.n}"
    assert len({m.tobytes() for m in masks}) == len(masks)
    again = stratified_splits(labels, 6, seed)
    assert all(np.array_equal(x, y) for x, y in zip(masks, again))


def test_splits_follow_probe_keys_not_row_order():
    seed = SEEDS[0]
    labels = factorial_labels(per_cell=4, seed=seed)
    order = np.random.default_rng(seed + 1).permutation(labels.n)
    moved = labels.take(order)
    for m0, m1 in zip(stratified_splits(labels, 5, seed), stratified_splits(moved, 5, seed)):
        assert np.array_equal(m0[order], m1), f"seed {seed}"


def test_damage_from_estimate():
    sigma = np.array([[4.0, 0.0, 1.0], [1.0, 3.0, 0.0], [0.0, 1.0, 0.0]])
    F = sigma + 0.01
    est = HeldoutEstimate(r_eff=3, n_test=50, sigma=sigma, tau=sigma.sum(1) + 1, F=F, p=F * 0, carry=F > 0)
    D = damage_from_estimate(est, 3)
    expected = np.array([[4 / 5, 0.0, 1.0], [1 / 5, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert np.allclose(D, expected)


def test_additive_decomposition_is_the_marginal_one_in_a_balanced_design():
    seed = SEEDS[1]
    labels = factorial_labels(per_cell=3, seed=seed)
    Z = np.random.default_rng(seed).standard_normal((labels.n, 6)) + labels.one_hot() @ np.ones((10, 6))
    sigma, resid, tau = additive_decomposition(Z, labels.one_hot(), labels)
    sigma_m, tau_m = class_variance(Z, labels.one_hot(), labels.block_starts)
    assert np.allclose(sigma, sigma_m, rtol=1e-10, atol=1e-14), f"seed {seed}"
    assert np.allclose(tau, tau_m, rtol=1e-12) and np.allclose(resid, tau_m - sigma_m.sum(1), rtol=1e-9)


def test_unbalanced_block_design_stays_disentangled():
    """Marginal class means would confound concepts through uneven cells (EI near 1.2 here); the additive
    model's partial sums of squares do not."""
    for seed in SEEDS[:2]:
        labels = factorial_labels(per_cell=8, seed=seed)
        X = synthetic_activations(labels, "block", seed=seed)
        keep = np.sort(np.random.default_rng(seed).permutation(labels.n)[:-7])
        a = GeometryAnalysis(X[keep], labels.take(keep))
        assert not a.labels.is_balanced and "unbalanced_design" in [f["code"] for f in a.flags]
        assert a.heldout.ei <= 0.15, f"seed {seed}: EI {a.heldout.ei} ({a.heldout.ei_per_concept})"
        assert np.all(np.diag(a.heldout.damage) > 0.85), f"seed {seed}: {a.heldout.damage}"


def test_heldout_too_small_is_nan_and_flagged():
    labels = factorial_labels(per_cell=1, seed=SEEDS[0])  # n = 32: halves of 16, 16 - 1 - 7 = 8 is fine
    small = labels.take(np.arange(16))
    X = np.random.default_rng(SEEDS[0]).standard_normal((16, 50))
    a = GeometryAnalysis(X, small)
    assert np.isnan(a.heldout.ei) and "heldout_too_small" in [f["code"] for f in a.flags]


def test_null_baseline_near_zero_on_entangled_data():
    for seed in SEEDS:
        labels = factorial_labels(per_cell=8, seed=seed)
        a = GeometryAnalysis(synthetic_activations(labels, "entangled", seed=seed), labels)
        assert a.null.ei <= 0.15, f"seed {seed}: null EI {a.null.ei}"
        assert abs(a.heldout.ei - 4 / 3) <= 0.05, f"seed {seed}: EI {a.heldout.ei}"


# ------------------------------------------------------------------------------------------------------
# section 8
# ------------------------------------------------------------------------------------------------------
def test_cross_domain_on_two_separated_domains():
    seed = SEEDS[1]
    rng = np.random.default_rng(seed)
    labels = factorial_labels((["code", "math"], 2), per_cell=20, names=("domain", "register"), seed=seed)
    d = 120
    centre = rng.standard_normal((2, d)) * 3.0
    X = centre[labels.codes[:, 0]] + rng.standard_normal((labels.n, d))
    out = cross_domain_battery(centred_gram(X), labels, 0, ridge_alpha=0.1, q=5)
    pair = out["pairs"]["code|math"]
    assert pair["binary_accuracy"] == 1.0, f"seed {seed}: {pair}"
    assert 0.0 <= pair["subspace_overlap"] <= 1.0
    assert pair["centroid_cosine"] < -0.99  # two grand-mean-centred centroids point in opposite directions
    assert pair["cosine_between"] < 0 < pair["cosine_within_a"] and pair["cosine_within_b"] > 0
    assert out["mean"] == pair
    # explicit check of the subspace overlap with a d x d-free but explicit construction
    Xc = X - X.mean(axis=0)
    us = []
    for c in range(2):
        Z = Xc[labels.codes[:, 0] == c]
        Z = Z - Z.mean(axis=0)
        us.append(np.linalg.svd(Z, full_matrices=False)[2][:5].T)
    assert np.isclose(pair["subspace_overlap"], np.sum((us[1].T @ us[0]) ** 2) / 5, rtol=1e-8)


def test_cross_domain_uses_domain_concept_or_first():
    labels = factorial_labels((2, 3), per_cell=6, names=("register", "domain"), seed=SEEDS[2])
    X = synthetic_activations(labels, "block", d=30, scales=(1.0, 1.0), seed=SEEDS[2])
    a = GeometryAnalysis(X, labels)
    assert set(a.cross_domain["pairs"]) == {"domain0|domain1", "domain0|domain2", "domain1|domain2"}
    b = GeometryAnalysis(X, labels, GeometryConfig(domain_concept="absent"))
    assert set(b.cross_domain["pairs"]) == {"register0|register1"}


def test_cka():
    seed = SEEDS[0]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 40)) + 3.0
    K = centred_gram(X)
    assert np.isclose(linear_cka(K, K), 1.0, atol=1e-12)
    rot = np.linalg.qr(rng.standard_normal((40, 40)))[0]
    assert np.isclose(linear_cka(K, centred_gram(2.5 * X @ rot)), 1.0, atol=1e-10)
    Y = rng.standard_normal((60, 40))
    value = linear_cka(K, centred_gram(Y))
    assert 0 < value < 0.9
    assert np.isclose(value, linear_cka(centred_gram(7 * Y), K), rtol=1e-10)


# ------------------------------------------------------------------------------------------------------
# validation, plugins, JSON
# ------------------------------------------------------------------------------------------------------
def test_validation_errors():
    labels = factorial_labels(per_cell=1)
    X = np.zeros((labels.n, 5)) + np.arange(labels.n)[:, None]
    with pytest.raises(ValueError, match="rows"):
        GeometryAnalysis(X[:-1], labels)
    with pytest.raises(ValueError, match="2-D"):
        GeometryAnalysis(X[:, 0], labels)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="row 3, column 2"):
        GeometryAnalysis(bad, labels)
    with pytest.raises(ValueError, match="base activations"):
        GeometryAnalysis(X, labels, base_X=X[:5])
    single = ConceptLabels.from_mappings([{"a": "x", "b": str(i % 2)} for i in range(8)])
    with pytest.raises(ValueError, match="single class"):
        GeometryAnalysis(np.eye(8), single)
    with pytest.raises(ValueError, match="zero total variance"):
        GeometryAnalysis(np.ones((labels.n, 4)), labels).fit
    with pytest.raises(ValueError):
        GeometryConfig(ridge_alpha=0)


EXPECTED_METRICS = {
    "spectrum": ("spectrum", "top_sv", "sv_ratio", "concentration", "effective_rank", "design_rank"),
    "v-purity": ("v_purity",),
    "margin": ("sigma", "margin", "margin_normalized"),
    "accuracy": ("accuracy",),
    "entanglement": ("ei", "ei_sd", "ei_per_concept", "carry_fraction"),
    "damage": ("damage", "cross_damage"),
    "cross-domain": ("cross_domain",),
    "drift": ("cka_to_base",),
    "null-baseline": ("ei_null",),
}


def test_metric_plugins_register_and_return_their_keys():
    from ent_harness.specs import resolve_target
    from ent_plugins.metrics import register_metrics

    specs = []
    register_metrics(specs.append)
    assert {s.name: s.keys for s in specs} == EXPECTED_METRICS
    assert [s.name for s in specs if s.needs_base] == ["drift"]
    seed = SEEDS[2]
    labels = factorial_labels(per_cell=4, seed=seed)
    X = synthetic_activations(labels, "entangled", d=64, seed=seed)
    analysis = GeometryAnalysis(X, labels, base_X=synthetic_activations(labels, "block", d=64, seed=seed))
    for spec in specs:
        values = resolve_target(spec.compute)(analysis)
        assert set(values) == set(spec.keys), spec.name
        json.dumps(values)  # plain Python values only
    assert len(analysis.flags) == 0 or all(set(f) == {"code", "message"} for f in analysis.flags)


def test_run_suite_record_shapes():
    seed = SEEDS[0]
    labels = factorial_labels(per_cell=4, seed=seed)
    X = synthetic_activations(labels, "block", d=64, seed=seed)
    out = run_suite(X, [dict(zip(labels.names, (labels.classes[j][c] for j, c in enumerate(row))))
                        for row in labels.codes])
    assert "cka_to_base" not in out and isinstance(out["flags"], list)
    assert len(out["spectrum"]) == 7 and len(out["sigma"]) == out["effective_rank"]
    assert all(len(row) == 3 for row in out["sigma"])
    assert np.array(out["carry_fraction"]).shape == (7, 3) and np.array(out["damage"]).shape == (3, 3)
    assert set(out["ei_per_concept"]) == set(labels.names) == set(out["accuracy"])
    assert len(out["cross_domain"]["pairs"]) == 6
    json.loads(json.dumps(out))
