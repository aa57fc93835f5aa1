"""Exponential ElGamal: encoding, homomorphisms, shares, exact decryption, limbs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import numpy as np
import pytest

from statledger.proofs import dlog
from statledger.proofs.elgamal import (
    CIPHERTEXT_BYTES,
    Ciphertext,
    combine,
    decrypt,
    decryption_share,
    discrete_log,
    encode_message,
    encrypt,
    encrypt_vector,
    join_limbs,
    keygen,
    rerandomize,
    split_limbs,
)
from statledger.proofs.errors import DecryptionError, MalformedError
from statledger.proofs.group import FIELD, ORDER, G, Point, Scalar, base_mul

T = 1 << 14  # small table for these tests: bound 2^24 needs 512 giant steps


@pytest.fixture(scope="module", autouse=True)
def _tmp_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tables built by this module go to a temporary cache, not ~/.cache/statledger."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STATLEDGER_CACHE", str(tmp_path_factory.mktemp("dlogcache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def default_table() -> None:
    """The default 2^20 table (built once per process, ~2-4 s)."""
    dlog.get_table()


def test_roundtrip_encoding() -> None:
    x, X = keygen()
    c = encrypt(X, -42)
    data = c.to_bytes()
    assert len(data) == CIPHERTEXT_BYTES == 66
    assert Ciphertext.from_bytes(data) == c
    assert Ciphertext.from_bytes(bytearray(data)) == c
    assert Ciphertext.from_bytes(Ciphertext.zero().to_bytes()) == Ciphertext.zero()
    assert decrypt(x, Ciphertext.from_bytes(data), 100, table_size=T) == -42


def _bad_encodings(data: bytes) -> list[bytes]:
    x_off = int.from_bytes(data[1:33], "big")
    off_curve = next(i for i in range(5, 1000) if pow(i**3 + 7, (FIELD - 1) // 2, FIELD) != 1)
    return [
        data[:-1],
        data + b"\x00",
        b"\x00" + data,
        b"",
        data[:33],
        data[33:] + data,
        b"\x04" + data[1:],  # bad prefix
        data[:33] + b"\x05" + data[34:],
        data[:1] + FIELD.to_bytes(32, "big") + data[33:],  # x >= p
        data[:1] + off_curve.to_bytes(32, "big") + data[33:],  # x not on curve
        data[:33] + b"\x02" + off_curve.to_bytes(32, "big"),
        bytes(33) + b"\x02" + bytes(32),  # "identity" with a prefix byte
        b"\x01" + bytes(32) + data[33:],
        data[:1] + (x_off ^ (1 << 255)).to_bytes(32, "big") + data[33:],
    ]


def test_strict_decoding_rejects() -> None:
    _x, X = keygen()
    data = encrypt(X, 7).to_bytes()
    rejected = 0
    for bad in _bad_encodings(data):
        try:
            Ciphertext.from_bytes(bad)
        except MalformedError:
            rejected += 1
        else:  # a flipped top bit may still be a valid x: it must then decode differently
            assert Ciphertext.from_bytes(bad).to_bytes() == bad != data
    assert rejected >= len(_bad_encodings(data)) - 1
    with pytest.raises(MalformedError):
        Ciphertext.from_bytes("00" * 66)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ciphertext(G, 1)  # type: ignore[arg-type]


def test_every_single_bit_flip_changes_or_rejects() -> None:
    _x, X = keygen()
    c = encrypt(X, 1)
    data = c.to_bytes()
    for i in range(len(data)):
        for bit in (0, 7):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            try:
                d = Ciphertext.from_bytes(bytes(bad))
            except MalformedError:
                continue
            assert d != c


def test_homomorphisms() -> None:
    x, X = keygen()
    a, b = encrypt(X, 1000), encrypt(X, -250)
    assert decrypt(x, a + b, 10**6, table_size=T) == 750
    assert decrypt(x, a - b, 10**6, table_size=T) == 1250
    assert decrypt(x, -a, 10**6, table_size=T) == -1000
    assert decrypt(x, a * -3, 10**6, table_size=T) == -3000
    assert decrypt(x, 7 * b, 10**6, table_size=T) == -1750
    assert decrypt(x, a * 0, 10**6, table_size=T) == 0
    assert a + Ciphertext.zero() == a
    r = rerandomize(X, a)
    assert r != a and r.C1 != a.C1
    assert decrypt(x, r, 10**6, table_size=T) == 1000
    assert (a.__mul__(1.5)) is NotImplemented  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = a + 1  # type: ignore[operator]


def test_encrypt_known_randomness_and_signed_encoding() -> None:
    x, X = keygen()
    r = Scalar(12345)
    c = encrypt(X, -5, r)
    assert c.C1 == base_mul(r)
    assert c.C2 == -(base_mul(Scalar(5))) + r * X
    assert encode_message(-5) == -base_mul(Scalar(5)) == base_mul(Scalar(ORDER - 5))
    assert encode_message(0) == Point.identity()
    with pytest.raises(MalformedError):
        encode_message(ORDER // 2 + 1)
    with pytest.raises(MalformedError):
        encode_message(-(ORDER // 2) - 1)
    with pytest.raises(TypeError):
        encode_message(True)
    with pytest.raises(MalformedError):
        encrypt(Point.identity(), 1)
    with pytest.raises(TypeError):
        encrypt(X, 1, 5)  # type: ignore[arg-type]
    assert decrypt(x, c, 5, table_size=T) == -5
    with pytest.raises(DecryptionError):
        decrypt(x, c, 4, table_size=T)
    _y, Y = keygen()
    assert c != encrypt(Y, -5, r)  # same r, other key


def test_fresh_randomness() -> None:
    _x, X = keygen()
    assert len({encrypt(X, 1).to_bytes() for _ in range(20)}) == 20


def test_encrypt_vector() -> None:
    x, X = keygen()
    vals = [0, 1, -1, 2**20, -(2**20)]
    cs = encrypt_vector(X, vals)
    assert [decrypt(x, c, 2**21, table_size=T) for c in cs] == vals
    rs = [Scalar(i + 1) for i in range(len(vals))]
    assert encrypt_vector(X, vals, rs) == [encrypt(X, v, r) for v, r in zip(vals, rs, strict=True)]
    with pytest.raises(MalformedError):
        encrypt_vector(X, vals, rs[:-1])


def test_n_of_n_shares_combine() -> None:
    keys = [keygen() for _ in range(3)]
    X = keys[0][1] + keys[1][1] + keys[2][1]
    c = encrypt(X, 123) + encrypt(X, -23)
    shares = [decryption_share(x, c) for x, _ in keys]
    M = combine(c, shares)
    assert M == base_mul(Scalar(100))
    assert discrete_log(M, 1000, table_size=T) == 100
    # a missing or wrong share gives a point that is not the plaintext: dlog raises
    with pytest.raises(DecryptionError):
        discrete_log(combine(c, shares[:2]), 1000, table_size=T)
    with pytest.raises(DecryptionError):
        discrete_log(combine(c, [shares[0], shares[1], shares[2] + G + G]), 1, table_size=T)
    assert combine(c, []) == c.C2
    with pytest.raises(TypeError):
        decryption_share(5, c)  # type: ignore[arg-type]


# -- limbs -----------------------------------------------------------------------------------


def test_split_join_limbs() -> None:
    assert split_limbs(0, 16, 4) == [0, 0, 0, 0]
    assert split_limbs(2**64 - 1, 16, 4) == [65535] * 4
    assert split_limbs(0x1234_5678, 16, 2) == [0x5678, 0x1234]
    assert join_limbs([0x5678, 0x1234], 16) == 0x1234_5678
    assert join_limbs([2**20, 3], 16) == 2**20 + 3 * 2**16  # oversized limbs are fine
    assert join_limbs([], 16) == 0
    for _ in range(50):
        u = secrets.randbits(64)
        assert join_limbs(split_limbs(u, 16, 4), 16) == u
        assert join_limbs(split_limbs(u, 13, 5), 13) == u


@pytest.mark.parametrize(
    ("u", "bits", "n"),
    [(2**64, 16, 4), (-1, 16, 4), (2**16, 16, 1), (1, 0, 4), (1, 16, 0), (2**13, 13, 1)],
)
def test_split_limbs_rejects(u: int, bits: int, n: int) -> None:
    with pytest.raises(MalformedError):
        split_limbs(u, bits, n)


def test_split_limbs_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        split_limbs(1.0, 16, 4)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        join_limbs([1, 2.0], 16)  # type: ignore[list-item]
    with pytest.raises(MalformedError):
        join_limbs([1], 0)


SHIFT = 2**63  # signed 64-bit -> [0, 2^64)
LIMB_BITS, N_LIMBS = 16, 4
N_CONTRIB = 2**16


def test_sum_of_2_16_signed_64bit_values_plaintext_limb_level() -> None:
    """Plaintext/limb level: 2^16 random signed 64-bit values (plus the extremes), split into
    4 limbs of 16 bits, limb-wise summed (each limb sum < 2^32), joined and unshifted."""
    rng = np.random.default_rng(secrets.randbits(64))
    vals = [int(v) for v in rng.integers(-(2**63), 2**63, size=N_CONTRIB - 2, dtype=np.int64)]
    vals += [2**63 - 1, -(2**63)]
    sums = [0] * N_LIMBS
    for v in vals:
        for i, limb in enumerate(split_limbs(v + SHIFT, LIMB_BITS, N_LIMBS)):
            sums[i] += limb
    assert max(sums) < 2**32
    assert join_limbs(sums, LIMB_BITS) - N_CONTRIB * SHIFT == sum(vals)


@pytest.mark.usefixtures("default_table")
@pytest.mark.parametrize("kind", ["all-max", "all-min", "mixed"])
def test_sum_of_2_16_signed_64bit_values_real_encryption(kind: str) -> None:
    """Real ElGamal: 2^16 contributions built from a few distinct values with multiplicities
    (k copies of Enc(limb) aggregated as k*Enc(limb), a true homomorphic sum), limb sums up to
    (2^16)(2^16 - 1) < 2^32, decrypted with the default table and the 2^32 bound."""
    x, X = keygen()
    if kind == "all-max":
        groups = [(2**63 - 1, N_CONTRIB)]
    elif kind == "all-min":
        groups = [(-(2**63), N_CONTRIB)]
    else:
        groups = [(2**63 - 1, 2**15), (-(2**63), 2**14), (secrets.randbits(63), 2**14 - 1),
                  (-12345, 1)]
    assert sum(k for _, k in groups) == N_CONTRIB
    agg = [Ciphertext.zero()] * N_LIMBS
    for v, k in groups:
        cts = encrypt_vector(X, split_limbs(v + SHIFT, LIMB_BITS, N_LIMBS))
        agg = [a + c * k for a, c in zip(agg, cts, strict=True)]
    shares = [decryption_share(x, c) for c in agg]
    points = [combine(c, [d]) for c, d in zip(agg, shares, strict=True)]
    limb_sums = dlog.discrete_log_many(points, 2**32)
    total = join_limbs(limb_sums, LIMB_BITS) - N_CONTRIB * SHIFT
    assert total == sum(v * k for v, k in groups)
