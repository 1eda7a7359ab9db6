"""An independent, deliberately plain reference for `ent diagnose` (metrics spec sections 1-5).

Written from docs/spec (``/work/shared/spec/metrics.md``) only, without reading or importing the project's
geometry code, so that the tests in ``test_diagnose_reference.py`` compare two implementations that
share nothing but the definitions. Clarity over speed: float64 numpy, explicit formulas, loops allowed.

Contents
- :func:`generate`: synthetic 4 x 2 x 4 factorial probes (spec 9.1 block-diagonal, 9.2 entangled).
- :func:`reference_diagnose`: centring, centred one-hot targets, lambda, W (dual or primal form, formed
  explicitly), thin SVD, spectrum, effective rank, design rank, V-purity, sigma matrix, margins, and
  leave-one-out accuracy by refitting the ridge n times.
"""

from __future__ import annotations

import numpy as np

# The default design: concept name -> class labels (4 x 2 x 4, r = 3 + 1 + 3 = 7, d_max = 3).
DESIGN: dict[str, list[str]] = {
    "domain": ["code", "law", "medicine", "sport"],
    "register": ["formal", "casual"],
    "shape": ["list", "prose", "question", "table"],
}

# Relative strengths of the d_j directions inside one concept, so that no two singular values of W coincide
# (a degenerate pair would make u_i, and with it the per-direction quantities, ill-determined).
WITHIN_CONCEPT_SPREAD = (1.0, 0.8, 0.6)


# --------------------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------------------
def contrast_basis(m: int) -> np.ndarray:
    """An m x (m-1) matrix with orthonormal columns, each orthogonal to the all-ones vector (Helmert)."""
    B = np.zeros((m, m - 1))
    for k in range(1, m):
        B[:k, k - 1] = 1.0
        B[k, k - 1] = -float(k)
        B[:, k - 1] /= np.linalg.norm(B[:, k - 1])
    return B


def random_orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((rows, cols)))
    return Q * np.sign(np.diag(R))  # a uniformly random orthonormal frame


def factorial_labels(per_cell: int, design: dict[str, list[str]] | None = None) -> list[dict[str, str]]:
    """Every cell of the factorial design, ``per_cell`` times, cell-sorted."""
    design = DESIGN if design is None else design
    names = list(design)
    cells: list[dict[str, str]] = [{}]
    for name in names:
        cells = [dict(cell, **{name: label}) for cell in cells for label in design[name]]
    return [dict(cell) for cell in cells for _ in range(per_cell)]


def generate(
    structure: str,
    seed: int,
    per_cell: int = 8,
    d: int = 256,
    noise_sd: float = 0.003,
    scales: tuple[float, ...] = (3.0, 1.0, 0.3),
    shuffle: bool = True,
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Synthetic activations X (n x d) and their labels for the 4 x 2 x 4 design.

    ``structure="block"`` (spec 9.1): each concept's class means live in their own orthogonal subspace
    (d_j dimensions, concept scale ``scales[j]``); the subspaces are mutually orthogonal.
    ``structure="entangled"`` (spec 9.2): each concept's class means are mapped by a random Gaussian matrix
    into one shared r-dimensional subspace, so every direction of it mixes every concept (``scales`` is
    ignored: all concepts get unit scale). Mixings that leave some ridge direction nearly blind to a concept
    are redrawn (seeded), so that "every direction carries every concept" holds by construction.
    X = sum over concepts of the class mean of the probe's class + isotropic Gaussian noise (sd noise_sd).
    Probe order is shuffled (seeded) so that nothing depends on cell-sorted rows.
    """
    if structure not in ("block", "entangled"):
        raise ValueError(f"unknown structure {structure!r}")
    rng = np.random.default_rng(seed)
    names = list(DESIGN)
    dims = [len(DESIGN[name]) - 1 for name in names]
    r = sum(dims)
    Q = random_orthonormal(rng, d, r)  # the informative r-dimensional subspace of R^d

    labels = factorial_labels(per_cell)
    if shuffle:
        order = rng.permutation(len(labels))
        labels = [labels[i] for i in order]
    n = len(labels)

    for _attempt in range(ENTANGLED_MAX_ATTEMPTS):
        class_means: dict[str, np.ndarray] = {}  # concept -> m_j x d class means (centred over classes)
        offset = 0
        for j, name in enumerate(names):
            m, dj = len(DESIGN[name]), dims[j]
            coords = contrast_basis(m) @ random_orthonormal(rng, dj, dj)  # m x dj, centred, orthonormal cols
            coords = coords * np.array(WITHIN_CONCEPT_SPREAD[:dj])
            if structure == "block":
                block = Q[:, offset : offset + dj]  # d x dj, this concept's own subspace
                class_means[name] = scales[j] * coords @ block.T
            else:
                mix = rng.standard_normal((r, dj)) / np.sqrt(r)  # random map into the shared r-dim subspace
                class_means[name] = coords @ mix.T @ Q.T
            offset += dj
        X = np.zeros((n, d))
        for p, lab in enumerate(labels):
            for name in names:
                X[p] += class_means[name][DESIGN[name].index(lab[name])]
        # Entangled: a random mixing can leave a ridge direction nearly orthogonal to one concept, which
        # would make "every direction carries every concept" false for reasons of the draw, not of the
        # metric. Redraw (seeded, deterministic) until, on the noiseless signal, every ridge direction
        # carries every concept with variance >= ENTANGLED_MIN_SIGMA (a held-out F of ~100 or more at noise sd
        # 0.003, n_B = 128, far above the Bonferroni threshold of spec section 6).
        if structure == "block" or _min_direction_concept_variance(X, labels) >= ENTANGLED_MIN_SIGMA:
            break
    else:  # pragma: no cover - acceptance is ~50% per draw
        raise RuntimeError(f"no well-mixed entangled draw for seed {seed}")
    X += noise_sd * rng.standard_normal((n, d))
    return X, labels


ENTANGLED_MIN_SIGMA = 3e-5
ENTANGLED_MAX_ATTEMPTS = 200


def _min_direction_concept_variance(X: np.ndarray, labels: list[dict[str, str]]) -> float:
    """min over ridge directions i <= r and concepts j of sigma_j(u_i) (spec 1, 2, 4), vectorised."""
    names, classes = concept_layout(labels)
    n = X.shape[0]
    r = sum(len(classes[name]) - 1 for name in names)
    Xc = X - X.mean(axis=0)
    Y = one_hot(labels, names, classes)
    U = np.linalg.svd(ridge_W_dual(Xc, Y - Y.mean(axis=0), ridge_lambda(Xc)), full_matrices=False)[0][:, :r]
    worst = np.inf
    offset = 0
    for name in names:
        Yj = Y[:, offset : offset + len(classes[name])]
        counts = Yj.sum(axis=0)
        centroids = (Yj.T @ Xc) / counts[:, None]  # mu_c - mu
        sigma = (counts[:, None] * (centroids @ U) ** 2).sum(axis=0) / n
        worst = min(worst, float(sigma.min()))
        offset += len(classes[name])
    return worst


# --------------------------------------------------------------------------------------------------------
# Spec sections 1-5
# --------------------------------------------------------------------------------------------------------
def concept_layout(labels: list[dict[str, str]]) -> tuple[list[str], dict[str, list[str]]]:
    """Concept names (sorted) and each concept's classes (sorted) as found in the labels."""
    names = sorted(labels[0])
    classes = {name: sorted({lab[name] for lab in labels}) for name in names}
    return names, classes


def one_hot(labels: list[dict[str, str]], names: list[str], classes: dict[str, list[str]]) -> np.ndarray:
    """The raw (uncentred) one-hot matrix [Y_1 | ... | Y_k], n x sum_j m_j."""
    n = len(labels)
    total = sum(len(classes[name]) for name in names)
    Y = np.zeros((n, total))
    for p, lab in enumerate(labels):
        offset = 0
        for name in names:
            Y[p, offset + classes[name].index(lab[name])] = 1.0
            offset += len(classes[name])
    return Y


def ridge_lambda(Xc: np.ndarray, ridge_alpha: float = 0.1) -> float:
    n = Xc.shape[0]
    return ridge_alpha * float(np.trace(Xc @ Xc.T)) / n


def ridge_W_dual(Xc: np.ndarray, Yc: np.ndarray, lam: float) -> np.ndarray:
    """W = Xc^T (Xc Xc^T + lambda I_n)^-1 Y, formed explicitly (d x sum m_j)."""
    n = Xc.shape[0]
    return Xc.T @ np.linalg.solve(Xc @ Xc.T + lam * np.eye(n), Yc)


def ridge_W_primal(Xc: np.ndarray, Yc: np.ndarray, lam: float) -> np.ndarray:
    """W = (Xc^T Xc + lambda I_d)^-1 Xc^T Y (the same W as the dual form, by the push-through identity)."""
    d = Xc.shape[1]
    return np.linalg.solve(Xc.T @ Xc + lam * np.eye(d), Xc.T @ Yc)


def loo_predictions_refit(Xc: np.ndarray, Yc: np.ndarray, lam: float) -> np.ndarray:
    """Leave-one-out predictions by refitting the ridge n times.

    For each probe p: fit W on the other n-1 rows of the full-data-centred X and Y (full-data lambda, no
    re-centring) and predict row p. This equals the spec's closed form (Yhat_p - H_pp Y_p) / (1 - H_pp).
    """
    n = Xc.shape[0]
    out = np.zeros_like(Yc)
    for p in range(n):
        keep = np.array([q for q in range(n) if q != p])
        W_p = ridge_W_dual(Xc[keep], Yc[keep], lam)
        out[p] = Xc[p] @ W_p
    return out


def loo_predictions_closed_form(Xc: np.ndarray, Yc: np.ndarray, lam: float) -> np.ndarray:
    """The spec section 5 closed form, used only to self-check the refit loop."""
    n = Xc.shape[0]
    K = Xc @ Xc.T
    H = K @ np.linalg.inv(K + lam * np.eye(n))
    Yhat = H @ Yc
    h = np.diag(H)
    return (Yhat - h[:, None] * Yc) / (1.0 - h[:, None])


def reference_diagnose(
    X: np.ndarray,
    labels: list[dict[str, str]],
    ridge_alpha: float = 0.1,
    rank_tol: float = 1e-6,
    primal: bool = False,
    loo: str = "refit",
) -> dict:
    """Spec sections 1-5 on activations X (n x d) and per-probe labels, in float64."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    names, classes = concept_layout(labels)
    k = len(names)
    sizes = [len(classes[name]) for name in names]
    dims = [m - 1 for m in sizes]
    r = sum(dims)
    starts = [sum(sizes[:j]) for j in range(k)]

    # 1. multi-concept ridge
    mu = X.mean(axis=0)
    Xc = X - mu
    Y_raw = one_hot(labels, names, classes)
    Yc = Y_raw - Y_raw.mean(axis=0)
    lam = ridge_lambda(Xc, ridge_alpha)
    W = ridge_W_primal(Xc, Yc, lam) if primal else ridge_W_dual(Xc, Yc, lam)

    # 2. spectrum
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    V = Vt.T
    spectrum = S[:r]
    r_eff = int(sum(1 for i in range(r) if spectrum[i] > rank_tol * spectrum[0]))
    design_rank = int(np.linalg.matrix_rank(Yc))
    concentration = float(spectrum[:k].sum() / spectrum[k:r].sum())

    # 3. V-purity over the informative directions
    purities = []
    for i in range(r_eff):
        p_ij = [float(np.sum(V[starts[j] : starts[j] + sizes[j], i] ** 2)) for j in range(k)]
        purities.append(max(p_ij))
    v_purity = float(np.mean(purities))

    # 4. sigma matrix (r_eff x k), tau, margins; u_i taken explicitly as the columns of U
    sigma = np.zeros((r_eff, k))
    tau = np.zeros(r_eff)
    for i in range(r_eff):
        u = U[:, i]
        tau[i] = float(np.sum((Xc @ u) ** 2)) / n
        for j, name in enumerate(names):
            total = 0.0
            for cls in classes[name]:
                members = [p for p in range(n) if labels[p][name] == cls]
                mu_c = X[members].mean(axis=0)
                total += len(members) * float(u @ (mu_c - mu)) ** 2
            sigma[i, j] = total / n
    margin = float(sigma.min())
    margin_normalized = float((sigma / tau[:, None]).min())

    # 5. leave-one-out accuracy: argmax inside each concept's block of (LOO prediction + raw column means)
    if loo == "refit":
        loo_pred = loo_predictions_refit(Xc, Yc, lam)
    elif loo == "closed":
        loo_pred = loo_predictions_closed_form(Xc, Yc, lam)
    else:
        raise ValueError(loo)
    scores = loo_pred + Y_raw.mean(axis=0)
    accuracy: dict[str, float] = {}
    correct_counts: dict[str, int] = {}
    for j, name in enumerate(names):
        block = scores[:, starts[j] : starts[j] + sizes[j]]
        correct = 0
        for p in range(n):
            predicted = classes[name][int(np.argmax(block[p]))]
            correct += int(predicted == labels[p][name])
        correct_counts[name] = correct
        accuracy[name] = correct / n

    return {
        "concepts": names,
        "classes": classes,
        "r": r,
        "lambda": lam,
        "W": W,
        "U": U,
        "V": V,
        "spectrum": spectrum.tolist(),
        "top_sv": float(spectrum[0]),
        "sv_ratio": float(spectrum[0] / spectrum[1]),
        "concentration": concentration,
        "effective_rank": r_eff,
        "design_rank": design_rank,
        "v_purity": v_purity,
        "sigma": sigma,
        "tau": tau,
        "margin": margin,
        "margin_normalized": margin_normalized,
        "accuracy": accuracy,
        "correct_counts": correct_counts,
        "loo_predictions": loo_pred,
    }
