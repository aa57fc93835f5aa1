"""The end-to-end suite's cluster (tests/integration/test_e2e_*.py and the modules that need
one of their own): 1 ledger, 3 compute nodes, 4 hospitals holding the bundled sites."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Every hospital of :func:`cluster_in` has this zCDP budget per dataset.
E2E_BUDGET_RHO = 1.0


def cluster_in(work: Path) -> Iterator[Any]:
    """A running cluster (1 ledger, 3 compute, 4 hospitals with the bundled sites, policy
    ``budget_rho = E2E_BUDGET_RHO``, queriers ``querier`` and ``querier-2``) in ``work``, set
    up; stopped when the generator closes.  The session's ``e2e_cluster`` fixture
    (conftest.py), or a module's own when its queries must not meet other modules' in the
    owners' histories."""
    from statledger.nodes.demo import provider_datasets
    from statledger.nodes.launcher import Cluster

    policy = work / "policy.json"
    policy.write_text(json.dumps({"budget_rho": E2E_BUDGET_RHO}), encoding="utf-8")
    providers = provider_datasets()
    cluster = Cluster(work / "cluster", n_compute=3, providers=providers,
                      queriers=["querier", "querier-2"], policies={p: policy for p in providers},
                      startup_timeout=120)
    cluster.start_and_set_up()
    try:
        yield cluster
    finally:
        cluster.stop()


def querier_of(cluster: Any) -> Iterator[Any]:
    """The querier of an :func:`cluster_in` cluster with a bounded HTTP timeout (a hung
    party fails the test instead of stalling it)."""
    from statledger.nodes.querier import Querier

    layout = cluster.layout
    with Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                 {p.party_id: p.url for p in layout.compute},
                 {p.party_id: p.url for p in layout.providers},
                 trust=cluster.genesis, timeout=120.0) as q:
        yield q
