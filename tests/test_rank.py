import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from ntkscore.cell.space import Arch, all_archs
from ntkscore.scores.scorer import Score
from ntkscore.study.rank import (expand_to_all, finished, rank, read_arch_file, read_scores, select_archs,
                                 upgrade_columns)

CELLS = [a.to_string() for a in select_archs(sample=8, seed=3)]


def _fake_score(arch):
    return Score(arch.to_string(), {"K.lambda_min": float(sum(arch.ops))}, (), {"seed": 0}, 0.0)


def test_rank_writes_one_row_per_cell_when_its_input_repeats_a_cell(tmp_path):
    class Batched:  # sends cells to the device several at a time, where a repeat would share a step
        arch_batch = 3

        def score_many(self, archs):
            return [_fake_score(a) for a in archs]

    archs = [Arch.from_string(a) for a in CELLS]
    for score_fn, out in ((_fake_score, tmp_path / "one.csv"), (Batched(), tmp_path / "batched.csv")):
        repeated = [archs[0], archs[1], archs[0], archs[2], archs[3], archs[1], archs[4], archs[5]]  # in one step too
        results = list(rank(repeated, score_fn, out))
        rows = pd.read_csv(out)
        assert len(rows) == 6 and rows["arch"].is_unique and sum(r is None for r in results) == 2


def test_rank_appends_and_resumes_without_duplicates(tmp_path):
    out = tmp_path / "s.csv"
    archs = [Arch.from_string(a) for a in CELLS]
    assert sum(r is not None for r in rank(archs[:3], _fake_score, out)) == 3
    assert sum(r is not None for r in rank(archs, _fake_score, out)) == 5
    df = pd.read_csv(out)
    assert list(df["arch"]) == CELLS and {"ntkscore_version", "device"} <= set(df.columns)
    with pytest.raises(FileExistsError, match="exists"):
        list(rank(archs, _fake_score, out, resume=False))


def test_a_torn_last_line_is_repaired(tmp_path):
    out = tmp_path / "s.csv"
    archs = [Arch.from_string(a) for a in CELLS]
    list(rank(archs[:4], _fake_score, out))
    with open(out, "a") as f:
        f.write(CELLS[4][:20])  # a kill in the middle of a write
    _, done = finished(out)
    assert done == set(CELLS[:4])
    list(rank(archs, _fake_score, out))
    assert sorted(pd.read_csv(out)["arch"]) == sorted(CELLS)


def test_settings_mismatch_is_refused(tmp_path):
    out = tmp_path / "s.csv"
    out.write_text("arch,K.lambda_min,setting.seed\n" + CELLS[0] + ",1.0,1\n")
    with pytest.raises(ValueError, match="produced with seed=1"):
        finished(out, {"seed": 0})
    out.write_text("arch,K.lambda_min,setting.seed\n" + CELLS[0] + ",1.0,0\n")  # from before the setting existed
    with pytest.raises(ValueError, match="produced with cpu_library_fusions=True, this run has cpu_library_fusions"):
        finished(out, {"seed": 0, "cpu_library_fusions": False})
    assert finished(out, {"seed": 0, "cpu_library_fusions": True})[1] == {CELLS[0]}
    out.write_text("arch,K.lambda_min,setting.eps\n" + CELLS[0] + f",1.0,{8 / 255}\n")
    with pytest.raises(ValueError, match="produced with eps=8/255, this run has eps=4/255"):  # the CLI's units
        finished(out, {"eps": 4 / 255})
    out.write_text("arch,K.lambda_min,setting.seed,setting.logit_chunk\n" + CELLS[0] + ",1.0,0,10\n")
    assert finished(out, {"seed": 0, "logit_chunk": 5})[1] == {CELLS[0]}  # the logits per step change no value
    out.write_text("arch,K.lambda_min,setting.seed,ntkscore_version\n" + CELLS[0] + ",1.0,0,0.0.1\n")
    with pytest.raises(ValueError, match="produced by ntkscore 0.0.1"):  # another version: other values, columns
        finished(out, {"seed": 0})


def test_selection_and_arch_files(tmp_path):
    assert select_archs(sample=8, seed=3) == select_archs(sample=8, seed=3) != select_archs(sample=8, seed=4)
    assert select_archs(sample=60, seed=3)[:20] == select_archs(sample=20, seed=3)  # samples of one seed nest
    assert len(select_archs()) == 6466
    f = tmp_path / "archs.txt"
    f.write_text(f"# two cells\n{CELLS[0]}\n\n{CELLS[1]}  # trailing comment\n")
    assert [a.to_string() for a in read_arch_file(f)] == CELLS[:2]
    f.write_text(f"{CELLS[0]}\n|bad~0|\n")
    with pytest.raises(ValueError, match="archs.txt:2: arch string"):
        read_arch_file(f)
    with pytest.raises(ValueError, match="--sample must be in"):
        select_archs(sample=0)


def test_expand_to_all_indices():
    scores = pd.DataFrame({"arch": [Arch((3,) * 6).to_string(), Arch((0,) * 6).to_string()], "x": [1.0, 2.0]})
    index = {i: a.to_string() for i, a in enumerate(all_archs())}
    full = expand_to_all(scores, index)
    dead_class = {i for i, a in enumerate(all_archs()) if a.canonical_string() == Arch((0,) * 6).canonical_string()}
    assert set(full.loc[full.x == 2.0, "arch_index"]) == dead_class
    assert (full.x == 1.0).sum() == 1


@pytest.mark.slow
def test_sigkill_and_resume_loses_and_duplicates_nothing(tmp_path):
    cells = [a.to_string() for a in select_archs(sample=16, seed=3)]
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(cells) + "\n")
    out = tmp_path / "scores.csv"
    # FEWEST_SETTINGS: programs other tests share
    cmd = [sys.executable, "-m", "ntkscore.cli", "rank", "--archs", str(archs), "--out", str(out), "--channels", "4",
           "--cells", "1", "--input-size", "8", "--batch-size", "4", "--steps", "1", "--inputs", "random",
           "--kernels", "robust", "--no-family", "--no-proxies", "--proxy-batch-size", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if out.exists() and out.read_text().count("\n") >= 3:  # header + at least two rows
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows_before = pd.read_csv(out)
    assert 2 <= len(rows_before) < len(cells)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    final = pd.read_csv(out)
    assert sorted(final["arch"]) == sorted(cells) and final["arch"].is_unique
    assert list(final["arch"][: len(rows_before)]) == list(rows_before["arch"])
    assert (final["setting.batch_size"] == 4).all()
    # the shipped scores belong to the default settings: here they are absent, and said so once, not guessed
    assert done.stderr.count("value is not computed (its column stays empty): 'value' was fitted on features "
                             "computed at other settings") == 1
    assert "value" not in final.columns and "by value" not in done.stdout


def test_pareto_front_keeps_exactly_the_non_dominated_cells():
    from ntkscore.study.rank import pareto_front

    v = np.array([[3, 1], [1, 3], [2, 2], [1, 1], [3, 1], [np.nan, 9], [2, 1.5]])
    # (1, 1) is dominated by all; (2, 1.5) by (2, 2); the two (3, 1) tie and dominate neither each other
    assert pareto_front(v).tolist() == [True, True, True, False, True, False, False]
    with pytest.raises(ValueError, match="cells, objectives"):
        pareto_front(np.ones(3))


def test_older_tables_are_read_under_the_current_names(tmp_path):
    old = pd.DataFrame({"arch": ["a", "b"], "flops": [1.0, 2.0], "K.lga": [0.1, 0.2], "K.layers.lga": [3.0, 4.0],
                        "K_rob.tenas_condition": [5.0, 6.0], "ntkscore_version": ["0.5.0", "0.5.0"]})
    table, notes = upgrade_columns(old)
    assert list(table.columns) == ["arch", "multiply_adds", "K.cka", "K.layers.cka", "K_rob.tenas_condition_all",
                                   "ntkscore_version"]
    assert table["multiply_adds"].tolist() == [1.0, 2.0] and len(notes) == 3
    between = old.assign(ntkscore_version="0.6.0")  # cka already renamed; flops still the multiply-adds
    assert list(upgrade_columns(between)[0].columns) == ["arch", "multiply_adds", "K.lga", "K.layers.lga",
                                                         "K_rob.tenas_condition_all", "ntkscore_version"]
    from ntkscore import __version__
    current = old.assign(ntkscore_version=__version__)
    assert upgrade_columns(current)[0].equals(current)
    old.to_csv(tmp_path / "old.csv.gz", index=False)
    assert "multiply_adds" in read_scores(tmp_path / "old.csv.gz").columns
