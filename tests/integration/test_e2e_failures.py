"""Failures on real processes (shared cluster :func:`e2e_cluster`):

* a compute node killed mid-query (after the aggregate, before its decryption share): the
  query fails naming the node (the other compute nodes refuse too: the dead node's missing
  cosignature leaves the aggregate outside any witnessed checkpoint), nothing half-written
  is on the log, and after a restart the
  same query id resumes and completes without any owner spending its privacy budget twice;
* a provider's out-of-range value or bad range proof: refused by the ledger at submission,
  naming the provider (its honest twin is accepted);
* a compute node's wrong decryption share: caught by the querier and by verification step
  12, naming the node;
* forged DP noise entries (commitments that are not bits or are another's, coin shares
  before the set is complete or with a wrong DLEQ, a late commitment): refused at append.
"""

from __future__ import annotations

import json
import re
import sqlite3
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from statledger.nodes.demo import PROVIDERS
from statledger.nodes.http import RemoteError
from statledger.nodes.keys import load_elgamal_share
from statledger.nodes.querier import QueryFailed
from statledger.proofs.errors import VerificationError
from statledger.proofs.group import G, Scalar, base_mul
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries, flow, noise
from statledger.protocol.checks import check_query
from statledger.protocol.dp import BudgetLedger
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries
from statledger.verifier.verify import verify_certificate


def _spec(**extra: Any) -> QuerySpec:
    obj: dict[str, Any] = {"version": 1, "statistic": "mean", "columns": ["bmi"],
                           "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}
    obj.update(extra)
    return QuerySpec.parse(obj)


def _budget(cluster: Any, provider: str, dataset: str) -> BudgetLedger:
    db = Path(cluster.layout.parties[provider].data_dir) / "state.sqlite"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = con.execute("SELECT state FROM budgets WHERE dataset=?", (dataset,)).fetchone()
    finally:
        con.close()
    assert row is not None, f"{provider} has no budget state for {dataset}"
    return BudgetLedger.from_dict(json.loads(row[0]))


@pytest.fixture(scope="module")
def querier(e2e_querier: Any) -> Any:
    return e2e_querier


# -- a compute node killed mid-query -------------------------------------------------------

def test_compute_node_killed_mid_query_then_resumed(e2e_cluster: Any, querier: Any) -> None:
    rho = Fraction(3, 5)
    spec = QuerySpec.parse({
        "version": 1, "statistic": "sum", "columns": ["bmi"], "bounds": {"bmi": [15, 50]},
        "privacy": {"mechanism": "zcdp", "rho": float(rho)}, "max_rows": 1000})
    qid = spec.query_id_for("querier")
    killed: list[str] = []

    def crash_before_decryption(step: str) -> None:
        if step == "decryption" and not killed:
            e2e_cluster.kill("compute-2")
            killed.append("compute-2")

    # hospital-d is down for the first attempt: the aggregate is of the other three
    e2e_cluster.kill("hospital-d")
    try:
        with pytest.raises(QueryFailed, match=r"^decryption: .*compute-2") as failed:
            querier.run(spec, datasets="diabetes", progress=crash_before_decryption)
        assert killed == ["compute-2"]
        # compute-2 is the cause: it is down.  compute-1 and compute-3 act only on entries
        # in a checkpoint cosigned by the witness quorum (3 of 3 compute nodes here), which
        # compute-2's death prevents: they refuse too, naming compute-2 as the reason.
        message = str(failed.value)
        assert re.search(r"compute-2: [^;]*cannot connect", message), message
        for node in ("compute-1", "compute-3"):
            assert re.search(rf"{node}: [^;]*only 2 of the required 3 witnesses cosigned "
                             r"\(compute-2: cannot connect", message), message
        # nothing half-written: the aggregate is logged once, no decryption share (the live
        # nodes could not see the aggregate in a witnessed checkpoint), no result, no
        # endorsement
        view = parse_entries(querier.ledger.query_entries(qid))
        assert view.aggregate is not None
        agg_index = view.aggregate[0]
        assert view.decryptions == []
        assert view.result is None and view.endorsements == []
        assert len(view.submissions) == 3 and len(view.noise_commits) == 3
        check_query(view, through=11)  # what is on the log so far is all valid
    finally:
        e2e_cluster.restart("compute-2")
        e2e_cluster.restart("hospital-d")

    out = querier.run(spec, datasets="diabetes")  # same query id: resumes
    assert out.query_id == qid
    report = verify_certificate(out.certificate.to_bytes(), source="resumed")
    assert report.valid, (report.step, report.reason, report.party)
    view = parse_entries(querier.ledger.query_entries(qid))
    assert view.aggregate is not None and view.aggregate[0] == agg_index  # reused, not re-sent
    # the owner that came back late was not asked: its submission could not be aggregated
    assert out.contributors == PROVIDERS[:3]
    assert len(view.submissions) == 3 and len(view.noise_commits) == 3
    assert sorted(d.node for _, d in view.decryptions) == ["compute-1", "compute-2",
                                                           "compute-3"]
    assert len(view.endorsements) == 3
    # each owner charged this query once, not once per attempt (hospital-d: never)
    for p in PROVIDERS[:3]:
        b = _budget(e2e_cluster, p, "diabetes")
        assert b.charges == {qid: rho}, p
        assert b.spent == rho
    # the rest of the budget is what is left: a query asking for more is refused by all
    over = QuerySpec.parse({**spec.to_json_obj(),
                            "privacy": {"mechanism": "zcdp", "rho": 0.5}})
    assert _budget(e2e_cluster, "hospital-a", "diabetes").remaining < Fraction(1, 2)
    with pytest.raises(QueryFailed, match=r"contributions: 1 provider.*budget exceeded") as ei:
        querier.run(over, datasets="diabetes")
    for p in PROVIDERS[:3]:
        assert f"{p}: " in str(ei.value)
        assert _budget(e2e_cluster, p, "diabetes").spent == rho
    assert _budget(e2e_cluster, "hospital-d", "diabetes").charges == {
        over.query_id_for("querier"): Fraction(1, 2)}


# -- a provider's forged submission --------------------------------------------------------

def _post_as(cluster: Any, party: str, entry: Any) -> int:
    signed = entries.sign(entry, cluster.signing_key(party))
    with cluster.client("ledger", as_party=party) as c:
        return int(c.post("/v1/entries", content=signed.to_bytes())["index"])


@pytest.fixture(scope="module")
def posted_query(e2e_cluster: Any, querier: Any) -> tuple[QuerySpec, Any]:
    """A query entry on the log that no provider was asked to answer."""
    spec = _spec(min_cell_size=1, max_rows=1007)  # no PET gate; distinct query id
    querier.ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                       e2e_cluster.signing_key("querier")))
    view = parse_entries(querier.ledger.query_entries(spec.query_id_for("querier")))
    assert view.setup is not None
    return spec, view.setup.collective_point()


def _forgeries(spec: QuerySpec, X: Any) -> dict[str, str]:
    qid = spec.query_id_for("querier")
    ranges = list(get_statistic(spec.statistic).layout(spec).ranges)  # [(0, n), (0, sum)]
    ctx = flow.submission_context(qid, "hospital-a")
    honest = [100, 100 * 30 * 65536]
    wide = [ranges[0], (ranges[1][0], ranges[1][1] + 1)]
    out_of_range = encrypt_vector_with_proof(X, [100, ranges[1][1] + 1], wide, ctx)
    n_too_big = encrypt_vector_with_proof(
        X, [ranges[0][1] + 1, honest[1]], [(0, ranges[0][1] + 1), ranges[1]], ctx)
    other_party = encrypt_vector_with_proof(
        X, honest, ranges, flow.submission_context(qid, "hospital-b"))
    other_query = encrypt_vector_with_proof(
        X, honest, ranges, flow.submission_context("cd" * 32, "hospital-a"))
    wrong_key = encrypt_vector_with_proof(base_mul(Scalar(7)), honest, ranges, ctx)
    good = encrypt_vector_with_proof(X, honest, ranges, ctx).to_bytes()
    flipped = bytearray(good)
    flipped[-5] ^= 0x01
    mid = bytearray(good)
    mid[len(good) // 2] ^= 0x80
    return {
        "out-of-range sum (proof for a wider range)": out_of_range.to_bytes().hex(),
        "n above max_rows": n_too_big.to_bytes().hex(),
        "proof bound to another provider": other_party.to_bytes().hex(),
        "proof bound to another query": other_query.to_bytes().hex(),
        "encrypted under another key": wrong_key.to_bytes().hex(),
        "bit flip at the end": bytes(flipped).hex(),
        "bit flip in the middle": bytes(mid).hex(),
        "truncated": good[:-1].hex(),
        "trailing garbage": (good + b"\x00").hex(),
        "one byte": "00",
    }


def test_forged_submissions_refused_at_append_naming_the_provider(
        e2e_cluster: Any, querier: Any, posted_query: tuple[QuerySpec, Any]) -> None:
    spec, X = posted_query
    qid = spec.query_id_for("querier")
    for name, vector_hex in _forgeries(spec, X).items():
        with pytest.raises(RemoteError) as ei:
            _post_as(e2e_cluster, "hospital-a",
                     entries.SubmissionEntry(qid, "hospital-a", vector_hex))
        err = ei.value
        assert err.status == 422, (name, err)
        assert err.party == "hospital-a", (name, err.body)
        assert "hospital-a" in err.reason, (name, err.reason)
    # none of them reached the log
    assert [k for _, k in _kinds(querier, qid)] == ["query"]
    # the honest twin of the same submission is accepted
    ranges = list(get_statistic(spec.statistic).layout(spec).ranges)
    ev = encrypt_vector_with_proof(X, [100, 100 * 30 * 65536], ranges,
                                   flow.submission_context(qid, "hospital-a"))
    idx = _post_as(e2e_cluster, "hospital-a",
                   entries.SubmissionEntry(qid, "hospital-a", ev.to_bytes().hex()))
    assert _kinds(querier, qid)[-1] == (idx, "submission")
    # a compute node's noise commitment for a query without DP is refused too, naming it
    some = noise.NoiseParams(3, 3, len(ranges), 34, 1, 0).to_json_obj()
    with pytest.raises(RemoteError) as ei:
        _post_as(e2e_cluster, "compute-1",
                 entries.NoiseCommitEntry(qid, "compute-1", ev.to_bytes().hex(), some))
    assert ei.value.status == 422 and ei.value.party == "compute-1"
    assert "compute-1" in ei.value.reason


def _kinds(querier: Any, qid: str) -> list[tuple[int, str]]:
    from statledger.protocol.entries import Entry

    return [(i, Entry.from_bytes(d).KIND) for i, d in
            querier.ledger.entries(querier.ledger.query_indices(qid))]


# -- a compute node's wrong decryption share -----------------------------------------------

def test_wrong_decryption_share_caught_and_named(e2e_cluster: Any, querier: Any) -> None:
    spec = _spec(min_cell_size=1, max_rows=1008)  # no PET gate; distinct query id
    qid = spec.query_id_for("querier")
    x1 = load_elgamal_share(Path(e2e_cluster.layout.parties["compute-1"].data_dir)
                            / "elgamal.key")
    X1 = base_mul(x1)

    def forge_share(step: str) -> None:
        if step != "decryption":
            return
        # compute-1 (its own key) logs a share that is off by G, before it is asked
        view = parse_entries(querier.ledger.query_entries(qid))
        assert view.aggregate is not None
        cts = view.aggregate[1].decode_ciphertexts()
        shares, proof = flow.make_decryption(x1, X1, cts, flow.decryption_context(qid,
                                                                                 "compute-1"))
        shares[0] = shares[0] + G
        _post_as(e2e_cluster, "compute-1", entries.DecryptionEntry(
            qid, "compute-1", tuple(s.to_bytes().hex() for s in shares),
            proof.to_bytes().hex()))

    with pytest.raises(QueryFailed, match=r"decryption: .*compute-1: invalid decryption "
                                          r"shares"):
        querier.run(spec, datasets="diabetes", progress=forge_share)
    view = parse_entries(querier.ledger.query_entries(qid))
    assert view.result is None
    with pytest.raises(VerificationError, match="decryption shares") as ei:
        check_query(view, through=12)
    assert ei.value.party == "compute-1" and ei.value.step == "step 12"
    # the honest nodes' shares on the same log pass the same check
    honest = parse_entries(querier.ledger.query_entries(qid))
    honest.decryptions = [(i, d) for i, d in honest.decryptions if d.node != "compute-1"]
    with pytest.raises(VerificationError, match="no decryption shares from compute-1"):
        check_query(honest, through=12)


def test_compute_node_with_a_wrong_key_share_refuses_then_recovers(
        e2e_cluster: Any, querier: Any, tmp_path: Path) -> None:
    """compute-3 restarted with another key file: it refuses to decrypt (its shares could
    never verify) and is named; nothing of it is logged; with its own key back the same
    query id completes."""
    from statledger.nodes.keys import load_or_create_elgamal_share

    spec = _spec(min_cell_size=1, max_rows=1009)  # no PET gate; distinct query id
    key = Path(e2e_cluster.layout.parties["compute-3"].data_dir) / "elgamal.key"
    original = key.read_bytes()
    load_or_create_elgamal_share(tmp_path / "other.key")
    try:
        key.write_bytes((tmp_path / "other.key").read_bytes())  # keeps the file's 0600
        e2e_cluster.restart("compute-3")
        with pytest.raises(QueryFailed, match=r"^decryption: .*compute-3: .*compute-3: its key "
                                              r"does not match") as ei:
            querier.run(spec, datasets="diabetes")
        assert "compute-1" not in str(ei.value) and "compute-2" not in str(ei.value)
        view = parse_entries(querier.ledger.query_entries(spec.query_id_for("querier")))
        assert sorted(d.node for _, d in view.decryptions) == ["compute-1", "compute-2"]
        assert view.result is None
    finally:
        key.write_bytes(original)
        e2e_cluster.restart("compute-3")
    out = querier.run(spec, datasets="diabetes")
    report = verify_certificate(out.certificate.to_bytes(), source="recovered")
    assert report.valid, (report.step, report.reason, report.party)


def test_forged_noise_entries_refused_at_append_naming_the_node(e2e_cluster: Any,
                                                                querier: Any) -> None:
    """The noise round's append rules (5b, docs/noise.md) on the real ledger: a commitment
    whose "bit" encrypts 2 (a proof for a wider range), or whose proof is bound to another
    node or query, or with a flipped byte, is refused naming the node (422); a coin share
    before T commitments is refused (409); one whose DLEQ does not verify against the node's
    verification key for the coin base of the set on the log is refused (422); the nodes'
    own commitments and coin shares (their routes) are accepted; a commitment after the
    first coin share is refused (409)."""
    spec = QuerySpec.parse({
        "version": 1, "statistic": "sum", "columns": ["bmi"], "bounds": {"bmi": [15, 50]},
        "privacy": {"mechanism": "zcdp", "rho": 0.25}, "max_rows": 1000})
    qid = spec.query_id_for("querier")
    querier.ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                       e2e_cluster.signing_key("querier")))
    setup = parse_entries(querier.ledger.entries(querier.ledger.roster_indices())).setup
    assert setup is not None
    X = setup.collective_point()
    params = flow.noise_plan(spec, setup)
    assert params is not None
    n = params.total_bits
    two = encrypt_vector_with_proof(X, [2] + [0] * (n - 1), [(0, 3)] * n,
                                    noise.commitment_context(params, qid, "compute-1"))
    good = noise.commit_noise(X, params, qid, "compute-1").to_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x01
    forged = {
        "a bit that is 2": two.to_bytes().hex(),
        "another node's proof": noise.commit_noise(X, params, qid, "compute-2").to_bytes().hex(),
        "another query's proof": noise.commit_noise(X, params, "cd" * 32,
                                                    "compute-1").to_bytes().hex(),
        "bit flip": bytes(flipped).hex(),
        "truncated": good[:-1].hex(),
    }
    for name, commitment in forged.items():
        with pytest.raises(RemoteError) as ei:
            _post_as(e2e_cluster, "compute-1",
                     entries.NoiseCommitEntry(qid, "compute-1", commitment,
                                              params.to_json_obj()))
        assert ei.value.status == 422 and ei.value.party == "compute-1", (name, ei.value)
        assert "compute-1" in ei.value.reason, (name, ei.value.reason)
    rogue = Scalar(4242)
    early = noise.make_coin_share(rogue, base_mul(rogue), base_mul(Scalar(9)), qid, "compute-2")
    with pytest.raises(RemoteError) as ei:
        _post_as(e2e_cluster, "compute-2", entries.NoiseCoinEntry.of(qid, early))
    assert ei.value.status == 409 and "compute-2" in ei.value.reason
    assert [k for _, k in _kinds(querier, qid)] == ["query"]
    # the nodes' own commitments (over their routes) are accepted
    for node in ("compute-1", "compute-2", "compute-3"):
        querier._call(node, e2e_cluster.url(node), f"/v1/queries/{qid}/noise/commit",
                      {"params": params.to_json_obj()})
    view = parse_entries(querier.ledger.query_entries(qid))
    coms = {e.node: e.decode_commitment(params) for _, e in view.noise_commits}
    base = flow.noise_coin_base(params, qid, [coms[nd] for nd in setup.compute])
    wrong = noise.make_coin_share(rogue, base_mul(rogue), base, qid, "compute-2")
    with pytest.raises(RemoteError) as ei:
        _post_as(e2e_cluster, "compute-2", entries.NoiseCoinEntry.of(qid, wrong))
    assert ei.value.status == 422 and ei.value.party == "compute-2", ei.value
    out = querier._call("compute-2", e2e_cluster.url("compute-2"),
                        f"/v1/queries/{qid}/noise/coin")
    assert _kinds(querier, qid)[-1] == (out["index"], "noise_coin")
    late = noise.commit_noise(X, params, qid, "compute-1")
    with pytest.raises(RemoteError) as ei:
        _post_as(e2e_cluster, "compute-1", entries.NoiseCommitEntry.of(qid, late, params))
    assert ei.value.status == 409 and "closed" in ei.value.reason


def test_ledger_killed_mid_query_then_resumed(e2e_cluster: Any, querier: Any) -> None:
    """The ledger dies after the contributions: the query fails naming the step and the
    ledger; after a restart (state from its SQLite) the same query id completes, every
    entry logged exactly once."""
    spec = _spec(min_cell_size=1, max_rows=1010)  # no PET gate; distinct query id
    qid = spec.query_id_for("querier")
    killed: list[str] = []

    def crash_ledger(step: str) -> None:
        if step == "aggregate" and not killed:
            e2e_cluster.kill("ledger")
            killed.append("ledger")

    try:
        with pytest.raises(QueryFailed, match=r"^aggregate: ledger: .*cannot connect"):
            querier.run(spec, datasets="diabetes", progress=crash_ledger)
        assert killed == ["ledger"]
    finally:
        e2e_cluster.restart("ledger")
    kinds = [k for _, k in _kinds(querier, qid)]
    assert kinds == ["query"] + ["submission"] * 4
    out = querier.run(spec, datasets="diabetes")
    report = verify_certificate(out.certificate.to_bytes(), source="after ledger restart")
    assert report.valid, (report.step, report.reason, report.party)
    kinds = [k for _, k in _kinds(querier, qid)]
    assert sorted(kinds) == sorted(["query", "aggregate", "result"] + ["submission"] * 4
                                   + ["decryption"] * 3 + ["endorsement"] * 4)


# -- an append that timed out after the ledger logged it ------------------------------------

def test_owner_whose_append_timed_out_still_endorses(e2e_cluster: Any, querier: Any) -> None:
    """The ledger logs a submission but the owner's append times out (a loaded machine): the
    owner has no record of its contribution.  Asked to endorse, it finds its own signed
    submission in the checked log and endorses; it never endorses for an owner that did not
    submit (the twin below)."""
    spec = _spec(bounds={"bmi": [15.0, 51.0]})
    out = querier.run(spec, datasets="diabetes")
    qid = out.query_id
    owner = out.contributors[0]
    db = Path(e2e_cluster.layout.parties[owner].data_dir) / "state.sqlite"
    con = sqlite3.connect(db)
    try:
        with con:
            gone = con.execute("DELETE FROM actions WHERE query_id=? AND action IN "
                               "('contribute', 'endorse')", (qid,)).rowcount
    finally:
        con.close()
    assert gone == 2
    before = parse_entries(querier.ledger.query_entries(qid))
    ok, failed = querier._fan_out({owner: querier.providers[owner]},
                                  f"/v1/queries/{qid}/endorse")
    assert failed == {} and owner in ok
    after = parse_entries(querier.ledger.query_entries(qid))
    # the same endorsement (identical bytes: the append is idempotent), not a second one
    assert [i for i, _ in after.endorsements] == [i for i, _ in before.endorsements]
    # twin: an owner with no submission on the log is still refused
    absent = [p for p in querier.providers if p not in out.contributors]
    if absent:
        ok, failed = querier._fan_out({absent[0]: querier.providers[absent[0]]},
                                      f"/v1/queries/{qid}/endorse")
        assert absent[0] in failed and "did not contribute" in str(failed[absent[0]])
