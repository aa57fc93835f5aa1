"""examples/tour.ipynb runs top to bottom in a real Jupyter kernel (nbclient): a researcher
fits OLS, IRLS logistic regression and Kaplan–Meier from three DataFrames without a CSV file
or an internal module, and gets statsmodels/lifelines-shaped, certified results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "tour.ipynb"

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")


def _code(nb: object) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")  # type: ignore[attr-defined]


def test_the_notebook_uses_only_the_public_api() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = _code(nb)
    assert "statledger.local(" in code
    for forbidden in (".csv", "statledger.nodes", "statledger.protocol", "from statledger",
                      "to_csv", "read_csv"):
        assert forbidden not in code, forbidden
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"


def test_the_notebook_runs(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on any error
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = json.dumps([o.get("data", {}).get("text/plain", o.get("text", "")) for o in outputs])
    html = json.dumps([o.get("data", {}).get("text/html", "") for o in outputs])
    assert "OLS Regression Results" in text
    assert "converged: True" in text and "IRLS rounds verified" in text
    assert "'roc_auc'" in text and "evaluation verified: True" in text  # model evaluation
    assert "P&gt;|z|" in html or "P>|z|" in html  # the logistic fit shown as a table
    assert any("image/png" in o.get("data", {}) for o in outputs), "no KM plot"
    assert (tmp_path / "km.cert").is_file() and (tmp_path / "logit-round1.cert").is_file()
    assert (tmp_path / "trust.json").is_file()
    from statledger.verifier.verify import load_trust, verify_certificate_file

    report = verify_certificate_file(tmp_path / "km.cert", load_trust(tmp_path / "trust.json"))
    assert report.valid and report.statistic == "kaplan_meier"
