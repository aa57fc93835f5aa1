"""Ed25519 signatures (RFC 8032, pure Ed25519) via pycryptodome, wrapped so verification raises.

* :class:`SigningKey` -- a 32-byte RFC 8032 seed.  ``generate()`` draws it from ``secrets``.
* :class:`VerifyKey` -- a 32-byte public key.  ``from_bytes`` is strict: exactly 32 bytes,
  canonical encoding (re-encodes to the same bytes), on the curve, and *not* of small order
  (the 8-torsion keys, e.g. the identity, would let anyone "sign" some messages).
* :meth:`VerifyKey.verify` returns ``None`` or raises
  :class:`~statledger.proofs.errors.VerificationError` (``party`` names who is blamed); a
  signature that is not exactly 64 bytes raises
  :class:`~statledger.proofs.errors.MalformedError`.  ``S >= L`` is rejected here (RFC 8032
  section 5.1.7: pycryptodome itself only rejects ``S > L``, so ``S = L`` -- a second encoding
  of ``S = 0`` -- would pass); pycryptodome rejects non-canonical ``R``.

Every Ed25519 key of statledger goes through this module (the log's signed notes and the
witnesses' cosignatures in ``statledger.ledger`` included).

This is the lowest layer: ``ledger`` may import it (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from Crypto.Signature import eddsa

from statledger.proofs.errors import MalformedError, VerificationError

__all__ = ["SigningKey", "VerifyKey", "SEED_BYTES", "PUBLIC_KEY_BYTES", "SIGNATURE_BYTES"]

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
#: The order of the Ed25519 base point (RFC 8032 section 5.1).
ED25519_L = 2**252 + 27742317777372353535851937790883648493


def _check_bytes(data: object, n: int, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"{what} must be bytes")
    data = bytes(data)
    if len(data) != n:
        raise MalformedError(f"{what} must be {n} bytes, got {len(data)}")
    return data


#: Keys that passed :meth:`VerifyKey.from_bytes`, by their 32 bytes (VerifyKey is immutable).
_ACCEPTED_KEYS: dict[bytes, VerifyKey] = {}
_MAX_ACCEPTED_KEYS = 4096
#: (public key, SHA-256 of the message, signature) triples that verified.
_VERIFIED: set[tuple[bytes, bytes, bytes]] = set()
_MAX_VERIFIED = 1 << 16


class VerifyKey:
    """An Ed25519 public key.  Immutable; compare with ``==``."""

    __slots__ = ("_raw", "_key")
    _raw: bytes
    _key: Any

    def __init__(self) -> None:
        raise TypeError("use VerifyKey.from_bytes or SigningKey.public_key()")

    @classmethod
    def _wrap(cls, raw: bytes, key: Any) -> VerifyKey:
        vk = object.__new__(cls)
        object.__setattr__(vk, "_raw", raw)
        object.__setattr__(vk, "_key", key)
        return vk

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("VerifyKey is immutable")

    @classmethod
    def from_bytes(cls, data: bytes) -> VerifyKey:
        raw = _check_bytes(data, PUBLIC_KEY_BYTES, "Ed25519 public key")
        # Decoding is a pure function of the 32 bytes (a point decompression and a small-order
        # test, ~1 ms): a key that passed every check is reused for the same bytes.  Only
        # accepted keys are kept, so a rejected encoding is re-checked (and refused) each time.
        known = _ACCEPTED_KEYS.get(raw)
        if known is not None:
            return known
        try:
            key = eddsa.import_public_key(raw)
        except ValueError as exc:
            raise MalformedError(f"invalid Ed25519 public key: {exc}") from None
        if key.export_key(format="raw") != raw:
            raise MalformedError("non-canonical Ed25519 public key encoding")
        if (key.pointQ * 8).is_point_at_infinity():
            raise MalformedError("Ed25519 public key of small order")
        vk = cls._wrap(raw, key)
        if len(_ACCEPTED_KEYS) >= _MAX_ACCEPTED_KEYS:  # bounded: parties are few, a flood
            _ACCEPTED_KEYS.clear()                     # of fresh keys only costs time
        _ACCEPTED_KEYS[raw] = vk
        return vk

    def to_bytes(self) -> bytes:
        return bytes(self._raw)

    def verify(self, msg: bytes, sig: bytes, *, party: str | None = None) -> None:
        """Return ``None`` if ``sig`` is a valid signature of ``msg``; raise otherwise."""
        if not isinstance(msg, bytes | bytearray | memoryview):
            raise MalformedError("signed message must be bytes")
        sig = _check_bytes(sig, SIGNATURE_BYTES, "Ed25519 signature")
        if int.from_bytes(sig[32:], "little") >= ED25519_L:
            raise VerificationError("Ed25519 signature: S is not reduced (S >= L)", party=party)
        msg = bytes(msg)
        # Verification is a pure function of (key, message, signature): a triple that
        # verified once is not verified again (~3 ms each; a party re-reads the same entries
        # and checkpoints many times per query).  The message is keyed by its SHA-256, so a
        # different message, key or signature byte is a different triple and is checked.
        seen = (self._raw, hashlib.sha256(msg).digest(), sig)
        if seen in _VERIFIED:
            return
        try:
            eddsa.new(self._key, "rfc8032").verify(msg, sig)
        except ValueError:
            raise VerificationError("Ed25519 signature does not verify", party=party) from None
        if len(_VERIFIED) >= _MAX_VERIFIED:
            _VERIFIED.clear()
        _VERIFIED.add(seen)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifyKey):
            return NotImplemented
        return bool(self._raw == other._raw)

    def __hash__(self) -> int:
        return hash((VerifyKey, self._raw))

    def __repr__(self) -> str:
        return f"VerifyKey({self._raw.hex()})"


class SigningKey:
    """An Ed25519 private key (RFC 8032 32-byte seed)."""

    __slots__ = ("_seed", "_key", "_public")
    _seed: bytes
    _key: Any
    _public: VerifyKey

    def __init__(self) -> None:
        raise TypeError("use SigningKey.generate() or SigningKey.from_bytes(seed)")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("SigningKey is immutable")

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_bytes(secrets.token_bytes(SEED_BYTES))

    @classmethod
    def from_bytes(cls, seed: bytes) -> SigningKey:
        seed = _check_bytes(seed, SEED_BYTES, "Ed25519 seed")
        key = eddsa.import_private_key(seed)
        pub = key.public_key()
        sk = object.__new__(cls)
        object.__setattr__(sk, "_seed", seed)
        object.__setattr__(sk, "_key", key)
        object.__setattr__(sk, "_public", VerifyKey._wrap(pub.export_key(format="raw"), pub))
        return sk

    def to_bytes(self) -> bytes:
        return bytes(self._seed)

    def public_key(self) -> VerifyKey:
        vk: VerifyKey = self._public
        return vk

    def sign(self, msg: bytes) -> bytes:
        if not isinstance(msg, bytes | bytearray | memoryview):
            raise TypeError("message to sign must be bytes")
        sig: bytes = eddsa.new(self._key, "rfc8032").sign(bytes(msg))
        return sig

    def __repr__(self) -> str:
        return "SigningKey(<secret>)"
