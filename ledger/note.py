"""C2SP signed notes (https://c2sp.org/signed-note), Ed25519 only, parsed strictly.

Format (signed-note "Format")::

    <text: one or more lines, each ending in U+000A>
    <blank line>
    — <key name> <base64(4-byte big-endian key ID || signature)>\\n     (one or more)

* The signed message is the note *text* including its final newline, excluding the
  separating blank line.  The text is separated from the signatures by the *last* blank line.
* The note is valid UTF-8 with no ASCII control character other than newline.
* Key names are non-empty, without Unicode spaces or ``+``.
* Key ID (signed-note "Signatures", RECOMMENDED and used here):
  ``SHA-256(key name || 0x0A || signature type || public key)[:4]``, with type ``0x01`` for
  Ed25519 note signatures (signed-note "Ed25519 signatures") and ``0x04`` for timestamped
  Ed25519 witness cosignatures (tlog-cosignature, see :mod:`statledger.ledger.witness`).
* Verifier keys ("vkeys"): ``<name>+<8 lowercase hex key ID>+<base64(type || public key)>``.
  Signer keys use the Go note convention ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type ||
  32-byte seed)>``.
* Verification (signed-note "Signatures"): signatures from unknown keys (name *and* key ID
  not matching a configured verifier) are ignored; a failing signature from a known key
  rejects the whole note; if no known key verified, the note is rejected.
* Cosignature timestamps (tlog-cosignature): a validly signed cosignature dated more than
  ``COSIGNATURE_MAX_SKEW`` seconds after the verifier's reference clock is refused, naming
  the witness (:func:`check_cosignature_time`, the one place of that rule); any past
  timestamp is accepted, so an old checkpoint stays verifiable.

Strictness beyond the spec's MUSTs (each raises :class:`~statledger.proofs.errors.MalformedError`):
non-canonical base64, two signature lines with the same (name, key ID), more than
``MAX_SIGNATURES`` signature lines, more than ``MAX_NOTE_BYTES`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey, VerifyKey

__all__ = [
    "SIG_TYPE_ED25519",
    "SIG_TYPE_COSIGNATURE_V1",
    "MAX_SIGNATURES",
    "MAX_NOTE_BYTES",
    "COSIGNATURE_MAX_SKEW",
    "check_cosignature_time",
    "Signature",
    "Note",
    "NoteVerifier",
    "CosignatureVerifier",
    "NoteSigner",
    "key_id",
    "b64decode_strict",
    "check_key_name",
    "parse_vkey",
    "open_note",
    "sign_note",
    "QuorumError",
    "check_quorum",
    "verify_quorum",
]

SIG_TYPE_ED25519 = 0x01  # signed-note §"Signature types"
SIG_TYPE_COSIGNATURE_V1 = 0x04  # signed-note §"Signature types" / tlog-cosignature
MAX_SIGNATURES = 100  # spec: MUST accept at least 16; Go's note package caps at 100
MAX_NOTE_BYTES = 1 << 20
SIG_PREFIX = "\u2014 "  # em dash, space
#: Seconds a cosignature's timestamp may lie after the verifier's clock (clock skew between
#: a witness and whoever checks its cosignature); further in the future is refused.
COSIGNATURE_MAX_SKEW = 600

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8 = re.compile(r"[0-9a-f]{8}")


def b64decode_strict(text: str, what: str) -> bytes:
    """RFC 4648 §4 standard base64 with padding; only the canonical encoding is accepted."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise MalformedError(f"{what}: bad base64 ({exc})") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise MalformedError(f"{what}: non-canonical base64")
    return raw


def check_key_name(name: str) -> None:
    """signed-note: key names are non-empty, no Unicode spaces, no ``+``."""
    if not name:
        raise MalformedError("empty key name")
    if "+" in name or any(ch.isspace() for ch in name):
        raise MalformedError(f"key name {name!r} contains a space or '+'")
    if _CONTROL.search(name) or "\n" in name:
        raise MalformedError(f"key name {name!r} contains a control character")


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """``SHA-256(name || 0x0A || sig_type || public_key)[:4]`` (signed-note "Signatures")."""
    material = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID and the signature bytes."""

    name: str
    key_id: bytes
    sig: bytes

    def line(self) -> str:
        """The signature line, newline-terminated."""
        blob = base64.b64encode(self.key_id + self.sig).decode("ascii")
        return f"{SIG_PREFIX}{self.name} {blob}\n"


def _as_text(data: str | bytes, what: str) -> str:
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_NOTE_BYTES:
            raise MalformedError(f"{what} longer than {MAX_NOTE_BYTES} bytes")
        try:
            return bytes(data).decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise MalformedError(f"{what} is not valid UTF-8: {exc}") from None
    if not isinstance(data, str):
        raise MalformedError(f"{what} must be str or bytes, got {type(data).__name__}")
    try:
        size = len(data.encode("utf-8", errors="strict"))
    except UnicodeEncodeError as exc:
        raise MalformedError(f"{what} is not valid UTF-8: {exc}") from None
    if size > MAX_NOTE_BYTES:
        raise MalformedError(f"{what} longer than {MAX_NOTE_BYTES} bytes")
    return data


def check_note_text(text: str) -> None:
    """A note text: non-empty, newline-terminated, no control characters but newline."""
    if not text or not text.endswith("\n"):
        raise MalformedError("note text must be non-empty and end with a newline")
    m = _CONTROL.search(text)
    if m:
        raise MalformedError(f"note text contains control character {m.group()!r}")


@dataclass(frozen=True)
class Note:
    """A parsed (not yet verified) signed note."""

    text: str
    signatures: tuple[Signature, ...]

    @classmethod
    def parse(cls, data: str | bytes) -> Note:
        """Parse a signed note strictly; raises :class:`MalformedError` naming the problem."""
        s = _as_text(data, "note")
        m = _CONTROL.search(s)
        if m:
            raise MalformedError(f"note contains control character {m.group()!r}")
        if not s.endswith("\n"):
            raise MalformedError("note does not end with a newline (truncated or trailing data)")
        cut = s.rfind("\n\n")
        if cut < 0:
            raise MalformedError("note has no blank line before its signatures")
        text, block = s[: cut + 1], s[cut + 2 :]
        check_note_text(text)
        if not block:
            raise MalformedError("note has no signature lines")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise MalformedError(f"note has {len(lines)} signatures, limit {MAX_SIGNATURES}")
        sigs: list[Signature] = []
        seen: set[tuple[str, bytes]] = set()
        for n, line in enumerate(lines, 1):
            if not line.startswith(SIG_PREFIX):
                raise MalformedError(f"signature line {n} does not start with an em dash and space")
            parts = line[len(SIG_PREFIX) :].split(" ")
            if len(parts) != 2:
                raise MalformedError(f"signature line {n} is not '— <name> <base64>'")
            name, blob = parts
            check_key_name(name)
            raw = b64decode_strict(blob, f"signature line {n}")
            if len(raw) < 5:
                raise MalformedError(f"signature line {n} is too short ({len(raw)} bytes)")
            sig = Signature(name, raw[:4], raw[4:])
            if (name, sig.key_id) in seen:
                raise MalformedError(
                    f"duplicate signature for key {name}+{sig.key_id.hex()} (line {n})"
                )
            seen.add((name, sig.key_id))
            sigs.append(sig)
        return cls(text, tuple(sigs))

    def to_text(self) -> str:
        """The note text, the blank line and every signature line."""
        if not self.signatures:
            raise MalformedError("a signed note needs at least one signature")
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, extra: Iterable[Signature]) -> Note:
        """This note plus ``extra`` signatures (an identical line already present is kept once)."""
        sigs = list(self.signatures)
        for s in extra:
            if s in sigs:
                continue
            if any(o.name == s.name and o.key_id == s.key_id for o in sigs):
                raise MalformedError(f"a different signature for {s.name}+{s.key_id.hex()} exists")
            sigs.append(s)
        return Note(self.text, tuple(sigs))


def _import_public(public_key: bytes) -> VerifyKey:
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != 32:
        raise MalformedError("an Ed25519 public key is 32 bytes")
    try:
        return VerifyKey.from_bytes(bytes(public_key))
    except MalformedError as exc:
        raise MalformedError(f"invalid Ed25519 public key: {exc}") from None


class NoteVerifier:
    """Verifies Ed25519 (type 0x01) note signatures of one named key."""

    sig_type = SIG_TYPE_ED25519

    def __init__(self, name: str, public_key: bytes) -> None:
        check_key_name(name)
        self.name = name
        self.public_key = bytes(public_key)
        self._key = _import_public(self.public_key)
        self.key_id = key_id(name, self.sig_type, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``name+hexid+base64(0x01 || pubkey)``."""
        name, pub = parse_vkey(vkey, cls.sig_type)
        return cls(name, pub)

    def vkey(self) -> str:
        """This key as a verifier-key string."""
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    def _ed25519_verify(self, msg: bytes, sig: bytes) -> None:
        if len(sig) != 64:
            raise VerificationError(
                f"signature by {self.name} has {len(sig)} bytes, expected 64",
                step="note",
                party=self.name,
            )
        try:
            self._key.verify(msg, sig, party=self.name)
        except VerificationError:
            raise VerificationError(
                f"invalid signature by {self.name}+{self.key_id.hex()}",
                step="note",
                party=self.name,
            ) from None

    def verify(self, text: bytes, sig: bytes, *, now: float | None = None) -> None:
        """Check one signature over the note text; raises :class:`VerificationError`.

        ``now`` is the reference clock for timestamped signatures (unused here, see
        :meth:`CosignatureVerifier.verify`)."""
        self._ed25519_verify(text, sig)

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, NoteVerifier)
            and (other.name, other.public_key) == (self.name, self.public_key)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name, self.public_key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey()!r})"


class CosignatureVerifier(NoteVerifier):
    """Verifies tlog-cosignature/v1 (type 0x04) Ed25519 cosignatures of one witness.

    Signature bytes = ``u64 timestamp (big-endian) || Ed25519 signature`` over
    ``"cosignature/v1\\n" + "time <timestamp>\\n" + checkpoint note text``
    (tlog-cosignature §"Format" and §"Ed25519 signed message").
    """

    sig_type = SIG_TYPE_COSIGNATURE_V1

    @staticmethod
    def timestamp(sig: bytes) -> int:
        """The timestamp of a cosignature's ``timestamped_signature``."""
        if len(sig) != 72:
            raise MalformedError(f"a v1 cosignature is 72 bytes, got {len(sig)}")
        (t,) = struct.unpack(">Q", sig[:8])
        if t >= 1 << 63:
            raise MalformedError("cosignature timestamp exceeds 2^63 - 1")
        return int(t)

    @staticmethod
    def message(text: bytes, timestamp: int) -> bytes:
        """The signed message of a v1 cosignature."""
        return b"cosignature/v1\ntime %d\n" % timestamp + text

    def verify(self, text: bytes, sig: bytes, *, now: float | None = None) -> None:
        """Check one cosignature: its Ed25519 signature over the timestamped message, then
        its timestamp against ``now`` (default: this machine's clock) with
        :func:`check_cosignature_time`.  Raises :class:`VerificationError` naming the
        witness."""
        try:
            t = self.timestamp(sig)
        except MalformedError as exc:
            raise VerificationError(str(exc), step="cosignature", party=self.name) from None
        self._ed25519_verify(self.message(text, t), sig[8:])
        check_cosignature_time(t, self.name, now=now)


def check_cosignature_time(timestamp: int, witness: str, *, now: float | None = None) -> None:
    """The one rule for cosignature timestamps: ``timestamp`` (POSIX seconds, as signed by
    ``witness``) is at most :data:`COSIGNATURE_MAX_SKEW` seconds after the reference clock
    ``now`` (default: this machine's clock).  Any past timestamp passes: a certificate or
    log checked years later stays valid.  Raises :class:`VerificationError` naming the
    witness.

    Called on every cosignature :meth:`CosignatureVerifier.verify` checks (hence by
    :func:`verify_quorum`, witness policies, the verifier's step 7, the ledger store), and
    by :meth:`statledger.ledger.witness.Witness.cosign` on a timestamp its caller chose.
    """
    reference = time.time() if now is None else now
    if timestamp > reference + COSIGNATURE_MAX_SKEW:
        ahead = timestamp - int(reference)
        raise VerificationError(
            f"cosignature by {witness} is dated {timestamp}, {ahead} s after the reference "
            f"time {int(reference)}: more than the allowed clock skew of "
            f"{COSIGNATURE_MAX_SKEW} s into the future",
            step="cosignature",
            party=witness,
        )


def parse_vkey(vkey: str, sig_type: int) -> tuple[str, bytes]:
    """Split and check a verifier key; returns ``(name, public_key)``."""
    if not isinstance(vkey, str):
        raise MalformedError("verifier key must be a string")
    parts = vkey.split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3:
        raise MalformedError("verifier key is not '<name>+<hex key id>+<base64 key>'")
    name, hexid, blob = parts
    check_key_name(name)
    if not _HEX8.fullmatch(hexid):
        raise MalformedError("verifier key id must be 8 lowercase hex digits")
    raw = b64decode_strict(blob, "verifier key")
    if len(raw) != 33 or raw[0] != sig_type:
        raise MalformedError(
            f"verifier key must be type byte 0x{sig_type:02x} followed by a 32-byte Ed25519 key"
        )
    pub = raw[1:]
    if key_id(name, sig_type, pub).hex() != hexid:
        raise MalformedError("verifier key id does not match its name and key")
    _import_public(pub)
    return name, pub


class NoteSigner:
    """An Ed25519 note signer (type 0x01) for one key name, from a 32-byte RFC 8032 seed."""

    sig_type = SIG_TYPE_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
            raise MalformedError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._seed = bytes(seed)
        self._signer = SigningKey.from_bytes(self._seed)
        self.public_key: bytes = self._signer.public_key().to_bytes()
        self.key_id = key_id(name, self.sig_type, self.public_key)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A fresh key from ``secrets``."""
        import secrets

        return cls(name, secrets.token_bytes(32))

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>``."""
        parts = skey.split("+", 4)  # base64 may itself contain "+"
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise MalformedError("signer key is not 'PRIVATE+KEY+<name>+<hex id>+<base64>'")
        raw = b64decode_strict(parts[4], "signer key")
        if len(raw) != 33 or raw[0] != cls.sig_type:
            raise MalformedError(f"signer key must be type 0x{cls.sig_type:02x} + 32-byte seed")
        signer = cls(parts[2], raw[1:])
        if signer.key_id.hex() != parts[3]:
            raise MalformedError("signer key id does not match its name and key")
        return signer

    def skey(self) -> str:
        """This key as a signer-key string (secret!)."""
        blob = base64.b64encode(bytes([self.sig_type]) + self._seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{blob}"

    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self.name, self.public_key)

    def vkey(self) -> str:
        """The matching verifier key string."""
        return self.verifier().vkey()

    def _ed25519(self, msg: bytes) -> bytes:
        sig: bytes = self._signer.sign(msg)
        return sig

    def sign(self, text: str) -> Signature:
        """Sign a note text (checked: non-empty, newline-terminated, no control chars)."""
        check_note_text(text)
        return Signature(self.name, self.key_id, self._ed25519(text.encode("utf-8")))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` with every signer and return the signed note."""
    if not signers:
        raise MalformedError("sign_note needs at least one signer")
    return Note(text, tuple(s.sign(text) for s in signers)).to_text()


class QuorumError(VerificationError):
    """Fewer than the quorum of known keys signed a note (``valid``: the names that did)."""

    def __init__(
        self, reason: str, *, step: str | None, party: str | None, valid: Sequence[str],
        quorum: int,
    ) -> None:
        self.valid = tuple(valid)
        self.quorum = quorum
        super().__init__(reason, step=step, party=party)


def check_quorum(quorum: object, n_keys: int | None = None, *, what: str = "quorum") -> int:
    """A quorum is an integer >= 1, and at most ``n_keys`` when given; else
    :class:`MalformedError` naming ``what``.  A quorum of 0 would accept a note nobody signed."""
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise MalformedError(f"{what} must be an integer >= 1, got {quorum!r}")
    if n_keys is not None and quorum > n_keys:
        raise MalformedError(f"{what} must be in 1..{n_keys} (the number of keys), "
                             f"got {quorum}")
    return quorum


def verify_quorum(
    note: Note,
    verifiers: Sequence[NoteVerifier],
    quorum: int,
    *,
    step: str,
    party: str | None = None,
    kind: str = "signature",
    signers: str = "known keys",
    now: float | None = None,
) -> list[str]:
    """The one quorum rule: at least ``quorum`` (>= 1; 0 is refused by
    :func:`check_quorum`) distinct names among ``verifiers`` have a valid signature on
    ``note``; returns those names, in signature order.

    Signatures of unknown keys (name *and* key ID not matching a verifier) are ignored; an
    invalid signature of a known key raises :class:`VerificationError` blaming that key's
    name, and so does a cosignature dated more than :data:`COSIGNATURE_MAX_SKEW` seconds
    after ``now`` (default: this machine's clock; :func:`check_cosignature_time`); too few
    raise :class:`QuorumError` blaming ``party``.  Used for the log's own signature
    (:func:`open_note`, quorum 1), witness policies
    (:class:`statledger.ledger.witness.WitnessPolicy`) and step 7 of a verification
    (``kind="cosignature"``).
    """
    check_quorum(quorum)
    by_id = {(v.name, v.key_id): v for v in verifiers}
    msg = note.text.encode("utf-8")
    valid: list[str] = []
    for sig in note.signatures:
        v = by_id.get((sig.name, sig.key_id))
        if v is None:
            continue
        try:
            v.verify(msg, sig.sig, now=now)
        except VerificationError as exc:
            raise VerificationError(f"invalid {kind} by {v.name}: {exc.reason}", step=step,
                                    party=v.name) from None
        if v.name not in valid:
            valid.append(v.name)
    if len(valid) < quorum:
        reason = (f"found {len(valid)} valid {kind}s of {len(by_id)} {signers}, "
                  f"quorum is {quorum}")
        if not valid:
            reason = f"no {kind} from a known key: {reason}"
        raise QuorumError(reason, step=step, party=party, valid=valid, quorum=quorum)
    return valid


def open_note(
    data: str | bytes | Note, verifiers: Sequence[NoteVerifier]
) -> tuple[Note, list[str]]:
    """Parse and verify a note; returns the note and the names of keys that verified it.

    Signatures of unknown keys are ignored; a bad signature of a known key raises
    :class:`VerificationError`; no verified known key raises :class:`VerificationError`
    (:func:`verify_quorum` with a quorum of 1).
    """
    note = data if isinstance(data, Note) else Note.parse(data)
    return note, verify_quorum(note, verifiers, 1, step="note")
