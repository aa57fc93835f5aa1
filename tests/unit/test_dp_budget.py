"""BudgetLedger: charges, idempotence, refusals (with their twins), strict persistence."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.dp import BudgetLedger


def _ledger() -> BudgetLedger:
    return BudgetLedger("hospital-a/visits", Fraction(1))


def test_charge_and_remaining():
    b = _ledger()
    b.charge("q1", Fraction(1, 4))
    b.charge("q2", "1/4")
    assert b.spent == Fraction(1, 2) and b.remaining == Fraction(1, 2)
    assert b.has_charged("q1") and not b.has_charged("q3")


def test_charge_is_idempotent_per_query():
    b = _ledger()
    b.charge("q1", Fraction(1, 4))
    b.charge("q1", Fraction(1, 4))
    b.charge("q1", 0.25)
    assert b.spent == Fraction(1, 4)
    assert b.charges == {"q1": Fraction(1, 4)}


def test_same_query_different_rho_refused():
    b = _ledger()
    b.charge("q1", Fraction(1, 4))
    with pytest.raises(PolicyError, match="q1 already charged"):
        b.charge("q1", Fraction(1, 3))
    assert b.spent == Fraction(1, 4)


def test_exact_remaining_accepted_one_unit_more_refused():
    unit = Fraction(1, 10**12)
    b = _ledger()
    b.charge("q1", Fraction(1, 2))
    with pytest.raises(PolicyError) as exc:
        b.charge("q2", Fraction(1, 2) + unit)
    msg = str(exc.value)
    for part in ("hospital-a/visits", "spent 1/2", f"requested {Fraction(1, 2) + unit}",
                 "remaining 1/2"):
        assert part in msg
    assert b.spent == Fraction(1, 2) and not b.has_charged("q2")
    b.charge("q2", Fraction(1, 2))  # twin: exactly the remaining budget is fine
    assert b.remaining == 0
    with pytest.raises(PolicyError, match="remaining 0"):
        b.charge("q3", unit)


@pytest.mark.parametrize("rho", [0, Fraction(0), "0", Fraction(-1, 10), -1, "abc", float("nan")])
def test_zero_negative_garbage_rho_refused(rho):
    b = _ledger()
    with pytest.raises(PolicyError, match="hospital-a/visits"):
        b.charge("q1", rho)
    assert b.spent == 0
    with pytest.raises(PolicyError):
        b.check("q1", rho)


def test_check_does_not_charge():
    b = _ledger()
    b.check("q1", Fraction(1, 2))
    assert b.spent == 0
    with pytest.raises(PolicyError):
        b.check("q1", 2)
    with pytest.raises(PolicyError):
        b.check("", Fraction(1, 2))


def test_zero_total_refuses_everything():
    b = BudgetLedger("d", 0)
    with pytest.raises(PolicyError, match="remaining 0"):
        b.charge("q", Fraction(1, 10**12))


def test_round_trip_json():
    b = _ledger()
    b.charge("q2", Fraction(1, 3))
    b.charge("q1", "0.1")
    d = b.to_dict()
    assert d == {"version": 1, "dataset": "hospital-a/visits", "total_rho": "1",
                 "charges": {"q1": "1/10", "q2": "1/3"}}
    again = BudgetLedger.from_dict(json.loads(json.dumps(d)))
    assert again == b and again.to_dict() == d
    again.charge("q3", Fraction(1, 10))
    assert again != b


def _mutations() -> list[object]:
    good = {"version": 1, "dataset": "d", "total_rho": "1", "charges": {"q1": "1/3"}}
    muts: list[object] = [
        None, [], "x",
        {k: v for k, v in good.items() if k != "charges"},
        {**good, "extra": 1},
        {**good, "version": 2},
        {**good, "version": True},
        {**good, "version": "1"},
        {**good, "dataset": ""},
        {**good, "dataset": 5},
        {**good, "total_rho": "2/4"},
        {**good, "total_rho": "-1"},
        {**good, "total_rho": 1},
        {**good, "total_rho": "0.5"},
        {**good, "total_rho": "1/0"},
        {**good, "total_rho": " 1"},
        {**good, "charges": []},
        {**good, "charges": {"q1": "0"}},
        {**good, "charges": {"q1": "2"}},  # exceeds the total
        {**good, "charges": {"q1": 0.3}},
        {**good, "charges": {"": "1/3"}},
        {**good, "charges": {"q1": "1/3", "q2": "2/3", "q3": "1/1000"}},
    ]
    return muts


@pytest.mark.parametrize("bad", _mutations())
def test_from_dict_rejects_mutations(bad):
    with pytest.raises(MalformedError):
        BudgetLedger.from_dict(bad)


def test_constructor_rejects():
    with pytest.raises(MalformedError):
        BudgetLedger("", 1)
    with pytest.raises(MalformedError):
        BudgetLedger("d", -1)
    with pytest.raises(MalformedError):
        BudgetLedger("d", 1, {"q": 2})
