"""A data owner's own history of answered exact queries: the differencing defence.

Two exact answers over row sets ``A`` and ``B`` give, by subtraction, the statistic of the
symmetric difference ``A xor B``: ``age >= 30`` minus ``age > 30`` is the salary of whoever is
exactly 30.  Each owner therefore remembers, per dataset, the set of its local rows that every
exact query it answered selected (a bitmap over its table's rows, zlib-compressed, kept on
the owner's machine only: file mode 0600, never sent), and refuses an exact query whose row
set differs from an earlier one's by a non-empty symmetric difference of fewer than
``min_cell_size`` rows -- whatever the statistic (it is computed locally, before anything is
encrypted).  The refusal names the earlier query, never a count.

Pure (no I/O): :func:`pack_rows` / :func:`unpack_rows` are exact inverses;
:func:`check_differencing` raises :class:`PolicyError`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError, PolicyError

__all__ = ["pack_rows", "unpack_rows", "symmetric_difference", "check_differencing"]

_MAGIC = b"SLRS1"
_MAX_ROWS = 1 << 32

Mask = npt.NDArray[np.bool_]


def pack_rows(mask: Mask) -> bytes:
    """``magic || u64 length || zlib(packbits(mask))``."""
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
    try:
        d = zlib.decompressobj()
        raw = d.decompress(blob[len(_MAGIC) + 8:], (n + 7) // 8 + 1)
        if not d.eof or d.unused_data or d.unconsumed_tail:
            raise MalformedError("row set: trailing or truncated data")
    except zlib.error:
        raise MalformedError("row set: not zlib data") from None
    if len(raw) != (n + 7) // 8:
        raise MalformedError("row set: wrong length")
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


def check_differencing(dataset: str, query_id: str, rows: Mask,
                       earlier: Iterable[tuple[str, Mask]], min_cell_size: int) -> None:
    """Raise :class:`PolicyError` if ``rows`` differs from an earlier answered row set by
    ``0 < |A xor B| < min_cell_size`` (the same query id is not compared with itself)."""
    for qid, prev in earlier:
        if qid == query_id:
            continue
        d = symmetric_difference(rows, prev)
        if 0 < d < min_cell_size:
            raise PolicyError(
                f"dataset {dataset}: the rows this query selects differ from those of the "
                f"earlier exact query {qid[:16]}... by fewer than min_cell_size rows "
                "(a differencing attack could isolate them); widen the filter or ask with "
                "differential privacy")
