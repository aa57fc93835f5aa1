"""statledger.proofs.group: Scalar / Point encodings, strict decoding (reject twins), identity
rules."""

from __future__ import annotations

import copy
import pickle

import pytest

from statledger.proofs.errors import MalformedError
from statledger.proofs.group import (
    FIELD,
    ORDER,
    G,
    H,
    Point,
    Scalar,
    base_mul,
    generator,
    generators,
)

# secp256k1 x-coordinates: x = 5 has x^3 + 7 = 132, a non-residue mod p (no point);
# the standard G's x is on the curve.
GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8


def _off_curve_x() -> int:
    x = 1
    while pow((x**3 + 7) % FIELD, (FIELD - 1) // 2, FIELD) == 1:
        x += 1
    return x


# ---------------------------------------------------------------- Scalar


def test_scalar_range_checks() -> None:
    Scalar(0)
    Scalar(ORDER - 1)
    for bad in (-1, ORDER, ORDER + 1, 2**256 - 1):
        with pytest.raises(MalformedError):
            Scalar(bad)
    with pytest.raises(TypeError):
        Scalar(True)
    with pytest.raises(TypeError):
        Scalar(1.0)  # type: ignore[arg-type]


def test_scalar_reduce() -> None:
    assert Scalar.reduce(ORDER) == Scalar(0)
    assert Scalar.reduce(-1) == Scalar(ORDER - 1)
    assert Scalar.reduce(2**300) == Scalar(2**300 % ORDER)


def test_scalar_bytes_roundtrip_and_strictness() -> None:
    for v in (0, 1, 2**255, ORDER - 1):
        s = Scalar(v)
        b = s.to_bytes()
        assert len(b) == 32 and Scalar.from_bytes(b) == s
    good = Scalar(12345).to_bytes()
    for n in range(0, 35):
        if n == 32:
            continue
        with pytest.raises(MalformedError):
            Scalar.from_bytes(bytes(n))
    with pytest.raises(MalformedError):
        Scalar.from_bytes(good + b"\x00")  # trailing byte
    with pytest.raises(MalformedError):
        Scalar.from_bytes(b"\x00" + good)  # garbage before
    with pytest.raises(MalformedError):
        Scalar.from_bytes(good[:-1])  # truncated
    for v in (ORDER, ORDER + 1, 2**256 - 1):
        with pytest.raises(MalformedError):
            Scalar.from_bytes(v.to_bytes(32, "big"))
    with pytest.raises(MalformedError):
        Scalar.from_bytes("00" * 32)  # type: ignore[arg-type]


def test_scalar_arith_and_identity_rules() -> None:
    a, b = Scalar(5), Scalar(ORDER - 3)
    assert a + b == Scalar(2)
    assert a - b == Scalar(8)
    assert b - a == Scalar(ORDER - 8)
    assert a * b == Scalar.reduce(-15)
    assert -a == Scalar(ORDER - 5) and a.neg() == -a
    assert -Scalar(0) == Scalar(0)
    assert a * a.inverse() == Scalar(1)
    assert a**-1 == a.inverse() and a**3 == a * a * a
    with pytest.raises(ZeroDivisionError):
        Scalar(0).inverse()
    assert int(a) == 5
    assert hash(Scalar(7)) == hash(Scalar(7))
    assert Scalar(7) != 7  # no implicit ints
    assert not Scalar(0) and Scalar(1) and Scalar(0).is_zero()


def test_scalar_ints_do_not_mix() -> None:
    with pytest.raises(TypeError):
        _ = Scalar(1) + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = Scalar(1) * 2  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = 2 * Scalar(1)  # type: ignore[operator]


def test_scalar_random_nonzero_and_distinct() -> None:
    rs = {Scalar.random() for _ in range(50)}
    assert len(rs) == 50 and all(not r.is_zero() for r in rs)


def test_scalar_and_point_are_immutable_and_picklable() -> None:
    s = Scalar(3)
    with pytest.raises(AttributeError):
        s._v = 4  # type: ignore[misc]
    with pytest.raises(AttributeError):
        G._pk = None  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s
    P = base_mul(Scalar(99))
    assert pickle.loads(pickle.dumps(P)) == P
    assert pickle.loads(pickle.dumps(Point.identity())).is_identity()
    assert copy.deepcopy(P) == P
    with pytest.raises(TypeError):
        Point()


# ---------------------------------------------------------------- Point encoding


def test_generator_encoding() -> None:
    assert G.to_affine() == (GX, GY)
    assert G.to_bytes() == bytes([2 + (GY & 1)]) + GX.to_bytes(32, "big")
    assert Point.G is G


def test_point_roundtrip() -> None:
    for k in (1, 2, 3, ORDER - 1, 2**200 + 17):
        P = base_mul(Scalar(k))
        b = P.to_bytes()
        assert len(b) == 33 and b[0] in (2, 3)
        Q = Point.from_bytes(b)
        assert Q == P and Q.to_bytes() == b and hash(Q) == hash(P)
        assert Point.from_affine(*P.to_affine()) == P  # type: ignore[misc]


def test_identity_encoding_and_rules() -> None:
    O = Point.identity()
    assert O.to_bytes() == bytes(33)
    assert Point.from_bytes(bytes(33)) == O and O.is_identity()
    assert O.to_affine() is None
    P = base_mul(Scalar(7))
    assert P + O == P and O + P == P and O + O == O
    assert P - P == O and P + (-P) == O
    assert -O == O
    assert Scalar(0) * P == O and P * Scalar(0) == O
    assert Scalar(5) * O == O
    assert base_mul(Scalar(0)) == O
    assert Scalar(ORDER - 1) * P == -P
    assert O != G and hash(O) != hash(G)


@pytest.mark.parametrize("n", [n for n in range(0, 35) if n != 33] + [65])
def test_point_wrong_length_rejected(n: int) -> None:
    with pytest.raises(MalformedError):
        Point.from_bytes(bytes(n))
    with pytest.raises(MalformedError):
        Point.from_bytes(G.to_bytes()[:n] if n < 33 else G.to_bytes() + bytes(n - 33))


@pytest.mark.parametrize("prefix", [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0xFF])
def test_point_bad_prefix_rejected(prefix: int) -> None:
    with pytest.raises(MalformedError):
        Point.from_bytes(bytes([prefix]) + G.to_bytes()[1:])


def test_identity_lookalikes_rejected() -> None:
    # a single nonzero byte anywhere in an all-zero encoding is not the identity
    for i in range(33):
        b = bytearray(33)
        b[i] = 1
        with pytest.raises(MalformedError):
            Point.from_bytes(bytes(b))
    for prefix in (2, 3):  # x = 0: 0^3 + 7 = 7 is not a square mod p
        with pytest.raises(MalformedError):
            Point.from_bytes(bytes([prefix]) + bytes(32))


def test_point_x_not_below_p_rejected() -> None:
    for x in (FIELD, FIELD + 1, 2**256 - 1, FIELD + GX % (2**256 - FIELD)):
        if x >= 2**256:
            continue
        for prefix in (2, 3):
            with pytest.raises(MalformedError):
                Point.from_bytes(bytes([prefix]) + x.to_bytes(32, "big"))
    # x + p for a valid small x (x + p < 2^256) would alias a curve point: must be rejected
    x = 1
    while pow((x**3 + 7) % FIELD, (FIELD - 1) // 2, FIELD) != 1:
        x += 1
    Point.from_bytes(b"\x02" + x.to_bytes(32, "big"))  # valid
    with pytest.raises(MalformedError):
        Point.from_bytes(b"\x02" + (x + FIELD).to_bytes(32, "big"))


def test_point_x_off_curve_rejected() -> None:
    x = _off_curve_x()
    for prefix in (2, 3):
        with pytest.raises(MalformedError):
            Point.from_bytes(bytes([prefix]) + x.to_bytes(32, "big"))


def test_point_bit_flips_never_decode_to_the_same_point() -> None:
    b = base_mul(Scalar(424242)).to_bytes()
    P = Point.from_bytes(b)
    for i in range(33 * 8):
        f = bytearray(b)
        f[i // 8] ^= 1 << (i % 8)
        try:
            Q = Point.from_bytes(bytes(f))
        except MalformedError:
            continue
        assert Q != P


def test_point_from_affine_rejects_off_curve() -> None:
    with pytest.raises(MalformedError):
        Point.from_affine(GX, GY + 1)
    with pytest.raises(MalformedError):
        Point.from_affine(GX, GY + FIELD)


def test_point_type_errors() -> None:
    with pytest.raises(TypeError):
        _ = G * 3  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = 3 * G  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = G + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        base_mul(3)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        Point.from_bytes("02" * 33)  # type: ignore[arg-type]


# ---------------------------------------------------------------- generators


def test_generators_independent_cached_and_prefix_stable() -> None:
    gs = generators(b"test/vec", 6)
    assert len(gs) == 6 and len(set(gs)) == 6
    assert G not in gs and H not in gs
    assert generators(b"test/vec", 3) == gs[:3]
    assert generators(b"test/vec", 8)[:6] == gs
    assert generators(b"test/vec2", 2) != gs[:2]
    assert generator(b"x") == generator(b"x") and generator(b"x") != generator(b"y")
    assert H == generator(b"statledger/pedersen/H") and H != G
    assert generators(b"test/vec", 0) == []
    with pytest.raises(TypeError):
        generator("x")  # type: ignore[arg-type]
