"""Property tests: honest proofs verify; any change of context or statement is rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.elgamal import decryption_share, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Scalar
from statledger.proofs.sigma import (
    DLEQBatchProof,
    prove_dleq_batch,
    prove_schnorr,
    prove_zero_one,
    verify_dleq_batch,
    verify_schnorr,
    verify_zero_one,
)

contexts = st.binary(max_size=40)
scalars = st.integers(min_value=1, max_value=2**256 - 1).map(
    lambda v: Scalar.reduce(v) if Scalar.reduce(v) else Scalar(1)
)


@settings(max_examples=20, deadline=None)
@given(scalars, contexts, contexts)
def test_schnorr_context_binding(x: Scalar, ctx: bytes, other: bytes) -> None:
    X = x * G
    proof = prove_schnorr(x, X, ctx)
    verify_schnorr(X, proof, ctx)
    if other != ctx:
        with pytest.raises(VerificationError):
            verify_schnorr(X, proof, other)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.data())
def test_dleq_batch_any_single_wrong_share_is_caught(k: int, data: st.DataObject) -> None:
    x, X = keygen()
    _m, M = keygen()
    cts = [encrypt(M, i) for i in range(k)]
    C1s = [c.C1 for c in cts]
    Ds = [decryption_share(x, c) for c in cts]
    proof = prove_dleq_batch(x, X, C1s, Ds, b"q")
    verify_dleq_batch(X, C1s, Ds, DLEQBatchProof.from_bytes(proof.to_bytes()), b"q")
    j = data.draw(st.integers(min_value=0, max_value=k - 1))
    delta = data.draw(scalars)
    bad = list(Ds)
    bad[j] = bad[j] + delta * G
    with pytest.raises(VerificationError):
        verify_dleq_batch(X, C1s, bad, proof, b"q")


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([0, 1]), st.integers(min_value=0, max_value=127), st.integers(0, 7))
def test_zero_one_bit_flips(m: int, pos: int, bit: int) -> None:
    _x, X = keygen()
    r = Scalar.random()
    ct = encrypt(X, m, r)
    proof = prove_zero_one(X, ct, m, r, b"ctx")
    verify_zero_one(X, ct, proof, b"ctx")
    raw = bytearray(proof.to_bytes())
    raw[pos] ^= 1 << bit
    with pytest.raises((MalformedError, VerificationError)):
        verify_zero_one(X, ct, type(proof).from_bytes(bytes(raw)), b"ctx")
