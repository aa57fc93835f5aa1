"""Who is who: a party directory read from the ledger's registered ``party`` entries.

Services use it to authenticate requests (key and role of the sender).  A miss refreshes the
cache once, so a party registered after this node started is found.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI

from statledger.nodes.app import create_app
from statledger.nodes.auth import Authenticator, NonceStore
from statledger.nodes.http import SignedClient
from statledger.proofs.errors import MalformedError
from statledger.proofs.signatures import VerifyKey

__all__ = ["ActionLog", "PartyDirectory", "create_party_app"]


class PartyDirectory:
    def __init__(self, ledger_url: str, *, min_refresh: float = 0.5) -> None:
        self._http = SignedClient(ledger_url, timeout=30.0)
        self._parties: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, VerifyKey] = {}
        self._lock = threading.Lock()
        self._last = 0.0
        self._min_refresh = min_refresh

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._last < self._min_refresh:
            return
        self._last = now
        parties = self._http.get("/v1/parties")
        keys: dict[str, VerifyKey] = {}
        for pid, p in parties.items():
            try:
                keys[pid] = VerifyKey.from_bytes(bytes.fromhex(p["sig_key"]))
            except (MalformedError, ValueError, KeyError):
                continue
        self._parties, self._keys = parties, keys

    def _lookup(self, party_id: str) -> dict[str, Any] | None:
        with self._lock:
            if party_id not in self._parties:
                self._refresh()
            return self._parties.get(party_id)

    def key_of(self, party_id: str) -> VerifyKey | None:
        if self._lookup(party_id) is None:
            return None
        return self._keys.get(party_id)

    def role_of(self, party_id: str) -> str | None:
        p = self._lookup(party_id)
        return None if p is None else str(p.get("role"))

    def close(self) -> None:
        self._http.close()


class _Closable(Protocol):
    def close(self) -> None: ...


def create_party_app(config: Any, node: _Closable, *, title: str,
                     role: str) -> tuple[FastAPI, Authenticator]:
    """The FastAPI app of a compute or provider node and its request authenticator.

    Senders are looked up in the ledger's registered parties; nonces are kept in the node's
    SQLite state; ``node`` and the directory are closed when the app shuts down.
    """
    directory = PartyDirectory(str(config.ledger_url))
    nonces = NonceStore(config.state_db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            node.close()
            directory.close()

    app = create_app(title=title, party_id=config.party_id, role=role,
                     max_body=config.max_body, lifespan=lifespan)
    return app, Authenticator(directory.key_of, nonces, directory.role_of)


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
