"""The result of scoring one architecture: :class:`Score`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..cell import network

MEANINGS = {
    "value": "predicted percentile rank (0-1) of PGD-8 accuracy after adversarial training among NB201 cells "
             "(NAS-RobBench-201, CIFAR-10); larger = better",
    "robustness": "NTK prediction of the robustness residual: PGD-8 rank minus what the clean-accuracy rank "
                  "predicts (about -0.5..0.5); larger = keeps more accuracy under attack",
}
"""What the two shipped scores mean (:mod:`ntkscore.scores.predictor`)."""


class ScoreNotComputed(ValueError):
    """A shipped score asked of a :class:`Score` whose settings its predictor was not fitted at."""


@dataclass(frozen=True, repr=False)
class Score:
    """Scores of one architecture. ``metrics`` maps every computed quantity (``"<kernel>.<quantity>"``, ``zc.*``,
    ``params``, ``flops``, ``value``, ``robustness``) to a float64 value; ``repr`` and :meth:`summary` show the
    few that matter, :meth:`to_dict` all of them."""

    arch: str | None
    metrics: Mapping[str, float]
    flags: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = float("nan")
    layers: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Per-layer NTK spectra ``"<kernel>.<quantity>"`` → one value per :func:`ntkscore.cell.network.layer_paths`
    entry (:func:`ntkscore.kernels.family.layer_spectra`; empty without the NTK family)."""
    not_computed: Mapping[str, str] = field(default_factory=dict)
    """Why a shipped score is absent: name → the reason (its predictor was fitted at other settings)."""

    @property
    def value(self) -> float:
        """``value``: the shipped ``value`` predictor's output, the predicted percentile rank (0–1) of NAS-RobBench-201
        CIFAR-10 PGD-8 accuracy (larger = better). Raises :class:`ScoreNotComputed` at settings it was not fitted at."""
        return self._shipped("value")

    @property
    def robustness(self) -> float:
        """``robustness``: the shipped ``robustness`` predictor's output, the NTK prediction of the robustness
        residual (larger = keeps more accuracy under attack). Raises :class:`ScoreNotComputed` elsewhere."""
        return self._shipped("robustness")

    def _shipped(self, name: str) -> float:
        if name in self.metrics:
            return self.metrics[name]
        raise ScoreNotComputed(self.not_computed.get(name, f"{name!r} was not computed for this score"))

    def __getitem__(self, name: str) -> float:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(f"{name!r} was not computed; this score has {len(self.metrics)} metrics, e.g. "
                           f"{', '.join(list(self.metrics)[:6])} (Score.metrics lists them all)") from None

    def _get(self, name: str) -> float | None:
        try:
            return self.value if name == "value" else self.robustness if name == "robustness" else self.metrics[name]
        except (KeyError, ScoreNotComputed):
            return None

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v:.6g}" for n in ("value", "robustness", "params") if (v := self._get(n)) is not None)
        flags = f", flags={self.flags!r}" if self.flags else ""
        return f"Score(arch={self.arch!r}, {shown}{flags}, metrics=<{len(self.metrics)}>)"

    def summary(self) -> str:
        """The two scores with what they mean, #params, FLOPs and flags, as lines of text."""
        lines = [f"arch        {self.arch or '(model)'}"]
        for name in ("value", "robustness"):
            v = self._get(name)
            shown = f"{v:.3f}    {MEANINGS[name]}" if v is not None else \
                f"-        not computed: {self.not_computed.get(name, 'no predictor')}"
            lines.append(f"{name:<12}{shown}")
        if "params" in self.metrics:
            flops = f"    FLOPs {self.metrics['flops'] / 1e6:.2f} M" if "flops" in self.metrics else ""
            timing = f"    time {self.seconds:.1f} s" if np.isfinite(self.seconds) else ""
            lines.append(f"params      {self.metrics['params']:.0f}{flops}{timing}")
        lines.append(f"flags       {', '.join(self.flags) or '-'}")
        return "\n".join(lines)

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
        """Every metric, the flags, the time and the settings (``setting.<name>``) as one flat row."""
        return {"arch": self.arch, **dict(self.metrics), "flags": ";".join(self.flags), "seconds": self.seconds,
                **{f"setting.{k}": v for k, v in self.settings.items()}}
