import json

import pytest

from ntkscore.cli import main
from ntkscore.score import DEFAULT_SCORE

TINY_ARGS = ["--channels", "4", "--cells", "1", "--batch-size", "6", "--steps", "2", "--inputs", "random"]


def test_space_show_and_list(capsys):
    assert main(["space", "show", "3,3,3,3,3,3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 1531546 and info["dead"] is False
    assert main(["space", "list", "--unique", "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["space", "canonical", "|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"]) == 0
    assert capsys.readouterr().out.strip().startswith("|")


@pytest.mark.parametrize("argv, message", [
    (["space", "show", "|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown op 'foo'"),
    (["space", "show"], "give one or more architectures"),
    (["score", "1,2,3"], "has 6 edges, got 3"),
    (["score", "--batch-size", "1", "--inputs", "random"], "batch_size must be an int"),
    (["score", "--data", "/nonexistent/dir"], "does not exist"),
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


def test_score_table_shows_the_primary_score_and_the_kernel_rows(capsys, monkeypatch):
    monkeypatch.setenv("NTKSCORE_CACHE", "off")
    assert main(["score", *TINY_ARGS, "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert lines["score"].split()[1] == f"{float(lines['score'].split()[1]):.6g}" and DEFAULT_SCORE in lines["score"]
    assert "robustness" in lines["robust"] and "paper" in lines["others"]
    assert {"K", "K_rob", "K_rob_all@1"} <= set(lines) and "composite" not in lines


def test_correlate_adds_candidates_and_rank_aggregates(tmp_path, data_dir, capsys):
    import numpy as np
    import pandas as pd

    bench = pd.read_csv(data_dir / "nasrobbench201" / "cifar10.csv", nrows=40)
    rng = np.random.default_rng(0)
    scores = pd.DataFrame({"arch": bench["arch_str"], "params": rng.uniform(1e5, 1e6, 40),
                           **{f"K_rob.{q}": rng.uniform(0.1, 10.0, 40)
                              for q in ("lambda_min", "condition", "bound", "trace")}})
    path = tmp_path / "scores.csv"
    scores.to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["correlate", str(path), "--data", str(data_dir), "--bootstrap", "0", "--plot-metric",
                 "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "correlations.csv")
    assert "composite.robust_bound/trace+params" in set(table.score)
    assert "aggregate.rank(trainability,generalisation,complexity)" in set(table.score)
    assert "aggregate.rank(trainability,generalisation,complexity) − generalisation" in set(table.score)
    assert {"robustness_residual", "pgd8/clean"} <= set(table.metric)
    assert "cells joined; correlations with" in capsys.readouterr().out
