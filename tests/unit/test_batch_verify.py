"""Batched verification of many owners' submissions (issue 15, item 3), and the pull-mode
addressing rule every party applies to submissions (item 2).

Adversary: one owner among many sends an invalid range or linking proof (a flipped
bit, a proof replayed from another owner or query, a value out of range, a vector of the
wrong shape), hoping that batching lets it through or that the blame lands on somebody
else.  A batch with one bad proof must never pass; the bad one(s) must be named; the batch
verdict must equal the one-by-one verdict.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from batching import run_concurrently

from statledger.nodes.ledger_service import SubmissionBatcher
from statledger.proofs import vector as V
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point
from statledger.protocol import calibration, flow
from statledger.protocol.checks import check_addressed
from statledger.protocol.query import QuerySpec

QID = "ab" * 32
SPEC: dict[str, Any] = {
    "version": 1, "statistic": "mean", "columns": ["bmi"], "bounds": {"bmi": [15.0, 50.0]},
    "max_rows": 1000,
}
N = 12

Item = tuple[Point, V.EncryptedVector, list[tuple[int, int]], bytes]


@pytest.fixture(scope="module")
def batch() -> tuple[Point, list[Item], list[str]]:
    """N owners' submissions for one mean query, with the real wire layout's ranges."""
    _, X = keygen()
    ranges = list(calibration.wire_layout(QuerySpec.parse(SPEC)).ranges)
    items: list[Item] = []
    names: list[str] = []
    for i in range(N):
        owner = f"owner-{i:03d}"
        values = [lo + (i * 7919 + j) % (hi - lo + 1) for j, (lo, hi) in enumerate(ranges)]
        ctx = flow.submission_context(QID, owner)
        items.append((X, V.encrypt_vector_with_proof(X, values, ranges, ctx), ranges, ctx))
        names.append(owner)
    return X, items, names


def _flip(ev: V.EncryptedVector, ranges: list[tuple[int, int]], bit: int) -> V.EncryptedVector:
    """The vector with one bit of its proof flipped (re-decoded; skips flips that no longer
    decode canonically by moving on to the next bit)."""
    data = bytearray(ev.to_bytes())
    proof_start = (sum(len(r) for r in ev.limbs) * 66  # ciphertexts, then commitments
                   + sum(len(r) for r in ev.commitments) * 33)
    for b in range(bit, bit + 64):
        pos = proof_start + (b // 8) % (len(data) - proof_start)
        tampered = bytearray(data)
        tampered[pos] ^= 1 << (b % 8)
        try:
            return V.EncryptedVector.from_bytes(bytes(tampered), ranges)
        except MalformedError:
            continue
    raise AssertionError("no decodable flip")  # pragma: no cover


def _one_by_one(items: list[Item], names: list[str]) -> set[str]:
    bad: set[str] = set()
    for (X, ev, ranges, ctx), name in zip(items, names, strict=True):
        try:
            V.verify_encrypted_vector(X, ev, ranges, ctx, party=name)
        except VerificationError:
            bad.add(name)
    return bad


# -- the batch ------------------------------------------------------------------------------


def test_good_batch_passes_with_one_msm(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, items, names = batch
    calls = []
    real = V._terms_is_identity
    monkeypatch.setattr(V, "_terms_is_identity", lambda t: calls.append(1) or real(t))
    V.verify_encrypted_vectors_batch(items, names)
    assert V.find_invalid_vectors(items, names) == []
    assert len(calls) == 2  # one MSM per call, for all N owners


@pytest.mark.parametrize("bad_at", [0, 5, N - 1])
def test_one_flipped_proof_rejects_the_batch_and_names_it(batch: Any, bad_at: int) -> None:
    _, items, names = batch
    tampered = list(items)
    X, ev, ranges, ctx = items[bad_at]
    tampered[bad_at] = (X, _flip(ev, ranges, 8 * 40 + bad_at), ranges, ctx)
    with pytest.raises(VerificationError, match=f"party {names[bad_at]}") as err:
        V.verify_encrypted_vectors_batch(tampered, names)
    assert err.value.party == names[bad_at]
    assert err.value.step in ("range-proof", "link-proof")
    found = V.find_invalid_vectors(tampered, names)
    assert [i for i, _ in found] == [bad_at]


def test_replayed_proof_is_named_not_its_victim(batch: Any) -> None:
    """owner-004 re-sends owner-002's vector as its own: the context binds the owner."""
    _, items, names = batch
    tampered = list(items)
    tampered[4] = (items[2][0], items[2][1], items[2][2], items[4][3])
    with pytest.raises(VerificationError, match="party owner-004"):
        V.verify_encrypted_vectors_batch(tampered, names)
    # the same vector under another query id
    other = list(items)
    other[7] = (items[7][0], items[7][1], items[7][2],
                flow.submission_context("cd" * 32, names[7]))
    assert [i for i, _ in V.find_invalid_vectors(other, names)] == [7]


def test_several_bad_proofs_are_all_named(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, items, names = batch
    tampered = list(items)
    for k in (1, 6, 10):
        X, ev, ranges, ctx = items[k]
        tampered[k] = (X, _flip(ev, ranges, 8 * 60 + k), ranges, ctx)
    # a wrong shape (structural) is named too, without a MSM of its own
    X, ev, ranges, ctx = items[3]
    tampered[3] = (X, items[3][1], ranges[:-1], ctx)
    with pytest.raises(VerificationError, match="party owner-001") as err:
        V.verify_encrypted_vectors_batch(tampered, names)
    assert "also invalid: owner-003, owner-006, owner-010" in err.value.reason
    assert {names[i] for i, _ in V.find_invalid_vectors(tampered, names)} == _one_by_one(
        tampered, names) == {"owner-001", "owner-003", "owner-006", "owner-010"}


def test_bisection_costs_log_n_msms(batch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One bad proof among N: about 2 log2(N) MSMs, not N."""
    _, items, names = batch
    tampered = list(items)
    X, ev, ranges, ctx = items[9]
    tampered[9] = (X, _flip(ev, ranges, 8 * 33), ranges, ctx)
    calls = []
    real = V._terms_is_identity
    monkeypatch.setattr(V, "_terms_is_identity", lambda t: calls.append(1) or real(t))
    assert [i for i, _ in V.find_invalid_vectors(tampered, names)] == [9]
    assert len(calls) <= 1 + 2 * (N - 1).bit_length() < N


@pytest.mark.parametrize("seed", range(4))
def test_batch_and_one_by_one_agree(batch: Any, seed: int) -> None:
    _, items, names = batch
    bad_positions = {(seed * 5 + k * 3) % N for k in range(seed)}  # 0..3 bad owners
    tampered = list(items)
    for k in bad_positions:
        X, ev, ranges, ctx = items[k]
        tampered[k] = (X, _flip(ev, ranges, 8 * (20 + 7 * seed) + k), ranges, ctx)
    found = {names[i] for i, _ in V.find_invalid_vectors(tampered, names)}
    assert found == _one_by_one(tampered, names) == {names[k] for k in bad_positions}
    if bad_positions:
        with pytest.raises(VerificationError):
            V.verify_encrypted_vectors_batch(tampered, names)
    else:
        V.verify_encrypted_vectors_batch(tampered, names)


def test_out_of_range_value_caught_in_a_batch(batch: Any) -> None:
    """A malicious owner proves a limb wider than its range (a forged prover)."""
    X, items, names = batch
    ranges = items[0][2]
    rs, layout = V._layout(ranges)
    limbs = [[(1 << 16) + 5 if j == 0 and i == 0 else 0 for i in range(n)]
             for j, n in enumerate(layout.n_limbs)]
    ctx = items[8][3]
    forged = V._encrypt(X, limbs, rs, layout, ctx, None)
    tampered = list(items)
    tampered[8] = (X, forged, ranges, ctx)
    with pytest.raises(VerificationError, match="party owner-008"):
        V.verify_encrypted_vectors_batch(tampered, names)


def test_party_names_must_match_items(batch: Any) -> None:
    _, items, names = batch
    with pytest.raises(MalformedError):
        V.find_invalid_vectors(items, names[:-1])


# -- the ledger's batcher (group commit) ----------------------------------------------------


def test_batcher_checks_concurrent_submissions_together(batch: Any) -> None:
    _, items, names = batch
    batcher = SubmissionBatcher()
    out = run_concurrently(batcher, [((*it, n),) for it, n in zip(items, names, strict=True)])
    assert batcher.batch_sizes == [N]
    assert all(v is None for v in out.values()) and len(out) == N


def test_batcher_refuses_only_the_bad_one_and_names_it(batch: Any) -> None:
    _, items, names = batch
    tampered = list(items)
    X, ev, ranges, ctx = items[3]
    tampered[3] = (X, _flip(ev, ranges, 8 * 50), ranges, ctx)
    batcher = SubmissionBatcher(max_batch=5)
    out = run_concurrently(batcher, [((*it, n),) for it, n in zip(tampered, names, strict=True)])
    assert sorted(batcher.batch_sizes) == [2, 5, 5]
    bad = out.pop("owner-003")
    assert isinstance(bad, VerificationError) and bad.party == "owner-003"
    assert all(v is None for v in out.values())


def test_batcher_alone_is_a_batch_of_one(batch: Any) -> None:
    _, items, names = batch
    batcher = SubmissionBatcher()
    batcher.check((*items[0], names[0]))
    X, ev, ranges, ctx = items[1]
    with pytest.raises(VerificationError, match="party owner-001"):
        batcher.check((X, _flip(ev, ranges, 8 * 45), ranges, ctx, names[1]))
    assert batcher.batch_sizes == [1, 1]


# -- pull mode: who may submit --------------------------------------------------------------


def _pull(owners: Any, **kw: Any) -> QuerySpec:
    return QuerySpec.parse({**SPEC, "pull": {"dataset": "diabetes", "owners": owners,
                                             "deadline": 1_900_000_000}, **kw})


def test_addressing_rule() -> None:
    listed = _pull(["hospital-a", "hospital-b"])
    check_addressed(listed, "hospital-a")
    with pytest.raises(VerificationError, match="step 9.*party hospital-c.*does not address"):
        check_addressed(listed, "hospital-c", 17)
    check_addressed(_pull("all"), "hospital-c")
    check_addressed(QuerySpec.parse(SPEC), "hospital-c")  # push mode: the owner's policy


def test_pull_field_keeps_old_ids_and_changes_new_ones() -> None:
    plain = QuerySpec.parse(SPEC)
    assert "pull" not in plain.to_json_obj()
    assert QuerySpec.parse({**SPEC, "pull": None}).digest == plain.digest
    ids = {plain.digest, _pull("all").digest, _pull(["hospital-a", "hospital-b"]).digest,
           _pull(["hospital-b", "hospital-a"]).digest}
    assert len(ids) == 4
    spec = _pull("all")
    assert QuerySpec.parse(json.loads(spec.canonical_bytes())) == spec


@pytest.mark.parametrize("pull, match", [
    ({"dataset": "d", "owners": ["a", "a"], "deadline": 5}, "duplicate owner"),
    ({"dataset": "d", "owners": ["a"], "deadline": 5}, "min_providers is 2"),
    ({"dataset": "d", "owners": [], "deadline": 5}, "pull.owners"),
    ({"dataset": "d", "owners": "some", "deadline": 5}, "pull.owners"),
    ({"dataset": "d", "owners": "all", "deadline": 0}, "pull.deadline"),
    ({"dataset": "d", "owners": "all", "deadline": 1.5}, "pull.deadline"),
    ({"dataset": "", "owners": "all", "deadline": 5}, "pull.dataset"),
    ({"dataset": "d", "owners": "all"}, "pull.deadline"),
    ({"dataset": "d", "owners": "all", "deadline": 5, "x": 1}, "pull.x"),
])
def test_malformed_pull_field(pull: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        QuerySpec.parse({**SPEC, "pull": pull})
