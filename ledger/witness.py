"""Witnesses: C2SP tlog-cosignature/v1 (Ed25519) cosigning and k-of-n witness policies.

Cosignature (https://c2sp.org/tlog-cosignature, §"Format", §"Ed25519 signed message"):

* signature line ``— <witness name> base64(key ID || timestamp || signature)``;
* key ID = ``SHA-256(<name> || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4]``;
* ``timestamped_signature`` = ``u64 timestamp (big-endian, < 2^63) || 64-byte Ed25519 sig``;
* signed message = ``"cosignature/v1\\n" + "time <timestamp>\\n" + checkpoint note text``.

A :class:`Witness` follows the c2sp.org/tlog-witness "add-checkpoint" rules: it keeps, per
origin, the latest checkpoint (size, root) it cosigned in its own SQLite database; a request
names the size the submitter believes the witness is at (``old_size``) plus a consistency
proof from that size.  The witness verifies the log signature, refuses a stale ``old_size``
(:class:`WitnessConflictError`, HTTP 409 in tlog-witness), a smaller tree (rollback) and an
inconsistent one (:class:`ForkError`), then advances its state with a compare-and-swap
``UPDATE ... WHERE size = ? AND root = ?`` and only then signs, with its own clock as the
timestamp (a request cannot choose it; an in-process caller that passes ``timestamp=`` may
not date a cosignature further in the future than
:data:`~statledger.ledger.note.COSIGNATURE_MAX_SKEW`, which every verifier refuses).
"""

from __future__ import annotations

import sqlite3
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import sqlite_utils

from statledger.ledger.checkpoint import Checkpoint, open_checkpoint
from statledger.ledger.merkle import EMPTY_ROOT, verify_consistency
from statledger.ledger.note import (
    SIG_TYPE_COSIGNATURE_V1,
    CosignatureVerifier,
    Note,
    NoteVerifier,
    Signature,
    check_cosignature_time,
    check_key_name,
    check_quorum,
    key_id,
    verify_quorum,
)
from statledger.proofs.errors import MalformedError, PolicyError, ProtocolError, VerificationError
from statledger.proofs.signatures import SigningKey

__all__ = [
    "CosignatureSigner",
    "Witness",
    "WitnessConflictError",
    "ForkError",
    "UnknownLogError",
    "WitnessPolicy",
]


class _HasToBytes(Protocol):
    def to_bytes(self) -> bytes: ...


class WitnessConflictError(ProtocolError):
    """``old_size`` does not match the witness's state (tlog-witness: 409 Conflict).

    ``size`` is the size the witness is actually at, to retry with.
    """

    def __init__(self, message: str, size: int) -> None:
        self.size = size
        super().__init__(message)


class ForkError(VerificationError):
    """The checkpoint is not consistent with what the witness cosigned (fork or rollback)."""


class UnknownLogError(PolicyError):
    """The witness is not configured to witness this origin."""


class CosignatureSigner:
    """Signs tlog-cosignature/v1 Ed25519 cosignatures for one witness name."""

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise MalformedError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._signer = SigningKey.from_bytes(seed)
        self.public_key: bytes = self._signer.public_key().to_bytes()
        self.key_id = key_id(name, SIG_TYPE_COSIGNATURE_V1, self.public_key)

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier (vkey type 0x04)."""
        return CosignatureVerifier(self.name, self.public_key)

    def vkey(self) -> str:
        """The matching verifier-key string."""
        return self.verifier().vkey()

    def cosign(self, text: str, timestamp: int) -> Signature:
        """A cosignature over a checkpoint note text at ``timestamp`` (POSIX seconds)."""
        if isinstance(timestamp, bool) or not 0 <= timestamp < 1 << 63:
            raise MalformedError("cosignature timestamp must be in [0, 2^63)")
        msg = CosignatureVerifier.message(text.encode("utf-8"), timestamp)
        sig: bytes = self._signer.sign(msg)
        return Signature(self.name, self.key_id, struct.pack(">Q", timestamp) + sig)


def _seed(key: bytes | _HasToBytes) -> bytes:
    return key if isinstance(key, bytes) else key.to_bytes()


class Witness:
    """A witness with its own SQLite state: ``Witness(path, name, signing_key, logs)``.

    ``logs`` are the log verifiers (key name = origin) this witness accepts checkpoints from.
    """

    def __init__(
        self,
        path: str | Path,
        name: str,
        signing_key: bytes | _HasToBytes,
        logs: Sequence[NoteVerifier],
    ) -> None:
        self.signer = CosignatureSigner(name, _seed(signing_key))
        self.name = name
        self.logs = {v.name: v for v in logs}
        self._lock = threading.Lock()
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        self.db.enable_wal()  # type: ignore[no-untyped-call]
        conn.execute("PRAGMA busy_timeout=10000")
        conn.executescript(
            "CREATE TABLE IF NOT EXISTS witness_state("
            "origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, "
            "ts INTEGER NOT NULL);"
            "CREATE TRIGGER IF NOT EXISTS witness_state_no_delete BEFORE DELETE ON witness_state "
            "BEGIN SELECT RAISE(ABORT, 'witness state cannot be deleted'); END;"
            "CREATE TRIGGER IF NOT EXISTS witness_state_grow BEFORE UPDATE ON witness_state "
            "WHEN NEW.size < OLD.size OR NEW.origin IS NOT OLD.origin "
            "BEGIN SELECT RAISE(ABORT, 'witness state can only grow'); END;"
        )

    def verifier(self) -> CosignatureVerifier:
        """This witness's cosignature verifier."""
        return self.signer.verifier()

    def close(self) -> None:
        """Close the state database."""
        self._conn.close()

    def state(self, origin: str) -> tuple[int, bytes]:
        """The (size, root) last cosigned for ``origin``; ``(0, EMPTY_ROOT)`` if none."""
        row = self._conn.execute(
            "SELECT size, root FROM witness_state WHERE origin = ?", (origin,)
        ).fetchone()
        return (0, EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))

    def cosign(
        self,
        checkpoint_note: str,
        consistency_proof: Sequence[bytes],
        old_size: int,
        *,
        timestamp: int | None = None,
    ) -> Signature:
        """Verify and cosign a checkpoint; returns the cosignature (``.line()`` for the text).

        Steps: (0) a ``timestamp`` chosen by the caller (default: this machine's clock) may
        not lie more than ``COSIGNATURE_MAX_SKEW`` seconds ahead of the clock
        (:class:`PolicyError`); (1) parse, find the log by origin and verify its signature;
        (2) ``old_size`` must equal the witness's size for that origin; (3) no rollback;
        (4) the consistency proof from the witness's (size, root) to the new checkpoint;
        (5) compare-and-swap the state; (6) sign.
        """
        if timestamp is not None:  # step 0: never sign a cosignature verifiers would refuse
            if isinstance(timestamp, bool) or not isinstance(timestamp, int):
                raise MalformedError(f"timestamp must be an int, got {timestamp!r}")
            try:
                check_cosignature_time(timestamp, self.name)
            except VerificationError as exc:
                raise PolicyError(f"witness {self.name} refuses to cosign: {exc.reason}"
                                  ) from None
        note = Note.parse(checkpoint_note)
        cp = Checkpoint.parse(note.text)  # step 1
        log = self.logs.get(cp.origin)
        if log is None:
            raise UnknownLogError(f"witness {self.name} does not witness origin {cp.origin!r}")
        open_checkpoint(note, log, origin=cp.origin)
        if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
            raise MalformedError(f"old_size must be a non-negative int, got {old_size!r}")
        proof = list(consistency_proof)
        with self._lock:
            size0, root0 = self.state(cp.origin)
            if old_size != size0:  # step 2
                raise WitnessConflictError(
                    f"witness {self.name} is at size {size0} for {cp.origin}, not {old_size}",
                    size0,
                )
            if cp.size < size0:  # step 3
                raise ForkError(
                    f"rollback: checkpoint size {cp.size} < cosigned size {size0}",
                    step="witness",
                    party=cp.origin,
                )
            try:  # step 4
                if size0 == 0:
                    if proof:
                        raise ForkError("a proof from the empty tree must be empty", step="witness")
                else:
                    verify_consistency(size0, cp.size, root0, cp.root, proof)
            except VerificationError as exc:
                raise ForkError(
                    f"checkpoint {cp.size} is not consistent with cosigned {size0}: {exc}",
                    step="witness",
                    party=cp.origin,
                ) from None
            now = int(time.time()) if timestamp is None else timestamp
            self._cas(cp.origin, size0, root0, cp.size, cp.root, now)  # step 5
        return self.signer.cosign(note.text, now)  # step 6

    def _cas(self, origin: str, size0: int, root0: bytes, size: int, root: bytes, ts: int) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if size0 == 0:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO witness_state(origin, size, root, ts) "
                    "VALUES (?, ?, ?, ?)",
                    (origin, size, root, ts),
                )
                if cur.rowcount != 1:
                    cur = conn.execute(
                        "UPDATE witness_state SET size = ?, root = ?, ts = ? "
                        "WHERE origin = ? AND size = 0 AND root = ?",
                        (size, root, ts, origin, root0),
                    )
            else:
                cur = conn.execute(
                    "UPDATE witness_state SET size = ?, root = ?, ts = ? "
                    "WHERE origin = ? AND size = ? AND root = ?",
                    (size, root, ts, origin, size0, root0),
                )
            if cur.rowcount != 1:
                size_now, _ = self.state(origin)
                raise WitnessConflictError(
                    f"witness state for {origin} changed concurrently (now {size_now})", size_now
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class WitnessPolicy:
    """ "The log's signature plus at least ``quorum`` (>= 1) of these witnesses" on a
    checkpoint, checked with the one quorum rule :func:`statledger.ledger.note.verify_quorum`."""

    def __init__(
        self,
        log_key: NoteVerifier,
        witness_keys: Sequence[CosignatureVerifier],
        quorum: int,
        *,
        origin: str | None = None,
    ) -> None:
        keys = list(witness_keys)
        if any(not isinstance(k, CosignatureVerifier) for k in keys):
            raise MalformedError("witness keys must be cosignature (type 0x04) verifiers")
        if len({(k.name, k.key_id) for k in keys}) != len(keys) or len(
            {k.public_key for k in keys}
        ) != len(keys):
            raise MalformedError("duplicate witness key in policy")
        check_quorum(quorum, len(keys))
        self.log_key = log_key
        self.witness_keys = tuple(keys)
        self.quorum = quorum
        self.origin = log_key.name if origin is None else origin

    def open(self, note: str | bytes | Note, *, now: float | None = None) -> Checkpoint:
        """Verify log signature and quorum; return the checkpoint (raises otherwise).

        A cosignature dated more than ``COSIGNATURE_MAX_SKEW`` seconds after ``now``
        (default: this machine's clock) is invalid and blames its witness."""
        cp, parsed = open_checkpoint(note, self.log_key, origin=self.origin)
        verify_quorum(parsed, self.witness_keys, self.quorum, step="witness-quorum",
                      kind="cosignature", signers="witnesses", now=now)
        return cp

    def verify(self, note: str | bytes | Note, *, now: float | None = None) -> None:
        """Raise unless the note carries the log signature and ``quorum`` valid cosignatures
        (timestamps checked against ``now``, as in :meth:`open`)."""
        self.open(note, now=now)
