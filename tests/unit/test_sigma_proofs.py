"""Sigma proofs: every accept test has mechanical reject twins."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from statledger.proofs.elgamal import Ciphertext, decryption_share, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, G, H, Point, Scalar, base_mul
from statledger.proofs.sigma import (
    DLEQBatchProof,
    DLEQProof,
    PlaintextProof,
    SchnorrProof,
    ZeroOneProof,
    dleq_batch_weights,
    prove_dleq,
    prove_dleq_batch,
    prove_plaintext,
    prove_schnorr,
    prove_zero_one,
    verify_dleq,
    verify_dleq_batch,
    verify_plaintext,
    verify_schnorr,
    verify_zero_one,
)

CTX = b"query:abc|party:node-1"
REJECT = (MalformedError, VerificationError)


def _mutations(data: bytes) -> list[tuple[str, bytes]]:
    """Mechanical twins: one bit flip in every byte (low and high bit), truncations,
    extensions, garbage before/after, swapped halves, non-canonical scalars."""
    out: list[tuple[str, bytes]] = []
    for i in range(len(data)):
        for bit in (0, 7):
            b = bytearray(data)
            b[i] ^= 1 << bit
            out.append((f"flip@{i}.{bit}", bytes(b)))
    out += [
        ("truncated-1", data[:-1]),
        ("truncated-32", data[:-32]),
        ("empty", b""),
        ("trailing-garbage", data + b"\x00"),
        ("leading-garbage", b"\x00" + data),
        ("doubled", data + data),
        ("swapped-halves", data[len(data) // 2 :] + data[: len(data) // 2]),
    ]
    for k in range(len(data) // 32):
        for bad in (ORDER, ORDER + 1, 2**256 - 1):
            out.append((f"noncanonical-{k}-{bad:x}"[:40],
                        data[: 32 * k] + bad.to_bytes(32, "big") + data[32 * (k + 1) :]))
        s = int.from_bytes(data[32 * k : 32 * (k + 1)], "big")
        if s + ORDER < 2**256:  # rarely possible; n + s also covered by the fixed cases
            out.append((f"plus-n-{k}", data[: 32 * k] + (s + ORDER).to_bytes(32, "big")
                        + data[32 * (k + 1) :]))
    return out


def _assert_all_rejected(data: bytes, decode: Callable[[bytes], object],
                         verify: Callable[[object], None]) -> None:
    for name, bad in _mutations(data):
        with pytest.raises(REJECT):
            verify(decode(bad))
        assert name  # keep the label visible in tracebacks


def _roundtrip(proof: object, cls: type) -> bytes:
    data = proof.to_bytes()  # type: ignore[attr-defined]
    assert len(data) == cls.SIZE  # type: ignore[attr-defined]
    assert cls.from_bytes(data) == proof  # type: ignore[attr-defined]
    assert cls.from_bytes(bytearray(data)) == proof  # type: ignore[attr-defined]
    return data


# -- Schnorr -----------------------------------------------------------------------------------


def test_schnorr_accepts_and_rejects_twins() -> None:
    x, X = keygen()
    proof = prove_schnorr(x, X, CTX)
    verify_schnorr(X, proof, CTX)
    data = _roundtrip(proof, SchnorrProof)
    _assert_all_rejected(data, SchnorrProof.from_bytes, lambda p: verify_schnorr(X, p, CTX))  # type: ignore[arg-type]


def test_schnorr_statement_twins() -> None:
    x, X = keygen()
    _y, Y = keygen()
    proof = prove_schnorr(x, X, CTX)
    with pytest.raises(VerificationError, match="schnorr step 2"):
        verify_schnorr(Y, proof, CTX)  # other key
    with pytest.raises(VerificationError, match="schnorr step 2"):
        verify_schnorr(X, proof, CTX + b"!")  # other context
    with pytest.raises(VerificationError, match="schnorr step 2"):
        verify_schnorr(X, proof, b"")
    with pytest.raises(VerificationError, match="schnorr step 2"):
        verify_schnorr(-X, proof, CTX)
    with pytest.raises(VerificationError, match="schnorr step 1"):
        verify_schnorr(Point.identity(), proof, CTX)
    with pytest.raises(VerificationError, match="schnorr step 2"):
        verify_schnorr(X, prove_schnorr(x + Scalar(1), X, CTX), CTX)  # wrong witness
    with pytest.raises(MalformedError):
        prove_schnorr(x, Point.identity(), CTX)
    with pytest.raises(TypeError):
        verify_schnorr(X, DLEQProof(proof.c, proof.s), CTX)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        prove_schnorr(x, X, "ctx")  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        SchnorrProof.from_bytes("00" * 64)  # type: ignore[arg-type]


def test_proofs_are_randomized_and_domain_separated() -> None:
    x, X = keygen()
    p1, p2 = prove_schnorr(x, X, CTX), prove_schnorr(x, X, CTX)
    assert p1 != p2
    # a Schnorr proof is not a DLEQ proof with B = G, D = X (different domains)
    with pytest.raises(VerificationError):
        verify_dleq(X, G, X, DLEQProof(p1.c, p1.s), CTX)


# -- DLEQ ------------------------------------------------------------------------------------


def _dleq_setup() -> tuple[Scalar, Point, Point, Point]:
    x, X = keygen()
    _m, M = keygen()
    c = encrypt(M, 5)
    return x, X, c.C1, decryption_share(x, c)


def test_dleq_accepts_and_rejects_twins() -> None:
    x, X, B, D = _dleq_setup()
    proof = prove_dleq(x, X, B, D, CTX)
    verify_dleq(X, B, D, proof, CTX)
    data = _roundtrip(proof, DLEQProof)
    _assert_all_rejected(data, DLEQProof.from_bytes, lambda p: verify_dleq(X, B, D, p, CTX))  # type: ignore[arg-type]


def test_dleq_statement_twins() -> None:
    x, X, B, D = _dleq_setup()
    proof = prove_dleq(x, X, B, D, CTX)
    _y, Y = keygen()
    bad = {
        "X<->D": (D, B, X),
        "B<->D": (X, D, B),
        "X<->B": (B, X, D),
        "other key": (Y, B, D),
        "other base": (X, H, D),
        "share+G": (X, B, D + G),
        "share=identity": (X, B, Point.identity()),
        "negated share": (X, B, -D),
    }
    for name, (X2, B2, D2) in bad.items():
        with pytest.raises(VerificationError, match="dleq step 2"):
            verify_dleq(X2, B2, D2, proof, CTX)
        assert name
    with pytest.raises(VerificationError, match="dleq step 2"):
        verify_dleq(X, B, D, proof, b"query:abc|party:node-2")
    with pytest.raises(VerificationError, match="dleq step 1"):
        verify_dleq(Point.identity(), B, D, proof, CTX)
    with pytest.raises(VerificationError, match="dleq step 1"):
        verify_dleq(X, Point.identity(), D, proof, CTX)
    # a proof made with a wrong share (or a wrong key) does not verify
    with pytest.raises(VerificationError):
        verify_dleq(X, B, D + G, prove_dleq(x, X, B, D + G, CTX), CTX)
    with pytest.raises(VerificationError):
        verify_dleq(X, B, D, prove_dleq(x + Scalar(1), X, B, D, CTX), CTX)
    with pytest.raises(MalformedError):
        prove_dleq(x, X, Point.identity(), D, CTX)


# -- batched DLEQ ------------------------------------------------------------------------------


def _batch_setup(k: int) -> tuple[Scalar, Point, list[Point], list[Point]]:
    x, X = keygen()
    _m, M = keygen()
    cts = [encrypt(M, i) for i in range(k)]
    return x, X, [c.C1 for c in cts], [decryption_share(x, c) for c in cts]


@pytest.mark.parametrize("k", [1, 2, 7])
def test_dleq_batch_accepts_and_rejects_twins(k: int) -> None:
    x, X, C1s, Ds = _batch_setup(k)
    proof = prove_dleq_batch(x, X, C1s, Ds, CTX)
    verify_dleq_batch(X, C1s, Ds, proof, CTX)
    data = _roundtrip(proof, DLEQBatchProof)
    assert len(data) == 64  # constant size
    _assert_all_rejected(
        data, DLEQBatchProof.from_bytes, lambda p: verify_dleq_batch(X, C1s, Ds, p, CTX)  # type: ignore[arg-type]
    )


def test_dleq_batch_statement_twins() -> None:
    x, X, C1s, Ds = _batch_setup(6)
    proof = prove_dleq_batch(x, X, C1s, Ds, CTX)
    _y, Y = keygen()
    step3 = "dleq-batch step 3"
    cases = {
        "C1s<->Ds": (X, Ds, C1s),
        "other key": (Y, C1s, Ds),
        "swap two shares": (X, C1s, [Ds[1], Ds[0], *Ds[2:]]),
        "swap two ciphertexts and shares": (X, [C1s[1], C1s[0], *C1s[2:]],
                                            [Ds[1], Ds[0], *Ds[2:]]),
        "one share +G": (X, C1s, [*Ds[:3], Ds[3] + G, *Ds[4:]]),
        "last share wrong": (X, C1s, [*Ds[:-1], Ds[0]]),
        "one share identity": (X, C1s, [Point.identity(), *Ds[1:]]),
        "reversed": (X, C1s[::-1], Ds[::-1]),
    }
    for name, (X2, C2s, D2s) in cases.items():
        with pytest.raises(VerificationError, match=step3):
            verify_dleq_batch(X2, C2s, D2s, proof, CTX)
        assert name
    with pytest.raises(VerificationError, match=step3):
        verify_dleq_batch(X, C1s, Ds, proof, CTX + b"x")
    step1 = "dleq-batch step 1"
    with pytest.raises(VerificationError, match=step1):
        verify_dleq_batch(X, C1s[:-1], Ds, proof, CTX)  # dropped ciphertext
    with pytest.raises(VerificationError, match=step1):
        verify_dleq_batch(X, C1s + [C1s[0]], Ds + [Ds[0]][:0], proof, CTX)
    with pytest.raises(VerificationError, match=step1):
        verify_dleq_batch(X, [], [], proof, CTX)
    with pytest.raises(VerificationError, match=step1):
        verify_dleq_batch(Point.identity(), C1s, Ds, proof, CTX)
    with pytest.raises(VerificationError, match=step1):
        verify_dleq_batch(X, [Point.identity(), *C1s[1:]], [Point.identity(), *Ds[1:]], proof,
                          CTX)
    # a sub-vector or an extended vector is a different statement
    with pytest.raises(VerificationError, match=step3):
        verify_dleq_batch(X, C1s[:-1], Ds[:-1], proof, CTX)
    with pytest.raises(VerificationError, match=step3):
        verify_dleq_batch(X, C1s + C1s[:1], Ds + Ds[:1], proof, CTX)


def test_dleq_batch_cheating_prover_fails() -> None:
    """A node that knows x but publishes one wrong share cannot make an accepted proof."""
    x, X, C1s, Ds = _batch_setup(5)
    bad = [*Ds[:2], Ds[2] + base_mul(Scalar(7)), *Ds[3:]]
    with pytest.raises(VerificationError, match="dleq-batch step 3"):
        verify_dleq_batch(X, C1s, bad, prove_dleq_batch(x, X, C1s, bad, CTX), CTX)
    with pytest.raises(MalformedError):
        prove_dleq_batch(x, X, C1s, Ds[:-1], CTX)


def test_dleq_batch_weights_bind_every_statement_element() -> None:
    _x, X, C1s, Ds = _batch_setup(4)
    w = dleq_batch_weights(X, C1s, Ds, CTX)
    assert w[0] == Scalar(1) and len(set(w)) == 4
    assert w[2] == w[1] * w[1]
    variants = [
        (X + G, C1s, Ds, CTX),
        (X, [C1s[0] + G, *C1s[1:]], Ds, CTX),
        (X, C1s, [*Ds[:3], Ds[3] + G], CTX),
        (X, C1s, Ds, CTX + b"."),
    ]
    for v in variants:
        assert dleq_batch_weights(*v)[1] != w[1]


# -- 0/1 (CDS) -------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [0, 1])
def test_zero_one_accepts_and_rejects_twins(m: int) -> None:
    _x, X = keygen()
    r = Scalar.random()
    ct = encrypt(X, m, r)
    proof = prove_zero_one(X, ct, m, r, CTX)
    verify_zero_one(X, ct, proof, CTX)
    data = _roundtrip(proof, ZeroOneProof)
    _assert_all_rejected(data, ZeroOneProof.from_bytes, lambda p: verify_zero_one(X, ct, p, CTX))  # type: ignore[arg-type]


@pytest.mark.parametrize("m", [0, 1])
def test_zero_one_statement_twins(m: int) -> None:
    _x, X = keygen()
    _y, Y = keygen()
    r = Scalar.random()
    ct = encrypt(X, m, r)
    proof = prove_zero_one(X, ct, m, r, CTX)
    step2 = "zero-one step 2"
    for X2, ct2, ctx in [
        (Y, ct, CTX),  # other key
        (X, Ciphertext(ct.C2, ct.C1), CTX),  # C1 <-> C2
        (X, encrypt(X, m, r + Scalar(1)), CTX),  # other ciphertext, same plaintext
        (X, encrypt(X, 1 - m, r), CTX),  # the other bit, same r
        (X, ct + encrypt(X, 0), CTX),  # re-randomized
        (X, ct, CTX[:-1]),  # other context
    ]:
        with pytest.raises(VerificationError, match=step2):
            verify_zero_one(X2, ct2, proof, ctx)
    with pytest.raises(VerificationError, match="zero-one step 1"):
        verify_zero_one(Point.identity(), ct, proof, CTX)
    # swapping the branches is not a proof either
    swapped = ZeroOneProof(proof.c1, proof.c0, proof.s1, proof.s0)
    with pytest.raises(VerificationError, match=step2):
        verify_zero_one(X, ct, swapped, CTX)


@pytest.mark.parametrize("m", [2, -1, 5])
def test_zero_one_out_of_range_plaintexts_fail(m: int) -> None:
    _x, X = keygen()
    r = Scalar.random()
    ct = encrypt(X, m, r)
    with pytest.raises(MalformedError):
        prove_zero_one(X, ct, m, r, CTX)
    for claimed in (0, 1):  # the prover lies about the bit: the proof must not verify
        proof = prove_zero_one(X, ct, claimed, r, CTX)
        with pytest.raises(VerificationError, match="zero-one step 2"):
            verify_zero_one(X, ct, proof, CTX)
    with pytest.raises(MalformedError):
        prove_zero_one(X, ct, True, r, CTX)  # type: ignore[arg-type]


def test_zero_one_wrong_randomness_fails() -> None:
    _x, X = keygen()
    r = Scalar.random()
    ct = encrypt(X, 1, r)
    with pytest.raises(VerificationError):
        verify_zero_one(X, ct, prove_zero_one(X, ct, 1, r + Scalar(1), CTX), CTX)


# -- known plaintext -------------------------------------------------------------------------


@pytest.mark.parametrize("m", [0, 1, -7, 2**40, -(2**63)])
def test_plaintext_accepts_and_rejects_twins(m: int) -> None:
    _x, X = keygen()
    r = Scalar.random()
    ct = encrypt(X, m, r)
    proof = prove_plaintext(X, ct, m, r, CTX)
    verify_plaintext(X, ct, m, proof, CTX)
    data = _roundtrip(proof, PlaintextProof)
    _assert_all_rejected(
        data, PlaintextProof.from_bytes, lambda p: verify_plaintext(X, ct, m, p, CTX)  # type: ignore[arg-type]
    )
    for m2 in (m + 1, m - 1, -m if m else 1):
        with pytest.raises(VerificationError, match="plaintext step 2"):
            verify_plaintext(X, ct, m2, proof, CTX)
    with pytest.raises(VerificationError, match="plaintext step 2"):
        verify_plaintext(X, Ciphertext(ct.C2, ct.C1), m, proof, CTX)
    with pytest.raises(VerificationError, match="plaintext step 1"):
        verify_plaintext(Point.identity(), ct, m, proof, CTX)
    with pytest.raises(VerificationError):
        verify_plaintext(X, ct, m + 1, prove_plaintext(X, ct, m + 1, r, CTX), CTX)
