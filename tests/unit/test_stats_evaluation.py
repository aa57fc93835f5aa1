"""model_evaluation: a published fit's metrics on the owners' rows vs scikit-learn / numpy, the
model reference rule of step 8 (protocol/chain.py) with its reject twins, and bad inputs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import chain, datasets, entries
from statledger.protocol.entries import QueryEntry, ResultEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.evaluation import check_model_reference, evaluation_spec
from statledger.protocol.view import parse_entries

SCALE = 2**16
Table = dict[str, npt.NDArray[Any]]
KEY = SigningKey.generate()
QID = "ab" * 32


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _pool(spec: QuerySpec, sites: list[Table]) -> list[int]:
    st = get(spec.statistic)
    lay = st.layout(spec)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(spec, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def _released(spec: QuerySpec, totals: list[int]) -> list[int | None]:
    st = get(spec.statistic)
    small = [totals[g] < spec.min_cell_size for g in st.gates(spec)]  # the PET's bits
    rel = st.release(spec, small)
    return [v if ok else None for v, ok in zip(totals, rel, strict=True)]


def _fit(spec: QuerySpec, sites: list[Table]) -> dict[str, Any]:
    res = get(spec.statistic).decode(spec, _released(spec, _pool(spec, sites))).to_dict()
    # what the result entry publishes: canonical JSON (1.0 is written 1)
    out: dict[str, Any] = json.loads(json.dumps(res))
    return out


def _evaluate(spec: QuerySpec, sites: list[Table]) -> dict[str, Any]:
    return get("model_evaluation").decode(spec, _released(spec, _pool(spec, sites))).to_dict()


def _q(x: npt.NDArray[Any], lo: float, hi: float) -> npt.NDArray[np.float64]:
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), lo, hi) * SCALE) / SCALE


# ---------------------------------------------------------------------------- linear
FEATS = ["age", "bmi", "bp"]
BOUNDS = {"age": [18.0, 80.0], "bmi": [15.0, 50.0], "bp": [60.0, 140.0], "target": [0.0, 400.0]}


def ols_spec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "linear_regression", "columns": [*FEATS, "target"],
        "bounds": BOUNDS, "params": {"target": "target", "features": FEATS}, "max_rows": 5000,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def _diabetes() -> list[Table]:
    return [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]


def test_linear_metrics_equal_sklearn_on_the_fixed_point_rows() -> None:
    sites = _diabetes()
    fit_spec = ols_spec()
    fit = _fit(fit_spec, sites[:2])  # trained on two owners, evaluated on the other two
    spec = evaluation_spec(fit_spec, QID, fit)
    v = _evaluate(spec, sites[2:])
    rows = {k: np.concatenate([s[k] for s in sites[2:]]) for k in sites[0]}
    X = np.column_stack([np.ones(len(rows["age"]))] + [_q(rows[f], *BOUNDS[f]) for f in FEATS])
    y = _q(rows["target"], *BOUNDS["target"])
    pred = X @ np.array(fit["coef"], dtype=np.float64)
    # exactly the metrics of the quantised residuals rint(r * scale) / scale ...
    e = np.rint((y - pred) * SCALE) / SCALE
    assert _rel(v["mse"], float(np.mean(e * e))) < 1e-12
    assert _rel(v["mae"], float(np.mean(np.abs(e)))) < 1e-12
    assert _rel(v["r_squared"], float(1 - np.sum(e * e) / np.sum((y - y.mean()) ** 2))) < 1e-12
    # ... and sklearn's on the unquantised predictions to the quantisation (<= 1/(2 scale))
    assert abs(v["r_squared"] - r2_score(y, pred)) < 1e-8
    assert abs(v["rmse"] - mean_squared_error(y, pred) ** 0.5) < 1 / SCALE
    assert abs(v["mae"] - mean_absolute_error(y, pred)) < 1 / SCALE
    assert v["n"] == len(y) and v["model_query"] == QID and v["coef"] == fit["coef"]


def test_linear_in_sample_r2_is_the_fits_r2() -> None:
    sites = _diabetes()
    fit_spec = ols_spec()
    fit = _fit(fit_spec, sites)
    v = _evaluate(evaluation_spec(fit_spec, QID, fit), sites)
    assert abs(v["r_squared"] - fit["r_squared"]) < 1e-8


def test_linear_small_n_is_suppressed_before_decryption() -> None:
    sites = _diabetes()
    fit_spec = ols_spec()
    fit = _fit(fit_spec, sites)
    spec = evaluation_spec(fit_spec, QID, fit, min_cell_size=50,
                           filters=[{"column": "age", "op": ">", "value": 78}])
    tot = _pool(spec, sites)
    assert tot[0] < 50
    assert get("model_evaluation").release(spec, [True]) == [False] * 5  # nothing, n included
    assert get("model_evaluation").release(spec, [False]) == [True] * 5
    v = get("model_evaluation").decode(spec, _released(spec, tot)).to_dict()
    assert v["n"] is None and v["r_squared"] is None and v["rmse"] is None
    full = evaluation_spec(fit_spec, QID, fit)
    all_rows = _pool(full, sites)
    with pytest.raises(MalformedError, match="withheld"):  # a sum lost from a released fit
        get("model_evaluation").decode(full, [all_rows[0], None, *all_rows[2:]])


# ---------------------------------------------------------------------------- logistic
LFEATS = ["mean_radius", "mean_texture", "mean_smoothness"]
LBOUNDS = {"mean_radius": [5.0, 30.0], "mean_texture": [5.0, 40.0],
           "mean_smoothness": [0.05, 0.17], "benign": [0.0, 1.0]}


def _cancer() -> list[Table]:
    return [datasets.load("breast_cancer", s) for s in datasets.sites("breast_cancer")]


def logit_spec(statistic: str = "logistic_approx", **params: Any) -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": statistic, "columns": [*LFEATS, "benign"], "bounds": LBOUNDS,
        "params": {"target": "benign", "features": LFEATS, **params}, "max_rows": 5000})


def _scores(rows: Table, coef: list[float], std: dict[str, list[float]] | None = None
            ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    cols = [np.ones(len(rows["benign"]))]
    for f in LFEATS:
        x = np.clip(rows[f].astype(np.float64), *LBOUNDS[f])
        if std and f in std:
            x = (x - std[f][0]) / std[f][1]
        cols.append(np.rint(x * SCALE) / SCALE)
    eta = np.column_stack(cols) @ np.array(coef, dtype=np.float64)
    return eta, rows["benign"].astype(np.float64)


def _check_logistic(v: dict[str, Any], eta: npt.NDArray[np.float64],
                    y: npt.NDArray[np.float64], threshold: float, bins: int) -> None:
    p = 1 / (1 + np.exp(-eta))
    pred = (p >= threshold).astype(int)
    assert v["n"] == len(y) and v["n_pos"] == int(y.sum())
    assert _rel(v["accuracy"], accuracy_score(y, pred)) < 1e-12
    assert _rel(v["precision"], precision_score(y, pred)) < 1e-12
    assert _rel(v["recall"], recall_score(y, pred)) < 1e-12
    assert _rel(v["f1"], f1_score(y, pred)) < 1e-12
    # per-row loss quantised to 1/scale: the mean differs by at most 1/(2 scale)
    assert abs(v["log_loss"] - log_loss(y, p)) < 1 / SCALE
    binned = np.minimum(np.floor(p * bins), bins - 1)
    assert _rel(v["roc_auc"], roc_auc_score(y, binned)) < 1e-12  # the trapezoid, exactly
    assert abs(v["roc_auc"] - roc_auc_score(y, p)) < 0.01  # the resolution's price
    assert sum(v["histogram"]["positive"]) == v["n_pos"]


def test_logistic_metrics_equal_sklearn_on_the_bundled_sites() -> None:
    sites = _cancer()
    fit_spec = logit_spec()
    fit = _fit(fit_spec, sites)
    spec = evaluation_spec(fit_spec, QID, fit)
    v = _evaluate(spec, sites)
    rows = datasets.load("breast_cancer")
    eta, y = _scores(rows, fit["coef"])
    _check_logistic(v, eta, y, 0.5, 100)
    assert v["threshold"] == 0.5 and v["bins"] == 100


def test_logistic_with_standardize_threshold_and_bins() -> None:
    sites = _cancer()
    rows = datasets.load("breast_cancer")
    std = {"mean_radius": [14.0, 3.5], "mean_texture": [19.0, 4.3]}
    X = np.column_stack([(np.clip(rows[f], *LBOUNDS[f]) - std[f][0]) / std[f][1]
                         if f in std else np.clip(rows[f], *LBOUNDS[f]) for f in LFEATS])
    sk = LogisticRegression(C=1e6, max_iter=1000).fit(X, rows["benign"])
    coef = [float(sk.intercept_[0]), *map(float, sk.coef_[0])]
    fit_spec = logit_spec("logistic_irls", standardize=std)
    fit = {"statistic": "logistic_irls", "coef": coef}
    spec = evaluation_spec(fit_spec, QID, fit, threshold=0.3, bins=20)
    v = _evaluate(spec, sites)
    eta, y = _scores(rows, coef, std)
    _check_logistic(v, eta, y, 0.3, 20)
    assert v["threshold"] == 0.3 and len(v["histogram"]["negative"]) == 20


def test_logistic_small_class_releases_only_the_class_counts() -> None:
    sites = _cancer()
    fit_spec = logit_spec()
    fit = _fit(fit_spec, sites)
    spec = evaluation_spec(fit_spec, QID, fit, min_cell_size=20,
                           filters=[{"column": "mean_radius", "op": ">", "value": 15.0}])
    tot = _pool(spec, sites)
    assert tot[1] >= 20 and 0 < tot[0] < 20  # 12 benign tumours that large
    assert not any(get("model_evaluation").release(spec, [False, True]))
    v = get("model_evaluation").decode(spec, _released(spec, tot)).to_dict()
    assert v["roc_auc"] is None and v["histogram"] is None and v["n"] is None
    assert any("suppressed" in n for n in v["notes"])


# ---------------------------------------------------------------------------- the reference
def _query(spec: QuerySpec, querier: str = "querier") -> QueryEntry:
    return entries.sign(QueryEntry(spec.query_id_for(querier), spec.to_json_obj(), querier),
                        KEY)


def _result(qid: str, result: dict[str, Any]) -> ResultEntry:
    return entries.sign(ResultEntry.for_totals(qid, [1, 2], result, ["compute-1"]), KEY)


def _chain() -> tuple[QuerySpec, QueryEntry, ResultEntry, dict[str, Any]]:
    fit_spec = ols_spec()
    fit = _fit(fit_spec, _diabetes())
    q0 = _query(fit_spec)
    r0 = _result(q0.query_id, fit)
    published = Entry_result(r0)
    return evaluation_spec(fit_spec, q0.query_id, published), q0, r0, published


def Entry_result(r: ResultEntry) -> dict[str, Any]:  # noqa: N802 - reads like the entry
    """The result as the log holds it (decoded back from the entry's bytes)."""
    back = entries.Entry.from_bytes(r.to_bytes())
    assert isinstance(back, ResultEntry)
    return dict(back.result)


def test_honest_reference_passes_through_the_chain_rule() -> None:
    spec, q0, r0, _ = _chain()
    detail = chain.check_chain(spec, "querier", (3, q0), (9, r0, r0.to_bytes()))
    assert detail is not None and "published coef" in detail
    assert chain.previous_id(spec) == q0.query_id
    # carried like a previous round: parse_entries files them as the referenced query
    q1 = _query(spec)
    view = parse_entries([(3, q0.to_bytes()), (9, r0.to_bytes()), (12, q1.to_bytes())])
    assert view.query is not None and view.query.query_id == q1.query_id
    assert view.previous_query is not None and view.previous_result is not None
    # ... with the fit's endorsements (step 8: tests/unit/test_chain_endorsed.py)
    e0 = entries.sign(entries.EndorsementEntry(q0.query_id, "prov-1",
                                               entries.result_digest(r0.to_bytes())), KEY)
    rows = [(3, q0.to_bytes()), (9, r0.to_bytes()), (10, e0.to_bytes()), (12, q1.to_bytes())]
    assert [i for i, _ in chain.chain_rows(rows, q0.query_id)] == [3, 9, 10]
    assert [i for i, _ in chain.own_rows(rows)] == [12]
    assert [i for i, _ in parse_entries(rows).previous_endorsements] == [10]


def _with(spec: QuerySpec, **params: Any) -> QuerySpec:
    obj = spec.to_json_obj()
    obj["params"] = {**obj["params"], **params}
    return QuerySpec.parse(obj)


def test_forged_models_are_refused_at_step_8() -> None:
    spec, q0, r0, published = _chain()
    prev = (3, q0)
    res = (9, r0, r0.to_bytes())
    coef = list(published["coef"])
    last_bit = [*coef[:-1], float(np.nextafter(coef[-1], np.inf))]
    for forged in (last_bit, [c * 2 for c in coef], [coef[1], coef[0], *coef[2:]],
                   [0.0] * len(coef)):
        with pytest.raises(VerificationError, match="step 8.*forged model"):
            chain.check_chain(_with(spec, coef=forged), "querier", prev, res)
    with pytest.raises(VerificationError, match="params.features differs"):
        feats = ["bmi", "age", "bp"]
        chain.check_chain(_with(spec, features=feats), "querier", prev, res)
    # missing / swapped entries
    with pytest.raises(VerificationError, match="referenced query .* is not in view"):
        chain.check_chain(spec, "querier", None, res)
    with pytest.raises(VerificationError, match="result .* is not in view"):
        chain.check_chain(spec, "querier", prev, None)
    other = _result("cd" * 32, published)
    with pytest.raises(VerificationError, match="result .* is not in view"):
        chain.check_chain(spec, "querier", prev, (9, other, other.to_bytes()))


def test_references_to_a_non_model_or_modelless_result_are_refused() -> None:
    spec, q0, r0, published = _chain()
    # the referenced query is a mean, not a fit
    mean_spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["bmi"],
                                 "bounds": {"bmi": [15.0, 50.0]}})
    qm = _query(mean_spec)
    rm = _result(qm.query_id, {"statistic": "mean", "value": 26.4})
    s = _with(spec, previous=qm.query_id)
    with pytest.raises(VerificationError, match="step 8.*'mean', not the 'linear_regression'"):
        chain.check_chain(s, "querier", (3, qm), (9, rm, rm.to_bytes()))
    # params.model says logistic, the query fitted OLS
    with pytest.raises(MalformedError, match="'linear_regression', not the 'logistic_irls'"):
        check_model_reference(_with(spec, model="logistic_irls"), q0.query_spec(), published)
    # a result that is not the fit's
    with pytest.raises(MalformedError, match="not the result of a model fit"):
        check_model_reference(spec, q0.query_spec(), {**published, "statistic": "mean"})
    # a suppressed / singular fit publishes no coefficients
    none = {**published, "coef": [None] * len(published["coef"])}
    with pytest.raises(MalformedError, match="holds no model"):
        check_model_reference(spec, q0.query_spec(), none)
    with pytest.raises(MalformedError, match="no coefficients"):
        evaluation_spec(q0.query_spec(), q0.query_id, none)
    with pytest.raises(MalformedError, match="not a model fit"):
        evaluation_spec(mean_spec, qm.query_id, {"coef": [1.0]})
    # the model_evaluation without params.previous never gets that far
    obj = spec.to_json_obj()
    del obj["params"]["previous"]
    with pytest.raises(MalformedError, match="params.previous: required"):
        QuerySpec.parse(obj)


def test_bad_inputs() -> None:
    spec, *_ = _chain()
    for bad, why in (({"previous": "AB" * 32}, "params.previous: expected"),
                     ({"previous": "ab" * 31}, "params.previous: expected"),
                     ({"coef": [1.0, 2.0]}, "params.coef: must be the fit's 4"),
                     ({"coef": [1.0, 2.0, 3.0, "x"]}, r"params.coef\[3\]"),
                     ({"model": "cox_regression"}, "params.model"),
                     ({"threshold": 0.5}, "params.threshold: unknown parameter"),
                     ({"target": "age"}, "is also a feature")):
        with pytest.raises(MalformedError, match=why):
            _with(spec, **bad)
    lspec = evaluation_spec(logit_spec(), QID, {"coef": [0.1, 0.2, 0.3, 0.4]})
    for bad, why in (({"threshold": 1.0}, "params.threshold"), ({"bins": 1}, "params.bins"),
                     ({"bins": 1001}, "params.bins"), ({"bins": "20"}, "params.bins")):
        with pytest.raises(MalformedError, match=why):
            _with(lspec, **bad)
    obj = spec.to_json_obj()
    obj["columns"] = ["age", "bmi", "target"]
    with pytest.raises(MalformedError, match="columns: must list exactly"):
        QuerySpec.parse(obj)
    # a missing column at one owner; a target that is not 0/1 for a logistic model
    site = _diabetes()[0]
    with pytest.raises(MalformedError, match="missing column 'bp'"):
        get("model_evaluation").encode(spec, {k: a for k, a in site.items() if k != "bp"})
    rows = _cancer()[0]
    rows = {**rows, "benign": rows["benign"] * 0.5}
    with pytest.raises(MalformedError, match="values must be 0 or 1"):
        get("model_evaluation").encode(lspec, rows)
    tot = _pool(spec, _diabetes())
    with pytest.raises(MalformedError, match="6 entries"):
        get("model_evaluation").decode(spec, [*tot, 1])
