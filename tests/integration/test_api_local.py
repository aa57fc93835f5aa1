"""The Python API end to end: ``statledger.local`` on four pandas DataFrames (real processes
over HTTP on loopback), OLS, IRLS logistic regression and Kaplan–Meier checked against
statsmodels and lifelines on the pooled rows, every certificate verified, and the adversary's
twins refused: numbers altered in the result object, a certificate of another query, a
flipped bit, another consortium's trust file.  A site that cannot answer is named (strict),
or left out with a warning naming it (``allow_partial``).  ``statledger.connect`` reaches the
same cluster through its querier config."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import statledger
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.protocol.fixedpoint import DEFAULT_SCALE, to_fixed

SCALE = 100  # every generated value has 2 decimals: exact in fixed point
BOUNDS = {"age": [30.0, 80.0], "bmi": [15.0, 45.0], "sbp": [80.0, 220.0]}
STD = {"age": [55.0, 15.0], "bmi": [27.0, 4.0]}
KW: dict[str, Any] = {"scale": SCALE, "max_rows": 400}


def hospital(seed: int, n: int) -> pd.DataFrame:
    """A hospital's rows: age, bmi, systolic blood pressure, a 0/1 disease, a treatment arm
    and a follow-up time in months with an event flag (censored at 40)."""
    rng = np.random.default_rng(seed)
    age = np.round(rng.uniform(30, 80, n), 2)
    bmi = np.round(np.clip(rng.normal(27, 4, n), 15, 45), 2)
    sbp = np.round(90 + 0.6 * age + 1.1 * bmi + rng.normal(0, 9, n), 2)
    p = 1 / (1 + np.exp(-(-9.0 + 0.09 * age + 0.15 * bmi)))
    disease = (rng.uniform(size=n) < p).astype(float)
    arm = rng.choice(["control", "treated"], n)
    rate = np.where(arm == "treated", 1 / 30, 1 / 15)
    t = np.ceil(rng.exponential(1 / rate))
    event = (t <= 40).astype(float)
    return pd.DataFrame({"age": age, "bmi": bmi, "sbp": sbp, "disease": disease, "arm": arm,
                         "months": np.minimum(t, 40.0), "event": event})


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    out = {name: hospital(seed, n) for name, seed, n in
           (("north", 1, 130), ("south", 2, 110), ("east", 3, 120), ("west", 4, 100))}
    west = out["west"].copy()
    west["sbp"] = west["sbp"].astype(object)
    west.loc[3, "sbp"] = "abc"  # a text cell in a numeric column: west cannot answer on sbp
    out["west"] = west
    return out


@pytest.fixture(scope="module")
def session(frames: dict[str, pd.DataFrame]) -> Iterator[statledger.Session]:
    with statledger.local(frames, compute=3, threshold=2) as s:
        yield s


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def test_ols_names_the_bad_site_then_matches_statsmodels(
        session: statledger.Session, frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    feats = ["age", "bmi"]
    with pytest.raises(statledger.SiteError) as e:
        session.ols("sbp", feats, BOUNDS, **KW)
    assert "site west: column 'sbp' must be numeric" in str(e.value)
    assert "abc" not in str(e.value)
    with pytest.warns(statledger.PartialResultWarning, match="site west"):
        fit = session.ols("sbp", feats, BOUNDS, allow_partial=True, **KW)
    assert sorted(fit.contributors) == ["east", "north", "south"]
    assert list(fit.left_out) == ["west"]
    pooled = pd.concat([frames[s] for s in ("north", "south", "east")])
    X = sm.add_constant(np.column_stack([np.clip(pooled[f].to_numpy(float), *BOUNDS[f])
                                         for f in feats]))
    y = np.clip(pooled["sbp"].to_numpy(float), *BOUNDS["sbp"])
    m = sm.OLS(y, X).fit()
    assert list(fit.params.index) == ["const", *feats]
    assert _rel(fit.params, m.params) < 1e-9 and _rel(fit.bse, m.bse) < 1e-9
    assert _rel(fit.tvalues, m.tvalues) < 1e-9 and _rel(fit.pvalues, m.pvalues) < 1e-6
    assert _rel(fit.conf_int(), m.conf_int()) < 1e-9
    assert _rel(fit.conf_int(alpha=0.1), m.conf_int(alpha=0.1)) < 1e-9
    assert fit.nobs == len(pooled) and abs(fit.rsquared - m.rsquared) < 1e-12
    assert "OLS Regression Results" in str(fit.summary())
    assert "<table" in fit._repr_html_() and "left out: west" in fit._repr_html_()
    # the proof: valid under the session's consortium, and under its saved trust file
    assert [r.valid for r in fit.verify()] == [True]
    trust = session.save_trust(tmp_path / "trust.json")
    assert fit.verify(trust=trust)[0].valid
    (cert,) = fit.save(tmp_path / "ols.cert")
    report = statledger.verify_certificate_file(cert, statledger_trust(trust))
    assert report.valid and report.result == fit.to_dict()


def statledger_trust(path: Path) -> Any:
    from statledger.verifier.verify import load_trust

    return load_trust(path)


def test_logistic_irls_every_round_certified_and_matches_statsmodels(
        session: statledger.Session, frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    feats = ["age", "bmi"]
    # the default scale 2^16: the IRLS weights are encoded at scale^2, so a coarse scale
    # (like the 100 that is exact for OLS here) would cost accuracy (docs/statistics.md)
    fit = session.logistic("disease", feats, BOUNDS, standardize=STD, max_rows=400)
    assert fit.converged and fit.rounds == len(fit.certificates) >= 3
    assert len(set(fit.query_ids)) == fit.rounds  # each round is its own query
    pooled = pd.concat(frames.values())
    cols = [to_fixed((np.clip(pooled[f].to_numpy(float), *BOUNDS[f]) - STD[f][0]) / STD[f][1],
                     DEFAULT_SCALE) / DEFAULT_SCALE for f in feats]
    m = sm.Logit(pooled["disease"].to_numpy(float),
                 sm.add_constant(np.column_stack(cols))).fit(disp=0, tol=1e-12)
    assert _rel(fit.params, m.params) < 1e-6 and _rel(fit.bse, m.bse) < 1e-6
    assert _rel(fit.conf_int(), m.conf_int()) < 1e-6
    assert abs(fit.llf - m.llf) < 1e-6 and fit.nobs == len(pooled)
    reports = fit.verify()
    assert len(reports) == fit.rounds and all(r.valid for r in reports)
    files = fit.save(tmp_path / "logit.cert")
    assert len(files) == fit.rounds + 1
    assert files[0].name == "logit-round1.cert" and files[-1].name == "logit.cert"
    assert files[-1].read_bytes() == files[-2].read_bytes()


def test_kaplan_meier_matches_lifelines_and_plots(
        session: statledger.Session, frames: dict[str, pd.DataFrame]) -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    # the exact per-point table (min_cell_size 1; with k >= 2 the grid is coarsened first)
    km = session.kaplan_meier("months", "event", max_time=40, group_by=["arm"],
                              categories={"arm": ["control", "treated"]}, max_rows=400,
                              min_cell_size=1)
    pooled = pd.concat(frames.values())
    sf = km.survival_function_
    ci = km.confidence_interval_
    assert list(sf.columns) == ["arm=control", "arm=treated"]
    assert sf.index.name == "timeline" and sf.index[0] == 0.0 and sf.index[-1] == 40.0
    for arm in ("control", "treated"):
        d = pooled[pooled["arm"] == arm]
        kmf = KaplanMeierFitter().fit(d["months"], d["event"])
        ref = kmf.survival_function_at_times(sf.index).to_numpy()
        assert np.max(np.abs(sf[f"arm={arm}"].to_numpy() - ref)) < 1e-9
        lo = kmf.confidence_interval_.iloc[:, 0].reindex(sf.index, method="ffill")
        assert np.max(np.abs(ci[f"arm={arm}_lower_0.95"].to_numpy() - lo.to_numpy())) < 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            med = kmf.median_survival_time_
        assert km.median_survival_time_[f"arm={arm}"] == (None if np.isinf(med) else med)
    t, c = pooled[pooled["arm"] == "treated"], pooled[pooled["arm"] == "control"]
    lr = logrank_test(c["months"], t["months"], c["event"], t["event"])
    assert abs(km.logrank["test_statistic"] - lr.test_statistic) < 1e-9
    assert km.event_table("arm=control")["at_risk"].iloc[0] == len(c)
    import matplotlib

    matplotlib.use("Agg")
    ax = km.plot()
    assert len(ax.get_lines()) == 2 and ax.get_legend() is not None
    assert km.verify()[0].valid


# -- the adversary's twins -----------------------------------------------------------------
@pytest.fixture(scope="module")
def mean_fit(session: statledger.Session) -> statledger.Result:
    return session.mean("bmi", BOUNDS["bmi"], **KW)


def test_numbers_altered_in_the_result_object_are_refused(mean_fit: statledger.Result) -> None:
    assert mean_fit.verify()[0].valid
    forged = statledger.Result(mean_fit.spec, {**mean_fit.values,
                                               "value": mean_fit.values["value"] + 1e-9},
                               mean_fit._text, mean_fit.certificates, mean_fit.query_ids,
                               mean_fit.contributors, mean_fit._trust)
    with pytest.raises(VerificationError, match="not the certified ones"):
        forged.verify()


def test_a_certificate_of_another_query_is_refused(
        session: statledger.Session, mean_fit: statledger.Result) -> None:
    other = session.mean("age", BOUNDS["age"], **KW)
    swapped = statledger.Result(mean_fit.spec, mean_fit.values, mean_fit._text,
                                other.certificates, mean_fit.query_ids,
                                mean_fit.contributors, mean_fit._trust)
    with pytest.raises(VerificationError, match="is for query"):
        swapped.verify()


def test_a_flipped_bit_or_a_truncated_certificate_is_refused(
        mean_fit: statledger.Result) -> None:
    from statledger.verifier.certificate import parse_certificate

    raw = mean_fit.certificate.to_bytes()
    for bad in (raw[:-1], raw[: len(raw) // 2]):
        with pytest.raises(MalformedError):
            parse_certificate(bad)
    flipped = bytearray(raw)
    flipped[len(raw) * 2 // 3] ^= 0x01
    try:
        cert = parse_certificate(bytes(flipped))
    except MalformedError:
        return  # refused at step 1
    forged = statledger.Result(mean_fit.spec, mean_fit.values, mean_fit._text, [cert],
                               mean_fit.query_ids, mean_fit.contributors, mean_fit._trust)
    with pytest.raises(StatledgerError):
        forged.verify()


def test_another_consortium_is_refused(mean_fit: statledger.Result, tmp_path: Path) -> None:
    from statledger.nodes.launcher import init_cluster

    init_cluster(tmp_path / "other", n_compute=1)
    with pytest.raises(VerificationError):
        mean_fit.verify(trust=tmp_path / "other" / "trust.json")
    with pytest.raises(MalformedError):
        mean_fit.verify(trust=tmp_path / "missing.json")


def test_connect_reaches_the_cluster_through_its_querier_config(
        session: statledger.Session) -> None:
    cfg = session._cluster.config_path("querier")
    with statledger.connect(cfg, dataset="data") as s:
        with pytest.warns(statledger.PartialResultWarning):
            # a deployment's owners check their own data: west refuses at run time
            r = s.mean("sbp", BOUNDS["sbp"], allow_partial=True, **KW)
        assert "west" in r.left_out and sorted(r.contributors) == ["east", "north", "south"]
        assert r.verify()[0].valid
        with pytest.raises(statledger.SiteError, match="site west did not contribute"):
            s.mean("sbp", BOUNDS["sbp"], min_cell_size=6, **KW)


def test_local_refuses_bad_sites_before_any_process(tmp_path: Path,
                                                    frames: dict[str, pd.DataFrame]) -> None:
    a = frames["north"]
    with pytest.raises(MalformedError, match="the same rows as"):
        statledger.local({"a": a, "b": a.copy()}, work_dir=tmp_path / "w1")
    with pytest.raises(MalformedError, match="site name 'ledger'"):
        statledger.local({"ledger": a}, work_dir=tmp_path / "w2")
    with pytest.raises(statledger.SiteError, match="site b: .*no such file"):
        statledger.local({"a": a, "b": tmp_path / "none.csv"}, work_dir=tmp_path / "w3")
    with pytest.raises(statledger.SiteError, match="site b: expected a pandas DataFrame"):
        statledger.local({"a": a, "b": 42}, work_dir=tmp_path / "w4")
    assert not (tmp_path / "w1" / "cluster").exists()
