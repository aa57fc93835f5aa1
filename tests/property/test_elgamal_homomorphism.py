"""Property tests: exponential ElGamal is additively homomorphic and decrypts exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.dlog import DlogTable
from statledger.proofs.elgamal import (
    Ciphertext,
    combine,
    decryption_share,
    encrypt,
    join_limbs,
    keygen,
    rerandomize,
    split_limbs,
)
from statledger.proofs.group import Scalar

TABLE = DlogTable.build(1 << 12)
BOUND = 2**22  # 256 giant steps at most
KEY = keygen()
small = st.integers(min_value=-(2**20), max_value=2**20)


def _dec(c: Ciphertext, bound: int = BOUND) -> int:
    x, _ = KEY
    return TABLE.solve(combine(c, [decryption_share(x, c)]), bound)


@settings(max_examples=25, deadline=None)
@given(small, small)
def test_add_sub(a: int, b: int) -> None:
    X = KEY[1]
    ca, cb = encrypt(X, a), encrypt(X, b)
    assert _dec(ca + cb) == a + b
    assert _dec(ca - cb) == a - b
    assert _dec(-ca) == -a


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=-(2**10), max_value=2**10), st.integers(-(2**11), 2**11))
def test_scalar_mult(m: int, k: int) -> None:
    c = encrypt(KEY[1], m)
    assert _dec(c * k) == m * k
    assert _dec(k * c) == m * k


@settings(max_examples=20, deadline=None)
@given(small, st.integers(min_value=1, max_value=2**255))
def test_rerandomize_and_encoding(m: int, r: int) -> None:
    X = KEY[1]
    c = encrypt(X, m, Scalar.reduce(r) if Scalar.reduce(r) else Scalar(1))
    d = rerandomize(X, c)
    assert d != c
    assert Ciphertext.from_bytes(d.to_bytes()) == d
    assert _dec(d) == m


@settings(max_examples=20, deadline=None)
@given(st.lists(small, min_size=1, max_size=6))
def test_n_of_n_sum(ms: list[int]) -> None:
    keys = [keygen() for _ in range(3)]
    X = keys[0][1] + keys[1][1] + keys[2][1]
    total = Ciphertext.zero()
    for m in ms:
        total = total + encrypt(X, m)
    M = combine(total, [decryption_share(x, total) for x, _ in keys])
    assert TABLE.solve(M, 6 * 2**20) == sum(ms)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=1, max_value=32))
def test_limbs_roundtrip(u: int, bits: int) -> None:
    n = max(1, -(-u.bit_length() // bits))
    limbs = split_limbs(u, bits, n)
    assert all(0 <= limb < 2**bits for limb in limbs)
    assert join_limbs(limbs, bits) == u
