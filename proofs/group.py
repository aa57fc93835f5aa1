"""The prime-order group: secp256k1 through libsecp256k1 (coincurve's cffi layer).

Notation (see ``docs/notes/notation.md`` and ``docs/notes/group.md``):

* ``FIELD`` = p, the base-field prime; ``ORDER`` = n, the prime group order (cofactor 1).
* :class:`Scalar` -- an element of Z_n, immutable.  ``Scalar(v)`` requires 0 <= v < n;
  :meth:`Scalar.reduce` reduces any int.  Encoding: 32 bytes big-endian, strict.
* :class:`Point` -- an element of the group, immutable, including the identity O.
  Encoding: 33-byte compressed SEC1 (``02``/``03`` || x); the identity is 33 zero bytes.
  Decoding is strict: wrong length, bad prefix, x >= p, x not on the curve ->
  :class:`~statledger.proofs.errors.MalformedError`.
* ``G`` the standard base point; ``H`` = ``generator(b"statledger/pedersen/H")``, a second
  generator whose discrete log to ``G`` nobody knows (derived by RFC 9380 hash-to-curve).

Cost model (this machine, docs/notes/group.md): base_mul ~15 us (constant time), variable-base
mult ~26 us, add ~3 us, neg ~0.8 us, decode ~5 us, hash_to_curve ~116 us (~59 us batched in
``generators``).  Scalar arithmetic is Python int arithmetic.

Side channels: base_mul uses libsecp256k1's constant-time generator multiplication; the
variable-base multiplication (tweak_mul) is libsecp256k1's and is constant time as well;
Scalar arithmetic in Python is *not* constant time (README, "What is and is not protected").
"""

from __future__ import annotations

import hashlib
import multiprocessing
import secrets
import struct
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ClassVar, NoReturn

from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from statledger.proofs.errors import MalformedError
from statledger.settings import get_settings

__all__ = [
    "ORDER",
    "FIELD",
    "Scalar",
    "Point",
    "G",
    "H",
    "base_mul",
    "msm",
    "sum_points",
    "hash_to_curve",
    "encode_to_curve",
    "hash_to_field",
    "expand_message_xmd",
    "map_to_curve",
    "generator",
    "generators",
    "GENERATOR_DST",
    "GENERATORS_DST",
    "shutdown_workers",
]

ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
FIELD = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
_CURVE_B = 7

_CTX: Any = GLOBAL_CONTEXT.ctx
_COMPRESSED: int = lib.SECP256K1_EC_COMPRESSED
_UNCOMPRESSED: int = lib.SECP256K1_EC_UNCOMPRESSED
_IDENTITY_BYTES = bytes(33)
SCALAR_BYTES = 32
POINT_BYTES = 33


def _frozen(self: object, name: str, value: object) -> NoReturn:
    raise AttributeError(f"{type(self).__name__} is immutable")


# --------------------------------------------------------------------------------------------
# Scalars
# --------------------------------------------------------------------------------------------


class Scalar:
    """An element of Z_n (n = ORDER).  Immutable; ints never mix with it implicitly."""

    __slots__ = ("_v",)
    _v: int
    __setattr__ = _frozen

    def __init__(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("Scalar(value) needs an int; use Scalar.reduce for any int")
        if not 0 <= value < ORDER:
            raise MalformedError("scalar out of range: need 0 <= v < n")
        object.__setattr__(self, "_v", value)

    @classmethod
    def _unchecked(cls, value: int) -> Scalar:
        s = object.__new__(cls)
        object.__setattr__(s, "_v", value)
        return s

    @classmethod
    def reduce(cls, value: int) -> Scalar:
        """``value mod n`` (any int, negative allowed)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("Scalar.reduce needs an int")
        return cls._unchecked(value % ORDER)

    @classmethod
    def random(cls) -> Scalar:
        """A uniformly random *nonzero* scalar from ``secrets``."""
        return cls._unchecked(secrets.randbelow(ORDER - 1) + 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> Scalar:
        """Strict inverse of :meth:`to_bytes`: exactly 32 bytes, big-endian, value < n."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("scalar encoding must be bytes")
        if len(data) != SCALAR_BYTES:
            raise MalformedError(f"scalar encoding must be 32 bytes, got {len(data)}")
        v = int.from_bytes(data, "big")
        if v >= ORDER:
            raise MalformedError("scalar encoding >= group order (non-canonical)")
        return cls._unchecked(v)

    def to_bytes(self) -> bytes:
        return self._v.to_bytes(SCALAR_BYTES, "big")

    def __int__(self) -> int:
        return self._v

    def is_zero(self) -> bool:
        return self._v == 0

    def __bool__(self) -> bool:
        return self._v != 0

    def __add__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar._unchecked((self._v + other._v) % ORDER)

    def __sub__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar._unchecked((self._v - other._v) % ORDER)

    def __mul__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented
        return Scalar._unchecked((self._v * other._v) % ORDER)

    def __neg__(self) -> Scalar:
        return Scalar._unchecked((-self._v) % ORDER)

    def __pow__(self, exponent: int) -> Scalar:
        if isinstance(exponent, bool) or not isinstance(exponent, int):
            return NotImplemented
        if exponent < 0 and self._v == 0:
            raise ZeroDivisionError("zero scalar has no inverse")
        return Scalar._unchecked(pow(self._v, exponent, ORDER))

    def neg(self) -> Scalar:
        return -self

    def inverse(self) -> Scalar:
        """Multiplicative inverse mod n; raises ``ZeroDivisionError`` for zero."""
        if self._v == 0:
            raise ZeroDivisionError("zero scalar has no inverse")
        return Scalar._unchecked(pow(self._v, -1, ORDER))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scalar):
            return NotImplemented
        return self._v == other._v

    def __hash__(self) -> int:
        return hash((Scalar, self._v))

    def __repr__(self) -> str:
        return f"Scalar(0x{self._v:064x})"

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (Scalar, (self._v,))

    def __copy__(self) -> Scalar:
        return self

    def __deepcopy__(self, memo: object) -> Scalar:
        return self


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------


def _new_pk() -> Any:
    return ffi.new("secp256k1_pubkey *")


def _copy_pk(pk: Any) -> Any:
    return ffi.new("secp256k1_pubkey *", pk[0])


class Point:
    """A point of secp256k1 (including the identity).  Immutable.

    Internally a libsecp256k1 ``secp256k1_pubkey`` (64-byte parsed form, never re-parsed)
    or ``None`` for the identity, which libsecp256k1 cannot represent.
    """

    __slots__ = ("_pk", "_enc")
    _pk: Any
    _enc: bytes | None
    __setattr__ = _frozen

    G: ClassVar[Point]

    def __init__(self) -> None:
        raise TypeError("use Point.identity(), Point.from_bytes(), G, base_mul, ...")

    @classmethod
    def _wrap(cls, pk: Any, enc: bytes | None = None) -> Point:
        p = object.__new__(cls)
        object.__setattr__(p, "_pk", pk)
        object.__setattr__(p, "_enc", enc)
        return p

    @classmethod
    def identity(cls) -> Point:
        return _IDENTITY

    def is_identity(self) -> bool:
        return self._pk is None

    # -- encoding ---------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data: bytes) -> Point:
        """Strict inverse of :meth:`to_bytes` (33 bytes; identity = 33 zero bytes)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("point encoding must be bytes")
        data = bytes(data)
        if len(data) != POINT_BYTES:
            raise MalformedError(f"point encoding must be 33 bytes, got {len(data)}")
        if data == _IDENTITY_BYTES:
            return _IDENTITY
        if data[0] not in (2, 3):
            raise MalformedError(f"bad point prefix 0x{data[0]:02x} (need 02 or 03)")
        if int.from_bytes(data[1:], "big") >= FIELD:
            raise MalformedError("point x-coordinate >= p (non-canonical)")
        pk = _new_pk()
        if lib.secp256k1_ec_pubkey_parse(_CTX, pk, data, POINT_BYTES) != 1:
            raise MalformedError("point x-coordinate is not on secp256k1")
        return cls._wrap(pk, data)

    def to_bytes(self) -> bytes:
        enc = self._enc
        if enc is None:
            if self._pk is None:  # pragma: no cover - identity always carries its encoding
                return _IDENTITY_BYTES
            enc = _serialize(self._pk, _COMPRESSED, 33)
            object.__setattr__(self, "_enc", enc)
        return enc

    def to_affine(self) -> tuple[int, int] | None:
        """``(x, y)`` as ints, or ``None`` for the identity."""
        if self._pk is None:
            return None
        raw = _serialize(self._pk, _UNCOMPRESSED, 65)
        return int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")

    @classmethod
    def from_affine(cls, x: int, y: int) -> Point:
        """The point (x, y); raises :class:`MalformedError` if it is not on the curve."""
        if not (0 <= x < FIELD and 0 <= y < FIELD):
            raise MalformedError("affine coordinate out of range")
        if (y * y - x * x * x - _CURVE_B) % FIELD != 0:
            raise MalformedError("affine point is not on secp256k1")
        raw = b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
        pk = _new_pk()
        if lib.secp256k1_ec_pubkey_parse(_CTX, pk, raw, 65) != 1:  # pragma: no cover
            raise MalformedError("affine point rejected by libsecp256k1")
        return cls._wrap(pk)

    # -- group law --------------------------------------------------------------------------

    def __add__(self, other: Point) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        if self._pk is None:
            return other
        if other._pk is None:
            return self
        return _combine([self._pk, other._pk])

    def __neg__(self) -> Point:
        if self._pk is None:
            return self
        pk = _copy_pk(self._pk)
        lib.secp256k1_ec_pubkey_negate(_CTX, pk)
        enc = self._enc
        if enc is not None:
            enc = bytes((enc[0] ^ 1,)) + enc[1:]
        return Point._wrap(pk, enc)

    def neg(self) -> Point:
        return -self

    def __sub__(self, other: Point) -> Point:
        if not isinstance(other, Point):
            return NotImplemented
        return self + (-other)

    def __mul__(self, k: Scalar) -> Point:
        if not isinstance(k, Scalar):
            return NotImplemented
        return _mul(self, k._v)

    def __rmul__(self, k: Scalar) -> Point:
        if not isinstance(k, Scalar):
            return NotImplemented
        return _mul(self, k._v)

    # -- comparison -------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Point):
            return NotImplemented
        if self is other:
            return True
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash((Point, self.to_bytes()))

    def __repr__(self) -> str:
        return f"Point({self.to_bytes().hex()})"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (Point.from_bytes, (self.to_bytes(),))

    def __copy__(self) -> Point:
        return self

    def __deepcopy__(self, memo: object) -> Point:
        return self


_IDENTITY = Point._wrap(None, _IDENTITY_BYTES)


def _serialize(pk: Any, flags: int, size: int) -> bytes:
    out = ffi.new("unsigned char[]", size)
    outlen = ffi.new("size_t *", size)
    lib.secp256k1_ec_pubkey_serialize(_CTX, out, outlen, pk, flags)
    return bytes(ffi.buffer(out, size))


def _combine(pks: Sequence[Any]) -> Point:
    """Sum of >= 1 non-identity points in one libsecp256k1 call (identity if it cancels)."""
    out = _new_pk()
    arr = ffi.new("secp256k1_pubkey *[]", list(pks))
    if lib.secp256k1_ec_pubkey_combine(_CTX, out, arr, len(pks)) != 1:
        return _IDENTITY  # the sum is the point at infinity
    return Point._wrap(out)


def sum_points(points: Sequence[Point]) -> Point:
    """``P_1 + ... + P_n`` with one libsecp256k1 ``combine`` call (no scalar multiplication,
    no per-term affine addition); identity points are skipped; the empty sum is O."""
    pks = []
    for P in points:
        if not isinstance(P, Point):
            raise TypeError("sum_points needs Points")
        if P._pk is not None:
            pks.append(P._pk)
    return _combine(pks) if pks else _IDENTITY


def _mul(P: Point, k: int) -> Point:
    if k == 0 or P._pk is None:
        return _IDENTITY
    if P is G:
        return _base_mul_int(k)
    pk = _copy_pk(P._pk)
    if lib.secp256k1_ec_pubkey_tweak_mul(_CTX, pk, k.to_bytes(32, "big")) != 1:
        raise ValueError("libsecp256k1 tweak_mul failed")  # pragma: no cover - k in [1, n)
    return Point._wrap(pk)


def _base_mul_int(k: int) -> Point:
    if k == 0:
        return _IDENTITY
    pk = _new_pk()
    if lib.secp256k1_ec_pubkey_create(_CTX, pk, k.to_bytes(32, "big")) != 1:
        raise ValueError("libsecp256k1 pubkey_create failed")  # pragma: no cover
    return Point._wrap(pk)


G: Point = Point.from_bytes(
    bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
)
Point.G = G


def base_mul(k: Scalar) -> Point:
    """``k * G`` with libsecp256k1's constant-time generator table (~15 us)."""
    if not isinstance(k, Scalar):
        raise TypeError("base_mul needs a Scalar")
    return _base_mul_int(k._v)


# --------------------------------------------------------------------------------------------
# Multi-scalar multiplication
# --------------------------------------------------------------------------------------------


_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
#: from this many terms :func:`msm` uses the bucket method (below, one multiplication per term
#: wins: the sweep in proofs/msm.py ``_WINDOWS`` starts its windows at 384 terms)
_BUCKET_MIN_TERMS = 384


def _msm_raw(scalars: Sequence[int], pks: Sequence[Any]) -> Point:
    terms = []
    for k, pk in zip(scalars, pks, strict=True):
        if k == 0 or pk is None:
            continue
        t = _copy_pk(pk)
        if lib.secp256k1_ec_pubkey_tweak_mul(_CTX, t, k.to_bytes(32, "big")) != 1:
            raise ValueError("libsecp256k1 tweak_mul failed")  # pragma: no cover
        terms.append(t)
    if not terms:
        return _IDENTITY
    return _combine(terms)


def _msm_worker(scalars: bytes, raw_points: bytes) -> bytes:
    """Worker-process share of :func:`msm`.

    Inputs are 32-byte scalars and 64-byte libsecp256k1 ``secp256k1_pubkey`` blobs,
    concatenated: the internal form is only meaningful to the same library build, which a
    worker forked/spawned from this interpreter on this machine is; it avoids re-parsing
    (a square root per point).  Returns the 64-byte blob of the partial sum, or b"" for O.
    """
    m = len(scalars) // SCALAR_BYTES
    ks = [int.from_bytes(scalars[32 * i : 32 * i + 32], "big") for i in range(m)]
    pks = []
    for i in range(m):
        pk = _new_pk()
        ffi.memmove(pk, raw_points[64 * i : 64 * i + 64], 64)
        pks.append(pk)
    acc = _msm_raw(ks, pks)
    return b"" if acc._pk is None else bytes(ffi.buffer(acc._pk, 64))


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != workers:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ProcessPoolExecutor(max_workers=workers)
        _POOL_SIZE = workers
    return _POOL


def shutdown_workers() -> None:
    """Stop the worker processes started by ``msm(..., workers>1)`` (also done at exit)."""
    global _POOL, _POOL_SIZE
    if _POOL is not None:
        _POOL.shutdown(wait=True)
    _POOL = None
    _POOL_SIZE = 0


def msm(scalars: Sequence[Scalar], points: Sequence[Point], *, workers: int = 1) -> Point:
    """``sum(k_i * P_i)``.

    One libsecp256k1 multiplication per term with a nonzero scalar and a non-identity point,
    then *one* ``combine`` call for the whole sum (no per-term affine additions).  Zero
    scalars and identity points are skipped.  With ``workers > 1`` and at least
    ``msm_parallel_threshold`` terms (settings), the terms are split across that many worker
    processes
    (a persistent pool, started on first use).
    """
    if len(scalars) != len(points):
        raise MalformedError(f"msm: {len(scalars)} scalars but {len(points)} points")
    ks: list[int] = []
    pts: list[Point] = []
    for k, P in zip(scalars, points, strict=True):
        if not isinstance(k, Scalar) or not isinstance(P, Point):
            raise TypeError("msm needs Scalars and Points")
        if k._v == 0 or P._pk is None:
            continue
        ks.append(k._v)
        pts.append(P)
    if (workers > 1 and len(ks) >= get_settings().msm_parallel_threshold
            and multiprocessing.parent_process() is None):
        # (never a nested pool inside another pool's worker: it would hang that worker's
        # exit, see proofs/rangeproof.py _parallel)
        return _msm_parallel(ks, pts, workers)
    if len(ks) >= _BUCKET_MIN_TERMS:
        # many terms (a batched DLEQ folds one term per ciphertext): the bucket method of
        # proofs/msm.py, several times cheaper than one multiplication per term
        from statledger.proofs.msm import points_msm

        return points_msm(ks, pts)
    return _msm_raw(ks, [P._pk for P in pts])


def _msm_parallel(ks: list[int], pts: list[Point], workers: int) -> Point:
    pool = _get_pool(workers)
    m = len(ks)
    # The calling process computes one share itself, so only workers-1 shares travel.
    bounds = [m * i // workers for i in range(workers + 1)]
    futures = []
    for i in range(1, workers):
        lo, hi = bounds[i], bounds[i + 1]
        sb = b"".join(k.to_bytes(32, "big") for k in ks[lo:hi])
        pb = b"".join(bytes(ffi.buffer(P._pk, 64)) for P in pts[lo:hi])
        futures.append(pool.submit(_msm_worker, sb, pb))
    acc = _msm_raw(ks[: bounds[1]], [P._pk for P in pts[: bounds[1]]])
    for f in futures:
        raw = f.result()
        if raw:
            pk = _new_pk()
            ffi.memmove(pk, raw, 64)
            acc = acc + Point._wrap(pk)
    return acc


# --------------------------------------------------------------------------------------------
# RFC 9380 hash-to-curve, suite secp256k1_XMD:SHA-256_SSWU_RO_
# --------------------------------------------------------------------------------------------

_H2C_L = 48  # ceil((ceil(log2(p)) + k) / 8) with k = 128
_SHA256_B = 32  # b_in_bytes
_SHA256_R = 64  # s_in_bytes (block size)

# Isogenous curve E': y^2 = x^3 + A' x + B'  (RFC 9380 section 8.7), Z = -11.
_ISO_A = 0x3F8731ABDD661ADCA08A5558F0F5D272E953D363CB6F0E5D405447C01A444533
_ISO_B = 1771
_SSWU_Z = FIELD - 11

# 3-isogeny map E' -> secp256k1 (RFC 9380 Appendix E.1), coefficients lowest degree first.
_ISO_X_NUM = (
    0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA8C7,
    0x07D3D4C80BC321D5B9F315CEA7FD44C5D595D2FC0BF63B92DFFF1044F17C6581,
    0x534C328D23F234E6E2A413DECA25CAECE4506144037C40314ECBD0B53D9DD262,
    0x8E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38E38DAAAAA88C,
)
_ISO_X_DEN = (
    0xD35771193D94918A9CA34CCBB7B640DD86CD409542F8487D9FE6B745781EB49B,
    0xEDADC6F64383DC1DF7C4B2D51B54225406D36B641F5E41BBC52A56612A8C6D14,
    1,
)
_ISO_Y_NUM = (
    0x4BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684B8E38E23C,
    0xC75E0C32D5CB7C0FA9D0A54B12A0A6D5647AB046D686DA6FDFFC90FC201D71A3,
    0x29A6194691F91A73715209EF6512E576722830A201BE2018A765E85A9ECEE931,
    0x2F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F684BDA12F38E38D84,
)
_ISO_Y_DEN = (
    0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFF93B,
    0x7A06534BB8BDB49FD5E9E6632722C2989467C1BFC8E8D978DFB425D2685C2573,
    0x6484AA716545CA2CF3A70C3FA8FE337E0A3D21162F0D6299A7BF8192BFD2A76F,
    1,
)
_SQRT_EXP = (FIELD + 1) // 4  # p = 3 mod 4


def expand_message_xmd(msg: bytes, dst: bytes, len_in_bytes: int) -> bytes:
    """RFC 9380 section 5.3.1 with SHA-256."""
    if len(dst) > 255:
        # RFC 9380 section 5.3.3: oversized DSTs are hashed first.
        dst = hashlib.sha256(b"H2C-OVERSIZE-DST-" + dst).digest()
    ell = -(-len_in_bytes // _SHA256_B)
    if ell > 255 or len_in_bytes > 65535 or len_in_bytes < 0:
        raise ValueError("expand_message_xmd: requested length too large")
    dst_prime = dst + bytes((len(dst),))
    msg_prime = bytes(_SHA256_R) + msg + struct.pack(">H", len_in_bytes) + b"\x00" + dst_prime
    b0 = hashlib.sha256(msg_prime).digest()
    bi = hashlib.sha256(b0 + b"\x01" + dst_prime).digest()
    out = [bi]
    for i in range(2, ell + 1):
        bi = hashlib.sha256(
            bytes(x ^ y for x, y in zip(b0, bi, strict=True)) + bytes((i,)) + dst_prime
        ).digest()
        out.append(bi)
    return b"".join(out)[:len_in_bytes]


def hash_to_field(msg: bytes, dst: bytes, count: int = 2) -> list[int]:
    """RFC 9380 section 5.2 for F_p (m = 1, L = 48)."""
    uniform = expand_message_xmd(msg, dst, count * _H2C_L)
    return [
        int.from_bytes(uniform[_H2C_L * i : _H2C_L * (i + 1)], "big") % FIELD for i in range(count)
    ]


def _sgn0(x: int) -> int:
    return x & 1


def _poly(coeffs: tuple[int, ...], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % FIELD
    return acc


def _map_to_curve_iso(u: int) -> tuple[int, int]:
    """Simplified SWU onto E' (RFC 9380 section 6.6.2); returns affine (x', y')."""
    p = FIELD
    A, B, Z = _ISO_A, _ISO_B, _SSWU_Z
    u2 = u * u % p
    tv1 = (Z * Z * u2 * u2 + Z * u2) % p
    if tv1 == 0:
        x1 = B * pow(Z * A, -1, p) % p
    else:
        x1 = (-B) * pow(A, -1, p) * (1 + pow(tv1, -1, p)) % p
    gx1 = (x1 * x1 * x1 + A * x1 + B) % p
    y1 = pow(gx1, _SQRT_EXP, p)
    if y1 * y1 % p == gx1:
        x, y = x1, y1
    else:
        x = Z * u2 * x1 % p
        gx2 = (x * x * x + A * x + B) % p
        y = pow(gx2, _SQRT_EXP, p)
        if y * y % p != gx2:  # pragma: no cover - impossible for a valid Z
            raise ArithmeticError("SSWU: neither g(x1) nor g(x2) is square")
    if _sgn0(u) != _sgn0(y):
        y = p - y if y else 0
    return x, y


def _iso_map(xp: int, yp: int) -> tuple[int, int] | None:
    """3-isogeny E' -> secp256k1 (RFC 9380 Appendix E.1); None = identity."""
    p = FIELD
    x_den = _poly(_ISO_X_DEN, xp)
    y_den = _poly(_ISO_Y_DEN, xp)
    if x_den == 0 or y_den == 0:
        return None
    inv = pow(x_den * y_den % p, -1, p)
    x = _poly(_ISO_X_NUM, xp) * inv * y_den % p
    y = yp * _poly(_ISO_Y_NUM, xp) * inv * x_den % p
    return x, y


def _map_to_curve_reference(u: int) -> Point:
    """Straight transcription of RFC 9380 (two square roots in Python); used by tests."""
    xy = _iso_map(*_map_to_curve_iso(u))
    if xy is None:
        return _IDENTITY
    return Point.from_affine(*xy)


_INV_A = pow(_ISO_A, -1, FIELD)
_B_OVER_ZA = _ISO_B * pow(_SSWU_Z * _ISO_A, -1, FIELD) % FIELD


def map_to_curve(u: int) -> Point:
    """``map_to_curve`` of the suite: SSWU on E' then the 3-isogeny (no cofactor: h = 1).

    Same output as the RFC's straight-line algorithm, computed faster: instead of Python
    square roots (~100 us each), the candidate x' is pushed through the isogeny's x-map and
    libsecp256k1 decompresses X(x') (a C square root).  This is sound because
    X(x')^3 + 7 = g'(x') * Y(x')^2 identically, so X(x') is on secp256k1 iff g'(x') is a
    square; the sign is then fixed by y' = y / Y(x') and sgn0(y') = sgn0(u).  Exceptional
    inputs (a zero denominator) fall back to the reference path.
    """
    if not 0 <= u < FIELD:
        raise ValueError("field element out of range")
    p = FIELD
    u2 = u * u % p
    tv1 = (_SSWU_Z * _SSWU_Z * u2 * u2 + _SSWU_Z * u2) % p
    if tv1 == 0:
        x1 = _B_OVER_ZA
    else:
        x1 = (p - _ISO_B) * _INV_A * (1 + pow(tv1, -1, p)) % p
    for xp in (x1, _SSWU_Z * u2 * x1 % p):
        x_den = _poly(_ISO_X_DEN, xp)
        y_num = _poly(_ISO_Y_NUM, xp)
        y_den = _poly(_ISO_Y_DEN, xp)
        if x_den == 0 or y_den == 0 or y_num == 0:
            return _map_to_curve_reference(u)
        inv = pow(x_den * y_num % p, -1, p)
        x = _poly(_ISO_X_NUM, xp) * y_num * inv % p
        pk = _new_pk()
        if lib.secp256k1_ec_pubkey_parse(_CTX, pk, b"\x02" + x.to_bytes(32, "big"), 33) != 1:
            continue
        raw = _serialize(pk, _UNCOMPRESSED, 65)
        y = int.from_bytes(raw[33:], "big")
        y_prime = y * y_den * x_den * inv % p  # y' = y * y_den / y_num
        if (y_prime & 1) != (u & 1):
            lib.secp256k1_ec_pubkey_negate(_CTX, pk)
        return Point._wrap(pk)
    raise ArithmeticError("SSWU: neither candidate is on the curve")  # pragma: no cover


def _batch_inverse(vals: list[int]) -> list[int]:
    """Montgomery's trick: inverses of nonzero field elements with one exponentiation."""
    p = FIELD
    prefix = [1] * (len(vals) + 1)
    for i, v in enumerate(vals):
        prefix[i + 1] = prefix[i] * v % p
    inv = pow(prefix[-1], -1, p) if vals else 1
    out = [0] * len(vals)
    for i in range(len(vals) - 1, -1, -1):
        out[i] = prefix[i] * inv % p
        inv = inv * vals[i] % p
    return out


def _map_to_curve_many(us: list[int]) -> list[Point]:
    """``[map_to_curve(u) for u in us]`` with batched field inversions (same output)."""
    p, Z = FIELD, _SSWU_Z
    out: list[Point | None] = [None] * len(us)
    u2s = [u * u % p for u in us]
    tv1s = [(Z * Z * u2 * u2 + Z * u2) % p for u2 in u2s]
    nz = [i for i, t in enumerate(tv1s) if t != 0]
    inv_t = dict(zip(nz, _batch_inverse([tv1s[i] for i in nz]), strict=True))
    cand: dict[int, int] = {}
    for i in range(len(us)):
        if i in inv_t:
            cand[i] = (p - _ISO_B) * _INV_A * (1 + inv_t[i]) % p
        else:
            cand[i] = _B_OVER_ZA
    x1s = dict(cand)
    for attempt in range(2):
        todo: list[tuple[int, int, int, int, int]] = []
        for i, xp in cand.items():
            x_den, y_num, y_den = (_poly(c, xp) for c in (_ISO_X_DEN, _ISO_Y_NUM, _ISO_Y_DEN))
            if x_den == 0 or y_num == 0 or y_den == 0:
                out[i] = _map_to_curve_reference(us[i])
                continue
            todo.append((i, xp, x_den, y_num, y_den))
        invs = _batch_inverse([t[2] * t[3] % p for t in todo])
        retry: dict[int, int] = {}
        for (i, xp, x_den, y_num, y_den), inv in zip(todo, invs, strict=True):
            x = _poly(_ISO_X_NUM, xp) * y_num * inv % p
            pk = _new_pk()
            if lib.secp256k1_ec_pubkey_parse(_CTX, pk, b"\x02" + x.to_bytes(32, "big"), 33) != 1:
                if attempt == 1:  # pragma: no cover - impossible for a valid Z
                    raise ArithmeticError("SSWU: neither candidate is on the curve")
                retry[i] = Z * u2s[i] * x1s[i] % p
                continue
            y = int.from_bytes(_serialize(pk, _UNCOMPRESSED, 65)[33:], "big")
            if (y * y_den * x_den * inv % p) & 1 != us[i] & 1:
                lib.secp256k1_ec_pubkey_negate(_CTX, pk)
            out[i] = Point._wrap(pk)
        cand = retry
        if not cand:
            break
    result: list[Point] = []
    for P in out:
        if P is None:  # pragma: no cover - every index is filled above
            raise ArithmeticError("map_to_curve batch left a hole")
        result.append(P)
    return result


def _hash_to_curve_many(msgs: Sequence[bytes], dst: bytes) -> list[Point]:
    """``[hash_to_curve(m, dst) for m in msgs]``, faster (batched inversions)."""
    us: list[int] = []
    for m in msgs:
        us.extend(hash_to_field(m, dst, 2))
    Q = _map_to_curve_many(us)
    return [Q[2 * i] + Q[2 * i + 1] for i in range(len(msgs))]


def hash_to_curve(msg: bytes, dst: bytes) -> Point:
    """RFC 9380 ``hash_to_curve`` for suite ``secp256k1_XMD:SHA-256_SSWU_RO_``."""
    if not isinstance(msg, bytes | bytearray) or not isinstance(dst, bytes | bytearray):
        raise TypeError("hash_to_curve needs bytes")
    if len(dst) == 0:
        raise ValueError("hash_to_curve: empty DST is not allowed (RFC 9380 section 3.1)")
    u0, u1 = hash_to_field(bytes(msg), bytes(dst), 2)
    return map_to_curve(u0) + map_to_curve(u1)


def encode_to_curve(msg: bytes, dst: bytes) -> Point:
    """RFC 9380 ``encode_to_curve`` (suite ``secp256k1_XMD:SHA-256_SSWU_NU_``); non-uniform."""
    if not isinstance(msg, bytes | bytearray) or not isinstance(dst, bytes | bytearray):
        raise TypeError("encode_to_curve needs bytes")
    if len(dst) == 0:
        raise ValueError("encode_to_curve: empty DST is not allowed")
    (u,) = hash_to_field(bytes(msg), bytes(dst), 1)
    return map_to_curve(u)


# --------------------------------------------------------------------------------------------
# Independent generators
# --------------------------------------------------------------------------------------------

GENERATOR_DST = b"statledger/v1/generator/secp256k1_XMD:SHA-256_SSWU_RO_"
GENERATORS_DST = b"statledger/v1/generators/secp256k1_XMD:SHA-256_SSWU_RO_"

_GEN_CACHE: dict[bytes, Point] = {}
_GENS_CACHE: dict[bytes, list[Point]] = {}


def generator(label: bytes) -> Point:
    """An independent generator: ``hash_to_curve(label, GENERATOR_DST)``.  Cached."""
    if not isinstance(label, bytes):
        raise TypeError("generator label must be bytes")
    P = _GEN_CACHE.get(label)
    if P is None:
        P = hash_to_curve(label, GENERATOR_DST)
        _GEN_CACHE[label] = P
    return P


def generators(label: bytes, count: int) -> list[Point]:
    """``count`` independent generators for a vector commitment.  Cached and extendable.

    Element i is ``hash_to_curve(u32(len(label)) || label || u32(i), GENERATORS_DST)``
    (big-endian u32), so ``generators(l, m)`` is a prefix of ``generators(l, m')`` for m < m'.
    """
    if not isinstance(label, bytes):
        raise TypeError("generators label must be bytes")
    if count < 0 or count >= 2**32:
        raise ValueError("generators: bad count")
    cached = _GENS_CACHE.setdefault(label, [])
    if len(cached) < count:
        prefix = struct.pack(">I", len(label)) + label
        msgs = [prefix + struct.pack(">I", i) for i in range(len(cached), count)]
        cached.extend(_hash_to_curve_many(msgs, GENERATORS_DST))
    return cached[:count]


H: Point = generator(b"statledger/pedersen/H")
