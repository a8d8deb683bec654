"""The API reference builds from the docstrings (pdoc), every module has a page, and pdoc warns about nothing."""

import warnings

import pytest

PACKAGES = ("ntkscore", "ntkscore.cell", "ntkscore.inputs", "ntkscore.kernels", "ntkscore.proxies", "ntkscore.scores",
            "ntkscore.study", "ntkscore.cli")
"""What ``pdoc`` is given (``ntkscore`` alone lists only its ``__all__``); the README's command is the same."""
MODULES = ("ntkscore", "ntkscore.cell.network", "ntkscore.kernels.layerwise", "ntkscore.kernels.theory",
           "ntkscore.scores.scorer", "ntkscore.scores.model", "ntkscore.scores.formula", "ntkscore.proxies",
           "ntkscore.study.rank", "ntkscore.cli")


def test_api_reference_builds_without_warnings(tmp_path):
    pdoc = pytest.importorskip("pdoc")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*PACKAGES, output_directory=tmp_path)
    from_pdoc = [w for w in caught if "pdoc" in str(w.filename)]
    assert not from_pdoc, [str(w.message) for w in from_pdoc]
    for module in MODULES:
        page = tmp_path / (module.replace(".", "/") + ".html")
        assert page.is_file() and page.stat().st_size > 2000, module
    assert "robustness residual" in (tmp_path / "ntkscore/scores/formula.html").read_text()
