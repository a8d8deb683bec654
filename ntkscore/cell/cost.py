"""Parameter count and FLOPs of an NB201 cell network: the trivial baselines every training-free score must beat.

Counted as NAS-Bench-201 counts them: every parameter of the instantiated network (all non-``none`` ops, including
edges that cannot reach the cell output; BN γ and β, not running statistics). FLOPs are multiply-accumulates of
convolutions and the classifier plus one per window element of average pooling; BN and ReLU are not counted.
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


def flops(arch: Arch, config: NetworkConfig = NetworkConfig()) -> int:
    """Multiply-accumulates of one forward pass of one image."""
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
