"""The ledger enforces each query's state machine at append time (ledger_service check 5c).

Real processes: a completed query, then out-of-order and duplicate entries signed with the
real parties' keys are refused with 409, and the log does not grow.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from statledger.nodes.http import RemoteError
from statledger.proofs import elgamal
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries, flow
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import parse_entries

SPEC = {"version": 1, "statistic": "count", "columns": [], "min_cell_size": 1,
        "max_rows": 1000, "bounds": {"age": [0.0, 120.0]},
        "filters": [{"column": "age", "op": ">=", "value": 50}]}


def _size(cluster: Any) -> int:
    return int(httpx.get(cluster.url("ledger") + "/v1/log").json()["size"])


def _post_as(cluster: Any, party: str, entry: Any) -> int:
    signed = entries.sign(entry, cluster.signing_key(party))
    with cluster.client("ledger", as_party=party) as c:
        return int(c.post("/v1/entries", content=signed.to_bytes())["index"])


@pytest.fixture(scope="module")
def done(e2e_cluster: Any, e2e_querier: Any) -> tuple[QuerySpec, Any]:
    spec = QuerySpec.parse(SPEC)
    e2e_querier.run(spec, datasets="diabetes")
    view = parse_entries(e2e_querier.ledger.query_entries(_qid(spec)))
    return spec, view


def _qid(spec: QuerySpec) -> str:
    return spec.query_id_for("querier")


def _assert_refused(cluster: Any, party: str, entry: Any, status: int, match: str) -> None:
    before = _size(cluster)
    with pytest.raises(RemoteError) as ei:
        _post_as(cluster, party, entry)
    assert ei.value.status == status, str(ei.value)
    assert match in str(ei.value)
    assert _size(cluster) == before


def test_accepts_the_real_run(done: tuple[QuerySpec, Any]) -> None:
    _, view = done
    assert view.result is not None and len(view.endorsements) == len(view.submissions)


def test_second_submission_after_aggregate_refused(e2e_cluster: Any,
                                                    done: tuple[QuerySpec, Any]) -> None:
    spec, view = done
    provider = view.submissions[0][1].provider
    X = view.setup.collective_point()
    from statledger.protocol.stats import get

    ranges = list(get(spec.statistic).layout(spec).ranges)
    ev = encrypt_vector_with_proof(X, [0] * len(ranges), ranges,
                                   flow.submission_context(_qid(spec), provider))
    _assert_refused(e2e_cluster, provider,
                    entries.SubmissionEntry(_qid(spec), provider, ev.to_bytes().hex()),
                    409, provider)


def test_duplicate_decryption_refused(e2e_cluster: Any, done: tuple[QuerySpec, Any]) -> None:
    spec, view = done
    node = view.decryptions[0][1].node
    cts = view.aggregate[1].decode_ciphertexts()
    x = Scalar.random()
    shares, proof = flow.make_decryption(x, base_mul(x), cts,
                                         flow.decryption_context(_qid(spec), node))
    _assert_refused(e2e_cluster, node, entries.DecryptionEntry(
        _qid(spec), node, tuple(s.to_bytes().hex() for s in shares),
        proof.to_bytes().hex()), 409, node)


def test_duplicate_endorsement_refused(e2e_cluster: Any, done: tuple[QuerySpec, Any]) -> None:
    spec, view = done
    provider = view.endorsements[0][1].provider
    _assert_refused(e2e_cluster, provider, entries.EndorsementEntry(
        _qid(spec), provider, "00" * 32), 409, provider)


def test_decryption_before_aggregate_refused(e2e_cluster: Any, e2e_querier: Any) -> None:
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 2})
    e2e_querier.ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                           e2e_cluster.signing_key("querier")))
    x = Scalar.random()
    cts = [elgamal.encrypt(base_mul(x), 0)]
    shares, proof = flow.make_decryption(x, base_mul(x), cts,
                                         flow.decryption_context(_qid(spec), "compute-1"))
    _assert_refused(e2e_cluster, "compute-1", entries.DecryptionEntry(
        _qid(spec), "compute-1", tuple(s.to_bytes().hex() for s in shares),
        proof.to_bytes().hex()), 409, "compute-1")
