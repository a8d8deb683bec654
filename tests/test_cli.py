import json

import pytest

from ntkscore.cli import main

MIXED_POOL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
"""NB201 index 1 (the benchmark's own meta.json)."""
TINY_ARGS = ["--channels", "4", "--cells-per-stage", "1", "--input-size", "8", "--batch-size", "6", "--steps", "2", "--inputs", "random"]


def test_space_show_and_list(capsys, data_dir):
    assert main(["space", "show", "3,3,3,3,3,3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 1531546 and info["dead"] is False
    assert main(["space", "list", "--unique", "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["space", "canonical", "|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"]) == 0
    assert capsys.readouterr().out.strip().startswith("|")
    assert main(["space", "show", "1", "--json"]) == 0  # an NB201 index (nb201/meta.json of the data directory)
    assert json.loads(capsys.readouterr().out)["arch"] == MIXED_POOL


@pytest.mark.parametrize("argv, message", [
    (["space", "show", "|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown op 'foo'"),
    (["space", "show"], "give one or more architectures"),
    (["score", "1,2,3"], "has 6 edges, got 3"),
    (["score", "--batch-size", "1", "--inputs", "random"], "batch_size must be an int"),
    (["score", "--data", "/nonexistent/dir"], "does not exist"),
    (["score", "--eps", "1000", "--inputs", "random"], "--eps is in /255 pixel units and must be in 0..255"),
    (["score", "--input-size", "0", "--inputs", "random"], "--input-size must be a multiple of 4"),
    (["space", "show", "15625"], "NB201 index 15625 is out of range"),
    (["score", "--dataset", "ImageNet16-120", "--data", "."], "ntkscore data convert ImageNet16-120"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntkscore: error:") and message in err and "Traceback" not in err


def test_score_json(capsys, monkeypatch):
    monkeypatch.setenv("NTKSCORE_CACHE", "off")
    assert main(["score", "--json", *TINY_ARGS, "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["arch"].startswith("|nor_conv_3x3~0|") and row["K_rob_all@1.lambda_min"] > 0


def test_score_table_says_what_the_scores_mean(capsys, monkeypatch):
    monkeypatch.setenv("NTKSCORE_CACHE", "off")
    assert main(["score", *TINY_ARGS, "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    value = lines["value"].split()[1]
    assert value == f"{float(value):.6g}" and "predicted PGD-8 accuracy" in lines["value"]
    assert "survives a PGD-8 attack" in lines["robustness"]
    assert {"K", "K_rob", "K_rob_all@1", "proxies"} <= set(lines) and "others" not in lines


def test_correlate_reports_the_shipped_scores_with_their_controls(tmp_path, data_dir, capsys):
    import numpy as np
    import pandas as pd

    bench = pd.read_csv(data_dir / "nasrobbench201" / "cifar10.csv", nrows=40)
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"arch": bench["arch_str"], "params": rng.uniform(1e5, 1e6, 40),
                           "zc.meco": rng.uniform(1.0, 10.0, 40), "K_all@0.5.trace": rng.uniform(1.0, 10.0, 40),
                           **{f"K_rob.{q}": rng.uniform(0.1, 10.0, 40)
                              for q in ("lambda_min", "condition", "bound", "trace")}})
    scores = pd.concat([scores, pd.DataFrame({"arch": ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]})])
    path = tmp_path / "scores.csv"
    scores.fillna(1.0).to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["correlate", str(path), "--data", str(data_dir), "--bootstrap", "20", "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "correlations.csv")
    assert {"value", "robustness", "robustness: params for K_all@0.5.trace", "value: params for zc.meco",
            "K_rob.lambda_min", "baseline.params"} <= set(table.score)
    assert {"robustness_residual", "pgd8/clean", "val_pgd_8.0_acc"} <= set(table.metric)
    printed = capsys.readouterr().out
    joined = int(printed.split("; ")[1].split()[0])
    assert "41 cells in" in printed and f"({41 - joined} dropped" in printed and table.n.max() == joined
    assert "with val_pgd_8.0_acc" in printed and (out / "rank_rank_val_pgd_8.0_acc.png").stat().st_size > 10000


def test_ray_flag_without_ray_says_how_to_install(capsys, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    argv = ["rank", "--ray", "--sample", "2", "--out", str(tmp_path / "s.csv"), *TINY_ARGS]
    assert main(argv) == 2
    assert "pip install 'ntkscore[ray]'" in capsys.readouterr().err
