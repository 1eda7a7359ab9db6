"""The multi-concept ridge of metrics spec sections 1-2, 4 and 5, computed in Gram (dual) space.

Everything works on the centred Gram matrix K = Xc Xc^T (n x n), so the only O(n^2 d) step is forming the
Gram once; a fit on any subset of probes then costs O(n_fit^3) and never touches the feature dimension.

- centred Gram of a subset S: H_S G_SS H_S (H = centring matrix; G from globally centred X);
- lambda = ridge_alpha * trace(K) / n_fit;
- dual coefficients alpha = (K + lambda I)^-1 Y, so that W = Xc^T alpha;
- with K = P diag(l) P^T, W = Q B for B = diag(sqrt(l)) P^T alpha and Q = Xc^T P diag(l^-1/2) (orthonormal
  columns), so the SVD of the small n_fit x M matrix B gives the singular values S and right singular
  vectors V of W exactly; the directions are u_i = W v_i / s_i = Xc^T alpha v_i / s_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def centred_gram(X: np.ndarray) -> np.ndarray:
    """K = Xc Xc^T for Xc = X - mean(X) (float64, exactly symmetric)."""
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(axis=0)
    K = Xc @ Xc.T  # numpy dispatches A @ A.T to the symmetric rank-k update (syrk)
    return (K + K.T) * 0.5


def double_centre(G: np.ndarray) -> np.ndarray:
    """H G H for a square Gram block G (H = I - 11^T/n)."""
    row = G.mean(axis=1, keepdims=True)
    col = G.mean(axis=0, keepdims=True)
    K = G - row - col + G.mean()
    return (K + K.T) * 0.5


def centre_columns(A: np.ndarray) -> np.ndarray:
    return A - A.mean(axis=0, keepdims=True)


def ridge_lambda(K: np.ndarray, ridge_alpha: float) -> float:
    """lambda = ridge_alpha * trace(K) / n (scale-free: it scales with the activations squared)."""
    return float(ridge_alpha * np.trace(K) / K.shape[0])


@dataclass(frozen=True)
class RidgeFit:
    """A dual ridge fit on a centred Gram K (n_fit x n_fit) with centred one-hot targets Y (n_fit x M).

    Attributes: ``lam`` (lambda), ``eigvals``/``eigvecs`` of K (negative eigenvalues clipped to 0),
    ``alpha`` (dual coefficients, n_fit x M), ``singular_values`` (all min(n_fit, M) singular values of W,
    descending), ``V`` (M x len(singular_values), right singular vectors of W), ``r`` (informative rank of
    the design), ``r_eff`` (number of the first r singular values above ``rank_tol * s_1``).
    """

    lam: float
    eigvals: np.ndarray
    eigvecs: np.ndarray
    alpha: np.ndarray
    singular_values: np.ndarray
    V: np.ndarray
    r: int
    r_eff: int

    @property
    def spectrum(self) -> np.ndarray:
        """The first r singular values s_1 >= ... >= s_r (zeros past the rank of W)."""
        out = np.zeros(self.r)
        m = min(self.r, self.singular_values.size)
        out[:m] = self.singular_values[:m]
        return out

    @property
    def V_eff(self) -> np.ndarray:
        """Right singular vectors of the r_eff informative directions (M x r_eff)."""
        return self.V[:, : self.r_eff]

    @property
    def direction_coefficients(self) -> np.ndarray:
        """C = alpha V_eff S_eff^-1 (n_fit x r_eff): u_i = Xc_fit^T C[:, i], so the projection of any probe
        set Z on the directions is (centred cross Gram Z x fit) @ C."""
        S = self.singular_values[: self.r_eff]
        return (self.alpha @ self.V_eff) / S

    def hat_diagonal(self) -> np.ndarray:
        """diag(H) of the hat matrix H = K (K + lambda I)^-1."""
        shrink = self.eigvals / (self.eigvals + self.lam)
        return (self.eigvecs**2) @ shrink

    def hat_apply(self, Y: np.ndarray) -> np.ndarray:
        """H Y = K (K + lambda I)^-1 Y."""
        shrink = self.eigvals / (self.eigvals + self.lam)
        return self.eigvecs @ (shrink[:, None] * (self.eigvecs.T @ Y))


def fit_ridge(K: np.ndarray, Y: np.ndarray, ridge_alpha: float, r: int, rank_tol: float = 1e-6) -> RidgeFit:
    """Fit the section-1 ridge on a centred Gram K and centred targets Y; SVD of W in Gram space.

    One symmetric eigendecomposition of K gives alpha = P diag(1/(l + lambda)) P^T Y and the factor
    B = diag(sqrt(l)) P^T alpha = diag(sqrt(l)/(l + lambda)) P^T Y whose SVD is that of W.
    """
    K = np.asarray(K, dtype=np.float64)
    lam = ridge_lambda(K, ridge_alpha)
    if not np.isfinite(lam) or lam <= 0:
        raise ValueError("the activations have zero total variance: every probe has the same activation")
    eigvals, eigvecs = np.linalg.eigh(K)
    # Eigenvalues below the eigensolver's round-off (n * eps * l_max, as in numpy's matrix_rank) are the
    # exact zeros of a rank-deficient K (the centring direction, or n > d); clip them to 0 so that they add
    # no spurious singular values to W.
    floor = K.shape[0] * np.finfo(np.float64).eps * max(float(eigvals[-1]), 0.0)
    eigvals = np.where(eigvals > floor, eigvals, 0.0)
    PtY = eigvecs.T @ Y
    alpha = eigvecs @ (PtY / (eigvals + lam)[:, None])
    B = (np.sqrt(eigvals) / (eigvals + lam))[:, None] * PtY
    _, S, Vt = np.linalg.svd(B, full_matrices=False)
    V = Vt.T
    s1 = S[0] if S.size else 0.0
    top = S[: min(r, S.size)]
    r_eff = int(np.count_nonzero(top > rank_tol * s1)) if s1 > 0 else 0
    return RidgeFit(lam=lam, eigvals=eigvals, eigvecs=eigvecs, alpha=alpha, singular_values=S, V=V, r=r, r_eff=r_eff)


def loo_predictions(fit: RidgeFit, Y: np.ndarray) -> np.ndarray:
    """Closed-form leave-one-out predictions (Yhat - diag(H) Y) / (1 - diag(H)) (spec section 5)."""
    h = fit.hat_diagonal()
    Yhat = fit.hat_apply(Y)
    return (Yhat - h[:, None] * Y) / (1.0 - h)[:, None]


def block_argmax(scores: np.ndarray, block_slices: tuple[slice, ...]) -> np.ndarray:
    """Per concept block, the argmax column (class index) of each row: n x k integer array."""
    return np.stack([np.argmax(scores[:, sl], axis=1) for sl in block_slices], axis=1)


def class_variance(proj: np.ndarray, Y_raw: np.ndarray, block_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between-class variance per direction and concept, and the total variance per direction.

    ``proj`` is n x q (projections of n probes on q directions), ``Y_raw`` the n x M raw one-hot matrix.
    sigma[i, j] = (1/n) sum_c n_c (mean_c proj_i - mean proj_i)^2 over the classes c of concept j;
    tau[i] = (1/n) ||proj_i - mean proj_i||^2. Returns (sigma q x k, tau q). Classes absent from the
    probes contribute nothing.
    """
    n = proj.shape[0]
    Z = centre_columns(proj)
    sums = Y_raw.T @ Z  # M x q: per class, the sum of the centred projections
    counts = Y_raw.sum(axis=0)
    contrib = sums**2 / np.maximum(counts, 1.0)[:, None]  # n_c * mean_c^2
    sigma = np.add.reduceat(contrib, block_starts, axis=0).T / n
    tau = np.einsum("ij,ij->j", Z, Z) / n
    return sigma, tau
