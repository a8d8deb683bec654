"""Learned scores: fitting, the file round trip, the settings fingerprint, and applying them where they are valid."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SETTINGS
from scipy.stats import kendalltau

from ntkscore import Scorer, ScoreSettings
from ntkscore.cell.space import unique_archs
from ntkscore.scores import predictor
from ntkscore.study import learn

SETTINGS = ScoreSettings(**TINY_SETTINGS)


def _table(n: int, seed: int = 0, settings: ScoreSettings = SETTINGS) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic rank file: NTK and zero-cost columns, the settings' columns, and a target that is a known
    non-monotone function of two of them (no linear formula of one term can order it)."""
    rng = np.random.default_rng(seed)
    archs = [unique_archs()[i].to_string() for i in rng.choice(6466, n, replace=False)]
    a, b = rng.uniform(-1, 1, n), rng.uniform(0.1, 10, n)
    table = pd.DataFrame({"arch": archs, "K.lambda_min": b, "K_rob.trace": np.exp(a), "zc.meco": rng.normal(size=n),
                          "params": rng.uniform(1e4, 1e6, n), "flags": "", "seconds": 0.1,
                          **{f"setting.{k}": str(v) for k, v in asdict(settings).items()}})
    return table, np.sin(3 * a) + np.log(b)


def test_fit_recovers_a_known_nonlinear_relation_and_round_trips(tmp_path):
    table, y = _table(600)
    features = learn.features_of(list(table.columns), ["ntk", "zero_cost"])
    assert features == ["K.lambda_min", "K_rob.trace", "zc.meco", "params"]
    fitted = learn.fit_predictor(table, y, features, "value", "synthetic", predictor.table_settings(table))
    assert fitted.provenance["n"] == 600 and fitted.provenance["cv_tau"] > 0.8
    new, y_new = _table(300, seed=1)
    assert kendalltau(fitted.predict(new), y_new).statistic > 0.85  # held-out cells
    linear = max(abs(kendalltau(new[f], y_new).statistic) for f in features)
    assert linear < 0.6  # no single feature orders it: the relation is the model's to find
    loaded = predictor.load(fitted.save(tmp_path / "p.json"))
    np.testing.assert_array_equal(loaded.predict(new), fitted.predict(new))
    assert loaded.features == fitted.features and loaded.settings == fitted.settings
    row = new.iloc[0].to_dict()
    assert loaded.predict(row) == pytest.approx(float(fitted.predict(new)[0]))  # one cell: a float


def test_a_mismatched_fingerprint_refuses_naming_the_difference():
    table, y = _table(60)
    fitted = learn.fit_predictor(table, y, ["K.lambda_min", "zc.meco"], "value", "synthetic",
                                 predictor.table_settings(table), folds=0)
    other = asdict(ScoreSettings(**{**TINY_SETTINGS, "batch_size": 8}))
    with pytest.raises(predictor.SettingsMismatch, match="batch_size: fitted at 6, given 8.*'ntkscore fit'"):
        fitted.predict(table, other)
    assert fitted.predict(table, asdict(SETTINGS)).shape == (60,)  # the same settings, typed: accepted
    assert fitted.predict(table, asdict(ScoreSettings(**{**TINY_SETTINGS, "logit_chunk": 3}))).shape == (60,)
    out, reasons = learn.apply_predictors(table.assign(value=0.0), [fitted])
    assert list(out["value"]) == list(fitted.predict(table)) and not reasons
    moved = table.assign(**{"setting.batch_size": "8"})
    out, reasons = learn.apply_predictors(moved.assign(value=0.0), [fitted])
    assert "value" not in out and "batch_size" in reasons["value"]  # never a column from other settings
    with pytest.raises(ValueError, match="mixes rows scored with different settings \\(batch_size"):
        predictor.table_settings(pd.concat([table, moved]))


def test_settings_a_fingerprint_predates_count_at_the_value_they_were_computed_at():
    """Tables and predictors written before ``cpu_library_fusions`` was recorded were computed with XLA's library
    fusions: they match True, and refuse False (the default), on either side."""
    old_table, y = _table(60)
    old_table = old_table.drop(columns=["setting.cpu_library_fusions"])
    fitted = learn.fit_predictor(old_table, y, ["K.lambda_min", "zc.meco"], "value", "synthetic",
                                 predictor.table_settings(old_table), folds=0)
    assert "cpu_library_fusions" not in fitted.settings
    on = asdict(ScoreSettings(**{**TINY_SETTINGS, "cpu_library_fusions": True}))
    assert predictor.differences(fitted, on) == []
    assert not SETTINGS.cpu_library_fusions  # the default for the layerwise engine
    assert predictor.differences(fitted, asdict(SETTINGS)) == ["cpu_library_fusions: fitted at True, given False"]
    table, y = _table(60)
    new = learn.fit_predictor(table, y, ["K.lambda_min", "zc.meco"], "value", "synthetic",
                              predictor.table_settings(table), folds=0)
    assert predictor.differences(new, {k: v for k, v in asdict(SETTINGS).items() if k != "cpu_library_fusions"}) \
        == ["cpu_library_fusions: fitted at False, given True"]
    for shipped in predictor.shipped_predictors():
        assert "cpu_library_fusions: fitted at False, given True" in predictor.mismatch_message(
            shipped, asdict(ScoreSettings(cpu_library_fusions=True)))


def test_scorer_applies_a_predictor_at_its_settings_only():
    table, y = _table(60)
    features = ["K.lambda_min", "K_rob.trace", "zc.meco"]
    fitted = learn.fit_predictor(table, y, features, "value", "synthetic", asdict(SETTINGS), folds=0)
    cell = unique_archs()[100].to_string()
    s = Scorer(SETTINGS, predictors=[fitted])(cell)
    assert s.value == s.metrics["value"] == pytest.approx(fitted.predict(s.metrics))
    assert "robustness" not in s.metrics and "no predictor" in s.summary()
    elsewhere = Scorer(ScoreSettings(**{**TINY_SETTINGS, "seed": 3}), predictors=[fitted])
    assert "seed: fitted at 0, given 3" in elsewhere.not_computed["value"]


def test_shipped_predictors_are_fitted_at_the_default_settings_on_the_development_split():
    shipped = predictor.shipped_predictors()
    assert [p.name for p in shipped] == list(predictor.SHIPPED)
    defaults = asdict(ScoreSettings())
    for p in shipped:
        assert predictor.mismatch_message(p, defaults) is None
        assert p.provenance["split"] == "development" and p.provenance["n"] > 1000
    robustness = predictor.shipped("robustness")
    assert all(learn.feature_group(f) != "zero_cost" for f in robustness.features)  # the NTK's score
    assert any(learn.feature_group(f) == "zero_cost" for f in predictor.shipped("value").features)


def test_fit_command_writes_a_predictor_and_correlate_excludes_its_cells(tmp_path, data_dir, capsys):
    from ntkscore.cli import main

    table, y = _table(160)
    table.to_csv(tmp_path / "scores.csv", index=False)
    labels = pd.DataFrame({"arch": table["arch"][:100], "accuracy": y[:100]})
    labels.to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "mine.json"
    assert main(["fit", str(tmp_path / "scores.csv"), "--target", str(tmp_path / "labels.csv"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "100 labelled cells of" in text and "one-hot surrogate" in text and "zero-cost only" in text
    mine = predictor.load(out)
    assert len(mine.provenance["training_cells"]) == 100
    assert main(["correlate", str(tmp_path / "scores.csv"), "--predictor", str(out), "--bootstrap", "0",
                 "--plot-metric", "--out-dir", str(tmp_path / "corr")]) == 0
    text = capsys.readouterr().out
    assert "100 cells excluded: the predictors of value were fitted on them" in text
    assert "60 cells in" in text
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "scores.csv")])  # --target is required
    assert main(["fit", str(tmp_path / "scores.csv"), "--target", "nowhere.csv"]) == 2
    assert "neither a benchmark column" in capsys.readouterr().err
