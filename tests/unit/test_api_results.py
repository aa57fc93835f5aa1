"""The shape of the Python API's results (statledger/results.py), without a cluster: the
numbers are the statistics' own decoded results on the bundled datasets (what a query
releases), checked against statsmodels and lifelines in the names and layouts they use.
The certificates here are placeholders; tests/integration/test_api_local.py runs the real
thing and verifies every certificate."""

from __future__ import annotations

import sys
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import KaplanMeierFitter

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.protocol import datasets, suppression
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.results import (
    KaplanMeierResult,
    RegressionResult,
    Result,
    Summary,
    make_result,
)


def _decode(obj: dict[str, Any], name: str) -> Any:
    spec = QuerySpec.parse({"version": 1, **obj})
    stat = get(spec.statistic)
    tot = [0] * len(stat.layout(spec))
    for s in datasets.sites(name):
        tot = [a + b for a, b in zip(tot, stat.encode(spec, datasets.load(name, s)), strict=True)]
    if spec.statistic == "kaplan_meier":  # what the protocol decrypts: coarsened when k >= 2
        return spec, stat.decode(spec, suppression.released_totals(spec, tot))
    return spec, stat.decode(spec, tot)


def _result(obj: dict[str, Any], name: str) -> Result:
    spec, res = _decode(obj, name)
    outcome = SimpleNamespace(spec=spec, result=res, certificate=b"(placeholder)",
                              query_id="ab" * 32, contributors=["a", "b"])
    return make_result([outcome])


OLS = {"statistic": "linear_regression", "columns": ["bmi", "bp", "target"],
       "bounds": {"bmi": [15, 50], "bp": [60, 140], "target": [25, 350]},
       "params": {"target": "target", "features": ["bmi", "bp"]}, "scale": 10000,
       "max_rows": 1000}
KM = {"statistic": "kaplan_meier", "columns": ["time", "event"],
      "bounds": {"time": [0.0, 80.0], "event": [0.0, 1.0]},
      "params": {"time": "time", "event": "event", "max_time": 75}, "max_rows": 1000,
      "min_cell_size": 1}


def test_regression_is_shaped_like_statsmodels() -> None:
    fit = _result(OLS, "diabetes")
    assert isinstance(fit, RegressionResult)
    d = datasets.load("diabetes")
    X = sm.add_constant(np.column_stack([np.clip(d["bmi"], 15, 50), np.clip(d["bp"], 60, 140)]))
    m = sm.OLS(np.clip(d["target"], 25, 350), X).fit()
    assert list(fit.params.index) == ["const", "bmi", "bp"]
    np.testing.assert_allclose(fit.params.to_numpy(), m.params, rtol=1e-9)
    np.testing.assert_allclose(fit.bse.to_numpy(), m.bse, rtol=1e-9)
    np.testing.assert_allclose(fit.pvalues.to_numpy(), m.pvalues, rtol=1e-6)
    for alpha in (0.05, 0.1, 0.01):
        np.testing.assert_allclose(fit.conf_int(alpha).to_numpy(), m.conf_int(alpha),
                                   rtol=1e-9)
    assert list(fit.conf_int().columns) == [0, 1]
    assert fit.nobs == 442 and fit.df_resid == m.df_resid
    assert fit.rsquared == pytest.approx(m.rsquared, rel=1e-12)
    frame = fit.to_frame()
    assert list(frame.columns) == ["coef", "std err", "t", "P>|t|", "[0.025", "0.975]"]
    with pytest.raises(ValueError, match="alpha"):
        fit.conf_int(1.5)


def test_kaplan_meier_is_shaped_like_lifelines() -> None:
    km = _result(KM, "waltons")
    assert isinstance(km, KaplanMeierResult)
    d = datasets.load("waltons")
    kmf = KaplanMeierFitter().fit(d["time"], d["event"])
    sf = km.survival_function_
    assert list(sf.columns) == list(kmf.survival_function_.columns) == ["KM_estimate"]
    assert sf.index.name == "timeline"
    ref = kmf.survival_function_at_times(sf.index).to_numpy()
    assert np.max(np.abs(sf["KM_estimate"].to_numpy() - ref)) < 1e-9
    assert list(km.confidence_interval_.columns) == list(kmf.confidence_interval_.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert km.median_survival_time_ == kmf.median_survival_time_
    table = km.event_table()
    assert list(table.columns) == ["at_risk", "observed", "censored"]
    assert table["observed"].sum() == d["event"].sum()
    assert km.logrank is None
    assert list(km.to_frame().columns) == ["KM_estimate", "KM_estimate_lower_0.95",
                                           "KM_estimate_upper_0.95"]


def test_grouped_and_suppressed_kaplan_meier() -> None:
    grouped = {**KM, "group_by": ["group"], "categories": {"group": ["control", "miR-137"]}}
    km = _result(grouped, "waltons")
    assert list(km.survival_function_.columns) == ["group=control", "group=miR-137"]
    assert set(km.median_survival_time_.index) == {"group=control", "group=miR-137"}
    assert km.logrank is not None and km.logrank["p_value"] < 1e-10
    with pytest.raises(ValueError, match="name one of"):
        km.event_table()
    with pytest.raises(ValueError, match="no published group"):
        km.event_table("group=nope")
    import matplotlib

    matplotlib.use("Agg")
    ax = km.plot()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["group=control",
                                                                   "group=miR-137"]
    # a group without a grid point of min_cell_size events has no curve (the coarsened grid
    # releases nothing of it): listed as suppressed, never shown
    hidden = _result({**grouped, "min_cell_size": 50}, "waltons")
    assert list(hidden.survival_function_.columns) == []
    assert hidden.suppressed_groups == ["group=control", "group=miR-137"]


def test_cells_and_crosstab_frames() -> None:
    mean = _result({"statistic": "mean", "columns": ["time"], "bounds": {"time": [0, 80]},
                    "group_by": ["group"], "categories": {"group": ["control", "miR-137"]}},
                   "waltons")
    f = mean.to_frame()
    assert list(f["group"]) == ["control", "miR-137"]
    d = datasets.load("waltons")
    assert f["n"].tolist() == [int(np.sum(d["group"] == g)) for g in ("control", "miR-137")]
    ct = _result({"statistic": "crosstab", "group_by": ["group", "event"],
                  "categories": {"group": ["control", "miR-137"], "event": ["0", "1"]}},
                 "waltons")
    f = ct.to_frame()
    assert list(f.columns) == ["group", "event", "n", "suppressed"]
    ref = pd.crosstab(pd.Series(d["group"]), pd.Series(d["event"]))
    assert f["n"].tolist() == ref.to_numpy().ravel().tolist()


def test_summary_and_html_escape() -> None:
    fit = _result(OLS, "diabetes")
    s = fit.summary()
    assert isinstance(s, Summary) and repr(s) == str(s) and "OLS Regression Results" in s
    forged = Summary("<script>x</script>")
    assert "<script>" not in forged._repr_html_()
    assert "<table" in fit._repr_html_()


def test_missing_optional_packages_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    km = _result(KM, "waltons")
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"statledger\[plot\]"):
        km.plot()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"statledger\[notebook\]"):
        _ = km.survival_function_
    assert "<pre>" in km._repr_html_()  # a notebook still shows the text table


def test_verify_needs_a_trust_and_a_result_needs_its_certificates() -> None:
    fit = _result(OLS, "diabetes")
    with pytest.raises(VerificationError, match="no trust file"):
        fit.verify()
    with pytest.raises(TypeError, match="trust"):
        fit.verify(trust=42)
    with pytest.raises(MalformedError, match="one certificate per round"):
        Result(fit.spec, fit.values, "", [], [], [])
