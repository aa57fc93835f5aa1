"""A 2-of-3 cluster: the key ceremony on the log, and queries that complete with a node
SIGKILLed, a node that logged invalid decryption shares, or a node that refuses.

Real processes on loopback; the certificate of every query is verified offline under the
consortium's trust file and names the nodes whose shares were combined.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statledger.nodes.demo import provider_datasets
from statledger.nodes.launcher import Cluster
from statledger.nodes.querier import Querier, QueryFailed
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import entries as E
from statledger.protocol import flow
from statledger.protocol.entries import Entry
from statledger.protocol.query import QuerySpec
from statledger.verifier.verify import TrustPolicy, verify_certificate

pytestmark = pytest.mark.slow

COMPUTE = ["compute-1", "compute-2", "compute-3"]


def _spec(min_cell: int) -> QuerySpec:
    # a distinct max_rows per test: a distinct query id (specs are shared by nobody);
    # min_cell_size 1: no PET gate, these tests are about the decryption phase
    return QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["bmi"],
                            "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000 + min_cell,
                            "min_cell_size": 1})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """1 ledger, 3 compute nodes with a 2-of-3 key (witness quorum 1: a checkpoint is
    cosigned with two nodes down), 2 hospitals."""
    work = tmp_path_factory.mktemp("threshold")
    providers = dict(list(provider_datasets().items())[:2])
    policy = work / "policy.json"
    policy.write_text(json.dumps({}), encoding="utf-8")
    cl = Cluster(work / "cluster", n_compute=3, providers=providers, queriers=["querier"],
                 threshold=2, witness_quorum=1, startup_timeout=120,
                 policies={p: policy for p in providers})
    cl.start_and_set_up()
    try:
        yield cl
    finally:
        cl.stop()


def _querier(cl: Cluster, timeout: float = 60.0) -> Querier:
    layout = cl.layout
    return Querier("querier", cl.signing_key("querier"), cl.url("ledger"),
                   {p.party_id: p.url for p in layout.compute},
                   {p.party_id: p.url for p in layout.providers},
                   trust=cl.genesis, timeout=timeout)


def _entries(cl: Cluster) -> list[tuple[int, Entry]]:
    with cl.client("ledger") as c:
        out = c.get("/v1/entries", params={"start": 0})
    return [(int(r["index"]), Entry.from_bytes(base64.b64decode(r["data"]))) for r in out]


def _verified(cl: Cluster, cert: Any) -> None:
    report = verify_certificate(cert.to_bytes(), trust=TrustPolicy(cl.genesis, "test"))
    assert report.valid, report


def test_setup_is_the_ceremony_on_the_log(cluster: Cluster) -> None:
    rows = _entries(cluster)
    kinds = [e.KIND for _, e in rows]
    setup_at = kinds.index("setup")
    dkg = [k for k in kinds[:setup_at] if k.startswith("dkg_")]
    assert dkg.count("dkg_deal") == 3 and dkg.count("dkg_ack") == 3
    assert dkg.count("dkg_key") == 3
    setup = rows[setup_at][1]
    assert isinstance(setup, E.SetupEntry)
    assert setup.threshold == 2 and list(setup.compute) == COMPUTE
    # the collective key is no longer the sum of the registered (transport) keys
    transport = [e.elgamal_point() for _, e in rows if isinstance(e, E.PartyEntry)
                 and e.role == "compute"]
    assert flow.collective_key(transport) != setup.collective_point()


def test_query_completes_with_a_node_sigkilled(cluster: Cluster) -> None:
    cluster.kill("compute-3")
    try:
        with _querier(cluster) as q:
            out = q.run(_spec(7), datasets="diabetes")
        assert out.result.to_dict()["cells"][0]["n"] > 0
        res = [e for _, e in _entries(cluster)
               if isinstance(e, E.ResultEntry) and e.query_id == out.query_id][0]
        assert res.decryptors == ("compute-1", "compute-2")
        _verified(cluster, out.certificate)
    finally:
        cluster.restart("compute-3")


def test_query_fails_clearly_with_fewer_than_t_nodes(cluster: Cluster) -> None:
    cluster.kill("compute-2")
    cluster.kill("compute-3")
    try:
        with _querier(cluster, timeout=20.0) as q, pytest.raises(QueryFailed) as exc:
            q.run(_spec(8), datasets="diabetes")
        assert "1 of the 2" in str(exc.value) or "noise" in str(exc.value)
    finally:
        cluster.restart("compute-2")
        cluster.restart("compute-3")


def _forge_bad_decryption(cluster: Cluster, node: str, query_id: str) -> None:
    """Log, as ``node`` (its identity key), decryption shares made with a key that is not its
    share: a node that decrypts wrongly, or a stolen identity key."""
    rows = _entries(cluster)
    agg = [e for _, e in rows if isinstance(e, E.AggregateEntry) and e.query_id == query_id][0]
    cts = agg.decode_ciphertexts()
    x = Scalar.random()
    shares, proof = flow.make_decryption(x, base_mul(x), cts,
                                         flow.decryption_context(query_id, node))
    bad = E.sign(E.DecryptionEntry(query_id, node, tuple(s.to_bytes().hex() for s in shares),
                                   proof.to_bytes().hex()), cluster.signing_key(node))
    with cluster.client("ledger", as_party=node) as c:
        c.post("/v1/entries", content=bad.to_bytes())


def test_invalid_shares_of_one_node_are_skipped_and_named(cluster: Cluster) -> None:
    """compute-2 logs shares under a wrong key; the query still completes with compute-1 and
    compute-3, whose shares the certificate names; step 12 checks exactly those."""
    spec = _spec(9)
    cluster.kill("compute-2")
    cluster.kill("compute-3")
    try:
        with _querier(cluster, timeout=15.0) as q, pytest.raises(QueryFailed):
            q.run(spec, datasets="diabetes")  # stops at decryption: 1 of 2 shares
        qid = spec.query_id_for("querier")
        _forge_bad_decryption(cluster, "compute-2", qid)
    finally:
        cluster.restart("compute-2")
        cluster.restart("compute-3")
    with _querier(cluster) as q:
        out = q.run(spec, datasets="diabetes")  # resumes from the log
    res = [e for _, e in _entries(cluster)
           if isinstance(e, E.ResultEntry) and e.query_id == out.query_id][0]
    assert res.decryptors == ("compute-1", "compute-3")
    _verified(cluster, out.certificate)


def test_a_certificate_naming_the_invalid_node_is_rejected_at_step_12(cluster: Cluster,
                                                                      tmp_path: Path) -> None:
    """The querier (adversary) publishes a result that names compute-2's invalid shares: the
    verifier refuses at step 12, blaming the querier and naming compute-2."""
    from statledger.proofs.errors import VerificationError
    from statledger.protocol.checks import check_query
    from statledger.protocol.view import parse_entries

    rows = _entries(cluster)
    spec = _spec(9)
    qid = spec.query_id_for("querier")
    view_rows = [(i, e) for i, e in rows
                 if getattr(e, "query_id", None) in (None, qid)]
    res_i, res = [(i, e) for i, e in view_rows if isinstance(e, E.ResultEntry)][0]
    forged = E.sign(E.ResultEntry(res.query_id, res.totals, res.result,
                                  ("compute-1", "compute-2")), cluster.signing_key("querier"))
    data = [(i, forged.to_bytes() if i == res_i else e.to_bytes()) for i, e in view_rows]
    with pytest.raises(VerificationError) as exc:
        check_query(parse_entries(data), pinned=cluster.genesis.genesis.consortium_id)
    assert exc.value.step == "step 12" and exc.value.party == "querier"
    assert "compute-2" in exc.value.reason
