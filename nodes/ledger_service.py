"""The ledger node: hosts the append-only log (:class:`statledger.ledger.store.LedgerStore`) over
HTTP.

Routes (``auth`` = signed request, :mod:`statledger.nodes.auth`)::

    POST /v1/entries                 auth   body = one entry's bytes (deterministic CBOR,
                                            entry version 2; content type ignored,
                                            application/cbor by convention)
                                            -> {"index", "leaf_hash", "kind"}
    GET  /v1/entries?start=&end=            -> [{"index", "kind", "data" (base64)}] (<= 1000)
    GET  /v1/queries/{query_id}/entries     -> {"query_id", "indices"}   (404 if none)
    GET  /v1/queries?since=N                -> {"queries": [{"query_id", "index"}]}: the
                                            queries logged at index >= N (<= 1000; a hint
                                            for owners that pull, docs/owners.md)
    GET  /v1/parties                        -> {party_id: {"role", "sig_key", "index"}}
    GET  /v1/parties/{party_id}             -> {"party_id", "role", "sig_key", "index"} | 404
    GET  /v1/log                            -> {"origin", "size", "log_key", "witness_keys",
                                                "quorum"}
    GET  /v1/checkpoint                     -> text/plain C2SP checkpoint + cosignatures | 404
    POST /v1/checkpoint              auth   sign a checkpoint, collect witness cosignatures
                                            -> {"checkpoint", "size", "cosigners", "failures"}
    GET  /v1/consortium                     -> {"consortium", "chain" (indices of the genesis
                                                and membership entries), "seq", "head"}
    POST /v1/membership              auth   body = a membership change (canonical JSON,
                                            docs/consortium.md) signed by the admission
                                            quorum -> {"index", "seq", "head"}
    GET  /v1/setup                          -> {"index", "data" (base64)} | 404
    POST /v1/setup                   auth   write the ``setup`` entry once the compute
                                            nodes' key ceremony on the log is finished
                                            (waits up to 120 s; 409 naming who it waits for)
                                            -> {"index", ...}
    GET  /v1/ceremony                       -> {"dkg": [indices of dkg_* entries], "setup",
                                                "setups": [the setup and every rekey]}
    GET  /v1/index?query=                   -> {"chain", "parties", "dkg", "setup", "setups"
                                                [, "query": the query's indices]}: every
                                            hint a reader's poll needs, in one answer
    GET  /v1/proofs/inclusion?index=&size=  -> {"index", "size", "leaf_hash", "proof"}
    GET  /v1/proofs/inclusions?size=&indices=i,j,..  -> {"size", "proofs": {index: [...]}}
                                            (at most 500 indices)
    GET  /v1/proofs/consistency?size1=&size2= -> {"size1", "size2", "proof"}
    GET  /v1/bundles/{index}                -> the proof bundle against the latest checkpoint

Append checks (POST /v1/entries), in order -- each failure names its reason:

1. the body parses strictly (``statledger.protocol.entries.Entry.from_bytes``)            -> 400
0. entry 0 is the pinned consortium's genesis, written by the log at its first start;
   ``genesis`` and ``membership`` entries are never accepted here (POST /v1/membership
   checks a change against the roster and logs it)                            -> 403
2. the author (``claimed_author``; ``setup`` -> the ledger; ``aggregate`` and
   ``result`` -> the querier of the query's ``query`` entry) is the
   authenticated sender                                                        -> 403
3. the author's role in the consortium roster may write this kind            -> 403
4. ``party`` entries: the party is a current member of the consortium with this role
   and ``sig_key``; the entry is self-signed; a compute node's proof of knowledge
   (bound to the consortium id) verifies; a party registers once              -> 403/409/422
   other kinds: the author is a current member (admitted, not revoked) and the
   signature verifies with its roster key                                      -> 403/422
5. entries that refer to a query (``query_id``) need its ``query`` entry first
   (``query`` entries must not repeat a query id)                               -> 404/409
   5b. a submission's range proof / a noise entry's proof verifies             -> 409/422
       (submissions arriving together are checked in one batch, off the event loop:
       :class:`SubmissionBatcher`)
   5c. the query's state machine (``statledger.protocol.statemachine``) accepts the entry:
       no duplicate, nothing out of order                                      -> 409
5b. ``submission`` entries: the vector decodes with the query's public ranges and its
   range proof verifies (refused at submission, author named)                  -> 422
   ``noise_commit``: only before the query's first coin share (409); its bit proof verifies
   for this node, query and noise parameters (422).  ``noise_coin``: the noise set on the
   log (commitments before the first coin share) has >= T nodes (409); the DLEQ verifies
   against the node's verification key for the coin base of that set (422)
6. append (idempotent: identical bytes return the existing index).

Side tables (``state.sqlite``) -- registered parties, query id -> indices -- are derived from
the log and rebuilt from it at startup (``indexed_size``), so a crash between the log append
and the side-table update loses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from statledger.nodes.app import SIGNED, NotFoundError, create_app, documented, error_body
from statledger.nodes.auth import Authenticator, NonceStore
from statledger.nodes.config import LedgerConfig
from statledger.nodes.http import AsyncSignedClient, RemoteError
from statledger.nodes.keys import load_or_create_identity_key
from statledger.proofs.errors import (
    MalformedError,
    PolicyError,
    ProtocolError,
    VerificationError,
)

__all__ = [
    "MAX_ENTRIES_PER_PAGE",
    "KIND_ROLES",
    "LedgerNode",
    "create_ledger_app",
    "witness_router",
    "witness_from_config",
]

log = logging.getLogger("statledger.ledger")

MAX_ENTRIES_PER_PAGE = 1000
#: seconds ``POST /v1/setup`` waits for the compute nodes' key ceremony to finish
SETUP_WAIT = 120.0
_MAX_INDEX = (1 << 62) - 1  # SQLite integers are 64-bit; larger values are simply unknown

# which role may author which entry kind
KIND_ROLES: dict[str, frozenset[str]] = {
    "party": frozenset({"ledger", "compute", "provider", "querier"}),
    "setup": frozenset({"ledger"}),
    "query": frozenset({"querier"}),
    "submission": frozenset({"provider"}),
    "noise_commit": frozenset({"compute"}),
    "noise_coin": frozenset({"compute"}),
    "aggregate": frozenset({"querier"}),
    "decryption": frozenset({"compute"}),
    "gate": frozenset({"compute"}),
    "pet": frozenset({"compute"}),
    "release": frozenset({"querier"}),
    "result": frozenset({"querier"}),
    "endorsement": frozenset({"provider"}),
    "vertical_rows": frozenset({"provider"}),
    "vertical_products": frozenset({"provider"}),
    "vertical_block": frozenset({"provider"}),
    "dkg_deal": frozenset({"compute"}),
    "dkg_ack": frozenset({"compute"}),
    "dkg_key": frozenset({"compute"}),
    "dkg_disclosure": frozenset({"compute"}),
    "dkg_transport": frozenset({"compute"}),
    "rekey": frozenset({"ledger"}),
}

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_parties (
    party_id TEXT PRIMARY KEY, role TEXT NOT NULL, sig_key TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_queries (
    query_id TEXT PRIMARY KEY, querier TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_chain (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_dkg (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_setups (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_query_entries (
    query_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (query_id, idx));
"""


class _Rows:
    """A statement's rows, read in full (what ``fetchone``/``fetchall`` callers need)."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows


class _SerialConnection:
    """The node's side-table connection, shared by its threads (the event loop's reads, the
    append workers, the auth checks): ONE statement at a time, each run to completion and
    its rows read before the next starts.  Without this, a read left open on the shared
    connection while another thread begins the append's write transaction upgrades a stale
    WAL snapshot (the nonce store writes the same file) and SQLite refuses at once with
    "database is locked" (no busy wait), and concurrent statements garble each other's
    error state: an HTTP 500 under load."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._mutex = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Rows:
        with self._mutex:
            return _Rows(self._conn.execute(sql, params).fetchall())

    def executescript(self, script: str) -> None:
        with self._mutex:
            self._conn.executescript(script)

    def close(self) -> None:
        with self._mutex:
            self._conn.close()


class EntryPages:
    """The served form of each logged entry, encoded once: ``GET /v1/entries`` answers a
    page by joining the JSON objects of its entries (``{"index", "kind", "data"}``, data in
    base64), each built the first time it is served and kept.  Sound because a logged entry
    never changes (the store is append-only): the key is the entry's index *and* its leaf
    hash, so bytes that are not the logged ones are never served from here.  A page is
    byte-for-byte the page a fresh node serves (compact JSON, the key order above).  Bounded:
    past ``max_bytes`` of encoded entries the cache starts over."""

    def __init__(self, max_bytes: int = 96 << 20) -> None:
        self.max_bytes = max_bytes
        self._frags: dict[tuple[int, bytes], bytes] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def encode(index: int, kind: str, data: bytes) -> bytes:
        """One entry's JSON object, as a page holds it."""
        return json.dumps({"index": index, "kind": kind,
                           "data": base64.b64encode(data).decode("ascii")},
                          separators=(",", ":")).encode("ascii")

    def page(self, rows: Sequence[Any]) -> bytes:
        """The JSON array of the stored entries ``rows`` (``statledger.ledger.store.Entry``)."""
        out: list[bytes] = []
        for e in rows:
            key = (int(e.index), bytes(e.leaf_hash))
            frag = self._frags.get(key)
            if frag is None:
                frag = self.encode(e.index, e.kind, e.data)
                with self._lock:
                    if self._bytes + len(frag) > self.max_bytes:
                        self._frags.clear()
                        self._bytes = 0
                    self._frags[key] = frag
                    self._bytes += len(frag)
            out.append(frag)
        return b"[" + b",".join(out) + b"]"


class _EntryRow(BaseModel):
    """One entry as ``GET /v1/entries`` serves it (the documented shape)."""

    index: int
    kind: str
    data: str = Field(description="the entry's bytes, base64")


class SubmissionBatcher:
    """Group commit for submission proofs: concurrent appends are verified together.

    Each caller (a worker thread of ``POST /v1/entries``, never the event loop) queues its
    submission's (X, vector, ranges, context, provider); whoever finds no batch running
    takes every queued item (at most ``max_batch``) and checks all their range and linking
    proofs with one multi-scalar multiplication
    (:func:`statledger.proofs.vector.find_invalid_vectors`), and the one-hot proofs of
    those that carry one with another
    (:func:`statledger.proofs.onehot.find_invalid_onehots`); the others wait for the
    verdict on their own item.  A failed batch is halved until each bad proof is found:
    the bad submissions are refused naming their owners, the good ones go on, and no
    submission is accepted on a batch that failed.  Submissions arriving while a batch is
    being checked form the next batch, so the batch size follows the load."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch
        self._cv = threading.Condition()
        self._queue: list[list[Any]] = []  # [item, done, error]
        self._busy = False
        #: sizes of the batches checked so far (the bench and tests read it)
        self.batch_sizes: list[int] = []

    def check(self, item: tuple[Any, Any, Any, bytes, str], onehot: Any = None) -> None:
        """Verify one submission's proofs (batched with concurrent ones): ``(X, vector,
        ranges, context, provider)`` and its one-hot statement, if it carries one
        (:func:`statledger.protocol.validity.onehot_statement`); raises the
        :class:`VerificationError` that names its provider."""
        from statledger.proofs.onehot import find_invalid_onehots
        from statledger.proofs.vector import find_invalid_vectors

        slot: list[Any] = [item, False, None, onehot]
        with self._cv:
            self._queue.append(slot)
        while True:
            with self._cv:
                while not slot[1] and self._busy:
                    self._cv.wait()
                if slot[1]:
                    break
                self._busy = True
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
            verdict: dict[int, BaseException] = {}
            try:
                bad = find_invalid_vectors([s[0][:4] for s in batch], [s[0][4] for s in batch])
                verdict = {i: exc for i, exc in bad}
                hot = [i for i, s in enumerate(batch) if s[3] is not None]
                for k, exc in find_invalid_onehots([batch[i][3] for i in hot],
                                                   [batch[i][0][4] for i in hot]):
                    verdict.setdefault(hot[k], exc)
            except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
                verdict = dict.fromkeys(range(len(batch)), exc)
            finally:
                with self._cv:
                    for i, s in enumerate(batch):
                        s[1], s[2] = True, verdict.get(i)
                    self.batch_sizes.append(len(batch))
                    self._busy = False
                    self._cv.notify_all()
        if slot[2] is not None:
            raise slot[2]


class LedgerNode:
    """The ledger node's state: the log, its side tables and the append rules (no HTTP)."""

    def __init__(self, config: LedgerConfig) -> None:
        from statledger.ledger.note import CosignatureVerifier
        from statledger.ledger.store import LedgerStore

        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.identity = load_or_create_identity_key(config.identity_key_path)
        # The log signs checkpoints with the ledger's registered identity key, so a verifier
        # reads the log key from the ledger's own `party` entry (docs/verification.md step 6).
        self.log_seed = self.identity.to_bytes()
        self.witness_verifiers: dict[str, Any] = {}
        for pid, w in config.witnesses.items():
            if w.key:
                self.witness_verifiers[pid] = CosignatureVerifier.from_vkey(w.key)
        self.store = LedgerStore(config.ledger_db_path, config.origin, self.log_seed,
                                 witnesses=list(self.witness_verifiers.values()))
        self._db = _SerialConnection(sqlite3.connect(
            str(config.state_db_path), check_same_thread=False, isolation_level=None))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_STATE_SCHEMA)
        self.nonces = NonceStore(config.state_db_path)
        self._lock = threading.RLock()
        self.batcher = SubmissionBatcher()
        self.pages = EntryPages()  # each entry's served form, encoded once
        #: each query's state machine after its logged entries: (their indices, state), so
        #: an append advances it by one entry instead of replaying (and decoding) them all
        self._states: dict[str, tuple[tuple[int, ...], Any]] = {}
        self._specs: dict[str, Any] = {}  # each logged query's parsed spec
        from statledger.nodes.trust import pinned_genesis

        self.genesis = pinned_genesis(config)
        #: the pinned genesis' id (its canonical hash: computed once, it never changes)
        self._consortium_id = str(self.genesis.genesis.consortium_id)
        if self.genesis.genesis.origin != config.origin:
            raise PolicyError(f"the pinned consortium's log is {self.genesis.genesis.origin!r}, "
                              f"this ledger serves {config.origin!r}")
        if self.genesis.genesis.ledger.sig_key != self.identity.public_key().to_bytes().hex():
            raise PolicyError("the pinned consortium's log key is not this ledger's identity key")
        self.catch_up()
        self._ensure_genesis()
        self._reload_roster()

    # -- side tables ---------------------------------------------------------------------
    def _indexed_size(self) -> int:
        row = self._db.execute(
            "SELECT value FROM ledger_meta WHERE key = 'indexed_size'").fetchone()
        return int(row[0]) if row else 0

    def catch_up(self) -> None:
        """Index every log entry not yet in the side tables (crash recovery at startup)."""
        from statledger.protocol.entries import Entry

        with self._lock:
            start = self._indexed_size()
            size = self.store.size()
            if start >= size:
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for stored in self.store.iter_entries(start):
                    if stored.index >= size:
                        break
                    self._index(Entry.from_bytes(stored.data), stored.index)
                self._db.execute(
                    "INSERT OR REPLACE INTO ledger_meta(key, value) VALUES ('indexed_size', ?)",
                    (str(size),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def setup_index(self) -> int | None:
        """The log index of the ``setup`` entry, if written."""
        row = self._db.execute(
            "SELECT value FROM ledger_meta WHERE key = 'setup_index'").fetchone()
        return int(row[0]) if row else None

    def setup_indices(self) -> list[int]:
        """Log indices of the setup and every rekey entry (docs/dkg.md, "Key lifecycle")."""
        return [int(r[0]) for r in
                self._db.execute("SELECT idx FROM ledger_setups ORDER BY idx").fetchall()]

    def setups(self) -> list[tuple[int, Any]]:
        """The setup and every rekey entry, in log order (as this log holds them)."""
        from statledger.protocol.entries import Entry

        return [(i, Entry.from_bytes(self.store.entry(i).data)) for i in self.setup_indices()]

    def _key_for(self, qid: str | None) -> Any:
        """The setup or rekey entry whose key the query uses (``view.key_in_force``)."""
        from statledger.protocol.view import key_in_force

        index = None
        if qid is not None:
            row = self._db.execute(
                "SELECT idx FROM ledger_queries WHERE query_id = ?", (qid,)).fetchone()
            index = None if row is None else int(row[0])
        found = key_in_force(self.setups(), index)
        if found is None:
            raise ProtocolError("no setup entry on the log yet")
        return found[1]

    def _index(self, entry: Any, idx: int) -> None:
        if entry.KIND == "setup":
            self._db.execute(
                "INSERT OR IGNORE INTO ledger_meta(key, value) VALUES ('setup_index', ?)",
                (str(idx),))
        if entry.KIND in ("setup", "rekey"):
            self._db.execute("INSERT OR IGNORE INTO ledger_setups(idx, kind) VALUES (?, ?)",
                             (idx, entry.KIND))
        if entry.KIND in ("genesis", "membership"):
            self._db.execute("INSERT OR IGNORE INTO ledger_chain(idx, kind) VALUES (?, ?)",
                             (idx, entry.KIND))
        if entry.KIND.startswith("dkg_"):
            self._db.execute("INSERT OR IGNORE INTO ledger_dkg(idx, kind) VALUES (?, ?)",
                             (idx, entry.KIND))
        if entry.KIND == "party":
            self._db.execute(
                "INSERT OR IGNORE INTO ledger_parties(party_id, role, sig_key, idx) "
                "VALUES (?, ?, ?, ?)", (entry.party_id, entry.role, entry.sig_key, idx))
        qid = getattr(entry, "query_id", None)
        if isinstance(qid, str):
            if entry.KIND == "query":
                self._db.execute(
                    "INSERT OR IGNORE INTO ledger_queries(query_id, querier, idx) "
                    "VALUES (?, ?, ?)", (qid, entry.querier, idx))
            self._db.execute(
                "INSERT OR IGNORE INTO ledger_query_entries(query_id, idx, kind) "
                "VALUES (?, ?, ?)", (qid, idx, entry.KIND))

    def _ensure_genesis(self) -> None:
        """Entry 0 is the pinned consortium's genesis: written on a new log, checked on an
        existing one (a ledger never serves a log that starts with another consortium)."""
        from statledger.protocol import entries

        with self._lock:
            if self.store.size() == 0:
                entry = entries.sign(entries.GenesisEntry.of(self.genesis), self.identity)
                self.store.append(entry.KIND, entry.to_bytes())
                self.catch_up()
                return
            first = entries.Entry.from_bytes(self.store.entry(0).data)
            if not isinstance(first, entries.GenesisEntry) or (
                    first.signed_genesis().genesis.consortium_id
                    != self.genesis.genesis.consortium_id):
                raise PolicyError("this log does not start with the pinned consortium's genesis")

    def _reload_roster(self) -> None:
        """The roster timeline, replayed from the log's genesis and membership entries."""
        from statledger.protocol.consortium import RosterTimeline
        from statledger.protocol.entries import Entry

        rows = self._db.execute("SELECT idx FROM ledger_chain ORDER BY idx").fetchall()
        changes = []
        for (idx,) in rows:
            if idx == 0:
                continue
            e = Entry.from_bytes(self.store.entry(int(idx)).data)
            changes.append((int(idx), e.change()))  # type: ignore[attr-defined]
        self.timeline = RosterTimeline.derive(self.genesis, changes,
                                              self.genesis.genesis.consortium_id)

    @property
    def roster(self) -> Any:
        """The consortium roster now (every membership change on the log applied)."""
        return self.timeline.final

    @property
    def consortium_id(self) -> str:
        return self._consortium_id

    def member(self, party_id: str) -> Any:
        """The current member ``party_id`` (None if unknown or revoked)."""
        if party_id in self.roster.revoked:
            return None
        return self.roster.members.get(party_id)

    def chain_indices(self) -> list[int]:
        """Log indices of the genesis and every membership change."""
        return [int(r[0]) for r in
                self._db.execute("SELECT idx FROM ledger_chain ORDER BY idx").fetchall()]

    def append_membership(self, document: bytes) -> int:
        """Check a membership change against the current roster (chain, admission quorum,
        proofs of possession) and log it, signed by the log."""
        from statledger.protocol import entries
        from statledger.protocol.consortium import MembershipChange

        change = MembershipChange.from_bytes(document)
        with self._lock:
            roster = self.roster
            after = roster.apply(change)  # VerificationError names the signer at fault
            if after.compute_epoch != roster.compute_epoch:
                self._check_compute_change(after)
            entry = entries.sign(entries.MembershipEntry.of(change), self.identity)
            existing = self.store.index_of(entry.to_bytes())
            if existing is not None:
                return existing
            idx = self._append_checked(entry.to_bytes(), entry)
            self._reload_roster()
            return idx

    def party(self, party_id: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT party_id, role, sig_key, idx FROM ledger_parties WHERE party_id = ?",
            (party_id,)).fetchone()
        if row is None:
            return None
        return {"party_id": row[0], "role": row[1], "sig_key": row[2], "index": row[3]}

    def parties(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute(
            "SELECT party_id, role, sig_key, idx FROM ledger_parties ORDER BY idx").fetchall()
        return {r[0]: {"role": r[1], "sig_key": r[2], "index": r[3]} for r in rows}

    def key_of(self, party_id: str) -> Any:
        """HTTP key directory: the party's key in the current consortium roster (a revoked
        or never-admitted party has none)."""
        member = self.member(party_id)
        return None if member is None else member.verify_key()

    def role_of(self, party_id: str) -> str | None:
        member = self.member(party_id)
        return None if member is None else str(member.role)

    def querier_of(self, query_id: str) -> str | None:
        row = self._db.execute(
            "SELECT querier FROM ledger_queries WHERE query_id = ?", (query_id,)).fetchone()
        return None if row is None else str(row[0])

    def queries_since(self, since: int, limit: int = MAX_ENTRIES_PER_PAGE
                      ) -> list[tuple[str, int]]:
        """(query id, index of its ``query`` entry) for every query logged at index >=
        ``since``, in log order (at most ``limit``): what an owner that pulls polls for."""
        rows = self._db.execute(
            "SELECT query_id, idx FROM ledger_queries WHERE idx >= ? ORDER BY idx LIMIT ?",
            (since, limit)).fetchall()
        return [(str(q), int(i)) for q, i in rows]

    def query_entries(self, query_id: str) -> list[int]:
        rows = self._db.execute(
            "SELECT idx FROM ledger_query_entries WHERE query_id = ? ORDER BY idx",
            (query_id,)).fetchall()
        return [int(r[0]) for r in rows]

    # -- appends -------------------------------------------------------------------------
    def append(self, data: bytes, sender: str) -> tuple[int, bytes, str]:
        """Check and append one entry sent by ``sender``; ``(index, leaf_hash, kind)``."""
        from statledger.protocol.entries import Entry

        entry = Entry.from_bytes(data)  # (1)
        if entry.KIND in ("genesis", "membership"):
            raise PolicyError(f"{entry.KIND} entries are written by the log itself (a "
                              "membership change goes to POST /v1/membership)")
        proven = self._prove_outside_lock(entry, sender, data)
        with self._lock:
            author = self._author(entry)
            if author != sender:  # (2)
                raise PolicyError(
                    f"{entry.KIND} entry is authored by {author!r}, but was sent by {sender!r}")
            existing = self.store.index_of(data)
            if existing is not None:  # idempotent: identical bytes were accepted before
                return existing, self.store.leaf_hash(existing), entry.KIND
            idx = self._append_checked(data, entry, proven=proven)
            if entry.KIND in ("dkg_key", "dkg_ack"):
                self._maybe_rekey()
            return idx, self.store.leaf_hash(idx), entry.KIND

    def _prove_outside_lock(self, entry: Any, sender: str, data: bytes) -> bool:
        """(5b) ahead of the lock, batched (:class:`SubmissionBatcher`): a submission by its
        authenticated sender, a current provider, to a known query, not logged already, has
        its proofs checked together with the concurrent ones.  True if it was checked here
        (refusals raise naming the provider); False leaves every check to the locked path."""
        if entry.KIND != "submission" or entry.claimed_author() != sender:
            return False
        member = self.member(sender)
        if (member is None or member.role != "provider" or self.querier_of(entry.query_id)
                is None or self.store.index_of(data) is not None):
            return False
        self._check_vector(entry)
        return True

    def _author(self, entry: Any) -> str:
        kind = entry.KIND
        if kind in ("setup", "rekey", "genesis", "membership"):
            return self.config.party_id
        if kind in ("aggregate", "release", "result"):
            q = self.querier_of(entry.query_id)
            if q is None:
                raise NotFoundError(f"unknown query id {entry.query_id}")
            return q
        author = entry.claimed_author()
        if not isinstance(author, str):
            raise MalformedError(f"{kind} entry names no author")
        return author

    def _append_checked(self, data: bytes, entry: Any, *, proven: bool = False) -> int:
        from statledger.protocol import entries

        if self._indexed_size() < self.store.size():  # an earlier append logged its entry
            self.catch_up()  # but failed to index it: every check below reads all of them
        kind = entry.KIND
        author = self._author(entry)
        after: tuple[str, tuple[int, ...], Any] | None = None  # the query's state, if any
        if kind in ("genesis", "membership"):  # written by the log itself, checked before
            if author != self.config.party_id:  # pragma: no cover - _author says so
                raise PolicyError(f"{kind} entries are written by the log")
            if kind == "genesis" and self.store.size() != 0:
                raise ProtocolError("the log already has its genesis")
        elif kind == "party":  # (4) registration: the key the consortium admitted
            member = self.member(entry.party_id)
            if member is None:
                raise PolicyError(f"party {entry.party_id!r} is not a member of the consortium")
            if member.role != entry.role or member.sig_key != entry.sig_key:
                raise PolicyError(
                    f"party entry of {entry.party_id!r} does not match its role/key in the "
                    "consortium roster")
            if self.party(entry.party_id) is not None:
                raise ProtocolError(f"party {entry.party_id!r} is already registered")
            entries.verify_signature(entry, entry.verify_key(), entry.party_id,
                                     step="registration")
            if entry.role == "compute":
                entry.verify_pok(self.consortium_id, step="registration")
        else:
            member = self.member(author)
            if member is None:
                raise PolicyError(f"party {author!r} is not a member of the consortium (never "
                                  "admitted, or revoked)")
            if kind in KIND_ROLES and member.role not in KIND_ROLES[kind]:  # (3)
                raise PolicyError(
                    f"a {member.role} may not write {kind} entries (party {author!r})")
            entries.verify_signature(entry, member.verify_key(), author, step="append")
            if kind in entries.DKG_KINDS:  # (5d) the key ceremony's phase rules
                self._check_ceremony(entry)
            qid = getattr(entry, "query_id", None)  # (5)
            if isinstance(qid, str):
                known = self.querier_of(qid)
                if kind == "query" and known is not None:
                    raise ProtocolError(f"query {qid} is already on the log")
                if kind != "query" and known is None:
                    raise NotFoundError(f"unknown query id {qid}")
                if kind == "submission" and not proven:  # (5b), unless checked batched
                    self._check_vector(entry)
                elif kind in ("noise_commit", "noise_coin"):  # (5b)
                    self._check_noise(entry)
                after = self._check_order(entry, qid)  # (5c)
        idx = self.store.append(kind, data)  # (6)
        if after is not None:  # the query's state with the entry, now that it is logged
            self._states[after[0]] = ((*after[1], idx), after[2])
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._indexed_size() == idx:
                self._index(entry, idx)
                self._db.execute(
                    "INSERT OR REPLACE INTO ledger_meta(key, value) VALUES ('indexed_size', ?)",
                    (str(idx + 1),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if self._indexed_size() <= idx:
            self.catch_up()
        return idx

    def _roster(self, qid: str | None = None) -> Any:
        from statledger.protocol.statemachine import Roster

        setup = self._key_for(qid)
        return Roster.of(self.roster, setup.compute, setup.threshold)

    def _check_order(self, entry: Any, qid: str) -> tuple[str, tuple[int, ...], Any] | None:
        """(5c) The query's state machine (statledger.protocol.statemachine) accepts the new entry:
        no duplicate submission / noise / decryption / endorsement, no entry out of order
        (e.g. decryption before the aggregate, a submission after it) -> 409.  Returns
        ``(query id, logged indices, state with the entry)`` for the caller to remember
        once the entry is logged (an append that fails after this check leaves nothing
        remembered); None for a query entry."""
        from statledger.protocol.entries import Entry
        from statledger.protocol.statemachine import advance, replay, start

        if entry.KIND == "query":
            # A query may be posted before the cluster's setup entry (nothing can answer it
            # yet); once the roster exists, the query must fit it (e.g. min_providers).
            if self.setup_index() is not None:
                start(entry, self._roster())  # (the key in force now: the query's)
            return None
        roster = self._roster(qid)
        indices = tuple(self.query_entries(qid))
        known, state = self._states.get(qid, ((), None))
        if (state is None or state.roster != roster or known != indices[:len(known)]
                or not known):
            known, state = (), None
        if state is None:  # (the states are immutable: a cached one is never changed)
            logged = [Entry.from_bytes(self.store.entry(i).data) for i in indices]
            state = replay(logged, roster, indices=list(indices))
        else:
            for i in indices[len(known):]:
                state = advance(state, Entry.from_bytes(self.store.entry(i).data), i)
        self._states[qid] = (indices, state)
        size = self.store.size()  # under the append lock: the index the entry will get
        return qid, indices, advance(state, entry, size)

    def _query_spec_and_setup(self, qid: str) -> tuple[Any, Any]:
        """The query's spec and the setup entry, as this log holds them."""
        from statledger.protocol.entries import Entry

        row = self._db.execute(
            "SELECT idx FROM ledger_queries WHERE query_id = ?", (qid,)).fetchone()
        if row is None or self.setup_index() is None:
            raise ProtocolError(f"query {qid}: no query or setup entry on the log yet")
        spec = self._specs.get(qid)
        if spec is None:  # a logged query entry never changes: its spec is parsed once
            spec = Entry.from_bytes(self.store.entry(int(row[0])).data).query_spec()  # type: ignore[attr-defined]
            self._specs[qid] = spec
        return spec, self._key_for(qid)

    def _check_noise(self, entry: Any) -> None:
        """(5b) DP noise entries (docs/noise.md), refused at append time naming the node:

        * ``noise_commit``: the query asks for DP, no coin share of the query is logged yet
          (the first one closes the noise set -> 409), it carries noise parameters that pass
          ``flow.check_noise_params`` and equal the earlier commitments' (-> 422), and the
          commitment decodes with them and its 0/1 proof verifies for this node and query
          (``noise.verify_commitment``) -> 422;
        * ``noise_coin``: the noise set on the log (the commitments before the first coin
          share, all of them if this is the first) has at least ``T`` nodes (-> 409), and the
          DLEQ proof verifies against the node's verification key in the setup for the coin
          base ``P`` of that set -> 422.  A share made for another set (a split view, a
          commitment that raced the first coin share) is refused."""
        from statledger.protocol import flow, noise
        from statledger.protocol.entries import Entry

        qid, party, kind = entry.query_id, str(entry.node), entry.KIND
        spec, setup = self._query_spec_and_setup(qid)
        if flow.privacy_rho(spec) is None:
            raise VerificationError(f"{kind} by {party} for a query without DP", step="append",
                                    party=party)
        if party not in setup.compute:
            raise PolicyError(f"{kind} by {party}, not a compute node of the setup")
        rows = self._db.execute(
            "SELECT idx, kind FROM ledger_query_entries WHERE query_id = ? AND kind IN "
            "('noise_commit', 'noise_coin') ORDER BY idx", (qid,)).fetchall()
        coins = [int(i) for i, k in rows if k == "noise_coin"]
        logged = [(int(i), Entry.from_bytes(self.store.entry(int(i)).data))
                  for i, k in rows if k == "noise_commit"]
        if kind == "noise_commit":
            logged.append((self.store.size(), entry))
        try:  # the querier's parameters, the same in every commitment, checked (one bound)
            params = flow.logged_noise_params(spec, setup, logged)  # type: ignore[arg-type]
        except VerificationError as exc:
            raise VerificationError(f"{kind} by {party} refused: {exc.reason}", step="append",
                                    party=exc.party) from None
        if params is None:
            raise ProtocolError(f"coin share by {party} refused: no noise commitment of query "
                                f"{qid} is logged")
        try:
            if kind == "noise_commit":
                if coins:
                    raise ProtocolError(
                        f"noise commitment by {party} refused: the noise set of query {qid} "
                        f"was closed by the coin share at entry {coins[0]}")
                noise.verify_commitment(setup.collective_point(), params, qid,
                                        entry.decode_commitment(params))
                return
            members: dict[str, Any] = {}
            for i, k in rows:
                if k == "noise_commit" and (not coins or int(i) < coins[0]):
                    e = Entry.from_bytes(self.store.entry(int(i)).data)
                    members.setdefault(e.node, e)  # type: ignore[attr-defined]
            commitments = [members[n].decode_commitment(params) for n in setup.compute
                           if n in members]
            t = flow.decryption_threshold(setup)
            if len(commitments) < t:
                raise ProtocolError(
                    f"coin share by {party} refused: the noise set of query {qid} has "
                    f"{len(commitments)} commitment(s), at least {t} are needed")
            base = flow.noise_coin_base(params, qid, commitments)
            noise.verify_coin_share(setup.verification_point(party), base,
                                    entry.decode_share(), qid)
        except MalformedError as exc:
            raise VerificationError(f"{kind} by {party} refused: {exc}", step="append",
                                    party=party) from None
        except VerificationError as exc:
            raise VerificationError(f"{kind} by {party} refused: {exc.reason}", step=exc.step,
                                    party=party) from None

    def _check_vector(self, entry: Any) -> None:
        """(5b) A submission is refused at append time unless its vector decodes with the
        query's public ranges and its range proof verifies (the same check as verification
        step 9); the error names the author.  (Noise entries: :meth:`_check_noise`.)"""
        from statledger.protocol import calibration, flow, validity
        from statledger.protocol.checks import check_addressed

        qid = entry.query_id
        spec, setup = self._query_spec_and_setup(qid)
        party = str(entry.provider)
        check_addressed(spec, party)  # a pull query's owners only (docs/owners.md)
        ranges = list(calibration.wire_layout(spec).ranges)
        context = flow.submission_context(qid, party)
        try:
            ev, onehot = validity.decode_submission(spec, entry, ranges)
            X = setup.collective_point()
            self.batcher.check((X, ev, ranges, context, party), validity.onehot_statement(
                spec, X, party, ev, onehot, context))
        except MalformedError as exc:
            raise VerificationError(f"{entry.KIND} by {party} refused: {exc}",
                                    step="append", party=party) from None
        except VerificationError as exc:
            raise VerificationError(f"{entry.KIND} by {party} refused: {exc.reason}",
                                    step=exc.step, party=party) from None

    def _check_compute_change(self, after: Any) -> None:
        """A change that touches the compute nodes (or asks for a refresh) starts a new key
        epoch: refused while a key ceremony or resharing is under way (its parameters would
        change under the nodes' feet), and when the nodes left could not re-share the key."""
        from statledger.protocol import ceremony

        setups = self.setups()
        after_index = setups[-1][0] if setups else -1
        if any(i > after_index for i in self.dkg_indices()):
            raise ProtocolError(
                "a key ceremony or resharing is under way: a change that admits, revokes or "
                "rotates a compute node (or asks for a refresh) waits until its setup or "
                "rekey entry is on the log")
        if setups:
            try:
                ceremony.run_params(self.consortium_id, after, setups[-1][1])
            except MalformedError as exc:
                raise ProtocolError(f"this change leaves too few of the key's nodes to re-share "
                                    f"it: {exc}") from None

    def dkg_indices(self) -> list[int]:
        """Indices of the key ceremony's ``dkg_*`` entries, in log order."""
        return [int(r[0]) for r in
                self._db.execute("SELECT idx FROM ledger_dkg ORDER BY idx").fetchall()]

    def _ceremony(self) -> tuple[Any, dict[str, Any], list[tuple[int, Any]]]:
        """The pending run's parameters (a fresh ceremony before the setup, a resharing after
        a change of the compute nodes), the compute nodes' registered transport keys and the
        run's ``dkg_*`` entries logged so far; ProtocolError when no run is pending."""
        from statledger.protocol import ceremony
        from statledger.protocol.entries import Entry

        try:
            pending = ceremony.pending_run(self.setups(), self.timeline)
        except MalformedError as exc:
            raise ProtocolError(f"the key cannot be re-shared: {exc}") from None
        if pending is None:
            raise ProtocolError("no key ceremony is pending: the key in force matches the "
                                "consortium's compute nodes")
        params, after = pending
        rows = [(i, Entry.from_bytes(self.store.entry(i).data)) for i in self.dkg_indices()
                if i > after]
        if params.prior is not None:
            return params, {}, rows
        compute = [m.party_id for m in self.roster.of_role("compute")]
        if not compute:
            raise ProtocolError("the roster has no compute nodes")
        missing = [pid for pid in compute if self.party(pid) is None]
        if missing:
            raise ProtocolError(f"compute nodes not registered yet: {', '.join(missing)}")
        keys = {}
        for pid in compute:
            reg = self.party(pid)
            pe = Entry.from_bytes(self.store.entry(int(reg["index"])).data)  # type: ignore[index]
            keys[pid] = pe.elgamal_point()  # type: ignore[attr-defined]
        return params, keys, rows

    def _check_ceremony(self, entry: Any) -> None:
        """(5d) A ``dkg_*`` entry is appended only before the setup and only where the
        ceremony's phase rules allow it (protocol/ceremony.py): no second deal, ack or key
        commitment by a node, no key commitment before every node acked, ... -> 409."""
        from statledger.protocol import ceremony

        try:
            params, _, rows = self._ceremony()
        except ProtocolError as exc:
            raise ProtocolError(f"{entry.KIND} refused: {exc}") from None
        try:
            ceremony.state_of(params, rows + [(self.store.size(), entry)])
        except VerificationError as exc:
            raise ProtocolError(f"{entry.KIND} by {entry.node} refused: {exc.reason}") from None

    def _maybe_rekey(self) -> int | None:
        """After a resharing's entry: append the ``rekey`` entry once the run is finished
        (its outcome re-derived from the run on the log, like the setup).  Under the lock."""
        from statledger.protocol import ceremony, dkg, entries

        try:
            params, _, rows = self._ceremony()
        except ProtocolError:
            return None
        if params.prior is None:
            return None  # the first setup is written on request (POST /v1/setup)
        try:
            result = ceremony.derive_from_log(params, {}, rows)
        except dkg.DkgIncomplete:
            return None
        except VerificationError as exc:
            log.warning("resharing failed: %s (party: %s)", exc.reason, exc.party or "-")
            return None
        rekey = entries.RekeyEntry(
            self.consortium_id, params.nodes, params.threshold,
            result.collective_key.to_bytes().hex(),
            tuple(result.verification_keys[n].to_bytes().hex() for n in params.nodes))
        signed = entries.sign(rekey, self.identity)
        return self._append_checked(signed.to_bytes(), signed)

    def write_setup(self, timeout: float = SETUP_WAIT) -> int:
        """Append the ``setup`` entry once the compute nodes' key ceremony on the log is
        finished: the collective key and every node's verification key re-derived from its
        transcript (protocol/ceremony.py).  Waits up to ``timeout`` seconds for the nodes to
        finish; then ProtocolError naming the phase and the nodes it waits for."""
        from statledger.protocol import ceremony, dkg, entries

        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                existing = self.setup_index()
                if existing is not None:
                    return existing
                params, keys, rows = self._ceremony()
                if params.prior is not None:  # pragma: no cover - a setup exists then
                    raise ProtocolError("the setup exists; a resharing ends in a rekey entry")
                try:
                    result = ceremony.derive_from_log(params, keys, rows)
                except dkg.DkgIncomplete as exc:
                    if time.monotonic() > deadline:
                        raise ProtocolError(f"key ceremony not finished: {exc.reason}") from None
                    result = None
                except VerificationError as exc:
                    raise ProtocolError(f"key ceremony failed: {exc.reason} (party: "
                                        f"{exc.party or '-'})") from None
                if result is not None:
                    setup = entries.SetupEntry(
                        self.consortium_id, params.nodes, params.threshold,
                        result.collective_key.to_bytes().hex(),
                        tuple(result.verification_keys[n].to_bytes().hex()
                              for n in params.nodes))
                    signed = entries.sign(setup, self.identity)
                    return self._append_checked(signed.to_bytes(), signed)
            time.sleep(0.1)

    # -- checkpoints ---------------------------------------------------------------------
    def _witness_size(self, pid: str) -> int:
        row = self._db.execute("SELECT value FROM ledger_meta WHERE key = ?",
                               (f"witness_size:{pid}",)).fetchone()
        return int(row[0]) if row else 0

    def _set_witness_size(self, pid: str, size: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO ledger_meta(key, value) VALUES (?, ?)",
                         (f"witness_size:{pid}", str(size)))

    async def checkpoint(self) -> dict[str, Any]:
        """Sign a checkpoint and ask every witness to cosign it (in parallel)."""
        from statledger.ledger.note import Note

        with self._lock:
            note_full = self.store.sign_checkpoint()
        parsed = Note.parse(note_full)
        # send only the log's own signature line (witnesses ignore unknown lines anyway)
        own = [s for s in parsed.signatures if s.name == self.config.origin]
        note = Note(parsed.text, tuple(own)).to_text()
        size = int(parsed.text.split("\n")[1])

        async def ask(pid: str, url: str) -> tuple[str, str | None, str | None]:
            async with AsyncSignedClient(url, self.config.party_id, self.identity,
                                         target=pid, timeout=10.0, retries=1) as cl:
                old = min(self._witness_size(pid), size)
                for _attempt in range(2):
                    proof = ([] if old in (0, size) else
                             [h.hex() for h in self.store.consistency_proof(old, size)])
                    try:
                        out = await cl.post("/v1/witness/cosign", json={
                            "checkpoint": note, "old_size": old, "proof": proof})
                    except RemoteError as exc:
                        if exc.status == 409 and isinstance(exc.body.get("size"), int):
                            old = int(exc.body["size"])
                            if old > size:
                                return pid, None, f"witness is ahead at size {old}"
                            continue
                        return pid, None, exc.reason
                    self._set_witness_size(pid, size)
                    return pid, str(out["cosignature"]), None
                return pid, None, "witness state keeps changing"

        results = await asyncio.gather(
            *(ask(pid, w.url) for pid, w in self.config.witnesses.items()))
        failures = {pid: err for pid, _, err in results if err}
        cosigners: list[str] = []
        for pid, line, _ in results:
            if line is None:
                continue
            text = line if line.endswith("\n") else line + "\n"
            try:  # each witness's line on its own: one bad witness cannot spoil the others
                v = self.witness_verifiers.get(pid)
                if v is None:
                    raise PolicyError("no cosignature key configured for this witness")
                cosigned = Note.parse(note + text)
                mine = [sg for sg in cosigned.signatures
                        if sg.name == v.name and sg.key_id == v.key_id]
                if not mine:
                    raise VerificationError("the cosignature is not from this witness's key",
                                            step="cosignature", party=pid)
                v.verify(cosigned.text.encode("utf-8"), mine[0].sig)
                self.store.add_cosignature(note + text)
                cosigners.append(pid)
            except (VerificationError, MalformedError, ProtocolError, PolicyError) as exc:
                failures[pid] = f"bad cosignature: {exc}"
        final = self.store.latest_checkpoint() or note
        cosigners.sort()
        return {"checkpoint": final, "size": size, "cosigners": cosigners,
                "failures": failures,
                "quorum_met": len(cosigners) >= self.roster.witness_quorum}

    def info(self) -> dict[str, Any]:
        return {
            "origin": self.config.origin,
            "size": self.store.size(),
            "log_key": self.store.log_verifier.vkey(),
            "witness_keys": {pid: w.key for pid, w in self.config.witnesses.items()},
            "quorum": self.roster.witness_quorum,
            "consortium": self.consortium_id,
        }

    def close(self) -> None:
        self.store.close()
        self.nonces.close()
        self._db.close()


def create_ledger_app(config: LedgerConfig, *, node: LedgerNode | None = None) -> FastAPI:
    """The ledger node's FastAPI app (see the module docstring for routes)."""
    the_node = node if node is not None else LedgerNode(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            the_node.close()

    app = create_app(title="statledger ledger", party_id=config.party_id, role="ledger",
                     max_body=config.max_body, lifespan=lifespan)
    app.state.node = the_node

    def get_node() -> LedgerNode:
        return the_node

    auth = Authenticator(the_node.key_of, the_node.nonces, the_node.role_of,
                         recipient=config.party_id)

    @app.post("/v1/entries", responses=documented(*SIGNED, 404, 422), openapi_extra={
        "requestBody": {"required": True, "description": "one signed entry (deterministic "
                        "CBOR, docs/entries.md); the content type is not looked at",
                        "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                    for media in ("application/cbor",
                                                  "application/octet-stream")}}})
    async def post_entry(request: Request,
                         party: str = Depends(auth.require())) -> dict[str, Any]:
        body = await request.body()
        # Checks (range proofs) and the SQLite append run in a worker thread, so reads and
        # other requests are served meanwhile; appends stay serialised by the node's lock.
        idx, lh, kind = await run_in_threadpool(get_node().append, body, party)
        return {"index": idx, "leaf_hash": lh.hex(), "kind": kind}

    @app.get("/v1/entries", response_model=list[_EntryRow], responses=documented(404))
    async def get_entries(start: int = Query(0, ge=0, le=_MAX_INDEX),
                          end: int | None = Query(None, ge=0, le=_MAX_INDEX),
                          ) -> Response:
        n = get_node().store.size()
        stop = min(n, start + MAX_ENTRIES_PER_PAGE) if end is None else end
        if stop > n:
            raise NotFoundError(f"end {stop} is beyond the log size {n}")
        if start > stop:
            raise MalformedError(f"start {start} > end {stop}")
        if stop - start > MAX_ENTRIES_PER_PAGE:
            raise MalformedError(f"at most {MAX_ENTRIES_PER_PAGE} entries per request")
        # each entry encoded once (EntryPages): a page is the join of its entries' JSON
        return Response(get_node().pages.page(get_node().store.entries(start, stop)),
                        media_type="application/json")

    @app.get("/v1/queries/{query_id}/entries", responses=documented(404))
    async def get_query_entries(query_id: str) -> dict[str, Any]:
        idx = get_node().query_entries(query_id)
        if not idx:
            raise NotFoundError(f"unknown query id {query_id}")
        return {"query_id": query_id, "indices": idx}

    @app.get("/v1/queries")
    async def get_queries(since: int = Query(0, ge=0, le=_MAX_INDEX)) -> dict[str, Any]:
        rows = get_node().queries_since(since)
        return {"queries": [{"query_id": q, "index": i} for q, i in rows]}

    @app.get("/v1/parties")
    async def get_parties() -> dict[str, Any]:
        return get_node().parties()

    @app.get("/v1/parties/{party_id}", responses=documented(404))
    async def get_party(party_id: str) -> dict[str, Any]:
        p = get_node().party(party_id)
        if p is None:
            raise NotFoundError(f"party {party_id!r} is not registered")
        return p

    @app.get("/v1/log")
    async def get_log() -> dict[str, Any]:
        return get_node().info()

    @app.get("/v1/checkpoint", response_class=PlainTextResponse, responses={
        200: {"description": "the latest checkpoint note (C2SP signed note) with its "
                             "cosignatures", "content": {"text/plain": {"schema": {
                                 "type": "string"}}}}, **documented(404)})
    async def get_checkpoint() -> PlainTextResponse:
        note = get_node().store.latest_checkpoint()
        if note is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return PlainTextResponse(note)

    @app.post("/v1/checkpoint", responses=documented(
        *SIGNED, 503, d503="fewer witnesses than the quorum cosigned (names each failure)"))
    async def post_checkpoint(_party: str = Depends(auth.require())) -> JSONResponse:
        out = await get_node().checkpoint()
        if not out["quorum_met"]:
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(out["failures"].items()))
            return JSONResponse(
                error_body(f"only {len(out['cosigners'])} of the required "
                           f"{get_node().roster.witness_quorum} witnesses cosigned "
                           f"({reasons})",
                           node=config.party_id, **out),
                status_code=503)
        return JSONResponse(out)

    @app.get("/v1/consortium")
    async def get_consortium() -> dict[str, Any]:
        n = get_node()
        r = n.roster
        return {"consortium": n.consortium_id, "chain": n.chain_indices(), "seq": r.seq,
                "head": r.head}

    @app.post("/v1/membership", responses=documented(*SIGNED, 422), openapi_extra={
        "requestBody": {"required": True, "description": "a membership change, canonical "
                        "JSON signed by the admission quorum (docs/consortium.md)",
                        "content": {"application/json": {"schema": {"type": "object"}}}}})
    async def post_membership(request: Request,
                              _party: str = Depends(auth.require())) -> dict[str, Any]:
        body = await request.body()
        idx = await run_in_threadpool(get_node().append_membership, body)
        return {"index": idx, "seq": get_node().roster.seq, "head": get_node().roster.head}

    @app.post("/v1/setup", responses=documented(*SIGNED))
    async def post_setup(_party: str = Depends(auth.require())) -> dict[str, Any]:
        idx = await run_in_threadpool(get_node().write_setup)
        return {"index": idx, "leaf_hash": get_node().store.leaf_hash(idx).hex()}

    @app.get("/v1/ceremony")
    async def get_ceremony() -> dict[str, Any]:
        """The key ceremony's entries (hints: parties check them against checkpoints)."""
        n = get_node()
        return {"dkg": n.dkg_indices(), "setup": n.setup_index(),
                "setups": n.setup_indices()}

    @app.get("/v1/index")
    async def get_index(query: str | None = Query(None, pattern="^[0-9a-f]{64}$"),
                        ) -> dict[str, Any]:
        """The hints a reader's poll needs, in one answer (each also has its own route):
        the consortium chain, the registered parties', the key ceremony's and the setups'
        indices, and the query's entries when ``query`` is given (empty if unknown).  Hints
        only: a reader checks what it reads at them (nodes/follower.py)."""
        n = get_node()
        out: dict[str, Any] = {
            "chain": n.chain_indices(),
            "parties": sorted(int(p["index"]) for p in n.parties().values()),
            "dkg": n.dkg_indices(), "setup": n.setup_index(), "setups": n.setup_indices()}
        if query is not None:
            out["query"] = n.query_entries(query)
        return out

    @app.get("/v1/setup", responses=documented(404))
    async def get_setup() -> dict[str, Any]:
        idx = get_node().setup_index()
        if idx is None:
            raise NotFoundError("no setup entry on the log yet")
        e = get_node().store.entry(idx)
        return {"index": idx, "data": base64.b64encode(e.data).decode("ascii")}

    @app.get("/v1/proofs/inclusion")
    async def get_inclusion(index: int = Query(..., ge=0, le=_MAX_INDEX),
                            size: int | None = Query(None, ge=1, le=_MAX_INDEX),
                            ) -> dict[str, Any]:
        st = get_node().store
        n = st.size() if size is None else size
        if index >= n:
            raise MalformedError(f"index {index} is not below tree size {n}")
        proof = st.inclusion_proof(index, n)
        return {"index": index, "size": n, "leaf_hash": st.leaf_hash(index).hex(),
                "proof": [h.hex() for h in proof]}

    @app.get("/v1/proofs/inclusions", responses=documented(404))
    async def get_inclusions(size: int = Query(..., ge=1, le=_MAX_INDEX),
                             indices: str = Query(..., max_length=8000)) -> dict[str, Any]:
        st = get_node().store
        try:
            wanted = sorted({int(i) for i in indices.split(",")})
        except ValueError:
            raise MalformedError("indices: a comma-separated list of log indices") from None
        if len(wanted) > 500:
            raise MalformedError("at most 500 indices per request")
        if size > st.size():
            raise NotFoundError(f"size {size} is beyond the log size {st.size()}")
        if wanted and (wanted[0] < 0 or wanted[-1] >= size):
            raise MalformedError(f"every index must be below the tree size {size}")
        return {"size": size, "proofs": {str(i): [h.hex() for h in st.inclusion_proof(i, size)]
                                         for i in wanted}}

    @app.get("/v1/proofs/consistency")
    async def get_consistency(size1: int = Query(..., ge=0, le=_MAX_INDEX),
                              size2: int | None = Query(None, ge=0, le=_MAX_INDEX),
                              ) -> dict[str, Any]:
        st = get_node().store
        n = st.size() if size2 is None else size2
        if size1 > n:
            raise MalformedError(f"size1 {size1} > size2 {n}")
        proof = [] if size1 in (0, n) else st.consistency_proof(size1, n)
        return {"size1": size1, "size2": n, "proof": [h.hex() for h in proof]}

    @app.get("/v1/bundles/{index}", responses=documented(404, 409))
    async def get_bundle(index: int = Path(..., ge=0, le=_MAX_INDEX),
                         size: int | None = Query(None, ge=1, le=_MAX_INDEX)) -> Any:
        b = get_node().store.bundle(index)
        if size is not None and size != _bundle_size(b):
            raise ProtocolError(
                f"bundles are served against the latest checkpoint (size {_bundle_size(b)})")
        return _bundle_json(b)

    return app


def _bundle_size(b: Any) -> int:
    from statledger.ledger.checkpoint import Checkpoint
    from statledger.ledger.note import Note

    return int(Checkpoint.parse(Note.parse(b.checkpoint).text).size)


def _bundle_json(b: Any) -> Any:
    return b.to_json_obj()


# -- witness endpoint (mounted by compute nodes) ---------------------------------------------


class CosignRequest(BaseModel):
    """Body of ``POST /v1/witness/cosign``: the log-signed checkpoint note, the size the log
    believes the witness is at, and a consistency proof (hex hashes) from that size."""

    model_config = ConfigDict(extra="forbid")
    checkpoint: str = Field(max_length=1 << 16)
    old_size: int = Field(ge=0)
    proof: list[str] = Field(default_factory=list, max_length=64)


def witness_from_config(config: Any) -> Any:
    """A :class:`statledger.ledger.witness.Witness` for a compute node's config (``witness``
    section):
    state in ``data_dir/witness.sqlite``, key = the node's identity key, name = party id."""
    from statledger.ledger.note import NoteVerifier
    from statledger.ledger.witness import Witness

    if config.witness is None:
        raise PolicyError(f"{config.party_id} has no [witness] settings")
    # A witness cosigns with the node's registered identity key (name = party id), so the
    # verifier derives witness keys from the compute nodes' `party` entries.
    seed = load_or_create_identity_key(config.identity_key_path).to_bytes()
    log_key = NoteVerifier.from_vkey(config.witness.log_key)
    if log_key.name != config.witness.origin:
        raise PolicyError("witness.log_key is not the key of witness.origin")
    return Witness(config.data_dir / "witness.sqlite", config.party_id, seed, [log_key])


def witness_router(witness: Any, auth: Authenticator | None = None,
                   roles: tuple[str, ...] = ("ledger",)) -> APIRouter:
    """``POST /v1/witness/cosign`` for a :class:`statledger.ledger.witness.Witness`.

    With ``auth`` the caller must be an authenticated party of one of ``roles``; without,
    the endpoint is open like c2sp.org/tlog-witness (the log signature authenticates the
    checkpoint).  A stale ``old_size`` answers 409 with the witness's ``size``.
    """
    from statledger.ledger.witness import WitnessConflictError

    router = APIRouter()
    deps = [Depends(auth.require(*roles))] if auth is not None else []

    @router.post("/v1/witness/cosign", dependencies=deps, responses=documented(
        *(SIGNED if auth is not None else ()), 403, 409, 422,
        d409="the witness is at another size (its ``size``) or the request was replayed"))
    async def cosign(body: CosignRequest, request: Request) -> Any:
        try:
            proof = [bytes.fromhex(h) for h in body.proof]
        except ValueError:
            raise MalformedError("proof: hashes must be hex") from None
        if any(len(h) != 32 for h in proof):
            raise MalformedError("proof: hashes must be 32 bytes")
        try:
            sig = witness.cosign(body.checkpoint, proof, body.old_size)
        except WitnessConflictError as exc:
            return JSONResponse(
                error_body(str(exc), node=getattr(request.app.state, "party_id", None),
                           size=exc.size),
                status_code=409)
        return {"cosignature": sig.line(), "name": witness.name}

    return router
