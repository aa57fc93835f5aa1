"""zCDP accounting, calibration and distributed-noise planning vs their formulas."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol import dp


def _brute_eps(rho: float, delta: float) -> float:
    # independent grid over alpha of CKS 2020 Corollary 13
    best = math.inf
    for i in range(-300_000, 300_000):
        alpha = 1.0 + math.exp(i * 1e-4)  # log-spaced grid of alpha - 1 in [e^-30, e^30]
        e = alpha * rho + (math.log(1 / delta) + (alpha - 1) * math.log(1 - 1 / alpha)
                           - math.log(alpha)) / (alpha - 1)
        best = min(best, e)
    return best


def test_rho_of_discrete_gaussian():
    assert dp.rho_discrete_gaussian(1, 1) == Fraction(1, 2)
    assert dp.rho_discrete_gaussian(6, Fraction(3, 2)) == 2
    assert dp.rho_discrete_gaussian(0, 5) == 0
    with pytest.raises(ValueError):
        dp.rho_discrete_gaussian(-1, 1)
    with pytest.raises(ValueError):
        dp.rho_discrete_gaussian(1, 0)


def test_calibration_is_exact_inverse():
    for d2, rho in [(1, Fraction(1, 2)), (14, Fraction(1, 10)), (3, "0.25"), (7, 0.1)]:
        s2 = dp.sigma2_for_rho(d2, rho)
        assert dp.rho_discrete_gaussian(d2, s2) == dp.as_fraction(rho)
    assert dp.sigma2_for_rho(2, 0.1) == Fraction(10)  # 0.1 read as 1/10, not binary float
    with pytest.raises(ValueError):
        dp.sigma2_for_rho(1, 0)
    with pytest.raises(ValueError):
        dp.sigma2_for_rho(0, 1)


def test_composition_adds():
    assert dp.compose_rho("1/10", Fraction(1, 5), 0) == Fraction(3, 10)
    assert dp.compose_rho() == 0
    with pytest.raises(ValueError):
        dp.compose_rho(Fraction(1, 2), Fraction(-1, 10))


def test_l2_squared():
    assert dp.l2_squared([1, 2, 3]) == 14
    assert dp.l2_squared([]) == 0
    for bad in ([-1], [1.5], [True]):
        with pytest.raises(ValueError):
            dp.l2_squared(bad)  # type: ignore[arg-type]


def test_simple_conversion_formula():
    rho, delta = 0.5, 1e-6
    assert dp.epsilon_from_rho_simple(rho, delta) == pytest.approx(
        rho + 2 * math.sqrt(rho * math.log(1 / delta)), rel=1e-15)


@pytest.mark.parametrize("rho, delta", [(0.5, 1e-6), (0.01, 1e-5), (2.0, 1e-9), (1e-4, 1e-6)])
def test_tight_conversion_matches_grid_and_beats_simple(rho, delta):
    tight = dp.epsilon_from_rho(rho, delta)
    assert tight <= dp.epsilon_from_rho_simple(rho, delta)
    assert tight == pytest.approx(_brute_eps(rho, delta), rel=1e-4)
    # round trip through delta(eps)
    assert dp.delta_from_rho(rho, tight) == pytest.approx(delta, rel=1e-6)
    # twin: a smaller epsilon needs a larger delta
    assert dp.delta_from_rho(rho, tight * 0.9) > delta * 1.01


def test_conversion_edge_cases():
    assert dp.epsilon_from_rho(0, 1e-6) == 0.0
    assert dp.delta_from_rho(0, 1.0) == 0.0
    assert 0.99 < dp.delta_from_rho(10, 0.0) <= 1.0
    assert dp.delta_from_rho(100, 0.0) == 1.0
    for bad in (0.0, 1.0, -1e-6, 2.0):
        with pytest.raises(ValueError):
            dp.epsilon_from_rho(0.5, bad)
        with pytest.raises(ValueError):
            dp.epsilon_from_rho_simple(0.5, bad)
    with pytest.raises(ValueError):
        dp.epsilon_from_rho(-0.1, 1e-6)


@pytest.mark.parametrize("eps, delta", [(1.0, 1e-6), (0.1, 1e-5), (5.0, 1e-9)])
def test_rho_for_epsilon_delta_is_largest_within_target(eps, delta):
    rho = dp.rho_for_epsilon_delta(eps, delta)
    assert rho.denominator <= 10**12
    assert dp.epsilon_from_rho(rho, delta) <= eps
    assert dp.epsilon_from_rho(rho + Fraction(1, 10**9), delta) > eps


def test_rho_for_epsilon_delta_rejects():
    with pytest.raises(ValueError):
        dp.rho_for_epsilon_delta(0, 1e-6)
    with pytest.raises(ValueError):
        dp.rho_for_epsilon_delta(1, 0)


def test_pure_dp_helpers():
    assert dp.rho_from_pure_epsilon(Fraction(1, 2)) == Fraction(1, 8)
    assert dp.laplace_scale_for_epsilon(3, Fraction(1, 2)) == 6
    with pytest.raises(ValueError):
        dp.laplace_scale_for_epsilon(3, 0)
    with pytest.raises(ValueError):
        dp.rho_from_pure_epsilon(-1)


@pytest.mark.parametrize("s2", [Fraction(1), Fraction(2), Fraction(7, 3), Fraction(10**6 + 1, 7),
                                Fraction(1, 9), Fraction(16)])
@pytest.mark.parametrize("k", [1, 6, 12])
def test_bound_for_sigma2_is_exact_ceiling(s2, k):
    b = dp.bound_for_sigma2(s2, k)
    assert b * b >= k * k * s2
    assert (b - 1) ** 2 < k * k * s2


def test_bound_for_sigma2_rejects():
    with pytest.raises(ValueError):
        dp.bound_for_sigma2(0)
    with pytest.raises(ValueError):
        dp.bound_for_sigma2(1, 0)


def test_noise_plan_formula():
    plan = dp.plan_distributed_noise([1, 2, 2], Fraction(1, 2), n_nodes=4, t_dishonest=1)
    assert plan.l2_sq == 9
    assert plan.sigma2 == 9  # 9 / (2 * 1/2)
    assert plan.sigma2_share == 3  # sigma2 / (n - t)
    assert plan.n_honest * plan.sigma2_share == plan.sigma2
    assert plan.bound == dp.bound_for_sigma2(3, 12) == 21
    assert plan.ranges() == [(-21, 21)] * 3
    assert plan.rho == Fraction(1, 2)
    # KLS 2021 bound: barely above rho at this sigma
    assert plan.rho <= plan.kls_rho() < float(plan.rho) * (1 + 1e-6)
    share = plan.sample_share(random.Random(3).randrange)
    assert len(share) == 3 and all(-21 <= x <= 21 for x in share)
    eps, delta2 = plan.epsilon_delta(1e-6)
    assert eps == pytest.approx(dp.epsilon_from_rho(Fraction(1, 2), 1e-6), rel=1e-6)
    assert 1e-6 <= delta2 < 1e-6 + 1e-20


def test_kls_single_party_is_exact():
    assert dp.distributed_rho(4, 2, 1, 5) == pytest.approx(1.0, rel=1e-15)
    # small shares: the KLS correction is visible and the bound only grows
    assert dp.distributed_rho(1, Fraction(1, 4), 10, 3) > 1 / (2 * 10 * 0.25)


def test_honest_sum_has_target_variance():
    plan = dp.plan_distributed_noise([1], Fraction(1, 8), n_nodes=3, t_dishonest=1)
    rng = random.Random(8)
    sums = [sum(dp.sample_discrete_gaussian(plan.sigma2_share, rng.randrange)
                for _ in range(plan.n_honest)) for _ in range(20_000)]
    n = len(sums)
    var = sum(x * x for x in sums) / n
    assert plan.sigma2 == 4
    assert abs(var - 4) < 5 * math.sqrt(2 * 16 / n)
    # twin: not the variance of a single share
    assert abs(var - float(plan.sigma2_share)) > 5 * math.sqrt(2 * 16 / n)


@pytest.mark.parametrize("args", [
    ([1], 0, 3, 1), ([1], -1, 3, 1), ([1], 1, 3, 3), ([1], 1, 3, -1), ([1], 1, 0, 0),
    ([], 1, 3, 1), ([0, 0], 1, 3, 1), ([1], 1, True, 0),
])
def test_noise_plan_rejects(args):
    with pytest.raises(ValueError):
        dp.plan_distributed_noise(*args)


def test_as_fraction():
    assert dp.as_fraction("0.1") == Fraction(1, 10)
    assert dp.as_fraction(0.1) == Fraction(1, 10)
    assert dp.as_fraction("3/6") == Fraction(1, 2)
    for bad in ("x", float("nan"), True, None, [1], "1/0"):
        with pytest.raises(MalformedError):
            dp.as_fraction(bad)  # type: ignore[arg-type]
