"""Hypothesis properties of the DP accounting, calibration and budget ledger."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.errors import PolicyError
from statledger.protocol import dp

pos_frac = st.fractions(min_value=Fraction(1, 10**6), max_value=10**6, max_denominator=10**6)
SET = settings(max_examples=80, deadline=None)


@SET
@given(pos_frac, st.integers(1, 20))
def test_bound_is_exact_ceiling(s2, k):
    b = dp.bound_for_sigma2(s2, k)
    assert b * b >= k * k * s2 > (b - 1) ** 2 or (b == 0)


@SET
@given(st.integers(1, 10**6), pos_frac)
def test_calibration_inverse(d2, rho):
    assert dp.rho_discrete_gaussian(d2, dp.sigma2_for_rho(d2, rho)) == rho


@SET
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=20).filter(any), pos_frac,
       st.integers(1, 8), st.data())
def test_noise_plan_invariants(sens, rho, n, data):
    t = data.draw(st.integers(0, n - 1))
    plan = dp.plan_distributed_noise(sens, rho, n, t)
    assert plan.sigma2_share * (n - t) == plan.sigma2
    assert dp.rho_discrete_gaussian(plan.l2_sq, plan.sigma2) == rho
    assert plan.bound * plan.bound >= 144 * plan.sigma2_share
    assert plan.ranges() == [(-plan.bound, plan.bound)] * len(sens)


@SET
@given(st.fractions(min_value=Fraction(1, 100), max_value=50, max_denominator=1000),
       st.integers(0, 6), st.integers(0, 2**32))
def test_truncated_draws_within_bound(s2, bound, seed):
    xs = dp.sample_vector(20, sigma2=s2, bound=bound, randbelow=random.Random(seed).randrange)
    assert all(-bound <= x <= bound for x in xs)


@SET
@given(st.lists(st.tuples(st.sampled_from(["q1", "q2", "q3", "q4", "q5"]),
                          st.fractions(min_value=Fraction(-1, 2), max_value=1,
                                       max_denominator=12)), max_size=25))
def test_budget_never_exceeded_and_persists(charges):
    total = Fraction(2)
    b = dp.BudgetLedger("ds", total)
    model: dict[str, Fraction] = {}
    for q, r in charges:
        ok = r > 0 and (model.get(q) == r or (q not in model and sum(model.values()) + r <= total))
        if ok:
            b.charge(q, r)
            model.setdefault(q, r)
        else:
            with pytest.raises(PolicyError):
                b.charge(q, r)
        assert b.charges == model
        assert b.spent == sum(model.values(), Fraction(0)) <= total
    again = dp.BudgetLedger.from_dict(b.to_dict())
    assert again == b and again.remaining == total - b.spent


@SET
@given(st.fractions(min_value=0, max_value=10**9, max_denominator=10**9))
def test_as_fraction_string_round_trip(f):
    assert dp.as_fraction(str(f)) == f
    assert dp.as_fraction(f) == f


@SET
@given(st.floats(min_value=1e-6, max_value=50), st.floats(min_value=1e-12, max_value=0.1))
def test_conversions_consistent(rho, delta):
    tight = dp.epsilon_from_rho(rho, delta)
    simple = dp.epsilon_from_rho_simple(rho, delta)
    assert 0 <= tight <= simple
    assert tight >= 0  # clamped at 0: then (0, delta)-DP already holds
    assert dp.delta_from_rho(rho, tight) <= delta * (1 + 1e-6)
