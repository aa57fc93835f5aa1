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
weighted 0), the inner-product argument of section 3 (:mod:`statledger.proofs.ipa`) and the
single multi-scalar-multiplication verification of section 6.2.  Linking part: a 3-witness
Sigma protocol on the statement folded with transcript weights ``rho_ji``.

Field symbols: ``A, S, T1, T2, tau_x, mu, t_hat`` as in the paper; ``L, R`` the IPA rounds;
``a, b`` the final IPA scalars; ``A1, A2, A3, z_a, z_b, z_c`` the linking proof.

The parts: :mod:`statledger.proofs.msm` (multi-scalar multiplication over libsecp256k1 and
the helper process), :mod:`statledger.proofs.generators` (the generator vectors and their
pinned disk cache), :mod:`statledger.proofs.ipa` (inner-product argument); this module holds
the range proof, the linking proof and the verification terms.  Verification returns its
equations as :class:`VerificationTerms` (each equation already multiplied by a fresh
``secrets`` weight), so that any number of proofs is checked by ONE multi-scalar
multiplication (:func:`check_terms`, ``statledger.proofs.vector.verify_encrypted_vectors_batch``):
the generator-vector coefficients of every proof add up into one scalar per generator, and
a point that several equations use (a commitment ``V_ji`` in the range and the linking
equations, the key ``X`` in every proof) is one term.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from statledger.proofs import generators as _gen
from statledger.proofs import msm as _msm
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.generators import GENS, warm_up
from statledger.proofs.group import ORDER, G, H, Point, Scalar
from statledger.proofs.ipa import inner, prove_ipa, round_challenges, s_reversed_scaled, s_vector
from statledger.proofs.msm import (
    addr,
    array_addrs,
    combine_addrs,
    counters,
    matrix_of,
    msm_par,
    pk_of,
    points_msm,
    raw_matrix,
    reset_counters,
    shutdown_pool,
    to_point,
)
from statledger.proofs.transcript import Transcript

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

_Q = ORDER
_POINT = 33
_SCALAR = 32

# Names of the module before it was split (tests and benchmarks reach for them).
_parallel = _msm.parallel
_addr = _msm.addr
_to_point = _msm.to_point
_raw_matrix = _msm.raw_matrix
_matrix_of = _msm.matrix_of
_msm_matrix = _msm.msm_matrix
_msm_par = _msm.msm_par
_points_msm = _msm.points_msm
_window_bits = _msm.window_bits
_array_from_points = _msm.array_from_points
_GENS = _gen.GENS
_Gens = _gen.Gens
_GEN_DIGESTS = _gen.GEN_DIGESTS
_LABEL_GVEC = _gen.LABEL_GVEC
_LABEL_HVEC = _gen.LABEL_HVEC
_generator_bytes = _gen.generator_bytes
_load_cached_generators = _gen.load_cached_generators


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
    gvec, hvec, Qp = GENS.get(N)
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
    g_all = array_addrs(gvec, N)
    h_all = array_addrs(hvec, N)
    ones = to_point(combine_addrs(g_all[aL_np]))
    zeros = to_point(combine_addrs(h_all[~aL_np]))
    A = H * Scalar(alpha) + ones - zeros
    # (2) S = rho*H + <sL, G> + <sR, H>
    sL = _rand_vector(N)
    sR = _rand_vector(N)
    rho = _rand()
    Gm, Hm = matrix_of(gvec, N), matrix_of(hvec, N)
    S = H * Scalar(rho) + to_point(msm_par(np.concatenate((Gm, Hm)), sL + sR))
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
    t1 = (inner(l0, r1) + inner(sL, r0)) % _Q
    t2 = inner(sL, r1)
    tau1, tau2 = _rand(), _rand()
    T1 = points_msm([t1, tau1], [G, H])
    T2 = points_msm([t2, tau2], [G, H])
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
    t_hat = inner(av, bv)
    t.append_scalar(b"tau_x", Scalar(tau_x))
    t.append_scalar(b"mu", Scalar(mu))
    t.append_scalar(b"t_hat", Scalar(t_hat))
    w = _challenge(t, b"w")
    Qw = Qp * Scalar(w)
    # (3) inner-product argument (statledger.proofs.ipa): G'_i = G_i, H'_i = y^-i H_i
    q_row = raw_matrix(np.array([addr(pk_of(Qw))], dtype=np.uint64))
    Ls, Rs, a_fin, b_fin = prove_ipa(t, Gm, Hm, q_row, av, bv, pow(y, -1, _Q))
    # (4) linking proof on the folded statement
    m_flat = [m for row in limbs for m in row]
    s_flat = [s for row in blinds for s in row]
    r_flat = [r for row in rands for r in row]
    rhos = [int(c) for c in t.challenge_scalars(b"rho", len(m_flat))]
    fa = sum(p * m for p, m in zip(rhos, m_flat, strict=True)) % _Q
    fb = sum(p * s for p, s in zip(rhos, s_flat, strict=True)) % _Q
    fc = sum(p * r for p, r in zip(rhos, r_flat, strict=True)) % _Q
    ka, kb, kc = _rand(), _rand(), _rand()
    A1 = points_msm([ka, kb], [G, H])
    A2 = points_msm([kc], [G])
    A3 = points_msm([ka, kc], [G, X])
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


@dataclass(frozen=True)
class _VectorPart:
    """Equation 2's generator-vector coefficients of one proof, kept as the few scalars they
    are made of and expanded only when the terms are checked (with the batch weight folded
    into the starting values, so a batch costs no extra multiplication per generator):

    ``G_i``: ``-z - a s_i``;  ``H_i``: ``z + y^-i (d_i - b s_(N-1-i))``  (``i < N``).
    """

    N: int
    z: int
    a: int
    b: int
    yinv: int
    us: tuple[int, ...]
    segments: tuple[tuple[int, int], ...]  # (width, z^(2+k)) per segment, in bit order

    def expand_into(self, weight: int, gv: list[int], hv: list[int]) -> int:
        """Add ``weight`` times the non-constant parts to ``gv[:N]`` / ``hv[:N]`` (unreduced)
        and return ``weight * z``: the constant to subtract from ``gv[:N]`` and to add to
        ``hv[:N]``."""
        N = self.N
        w = weight % _Q
        s = s_vector(self.us, -w * self.a, reduced=False)
        gv[:N] = map(operator.add, gv[:N], s)
        t = s_reversed_scaled(self.us, self.yinv, -w * self.b, reduced=False)
        hv[:N] = map(operator.add, hv[:N], t)
        # y^-i d_i over the real bits: d runs z^(2+k) * 2^r along segment k, so segment k
        # contributes lead_k z^(2+k) (2 y^-1)^r with lead_k = w y^-(its first bit)
        widest = max(width for width, _ in self.segments)
        step = _powers(2 * self.yinv % _Q, widest)
        ypow = _powers(self.yinv, widest + 1)
        e: list[int] = []
        lead = w
        for width, zz in self.segments:
            c = lead * zz % _Q
            e += [c * p for p in step[:width]]  # reduced with the sums
            lead = lead * ypow[width] % _Q
        hv[: len(e)] = map(operator.add, hv[: len(e)], e)
        return w * self.z % _Q


@dataclass
class VerificationTerms:
    """``sum`` of the terms must be the identity.  Scalars are ints mod n.

    ``g, h, q``: coefficients of G, H and Q; ``pts``: (coefficient, point) for every other
    point; ``vectors``: (weight, coefficients) of the generator vectors ``G_i``, ``H_i``,
    expanded by :func:`_terms_is_identity`.
    """

    g: int = 0
    h: int = 0
    q: int = 0
    pts: list[tuple[int, Point]] = field(default_factory=list)
    vectors: list[tuple[int, _VectorPart]] = field(default_factory=list)

    @classmethod
    def empty(cls) -> VerificationTerms:
        return cls()

    def add(self, other: VerificationTerms, weight: int = 1) -> None:
        self.g = (self.g + weight * other.g) % _Q
        self.h = (self.h + weight * other.h) % _Q
        self.q = (self.q + weight * other.q) % _Q
        if weight == 1:
            self.pts.extend(other.pts)
            self.vectors.extend(other.vectors)
        else:
            self.pts.extend((weight * k % _Q, P) for k, P in other.pts)
            self.vectors.extend((weight * k % _Q, v) for k, v in other.vectors)


def _fail(step: str, reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=step, party=party)


def _weight() -> int:
    """A verifier-random 128-bit batching weight (odd, so never 0)."""
    return secrets.randbits(128) | 1


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
    to the identity iff its equations hold (each equation already multiplied by its own
    verifier-random weight from ``secrets``).  Raises :class:`VerificationError` for
    structural failures."""
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
    us = round_challenges(t, proof.L, proof.R)
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
    zk: list[int] = []
    zp = z * z % _Q
    sum_d = 0  # <1, d> = sum_k z^(2+k) (2^width_k - 1)
    for width, _j, _i in layout.segments:
        zk.append(zp)
        sum_d += zp * ((1 << width) - 1)
        zp = zp * z % _Q
    # delta(y, z) = (z - z^2) <1, y^N> - z <1, d>
    delta = ((z - z * z) * _sum_one(layout, y) - z * sum_d) % _Q

    # --- equation 1 (polynomial identity), weight c1:
    # (t_hat - delta) G + tau_x H - sum_k z^(2+k) V_k - x T1 - x^2 T2 = 0
    c1w = _weight()
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
    #   + sum (z + y^-i (d_i - b s_(N-1-i))) H_i + sum (u_k^2 L_k + u_k^-2 R_k) = 0
    rng.h = (rng.h - mu) % _Q
    rng.q = w * (t_hat - a * b) % _Q
    part = _VectorPart(
        N=N,
        z=z,
        a=a,
        b=b,
        yinv=pow(y, -1, _Q),
        us=tuple(us),
        segments=tuple((seg[0], zz) for seg, zz in zip(layout.segments, zk, strict=True)),
    )
    rng.vectors.append((1, part))
    rng.pts.append((1, proof.A))
    rng.pts.append((x, proof.S))
    for u, Lk, Rk in zip(us, proof.L, proof.R, strict=True):
        u2 = u * u % _Q
        rng.pts.append((u2, Lk))
        rng.pts.append((pow(u2, -1, _Q), Rk))

    # --- linking equations, weights c3, c4, c5:
    # z_a G + z_b H - A1 - e sum rho V = 0
    # z_c G - A2 - e sum rho C1 = 0
    # z_a G + z_c X - A3 - e sum rho C2 = 0
    za, zb, zc = int(proof.z_a), int(proof.z_b), int(proof.z_c)
    c3, c4, c5 = _weight(), _weight(), _weight()
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
    """One multi-scalar multiplication over every term: the generator vectors (every proof's
    coefficients summed per generator), G, H, Q, and every other point once (coefficients of
    the same point object merged: a commitment used by the range and the linking equations,
    the key X of every proof)."""
    N = max((v.N for _, v in terms.vectors), default=0)
    ks: list[int] = []
    mats: list[np.ndarray] = []
    if N:
        gv = [0] * N
        hv = [0] * N
        consts: dict[int, int] = {}
        for weight, part in terms.vectors:
            consts[part.N] = consts.get(part.N, 0) + part.expand_into(weight, gv, hv)
        for n, c in consts.items():
            gv[:n] = [v - c for v in gv[:n]]
            hv[:n] = [v + c for v in hv[:n]]
        gvec, hvec, _ = GENS.get(N)
        ks = [v % _Q for v in gv]
        ks += [v % _Q for v in hv]
        mats = [matrix_of(gvec, N), matrix_of(hvec, N)]
    _, _, Qp = GENS.get(1)
    merged: dict[int, list[int]] = {}
    for k, P in [(terms.g, G), (terms.h, H), (terms.q, Qp), *terms.pts]:
        pk = pk_of(P)
        if pk is None:  # the identity: contributes nothing
            continue
        key = addr(pk)
        slot = merged.get(key)
        if slot is None:
            merged[key] = [k, key]
        else:
            slot[0] += k
    extra_a: list[int] = []
    for k, key in merged.values():
        k %= _Q
        if k:
            ks.append(k)
            extra_a.append(key)
    mats.append(raw_matrix(np.array(extra_a, dtype=np.uint64)))
    return msm_par(np.concatenate(mats), ks) is None


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
