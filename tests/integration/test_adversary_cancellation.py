"""Adversary: a malicious ledger operator admits a provider's cancelling submission.

The attack (real processes on loopback): hospital-b contributes honestly; the admitted
provider ``mallory`` then logs, limb by limb, the *negation* of hospital-b's ciphertexts
with hospital-b's range proof copied.  The proof is bound to (query, hospital-b), so an
honest ledger refuses it (the twin below) -- but this ledger's operator skips its own check.
The honest querier then aggregates every logged submission: a + b - b = hospital-a's vector
alone.  If the compute nodes trusted the ledger's check they would decrypt it and publish
hospital-a's private sums as "the aggregate of 3 providers".

What must happen: every compute node verifies every submission's range and linking proofs
itself before producing any share, refuses at step 9 naming mallory, and nothing of the
query is decrypted (no decryption entry on the log).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forge import serve_cluster

from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.launcher import Cluster
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.querier import Querier, QueryFailed
from statledger.proofs.vector import EncryptedVector
from statledger.protocol import datasets, entries
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries

pytestmark = pytest.mark.slow

#: The ledger operator's code: the real ledger service with its append-time range-proof
#: check removed (everything else -- signatures, roster, state machine -- unchanged).
MALICIOUS_LEDGER = """
import sys
from statledger.nodes import ledger_service
ledger_service.LedgerNode._check_vector = lambda self, entry: None
from statledger.nodes.serve import main
sys.exit(main(["--role", "ledger", "--config", sys.argv[1]]))
"""

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000,
        "min_cell_size": 1}  # no PET gate: the nodes' check before decryption is the subject


def _providers() -> dict[str, dict[str, str]]:
    sites = datasets.sites("diabetes")
    return {pid: {"diabetes": str(datasets.path("diabetes", sites[k]))}
            for k, pid in enumerate(["hospital-a", "hospital-b", "mallory"])}


def _start(base: Path, *, malicious_ledger: bool) -> Iterator[Cluster]:
    cluster = Cluster(base, n_compute=3, providers=_providers(), queriers=["querier"],
                      startup_timeout=120)
    yield from serve_cluster(cluster, MALICIOUS_LEDGER if malicious_ledger else None)


@pytest.fixture(scope="module")
def evil_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _start(tmp_path_factory.mktemp("evil") / "cluster", malicious_ledger=True)


@pytest.fixture(scope="module")
def honest_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _start(tmp_path_factory.mktemp("honest") / "cluster", malicious_ledger=False)


def _cancelling_submission(cluster: Cluster, spec: QuerySpec) -> tuple[LedgerClient, Any]:
    """Log the query, let hospital-b contribute, forge mallory's negation of it."""
    qid = spec.query_id_for("querier")
    ledger = LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                          target="ledger")
    ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                               cluster.signing_key("querier")))
    with SignedClient(cluster.url("hospital-b"), "querier",
                      cluster.signing_key("querier"), target="hospital-b") as c:
        c.post(f"/v1/queries/{qid}/contribute", json={"dataset": "diabetes"})
    view = parse_entries(ledger.query_entries(qid))
    (_, sub_b), = view.submissions
    ranges = list(get_statistic(spec.statistic).layout(spec).ranges)
    ev = sub_b.decode_vector(ranges)
    negated = EncryptedVector(tuple(tuple(-c for c in row) for row in ev.limbs),
                              ev.commitments, ev.proof)
    forged = entries.sign(entries.SubmissionEntry(qid, "mallory", negated.to_bytes().hex()),
                          cluster.signing_key("mallory"))
    return ledger, forged


def test_compute_nodes_refuse_a_cancelling_submission(evil_cluster: Cluster) -> None:
    cluster = evil_cluster
    spec = QuerySpec.parse(SPEC)
    qid = spec.query_id_for("querier")
    ledger, forged = _cancelling_submission(cluster, spec)
    with SignedClient(cluster.url("ledger"), "mallory", cluster.signing_key("mallory"),
                      target="ledger") as c:
        c.post("/v1/entries", content=forged.to_bytes())  # the operator lets it in
    querier = Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                      {p: cluster.url(p) for p in ("compute-1", "compute-2", "compute-3")},
                      {p: cluster.url(p) for p in ("hospital-a", "hospital-b")},
                      trust=cluster.genesis)
    with querier, pytest.raises(QueryFailed) as failed:
        querier.run(spec, datasets="diabetes")
    message = str(failed.value)
    assert message.startswith("decryption:"), message
    for node in ("compute-1", "compute-2", "compute-3"):
        assert node in message
    assert "step 9" in message and "mallory" in message
    view = parse_entries(ledger.query_entries(qid))
    assert {s.provider for _, s in view.submissions} == {"hospital-a", "hospital-b", "mallory"}
    assert view.aggregate is not None  # the honest querier did aggregate a + b - b
    assert view.decryptions == []  # ... and no node decrypted hospital-a's vector
    # The refusal is in the node's own log, naming the step and the culprit.
    node_log = Path(cluster.layout.parties["compute-1"].log_path).read_text(encoding="utf-8")
    assert "refused to decrypt query" in node_log and "mallory" in node_log
    ledger.close()


def test_honest_ledger_refuses_the_copied_proof(honest_cluster: Cluster) -> None:
    # The reject twin at the ledger: the same forged entry is refused at append (422),
    # naming mallory -- so only a malicious operator can put it on the log.
    cluster = honest_cluster
    spec = QuerySpec.parse(SPEC)
    ledger, forged = _cancelling_submission(cluster, spec)
    with SignedClient(cluster.url("ledger"), "mallory", cluster.signing_key("mallory"),
                      target="ledger") as c, \
            pytest.raises(RemoteError) as refused:
        c.post("/v1/entries", content=forged.to_bytes())
    assert refused.value.status == 422
    assert "mallory" in str(refused.value)
    view = parse_entries(ledger.query_entries(spec.query_id_for("querier")))
    assert [s.provider for _, s in view.submissions] == ["hospital-b"]
    ledger.close()
