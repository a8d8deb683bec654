import json
import subprocess
import sys

import pytest

from ntkscore.cli import main

MIXED_POOL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
"""NB201 index 1 (the benchmark's own meta.json)."""
TINY_ARGS = ["--channels", "4", "--cells-per-stage", "1", "--input-size", "8", "--batch-size", "6", "--steps", "2",
             "--inputs", "random", "--kernels", "all", "--no-family", "--proxy-batch-size", "8"]  # TINY_SETTINGS


def test_space_show_and_list(capsys, data_dir):
    assert main(["space", "show", "3,3,3,3,3,3", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 1531546 and info["dead"] is False
    assert main(["space", "list", "--unique", "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["space", "canonical", "|skip_connect~0|+|none~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|none~2|"]) == 0
    assert capsys.readouterr().out.strip().startswith("|")
    assert main(["space", "show", "1", "--json", "--data", str(data_dir)]) == 0  # an NB201 index (its meta.json)
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == MIXED_POOL and info["nb201_index"] == 1 and "C16 N5" in info["cost_of"]
    meta = json.loads((data_dir / "nb201" / "meta.json").read_text())["ids"]
    assert info["isomorph_index"] == int(meta["1"]["isomorph"])


@pytest.mark.parametrize("argv, message", [
    (["space", "show", "|foo~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "unknown op 'foo'"),
    (["space", "show"], "give one or more architectures"),
    (["score", "1,2,3"], "has 6 edges, got 3"),
    (["score", "--batch-size", "1", "--inputs", "random"], "batch_size must be an int"),
    (["score", "--data", "/nonexistent/dir"], "does not exist"),
    (["score", "--eps", "1000", "--inputs", "random"], "--eps is in /255 pixel units and must be in 0..255"),
    (["score", "--input-size", "6", "--inputs", "random"], "--input-size must be a multiple of 4"),
    (["rank", "--out", "/", "--inputs", "random"], "--out / is a directory"),
    (["rank", "--out", "/sys/s.csv", "--inputs", "random"], "--out /sys/s.csv cannot be written"),
    (["search", "--plot", "/sys/x.png", "--inputs", "random"], "--plot /sys/x.png cannot be written"),
    (["train", "1,1,1,1,1,1", "--checkpoint", "/sys/c.npz"], "--checkpoint /sys/c.npz cannot be written"),
    (["train", "1,1,1,1,1,1", "--lr", "-1"], "lr must be positive"),
    (["train", "1,1,1,1,1,1", "--extend"], "--extend continues the run saved in --checkpoint; give its --checkpoint"),
    (["fit", "nowhere.csv", "--target", "residual", "--out", "/sys/p.json"], "--out /sys/p.json cannot be written"),
    (["space", "show", "15625"], "NB201 index 15625 is out of range"),
    (["score", "-1"], "NB201 index -1 is out of range"),
    (["search", "--budget", "-5m"], "--budget must be positive, got '-5m'"),
    (["search", "--budget", "ten"], "expected a number with an optional unit"),
    (["score", "--input-size", "64"], "larger than cifar10's 32×32 images"),
    (["score", "--channels", "100000"], "needs at least"),
    (["score", "--dataset", "ImageNet16-120", "--data", "."], "ntkscore data convert ImageNet16-120"),
    (["search", "--benchmark", "--data", ".", "--inputs", "random"], "--benchmark needs"),
    (["score", "--no-cpu-library-fusions", "--engine", "jacobian", "--inputs", "random"],
     "cpu_library_fusions=False compiles the layerwise engine's programs"),
])
def test_errors_are_one_clear_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ntkscore: error:") and message in err and "Traceback" not in err


def test_a_long_attack_says_before_it_starts_that_it_prints_nothing_until_a_cell_is_done(capsys):
    from ntkscore.cli import build_parser
    from ntkscore.commands import settings_of

    assert settings_of(build_parser().parse_args(["score", "--steps", "100000"])).steps == 100000
    assert "PGD with 100000 steps (7 by default)" in capsys.readouterr().err
    settings_of(build_parser().parse_args(["score", "--steps", "70"]))
    assert capsys.readouterr().err == ""


def test_score_json(capsys):
    assert main(["score", "--json", *TINY_ARGS, "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["arch"].startswith("|nor_conv_3x3~0|") and row["K_rob_all@1.lambda_min"] > 0


def test_score_table_says_what_the_scores_mean(capsys):
    assert main(["score", *TINY_ARGS, "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in ("value", "robustness"):  # not at these settings: a dash and the reason, never a number
        assert lines[name].split()[1] == "-" and "not computed: " in lines[name] and "channels: fitted at 8" in out
    assert lines["params"].split()[1].isdigit() and "nan" not in out
    assert {"K", "K_rob", "K_rob_all@1", "proxies"} <= set(lines) and "others" not in lines


def _scores(bench, n: int, **columns):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({"arch": bench["arch_str"][:n], "params": rng.uniform(1e5, 1e6, n),
                         "zc.meco": rng.uniform(1.0, 10.0, n), "K_all@0.5.trace": rng.uniform(1.0, 10.0, n),
                         **{f"K_rob.{q}": rng.uniform(0.1, 10.0, n) for q in ("lambda_min", "condition", "bound", "trace")},
                         **columns})


def test_correlate_leaves_out_the_cells_the_shipped_predictors_were_fitted_on(tmp_path, data_dir, capsys):
    import numpy as np
    import pandas as pd

    from ntkscore.study import evaluate
    from ntkscore.study.benchmarks import canonical_keys

    bench = pd.read_csv(data_dir / "nasrobbench201" / "cifar10.csv", nrows=60)
    scores = _scores(bench, 60, value=np.linspace(0, 1, 60))
    dev = evaluate.development_keys(data_dir)
    fitted = sum(k in dev for k in canonical_keys(scores["arch"]))
    assert 0 < fitted < 60
    scores = pd.concat([scores, pd.DataFrame({"arch": ["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]})])
    path = tmp_path / "scores.csv"
    scores.fillna(1.0).to_csv(path, index=False)
    out = tmp_path / "out"
    assert main(["correlate", str(path), "--data", str(data_dir), "--bootstrap", "20", "--out-dir", str(out)]) == 0
    table = pd.read_csv(out / "correlations.csv")
    assert {"value", "K_rob.lambda_min", "baseline.params"} <= set(table.score)
    assert {"robustness_residual", "pgd8/clean", "val_pgd_8.0_acc"} <= set(table.metric)
    printed = capsys.readouterr().out
    assert f"{fitted} cells excluded: the predictors of value were fitted on them" in printed
    joined = int(printed.split("; ")[1].split()[0])
    assert f"{61 - fitted} cells in" in printed and table.n.max() == joined <= 61 - fitted
    assert "with val_pgd_8.0_acc" in printed and (out / "rank_rank_val_pgd_8.0_acc.png").stat().st_size > 10000
    assert main(["correlate", str(path), "--data", str(data_dir), "--bootstrap", "0", "--plot-metric",
                 "--include-training", "--out-dir", str(out)]) == 0
    assert "excluded" not in capsys.readouterr().out


def test_correlate_repairs_or_refuses_a_damaged_rank_file(tmp_path, data_dir, capsys):
    import pandas as pd

    bench = pd.read_csv(data_dir / "nasrobbench201" / "cifar10.csv", nrows=30)
    scores = _scores(bench, 30, **{"setting.channels": 8})
    good = scores.to_csv(index=False)
    cases = {"torn.csv": good + good.splitlines()[1][:40], "repeated.csv": good + "\n".join(good.splitlines()[1:4]) + "\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["correlate", str(tmp_path / name), "--data", str(data_dir), "--bootstrap", "0", "--plot-metric",
                     "--out-dir", str(tmp_path / "o")]) == 0
        captured = capsys.readouterr()
        assert ("a torn last row dropped" if name == "torn.csv" else "3 repeated cells dropped") in captured.err
        assert "30 cells in" in captured.out
    refused = {"mixed.csv": (scores.assign(**{"setting.channels": [8] * 29 + [16]}), "mixes rows scored with different "
                             "settings (channels: 8, 16)"),
               "text.csv": (scores.assign(**{"zc.meco": ["x"] + [1.0] * 29}), "column 'zc.meco' holds a non-number ('x')")}
    for name, (table, message) in refused.items():
        table.to_csv(tmp_path / name, index=False)
        assert main(["correlate", str(tmp_path / name), "--data", str(data_dir), "--out-dir", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "empty.csv").write_text("")
    assert main(["correlate", str(tmp_path / "empty.csv"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "is empty; expected a file written by 'ntkscore rank'" in capsys.readouterr().err
    assert main(["correlate", str(tmp_path / "torn.csv"), "--out-dir", "/sys/corr"]) == 2
    assert "--out-dir /sys/corr cannot be written" in capsys.readouterr().err


def test_ray_flag_without_ray_says_how_to_install(capsys, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    argv = ["rank", "--ray", "--sample", "2", "--out", str(tmp_path / "s.csv"), *TINY_ARGS]
    assert main(argv) == 2
    assert "pip install 'ntkscore[ray]'" in capsys.readouterr().err


def test_import_leaves_out_scipy_stats():
    """``import ntkscore`` and the CLI's startup do not import scipy.stats (about 0.5 s), which scoring does not use;
    the study functions that do import it when they run."""
    code = "import sys, ntkscore, ntkscore.cli; assert 'scipy.stats' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_data_where_says_where_it_looked(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("NTKSCORE_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["data", "where"]) == 2
    err = capsys.readouterr().err
    assert f"looked for {tmp_path.parent / 'shared' / 'data'}" in err and "Traceback" not in err


def test_correlate_uses_every_cell_for_each_score_and_the_baselines_on_theirs(tmp_path, data_dir, capsys):
    import numpy as np
    import pandas as pd

    from ntkscore.study.benchmarks import canonical_keys

    bench = pd.read_csv(data_dir / "nasrobbench201" / "cifar10.csv")
    proxied = set(canonical_keys(pd.read_csv(data_dir / "zero_cost" / "nb201_cifar10_proxies.csv")["arch_str"]))
    has = np.array([k in proxied for k in canonical_keys(bench["arch_str"])])
    bench = pd.concat([bench[has].head(30), bench[~has].head(10)])
    path = tmp_path / "scores.csv"
    _scores(bench, 40).to_csv(path, index=False)
    assert main(["correlate", str(path), "--data", str(data_dir), "--bootstrap", "0", "--plot-metric",
                 "--include-training", "--out-dir", str(tmp_path / "o")]) == 0
    assert "10 of them have no published proxies" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "o" / "correlations.csv").query("metric == 'val_pgd_8.0_acc'").set_index("score")
    assert table.loc["zc.meco", "n"] == 40 and table.loc["baseline.params", "n"] == 40
    assert (table.loc[[s for s in table.index if s.startswith("proxy.")], "n"] == 30).all()
