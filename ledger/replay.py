"""Full replay of a log: recompute the RFC 9162 tree from every entry's bytes.

Procedure (each failure raises :class:`ReplayError` naming the step and, where it can be
pinned, the first bad entry index):

1. entries are contiguous from 0 and each stored leaf hash equals ``SHA-256(0x00 || data)``
   (first mismatch reported by index);
2. every stored checkpoint carries a valid log signature and its body matches the stored
   (size, root);
3. the recomputed root at each checkpoint size equals the checkpoint root (when it does not,
   the first bad index is in ``[previous good checkpoint size, size)``: reported as a range);
4. successive checkpoints never shrink, and a consistency proof generated from the stored
   interior nodes verifies between them (this also exercises the stored ``nodes`` table);
5. every stored interior node equals its recomputed hash (``check_nodes``), and the root
   served from stored nodes equals the recomputed root of the whole log.

:func:`replay` runs all five on a :class:`~statledger.ledger.store.LedgerStore`;
:func:`replay_log` runs steps 1-4 on entries and checkpoint notes read from anywhere (the
auditor, ``statledger audit``, reading a ledger file with read-only SQL or a ledger node over
HTTP), with the same tree rebuild and the same checks.

The tree is rebuilt in aligned blocks of ``2**block_level`` leaves reduced level by level,
so the cost is one SHA-256 per leaf and about one per interior node.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from statledger.ledger.checkpoint import Checkpoint, open_checkpoint
from statledger.ledger.merkle import (
    EMPTY_ROOT,
    NODE_PREFIX,
    fold_subtrees,
    perfect_subtrees,
    verify_consistency,
)
from statledger.ledger.note import Note, NoteVerifier
from statledger.ledger.store import LedgerStore, node_key
from statledger.proofs.errors import StatledgerError, VerificationError

__all__ = ["ReplayError", "ReplayReport", "replay", "replay_log"]

_LEAF = b"\x00"


class ReplayError(VerificationError):
    """Replay found a bad log; ``index`` is the first bad entry index when known."""

    def __init__(
        self,
        reason: str,
        *,
        step: str,
        index: int | None = None,
        checkpoint_size: int | None = None,
    ) -> None:
        self.index = index
        self.checkpoint_size = checkpoint_size
        where = "" if index is None else f" (first bad index {index})"
        super().__init__(reason + where, step=step)


@dataclass(frozen=True)
class ReplayReport:
    """What a successful replay checked."""

    size: int
    root: bytes
    checkpoints: int
    seconds: float

    @property
    def entries_per_second(self) -> float:
        """Replay throughput."""
        return self.size / self.seconds if self.seconds > 0 else float("inf")


def _reduce(
    hashes: list[bytes], start: int = 0, stride: int = 0, out: list[tuple[int, bytes]] | None = None
) -> bytes:
    """MTH of a perfect block (length a power of two) starting at leaf ``start``; records the
    subtrees at levels that are multiples of ``stride`` in ``out`` as (node key, hash)."""
    sha = hashlib.sha256
    level = 0
    while len(hashes) > 1:
        it = iter(hashes)
        hashes = [sha(NODE_PREFIX + a + b).digest() for a, b in zip(it, it, strict=True)]
        level += 1
        if out is not None and level % stride == 0:
            first = start >> level
            out.extend((node_key(level, first + j), h) for j, h in enumerate(hashes))
    return hashes[0]


class _Rebuilder:
    """Streaming tree: full blocks of ``2**level`` leaves go into a frontier of subtrees."""

    def __init__(self, block_level: int, stride: int = 0) -> None:
        self.block_level = block_level
        self.block = 1 << block_level
        self.frontier: list[tuple[int, bytes]] = []
        self.buf: list[bytes] = []
        self.size = 0
        self.stride = stride
        self.nodes: list[tuple[int, bytes]] | None = [] if stride else None

    def add(self, leaf_hashes: list[bytes]) -> None:
        pos = 0
        while pos < len(leaf_hashes):
            take = min(self.block - len(self.buf), len(leaf_hashes) - pos)
            self.buf.extend(leaf_hashes[pos : pos + take])
            pos += take
            self.size += take
            if len(self.buf) == self.block:
                start = self.size - self.block
                self._push(self.block_level, _reduce(self.buf, start, self.stride, self.nodes))
                self.buf = []

    def _push(self, level: int, h: bytes) -> None:
        fr = self.frontier
        while fr and fr[-1][0] == level:
            h = hashlib.sha256(NODE_PREFIX + fr.pop()[1] + h).digest()
            level += 1
            if self.nodes is not None and level % self.stride == 0:
                self.nodes.append((((self.size - 1) << 6) | level, h))
        fr.append((level, h))

    def finish_nodes(self) -> list[tuple[int, bytes]]:
        """Every stored-level subtree completed so far (including the partial block)."""
        if self.nodes is None:
            return []
        extra: list[tuple[int, bytes]] = []
        if self.buf:
            start = self.size - len(self.buf)
            for level, index in perfect_subtrees(0, len(self.buf)):
                lo = index << level
                _reduce(self.buf[lo : lo + (1 << level)], start + lo, self.stride, extra)
            # subtrees below the block level that complete inside the partial block: only the
            # aligned perfect ones are complete; _reduce recorded exactly those
        return sorted(self.nodes + extra)

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        parts = [h for _, h in self.frontier]
        if self.buf:
            for level, index in perfect_subtrees(0, len(self.buf)):
                parts.append(_reduce(self.buf[index << level : (index + 1) << level]))
        return fold_subtrees(parts)


@dataclass(frozen=True)
class _Stop:
    """A signed checkpoint to compare with the recomputed tree."""

    label: str
    size: int
    root: bytes


def _open_signed(
    note: str | bytes | Note, log_verifier: NoteVerifier, origin: str, label: str, size: int | None
) -> Checkpoint:
    """Step 2: the checkpoint carries the log's signature; returns its body."""
    try:
        body, _ = open_checkpoint(note, log_verifier, origin=origin)
    except StatledgerError as exc:
        where = "" if size is None else f" (size {size})"
        raise ReplayError(
            f"{label}{where}: {exc}", step="replay step 2", checkpoint_size=size
        ) from None
    return body


class _Replay:
    """Steps 1 and 3 (first half): leaf hashes in index order into the tree, recording the
    root at every checkpoint size."""

    def __init__(self, stop_sizes: Iterable[int], tree: _Rebuilder) -> None:
        sizes = set(stop_sizes)
        self.tree = tree
        self.stops = sorted(s for s in sizes if s > 0)
        self.si = 0
        self.recomputed: dict[int, bytes] = {0: EMPTY_ROOT} if 0 in sizes else {}

    def add(self, rows: Sequence[tuple[int, bytes]], stored: Sequence[bytes] | None = None) -> None:
        """Append a batch of ``(index, data)``; ``stored`` leaf hashes are compared (step 1)."""
        if not rows:
            return
        base = self.tree.size
        if rows[0][0] != base or rows[-1][0] != base + len(rows) - 1:
            for off, row in enumerate(rows):
                if row[0] != base + off:
                    raise ReplayError(
                        f"entry index {row[0]} where {base + off} was expected",
                        step="replay step 1",
                        index=base + off,
                    )
        sha = hashlib.sha256
        hs = [sha(_LEAF + d).digest() for _, d in rows]
        if stored is not None and hs != list(stored):  # step 1
            off = next(i for i, (a, b) in enumerate(zip(hs, stored, strict=True)) if a != b)
            raise ReplayError(
                "stored leaf hash does not match the entry bytes",
                step="replay step 1",
                index=base + off,
            )
        pos = 0
        while self.si < len(self.stops) and self.stops[self.si] <= base + len(hs):
            cut = self.stops[self.si] - base
            self.tree.add(hs[pos:cut])
            pos = cut
            self.recomputed[self.stops[self.si]] = self.tree.root()
            self.si += 1
        self.tree.add(hs[pos:])

    def finish(self) -> dict[int, bytes]:
        """The recomputed root at every checkpoint size (step 3: none beyond the log)."""
        if self.si < len(self.stops):
            raise ReplayError(
                f"checkpoint of size {self.stops[self.si]} but the log has {self.tree.size} "
                "entries",
                step="replay step 3",
                index=self.tree.size,
                checkpoint_size=self.stops[self.si],
            )
        return self.recomputed


def _check_stops(
    stops: Sequence[_Stop],
    recomputed: dict[int, bytes],
    consistency: Callable[[int, int], list[bytes]] | None,
) -> None:
    """Step 3: roots at checkpoint sizes; step 4: order (and, given ``consistency``, a
    consistency proof) between successive checkpoints."""
    good = 0
    prev: _Stop | None = None
    for cp in stops:
        if recomputed[cp.size] != cp.root:
            raise ReplayError(
                f"{cp.label} root differs from the tree recomputed at size {cp.size}; "
                f"bad entry in [{good}, {cp.size})",
                step="replay step 3",
                index=good,
                checkpoint_size=cp.size,
            )
        if prev is not None:
            if cp.size < prev.size:
                raise ReplayError(
                    f"{cp.label} (size {cp.size}) is smaller than the previous ({prev.size})",
                    step="replay step 4",
                    checkpoint_size=cp.size,
                )
            if consistency is not None and 0 < prev.size < cp.size:
                try:
                    proof = consistency(prev.size, cp.size)
                    verify_consistency(prev.size, cp.size, prev.root, cp.root, proof)
                except StatledgerError as exc:
                    raise ReplayError(
                        f"checkpoints {prev.size} -> {cp.size}: {exc}",
                        step="replay step 4",
                        checkpoint_size=cp.size,
                    ) from None
        good = max(good, cp.size)
        prev = cp


def replay(
    store: LedgerStore,
    *,
    verify_signatures: bool = True,
    check_nodes: bool = True,
    batch: int = 8192,
    block_level: int = 10,
) -> ReplayReport:
    """Replay the whole log in ``store``; returns a report or raises :class:`ReplayError`.

    ``check_nodes`` also compares every stored interior node with its recomputed hash
    (step 5), pinning a tampered node to the first leaf it covers.
    """
    t0 = time.perf_counter()
    cps = store.checkpoints()
    # step 2: signatures and bodies (independent of the entries)
    for cp in cps:
        if not verify_signatures:
            break
        body = _open_signed(cp.note, store.log_verifier, store.origin, f"checkpoint {cp.id}",
                            cp.size)
        if (body.size, body.root) != (cp.size, bytes(cp.root)):
            raise ReplayError(
                f"checkpoint {cp.id}: signed body does not match stored size/root",
                step="replay step 2",
                checkpoint_size=cp.size,
            )
    tree = _Rebuilder(block_level, store.stride if check_nodes else 0)
    run = _Replay((cp.size for cp in cps), tree)
    conn = store._conn  # read through the store's connection, under its lock
    with store._lock:
        cur = conn.execute("SELECT idx, data, leaf_hash FROM entries ORDER BY idx")
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            run.add([(i, d) for i, d, _ in rows], [bytes(lh) for _, _, lh in rows])
    recomputed = run.finish()
    final_root = tree.root()
    _check_stops(
        [_Stop(f"checkpoint {cp.id}", cp.size, bytes(cp.root)) for cp in cps],
        recomputed,
        store.consistency_proof,
    )
    # step 5: the stored interior nodes agree with the recomputation
    if check_nodes:
        _check_nodes(store, tree.finish_nodes())
    served = store.root(tree.size) if tree.size <= store.size() else None
    if served != final_root:
        raise ReplayError(
            "root served from stored interior nodes differs from the recomputed root",
            step="replay step 5",
        )
    return ReplayReport(tree.size, final_root, len(cps), time.perf_counter() - t0)


def replay_log(
    origin: str,
    log_verifier: NoteVerifier,
    entries: Iterable[tuple[int, bytes]],
    checkpoints: Sequence[str | bytes | Note],
    *,
    batch: int = 8192,
    block_level: int = 10,
) -> ReplayReport:
    """Replay a log read from anywhere (read-only SQL on a ledger file, a ledger node's HTTP
    API) with the same steps as :func:`replay`, minus the store's own bookkeeping.

    ``entries`` are ``(index, data)`` in index order; ``checkpoints`` the signed checkpoint
    notes in the order they were signed (cosignature lines may be attached; they are not
    looked at here).  Steps: (1) indices contiguous from 0; (2) every checkpoint carries the
    log's signature (``log_verifier``, origin ``origin``); (3) the root recomputed at each
    checkpoint's size equals its root, and no checkpoint is beyond the log; (4) sizes never
    shrink.  Two roots recomputed from the same entries are consistent by construction, so
    step 4 needs no consistency proof here; the stored leaf hashes and interior nodes (steps
    1 and 5 of a :class:`LedgerStore`) are not part of what such a reader sees.
    """
    t0 = time.perf_counter()
    stops: list[_Stop] = []
    for n, note in enumerate(checkpoints, 1):
        body = _open_signed(note, log_verifier, origin, f"checkpoint {n}", None)
        stops.append(_Stop(f"checkpoint {n}", body.size, body.root))
    tree = _Rebuilder(block_level)
    run = _Replay((s.size for s in stops), tree)
    rows: list[tuple[int, bytes]] = []
    for row in entries:
        rows.append(row)
        if len(rows) >= batch:
            run.add(rows)
            rows = []
    run.add(rows)
    recomputed = run.finish()
    _check_stops(stops, recomputed, None)
    return ReplayReport(tree.size, tree.root(), len(stops), time.perf_counter() - t0)


def _check_nodes(store: LedgerStore, want: list[tuple[int, bytes]]) -> None:
    with store._lock:
        got = store._conn.execute("SELECT id, hash FROM nodes ORDER BY id").fetchall()
    for k in range(max(len(got), len(want))):
        g = got[k] if k < len(got) else None
        w = want[k] if k < len(want) else None
        if g is None or w is None or g[0] != w[0] or bytes(g[1]) != w[1]:
            key = min(x[0] for x in (g, w) if x is not None)
            level, last = key & 63, key >> 6
            first = last + 1 - (1 << level)
            raise ReplayError(
                f"stored interior node (level {level}, leaves [{first}, {last + 1})) does not "
                "match the recomputed tree",
                step="replay step 5",
                index=first,
            )
