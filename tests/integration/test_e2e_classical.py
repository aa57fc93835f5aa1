"""ttest, chi2_independence and model_evaluation end to end on real processes (the shared e2e
cluster: 4 hospitals holding the bundled sites): each result equals scipy / numpy on the
pooled fixed-point rows and its certificate verifies offline; a model evaluation whose
coefficients are not the fit's published ones is refused by the owners (step 8) and its
certificate rejected."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from statledger.proofs.errors import MalformedError
from statledger.protocol import datasets
from statledger.protocol.entries import Entry, QueryEntry, ResultEntry
from statledger.protocol.query import QuerySpec

REL = 1e-9


def _q(x: Any, lo: float, hi: float, scale: int) -> Any:
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), lo, hi) * scale) / scale


def _verified(out: Any, trust: Any) -> None:
    from statledger.verifier.verify import verify_certificate

    report = verify_certificate(out.certificate.to_bytes(), trust)
    assert report.valid, (report.step, report.reason)


def test_ttest_and_chi2_through_the_cluster(e2e_cluster: Any, e2e_querier: Any) -> None:
    from statledger.verifier.verify import TrustPolicy

    trust = TrustPolicy(e2e_cluster.genesis, "the test's trust")
    t_spec = QuerySpec.parse({
        "version": 1, "statistic": "ttest", "columns": ["bmi"], "group_by": ["sex"],
        "categories": {"sex": ["1", "2"]}, "bounds": {"bmi": [15.0, 50.0]}, "scale": 10000,
        "max_rows": 1000})
    out = e2e_querier.run(t_spec, datasets="diabetes")
    _verified(out, trust)
    v = out.result.to_dict()
    rows = datasets.load("diabetes")
    q = _q(rows["bmi"], 15, 50, 10000)
    ref = stats.ttest_ind(q[rows["sex"] == 1], q[rows["sex"] == 2], equal_var=False)
    assert abs(v["t"] - ref.statistic) <= REL * abs(ref.statistic)
    assert abs(v["p_value"] - ref.pvalue) <= REL * ref.pvalue
    assert abs(v["df"] - ref.df) <= REL * ref.df

    c_spec = QuerySpec.parse({
        "version": 1, "statistic": "chi2_independence", "group_by": ["fin", "arrest"],
        "categories": {"fin": ["0", "1"], "arrest": ["0", "1"]}, "max_rows": 1000})
    out = e2e_querier.run(c_spec, datasets="rossi")
    _verified(out, trust)
    v = out.result.to_dict()
    r = datasets.load("rossi")
    obs = np.array([[int(((r["fin"] == a) & (r["arrest"] == b)).sum()) for b in (0, 1)]
                    for a in (0, 1)])
    ref = stats.chi2_contingency(obs, correction=False)
    assert v["counts"] == obs.tolist()
    assert abs(v["chi2"] - ref.statistic) <= REL * ref.statistic
    assert abs(v["p_value"] - ref.pvalue) <= REL * ref.pvalue


def test_model_evaluation_after_an_ols_fit(e2e_cluster: Any, e2e_querier: Any) -> None:
    from statledger.nodes.querier import QueryFailed
    from statledger.protocol.stats.evaluation import evaluation_spec
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    trust = TrustPolicy(e2e_cluster.genesis, "the test's trust")
    feats = ["bmi", "bp", "s5"]
    bounds = {"bmi": [15.0, 50.0], "bp": [60.0, 140.0], "s5": [3.0, 6.5],
              "target": [25.0, 350.0]}
    fit_spec = QuerySpec.parse({
        "version": 1, "statistic": "linear_regression", "columns": [*feats, "target"],
        "bounds": bounds, "params": {"target": "target", "features": feats},
        "scale": 10000, "max_rows": 1000})
    fit = e2e_querier.run(fit_spec, datasets="diabetes")
    _verified(fit, trust)
    published = fit.result.to_dict()
    spec = evaluation_spec(fit_spec, fit.query_id, published)
    out = e2e_querier.run(spec, datasets="diabetes")
    _verified(out, trust)
    # the certificate carries the fit's query and result entries (step 8 re-checks them)
    carried = [Entry.from_bytes(e.data) for e in out.certificate.entries]
    kinds = {(type(e).__name__, e.query_id) for e in carried
             if isinstance(e, QueryEntry | ResultEntry)}
    assert {("QueryEntry", fit.query_id), ("ResultEntry", fit.query_id)} <= kinds
    v = out.result.to_dict()
    rows = datasets.load("diabetes")
    X = np.column_stack([np.ones(len(rows["bmi"]))]
                        + [_q(rows[f], *bounds[f], 10000) for f in feats])
    y = _q(rows["target"], *bounds["target"], 10000)
    e = np.rint((y - X @ np.array(published["coef"])) * 10000) / 10000
    assert abs(v["mse"] - np.mean(e * e)) <= 1e-12 * np.mean(e * e)
    assert abs(v["mae"] - np.mean(np.abs(e))) <= 1e-12 * np.mean(np.abs(e))
    # in sample, the evaluation's R^2 is the fit's (to the residuals' quantisation)
    assert abs(v["r_squared"] - published["r_squared"]) < 1e-7

    # a model the querier chose: its coefficients are not the fit's published ones
    obj = spec.to_json_obj()
    obj["params"]["coef"] = [c * 1.01 for c in obj["params"]["coef"]]
    forged = QuerySpec.parse(obj)
    with pytest.raises(QueryFailed, match="forged model"):
        e2e_querier.run(forged, datasets="diabetes")
    cert = e2e_querier.certificate(forged.query_id_for("querier"))
    report = verify_certificate(cert.to_bytes(), trust)
    assert not report.valid and report.step == 8 and "forged model" in (report.reason or "")


def test_python_api_logistic_evaluation(e2e_cluster: Any, e2e_querier: Any) -> None:
    """Session.query (a one-round logistic fit) then Session.evaluate: the evaluation's
    certificate verifies and its metrics equal scikit-learn's on the pooled rows."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from statledger.api import Session
    from statledger.verifier.verify import TrustPolicy

    trust = TrustPolicy(e2e_cluster.genesis, "the test's trust")
    s = Session(e2e_querier, trust=trust, dataset="breast_cancer")  # not closed: shared
    feats = ["mean_radius", "mean_texture"]
    bounds = {"mean_radius": [5.0, 30.0], "mean_texture": [5.0, 40.0], "benign": [0.0, 1.0]}
    fit = s.query({"version": 1, "statistic": "logistic_approx", "columns": [*feats, "benign"],
                   "bounds": bounds, "params": {"target": "benign", "features": feats},
                   "max_rows": 1000})
    ev = s.evaluate(fit, threshold=0.4, bins=50)
    assert all(r.valid for r in ev.verify(trust=trust))
    v = ev.values
    assert v["model_query"] == fit.query_id and v["coef"] == fit.values["coef"]
    rows = datasets.load("breast_cancer")
    X = np.column_stack([np.ones(len(rows["benign"]))]
                        + [_q(rows[f], *bounds[f], 2**16) for f in feats])
    p = 1 / (1 + np.exp(-(X @ np.array(fit.values["coef"]))))
    y = rows["benign"]
    assert v["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.4), rel=1e-12)
    assert v["f1"] == pytest.approx(f1_score(y, p >= 0.4), rel=1e-12)
    binned = np.minimum(np.floor(p * 50), 49)
    assert v["roc_auc"] == pytest.approx(roc_auc_score(y, binned), rel=1e-12)
    with pytest.raises(MalformedError, match="publishes no model|not a model fit"):
        s.evaluate(ev)
