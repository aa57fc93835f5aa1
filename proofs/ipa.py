"""The inner-product argument of the range proof (Bulletproofs section 3, even/odd folding).

Math and notation: ``docs/notes/rangeproof.md`` (sections "Inner-product argument" and
"Costs").  Statement: ``P = <a, G'> + <b, H'> + <a, b> Q`` with ``G'_i = G_i`` and
``H'_i = r^i H_i`` (``r = y^-1`` in the range proof).  Round ``k`` (length ``n``, halves
``lo`` = even indices, ``hi`` = odd indices) sends

    L_k = <a_lo, G'_hi> + <b_hi, H'_lo> + <a_lo, b_hi> Q
    R_k = <a_hi, G'_lo> + <b_lo, H'_hi> + <a_hi, b_lo> Q

takes ``u_k`` from the transcript and folds ``a' = u a_lo + u^-1 a_hi``,
``b' = u^-1 b_lo + u b_hi``, ``G'' = u^-1 G'_lo + u G'_hi``, ``H'' = u H'_lo + u^-1 H'_hi``.
After the last round the generators are ``G_final = sum_i s_i G_i`` and
``H_final = sum_i s_i^-1 r^i H_i`` with ``s_i = prod_k u_k^(2 bit_k(i) - 1)``
(:func:`s_vector`, the verifier's vector).

Prover's cost model (measured on this machine: a variable-base multiplication ~22 us, a
bucket-MSM term ~8-10 us at thousands of terms, an addition inside libsecp256k1 ~0.19 us):
folding the generators costs ``N - 1`` multiplications per vector over the whole argument
(whatever the schedule: reaching a level of length ``n`` from the originals takes ``N - n``
multiplications per vector, pairwise or all at once), and the L/R MSMs ``2n`` terms per
round.  Computing L and R over the ORIGINAL generators with tracked coefficients instead
(never folding) costs ``2N`` MSM terms per round, ``2 N log2 N`` in all: for N = 8192 about
213,000 terms (~1.9 s) against 16,382 multiplications plus 32,768 terms (~0.66 s) here, and
stopping the folds for the last rounds saves at most a few dozen multiplications.  So the
folds stay; they run on raw rows (:func:`statledger.proofs.msm.fold_raw`), with the
scalings ``G'_i = fG rG^i Gm_i`` and ``H'_i = fH rH^i Hm_i`` kept as two scalars per vector
so that a fold is ONE multiplication per pair (``Gm_2i + (u^2 rG) Gm_2i+1``).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

from statledger.proofs.group import ORDER, Point
from statledger.proofs.msm import (
    fold_raw,
    merge_counts,
    msm_matrix,
    parallel,
    raw_from_bytes,
    rows,
    submit_fold,
    submit_msm,
    to_point,
)
from statledger.proofs.transcript import Transcript
from statledger.settings import get_settings

__all__ = ["inner", "prove_ipa", "round_challenges", "s_vector", "s_reversed_scaled"]

_Q = ORDER


def inner(a: Sequence[int], b: Sequence[int]) -> int:
    """``<a, b> mod n``."""
    return int(sum(map(operator.mul, a, b))) % _Q


def _powers_scaled(scale: int, base: int, count: int) -> list[int]:
    """``[scale * base^i mod n for i < count]``."""
    out = [0] * count
    v = scale % _Q
    for i in range(count):
        out[i] = v
        v = v * base % _Q
    return out


def _challenge(t: Transcript, label: bytes) -> int:
    return int(t.challenge_scalar(label))


def prove_ipa(
    t: Transcript,
    Gm: np.ndarray,
    Hm: np.ndarray,
    q_row: np.ndarray,
    av: list[int],
    bv: list[int],
    h_ratio: int,
) -> tuple[list[Point], list[Point], int, int]:
    """Run every round: ``(L, R, a, b)``.  ``Gm`` / ``Hm``: raw rows of ``G_0..G_{N-1}`` and
    ``H_0..H_{N-1}``; ``q_row``: the raw row of the (already weighted) ``Q``; ``H'_i =
    h_ratio^i H_i``.  ``t`` receives ``L``, ``R`` and gives ``u`` each round.  Large L MSMs
    and G folds go to the helper process when :func:`statledger.proofs.msm.parallel` allows
    (thresholds from the settings); the result is the same either way."""
    N = len(av)
    if N < 1 or N & (N - 1) or len(bv) != N or len(Gm) < N or len(Hm) < N:
        raise ValueError("inner-product vectors must have the same power-of-two length")
    Gm, Hm = Gm[:N], Hm[:N]
    fG, rG = 1, 1
    fH, rH = 1, h_ratio % _Q
    n = N
    Ls: list[Point] = []
    Rs: list[Point] = []
    knobs = get_settings()
    par = parallel() and N >= knobs.range_fold_threshold
    while n > 1:
        half = n // 2
        cG = _powers_scaled(fG, rG, n)
        cH = _powers_scaled(fH, rH, n)
        a_lo, a_hi = av[0::2], av[1::2]
        b_lo, b_hi = bv[0::2], bv[1::2]
        kL = [x1 * c % _Q for x1, c in zip(a_lo, cG[1::2], strict=True)]
        kL += [x1 * c % _Q for x1, c in zip(b_hi, cH[0::2], strict=True)]
        kL.append(inner(a_lo, b_hi))
        matL = np.concatenate((Gm[1::2], Hm[0::2], q_row))
        # L goes to the helper process (if large) while this process computes R.
        futL = submit_msm(matL, kL) if par and n >= knobs.range_msm_threshold else None
        kR = [x1 * c % _Q for x1, c in zip(a_hi, cG[0::2], strict=True)]
        kR += [x1 * c % _Q for x1, c in zip(b_lo, cH[1::2], strict=True)]
        kR.append(inner(a_hi, b_lo))
        rawR = msm_matrix(np.concatenate((Gm[0::2], Hm[1::2], q_row)), kR)
        if futL is None:
            rawL = msm_matrix(matL, kL)
        else:
            dataL, cnt = futL.result()
            merge_counts(cnt)
            rawL = raw_from_bytes(dataL)
        Lk, Rk = to_point(rawL), to_point(rawR)
        Ls.append(Lk)
        Rs.append(Rk)
        t.append_point(b"L", Lk)
        t.append_point(b"R", Rk)
        u = _challenge(t, b"u")
        if u == 0:
            raise ArithmeticError("zero challenge")  # pragma: no cover - probability 2^-256
        ui = pow(u, -1, _Q)
        # G'new_i = u^-1 G'_2i + u G'_2i+1 = u^-1 fG rG^2i (Gm_2i + u^2 rG Gm_2i+1)
        # H'new_i = u H'_2i + u^-1 H'_2i+1 = u fH rH^2i (Hm_2i + u^-2 rH Hm_2i+1)
        eG, eH = u * u * rG % _Q, ui * ui * rH % _Q
        futG = None
        if half > 1 and par and half >= knobs.range_fold_threshold:
            futG = submit_fold(Gm[0::2], Gm[1::2], eG)
        av = [(p * u + q * ui) % _Q for p, q in zip(a_lo, a_hi, strict=True)]
        bv = [(p * ui + q * u) % _Q for p, q in zip(b_lo, b_hi, strict=True)]
        if half > 1:
            Hm = rows(fold_raw(Hm[0::2].tobytes(), Hm[1::2].tobytes(), eH))
            if futG is None:
                Gm = rows(fold_raw(Gm[0::2].tobytes(), Gm[1::2].tobytes(), eG))
            else:
                dataG, cnt = futG.result()
                merge_counts(cnt)
                Gm = rows(dataG)
            fG, rG = fG * ui % _Q, rG * rG % _Q
            fH, rH = fH * u % _Q, rH * rH % _Q
        n = half
    return Ls, Rs, av[0], bv[0]


def round_challenges(t: Transcript, L: Sequence[Point], R: Sequence[Point]) -> list[int]:
    """The verifier's side of the transcript: absorb every ``(L_k, R_k)``, return the ``u_k``."""
    us: list[int] = []
    for Lk, Rk in zip(L, R, strict=True):
        t.append_point(b"L", Lk)
        t.append_point(b"R", Rk)
        us.append(_challenge(t, b"u"))
    return us


def _doubling(start: int, factors: Sequence[int], reduced: bool) -> list[int]:
    """``out_i = start * prod_k factors[k]^bit_k(i)`` for ``i < 2^len(factors)`` (N - 1
    multiplications: round k appends the current list times ``factors[k]``).  ``reduced =
    False`` leaves the last half unreduced (products of two residues, below n^2): for a
    caller that only adds them up and reduces the sums."""
    out = [start % _Q]
    last = len(factors) - 1
    for k, f in enumerate(factors):
        if k == last and not reduced:
            out += [v * f for v in out]
        else:
            out += [v * f % _Q for v in out]
    return out


def s_vector(us: Sequence[int], scale: int = 1, *, reduced: bool = True) -> list[int]:
    """``scale * s_i`` with ``s_i = prod_k u_k^(2 bit_k(i) - 1)`` (round k uses bit k of the
    index: even/odd folding), ``i < 2^len(us)``; every ``u_k`` non-zero.  ``reduced=False``:
    congruent values below n^2 (see :func:`_doubling`)."""
    base = scale
    for u in us:
        base = base * pow(u, -1, _Q) % _Q
    return _doubling(base, [u * u % _Q for u in us], reduced)


def s_reversed_scaled(
    us: Sequence[int], ratio: int, scale: int = 1, *, reduced: bool = True
) -> list[int]:
    """``scale * ratio^i * s_(N-1-i)`` for ``i < N = 2^len(us)``: the H-side coefficients.

    ``N-1-i`` flips every bit of ``i``, so ``s_(N-1-i) = prod_k u_k * prod_k
    u_k^(-2 bit_k(i))`` and ``ratio^i = prod_k (ratio^(2^k))^bit_k(i)``: one doubling pass
    with the factors ``u_k^-2 ratio^(2^k)`` instead of a power list and a product.
    ``reduced=False``: congruent values below n^2 (see :func:`_doubling`)."""
    base = scale
    for u in us:
        base = base * u % _Q
    factors: list[int] = []
    rp = ratio % _Q
    for u in us:
        factors.append(pow(u, -2, _Q) * rp % _Q)
        rp = rp * rp % _Q
    return _doubling(base, factors, reduced)
