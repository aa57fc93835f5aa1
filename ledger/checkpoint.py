"""C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): the signed tree head.

Note text (tlog-checkpoint §"Note text")::

    <origin>\\n                 non-empty; here also: no Unicode spaces, no '+'
    <tree size>\\n              ASCII decimal, no leading zeroes (``0`` for the empty tree)
    <base64 root hash>\\n       standard base64 of the 32-byte RFC 6962/9162 root
    [<extension line>\\n ...]   optional, each non-empty

The log signs the text as a signed note (:mod:`statledger.ledger.note`, Ed25519, key name = origin,
§"Signatures": "The log's key name in its signature line SHOULD match the origin line").
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from statledger.ledger.merkle import HASH_SIZE
from statledger.ledger.note import (
    Note,
    NoteSigner,
    NoteVerifier,
    b64decode_strict,
    check_note_text,
    open_note,
)
from statledger.proofs.errors import MalformedError, VerificationError

__all__ = ["Checkpoint", "sign_checkpoint", "open_checkpoint"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True)
class Checkpoint:
    """A parsed checkpoint body."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be a non-empty single line")
        if "+" in self.origin or any(ch.isspace() for ch in self.origin):
            raise MalformedError("checkpoint origin must not contain spaces or '+'")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise MalformedError("checkpoint size must be an int")
        if not 0 <= self.size < 1 << 64:
            raise MalformedError(f"checkpoint size {self.size} out of range")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise MalformedError(f"checkpoint root must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise MalformedError("checkpoint extension lines must be non-empty single lines")
        check_note_text(self.body())

    def body(self) -> str:
        """The note text: origin, size, base64 root, extension lines, each newline-terminated."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "".join(line + "\n" for line in [*lines, *self.extensions])

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly (the exact inverse of :meth:`body`)."""
        if not isinstance(text, str):
            raise MalformedError("checkpoint text must be a str")
        check_note_text(text)
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedError(f"checkpoint has {len(lines)} lines, needs at least 3")
        origin, size_s, root_s, *ext = lines
        if not _SIZE.fullmatch(size_s):
            raise MalformedError(f"checkpoint size {size_s!r} is not a canonical decimal")
        root = b64decode_strict(root_s, "checkpoint root")
        if len(root) != HASH_SIZE:
            raise MalformedError(f"checkpoint root is {len(root)} bytes, expected {HASH_SIZE}")
        cp = cls(origin, int(size_s), root, tuple(ext))
        if cp.body() != text:
            raise MalformedError("checkpoint text is not canonical")
        return cp


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """The signed note of ``cp`` with the log's signature (key name should be the origin)."""
    body = cp.body()
    return Note(body, (signer.sign(body),)).to_text()


def open_checkpoint(
    note: str | bytes | Note, log_verifier: NoteVerifier, *, origin: str | None = None
) -> tuple[Checkpoint, Note]:
    """Verify the log's signature on a checkpoint note and parse its body.

    ``origin`` defaults to the log key's name.  Other signatures (witnesses) are ignored here;
    see :class:`statledger.ledger.witness.WitnessPolicy`.  Raises ``MalformedError`` or
    ``VerificationError``.
    """
    parsed, _ = open_note(note, [log_verifier])
    cp = Checkpoint.parse(parsed.text)
    want = log_verifier.name if origin is None else origin
    if cp.origin != want:
        raise VerificationError(
            f"checkpoint origin {cp.origin!r} is not the expected {want!r}", step="checkpoint"
        )
    return cp, parsed
