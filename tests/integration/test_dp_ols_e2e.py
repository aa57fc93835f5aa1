"""DP linear regression on real processes (issue 12 item 2): the owners encode with the
split chosen for the coefficients, the noise is calibrated for it, the querier decodes with
the ridge, and the verifier recomputes all of it (steps 9, 10 and 14: the weights, the
noise parameters, the ridged decode, bit for bit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from statledger.protocol import calibration, datasets
from statledger.protocol.query import QuerySpec

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ("site-a", "site-b")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from statledger.nodes.launcher import Cluster

    work = tmp_path_factory.mktemp("dpols")
    policies = {p: work / f"policy-{p}.json" for p in PROVIDERS}
    for path in policies.values():
        path.write_text(json.dumps({"budget_rho": 2.0}), encoding="utf-8")
    sites = datasets.sites("diabetes")
    providers = {p: {"diabetes": str(datasets.path("diabetes", sites[i]))}
                 for i, p in enumerate(PROVIDERS)}
    c = Cluster(work / "cluster", n_compute=2, providers=providers, queriers=["querier"],
                policies=policies, startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def test_dp_ols_uses_the_split_and_the_ridge_and_verifies(cluster: Any) -> None:
    from statledger.nodes.querier import Querier
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    obj = json.loads((ROOT / "examples" / "linear_regression.json").read_text())
    spec = QuerySpec.parse({**obj, "privacy": {"mechanism": "zcdp", "rho": 1.0}})
    layout = cluster.layout
    with Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                 {p.party_id: p.url for p in layout.compute},
                 {p.party_id: p.url for p in layout.providers},
                 trust=cluster.genesis, timeout=300.0) as q:
        out = q.run(spec, datasets="diabetes")
    res = out.result.to_dict()
    dp = res["dp"]
    assert dp["weights"] == calibration.weights(spec) and min(dp["weights"]) >= 16
    assert any("ridge" in note for note in out.result.notes)
    # the released coefficients lie within 6 reported sd of statsmodels on the pooled rows
    sites = datasets.sites("diabetes")
    parts = [datasets.load("diabetes", site=sites[i]) for i in range(len(PROVIDERS))]
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    feats = spec.params["features"]
    x = np.column_stack([np.clip(rows[f], *spec.bounds[f]) for f in feats])
    y = np.clip(rows["target"], *spec.bounds["target"])
    ref = sm.OLS(y, sm.add_constant(x)).fit().params
    for i, b in enumerate(ref):
        assert abs(res["coef"][i] - b) <= 6 * dp["value_sd"][f"coef[{i}]"], i
    policy = TrustPolicy(cluster.genesis, "the test's trust")
    report = verify_certificate(out.certificate.to_bytes(), policy)
    assert report.valid, (report.step, report.reason)
