"""kaplan_meier: per-site encode, add, decode; compare with lifelines on the pooled rows.

Tolerance: 1e-12 absolute on survival, confidence band, logrank statistic and p value
(measured: exactly equal on waltons and rossi); medians are equal.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test

from statledger.proofs.errors import MalformedError
from statledger.protocol import datasets, suppression
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

STAT = get("kaplan_meier")
TOL = 1e-12


def waltons_spec(**over: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": "kaplan_meier",
        "columns": ["time", "event"],
        "bounds": {"time": [0, 100], "event": [0, 1]},
        "categories": {"group": ["control", "miR-137"]},
        "group_by": ["group"],
        "params": {"time": "time", "event": "event", "max_time": 80},
        "min_cell_size": 1,  # the exact table (k >= 2 coarsens: tests/unit/test_km_coarsen.py)
    }
    obj.update(over)
    return QuerySpec.parse(obj)


def rossi_tables(str_fin: bool = True) -> list[dict[str, np.ndarray]]:
    out = []
    for s in datasets.sites("rossi"):
        t = dict(datasets.load("rossi", s))
        if str_fin:
            t["fin"] = np.array([str(int(v)) for v in t["fin"]], dtype=object)
        out.append(t)
    return out


def rossi_spec(**over: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": "kaplan_meier",
        "columns": ["week", "arrest"],
        "bounds": {"week": [0, 52], "arrest": [0, 1]},
        "categories": {"fin": ["0", "1"]},
        "group_by": ["fin"],
        "params": {"time": "week", "event": "arrest", "max_time": 52},
        "min_cell_size": 1,
    }
    obj.update(over)
    return QuerySpec.parse(obj)


def run(spec: QuerySpec, tables: list[dict[str, np.ndarray]]) -> Any:
    layout = STAT.layout(spec)
    tot = [0] * len(layout)
    for t in tables:
        v = STAT.encode(spec, t)
        layout.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    # what the protocol decrypts: the coarsened release when min_cell_size >= 2
    return STAT.decode(spec, suppression.released_totals(spec, tot))


def compare_group(g: dict[str, Any], times: np.ndarray, events: np.ndarray) -> None:
    kmf = KaplanMeierFitter().fit(times, events)
    sf = kmf.survival_function_.iloc[:, 0]
    ci = kmf.confidence_interval_
    ours_t = list(g["times"])
    idx = [ours_t.index(float(t)) for t in sf.index]
    assert np.max(np.abs(np.array(g["survival"])[idx] - sf.to_numpy())) <= TOL
    assert np.max(np.abs(np.array(g["ci_lower"])[idx] - ci.iloc[:, 0].to_numpy())) <= TOL
    assert np.max(np.abs(np.array(g["ci_upper"])[idx] - ci.iloc[:, 1].to_numpy())) <= TOL
    # between lifelines' time points our curve is flat (step function)
    full = sf.reindex(ours_t, method="ffill").to_numpy()
    assert np.max(np.abs(np.array(g["survival"]) - full)) <= TOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        med = kmf.median_survival_time_
    assert (g["median"] is None) == bool(np.isinf(med))
    if g["median"] is not None:
        assert g["median"] == med


def test_waltons_by_group_matches_lifelines() -> None:
    spec = waltons_spec()
    res = run(spec, [datasets.load("waltons", s) for s in datasets.sites("waltons")])
    d = datasets.load("waltons")
    for g in res.values["groups"]:
        m = d["group"] == g["group"]["group"]
        compare_group(g, d["time"][m], d["event"][m])
    m = d["group"] == "control"
    lr = logrank_test(d["time"][m], d["time"][~m], d["event"][m], d["event"][~m])
    ours = res.values["logrank"]
    assert abs(ours["test_statistic"] - lr.test_statistic) <= 1e-9 * lr.test_statistic
    assert abs(ours["p_value"] - lr.p_value) <= 1e-9 * lr.p_value
    assert ours["df"] == 1
    assert [g["median"] for g in res.values["groups"]] == [58.0, 26.0]


def test_rossi_by_fin_matches_lifelines() -> None:
    spec = rossi_spec()
    res = run(spec, rossi_tables())
    d = datasets.load("rossi")
    for g in res.values["groups"]:
        m = d["fin"] == float(g["group"]["fin"])
        compare_group(g, d["week"][m], d["arrest"][m])
    m = d["fin"] == 0
    lr = logrank_test(d["week"][m], d["week"][~m], d["arrest"][m], d["arrest"][~m])
    ours = res.values["logrank"]
    assert abs(ours["test_statistic"] - lr.test_statistic) <= 1e-9 * lr.test_statistic
    assert abs(ours["p_value"] - lr.p_value) <= 1e-9 * lr.p_value
    # medians not reached in rossi: more than half never arrested
    assert all(g["median"] is None for g in res.values["groups"])


def test_rossi_three_groups_multivariate_logrank() -> None:
    tables = rossi_tables(str_fin=False)
    for t in tables:
        t["prio_band"] = np.array(
            ["low" if v <= 1 else ("mid" if v <= 4 else "high") for v in t["prio"]], dtype=object
        )
    spec = rossi_spec(categories={"prio_band": ["low", "mid", "high"]}, group_by=["prio_band"])
    res = run(spec, tables)
    d = datasets.load("rossi")
    band = np.array(["low" if v <= 1 else ("mid" if v <= 4 else "high") for v in d["prio"]])
    lr = multivariate_logrank_test(d["week"], band, d["arrest"])
    ours = res.values["logrank"]
    assert ours["df"] == 2
    assert abs(ours["test_statistic"] - lr.test_statistic) <= 1e-9 * lr.test_statistic
    assert abs(ours["p_value"] - lr.p_value) <= 1e-9 * max(lr.p_value, 1e-300)
    for g in res.values["groups"]:
        m = band == g["group"]["prio_band"]
        compare_group(g, d["week"][m], d["arrest"][m])


def test_no_group_by_single_curve() -> None:
    spec = waltons_spec(categories={}, group_by=[])
    res = run(spec, [datasets.load("waltons", s) for s in datasets.sites("waltons")])
    assert len(res.values["groups"]) == 1 and res.values["logrank"] is None
    d = datasets.load("waltons")
    compare_group(res.values["groups"][0], d["time"], d["event"])


def test_explicit_grid_equals_unit_grid_on_observed_times() -> None:
    d = datasets.load("waltons")
    grid = sorted({float(t) for t in d["time"]})
    spec = waltons_spec(params={"time": "time", "event": "event", "times": grid})
    res = run(spec, [d])
    for g in res.values["groups"]:
        m = d["group"] == g["group"]["group"]
        compare_group(g, d["time"][m], d["event"][m])


def test_coarse_grid_bins_up() -> None:
    # a time T is counted at the first grid point >= T; beyond the grid: still at risk (the
    # first entry: rows after the grid; the group size 5 is derived, not encoded)
    spec = waltons_spec(
        categories={}, group_by=[], min_cell_size=1,
        params={"time": "time", "event": "event", "times": [10, 20.5]},
    )
    t = {"time": np.array([3.0, 10.0, 10.5, 20.5, 30.0]),
         "event": np.array([1.0, 0.0, 1.0, 1.0, 1.0])}
    v = STAT.encode(spec, t)
    assert v == [1, 1, 1, 2, 0]
    g = STAT.decode(spec, v).values["groups"][0]
    assert g["at_risk"] == [5, 5, 3]
    assert g["survival"] == pytest.approx([1.0, 0.8, 0.8 * (1 / 3)], abs=1e-15)


def test_group_with_no_events() -> None:
    d = datasets.load("waltons")
    t = {k: v.copy() for k, v in d.items()}
    t["event"][t["group"] == "miR-137"] = 0.0
    spec = waltons_spec()
    res = run(spec, [t])
    g = res.values["groups"][1]
    assert g["group"] == {"group": "miR-137"}
    assert set(g["survival"]) == {1.0}
    assert set(g["ci_lower"]) == {1.0} and set(g["ci_upper"]) == {1.0}
    assert g["median"] is None
    m = t["group"] == "control"
    lr = logrank_test(t["time"][m], t["time"][~m], t["event"][m], t["event"][~m])
    assert abs(res.values["logrank"]["test_statistic"] - lr.test_statistic) <= 1e-9
    json.dumps(res.to_dict())


def test_site_with_zero_rows_and_empty_group() -> None:
    d = datasets.load("waltons")
    empty = {k: v[:0] for k, v in d.items()}
    spec = waltons_spec()
    assert STAT.encode(spec, empty) == [0] * len(STAT.layout(spec))
    only_control = {k: v[d["group"] == "control"] for k, v in d.items()}
    res = run(spec, [empty, only_control])
    g0, g1 = res.values["groups"]
    assert g1["n"] == 0 and g1["survival"][-1] == 1.0 and g1["median"] is None
    assert res.values["logrank"] is None  # only one non-empty group
    compare_group(g0, only_control["time"], only_control["event"])


def test_single_row() -> None:
    spec = waltons_spec(categories={}, group_by=[], min_cell_size=1)
    res = run(spec, [{"time": np.array([5.0]), "event": np.array([1.0])}])
    g = res.values["groups"][0]
    assert g["n"] == 1 and g["median"] == 5.0
    assert g["survival"][5] == 0.0 and g["survival"][4] == 1.0


def test_small_group_suppressed() -> None:
    d = datasets.load("waltons")
    spec = waltons_spec(min_cell_size=40)  # miR-137 has 34 rows
    res = run(spec, [d])
    # no grid point has 40 events in either group: nothing is released (coarsened grid)
    assert [g["suppressed"] for g in res.values["groups"]] == [True, True]
    assert res.values["logrank"] is None
    assert "suppressed" in res.summary()


def test_summary_and_determinism() -> None:
    spec = waltons_spec()
    tables = [datasets.load("waltons", s) for s in datasets.sites("waltons")]
    a, b = run(spec, tables), run(spec, tables[::-1])
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    s = a.summary()
    assert "logrank_test" in s and "KM_estimate" in s and "miR-137" in s


def test_layout_and_sensitivity() -> None:
    spec = waltons_spec(max_rows=1000)
    layout = STAT.layout(spec)
    assert len(layout) == 2 * (1 + 2 * 80)
    assert all(r == (0, 1000) for r in layout.ranges)
    assert STAT.sensitivity(spec) == [1] * len(layout)
    # max_rows rows all in one cell at one time: entries reach the range top, not beyond
    t = {"time": np.full(1000, 7.0), "event": np.ones(1000), "group": np.array(["control"] * 1000,
                                                                              dtype=object)}
    v = STAT.encode(spec, t)
    layout.check(v)
    assert max(v) == 1000


# ------------------------------------------------------------------ reject twins
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"time": "time", "event": "event"}, r"params\.times"),
        ({"time": "time", "event": "event", "max_time": 5, "times": [1]}, r"params\.times"),
        ({"time": "time", "event": "event", "max_time": 0}, r"params\.max_time"),
        ({"time": "time", "event": "event", "max_time": 2.5}, r"params\.max_time"),
        ({"time": "time", "event": "event", "max_time": 10**6}, r"params\.max_time"),
        ({"time": "time", "event": "event", "times": [3, 2]}, r"params\.times\[1\]"),
        ({"time": "time", "event": "event", "times": [1, 1]}, r"params\.times\[1\]"),
        ({"time": "time", "event": "event", "times": [0, 1]}, r"params\.times\[0\]"),
        ({"time": "time", "event": "event", "times": [1, "2"]}, r"params\.times\[1\]"),
        ({"time": "time", "event": "event", "times": []}, r"params\.times"),
        ({"time": "time", "event": "event", "max_time": 5, "alpha": 1.5}, r"params\.alpha"),
        ({"time": "time", "event": "time", "max_time": 5}, r"params\.event"),
        ({"time": "nope", "event": "event", "max_time": 5}, r"params\.time"),
        ({"event": "event", "max_time": 5}, r"params\.time"),
        ({"time": "time", "event": "event", "max_time": 5, "bins": 3}, r"params\.bins"),
    ],
)
def test_bad_params_rejected(params: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        waltons_spec(params=params)


def test_event_bounds_and_values_checked() -> None:
    with pytest.raises(MalformedError, match=r"bounds\.event"):
        waltons_spec(bounds={"time": [0, 100], "event": [0.5, 1]})
    spec = waltons_spec()
    t = dict(datasets.load("waltons", "site1"))
    t["event"] = t["event"].copy()
    t["event"][0] = 0.5
    with pytest.raises(MalformedError, match="0 or 1"):
        STAT.encode(spec, t)
    # swapped fields: time <-> event -> the "event" values are times, not 0/1
    swapped = waltons_spec(params={"time": "event", "event": "time", "max_time": 80},
                           bounds={"time": [0, 100], "event": [0, 100]})
    with pytest.raises(MalformedError, match="0 or 1"):
        STAT.encode(swapped, datasets.load("waltons", "site1"))


@pytest.mark.parametrize("mutate", ["truncate", "extend", "float", "negative", "negative_after"])
def test_bad_totals_rejected(mutate: str) -> None:
    spec = waltons_spec()
    tot: list[Any] = STAT.encode(spec, datasets.load("waltons"))
    if mutate == "truncate":
        tot = tot[:-1]
    elif mutate == "extend":
        tot = tot + [0]
    elif mutate == "float":
        tot[3] = 1.0
    elif mutate == "negative":
        tot[3] = -1
    else:
        tot[0] = -1  # rows after the grid
    with pytest.raises(MalformedError):
        STAT.decode(spec, tot)


def test_bit_flip_changes_curve() -> None:
    spec = waltons_spec()
    tot = STAT.encode(spec, datasets.load("waltons"))
    good = STAT.decode(spec, tot).values["groups"][0]["survival"]
    k = 1 + 2 * 40  # d@41 of control (7 events)
    flipped = list(tot)
    flipped[k] ^= 1
    assert STAT.decode(spec, flipped).values["groups"][0]["survival"] != good
