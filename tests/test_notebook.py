"""The quick-start notebook is stored with its outputs; executing it again must print the same scores."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
SHOWN = re.compile(r"value (\S+)  robustness (\S+)  λ_min\(K̃_ε\) (\S+)")


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


@pytest.mark.slow
def test_quickstart_notebook_shows_what_it_computes(monkeypatch, data_dir):
    stored = nbformat.read(NOTEBOOK, as_version=4)
    stored_values = SHOWN.search(printed(stored))
    assert stored_values, "the stored notebook has no executed score line"
    assert any("image/png" in o.get("data", {}) for c in stored.cells if c.cell_type == "code"
               for o in c.get("outputs", [])), "the stored notebook shows no plot"
    monkeypatch.setenv("NTKSCORE_DATA", str(data_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    values = SHOWN.search(printed(nb))
    assert values, printed(nb)[-2000:]
    for got, shown in zip(values.groups(), stored_values.groups()):  # 4 significant digits, float32 on a CPU
        assert float(got) == pytest.approx(float(shown), rel=2e-3)
    assert "kendall_tau" in printed(nb) and "robustness_residual" in printed(nb)
