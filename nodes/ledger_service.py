"""The ledger node: hosts the append-only log (:class:`statledger.ledger.store.LedgerStore`) over
HTTP.

Routes (``auth`` = signed request, :mod:`statledger.nodes.auth`)::

    POST /v1/entries                 auth   body = one entry's bytes (deterministic CBOR,
                                            entry version 2; content type ignored,
                                            application/cbor by convention)
                                            -> {"index", "leaf_hash", "kind"}
    GET  /v1/entries?start=&end=            -> [{"index", "kind", "data" (base64)}] (<= 1000)
    GET  /v1/queries/{query_id}/entries     -> {"query_id", "indices"}   (404 if none)
    GET  /v1/parties                        -> {party_id: {"role", "sig_key", "index"}}
    GET  /v1/parties/{party_id}             -> {"party_id", "role", "sig_key", "index"} | 404
    GET  /v1/log                            -> {"origin", "size", "log_key", "witness_keys",
                                                "quorum"}
    GET  /v1/checkpoint                     -> text/plain C2SP checkpoint + cosignatures | 404
    POST /v1/checkpoint              auth   sign a checkpoint, collect witness cosignatures
                                            -> {"checkpoint", "size", "cosigners", "failures"}
    GET  /v1/setup                          -> {"index", "data" (base64)} | 404
    POST /v1/setup                   auth   write the ``setup`` entry once every compute node
                                            of the roster is registered -> {"index", ...}
    GET  /v1/proofs/inclusion?index=&size=  -> {"index", "size", "leaf_hash", "proof"}
    GET  /v1/proofs/consistency?size1=&size2= -> {"size1", "size2", "proof"}
    GET  /v1/bundles/{index}                -> the proof bundle against the latest checkpoint

Append checks (POST /v1/entries), in order -- each failure names its reason:

1. the body parses strictly (``statledger.protocol.entries.Entry.from_bytes``)            -> 400
2. the author (``claimed_author``; ``setup`` -> the ledger; ``aggregate`` and
   ``result`` -> the querier of the query's ``query`` entry) is the
   authenticated sender                                                        -> 403
3. the author's registered role may write this kind                          -> 403
4. ``party`` entries: the party is on the configured roster with this role and
   ``sig_key``; the entry is self-signed; a compute node's proof of knowledge
   verifies; a party registers once (identical bytes are idempotent)           -> 403/409/422
   other kinds: the author is registered and the signature verifies with the
   registered key                                                             -> 403/422
5. entries that refer to a query (``query_id``) need its ``query`` entry first
   (``query`` entries must not repeat a query id)                               -> 404/409
   5b. a submission's / noise share's range proof verifies                      -> 422
   5c. the query's state machine (``statledger.protocol.statemachine``) accepts the entry:
       no duplicate, nothing out of order                                      -> 409
5b. ``submission`` and ``noise`` entries: the vector decodes with the query's public
   ranges and its range proof verifies (refused at submission, author named)   -> 422
6. append (idempotent: identical bytes return the existing index).

Side tables (``state.sqlite``) -- registered parties, query id -> indices -- are derived from
the log and rebuilt from it at startup (``indexed_size``), so a crash between the log append
and the side-table update loses nothing.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from statledger.nodes.app import NotFoundError, create_app, error_body
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
_MAX_INDEX = (1 << 62) - 1  # SQLite integers are 64-bit; larger values are simply unknown

# which role may author which entry kind
KIND_ROLES: dict[str, frozenset[str]] = {
    "party": frozenset({"ledger", "compute", "provider", "querier"}),
    "setup": frozenset({"ledger"}),
    "query": frozenset({"querier"}),
    "submission": frozenset({"provider"}),
    "noise": frozenset({"compute"}),
    "aggregate": frozenset({"querier"}),
    "decryption": frozenset({"compute"}),
    "result": frozenset({"querier"}),
    "endorsement": frozenset({"provider"}),
}

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_parties (
    party_id TEXT PRIMARY KEY, role TEXT NOT NULL, sig_key TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_queries (
    query_id TEXT PRIMARY KEY, querier TEXT NOT NULL, idx INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_query_entries (
    query_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (query_id, idx));
"""


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
        self._db = sqlite3.connect(str(config.state_db_path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_STATE_SCHEMA)
        self.nonces = NonceStore(config.state_db_path)
        self._lock = threading.RLock()
        self.catch_up()
        self._register_self()

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

    def _index(self, entry: Any, idx: int) -> None:
        if entry.KIND == "setup":
            self._db.execute(
                "INSERT OR IGNORE INTO ledger_meta(key, value) VALUES ('setup_index', ?)",
                (str(idx),))
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

    def _register_self(self) -> None:
        """The ledger's own ``party`` entry (role ledger), appended once."""
        from statledger.protocol import entries

        if self.party(self.config.party_id) is not None:
            return
        member = self.config.roster.get(self.config.party_id)
        own_key = self.identity.public_key().to_bytes().hex()
        if member is not None and (member.role != "ledger" or member.sig_key != own_key):
            raise PolicyError(
                f"roster entry for {self.config.party_id} does not match the ledger's key")
        entry = entries.sign(
            entries.PartyEntry(self.config.party_id, "ledger", own_key), self.identity)
        self._append_checked(entry.to_bytes(), entry)

    # -- directory -----------------------------------------------------------------------
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
        """HTTP key directory: the registered key, else the roster key (for registration)."""
        from statledger.proofs.signatures import VerifyKey

        p = self.party(party_id)
        if p is not None:
            return VerifyKey.from_bytes(bytes.fromhex(p["sig_key"]))
        member = self.config.roster.get(party_id)
        if member is not None:
            return VerifyKey.from_bytes(bytes.fromhex(member.sig_key))
        return None

    def role_of(self, party_id: str) -> str | None:
        p = self.party(party_id)
        if p is not None:
            return str(p["role"])
        member = self.config.roster.get(party_id)
        return None if member is None else member.role

    def querier_of(self, query_id: str) -> str | None:
        row = self._db.execute(
            "SELECT querier FROM ledger_queries WHERE query_id = ?", (query_id,)).fetchone()
        return None if row is None else str(row[0])

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
        with self._lock:
            author = self._author(entry)
            if author != sender:  # (2)
                raise PolicyError(
                    f"{entry.KIND} entry is authored by {author!r}, but was sent by {sender!r}")
            existing = self.store.index_of(data)
            if existing is not None:  # idempotent: identical bytes were accepted before
                return existing, self.store.leaf_hash(existing), entry.KIND
            idx = self._append_checked(data, entry)
            return idx, self.store.leaf_hash(idx), entry.KIND

    def _author(self, entry: Any) -> str:
        kind = entry.KIND
        if kind == "setup":
            return self.config.party_id
        if kind in ("aggregate", "result"):
            q = self.querier_of(entry.query_id)
            if q is None:
                raise NotFoundError(f"unknown query id {entry.query_id}")
            return q
        author = entry.claimed_author()
        if not isinstance(author, str):
            raise MalformedError(f"{kind} entry names no author")
        return author

    def _append_checked(self, data: bytes, entry: Any) -> int:
        from statledger.protocol import entries

        kind = entry.KIND
        author = self._author(entry)
        if kind == "party":  # (4) registration
            member = self.config.roster.get(entry.party_id)
            if member is None and entry.party_id != self.config.party_id:
                raise PolicyError(f"party {entry.party_id!r} is not on the ledger's roster")
            if member is not None and (member.role != entry.role
                                       or member.sig_key != entry.sig_key):
                raise PolicyError(
                    f"party entry of {entry.party_id!r} does not match its roster role/key")
            if self.party(entry.party_id) is not None:
                raise ProtocolError(f"party {entry.party_id!r} is already registered")
            entries.verify_signature(entry, entry.verify_key(), entry.party_id,
                                     step="registration")
            if entry.role == "compute":
                entry.verify_pok(step="registration")
        else:
            reg = self.party(author)
            if reg is None:
                raise PolicyError(f"party {author!r} is not registered on the log")
            if kind in KIND_ROLES and reg["role"] not in KIND_ROLES[kind]:  # (3)
                raise PolicyError(
                    f"a {reg['role']} may not write {kind} entries (party {author!r})")
            from statledger.proofs.signatures import VerifyKey

            vk = VerifyKey.from_bytes(bytes.fromhex(reg["sig_key"]))
            entries.verify_signature(entry, vk, author, step="append")
            qid = getattr(entry, "query_id", None)  # (5)
            if isinstance(qid, str):
                known = self.querier_of(qid)
                if kind == "query" and known is not None:
                    raise ProtocolError(f"query {qid} is already on the log")
                if kind != "query" and known is None:
                    raise NotFoundError(f"unknown query id {qid}")
                if kind in ("submission", "noise"):  # (5b)
                    self._check_vector(entry)
                self._check_order(entry, qid)  # (5c)
        idx = self.store.append(kind, data)  # (6)
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

    def _roster(self) -> Any:
        from statledger.protocol.entries import Entry
        from statledger.protocol.statemachine import Roster

        setup_idx = self.setup_index()
        if setup_idx is None:
            raise ProtocolError("no setup entry on the log yet")
        setup = Entry.from_bytes(self.store.entry(setup_idx).data)
        parties = self.parties()
        return Roster(
            tuple(setup.compute),  # type: ignore[attr-defined]
            tuple(sorted(p for p, v in parties.items() if v["role"] == "provider")),
            tuple(sorted(p for p, v in parties.items() if v["role"] == "querier")),
        )

    def _check_order(self, entry: Any, qid: str) -> None:
        """(5c) The query's state machine (statledger.protocol.statemachine) accepts the new entry:
        no duplicate submission / noise / decryption / endorsement, no entry out of order
        (e.g. decryption before the aggregate, a submission after it) -> 409."""
        from statledger.protocol.entries import Entry
        from statledger.protocol.statemachine import advance, replay, start

        if entry.KIND == "query":
            # A query may be posted before the cluster's setup entry (nothing can answer it
            # yet); once the roster exists, the query must fit it (e.g. min_providers).
            if self.setup_index() is not None:
                start(entry, self._roster())
            return
        roster = self._roster()
        indices = self.query_entries(qid)
        logged = [Entry.from_bytes(self.store.entry(i).data) for i in indices]
        state = replay(logged, roster, indices=indices)
        advance(state, entry, self.store.size())

    def _check_vector(self, entry: Any) -> None:
        """(5b) A submission or DP noise share is refused at append time unless its vector
        decodes with the query's public ranges and its range proof verifies (the same check
        as verification steps 9/10); the error names the author."""
        from statledger.proofs.vector import verify_encrypted_vector
        from statledger.protocol import flow
        from statledger.protocol.entries import Entry
        from statledger.protocol.stats import get as get_statistic

        qid = entry.query_id
        row = self._db.execute(
            "SELECT idx FROM ledger_queries WHERE query_id = ?", (qid,)).fetchone()
        setup_idx = self.setup_index()
        if row is None or setup_idx is None:
            raise ProtocolError(f"query {qid}: no query or setup entry on the log yet")
        spec = Entry.from_bytes(self.store.entry(int(row[0])).data).query_spec()  # type: ignore[attr-defined]
        setup = Entry.from_bytes(self.store.entry(setup_idx).data)
        if entry.KIND == "submission":
            party = str(entry.provider)
            ranges = list(get_statistic(spec.statistic).layout(spec).ranges)
            context = flow.submission_context(qid, party)
        else:
            party = str(entry.node)
            plan = flow.noise_plan(spec, len(setup.compute))  # type: ignore[attr-defined]
            if plan is None:
                raise VerificationError(f"noise share by {party} for a query without DP",
                                        step="append", party=party)
            ranges = plan.ranges()
            context = flow.noise_context(qid, party)
        try:
            ev = entry.decode_vector(ranges)
            verify_encrypted_vector(setup.collective_point(),  # type: ignore[attr-defined]
                                    ev, ranges, context, party=party)
        except MalformedError as exc:
            raise VerificationError(f"{entry.KIND} by {party} refused: {exc}",
                                    step="append", party=party) from None
        except VerificationError as exc:
            raise VerificationError(f"{entry.KIND} by {party} refused: {exc.reason}",
                                    step=exc.step, party=party) from None

    def write_setup(self, cluster_id: str | None = None) -> int:
        """Append the ``setup`` entry from the registered compute nodes of the roster."""
        from statledger.protocol import entries
        from statledger.protocol.entries import Entry
        from statledger.protocol.flow import collective_key

        with self._lock:
            existing = self.setup_index()
            if existing is not None:
                return existing
            compute = sorted(pid for pid, m in self.config.roster.items()
                             if m.role == "compute")
            if not compute:
                raise ProtocolError("the roster has no compute nodes")
            missing = [pid for pid in compute if self.party(pid) is None]
            if missing:
                raise ProtocolError(f"compute nodes not registered yet: {', '.join(missing)}")
            points = []
            for pid in compute:
                reg = self.party(pid)
                if reg is None:  # pragma: no cover (checked above)
                    raise ProtocolError(f"{pid} not registered")
                pe = Entry.from_bytes(self.store.entry(int(reg["index"])).data)
                points.append(pe.elgamal_point())  # type: ignore[attr-defined]
            X = collective_key(points)
            setup = entries.SetupEntry(cluster_id or self.config.origin.replace("/", "."),
                                       tuple(compute), X.to_bytes().hex(),
                                       self.config.witness_quorum)
            signed = entries.sign(setup, self.identity)
            return self._append_checked(signed.to_bytes(), signed)

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
                                         timeout=10.0, retries=1) as cl:
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
                "quorum_met": len(cosigners) >= self.config.witness_quorum}

    def info(self) -> dict[str, Any]:
        return {
            "origin": self.config.origin,
            "size": self.store.size(),
            "log_key": self.store.log_verifier.vkey(),
            "witness_keys": {pid: w.key for pid, w in self.config.witnesses.items()},
            "quorum": self.config.witness_quorum,
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

    auth = Authenticator(the_node.key_of, the_node.nonces, the_node.role_of)

    @app.post("/v1/entries")
    async def post_entry(request: Request,
                         party: str = Depends(auth.require())) -> dict[str, Any]:
        body = await request.body()
        # Checks (range proofs) and the SQLite append run in a worker thread, so reads and
        # other requests are served meanwhile; appends stay serialised by the node's lock.
        idx, lh, kind = await run_in_threadpool(get_node().append, body, party)
        return {"index": idx, "leaf_hash": lh.hex(), "kind": kind}

    @app.get("/v1/entries")
    async def get_entries(start: int = Query(0, ge=0, le=_MAX_INDEX),
                          end: int | None = Query(None, ge=0, le=_MAX_INDEX),
                          ) -> list[dict[str, Any]]:
        n = get_node().store.size()
        stop = min(n, start + MAX_ENTRIES_PER_PAGE) if end is None else end
        if stop > n:
            raise NotFoundError(f"end {stop} is beyond the log size {n}")
        if start > stop:
            raise MalformedError(f"start {start} > end {stop}")
        if stop - start > MAX_ENTRIES_PER_PAGE:
            raise MalformedError(f"at most {MAX_ENTRIES_PER_PAGE} entries per request")
        return [{"index": e.index, "kind": e.kind,
                 "data": base64.b64encode(e.data).decode("ascii")}
                for e in get_node().store.entries(start, stop)]

    @app.get("/v1/queries/{query_id}/entries")
    async def get_query_entries(query_id: str) -> dict[str, Any]:
        idx = get_node().query_entries(query_id)
        if not idx:
            raise NotFoundError(f"unknown query id {query_id}")
        return {"query_id": query_id, "indices": idx}

    @app.get("/v1/parties")
    async def get_parties() -> dict[str, Any]:
        return get_node().parties()

    @app.get("/v1/parties/{party_id}")
    async def get_party(party_id: str) -> dict[str, Any]:
        p = get_node().party(party_id)
        if p is None:
            raise NotFoundError(f"party {party_id!r} is not registered")
        return p

    @app.get("/v1/log")
    async def get_log() -> dict[str, Any]:
        return get_node().info()

    @app.get("/v1/checkpoint")
    async def get_checkpoint() -> PlainTextResponse:
        note = get_node().store.latest_checkpoint()
        if note is None:
            raise NotFoundError("no checkpoint has been signed yet")
        return PlainTextResponse(note)

    @app.post("/v1/checkpoint")
    async def post_checkpoint(_party: str = Depends(auth.require())) -> JSONResponse:
        out = await get_node().checkpoint()
        if not out["quorum_met"]:
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(out["failures"].items()))
            return JSONResponse(
                error_body(f"only {len(out['cosigners'])} of the required "
                           f"{config.witness_quorum} witnesses cosigned ({reasons})",
                           node=config.party_id, **out),
                status_code=503)
        return JSONResponse(out)

    @app.post("/v1/setup")
    async def post_setup(_party: str = Depends(auth.require())) -> dict[str, Any]:
        idx = get_node().write_setup()
        return {"index": idx, "leaf_hash": get_node().store.leaf_hash(idx).hex()}

    @app.get("/v1/setup")
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

    @app.get("/v1/bundles/{index}")
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

    @router.post("/v1/witness/cosign", dependencies=deps)
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
