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

The tree is rebuilt in aligned blocks of ``2**block_level`` leaves reduced level by level,
so the cost is one SHA-256 per leaf and about one per interior node.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import (
    EMPTY_ROOT,
    NODE_PREFIX,
    fold_subtrees,
    perfect_subtrees,
    verify_consistency,
)
from statledger.ledger.store import LedgerStore, StoredCheckpoint, node_key
from statledger.proofs.errors import StatledgerError, VerificationError

__all__ = ["ReplayError", "ReplayReport", "replay"]

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
    stops: dict[int, list[StoredCheckpoint]] = {}
    for cp in cps:
        stops.setdefault(cp.size, []).append(cp)
    # step 2: signatures and bodies (independent of the entries)
    for cp in cps:
        if not verify_signatures:
            break
        try:
            body, _ = open_checkpoint(cp.note, store.log_verifier, origin=store.origin)
        except StatledgerError as exc:
            raise ReplayError(
                f"checkpoint {cp.id} (size {cp.size}): {exc}",
                step="replay step 2",
                checkpoint_size=cp.size,
            ) from None
        if (body.size, body.root) != (cp.size, bytes(cp.root)):
            raise ReplayError(
                f"checkpoint {cp.id}: signed body does not match stored size/root",
                step="replay step 2",
                checkpoint_size=cp.size,
            )
    tree = _Rebuilder(block_level, store.stride if check_nodes else 0)
    recomputed: dict[int, bytes] = {}
    if 0 in stops:
        recomputed[0] = EMPTY_ROOT
    stop_sizes = sorted(s for s in stops if s > 0)
    si = 0
    sha = hashlib.sha256
    conn = store._conn  # read through the store's connection, under its lock
    with store._lock:
        cur = conn.execute("SELECT idx, data, leaf_hash FROM entries ORDER BY idx")
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            base = tree.size
            if rows[0][0] != base or rows[-1][0] != base + len(rows) - 1:
                for off, row in enumerate(rows):
                    if row[0] != base + off:
                        raise ReplayError(
                            f"entry index {row[0]} where {base + off} was expected",
                            step="replay step 1",
                            index=base + off,
                        )
            hs = [sha(_LEAF + d).digest() for _, d, _ in rows]
            stored = [bytes(lh) for _, _, lh in rows]
            if hs != stored:  # step 1
                off = next(i for i, (a, b) in enumerate(zip(hs, stored, strict=True)) if a != b)
                raise ReplayError(
                    "stored leaf hash does not match the entry bytes",
                    step="replay step 1",
                    index=base + off,
                )
            pos = 0
            while si < len(stop_sizes) and stop_sizes[si] <= base + len(hs):
                cut = stop_sizes[si] - base
                tree.add(hs[pos:cut])
                pos = cut
                recomputed[stop_sizes[si]] = tree.root()
                si += 1
            tree.add(hs[pos:])
    if si < len(stop_sizes):
        raise ReplayError(
            f"checkpoint of size {stop_sizes[si]} but the log has {tree.size} entries",
            step="replay step 3",
            index=tree.size,
            checkpoint_size=stop_sizes[si],
        )
    final_root = tree.root()
    # step 3: roots at checkpoint sizes; step 4: order and consistency between successive ones
    good = 0
    prev: StoredCheckpoint | None = None
    for cp in cps:
        if recomputed[cp.size] != bytes(cp.root):
            raise ReplayError(
                f"checkpoint {cp.id} root differs from the tree recomputed at size {cp.size}; "
                f"bad entry in [{good}, {cp.size})",
                step="replay step 3",
                index=good,
                checkpoint_size=cp.size,
            )
        if prev is not None:
            if cp.size < prev.size:
                raise ReplayError(
                    f"checkpoint {cp.id} (size {cp.size}) is smaller than the previous "
                    f"({prev.size})",
                    step="replay step 4",
                    checkpoint_size=cp.size,
                )
            if 0 < prev.size < cp.size:
                try:
                    proof = store.consistency_proof(prev.size, cp.size)
                    verify_consistency(prev.size, cp.size, bytes(prev.root), bytes(cp.root), proof)
                except StatledgerError as exc:
                    raise ReplayError(
                        f"checkpoints {prev.size} -> {cp.size}: {exc}",
                        step="replay step 4",
                        checkpoint_size=cp.size,
                    ) from None
        good = max(good, cp.size)
        prev = cp
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
