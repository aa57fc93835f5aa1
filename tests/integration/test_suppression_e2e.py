"""Suppression before decryption, end to end through real processes (issue 12).

One person in the bundled diabetes data has ``bmi >= 42`` (site 3).  A crosstab of mean
``target`` by sex over that filter has a one-person cell; with ``min_cell_size = 5`` the cell
and its complement are suppressed.  Played here:

* the honest run: the result shows "suppressed", the certificate verifies, and the person's
  value appears nowhere -- in no decoded entry of the log and not in the certificate's bytes;
  no node logged a share of the withheld ciphertexts (every decryption entry has exactly the
  released ciphertexts' count);
* a malicious querier that logs a release decision freeing the small cell: every compute node
  refuses to decrypt, naming step 12 and the querier, and the query fails;
* a malicious compute node that logs shares of every ciphertext (the withheld sum included):
  the log refuses the entry (409) and it never appears.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest

from statledger.nodes.http import RemoteError
from statledger.nodes.querier import QueryFailed
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import datasets, entries, flow, suppression
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import parse_entries


def _spec(min_cell_size: int = 5) -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": "crosstab", "group_by": ["sex"],
        "categories": {"sex": ["1", "2"]},
        "bounds": {"target": [0, 400], "bmi": [10, 60]},
        "params": {"value": "target"}, "min_cell_size": min_cell_size, "max_rows": 1000,
        "filters": [{"column": "bmi", "op": ">=", "value": 42}],
    })


def _the_person() -> float:
    rows = [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]
    picked = np.concatenate([r["target"][r["bmi"] >= 42] for r in rows])
    assert picked.size == 1  # the premise: one person in the whole federation
    return float(picked[0])


def _numbers(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        return set().union(*(_numbers(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(_numbers(v) for v in obj)) if obj else set()
    if isinstance(obj, bool):
        return set()
    if isinstance(obj, (int, float)):
        return {str(int(obj)) if float(obj).is_integer() else repr(obj)}
    return {obj} if isinstance(obj, str) else set()


@pytest.fixture(scope="module")
def honest(e2e_querier: Any) -> tuple[QuerySpec, Any, Any]:
    spec = _spec()
    outcome = e2e_querier.run(spec, datasets="diabetes")
    rows = e2e_querier.ledger.query_entries(spec.query_id_for("querier"))
    return spec, outcome, rows


def test_the_one_person_cell_is_suppressed_and_verifies(honest: tuple[Any, Any, Any]) -> None:
    spec, outcome, _ = honest
    res = outcome.result.to_dict()
    assert res["suppressed"] == [[True], [True]]
    assert res["means"] == [[None], [None]] and res["counts"] == [[None], [None]]
    assert suppression.gated(spec)


def test_the_persons_value_is_nowhere_on_the_log_or_in_the_certificate(
        honest: tuple[Any, Any, Any]) -> None:
    spec, outcome, rows = honest
    value = _the_person()
    fixed = round(value * spec.scale)
    needles = {str(fixed), str(value), repr(value), str(int(value))}
    view = parse_entries(rows)
    assert view.release is not None and view.decryptions
    for _, data in rows:
        obj = entries.Entry.from_bytes(data).to_json_obj()
        assert not (_numbers(obj) & {str(fixed), repr(value)}), obj.get("kind")
        assert str(fixed) not in json.dumps(obj)
    cert = outcome.certificate.to_bytes()
    assert str(fixed).encode() not in cert
    # the published totals are the released entries' only: counts, no sum
    assert view.result is not None
    assert len(view.result[1].totals) == len(view.release[1].released) == 2
    assert needles.isdisjoint(set(view.result[1].totals))


def test_no_node_shared_a_withheld_ciphertext(honest: tuple[Any, Any, Any]) -> None:
    _, _, rows = honest
    view = parse_entries(rows)
    assert view.release is not None and view.aggregate is not None
    n_all = len(view.aggregate[1].ciphertexts)
    for _, d in view.decryptions:
        assert len(d.shares) == view.release[1].ciphertexts < n_all


def test_a_querier_that_frees_the_small_cell_is_refused_by_every_node(
        e2e_querier: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The querier process is the adversary: its release rule frees every entry.  The
    compute nodes (separate processes, the honest rule) refuse to decrypt."""
    spec = _spec(min_cell_size=6)  # another query id, the same small cell

    def free_everything(s: QuerySpec, gate_totals: Any) -> suppression.Release:
        width = len(suppression.get_statistic(s.statistic).layout(s))
        return suppression.Release(tuple(gate_totals), tuple(range(width)))

    monkeypatch.setattr("statledger.nodes.querier.suppression.decide", free_everything)
    with pytest.raises(QueryFailed) as ei:
        e2e_querier.run(spec, datasets="diabetes")
    msg = str(ei.value)
    assert "step 12" in msg and "querier" in msg and "release" in msg, msg
    view = parse_entries(e2e_querier.ledger.query_entries(spec.query_id_for("querier")))
    assert view.release is not None and not view.decryptions and view.result is None


def test_a_node_that_shares_every_ciphertext_is_refused_by_the_log(
        e2e_cluster: Any, e2e_querier: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An honest run stopped after the release decision; then a compute node logs shares of
    every ciphertext of the aggregate (the withheld sum included): refused at append."""
    spec = _spec(min_cell_size=7)
    real = type(e2e_querier)._threshold_shares

    def stop_before_decrypting(self: Any, qid: str, setup: Any, flat: Any,
                               phase: str = "decrypt") -> Any:
        if phase == "decrypt":
            raise QueryFailed("stopped by the test before decryption")
        return real(self, qid, setup, flat, phase)

    monkeypatch.setattr(type(e2e_querier), "_threshold_shares", stop_before_decrypting)
    with pytest.raises(QueryFailed, match="stopped by the test"):
        e2e_querier.run(spec, datasets="diabetes")
    qid = spec.query_id_for("querier")
    view = parse_entries(e2e_querier.ledger.query_entries(qid))
    assert view.aggregate is not None and view.release is not None and not view.decryptions
    node = view.gates[0][1].node
    cts = view.aggregate[1].decode_ciphertexts()
    x = Scalar(12345)  # the log refuses on the count before any proof is looked at
    sh, proof = flow.make_decryption(x, base_mul(x), cts, flow.decryption_context(qid, node))
    forged = entries.sign(entries.DecryptionEntry(
        qid, node, tuple(s.to_bytes().hex() for s in sh), proof.to_bytes().hex()),
        e2e_cluster.signing_key(node))
    size = int(httpx.get(e2e_cluster.url("ledger") + "/v1/log").json()["size"])
    with pytest.raises(RemoteError) as ei, e2e_cluster.client("ledger", as_party=node) as c:
        c.post("/v1/entries", content=forged.to_bytes())
    assert ei.value.status == 409 and node in str(ei.value), str(ei.value)
    assert "withheld ciphertext" in str(ei.value)
    assert int(httpx.get(e2e_cluster.url("ledger") + "/v1/log").json()["size"]) == size
