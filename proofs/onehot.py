"""One-hot blocks: every block of an owner's encrypted vector holds the same single record.

Math and notation: ``docs/notes/onehot.md``.

Statement: the collective key ``X``, per-block public scales ``k_b >= 1`` and the cell
ciphertexts ``C_{b,j} = (C1, C2)`` of blocks ``b = 0..B-1``.  With ``S_b = sum_j C_{b,j}``
(homomorphic block sums, recomputed by the verifier), the relation is

    { (X, k, C; beta, rho_0..rho_{B-1}) : beta in {0, 1} and S_b = Enc_X(k_b beta; rho_b) }

i.e. every block sums to ``k_b`` (the record is counted) or every block sums to 0 (it is
not).  Together with the per-cell range proofs ``0 <= C_{b,j} <= k_b``
(:mod:`statledger.proofs.vector`) this makes each block one-hot or all zero when ``k_b = 1``;
with ``k_b > 1`` a block's mass is exactly ``k_b beta`` (docs/notes/onehot.md says what is
left open).

Proof (commitment form, so that many owners' proofs fold into one multi-scalar
multiplication): a CDS disjunction on ``S_0`` (branch ``m in {0, k_0}``: ``C1 = rho G`` and
``C2 - m G = rho X``), and one Chaum--Pedersen proof that the folded difference
``D = sum_{b>=1} z_b (k_0 S_b - k_b S_0)`` encrypts 0, with fold weights ``z_b`` squeezed from
the transcript after the statement.  One challenge ``c`` covers both: ``c = c_0 + c_1`` for the
disjunction, ``c`` for the zero proof.

Transcript (domain ``statledger/onehot/v1``): ``context``, ``X``, the block sizes and scales,
every cell ciphertext, then ``z``; then the commitments ``A_0, B_0, A_1, B_1, E, F``; then
``c``.  The verifier recomputes ``z`` and ``c``.

Encoding: ``A_0 || B_0 || A_1 || B_1 || E || F`` (33-byte points) ``|| c_0 || s_0 || s_1 ||
s_e`` (32-byte scalars < n): :data:`PROOF_BYTES` = 326 bytes.  Verification raises
:class:`~statledger.proofs.errors.VerificationError` (step ``onehot``, naming the party).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs import batch
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar, base_mul, sum_points
from statledger.proofs.transcript import Transcript

__all__ = [
    "DOMAIN",
    "PROOF_BYTES",
    "OneHotProof",
    "prove_onehot",
    "verify_onehot",
    "verify_onehot_batch",
    "find_invalid_onehots",
]

DOMAIN = b"statledger/onehot/v1"
_POINT = 33
_SCALAR = 32
PROOF_BYTES = 6 * _POINT + 4 * _SCALAR

Blocks = Sequence[Sequence[Ciphertext]]


@dataclass(frozen=True, slots=True)
class OneHotProof:
    """Commitments ``A0, B0, A1, B1`` (disjunction), ``E, F`` (zero proof) and the scalars
    ``c0, s0, s1, se`` (``c1 = c - c0`` is recomputed)."""

    A0: Point
    B0: Point
    A1: Point
    B1: Point
    E: Point
    F: Point
    c0: Scalar
    s0: Scalar
    s1: Scalar
    se: Scalar

    def __post_init__(self) -> None:
        pts = (self.A0, self.B0, self.A1, self.B1, self.E, self.F)
        scs = (self.c0, self.s0, self.s1, self.se)
        if not all(isinstance(P, Point) for P in pts) or not all(
                isinstance(s, Scalar) for s in scs):
            raise TypeError("OneHotProof needs six Points and four Scalars")

    def to_bytes(self) -> bytes:
        return b"".join([P.to_bytes() for P in (self.A0, self.B0, self.A1, self.B1, self.E,
                                                 self.F)]
                        + [s.to_bytes() for s in (self.c0, self.s0, self.s1, self.se)])

    @classmethod
    def from_bytes(cls, data: bytes) -> OneHotProof:
        """Strict: exactly :data:`PROOF_BYTES` bytes, canonical points and scalars."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("one-hot proof must be bytes")
        data = bytes(data)
        if len(data) != PROOF_BYTES:
            raise MalformedError(f"one-hot proof must be {PROOF_BYTES} bytes, got {len(data)}")
        P = [Point.from_bytes(data[i * _POINT:(i + 1) * _POINT]) for i in range(6)]
        base = 6 * _POINT
        s = [Scalar.from_bytes(data[base + i * _SCALAR:base + (i + 1) * _SCALAR])
             for i in range(4)]
        return cls(P[0], P[1], P[2], P[3], P[4], P[5], s[0], s[1], s[2], s[3])


def _check_statement(X: Point, blocks: Blocks, scales: Sequence[int]) -> None:
    if not isinstance(X, Point):
        raise TypeError("X must be a Point")
    if X.is_identity():
        raise MalformedError("the collective key X is the identity")
    if not blocks or len(blocks) != len(scales):
        raise MalformedError(f"{len(blocks)} blocks but {len(scales)} scales")
    for b, (blk, k) in enumerate(zip(blocks, scales, strict=True)):
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k < 1 << 32:
            raise MalformedError(f"scale of block {b} must be an int in [1, 2^32)")
        if not blk or not all(isinstance(c, Ciphertext) for c in blk):
            raise MalformedError(f"block {b} must be a non-empty list of ciphertexts")


def _transcript(X: Point, blocks: Blocks, scales: Sequence[int], context: bytes
                ) -> tuple[Transcript, list[Scalar]]:
    if not isinstance(context, bytes | bytearray):
        raise TypeError("context must be bytes")
    t = Transcript(DOMAIN)
    t.append_message(b"context", bytes(context))
    t.append_point(b"X", X)
    t.append_int(b"blocks", len(blocks))
    for blk, k in zip(blocks, scales, strict=True):
        t.append_int(b"size", len(blk))
        t.append_int(b"scale", k)
    t.append_points(b"ciphertexts", [P for blk in blocks for c in blk for P in (c.C1, c.C2)])
    z = t.challenge_scalars(b"fold", max(len(blocks) - 1, 0))
    return t, z


def _sums(blocks: Blocks) -> list[Ciphertext]:
    return [Ciphertext(sum_points([c.C1 for c in blk]), sum_points([c.C2 for c in blk]))
            for blk in blocks]


def _challenge(t: Transcript, comm: Sequence[Point]) -> Scalar:
    t.append_points(b"commitments", list(comm))
    return t.challenge_scalar(b"c")


def prove_onehot(X: Point, blocks: Blocks, scales: Sequence[int], beta: int,
                 randomness: Sequence[Sequence[int]], context: bytes) -> OneHotProof:
    """Prove that every block ``b`` sums to ``scales[b] * beta`` (``beta`` in {0, 1}).

    ``randomness[b][j]`` is the ElGamal randomness of cell ``(b, j)`` (``C1 = r G``).  The
    prover does not re-check its witness: a wrong one gives a proof that fails to verify.
    Cost: 3 base + 4 variable multiplications (plus the block sums)."""
    _check_statement(X, blocks, scales)
    if beta not in (0, 1) or isinstance(beta, bool):
        raise MalformedError("one-hot proof: beta must be the int 0 or 1")
    if [len(r) for r in randomness] != [len(b) for b in blocks]:
        raise MalformedError("one-hot proof: randomness does not match the blocks' shape")
    t, z = _transcript(X, blocks, scales, context)
    sums = _sums(blocks)
    rho = [Scalar.reduce(sum(r)) for r in randomness]
    k0 = scales[0]
    # the folded difference's randomness: sum_b z_b (k0 rho_b - k_b rho_0)
    tau = Scalar.reduce(0)
    for zb, rb, kb in zip(z, rho[1:], scales[1:], strict=True):
        tau = tau + zb * (Scalar.reduce(k0) * rb - Scalar.reduce(kb) * rho[0])
    targets = [sums[0].C2, sums[0].C2 - base_mul(Scalar.reduce(k0))]  # C2 - m G, m = 0, k0
    real, other = beta, 1 - beta
    c_sim, s_sim, w, u = Scalar.random(), Scalar.random(), Scalar.random(), Scalar.random()
    comm = [Point.identity()] * 4
    comm[2 * real] = base_mul(w)
    comm[2 * real + 1] = w * X
    comm[2 * other] = base_mul(s_sim) - c_sim * sums[0].C1
    comm[2 * other + 1] = s_sim * X - c_sim * targets[other]
    E, F = base_mul(u), u * X
    c = _challenge(t, comm + [E, F])
    c_real = c - c_sim
    s_real = w + c_real * rho[0]
    se = u + c * tau
    A0, B0, A1, B1 = comm
    if beta == 0:
        return OneHotProof(A0, B0, A1, B1, E, F, c_real, s_real, s_sim, se)
    return OneHotProof(A0, B0, A1, B1, E, F, c_sim, s_sim, s_real, se)


def _terms(X: Point, blocks: Blocks, scales: Sequence[int], proof: OneHotProof,
           context: bytes) -> tuple[list[int], list[Point]]:
    """The six verification equations of one proof, each times a fresh random 128-bit
    weight, as (scalars, points) whose sum is the identity iff they hold (but for
    probability ~2^-128)."""
    if not isinstance(proof, OneHotProof):
        raise TypeError("proof must be a OneHotProof")
    t, z = _transcript(X, blocks, scales, context)
    c = int(_challenge(t, [proof.A0, proof.B0, proof.A1, proof.B1, proof.E, proof.F]))
    sums = _sums(blocks)
    c0, c1 = int(proof.c0), int(Scalar.reduce(c - int(proof.c0)))
    k0 = scales[0]
    # D = sum_b z_b (k0 S_b - k_b S_0) = sum_b (z_b k0) S_b - (sum_b z_b k_b) S_0
    zs = [int(v) for v in z]
    coef_s0 = -sum(zb * kb for zb, kb in zip(zs, scales[1:], strict=True))
    r = [secrets.randbits(128) | 1 for _ in range(6)]
    ks: list[int] = []
    ps: list[Point] = []

    def add(k: int, P: Point) -> None:
        ks.append(k)
        ps.append(P)

    s0, s1, se = int(proof.s0), int(proof.s1), int(proof.se)
    # (1) s0 G = A0 + c0 C1        (2) s0 X = B0 + c0 C2
    # (3) s1 G = A1 + c1 C1        (4) s1 X = B1 + c1 (C2 - k0 G)
    # (5) se G = E + c D1          (6) se X = F + c D2
    g = r[0] * s0 + r[2] * s1 + r[3] * c1 * k0 + r[4] * se
    x = r[1] * s0 + r[3] * s1 + r[5] * se
    add(g, G)
    add(x, X)
    add(-r[0], proof.A0)
    add(-r[1], proof.B0)
    add(-r[2], proof.A1)
    add(-r[3], proof.B1)
    add(-r[4], proof.E)
    add(-r[5], proof.F)
    add(-(r[0] * c0 + r[2] * c1), sums[0].C1)
    add(-(r[1] * c0 + r[3] * c1), sums[0].C2)
    # the zero proof's D, spread over the block sums
    add(-r[4] * c * coef_s0, sums[0].C1)
    add(-r[5] * c * coef_s0, sums[0].C2)
    for zb, S in zip(zs, sums[1:], strict=True):
        add(-r[4] * c * zb * k0, S.C1)
        add(-r[5] * c * zb * k0, S.C2)
    return ks, ps


def verify_onehot(X: Point, blocks: Blocks, scales: Sequence[int], proof: OneHotProof,
                  context: bytes, *, party: str | None = None) -> None:
    """Check one proof; raises :class:`VerificationError` (step ``onehot``, ``party``)."""
    verify_onehot_batch([(X, blocks, scales, proof, context)],
                        None if party is None else [party])


def verify_onehot_batch(
    items: Sequence[tuple[Point, Blocks, Sequence[int], OneHotProof, bytes]],
    parties: Sequence[str] | None = None,
) -> None:
    """Verify many owners' proofs with ONE multi-scalar multiplication (a fresh random
    128-bit weight per equation).  If it fails, the bad ones are found by halving
    (:func:`find_invalid_onehots`) and the first is named (``party`` = ``parties[i]`` or
    the item index)."""
    bad = find_invalid_onehots(items, parties)
    if bad:
        raise bad[0][1]


def find_invalid_onehots(
    items: Sequence[tuple[Point, Blocks, Sequence[int], OneHotProof, bytes]],
    parties: Sequence[str] | None = None,
) -> list[tuple[int, VerificationError]]:
    """Every invalid proof of ``items``, each with the error naming its party ([] if all
    verify): ONE multi-scalar multiplication when all hold, else the failing ones found by
    halving (:func:`statledger.proofs.vector.find_failing`; a fresh random 128-bit weight
    per proof at every check)."""
    from statledger.proofs.vector import find_failing

    if parties is not None and len(parties) != len(items):
        raise MalformedError(f"{len(items)} items but {len(parties)} party names")
    names = [str(i) if parties is None else parties[i] for i in range(len(items))]
    bad: list[tuple[int, VerificationError]] = []
    per: dict[int, tuple[list[int], list[Point]]] = {}
    for i, ((X, blocks, scales, proof, context), name) in enumerate(
            zip(items, names, strict=True)):
        try:
            _check_statement(X, blocks, scales)
            per[i] = _terms(X, blocks, scales, proof, context)
        except MalformedError as exc:
            bad.append((i, VerificationError(f"one-hot statement: {exc}", step="onehot",
                                             party=name)))

    def holds(group: Sequence[int]) -> bool:
        # each proof's terms are one equation (its six already weighted in _terms), weighted
        # afresh at every check by the one batch rule (G and X merge across proofs)
        return batch.holds(list(zip(*per[i], strict=True)) for i in group)

    def alone(i: int) -> VerificationError | None:
        if batch.holds([list(zip(*per[i], strict=True))]):
            return None
        return VerificationError("a block's count is not the record's one-hot count "
                                 "(proof fails)", step="onehot", party=names[i])

    bad += find_failing(list(per), holds, alone, step="onehot")
    return sorted(bad, key=lambda b: b[0])
