"""cox_regression on lifelines' rossi data split over the 4 bundled sites, against lifelines
``CoxPHFitter`` (Efron ties) and statsmodels ``PHReg`` (Breslow and Efron ties).

The rossi covariates are integers, so the fixed-point data equal the raw data; the only
approximation is the fixed-point ``rint(S e^{a.beta})`` (``S = 2^32``).  Tolerance: 1e-6
absolute on coefficients and standard errors (measured ~5e-9 / 5e-10), 1e-6 on the
log-likelihood and the likelihood-ratio statistic.  The Newton rounds are run exactly as
the querier runs them (cox_start / cox_next_spec), each round's totals the sum of the four
owners' encodings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from statsmodels.duration.hazard_regression import PHReg

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.protocol import chain, datasets
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.base import StatResult
from statledger.protocol.stats.cox import cox_next_spec, cox_start

STAT = get("cox_regression")
COVS = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
BOUNDS: dict[str, list[float]] = {
    "week": [0, 52], "arrest": [0, 1], "fin": [0, 1], "age": [17, 45], "race": [0, 1],
    "wexp": [0, 1], "mar": [0, 1], "paro": [0, 1], "prio": [0, 20]}
COARSE = [float(t) for t in range(8, 53, 4)]  # 12 bins, each 0 or >= 5 rows on rossi
TOL = 1e-6


def make_spec(covs: list[str] = COVS, **params: Any) -> QuerySpec:
    over: dict[str, Any] = {k: params.pop(k) for k in ("min_cell_size", "group_by",
                                                       "categories", "privacy") if k in params}
    p: dict[str, Any] = {"time": "week", "event": "arrest", "covariates": covs,
                         "max_time": 52, "ties": "efron"}
    p.update(params)
    if "times" in p:
        p.pop("max_time")
    obj: dict[str, Any] = {
        "version": 1, "statistic": "cox_regression", "columns": ["week", "arrest", *covs],
        "bounds": {c: BOUNDS[c] for c in ["week", "arrest", *covs]}, "params": p,
        "max_rows": 1000, "min_cell_size": 1}
    obj.update(over)
    return QuerySpec.parse(obj)


def tables(str_col: str | None = None) -> list[dict[str, np.ndarray]]:
    out = []
    for s in datasets.sites("rossi"):
        t = dict(datasets.load("rossi", s))
        if str_col is not None:
            t[str_col] = np.array([str(int(v)) for v in t[str_col]], dtype=object)
        out.append(t)
    return out


def pooled() -> pd.DataFrame:
    return pd.DataFrame(datasets.load("rossi"))


def totals(spec: QuerySpec, tabs: list[dict[str, np.ndarray]]) -> list[int]:
    layout = STAT.layout(spec)
    tot = [0] * len(layout)
    for t in tabs:
        v = STAT.encode(spec, t)
        layout.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def fit(spec: QuerySpec, tabs: list[dict[str, np.ndarray]] | None = None
        ) -> tuple[StatResult, int]:
    tabs = tables() if tabs is None else tabs
    cur: QuerySpec | None = cox_start(spec)
    rounds = 0
    last: StatResult | None = None
    while cur is not None:
        last = STAT.decode(cur, totals(cur, tabs))
        rounds += 1
        cur = cox_next_spec(cur, last, f"{rounds:064x}")
    assert last is not None
    return last, rounds


def close(a: Any, b: Any, tol: float = TOL) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=0, atol=tol)


def lifelines_fit(df: pd.DataFrame, covs: list[str], **kw: Any) -> CoxPHFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter().fit(df[["week", "arrest", *covs, *kw.get("strata", [])]],
                                 "week", "arrest", **kw)


# ---------------------------------------------------------------------------- accuracy
def test_efron_matches_lifelines_on_the_weekly_grid() -> None:
    res, rounds = fit(make_spec())
    v = res.values
    assert v["converged"] and 3 <= rounds <= 8
    cph = lifelines_fit(pooled(), COVS)
    close(v["coef"], cph.params_.values)
    close(v["std_err"], cph.standard_errors_.values)
    close(v["hazard_ratio"], np.exp(cph.params_.values))
    close(v["z"], cph.summary["z"].values, 1e-4)
    close(v["p_value"], cph.summary["p"].values, 1e-6)
    close(v["ci_lower"], cph.confidence_intervals_.iloc[:, 0].values)
    close(v["ci_upper"], cph.confidence_intervals_.iloc[:, 1].values)
    close(v["log_likelihood"], cph.log_likelihood_)
    lr = cph.log_likelihood_ratio_test()
    close(v["lr_test"]["statistic"], lr.test_statistic)
    assert v["lr_test"]["df"] == lr.degrees_freedom == len(COVS)
    close(v["lr_test"]["p_value"], lr.p_value, 1e-9)
    assert v["n"] == 432 and v["events"] == 114


def test_breslow_matches_statsmodels_phreg() -> None:
    res, _ = fit(make_spec(ties="breslow"))
    df = pooled()
    m = PHReg(df["week"], df[COVS], status=df["arrest"], ties="breslow").fit()
    close(res.values["coef"], m.params)
    close(res.values["std_err"], m.bse)
    close(res.values["log_likelihood"], m.llf)
    # the two tie rules differ on rossi (many tied weeks): the test can tell them apart
    efron = PHReg(df["week"], df[COVS], status=df["arrest"], ties="efron").fit()
    assert np.max(np.abs(efron.params - res.values["coef"])) > 1e-3


def test_coarse_grid_fits_the_grouped_times() -> None:
    """A row counts at the first grid point >= its time: the fit equals the ordinary fit on
    those grouped times (lifelines and statsmodels on the mapped pooled rows)."""
    df = pooled()
    grid = np.asarray(COARSE)
    df["week"] = grid[np.searchsorted(grid, df["week"], side="left")]
    for ties in ("breslow", "efron"):
        spec = make_spec(ties=ties, times=COARSE, min_cell_size=5)
        res, _ = fit(spec)
        m = PHReg(df["week"], df[COVS], status=df["arrest"], ties=ties).fit()
        close(res.values["coef"], m.params)
        close(res.values["std_err"], m.bse)
        if ties == "efron":
            cph = lifelines_fit(df, COVS)
            close(res.values["coef"], cph.params_.values)
            close(res.values["std_err"], cph.standard_errors_.values)


def test_strata_match_lifelines_and_statsmodels() -> None:
    covs = [c for c in COVS if c != "wexp"]
    spec = make_spec(covs, group_by=["wexp"], categories={"wexp": ["0", "1"]})
    res, _ = fit(spec, tables("wexp"))
    df = pooled()
    cph = lifelines_fit(df, covs, strata=["wexp"])
    close(res.values["coef"], cph.params_.values)
    close(res.values["std_err"], cph.standard_errors_.values)
    m = PHReg(df["week"], df[covs], status=df["arrest"], strata=df["wexp"],
              ties="efron").fit()
    close(res.values["coef"], m.params)
    assert res.values["strata"] == ["wexp=0", "wexp=1"]
    unstratified, _ = fit(make_spec(covs))
    assert np.max(np.abs(np.subtract(unstratified.values["coef"], res.values["coef"]))) > 1e-4


def test_split_encodings_add_up_to_the_pooled_one_and_repeat_exactly() -> None:
    """Per-row integers: the four owners' vectors add up to the pooled table's vector, and
    encoding twice gives the same integers (the exponential is computed deterministically)."""
    spec = make_spec(beta=[-0.38, -0.057, 0.31, -0.15, -0.43, -0.085, 0.091], round=0)
    tabs = tables()
    whole = {c: np.concatenate([t[c] for t in tabs]) for c in tabs[0]}
    assert totals(spec, tabs) == STAT.encode(spec, whole) == STAT.encode(spec, whole)


# ---------------------------------------------------------------------------- chain
def test_chained_rounds_and_a_forged_beta() -> None:
    s0 = cox_start(make_spec(previous="ab" * 32, beta=[1.0] * 7, round=3))
    assert s0.params["beta"] == [0.0] * 7 and s0.params["round"] == 0
    assert "previous" not in s0.params
    assert chain.check_chain(s0, "querier", None, None) is None
    obj = s0.to_json_obj()
    obj["params"]["beta"] = [0.0] * 6 + [0.5]  # a freely chosen beta in round 0
    with pytest.raises(VerificationError, match="step 8"):
        chain.check_chain(QuerySpec.parse(obj), "querier", None, None)
    r0 = STAT.decode(s0, totals(s0, tables()))
    s1 = cox_next_spec(s0, r0, "cd" * 32)
    assert s1 is not None and s1.params["beta"] == r0.values["beta_next"]
    assert s1.params["previous"] == "cd" * 32 and s1.params["round"] == 1
    done = StatResult("cox_regression", {"converged": True, "beta_next": [0.0] * 7})
    assert cox_next_spec(s1, done) is None
    with pytest.raises(MalformedError, match="cox_next_spec"):
        cox_next_spec(s1, StatResult("logistic_irls", {}))


# ---------------------------------------------------------------------------- bad input
def test_missing_column_at_one_owner() -> None:
    spec = make_spec()
    tabs = tables()
    del tabs[2]["prio"]
    for t in tabs[:2]:
        STAT.encode(spec, t)
    with pytest.raises(MalformedError, match="missing column 'prio'"):
        STAT.encode(spec, tabs[2])


def test_no_events_is_suppressed_and_stops_the_rounds() -> None:
    tabs = tables()
    for t in tabs:
        t["arrest"] = np.zeros_like(t["arrest"])
    spec = cox_start(make_spec(times=COARSE, min_cell_size=5))
    tot = totals(spec, tabs)
    assert tot[1] == 0  # the gate d: small, so nothing would be decrypted
    small = [tot[g] < spec.min_cell_size for g in STAT.gates(spec)]
    assert not any(STAT.release(spec, small))
    for res in (STAT.decode(spec, tot), STAT.decode(spec, [None] * len(tot))):
        assert res.values["coef"] == [None] * 7 and res.values["beta_next"] is None
        assert cox_next_spec(spec, res) is None
    assert any("no events" in n for n in STAT.decode(spec, tot).notes)


def test_event_values_must_be_zero_or_one() -> None:
    tabs = tables()
    tabs[0]["arrest"] = tabs[0]["arrest"] * 2
    with pytest.raises(MalformedError, match="event values must be 0 or 1"):
        STAT.encode(make_spec(), tabs[0])


@pytest.mark.parametrize(("params", "match"), [
    ({"ties": "exact"}, "params.ties"),
    ({"beta": [0.0] * 6}, "params.beta"),
    ({"beta": [0.0] * 6 + [1e9]}, r"params.beta\[6\]"),
    ({"round": -1}, "params.round"),
    ({"tol": 0}, "params.tol"),
    ({"max_rounds": 0}, "params.max_rounds"),
    ({"previous": "xyz"}, "params.previous"),
    ({"covariates": ["week"]}, "params.covariates"),
    ({"event": "week"}, "params.event"),
    ({"max_time": 0}, "params.max_time"),
    ({"times": [5.0, 3.0]}, r"params.times\[1\]"),
    ({"strata": "fin"}, "strata"),
])
def test_spec_twins_are_refused(params: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        make_spec(**params)


def test_dp_and_column_list_are_refused() -> None:
    obj = make_spec().to_json_obj()
    obj["columns"] = obj["columns"][:-1]
    with pytest.raises(MalformedError, match="columns"):
        QuerySpec.parse(obj)
    obj = make_spec().to_json_obj()
    obj["privacy"] = {"mechanism": "zcdp", "rho": 0.5}
    with pytest.raises(MalformedError, match="privacy"):
        QuerySpec.parse(obj)


# ---------------------------------------------------------------------------- suppression
def _small(spec: QuerySpec, tot: list[int]) -> list[bool]:
    """The PET's bits, computed in the clear: gate count below min_cell_size."""
    return [tot[g] < spec.min_cell_size for g in STAT.gates(spec)]


def test_a_sparse_grid_is_suppressed_before_decryption() -> None:
    """Weekly bins holding 0-4 rows: at min_cell_size 5 nothing is decrypted (a bin's sums
    over one row would be that row's covariates); the 4-week grid from week 8 passes."""
    spec = cox_start(make_spec(min_cell_size=5, ties="breslow"))
    tot = totals(spec, tables())
    assert not any(STAT.release(spec, _small(spec, tot)))
    res = STAT.decode(spec, [None] * len(tot))
    assert res.values["coef"] == [None] * 7 and res.values["beta_next"] is None
    assert res.values["n"] is None and any("suppressed" in n for n in res.notes)
    coarse = cox_start(make_spec(times=COARSE, min_cell_size=5, ties="breslow"))
    assert all(STAT.release(coarse, _small(coarse, totals(coarse, tables()))))
    # Efron on the same grid: the bins before week 52 hold no censored row (small)
    efron = cox_start(make_spec(times=COARSE, min_cell_size=5, ties="efron"))
    assert not any(STAT.release(efron, _small(efron, totals(efron, tables()))))


def test_gates_are_the_counts_a_difference_can_isolate() -> None:
    br = make_spec(times=[26.0, 52.0], min_cell_size=5, ties="breslow")
    assert STAT.layout(br).labels[:6] == ["n", "d", "n@26", "d@26", "n@52", "d@52"]
    assert STAT.gates(br) == [1, 2, 4]
    ef = make_spec(times=[26.0, 52.0], min_cell_size=5, ties="efron")
    assert STAT.layout(ef).labels[:8] == ["n", "d", "n@26", "d@26", "c@26", "n@52", "d@52",
                                          "c@52"]
    assert STAT.gates(ef) == [1, 3, 4, 6, 7]
    for spec in (br, ef):
        width = len(STAT.layout(spec))
        g = len(STAT.gates(spec))
        assert STAT.release(spec, [False] * g) == [True] * width
        for i in range(g):  # one small gate withholds everything
            assert STAT.release(spec, [j == i for j in range(g)]) == [False] * width


def test_totals_twins() -> None:
    spec = cox_start(make_spec(times=COARSE, min_cell_size=5, ties="breslow"))
    tot = totals(spec, tables())
    STAT.decode(spec, tot)
    g = 2 + 2 * len(COARSE)
    with pytest.raises(MalformedError, match="totals"):
        STAT.decode(spec, tot[:-1])
    with pytest.raises(MalformedError, match="totals"):
        STAT.decode(spec, [*tot, 0])
    with pytest.raises(MalformedError, match="withheld"):
        STAT.decode(spec, [*tot[:-1], None])
    with pytest.raises(MalformedError, match="withheld"):
        STAT.decode(spec, [None, *tot[1:]])
    bad = list(tot)
    bad[3] = bad[2] + 1  # more events than rows in bin 1
    with pytest.raises(MalformedError, match="inconsistent counts"):
        STAT.decode(spec, bad)
    bad = list(tot)
    bad[0] += 1  # n does not match the bins
    with pytest.raises(MalformedError, match="add up"):
        STAT.decode(spec, bad)
    bad = list(tot)
    bad[1] -= 1  # d does not match the bins
    with pytest.raises(MalformedError, match="add up"):
        STAT.decode(spec, bad)
    bad = list(tot)
    k = len(COVS)
    per_bin = 1 + k + k * (k + 1) // 2
    for b in range(len(COARSE)):  # every risk-set sum zeroed, events remain
        bad[g + k + b * per_bin] = 0
    with pytest.raises(MalformedError, match="empty risk set"):
        STAT.decode(spec, bad)
    # a flipped sum decodes to another (wrong) step, never silently to the same one
    bad = list(tot)
    bad[g + k + 1] ^= 1 << 20
    assert STAT.decode(spec, bad).values["beta_next"] != STAT.decode(spec, tot).values[
        "beta_next"]


def test_layout_is_public_and_decoding_deterministic() -> None:
    spec = cox_start(make_spec(times=COARSE, min_cell_size=5, ties="breslow"))
    lay = STAT.layout(spec)
    k = len(COVS)
    assert len(lay) == 2 + 2 * 12 + k + 12 * (1 + k + k * (k + 1) // 2)
    assert lay.labels[:4] == ["n", "d", "n@8", "d@8"]
    assert max(lay.bits()) <= 128
    assert len(STAT.sensitivity(spec)) == len(lay)
    tot = totals(spec, tables())
    a, b = STAT.decode(spec, tot), STAT.decode(spec, tot)
    assert a.to_dict() == b.to_dict()
    # a later round's layout widens with |beta| (U <= S e^Z)
    s1 = cox_next_spec(spec, a, "ab" * 32)
    assert s1 is not None and STAT.layout(s1).ranges[-1][1] > lay.ranges[-1][1]
