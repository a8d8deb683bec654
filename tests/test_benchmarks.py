import json

import numpy as np
import pandas as pd
import pytest

from ntkscore.cell.space import Arch
from ntkscore.study import benchmarks, evaluate

A = Arch((3,) * 6).to_string()
B = Arch((2,) * 6).to_string()
C = Arch((4, 1, 1, 1, 1, 1)).to_string()


def _meta(tmp_path):
    ids = {str(i): {"nb201-string": s, "isomorph": str(i)} for i, s in enumerate([A, B, C])}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({"ids": ids, "epsilons": {}}))
    return path


def test_release_format_seed_mean(tmp_path):
    res = {"cifar10": {"0": {"val_acc": {"0": 0.8, "1": 0.9}, "autoattack": {"0": 0.4}},
                       "1": {"val_acc": {"0": 0.5}, "autoattack": {"0": 0.2}}},
           "cifar100": {}, "imagenet": {}}
    path = tmp_path / "NAS-RobBench-201_all.json"
    path.write_text(json.dumps(res))
    df = benchmarks.load_robbench_release(_meta(tmp_path), path, "cifar10", ["val_acc", "autoattack"])
    row = df.set_index("arch_index").loc[0]
    assert row["val_acc"] == pytest.approx(0.85) and row["arch_str"] == A
    with pytest.raises(ValueError, match="no metric\\(s\\) \\['pgd'\\]"):
        benchmarks.load_robbench_release(_meta(tmp_path), path, "cifar10", ["pgd"])
    with pytest.raises(ValueError, match="dataset must be one of"):
        benchmarks.load_robbench_release(_meta(tmp_path), path, "svhn")


def test_shared_tables(data_dir):
    rob = benchmarks.load_robbench_csv(data_dir / "nasrobbench201" / "cifar10.csv")
    assert len(rob) == 15625 and rob["val_pgd_8.0_acc"].between(0, 1).all()
    meta = benchmarks.load_meta(data_dir / "nb201" / "meta.json")
    assert meta["isomorph_rep"].nunique() == 6466
    proxies = benchmarks.load_table(data_dir / "zero_cost" / "nb201_cifar10_proxies.csv", ["synflow"])
    assert len(proxies) == 9445


@pytest.mark.parametrize("content, kwargs, message", [
    ("a,b\n1,2\n", {}, "neither an 'arch_str' nor an 'arch_index'"),
    (f"arch_str,acc\n{A},0.5\n", {"metrics": ["pgd"]}, "no metric\\(s\\) \\['pgd'\\]; available: acc"),
    ("arch_str,acc\n|bad~0|,0.5\n", {}, "invalid architectures"),
    ("arch_index,acc\n0,0.5\n", {}, "keyed by arch_index only"),
    ('arch_str,acc\n"unterminated,0.5\n', {}, "not a readable CSV"),
])
def test_bad_tables(tmp_path, content, kwargs, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        benchmarks.load_table(path, **kwargs)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        benchmarks.load_table(tmp_path / "nope.csv")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        benchmarks.load_meta(tmp_path / "m.json")
    (tmp_path / "m2.json").write_text('{"ids": {"0": {"arch": "x"}}}')
    with pytest.raises(ValueError, match="not an NB201 meta file"):
        benchmarks.load_meta(tmp_path / "m2.json")


def test_arch_index_keyed_table_uses_meta(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arch_index,acc\n2,0.5\n0,0.7\n")
    df = benchmarks.load_table(path, meta=benchmarks.load_meta(_meta(tmp_path)))
    assert list(df["arch_str"]) == [C, A]


def test_correlation_metrics_on_known_orderings():
    rng = np.random.default_rng(0)
    target = rng.normal(size=200)
    joined = pd.DataFrame({"perfect.lambda_min": target, "reversed.condition": target, "noise.trace": rng.normal(size=200),
                           "acc": target})
    table = evaluate.correlate(joined, ["perfect.lambda_min", "reversed.condition", "noise.trace"], ["acc"], n_boot=200)
    t = table.set_index("score")
    assert t.loc["perfect.lambda_min", "kendall_tau"] == pytest.approx(1.0)
    assert t.loc["reversed.condition", "kendall_tau"] == pytest.approx(-1.0)  # lower-is-better is negated
    assert t.loc["perfect.lambda_min", "top5%"] == 1.0 and t.loc["perfect.lambda_min", "top1_acc"] == target.max()
    assert abs(t.loc["noise.trace", "kendall_tau"]) < 0.15
    assert t.loc["noise.trace", "tau_lo"] < t.loc["noise.trace", "kendall_tau"] < t.loc["noise.trace", "tau_hi"]
    assert evaluate.top_k_precision([3, 2, 1, 0], [0, 1, 2, 3], 0.5) == 0.0
    assert evaluate.to_markdown(table).startswith("| score | metric |")


def test_join_on_isomorphism_class():
    other_member = Arch.from_string("|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|")
    rep = other_member.canonical()
    scores = pd.DataFrame({"arch": [rep.to_string()], "s": [1.0]})
    bench = pd.DataFrame({"arch_str": [other_member.to_string()], "acc": [0.7]})
    joined = evaluate.join(scores, bench)
    assert len(joined) == 1 and joined["acc"].iloc[0] == 0.7


def test_development_split_is_the_fixed_20_percent(data_dir):
    keys = evaluate.benchmarked_keys(data_dir)
    dev = evaluate.development_keys(data_dir)
    assert len(keys) == 6285 and len(dev) == 1257 and dev <= set(keys)
    assert dev == evaluate.development_keys(data_dir) != evaluate.development_keys(data_dir, seed=1)


def test_robustness_residual_is_what_clean_accuracy_does_not_explain():
    rng = np.random.default_rng(0)
    clean = rng.uniform(size=500)
    np.testing.assert_allclose(evaluate.robustness_residual(2 * clean + 1, clean), 0.0, atol=1e-12)
    extra = rng.uniform(size=500)
    residual = evaluate.robustness_residual(clean + extra, clean)
    clean_rank = pd.Series(clean).rank(pct=True).to_numpy()
    assert abs(np.corrcoef(residual, clean_rank)[0, 1]) < 1e-10  # least squares: orthogonal to the clean rank
    assert np.corrcoef(residual, extra)[0, 1] > 0.6


def test_an_nb201_index_is_its_cell_in_the_library_too(data_dir, monkeypatch):
    from ntkscore.scores import scorer

    meta = json.loads((data_dir / "nb201" / "meta.json").read_text())["ids"]
    assert benchmarks.arch_of_index(1, data_dir).to_string() == meta["1"]["nb201-string"]
    seen = []
    monkeypatch.setattr(scorer, "Scorer", lambda *a, **k: seen.append)  # the cell a Scorer would be called on
    scorer.score(1, data_dir=data_dir)
    assert seen[0].to_string() == meta["1"]["nb201-string"]
    with pytest.raises(ValueError, match="out of range"):
        benchmarks.arch_of_index(-1, data_dir)
