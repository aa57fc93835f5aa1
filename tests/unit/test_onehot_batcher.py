"""Issue 15: the ledger's group commit checks the one-hot proofs of concurrent submissions
together (one MSM), and a failed batch is halved until each bad owner is found.

Adversary: an admitted one-record owner whose submission carries valid range proofs (every
cell in [0, 1]) but a one-hot proof that does not fit its ciphertexts -- here the proof of
another owner's submission, a valid proof of another statement, so its bytes decode.  The
ledger must refuse that owner alone, naming it; the good submissions of the same batch go on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from batching import run_concurrently

from statledger.nodes.ledger_service import SubmissionBatcher
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import VerificationError
from statledger.proofs.onehot import find_invalid_onehots, verify_onehot_batch
from statledger.protocol import calibration, flow, validity
from statledger.protocol.entries import SubmissionEntry
from statledger.protocol.query import QuerySpec

QID = "cd" * 32
N = 7
SIZES = (3, 2, 2)
COLUMNS = ["a", "b", "c"]
SPEC = QuerySpec.parse({
    "version": 1, "statistic": "workload", "columns": COLUMNS,
    "categories": {c: [str(v) for v in range(k)] for c, k in zip(COLUMNS, SIZES, strict=True)},
    "params": {"marginals": 2, "strategy": "marginals"}, "max_rows": 1, "min_providers": 2,
    "privacy": {"mechanism": "none"}, "min_cell_size": 1})

Slot = tuple[tuple[Any, Any, Any, bytes, str], Any]


def _raw(X: Any, party: str, row: list[int]) -> bytes:
    table = {c: np.asarray([str(v)], dtype=object) for c, v in zip(COLUMNS, row, strict=True)}
    wire, _ = calibration.wire_encode(SPEC, table)
    return validity.encrypt_submission(SPEC, X, wire, flow.submission_context(QID, party))


def _slot(X: Any, party: str, raw: bytes) -> Slot:
    ranges = list(calibration.wire_layout(SPEC).ranges)
    ctx = flow.submission_context(QID, party)
    ev, proof = validity.decode_submission(SPEC, SubmissionEntry(QID, party, raw.hex()), ranges)
    return (X, ev, ranges, ctx, party), validity.onehot_statement(SPEC, X, party, ev, proof, ctx)


@pytest.fixture(scope="module")
def owners() -> tuple[Any, list[str], list[bytes]]:
    assert validity.onehot_layout(SPEC) is not None
    _, X = keygen()
    rng = np.random.default_rng(15)
    names = [f"owner-{i:03d}" for i in range(N)]
    raws = [_raw(X, p, [int(rng.integers(k)) for k in SIZES]) for p in names]
    return X, names, raws


def _swap_proof(raws: list[bytes], bad: int, donor: int) -> list[bytes]:
    """``bad``'s vector (valid range proofs) with ``donor``'s one-hot proof."""
    tail = validity.tail_bytes(SPEC)
    out = list(raws)
    out[bad] = raws[bad][:-tail] + raws[donor][-tail:]
    assert out[bad] != raws[bad]
    return out


def test_good_batch_passes_in_one_batch(owners: Any) -> None:
    X, names, raws = owners
    batcher = SubmissionBatcher()
    out = run_concurrently(batcher, [_slot(X, p, r) for p, r in zip(names, raws, strict=True)])
    assert batcher.batch_sizes == [N]
    assert out == dict.fromkeys(names)


@pytest.mark.parametrize("bad", [0, 3, N - 1])
def test_one_bad_onehot_proof_refuses_that_owner_only(owners: Any, bad: int) -> None:
    X, names, raws = owners
    forged = _swap_proof(raws, bad, (bad + 1) % N)
    slots = [_slot(X, p, r) for p, r in zip(names, forged, strict=True)]
    # its range proofs alone are valid: only the one-hot proof gives it away
    from statledger.proofs.vector import find_invalid_vectors
    assert find_invalid_vectors([s[0][:4] for s in slots], names) == []
    batcher = SubmissionBatcher()
    out = run_concurrently(batcher, slots)
    assert batcher.batch_sizes == [N]
    err = out.pop(names[bad])
    assert isinstance(err, VerificationError)
    assert err.party == names[bad] and err.step == "onehot"
    assert all(v is None for v in out.values()), out


def test_two_bad_proofs_each_named(owners: Any) -> None:
    X, names, raws = owners
    forged = _swap_proof(_swap_proof(raws, 1, 2), 5, 4)
    slots = [_slot(X, p, r) for p, r in zip(names, forged, strict=True)]
    stmts = [s[1] for s in slots]
    bad = find_invalid_onehots(stmts, names)
    assert [i for i, _ in bad] == [1, 5]
    assert [e.party for _, e in bad] == [names[1], names[5]]
    with pytest.raises(VerificationError, match="one-hot") as err:
        verify_onehot_batch(stmts, names)
    assert err.value.party == names[1]
    out = run_concurrently(SubmissionBatcher(), slots)
    assert {p for p, v in out.items() if v is not None} == {names[1], names[5]}


def test_a_range_proof_failure_and_a_onehot_failure_in_one_batch(owners: Any) -> None:
    """Both kinds of bad submission in one batch: each refused, naming its owner; a
    submission with a bad vector is refused for its range proof first."""
    X, names, raws = owners
    forged = _swap_proof(raws, 2, 3)
    slots = [_slot(X, p, r) for p, r in zip(names, forged, strict=True)]
    (x6, ev6, ranges, ctx6, p6), st6 = slots[6]
    other = slots[0][0][1]  # owner 0's vector under owner 6's name: its proofs bind owner 0
    slots[6] = ((x6, other, ranges, ctx6, p6), st6)
    out = run_concurrently(SubmissionBatcher(), slots)
    e2, e6 = out.pop(names[2]), out.pop(names[6])
    assert isinstance(e2, VerificationError) and e2.party == names[2] and e2.step == "onehot"
    assert isinstance(e6, VerificationError) and e6.party == names[6]
    assert e6.step != "onehot"
    assert all(v is None for v in out.values())


def test_missing_proof_refused_naming_the_owner(owners: Any) -> None:
    X, names, raws = owners
    ranges = list(calibration.wire_layout(SPEC).ranges)
    ctx = flow.submission_context(QID, names[0])
    ev, _ = validity.decode_submission(SPEC, SubmissionEntry(QID, names[0], raws[0].hex()),
                                       ranges)
    with pytest.raises(VerificationError, match="lacks its one-hot proof") as err:
        validity.onehot_statement(SPEC, X, names[0], ev, None, ctx)
    assert err.value.party == names[0]
