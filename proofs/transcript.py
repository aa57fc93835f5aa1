"""Fiat--Shamir transcript: every item typed, labelled and length-prefixed.

The exact byte format is in ``docs/notes/transcript.md``; known-answer traces are in
``tests/vectors/transcript_kat.json``.  In short, the transcript is one byte string

    T = item(D, b"statledger/transcript/v1", domain) || item(...) || ...

where ``item(op, label, data) = op (1 byte) || u32be(len(label)) || label ||
u64be(len(data)) || data``.  A challenge of ``n`` bytes under ``label`` appends
``item(C, label, u64be(n))``, outputs the first ``n`` bytes of ``SHAKE256(T)``, then appends
``item(R, label, output)`` so that successive challenges differ and depend on each other.
``challenge_scalar`` squeezes 64 bytes (512 bits: 256 extra bits before reducing mod n,
statistical distance < 2^-256 from uniform).

Opcodes (one per item type, so a point can never be read as a message of the same bytes):
``D`` domain, ``M`` message, ``S`` scalar, ``P`` point, ``V`` point vector, ``I`` integer,
``C`` challenge request, ``R`` challenge output.

``hashlib`` is used in ``proofs/`` only here and in RFC 9380 hash-to-curve (group.py).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Any

from statledger.proofs.group import ORDER, Point, Scalar

__all__ = ["Transcript", "PROTOCOL_LABEL", "CHALLENGE_SCALAR_BYTES"]

PROTOCOL_LABEL = b"statledger/transcript/v1"
CHALLENGE_SCALAR_BYTES = 64
MAX_CHALLENGE_BYTES = 1 << 16

OP_DOMAIN = b"D"
OP_MESSAGE = b"M"
OP_SCALAR = b"S"
OP_POINT = b"P"
OP_POINTS = b"V"
OP_INT = b"I"
OP_CHALLENGE = b"C"
OP_RESPONSE = b"R"


def _item(op: bytes, label: bytes, data: bytes) -> bytes:
    return op + struct.pack(">I", len(label)) + label + struct.pack(">Q", len(data)) + data


def _check_label(label: bytes) -> bytes:
    if not isinstance(label, bytes | bytearray):
        raise TypeError("transcript labels must be bytes")
    if len(label) >= 1 << 32:
        raise ValueError("transcript label too long")
    return bytes(label)


def encode_int(value: int) -> bytes:
    """Signed integer: one sign byte (0x00 for >= 0, 0x01 for < 0) || |value| big-endian,
    minimal length (zero -> no magnitude bytes).  The item's length prefix delimits it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("append_int needs an int")
    mag = abs(value)
    return (b"\x01" if value < 0 else b"\x00") + mag.to_bytes((mag.bit_length() + 7) // 8, "big")


class Transcript:
    """A running Fiat--Shamir transcript over SHAKE256.

    ``record=True`` keeps a copy of every absorbed byte (``.recorded()``) for debugging and
    known-answer traces; it does not change any output.
    """

    __slots__ = ("_state", "_log")

    def __init__(self, domain: bytes, *, record: bool = False) -> None:
        if not isinstance(domain, bytes | bytearray):
            raise TypeError("transcript domain must be bytes")
        self._state: Any = hashlib.shake_256()
        self._log: bytearray | None = bytearray() if record else None
        self._absorb(_item(OP_DOMAIN, PROTOCOL_LABEL, bytes(domain)))

    def _absorb(self, item: bytes) -> None:
        self._state.update(item)
        if self._log is not None:
            self._log += item

    # -- absorbing --------------------------------------------------------------------------

    def append_message(self, label: bytes, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("append_message data must be bytes")
        self._absorb(_item(OP_MESSAGE, _check_label(label), bytes(data)))

    def append_scalar(self, label: bytes, s: Scalar) -> None:
        if not isinstance(s, Scalar):
            raise TypeError("append_scalar needs a Scalar")
        self._absorb(_item(OP_SCALAR, _check_label(label), s.to_bytes()))

    def append_point(self, label: bytes, P: Point) -> None:
        if not isinstance(P, Point):
            raise TypeError("append_point needs a Point")
        self._absorb(_item(OP_POINT, _check_label(label), P.to_bytes()))

    def append_points(self, label: bytes, Ps: Sequence[Point]) -> None:
        """A vector of points: data = u32be(count) || 33-byte encodings."""
        parts = [struct.pack(">I", len(Ps))]
        for P in Ps:
            if not isinstance(P, Point):
                raise TypeError("append_points needs Points")
            parts.append(P.to_bytes())
        self._absorb(_item(OP_POINTS, _check_label(label), b"".join(parts)))

    def append_int(self, label: bytes, i: int) -> None:
        """A signed integer of any size (see :func:`encode_int`)."""
        self._absorb(_item(OP_INT, _check_label(label), encode_int(i)))

    # -- squeezing --------------------------------------------------------------------------

    def challenge_bytes(self, label: bytes, n: int) -> bytes:
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHALLENGE_BYTES:
            raise ValueError(f"challenge length must be 1..{MAX_CHALLENGE_BYTES}")
        label = _check_label(label)
        self._absorb(_item(OP_CHALLENGE, label, struct.pack(">Q", n)))
        out: bytes = self._state.copy().digest(n)
        self._absorb(_item(OP_RESPONSE, label, out))
        return out

    def challenge_scalar(self, label: bytes) -> Scalar:
        """A challenge in Z_n from 512 bits (>= 128 extra bits before the reduction)."""
        v = int.from_bytes(self.challenge_bytes(label, CHALLENGE_SCALAR_BYTES), "big")
        return Scalar.reduce(v % ORDER)

    def challenge_scalars(self, label: bytes, count: int) -> list[Scalar]:
        """``count`` challenges: ``challenge_scalar(label)`` repeated (each absorbed)."""
        return [self.challenge_scalar(label) for _ in range(count)]

    # -- misc -------------------------------------------------------------------------------

    def clone(self) -> Transcript:
        t = object.__new__(Transcript)
        t._state = self._state.copy()
        t._log = None if self._log is None else bytearray(self._log)
        return t

    def recorded(self) -> bytes:
        """Every absorbed byte so far (only with ``record=True``)."""
        if self._log is None:
            raise ValueError("transcript was created without record=True")
        return bytes(self._log)
