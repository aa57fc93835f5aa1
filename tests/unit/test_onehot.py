"""One-hot block proofs: honest records (counted or not) verify alone and in a batch; every
malformed record -- a count of 2, two ones, a negative count, blocks that disagree -- and
every tampered proof or statement is rejected and names the owner."""

from __future__ import annotations

import pytest

from statledger.proofs.elgamal import Ciphertext, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar
from statledger.proofs.onehot import (
    PROOF_BYTES,
    OneHotProof,
    prove_onehot,
    verify_onehot,
    verify_onehot_batch,
)

CTX = b"query-1|owner-a"
SIZES = [3, 4, 2]


@pytest.fixture(scope="module")
def key() -> Point:
    return keygen()[1]


def _record(X: Point, values: list[list[int]]) -> tuple[list[list[Ciphertext]], list[list[int]]]:
    rs = [[int(Scalar.random()) for _ in blk] for blk in values]
    cts = [[encrypt(X, v, Scalar(r)) for v, r in zip(blk, rb, strict=True)]
           for blk, rb in zip(values, rs, strict=True)]
    return cts, rs


def _onehot(hot: list[int | None], scales: list[int]) -> list[list[int]]:
    return [[k if j == h else 0 for j in range(n)]
            for n, h, k in zip(SIZES, hot, scales, strict=True)]


@pytest.mark.parametrize("scales", [[1, 1, 1], [2, 3, 1]])
@pytest.mark.parametrize("beta", [0, 1])
def test_honest_record_verifies(key: Point, scales: list[int], beta: int) -> None:
    hot: list[int | None] = [2, 0, 1] if beta else [None] * 3
    cts, rs = _record(key, _onehot(hot, scales))
    proof = prove_onehot(key, cts, scales, beta, rs, CTX)
    verify_onehot(key, cts, scales, proof, CTX, party="owner-a")
    again = OneHotProof.from_bytes(proof.to_bytes())
    assert again == proof and len(proof.to_bytes()) == PROOF_BYTES
    verify_onehot(key, cts, scales, again, CTX)


@pytest.mark.parametrize("values, beta", [
    ([[0, 2, 0], [0, 0, 0, 2], [0, 2]], 1),          # a count of 2 (in every block)
    ([[1, 1, 0], [0, 0, 1, 0], [1, 0]], 1),          # two ones in block 0
    ([[0, 1, 0], [1, 1, 0, 0], [1, 0]], 1),          # two ones in block 1
    ([[0, 1, 0], [0, 0, 0, 0], [1, 0]], 1),          # block 1 does not count the record
    ([[0, 0, 0], [0, 0, 1, 0], [0, 0]], 0),          # only block 1 counts it
    ([[0, 1, 0], [0, 1, 0, 0], [0, 0]], 1),          # block 2 does not count the record
])
def test_invalid_record_rejected(key: Point, values: list[list[int]], beta: int) -> None:
    cts, rs = _record(key, values)
    proof = prove_onehot(key, cts, [1, 1, 1], beta, rs, CTX)
    with pytest.raises(VerificationError, match="onehot.*party owner-x"):
        verify_onehot(key, cts, [1, 1, 1], proof, CTX, party="owner-x")


def test_negative_cells_are_the_range_proofs_part(key: Point) -> None:
    """A negative count that keeps the block sums right passes this proof alone: the
    per-cell range proofs of the submission refuse it (test_stats_workload.py)."""
    cts, rs = _record(key, [[1, 0, -1], [0, 0, 0, 0], [0, 0]])
    verify_onehot(key, cts, [1, 1, 1], prove_onehot(key, cts, [1, 1, 1], 0, rs, CTX), CTX)


def test_scaled_block_needs_its_scale(key: Point) -> None:
    # a weight-3 block that carries weight 1: the sums disagree with the scales
    cts, rs = _record(key, _onehot([0, 1, 1], [2, 1, 1]))
    proof = prove_onehot(key, cts, [2, 3, 1], 1, rs, CTX)
    with pytest.raises(VerificationError, match="onehot"):
        verify_onehot(key, cts, [2, 3, 1], proof, CTX)


@pytest.fixture(scope="module")
def honest(key: Point) -> tuple[list[list[Ciphertext]], OneHotProof]:
    cts, rs = _record(key, _onehot([1, 3, 0], [1, 1, 1]))
    return cts, prove_onehot(key, cts, [1, 1, 1], 1, rs, CTX)


def test_proof_bound_to_statement(key: Point,
                                  honest: tuple[list[list[Ciphertext]], OneHotProof]) -> None:
    cts, proof = honest
    with pytest.raises(VerificationError):
        verify_onehot(key, cts, [1, 1, 1], proof, b"query-1|owner-b")  # other context
    with pytest.raises(VerificationError):
        verify_onehot(keygen()[1], cts, [1, 1, 1], proof, CTX)  # other key
    with pytest.raises(VerificationError):
        verify_onehot(key, cts, [1, 1, 2], proof, CTX)  # other scales
    swapped = [cts[0], cts[1][::-1], cts[2]]  # the same sums, other cells: bound anyway
    with pytest.raises(VerificationError):
        verify_onehot(key, swapped, [1, 1, 1], proof, CTX)
    moved = [cts[0] + [cts[1][0]], cts[1][1:], cts[2]]  # a cell moved between blocks
    with pytest.raises(VerificationError):
        verify_onehot(key, moved, [1, 1, 1], proof, CTX)


def test_wrong_block_shape_rejected(key: Point,
                                    honest: tuple[list[list[Ciphertext]], OneHotProof]) -> None:
    cts, proof = honest
    with pytest.raises(VerificationError, match="statement"):
        verify_onehot(key, cts, [1, 1], proof, CTX)
    with pytest.raises(VerificationError, match="statement"):
        verify_onehot(key, [cts[0], [], cts[2]], [1, 1, 1], proof, CTX)
    with pytest.raises(VerificationError):
        verify_onehot(key, [cts[0], cts[1][:-1], cts[2]], [1, 1, 1], proof, CTX)


def test_bit_flips_and_truncation(key: Point,
                                  honest: tuple[list[list[Ciphertext]], OneHotProof]) -> None:
    cts, proof = honest
    raw = proof.to_bytes()
    for pos in range(0, len(raw), 11):
        bad = bytearray(raw)
        bad[pos] ^= 1 << (pos % 8)
        try:
            forged = OneHotProof.from_bytes(bytes(bad))
        except MalformedError:
            continue  # not a canonical point or scalar: refused on decode
        with pytest.raises(VerificationError):
            verify_onehot(key, cts, [1, 1, 1], forged, CTX)
    for data in (raw[:-1], raw + b"\x00", b"\x00" + raw, b""):
        with pytest.raises(MalformedError):
            OneHotProof.from_bytes(data)


def test_swapped_fields_rejected(key: Point,
                                 honest: tuple[list[list[Ciphertext]], OneHotProof]) -> None:
    cts, p = honest
    for forged in (OneHotProof(p.A1, p.B1, p.A0, p.B0, p.E, p.F, p.c0, p.s0, p.s1, p.se),
                   OneHotProof(p.A0, p.B0, p.A1, p.B1, p.F, p.E, p.c0, p.s0, p.s1, p.se),
                   OneHotProof(p.A0, p.B0, p.A1, p.B1, p.E, p.F, p.c0, p.s1, p.s0, p.se)):
        with pytest.raises(VerificationError):
            verify_onehot(key, cts, [1, 1, 1], forged, CTX)


def test_batch_accepts_and_names_the_bad_owner(key: Point) -> None:
    items = []
    names = []
    for i in range(6):
        beta = i % 2
        hot: list[int | None] = [i % 3, i % 4, i % 2] if beta else [None] * 3
        cts, rs = _record(key, _onehot(hot, [1, 2, 1]))
        items.append((key, cts, [1, 2, 1], prove_onehot(key, cts, [1, 2, 1], beta, rs, CTX
                                                         + bytes([i])), CTX + bytes([i])))
        names.append(f"owner-{i}")
    verify_onehot_batch(items, names)
    verify_onehot_batch([])
    cts, rs = _record(key, [[0, 1, 1], [0, 0, 2, 0], [1, 0]])
    bad = (key, cts, [1, 2, 1], prove_onehot(key, cts, [1, 2, 1], 1, rs, CTX), CTX)
    with pytest.raises(VerificationError, match="party owner-bad"):
        verify_onehot_batch(items[:3] + [bad] + items[3:], names[:3] + ["owner-bad"]
                            + names[3:])
    with pytest.raises(MalformedError):
        verify_onehot_batch(items, names[:-1])


def test_prover_refuses_bad_inputs(key: Point) -> None:
    cts, rs = _record(key, _onehot([0, 0, 0], [1, 1, 1]))
    with pytest.raises(MalformedError):
        prove_onehot(key, cts, [1, 1, 1], 2, rs, CTX)
    with pytest.raises(MalformedError):
        prove_onehot(key, cts, [1, 1, 0], 1, rs, CTX)
    with pytest.raises(MalformedError):
        prove_onehot(key, cts, [1, 1, 1], 1, rs[:2], CTX)
    with pytest.raises(MalformedError):
        prove_onehot(Point.identity(), cts, [1, 1, 1], 1, rs, CTX)
