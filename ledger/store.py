"""The append-only log on SQLite (sqlite-utils, WAL): entries, interior nodes, checkpoints.

Tables (all append-only: ``BEFORE UPDATE`` / ``BEFORE DELETE`` triggers abort)::

    meta(key PRIMARY KEY, value)                  origin, schema version, node stride
    entries(idx INTEGER PRIMARY KEY, kind, data, leaf_hash, ts)
        + BEFORE INSERT trigger: idx must be MAX(idx) + 1 (no gaps, no reordering)
    nodes(id INTEGER PRIMARY KEY, hash)           perfect-subtree hashes, see below
    checkpoints(id INTEGER PRIMARY KEY, size, root, note, ts)     log-signed checkpoints
    cosignatures(id INTEGER PRIMARY KEY, checkpoint_id, name, key_id, line, ts)
    dedup(prefix, idx) WITHOUT ROWID, dedup_mark(upto)   idempotent-append index, see below

Idempotent append.  Same bytes -> same index.  Entries ``idx < MAX(dedup_mark.upto)`` are
indexed in ``dedup`` by the first 8 bytes of their leaf hash (a candidate list; the full hash
is compared); newer ones are held in memory (rebuilt from ``entries`` on open, at most
``dedup_flush`` rows) and moved into ``dedup`` every ``dedup_flush`` (65,536) entries as one
sorted bulk insert inside an append transaction.  A per-entry random index insert would
instead dirty about one index page per entry on every commit (measured: ~40% of append cost).

Interior nodes.  The hash of every perfect subtree ``(level, index)`` (leaves
``[index * 2**level, (index + 1) * 2**level)``) whose level is a positive multiple of
``stride`` (default 3) is stored when its last leaf is appended, under the key
``(last_leaf << 6) | level``.  Keys therefore grow with insertion order (rightmost B-tree
appends, full pages).  Any perfect subtree is then at most ``2**(stride - 1)`` stored hashes
away, so a root or proof at any size needs O(log n) rows, fetched with one or two ``IN``
queries.  Storing every third level costs about ``n / 7`` rows (~6 B per entry) instead of
``n`` rows (~45 B per entry).

Durability.  Each ``append_many`` call is one ``BEGIN IMMEDIATE`` transaction that writes
entries and nodes together; checkpoints are written in their own transaction after a check
that the new tree extends the last signed one (tlog-checkpoint §"Signatures": a log MUST NOT
sign two inconsistent checkpoints).  WAL with ``synchronous=NORMAL`` survives a killed process
(``durable=True`` selects ``synchronous=FULL`` for power loss).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from statledger.ledger.bundle import ProofBundle
from statledger.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from statledger.ledger.merkle import (
    EMPTY_ROOT,
    build_proof,
    consistency_plan,
    fold_subtrees,
    inclusion_plan,
    leaf_hash,
    node_hash,
    perfect_subtrees,
    verify_consistency,
)
from statledger.ledger.note import CosignatureVerifier, Note, NoteSigner, NoteVerifier
from statledger.proofs.errors import MalformedError, PolicyError, ProtocolError, VerificationError

__all__ = [
    "SCHEMA_VERSION",
    "Entry",
    "StoredCheckpoint",
    "InconsistentCheckpointError",
    "LedgerStore",
    "node_key",
]

SCHEMA_VERSION = "statledger-ledger/2"
MAX_KIND_LEN = 64
MAX_ENTRY_BYTES = 16 << 20
_PARAMS_PER_QUERY = 500
_CACHE_MIN_LEVEL = 6
_DEDUP_FLUSH = 1 << 16
_CACHE_MAX = 1 << 17

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries(
    idx INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup(
    prefix INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY(prefix, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_mark(upto INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS nodes(id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cosignatures(
    id INTEGER PRIMARY KEY,
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints(id),
    name TEXT NOT NULL,
    key_id BLOB NOT NULL,
    line TEXT NOT NULL,
    ts INTEGER NOT NULL,
    UNIQUE(checkpoint_id, name, key_id)
);
CREATE TRIGGER IF NOT EXISTS entries_contiguous BEFORE INSERT ON entries
WHEN NEW.idx IS NOT (SELECT COALESCE(MAX(idx), -1) + 1 FROM entries)
BEGIN SELECT RAISE(ABORT, 'entries: index must be the next one'); END;
"""

_APPEND_ONLY = ("meta", "entries", "nodes", "checkpoints", "cosignatures", "dedup", "dedup_mark")


def _triggers() -> str:
    out = []
    for table in _APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
            )
    return "\n".join(out)


def _prefix(h: bytes) -> int:
    """The dedup key of a leaf hash: its first 8 bytes as a signed 64-bit integer."""
    return int.from_bytes(h[:8], "big", signed=True)


def node_key(level: int, index: int) -> int:
    """Row id of the stored perfect subtree ``(level, index)``: ``(last_leaf << 6) | level``."""
    return ((((index + 1) << level) - 1) << 6) | level


class _HasToBytes(Protocol):
    def to_bytes(self) -> bytes: ...


@dataclass(frozen=True)
class Entry:
    """One log entry as stored."""

    index: int
    kind: str
    data: bytes
    leaf_hash: bytes
    ts: int


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint the log signed, with the cosignature lines it received."""

    id: int
    size: int
    root: bytes
    note: str
    ts: int


class InconsistentCheckpointError(VerificationError):
    """The log refused to sign a checkpoint that does not extend the last signed one."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_KIND_LEN:
        raise MalformedError(f"entry kind must be a str of 1..{MAX_KIND_LEN} characters")
    if not kind.isascii() or not kind.isprintable():
        raise MalformedError(f"entry kind {kind!r} must be printable ASCII")
    return kind


def _check_data(data: object) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"entry data must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > MAX_ENTRY_BYTES:
        raise MalformedError(f"entry data longer than {MAX_ENTRY_BYTES} bytes")
    return raw


class LedgerStore:
    """The log: ``LedgerStore(path, origin, signing_key)``.

    With ``signing_key=None`` and ``log_key`` (the log's verifier) the store can be read,
    proved from and replayed, but not sign checkpoints (auditors).

    ``signing_key`` is a :class:`~statledger.ledger.note.NoteSigner`, a 32-byte Ed25519 seed, or any
    object with ``to_bytes() -> 32-byte seed`` (e.g. ``statledger.proofs.signatures.SigningKey``);
    the
    note key name is ``origin``.  ``witnesses`` are the cosigners whose cosignatures
    :meth:`add_cosignature` accepts.  Thread-safe (one lock around the connection).
    """

    def __init__(
        self,
        path: str | Path,
        origin: str,
        signing_key: NoteSigner | bytes | _HasToBytes | None,
        *,
        log_key: NoteVerifier | None = None,
        witnesses: Sequence[CosignatureVerifier] = (),
        stride: int = 3,
        durable: bool = False,
        dedup_flush: int = _DEDUP_FLUSH,
    ) -> None:
        self._signer: NoteSigner | None
        if signing_key is None:
            if log_key is None:
                raise MalformedError("a store without signing key needs log_key")
            self._signer = None
            self.log_verifier: NoteVerifier = log_key
        else:
            if isinstance(signing_key, NoteSigner):
                self._signer = signing_key
            else:
                seed = signing_key if isinstance(signing_key, bytes) else signing_key.to_bytes()
                self._signer = NoteSigner(origin, seed)
            self.log_verifier = self._signer.verifier()
            if log_key is not None and log_key != self.log_verifier:
                raise MalformedError("log_key does not match the signing key")
        if self.log_verifier.name != origin:
            raise MalformedError("the log's key name must equal its origin")
        if not 1 <= stride <= 8:
            raise MalformedError("node stride must be in 1..8")
        self.origin = origin
        self.witnesses = tuple(witnesses)
        self.path = str(path)
        self._lock = threading.RLock()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self._conn = conn
        self.db.enable_wal()  # type: ignore[no-untyped-call]
        conn.execute("PRAGMA synchronous=" + ("FULL" if durable else "NORMAL"))
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA wal_autocheckpoint=8192")  # fewer checkpoint fsyncs (32 MiB WAL)
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + _triggers() + "COMMIT;")
        with self._tx():
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), ("origin", origin), ("stride", str(stride))],
                )
                meta = {"schema": SCHEMA_VERSION, "origin": origin, "stride": str(stride)}
        if meta.get("schema") != SCHEMA_VERSION:
            raise MalformedError(f"unknown ledger schema {meta.get('schema')!r}")
        if meta.get("origin") != origin:
            raise ProtocolError(
                f"database belongs to origin {meta.get('origin')!r}, not {origin!r}"
            )
        self.stride = int(meta["stride"])
        self._size = -1
        self._frontier: list[tuple[int, bytes]] = []
        # complete perfect subtrees never change: cache the high ones (proofs touch few)
        self._cache: dict[tuple[int, int], bytes] = {}
        # leaf hash -> (idx, kind) for entries not yet in the dedup table (idx >= _mark)
        self._pending: dict[bytes, tuple[int, str]] = {}
        self._mark = 0
        if dedup_flush < 1:
            raise MalformedError("dedup_flush must be positive")
        self.dedup_flush = dedup_flush
        with self._lock:
            self._sync()

    # -- plumbing ---------------------------------------------------------------------------

    class _Tx:
        def __init__(self, store: LedgerStore) -> None:
            self.store = store

        def __enter__(self) -> None:
            self.store._lock.acquire()
            try:
                self.store._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise

        def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
            try:
                if exc_type is None:
                    self.store._conn.execute("COMMIT")
                else:
                    self.store._conn.execute("ROLLBACK")
            finally:
                self.store._lock.release()

    def _tx(self) -> LedgerStore._Tx:
        return LedgerStore._Tx(self)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db_size(self) -> int:
        row = self._conn.execute("SELECT MAX(idx) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def _sync(self) -> None:
        """Reload size and frontier if another writer changed the database (lock held)."""
        n = self._db_size()
        if n != self._size:
            row = self._conn.execute("SELECT MAX(upto) FROM dedup_mark").fetchone()
            mark = 0 if row[0] is None else int(row[0])
            if self._size < 0 or n < self._size or mark != self._mark:
                self._pending, self._mark, start = {}, mark, mark
            else:
                start = self._size
            for idx, kind, lh in self._conn.execute(
                "SELECT idx, kind, leaf_hash FROM entries WHERE idx >= ?", (start,)
            ):
                self._pending[bytes(lh)] = (idx, kind)
            subs = perfect_subtrees(0, n) if n else []
            got = self._subtrees(subs)
            self._frontier = [(lv, got[(lv, ix)]) for lv, ix in subs]
            self._size = n

    def _subtrees(self, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of complete perfect subtrees, from stored nodes and leaf hashes (lock held)."""
        k = self.stride
        cache = self._cache
        out: dict[tuple[int, int], bytes] = {}
        need_nodes: set[int] = set()
        need_leaves: set[int] = set()
        plans: list[tuple[int, int, int, int]] = []  # (level, index, stored level, first child)
        for level, index in wanted:
            hit = cache.get((level, index))
            if hit is not None:
                out[(level, index)] = hit
                continue
            s = level - level % k
            first = index << (level - s)
            count = 1 << (level - s)
            plans.append((level, index, s, first))
            if s == 0:
                need_leaves.update(range(first, first + count))
            else:
                need_nodes.update(node_key(s, j) for j in range(first, first + count))
        nodes = self._fetch("SELECT id, hash FROM nodes WHERE id IN ({})", need_nodes)
        leaves = self._fetch("SELECT idx, leaf_hash FROM entries WHERE idx IN ({})", need_leaves)
        for level, index, s, first in plans:
            count = 1 << (level - s)
            try:
                if s == 0:
                    row = [leaves[j] for j in range(first, first + count)]
                else:
                    row = [nodes[node_key(s, j)] for j in range(first, first + count)]
            except KeyError:
                raise ProtocolError(
                    f"subtree ({level}, {index}) is not complete in the stored tree"
                ) from None
            while len(row) > 1:
                row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
            out[(level, index)] = row[0]
            if level >= _CACHE_MIN_LEVEL:
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[(level, index)] = row[0]
        return out

    def _fetch(self, sql: str, keys: set[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        ordered = sorted(keys)
        for i in range(0, len(ordered), _PARAMS_PER_QUERY):
            chunk = ordered[i : i + _PARAMS_PER_QUERY]
            q = sql.format(",".join("?" * len(chunk)))
            out.update(self._conn.execute(q, chunk).fetchall())
        return out

    def _proof(self, plan: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = [st for a, b in plan for st in perfect_subtrees(a, b)]
        got = self._subtrees(wanted)
        return build_proof(plan, lambda lv, ix: got[(lv, ix)])

    def _root_at(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        if size == self._size:
            return fold_subtrees([h for _, h in self._frontier])
        subs = perfect_subtrees(0, size)
        got = self._subtrees(subs)
        return fold_subtrees([got[st] for st in subs])

    def _check_size(self, size: int, what: str) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= self._size:
            raise MalformedError(f"{what} {size!r} out of range for log size {self._size}")

    # -- appends ----------------------------------------------------------------------------

    def append(self, kind: str, data: bytes) -> int:
        """Append one entry (idempotent: identical bytes return the existing index)."""
        return self.append_many([(kind, data)])[0]

    def append_many(self, items: Sequence[tuple[str, bytes]]) -> list[int]:
        """Append a batch in one transaction; returns each item's index.

        An item whose bytes are already in the log (or earlier in the batch) gets the existing
        index; the same bytes under a different kind raise :class:`ProtocolError`.  Either the
        whole batch is written or nothing is.
        """
        checked = [(_check_kind(k), _check_data(d)) for k, d in items]
        if not checked:
            return []
        hashes = [leaf_hash(d) for _, d in checked]
        ts = _now_ms()
        try:
            return self._append(checked, hashes, ts)
        except BaseException:
            self._size = -1  # in-memory state may be ahead of the database: reload it
            raise

    def _append(self, checked: list[tuple[str, bytes]], hashes: list[bytes], ts: int) -> list[int]:
        with self._tx():
            self._sync()
            known = self._lookup(hashes)
            n = self._size
            frontier = list(self._frontier)
            stride = self.stride
            rows: list[tuple[int, str, bytes, bytes, int]] = []
            new_nodes: list[tuple[int, bytes]] = []
            out: list[int] = []
            for (kind, data), h in zip(checked, hashes, strict=True):
                hit = known.get(h)
                if hit is not None:
                    if hit[1] != kind:
                        raise ProtocolError(
                            f"these bytes are already entry {hit[0]} of kind {hit[1]!r}, "
                            f"not {kind!r}"
                        )
                    out.append(hit[0])
                    continue
                known[h] = (n, kind)
                rows.append((n, kind, data, h, ts))
                out.append(n)
                level, acc = 0, h
                while frontier and frontier[-1][0] == level:
                    acc = node_hash(frontier.pop()[1], acc)
                    level += 1
                    if level % stride == 0:
                        new_nodes.append(((n << 6) | level, acc))
                frontier.append((level, acc))
                n += 1
            self._conn.executemany(
                "INSERT INTO entries(idx, kind, data, leaf_hash, ts) VALUES (?, ?, ?, ?, ?)", rows
            )
            if new_nodes:
                self._conn.executemany("INSERT INTO nodes(id, hash) VALUES (?, ?)", new_nodes)
            pending = self._pending
            for idx, kind, _, h, _ in rows:
                pending[h] = (idx, kind)
            if n - self._mark >= self.dedup_flush:
                self._flush_dedup(n)
            # Only after the statements succeeded; on failure append_many forces a reload.
            self._size, self._frontier = n, frontier
        return out

    def _flush_dedup(self, n: int) -> None:
        """Move the pending hashes into the dedup table as one sorted bulk insert (in the
        caller's transaction).  Sorted bulk inserts touch each index page about once, where
        per-batch random inserts would rewrite ~one page per entry on every commit."""
        keys = sorted((_prefix(h), idx) for h, (idx, _) in self._pending.items())
        self._conn.executemany("INSERT INTO dedup(prefix, idx) VALUES (?, ?)", keys)
        self._conn.execute("INSERT INTO dedup_mark(upto) VALUES (?)", (n,))
        self._pending, self._mark = {}, n

    def _lookup(self, hashes: Sequence[bytes]) -> dict[bytes, tuple[int, str]]:
        """Existing entries with these leaf hashes: pending ones from memory, older ones via
        the dedup table (8-byte prefix -> candidate indices -> full hash compare)."""
        out: dict[bytes, tuple[int, str]] = {}
        rest: set[bytes] = set()
        for h in hashes:
            hit = self._pending.get(h)
            if hit is not None:
                out[h] = hit
            else:
                rest.add(h)
        if not rest or self._mark == 0:
            return out
        cands = self._fetch_all(
            "SELECT idx FROM dedup WHERE prefix IN ({})", {_prefix(h) for h in rest}
        )
        if cands:
            q = "SELECT idx, kind, leaf_hash FROM entries WHERE idx IN ({})"
            for idx, kind, lh in self._fetch_all(q, {c[0] for c in cands}):
                if lh in rest:
                    out[bytes(lh)] = (idx, kind)
        return out

    def _fetch_all(self, sql: str, keys: set[int]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        ordered = sorted(keys)
        for i in range(0, len(ordered), _PARAMS_PER_QUERY):
            chunk = ordered[i : i + _PARAMS_PER_QUERY]
            rows += self._conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def index_of(self, data: bytes) -> int | None:
        """The index of an entry with exactly these bytes, or None."""
        h = leaf_hash(_check_data(data))
        with self._lock:
            hit = self._lookup([h]).get(h)
        return None if hit is None else hit[0]

    # -- reads ------------------------------------------------------------------------------

    def size(self) -> int:
        """Number of entries (re-read from the database)."""
        with self._lock:
            self._sync()
            return self._size

    def root(self, size: int | None = None) -> bytes:
        """RFC 9162 root of the first ``size`` entries (default: all)."""
        with self._lock:
            self._sync()
            n = self._size if size is None else size
            self._check_size(n, "tree size")
            return self._root_at(n)

    def entry(self, index: int) -> Entry:
        """One entry; raises :class:`MalformedError` if out of range."""
        got = self.entries(index, index + 1) if isinstance(index, int) and index >= 0 else []
        if not got:
            raise MalformedError(f"no entry {index!r}")
        return got[0]

    def entries(self, start: int, end: int) -> list[Entry]:
        """Entries ``start <= idx < end`` in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, kind, data, leaf_hash, ts FROM entries WHERE idx >= ? AND idx < ? "
                "ORDER BY idx",
                (start, end),
            ).fetchall()
        return [Entry(*r) for r in rows]

    def iter_entries(self, start: int = 0, batch: int = 4096) -> Iterator[Entry]:
        """Every entry from ``start`` on, read in batches."""
        pos = start
        while True:
            got = self.entries(pos, pos + batch)
            if not got:
                return
            yield from got
            pos = got[-1].index + 1

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash of entry ``index``."""
        return self.entry(index).leaf_hash

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` (default: all)."""
        with self._lock:
            self._sync()
            n = self._size if size is None else size
            self._check_size(n, "tree size")
            return self._proof(inclusion_plan(index, n))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2`` (default: all)."""
        with self._lock:
            self._sync()
            n = self._size if size2 is None else size2
            self._check_size(n, "size2")
            return self._proof(consistency_plan(size1, n))

    # -- checkpoints ------------------------------------------------------------------------

    def _last_checkpoint(self) -> StoredCheckpoint | None:
        row = self._conn.execute(
            "SELECT id, size, root, note, ts FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else StoredCheckpoint(*row)

    def sign_checkpoint(self) -> str:
        """Sign (and store) a checkpoint of the current tree; returns the note text.

        Refuses (:class:`InconsistentCheckpointError`) unless the current tree extends the last
        signed checkpoint, checked with a consistency proof from the stored tree.  Signing again
        at the same size returns the stored checkpoint with its cosignatures.
        """
        with self._tx():
            self._sync()
            n = self._size
            root = self._root_at(n)
            last = self._last_checkpoint()
            if last is not None:
                if n < last.size:
                    raise InconsistentCheckpointError(
                        f"log shrank from {last.size} to {n} entries", step="checkpoint"
                    )
                if n == last.size:
                    if root != last.root:
                        raise InconsistentCheckpointError(
                            f"root at size {n} differs from the signed checkpoint",
                            step="checkpoint",
                        )
                    return self._with_cosignatures(last)
                if last.size > 0:
                    proof = self._proof(consistency_plan(last.size, n))
                    try:
                        verify_consistency(last.size, n, last.root, root, proof)
                    except VerificationError as exc:
                        raise InconsistentCheckpointError(
                            f"tree of size {n} does not extend checkpoint {last.size}: {exc}",
                            step="checkpoint",
                        ) from None
            if self._signer is None:
                raise PolicyError("this store was opened without the log's signing key")
            note = sign_checkpoint(Checkpoint(self.origin, n, root), self._signer)
            self._conn.execute(
                "INSERT INTO checkpoints(size, root, note, ts) VALUES (?, ?, ?, ?)",
                (n, root, note, _now_ms()),
            )
            return note

    def _with_cosignatures(self, cp: StoredCheckpoint) -> str:
        lines = [
            r[0]
            for r in self._conn.execute(
                "SELECT line FROM cosignatures WHERE checkpoint_id = ? ORDER BY id", (cp.id,)
            )
        ]
        return cp.note + "".join(lines)

    def latest_checkpoint(self) -> str | None:
        """The last signed checkpoint note with every stored cosignature line, or None."""
        with self._lock:
            last = self._last_checkpoint()
            return None if last is None else self._with_cosignatures(last)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every signed checkpoint, oldest first (notes without cosignatures)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, size, root, note, ts FROM checkpoints ORDER BY id"
            ).fetchall()
        return [StoredCheckpoint(*r) for r in rows]

    def add_cosignature(
        self, note: str, witnesses: Sequence[CosignatureVerifier] | None = None
    ) -> int:
        """Store the cosignatures of ``note`` (a checkpoint this log signed); returns how many
        new ones were stored.

        Only cosignatures of known witnesses (``witnesses``, default: the store's) that verify
        are kept; lines of unknown keys are ignored, a bad cosignature of a known witness
        raises :class:`VerificationError`.
        """
        known = self.witnesses if witnesses is None else tuple(witnesses)
        cp, parsed = open_checkpoint(note, self.log_verifier, origin=self.origin)
        by_id = {(w.name, w.key_id): w for w in known}
        msg = parsed.text.encode("utf-8")
        good = []
        for sig in parsed.signatures:
            w = by_id.get((sig.name, sig.key_id))
            if w is None:
                continue
            w.verify(msg, sig.sig)
            good.append(sig)
        with self._tx():
            row = self._conn.execute(
                "SELECT id, size, root, note, ts FROM checkpoints WHERE size = ? AND root = ? "
                "ORDER BY id DESC LIMIT 1",
                (cp.size, cp.root),
            ).fetchone()
            if row is None or Note.parse(row[3]).text != parsed.text:
                raise ProtocolError(f"checkpoint of size {cp.size} was not signed by this log")
            stored = 0
            ts = _now_ms()
            for sig in good:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO cosignatures(checkpoint_id, name, key_id, line, ts) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row[0], sig.name, sig.key_id, sig.line(), ts),
                )
                stored += cur.rowcount
            return stored

    def bundle(self, index: int) -> ProofBundle:
        """An offline proof bundle for entry ``index`` against the latest signed checkpoint
        (with its cosignatures)."""
        with self._lock:
            self._sync()
            last = self._last_checkpoint()
            if last is None or not 0 <= index < last.size:
                raise ProtocolError(f"entry {index} is not covered by a signed checkpoint yet")
            note = self._with_cosignatures(last)
            proof = self._proof(inclusion_plan(index, last.size))
            data = self.entry(index).data
        return ProofBundle(index=index, entry=data, proof=tuple(proof), checkpoint=note)

    def verify_own_checkpoint(self, note: str) -> Checkpoint:
        """Parse a note and check the log's own signature on it (helper for services)."""
        cp, _ = open_checkpoint(note, self.log_verifier, origin=self.origin)
        return cp
