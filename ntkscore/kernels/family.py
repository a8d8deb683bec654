"""The NTK family: published NTK-based proxies and per-layer NTK spectra, from the kernels the engine computes.

With per-sample Jacobians ``J_i = ∂f(x_i)/∂W`` (``k × P``), the traced NTK ``Θ_ij = tr(J_i J_jᵀ)``, its layer
shares ``Θ = Σ_l Θ_l`` (:func:`ntkscore.kernels.layerwise.gram_lanes` with ``split="layer"``), one-hot labels ``Y`` and
``p_i = softmax(f(x_i))``; every quantity is computed on the clean batch ``X`` (metric prefix ``K.``) and on the
attacked batch ``A(X)`` (prefix ``K_rob.``):

* ``tenas_condition`` ``λ_max(Θ_sum)/λ_min(Θ_sum)``, ``Θ_sum,ij = ⟨∂Σ_a f_a(x_i)/∂W, ∂Σ_b f_b(x_j)/∂W⟩``:
  TE-NAS (Chen, Gong & Wang, ICLR 2021), whose NTK is that of the summed logits; smaller = more trainable. ``W``
  are the weights as TE-NAS's code takes them (``lib/procedures/ntk.py``: the parameters named ``weight``, i.e.
  convolution and linear weights and BN scales γ; no BN shift β, no classifier bias;
  :func:`ntkscore.kernels.layerwise.is_weight`). The ratio carries the ridge of every condition number here,
  ``(λ_max + δ_max)/(λ_min⁺ + δ_max)`` (:func:`ntkscore.kernels.theory.spectral_scores`); TE-NAS's code takes the
  raw ``λ_max/λ_min`` (NaN read as 10⁵). They differ only where ``λ_min`` is at float32 rounding level;
* ``tenas_condition_all``: the same over every parameter (the paper's ``θ``);
* ``nasi_trace`` ``tr Θ / n``: NASI's trace norm ``‖Θ‖_tr`` of the (PSD) NTK (Shu et al., ICLR 2022), per sample;
* ``knas`` ``mean_ij ⟨∇_W ℓ(x_i), ∇_W ℓ(x_j)⟩`` with the cross-entropy ``ℓ`` (``∇_f ℓ = p_i − y_i``): KNAS's mean
  of the gradient kernel (Xu et al., ICCV 2021);
* ``cka`` ``⟨HΘH, HYYᵀH⟩_F / (‖HΘH‖_F ‖HYYᵀH‖_F)``, ``H = I − 11ᵀ/n``: the centred kernel–target alignment (CKA,
  Cortes, Mohri & Rostamizadeh, JMLR 2012) of the NTK with the one-hot label kernel ``YYᵀ``;
* ``lga`` ``⟨Θ − μ(Θ), L − μ(L)⟩_F / (‖Θ − μ(Θ)‖_F ‖L − μ(L)‖_F``, ``L_ij = +1`` where ``y_i = y_j`` and ``−1``
  elsewhere, ``μ(·)`` the mean of all entries: the label-gradient alignment of Mok et al. (CVPR 2022), which
  centres both matrices by their global mean (CKA centres rows and columns, and aligns with ``YYᵀ``);
* ``fisher_entropy``, ``vkdnw`` and ``fisher_decile1`` … ``9``: the spectrum of the empirical Fisher information
  ``F = (1/m) Σ_i J_iᵀ Σ_i J_i``, ``Σ_i = diag(p_i) − p_i p_iᵀ`` (VKDNW, Tybl & Neumann, CVPR 2025). Writing
  ``Σ_i = S_i S_i`` (symmetric square root), ``F = (1/m) G Gᵀ`` with the columns ``g_ic = J_iᵀ S_i e_c``, so its
  non-zero spectrum is that of the ``m·k × m·k`` softmax-weighted full-mode NTK ``(1/m) GᵀG``
  (:func:`ntkscore.kernels.layerwise.softmax_weighted_kernels`); its ``m(k−1)`` non-zero eigenvalues ``λ`` give
  ``fisher_entropy = −Σ q log q`` (``q = λ/Σλ``), the deciles ``λ_(d)`` and VKDNW's score
  ``vkdnw = −Σ_{d=1}^{9} q_d log q_d``, ``q_d = λ_(d)/Σ_d λ_(d)``;
* per layer ``l`` (:func:`layer_spectra`, every parameterised layer of :func:`ntkscore.cell.network.layer_paths`):
  ``tr Θ_l``, ``λ_min(Θ_l/tr Θ_l)``, the effective rank of ``Θ_l`` and its ``cka``; aggregated over the layers
  the cell uses (``tr Θ_l > 0``) as ``layers.weyl_lambda_min`` ``Σ_l λ_min(Θ_l) / tr Θ`` (Weyl's inequality makes
  it a lower bound of ``λ_min(Θ)/tr Θ``), ``layers.width_lambda_min`` ``Σ_l C_l λ_min(Θ_l/tr Θ_l)`` (``C_l`` the
  layer's output channels, weighted in the manner of MeCo), ``layers.effective_rank`` and ``layers.cka`` (means).

Where the published code differs from the paper, this follows the paper: VKDNW's code takes the Fisher of one
weight per parameter tensor, in BN eval mode, with softmax smoothed by ``α = 0.05``; here it is the Fisher of all
parameters (its non-zero spectrum), plain softmax, BN as for every kernel here (statistics of the batch, held
constant). TE-NAS and KNAS used train-mode BN with gradients through the statistics; NASI approximates the trace
by the gradient norm of the loss; all of them here use the batch of the NTK (``ScoreSettings.batch_size``) and the
Fisher its first ``fisher_batch_size`` images.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import eigen, theory

KERNELS = ("K", "K_rob")
"""The symmetric kernels the family is computed on: the clean ``X`` and the attacked ``A(X)``."""
PROXIES = ("tenas_condition", "tenas_condition_all", "nasi_trace", "knas", "cka", "lga", "fisher_entropy", "vkdnw")
DECILES = tuple(f"fisher_decile{d}" for d in range(1, 10))
LAYER_AGGREGATES = ("layers.weyl_lambda_min", "layers.width_lambda_min", "layers.effective_rank", "layers.cka")
LAYER_QUANTITIES = ("trace", "lambda_min", "effective_rank", "cka")


def _centred(k):
    return k - k.mean(-1, keepdims=True) - k.mean(-2, keepdims=True) + k.mean((-2, -1), keepdims=True)


def label_alignment(kernel, labels, num_classes: int):
    """Centred kernel–target alignment ``⟨HKH, HYYᵀH⟩_F / (‖HKH‖_F ‖HYYᵀH‖_F)`` of ``kernel`` ``(..., n, n)``
    with one-hot ``labels`` (0 where either side is zero). Works on NumPy and JAX arrays alike."""
    xp = jnp if isinstance(kernel, jax.Array) else np
    y = xp.eye(num_classes, dtype=kernel.dtype)[labels]
    kc, yc = _centred(kernel), _centred(y @ y.T)
    num = xp.sum(kc * yc, axis=(-2, -1))
    den = xp.sqrt(xp.sum(kc * kc, axis=(-2, -1)) * xp.sum(yc * yc))
    return xp.where(den > 0, num / xp.where(den > 0, den, 1.0), 0.0)


def label_gradient_alignment(kernel, labels) -> float:
    """Mok et al.'s LGA (CVPR 2022): ``⟨Θ − μ(Θ), L − μ(L)⟩_F / (‖Θ − μ(Θ)‖_F ‖L − μ(L)‖_F)`` with ``L_ij = +1``
    for a pair of the same label and ``−1`` otherwise, ``μ`` the mean of all entries (float64; 0 where either side
    is constant)."""
    k = np.asarray(kernel, np.float64)
    labels = np.asarray(labels)
    same = np.where(labels[:, None] == labels[None, :], 1.0, -1.0)
    a, b = k - k.mean(), same - same.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else 0.0


def layer_spectra(layer_kernels: jax.Array, labels, num_classes: int) -> dict[str, jax.Array]:
    """Per-layer scalars of the layer shares ``Θ_l`` ``(L, n, n)``, on the device (nothing ``L × n × n`` leaves it):
    ``trace`` ``tr Θ_l``, ``lambda_min`` ``λ_min(Θ_l / tr Θ_l)``, ``effective_rank`` ``exp(−Σ q log q)``
    (``q`` its normalised non-negative eigenvalues) and ``cka`` (:func:`label_alignment`); 0 for an unused layer."""
    k = 0.5 * (layer_kernels + jnp.swapaxes(layer_kernels, -1, -2))
    trace = jnp.trace(k, axis1=-2, axis2=-1)
    used = trace > 0
    unit = k / jnp.where(used, trace, 1.0)[:, None, None]
    eig = eigen.eigvalsh(unit)
    q = jnp.clip(eig, 0.0, None)
    q = q / jnp.maximum(q.sum(-1, keepdims=True), theory.TINY)
    entropy = -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), -1)
    return {"trace": trace,
            "lambda_min": jnp.where(used, eig[:, 0], 0.0),
            "effective_rank": jnp.where(used, jnp.exp(entropy), 0.0),
            "cka": jnp.where(used, label_alignment(k, labels, num_classes), 0.0)}


def layer_aggregates(spectra: Mapping[str, np.ndarray], widths) -> dict[str, float]:
    """:data:`LAYER_AGGREGATES` from one kernel's :func:`layer_spectra` (host, float64)."""
    s = {q: np.asarray(v, np.float64) for q, v in spectra.items()}
    total = s["trace"].sum()
    used = s["trace"] > max(total, theory.TINY) * 1e-12
    if not used.any():
        return dict.fromkeys(LAYER_AGGREGATES, 0.0)
    widths = np.asarray(widths, np.float64)
    return {"layers.weyl_lambda_min": float(np.sum((s["lambda_min"] * s["trace"])[used]) / total),
            "layers.width_lambda_min": float(np.sum((widths * s["lambda_min"])[used])),
            "layers.effective_rank": float(np.mean(s["effective_rank"][used])),
            "layers.cka": float(np.mean(s["cka"][used]))}


def _entropy(values: np.ndarray) -> float:
    q = np.clip(values, 0.0, None)
    if q.sum() <= 0:
        return 0.0
    q = q / q.sum()
    return float(-np.sum(q[q > 0] * np.log(q[q > 0])))


def fisher_spectrum(weighted_kernel, num_samples: int, num_classes: int) -> np.ndarray:
    """The ``m(k−1)`` non-zero eigenvalues (descending) of ``F = (1/m) Σ_i J_iᵀ Σ_i J_i`` from the softmax-weighted
    full-mode NTK ``GᵀG`` (``m·k × m·k``), in float64."""
    k = np.asarray(weighted_kernel, np.float64)
    eig = np.linalg.eigvalsh(0.5 * (k + k.T))[::-1] / num_samples
    return np.clip(eig[:num_samples * (num_classes - 1)], 0.0, None)


def fisher_scores(eigenvalues) -> dict[str, float]:
    """``fisher_entropy``, the deciles ``fisher_decile1..9`` and ``vkdnw`` (see the module docstring)."""
    eig = np.asarray(eigenvalues, np.float64)
    deciles = np.quantile(eig, np.arange(1, 10) / 10)
    return {"fisher_entropy": _entropy(eig), "vkdnw": _entropy(deciles), **dict(zip(DECILES, map(float, deciles)))}


def kernel_proxies(kernel, sum_kernel, sum_kernel_all, loss_kernel, labels, num_classes: int) -> dict[str, float]:
    """``tenas_condition``, ``tenas_condition_all``, ``nasi_trace``, ``knas``, ``cka`` and ``lga`` of one batch's
    traced kernel, summed-logit kernels (over the weights, over every parameter) and loss-gradient kernel
    ``(n, n)`` (host, float64)."""
    k, ks, ka, kl = (np.asarray(a, np.float64) for a in (kernel, sum_kernel, sum_kernel_all, loss_kernel))
    return {"tenas_condition": theory.spectral_scores(ks)["condition"],
            "tenas_condition_all": theory.spectral_scores(ka)["condition"],
            "nasi_trace": float(np.trace(k)) / len(k),
            "knas": float(np.mean(kl)),
            "cka": float(label_alignment(0.5 * (k + k.T), np.asarray(labels), num_classes)),
            "lga": label_gradient_alignment(0.5 * (k + k.T), labels)}


def family_scores(family: Mapping[str, Mapping[str, np.ndarray]], labels, num_classes: int, widths,
                  fisher_size: int) -> dict[str, float]:
    """Every family metric ``<kernel>.<name>`` from the device program's output ``family[kernel]`` (keys ``sum``,
    ``sum_all``, ``loss``, ``fisher`` and the :data:`LAYER_QUANTITIES`, see :func:`ntkscore.kernels.pipeline.cell_kernels`) and the
    traced kernel itself, ``family[kernel]["kernel"]``."""
    out = {}
    for name, f in family.items():
        metrics = kernel_proxies(f["kernel"], f["sum"], f["sum_all"], f["loss"], labels, num_classes)
        metrics.update(fisher_scores(fisher_spectrum(f["fisher"], fisher_size, num_classes)))
        metrics.update(layer_aggregates({q: f[q] for q in LAYER_QUANTITIES}, widths))
        out.update({f"{name}.{q}": v for q, v in metrics.items()})
    return out
