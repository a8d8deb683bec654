"""Parameter count and FLOPs of an NB201 cell network: the trivial baselines every training-free score must beat.

:func:`num_params` counts as NAS-Bench-201 counts: every parameter of the instantiated network (all non-``none``
ops, including edges that cannot reach the cell output; BN γ and β, not running statistics).

:func:`flops` counts as the published NB201 CIFAR-10 table of NAS-Bench-Suite-Zero does (its ``flops`` column; its
values follow torchstat's per-layer rules, tensorwatch's ``compute_flops.py``, the counter NASLib's ``model_stats.py``
wraps): per image,

* a convolution: ``k² · C_in · C_out`` per output position (plus ``C_out`` per position with a bias; NB201 has none);
* a BatchNorm: 2 per input element (affine); a ReLU: 1 per input element;
* an average pool: ``k²`` per output element; the global average pool: ``(H + 1)(W + 1)`` per channel (the rule's
  window bounds are inclusive);
* the classifier: ``C_in · classes`` (its bias is not counted).

It equals that table's ``flops`` on every one of its 9445 cells (``tests/test_network.py``). NB201's own training code
counts differently (xautodl's ``get_model_infos``: convolutions and the classifier only); :func:`multiply_adds` is the
count the shipped predictors read.
"""

from __future__ import annotations

from .network import NetworkConfig
from .space import OPS, Arch


def _conv_bn_params(k: int, cin: int, cout: int) -> int:
    return k * k * cin * cout + 2 * cout


def num_params(arch: Arch, config: NetworkConfig = NetworkConfig()) -> int:
    """Number of parameters of the network that instantiates ``arch`` (the benchmark's ``params``)."""
    c, n = config.channels, config.cells_per_stage
    total = _conv_bn_params(3, config.in_channels, c)
    for s in range(3):
        w = c * 2**s
        per_cell = 0
        for o in arch.ops:
            if OPS[o] == "nor_conv_1x1":
                per_cell += _conv_bn_params(1, w, w)
            elif OPS[o] == "nor_conv_3x3":
                per_cell += _conv_bn_params(3, w, w)
        total += n * per_cell
        if s < 2:
            total += _conv_bn_params(3, w, 2 * w) + _conv_bn_params(3, 2 * w, 2 * w) + w * 2 * w
    width = 4 * c
    return total + 2 * width + width * config.num_classes + config.num_classes


def multiply_adds(arch: Arch, config: NetworkConfig = NetworkConfig()) -> int:
    """Multiply-accumulates of the convolutions and the classifier of one forward pass of one image, plus one per
    window element of the average pools (BN and ReLU not counted): the ``multiply_adds`` feature of the shipped
    predictors."""
    c, n, hw = config.channels, config.cells_per_stage, config.input_size
    total = hw * hw * 9 * config.in_channels * c
    for s in range(3):
        w, pixels = c * 2**s, (hw // 2**s) ** 2
        per_cell = 0
        for o in arch.ops:
            name = OPS[o]
            if name == "nor_conv_1x1":
                per_cell += pixels * w * w
            elif name == "nor_conv_3x3":
                per_cell += pixels * 9 * w * w
            elif name == "avg_pool_3x3":
                per_cell += pixels * 9 * w
        total += n * per_cell
        if s < 2:
            out_pixels = pixels // 4
            total += out_pixels * (9 * w * 2 * w + 9 * 4 * w * w + w * 2 * w + 4 * w)
    return total + 4 * c * config.num_classes


def flops(arch: Arch, config: NetworkConfig = NetworkConfig()) -> int:
    """FLOPs of one forward pass of one image as NAS-Bench-Suite-Zero's NB201 table counts them (module docstring):
    :func:`multiply_adds` plus 3 per output element of every ReLU-conv-BN (cell edges, the reduction blocks' two),
    2 per element of the stem's BN, 3 per element of the final BN-ReLU, and ``(H + 1)(W + 1)`` per channel of the
    global pool."""
    c, n, hw = config.channels, config.cells_per_stage, config.input_size
    total = multiply_adds(arch, config) + 2 * c * hw * hw
    convs = sum(OPS[o] in ("nor_conv_1x1", "nor_conv_3x3") for o in arch.ops)
    for s in range(3):
        w, pixels = c * 2**s, (hw // 2**s) ** 2
        total += n * convs * 3 * w * pixels
        if s < 2:  # ReLU on the block's input, BN on conv_a's output, ReLU and BN around conv_b
            out = 2 * w * pixels // 4
            total += w * pixels + 2 * out + 3 * out
    last = hw // 4
    return total + 3 * 4 * c * last * last + 4 * c * (last + 1) ** 2


def memory_lower_bound(config: NetworkConfig, batch_size: int) -> int:
    """Bytes that scoring with ``config`` on ``batch_size`` images needs at the least: the float32 supernet (every
    edge holds a 1×1 and a 3×3 convolution) twice (its initial draw and the parameters), and one float32 activation
    of every cell node for the batch. A lower bound: the kernels' per-sample gradients come on top."""
    c, n, hw = config.channels, config.cells_per_stage, config.input_size
    params = 9 * config.in_channels * c
    activations = 0
    for s in range(3):
        w, pixels = c * 2**s, (hw // 2**s) ** 2
        params += n * 6 * 10 * w * w
        activations += n * 4 * pixels * w
        if s < 2:
            params += 9 * w * 2 * w + 9 * 4 * w * w + 2 * w * w
    params += 4 * c * config.num_classes
    return 4 * (2 * params + batch_size * activations)
