"""Property tests for the verifiable shuffle: plaintext multisets are preserved, any honest
witness verifies, any single change to the outputs or the proof is rejected."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.dlog import DlogTable
from statledger.proofs.elgamal import (
    Ciphertext,
    combine,
    decryption_share,
    encode_message,
    encrypt,
    keygen,
    rerandomize,
)
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar
from statledger.proofs.shuffle import ShuffleProof, prove_shuffle, shuffle, verify_shuffle

TABLE = DlogTable.build(1 << 10)
BOUND = 1 << 16
KEY = keygen()
plaintexts = st.lists(st.integers(min_value=-BOUND, max_value=BOUND), min_size=1, max_size=9)
nonzero_scalars = st.integers(min_value=1, max_value=2**256 - 1).map(
    lambda v: Scalar.reduce(v) if Scalar.reduce(v) else Scalar(1)
)


def _dec(c: Ciphertext) -> int:
    return TABLE.solve(combine(c, [decryption_share(KEY[0], c)]), BOUND)


def _encrypt_all(values: list[int], trivial: list[bool]) -> list[Ciphertext]:
    """Real encryptions, or trivial ones ``(O, m*G)`` (a public value, Drynx noise list)."""
    X = KEY[1]
    return [
        Ciphertext(Point.identity(), encode_message(m)) if t else encrypt(X, m)
        for m, t in zip(values, trivial, strict=True)
    ]


@settings(max_examples=25, deadline=None)
@given(plaintexts, st.data())
def test_decrypted_outputs_are_the_same_multiset(values: list[int], data: st.DataObject) -> None:
    trivial = data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
    ins = _encrypt_all(values, trivial)
    outs, proof = shuffle(KEY[1], ins, context=b"prop")
    verify_shuffle(KEY[1], ins, outs, ShuffleProof.from_bytes(proof.to_bytes(), len(ins)),
                   b"prop")
    assert Counter(_dec(c) for c in outs) == Counter(values)


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=8), st.data())
def test_any_honest_witness_verifies(n: int, data: st.DataObject) -> None:
    X = KEY[1]
    values = data.draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n))
    perm = data.draw(st.permutations(list(range(n))))
    rs = data.draw(st.lists(nonzero_scalars, min_size=n, max_size=n))
    ctx = data.draw(st.binary(max_size=24))
    ins = [encrypt(X, m) for m in values]
    outs = [rerandomize(X, ins[perm[i]], rs[i]) for i in range(n)]
    proof = prove_shuffle(X, ins, outs, perm, rs, ctx)
    verify_shuffle(X, ins, outs, proof, ctx)
    assert [_dec(c) for c in outs] == [values[p] for p in perm]
    other = data.draw(st.binary(max_size=24))
    if other != ctx:
        with pytest.raises(VerificationError, match="shuffle step 3"):
            verify_shuffle(X, ins, outs, proof, other)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.data())
def test_any_single_tampered_output_is_caught(n: int, data: st.DataObject) -> None:
    X = KEY[1]
    ins = [encrypt(X, m) for m in range(n)]
    outs, proof = shuffle(X, ins, context=b"q")
    j = data.draw(st.integers(min_value=0, max_value=n - 1))
    delta = data.draw(nonzero_scalars)
    which = data.draw(st.sampled_from(["C1", "C2", "both"]))
    bad = list(outs)
    D = delta * G
    if which == "C1":
        bad[j] = Ciphertext(outs[j].C1 + D, outs[j].C2)
    elif which == "C2":
        bad[j] = Ciphertext(outs[j].C1, outs[j].C2 + D)
    else:  # a valid re-randomisation of the same plaintext: still not what was proved
        bad[j] = Ciphertext(outs[j].C1 + D, outs[j].C2 + delta * X)
    with pytest.raises(VerificationError):
        verify_shuffle(X, ins, bad, proof, b"q")


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=4), st.data())
def test_any_single_bit_flip_of_the_proof_is_caught(n: int, data: st.DataObject) -> None:
    X = KEY[1]
    ins = [encrypt(X, m) for m in range(n)]
    outs, proof = shuffle(X, ins, context=b"q")
    raw = bytearray(proof.to_bytes())
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises((MalformedError, VerificationError)):
        verify_shuffle(X, ins, outs, ShuffleProof.from_bytes(bytes(raw), n), b"q")


@settings(max_examples=10, deadline=None)
@given(plaintexts, st.integers(min_value=2, max_value=4))
def test_a_chain_of_shuffles_preserves_the_multiset(values: list[int], nodes: int) -> None:
    X = KEY[1]
    current = [encrypt(X, m) for m in values]
    for k in range(nodes):
        nxt, proof = shuffle(X, current, context=b"node-%d" % k)
        verify_shuffle(X, current, nxt, proof, b"node-%d" % k)
        current = nxt
    assert sorted(_dec(c) for c in current) == sorted(values)
