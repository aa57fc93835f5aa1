"""Suppression before decryption, end to end through real processes (issue 12).

One person in the bundled diabetes data has ``bmi >= 42`` (site 3).  A crosstab of mean
``target`` by sex over that filter has a one-person cell; with ``min_cell_size = 5`` the cell
and its complement are suppressed.  Played here:

* the honest run: the blinded shuffled PET finds the cell small (its complement is the other
  cell), the release decision withholds every entry, nothing is decrypted, and the person's
  value and count appear nowhere on the log; with both cells large the PET finds no zero and
  the cells decrypt as before (counts and means as numpy's);
* a malicious querier that logs a release decision freeing the small cell: every compute node
  refuses to decrypt, naming step 12 and the querier, and the query fails;
* a malicious compute node that logs shares of every ciphertext (the withheld sum included):
  the log refuses the entry (409) and it never appears;
* a malicious compute node that logs a PET step computed on other inputs: the next node
  refuses to add its step, naming it at step 12, and so does the querier.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import e2e
import httpx
import numpy as np
import pytest

from statledger.nodes.http import RemoteError
from statledger.nodes.querier import QueryFailed
from statledger.proofs.elgamal import encrypt
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import datasets, entries, flow, pet, suppression
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import parse_entries


# This module's own cluster (the same parties as conftest's session-wide ``e2e_cluster``):
# its one-person cells and the session cluster's earlier exact answers on diabetes (the
# presence test's histogram has the same one-person bin; its bin [30, 42) is this module's
# `bmi >= 30` selection minus that person) are differencing pairs, which every owner's
# history now refuses (protocol/history.py, per released cell).
@pytest.fixture(scope="module")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from e2e.cluster_in(tmp_path_factory.mktemp("suppression"))


@pytest.fixture(scope="module")
def e2e_querier(e2e_cluster: Any) -> Iterator[Any]:
    yield from e2e.querier_of(e2e_cluster)


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
    """The one-person cell is small, the other cell is empty, so small too: every entry is
    withheld, nothing is decrypted, and the (verified) result says "suppressed"."""
    spec = _spec()
    outcome = e2e_querier.run(spec, datasets="diabetes")
    rows = e2e_querier.ledger.query_entries(spec.query_id_for("querier"))
    return spec, outcome, rows


def test_the_one_person_cell_is_suppressed_by_the_pet(honest: tuple[Any, Any, Any]) -> None:
    spec, outcome, rows = honest
    assert suppression.gated(spec)
    res = outcome.result.to_dict()
    assert res["suppressed"] == [[True], [True]]
    assert res["means"] == [[None], [None]] and res["counts"] == [[None], [None]]
    view = parse_entries(rows)
    assert view.release is not None
    rel = view.release[1]
    # what the gate reveals: one bit per cell -- the one-person cell and the empty one
    # (nobody else has bmi >= 42) are both "small", indistinguishable
    assert rel.small_bits() == [True, True]
    assert rel.released == () and rel.ciphertexts == 0
    assert len(view.pets) >= 2 and len({e.node for _, e in view.pets}) == len(view.pets)
    assert not view.decryptions and view.result is not None
    assert view.result[1].totals == () and view.result[1].decryptors == ()


def test_the_persons_value_and_count_are_nowhere_on_the_log_or_in_the_certificate(
        honest: tuple[Any, Any, Any]) -> None:
    spec, outcome, rows = honest
    value = _the_person()
    fixed = round(value * spec.scale)
    view = parse_entries(rows)
    assert view.release is not None
    for _, data in rows:
        obj = entries.Entry.from_bytes(data).to_json_obj()
        assert not (_numbers(obj) & {str(fixed), repr(value)}), obj.get("kind")
        assert str(fixed) not in json.dumps(obj)
    # no entry publishes a count: no totals at all, the release carries bits only
    assert set(view.release[1].small) <= {0, 1}
    cert = outcome.certificate.to_bytes()
    assert str(fixed).encode() not in cert


def test_released_cells_decrypt_as_before(e2e_querier: Any) -> None:
    """Both cells large: the PET finds no zero, everything is decrypted and verifies; the
    counts and means are numpy's."""
    spec = QuerySpec.parse({**_spec().to_json_obj(),
                            "filters": [{"column": "bmi", "op": ">=", "value": 30}]})
    outcome = e2e_querier.run(spec, datasets="diabetes")
    res = outcome.result.to_dict()
    rows = [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]
    allr = {k: np.concatenate([r[k] for r in rows]) for k in ("sex", "bmi", "target")}
    for i, sx in enumerate((1.0, 2.0)):
        m = (allr["sex"] == sx) & (allr["bmi"] >= 30)
        assert res["counts"][i][0] == int(m.sum()) >= 5
        assert res["means"][i][0] == pytest.approx(float(allr["target"][m].mean()), rel=1e-6)
    view = parse_entries(e2e_querier.ledger.query_entries(spec.query_id_for("querier")))
    assert view.release is not None and view.release[1].small_bits() == [False, False]
    assert len(view.pets) >= 2 and view.decryptions


def test_a_querier_that_frees_the_small_cell_is_refused_by_every_node(
        e2e_querier: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The querier process is the adversary: its release rule frees every entry.  The
    compute nodes (separate processes, the honest rule) refuse to decrypt."""
    spec = _spec(min_cell_size=6)  # another query id, the same small cell

    def free_everything(s: QuerySpec, small: Any) -> suppression.Release:
        width = len(suppression.get_statistic(s.statistic).layout(s))
        return suppression.Release(tuple(small), tuple(range(width)))

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
    real = type(e2e_querier)._release

    def stop_after_the_release(self: Any, *args: Any) -> Any:
        real(self, *args)
        raise QueryFailed("stopped by the test before decryption")

    monkeypatch.setattr(type(e2e_querier), "_release", stop_after_the_release)
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


def test_a_node_whose_pet_step_is_forged_is_named_by_the_next_node(
        e2e_cluster: Any, e2e_querier: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """compute-1 logs a PET step computed on other inputs (candidates of ``Enc(0)``: every
    cell would come out "small"); compute-2, asked for its step, checks the chain itself and
    refuses, naming compute-1 at step 12; the querier's run fails naming it too."""
    spec = _spec(min_cell_size=8)
    qid = spec.query_id_for("querier")

    def stop(self: Any, *args: Any) -> Any:
        raise QueryFailed("stopped by the test before the PET chain")

    monkeypatch.setattr(type(e2e_querier), "_pet_chain", stop)
    with pytest.raises(QueryFailed, match="stopped by the test"):
        e2e_querier.run(spec, datasets="diabetes")
    monkeypatch.undo()
    view = e2e_querier.follower.query_view(qid)
    assert view.aggregate is not None and not view.pets and view.setup is not None
    X = view.setup.collective_point()
    node = "compute-1"
    batches = [pet.blind_and_shuffle(X, pet.candidates(encrypt(X, 0), spec.min_cell_size),
                                     pet.pet_context(qid, node, c)) for c in range(2)]
    forged = entries.sign(entries.PetEntry.of(qid, node, batches),
                          e2e_cluster.signing_key(node))
    with e2e_cluster.client("ledger", as_party=node) as c:
        c.post("/v1/entries", content=forged.to_bytes())  # well formed: the log takes it
    with pytest.raises(RemoteError) as ei, \
            e2e_cluster.client("compute-2", as_party="querier") as c:
        c.post(f"/v1/queries/{qid}/pet")
    assert "step 12" in str(ei.value) and node in str(ei.value), str(ei.value)
    assert "PET blinding" in str(ei.value)
    with pytest.raises(QueryFailed) as qi:
        e2e_querier.run(spec, datasets="diabetes")
    assert "step 12" in str(qi.value) and node in str(qi.value), str(qi.value)
    after = parse_entries(e2e_querier.ledger.query_entries(qid))
    assert [e.node for _, e in after.pets] == [node] and not after.gates


def test_a_mean_over_the_one_person_releases_nothing_end_to_end(e2e_querier: Any) -> None:
    """mean/sum/variance are gated by their ``n`` too (protocol/stats/basic.py): the mean of
    ``target`` over the one person with ``bmi >= 42`` decrypts nothing -- neither the count
    nor the sum has a share on the log -- and a mean over ``bmi >= 30`` decrypts as before."""
    base = {"version": 1, "statistic": "mean", "columns": ["target"],
            "bounds": {"target": [0, 400], "bmi": [10, 60]}, "min_cell_size": 5,
            "max_rows": 1000}
    spec = QuerySpec.parse({**base, "filters": [{"column": "bmi", "op": ">=", "value": 42}]})
    assert suppression.gate_entries(spec) == [0]
    outcome = e2e_querier.run(spec, datasets="diabetes")
    res = outcome.result.to_dict()
    assert res["n"] is None and res["value"] is None and res["cells"][0]["suppressed"]
    rows = e2e_querier.ledger.query_entries(spec.query_id_for("querier"))
    view = parse_entries(rows)
    assert view.release is not None and view.release[1].small_bits() == [True]
    assert view.release[1].released == () and not view.decryptions
    assert view.result is not None and view.result[1].totals == ()
    fixed = round(_the_person() * spec.scale)
    for _, data in rows:
        obj = entries.Entry.from_bytes(data).to_json_obj()
        assert str(fixed) not in json.dumps(obj), obj.get("kind")
    assert str(fixed).encode() not in outcome.certificate.to_bytes()

    large = QuerySpec.parse({**base, "filters": [{"column": "bmi", "op": ">=", "value": 30}]})
    got = e2e_querier.run(large, datasets="diabetes").result.to_dict()
    parts = [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]
    picked = np.concatenate([r["target"][r["bmi"] >= 30] for r in parts])
    assert got["n"] == picked.size >= 5
    assert got["value"] == pytest.approx(float(picked.mean()), rel=1e-6)
    view = parse_entries(e2e_querier.ledger.query_entries(large.query_id_for("querier")))
    assert view.release is not None and view.release[1].small_bits() == [False]
    assert view.decryptions
