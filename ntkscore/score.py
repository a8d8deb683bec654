"""Score an architecture (or any JAX model): batch → attacks → empirical NTKs → theory scores.

One call of :class:`Scorer` on a cell runs, with a single PRNG seed fixing the initialisation, the batch and the
attack noise (so every cell of a ranking sees the same weights of the shared supernet and the same images):

1. ``X, y``: a class-balanced batch (or uniform random inputs when ``inputs="random"``);
2. ``A(X)`` by PGD (or FGSM) with the true labels, and ``A(A(X))`` (radius 2ε around ``X``, see :mod:`.attack`);
3. the five NTKs ``K, K̃_ε, K̄_ε, K̃_2ε, K̄_2ε``: for NB201 cells by default steps 2–3 are one compiled program
   with the layerwise engine (:mod:`ntkscore.pipeline`, ``engine="layerwise"``; many cells per device step with
   ``arch_batch > 1``), else the per-sample Jacobian one (:func:`ntkscore.ntk.ntk_pairs`, ``engine="jacobian"``;
   also for ``output="full"`` and for any other model);
4. ``K_all(β)``, ``K̃_all(β)`` for each ``β`` and :func:`ntkscore.theory.spectral_scores` of every symmetric kernel;
   with ``family`` (layerwise engine), the NTK family of :mod:`ntkscore.family` on ``K`` and ``K̃_ε`` (TE-NAS,
   NASI, KNAS, LGA, the Fisher spectrum of VKDNW, per-layer spectra in :attr:`Score.layers`);
5. the zero-cost terms ``zc.*`` (:mod:`ntkscore.proxies`) on a batch of their own, the candidates ``composite.*``
   (:mod:`ntkscore.composite`) and, against a stored reference sample, the rank aggregates ``aggregate.*``
   (:mod:`ntkscore.reference`);
6. the two shipped per-cell scores of :mod:`ntkscore.formula`: ``value`` (:attr:`Score.value`, predicted PGD-8
   accuracy) and ``robustness`` (:attr:`Score.robustness`, predicted robustness residual, from NTK quantities).

Metric names are ``"<kernel>.<quantity>"``, e.g. ``"K.lambda_min"``, ``"K_rob.bound"``, ``"K_rob_all@0.5.condition"``
(``K_rob`` = K̃_ε, ``K_rob2`` = K̃_2ε, ``K_all@β`` = K_all(β), ``K_rob_all@β`` = K̃_all(β)).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import attack, composite, cost, data, formula, network, pipeline, proxies, reference, theory
from . import family as family_lib
from .ntk import OUTPUT_MODES, _NoContext, ntk_pairs
from .pipeline import KERNEL_PAIRS, KERNEL_SETS, CellNetwork
from .space import OPS, Arch, as_arch

DEFAULT_SCORE = formula.VALUE.name
PROXY_KEY = 1
"""``fold_in`` constant of the proxies' batch key (:mod:`ntkscore.proxies`), beside the NTK's three keys."""


@dataclass(frozen=True)
class ScoreSettings:
    """Everything that determines a score besides the architecture. Hashable; stored with every result."""

    dataset: str = "cifar10"
    batch_size: int = 16
    seed: int = 0
    kernels: str = "all"
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
    channels: int = 16
    cells_per_stage: int = 5
    input_size: int | None = None
    primary: str = DEFAULT_SCORE
    proxies: bool = True
    proxy_batch_size: int = 64
    family: bool = False
    fisher_batch_size: int = 4

    def __post_init__(self) -> None:
        data.dataset_info(self.dataset)
        if self.kernels not in KERNEL_SETS and self.kernels != "none":
            raise ValueError(f"kernels must be one of {tuple(KERNEL_SETS) + ('none',)}, got {self.kernels!r}")
        if self.kernels == "none" and not self.proxies:
            raise ValueError("kernels='none' with proxies=False computes nothing; enable one of them")
        if not isinstance(self.fisher_batch_size, int) or self.fisher_batch_size < 1:
            raise ValueError(f"fisher_batch_size must be an int ≥ 1 (images of the Fisher spectrum), got "
                             f"{self.fisher_batch_size!r}")
        if not isinstance(self.proxy_batch_size, int) or self.proxy_batch_size < 2:
            raise ValueError(f"proxy_batch_size must be an int ≥ 2, got {self.proxy_batch_size!r}")
        if self.attack not in ("pgd", "fgsm"):
            raise ValueError(f"attack must be 'pgd' or 'fgsm', got {self.attack!r}")
        if self.output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {OUTPUT_MODES}, got {self.output!r}")
        if self.engine not in ("layerwise", "jacobian"):
            raise ValueError(f"engine must be 'layerwise' or 'jacobian', got {self.engine!r}")
        if self.inputs not in ("data", "random"):
            raise ValueError(f"inputs must be 'data' or 'random', got {self.inputs!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ValueError(f"batch_size must be an int ≥ 2 (a kernel needs two samples), got {self.batch_size!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for b in self.betas:
            if not 0.0 <= b <= 1.0:
                raise ValueError(f"each beta must be in [0, 1], got {b}")
        attack.validate(self.eps, self.step_size, self.steps)

    def network_config(self) -> network.NetworkConfig:
        info = data.dataset_info(self.dataset)
        return network.NetworkConfig(channels=self.channels, cells_per_stage=self.cells_per_stage,
                                     num_classes=info.num_classes, input_size=self.input_size or info.input_size,
                                     bn_mode=self.bn_mode, mean=info.mean, std=info.std)


@dataclass(frozen=True)
class Score:
    """Scores of one architecture: ``metrics`` maps ``"<kernel>.<quantity>"`` to a float64 value."""

    arch: str | None
    metrics: Mapping[str, float]
    flags: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = float("nan")
    layers: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Per-layer NTK spectra ``"<kernel>.<quantity>"`` → one value per :func:`ntkscore.network.layer_paths` entry
    (:func:`ntkscore.family.layer_spectra`; empty without the NTK family)."""

    @property
    def value(self) -> float:
        """The primary score (``settings["primary"]``, by default ``"value"``: :data:`ntkscore.formula.VALUE`)."""
        return self._metric(self.settings.get("primary", DEFAULT_SCORE))

    @property
    def robustness(self) -> float:
        """The NTK robustness score ``"robustness"`` (:data:`ntkscore.formula.ROBUSTNESS`): larger = more of the
        clean accuracy predicted to survive the attack."""
        return self._metric(formula.ROBUSTNESS.name)

    def _metric(self, name: str) -> float:
        if name in self.metrics:
            return self.metrics[name]
        shipped = {f.name: f for f in formula.SHIPPED}
        if name in shipped:
            missing = [t for t in shipped[name].weights if t not in self.metrics]
            raise KeyError(f"{name!r} needs the metrics {missing}, not computed with these settings (kernels="
                           f"{self.settings.get('kernels')!r}, proxies={self.settings.get('proxies')!r})")
        if name.startswith(composite.AGGREGATE_PREFIX):
            raise KeyError(f"{name!r} is a rank aggregate: a cell's rank among other cells, and no reference sample "
                           "of NB201 cells (ntkscore.reference) matches these settings and images; rank a population "
                           "with ntkscore.rank and composite.aggregate_scores, or use the per-cell score['value']")
        raise KeyError(f"{name!r} was not computed with kernels={self.settings.get('kernels')!r}; pick one of the "
                       "metrics, e.g. score['K.lambda_min']")

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def layer_table(self):
        """:attr:`layers` as a pandas table, one row per layer the cell uses (``tr Θ_l > 0`` in either kernel),
        indexed by its path (``"stage1/cell0/edge3/conv3x3"``)."""
        import pandas as pd

        paths = network.layer_paths(network.NetworkConfig(channels=int(self.settings.get("channels", 16)),
                                                          cells_per_stage=int(self.settings.get("cells_per_stage", 5))))
        table = pd.DataFrame({k: np.asarray(v) for k, v in self.layers.items()}, index=["/".join(p) for p in paths])
        traces = [c for c in table.columns if c.endswith(".trace")]
        return table[(table[traces] > 0).any(axis=1)] if traces else table

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, **dict(self.metrics), "flags": ";".join(self.flags), "seconds": self.seconds,
                **{f"setting.{k}": v for k, v in self.settings.items()}}


def _targets(labels, num_classes: int, size: int, output: str) -> np.ndarray:
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
        targets = _targets(labels, num_classes, k.shape[0], output)
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
    """Per-parameter-group contributions ``Θ = Σ_g Θ_g`` (:data:`ntkscore.network.GROUPS`) of the first kernel of
    :data:`GROUP_KERNEL` in ``grouped`` (name → ``(G, n, n)``): ``<K>/<g>.trace_share`` ``tr Θ_g / tr Θ`` and
    ``<K>/<g>.lambda_min`` ``λ_min(Θ_g)``; and every :func:`ntkscore.theory.spectral_scores` quantity of the *cell
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


def _kernels(apply_fn, params, x, y, make_ctx: Callable, attack_ctx, key, s: ScoreSettings,
             attack_fn=None) -> dict[str, np.ndarray]:
    """The generic path (any model, or the NB201 cell with ``engine="jacobian"``): per-sample Jacobian NTKs."""
    names = KERNEL_SETS[s.kernels]
    xs = [x]
    if pipeline.batches_for(s.kernels) > 1:
        xs.extend(pipeline.adversarial_batches(attack_fn or apply_fn, params, x, y, attack_ctx, key, s))
        xs = xs[:pipeline.batches_for(s.kernels)]
    ctxs = [make_ctx(b) for b in xs]
    pairs = tuple(KERNEL_PAIRS[n] for n in names)
    out = ntk_pairs(apply_fn, params, xs, ctxs, pairs, s.output, s.logit_chunk)
    return {n: np.asarray(k, np.float64) for n, k in zip(names, out)}


class Scorer:
    """Scores NB201 cells with fixed settings: one initialisation, one batch, one compiled program for all cells.

    ``arch_batch`` is how many cells :meth:`score_many` sends to the device in one step
    (:func:`ntkscore.pipeline.batched_cell_kernels`); ``None`` picks it by device kind (1 on a CPU). Scores do not
    depend on it beyond float32 rounding. With ``settings.proxies`` each cell also gets the zero-cost terms of
    :mod:`ntkscore.proxies` (``zc.*``, on their own batch of ``proxy_batch_size`` images); when ``references``
    holds a reference sample for these settings (:mod:`ntkscore.reference`), the rank aggregates
    (``aggregate.*``) of the cell within it.
    """

    def __init__(self, settings: ScoreSettings = ScoreSettings(), data_dir=None, images=None,
                 arch_batch: int | None = None, references=reference.REFERENCES):
        self.settings = settings
        self.config = settings.network_config()
        if arch_batch is None:  # by device kind; the generic engine and the NTK family have no batched program
            arch_batch = pipeline.default_arch_batch() if self._layerwise and not settings.family else 1
        self.arch_batch = arch_batch
        if not isinstance(self.arch_batch, int) or self.arch_batch < 1:
            raise ValueError(f"arch_batch must be a positive int (cells per device step), got {self.arch_batch!r}")
        if self.arch_batch > 1 and settings.family:
            raise ValueError("the NTK family is computed one cell per device step; use arch_batch=1, or "
                             "family=False (no --family) to batch cells")
        if self.arch_batch > 1 and not self._layerwise:
            raise ValueError("arch_batch > 1 needs the layerwise engine with output 'trace' or 'sum' "
                             f"(got engine={settings.engine!r}, output={settings.output!r}); use arch_batch=1")
        self.apply_fn = CellNetwork(self.config)
        self.attack_fn = CellNetwork(self.config, input_gradients_only=True)
        k_init, k_batch, self._attack_key = jax.random.split(jax.random.PRNGKey(settings.seed), 3)
        self.params = network.init(k_init, self.config)
        self.x, self.y = self._batch(k_batch, settings.batch_size, data_dir, images)
        batches = (self.x, self.y)
        if settings.proxies:  # their own, larger batch (a key of its own: the NTK's keys stay as they were)
            k_proxy = jax.random.fold_in(jax.random.PRNGKey(settings.seed), PROXY_KEY)
            self.proxy_x = self._batch(k_proxy, settings.proxy_batch_size, data_dir, images)[0]
            batches += (self.proxy_x,)
        self.reference_settings = {**asdict(settings), "input_size": self.config.input_size,
                                   "batches": reference.batch_fingerprint(*batches), "backend": jax.default_backend()}
        """What a reference sample must match (:func:`ntkscore.reference.find`): the settings, the images, the backend."""
        self.reference = reference.find(self.reference_settings, references)

    def _batch(self, key, size: int, data_dir, images):
        info = data.dataset_info(self.settings.dataset)
        if self.settings.inputs == "random":
            return data.random_batch(key, size, self.config.input_shape, info.num_classes)
        x, y = data.load_batch(key, size, self.settings.dataset, data_dir, images)
        if x.shape[1] > self.config.input_size:  # a reduced input size: area-downsample the images
            x = data.downsample(x, self.config.input_size)
        if x.shape[1:] != self.config.input_shape:
            raise ValueError(f"images have shape {x.shape[1:]}; {self.settings.dataset} expects "
                             f"{self.config.input_shape}")
        return x, y

    @property
    def _layerwise(self) -> bool:
        return self.settings.engine == "layerwise" and self.settings.output != "full"

    def _kernels_of_cell(self, arch: Arch) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Kernels by name, ``(n, n)`` each or ``(G, n, n)`` split by parameter group (the layerwise engine), and
        the NTK family's device-side quantities (:func:`ntkscore.pipeline.cell_kernels`; the layerwise engine only)."""
        if self.settings.kernels == "none":
            return {}, {}
        ops = jnp.asarray(arch.ops, jnp.int32)
        if self._layerwise:
            out, family = pipeline.cell_kernels(self.params, ops, self.x, self.y, self._attack_key, self.settings,
                                                self.config)
            return ({n: np.asarray(k, np.float64) for n, k in zip(KERNEL_SETS[self.settings.kernels], out)},
                    jax.tree.map(lambda a: np.asarray(a, np.float64), family))
        if self.config.bn_mode == "batch":
            make_ctx = lambda b: (ops, network.batch_statistics(self.params, ops, b, self.config))  # noqa: E731
        else:
            make_ctx = lambda b: (ops, None)  # noqa: E731
        return _kernels(self.apply_fn, self.params, self.x, self.y, make_ctx, (ops, None), self._attack_key,
                        self.settings, self.attack_fn), {}

    def _kernels_of_batch(self, archs: Sequence[Arch]) -> list[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """One device step for up to ``arch_batch`` cells, padded with the first (one program for every batch)."""
        ops = np.asarray([a.ops for a in archs] + [archs[0].ops] * (self.arch_batch - len(archs)), np.int32)
        out, family = pipeline.batched_cell_kernels(self.params, ops, self.x, self.y, self._attack_key,
                                                    self.settings, self.config)
        out = [np.asarray(k, np.float64) for k in out]
        family = jax.tree.map(lambda a: np.asarray(a, np.float64), family)
        return [({n: k[i] for n, k in zip(KERNEL_SETS[self.settings.kernels], out)},
                 jax.tree.map(lambda a: a[i], family)) for i in range(len(archs))]

    def _score(self, arch: Arch, kernels: Mapping[str, np.ndarray], family: Mapping[str, Any]) -> Score:
        grouped = {n: k for n, k in kernels.items() if k.ndim == 3}
        kernels = {n: k.sum(0) if k.ndim == 3 else k for n, k in kernels.items()}
        metrics, flags = kernel_scores(kernels, np.asarray(self.y), self.config.num_classes, self.settings.betas,
                                       self.settings.output)
        if kernels:
            size = next(iter(kernels.values())).shape[0]
            metrics.update(group_scores(grouped, _targets(np.asarray(self.y), self.config.num_classes, size,
                                                          self.settings.output)))
        layers = {}
        if family:
            family = {k: {**f, "kernel": kernels[k]} for k, f in family.items()}
            metrics.update(family_lib.family_scores(family, np.asarray(self.y), self.config.num_classes,
                                                    network.layer_widths(self.config),
                                                    min(self.settings.fisher_batch_size, self.settings.batch_size)))
            layers = {f"{k}.{q}": f[q] for k, f in family.items() for q in family_lib.LAYER_QUANTITIES}
        if self.settings.proxies:
            metrics.update(proxies.proxy_scores(self.params, arch.ops, self.proxy_x, self.config))
        metrics["params"] = float(cost.num_params(arch, self.config))
        metrics["flops"] = float(cost.flops(arch, self.config))
        metrics.update(composite.composite_scores(metrics))
        metrics.update(reference.reference_aggregates(metrics, self.reference))
        metrics.update(formula.formula_scores(metrics))
        if arch.is_dead:
            flags = ("dead_cell",) + flags
        elif not any(OPS[o].startswith("nor_conv") for o in arch.ops):
            flags = ("parameter_free_cell",) + flags
        return Score(arch.to_string(), metrics, flags, asdict(self.settings), layers=layers)

    def __call__(self, arch: Arch | str) -> Score:
        """Score one cell (the single-cell program, whatever ``arch_batch`` is)."""
        arch = as_arch(arch)
        start = time.perf_counter()
        kernels, family = self._kernels_of_cell(arch)
        return replace(self._score(arch, kernels, family), seconds=time.perf_counter() - start)

    def score_many(self, archs: Sequence[Arch | str]) -> list[Score]:
        """Score cells ``arch_batch`` at a time; each :class:`Score`'s ``seconds`` is its share of its step."""
        archs = [as_arch(a) for a in archs]
        if self.arch_batch == 1 or self.settings.kernels == "none":
            return [self(a) for a in archs]
        results = []
        for i in range(0, len(archs), self.arch_batch):
            chunk = archs[i:i + self.arch_batch]
            start = time.perf_counter()
            scored = [self._score(a, k, f) for a, (k, f) in zip(chunk, self._kernels_of_batch(chunk))]
            share = (time.perf_counter() - start) / len(chunk)
            results += [replace(s, seconds=share) for s in scored]
        return results


def score(arch: Arch | str, data_dir=None, images=None, **settings) -> Score:
    """Score one NB201 cell: ``ntkscore.score("|nor_conv_3x3~0|+...")``. Keyword arguments are :class:`ScoreSettings`."""
    return Scorer(ScoreSettings(**settings), data_dir=data_dir, images=images)(arch)


def score_model(apply_fn: Callable[[Any, jax.Array], jax.Array], params, x, y, *, key=None, **settings) -> Score:
    """Score any JAX model ``apply_fn(params, x) -> logits`` on inputs ``x`` in [0, 1] with integer labels ``y``.

    Each sample is evaluated alone, ``apply_fn(params, x[None])`` (batch-dependent layers see a batch of one).
    ``settings`` are :class:`ScoreSettings` fields (network-shape fields are ignored). The zero-cost terms and the
    reference samples are made for NB201 cells, so the primary score here is the per-cell NTK score
    ``composite.robust_bound/trace+params`` unless ``primary`` is given.
    """
    settings = {"primary": composite.PREFIX + composite.NTK_SCORE, "proxies": False, **settings}
    s = replace(ScoreSettings(), **settings)
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    if x.ndim < 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be (n, ...) and y (n,) integer labels; got x {x.shape} and y {y.shape}")
    try:
        out = jax.eval_shape(apply_fn, params, x[:1])
    except Exception as err:
        raise ValueError(f"apply_fn(params, x) failed on one sample of shape {x.shape[1:]}: {err}") from None
    if len(out.shape) != 2:
        raise ValueError(f"apply_fn must return logits of shape (n, classes), got {out.shape}")
    fn = _NoContext(apply_fn)
    key = jax.random.PRNGKey(s.seed) if key is None else key
    kernels = _kernels(fn, params, x, y, lambda b: None, None, key, s)
    metrics, flags = kernel_scores(kernels, np.asarray(y), out.shape[1], s.betas, s.output)
    metrics["params"] = float(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
    metrics.update(composite.composite_scores(metrics))
    metrics.update(formula.formula_scores(metrics))
    return Score(None, metrics, flags, asdict(s))
