"""Batched proof of correct plaintext--ciphertext multiplication (vertically partitioned data).

Math, notation and costs: ``docs/notes/mulproof.md``.

Relation proved.  Public: the collective ElGamal key ``X``, a matrix of ciphertexts
``K[r][i] = (K1_ri, K2_ri)`` (``r < n`` rows, ``i < m`` columns; one owner's encrypted
per-row values) and the products ``D[i][j] = (D1_ij, D2_ij)`` (``j < k``).  The prover knows
integers ``y_jr`` (the other owner's per-row values, one vector per ``j``) and scalars
``rho_ij`` with, for every ``i`` and ``j``,

    ``D_ij = sum_r y_jr * K_ri + (rho_ij*G, rho_ij*X)``,

i.e. ``D_ij`` encrypts ``sum_r y_jr * m_ri`` (``m_ri`` the plaintext of ``K_ri``), freshly
re-randomised.  The same vector ``y_j`` is used for every column ``i``: one response vector
per ``j`` binds all ``m`` products of that vector.

Sigma protocol (Schnorr-style proof of a linear relation, made non-interactive by strong
Fiat--Shamir).  The prover picks ``a_jr`` and ``sigma_ij`` uniformly, sends

    ``T_ij = sum_r a_jr * K_ri + (sigma_ij*G, sigma_ij*X)``,

gets ``e`` from the transcript and answers ``z_jr = a_jr + e*y_jr``, ``tau_ij = sigma_ij +
e*rho_ij`` (mod the group order).  The verifier checks, for every ``i, j`` and both
components,

    ``sum_r z_jr * K_ri + tau_ij*(G, X) == T_ij + e*D_ij``.

All ``2 m k`` equations are folded with fresh 128-bit ``secrets`` weights ``w_ijc`` into ONE
multi-scalar multiplication (:func:`statledger.proofs.msm.points_msm`) over the ``2 m n``
points of ``K``, ``G``, ``X`` and the ``4 m k`` points of ``T`` and ``D``; the coefficient of
``K_ri^c`` is ``sum_j w_ijc z_jr``.  A failure names the party only: a changed ``D`` or ``T``
changes ``e``, so every equation fails at once.

Special soundness: two accepting transcripts with the same ``T`` and ``e != e'`` give
``y_jr = (z_jr - z'_jr) / (e - e')`` and ``rho_ij`` likewise, which satisfy the relation.
Honest-verifier zero knowledge: ``z``, ``tau`` are uniform and ``T`` is determined by them.
Note that ``y_jr`` is extracted as a scalar: the proof does not bound it (see the notes).

Transcript (domain ``statledger/mulproof/v1``): the caller's ``context``, ``X``, the sizes
``n, m, k``, every point of ``K`` (row-major), every point of ``D``, every point of ``T``, then
the challenge ``e``.

Encoding of a :class:`MulProof` (length fixed by ``m, k, n``): ``T`` (``m*k`` ciphertexts of
66 bytes, ``i``-major), ``z`` (``k*n`` scalars of 32 bytes, ``j``-major), ``tau`` (``m*k``
scalars, ``i``-major).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from statledger.proofs import msm as _msm
from statledger.proofs.elgamal import CIPHERTEXT_BYTES, Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, G, Point, Scalar
from statledger.proofs.transcript import Transcript

__all__ = [
    "DOMAIN",
    "MulProof",
    "multiply_with_proof",
    "verify_products",
]

DOMAIN = b"statledger/mulproof/v1"
_SCALAR = 32
_STEP = "mul-proof"


@dataclass(frozen=True)
class MulProof:
    """``T[i][j]`` (ciphertexts), ``z[j][r]`` and ``tau[i][j]`` (Scalars)."""

    T: tuple[tuple[Ciphertext, ...], ...]
    z: tuple[tuple[Scalar, ...], ...]
    tau: tuple[tuple[Scalar, ...], ...]

    def __post_init__(self) -> None:
        ok = (
            isinstance(self.T, tuple)
            and all(isinstance(r, tuple) and all(isinstance(c, Ciphertext) for c in r)
                    for r in self.T)
            and isinstance(self.z, tuple)
            and all(isinstance(r, tuple) and all(isinstance(s, Scalar) for s in r)
                    for r in self.z)
            and isinstance(self.tau, tuple)
            and all(isinstance(r, tuple) and all(isinstance(s, Scalar) for s in r)
                    for r in self.tau)
        )
        if not ok:
            raise TypeError("MulProof needs tuples of Ciphertexts and Scalars")

    @staticmethod
    def encoded_size(m: int, k: int, n: int) -> int:
        return m * k * (CIPHERTEXT_BYTES + _SCALAR) + k * n * _SCALAR

    def shape(self) -> tuple[int, int, int]:
        """``(m, k, n)`` as stored (the verifier compares it with the statement)."""
        m = len(self.T)
        k = len(self.z)
        n = len(self.z[0]) if self.z else 0
        return m, k, n

    def to_bytes(self) -> bytes:
        parts = [c.to_bytes() for row in self.T for c in row]
        parts += [s.to_bytes() for row in self.z for s in row]
        parts += [s.to_bytes() for row in self.tau for s in row]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, m: int, k: int, n: int) -> MulProof:
        """Strict: exactly ``encoded_size(m, k, n)`` bytes, canonical points and scalars."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("multiplication proof must be bytes")
        for name, v in (("m", m), ("k", k), ("n", n)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedError(f"multiplication proof: {name} must be an int >= 1")
        data = bytes(data)
        want = cls.encoded_size(m, k, n)
        if len(data) != want:
            raise MalformedError(f"multiplication proof must be {want} bytes, got {len(data)}")
        pos = 0
        T: list[tuple[Ciphertext, ...]] = []
        for _ in range(m):
            row = []
            for _ in range(k):
                row.append(Ciphertext.from_bytes(data[pos : pos + CIPHERTEXT_BYTES]))
                pos += CIPHERTEXT_BYTES
            T.append(tuple(row))

        def scalars(count: int) -> tuple[Scalar, ...]:
            nonlocal pos
            out = tuple(
                Scalar.from_bytes(data[pos + _SCALAR * t : pos + _SCALAR * (t + 1)])
                for t in range(count)
            )
            pos += _SCALAR * count
            return out

        z = tuple(scalars(n) for _ in range(k))
        tau = tuple(scalars(k) for _ in range(m))
        return cls(tuple(T), z, tau)


# ------------------------------------------------------------------------------ statement
def _shape(K: Sequence[Sequence[Ciphertext]]) -> tuple[int, int]:
    n = len(K)
    if n == 0:
        raise MalformedError("multiplication statement: no rows")
    m = len(K[0])
    if m == 0:
        raise MalformedError("multiplication statement: no columns")
    for r, row in enumerate(K):
        if len(row) != m:
            raise MalformedError(f"multiplication statement: row {r} has {len(row)} columns")
        for c in row:
            if not isinstance(c, Ciphertext):
                raise TypeError("K must hold Ciphertexts")
    return n, m


def _check_key(X: Point) -> None:
    if not isinstance(X, Point):
        raise TypeError("X must be a Point")
    if X.is_identity():
        raise MalformedError("the collective key X is the identity")


def _transcript(
    X: Point,
    K: Sequence[Sequence[Ciphertext]],
    D: Sequence[Sequence[Ciphertext]],
    T: Sequence[Sequence[Ciphertext]],
    context: bytes,
) -> Scalar:
    if not isinstance(context, bytes | bytearray):
        raise TypeError("context must be bytes")
    n, m = len(K), len(K[0])
    k = len(D[0])
    t = Transcript(DOMAIN)
    t.append_message(b"context", bytes(context))
    t.append_point(b"X", X)
    t.append_int(b"rows", n)
    t.append_int(b"columns", m)
    t.append_int(b"vectors", k)
    t.append_points(b"K", [P for row in K for c in row for P in (c.C1, c.C2)])
    t.append_points(b"D", [P for row in D for c in row for P in (c.C1, c.C2)])
    t.append_points(b"T", [P for row in T for c in row for P in (c.C1, c.C2)])
    return t.challenge_scalar(b"e")


def _rand() -> int:
    return secrets.randbelow(ORDER - 1) + 1


class _Columns:
    """Raw point matrix of one ciphertext column component, identity rows dropped, so that
    each ``sum_r s_r K_ri^c`` is one bucket MSM (:func:`statledger.proofs.msm.msm_matrix`)."""

    def __init__(self, points: Sequence[Point]) -> None:
        keep = [r for r, P in enumerate(points) if not P.is_identity()]
        self.keep = np.array(keep, dtype=np.intp)
        addrs = np.array([_msm.addr(_msm.pk_of(points[r])) for r in keep], dtype=np.uint64)
        self.raw = _msm.raw_matrix(addrs)

    def msm(self, ks: Sequence[int]) -> Point:
        sel = [ks[r] % ORDER for r in self.keep.tolist()]
        nz = [t for t, s in enumerate(sel) if s]
        if not nz:
            return Point.identity()
        raw = self.raw if len(nz) == len(sel) else self.raw[np.array(nz, dtype=np.intp)]
        return _msm.to_point(_msm.msm_matrix(raw, [sel[t] for t in nz]))


def multiply_with_proof(
    X: Point,
    K: Sequence[Sequence[Ciphertext]],
    ys: Sequence[Sequence[int]],
    context: bytes,
) -> tuple[tuple[tuple[Ciphertext, ...], ...], MulProof]:
    """``D[i][j] = sum_r ys[j][r] * K[r][i] + Enc(0; rho_ij)`` and the proof.

    ``ys[j]`` has one int per row of ``K`` (any sign; reduced mod the group order).
    """
    _check_key(X)
    n, m = _shape(K)
    k = len(ys)
    if k == 0:
        raise MalformedError("multiplication: no multiplier vectors")
    for j, y in enumerate(ys):
        if len(y) != n:
            raise MalformedError(f"multiplier vector {j} has {len(y)} values, K has {n} rows")
        for v in y:
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedError(f"multiplier vector {j}: values must be ints")
    cols = [(_Columns([K[r][i].C1 for r in range(n)]), _Columns([K[r][i].C2 for r in range(n)]))
            for i in range(m)]
    a = [[_rand() for _ in range(n)] for _ in range(k)]
    rho = [[_rand() for _ in range(k)] for _ in range(m)]
    sigma = [[_rand() for _ in range(k)] for _ in range(m)]
    D: list[tuple[Ciphertext, ...]] = []
    T: list[tuple[Ciphertext, ...]] = []
    for i, (c1, c2) in enumerate(cols):
        drow: list[Ciphertext] = []
        trow: list[Ciphertext] = []
        for j in range(k):
            yk = [v % ORDER for v in ys[j]]
            rs, ss = Scalar(rho[i][j]), Scalar(sigma[i][j])
            drow.append(Ciphertext(c1.msm(yk) + G * rs, c2.msm(yk) + X * rs))
            trow.append(Ciphertext(c1.msm(a[j]) + G * ss, c2.msm(a[j]) + X * ss))
        D.append(tuple(drow))
        T.append(tuple(trow))
    e = int(_transcript(X, K, D, T, context))
    z = tuple(tuple(Scalar((a[j][r] + e * ys[j][r]) % ORDER) for r in range(n)) for j in range(k))
    tau = tuple(
        tuple(Scalar((sigma[i][j] + e * rho[i][j]) % ORDER) for j in range(k)) for i in range(m)
    )
    return tuple(D), MulProof(tuple(T), z, tau)


def _fail(reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=_STEP, party=party)


def verify_products(
    X: Point,
    K: Sequence[Sequence[Ciphertext]],
    D: Sequence[Sequence[Ciphertext]],
    proof: MulProof,
    context: bytes,
    *,
    party: str | None = None,
) -> None:
    """Check that every ``D[i][j]`` is ``sum_r y_jr K[r][i]`` re-randomised, for one committed
    vector ``y_j`` per ``j``; raises :class:`VerificationError` (step ``mul-proof``)."""
    _check_key(X)
    if not isinstance(proof, MulProof):
        raise TypeError("proof must be a MulProof")
    n, m = _shape(K)
    if len(D) != m or not D[0] or any(len(row) != len(D[0]) for row in D):
        raise _fail(f"products must form an {m} x k matrix", party)
    k = len(D[0])
    if proof.shape() != (m, k, n) or any(len(r) != n for r in proof.z) or len(proof.tau) != m \
            or any(len(r) != k for r in proof.tau) or any(len(r) != k for r in proof.T):
        raise _fail("proof shape does not match the statement", party)
    e = int(_transcript(X, K, D, proof.T, context))
    z = [[int(s) for s in row] for row in proof.z]
    weights = [[(secrets.randbits(128) | 1, secrets.randbits(128) | 1) for _ in range(k)]
               for _ in range(m)]
    ks: list[int] = []
    pts: list[Point] = []
    g_coef = 0
    x_coef = 0
    for i in range(m):
        coef1 = [0] * n
        coef2 = [0] * n
        for j in range(k):
            w1, w2 = weights[i][j]
            zj = z[j]
            for r in range(n):
                coef1[r] += w1 * zj[r]
                coef2[r] += w2 * zj[r]
            tij = int(proof.tau[i][j])
            g_coef += w1 * tij
            x_coef += w2 * tij
            ks += [-w1, -w2, -w1 * e, -w2 * e]
            pts += [proof.T[i][j].C1, proof.T[i][j].C2, D[i][j].C1, D[i][j].C2]
        for r in range(n):
            ks += [coef1[r], coef2[r]]
            pts += [K[r][i].C1, K[r][i].C2]
    ks += [g_coef, x_coef]
    pts += [G, X]
    if not _msm.points_msm(ks, pts).is_identity():
        # Any change to K, D or T changes e, so every equation fails together: no single
        # product can be blamed, only the party.
        raise _fail("the products are not the committed multiples of K", party)
