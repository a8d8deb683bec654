"""Score NB201 cells: batch → attacks → empirical NTKs → theory scores → the shipped per-cell scores.

One :class:`Scorer` fixes the settings, and with one PRNG seed the initialisation, the batch and the attack noise, so
every cell of a ranking sees the same weights of the shared supernet and the same images. For each cell it computes:

1. ``X, y``: a class-balanced batch (or uniform random inputs when ``inputs="random"``);
2. ``A(X)`` by PGD (or FGSM) with the true labels, and ``A(A(X))`` (radius 2ε around ``X``, see
   :mod:`ntkscore.inputs.attack`);
3. the five NTKs ``K, K̃_ε, K̄_ε, K̃_2ε, K̄_2ε``: by default steps 2–3 are one compiled program with the layerwise
   engine (:mod:`ntkscore.kernels.pipeline`; many cells per device step with ``arch_batch > 1``), else the
   per-sample Jacobian one (:func:`ntkscore.kernels.ntk.ntk_pairs`, ``engine="jacobian"``, also for
   ``output="full"``);
4. ``K_all(β)``, ``K̃_all(β)`` for each ``β`` and :func:`ntkscore.kernels.theory.spectral_scores` of every symmetric
   kernel; with ``family``, the NTK family of :mod:`ntkscore.kernels.family` (TE-NAS, NASI, KNAS, LGA, the Fisher
   spectrum of VKDNW, per-layer spectra in :attr:`Score.layers`);
5. the zero-cost terms ``zc.*`` (:mod:`ntkscore.proxies`) on a batch of their own, ``params`` and ``flops``;
6. the learned scores of :mod:`ntkscore.scores.predictor` whose fingerprint matches the settings: by default the
   shipped ``value`` (:attr:`Score.value`, predicted PGD-8 rank) and ``robustness`` (:attr:`Score.robustness`,
   predicted robustness residual), which exist at the default settings only; elsewhere
   :attr:`Score.not_computed` says why they are absent.

Metric names are ``"<kernel>.<quantity>"``, e.g. ``"K.lambda_min"``, ``"K_rob.bound"``, ``"K_rob_all@0.5.condition"``
(``K_rob`` = K̃_ε, ``K_rob2`` = K̃_2ε, ``K_all@β`` = K_all(β), ``K_rob_all@β`` = K̃_all(β)).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .. import compilation_cache, exported, proxies
from ..cell import cost, network
from ..cell.space import OPS, Arch, as_arch
from ..inputs import data, shipped
from ..kernels import family as family_lib
from ..kernels import pipeline, theory
from ..kernels.ntk import ntk_pairs
from ..kernels.pipeline import KERNEL_PAIRS, KERNEL_SETS, CellNetwork
from ..kernels.precision import compiler_options, scoring_precision
from . import predictor as predictor_lib
from .result import Score
from .settings import ScoreSettings

PROXY_KEY = 1
"""``fold_in`` constant of the proxies' batch key (:mod:`ntkscore.proxies`), beside the NTK's three keys."""


def bound_targets(labels, num_classes: int, size: int, output: str) -> np.ndarray:
    """Regression targets of the bound for a ``size × size`` kernel: one-hot labels, or ones for ``output="sum"``."""
    return np.ones((size, 1)) if output == "sum" else theory.one_hot_targets(labels, num_classes, size)


def kernel_scores(kernels: Mapping[str, np.ndarray], labels, num_classes: int, betas=(0.0, 0.5, 1.0),
                  output: str = "trace") -> tuple[dict[str, float], tuple[str, ...]]:
    """Theory scores of the symmetric and mixed kernels, with flags for zero, singular or non-finite kernels."""
    flags: list[str] = []
    ks = {}
    for name, k in kernels.items():
        k = np.asarray(k, np.float64)
        if not np.all(np.isfinite(k)):
            flags.append(f"nonfinite:{name}")
            k = np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)
        ks[name] = k
    symmetric = {n: ks[n] for n in ("K", "K_rob", "K_rob2") if n in ks}
    for b in betas:
        if "K_cross" in ks:
            symmetric[f"K_all@{b:g}"] = theory.clean_accuracy_kernel(ks["K"], ks["K_cross"], ks["K_rob"], b)
        if "K_cross2" in ks:
            symmetric[f"K_rob_all@{b:g}"] = theory.robust_accuracy_kernel(ks["K_rob"], ks["K_cross2"], ks["K_rob2"], b)
    n_samples = len(np.asarray(labels))
    metrics: dict[str, float] = {}
    for name, k in symmetric.items():
        targets = bound_targets(labels, num_classes, k.shape[0], output)
        s = theory.spectral_scores(k, targets, num_samples=n_samples)
        metrics.update({f"{name}.{q}": v for q, v in s.items()})
        if s["lambda_max"] <= 0.0:
            flags.append(f"zero_kernel:{name}")
        elif s["lambda_min"] <= theory.ridge(k):
            flags.append(f"singular:{name}")
    return metrics, tuple(flags)


GROUP_KERNEL = ("K_rob", "K")
"""The kernel whose per-group split is reported: ``K̃_ε`` when computed, else the clean ``K``."""


CELL_GROUPS = ("stage1", "stage2", "stage3")
"""The groups whose parameters are the searched cells' (the stem, reductions and head are the same in every cell)."""


def group_scores(grouped: Mapping[str, np.ndarray], targets: np.ndarray | None = None) -> dict[str, float]:
    """Per-parameter-group contributions ``Θ = Σ_g Θ_g`` (:data:`ntkscore.cell.network.GROUPS`) of the first kernel of
    :data:`GROUP_KERNEL` in ``grouped`` (name → ``(G, n, n)``): ``<K>/<g>.trace_share`` ``tr Θ_g / tr Θ`` and
    ``<K>/<g>.lambda_min`` ``λ_min(Θ_g)``; and every :func:`ntkscore.kernels.theory.spectral_scores` quantity of the *cell
    kernel* ``Θ_cells = Σ_{g ∈ CELL_GROUPS} Θ_g`` as ``<K>/cells.<quantity>`` (``bound`` with ``targets``)."""
    name = next((n for n in GROUP_KERNEL if n in grouped), None)
    if name is None:
        return {}
    parts = np.nan_to_num(np.asarray(grouped[name], np.float64))
    total = max(float(np.trace(parts.sum(0))), theory.TINY)
    out = {}
    for group, k in zip(network.GROUPS, parts):
        out[f"{name}/{group}.trace_share"] = float(np.trace(k)) / total
        out[f"{name}/{group}.lambda_min"] = theory.min_eigenvalue(k)
    cells = sum(k for g, k in zip(network.GROUPS, parts) if g in CELL_GROUPS)
    out.update({f"{name}/cells.{q}": v for q, v in theory.spectral_scores(cells, targets).items()})
    return out


def generic_kernels(apply_fn, params, x, y, make_ctx: Callable, attack_ctx, key, s: ScoreSettings,
             attack_fn=None) -> dict[str, np.ndarray]:
    """The kernels of ``s.kernels`` by the per-sample Jacobian engine (any model, or the NB201 cell with
    ``engine="jacobian"``): ``X``, then ``A(X)`` and ``A(A(X))`` attacked through ``attack_fn`` (default ``apply_fn``)."""
    names = KERNEL_SETS[s.kernels]
    xs = [x]
    if pipeline.batches_for(s.kernels) > 1:
        xs.extend(pipeline.adversarial_batches(attack_fn or apply_fn, params, x, y, attack_ctx, key, s))
        xs = xs[:pipeline.batches_for(s.kernels)]
    ctxs = [make_ctx(b) for b in xs]
    pairs = tuple(KERNEL_PAIRS[n] for n in names)
    out = ntk_pairs(apply_fn, params, xs, ctxs, pairs, s.output, s.logit_chunk)
    return {n: np.asarray(k, np.float64) for n, k in zip(names, out)}


def _available_memory() -> int | None:
    """Bytes of the default device's memory (the host's RAM for a CPU), or None when unknown."""
    device = jax.devices()[0]
    if device.platform == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    stats = device.memory_stats() or {}
    return stats.get("bytes_limit")


def _check_memory(config: network.NetworkConfig, batch_size: int) -> None:
    """Refuse, before anything is allocated, a network that cannot fit (:func:`ntkscore.cell.cost.memory_lower_bound`)."""
    need, have = cost.memory_lower_bound(config, batch_size), _available_memory()
    if have is not None and need > have:
        raise ValueError(f"a network with {config.channels} channels, {config.cells_per_stage} cells per stage and "
                         f"{config.input_size}×{config.input_size} inputs needs at least {need / 2**30:,.1f} GiB at "
                         f"batch {batch_size}; this {jax.devices()[0].platform.upper()} has {have / 2**30:,.1f} GiB. "
                         f"Use fewer channels or cells, or smaller inputs")


class Scorer:
    """Scores NB201 cells with fixed settings: one initialisation, one batch, one compiled program for all cells.

    ``arch_batch`` is how many cells :meth:`score_many` sends to the device in one step
    (:func:`ntkscore.kernels.pipeline.batched_cell_kernels`); ``None`` picks it by device kind (1 on a CPU). Scores do not
    depend on it beyond float32 rounding. With ``settings.proxies`` each cell also gets the zero-cost terms of
    :mod:`ntkscore.proxies` (``zc.*``, on their own batch of ``proxy_batch_size`` images). ``data_dir`` is the
    data directory (default ``$NTKSCORE_DATA``), ``images`` an ``.npz`` file instead. ``cache`` keeps compiled
    programs on disk between processes (:func:`ntkscore.compilation_cache.enable`). ``predictors`` are the learned
    scores to apply (default: the shipped ``value`` and ``robustness``); each is applied only where its fingerprint
    matches ``settings``.
    """

    def __init__(self, settings: ScoreSettings = ScoreSettings(), data_dir=None, images=None,
                 arch_batch: int | None = None, cache: bool = True,
                 predictors: Sequence[predictor_lib.Predictor] | None = None):
        if cache:
            compilation_cache.enable()
        self._programs = exported.Programs(True if cache else None,
                                           compiler_options=compiler_options(settings.cpu_library_fusions))
        self._compiled = False
        self.settings = settings
        self.config = settings.network_config()
        self._spec = pipeline.KernelSpec.of(settings)  # what the programs read: other settings share them
        self.predictors = tuple(predictor_lib.shipped_predictors() if predictors is None else predictors)
        self.not_computed = {p.name: m for p in self.predictors
                             if (m := predictor_lib.mismatch_message(p, asdict(settings)))}
        """Why each predictor that does not apply at these settings is not (name → reason)."""
        if arch_batch is None:  # by device kind; the generic engine and the NTK family have no batched program
            arch_batch = pipeline.default_arch_batch() if settings.layerwise and not settings.family else 1
        self.arch_batch = arch_batch
        if not isinstance(self.arch_batch, int) or self.arch_batch < 1:
            raise ValueError(f"arch_batch must be a positive int (cells per device step), got {self.arch_batch!r}")
        if self.arch_batch > 1 and settings.family:
            raise ValueError("the NTK family is computed one cell per device step; use arch_batch=1, or "
                             "family=False (no --family) to batch cells")
        if self.arch_batch > 1 and not settings.layerwise:
            raise ValueError("arch_batch > 1 needs the layerwise engine with output 'trace' or 'sum' "
                             f"(got engine={settings.engine!r}, output={settings.output!r}); use arch_batch=1")
        if not settings.cpu_library_fusions and not settings.layerwise:
            raise ValueError("cpu_library_fusions=False compiles the layerwise engine's programs; use "
                             f"engine='layerwise' with output 'trace' or 'sum' (got engine={settings.engine!r}, "
                             f"output={settings.output!r}), or cpu_library_fusions=True (or None: XLA's defaults for the "
                             "Jacobian engine)")
        _check_memory(self.config, max(settings.batch_size, settings.proxy_batch_size if settings.proxies else 0))
        self.apply_fn = CellNetwork(self.config)
        self.attack_fn = CellNetwork(self.config, input_gradients_only=True)
        k_init, k_batch, self._attack_key = jax.random.split(jax.random.PRNGKey(settings.seed), 3)
        self.params = network.init(k_init, self.config, settings.init)
        self.x, self.y = self._batch(k_batch, settings.batch_size, data_dir, images, "ntk")
        if settings.proxies:  # their own, larger batch (a key of its own: the NTK's keys stay as they were)
            k_proxy = jax.random.fold_in(jax.random.PRNGKey(settings.seed), PROXY_KEY)
            self.proxy_x = self._batch(k_proxy, settings.proxy_batch_size, data_dir, images, "proxy")[0]

    def _batch(self, key, size: int, data_dir, images, role: str):
        """The batch of ``role`` (``"ntk"`` or ``"proxy"``): random inputs, or images drawn from the data
        directory's file, or, where no data directory was named (no ``data_dir``, ``images`` or ``$NTKSCORE_DATA``)
        and none is found, the same draw shipped with the package (:mod:`ntkscore.inputs.shipped`)."""
        info = data.dataset_info(self.settings.dataset)
        if self.settings.inputs == "random":
            return data.random_batch(key, size, self.config.input_shape, info.num_classes)
        try:
            x, y = data.load_batch(key, size, self.settings.dataset, data_dir, images)
        except FileNotFoundError as err:
            implicit = data_dir is None and images is None and not os.environ.get(data.DATA_ENV)  # nothing named
            found = shipped.batch(self.settings.dataset, role, self.settings.seed, size) if implicit else None
            if found is None:
                raise FileNotFoundError(f"{err} (the package ships the images of the default settings only: "
                                        f"{'; '.join(shipped.available()) or 'none'})") from None
            x, y = data.to_unit_float(found[0]), jnp.asarray(found[1], jnp.int32)
        if x.shape[1] > self.config.input_size:  # a reduced input size: area-downsample the images
            x = data.downsample(x, self.config.input_size)
        if x.shape[1:] != self.config.input_shape:
            raise ValueError(f"images have shape {x.shape[1:]}; {self.settings.dataset} expects "
                             f"{self.config.input_shape}")
        return x, y

    def _kernels_of_cell(self, arch: Arch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Kernels by name, ``(n, n)`` each or ``(G, n, n)`` split by parameter group (the layerwise engine), and
        the NTK family's device-side quantities (:func:`ntkscore.kernels.pipeline.cell_kernels`; the layerwise engine only)."""
        if self.settings.kernels == "none":
            return {}, {}
        ops = jnp.asarray(arch.ops, jnp.int32)
        if self.settings.layerwise:
            out, family = self._programs(pipeline.cell_kernels, self.params, ops, self.x, self.y, self._attack_key,
                                         spec=self._spec, config=self.config)
            return ({n: np.asarray(k, np.float64) for n, k in zip(KERNEL_SETS[self.settings.kernels], out)},
                    jax.tree.map(lambda a: np.asarray(a, np.float64), family))
        if self.config.bn_mode == "batch":
            make_ctx = lambda b: (ops, network.batch_statistics(self.params, ops, b, self.config))  # noqa: E731
        else:
            make_ctx = lambda b: (ops, None)  # noqa: E731
        return generic_kernels(self.apply_fn, self.params, self.x, self.y, make_ctx, (ops, None), self._attack_key,
                        self.settings, self.attack_fn), {}

    def _kernels_of_batch(self, archs: Sequence[Arch]) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """One device step for up to ``arch_batch`` cells, padded with the first (one program for every batch)."""
        ops = np.asarray([a.ops for a in archs] + [archs[0].ops] * (self.arch_batch - len(archs)), np.int32)
        out, family = self._programs(pipeline.batched_cell_kernels, self.params, jnp.asarray(ops), self.x, self.y,
                                     self._attack_key, spec=self._spec, config=self.config)
        out = [np.asarray(k, np.float64) for k in out]
        family = jax.tree.map(lambda a: np.asarray(a, np.float64), family)
        return [({n: k[i] for n, k in zip(KERNEL_SETS[self.settings.kernels], out)},
                 jax.tree.map(lambda a: a[i], family)) for i in range(len(archs))]

    def _compile(self, arch: Arch) -> None:
        """Load (or compile) the single-cell kernel program and the zero-cost programs at once, on two threads: the
        programs are independent, and loading them from the cache is most of a new process's first call. Only
        compilation runs concurrently; the programs run one after the other (two XLA:CPU programs executing at
        once hung on a 2-core CPU)."""
        ops = jnp.asarray(arch.ops, jnp.int32)

        def zero_cost():
            with scoring_precision():  # JAX's configuration contexts are thread-local
                proxies.compile_programs(self.params, ops, self.proxy_x, self.config, self._programs)

        with ThreadPoolExecutor(1) as pool:
            done = pool.submit(zero_cost) if self.settings.proxies else None
            if self.settings.layerwise and self.settings.kernels != "none":
                with scoring_precision():
                    self._programs.compile(pipeline.cell_kernels, self.params, ops, self.x, self.y,
                                           self._attack_key, spec=self._spec, config=self.config)
            if done is not None:
                done.result()
        self._compiled = True

    def _score(self, arch: Arch, kernels: Mapping[str, np.ndarray], family: Mapping[str, Any]) -> Score:
        grouped = {n: k for n, k in kernels.items() if k.ndim == 3}
        kernels = {n: k.sum(0) if k.ndim == 3 else k for n, k in kernels.items()}
        metrics, flags = kernel_scores(kernels, np.asarray(self.y), self.config.num_classes, self.settings.betas,
                                       self.settings.output)
        if kernels:
            size = next(iter(kernels.values())).shape[0]
            metrics.update(group_scores(grouped, bound_targets(np.asarray(self.y), self.config.num_classes, size,
                                                          self.settings.output)))
        layers = {}
        if family:
            family = {k: {**f, "kernel": kernels[k]} for k, f in family.items()}
            metrics.update(family_lib.family_scores(family, np.asarray(self.y), self.config.num_classes,
                                                    network.layer_widths(self.config),
                                                    min(self.settings.fisher_batch_size, self.settings.batch_size)))
            layers = {f"{k}.{q}": f[q] for k, f in family.items() for q in family_lib.LAYER_QUANTITIES}
        if self.settings.proxies:
            metrics.update(proxies.proxy_scores(self.params, arch.ops, self.proxy_x, self.config, self._programs))
        metrics["params"] = float(cost.num_params(arch, self.config))
        metrics["multiply_adds"] = float(cost.multiply_adds(arch, self.config))
        metrics["flops"] = float(cost.flops(arch, self.config))
        values, not_computed = predictor_lib.predictions(self.predictors, metrics, asdict(self.settings))
        metrics.update(values)
        if arch.is_dead:
            flags = ("dead_cell",) + flags
        elif not any(OPS[o].startswith("nor_conv") for o in arch.ops):
            flags = ("parameter_free_cell",) + flags
        return Score(arch.to_string(), metrics, flags, asdict(self.settings), layers=layers, not_computed=not_computed)

    def __call__(self, arch: Arch | str) -> Score:
        """Score one cell (the single-cell program, whatever ``arch_batch`` is)."""
        arch = as_arch(arch)
        start = time.perf_counter()
        if not self._compiled:
            self._compile(arch)
        with scoring_precision():
            kernels, family = self._kernels_of_cell(arch)
            result = self._score(arch, kernels, family)
        return replace(result, seconds=time.perf_counter() - start)

    def score_many(self, archs: Sequence[Arch | str]) -> list[Score]:
        """Score cells ``arch_batch`` at a time; each :class:`Score`'s ``seconds`` is its share of its step."""
        archs = [as_arch(a) for a in archs]
        if self.arch_batch == 1 or self.settings.kernels == "none":
            return [self(a) for a in archs]
        results = []
        for i in range(0, len(archs), self.arch_batch):
            chunk = archs[i:i + self.arch_batch]
            start = time.perf_counter()
            with scoring_precision():
                scored = [self._score(a, k, f) for a, (k, f) in zip(chunk, self._kernels_of_batch(chunk))]
            share = (time.perf_counter() - start) / len(chunk)
            results += [replace(s, seconds=share) for s in scored]
        return results


def score(arch: Arch | str | int, data_dir=None, images=None, **settings) -> Score:
    """Score one NB201 cell: ``ntkscore.score("|nor_conv_3x3~0|+...")``, or by its NB201 index, ``ntkscore.score(1)``
    (looked up in ``nb201/meta.json`` under the data directory). Keyword arguments are :class:`ScoreSettings`
    fields; ``data_dir``/``images`` as for :class:`Scorer`."""
    if isinstance(arch, (int, np.integer)) and not isinstance(arch, bool):
        from ..study.benchmarks import arch_of_index  # the benchmark's index map: study's table reader

        arch = arch_of_index(arch, data_dir)
    return Scorer(ScoreSettings(**settings), data_dir=data_dir, images=images)(arch)
