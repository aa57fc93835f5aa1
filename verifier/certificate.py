"""The verification certificate: format ``statledger-certificate/v1`` (docs/certificate.md).

A certificate is one JSON object::

    {
      "format": "statledger-certificate/v1",
      "origin": "<log origin line>",
      "log_key": "<signed-note verifier key: name+keyid+base64>",
      "checkpoint": "<C2SP signed note: log signature and witness cosignatures>",
      "entries": [{"index": 17, "data": "<base64 entry bytes>", "proof": ["<hex hash>", ...]}]
    }

Every fact the verifier uses is read out of an entry's bytes, and every entry is
authenticated by its inclusion proof against the signed checkpoint, so no field can change
without failing verification.  This module only parses (strictly); the checks are in
:mod:`statledger.verifier.verify`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.canonical import parse_json

__all__ = ["FORMAT", "CertEntry", "Certificate", "parse_certificate", "build_certificate"]

FORMAT = "statledger-certificate/v1"
_KEYS = {"format", "origin", "log_key", "checkpoint", "entries"}
_ENTRY_KEYS = {"index", "data", "proof"}
_MAX_ENTRIES = 100_000
_MAX_PROOF = 64


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

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "origin": self.origin,
            "log_key": self.log_key,
            "checkpoint": self.checkpoint,
            "entries": [
                {
                    "index": e.index,
                    "data": base64.b64encode(e.data).decode("ascii"),
                    "proof": [h.hex() for h in e.proof],
                }
                for e in self.entries
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_json_obj(), indent=1) + "\n"


def _str(obj: dict[str, Any], key: str) -> str:
    v = obj[key]
    if not isinstance(v, str) or not v:
        raise MalformedError(f"certificate.{key}: expected a non-empty string")
    return v


def parse_certificate(raw: bytes | str) -> Certificate:
    """Parse a certificate strictly; anything unexpected raises :class:`MalformedError`."""
    try:
        obj = parse_json(raw)
    except MalformedError as exc:
        raise MalformedError(f"certificate is not strict JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedError("certificate: expected a JSON object")
    if set(obj) != _KEYS:
        missing = sorted(_KEYS - set(obj))
        extra = sorted(set(obj) - _KEYS)
        raise MalformedError(f"certificate: missing keys {missing}, unexpected keys {extra}")
    if obj["format"] != FORMAT:
        raise MalformedError(f"certificate.format: expected {FORMAT!r}")
    entries_obj = obj["entries"]
    if not isinstance(entries_obj, list) or not entries_obj:
        raise MalformedError("certificate.entries: expected a non-empty list")
    if len(entries_obj) > _MAX_ENTRIES:
        raise MalformedError("certificate.entries: too many entries")
    entries: list[CertEntry] = []
    last = -1
    for pos, e in enumerate(entries_obj):
        where = f"certificate.entries[{pos}]"
        if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
            raise MalformedError(f"{where}: expected an object with keys {sorted(_ENTRY_KEYS)}")
        index = e["index"]
        if type(index) is not int or index < 0 or index >= 2**63:
            raise MalformedError(f"{where}.index: expected a non-negative integer")
        if index <= last:
            raise MalformedError(f"{where}.index: indices must be strictly increasing")
        last = index
        data_s = e["data"]
        if not isinstance(data_s, str):
            raise MalformedError(f"{where}.data: expected base64 text")
        try:
            data = base64.b64decode(data_s.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise MalformedError(f"{where}.data: invalid base64") from None
        if base64.b64encode(data).decode("ascii") != data_s or not data:
            raise MalformedError(f"{where}.data: non-canonical base64")
        proof_obj = e["proof"]
        if not isinstance(proof_obj, list) or len(proof_obj) > _MAX_PROOF:
            raise MalformedError(f"{where}.proof: expected a list of at most {_MAX_PROOF} hashes")
        proof: list[bytes] = []
        for k, h in enumerate(proof_obj):
            if not isinstance(h, str) or len(h) != 64 or h != h.lower():
                raise MalformedError(f"{where}.proof[{k}]: expected 64 lowercase hex digits")
            try:
                proof.append(bytes.fromhex(h))
            except ValueError:
                raise MalformedError(f"{where}.proof[{k}]: invalid hex") from None
        entries.append(CertEntry(index=index, data=data, proof=tuple(proof)))
    return Certificate(
        origin=_str(obj, "origin"),
        log_key=_str(obj, "log_key"),
        checkpoint=_str(obj, "checkpoint"),
        entries=tuple(entries),
    )


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
