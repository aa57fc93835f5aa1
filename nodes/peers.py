"""Who is who: a party directory read from the ledger's registered ``party`` entries.

Services use it to authenticate requests (key and role of the sender).  The lookups the
authenticator makes (:meth:`PartyDirectory.key_of`, :meth:`PartyDirectory.role_of`) read a
cache and never touch the network; a sender missing from the cache is fetched first, on the
event loop without blocking it, by :meth:`PartyDirectory.ensure` (called by
:class:`DirectoryAuthenticator`), so a party registered after this node started is found.
Fetches are rate-limited whatever ids are asked for (an attacker sending random party ids
costs the ledger at most one ``GET /v1/parties`` per ``min_refresh`` seconds), bounded by
``timeout`` seconds, and after a failed one the node answers 503 with ``Retry-After`` for
unknown senders until ``retry_after`` seconds have passed, instead of asking a ledger that
is down again.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import httpx
from fastapi import FastAPI, Request

from statledger.nodes.app import SIGNED, UnavailableError, create_app, documented
from statledger.nodes.auth import HEADER_PARTY, Authenticator, NonceStore
from statledger.nodes.http import AsyncSignedClient, RemoteError
from statledger.proofs.errors import MalformedError
from statledger.proofs.signatures import VerifyKey

__all__ = ["ActionLog", "BoundedLock", "BUSY_WAIT", "QUERY_ROUTE", "PartyDirectory",
           "DirectoryAuthenticator", "create_party_app"]

#: The answers of a compute or provider node's signed query routes (``responses=``): the
#: authentication's, an unknown query (404), a check that fails on the log (422), and the
#: ledger failing (502) or not answering, the sender's lookup included, or the node busy (503).
QUERY_ROUTE = documented(*SIGNED, 404, 422, 502, 503)

#: Seconds a request waits for a node's action lock (held by another request, e.g. one
#: whose ledger call is timing out) before it is answered 503 + Retry-After.
BUSY_WAIT = 5.0
#: The Retry-After of that answer.
BUSY_RETRY_AFTER = 2


class BoundedLock:
    """A mutex that a request waits for at most ``wait`` seconds: a node's actions on one
    query are serialised, but a request stuck behind another (a ledger call timing out, a
    long check) is answered 503 + ``Retry-After`` instead of holding a worker thread."""

    def __init__(self, wait: float = BUSY_WAIT) -> None:
        self._lock = threading.Lock()
        self.wait = wait

    def __enter__(self) -> BoundedLock:
        if not self._lock.acquire(timeout=self.wait):
            raise UnavailableError(
                f"busy with another request for more than {self.wait:.0f} s; retry later",
                retry_after=BUSY_RETRY_AFTER)
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

# The syntax of a party id (statledger.nodes.auth checks it again, with the other headers).
_PARTY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PartyDirectory:
    """The ledger's registered parties (``GET /v1/parties``), cached (see the module
    docstring).  ``fetches`` counts the requests made to the ledger."""

    def __init__(self, ledger_url: str, *, min_refresh: float = 1.0, timeout: float = 3.0,
                 retry_after: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = AsyncSignedClient(ledger_url, timeout=timeout, retries=0,
                                       transport=transport)
        self._timeout = timeout
        self._min_refresh = min_refresh
        self._retry_after = retry_after
        self._parties: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, VerifyKey] = {}
        self._next_fetch = 0.0  # monotonic time before which no fetch starts
        self._failed: str | None = None  # why the last fetch failed (None: it succeeded)
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0

    # -- lookups (cache only) -------------------------------------------------------------
    def key_of(self, party_id: str) -> VerifyKey | None:
        return self._keys.get(party_id)

    def role_of(self, party_id: str) -> str | None:
        p = self._parties.get(party_id)
        return None if p is None else str(p.get("role"))

    # -- fetching --------------------------------------------------------------------------
    def _unavailable(self) -> UnavailableError:
        wait = max(1, round(self._next_fetch - time.monotonic()))
        return UnavailableError(
            f"cannot check the sender against the ledger's registered parties now: the "
            f"ledger is not answering ({self._failed}); retry later", retry_after=wait)

    async def ensure(self, party_id: str) -> None:
        """Make sure ``party_id`` is in the cache if the ledger has registered it.

        Returns at once for a cached party.  Otherwise waits for the next fetch (shared by
        every request that misses meanwhile; at most one per ``min_refresh`` seconds).
        Raises :class:`~statledger.nodes.app.UnavailableError` (503) when the ledger could
        not be asked, at once while a failed fetch is less than ``retry_after`` seconds old.
        """
        if party_id in self._parties:
            return
        if self._failed is not None and time.monotonic() < self._next_fetch:
            raise self._unavailable()
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._fetch())
        # shielded: a waiter that goes away does not cancel the fetch the others wait for
        await asyncio.shield(self._inflight)
        if party_id not in self._parties and self._failed is not None:
            raise self._unavailable()

    async def _fetch(self) -> None:
        wait = self._next_fetch - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_fetch = time.monotonic() + self._min_refresh
        self.fetches += 1
        try:
            parties = await asyncio.wait_for(self._http.get("/v1/parties"), self._timeout)
            if not isinstance(parties, Mapping) or not all(
                    isinstance(p, Mapping) for p in parties.values()):
                raise MalformedError("GET /v1/parties: expected an object of objects")
        except (TimeoutError, RemoteError, MalformedError, ValueError) as exc:
            self._failed = (exc.reason if isinstance(exc, RemoteError) else
                            "timed out" if isinstance(exc, TimeoutError) else
                            "malformed answer")
            self._next_fetch = time.monotonic() + self._retry_after
            return
        keys: dict[str, VerifyKey] = {}
        for pid, p in parties.items():
            try:
                keys[str(pid)] = VerifyKey.from_bytes(bytes.fromhex(p["sig_key"]))
            except (MalformedError, ValueError, KeyError, TypeError):
                continue
        self._parties = {str(pid): dict(p) for pid, p in parties.items() if str(pid) in keys}
        self._keys = keys
        self._failed = None

    async def aclose(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
        await self._http.aclose()


class DirectoryAuthenticator(Authenticator):
    """An :class:`~statledger.nodes.auth.Authenticator` over a :class:`PartyDirectory`: the
    claimed sender is looked up (:meth:`PartyDirectory.ensure`, asynchronous and
    rate-limited) before the synchronous checks run on the cache.  ``recipient`` is this
    node's own party id: only requests signed for it are accepted."""

    def __init__(self, directory: PartyDirectory, nonces: NonceStore, *,
                 recipient: str) -> None:
        super().__init__(directory.key_of, nonces, directory.role_of, recipient=recipient)
        self.directory = directory

    async def authenticate(self, request: Request, roles: Collection[str] = ()) -> str:
        claimed = request.headers.get(HEADER_PARTY)
        if claimed is not None and _PARTY_ID.fullmatch(claimed):
            await self.directory.ensure(claimed)
        return await super().authenticate(request, roles)


class _Closable(Protocol):
    def close(self) -> None: ...


def create_party_app(config: Any, node: _Closable, *, title: str,
                     role: str) -> tuple[FastAPI, Authenticator]:
    """The FastAPI app of a compute or provider node and its request authenticator.

    Senders are looked up in the ledger's registered parties; only requests signed for
    ``config.party_id`` are accepted; nonces are kept in the node's SQLite state; ``node``
    and the directory are closed when the app shuts down.
    """
    directory = PartyDirectory(str(config.ledger_url))
    nonces = NonceStore(config.state_db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            node.close()
            await directory.aclose()

    app = create_app(title=title, party_id=config.party_id, role=role,
                     max_body=config.max_body, lifespan=lifespan)
    return app, DirectoryAuthenticator(directory, nonces, recipient=config.party_id)


class ActionLog:
    """A party's own record of what it logged for each query (SQLite, WAL), so a repeated
    request returns the same log index and a restarted node resumes.  ``extra_schema`` adds
    the party's own tables to the same database (e.g. a provider's privacy budgets)."""

    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS actions(
      query_id TEXT NOT NULL, action TEXT NOT NULL, log_index INTEGER NOT NULL,
      detail TEXT NOT NULL DEFAULT '', PRIMARY KEY (query_id, action));
    """

    def __init__(self, path: Any, extra_schema: str = "") -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(self._SCHEMA + extra_schema)

    def done(self, query_id: str, action: str) -> int | None:
        row = self.db.execute("SELECT log_index FROM actions WHERE query_id=? AND action=?",
                              (query_id, action)).fetchone()
        return None if row is None else int(row[0])

    def record(self, query_id: str, action: str, index: int, detail: str = "") -> None:
        self.db.execute("INSERT OR REPLACE INTO actions VALUES (?, ?, ?, ?)",
                        (query_id, action, index, detail))

    def close(self) -> None:
        self.db.close()
