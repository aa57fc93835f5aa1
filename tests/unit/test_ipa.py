"""The inner-product argument (statledger.proofs.ipa) against a textbook re-implementation
on group Points (explicitly folded generators, group.msm), and the verifier's coefficient
vectors against their defining products."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from statledger.proofs import ipa
from statledger.proofs.generators import GENS, LABEL_GVEC, LABEL_HVEC
from statledger.proofs.group import ORDER, Point, Scalar, generators, msm
from statledger.proofs.msm import addr, matrix_of, pk_of, raw_matrix
from statledger.proofs.transcript import Transcript

Q_ = ORDER


def _rand_vec(n: int) -> list[int]:
    return [secrets.randbelow(ORDER) for _ in range(n)]


def _gens(N: int) -> tuple[list[Point], list[Point], Point, np.ndarray, np.ndarray]:
    """The range proof's generators as Points (derived again here) and as raw rows."""
    gvec, hvec, Qp = GENS.get(N)
    Gs, Hs = generators(LABEL_GVEC, N), generators(LABEL_HVEC, N)
    return Gs, Hs, Qp, matrix_of(gvec, N), matrix_of(hvec, N)


def _q_row(Qp: Point) -> np.ndarray:
    return raw_matrix(np.array([addr(pk_of(Qp))], dtype=np.uint64))


def _m(ks: list[int], pts: list[Point]) -> Point:
    return msm([Scalar.reduce(k) for k in ks], pts)


def _textbook(t: Transcript, Gs, Hs, Qp, a, b, r):  # type: ignore[no-untyped-def]
    """Bulletproofs section 3 with the generators folded as points, round by round."""
    Gp = list(Gs)
    Hp = [H * Scalar(pow(r, i, Q_)) for i, H in enumerate(Hs)]
    Ls, Rs = [], []
    while len(a) > 1:
        a_lo, a_hi, b_lo, b_hi = a[0::2], a[1::2], b[0::2], b[1::2]
        G_lo, G_hi, H_lo, H_hi = Gp[0::2], Gp[1::2], Hp[0::2], Hp[1::2]
        cl = sum(x * y for x, y in zip(a_lo, b_hi, strict=True))
        cr = sum(x * y for x, y in zip(a_hi, b_lo, strict=True))
        L = _m(a_lo + b_hi + [cl], G_hi + H_lo + [Qp])
        R = _m(a_hi + b_lo + [cr], G_lo + H_hi + [Qp])
        Ls.append(L)
        Rs.append(R)
        t.append_point(b"L", L)
        t.append_point(b"R", R)
        u = int(t.challenge_scalar(b"u"))
        ui = pow(u, -1, Q_)
        a = [(x * u + y * ui) % Q_ for x, y in zip(a_lo, a_hi, strict=True)]
        b = [(x * ui + y * u) % Q_ for x, y in zip(b_lo, b_hi, strict=True)]
        Gp = [_m([ui, u], [g0, g1]) for g0, g1 in zip(G_lo, G_hi, strict=True)]
        Hp = [_m([u, ui], [h0, h1]) for h0, h1 in zip(H_lo, H_hi, strict=True)]
    return Ls, Rs, a[0], b[0], Gp[0], Hp[0]


@pytest.mark.parametrize("N", [1, 2, 4, 8, 32])
def test_prover_matches_textbook_and_final_relation(N: int) -> None:
    Gs, Hs, Qp, Gm, Hm = _gens(N)
    a, b = _rand_vec(N), _rand_vec(N)
    r = secrets.randbelow(ORDER - 1) + 1
    q_row = _q_row(Qp)
    t1, t2 = Transcript(b"test/ipa"), Transcript(b"test/ipa")
    L, R, af, bf = ipa.prove_ipa(t1, Gm, Hm, q_row, list(a), list(b), r)
    L2, R2, af2, bf2, Gf, Hf = _textbook(t2, Gs, Hs, Qp, list(a), list(b), r)
    assert (L, R, af, bf) == (L2, R2, af2, bf2)
    assert len(L) == N.bit_length() - 1
    # the verifier's vectors give the folded generators without folding
    us = ipa.round_challenges(Transcript(b"test/ipa"), L, R)
    assert _m(ipa.s_vector(us), Gs) == Gf
    assert _m(ipa.s_reversed_scaled(us, r), Hs) == Hf
    # P + sum(u^2 L + u^-2 R) = a G_final + b H_final + ab Q, and not for a + 1
    P = _m(
        a + [b[i] * pow(r, i, Q_) for i in range(N)] + [sum(map(int.__mul__, a, b))], [*Gs, *Hs, Qp]
    )
    lhs = P + _m([u * u for u in us] + [pow(u, -2, Q_) for u in us], list(L) + list(R))
    assert lhs == _m([af, bf, af * bf], [Gf, Hf, Qp])
    assert lhs != _m([af + 1, bf, (af + 1) * bf], [Gf, Hf, Qp])
    # another transcript: the first round is the same, every later one differs
    if N > 2:
        L3, *_ = ipa.prove_ipa(Transcript(b"test/ipa-other"), Gm, Hm, q_row, list(a), list(b), r)
        assert L3[0] == L[0] and all(x != y for x, y in zip(L3[1:], L[1:], strict=True))


def test_prover_rejects_bad_lengths() -> None:
    _, _, Qp, Gm, Hm = _gens(8)
    q_row = _q_row(Qp)
    for a, b in (([1] * 6, [1] * 6), ([1] * 8, [1] * 4), ([], []), ([1] * 16, [1] * 16)):
        with pytest.raises(ValueError):
            ipa.prove_ipa(Transcript(b"x"), Gm, Hm, q_row, a, b, 3)


@pytest.mark.parametrize("K", [0, 1, 3, 6])
def test_coefficient_vectors_match_their_products(K: int) -> None:
    us = [secrets.randbelow(ORDER - 1) + 1 for _ in range(K)]
    r = secrets.randbelow(ORDER - 1) + 1
    scale = secrets.randbelow(ORDER)
    N = 1 << K
    s = []
    for i in range(N):
        v = 1
        for k, u in enumerate(us):
            v = v * (u if (i >> k) & 1 else pow(u, -1, Q_)) % Q_
        s.append(v)
    assert ipa.s_vector(us, scale) == [scale * v % Q_ for v in s]
    want = [scale * pow(r, i, Q_) * s[N - 1 - i] % Q_ for i in range(N)]
    assert ipa.s_reversed_scaled(us, r, scale) == want
    assert all(s[i] * s[N - 1 - i] % Q_ == 1 for i in range(N))
    # the unreduced form (for callers that only add them up): congruent, below n^2
    for fn, args, ref in (
        (ipa.s_vector, (us, scale), [scale * v % Q_ for v in s]),
        (ipa.s_reversed_scaled, (us, r, scale), want),
    ):
        loose = fn(*args, reduced=False)  # type: ignore[operator]
        assert [v % Q_ for v in loose] == ref and all(0 <= v < Q_ * Q_ for v in loose)
    if K:  # the reversed vector is not the plain one
        assert ipa.s_reversed_scaled(us, r, scale) != [
            scale * pow(r, i, Q_) * s[i] % Q_ for i in range(N)
        ]


def test_inner() -> None:
    a, b = _rand_vec(5), _rand_vec(5)
    assert ipa.inner(a, b) == sum(x * y for x, y in zip(a, b, strict=True)) % Q_
    assert ipa.inner([], []) == 0


def test_helper_process_gives_the_same_rounds() -> None:
    from statledger.proofs.msm import shutdown_pool
    from statledger.settings import overridden

    N = 64
    _, _, Qp, Gm, Hm = _gens(N)
    a, b, r = _rand_vec(N), _rand_vec(N), secrets.randbelow(ORDER - 1) + 1
    with overridden(range_parallel=False):
        serial = ipa.prove_ipa(Transcript(b"t"), Gm, Hm, _q_row(Qp), list(a), list(b), r)
    try:
        with overridden(range_parallel=True, range_fold_threshold=4, range_msm_threshold=8):
            helped = ipa.prove_ipa(Transcript(b"t"), Gm, Hm, _q_row(Qp), list(a), list(b), r)
    finally:
        shutdown_pool()
    assert helped == serial
    b[1] = (b[1] + 1) % ORDER  # odd index: in L_0
    with overridden(range_parallel=False):
        other = ipa.prove_ipa(Transcript(b"t"), Gm, Hm, _q_row(Qp), list(a), list(b), r)
    assert other[0][0] != serial[0][0]
