"""cox_regression end to end on real processes: lifelines' rossi split over 4 owners
(examples/cox_regression.json with three of its covariates), the Newton rounds run to
convergence by the querier's run_rounds (each round its own query, chained to the previous
one), every round's certificate verifies offline, the fit equals statsmodels PHReg (Breslow)
on the pooled rows grouped on the example's grid, and a round whose beta is forged is
refused by the owners (step 8) and its certificate rejected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from statsmodels.duration.hazard_regression import PHReg

from statledger.protocol import datasets
from statledger.protocol.query import QuerySpec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cox_regression.json"
PROVIDERS = ("site-1", "site-2", "site-3", "site-4")
#: three of the example's seven covariates: a third of the entries (the shared 2-core
#: machine; bench/bench_cox.py runs the whole example)
COVS = ["fin", "age", "prio"]


def _example(covs: list[str]) -> QuerySpec:
    obj = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    keep = [obj["params"]["time"], obj["params"]["event"], *covs]
    obj["columns"] = keep
    obj["bounds"] = {c: obj["bounds"][c] for c in keep}
    obj["params"]["covariates"] = covs
    return QuerySpec.parse(obj)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from statledger.nodes.launcher import Cluster

    work = tmp_path_factory.mktemp("cox")
    sites = datasets.sites("rossi")
    providers = {p: {"rossi": str(datasets.path("rossi", sites[i]))}
                 for i, p in enumerate(PROVIDERS)}
    c = Cluster(work / "cluster", n_compute=2, providers=providers, startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def _querier(cluster: Any) -> Any:
    from statledger.nodes.querier import Querier

    layout = cluster.layout
    return Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                   {p.party_id: p.url for p in layout.compute},
                   {p.party_id: p.url for p in layout.providers},
                   trust=cluster.genesis, timeout=300.0)


def test_cox_rounds_converge_verify_and_refuse_a_forged_beta(cluster: Any) -> None:
    from statledger.nodes.querier import QueryFailed, run_rounds
    from statledger.protocol.stats.cox import cox_next_spec
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    trust = TrustPolicy(cluster.genesis, "the test's trust")
    spec = _example(COVS)
    with _querier(cluster) as q:
        outcomes = run_rounds(q, spec, datasets="rossi")
        final = outcomes[-1].result.values
        assert 3 <= len(outcomes) <= 8 and final["converged"] is True
        assert all(sorted(o.contributors) == list(PROVIDERS) for o in outcomes)
        for i, o in enumerate(outcomes):
            assert o.spec.params["round"] == i
            report = verify_certificate(o.certificate.to_bytes(), trust)
            assert report.valid, (i, report.step, report.reason)
        # the chain: round k's beta is round k-1's published beta_next
        for prev, cur in zip(outcomes, outcomes[1:], strict=False):
            assert cur.spec.params["previous"] == prev.query_id
            assert cur.spec.params["beta"] == prev.result.values["beta_next"]
        # a forged beta for round 1: the owners refuse it before answering
        first = outcomes[0]
        honest = cox_next_spec(first.spec, first.result, first.query_id)
        assert honest is not None
        obj = honest.to_json_obj()
        obj["params"]["beta"] = [b + 0.25 for b in obj["params"]["beta"]]
        forged = QuerySpec.parse(obj)
        with pytest.raises(QueryFailed, match="forged beta"):
            q.run(forged, datasets="rossi")
        cert = q.certificate(forged.query_id_for("querier"))
    report = verify_certificate(cert.to_bytes(), trust)
    assert not report.valid and report.step == 8 and "forged beta" in (report.reason or "")

    # the same fit as statsmodels on the pooled rows, times grouped on the example's grid
    rows = datasets.load("rossi")
    grid = np.asarray(spec.params["times"], dtype=float)
    week = grid[np.searchsorted(grid, rows["week"], side="left")]
    covs = spec.params["covariates"]
    m = PHReg(week, np.column_stack([rows[c] for c in covs]), status=rows["arrest"],
              ties="breslow").fit()
    np.testing.assert_allclose(final["coef"], m.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(final["std_err"], m.bse, rtol=0, atol=1e-6)
    assert final["n"] == len(week) and final["events"] == int(rows["arrest"].sum())


def test_cli_run_fits_cox_to_convergence_and_verify_accepts_it(tmp_path: Path) -> None:
    """`statledger run` on the owners' CSV files runs every round (one certificate per
    round) and `statledger verify` accepts the final one; a flipped byte is refused."""
    import subprocess
    import sys

    query = tmp_path / "cox.json"
    query.write_text(json.dumps(_example(["fin", "prio"]).to_json_obj()), encoding="utf-8")
    files = [str(datasets.path("rossi", s)) for s in datasets.sites("rossi")]
    cert = tmp_path / "cox.cert"
    r = subprocess.run([sys.executable, "-m", "statledger", "run", str(query), "--data", *files,
                        "--compute", "1", "--out", str(cert), "--json"],
                       capture_output=True, text=True, timeout=1500, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["statistic"] == "cox_regression" and out["rounds"] >= 3
    assert out["result"]["converged"] is True
    assert len(out["certificates"]) == out["rounds"] + 1  # each round + the final copy
    ok = subprocess.run([sys.executable, "-m", "statledger", "verify", str(cert)],
                        capture_output=True, text=True, timeout=600, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    raw = bytearray(cert.read_bytes())
    raw[len(raw) // 2] ^= 1
    bad = tmp_path / "bad.cert"
    bad.write_bytes(bytes(raw))
    no = subprocess.run([sys.executable, "-m", "statledger", "verify", str(bad)],
                        capture_output=True, text=True, timeout=600, check=False)
    assert no.returncode != 0
