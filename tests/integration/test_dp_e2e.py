"""Issue 12 end to end on real processes: a DP mean with per-entry calibration and its
reported errors (the certificate verifies: the verifier recomputes the weights), the
per-dataset budget across queriers, the differencing pair refused by the owners, a site
over max_rows told so without its row count, and `statledger run --budget`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from statledger.protocol import datasets
from statledger.protocol.query import QuerySpec

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 1.5
PROVIDERS = ("site-a", "site-b")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from statledger.nodes.launcher import Cluster

    work = tmp_path_factory.mktemp("dp")
    policies = {p: work / f"policy-{p}.json" for p in PROVIDERS}
    for path in policies.values():
        path.write_text(json.dumps({"budget_rho": BUDGET}), encoding="utf-8")
    sites = datasets.sites("diabetes")
    bc = datasets.sites("breast_cancer")
    providers = {p: {"diabetes": str(datasets.path("diabetes", sites[i])),
                     "breast_cancer": str(datasets.path("breast_cancer", bc[i]))}
                 for i, p in enumerate(PROVIDERS)}
    c = Cluster(work / "cluster", n_compute=2, providers=providers,
                queriers=["querier", "querier-2"], policies=policies,
                startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def _querier(cluster: Any, name: str = "querier") -> Any:
    from statledger.nodes.querier import Querier

    layout = cluster.layout
    return Querier(name, cluster.signing_key(name), cluster.url("ledger"),
                   {p.party_id: p.url for p in layout.compute},
                   {p.party_id: p.url for p in layout.providers},
                   trust=cluster.genesis, timeout=120.0)


def _pooled() -> dict[str, Any]:
    sites = datasets.sites("diabetes")
    parts = [datasets.load("diabetes", site=sites[i]) for i in range(len(PROVIDERS))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_dp_mean_is_useful_reports_its_error_and_verifies(cluster: Any) -> None:
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    spec = QuerySpec.parse(json.loads((ROOT / "examples" / "dp_mean.json").read_text()))
    with _querier(cluster) as q:
        out = q.run(spec, datasets="diabetes")
    rows = _pooled()
    exact_n = len(rows["bmi"])
    exact_mean = float(np.clip(rows["bmi"], 15, 50).mean())
    res = out.result.to_dict()
    dp = res["dp"]
    assert dp["noise_shares"] == 2 and dp["weights"][1] == 1 and dp["weights"][0] > 1000
    # n gets the noise of a count (sd ~2), not of the scaled sum (issue 12: n = -4,411,385)
    assert dp["value_sd"]["n"] < 3
    assert abs(res["n"] - exact_n) <= 12  # > 5 sd: a false failure below 1e-6
    assert abs(res["value"] - exact_mean) <= 6 * dp["value_sd"]["value"]
    assert abs(res["value"] - exact_mean) <= 0.05 * exact_mean
    assert "95% noise intervals" in out.result.summary()
    report = verify_certificate(out.certificate.to_bytes(),
                                TrustPolicy(cluster.genesis, "the test's trust"))
    assert report.valid, (report.step, report.reason)


def test_budget_is_per_dataset_across_queriers(cluster: Any) -> None:
    """querier spent 1.0 of 1.5 above; querier-2 cannot spend 1.0 more on the same data."""
    from statledger.nodes.querier import QueryFailed

    spec = QuerySpec.parse({**json.loads((ROOT / "examples" / "dp_mean.json").read_text()),
                            "columns": ["bp"], "bounds": {"bp": [60.0, 140.0]}})
    with _querier(cluster, "querier-2") as q, pytest.raises(
            QueryFailed, match="privacy budget exceeded for dataset diabetes"):
        q.run(spec, datasets="diabetes")


def test_differencing_pair_is_refused(cluster: Any) -> None:
    """`age >= 30` then `age > 30`: the second would give the salary (here: the bmi sum) of
    whoever is exactly 30; every owner holding such a row refuses it."""
    from statledger.nodes.querier import QueryFailed

    rows = _pooled()
    assert np.count_nonzero(rows["age"] == 30) > 0
    base = {"version": 1, "statistic": "sum", "columns": ["bmi"],
            "bounds": {"bmi": [15.0, 50.0], "age": [0.0, 120.0]}, "max_rows": 1000}
    first = QuerySpec.parse({**base, "filters": [{"column": "age", "op": ">=", "value": 30}]})
    second = QuerySpec.parse({**base, "filters": [{"column": "age", "op": ">", "value": 30}]})
    with _querier(cluster) as q:
        q.run(first, datasets="diabetes")
        with pytest.raises(QueryFailed, match="earlier exact query") as info:
            q.run(second, datasets="diabetes")
    msg = str(info.value)
    for n in {int(np.count_nonzero(rows["age"] == 30)), int(np.count_nonzero(rows["age"] > 30))}:
        assert not re.search(rf"\b{n}\b", msg.split("(")[-1])  # no count in the refusal
    # the same selection (every row), released cells one row set apart: histogram bins
    # [0, 30) then [0, 31) -- the second bin of the first is the `age >= 30` rows answered
    # above, so the first is answered; the second is refused; as a DP query it is answered
    hist = {"version": 1, "statistic": "histogram", "columns": ["age"],
            "bounds": {"age": [0.0, 120.0]}, "max_rows": 1000}
    with _querier(cluster, "querier-2") as q:  # colluders: the history is per dataset
        q.run(QuerySpec.parse({**hist, "params": {"bins": [0, 30, 120]}}), datasets="diabetes")
        with pytest.raises(QueryFailed, match="dataset diabetes: .*earlier exact query"):
            q.run(QuerySpec.parse({**hist, "params": {"bins": [0, 31, 120]}}),
                  datasets="diabetes")
        q.run(QuerySpec.parse({**hist, "params": {"bins": [0, 31, 120]},
                               "privacy": {"mechanism": "zcdp", "rho": 0.05}}),
              datasets="diabetes")


def test_over_max_rows_says_so_without_the_count(cluster: Any) -> None:
    from statledger.nodes.querier import QueryFailed

    spec = QuerySpec.parse({"version": 1, "statistic": "count", "max_rows": 50,
                            "min_cell_size": 1})
    with _querier(cluster) as q, pytest.raises(QueryFailed) as info:
        q.run(spec, datasets="diabetes")
    msg = str(info.value)
    assert "has more rows than max_rows; raise max_rows" in msg
    sites = datasets.sites("diabetes")
    for i in range(len(PROVIDERS)):
        n = len(datasets.load("diabetes", site=sites[i])["age"])
        assert str(n) not in msg


def test_cli_run_with_budget(tmp_path: Path) -> None:
    sites = datasets.sites("diabetes")
    files = [str(datasets.path("diabetes", s)) for s in sites[:2]]
    args = [sys.executable, "-m", "statledger", "run", str(ROOT / "examples" / "dp_mean.json"),
            "--data", *files, "--compute", "1", "--json"]
    no_budget = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
    assert no_budget.returncode == 2 and "--budget RHO" in no_budget.stderr
    r = subprocess.run([*args, "--budget", "1"], capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["result"]["dp"]["value_sd"]["n"] < 3
    assert out["result"]["dp"]["privacy"] == {"mechanism": "zcdp", "rho": 1.0}


def test_irls_rounds_are_chained_and_a_forged_beta_is_refused(cluster: Any) -> None:
    """Round k's beta must be round k-1's published beta_next: the honest fit (from zero)
    verifies with the previous round carried in each certificate; a round whose beta is
    forged is refused by the owners (step 8 before answering) and its certificate is
    rejected by the verifier at step 8."""
    from statledger.nodes.demo import TOUR
    from statledger.nodes.querier import QueryFailed, run_rounds
    from statledger.protocol.stats import logistic
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    trust = TrustPolicy(cluster.genesis, "the test's trust")
    item = next(t for t in TOUR if t.name == "logistic_regression")
    spec = QuerySpec.parse(item.spec)
    with _querier(cluster) as q:
        outcomes = run_rounds(q, spec, datasets="breast_cancer")
        assert len(outcomes) >= 2 and outcomes[-1].result.values["converged"] is True
        for o in outcomes[1:]:
            cert_view = verify_certificate(o.certificate.to_bytes(), trust)
            assert cert_view.valid, (cert_view.step, cert_view.reason)
        first = outcomes[0]
        honest = logistic.irls_next_spec(first.spec, first.result, first.query_id)
        assert honest is not None
        obj = honest.to_json_obj()
        obj["params"]["beta"] = [b + 0.5 for b in obj["params"]["beta"]]  # a half-space
        forged = QuerySpec.parse(obj)
        with pytest.raises(QueryFailed, match="forged beta"):
            q.run(forged, datasets="breast_cancer")
        cert = q.certificate(forged.query_id_for("querier"))
    report = verify_certificate(cert.to_bytes(), trust)
    assert not report.valid and report.step == 8 and "forged beta" in (report.reason or "")


def test_exact_answers_follow_the_owner_policy(cluster: Any) -> None:
    """Runs last: site-a's policy becomes a quota of one exact answer per 30 days (it gave
    one on diabetes above), then "deny"; its refusals reach the querier, a DP query is still
    answered."""
    from statledger.nodes.querier import QueryFailed

    path = cluster.base_dir.parent / "policy-site-a.json"  # the fixture's file for site-a
    assert path.is_file()
    exact = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["s5"],
                             "bounds": {"s5": [3.0, 6.5]}, "max_rows": 1000})
    path.write_text(json.dumps({"budget_rho": BUDGET,
                                "exact": {"max": 1, "period_days": 30}}), encoding="utf-8")
    cluster.restart("site-a")
    with _querier(cluster) as q, pytest.raises(
            QueryFailed, match="quota of exact answers is used up"):
        q.run(exact, datasets="diabetes")
    path.write_text(json.dumps({"budget_rho": BUDGET, "exact": "deny"}), encoding="utf-8")
    cluster.restart("site-a")
    other = QuerySpec.parse({**exact.to_json_obj(), "columns": ["mean_radius"],
                             "bounds": {"mean_radius": [5.0, 30.0]}})
    dp = QuerySpec.parse({**exact.to_json_obj(), "privacy": {"mechanism": "zcdp", "rho": 0.25}})
    with _querier(cluster) as q:
        with pytest.raises(QueryFailed, match="answers no exact query"):
            q.run(other, datasets="breast_cancer")
        out = q.run(dp, datasets="diabetes")
    assert out.result.to_dict()["dp"]["privacy"]["rho"] == 0.25
