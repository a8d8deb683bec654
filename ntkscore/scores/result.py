"""The result of scoring one architecture: :class:`Score`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..cell import network
from . import formula

MEANINGS = {
    "value": "predicted PGD-8 accuracy after adversarial training (larger = better); a log-scale number with no "
             "fixed range: compare cells scored with the same settings",
    "robustness": "NTK prediction of how much clean accuracy survives a PGD-8 attack (larger = more kept); "
                  "log-scale, compare cells scored with the same settings",
}
"""What the two shipped scores mean (:data:`ntkscore.scores.formula.VALUE`, :data:`~ntkscore.scores.formula.ROBUSTNESS`)."""


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

    @property
    def value(self) -> float:
        """``value``: :data:`ntkscore.scores.formula.VALUE`, the predicted PGD-8 accuracy (larger = better)."""
        return self._shipped(formula.VALUE)

    @property
    def robustness(self) -> float:
        """``robustness``: :data:`ntkscore.scores.formula.ROBUSTNESS`, the NTK prediction of the accuracy kept
        under attack (larger = more kept)."""
        return self._shipped(formula.ROBUSTNESS)

    def _shipped(self, f: formula.Formula) -> float:
        if f.name in self.metrics:
            return self.metrics[f.name]
        missing = [t for t in f.weights if t not in self.metrics]
        raise KeyError(f"{f.name!r} = {f.formula()} needs the metrics {missing}, which these settings did not "
                       f"compute (kernels={self.settings.get('kernels')!r}, proxies={self.settings.get('proxies')!r})")

    def __getitem__(self, name: str) -> float:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(f"{name!r} was not computed; this score has {len(self.metrics)} metrics, e.g. "
                           f"{', '.join(list(self.metrics)[:6])} (Score.metrics lists them all)") from None

    def _get(self, name: str) -> float | None:
        try:
            return self.value if name == "value" else self.robustness if name == "robustness" else self.metrics[name]
        except KeyError:
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
            lines.append(f"{name:<12}{'-' if v is None else f'{v:.6g}'}    {MEANINGS[name]}")
        if "params" in self.metrics:
            flops = f"    FLOPs {self.metrics['flops'] / 1e6:.2f} M" if "flops" in self.metrics else ""
            lines.append(f"params      {self.metrics['params']:.0f}{flops}    time {self.seconds:.1f} s")
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
