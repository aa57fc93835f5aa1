"""The owner's differencing defence (protocol/history.py) and the exact-answer rules of the
policy (protocol/policy.py): every accept case has reject twins."""

from __future__ import annotations

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol import calibration, history
from statledger.protocol.datasets import load
from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.query import QuerySpec

COLS = ["age", "bmi", "sex"]


def _spec(filters: list[dict[str, object]], **kw: object) -> QuerySpec:
    base: dict[str, object] = {"version": 1, "statistic": "sum", "columns": ["bmi"],
                               "bounds": {"bmi": [15.0, 50.0], "age": [0.0, 120.0]},
                               "filters": filters, "max_rows": 1000}
    base.update(kw)
    return QuerySpec.parse(base)


def _rows(spec: QuerySpec) -> np.ndarray:
    _, report = calibration.wire_encode(spec, load("diabetes"))
    assert report.selected is not None
    return report.selected


def test_pack_roundtrip_and_reject_twins() -> None:
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 8, 9, 442):
        m = rng.random(n) < 0.5
        blob = history.pack_rows(m)
        assert np.array_equal(history.unpack_rows(blob), m)
    blob = history.pack_rows(rng.random(13) < 0.5)
    for bad in (blob[:-1], blob + b"\0", b"X" + blob[1:], blob[:10], b"",
                blob[:5] + (17).to_bytes(8, "big") + blob[13:],
                blob[:5] + (10**12).to_bytes(8, "big") + blob[13:]):
        with pytest.raises(MalformedError):
            history.unpack_rows(bad)
    # non-zero padding bits: a second encoding of the same set is refused
    import zlib
    pad = history.pack_rows(np.ones(9, dtype=bool))
    forged = pad[:13] + zlib.compress(b"\xff\xff")
    with pytest.raises(MalformedError, match="padding"):
        history.unpack_rows(forged)


def test_age_ge_30_then_gt_30_is_refused() -> None:
    first = _spec([{"column": "age", "op": ">=", "value": 30}])
    second = _spec([{"column": "age", "op": ">", "value": 30}])
    a, b = _rows(first), _rows(second)
    assert 0 < history.symmetric_difference(a, b) < 5  # someone is exactly 30
    history.check_differencing("diabetes", "q1", a, [], 5)  # the first is answered
    with pytest.raises(PolicyError, match="differ from those of the earlier exact query q1"
                       ) as info:
        history.check_differencing("diabetes", "q2", b, [("q1", a)], 5)
    assert not any(ch.isdigit() for ch in str(info.value).replace("q1", ""))
    # twins: the same row set again, a far-away one, the same query id: all answered
    history.check_differencing("diabetes", "q3", a.copy(), [("q1", a)], 5)
    far = _spec([{"column": "age", "op": ">=", "value": 50}])
    history.check_differencing("diabetes", "q4", _rows(far), [("q1", a)], 5)
    history.check_differencing("diabetes", "q1", b, [("q1", a)], 5)
    # a larger min_cell_size catches a wider difference
    d = history.symmetric_difference(a, _rows(far))
    with pytest.raises(PolicyError):
        history.check_differencing("diabetes", "q4", _rows(far), [("q1", a)], d + 1)


def test_tables_of_different_length_compare_by_row_index() -> None:
    a = np.array([True, True, False])
    b = np.array([True, True, False, True])
    assert history.symmetric_difference(a, b) == 1
    with pytest.raises(PolicyError):
        history.check_differencing("d", "q2", b, [("q1", a)], 2)


def test_exact_policy_rules() -> None:
    exact = _spec([])
    dp = _spec([], privacy={"mechanism": "zcdp", "rho": 0.5})
    filtered = _spec([{"column": "age", "op": ">=", "value": 30}])
    ProviderPolicy().check(exact, "q", COLS)  # default: exact answers allowed
    deny = ProviderPolicy.parse({"exact": "deny"})
    with pytest.raises(PolicyError, match="exact = \"deny\""):
        deny.check(exact, "q", COLS)
    deny.check(dp, "q", COLS)
    stats = ProviderPolicy.parse({"exact_statistics": ["count"]})
    with pytest.raises(PolicyError, match="exact_statistics"):
        stats.check(exact, "q", COLS)
    stats.check(dp, "q", COLS)
    cols = ProviderPolicy.parse({"exact_columns": ["age"]})
    with pytest.raises(PolicyError, match="column 'bmi'.*exact_columns"):
        cols.check(exact, "q", COLS)
    ProviderPolicy.parse({"exact_columns": ["age", "bmi"]}).check(exact, "q", COLS)
    filt = ProviderPolicy.parse({"require_dp_filtered": True})
    filt.check(exact, "q", COLS)
    with pytest.raises(PolicyError, match="require_dp_filtered"):
        filt.check(filtered, "q", COLS)
    filt.check(_spec([{"column": "age", "op": ">=", "value": 30}],
                     privacy={"mechanism": "zcdp", "rho": 0.5}), "q", COLS)


def test_exact_quota() -> None:
    pol = ProviderPolicy.parse({"exact": {"max": 2, "period_days": 1}})
    day = 86_400.0
    pol.check_exact_quota("d", [], 10 * day)
    pol.check_exact_quota("d", [9.5 * day], 10 * day)
    pol.check_exact_quota("d", [1.0, 2.0, 9.0 * day - 1], 10 * day)  # all outside the window
    with pytest.raises(PolicyError, match="quota of exact answers is used up"):
        pol.check_exact_quota("d", [9.5 * day, 9.9 * day], 10 * day)
    ProviderPolicy().check_exact_quota("d", [10 * day] * 100, 10 * day)  # "allow": no quota
    zero = ProviderPolicy.parse({"exact": {"max": 0, "period_days": 30}})
    with pytest.raises(PolicyError):
        zero.check_exact_quota("d", [], 0.0)


@pytest.mark.parametrize("bad", [
    {"exact": "sometimes"}, {"exact": {"max": -1, "period_days": 1}},
    {"exact": {"max": 1}}, {"exact": {"max": 1, "period_days": 0}},
    {"exact": {"max": 1, "period_days": 1, "x": 2}}, {"require_dp_filtered": "maybe"},
    {"exact_columns": "bmi"},
])
def test_policy_rejects_malformed_privacy_fields(bad: dict[str, object]) -> None:
    with pytest.raises(MalformedError, match="policy"):
        ProviderPolicy.parse(bad)


def test_vectorised_check_agrees_with_the_naive_difference() -> None:
    """The packed popcount-of-XOR check (several sets, tables of different lengths)
    refuses exactly when some new set that repeats no earlier one has a naive
    ``|A xor B|`` in ``1 .. k - 1`` with an earlier set."""
    rng = np.random.default_rng(11)
    for trial in range(200):
        n_new, n_old = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        new = rng.random((int(rng.integers(1, 4)), n_new)) < 0.5
        olds = [rng.random((int(rng.integers(1, 4)), n_old + int(rng.integers(0, 3)))) < 0.5
                for _ in range(3)]
        if trial % 2:  # plant a near copy: a few flipped rows of an earlier set
            near = np.zeros(n_new, dtype=bool)
            src = olds[1][0][:n_new]
            near[:src.size] = src
            near[rng.integers(0, n_new, int(rng.integers(1, 3)))] ^= True
            new[0] = near
        k = int(rng.integers(2, 6))
        # a new set equal to an earlier one is a repeat, not compared further
        naive = [[history.symmetric_difference(a, b) for o in olds for b in o] for a in new]
        want = any(0 < d < k for row in naive if 0 not in row for d in row)
        earlier = [(f"q{i}", history.RowSets.of_masks(o)) for i, o in enumerate(olds)]
        if want:
            with pytest.raises(PolicyError):
                history.check_differencing("d", "new", history.RowSets.of_masks(new),
                                           earlier, k)
        else:
            history.check_differencing("d", "new", history.RowSets.of_masks(new), earlier, k)
