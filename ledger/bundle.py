"""Offline proof bundle for one entry, in the C2SP tlog-proof format.

Text form (https://c2sp.org/tlog-proof, §"Format")::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry bytes>
    index <decimal, no leading zeroes>
    <base64 inclusion proof hash, leaf sibling first>      (zero or more lines)
    <empty line>
    <checkpoint signed note, verbatim, with cosignatures>

The spec's ``extra`` line carries opaque unauthenticated data; we put the entry bytes there
(they are authenticated by the inclusion proof: the verifier recomputes the leaf hash from
them).  Unlike the spec, which makes ``extra`` optional, a statledger bundle requires it.

JSON form (for certificates): ``{"format": "statledger-proof/v1", "index": int,
"entry": base64, "inclusion": [hex, ...], "checkpoint": note text}``, exactly these keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from statledger.ledger.checkpoint import Checkpoint
from statledger.ledger.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from statledger.ledger.note import Note, b64decode_strict
from statledger.ledger.witness import WitnessPolicy
from statledger.proofs.errors import MalformedError, VerificationError

__all__ = ["HEADER", "JSON_FORMAT", "ProofBundle", "verify_bundle"]

HEADER = "c2sp.org/tlog-proof@v1"
JSON_FORMAT = "statledger-proof/v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,19})")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_PROOF = 64


@dataclass(frozen=True)
class ProofBundle:
    """Entry bytes, index, inclusion proof and the cosigned checkpoint note."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    checkpoint: str

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise MalformedError("bundle index must be an int")
        if not 0 <= self.index < 1 << 64:
            raise MalformedError("bundle index out of range")
        if not isinstance(self.entry, bytes):
            raise MalformedError("bundle entry must be bytes")
        if len(self.proof) > _MAX_PROOF:
            raise MalformedError(f"inclusion proof longer than {_MAX_PROOF} hashes")
        for i, h in enumerate(self.proof):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise MalformedError(f"inclusion proof hash {i} is not {HASH_SIZE} bytes")
        if not isinstance(self.checkpoint, str):
            raise MalformedError("bundle checkpoint must be a str")
        Checkpoint.parse(Note.parse(self.checkpoint).text)

    # -- text (tlog-proof) ------------------------------------------------------------------

    def to_text(self) -> str:
        """The tlog-proof text."""
        lines = [HEADER, "extra " + base64.b64encode(self.entry).decode("ascii")]
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint

    @classmethod
    def from_text(cls, text: str | bytes) -> ProofBundle:
        """Parse a tlog-proof text strictly (exact inverse of :meth:`to_text`)."""
        if isinstance(text, bytes | bytearray):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedError("proof bundle is not UTF-8") from None
        if not isinstance(text, str):
            raise MalformedError("proof bundle must be text")
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise MalformedError("proof bundle has no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise MalformedError(f"proof bundle must start with {HEADER!r}")
        if len(lines) < 3 or not lines[1].startswith("extra "):
            raise MalformedError("proof bundle needs an 'extra <base64 entry>' line")
        entry = b64decode_strict(lines[1][len("extra ") :], "bundle entry")
        m = _INDEX.fullmatch(lines[2])
        if not m:
            raise MalformedError("proof bundle needs an 'index <decimal>' line")
        proof = []
        for i, line in enumerate(lines[3:]):
            h = b64decode_strict(line, f"inclusion proof line {i}")
            if len(h) != HASH_SIZE:
                raise MalformedError(f"inclusion proof line {i} is {len(h)} bytes, expected 32")
            proof.append(h)
        bundle = cls(int(m.group(1)), entry, tuple(proof), note)
        if bundle.to_text() != text:
            raise MalformedError("proof bundle is not in canonical form")
        return bundle

    # -- JSON -------------------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON object form."""
        return {
            "format": JSON_FORMAT,
            "index": self.index,
            "entry": base64.b64encode(self.entry).decode("ascii"),
            "inclusion": [h.hex() for h in self.proof],
            "checkpoint": self.checkpoint,
        }

    def to_json(self) -> str:
        """Compact JSON with sorted keys."""
        return json.dumps(self.to_json_obj(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json_obj(cls, obj: object) -> ProofBundle:
        """Strict: exactly the documented keys with the documented types."""
        if not isinstance(obj, dict):
            raise MalformedError("proof bundle JSON must be an object")
        keys = {"format", "index", "entry", "inclusion", "checkpoint"}
        if set(obj) != keys:
            raise MalformedError(f"proof bundle keys must be exactly {sorted(keys)}")
        if obj["format"] != JSON_FORMAT:
            raise MalformedError(f"proof bundle format must be {JSON_FORMAT!r}")
        index, entry, inclusion = obj["index"], obj["entry"], obj["inclusion"]
        note = obj["checkpoint"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise MalformedError("proof bundle index must be an integer")
        if not isinstance(entry, str) or not isinstance(note, str):
            raise MalformedError("proof bundle entry and checkpoint must be strings")
        if not isinstance(inclusion, list):
            raise MalformedError("proof bundle inclusion must be a list")
        proof = []
        for i, h in enumerate(inclusion):
            if not isinstance(h, str) or not _HEX64.fullmatch(h):
                raise MalformedError(f"inclusion hash {i} must be 64 lowercase hex digits")
            proof.append(binascii.unhexlify(h))
        return cls(index, b64decode_strict(entry, "bundle entry"), tuple(proof), note)

    @classmethod
    def from_json(cls, text: str | bytes) -> ProofBundle:
        """Parse JSON text (duplicate keys rejected)."""

        def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k, v in pairs:
                if k in out:
                    raise MalformedError(f"duplicate JSON key {k!r}")
                out[k] = v
            return out

        try:
            obj = json.loads(text, object_pairs_hook=no_dupes)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedError(f"proof bundle is not JSON: {exc}") from None
        return cls.from_json_obj(obj)


def verify_bundle(bundle: ProofBundle, policy: WitnessPolicy) -> None:
    """Verify a bundle offline; returns None or raises.

    (1) the checkpoint carries the log signature and the policy's witness quorum;
    (2) the index is inside the checkpointed tree;
    (3) the inclusion proof of ``leaf_hash(entry)`` at ``index`` leads to the checkpoint root.
    """
    try:
        cp = policy.open(bundle.checkpoint)
    except VerificationError as exc:
        raise VerificationError(f"checkpoint: {exc}", step="bundle step 1") from None
    if bundle.index >= cp.size:
        raise VerificationError(
            f"index {bundle.index} is outside the checkpointed tree of size {cp.size}",
            step="bundle step 2",
        )
    try:
        verify_inclusion(bundle.index, cp.size, leaf_hash(bundle.entry), bundle.proof, cp.root)
    except VerificationError as exc:
        raise VerificationError(f"inclusion: {exc}", step="bundle step 3") from exc
