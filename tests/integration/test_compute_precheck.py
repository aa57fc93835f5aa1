"""The compute nodes' check before the PET chain, and the providers' datasets read at start.

Issue 16 (fixed per-query overhead): the PET chain runs one compute node after the other,
and each node's first action on a query verifies every submission's range and linking
proofs.  The querier now asks every node but the first to run that check at once
(``POST /v1/queries/{id}/check``, logs nothing), so the checks run side by side instead of
inside the chain.  The adversary: a check must never let a node accept what it would have
refused.  A malicious ledger operator admits a cancelling submission (mallory logs the
negation of hospital-b's ciphertexts under hospital-b's copied proof): the check refuses it
naming step 9 and mallory, every time it is asked (a refusal is never remembered as a pass),
and the PET step, the gate shares and the decryption that follow refuse it too; nothing of
the query is blinded, shared or decrypted.

Providers read their datasets as they start; one that cannot be read does not stop the node
and the query that names it is refused with the reason (never a traceback, never a value).
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

MALICIOUS_LEDGER = """
import sys
from statledger.nodes import ledger_service
ledger_service.LedgerNode._check_vector = lambda self, entry: None
from statledger.nodes.serve import main
sys.exit(main(["--role", "ledger", "--config", sys.argv[1]]))
"""

#: a gated query (min_cell_size 5: the PET chain runs before anything is decrypted)
SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000, "min_cell_size": 5}
NODES = ("compute-1", "compute-2", "compute-3")


def _providers(missing: Path | None = None) -> dict[str, dict[str, str]]:
    sites = datasets.sites("diabetes")
    out = {pid: {"diabetes": str(datasets.path("diabetes", sites[k]))}
           for k, pid in enumerate(["hospital-a", "hospital-b", "mallory"])}
    if missing is not None:  # a provider whose file is not there when it starts
        out["hospital-c"] = {"diabetes": str(missing)}
    return out


def _start(base: Path, *, malicious_ledger: bool) -> Iterator[Cluster]:
    cluster = Cluster(base, n_compute=3, providers=_providers(
        None if malicious_ledger else base.parent / "not-there.csv"),
        queriers=["querier"], startup_timeout=120)
    yield from serve_cluster(cluster, MALICIOUS_LEDGER if malicious_ledger else None)


@pytest.fixture(scope="module")
def evil_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _start(tmp_path_factory.mktemp("evil") / "cluster", malicious_ledger=True)


@pytest.fixture(scope="module")
def honest_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _start(tmp_path_factory.mktemp("honest") / "cluster", malicious_ledger=False)


def _post(cluster: Cluster, node: str, path: str, as_party: str = "querier") -> Any:
    with SignedClient(cluster.url(node), as_party, cluster.signing_key(as_party),
                      target=node, retries=0) as c:
        return c.post(path)


def _status(cluster: Cluster, node: str, path: str, as_party: str = "querier"
            ) -> tuple[int, str]:
    with pytest.raises(RemoteError) as err:
        _post(cluster, node, path, as_party)
    return err.value.status or 0, str(err.value)


def _querier(cluster: Cluster, providers: tuple[str, ...]) -> Querier:
    return Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                   {p: cluster.url(p) for p in NODES}, {p: cluster.url(p) for p in providers},
                   trust=cluster.genesis)


@pytest.fixture(scope="module")
def cancelled(evil_cluster: Cluster) -> tuple[str, str, LedgerClient]:
    """The attack run once: hospital-b contributes, mallory's negation is admitted by the
    operator, the honest querier runs the query (it must fail); the query id and the
    querier's failure message."""
    cluster = evil_cluster
    spec = QuerySpec.parse(SPEC)
    qid = spec.query_id_for("querier")
    ledger = LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                          target="ledger")
    ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                               cluster.signing_key("querier")))
    _post(cluster, "hospital-b", f"/v1/queries/{qid}/contribute")
    (_, sub_b), = parse_entries(ledger.query_entries(qid)).submissions
    ev = sub_b.decode_vector(list(get_statistic(spec.statistic).layout(spec).ranges))
    negated = EncryptedVector(tuple(tuple(-c for c in row) for row in ev.limbs),
                              ev.commitments, ev.proof)
    forged = entries.sign(entries.SubmissionEntry(qid, "mallory", negated.to_bytes().hex()),
                          cluster.signing_key("mallory"))
    with SignedClient(cluster.url("ledger"), "mallory", cluster.signing_key("mallory"),
                      target="ledger") as c:
        c.post("/v1/entries", content=forged.to_bytes())  # the operator lets it in
    with _querier(cluster, ("hospital-a", "hospital-b")) as q, \
            pytest.raises(QueryFailed) as failed:
        q.run(spec, datasets="diabetes")
    return qid, str(failed.value), ledger


def test_the_querier_fails_and_nothing_is_blinded_shared_or_decrypted(
        cancelled: tuple[str, str, LedgerClient]) -> None:
    qid, message, ledger = cancelled
    assert message.startswith("pet:"), message
    assert "mallory" in message and "step 9" in message
    for node in NODES:  # every node was asked (check, then its PET step) and refused
        assert node in message
    view = parse_entries(ledger.query_entries(qid))
    assert view.aggregate is not None  # a + b - b was aggregated by the honest querier
    assert view.pets == [] and view.gates == [] and view.decryptions == []


@pytest.mark.parametrize("node", NODES)
def test_the_check_refuses_every_time_and_the_actions_after_it_too(
        evil_cluster: Cluster, cancelled: tuple[str, str, LedgerClient], node: str) -> None:
    qid = cancelled[0]
    for _ in range(2):  # a refusal is never remembered as a pass
        status, text = _status(evil_cluster, node, f"/v1/queries/{qid}/check")
        assert status == 422 and "step 9" in text and "mallory" in text, text
    for action in ("pet", "gate", "decrypt"):
        status, text = _status(evil_cluster, node, f"/v1/queries/{qid}/{action}")
        assert status in (403, 422), (action, status, text)
    view = parse_entries(cancelled[2].query_entries(qid))
    assert view.pets == [] and view.gates == [] and view.decryptions == []


def test_check_route_rejects_bad_ids_unknown_queries_and_other_roles(
        honest_cluster: Cluster) -> None:
    cluster = honest_cluster
    assert _status(cluster, "compute-1", "/v1/queries/XYZ/check")[0] == 400
    assert _status(cluster, "compute-1", "/v1/queries/" + "ab" * 31 + "a/check")[0] == 400
    assert _status(cluster, "compute-1", "/v1/queries/" + "0" * 64 + "/check")[0] == 404
    # a query on the log without its aggregate: nothing to check yet
    spec = QuerySpec.parse({**SPEC, "min_providers": 3})
    qid = spec.query_id_for("querier")
    with LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                      target="ledger") as ledger:
        ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                   cluster.signing_key("querier")))
    status, text = _status(cluster, "compute-1", f"/v1/queries/{qid}/check")
    assert status == 403 and "no aggregate" in text, text
    # only a querier may ask (a provider may not make nodes spend CPU)
    assert _status(cluster, "compute-1", f"/v1/queries/{qid}/check",
                   as_party="hospital-a")[0] == 403


def test_gated_query_runs_and_a_provider_without_its_file_is_refused_with_the_reason(
        honest_cluster: Cluster) -> None:
    cluster = honest_cluster
    spec = QuerySpec.parse(SPEC)
    with _querier(cluster, ("hospital-a", "hospital-b", "mallory", "hospital-c")) as q:
        out = q.run(spec, datasets="diabetes")
    assert sorted(out.contributors) == ["hospital-a", "hospital-b", "mallory"]
    reason = out.refusals["hospital-c"]
    assert "not-there.csv" in reason and "does not exist" in reason, reason
    assert "Traceback" not in reason
    view = parse_entries(LedgerClient(cluster.url("ledger"), "querier",
                                      cluster.signing_key("querier"), target="ledger")
                         .query_entries(out.query_id))
    assert len(view.pets) == 3 and len(view.decryptions) == 3
    # after the query, a check of it passes (and logs nothing)
    got = _post(cluster, "compute-2", f"/v1/queries/{out.query_id}/check")
    assert got == {"checked": True, "node": "compute-2"}
    log = Path(cluster.layout.parties["hospital-c"].log_path).read_text(encoding="utf-8")
    assert "not loaded at start" in log
