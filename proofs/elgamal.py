"""Exponential ElGamal on secp256k1 with exact, bounded decryption.

See ``docs/notes/elgamal.md`` for the notation, the homomorphisms, the limb encoding and the
discrete-log algorithm (:mod:`statledger.proofs.dlog`).

Notation: secret key ``x`` (:class:`~statledger.proofs.group.Scalar`), public key ``X = x*G``;
``Enc_X(m; r) = (C1, C2) = (r*G, m*G + r*X)`` for a signed integer ``m`` (``m*G`` for negative
``m`` is ``-(|m|*G)``).  A node ``i`` holding ``x_i`` publishes the decryption share
``D_i = x_i*C1``; with ``X = sum X_i`` (n-of-n), ``C2 - sum D_i = m*G`` and
:func:`discrete_log` returns ``m`` exactly or raises
:class:`~statledger.proofs.errors.DecryptionError`.

Encoding of a :class:`Ciphertext`: ``C1 || C2``, 66 bytes, each point 33-byte compressed SEC1
(identity = 33 zero bytes, allowed: the sum of ciphertexts may legitimately contain it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from statledger.proofs.dlog import (
    DEFAULT_TABLE_BITS,
    DlogTable,
    discrete_log,
    discrete_log_many,
    get_table,
)
from statledger.proofs.errors import MalformedError
from statledger.proofs.group import ORDER, Point, Scalar, base_mul

__all__ = [
    "CIPHERTEXT_BYTES",
    "Ciphertext",
    "DEFAULT_TABLE_BITS",
    "DlogTable",
    "combine",
    "decrypt",
    "decryption_share",
    "discrete_log",
    "discrete_log_many",
    "encode_message",
    "encrypt",
    "encrypt_vector",
    "get_table",
    "join_limbs",
    "keygen",
    "rerandomize",
    "split_limbs",
]

CIPHERTEXT_BYTES = 66
_HALF_ORDER = ORDER // 2


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """``(C1, C2) = (r*G, m*G + r*X)``.  Immutable; ``+``, ``-``, unary ``-``, ``* int``."""

    C1: Point
    C2: Point

    def __post_init__(self) -> None:
        if not isinstance(self.C1, Point) or not isinstance(self.C2, Point):
            raise TypeError("Ciphertext(C1, C2) needs two Points")

    @classmethod
    def zero(cls) -> Ciphertext:
        """The neutral element ``(O, O)`` (an encryption of 0 with r = 0), for sums."""
        return cls(Point.identity(), Point.identity())

    def to_bytes(self) -> bytes:
        return self.C1.to_bytes() + self.C2.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Ciphertext:
        """Strict inverse of :meth:`to_bytes`: exactly 66 bytes, two canonical points."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("ciphertext encoding must be bytes")
        data = bytes(data)
        if len(data) != CIPHERTEXT_BYTES:
            raise MalformedError(f"ciphertext encoding must be 66 bytes, got {len(data)}")
        return cls(Point.from_bytes(data[:33]), Point.from_bytes(data[33:]))

    def __add__(self, other: Ciphertext) -> Ciphertext:
        if not isinstance(other, Ciphertext):
            return NotImplemented
        return Ciphertext(self.C1 + other.C1, self.C2 + other.C2)

    def __sub__(self, other: Ciphertext) -> Ciphertext:
        if not isinstance(other, Ciphertext):
            return NotImplemented
        return Ciphertext(self.C1 - other.C1, self.C2 - other.C2)

    def __neg__(self) -> Ciphertext:
        return Ciphertext(-self.C1, -self.C2)

    def __mul__(self, k: int) -> Ciphertext:
        """``k*(C1, C2)`` for a signed int ``k``: an encryption of ``k*m``."""
        if isinstance(k, bool) or not isinstance(k, int):
            return NotImplemented
        s = Scalar.reduce(k)
        return Ciphertext(s * self.C1, s * self.C2)

    __rmul__ = __mul__


def keygen() -> tuple[Scalar, Point]:
    """A fresh key pair ``(x, X = x*G)`` with ``x`` from ``secrets`` (nonzero)."""
    x = Scalar.random()
    return x, base_mul(x)


def encode_message(m: int) -> Point:
    """``m*G`` for a signed int, ``|m| < n/2`` (so that the sign is unambiguous)."""
    if isinstance(m, bool) or not isinstance(m, int):
        raise TypeError("plaintext must be an int")
    if not -_HALF_ORDER < m < _HALF_ORDER:
        raise MalformedError("plaintext out of range: need |m| < n/2")
    if m >= 0:
        return base_mul(Scalar(m))
    return -base_mul(Scalar(-m))


def _check_key(X: Point) -> None:
    if not isinstance(X, Point):
        raise TypeError("public key must be a Point")
    if X.is_identity():
        raise MalformedError("public key is the identity (would reveal every plaintext)")


def encrypt(X: Point, m: int, r: Scalar | None = None) -> Ciphertext:
    """``(r*G, m*G + r*X)``; ``r`` fresh from ``Scalar.random()`` unless given."""
    _check_key(X)
    if r is None:
        r = Scalar.random()
    elif not isinstance(r, Scalar):
        raise TypeError("randomness must be a Scalar")
    return Ciphertext(base_mul(r), encode_message(m) + r * X)


def encrypt_vector(
    X: Point, values: Sequence[int], rs: Sequence[Scalar] | None = None
) -> list[Ciphertext]:
    """One ciphertext per value (fresh randomness unless ``rs`` is given, one per value)."""
    if rs is not None and len(rs) != len(values):
        raise MalformedError(f"{len(values)} values but {len(rs)} randomness scalars")
    if rs is None:
        return [encrypt(X, m) for m in values]
    return [encrypt(X, m, r) for m, r in zip(values, rs, strict=True)]


def rerandomize(X: Point, c: Ciphertext, r: Scalar | None = None) -> Ciphertext:
    """``c + Enc_X(0; r)``: same plaintext, fresh-looking ciphertext."""
    _check_key(X)
    if r is None:
        r = Scalar.random()
    return Ciphertext(c.C1 + base_mul(r), c.C2 + r * X)


def decryption_share(x: Scalar, c: Ciphertext) -> Point:
    """``D = x*C1`` (prove it with :func:`statledger.proofs.sigma.prove_dleq` /
    ``prove_dleq_batch``)."""
    if not isinstance(x, Scalar):
        raise TypeError("secret key must be a Scalar")
    return x * c.C1


def combine(c: Ciphertext, shares: Iterable[Point]) -> Point:
    """``C2 - sum(shares)``: equals ``m*G`` when the shares are those of all key holders."""
    total = Point.identity()
    for D in shares:
        if not isinstance(D, Point):
            raise TypeError("decryption shares must be Points")
        total = total + D
    return c.C2 - total


def decrypt(x: Scalar, c: Ciphertext, bound: int, *, table_size: int | None = None) -> int:
    """Single-key decryption: ``discrete_log(C2 - x*C1, bound)`` (exact or DecryptionError)."""
    return discrete_log(combine(c, [decryption_share(x, c)]), bound, table_size=table_size)


# --------------------------------------------------------------------------------------------
# Limb encoding
# --------------------------------------------------------------------------------------------


def split_limbs(u: int, limb_bits: int, n_limbs: int) -> list[int]:
    """Base-``2^limb_bits`` digits of ``u >= 0``, least significant first, exactly n_limbs.

    Raises :class:`MalformedError` when ``u`` is negative or needs more than ``n_limbs``
    limbs (never truncates).
    """
    if isinstance(u, bool) or not isinstance(u, int):
        raise TypeError("split_limbs needs an int")
    if limb_bits < 1 or n_limbs < 1:
        raise MalformedError("limb_bits and n_limbs must be >= 1")
    if u < 0:
        raise MalformedError("split_limbs needs u >= 0 (shift signed values first)")
    if u >> (limb_bits * n_limbs):
        raise MalformedError(f"value does not fit in {n_limbs} limbs of {limb_bits} bits")
    mask = (1 << limb_bits) - 1
    return [(u >> (i * limb_bits)) & mask for i in range(n_limbs)]


def join_limbs(limbs: Sequence[int], limb_bits: int) -> int:
    """``sum(limb_i * 2^(i*limb_bits))``; limbs may exceed ``2^limb_bits`` (aggregated sums)."""
    if limb_bits < 1:
        raise MalformedError("limb_bits must be >= 1")
    total = 0
    for i, limb in enumerate(limbs):
        if isinstance(limb, bool) or not isinstance(limb, int):
            raise TypeError("limbs must be ints")
        total += limb << (i * limb_bits)
    return total
