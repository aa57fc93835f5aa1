"""The verification certificate: format ``statledger-certificate/v2`` (docs/certificate.md).

A certificate is one binary file (extension ``.cert``); all integers are unsigned
big-endian::

    magic       26 bytes  b"statledger-certificate/v2\\n"
    origin      u16 length (1..1024)   + UTF-8
    log_key     u16 length (1..1024)   + UTF-8
    checkpoint  u32 length (1..65536)  + UTF-8 (C2SP signed note with cosignatures)
    count       u32 (1..100000)        number of entries
    count times:
      index     u64 (< 2^63, strictly increasing)
      data      u32 length (1..16 MiB) + the entry's bytes (deterministic CBOR, entries.md)
      proof     u8 count (0..64)       + count * 32 bytes (RFC 9162 inclusion proof)
    (end of file: no trailing byte)

Every fact the verifier uses is read out of an entry's bytes, and every entry is
authenticated by its inclusion proof against the signed checkpoint, so no field can change
without failing verification.  This module only parses (strictly: every length and count is
checked against its limit and against the bytes left *before* anything is sliced or
allocated); the checks are in :mod:`statledger.verifier.verify`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from statledger.proofs.errors import MalformedError

if TYPE_CHECKING:  # pragma: no cover
    from statledger.protocol.view import QueryView

__all__ = ["FORMAT", "MAGIC", "SUFFIX", "CertEntry", "Certificate", "parse_certificate",
           "build_certificate", "left_out"]

FORMAT = "statledger-certificate/v2"
MAGIC = (FORMAT + "\n").encode("ascii")
#: File name extension of a certificate (``statledger verify FOLDER`` looks for it).
SUFFIX = ".cert"
HASH_SIZE = 32
MAX_ORIGIN = 1024
MAX_LOG_KEY = 1024
MAX_CHECKPOINT = 1 << 16
MAX_ENTRIES = 100_000
MAX_ENTRY_BYTES = 16 << 20
MAX_PROOF = 64
MAX_INDEX = (1 << 63) - 1
#: Smallest encoded entry record: index, data length, 1 data byte, proof count.
_MIN_RECORD = 8 + 4 + 1 + 1


@dataclass(frozen=True)
class CertEntry:
    index: int
    data: bytes
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class Certificate:
    origin: str
    log_key: str
    checkpoint: str
    entries: tuple[CertEntry, ...]

    def to_bytes(self) -> bytes:
        """The ``statledger-certificate/v2`` bytes (the exact inverse of parse_certificate)."""
        out = [MAGIC]
        for text, fmt, limit, what in ((self.origin, ">H", MAX_ORIGIN, "origin"),
                                       (self.log_key, ">H", MAX_LOG_KEY, "log_key"),
                                       (self.checkpoint, ">I", MAX_CHECKPOINT, "checkpoint")):
            raw = text.encode("utf-8")
            if not 0 < len(raw) <= limit:
                raise MalformedError(f"certificate.{what}: {len(raw)} bytes, not in 1..{limit}")
            out += [struct.pack(fmt, len(raw)), raw]
        if not 0 < len(self.entries) <= MAX_ENTRIES:
            raise MalformedError(f"certificate: {len(self.entries)} entries, not in "
                                 f"1..{MAX_ENTRIES}")
        out.append(struct.pack(">I", len(self.entries)))
        last = -1
        for e in self.entries:
            if not last < e.index <= MAX_INDEX:
                raise MalformedError("certificate: entry indices must be strictly increasing")
            last = e.index
            if not 0 < len(e.data) <= MAX_ENTRY_BYTES or len(e.proof) > MAX_PROOF:
                raise MalformedError(f"certificate: entry {e.index} is too large")
            if any(len(h) != HASH_SIZE for h in e.proof):
                raise MalformedError(f"certificate: entry {e.index}: proof hashes are 32 bytes")
            out += [struct.pack(">QI", e.index, len(e.data)), e.data,
                    bytes([len(e.proof)]), *e.proof]
        return b"".join(out)


class _Reader:
    """Bounds-checked reads; every failure names the field being read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise MalformedError(f"certificate: truncated in {what} (needs {n} bytes, "
                                 f"{self.left()} left)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def text(self, size: int, limit: int, what: str) -> str:
        n = self.uint(size, f"{what} length")
        if not 0 < n <= limit:
            raise MalformedError(f"certificate.{what}: length {n} not in 1..{limit}")
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedError(f"certificate.{what}: not valid UTF-8") from None


def _refuse_other_format(data: bytes) -> None:
    if data.lstrip()[:1] == b"{":
        raise MalformedError(
            "certificate: this is a JSON certificate (statledger-certificate/v1), no longer "
            f"accepted: certificates are {FORMAT} (binary, docs/certificate.md); "
            "regenerate it with this version of statledger")
    if data.startswith(b"statledger-certificate/") and b"\n" in data[:64]:
        got = data[:data.index(b"\n")].decode("ascii", errors="replace")
        raise MalformedError(f"certificate: unsupported format {got!r} (expected {FORMAT!r})")
    raise MalformedError(f"certificate: not a {FORMAT} file (wrong magic)")


def parse_certificate(raw: bytes | bytearray | memoryview) -> Certificate:
    """Parse a certificate strictly; anything unexpected raises :class:`MalformedError`."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedError(f"certificate: expected bytes, got {type(raw).__name__}")
    data = bytes(raw)
    if not data.startswith(MAGIC):
        _refuse_other_format(data)
    r = _Reader(data)
    r.pos = len(MAGIC)
    origin = r.text(2, MAX_ORIGIN, "origin")
    log_key = r.text(2, MAX_LOG_KEY, "log_key")
    checkpoint = r.text(4, MAX_CHECKPOINT, "checkpoint")
    count = r.uint(4, "entry count")
    if not 0 < count <= MAX_ENTRIES:
        raise MalformedError(f"certificate: entry count {count} not in 1..{MAX_ENTRIES}")
    if count * _MIN_RECORD > r.left():
        raise MalformedError(f"certificate: {count} entries cannot fit in the {r.left()} "
                             "bytes left")
    entries: list[CertEntry] = []
    last = -1
    for pos in range(count):
        where = f"entries[{pos}]"
        index = r.uint(8, f"{where}.index")
        if index > MAX_INDEX:
            raise MalformedError(f"certificate.{where}.index: {index} is beyond 2^63 - 1")
        if index <= last:
            raise MalformedError(f"certificate.{where}.index: indices must be strictly "
                                 "increasing")
        last = index
        n = r.uint(4, f"{where}.data length")
        if not 0 < n <= MAX_ENTRY_BYTES:
            raise MalformedError(f"certificate.{where}.data: length {n} not in "
                                 f"1..{MAX_ENTRY_BYTES}")
        entry = r.take(n, f"{where}.data")
        k = r.uint(1, f"{where}.proof count")
        if k > MAX_PROOF:
            raise MalformedError(f"certificate.{where}.proof: {k} hashes, at most {MAX_PROOF}")
        blob = r.take(k * HASH_SIZE, f"{where}.proof")
        proof = tuple(blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE))
        entries.append(CertEntry(index=index, data=entry, proof=proof))
    if r.left():
        raise MalformedError(f"certificate: {r.left()} trailing bytes after the last entry")
    return Certificate(origin=origin, log_key=log_key, checkpoint=checkpoint,
                       entries=tuple(entries))


def build_certificate(
    origin: str,
    log_key: str,
    checkpoint: str,
    entries: Sequence[tuple[int, bytes, Sequence[bytes]]],
) -> Certificate:
    """Assemble a certificate from ``(index, entry bytes, inclusion proof)`` triples."""
    ordered = sorted(entries, key=lambda t: t[0])
    return Certificate(
        origin=origin,
        log_key=log_key,
        checkpoint=checkpoint,
        entries=tuple(CertEntry(i, d, tuple(p)) for i, d, p in ordered),
    )


def left_out(view: QueryView) -> set[int]:
    """The log indices of the query's entries a certificate does not carry: the shares no
    step combines.  Step 12 checks only the ``T`` decryption entries the result names and
    the ``T`` gate entries the release decision names (their batched DLEQ proofs); the other
    nodes' shares are never combined, so the verifier needs neither them nor their proofs
    (docs/certificate.md, "Which entries").  Nothing else is left out: a certificate that
    lacks a named node's entry fails step 12, and leaving an entry out cannot make a
    certificate pass that would fail with it (no step draws a conclusion from an entry's
    absence; a log can hold such entries only if they are well formed, the ledger's append
    rule).  Without a result (or a release decision) nothing is left out."""
    out: set[int] = set()
    if view.result is not None:
        named = set(view.result[1].decryptors)
        out |= {i for i, d in view.decryptions if d.node not in named}
    if view.release is not None:
        gated = set(view.release[1].decryptors)
        out |= {i for i, g in view.gates if g.node not in gated}
    return out
