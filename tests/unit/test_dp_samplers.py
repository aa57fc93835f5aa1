"""Exact DP samplers vs their exact probability mass (fixed seeds: tests only)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from scipy.stats import chisquare

from statledger.protocol import dp

N_DRAWS = 100_000
P_MIN = 1e-4


def _pooled_chisquare(samples: list[int], pmf_of) -> float:
    """Chi-square p-value with tails pooled so every expected count is >= 5."""
    n = len(samples)
    lo, hi = min(samples), max(samples)
    # central region where expected >= 5, everything beyond pooled into two tail bins
    width = max(abs(lo), abs(hi)) + 50
    support = range(-width, width + 1)
    probs = pmf_of(support)
    inner = [y for y, p in zip(support, probs, strict=True) if p * n >= 5]
    a, b = min(inner), max(inner)
    counts: dict[int, int] = {}
    for s in samples:
        counts[s] = counts.get(s, 0) + 1
    pmap = dict(zip(support, probs, strict=True))
    obs = [sum(c for y, c in counts.items() if y < a)]
    exp = [n * (1.0 - sum(pmap[y] for y in support if y >= a))]
    for y in range(a, b + 1):
        obs.append(counts.get(y, 0))
        exp.append(n * pmap[y])
    obs.append(sum(c for y, c in counts.items() if y > b))
    exp.append(n * (1.0 - sum(pmap[y] for y in support if y <= b)))
    # rescale expected to the observed total (float rounding only)
    scale = n / sum(exp)
    exp = [e * scale for e in exp]
    return float(chisquare(obs, exp).pvalue)


@pytest.fixture(scope="module")
def gauss_samples() -> dict[int, list[int]]:
    out = {}
    for s2 in (2, 10):
        rng = random.Random(1000 + s2)
        out[s2] = [dp.sample_discrete_gaussian(s2, rng.randrange) for _ in range(N_DRAWS)]
    return out


@pytest.fixture(scope="module")
def laplace_samples() -> dict[Fraction, list[int]]:
    out = {}
    for scale in (Fraction(3), Fraction(5, 2)):
        rng = random.Random(77)
        out[scale] = [dp.sample_discrete_laplace(scale, rng.randrange) for _ in range(N_DRAWS)]
    return out


@pytest.mark.parametrize("s2", [2, 10])
def test_discrete_gaussian_chisquare(gauss_samples, s2):
    p = _pooled_chisquare(gauss_samples[s2], lambda sup: dp.discrete_gaussian_pmf(s2, sup))
    assert p > P_MIN


@pytest.mark.parametrize("s2, wrong", [(2, Fraction(23, 10)), (10, Fraction(11))])
def test_discrete_gaussian_chisquare_detects_wrong_sigma(gauss_samples, s2, wrong):
    # the reject twin: the same test must fail against a 10-15% wrong sigma2
    p = _pooled_chisquare(gauss_samples[s2], lambda sup: dp.discrete_gaussian_pmf(wrong, sup))
    assert p < P_MIN


def test_discrete_gaussian_chisquare_detects_rounded_continuous():
    # a rounded continuous Gaussian is a different distribution; at sigma2=2 the test sees it
    rng = random.Random(5)
    samples = [round(rng.gauss(0.0, math.sqrt(2.0) * 1.08)) for _ in range(N_DRAWS)]
    p = _pooled_chisquare(samples, lambda sup: dp.discrete_gaussian_pmf(2, sup))
    assert p < P_MIN


@pytest.mark.parametrize("s2", [2, 10])
def test_discrete_gaussian_mean_variance(gauss_samples, s2):
    xs = gauss_samples[s2]
    n = len(xs)
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    sup = range(-200, 201)
    exact_var = sum(y * y * p for y, p in zip(sup, dp.discrete_gaussian_pmf(s2, sup), strict=True))
    assert exact_var <= s2  # CKS 2020: variance is at most the parameter
    assert abs(mean) < 5 * math.sqrt(exact_var / n)
    # var of the sample variance ~ (mu4 - var^2)/n; 2*var^2 is a generous stand-in
    assert abs(var - exact_var) < 5 * math.sqrt(2 * exact_var**2 / n) + 0.0


@pytest.mark.parametrize("scale", [Fraction(3), Fraction(5, 2)])
def test_discrete_laplace_chisquare(laplace_samples, scale):
    p = _pooled_chisquare(laplace_samples[scale], lambda sup: dp.discrete_laplace_pmf(scale, sup))
    assert p > P_MIN


@pytest.mark.parametrize("scale", [Fraction(3), Fraction(5, 2)])
def test_discrete_laplace_chisquare_detects_wrong_scale(laplace_samples, scale):
    wrong = scale * Fraction(11, 10)
    p = _pooled_chisquare(laplace_samples[scale], lambda sup: dp.discrete_laplace_pmf(wrong, sup))
    assert p < P_MIN


@pytest.mark.parametrize("scale", [Fraction(3), Fraction(5, 2)])
def test_discrete_laplace_mean_variance(laplace_samples, scale):
    xs = laplace_samples[scale]
    n = len(xs)
    q = math.exp(-1.0 / float(scale))
    exact_var = 2.0 * q / (1.0 - q) ** 2
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    assert abs(mean) < 5 * math.sqrt(exact_var / n)
    assert abs(var - exact_var) / exact_var < 0.05


def test_laplace_pmf_sums_to_one():
    sup = range(-2000, 2001)
    assert abs(sum(dp.discrete_laplace_pmf(Fraction(5, 2), sup)) - 1.0) < 1e-12
    assert abs(sum(dp.discrete_gaussian_pmf(Fraction(7, 3), sup)) - 1.0) < 1e-12


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 2), Fraction(1), Fraction(3, 2),
                                   Fraction(7, 3)])
def test_bernoulli_exp_rate(gamma):
    rng = random.Random(int(gamma * 1000) + 3)
    n = N_DRAWS
    hits = sum(dp.sample_bernoulli_exp(gamma, rng.randrange) for _ in range(n))
    p = math.exp(-float(gamma))
    if gamma == 0:
        assert hits == n
        return
    se = math.sqrt(p * (1 - p) / n)
    assert abs(hits / n - p) < 5 * se
    # twin: the rate is distinguishable from a 5% different one
    assert abs(hits / n - p * 1.05) > 5 * se


def test_bernoulli_exp_rejects_negative_and_garbage():
    with pytest.raises(ValueError):
        dp.sample_bernoulli_exp(Fraction(-1, 3))
    with pytest.raises(ValueError):
        dp.sample_bernoulli_exp("abc")
    with pytest.raises(ValueError):
        dp.sample_bernoulli_exp(float("nan"))
    with pytest.raises(ValueError):
        dp.sample_bernoulli_exp(True)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, Fraction(-1, 2), "0", float("inf")])
def test_samplers_reject_non_positive_parameters(bad):
    with pytest.raises(ValueError):
        dp.sample_discrete_gaussian(bad)
    with pytest.raises(ValueError):
        dp.sample_discrete_laplace(bad)


def test_injected_source_is_deterministic_and_default_works():
    a = dp.sample_vector(50, sigma2=Fraction(9, 2), randbelow=random.Random(9).randrange)
    b = dp.sample_vector(50, sigma2=Fraction(9, 2), randbelow=random.Random(9).randrange)
    c = dp.sample_vector(50, sigma2=Fraction(9, 2), randbelow=random.Random(10).randrange)
    assert a == b and a != c
    d = dp.sample_vector(20, laplace_scale=2)  # secrets.randbelow
    assert len(d) == 20 and all(isinstance(x, int) for x in d)


def test_sample_vector_float_parameters_are_read_exactly():
    # 0.1 as a float means 1/10: the same draws as the exact rational
    a = dp.sample_vector(30, sigma2=2.5, randbelow=random.Random(4).randrange)
    b = dp.sample_vector(30, sigma2=Fraction(5, 2), randbelow=random.Random(4).randrange)
    assert a == b


def test_sample_vector_truncation_is_conditional_distribution():
    rng = random.Random(21)
    bound = 3
    xs = dp.sample_vector(40_000, sigma2=10, bound=bound, randbelow=rng.randrange)
    assert min(xs) >= -bound and max(xs) <= bound
    sup = range(-bound, bound + 1)
    probs = dp.discrete_gaussian_pmf(10, sup)
    total = sum(probs)
    exp = [len(xs) * p / total for p in probs]
    obs = [xs.count(y) for y in sup]
    assert chisquare(obs, exp).pvalue > P_MIN
    # twin: a clamped sampler would pile mass on +-B and fail the same test
    clamped = [max(-bound, min(bound, x)) for x in
               dp.sample_vector(40_000, sigma2=10, randbelow=random.Random(22).randrange)]
    obs_c = [clamped.count(y) for y in sup]
    assert chisquare(obs_c, exp).pvalue < P_MIN


def test_sample_vector_bound_zero_and_argument_checks():
    assert dp.sample_vector(5, sigma2=1, bound=0, randbelow=random.Random(1).randrange) == [0] * 5
    assert dp.sample_vector(0, sigma2=1) == []
    with pytest.raises(ValueError):
        dp.sample_vector(3)
    with pytest.raises(ValueError):
        dp.sample_vector(3, sigma2=1, laplace_scale=1)
    with pytest.raises(ValueError):
        dp.sample_vector(-1, sigma2=1)
    with pytest.raises(ValueError):
        dp.sample_vector(3, sigma2=1, bound=-1)
    with pytest.raises(ValueError):
        dp.sample_vector(True, sigma2=1)  # type: ignore[arg-type]


def test_gaussian_tail_mass_matches_pmf():
    for s2, b in [(2, 1), (10, 5), (Fraction(7, 2), 4)]:
        sup = range(-b, b + 1)
        inside = sum(dp.discrete_gaussian_pmf(s2, sup))
        assert dp.discrete_gaussian_tail(s2, b) == pytest.approx(1 - inside, rel=1e-9)
    # 12 sigma: below 2 exp(-72), and positive
    t = dp.discrete_gaussian_tail(9, 36)
    assert 0 < t < 2 * math.exp(-72)
