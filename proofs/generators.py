"""The range proof's generator vectors ``G_0.., H_0..`` and ``Q``: derivation and disk cache.

Every generator is derived by RFC 9380 hash-to-curve from a public label and its index
(:func:`statledger.proofs.group.generators`), so nobody knows a relation between them.
Deriving 2 x 8192 of them takes about 4 s, so they are cached on disk
(``<settings.cache>/range-generators-v1-<N>.bin``, uncompressed SEC1) -- but a cached file is
used only if its SHA-256 equals the digest pinned below for that N: a tampered or truncated
cache is ignored and the generators are derived again, so a writer of the cache folder
cannot plant generators with known relations (which would let it forge range proofs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from coincurve._libsecp256k1 import ffi, lib

from statledger.proofs.group import Point, generator, generators
from statledger.proofs.msm import array_from_points, secp_ctx

__all__ = [
    "GEN_DIGESTS",
    "GENS",
    "LABEL_GVEC",
    "LABEL_HVEC",
    "LABEL_Q",
    "Gens",
    "generator_bytes",
    "load_cached_generators",
    "warm_up",
]

LABEL_GVEC = b"statledger/range/v1/G"
LABEL_HVEC = b"statledger/range/v1/H"
LABEL_Q = b"statledger/range/v1/Q"

_LOG = logging.getLogger(__name__)


#: SHA-256 of ``G_0..G_{N-1} || H_0..H_{N-1}`` (65-byte uncompressed SEC1 each) for every
#: power of two N: a disk-cached copy of the generators is used only if it hashes to this
#: pinned value, so a tampered cache cannot plant generators with known relations.
GEN_DIGESTS: dict[int, str] = {
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


def uncompressed(pk: Any) -> bytes:
    out = ffi.new("unsigned char[65]")
    outlen = ffi.new("size_t *", _UNCOMPRESSED)
    lib.secp256k1_ec_pubkey_serialize(secp_ctx(), out, outlen, pk, lib.SECP256K1_EC_UNCOMPRESSED)
    return bytes(ffi.buffer(out, _UNCOMPRESSED))


def generator_bytes(gvec: Any, hvec: Any, N: int) -> bytes:
    """``G_0..G_{N-1} || H_0..H_{N-1}``, 65-byte uncompressed SEC1 each (the cache file)."""
    return b"".join(uncompressed(gvec + i) for i in range(N)) + b"".join(
        uncompressed(hvec + i) for i in range(N)
    )


def cache_file(N: int) -> Path:
    from statledger.proofs.dlog import cache_dir

    return cache_dir() / _GEN_CACHE_NAME.format(N=N)


def load_cached_generators(N: int) -> tuple[Any, Any] | None:
    """The cached vectors of size N, or None if absent, not pinned or not matching its digest."""
    digest = GEN_DIGESTS.get(N)
    if digest is None:
        return None
    try:
        data = cache_file(N).read_bytes()
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
            if lib.secp256k1_ec_pubkey_parse(secp_ctx(), arr + i, enc, _UNCOMPRESSED) != 1:
                return None  # pragma: no cover - the digest matched
        arrays.append(arr)
    return arrays[0], arrays[1]


def store_cached_generators(N: int, gvec: Any, hvec: Any) -> None:
    digest = GEN_DIGESTS.get(N)
    if digest is None:
        return
    data = generator_bytes(gvec, hvec, N)
    if hashlib.sha256(data).hexdigest() != digest:
        _LOG.warning("range generators do not match the pinned digest for N=%d", N)
        return
    path = cache_file(N)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        return


class Gens:
    """G_0..G_{N-1}, H_0..H_{N-1} as contiguous raw arrays (cached, grown on demand).

    Derived by RFC 9380 hash-to-curve (``statledger.proofs.group.generators``, ~0.26 ms each),
    or read from the disk cache when the file's SHA-256 equals the pinned digest for that N.
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
            self.Q = generator(LABEL_Q)
        if N > self.n:
            size = max(N, 2 * self.n)
            loaded = load_cached_generators(size)
            if loaded is None:
                gvec = array_from_points(generators(LABEL_GVEC, size))
                hvec = array_from_points(generators(LABEL_HVEC, size))
                store_cached_generators(size, gvec, hvec)
            else:
                gvec, hvec = loaded
            self.gvec, self.hvec, self.n = gvec, hvec, size
        return self.gvec, self.hvec, self.Q


GENS = Gens()


def warm_up(N: int) -> None:
    """Derive (and cache) the first ``N`` generators of each vector now (~0.26 ms each)."""
    GENS.get(N)
