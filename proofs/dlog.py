"""Exact small discrete logarithms for exponential ElGamal: baby-step giant-step on secp256k1.

See ``docs/notes/elgamal.md`` (section "Discrete logarithm") for the algorithm and its costs.

Given ``M = m*G`` with ``|m| <= bound`` we return the exact signed ``m`` or raise
:class:`~statledger.proofs.errors.DecryptionError`.  Every answer is re-checked by recomputing
``m*G``
before it is returned, so a corrupt table, a key collision or a bug can cost time or a
``DecryptionError`` but never a wrong value (Drynx's silent 0 past its cap is the trap).

Notation: ``N`` = table size (``DlogTable.size``; not the transcript T).  The baby-step
table holds ``x(j*G)`` for ``j = 1..N``; since ``x(j*G) == x(-j*G)``, one lookup covers the
``2N + 1`` values ``-N..N``.  Giant steps are ``Q_i = i*S*G`` with ``S = 2N + 1``; a match
``x(M -+ Q_i) == x(j*G)`` gives ``m = +-i*S +- j``.  ``M + Q_i`` and ``M - Q_i`` share one
denominator ``x(Q_i) - x(M)``, so both candidates cost one (batched, Montgomery-trick)
field inversion; only x-coordinates are computed.  The table stores the top 64 bits of each
x (sorted ``uint64``) and the matching ``j`` (``uint32``), 12 bytes per entry, with an
in-memory bucket directory on the top bits for two-read lookups.

The table is built once per size, cached on disk (``$STATLEDGER_CACHE`` or
``~/.cache/statledger``; atomic write; header + SHA-256 + spot checks on load, rebuilt if
anything is off) and kept in memory for the life of the process.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import secrets
import struct
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import DecryptionError, MalformedError
from statledger.proofs.group import FIELD, ORDER, Point, Scalar, base_mul
from statledger.settings import get_settings

__all__ = [
    "DEFAULT_TABLE_BITS",
    "DlogTable",
    "cache_dir",
    "discrete_log",
    "discrete_log_many",
    "get_table",
]

_log = logging.getLogger(__name__)

#: Default table: 2^20 entries (12 MiB, ~2 s to build): limb sums < 2^32 take <= 2048 giant
#: steps.  Bigger tables (``get_table(1 << 24)``) make |m| < 2^40 fast.
DEFAULT_TABLE_BITS = 20  # the settings default (``dlog_table_bits``); kept as the documented size
_FORMAT_VERSION = 1
_MAGIC = b"STATLEDGER-DLOG\x00"
_HEADER = struct.Struct(">16sIQQ32s")  # magic, version, size N, entry count, sha256(body)
_WINDOW = 2048  # half-width of one batched build window
_MAX_GIANT_STEPS = 1 << 24  # refuse searches that would take minutes
_SPOT_CHECKS = 8

# Field arithmetic backend: gmpy2's mpz when installed (about 2.5x faster for 256-bit
# multiply-and-reduce than Python ints, which is the whole cost of table builds and giant
# steps), else Python ints.  Results are identical; every value is converted back with int().
_gmpy: Any
try:
    _gmpy = importlib.import_module("gmpy2")
except ImportError:  # the pure-int path is tested by monkeypatching
    _gmpy = None
_fe: Callable[[int], int] = int if _gmpy is None else _gmpy.mpz
_P: int = _fe(FIELD)


def _invert(a: int) -> int:
    if _gmpy is None:
        return pow(a, -1, FIELD)
    inv: int = _gmpy.invert(a, _P)
    return inv
_SQRT_EXP = (FIELD + 1) // 4

Keys = npt.NDArray[np.uint64]
Idx = npt.NDArray[np.uint32]


# --------------------------------------------------------------------------------------------
# Batched affine arithmetic on Python ints (x-only where possible)
# --------------------------------------------------------------------------------------------


def _inverses(ds: list[int]) -> list[int]:
    """Montgomery's simultaneous inversion: one ``pow(., -1, p)`` for the whole list.

    Precondition: no element is 0 mod p.
    """
    p = _P
    n = len(ds)
    prefix = [0] * n
    acc = 1
    for i, d in enumerate(ds):
        acc = acc * d % p
        prefix[i] = acc
    inv = _invert(acc)
    out = [0] * n
    for i in range(n - 1, 0, -1):
        out[i] = inv * prefix[i - 1] % p
        inv = inv * ds[i] % p
    if n:
        out[0] = inv
    return out


def _x_plus_minus(xc: int, yc: int, qx: list[int], qy: list[int]) -> list[int]:
    """``[x(C+Q_0), x(C-Q_0), x(C+Q_1), x(C-Q_1), ...]``.  Precondition: ``qx[i] != xc``."""
    p = _P
    invs = _inverses([q - xc for q in qx])
    out: list[int] = []
    append = out.append
    for inv, x2, y2 in zip(invs, qx, qy, strict=True):
        s = xc + x2
        lp = (y2 - yc) * inv % p
        lm = (y2 + yc) * inv % p  # C - Q = C + (x2, -y2): lambda = (-y2 - yc)/(x2 - xc)
        append((lp * lp - s) % p)
        append((lm * lm - s) % p)
    return out


def _add_full(xc: int, yc: int, qx: list[int], qy: list[int]) -> tuple[list[int], list[int]]:
    """Affine ``C + Q_i`` for all i.  Precondition: ``qx[i] != xc``."""
    p = _P
    invs = _inverses([q - xc for q in qx])
    xs: list[int] = []
    ys: list[int] = []
    for inv, x2, y2 in zip(invs, qx, qy, strict=True):
        lam = (y2 - yc) * inv % p
        x3 = (lam * lam - xc - x2) % p
        xs.append(x3)
        ys.append((lam * (xc - x3) - yc) % p)
    return xs, ys


def _double(x: int, y: int) -> tuple[int, int]:
    p = _P
    lam = 3 * x * x * _invert(2 * y) % p
    x3 = (lam * lam - 2 * x) % p
    return x3, (lam * (x - x3) - y) % p


def _affine(P: Point) -> tuple[int, int]:
    xy = P.to_affine()
    if xy is None:  # callers handle the identity first
        raise MalformedError("the identity has no affine coordinates")
    return _fe(xy[0]), _fe(xy[1])


def _multiples(step: int, count: int) -> tuple[list[int], list[int]]:
    """Affine ``i*step*G`` for ``i = 1..count`` (doubling the list each round)."""
    if count <= 0:
        return [], []
    x1, y1 = _affine(base_mul(Scalar.reduce(step)))
    xs, ys = [x1], [y1]
    while len(xs) < count:
        k = len(xs)
        xk, yk = xs[-1], ys[-1]
        take = min(k - 1, count - k)  # (k+i)*step*G for i = 1..k-1
        if take > 0:
            nx, ny = _add_full(xk, yk, xs[:take], ys[:take])
            xs.extend(nx)
            ys.extend(ny)
        if len(xs) < count and take == k - 1:
            dx, dy = _double(xk, yk)  # 2k*step*G
            xs.append(dx)
            ys.append(dy)
    return xs[:count], ys[:count]


def _prefixes(xs: Sequence[int]) -> Keys:
    return np.fromiter((int(x >> 192) for x in xs), dtype=np.uint64, count=len(xs))


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The settings' cache folder: ``$STATLEDGER_CACHE`` or ``~/.cache/statledger``."""
    return get_settings().cache


def _center_block(w: int, k0: int, k1: int) -> bytes:
    """Keys (uint64, j order) for centres ``c_k = k*(2W+1)``, ``k0 < k <= k1``.

    Centre k covers ``j = c_k - W .. c_k + W`` (2W+1 values), so blocks tile contiguously.
    Module-level so that worker processes can run it.
    """
    step = 2 * w + 1
    wx, wy = _multiples(1, w)
    cx, cy = _multiples(step, k1)
    block = np.empty((k1 - k0) * step, dtype=np.uint64)
    for k in range(k0 + 1, k1 + 1):
        off = (k - k0 - 1) * step  # index of j = c_k - W in this block
        xs = _prefixes(_x_plus_minus(cx[k - 1], cy[k - 1], wx, wy))
        block[off + w + 1 : off + step] = xs[0::2]  # j = c+1 .. c+W
        block[off : off + w] = xs[1::2][::-1]  # j = c-W .. c-1
        block[off + w] = int(cx[k - 1] >> 192)  # j = c
    return block.tobytes()


def _build_keys(size: int, workers: int = 1) -> Keys:
    """Top-64-bit x prefixes of ``j*G`` for ``j = 1..size``, in j order."""
    w = min(_WINDOW, size)
    step = 2 * w + 1
    n_centers = max(0, -(-(size - w) // step))
    wx, _wy = _multiples(1, w)
    parts = [_prefixes(wx).tobytes()]
    if workers > 1 and n_centers >= 4 * workers:
        from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415 - only for big tables

        cuts = [n_centers * i // workers for i in range(workers + 1)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(_center_block, w, cuts[i], cuts[i + 1]) for i in range(workers)
            ]
            parts.extend(f.result() for f in futures)
    elif n_centers:
        parts.append(_center_block(w, 0, n_centers))
    keys = np.frombuffer(b"".join(parts), dtype=np.uint64)
    return keys[:size].copy()


class DlogTable:
    """Baby-step table for ``j = 1..size`` plus the giant steps it needs (cached in memory)."""

    def __init__(self, size: int, keys: Keys, idx: Idx) -> None:
        if size < 1 or size >= 2**32:
            raise MalformedError("dlog table size must be in [1, 2^32)")
        if keys.shape != (size,) or idx.shape != (size,):
            raise MalformedError("dlog table arrays have the wrong shape")
        self.size = size
        self.keys = keys
        self.idx = idx
        self.step = 2 * size + 1  # S: one lookup covers -N..N
        # Bucket directory on the top B bits (~1 entry per bucket): a lookup is two random
        # reads instead of a 25-step binary search through a table much bigger than cache.
        self._bits = max(1, (size - 1).bit_length())
        self._shift = np.uint64(64 - self._bits)
        counts = np.bincount((keys >> self._shift).astype(np.intp), minlength=1 << self._bits)
        offsets = np.zeros((1 << self._bits) + 1, dtype=np.uint32)  # size < 2^32
        np.cumsum(counts, out=offsets[1:])
        self._offsets = offsets
        self._gx: list[int] = []
        self._gy: list[int] = []
        self._lock = threading.Lock()

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def build(cls, size: int, *, workers: int | None = None) -> DlogTable:
        """Build the table; ``workers`` processes (default: all cores for >= 2^22 entries)."""
        if size < 1 or size >= 2**32:
            raise MalformedError("dlog table size must be in [1, 2^32)")
        if workers is None:
            workers = get_settings().dlog_build_workers or (
                (os.cpu_count() or 1) if size >= 1 << 22 else 1
            )
        by_j = _build_keys(size, workers)
        order = np.argsort(by_j, kind="stable")
        keys = np.ascontiguousarray(by_j[order])
        idx = (order + 1).astype(np.uint32)
        return cls(size, keys, idx)

    def _body(self) -> bytes:
        return self.keys.astype("<u8").tobytes() + self.idx.astype("<u4").tobytes()

    def to_bytes(self) -> bytes:
        body = self._body()
        digest = hashlib.sha256(body).digest()
        return _HEADER.pack(_MAGIC, _FORMAT_VERSION, self.size, self.size, digest) + body

    @classmethod
    def from_bytes(cls, data: bytes, size: int) -> DlogTable:
        """Validate header, length, checksum, order, index range and spot-check entries."""
        if len(data) < _HEADER.size:
            raise MalformedError("dlog table file too short")
        magic, version, t, count, digest = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _FORMAT_VERSION:
            raise MalformedError("dlog table file: bad magic or format version")
        if t != size or count != size:
            raise MalformedError("dlog table file: wrong size")
        body = memoryview(data)[_HEADER.size :]  # no copy of a file of hundreds of MiB
        if len(body) != 12 * size:
            raise MalformedError("dlog table file: wrong length")
        if hashlib.sha256(body).digest() != digest:
            raise MalformedError("dlog table file: checksum mismatch")
        keys = np.frombuffer(body, dtype="<u8", count=size).astype(np.uint64)
        idx = np.frombuffer(body, dtype="<u4", count=size, offset=8 * size).astype(np.uint32)
        if size > 1 and bool(np.any(keys[1:] < keys[:-1])):
            raise MalformedError("dlog table file: keys not sorted")
        if int(idx.min()) < 1 or int(idx.max()) > size:
            raise MalformedError("dlog table file: index out of range")
        for _ in range(min(_SPOT_CHECKS, size)):
            pos = secrets.randbelow(size)
            x, _y = _affine(base_mul(Scalar(int(idx[pos]))))
            if int(keys[pos]) != x >> 192:
                raise MalformedError("dlog table file: spot check failed")
        return cls(size, keys, idx)

    # -- giant steps ------------------------------------------------------------------------

    def _giants(self, count: int) -> tuple[list[int], list[int]]:
        """Affine ``Q_i = i*S*G`` for ``i = 1..count`` (extended on demand, kept)."""
        with self._lock:
            have = len(self._gx)
            if have < count:
                # Recomputed from scratch (cheap next to the searches it serves: ~1 us each).
                xs, ys = _multiples(self.step, count)
                self._gx, self._gy = xs, ys
            return self._gx, self._gy

    def giant_count(self, bound: int) -> int:
        """Giant steps K needed so that ``K*S + N >= bound``."""
        if bound <= self.size:
            return 0
        return -(-(bound - self.size) // self.step)

    # -- lookup -----------------------------------------------------------------------------

    def _hits(self, xs: Sequence[int]) -> list[tuple[int, int]]:
        """``(position in xs, j)`` for every table entry whose 64-bit prefix matches."""
        if not xs:
            return []
        pref = _prefixes(xs)
        bucket = (pref >> self._shift).astype(np.intp)
        lo = self._offsets[bucket].astype(np.intp)
        hi = self._offsets[bucket + 1].astype(np.intp)
        active = np.nonzero(lo < hi)[0]
        pos = lo[active]
        out: list[tuple[int, int]] = []
        keys = self.keys
        while active.size:
            eq = np.nonzero(keys[pos] == pref[active])[0]
            for t, p in zip(active[eq].tolist(), pos[eq].tolist(), strict=True):
                out.append((t, int(self.idx[p])))  # duplicates (2^-64-rare) are all tried
            pos = pos + 1
            more = pos < hi[active]
            active = active[more]
            pos = pos[more]
        return out

    # -- search -----------------------------------------------------------------------------

    def solve(self, M: Point, bound: int) -> int:
        return self.solve_many([M], bound)[0]

    def solve_many(self, points: Sequence[Point], bound: int) -> list[int]:
        """Exact signed logs of all ``points`` (|m| <= bound) or :class:`DecryptionError`."""
        if isinstance(bound, bool) or not isinstance(bound, int) or bound < 0:
            raise MalformedError("dlog bound must be an int >= 0")
        if bound >= ORDER // 2:
            raise MalformedError("dlog bound must be < n/2 (signed values)")
        n_giant = self.giant_count(bound)
        if n_giant > _MAX_GIANT_STEPS:
            raise DecryptionError(
                f"dlog bound 2^{bound.bit_length()} needs {n_giant} giant steps with a "
                f"table of {self.size}; use a bigger table"
            )
        results: list[int | None] = [None] * len(points)
        todo: list[int] = []
        coords: dict[int, tuple[int, int]] = {}
        for t, M in enumerate(points):
            if not isinstance(M, Point):
                raise TypeError("discrete_log needs Points")
            if M.is_identity():
                results[t] = 0
            else:
                coords[t] = _affine(M)
                todo.append(t)
        # Giant step 0: x(M) itself against the table (covers |m| <= N).
        if todo:
            xs = [coords[t][0] for t in todo]
            for pos, j in self._hits(xs):
                t = todo[pos]
                if results[t] is None:
                    results[t] = _confirm(points[t], (j, -j), bound)
            todo = [t for t in todo if results[t] is None]
        if todo and n_giant:
            gx, gy = self._giants(n_giant)
            lo = 0
            chunk = 256
            while todo and lo < n_giant:
                hi = min(n_giant, lo + chunk)
                qx, qy = gx[lo:hi], gy[lo:hi]
                xs_all: list[int] = []
                owners: list[int] = []
                for t in todo:
                    xm, ym = coords[t]
                    if xm in qx:  # M = +-Q_i exactly: j = 0
                        i = lo + qx.index(xm) + 1
                        results[t] = _confirm(points[t], (i * self.step, -i * self.step), bound)
                        continue
                    xs_all.extend(_x_plus_minus(xm, ym, qx, qy))
                    owners.append(t)
                per = 2 * (hi - lo)
                for pos, j in self._hits(xs_all):
                    t = owners[pos // per]
                    if results[t] is not None:
                        continue
                    r = pos % per
                    i = lo + r // 2 + 1
                    base = -i * self.step if r % 2 == 0 else i * self.step  # M+Q_i / M-Q_i
                    found = _confirm(points[t], (base + j, base - j), bound)
                    if found is not None:
                        results[t] = found
                todo = [t for t in todo if results[t] is None]
                lo = hi
                chunk = min(chunk * 2, 8192)
        missing = [t for t, r in enumerate(results) if r is None]
        if missing:
            raise DecryptionError(
                f"no discrete log with |m| <= {bound} for {len(missing)} of {len(points)} "
                f"point(s) (first index {missing[0]})"
            )
        return [r for r in results if r is not None]


def _confirm(M: Point, candidates: tuple[int, int], bound: int) -> int | None:
    """The candidate m with ``m*G == M`` (checked), raising if it lies beyond ``bound``."""
    for m in candidates:
        if base_mul(Scalar.reduce(m)) == M:
            if abs(m) > bound:
                raise DecryptionError(f"plaintext outside the bound: |m| > {bound}")
            return m
    return None  # a 64-bit prefix collision: keep searching


# --------------------------------------------------------------------------------------------
# Process-wide cache
# --------------------------------------------------------------------------------------------

_TABLES: dict[int, DlogTable] = {}
_TABLES_LOCK = threading.Lock()


def _table_path(size: int, directory: Path) -> Path:
    return directory / f"dlog-v{_FORMAT_VERSION}-T{size}.bin"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_build(size: int, directory: Path | None = None) -> DlogTable:
    """Load the table from the disk cache (validated) or build it and write it atomically."""
    directory = cache_dir() if directory is None else directory
    path = _table_path(size, directory)
    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is not None:
        try:
            return DlogTable.from_bytes(data, size)
        except MalformedError as exc:
            _log.warning("discarding dlog table cache %s: %s", path, exc)
    table = DlogTable.build(size)
    try:
        _write_atomic(path, table.to_bytes())
    except OSError as exc:  # read-only home etc.: keep it in memory only
        _log.warning("could not write dlog table cache %s: %s", path, exc)
    return table


def get_table(size: int | None = None) -> DlogTable:
    """The process-wide table of ``size`` entries (default ``2^dlog_table_bits`` of the
    settings)."""
    size = (1 << get_settings().dlog_table_bits) if size is None else size
    with _TABLES_LOCK:
        table = _TABLES.get(size)
        if table is None:
            table = load_or_build(size)
            _TABLES[size] = table
        return table


def discrete_log(M: Point, bound: int, *, table_size: int | None = None) -> int:
    """The exact signed ``m`` with ``M == m*G`` and ``|m| <= bound``, else DecryptionError."""
    return get_table(table_size).solve(M, bound)


def discrete_log_many(
    points: Sequence[Point], bound: int, *, table_size: int | None = None
) -> list[int]:
    """:func:`discrete_log` for a vector, sharing lookups across points."""
    return get_table(table_size).solve_many(points, bound)
