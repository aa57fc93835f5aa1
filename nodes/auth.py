"""Authenticated HTTP between parties: every request is signed with the sender's Ed25519 key,
for one recipient.

Headers (all required)::

    X-Statledger-Party:     the sender's party id
    X-Statledger-Time:      unix seconds, decimal, no sign, no leading zeros
    X-Statledger-Nonce:     16 random bytes, 32 lowercase hex digits
    X-Statledger-Signature: Ed25519 signature, 128 lowercase hex digits, over

        b"statledger/http/v2\\n" + sender + b"\\n" + recipient + b"\\n"
        + METHOD + b"\\n" + path?query + b"\\n"
        + sha256(body).hex() + b"\\n" + time + b"\\n" + nonce

``sender`` is the ``X-Statledger-Party`` value; ``recipient`` is the party id of the service
the request is addressed to (the client's ``target``).  The recipient travels in no header:
the server puts its *own* party id there, so a request signed for one party and replayed to
another within the time window fails the signature check (401) instead of being accepted
by a node that has never seen its nonce.  ``path?query`` is the request target exactly as
sent (percent-encoded, the query string only when present).  The signed bytes are
length-unambiguous: every field but the last is free of newlines (party ids match
``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``, the method is an HTTP token, the target has no raw
whitespace, the others are fixed alphabets), so no two distinct requests share a signing
payload.  Version 1 (``statledger/http/v1``, no sender, no recipient) is no longer
accepted: its signatures do not verify under the v2 payload.

Server side (:class:`Authenticator`, built with the service's own party id as
``recipient``): (1) all four headers present and well-formed, (2) the party is known to the
service's key directory, (3) the time is within +-300 s of the server clock, (4) the
signature verifies over the payload addressed to this service, (5) the nonce was not seen
before for this party (nonces live in the service's SQLite, pruned after twice the window),
(6) the party has one of the roles the route requires.  Failures: (1)-(4) -> 401,
(5) -> 409, (6) -> 403.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Request

from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError

if TYPE_CHECKING:
    from statledger.proofs.signatures import SigningKey, VerifyKey

__all__ = [
    "DOMAIN",
    "HEADER_PARTY",
    "HEADER_TIME",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "TIME_WINDOW",
    "check_party_id",
    "AuthError",
    "ReplayError",
    "ForbiddenError",
    "KeyDirectory",
    "RoleDirectory",
    "signing_payload",
    "sign_request",
    "verify_request",
    "request_target",
    "NonceStore",
    "Authenticator",
]

DOMAIN = b"statledger/http/v2\n"
HEADER_PARTY = "X-Statledger-Party"
HEADER_TIME = "X-Statledger-Time"
HEADER_NONCE = "X-Statledger-Nonce"
HEADER_SIGNATURE = "X-Statledger-Signature"
TIME_WINDOW = 300

_PARTY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_TIME_RE = re.compile(r"0|[1-9][0-9]{0,11}")
_NONCE_RE = re.compile(r"[0-9a-f]{32}")
_SIG_RE = re.compile(r"[0-9a-f]{128}")
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_TARGET_RE = re.compile(r"/[\x21-\x7e]*")

KeyDirectory = Callable[[str], "VerifyKey | None"]
RoleDirectory = Callable[[str], "str | None"]


class AuthError(StatledgerError):
    """A request refused by authentication; ``status`` is the HTTP status to answer with."""

    status = 401

    def __init__(self, reason: str, *, party: str | None = None) -> None:
        self.reason = reason
        self.party = party
        super().__init__(reason)


class ReplayError(AuthError):
    """A nonce already used by this party (409)."""

    status = 409


class ForbiddenError(AuthError):
    """An authenticated party without the role the route requires (403)."""

    status = 403


def check_party_id(party_id: str, what: str) -> str:
    """``party_id`` if it is a well-formed party id, else :class:`MalformedError` naming
    ``what``."""
    if not isinstance(party_id, str) or not _PARTY_RE.fullmatch(party_id):
        raise MalformedError(f"http signature: bad {what} party id {party_id!r}")
    return party_id


def signing_payload(
    method: str,
    target: str,
    body: bytes,
    timestamp: str,
    nonce: str,
    *,
    sender: str,
    recipient: str,
) -> bytes:
    """The bytes signed for one request from ``sender`` to ``recipient`` (see the module
    docstring); ``target`` is the request target (path?query)."""
    check_party_id(sender, "sender")
    check_party_id(recipient, "recipient")
    if not _METHOD_RE.fullmatch(method):
        raise MalformedError(f"http signature: bad method {method!r}")
    if not _TARGET_RE.fullmatch(target):
        raise MalformedError("http signature: request target must be an absolute path")
    if not _TIME_RE.fullmatch(timestamp):
        raise MalformedError("http signature: bad timestamp")
    if not _NONCE_RE.fullmatch(nonce):
        raise MalformedError("http signature: bad nonce")
    return b"\n".join(
        [
            DOMAIN[:-1],
            sender.encode("ascii"),
            recipient.encode("ascii"),
            method.encode("ascii"),
            target.encode("ascii"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
            timestamp.encode("ascii"),
            nonce.encode("ascii"),
        ]
    )


def sign_request(
    signing_key: SigningKey,
    party_id: str,
    method: str,
    target: str,
    body: bytes,
    *,
    recipient: str,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four authentication headers for a request ``method target`` with ``body``, sent
    by ``party_id`` to the party ``recipient`` (only that party accepts it)."""
    check_party_id(party_id, "sender")
    ts = str(int(time.time() if now is None else now))
    n = secrets.token_hex(16) if nonce is None else nonce
    payload = signing_payload(method.upper(), target, body, ts, n, sender=party_id,
                              recipient=recipient)
    sig = signing_key.sign(payload)
    return {
        HEADER_PARTY: party_id,
        HEADER_TIME: ts,
        HEADER_NONCE: n,
        HEADER_SIGNATURE: sig.hex(),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        raise AuthError(f"missing header {name}")
    return value


def verify_request(
    headers: Mapping[str, str],
    method: str,
    target: str,
    body: bytes,
    keys: KeyDirectory,
    *,
    recipient: str,
    now: float | None = None,
    window: int = TIME_WINDOW,
) -> tuple[str, str, int]:
    """Steps (1)-(4) for a request received by the party ``recipient`` (the verifying
    service's own id): return ``(party_id, nonce, timestamp)`` or raise :class:`AuthError`.

    Replay (5) and role (6) checks need state and live in :class:`Authenticator`.
    """
    check_party_id(recipient, "recipient")
    # (1) headers present and well-formed
    party = _header(headers, HEADER_PARTY)
    ts = _header(headers, HEADER_TIME)
    nonce = _header(headers, HEADER_NONCE)
    sig = _header(headers, HEADER_SIGNATURE)
    if not _PARTY_RE.fullmatch(party):
        raise AuthError(f"malformed {HEADER_PARTY}")
    if not _TIME_RE.fullmatch(ts):
        raise AuthError(f"malformed {HEADER_TIME}", party=party)
    if not _NONCE_RE.fullmatch(nonce):
        raise AuthError(f"malformed {HEADER_NONCE}", party=party)
    if not _SIG_RE.fullmatch(sig):
        raise AuthError(f"malformed {HEADER_SIGNATURE}", party=party)
    # (2) known party
    key = keys(party)
    if key is None:
        raise AuthError(f"unknown party {party!r}", party=party)
    # (3) time window
    t_now = time.time() if now is None else now
    t = int(ts)
    if abs(t - t_now) > window:
        raise AuthError(
            f"request time {t} outside the +-{window} s window (server time {int(t_now)})",
            party=party,
        )
    # (4) signature
    try:
        payload = signing_payload(method, target, body, ts, nonce, sender=party,
                                  recipient=recipient)
        key.verify(payload, bytes.fromhex(sig), party=party)
    except (VerificationError, MalformedError, ValueError):
        raise AuthError(
            f"bad request signature for a request to {recipient!r}: signed for another "
            "recipient, altered, or not signed by this party's key",
            party=party,
        ) from None
    return party, nonce, t


def request_target(request: Request) -> str:
    """The request target (path?query) as the client sent it, from the ASGI scope."""
    scope = request.scope
    raw = scope.get("raw_path")
    path: str = (
        raw.decode("latin-1") if isinstance(raw, bytes | bytearray) else str(scope["path"])
    )
    if "?" in path:  # some servers keep the query in raw_path
        path = path.split("?", 1)[0]
    qs = scope.get("query_string", b"")
    if isinstance(qs, bytes | bytearray) and qs:
        return path + "?" + qs.decode("latin-1")
    return path


class NonceStore:
    """Seen nonces per party, in SQLite (``:memory:`` for tests); pruned after ``retain`` s."""

    def __init__(self, path: str | Path, *, retain: int = 2 * TIME_WINDOW) -> None:
        self._lock = threading.Lock()
        self._retain = retain
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS http_nonces (party TEXT NOT NULL, nonce TEXT NOT NULL,"
            " ts INTEGER NOT NULL, PRIMARY KEY (party, nonce))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS http_nonces_ts ON http_nonces (ts)")
        self._last_prune = 0.0

    def check_and_store(self, party: str, nonce: str, ts: int, *, now: float | None = None) -> None:
        """Record ``nonce`` for ``party``; raise :class:`ReplayError` if it was seen before."""
        t_now = time.time() if now is None else now
        with self._lock:
            if t_now - self._last_prune > 30:
                cutoff = int(t_now) - self._retain
                self._db.execute("DELETE FROM http_nonces WHERE ts < ?", (cutoff,))
                self._last_prune = t_now
            try:
                self._db.execute(
                    "INSERT INTO http_nonces (party, nonce, ts) VALUES (?, ?, ?)",
                    (party, nonce, ts),
                )
            except sqlite3.IntegrityError:
                raise ReplayError("replayed request (nonce already used)", party=party) from None

    def prune(self, *, now: float | None = None) -> int:
        """Delete nonces older than the retention; return how many were deleted."""
        t_now = time.time() if now is None else now
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM http_nonces WHERE ts < ?", (int(t_now) - self._retain,)
            )
            return cur.rowcount

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM http_nonces").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class Authenticator:
    """The server side of request signing, as FastAPI dependencies.

    ``keys``: party id -> its Ed25519 key (``None`` if unknown); ``roles``: party id -> its
    role (``None`` if unknown), needed only by routes that restrict roles; ``recipient``:
    this service's own party id (only requests signed for it are accepted).  Usage::

        auth = Authenticator(keys, NonceStore(db_path), roles, recipient=config.party_id)

        @app.post("/v1/thing")
        async def thing(request: Request, party: str = Depends(auth.require("provider"))): ...
    """

    def __init__(
        self,
        keys: KeyDirectory,
        nonces: NonceStore,
        roles: RoleDirectory | None = None,
        *,
        recipient: str,
        window: int = TIME_WINDOW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recipient = check_party_id(recipient, "recipient")
        self.keys = keys
        self.nonces = nonces
        self.roles = roles
        self.window = window
        self.clock = clock

    async def authenticate(self, request: Request, roles: Collection[str] = ()) -> str:
        """Run steps (1)-(6) on ``request``; return the authenticated party id."""
        body = await request.body()
        now = self.clock()
        party, nonce, ts = verify_request(
            request.headers,
            request.method,
            request_target(request),
            body,
            self.keys,
            recipient=self.recipient,
            now=now,
            window=self.window,
        )
        # (5) replay
        self.nonces.check_and_store(party, nonce, ts, now=now)
        # (6) role
        if roles:
            role = self.roles(party) if self.roles is not None else None
            if role not in roles:
                raise ForbiddenError(
                    f"party {party!r} (role {role}) may not call this endpoint; "
                    f"needs role {' or '.join(sorted(roles))}",
                    party=party,
                )
        request.state.party = party
        return party

    def require(self, *roles: str) -> Callable[[Request], Awaitable[str]]:
        """A FastAPI dependency: the authenticated party id (restricted to ``roles`` if any)."""
        wanted = frozenset(roles)

        async def dependency(request: Request) -> str:
            return await self.authenticate(request, wanted)

        return dependency
