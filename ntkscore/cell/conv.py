"""The convolutions of the NB201 network, each with the VJP its use needs (all 'same' padding, NHWC/HWIO).

* :func:`lax_conv` — XLA's convolution with JAX's own VJP;
* :func:`im2col_conv` — input cotangent by :func:`input_cotangent`, weight gradient as the matmul
  ``im2col(x)ᵀ · δ`` (per-sample friendly under ``vmap``): the default of the network's layers;
* :func:`input_gradient_conv` — input cotangent only (attacks, input Jacobians, the layerwise NTK's own pass);
* :func:`per_sample_conv` — one kernel copy per sample, each sample's own weight gradient (the layerwise NTK).

Every convolution their VJPs emit at stride 1 is an ordinary NHWC/HWIO one: XLA:CPU runs the convolutions of
JAX's transpose rule (non-canonical dimension numbers) 20–30× slower inside a ``lax.switch`` branch than outside
(``benchmarks/switch_conv.py``), and every cell edge is such a branch.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax


def patches(x, k: int, stride: int):
    """im2col, laid out for the weight gradient: ``(B, k²·cin, Ho·Wo)``, rows in (kh, kw, cin) order, each row one
    input channel shifted by one tap over the (strided) output positions.

    Channel-major so that ``∂W = patches · δ`` is a batched matmul that needs no transposed copy of the patches
    (built from one transpose of the small input, then slices along its minor axes).
    """
    pad = (k - 1) // 2
    b, h, wd, c = x.shape
    xp = jnp.pad(jnp.transpose(x, (0, 3, 1, 2)), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    taps = [xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            for i in range(k) for j in range(k)]
    return jnp.stack(taps, axis=1).reshape(b, k * k * c, ho * wo)


def lax_conv(x, w, stride: int):
    """'Same' convolution of ``x`` (NHWC) with the HWIO kernel ``w`` by XLA (``lax.conv_general_dilated``)."""
    pad = (w.shape[0] - 1) // 2
    return lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def input_cotangent(g, w, stride: int, x_shape):
    """``∂⟨g, conv(x, w)⟩/∂x``: for stride 1 the 'same' convolution of ``g`` with the flipped, in/out-swapped kernel,
    an ordinary NHWC/HWIO convolution (see the module docstring); strided ones (the residual blocks, never in a
    branch) use JAX's transpose rule."""
    if stride == 1:
        return lax_conv(g, jnp.swapaxes(jnp.flip(w, (0, 1)), 2, 3), 1)
    _, vjp_x = jax.vjp(lambda z: lax_conv(z, w, stride), jnp.zeros(x_shape, g.dtype))
    return vjp_x(g)[0]


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def im2col_conv(x, w, stride: int = 1):
    """'Same' convolution of ``x`` (NHWC) with the HWIO kernel ``w``: ``y = im2col(x) · W``, ``W = w.reshape(k²·cin, cout)``.

    Forward and input cotangent run XLA's convolution (:func:`input_cotangent`); the weight gradient is written out
    as the matmul ``∂W = im2col(x)ᵀ · δ``, so per-sample weight gradients (under ``vmap``) are batched matmuls rather
    than the grouped convolutions XLA runs slowly on a CPU (measured in ``benchmarks/speed.py``).
    """
    return lax_conv(x, w, stride)


def _im2col_conv_fwd(x, w, stride):
    return im2col_conv(x, w, stride), (x, w)


def _im2col_conv_bwd(stride, residuals, g):
    x, w = residuals
    cols = patches(x, w.shape[0], stride)
    dw = jnp.einsum("bpq,bqc->pc", cols, g.reshape(g.shape[0], -1, g.shape[-1])).reshape(w.shape)
    return input_cotangent(g, w, stride, x.shape), dw


im2col_conv.defvjp(_im2col_conv_fwd, _im2col_conv_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def input_gradient_conv(x, w, stride: int = 1):
    """:func:`lax_conv` whose VJP gives the input cotangent (:func:`input_cotangent`) and *no* weight gradient (a
    zero cotangent for ``w``): for input gradients (attacks, input Jacobians) and for the input cotangent of the
    layerwise NTK, which forms the weight gradients itself."""
    return lax_conv(x, w, stride)


def _input_gradient_conv_fwd(x, w, stride):
    return lax_conv(x, w, stride), (x.shape, w)


def _input_gradient_conv_bwd(stride, residuals, g):
    x_shape, w = residuals
    return input_cotangent(g, w, stride, x_shape), jnp.zeros_like(w)


input_gradient_conv.defvjp(_input_gradient_conv_fwd, _input_gradient_conv_bwd)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def per_sample_conv(x, w, stride: int = 1):
    """:func:`lax_conv` of ``x`` with ``w[0]``, where ``w`` ``(B, k, k, cin, cout)`` holds one copy of the kernel per
    sample; its VJP gives each sample's own weight gradient ``∂W_b = im2col(x_b)ᵀ · δ_b`` in ``w``'s slot (and the
    input cotangent of :func:`input_cotangent`). With the other parameters of a layer broadcast the same way, one
    VJP of the layer yields every per-sample gradient (how :mod:`ntkscore.kernels.layerwise` forms its Gram
    matrices)."""
    return lax_conv(x, w[0], stride)


def _per_sample_conv_fwd(x, w, stride):
    return lax_conv(x, w[0], stride), (x, w[0])


def _per_sample_conv_bwd(stride, residuals, g):
    x, w = residuals
    cols = patches(x, w.shape[0], stride)
    dw = jnp.einsum("bpq,bqc->bpc", cols, g.reshape(g.shape[0], -1, g.shape[-1]))
    return input_cotangent(g, w, stride, x.shape), dw.reshape((x.shape[0],) + w.shape)


per_sample_conv.defvjp(_per_sample_conv_fwd, _per_sample_conv_bwd)
