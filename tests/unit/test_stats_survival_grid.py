"""kaplan_meier at real resolution: the daily grid of lifelines' lung data, the integer grid
``params.max_time`` / ``params.step``, the per-point bound ``params.max_ties``, and the
encoding that derives each group's size (rows after the grid + every removal on it).

Accept tests compare with lifelines on the pooled rows (1e-12 absolute on the curve and band,
1e-9 relative on the logrank, as tests/unit/test_stats_survival_lifelines.py); every one has
reject twins: malformed grids, bounds, vectors, and submissions a malicious owner could make.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_lung
from lifelines.statistics import logrank_test

from statledger.proofs.errors import MalformedError, PolicyError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.rangeproof import RangeLayout
from statledger.proofs.vector import (
    EncryptedVector,
    encrypt_vector_with_proof,
    verify_encrypted_vector,
)
from statledger.protocol import calibration
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.base import RangeExceededError

STAT = get("kaplan_meier")
TOL = 1e-12
SITES = 3


def lung() -> dict[str, np.ndarray]:
    d = load_lung()
    return {"time": d["time"].to_numpy(dtype=float), "status": d["status"].to_numpy(dtype=float),
            "sex": np.array([str(int(v)) for v in d["sex"]], dtype=object)}


def split(t: dict[str, np.ndarray], k: int = SITES) -> list[dict[str, np.ndarray]]:
    return [{c: v[i::k] for c, v in t.items()} for i in range(k)]


def lung_spec(**params: Any) -> QuerySpec:
    p: dict[str, Any] = {"time": "time", "event": "status", "max_time": 1022, "max_ties": 7}
    p.update(params)
    for k in [k for k, v in p.items() if v is None]:
        del p[k]
    return QuerySpec.parse({
        "version": 1, "statistic": "kaplan_meier", "columns": ["time", "status"],
        "bounds": {"time": [0, 1022], "status": [0, 1]}, "group_by": ["sex"],
        "categories": {"sex": ["1", "2"]}, "params": p, "max_rows": 1000,
        "min_cell_size": 1})  # the exact daily table (k >= 2 coarsens: test_km_coarsen.py)


def pooled_totals(spec: QuerySpec, tables: list[dict[str, np.ndarray]]) -> list[int]:
    layout = STAT.layout(spec)
    tot = [0] * len(layout)
    for t in tables:
        v = STAT.encode(spec, t)
        layout.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def test_lung_daily_grid_three_sites_matches_lifelines() -> None:
    d = lung()
    spec = lung_spec()
    assert len(STAT.layout(spec)) == 2 * (1 + 2 * 1022)
    res = STAT.decode(spec, pooled_totals(spec, split(d))).values
    assert res["times"] == [float(k) for k in range(1023)]
    for g in res["groups"]:
        m = d["sex"] == g["group"]["sex"]
        assert g["n"] == int(m.sum())
        kmf = KaplanMeierFitter().fit(d["time"][m], d["status"][m])
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_
        idx = [g["times"].index(float(t)) for t in sf.index]
        assert np.max(np.abs(np.array(g["survival"])[idx] - sf.to_numpy())) <= TOL
        assert np.max(np.abs(np.array(g["ci_lower"])[idx] - ci.iloc[:, 0].to_numpy())) <= TOL
        assert np.max(np.abs(np.array(g["ci_upper"])[idx] - ci.iloc[:, 1].to_numpy())) <= TOL
        full = sf.reindex(g["times"], method="ffill").to_numpy()
        assert np.max(np.abs(np.array(g["survival"]) - full)) <= TOL
        assert g["median"] == kmf.median_survival_time_
        # lifelines' event table, day by day
        et = kmf.event_table
        for t, row in et.iloc[1:].iterrows():
            k = g["times"].index(float(t))
            assert g["at_risk"][k] == row["at_risk"]
            assert g["events"][k] == row["observed"]
            assert g["censored"][k] == row["censored"]
    m = d["sex"] == "1"
    lr = logrank_test(d["time"][m], d["time"][~m], d["status"][m], d["status"][~m])
    ours = res["logrank"]
    assert abs(ours["test_statistic"] - lr.test_statistic) <= 1e-9 * lr.test_statistic
    assert abs(ours["p_value"] - lr.p_value) <= 1e-9 * lr.p_value


def test_max_ties_does_not_change_the_result_only_the_proof_size() -> None:
    d = split(lung())
    narrow, wide = lung_spec(), lung_spec(max_ties=None)  # 7 vs the default max_rows
    tn, tw = pooled_totals(narrow, d), pooled_totals(wide, d)
    assert tn == tw
    assert STAT.decode(narrow, tn).values == STAT.decode(wide, tw).values
    bits_n = RangeLayout.from_spans([hi - lo for lo, hi in
                                     calibration.wire_layout(narrow).ranges]).total_bits
    bits_w = RangeLayout.from_spans([hi - lo for lo, hi in
                                     calibration.wire_layout(wide).ranges]).total_bits
    # a/g: 10 bits + the upper-bound segment (1000 + 1 is no power of two) = 20 bits;
    # d, c: 3 bits each (7 + 1 = 2^3: no upper-bound segment) vs 20
    assert bits_n == 2 * 20 + 2 * 2 * 1022 * 3
    assert bits_w == 2 * 20 + 2 * 2 * 1022 * 20


def test_step_grid_equals_the_explicit_grid() -> None:
    d = split(lung())
    weekly = lung_spec(max_time=1029, step=7)
    listed = lung_spec(max_time=None, times=list(range(7, 1030, 7)))
    assert STAT.layout(weekly) == STAT.layout(listed)
    tw, tl = pooled_totals(weekly, d), pooled_totals(listed, d)
    assert tw == tl
    res = STAT.decode(weekly, tw).values
    assert res == STAT.decode(listed, tl).values
    assert res["times"][:3] == [0.0, 7.0, 14.0] and len(res["times"]) == 148
    # binned up: a death on day 5 counts at day 7
    assert sum(g["events"][1] for g in res["groups"]) == int(
        np.sum((lung()["time"] <= 7) & (lung()["status"] == 1)))


def test_rows_after_the_grid_stay_at_risk() -> None:
    d = lung()
    spec = lung_spec(max_time=365)  # one year: later times are "still at risk"
    res = STAT.decode(spec, pooled_totals(spec, split(d))).values
    for g in res["groups"]:
        m = d["sex"] == g["group"]["sex"]
        assert g["n"] == int(m.sum())
        assert g["at_risk"][-1] - g["events"][-1] - g["censored"][-1] == int(
            np.sum(d["time"][m] > 365))
        kmf = KaplanMeierFitter().fit(d["time"][m], d["status"][m])
        assert abs(g["survival"][-1] - float(kmf.predict(365))) <= TOL


# ------------------------------------------------------------------ what an owner may submit
def test_any_in_range_vectors_decode_consistently() -> None:
    """A submission whose censorings exceed its group size does not exist: the size is
    derived.  Whatever in-range vectors owners send (random, or every entry at the top of
    its range), the aggregate decodes: at risk never below that point's removals, S in [0,
    1] and non-increasing, no error for one owner to trigger."""
    spec = lung_spec(max_time=60)
    layout = STAT.layout(spec)
    rng = random.Random(7)
    top = [hi for _, hi in layout.ranges]
    vectors = [top, [0] * len(layout)]
    vectors += [[rng.randint(lo, hi) if rng.random() < 0.3 else 0 for lo, hi in layout.ranges]
                for _ in range(6)]
    vectors.append([0 if i % (1 + 2 * 60) == 0 else hi  # no row after the grid, all removed
                    for i, (_, hi) in enumerate(layout.ranges)])
    for v in vectors:
        layout.check(v)
        res = STAT.decode(spec, v).values
        for g in res["groups"]:
            if g["suppressed"]:
                continue
            r, dd, cc = g["at_risk"][1:], g["events"][1:], g["censored"][1:]
            assert all(rk >= dk + ck for rk, dk, ck in zip(r, dd, cc, strict=True))
            assert all(a - b == x + y for a, b, x, y in zip(r, r[1:], dd, cc, strict=False))
            s = g["survival"]
            assert all(0.0 <= x <= 1.0 for x in s)
            assert all(a >= b for a, b in zip(s, s[1:], strict=False))


def test_entry_above_max_ties_is_not_provable() -> None:
    """A malicious owner who puts 8 deaths on one day under max_ties = 7 can only prove it in
    a wider range; checked against the spec's ranges its submission is refused."""
    spec = lung_spec(max_time=3)
    ranges = list(calibration.wire_layout(spec).ranges)
    assert ranges[1] == (0, 7)
    x = Scalar.random()
    X = base_mul(x)
    ctx = b"statledger/test/km-max-ties"
    good = [0, 1, 0, 2, 0, 0, 0] * 2
    verify_encrypted_vector(X, encrypt_vector_with_proof(X, good, ranges, ctx), ranges, ctx)
    bad = list(good)
    bad[1] = 8
    with pytest.raises(MalformedError, match="outside its range"):
        encrypt_vector_with_proof(X, bad, ranges, ctx)
    wider = [(0, 15) if r == (0, 7) else r for r in ranges]
    forged = encrypt_vector_with_proof(X, bad, wider, ctx)
    with pytest.raises((MalformedError, VerificationError)):
        ev = EncryptedVector.from_bytes(forged.to_bytes(), ranges)
        verify_encrypted_vector(X, ev, ranges, ctx)


def test_truncated_and_extended_submissions_refused() -> None:
    spec = lung_spec(max_time=3)
    ranges = list(calibration.wire_layout(spec).ranges)
    X = base_mul(Scalar.random())
    raw = encrypt_vector_with_proof(X, [0] * len(ranges), ranges, b"ctx").to_bytes()
    for mutated in (raw[:-1], raw[:-33], raw + b"\x00", b"\x00" + raw):
        with pytest.raises(MalformedError):
            EncryptedVector.from_bytes(mutated, ranges)
    # one grid point fewer or more: the wrong length for the spec's layout
    for other in (lung_spec(max_time=2), lung_spec(max_time=4)):
        with pytest.raises(MalformedError):
            EncryptedVector.from_bytes(raw, list(calibration.wire_layout(other).ranges))
    for tot in ([0] * (len(ranges) - 1), [0] * (len(ranges) + 1)):
        with pytest.raises(MalformedError, match="totals"):
            STAT.decode(spec, tot)


def test_one_row_changes_one_entry_by_one() -> None:
    """Sensitivity 1 per entry and L1 1 per row: the group size is not a second entry."""
    d = lung()
    spec = lung_spec(max_time=400)
    base = STAT.encode(spec, d)
    for t, e, sex in ((5.0, 1.0, "1"), (399.5, 0.0, "2"), (1000.0, 1.0, "2")):
        more = {"time": np.append(d["time"], t), "status": np.append(d["status"], e),
                "sex": np.append(d["sex"], np.array([sex], dtype=object))}
        diff = [a - b for a, b in zip(STAT.encode(spec, more), base, strict=True)]
        assert sorted(diff) == [0] * (len(diff) - 1) + [1]
    assert STAT.sensitivity(spec) == [1] * len(base)


def test_owner_over_max_ties_refuses_without_a_count() -> None:
    d = lung()
    spec = lung_spec(max_ties=1)  # lung has days with 2 deaths in one group
    with pytest.raises(PolicyError, match="max_ties") as exc:
        STAT.encode(spec, d)
    assert not any(ch.isdigit() for ch in str(exc.value))
    with pytest.raises(PolicyError, match="max_ties"):
        calibration.wire_encode(spec, d, "site1")
    # more rows in one group than max_rows: the standard refusal
    big = lung_spec(max_ties=None)
    many = {"time": np.full(1001, 3.0), "status": np.ones(1001),
            "sex": np.array(["1"] * 1001, dtype=object)}
    with pytest.raises(RangeExceededError):
        STAT.encode(big, many)
    with pytest.raises(PolicyError, match="more rows than max_rows"):
        calibration.wire_encode(big, many, "site1")


# ------------------------------------------------------------------ malformed grids
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"max_time": 4097}, r"params\.max_time"),
        ({"max_time": 8194, "step": 2}, r"params\.max_time"),
        ({"max_time": 100, "step": 3}, r"multiple of params\.step"),
        ({"max_time": 100, "step": 0}, r"params\.step"),
        ({"max_time": 100, "step": -1}, r"params\.step"),
        ({"max_time": 100, "step": True}, r"params\.step"),
        ({"max_time": 100, "step": 2.5}, r"params\.step"),
        ({"max_time": None, "times": [1, 2], "step": 1}, r"params\.step"),
        ({"max_time": None, "times": list(range(1, 4098))}, r"params\.times"),
        ({"max_time": None, "times": [1, 3, 3]}, r"params\.times\[2\]"),
        ({"max_time": None, "times": [1, 3, 2]}, r"params\.times\[2\]"),
        ({"max_time": None, "times": [1, float("nan")]}, r"params\.times\[1\]"),
        ({"max_ties": 0}, r"params\.max_ties"),
        ({"max_ties": 1001}, r"params\.max_ties"),
        ({"max_ties": 7.5}, r"params\.max_ties"),
        ({"max_ties": True}, r"params\.max_ties"),
        ({"max_ties": "7"}, r"params\.max_ties"),
    ],
)
def test_bad_grid_or_bound_rejected(params: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        lung_spec(**params)


def test_largest_grid_accepted() -> None:
    assert len(STAT.layout(lung_spec(max_time=4096, max_ties=None))) == 2 * (1 + 2 * 4096)
    assert len(STAT.layout(lung_spec(max_time=8192, step=2))) == 2 * (1 + 2 * 4096)


def test_demo_and_example_spec_fit_every_waltons_site() -> None:
    """The demo's Kaplan-Meier (and examples/kaplan_meier.json, the same spec) declares
    max_ties = 15 (4-bit entries): every bundled waltons site fits it."""
    import json
    from pathlib import Path

    from statledger.nodes.demo import TOUR
    from statledger.protocol import datasets

    item = next(t for t in TOUR if t.name == "kaplan_meier")
    spec = QuerySpec.parse(item.spec)
    example = Path(__file__).resolve().parents[2] / "examples" / "kaplan_meier.json"
    assert QuerySpec.parse(json.loads(example.read_text())).params == spec.params
    assert spec.params["max_ties"] == 15
    layout = calibration.wire_layout(spec)
    for site in datasets.sites(item.dataset):
        values, _ = calibration.wire_encode(spec, datasets.load(item.dataset, site), site)
        layout.check(values)
