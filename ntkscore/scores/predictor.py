"""Learned scores: a gradient-boosted model over a cell's metrics, bound to the settings its features came from.

A :class:`Predictor` is a LightGBM booster (``lightgbm``, Ke et al., NeurIPS 2017) together with

* ``features``: the metric names it reads (``"K_rob.lambda_min"``, ``"zc.meco"``, …; a missing or non-finite value is
  LightGBM's *missing*);
* ``settings``: the :class:`~ntkscore.ScoreSettings` fields (and values) its features were computed at: its
  *fingerprint*. It predicts only from a score or a table whose settings agree on every one of them
  (:func:`check_settings`); elsewhere the prediction is not made, and the error names the difference;
* ``target``: what it predicts, e.g. the percentile rank (0–1) of NAS-RobBench-201 CIFAR-10 PGD-8 accuracy;
* ``provenance``: how it was fitted (cells, their number, the split, hyperparameters, cross-validated τ, version).

It is stored as one JSON text file (the booster in LightGBM's own text format inside). The shipped predictors,
:data:`SHIPPED` ``value`` and ``robustness``, are package data (``ntkscore/scores/predictors/``);
:func:`ntkscore.study.learn.fit_predictor` makes new ones (``ntkscore fit``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT = "ntkscore-predictor/1"
SHIPPED = ("value", "robustness")
"""Names of the shipped predictors, in ``ntkscore/scores/predictors/<name>.json``."""
UNFINGERPRINTED = ("logit_chunk", "arch_batch")
"""Settings that change no feature value, never part of a fingerprint."""
LEGACY_SETTINGS = {"cpu_library_fusions": True}
"""Settings fields that older rank tables and predictors do not record, with the value they were computed at."""


@dataclass(frozen=True, eq=False)
class Predictor:
    """A fitted score: ``booster`` (``lightgbm.Booster``) over ``features``, valid at ``settings`` only."""

    name: str
    target: str
    features: tuple[str, ...]
    settings: Mapping[str, Any]
    booster: Any = field(repr=False)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def feature_matrix(self, metrics: Mapping[str, Any]) -> np.ndarray:
        """``(cells, features)`` float64 matrix from one cell's metrics (floats) or a table (columns); metrics the
        cell lacks, and non-finite values, are ``nan`` (LightGBM's missing value)."""
        columns = []
        n = None
        for name in self.features:
            value = metrics[name] if name in metrics else np.nan
            column = np.atleast_1d(np.asarray(_numeric(value), np.float64))
            n = len(column) if n is None or n == 1 else n
            columns.append(column)
        matrix = np.column_stack([np.broadcast_to(c, (n,)) for c in columns]) if columns else np.zeros((1, 0))
        return np.where(np.isfinite(matrix), matrix, np.nan)

    def predict(self, metrics: Mapping[str, Any], settings: Mapping[str, Any] | None = None):
        """The prediction for one cell's ``metrics`` (a float) or a table's (an array). With ``settings`` (a
        :class:`~ntkscore.ScoreSettings` as a dict, or a table's ``setting.*`` values) first checks the fingerprint
        and raises :class:`SettingsMismatch` if they differ."""
        if settings is not None:
            check_settings(self, settings)
        missing = [f for f in self.features if f not in metrics]
        if len(missing) == len(self.features):
            raise KeyError(f"predictor {self.name!r} reads {len(self.features)} metrics (e.g. "
                           f"{', '.join(self.features[:4])}), none of which were computed")
        scalar = all(np.ndim(metrics[f]) == 0 for f in self.features if f in metrics)
        out = np.asarray(self.booster.predict(self.feature_matrix(metrics)), np.float64)
        return float(out[0]) if scalar else out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "name": self.name, "target": self.target, "features": list(self.features),
                "settings": dict(self.settings), "provenance": dict(self.provenance),
                "model": self.booster.model_to_string()}

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON text (the booster inside in LightGBM's text format)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def _numeric(value):
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError):
        return np.asarray(np.nan)


class SettingsMismatch(ValueError):
    """A predictor asked for a prediction from features computed at settings it was not fitted at."""


def fingerprint(settings: Mapping[str, Any], fields: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``fields`` of ``settings`` (default: all but :data:`UNFINGERPRINTED`) as JSON-comparable values."""
    fields = [k for k in settings if k not in UNFINGERPRINTED] if fields is None else fields
    return {k: _canonical(settings.get(k)) for k in fields}


def _canonical(value):
    """Settings as stored in a rank file (strings) or a dataclass (typed) made comparable: numbers as floats,
    tuples as lists, booleans and ``None`` as themselves."""
    if isinstance(value, str):
        text = value.strip()
        if text in ("True", "False"):
            return text == "True"
        if text in ("", "None"):
            return None
        if text.startswith("(") and text.endswith(")"):
            return [_canonical(v) for v in text[1:-1].split(",") if v.strip()]
        try:
            return float(text)
        except ValueError:
            return text
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_canonical(v) for v in value]
    return value


def differences(predictor: Predictor, settings: Mapping[str, Any]) -> list[str]:
    """``"field: fitted at A, given B"`` for each fingerprinted field where ``settings`` differ."""
    fitted_at = {**{k: v for k, v in LEGACY_SETTINGS.items() if k not in predictor.settings}, **predictor.settings}
    settings = {**LEGACY_SETTINGS, **settings}
    given = fingerprint(settings, list(fitted_at))
    out = []
    for key, fitted in fitted_at.items():
        if not _equal(_canonical(fitted), given[key]):
            out.append(f"{key}: fitted at {_shown(fitted)}, given {_shown(settings.get(key))}")
    return out


def _equal(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-9, atol=0.0))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _shown(value) -> str:
    value = _canonical(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "None" if value is None else str(value)


def mismatch_message(predictor: Predictor, settings: Mapping[str, Any]) -> str | None:
    """Why ``predictor`` cannot score features computed at ``settings`` (``None`` if it can)."""
    diff = differences(predictor, settings)
    if not diff:
        return None
    where = "the default settings, ScoreSettings()" if _is_shipped(predictor) else "the settings it was fitted at"
    return (f"{predictor.name!r} was fitted on features computed at other settings ({'; '.join(diff)}); it is not "
            f"applied elsewhere. Score at {where}, or fit a predictor at yours with 'ntkscore fit'")


def _is_shipped(predictor: Predictor) -> bool:
    return predictor.provenance.get("shipped", False)


def check_settings(predictor: Predictor, settings: Mapping[str, Any]) -> None:
    """Raise :class:`SettingsMismatch` (naming every differing field) unless ``settings`` match the fingerprint."""
    message = mismatch_message(predictor, settings)
    if message:
        raise SettingsMismatch(message)


def from_json(data: Mapping[str, Any], source: str = "predictor") -> Predictor:
    """A :class:`Predictor` from its JSON object (:meth:`Predictor.to_json`)."""
    import lightgbm

    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValueError(f"{source} is not an ntkscore predictor file (expected \"format\": \"{FORMAT}\")")
    try:
        booster = lightgbm.Booster(model_str=data["model"])
        return Predictor(name=str(data["name"]), target=str(data["target"]), features=tuple(data["features"]),
                         settings=dict(data["settings"]), booster=booster, provenance=dict(data.get("provenance", {})))
    except (KeyError, TypeError, lightgbm.basic.LightGBMError) as err:
        raise ValueError(f"{source} is not a complete ntkscore predictor ({type(err).__name__}: {err})") from None


def load(path: str | Path) -> Predictor:
    """Read a predictor file written by :meth:`Predictor.save` (or ``ntkscore fit``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictor file {path} does not exist (write one with 'ntkscore fit')")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not an ntkscore predictor file: not JSON ({err})") from None
    return from_json(data, str(path))


@lru_cache(maxsize=None)
def shipped(name: str) -> Predictor:
    """The shipped predictor ``name`` of :data:`SHIPPED`, loaded once per process."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped predictor {name!r}; the shipped ones are {SHIPPED}")
    text = resources.files("ntkscore.scores").joinpath("predictors", f"{name}.json").read_text()
    return from_json(json.loads(text), f"shipped predictor {name!r}")


def shipped_predictors() -> tuple[Predictor, ...]:
    """The shipped predictors (:data:`SHIPPED`) present in the installed package."""
    folder = resources.files("ntkscore.scores").joinpath("predictors")
    return tuple(shipped(n) for n in SHIPPED if folder.joinpath(f"{n}.json").is_file())


def predictions(predictors: Sequence[Predictor], metrics: Mapping[str, Any],
                settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, reasons)``: each predictor's prediction where ``settings`` match its fingerprint, else the
    reason it was not made (:func:`mismatch_message`)."""
    values, reasons = {}, {}
    for p in predictors:
        message = mismatch_message(p, settings)
        if message:
            reasons[p.name] = message
            continue
        try:
            values[p.name] = p.predict(metrics)
        except KeyError as err:
            reasons[p.name] = str(err.args[0])
    return values, reasons


def table_settings(table) -> dict[str, Any]:
    """The settings of a rank table (its ``setting.*`` columns), refusing a table whose rows were scored with
    different settings (a fingerprinted field with more than one value)."""
    columns = [c for c in table.columns if c.startswith("setting.")]
    if not columns:
        raise ValueError("the table has no setting.* columns; expected a file written by 'ntkscore rank'")
    out = {}
    for c in columns:
        values = table[c].dropna().astype(str).unique() if len(table) else []
        key = c.removeprefix("setting.")
        if len(values) > 1 and key not in UNFINGERPRINTED:
            raise ValueError(f"the table mixes rows scored with different settings ({key}: "
                             f"{', '.join(map(str, values[:4]))}); score or select one setting per file")
        out[key] = values[0] if len(values) else None
    return out
