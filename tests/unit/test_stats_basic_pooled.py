"""count / sum / mean / variance / std: split across sites, add vectors, decode, compare.

Tolerances (default scale 2^16): against numpy/pandas on the *quantised* clipped pooled rows
the decoded values agree to 1e-12 relative (decoding is exact rational arithmetic); against
the raw clipped rows, means/sums agree within 0.5/scale per value and variances to 1e-6
relative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

SCALE = 2**16
RNG_SEED = 20240501


def make_table(n: int, seed: int = RNG_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(50, 20, n),  # some values outside [0, 100]: clipped
        "g": rng.choice(np.array(["a", "b", "c"], dtype=object), n),
        "h": rng.choice(np.array(["u", "v"], dtype=object), n),
        "z": rng.uniform(-1, 1, n),
    }


def split(table: dict[str, np.ndarray], cuts: list[int]) -> list[dict[str, np.ndarray]]:
    n = len(next(iter(table.values())))
    edges = [0, *cuts, n]
    return [
        {k: v[a:b] for k, v in table.items()} for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]


def spec_for(stat: str, **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": stat,
        "columns": ["x"] if stat != "count" else [],
        "bounds": {"x": [0, 100], "z": [-1, 1]},
        "categories": {"g": ["a", "b", "c"], "h": ["u", "v"]},
        "min_cell_size": 1,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def run(spec: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    stat = get(spec.statistic)
    layout = stat.layout(spec)
    total = [0] * len(layout)
    for t in sites:
        v = stat.encode(spec, t)
        layout.check(v)
        total = [a + b for a, b in zip(total, v, strict=True)]
    return total


def quantised(x: np.ndarray, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    return to_fixed(np.clip(x, lo, hi), SCALE) / SCALE


@pytest.mark.parametrize("stat", ["count", "sum", "mean", "variance", "std"])
def test_pooled_matches_numpy_with_empty_site(stat: str) -> None:
    table = make_table(500)
    sites = split(table, [120, 120, 330])  # second site has zero rows
    assert len(sites[1]["x"]) == 0
    spec = spec_for(stat)
    res = get(stat).decode(spec, run(spec, sites)).to_dict()
    raw = np.clip(table["x"], 0, 100)
    q = quantised(table["x"])
    want_q = {
        "count": 500,
        "sum": q.sum(),
        "mean": q.mean(),
        "variance": q.var(ddof=1),
        "std": q.std(ddof=1),
    }[stat]
    want_raw = {
        "count": 500,
        "sum": raw.sum(),
        "mean": raw.mean(),
        "variance": raw.var(ddof=1),
        "std": raw.std(ddof=1),
    }[stat]
    assert res["n"] == 500
    assert math.isclose(res["value"], want_q, rel_tol=1e-12)
    tol = {"count": 0, "sum": 500 * 0.5 / SCALE, "mean": 0.5 / SCALE}.get(stat)
    if tol is not None:
        assert abs(res["value"] - want_raw) <= tol
    else:
        assert math.isclose(res["value"], want_raw, rel_tol=1e-6)


@pytest.mark.parametrize("stat", ["count", "sum", "mean", "variance", "std"])
def test_group_by_and_filter_match_pandas(stat: str) -> None:
    table = make_table(600, seed=7)
    sites = split(table, [100, 350, 351])
    spec = spec_for(
        stat,
        group_by=["g", "h"],
        filters=[{"column": "z", "op": ">", "value": -0.5}],
    )
    res = get(stat).decode(spec, run(spec, sites)).to_dict()
    df = pd.DataFrame(table)
    df = df[df.z > -0.5]
    df["q"] = quantised(df.x.to_numpy())
    agg = {"count": "size", "sum": "sum", "mean": "mean", "variance": "var", "std": "std"}[stat]
    want = df.groupby(["g", "h"])["q"].agg(agg)
    assert len(res["cells"]) == 6
    for cell in res["cells"]:
        key = (cell["cell"]["g"], cell["cell"]["h"])
        assert cell["n"] == int((df.g == key[0]).mul(df.h == key[1]).sum())
        assert math.isclose(cell["value"], float(want[key]), rel_tol=1e-12)
    assert "n" not in res  # grouped results carry cells only


def test_single_row_and_undefined_variance() -> None:
    t = {"x": np.array([42.5])}
    for stat, want in [
        ("count", 1),
        ("sum", 42.5),
        ("mean", 42.5),
        ("variance", None),
        ("std", None),
    ]:
        spec = spec_for(stat)
        res = get(stat).decode(spec, run(spec, [t, {"x": np.array([])}])).to_dict()
        assert res["value"] == want, stat
        assert res["n"] == 1


def test_all_equal_values_zero_variance() -> None:
    t = {"x": np.full(50, 33.3)}
    for stat in ("variance", "std"):
        spec = spec_for(stat)
        res = get(stat).decode(spec, run(spec, split(t, [10, 30]))).to_dict()
        assert res["value"] == 0.0
    spec = spec_for("mean")
    res = get("mean").decode(spec, run(spec, [t])).to_dict()
    assert abs(res["value"] - 33.3) <= 0.5 / SCALE


def test_values_outside_bounds_are_clipped_and_reported() -> None:
    t = {"x": np.array([-10.0, 0.0, 50.0, 100.0, 250.0, np.nan])}
    spec = spec_for("mean")
    vec, report = get("mean").encode_with_report(spec, t)
    assert report.clipped == {"x": 2}
    assert report.n_missing == 1
    assert report.n_selected == 5
    assert report.n_rows == 6
    assert vec == [5, to_fixed(250.0, SCALE)]  # 0 + 0 + 50 + 100 + 100
    assert get("mean").decode(spec, vec).to_dict()["value"] == 50.0
    assert report.to_dict()["clipped"] == {"x": 2}


def test_values_at_bounds_hit_layout_extremes() -> None:
    spec = spec_for("variance", bounds={"x": [-3, 7]}, max_rows=4)
    layout = get("variance").layout(spec)
    hi = get("variance").encode(spec, {"x": np.full(4, 7.0)})
    lo = get("variance").encode(spec, {"x": np.full(4, -3.0)})
    assert hi == [4, 4 * 7 * SCALE, 4 * (7 * SCALE) ** 2]
    assert lo[1] == 4 * -3 * SCALE
    assert layout.ranges[0] == (0, 4)
    assert layout.ranges[1] == (4 * -3 * SCALE, 4 * 7 * SCALE)
    assert layout.ranges[2] == (0, 4 * (7 * SCALE) ** 2)
    assert hi[0] == layout.ranges[0][1] and hi[1] == layout.ranges[1][1]
    assert hi[2] == layout.ranges[2][1] and lo[1] == layout.ranges[1][0]
    empty = get("variance").encode(spec, {"x": np.array([])})
    assert empty == [0, 0, 0]
    layout.check(empty)


def test_more_rows_than_max_rows_rejected() -> None:
    spec = spec_for("mean", max_rows=4)
    with pytest.raises(MalformedError, match="outside declared range"):
        get("mean").encode(spec, {"x": np.full(5, 1.0)})


def test_positive_bounds_range_includes_zero_sum() -> None:
    spec = spec_for("sum", bounds={"x": [10, 20]}, max_rows=8)
    assert get("sum").layout(spec).ranges[1] == (0, 8 * 20 * SCALE)
    spec = spec_for("sum", bounds={"x": [-20, -10]}, max_rows=8)
    assert get("sum").layout(spec).ranges[1] == (8 * -20 * SCALE, 0)


def test_encode_rejects_bad_tables() -> None:
    spec = spec_for("mean", group_by=["g"])
    stat = get("mean")
    with pytest.raises(MalformedError, match="missing column 'x'"):
        stat.encode(spec, {"g": np.array(["a"], dtype=object)})
    with pytest.raises(MalformedError, match="missing column 'g'"):
        stat.encode(spec, {"x": np.array([1.0])})
    with pytest.raises(MalformedError, match="different lengths"):
        stat.encode(spec, {"x": np.array([1.0, 2.0]), "g": np.array(["a"], dtype=object)})
    with pytest.raises(MalformedError, match="non-numeric"):
        stat.encode(
            spec, {"x": np.array(["abc"], dtype=object), "g": np.array(["a"], dtype=object)}
        )
    with pytest.raises(MalformedError):
        stat.encode(spec, [1, 2])  # type: ignore[arg-type]


def test_undeclared_categories_dropped_and_reported() -> None:
    spec = spec_for("count", group_by=["g"])
    t = {"g": np.array(["a", "b", "zz", None, "a"], dtype=object)}
    vec, rep = get("count").encode_with_report(spec, t)
    assert vec == [2, 1, 0]
    assert rep.n_undeclared_category == 1
    assert rep.n_missing == 1


@pytest.mark.parametrize("stat", ["count", "mean", "variance"])
def test_decode_reject_twins(stat: str) -> None:
    spec = spec_for(stat)
    good = run(spec, [make_table(20)])
    get(stat).decode(spec, good)
    with pytest.raises(MalformedError, match="totals"):
        get(stat).decode(spec, good[:-1])
    with pytest.raises(MalformedError, match="totals"):
        get(stat).decode(spec, good + [0])
    with pytest.raises(MalformedError, match="totals"):
        get(stat).decode(spec, [*good[:-1], 1.5])  # type: ignore[list-item]
    with pytest.raises(MalformedError, match="totals"):
        get(stat).decode(spec, [True] + good[1:])
    with pytest.raises(MalformedError, match="totals"):
        get(stat).decode(spec, "12")  # type: ignore[arg-type]


def test_noisy_totals_decode_gracefully() -> None:
    spec = spec_for("variance")
    res = get("variance").decode(spec, [-2, 5, 3]).to_dict()
    assert res["value"] is None
    res = get("mean").decode(spec_for("mean"), [0, 17]).to_dict()
    assert res["value"] is None
    # negative variance estimate from noise is clamped at 0
    assert get("variance").decode(spec, [3, 3 * SCALE, 0]).to_dict()["value"] == 0.0


def test_sensitivity_bounds_one_row_change() -> None:
    rng = np.random.default_rng(5)
    for stat in ("count", "sum", "mean", "variance", "std"):
        spec = spec_for(stat, bounds={"x": [-4, 9]}, group_by=["g"])
        sens = get(stat).sensitivity(spec)
        assert len(sens) == len(get(stat).layout(spec))
        for _ in range(10):
            t = {
                "x": rng.uniform(-10, 10, 30),
                "g": rng.choice(np.array(["a", "b", "c"], dtype=object), 30),
            }
            a = get(stat).encode(spec, t)
            b = get(stat).encode(spec, {k: v[1:] for k, v in t.items()})
            assert all(abs(x - y) <= s for x, y, s in zip(a, b, sens, strict=True))
        # tight: one row at the bound of largest magnitude attains every sensitivity of its cell
        t1 = {"x": np.array([9.0]), "g": np.array(["a"], dtype=object)}
        v1 = get(stat).encode(spec, t1)
        w = len(v1) // 3
        assert [abs(v) for v in v1[:w]] == sens[:w]


def test_summary_and_to_dict_are_plain() -> None:
    spec = spec_for("std", group_by=["g"])
    res = get("std").decode(spec, run(spec, [make_table(40)]))
    text = res.summary()
    assert "std" in text and "g=a" in text and "ddof=1" in text
    d = res.to_dict()
    import json

    json.dumps(d, allow_nan=False)
    assert d["statistic"] == "std"
