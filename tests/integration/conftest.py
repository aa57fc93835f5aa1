"""Shared session fixtures of the integration tests.

Engineers ADD fixtures here; never rewrite someone else's.  Each fixture says who uses it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e
import pytest

# ---------------------------------------------------------------------------------------
# verifier test suite (tests/integration/test_verifier_*.py)
# ---------------------------------------------------------------------------------------

#: The queries the verifier suite runs once on one real cluster.  ``mean_other`` has the same
#: public layout as ``mean`` (only ``min_providers`` differs, so another query id): the
#: replay tests move a submission from one to the other.  Both use ``min_cell_size`` 1, so
#: they decrypt in one phase (no PET gate: tests/integration/forge.py re-derives the
#: decryption of a forged aggregate, not a PET chain); ``crosstab`` is the gated query.
VERIFIER_QUERIES: dict[str, tuple[str, dict[str, Any]]] = {
    "mean": ("diabetes", {
        "version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000, "min_cell_size": 1,
    }),
    "mean_other": ("diabetes", {
        "version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000, "min_cell_size": 1,
        "min_providers": 3,
    }),
    "crosstab": ("waltons", {
        "version": 1, "statistic": "crosstab", "group_by": ["group"],
        "categories": {"group": ["control", "miR-137"]},
        "bounds": {"time": [0.0, 80.0]}, "params": {"value": "time"}, "min_cell_size": 5,
        "max_rows": 1000,
    }),
    "dp_sum": ("diabetes", {
        "version": 1, "statistic": "sum", "columns": ["bmi"], "bounds": {"bmi": [15, 50]},
        "privacy": {"mechanism": "zcdp", "rho": 1.0}, "max_rows": 1000,
    }),
}


@dataclass
class VerifierRun:
    """What one real cluster run leaves behind for the verifier tests.

    ``base_dir`` keeps every party's keys (``<party>/identity.key``, compute nodes'
    ``elgamal.key``) for :mod:`tests.integration.forge`; ``ledger_db`` is a consistent
    snapshot of the ledger's SQLite file taken after the last query.
    """

    base_dir: Path
    origin: str
    certificates: dict[str, bytes] = field(default_factory=dict)
    query_ids: dict[str, str] = field(default_factory=dict)
    ledger_db: Path | None = None

    def cert(self, name: str) -> bytes:
        return self.certificates[name]


@pytest.fixture(scope="session")
def verifier_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerifierRun]:
    """ONE cluster (1 ledger, 3 compute, 4 hospitals, 1 querier) for the whole session: runs
    :data:`VERIFIER_QUERIES`, keeps the certificates, snapshots the ledger, stops the cluster.

    Used by tests/integration/test_verifier_*.py.
    """
    from statledger.nodes.demo import provider_datasets, querier_for
    from statledger.nodes.launcher import Cluster
    from statledger.protocol.query import QuerySpec

    work = tmp_path_factory.mktemp("verifier")
    base = work / "cluster"
    policy = work / "policy.json"
    policy.write_text(json.dumps({"budget_rho": 100.0}), encoding="utf-8")
    providers = provider_datasets()
    cluster = Cluster(base, n_compute=3, providers=providers, queriers=["querier"],
                      policies={p: policy for p in providers}, startup_timeout=120)
    run = VerifierRun(base_dir=cluster.base_dir, origin=cluster.layout.origin)
    cluster.start_and_set_up()
    try:
        with querier_for(cluster) as q:
            for name, (dataset, spec) in VERIFIER_QUERIES.items():
                out = q.run(QuerySpec.parse(spec), datasets=dataset)
                run.certificates[name] = out.certificate.to_bytes()
                run.query_ids[name] = out.query_id
        snapshot = work / "ledger-snapshot.sqlite"
        src = sqlite3.connect(f"file:{base / 'ledger' / 'ledger.sqlite'}?mode=ro", uri=True)
        dst = sqlite3.connect(snapshot)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        run.ledger_db = snapshot
    finally:
        cluster.stop()
    yield run


# ---------------------------------------------------------------------------------------
# end-to-end and failure suite (tests/integration/test_e2e_*.py)
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """ONE running cluster (``e2e.cluster_in``) for the whole session.  Tests that kill
    or restart a party must leave it running again.

    Used by tests/integration/test_e2e_*.py.
    """
    yield from e2e.cluster_in(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="session")
def e2e_querier(e2e_cluster: Any) -> Iterator[Any]:
    """The querier of :func:`e2e_cluster` (``e2e.querier_of``).  Used by
    tests/integration/test_e2e_*.py."""
    yield from e2e.querier_of(e2e_cluster)
