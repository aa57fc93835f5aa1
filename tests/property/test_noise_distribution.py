"""protocol/noise.py: the released noise has the stated law; the privacy bound holds.

Statistical tests use fresh randomness (``secrets``: the bits) with a fixed false-failure
rate alpha = 1e-3 each; every test has a twin showing the same statistic rejects a wrong law.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import pytest
from scipy import stats

from statledger.proofs.elgamal import decrypt, keygen
from statledger.proofs.group import Point, Scalar
from statledger.protocol.dp import epsilon_from_rho
from statledger.protocol.noise import (
    NoiseParams,
    coin_base,
    commit_noise,
    commitments_digest,
    make_coin_share,
    privacy_bound,
    rho_for_shift,
    verify_noise_round,
)

ALPHA = 1e-3


def _share_pmf(p: NoiseParams) -> np.ndarray:
    """Exact law of one share's u = U + Delta * sum of s uniforms on [0, 2^r)."""
    pmf = np.zeros(p.share_max + 1)
    k = np.array([1.0])
    for _ in range(p.summands):
        k = np.convolve(k, np.full(1 << p.summand_bits, 1.0 / (1 << p.summand_bits)))
    for v, pv in enumerate(k):
        for u in range(p.step):
            pmf[u + p.step * v] += pv / p.step
    return pmf


def _chi2_p(samples: list[int], pmf: np.ndarray) -> float:
    n = len(samples)
    counts = np.bincount(np.asarray(samples), minlength=len(pmf)).astype(float)
    expected = pmf * n
    # pool bins (from both ends inwards) until every expected count is >= 5
    obs_p, exp_p = [], []
    acc_o = acc_e = 0.0
    for o, e in zip(counts, expected, strict=True):
        acc_o += o
        acc_e += e
        if acc_e >= 5:
            obs_p.append(acc_o)
            exp_p.append(acc_e)
            acc_o = acc_e = 0.0
    obs_p[-1] += acc_o
    exp_p[-1] += acc_e
    return float(stats.chisquare(obs_p, exp_p).pvalue)


@pytest.mark.slow
def test_released_noise_has_stated_law_even_with_an_adversarial_node() -> None:
    p = NoiseParams(n_nodes=3, threshold=2, entries=700, summands=2, summand_bits=1,
                    uniform_bits=1)
    keys = [keygen() for _ in range(3)]
    names = ["n0", "n1", "n2"]
    x = Scalar(0)
    X = Point.identity()
    for k, K in keys:
        x, X = x + k, X + K
    roster = [(n, K) for n, (_, K) in zip(names, keys, strict=True)]
    totals: list[int] = []
    chosen_totals: list[int] = []  # what the total would be if node n0's bits were used as is
    for rnd in range(3):
        q = f"stat-{rnd}"
        evil = [1] * p.total_bits  # n0 wants the largest share it can get
        coms = [commit_noise(X, p, q, n, bits=evil if n == "n0" else None) for n in names]
        P = coin_base(q, commitments_digest(p, q, coms))
        shares = [make_coin_share(k, K, P, q, n) for n, (k, K) in zip(names, keys, strict=True)]
        derived = verify_noise_round(X, p, q, roster, coms, shares)
        for j in range(p.entries):
            us = [decrypt(x, derived[n][j], p.share_max + 1) for n in names]
            totals.append(sum(us))
            chosen_totals.append(p.share_max + us[1] + us[2])
    one = _share_pmf(p)
    total_pmf = np.convolve(np.convolve(one, one), one)
    assert _chi2_p(totals, total_pmf) > ALPHA
    # twin: the same test rejects the law a node gets when it may choose its bits
    assert _chi2_p(chosen_totals, total_pmf) < ALPHA


def test_chi_square_twin_rejects_a_wrong_binomial() -> None:
    p = NoiseParams(n_nodes=1, threshold=1, entries=1, summands=4, summand_bits=1,
                    uniform_bits=1)
    pmf = _share_pmf(p)
    good = [secrets.randbelow(2) + 2 * sum(secrets.randbelow(2) for _ in range(4))
            for _ in range(4000)]
    wrong = [secrets.randbelow(2) + 2 * sum(secrets.randbelow(2) for _ in range(3))
             for _ in range(4000)]  # one coin short: variance shrunk
    assert _chi2_p(good, pmf) > ALPHA
    assert _chi2_p(wrong, pmf) < ALPHA


# ------------------------------------------------------------------ privacy cross-checks


def _honest_pmf(p: NoiseParams) -> np.ndarray:
    one = _share_pmf(p)
    out = np.array([1.0])
    for _ in range(p.honest):
        out = np.convolve(out, one)
    return out


def _hockey(pmf: np.ndarray, shift: int, eps: float) -> float:
    """delta(eps) of Y vs Y + shift, exact (both directions, max)."""
    n = len(pmf)
    a = np.zeros(n + abs(shift))
    b = np.zeros(n + abs(shift))
    if shift >= 0:
        a[:n] = pmf
        b[shift:] = pmf
    else:
        a[-shift:] = pmf
        b[:n] = pmf
    e = math.exp(eps)
    return max(float(np.maximum(a - e * b, 0).sum()), float(np.maximum(b - e * a, 0).sum()))


@pytest.mark.parametrize(
    ("params", "t"),
    [
        (NoiseParams(3, 2, 1, 6, 2, 2), 9),    # h = 2, Delta = 4, q = 3
        (NoiseParams(2, 2, 1, 24, 1, 3), 13),  # h = 1, binomial, Delta = 8, q = 2
        (NoiseParams(4, 2, 1, 5, 3, 1), 6),    # h = 3, Delta = 2, q = 3
    ],
)
def test_bound_dominates_exact_hockey_stick(params: NoiseParams, t: int) -> None:
    """Theorem 1 + the zCDP -> (eps, delta) conversion against the exact privacy curve of the
    honest noise, for every shift |s| <= t (not only multiples of Delta)."""
    bound = privacy_bound(params, [t], delta=1e-6)
    pmf = _honest_pmf(params)
    for dprime in (1e-2, 1e-4, 1e-6):
        eps, total_delta = bound.epsilon(dprime)
        worst = max(_hockey(pmf, s, eps) for s in range(-t, t + 1))
        assert worst <= total_delta * (1 + 1e-9)


def test_lemma2_renyi_on_a_fine_grid() -> None:
    """D_alpha(K|J || (K+q)|J) <= alpha * rho_q on a fine alpha grid (checks the bracketing)."""
    from scipy.special import logsumexp

    k = np.array([1.0])
    for _ in range(24):
        k = np.convolve(k, np.full(4, 0.25))
    for q in (1, 3, 6):
        rho, dq = rho_for_shift(k, q, 1e-6)
        size = len(k) - 1
        cdf = np.cumsum(k)

        def tail(a: int, cdf: np.ndarray = cdf) -> float:
            return 0.0 if a <= 0 else float(cdf[a - 1])

        a = 0
        while tail(a + 1) + tail(a + 1 + q) <= 1e-6:
            a += 1
        assert dq == tail(a) + tail(a + q) <= 1e-6
        lp = np.log(k[q + a : size - a + 1])
        lq = np.log(k[a : size - a - q + 1])
        lp -= logsumexp(lp)
        lq -= logsumexp(lq)
        for alpha in np.linspace(1.01, 60, 400):
            d = logsumexp(alpha * lp + (1 - alpha) * lq) / (alpha - 1)
            assert d <= alpha * rho * (1 + 1e-9)
        # and the bound is not loose by much: it is attained within the bracket ratio
        best = max(logsumexp(al * lp + (1 - al) * lq) / (al - 1) / al
                   for al in np.exp(np.linspace(0.001, 8, 800)) + 1e-9)
        assert rho <= best * 1.06


def test_rho_decreases_with_more_summands_and_meets_gaussian_limit() -> None:
    rhos = []
    for s in (8, 32, 128):
        b = privacy_bound(NoiseParams(2, 2, 1, s, 1, 0), [1], delta=1e-10)
        rhos.append(b.rho)
        gauss = 1 / (2 * (s / 4))  # q^2 / (2 Var K), Var K = s/4
        assert b.rho >= gauss * 0.999
    assert rhos[0] > rhos[1] > rhos[2]
    assert rhos[2] <= 1.25 * (1 / (2 * 32))


def test_epsilon_report_is_consistent() -> None:
    b = privacy_bound(NoiseParams(3, 2, 2, 10, 2, 3), [20, 5], delta=1e-9)
    eps, dl = b.epsilon(1e-6)
    assert eps == pytest.approx(epsilon_from_rho(repr(b.rho), 1e-6))
    assert dl == pytest.approx(b.delta + 1e-6)


def test_calibrate_meets_target_and_inflation() -> None:
    from statledger.protocol.noise import calibrate

    sens = [40, 25, 0]
    p = calibrate(sens, 1.0, 3, 2, delta=1e-8, max_inflation=2.0)
    b = privacy_bound(p, sens, delta=1e-8)
    assert b.rho <= 1.0 and b.delta <= 1e-8
    ideal = sum(t * t for t in sens) / 2.0
    assert float(p.honest_variance) <= 2.0 * ideal
