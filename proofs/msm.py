"""Multi-scalar multiplication over libsecp256k1 (through coincurve's cffi) and the helper
process: the group arithmetic the range proof's prover and verifier are built on.

Points are handled as 64-byte ``secp256k1_pubkey`` structs (libsecp256k1's parsed form),
addressed by pointer or held as rows of an ``(n, 64)`` uint8 matrix, so that a sum of many
points is ONE ``secp256k1_ec_pubkey_combine`` call.  :func:`msm_matrix` is a bucket
(Pippenger) method on that call (about 8-10 us per term for thousands of terms instead of
one 22 us multiplication per term); :func:`fold_raw` is the inner-product argument's
generator fold (one multiplication per pair); :func:`msm_par` / :func:`submit_msm` hand half
of a large MSM, or a fold, to ONE persistent helper process when :func:`parallel` says a core
is idle.  The switches come from :mod:`statledger.settings` (``range_parallel``,
``range_fold_threshold``, ``range_msm_threshold``).

Costs and the choice of the window: ``docs/notes/rangeproof.md`` (section "Costs").
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np
from coincurve._libsecp256k1 import ffi, lib

from statledger.proofs.group import ORDER, Point
from statledger.settings import get_settings

__all__ = [
    "PK_SIZE",
    "add_raw",
    "addr",
    "array_addrs",
    "array_from_points",
    "combine_addrs",
    "counters",
    "fold_raw",
    "matrix_of",
    "merge_counts",
    "msm_matrix",
    "msm_par",
    "parallel",
    "pk_of",
    "points_msm",
    "pool",
    "raw_bytes",
    "raw_from_bytes",
    "raw_matrix",
    "reset_counters",
    "rows",
    "secp_ctx",
    "shutdown_pool",
    "submit_fold",
    "submit_msm",
    "to_point",
    "window_bits",
]

_Q = ORDER
_SCALAR = 32
PK_SIZE = 64  # sizeof(secp256k1_pubkey)

# The helper process is governed by the settings (statledger.settings):
# ``range_fold_threshold`` / ``range_msm_threshold``: IPA folds of at least that many pairs,
# and MSMs of at least that many terms, use the helper (measured: below 512 / 2048 the
# transfer costs more than it saves).  ``range_parallel``: True / False force the helper on /
# off; None (default): on when the machine has a spare core (1-minute load average below the
# CPU count).  Under contention the helper only adds transfer costs (measured at load
# average 8 on 2 cores: 256 x 32-bit proof 2.5 s serial vs 4.1 s with the helper).


def parallel() -> bool:
    """Whether large MSMs and folds may use the helper process now (never inside a pool worker)."""
    if multiprocessing.parent_process() is not None:
        # a worker of someone's process pool (e.g. the auditor's): a pool started here
        # would be joined at the worker's exit, which multiprocessing does before the
        # executor's shutdown hook runs, and the worker would hang for ever
        return False
    forced = get_settings().range_parallel
    if forced is not None:
        return forced
    cpus = os.cpu_count() or 1
    if cpus < 2:
        return False
    try:
        return os.getloadavg()[0] < cpus
    except OSError:  # pragma: no cover - no load average on this platform
        return True


_CTX: Any = None


def secp_ctx() -> Any:
    global _CTX
    if _CTX is None:
        from coincurve.context import GLOBAL_CONTEXT

        _CTX = GLOBAL_CONTEXT.ctx
    return _CTX


# --------------------------------------------------------------------------------------------
# Operation counters (benchmark: "count the scalar multiplications")
# --------------------------------------------------------------------------------------------

_COUNTS: dict[str, int] = {"mul": 0, "msm_terms": 0, "msm_calls": 0, "adds": 0}


def counters() -> dict[str, int]:
    """Counts since :func:`reset_counters`: variable-base multiplications done one by one
    (``mul``), terms that went through the bucket MSM (``msm_terms``), bucket MSM calls, and
    point additions done inside ``pubkey_combine`` (``adds``).  Worker processes' work is
    counted by the caller."""
    return dict(_COUNTS)


def reset_counters() -> None:
    for k in _COUNTS:
        _COUNTS[k] = 0


# --------------------------------------------------------------------------------------------
# Raw libsecp256k1 layer: points as 64-byte secp256k1_pubkey structs, addressed by pointer.
# The group's Point keeps its parsed struct in ``_pk`` (None for the identity); reading it
# avoids re-parsing (a square root) for every term.  Results go back through Point.from_bytes.
# --------------------------------------------------------------------------------------------


def pk_of(P: Point) -> Any:
    pk = P._pk
    return pk


def addr(cdata: Any) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def serialize(pk: Any) -> bytes:
    out = ffi.new("unsigned char[33]")
    outlen = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(secp_ctx(), out, outlen, pk, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, 33))


def to_point(pk: Any | None) -> Point:
    if pk is None:
        return Point.identity()
    return Point.from_bytes(serialize(pk))


def array_from_points(points: Sequence[Point]) -> Any:
    """A contiguous ``secp256k1_pubkey[]`` copy of non-identity points."""
    arr = ffi.new("secp256k1_pubkey[]", max(1, len(points)))
    for i, P in enumerate(points):
        pk = pk_of(P)
        if pk is None:
            raise ValueError("identity point in a generator vector")
        arr[i] = pk[0]
    return arr


def array_addrs(arr: Any, count: int, start: int = 0, step: int = 1) -> np.ndarray:
    base = addr(arr)
    idx = np.arange(start, start + step * count, step, dtype=np.uint64)[:count]
    return idx * np.uint64(PK_SIZE) + np.uint64(base)


def combine_addrs(addrs: np.ndarray) -> Any | None:
    """Sum of the points at ``addrs`` (one C call); None if empty or the identity."""
    n = len(addrs)
    if n == 0:
        return None
    addrs = np.ascontiguousarray(addrs, dtype=np.uint64)
    ptrs = ffi.from_buffer("secp256k1_pubkey *[]", addrs)
    out = ffi.new("secp256k1_pubkey *")
    _COUNTS["adds"] += n
    if lib.secp256k1_ec_pubkey_combine(secp_ctx(), out, ptrs, n) != 1:
        return None
    return out


def _msm_naive(addrs: np.ndarray, ks: Sequence[int]) -> Any | None:
    ctx = secp_ctx()
    tmp = ffi.new("secp256k1_pubkey[]", max(1, len(ks)))
    used: list[int] = []
    for i, (a, k) in enumerate(zip(addrs.tolist(), ks, strict=True)):
        if k == 0:
            continue
        tmp[i] = ffi.cast("secp256k1_pubkey *", a)[0]
        if lib.secp256k1_ec_pubkey_tweak_mul(ctx, tmp + i, k.to_bytes(32, "big")) != 1:
            raise ArithmeticError("tweak_mul failed")  # pragma: no cover - 0 < k < n
        used.append(i)
    _COUNTS["mul"] += len(used)
    if not used:
        return None
    return combine_addrs(array_addrs(tmp, len(ks))[used])


def raw_matrix(addrs: np.ndarray) -> np.ndarray:
    """Copy the 64-byte structs at ``addrs`` into one (n, 64) uint8 matrix."""
    out = np.empty((len(addrs), PK_SIZE), dtype=np.uint8)
    dst = ffi.from_buffer("secp256k1_pubkey[]", out)
    for i, a in enumerate(addrs.tolist()):
        dst[i] = ffi.cast("secp256k1_pubkey *", a)[0]
    return out


def matrix_of(arr: Any, count: int) -> np.ndarray:
    """(count, 64) uint8 view of a raw array (no copy)."""
    return np.frombuffer(ffi.buffer(arr, count * PK_SIZE), dtype=np.uint8).reshape(count, PK_SIZE)


def _msm_addrs(addrs: np.ndarray, ks: Sequence[int]) -> Any | None:
    """``sum k_i * P_i`` for points given by address (non-identity) and ints in [0, n)."""
    if window_bits(len(ks)) == 0:
        return _msm_naive(np.ascontiguousarray(addrs, dtype=np.uint64), ks)
    return msm_matrix(raw_matrix(addrs), ks)


#: (smallest MSM size, window bits) from a sweep of every window on 128..16384 generator
#: terms (CPU time, this 2-core machine; ``python bench/bench_rangeproof.py --msm-sweep``
#: re-measures): an addition inside ``pubkey_combine`` costs ~0.19 us, a bucket (one combine
#: call ending in a field inversion, plus the Python loop) ~2.8 us, a variable-base
#: multiplication ~22 us, so below ~400 terms one multiplication per term wins.  c = 8 also
#: has the cheapest digit extraction (the scalar's bytes).
_WINDOWS: tuple[tuple[int, int], ...] = (
    (98304, 10),
    (40960, 9),
    (6144, 8),
    (3072, 7),
    (1536, 6),
    (768, 5),
    (384, 4),
)


def window_bits(n: int) -> int:
    """Bucket window for an n-term MSM (0 = one multiplication per term), see ``_WINDOWS``."""
    for least, c in _WINDOWS:
        if n >= least:
            return c
    return 0


def _digits(ks: Sequence[int], c: int) -> np.ndarray:
    """(n, W) array: column w holds bits [c*w, c*w + c) of each scalar."""
    n = len(ks)
    raw = np.frombuffer(b"".join(k.to_bytes(32, "big") for k in ks), dtype=np.uint8)
    if c == 8:
        return raw.reshape(n, 32)[:, ::-1]
    bits = np.unpackbits(raw.reshape(n, 32), axis=1)[:, ::-1]  # column b = bit b
    W = -(-256 // c)
    if W * c > 256:
        bits = np.concatenate((bits, np.zeros((n, W * c - 256), dtype=np.uint8)), axis=1)
    weights = (1 << np.arange(c, dtype=np.uint16)).astype(np.uint16)
    return (bits.reshape(n, W, c).astype(np.uint16) @ weights).astype(np.uint16)


def msm_matrix(raw: np.ndarray, ks: Sequence[int]) -> Any | None:
    """``sum k_i * P_i`` for points given as rows of a (n, 64) raw matrix; None = identity.

    Bucket (Pippenger) method with c-bit windows (c from :func:`window_bits`): for each
    window the points are sorted by their digit (numpy sort, then a contiguous gather so that
    the additions walk memory in order), each bucket is summed by one ``pubkey_combine``
    call, buckets are combined by bit (``sum_j j*B_j = sum_t 2^t sum_{j: bit t} B_j``) and
    the partial sums joined by Horner's rule.  A bucket that sums to the identity is simply
    empty, so adversarial points cannot make it fail.  Small MSMs use one multiplication per
    term.
    """
    n = len(ks)
    if n == 0:
        return None
    c = window_bits(n)
    if c == 0:
        keep = np.ascontiguousarray(raw)
        base = addr(ffi.from_buffer("secp256k1_pubkey[]", keep))
        addrs = np.arange(n, dtype=np.uint64) * np.uint64(PK_SIZE) + np.uint64(base)
        return _msm_naive(addrs, ks)
    _COUNTS["msm_terms"] += n
    _COUNTS["msm_calls"] += 1
    ctx = secp_ctx()
    combine = lib.secp256k1_ec_pubkey_combine
    digits = _digits(ks, c)
    W = digits.shape[1]
    nb = 1 << c
    gathered = np.empty((n, PK_SIZE), dtype=np.uint8)
    gbase = addr(ffi.from_buffer("secp256k1_pubkey[]", gathered))
    ptr_addrs = np.arange(n, dtype=np.uint64) * np.uint64(PK_SIZE) + np.uint64(gbase)
    ptrs = ffi.from_buffer("secp256k1_pubkey *[]", ptr_addrs)
    buckets = ffi.new("secp256k1_pubkey[]", nb)
    bucket_ptrs = [buckets + j for j in range(nb)]
    partial: list[Any | None] = [None] * (W * c)
    adds = 0
    for w in range(W):
        col = np.ascontiguousarray(digits[:, w])
        counts = np.bincount(col, minlength=nb)
        if counts[0] == n:
            continue
        order = np.argsort(col, kind="stable")
        np.take(raw, order, axis=0, out=gathered)
        starts = np.concatenate(([0], np.cumsum(counts))).tolist()
        counts_l = counts.tolist()
        nonempty: list[int] = []
        for j in range(1, nb):
            cnt = counts_l[j]
            if cnt and combine(ctx, bucket_ptrs[j], ptrs + starts[j], cnt) == 1:
                nonempty.append(j)
        adds += n - counts_l[0]
        for t in range(c):
            sel = [bucket_ptrs[j] for j in nonempty if (j >> t) & 1]
            if sel:
                out = ffi.new("secp256k1_pubkey *")
                if combine(ctx, out, ffi.new("secp256k1_pubkey *[]", sel), len(sel)) == 1:
                    partial[c * w + t] = out
                adds += len(sel)
    _COUNTS["adds"] += adds
    acc: Any | None = None
    pair = ffi.new("secp256k1_pubkey *[3]")
    for k in range(W * c - 1, -1, -1):
        p = partial[k]
        if acc is None:
            if p is not None:
                acc = ffi.new("secp256k1_pubkey *", p[0])
            continue
        pair[0] = acc
        pair[1] = acc
        cnt = 2
        if p is not None:
            pair[2] = p
            cnt = 3
        nxt = ffi.new("secp256k1_pubkey *")
        acc = nxt if combine(ctx, nxt, pair, cnt) == 1 else None
    return acc


def points_msm(ks: Sequence[int], points: Sequence[Point]) -> Point:
    """MSM over group Points with int scalars (any int; reduced mod n)."""
    addrs: list[int] = []
    kk: list[int] = []
    for k, P in zip(ks, points, strict=True):
        k %= _Q
        pk = pk_of(P)
        if k == 0 or pk is None:
            continue
        addrs.append(addr(pk))
        kk.append(k)
    return to_point(_msm_addrs(np.array(addrs, dtype=np.uint64), kk))


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool() -> ProcessPoolExecutor:
    """One persistent helper process (the calling process does the other half of the work)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(max_workers=1)
        return _POOL


def shutdown_pool() -> None:
    """Stop the helper process started by large proofs (also done at interpreter exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown(wait=True)
        _POOL = None


def raw_bytes(pk: Any | None) -> bytes:
    return b"" if pk is None else bytes(ffi.buffer(pk, PK_SIZE))


def raw_from_bytes(data: bytes) -> Any | None:
    if not data:
        return None
    pk = ffi.new("secp256k1_pubkey *")
    ffi.memmove(pk, data, PK_SIZE)
    return pk


def add_raw(p: Any | None, q: Any | None) -> Any | None:
    if p is None:
        return q
    if q is None:
        return p
    out = ffi.new("secp256k1_pubkey *")
    if (
        lib.secp256k1_ec_pubkey_combine(
            secp_ctx(), out, ffi.new("secp256k1_pubkey *[2]", [p, q]), 2
        )
        != 1
    ):
        return None
    return out


def _msm_job(raw: bytes, ks: bytes) -> tuple[bytes, dict[str, int]]:
    """Helper-process MSM: raw 64-byte rows and 32-byte big-endian scalars."""
    reset_counters()
    n = len(ks) // _SCALAR
    mat = np.frombuffer(raw, dtype=np.uint8).reshape(n, PK_SIZE)
    kl = [int.from_bytes(ks[_SCALAR * i : _SCALAR * (i + 1)], "big") for i in range(n)]
    return raw_bytes(msm_matrix(mat, kl)), counters()


def _fold_job(lo: bytes, hi: bytes, e: int) -> tuple[bytes, dict[str, int]]:
    reset_counters()
    return fold_raw(lo, hi, e), counters()


def merge_counts(c: dict[str, int]) -> None:
    for k, v in c.items():
        _COUNTS[k] += v


def submit_msm(raw: np.ndarray, ks: Sequence[int]) -> Future[tuple[bytes, dict[str, int]]]:
    return pool().submit(
        _msm_job,
        np.ascontiguousarray(raw).tobytes(),
        b"".join(k.to_bytes(_SCALAR, "big") for k in ks),
    )


def msm_par(raw: np.ndarray, ks: Sequence[int]) -> Any | None:
    """:func:`msm_matrix`, split in two halves (helper + caller) when large."""
    n = len(ks)
    if n < get_settings().range_msm_threshold or not parallel():
        return msm_matrix(raw, ks)
    h = n // 2
    fut = submit_msm(raw[h:], ks[h:])
    mine = msm_matrix(raw[:h], ks[:h])
    theirs, cnt = fut.result()
    merge_counts(cnt)
    return add_raw(mine, raw_from_bytes(theirs))


def fold_raw(lo: bytes, hi: bytes, e: int) -> bytes:
    """``lo_i + e*hi_i`` for raw 64-byte structs (one multiplication per pair)."""
    ctx = secp_ctx()
    n = len(lo) // PK_SIZE
    a = ffi.new("secp256k1_pubkey[]", max(1, n))
    bb = ffi.new("secp256k1_pubkey[]", max(1, n))
    ffi.memmove(a, lo, len(lo))
    ffi.memmove(bb, hi, len(hi))
    eb = e.to_bytes(32, "big")
    out = ffi.new("secp256k1_pubkey[]", max(1, n))
    pair = ffi.new("secp256k1_pubkey *[2]")
    tweak = lib.secp256k1_ec_pubkey_tweak_mul
    combine = lib.secp256k1_ec_pubkey_combine
    for i in range(n):
        hp = bb + i
        if tweak(ctx, hp, eb) != 1:
            raise ArithmeticError("fold: tweak_mul failed")  # pragma: no cover
        pair[0] = a + i
        pair[1] = hp
        if combine(ctx, out + i, pair, 2) != 1:
            raise ArithmeticError("fold produced the identity")  # pragma: no cover
    _COUNTS["mul"] += n
    _COUNTS["adds"] += n
    return bytes(ffi.buffer(out, n * PK_SIZE))


def rows(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(len(data) // PK_SIZE, PK_SIZE)


def submit_fold(lo: np.ndarray, hi: np.ndarray, e: int) -> Future[tuple[bytes, dict[str, int]]]:
    """:func:`fold_raw` of raw rows in the helper process (result: raw bytes, counters)."""
    return pool().submit(_fold_job, lo.tobytes(), hi.tobytes(), e)
