"""The settings of a score: everything that determines it besides the architecture."""

from __future__ import annotations

from dataclasses import dataclass

from ..cell import network
from ..inputs import attack, data
from ..kernels.ntk import OUTPUT_MODES
from ..kernels.pipeline import KERNEL_SETS


@dataclass(frozen=True)
class ScoreSettings:
    """Everything that determines a score besides the architecture. Hashable; stored with every result.

    The network: ``channels`` (C), ``cells_per_stage`` (N), ``input_size`` (``None``: the dataset's; smaller sizes
    area-downsample the images), ``bn_mode`` (``"batch"``: batch statistics held constant for differentiation;
    ``"identity"``: eval mode at initialisation). The NTK batch: ``batch_size`` images of ``dataset``
    (``inputs="data"``) or uniform noise (``inputs="random"``), chosen with ``seed``, which also fixes the
    initialisation and the attack noise. The attack: ``attack`` (``"pgd"``/``"fgsm"``), ``eps`` and ``step_size``
    in pixel units ([0, 1]; 8/255 is the benchmark's), ``steps``. The kernels: ``kernels`` (``"clean"``: K;
    ``"robust"``: + K̃_ε, K̄_ε; ``"all"``: + K̃_2ε, K̄_2ε; ``"none"``), ``output`` (``"trace"`` over the logits,
    ``"sum"`` of the logits, ``"full"``), ``engine`` (``"layerwise"`` or the reference ``"jacobian"``),
    ``betas`` of the mixed kernels. ``proxies`` adds the zero-cost terms on ``proxy_batch_size`` images;
    ``family`` the NTK family (``fisher_batch_size`` images for the Fisher spectrum). ``cpu_library_fusions``
    (on a CPU): ``False`` compiles the layerwise engine's programs with XLA's own kernels (a faster first score on a
    small CPU), ``True`` with XLA's default YNNPACK library fusions (the scores move at float32 rounding;
    :mod:`ntkscore.kernels.precision`); ``None`` (default) is ``False`` for the layerwise engine and ``True`` for
    the Jacobian reference, which runs op by op with XLA's defaults.

    The defaults are the settings of the shipped learned scores (:mod:`ntkscore.scores.predictor`): a one-cell-per-
    stage network with C = 8 on 16×16 images, B = 20, the clean and attacked kernels, the NTK family and the
    zero-cost terms (about 0.3 s per cell on a 2-core CPU). :meth:`real_shape` gives the benchmark's network
    (C16 N5, 32×32), where every kernel quantity is computed but the shipped scores are not.
    """

    dataset: str = "cifar10"
    batch_size: int = 20
    seed: int = 0
    kernels: str = "robust"
    betas: tuple[float, ...] = (0.0, 0.5, 1.0)
    attack: str = "pgd"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 7
    output: str = "trace"
    bn_mode: str = "batch"
    inputs: str = "data"
    logit_chunk: int = 10
    engine: str = "layerwise"
    channels: int = 8
    cells_per_stage: int = 1
    input_size: int | None = 16
    proxies: bool = True
    proxy_batch_size: int = 64
    family: bool = True
    fisher_batch_size: int = 4
    init: str = "kaiming"
    cpu_library_fusions: bool | None = None

    def __post_init__(self) -> None:
        data.dataset_info(self.dataset)
        if self.kernels not in KERNEL_SETS and self.kernels != "none":
            raise ValueError(f"kernels must be one of {tuple(KERNEL_SETS) + ('none',)}, got {self.kernels!r}")
        if self.kernels == "none" and not self.proxies:
            raise ValueError("kernels='none' with proxies=False computes nothing; enable one of them")
        for name, low, what in (("batch_size", 2, "a kernel needs two samples"), ("proxy_batch_size", 2, "images"),
                                ("fisher_batch_size", 1, "images of the Fisher spectrum"),
                                ("channels", 1, "C of the network"), ("cells_per_stage", 1, "N cells per stage"),
                                ("logit_chunk", 1, "logits per step of the Jacobian engine")):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int ≥ {low} ({what}), got {value!r}")
        if self.input_size is not None and (not isinstance(self.input_size, int) or self.input_size < 4
                                            or self.input_size % 4):
            raise ValueError(f"input_size must be a multiple of 4 and ≥ 4 (two stride-2 blocks), or None for the "
                             f"dataset's own size; got {self.input_size!r}")
        native = data.dataset_info(self.dataset).input_size
        if self.inputs == "data" and self.input_size is not None and self.input_size > native:
            raise ValueError(f"input_size (--input-size) {self.input_size} is larger than {self.dataset}'s "
                             f"{native}×{native} images, which are only ever downsampled; give at most {native}, or "
                             f"inputs='random' (--inputs random)")
        for name, allowed in (("attack", ("pgd", "fgsm")), ("output", OUTPUT_MODES),
                              ("engine", ("layerwise", "jacobian")), ("inputs", ("data", "random")),
                              ("bn_mode", ("batch", "identity")), ("init", network.INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for b in self.betas:
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"each beta must be in [0, 1], got {b}")
        attack.validate(self.eps, self.step_size, self.steps)
        if self.cpu_library_fusions is None:  # off where it applies: the layerwise engine's programs
            object.__setattr__(self, "cpu_library_fusions", not self.layerwise)
        if not isinstance(self.cpu_library_fusions, bool):
            raise ValueError(f"cpu_library_fusions must be True, False or None (by the engine), "
                             f"got {self.cpu_library_fusions!r}")

    @property
    def layerwise(self) -> bool:
        """Whether the kernels are computed by the layerwise engine's compiled programs (``output`` ``"full"`` and
        the ``"jacobian"`` engine run the per-sample Jacobian reference)."""
        return self.engine == "layerwise" and self.output != "full"

    @classmethod
    def real_shape(cls, **changes) -> "ScoreSettings":
        """The benchmark's network (C = 16, N = 5, 32×32 images) with B = 16 and every kernel; ``changes`` on top."""
        return cls(**{"channels": 16, "cells_per_stage": 5, "input_size": None, "batch_size": 16, "kernels": "all",
                      "family": False, **changes})

    def network_config(self) -> network.NetworkConfig:
        """The :class:`ntkscore.cell.network.NetworkConfig` of these settings."""
        info = data.dataset_info(self.dataset)
        return network.NetworkConfig(channels=self.channels, cells_per_stage=self.cells_per_stage,
                                     num_classes=info.num_classes, input_size=self.input_size or info.input_size,
                                     bn_mode=self.bn_mode, mean=info.mean, std=info.std)
