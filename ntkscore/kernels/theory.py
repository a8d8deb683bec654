"""Mixed kernels of Wu et al. (ICLR 2024, Section 4) and their spectral scores, in float64 on the host.

With the clean NTK ``K = Θ(X, X)``, robust ``K̃_ε = Θ(A(X), A(X))``, cross ``K̄_ε = Θ(X, A(X))`` and the
twice-perturbed ``K̃_2ε = Θ(A²(X), A²(X))``, ``K̄_2ε = Θ(A(X), A²(X))``, the multi-objective
(1−β)·clean + β·robust training objective gives::

    K_all(β)  = (1−β)² K    + β(1−β) (K̄_ε  + K̄_εᵀ)  + β² K̃_ε       (clean-accuracy kernel)
    K̃_all(β)  = (1−β)² K̃_ε  + β(1−β) (K̄_2ε + K̄_2εᵀ) + β² K̃_2ε      (robust-accuracy kernel)

The generalisation bounds improve as ``λ_min`` of the relevant kernel grows; the data-dependent term of the
Cao & Gu style bound is ``sqrt(yᵀ K⁻¹ y / n)``. :func:`spectral_scores` reports those and more; all quantities
are finite for any PSD input, including the zero kernel of a dead cell (see :data:`JITTER`).
"""

from __future__ import annotations

import numpy as np

JITTER = 1e-8
"""Relative ridge: ``δ_max = JITTER · λ_max + TINY`` where a kernel is inverted or divided by (κ, bound;
:func:`spectral_ridge`), ``δ = JITTER · tr(K)/n + TINY`` for log-determinants and the singular flag (:func:`ridge`)."""
TINY = 1e-30

SCORE_NAMES = ("lambda_min", "lambda_max", "condition", "trace", "bound", "effective_rank")


def mixed_kernel(k_same, k_cross, k_other, beta: float) -> np.ndarray:
    """``(1−β)² k_same + β(1−β)(k_cross + k_crossᵀ) + β² k_other`` in float64."""
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    k_same, k_cross, k_other = (np.asarray(k, np.float64) for k in (k_same, k_cross, k_other))
    return (1 - beta) ** 2 * k_same + beta * (1 - beta) * (k_cross + k_cross.T) + beta**2 * k_other


def clean_accuracy_kernel(k, k_cross, k_robust, beta: float) -> np.ndarray:
    """``K_all(β)`` from ``K``, ``K̄_ε`` and ``K̃_ε``."""
    return mixed_kernel(k, k_cross, k_robust, beta)


def robust_accuracy_kernel(k_robust, k_cross2, k_robust2, beta: float) -> np.ndarray:
    """``K̃_all(β)`` from ``K̃_ε``, ``K̄_2ε`` and ``K̃_2ε``."""
    return mixed_kernel(k_robust, k_cross2, k_robust2, beta)


def one_hot_targets(labels, num_classes: int, kernel_size: int) -> np.ndarray:
    """Targets matching the kernel: ``n × k`` one-hot for an ``n × n`` kernel, its flattening for ``n·k × n·k``."""
    labels = np.asarray(labels)
    y = np.eye(num_classes)[labels]
    if kernel_size == labels.size:
        return y
    if kernel_size == labels.size * num_classes:
        return y.reshape(-1, 1)
    raise ValueError(f"kernel of size {kernel_size} matches neither {labels.size} samples nor samples × classes")


def ridge(kernel: np.ndarray) -> float:
    """The jitter ``δ = JITTER · tr(K)/n + TINY``."""
    return JITTER * max(float(np.trace(kernel)), 0.0) / kernel.shape[0] + TINY


def spectral_ridge(eigenvalues) -> float:
    """``δ_max = JITTER · max(λ_max, 0) + TINY`` for a kernel's ascending ``eigenvalues``: the ridge of the bound
    and the condition number, relative to the largest eigenvalue (the scale of the kernel's float32 rounding)."""
    return JITTER * max(float(eigenvalues[-1]), 0.0) + TINY


def min_eigenvalue(kernel) -> float:
    """``λ_min(K)`` of the symmetrised kernel."""
    k = np.asarray(kernel, np.float64)
    return float(np.linalg.eigvalsh(0.5 * (k + k.T))[0])


def spectral_scores(kernel, targets: np.ndarray | None = None, num_samples: int | None = None) -> dict[str, float]:
    """Scores of a PSD kernel ``K`` (n × n), in float64, with ``δ`` from :func:`ridge`:

    * ``lambda_min``, ``lambda_max``: extreme eigenvalues of ``(K + Kᵀ)/2``;
    * ``condition`` ``κ = (λ_max + δ_max)/(λ_min⁺ + δ_max)``;
    * ``trace`` ``tr K``;
    * ``bound`` ``sqrt(Σ_c Σ_i (u_iᵀ y_c)² / (λ_i⁺ + δ_max) / n)`` over target columns ``y_c`` — the Cao & Gu data
      term ``sqrt(yᵀ (K + δI)⁻¹ y / n)`` on the eigendecomposition ``K = Σ_i λ_i u_i u_iᵀ``, ``n = num_samples``
      (default: the kernel size; pass the sample count for an ``n·k`` full kernel); omitted without targets;
    * ``effective_rank`` ``exp(−Σ p_i log p_i)``, ``p_i = λ_i⁺ / Σ λ⁺`` (1 for the zero kernel);

    with ``λ⁺ = max(λ, 0)`` and ``δ_max = JITTER · λ_max⁺ + TINY`` (:func:`spectral_ridge`). A float32 kernel that
    is rank-deficient has eigenvalues of either sign at rounding level; clipping them to 0 makes its bound large
    (the labels' component in the null space costs ``1/δ_max``), so such a kernel ranks worst, never best.
    """
    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"a kernel must be a square matrix, got shape {k.shape}")
    k = 0.5 * (k + k.T)
    n = k.shape[0]
    eig, vectors = np.linalg.eigh(k)
    positive = np.clip(eig, 0.0, None)
    delta = spectral_ridge(eig)
    total = positive.sum()
    p = positive / total if total > 0 else np.full(n, 1.0 / n)
    entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
    out = {
        "lambda_min": float(eig[0]),
        "lambda_max": float(eig[-1]),
        "condition": float((positive[-1] + delta) / (positive[0] + delta)),
        "trace": float(np.trace(k)),
        "effective_rank": float(np.exp(entropy)) if total > 0 else 1.0,
    }
    if targets is not None:
        y = np.asarray(targets, np.float64)
        y = y.reshape(n, -1)
        projections = vectors.T @ y  # u_iᵀ y_c
        quadratic = np.sum(projections**2 / (positive + delta)[:, None])
        out["bound"] = float(np.sqrt(quadratic / (num_samples or n)))
    return out
