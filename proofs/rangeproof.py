"""Aggregated Bulletproofs range proof with a batched ElGamal linking proof.

Math, notation and costs: ``docs/notes/rangeproof.md`` and ``docs/notes/linking.md``.

Relation proved (one proof for a whole submission).  Public: the collective ElGamal key
``X``, per value ``j`` its span ``w_j = hi_j - lo_j`` (so ``b_j = max(1, bitlen(w_j))`` and
``n_j = ceil(b_j / LIMB_BITS)`` limbs), and per limb ``(j, i)`` a Pedersen commitment
``V_ji`` and an ElGamal ciphertext ``(C1_ji, C2_ji)``.  The prover knows ``m_ji, s_ji, r_ji``
with

* ``V_ji = m_ji*G + s_ji*H``, ``C1_ji = r_ji*G``, ``C2_ji = m_ji*G + r_ji*X`` (linking);
* ``0 <= m_ji < 2^16`` for every limb but the top one, ``0 <= m_ji < 2^(b_j - 16(n_j-1))``
  for the top one (so ``u_j = sum_i 2^(16 i) m_ji`` lies in ``[0, 2^b_j)``);
* when ``w_j + 1 != 2^b_j``: ``w_j - u_j`` in ``[0, 2^b_j)``, proved on the
  verifier-derived commitment ``V'_j = w_j*G - sum_i 2^(16 i) V_ji`` (blinding ``-sum 2^(16i)
  s_ji``), so ``0 <= u_j <= w_j`` exactly.

Range part: Bunz, Bootle, Boneh, Poelstra, Wuille, Maxwell, "Bulletproofs" (IEEE S&P 2018),
sections 4.1-4.3 (aggregated range proof, here with heterogeneous segment widths: the bit
vector is a concatenation of segments, segment ``k`` weighted by ``z^(2+k)``, padding bits
weighted 0), the inner-product argument of section 3 (folding even/odd indices, see the
note) and the single multi-scalar-multiplication verification of section 6.2.  Linking part:
a 3-witness Sigma protocol on the statement folded with transcript weights ``rho_ji``.

Field symbols: ``A, S, T1, T2, tau_x, mu, t_hat`` as in the paper; ``L, R`` the IPA rounds;
``a, b`` the final IPA scalars; ``A1, A2, A3, z_a, z_b, z_c`` the linking proof.

Performance: every large multi-scalar multiplication goes through :func:`_msm_matrix`, a
bucket (Pippenger) method on libsecp256k1's ``pubkey_combine`` (about 5 us per term instead of
one 26 us scalar multiplication per term); the IPA generator folds are one variable-base
multiplication per folded pair and are the prover's dominant cost.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from coincurve._libsecp256k1 import ffi, lib

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, G, H, Point, Scalar, generator, generators
from statledger.proofs.transcript import Transcript
from statledger.settings import get_settings

__all__ = [
    "LIMB_BITS",
    "MAX_BITS",
    "RangeLayout",
    "RangeProof",
    "prove_range_and_link",
    "verify_range_and_link",
    "VerificationTerms",
    "range_and_link_terms",
    "check_terms",
    "counters",
    "reset_counters",
    "warm_up",
    "shutdown_pool",
]

LIMB_BITS = 16
MAX_BITS = 128  # values up to 2^128: sums of 2^20 providers stay far below the group order
PROOF_LABEL = b"statledger/range/bulletproofs-agg+link/v1"
_LABEL_GVEC = b"statledger/range/v1/G"
_LABEL_HVEC = b"statledger/range/v1/H"
_LABEL_Q = b"statledger/range/v1/Q"

_LOG = logging.getLogger(__name__)
_Q = ORDER
_POINT = 33
_SCALAR = 32
_PK_SIZE = 64  # sizeof(secp256k1_pubkey)

# The helper process is governed by the settings (statledger.settings):
# ``range_fold_threshold`` / ``range_msm_threshold``: IPA folds of at least that many pairs,
# and MSMs of at least that many terms, use the helper (measured: below 512 / 2048 the
# transfer costs more than it saves).  ``range_parallel``: True / False force the helper on /
# off; None (default): on when the machine has a spare core (1-minute load average below the
# CPU count).  Under contention the helper only adds transfer costs (measured at load
# average 8 on 2 cores: 256 x 32-bit proof 2.5 s serial vs 4.1 s with the helper).


def _parallel() -> bool:
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


def _ctx() -> Any:
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


def _pk_of(P: Point) -> Any:
    pk = P._pk
    return pk


def _addr(cdata: Any) -> int:
    return int(ffi.cast("uintptr_t", cdata))


def _serialize(pk: Any) -> bytes:
    out = ffi.new("unsigned char[33]")
    outlen = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(_ctx(), out, outlen, pk, lib.SECP256K1_EC_COMPRESSED)
    return bytes(ffi.buffer(out, 33))


def _to_point(pk: Any | None) -> Point:
    if pk is None:
        return Point.identity()
    return Point.from_bytes(_serialize(pk))


def _array_from_points(points: Sequence[Point]) -> Any:
    """A contiguous ``secp256k1_pubkey[]`` copy of non-identity points."""
    arr = ffi.new("secp256k1_pubkey[]", max(1, len(points)))
    for i, P in enumerate(points):
        pk = _pk_of(P)
        if pk is None:
            raise ValueError("identity point in a generator vector")
        arr[i] = pk[0]
    return arr


def _array_addrs(arr: Any, count: int, start: int = 0, step: int = 1) -> np.ndarray:
    base = _addr(arr)
    idx = np.arange(start, start + step * count, step, dtype=np.uint64)[:count]
    return idx * np.uint64(_PK_SIZE) + np.uint64(base)


def _combine_addrs(addrs: np.ndarray) -> Any | None:
    """Sum of the points at ``addrs`` (one C call); None if empty or the identity."""
    n = len(addrs)
    if n == 0:
        return None
    addrs = np.ascontiguousarray(addrs, dtype=np.uint64)
    ptrs = ffi.from_buffer("secp256k1_pubkey *[]", addrs)
    out = ffi.new("secp256k1_pubkey *")
    _COUNTS["adds"] += n
    if lib.secp256k1_ec_pubkey_combine(_ctx(), out, ptrs, n) != 1:
        return None
    return out


def _msm_naive(addrs: np.ndarray, ks: Sequence[int]) -> Any | None:
    ctx = _ctx()
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
    return _combine_addrs(_array_addrs(tmp, len(ks))[used])


def _raw_matrix(addrs: np.ndarray) -> np.ndarray:
    """Copy the 64-byte structs at ``addrs`` into one (n, 64) uint8 matrix."""
    out = np.empty((len(addrs), _PK_SIZE), dtype=np.uint8)
    dst = ffi.from_buffer("secp256k1_pubkey[]", out)
    for i, a in enumerate(addrs.tolist()):
        dst[i] = ffi.cast("secp256k1_pubkey *", a)[0]
    return out


def _matrix_of(arr: Any, count: int) -> np.ndarray:
    """(count, 64) uint8 view of a raw array (no copy)."""
    return np.frombuffer(ffi.buffer(arr, count * _PK_SIZE), dtype=np.uint8).reshape(count, _PK_SIZE)


def _msm_addrs(addrs: np.ndarray, ks: Sequence[int]) -> Any | None:
    """``sum k_i * P_i`` for points given by address (non-identity) and ints in [0, n)."""
    if _window_bits(len(ks)) == 0:
        return _msm_naive(np.ascontiguousarray(addrs, dtype=np.uint64), ks)
    return _msm_matrix(_raw_matrix(addrs), ks)


def _window_bits(n: int) -> int:
    """Bucket window for an n-term MSM (0 = one multiplication per term), from the cost
    model ceil(256/c) * (n*t_add + 2^c*t_call + c*2^(c-1)*t_add) against n*t_mul with
    t_add ~ 0.3 us, t_call ~ 3.5 us (a combine call ends with a field inversion), t_mul ~ 26 us.
    """
    best_c, best = 0, 26.0 * n
    for c in range(3, 11):  # c <= 10 keeps digits in uint16 (numpy radix sort)
        cost = -(-256 // c) * (0.3 * n + 3.5 * (1 << c) + 0.3 * c * (1 << (c - 1)))
        if cost < best:
            best_c, best = c, cost
    return best_c


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


def _msm_matrix(raw: np.ndarray, ks: Sequence[int]) -> Any | None:
    """``sum k_i * P_i`` for points given as rows of a (n, 64) raw matrix; None = identity.

    Bucket (Pippenger) method with c-bit windows (c from :func:`_window_bits`): for each
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
    c = _window_bits(n)
    if c == 0:
        keep = np.ascontiguousarray(raw)
        base = _addr(ffi.from_buffer("secp256k1_pubkey[]", keep))
        addrs = np.arange(n, dtype=np.uint64) * np.uint64(_PK_SIZE) + np.uint64(base)
        return _msm_naive(addrs, ks)
    _COUNTS["msm_terms"] += n
    _COUNTS["msm_calls"] += 1
    ctx = _ctx()
    combine = lib.secp256k1_ec_pubkey_combine
    digits = _digits(ks, c)
    W = digits.shape[1]
    nb = 1 << c
    gathered = np.empty((n, _PK_SIZE), dtype=np.uint8)
    gbase = _addr(ffi.from_buffer("secp256k1_pubkey[]", gathered))
    ptr_addrs = np.arange(n, dtype=np.uint64) * np.uint64(_PK_SIZE) + np.uint64(gbase)
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


def _points_msm(ks: Sequence[int], points: Sequence[Point]) -> Point:
    """MSM over group Points with int scalars (any int; reduced mod n)."""
    addrs: list[int] = []
    kk: list[int] = []
    for k, P in zip(ks, points, strict=True):
        k %= _Q
        pk = _pk_of(P)
        if k == 0 or pk is None:
            continue
        addrs.append(_addr(pk))
        kk.append(k)
    return _to_point(_msm_addrs(np.array(addrs, dtype=np.uint64), kk))


# --------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------


#: SHA-256 of ``G_0..G_{N-1} || H_0..H_{N-1}`` (65-byte uncompressed SEC1 each) for every
#: power of two N: a disk-cached copy of the generators is used only if it hashes to this
#: pinned value, so a tampered cache cannot plant generators with known relations.
_GEN_DIGESTS: dict[int, str] = {
    1: "b4df7e68ed50b73dbca7c1bff9a7ca4765ec6af303c5cd178394dd2d08cd2f37",
    2: "9727183007a528375b345630e6842d0ffda7eed69ac1a0d28d199ced4151580a",
    4: "7c23bff51f77208543f457c1254c6a4610fc8c96b485c3d0b700babb3a68d17e",
    8: "db40d6d9be2cc9d8a41762bfd6e8e884a344709dd500d084a70cbdf5cf1bbdef",
    16: "c80c39f9fae5bf4c8673870cb41d38fecf6e29928fad828075402c16f1ede60e",
    32: "c25e881b94bc9f266ccc078ec3f42a335527f4081df69ef5da22fe256d44efd7",
    64: "17d26c06facfc679d3e431f0b32513c3e28befea9a5cb59ea5849ed75703fae8",
    128: "96fba30f0c6f0b40031dbc9f391d7b67260dd06b3691d23802365631d97c1209",
    256: "d2fb3603930ab9aec6b5457f6509a9be0b45a3f1353be61150dccf8e2a1da3aa",
    512: "e6c3378d003dc32feb1bca115254592caa792132df9b866dd04d417f9200867b",
    1024: "a14aa47f222c93c6d8b7a922a7b0d9f9b9be9998b9f79825715b0eeb054f3204",
    2048: "30d3a46b109a525818fa64d2f0c831866767b41f43a52eecf254f44a8d4283e2",
    4096: "4d2bd63e41cc415e48c7eec98cfbc513709086f5dd41471422fcb61bbde29d58",
    8192: "3bb6e52eed04323837d3c7a8715d1f049589cb43000a3cf05aa131edc2d4e6f4",
    16384: "dc832f7b4cea58b07922b8109231ed4b83ca1d502ab03cab2576c8f94316e916",
    32768: "b2793696285dd5c56f11270193e1427de7a2fe7b3511adf7a2f18387d2c6e10d",
}
_GEN_CACHE_NAME = "range-generators-v1-{N}.bin"
_UNCOMPRESSED = 65


def _uncompressed(pk: Any) -> bytes:
    out = ffi.new("unsigned char[65]")
    outlen = ffi.new("size_t *", _UNCOMPRESSED)
    lib.secp256k1_ec_pubkey_serialize(_ctx(), out, outlen, pk, lib.SECP256K1_EC_UNCOMPRESSED)
    return bytes(ffi.buffer(out, _UNCOMPRESSED))


def _generator_bytes(gvec: Any, hvec: Any, N: int) -> bytes:
    return b"".join(_uncompressed(gvec + i) for i in range(N)) + b"".join(
        _uncompressed(hvec + i) for i in range(N)
    )


def _cache_file(N: int) -> Path:
    from statledger.proofs.dlog import cache_dir

    return cache_dir() / _GEN_CACHE_NAME.format(N=N)


def _load_cached_generators(N: int) -> tuple[Any, Any] | None:
    digest = _GEN_DIGESTS.get(N)
    if digest is None:
        return None
    try:
        data = _cache_file(N).read_bytes()
    except OSError:
        return None
    if len(data) != 2 * N * _UNCOMPRESSED or hashlib.sha256(data).hexdigest() != digest:
        return None
    arrays = []
    for half in (0, 1):
        arr = ffi.new("secp256k1_pubkey[]", N)
        base = half * N * _UNCOMPRESSED
        for i in range(N):
            off = base + i * _UNCOMPRESSED
            enc = data[off : off + _UNCOMPRESSED]
            if lib.secp256k1_ec_pubkey_parse(_ctx(), arr + i, enc, _UNCOMPRESSED) != 1:
                return None  # pragma: no cover - the digest matched
        arrays.append(arr)
    return arrays[0], arrays[1]


def _store_cached_generators(N: int, gvec: Any, hvec: Any) -> None:
    digest = _GEN_DIGESTS.get(N)
    if digest is None:
        return
    data = _generator_bytes(gvec, hvec, N)
    if hashlib.sha256(data).hexdigest() != digest:
        _LOG.warning("range generators do not match the pinned digest for N=%d", N)
        return
    path = _cache_file(N)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        return


class _Gens:
    """G_0..G_{N-1}, H_0..H_{N-1} as contiguous raw arrays (cached, grown on demand).

    Derived by RFC 9380 hash-to-curve (``statledger.proofs.group.generators``, ~0.26 ms each), or
    read
    from the disk cache when the file's SHA-256 equals the pinned digest for that N.
    """

    def __init__(self) -> None:
        self.n = 0
        self.gvec: Any = None
        self.hvec: Any = None
        self.Q: Point | None = None
        self._lock = threading.Lock()

    def get(self, N: int) -> tuple[Any, Any, Point]:
        if self.Q is not None and N <= self.n:
            return self.gvec, self.hvec, self.Q
        with self._lock:  # one derivation even when server threads ask at once
            return self._grow(N)

    def _grow(self, N: int) -> tuple[Any, Any, Point]:
        if self.Q is None:
            self.Q = generator(_LABEL_Q)
        if N > self.n:
            size = max(N, 2 * self.n)
            loaded = _load_cached_generators(size)
            if loaded is None:
                gvec = _array_from_points(generators(_LABEL_GVEC, size))
                hvec = _array_from_points(generators(_LABEL_HVEC, size))
                _store_cached_generators(size, gvec, hvec)
            else:
                gvec, hvec = loaded
            self.gvec, self.hvec, self.n = gvec, hvec, size
        return self.gvec, self.hvec, self.Q


_GENS = _Gens()


def warm_up(N: int) -> None:
    """Derive (and cache) the first ``N`` generators of each vector now (~0.26 ms each)."""
    _GENS.get(N)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _bits_for(span: int) -> int:
    return max(1, span.bit_length())


@dataclass(frozen=True)
class RangeLayout:
    """Public shape of a statement, derived from the spans ``w_j = hi_j - lo_j`` only.

    ``segments[k] = (width, j, i)``: limb ``i`` of value ``j``, or ``i = -1`` for the
    upper-bound segment ``w_j - u_j`` of value ``j``.  ``N`` = total bits padded to a power
    of two, ``rounds = log2 N``.
    """

    spans: tuple[int, ...]
    bits: tuple[int, ...]
    n_limbs: tuple[int, ...]
    segments: tuple[tuple[int, int, int], ...]
    total_bits: int
    N: int
    rounds: int

    @classmethod
    def from_spans(cls, spans: Sequence[int]) -> RangeLayout:
        if len(spans) == 0:
            raise MalformedError("a range proof needs at least one value")
        bits: list[int] = []
        nl: list[int] = []
        segs: list[tuple[int, int, int]] = []
        for j, w in enumerate(spans):
            if isinstance(w, bool) or not isinstance(w, int):
                raise MalformedError(f"value {j}: span must be an int")
            if w < 0:
                raise MalformedError(f"value {j}: empty range (hi < lo)")
            b = _bits_for(w)
            if b > MAX_BITS:
                raise MalformedError(f"value {j}: range wider than 2^{MAX_BITS}")
            n = -(-b // LIMB_BITS)
            bits.append(b)
            nl.append(n)
            for i in range(n):
                width = LIMB_BITS if i < n - 1 else b - LIMB_BITS * (n - 1)
                segs.append((width, j, i))
            if w + 1 != 1 << b:
                segs.append((b, j, -1))
        total = sum(s[0] for s in segs)
        N = 1
        while N < total:
            N *= 2
        return cls(
            spans=tuple(spans),
            bits=tuple(bits),
            n_limbs=tuple(nl),
            segments=tuple(segs),
            total_bits=total,
            N=N,
            rounds=N.bit_length() - 1,
        )

    @property
    def total_limbs(self) -> int:
        return sum(self.n_limbs)


# --------------------------------------------------------------------------------------------
# Proof object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeProof:
    """Bulletproofs fields (``A, S, T1, T2, tau_x, mu, t_hat, L, R, a, b``) and the linking
    proof (``A1, A2, A3, z_a, z_b, z_c``).  Encoding: the fields in this order, points 33
    bytes, scalars 32 bytes, ``L_1, R_1, ..., L_r, R_r`` interleaved."""

    A: Point
    S: Point
    T1: Point
    T2: Point
    tau_x: Scalar
    mu: Scalar
    t_hat: Scalar
    L: tuple[Point, ...]
    R: tuple[Point, ...]
    a: Scalar
    b: Scalar
    A1: Point
    A2: Point
    A3: Point
    z_a: Scalar
    z_b: Scalar
    z_c: Scalar

    @staticmethod
    def encoded_size(rounds: int) -> int:
        return 7 * _POINT + 8 * _SCALAR + 2 * rounds * _POINT

    @property
    def rounds(self) -> int:
        return len(self.L)

    def to_bytes(self) -> bytes:
        parts = [self.A.to_bytes(), self.S.to_bytes(), self.T1.to_bytes(), self.T2.to_bytes()]
        parts += [self.tau_x.to_bytes(), self.mu.to_bytes(), self.t_hat.to_bytes()]
        for Lk, Rk in zip(self.L, self.R, strict=True):
            parts += [Lk.to_bytes(), Rk.to_bytes()]
        parts += [self.a.to_bytes(), self.b.to_bytes()]
        parts += [self.A1.to_bytes(), self.A2.to_bytes(), self.A3.to_bytes()]
        parts += [self.z_a.to_bytes(), self.z_b.to_bytes(), self.z_c.to_bytes()]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, rounds: int) -> RangeProof:
        """Strict: exactly ``encoded_size(rounds)`` bytes, canonical points and scalars."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("range proof must be bytes")
        data = bytes(data)
        if len(data) != cls.encoded_size(rounds):
            raise MalformedError(
                f"range proof must be {cls.encoded_size(rounds)} bytes, got {len(data)}"
            )
        pos = 0

        def pt() -> Point:
            nonlocal pos
            P = Point.from_bytes(data[pos : pos + _POINT])
            pos += _POINT
            return P

        def sc() -> Scalar:
            nonlocal pos
            s = Scalar.from_bytes(data[pos : pos + _SCALAR])
            pos += _SCALAR
            return s

        A, S, T1, T2 = pt(), pt(), pt(), pt()
        tau_x, mu, t_hat = sc(), sc(), sc()
        Ls: list[Point] = []
        Rs: list[Point] = []
        for _ in range(rounds):
            Ls.append(pt())
            Rs.append(pt())
        a, b = sc(), sc()
        A1, A2, A3 = pt(), pt(), pt()
        z_a, z_b, z_c = sc(), sc(), sc()
        return cls(
            A, S, T1, T2, tau_x, mu, t_hat, tuple(Ls), tuple(Rs), a, b, A1, A2, A3, z_a, z_b, z_c
        )


# --------------------------------------------------------------------------------------------
# Shared transcript steps
# --------------------------------------------------------------------------------------------


def _begin(t: Transcript, layout: RangeLayout) -> None:
    t.append_message(b"proof", PROOF_LABEL)
    t.append_int(b"limb_bits", LIMB_BITS)
    t.append_int(b"N", layout.N)


def _challenge(t: Transcript, label: bytes) -> int:
    return int(t.challenge_scalar(label))


def _segment_weights(layout: RangeLayout, z: int) -> tuple[list[int], list[int]]:
    """``zk[k] = z^(2+k)`` per segment and the bit-weight vector ``d`` (length N)."""
    zk: list[int] = []
    d: list[int] = []
    zp = z * z % _Q
    for width, _j, _i in layout.segments:
        zk.append(zp)
        v = zp
        for _ in range(width):
            d.append(v)
            v = 2 * v % _Q
        zp = zp * z % _Q
    d.extend([0] * (layout.N - len(d)))
    return zk, d


def _powers(base: int, count: int) -> list[int]:
    out = [1] * count
    v = 1
    for i in range(1, count):
        v = v * base % _Q
        out[i] = v
    return out


def _sum_one(layout: RangeLayout, y: int) -> int:
    """``<1, y^N>``."""
    N = layout.N
    if y == 1:
        return N % _Q
    return (pow(y, N, _Q) - 1) * pow(y - 1, -1, _Q) % _Q


# --------------------------------------------------------------------------------------------
# Prover
# --------------------------------------------------------------------------------------------


_POOL: ProcessPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ProcessPoolExecutor:
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


def _raw_bytes(pk: Any | None) -> bytes:
    return b"" if pk is None else bytes(ffi.buffer(pk, _PK_SIZE))


def _raw_from_bytes(data: bytes) -> Any | None:
    if not data:
        return None
    pk = ffi.new("secp256k1_pubkey *")
    ffi.memmove(pk, data, _PK_SIZE)
    return pk


def _add_raw(p: Any | None, q: Any | None) -> Any | None:
    if p is None:
        return q
    if q is None:
        return p
    out = ffi.new("secp256k1_pubkey *")
    if (
        lib.secp256k1_ec_pubkey_combine(_ctx(), out, ffi.new("secp256k1_pubkey *[2]", [p, q]), 2)
        != 1
    ):
        return None
    return out


def _msm_job(raw: bytes, ks: bytes) -> tuple[bytes, dict[str, int]]:
    """Helper-process MSM: raw 64-byte rows and 32-byte big-endian scalars."""
    reset_counters()
    n = len(ks) // _SCALAR
    mat = np.frombuffer(raw, dtype=np.uint8).reshape(n, _PK_SIZE)
    kl = [int.from_bytes(ks[_SCALAR * i : _SCALAR * (i + 1)], "big") for i in range(n)]
    return _raw_bytes(_msm_matrix(mat, kl)), counters()


def _fold_job(lo: bytes, hi: bytes, e: int) -> tuple[bytes, dict[str, int]]:
    reset_counters()
    return _fold_raw(lo, hi, e), counters()


def _merge_counts(c: dict[str, int]) -> None:
    for k, v in c.items():
        _COUNTS[k] += v


def _submit_msm(raw: np.ndarray, ks: Sequence[int]) -> Future[tuple[bytes, dict[str, int]]]:
    return _pool().submit(
        _msm_job,
        np.ascontiguousarray(raw).tobytes(),
        b"".join(k.to_bytes(_SCALAR, "big") for k in ks),
    )


def _msm_par(raw: np.ndarray, ks: Sequence[int]) -> Any | None:
    """:func:`_msm_matrix`, split in two halves (helper + caller) when large."""
    n = len(ks)
    if n < get_settings().range_msm_threshold or not _parallel():
        return _msm_matrix(raw, ks)
    h = n // 2
    fut = _submit_msm(raw[h:], ks[h:])
    mine = _msm_matrix(raw[:h], ks[:h])
    theirs, cnt = fut.result()
    _merge_counts(cnt)
    return _add_raw(mine, _raw_from_bytes(theirs))


def _fold_raw(lo: bytes, hi: bytes, e: int) -> bytes:
    """``lo_i + e*hi_i`` for raw 64-byte structs (one multiplication per pair)."""
    ctx = _ctx()
    n = len(lo) // _PK_SIZE
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
    return bytes(ffi.buffer(out, n * _PK_SIZE))


def _rows(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(len(data) // _PK_SIZE, _PK_SIZE)


def _inner(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True)) % _Q


def _rand() -> int:
    return secrets.randbelow(_Q - 1) + 1


def _rand_vector(count: int) -> list[int]:
    """``count`` uniform scalars: 512 random bits each reduced mod n (bias < 2^-256)."""
    data = secrets.token_bytes(64 * count)
    return [int.from_bytes(data[64 * i : 64 * i + 64], "big") % _Q for i in range(count)]


def prove_range_and_link(
    t: Transcript,
    X: Point,
    layout: RangeLayout,
    limbs: Sequence[Sequence[int]],
    blinds: Sequence[Sequence[int]],
    rands: Sequence[Sequence[int]],
) -> RangeProof:
    """Prove the relation of the module docstring.

    ``t`` has already absorbed the statement (context, X, ranges, ciphertexts, commitments);
    ``limbs[j][i] = m_ji``, ``blinds[j][i] = s_ji``, ``rands[j][i] = r_ji``.  The caller
    checks the values; this function proves whatever bits the limbs have (a limb outside its
    segment width gives a proof that does not verify -- never a proof of a false statement).
    """
    if len(limbs) != len(layout.spans):
        raise ValueError("witness does not match the layout")
    _begin(t, layout)
    N = layout.N
    gvec, hvec, Qp = _GENS.get(N)
    # Segment values and blindings.
    seg_vals: list[int] = []
    seg_blinds: list[int] = []
    for _width, j, i in layout.segments:
        if i >= 0:
            seg_vals.append(limbs[j][i])
            seg_blinds.append(blinds[j][i] % _Q)
        else:
            u = sum(m << (LIMB_BITS * ii) for ii, m in enumerate(limbs[j]))
            seg_vals.append(layout.spans[j] - u)
            sb = sum(s << (LIMB_BITS * ii) for ii, s in enumerate(blinds[j]))
            seg_blinds.append(-sb % _Q)
    aL: list[int] = []
    for (width, _j, _i), v in zip(layout.segments, seg_vals, strict=True):
        vv = v % (1 << width)  # an out-of-range value keeps only its low bits: no valid proof
        aL.extend((vv >> k) & 1 for k in range(width))
    aL.extend([0] * (N - len(aL)))
    aL_np = np.array(aL, dtype=bool)

    # (1) A = alpha*H + sum_{aL=1} G_i - sum_{aL=0} H_i  (additions only, no multiplications)
    alpha = _rand()
    g_all = _array_addrs(gvec, N)
    h_all = _array_addrs(hvec, N)
    ones = _to_point(_combine_addrs(g_all[aL_np]))
    zeros = _to_point(_combine_addrs(h_all[~aL_np]))
    A = H * Scalar(alpha) + ones - zeros
    # (2) S = rho*H + <sL, G> + <sR, H>
    sL = _rand_vector(N)
    sR = _rand_vector(N)
    rho = _rand()
    Gm, Hm = _matrix_of(gvec, N), _matrix_of(hvec, N)
    S = H * Scalar(rho) + _to_point(_msm_par(np.concatenate((Gm, Hm)), sL + sR))
    t.append_point(b"A", A)
    t.append_point(b"S", S)
    y = _challenge(t, b"y")
    z = _challenge(t, b"z")
    if y == 0 or z == 0:
        raise ArithmeticError("zero challenge")  # pragma: no cover - probability 2^-256
    zk, d = _segment_weights(layout, z)
    yN = _powers(y, N)
    # l(X) = l0 + l1 X, r(X) = r0 + r1 X
    l0 = [(bit - z) % _Q for bit in aL]
    r0 = [(yi * (bit - 1 + z) + di) % _Q for yi, bit, di in zip(yN, aL, d, strict=True)]
    r1 = [yi * si % _Q for yi, si in zip(yN, sR, strict=True)]
    t1 = (_inner(l0, r1) + _inner(sL, r0)) % _Q
    t2 = _inner(sL, r1)
    tau1, tau2 = _rand(), _rand()
    T1 = _points_msm([t1, tau1], [G, H])
    T2 = _points_msm([t2, tau2], [G, H])
    t.append_point(b"T1", T1)
    t.append_point(b"T2", T2)
    x = _challenge(t, b"x")
    if x == 0:
        raise ArithmeticError("zero challenge")  # pragma: no cover
    tau_x = tau2 * x * x + tau1 * x + sum(zz * g for zz, g in zip(zk, seg_blinds, strict=True))
    tau_x %= _Q
    mu = (alpha + rho * x) % _Q
    av = [(u + v * x) % _Q for u, v in zip(l0, sL, strict=True)]
    bv = [(u + v * x) % _Q for u, v in zip(r0, r1, strict=True)]
    t_hat = _inner(av, bv)
    t.append_scalar(b"tau_x", Scalar(tau_x))
    t.append_scalar(b"mu", Scalar(mu))
    t.append_scalar(b"t_hat", Scalar(t_hat))
    w = _challenge(t, b"w")
    Qw = Qp * Scalar(w)
    q_row = _raw_matrix(np.array([_addr(_pk_of(Qw))], dtype=np.uint64))
    # (3) inner-product argument, even/odd folding; generator vectors kept as raw rows
    # Gm, Hm with scalings G'_i = fG * rG^i * Gm_i, H'_i = fH * rH^i * Hm_i.
    fG, rG = 1, 1
    fH, rH = 1, pow(y, -1, _Q)
    n = N
    Ls: list[Point] = []
    Rs: list[Point] = []
    knobs = get_settings()
    par = _parallel() and N >= knobs.range_fold_threshold
    while n > 1:
        half = n // 2
        cG = [fG * c % _Q for c in _powers(rG, n)]
        cH = [fH * c % _Q for c in _powers(rH, n)]
        a_lo, a_hi = av[0::2], av[1::2]
        b_lo, b_hi = bv[0::2], bv[1::2]
        kL = [x1 * c % _Q for x1, c in zip(a_lo, cG[1::2], strict=True)]
        kL += [x1 * c % _Q for x1, c in zip(b_hi, cH[0::2], strict=True)]
        kL.append(_inner(a_lo, b_hi))
        matL = np.concatenate((Gm[1::2], Hm[0::2], q_row))
        # L goes to the helper process (if large) while this process computes R.
        futL = _submit_msm(matL, kL) if par and n >= knobs.range_msm_threshold else None
        kR = [x1 * c % _Q for x1, c in zip(a_hi, cG[0::2], strict=True)]
        kR += [x1 * c % _Q for x1, c in zip(b_lo, cH[1::2], strict=True)]
        kR.append(_inner(a_hi, b_lo))
        rawR = _msm_matrix(np.concatenate((Gm[0::2], Hm[1::2], q_row)), kR)
        if futL is None:
            rawL = _msm_matrix(matL, kL)
        else:
            dataL, cnt = futL.result()
            _merge_counts(cnt)
            rawL = _raw_from_bytes(dataL)
        Lk, Rk = _to_point(rawL), _to_point(rawR)
        Ls.append(Lk)
        Rs.append(Rk)
        t.append_point(b"L", Lk)
        t.append_point(b"R", Rk)
        u = _challenge(t, b"u")
        if u == 0:
            raise ArithmeticError("zero challenge")  # pragma: no cover
        ui = pow(u, -1, _Q)
        # G'new_i = u^-1 G'_2i + u G'_2i+1 = u^-1 fG rG^2i (Gm_2i + u^2 rG Gm_2i+1)
        # H'new_i = u H'_2i + u^-1 H'_2i+1 = u fH rH^2i (Hm_2i + u^-2 rH Hm_2i+1)
        eG, eH = u * u * rG % _Q, ui * ui * rH % _Q
        futG = None
        if half > 1 and par and half >= knobs.range_fold_threshold:
            futG = _pool().submit(_fold_job, Gm[0::2].tobytes(), Gm[1::2].tobytes(), eG)
        av = [(p * u + q * ui) % _Q for p, q in zip(a_lo, a_hi, strict=True)]
        bv = [(p * ui + q * u) % _Q for p, q in zip(b_lo, b_hi, strict=True)]
        if half > 1:
            Hm = _rows(_fold_raw(Hm[0::2].tobytes(), Hm[1::2].tobytes(), eH))
            if futG is None:
                Gm = _rows(_fold_raw(Gm[0::2].tobytes(), Gm[1::2].tobytes(), eG))
            else:
                dataG, cnt = futG.result()
                _merge_counts(cnt)
                Gm = _rows(dataG)
            fG, rG = fG * ui % _Q, rG * rG % _Q
            fH, rH = fH * u % _Q, rH * rH % _Q
        n = half
    a_fin, b_fin = av[0], bv[0]
    # (4) linking proof on the folded statement
    m_flat = [m for row in limbs for m in row]
    s_flat = [s for row in blinds for s in row]
    r_flat = [r for row in rands for r in row]
    rhos = [int(c) for c in t.challenge_scalars(b"rho", len(m_flat))]
    fa = sum(p * m for p, m in zip(rhos, m_flat, strict=True)) % _Q
    fb = sum(p * s for p, s in zip(rhos, s_flat, strict=True)) % _Q
    fc = sum(p * r for p, r in zip(rhos, r_flat, strict=True)) % _Q
    ka, kb, kc = _rand(), _rand(), _rand()
    A1 = _points_msm([ka, kb], [G, H])
    A2 = _points_msm([kc], [G])
    A3 = _points_msm([ka, kc], [G, X])
    t.append_point(b"A1", A1)
    t.append_point(b"A2", A2)
    t.append_point(b"A3", A3)
    e = _challenge(t, b"e")
    return RangeProof(
        A=A,
        S=S,
        T1=T1,
        T2=T2,
        tau_x=Scalar(tau_x),
        mu=Scalar(mu),
        t_hat=Scalar(t_hat),
        L=tuple(Ls),
        R=tuple(Rs),
        a=Scalar(a_fin),
        b=Scalar(b_fin),
        A1=A1,
        A2=A2,
        A3=A3,
        z_a=Scalar((ka + e * fa) % _Q),
        z_b=Scalar((kb + e * fb) % _Q),
        z_c=Scalar((kc + e * fc) % _Q),
    )


# --------------------------------------------------------------------------------------------
# Verifier: one multi-scalar multiplication (paper section 6.2) plus the linking equations
# --------------------------------------------------------------------------------------------


@dataclass
class VerificationTerms:
    """``sum`` of the terms must be the identity.  Scalars are ints mod n.

    ``g, h, q``: coefficients of G, H and Q; ``gv, hv``: of the generator vectors;
    ``pts``: (coefficient, point) for every other point.
    """

    g: int
    h: int
    q: int
    gv: list[int]
    hv: list[int]
    pts: list[tuple[int, Point]]

    @classmethod
    def empty(cls) -> VerificationTerms:
        return cls(0, 0, 0, [], [], [])

    def add(self, other: VerificationTerms, weight: int = 1) -> None:
        self.g = (self.g + weight * other.g) % _Q
        self.h = (self.h + weight * other.h) % _Q
        self.q = (self.q + weight * other.q) % _Q
        for mine, theirs in ((self.gv, other.gv), (self.hv, other.hv)):
            if len(mine) < len(theirs):
                mine.extend([0] * (len(theirs) - len(mine)))
            if weight == 1:
                for i, v in enumerate(theirs):
                    mine[i] = (mine[i] + v) % _Q
            else:
                for i, v in enumerate(theirs):
                    mine[i] = (mine[i] + weight * v) % _Q
        if weight == 1:
            self.pts.extend(other.pts)
        else:
            self.pts.extend((weight * k % _Q, P) for k, P in other.pts)


def _fail(step: str, reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=step, party=party)


def range_and_link_terms(
    t: Transcript,
    X: Point,
    layout: RangeLayout,
    commitments: Sequence[Sequence[Point]],
    c1: Sequence[Sequence[Point]],
    c2: Sequence[Sequence[Point]],
    proof: RangeProof,
    *,
    party: str | None = None,
) -> tuple[VerificationTerms, VerificationTerms]:
    """Recompute every challenge and return (range terms, linking terms), each of which sums
    to the identity iff its equations hold (each already combined with verifier-random
    weights).  Raises :class:`VerificationError` for structural failures."""
    if proof.rounds != layout.rounds:
        raise _fail("range-proof", "wrong number of inner-product rounds", party)
    shape = list(layout.n_limbs)
    for name, rows in (("commitments", commitments), ("c1", c1), ("c2", c2)):
        if [len(r) for r in rows] != shape:
            raise _fail("range-proof", f"{name} do not match the ranges' limb layout", party)
    _begin(t, layout)
    N = layout.N
    t.append_point(b"A", proof.A)
    t.append_point(b"S", proof.S)
    y = _challenge(t, b"y")
    z = _challenge(t, b"z")
    t.append_point(b"T1", proof.T1)
    t.append_point(b"T2", proof.T2)
    x = _challenge(t, b"x")
    t.append_scalar(b"tau_x", proof.tau_x)
    t.append_scalar(b"mu", proof.mu)
    t.append_scalar(b"t_hat", proof.t_hat)
    w = _challenge(t, b"w")
    us: list[int] = []
    for Lk, Rk in zip(proof.L, proof.R, strict=True):
        t.append_point(b"L", Lk)
        t.append_point(b"R", Rk)
        us.append(_challenge(t, b"u"))
    if 0 in (y, z, x, w) or 0 in us:
        raise _fail("range-proof", "zero challenge", party)
    total_limbs = layout.total_limbs
    rhos = [int(c) for c in t.challenge_scalars(b"rho", total_limbs)]
    t.append_point(b"A1", proof.A1)
    t.append_point(b"A2", proof.A2)
    t.append_point(b"A3", proof.A3)
    e = _challenge(t, b"e")

    t_hat, tau_x, mu = int(proof.t_hat), int(proof.tau_x), int(proof.mu)
    a, b = int(proof.a), int(proof.b)
    zk, d = _segment_weights(layout, z)
    # delta(y, z) = (z - z^2) <1, y^N> - z <1, d>
    delta = ((z - z * z) * _sum_one(layout, y) - z * (sum(d) % _Q)) % _Q

    # --- equation 1 (polynomial identity), weight c1:
    # (t_hat - delta) G + tau_x H - sum_k z^(2+k) V_k - x T1 - x^2 T2 = 0
    c1w = secrets.randbits(128) | 1
    rng = VerificationTerms.empty()
    rng.g = c1w * (t_hat - delta) % _Q
    rng.h = c1w * tau_x % _Q
    vcoef: list[list[int]] = [[0] * n for n in layout.n_limbs]
    for zz, (_width, j, i) in zip(zk, layout.segments, strict=True):
        if i >= 0:
            vcoef[j][i] = (vcoef[j][i] - zz) % _Q
        else:  # V'_j = w_j G - sum_i 2^(16 i) V_ji
            rng.g = (rng.g - c1w * zz * layout.spans[j]) % _Q
            for ii in range(layout.n_limbs[j]):
                vcoef[j][ii] = (vcoef[j][ii] + zz * (1 << (LIMB_BITS * ii))) % _Q
    for j, row in enumerate(commitments):
        for i, V in enumerate(row):
            rng.pts.append((c1w * vcoef[j][i] % _Q, V))
    rng.pts.append((-c1w * x % _Q, proof.T1))
    rng.pts.append((-c1w * x * x % _Q, proof.T2))

    # --- equation 2 (inner product), weight 1:
    # A + xS - mu H + w(t_hat - ab) Q + sum (-z - a s_i) G_i
    #   + sum (z + y^-i (d_i - b s_i^-1)) H_i + sum (u_k^2 L_k + u_k^-2 R_k) = 0
    s = [1]
    uinv = [pow(u, -1, _Q) for u in us]
    s = [1]
    base = 1
    for ui in uinv:
        base = base * ui % _Q
    s[0] = base
    for u in us:  # round k uses bit k-1 of the index (even/odd folding)
        u2 = u * u % _Q
        s = s + [v * u2 % _Q for v in s]
    yinv = pow(y, -1, _Q)
    yinvN = _powers(yinv, N)
    rng.h = (rng.h - mu) % _Q
    rng.q = w * (t_hat - a * b) % _Q
    rng.gv = [(-z - a * si) % _Q for si in s]
    rng.hv = [
        (z + yi * (di - b * s[N - 1 - i])) % _Q
        for i, (yi, di) in enumerate(zip(yinvN, d, strict=True))
    ]
    rng.pts.append((1, proof.A))
    rng.pts.append((x, proof.S))
    for u, ui, Lk, Rk in zip(us, uinv, proof.L, proof.R, strict=True):
        rng.pts.append((u * u % _Q, Lk))
        rng.pts.append((ui * ui % _Q, Rk))

    # --- linking equations, weights c3, c4, c5:
    # z_a G + z_b H - A1 - e sum rho V = 0
    # z_c G - A2 - e sum rho C1 = 0
    # z_a G + z_c X - A3 - e sum rho C2 = 0
    za, zb, zc = int(proof.z_a), int(proof.z_b), int(proof.z_c)
    c3, c4, c5 = (secrets.randbits(128) for _ in range(3))
    lk = VerificationTerms.empty()
    lk.g = (c3 * za + c4 * zc + c5 * za) % _Q
    lk.h = c3 * zb % _Q
    lk.pts += [(-c3 % _Q, proof.A1), (-c4 % _Q, proof.A2), (-c5 % _Q, proof.A3)]
    lk.pts.append((c5 * zc % _Q, X))
    k = 0
    for j in range(len(layout.spans)):
        for i in range(layout.n_limbs[j]):
            er = e * rhos[k] % _Q
            lk.pts.append((-c3 * er % _Q, commitments[j][i]))
            lk.pts.append((-c4 * er % _Q, c1[j][i]))
            lk.pts.append((-c5 * er % _Q, c2[j][i]))
            k += 1
    return rng, lk


def _terms_is_identity(terms: VerificationTerms) -> bool:
    N = max(len(terms.gv), len(terms.hv))
    ks: list[int] = []
    mats: list[np.ndarray] = []
    if N:
        gvec, hvec, _ = _GENS.get(N)
        ks = terms.gv + [0] * (N - len(terms.gv)) + terms.hv + [0] * (N - len(terms.hv))
        mats = [_matrix_of(gvec, N), _matrix_of(hvec, N)]
    _, _, Qp = _GENS.get(1)
    extra_a: list[int] = []
    for k, P in [(terms.g, G), (terms.h, H), (terms.q, Qp), *terms.pts]:
        k %= _Q
        pk = _pk_of(P)
        if k == 0 or pk is None:
            continue
        ks.append(k)
        extra_a.append(_addr(pk))
    mats.append(_raw_matrix(np.array(extra_a, dtype=np.uint64)))
    return _msm_par(np.concatenate(mats), ks) is None


def check_terms(rng: VerificationTerms, lk: VerificationTerms, *, party: str | None = None) -> None:
    """One MSM for both parts; if it fails, a second look names the failing part."""
    both = VerificationTerms.empty()
    both.add(rng)
    both.add(lk)
    if _terms_is_identity(both):
        return
    if not _terms_is_identity(rng):
        raise _fail("range-proof", "range proof equations do not hold", party)
    raise _fail("link-proof", "commitments and ciphertexts are not linked", party)


def verify_range_and_link(
    t: Transcript,
    X: Point,
    layout: RangeLayout,
    commitments: Sequence[Sequence[Point]],
    c1: Sequence[Sequence[Point]],
    c2: Sequence[Sequence[Point]],
    proof: RangeProof,
    *,
    party: str | None = None,
) -> None:
    """Verify (raises :class:`VerificationError`, step ``range-proof`` or ``link-proof``)."""
    rng, lk = range_and_link_terms(t, X, layout, commitments, c1, c2, proof, party=party)
    check_terms(rng, lk, party=party)
