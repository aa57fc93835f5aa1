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
design and not compared with each other.  There is no exemption for a set equal to a
recorded one: a recorded set may never have been released (a query's selection under its
group-by cells, a cell the gate withheld), so asking it again can be the second half of a
difference (``sum(bmi) group_by g`` with a one-row cell B withheld and A released, then a
plain ``sum(bmi)``: the plain sum minus cell A is B's row).  The cost: re-asking an exact
query whose cells are small (another query id) is refused; the SAME query id (a resumed
request) is not a new query and is not compared (the caller records each id once).  An empty
set is a legal set: two empty sets differ by nothing; an empty set and a one-row set differ
by one row (another site's rows may be the same in both cells, so the aggregate difference
would be that one row).  The refusal names the dataset and the earlier query, never a count.

Capacity.  The history is never pruned -- forgetting an old set would reopen the attack -- so
it is capped instead: a dataset holds at most :data:`MAX_SETS` row sets, and one exact query
releases at most :data:`MAX_CELLS_PER_QUERY` cells (:func:`check_capacity`; both counted from
the public spec, ``1 + cells`` sets per query, never from the data, so a refusal tells nothing
about the rows).  A querier can still fill the cap with about ``MAX_SETS /
MAX_CELLS_PER_QUERY`` large exact queries, after which every exact answer on the dataset is
refused (DP answers go on); the owner's exact quota (policy ``exact = {max, period_days}``)
bounds how fast that can happen.

Cost (bench/bench_history.py): packed bits, popcount of XOR.  The earlier records are
streamed: :func:`stream_sets` inflates one stored record a bounded piece at a time, and
:func:`check_differencing` compares the new sets with each piece as it arrives (blocks of at
most :data:`_CHUNK_BYTES` bytes of XOR), so the working set stays bounded whatever the size of
the history; it stops at the first near set.

Pure (no I/O): :func:`pack_rows` / :func:`unpack_rows` and :meth:`RowSets.to_bytes` /
:meth:`RowSets.from_bytes` are exact inverses; :func:`stream_sets` reads a record through a
``read(size)`` callable; everything raises :class:`MalformedError` on a damaged record and
:class:`PolicyError` for a refusal.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.stats.base import LocalReport

__all__ = ["MAX_SETS", "MAX_CELLS_PER_QUERY", "RowSets", "pack_rows", "unpack_rows",
           "symmetric_difference", "check_differencing", "check_capacity", "released_sets",
           "set_count", "stream_sets"]

_MAGIC = b"SLRS1"  # one row set (the selection of a query; histories written before cells)
_MAGIC2 = b"SLRS2"  # several row sets over one table
_MAX_ROWS = 1 << 32
#: row sets one dataset's history may hold (module docstring: refused, never pruned)
MAX_SETS = 20_000
#: cells one exact query may release (module docstring: the history's capacity)
MAX_CELLS_PER_QUERY = 1024
#: sets one stored record may hold when read back (anything larger is a damaged record)
_MAX_RECORD_SETS = 1 << 16
#: bytes of XOR held at once while comparing, and of packed sets per streamed piece
_CHUNK_BYTES = 1 << 24
#: compressed bytes read from a stored record at a time
_READ_BYTES = 1 << 20

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
        if not isinstance(blob, bytes):
            raise MalformedError("row sets: bad header")
        pieces = list(stream_sets(io.BytesIO(blob).read))
        n = pieces[0].n
        return cls(np.concatenate([p.bits for p in pieces], axis=0), n)


def _header(head: bytes) -> tuple[int, int, int]:
    """``(rows, sets, header length)`` of a stored record (either format), strictly."""
    if head.startswith(_MAGIC):
        h, m = len(_MAGIC) + 8, 1
    elif head.startswith(_MAGIC2):
        h = len(_MAGIC2) + 12
        m = int.from_bytes(head[h - 4:h], "big")
    else:
        raise MalformedError("row sets: bad header")
    if len(head) < h:
        raise MalformedError("row sets: bad header")
    n = int.from_bytes(head[len(_MAGIC):len(_MAGIC) + 8], "big")
    if n >= _MAX_ROWS or m > _MAX_RECORD_SETS:
        raise MalformedError("row sets: length too large")
    if m < 1:
        raise MalformedError("row sets: a record without a set")
    return n, m, h


def set_count(blob: bytes) -> int:
    """The number of sets in a stored record, from its header alone (its first 17 bytes
    suffice); :class:`MalformedError` for a header no record of this module has."""
    return _header(blob)[1]


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    out = b""
    while len(out) < size:
        part = read(size - len(out))
        if not part:
            break
        out += part
    return out


def stream_sets(read: Callable[[int], bytes],
                piece_bytes: int = _CHUNK_BYTES // 2) -> Iterator[RowSets]:
    """The sets of one stored record (:meth:`RowSets.to_bytes` or :func:`pack_rows`), read
    through ``read(size)`` (a file's or an SQLite blob's ``read``) and inflated a piece of
    at most ``piece_bytes`` packed bytes (at least one set) at a time: memory bounded by
    the piece, not by the record.  As strict as :meth:`RowSets.from_bytes` (which calls it):
    a bad header, a truncated or over-long stream, trailing bytes or non-zero padding raise
    :class:`MalformedError` -- after the pieces before the damage were yielded, so a caller
    that acts on the pieces must treat the error as failing the whole record."""
    head = _read_exactly(read, len(_MAGIC))
    if head not in (_MAGIC, _MAGIC2):
        raise MalformedError("row sets: bad header")
    head += _read_exactly(read, 8 if head == _MAGIC else 12)
    n, m, _ = _header(head)
    width = _nbytes(n)
    per = max(1, piece_bytes // max(1, width))
    d = zlib.decompressobj()
    pending = b""  # compressed input not yet given to the inflater

    def inflate(out: Packed) -> int:
        """Fill ``out`` (flat) from the stream, ``_READ_BYTES`` at most per step; the
        number of bytes written.  An empty ``out`` probes for one more byte."""
        nonlocal pending
        pos, size = 0, int(out.size)
        try:
            while pos < size or size == 0:
                if d.eof:
                    break
                if not pending:
                    pending = d.unconsumed_tail or read(_READ_BYTES)
                    if not pending:
                        break
                got = d.decompress(pending, max(1, min(size - pos, _READ_BYTES)))
                pending = d.unconsumed_tail
                if size == 0:
                    if got:
                        return 1
                    continue
                out[pos:pos + len(got)] = np.frombuffer(got, dtype=np.uint8)
                pos += len(got)
        except zlib.error:
            raise MalformedError("row set: not zlib data") from None
        return pos

    done = 0
    while done < m:
        k = min(per, m - done)
        buf = np.empty(k * width, dtype=np.uint8)
        if width and inflate(buf) != k * width:
            raise MalformedError("row set: wrong length")
        yield RowSets(buf.reshape(k, width), n)
        done += k
    if inflate(np.empty(0, dtype=np.uint8)) or not d.eof or d.unused_data or pending or read(1):
        raise MalformedError("row set: trailing or truncated data")


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
    """Refuse a query of ``new`` sets (``1 + cells``: a function of the spec) with more than
    :data:`MAX_CELLS_PER_QUERY` cells, or one that would take the dataset's history past
    :data:`MAX_SETS` (``stored`` already held): the history is never pruned."""
    if new - 1 > MAX_CELLS_PER_QUERY:
        raise PolicyError(
            f"dataset {dataset}: too many released cells for an exact answer (at most "
            f"{MAX_CELLS_PER_QUERY} per query); ask with differential privacy, or with fewer "
            "cells")
    if stored + new > MAX_SETS:
        raise PolicyError(
            f"dataset {dataset}: this owner's history of exact answers is full (it is never "
            "pruned: forgetting would reopen differencing attacks); ask with differential "
            "privacy")


def _near(a: Packed, b: Packed, k: int) -> bool:
    """Whether some ``|a_i xor b_j|`` lies in ``1 .. k - 1`` (packed sets of one width),
    in blocks of at most :data:`_CHUNK_BYTES` bytes of XOR (rows of ``a``, rows of ``b``,
    and byte columns when one set alone is wider)."""
    width = int(a.shape[1])
    cols = max(1, min(width, _CHUNK_BYTES))
    ba = max(1, min(int(a.shape[0]), _CHUNK_BYTES // cols))
    bb = max(1, _CHUNK_BYTES // (ba * cols))
    for i in range(0, a.shape[0], ba):
        ai = a[i:i + ba]
        for j in range(0, b.shape[0], bb):
            bj = b[j:j + bb]
            d = np.zeros((ai.shape[0], bj.shape[0]), dtype=np.int64)
            for c in range(0, width, cols):
                x = ai[:, None, c:c + cols] ^ bj[None, :, c:c + cols]
                np.bitwise_count(x, out=x)  # in place: one block of bytes at a time
                d += x.sum(axis=2, dtype=np.int64)
            if bool(((d > 0) & (d < k)).any()):
                return True
    return False


def check_differencing(dataset: str, query_id: str, rows: Mask | RowSets,
                       earlier: Iterable[tuple[str, Mask | RowSets]],
                       min_cell_size: int) -> None:
    """Raise :class:`PolicyError` if any set of ``rows`` differs from any set recorded for
    an earlier answered query by ``0 < |A xor B| < min_cell_size`` -- a set equal to a
    recorded one included (module docstring: no repeat exemption).  ``earlier`` is consumed
    lazily, one ``(query id, sets)`` piece at a time (a record may come in several pieces:
    :func:`stream_sets`), and the check stops at the first near set: the working set is
    the new sets plus one piece and one block of XOR, never the whole history.  Pieces of
    ``query_id`` itself (a resumed request) are skipped; the new query's own sets are not
    compared with each other."""
    new = _as_sets(rows)
    if len(new) == 0 or min_cell_size <= 1:
        return
    wide: dict[int, Packed] = {}
    for qid, prev in earlier:
        if qid == query_id:
            continue
        p = _as_sets(prev)
        if len(p) == 0:
            continue
        width = max(new.bits.shape[1], p.bits.shape[1])
        if width not in wide:
            wide[width] = _widen(new.bits, width)
        if _near(wide[width], _widen(p.bits, width), min_cell_size):
            raise PolicyError(
                f"dataset {dataset}: the rows this query selects (or one of its released "
                f"cells) differ from those of the earlier exact query {qid[:16]}... (or one "
                "of its cells) by fewer than min_cell_size rows (a differencing attack could "
                "isolate them); widen the filter or the cells, or ask with differential "
                "privacy")
