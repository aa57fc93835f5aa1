"""A data owner's own history of answered exact queries: the differencing defence.

Two exact answers over row sets ``A`` and ``B`` give, by subtraction, the statistic of the
symmetric difference ``A xor B``: ``age >= 30`` minus ``age > 30`` is the salary of whoever is
exactly 30.  The same holds for any two released *cells*: the sums of a group-by cell, of a
crosstab cell, of a histogram bin, of a Kaplan-Meier grid point's events.  Two queries over
the same selected rows whose cells differ by one row (``group_by`` two near-identical
columns, bins ``[0, 30)`` then ``[0, 31)``) release that row by subtraction.

Each owner therefore remembers, per dataset and per exact query it answered, the row sets
behind every cell it released (:class:`RowSets`: the overall selection, then each cell, as
bitmaps over its table's rows, zlib-compressed, kept on the owner's machine only: file mode
0600, never sent), and refuses an exact query if ANY of its row sets differs from ANY row set
recorded for an earlier query on that dataset by a non-empty symmetric difference of fewer
than ``min_cell_size`` rows (:func:`check_differencing`) -- whatever the statistic (it is
computed locally, before anything is encrypted).  The cells of one query are disjoint by
design and not compared with each other; a set equal to a recorded one (a repeat: it
releases this owner's rows again, nothing new -- its differences with the other recorded
sets were checked when they were answered) is not compared further, so the same query may
be asked twice however small its cells.  An empty set is a legal set: two empty sets differ
by nothing; an empty set and a one-row set differ by one row (another site's rows may be the
same in both cells, so the aggregate difference would be that one row).  The refusal names
the dataset and the earlier query, never a count.

Cost (bench/bench_history.py): packed bits, popcount of XOR, vectorised over the earlier
sets in chunks of bounded memory.  The history is never pruned -- forgetting an old set would
reopen the attack -- so it is capped instead: a dataset holds at most :data:`MAX_SETS` row
sets; an exact query that would go past is refused ("history full": ask with differential
privacy).  The cap counts ``1 + cells`` per query (a function of the public spec, not of the
data), so the refusal tells nothing about the rows.

Pure (no I/O): :func:`pack_rows` / :func:`unpack_rows` and :meth:`RowSets.to_bytes` /
:meth:`RowSets.from_bytes` are exact inverses; :func:`check_differencing` raises
:class:`PolicyError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.stats.base import LocalReport

__all__ = ["MAX_SETS", "RowSets", "pack_rows", "unpack_rows", "symmetric_difference",
           "check_differencing", "check_capacity", "released_sets", "set_count"]

_MAGIC = b"SLRS1"  # one row set (the selection of a query; histories written before cells)
_MAGIC2 = b"SLRS2"  # several row sets over one table
_MAX_ROWS = 1 << 32
#: row sets one dataset's history may hold (module docstring: refused, never pruned)
MAX_SETS = 20_000
#: bytes of XOR held at once while comparing (new sets x a chunk of earlier sets)
_CHUNK_BYTES = 1 << 24

Mask = npt.NDArray[np.bool_]
Packed = npt.NDArray[np.uint8]


def _nbytes(n: int) -> int:
    return (n + 7) // 8


def _inflate(data: bytes, size: int) -> bytes:
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, size + 1)
        if not d.eof or d.unused_data or d.unconsumed_tail:
            raise MalformedError("row set: trailing or truncated data")
    except zlib.error:
        raise MalformedError("row set: not zlib data") from None
    if len(raw) != size:
        raise MalformedError("row set: wrong length")
    return raw


@dataclass(frozen=True)
class RowSets:
    """``m`` row sets over a table of ``n`` rows: ``bits[i]`` is set ``i`` packed
    (``np.packbits``, big-endian bit order, zero padding), shape ``(m, ceil(n / 8))``."""

    bits: Packed
    n: int

    def __post_init__(self) -> None:
        b = self.bits
        if b.dtype != np.uint8 or b.ndim != 2 or b.shape[1] != _nbytes(self.n):
            raise MalformedError("row sets: bad shape")
        if not 0 <= self.n < _MAX_ROWS:
            raise MalformedError("row set too large")
        if self.n % 8 and b.size and np.any(b[:, -1] & np.uint8((1 << (8 - self.n % 8)) - 1)):
            raise MalformedError("row set: non-zero padding")

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @classmethod
    def of_masks(cls, masks: npt.ArrayLike) -> RowSets:
        """From one boolean mask (one set) or a 2-D array of them (one per row)."""
        m = np.asarray(masks, dtype=bool)
        if m.ndim == 1:
            m = m.reshape(1, -1)
        if m.ndim != 2:
            raise MalformedError("row sets: expected masks")
        return cls(np.packbits(m, axis=1).reshape(m.shape[0], _nbytes(m.shape[1])),
                   int(m.shape[1]))

    @classmethod
    def of_cells(cls, selected: Mask, cells: npt.NDArray[np.int64] | None,
                 n_cells: int) -> RowSets:
        """The sets a query's release covers: the overall ``selected`` rows, then cell
        ``c`` (the rows with ``cells == c``) for every ``c < n_cells`` -- empty cells
        included (``1 + n_cells`` sets, a function of the spec).  ``cells`` None: the
        selection alone (a statistic without a cell structure)."""
        sel = np.asarray(selected, dtype=bool).reshape(-1)
        n = int(sel.size)
        if n >= _MAX_ROWS:
            raise MalformedError("row set too large")
        if cells is None:
            return cls.of_masks(sel)
        lab = np.asarray(cells, dtype=np.int64).reshape(-1)
        if lab.size != n or n_cells < 1 or (n and (int(lab.max()) >= n_cells
                                                  or int(lab.min()) < -1)):
            raise MalformedError("row sets: cells do not match the selection")
        if np.any((lab >= 0) & ~sel):
            raise MalformedError("row sets: a cell holds an unselected row")
        out = np.zeros((1 + n_cells, _nbytes(n)), dtype=np.uint8)
        out[0] = np.packbits(sel)
        rows = np.flatnonzero(lab >= 0)
        if rows.size:
            c = lab[rows]
            # set bit (row % 8, big-endian) of byte row // 8 in line 1 + c; rows are
            # distinct, so each (line, byte, bit) is hit once: OR by accumulation
            np.bitwise_or.at(out, (1 + c, rows // 8),
                             (np.uint8(0x80) >> (rows % 8).astype(np.uint8)).astype(np.uint8))
        return cls(out, n)

    def to_bytes(self) -> bytes:
        """``magic || u64 rows || u32 sets || zlib(packed sets, row-major)``."""
        return (_MAGIC2 + self.n.to_bytes(8, "big") + len(self).to_bytes(4, "big")
                + zlib.compress(self.bits.tobytes(), 6))

    @classmethod
    def from_bytes(cls, blob: bytes) -> RowSets:
        """Strict inverse of :meth:`to_bytes`; a one-set blob of :func:`pack_rows` (a
        history written before cells were recorded) reads as one set."""
        if isinstance(blob, bytes) and blob.startswith(_MAGIC):
            return cls.of_masks(unpack_rows(blob))
        if not isinstance(blob, bytes) or len(blob) < len(_MAGIC2) + 12 or not blob.startswith(
                _MAGIC2):
            raise MalformedError("row sets: bad header")
        h = len(_MAGIC2)
        n = int.from_bytes(blob[h:h + 8], "big")
        m = int.from_bytes(blob[h + 8:h + 12], "big")
        if n >= _MAX_ROWS or m > MAX_SETS + (1 << 16):
            raise MalformedError("row sets: length too large")
        raw = _inflate(blob[h + 12:], m * _nbytes(n))
        bits = np.frombuffer(raw, dtype=np.uint8).reshape(m, _nbytes(n)).copy()
        return cls(bits, n)


def set_count(blob: bytes) -> int:
    """The number of sets in a stored blob, from its header alone."""
    if blob.startswith(_MAGIC):
        return 1
    if len(blob) < len(_MAGIC2) + 12 or not blob.startswith(_MAGIC2):
        raise MalformedError("row sets: bad header")
    return int.from_bytes(blob[len(_MAGIC2) + 8:len(_MAGIC2) + 12], "big")


def released_sets(report: LocalReport) -> RowSets:
    """The row sets behind every cell a query's local report says it releases (the owner's
    history records exactly these): the selection, then each cell."""
    if report.selected is None:
        raise PolicyError("no row selection")
    return RowSets.of_cells(report.selected, report.cells, report.n_cells)


def pack_rows(mask: Mask) -> bytes:
    """``magic || u64 length || zlib(packbits(mask))`` (one set)."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size >= _MAX_ROWS:
        raise MalformedError("row set too large")
    return _MAGIC + m.size.to_bytes(8, "big") + zlib.compress(np.packbits(m).tobytes(), 9)


def unpack_rows(blob: bytes) -> Mask:
    """Strict inverse of :func:`pack_rows` (MalformedError for anything else)."""
    if not isinstance(blob, bytes) or len(blob) < len(_MAGIC) + 8 or not blob.startswith(_MAGIC):
        raise MalformedError("row set: bad header")
    n = int.from_bytes(blob[len(_MAGIC):len(_MAGIC) + 8], "big")
    if n >= _MAX_ROWS:
        raise MalformedError("row set: length too large")
    raw = _inflate(blob[len(_MAGIC) + 8:], _nbytes(n))
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
    if bits[n:].any():
        raise MalformedError("row set: non-zero padding")
    return np.asarray(bits[:n], dtype=bool)


def symmetric_difference(a: Mask, b: Mask) -> int:
    """``|A xor B|``; rows past the end of the shorter table count as unselected there."""
    n = max(a.size, b.size)
    pa = np.zeros(n, dtype=bool)
    pb = np.zeros(n, dtype=bool)
    pa[:a.size] = a
    pb[:b.size] = b
    return int(np.count_nonzero(pa ^ pb))


def _as_sets(x: Mask | RowSets) -> RowSets:
    return x if isinstance(x, RowSets) else RowSets.of_masks(x)


def _widen(bits: Packed, width: int) -> Packed:
    """Pad packed sets with zero bytes (rows past the end of a shorter table: unselected)."""
    if bits.shape[1] == width:
        return bits
    out = np.zeros((bits.shape[0], width), dtype=np.uint8)
    out[:, :bits.shape[1]] = bits
    return out


def check_capacity(dataset: str, stored: int, new: int) -> None:
    """Refuse a query whose ``new`` sets would take the dataset's history past
    :data:`MAX_SETS` (``stored`` already held): the history is never pruned."""
    if stored + new > MAX_SETS:
        raise PolicyError(
            f"dataset {dataset}: this owner's history of exact answers is full, or this query "
            "releases more cells than it can hold (it is never pruned: forgetting would reopen "
            "differencing attacks); ask with differential privacy")


def check_differencing(dataset: str, query_id: str, rows: Mask | RowSets,
                       earlier: Iterable[tuple[str, Mask | RowSets]],
                       min_cell_size: int) -> None:
    """Raise :class:`PolicyError` if any set of ``rows`` differs from any set recorded for
    an earlier answered query by ``0 < |A xor B| < min_cell_size`` (the same query id is
    not compared with itself; the new query's own sets are not compared with each other; a
    set equal to a recorded one -- a repeat, which releases nothing new -- is not compared
    further)."""
    new = _as_sets(rows)
    if len(new) == 0 or min_cell_size <= 1:
        return
    ids: list[str] = []
    owner: list[int] = []
    parts: list[RowSets] = []
    for qid, prev in earlier:
        if qid == query_id:
            continue
        p = _as_sets(prev)
        ids.append(qid)
        owner.extend([len(ids) - 1] * len(p))
        parts.append(p)
    if not parts:
        return
    width = max(new.bits.shape[1], *(p.bits.shape[1] for p in parts))
    a = _widen(new.bits, width)
    old = np.concatenate([_widen(p.bits, width) for p in parts], axis=0)
    step = max(1, _CHUNK_BYTES // max(1, len(new) * width))
    repeat = np.zeros(len(new), dtype=bool)  # the set is already recorded (difference 0)
    near = np.full(len(new), -1, dtype=np.int64)  # first earlier set 1..k-1 rows away
    for lo in range(0, old.shape[0], step):
        chunk = old[lo:lo + step]
        d = np.bitwise_count(a[:, None, :] ^ chunk[None, :, :]).sum(axis=2, dtype=np.int64)
        repeat |= (d == 0).any(axis=1)
        close = (d > 0) & (d < min_cell_size)
        first = np.where(close.any(axis=1), lo + close.argmax(axis=1), -1)
        near = np.where(near < 0, first, near)
    # A set equal to a recorded one releases this owner's rows again, nothing new: its
    # differences with the other recorded sets were checked when they were answered (or
    # are cells of one query), so only sets never released before are compared.
    for i in np.flatnonzero((near >= 0) & ~repeat):
        qid = ids[owner[int(near[i])]]
        raise PolicyError(
            f"dataset {dataset}: the rows this query selects (or one of its released "
            f"cells) differ from those of the earlier exact query {qid[:16]}... (or one "
            "of its cells) by fewer than min_cell_size rows (a differencing attack could "
            "isolate them); widen the filter or the cells, or ask with differential "
            "privacy")
