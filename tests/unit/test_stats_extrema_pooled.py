"""min / max via unary threshold vectors across sites vs numpy on the pooled rows (exact)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get


def spec(stat: str, **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": stat,
        "columns": ["age"],
        "bounds": {"age": [0, 120]},
        "params": {"domain": [0, 120]},
        "min_cell_size": 1,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def run(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    st = get(s.statistic)
    lay = st.layout(s)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(s, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def sites(seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"age": rng.integers(18, 90, n).astype(float)} for n in (40, 0, 1, 75)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_max_min_match_numpy(seed: int) -> None:
    ss = sites(seed)
    pooled = np.concatenate([t["age"] for t in ss])
    rmax = get("max").decode(spec("max"), run(spec("max"), ss)).to_dict()
    rmin = get("min").decode(spec("min"), run(spec("min"), ss)).to_dict()
    assert rmax["value"] == int(pooled.max())
    assert rmin["value"] == int(pooled.min())
    assert rmax["providers"] == 4 and rmax["providers_with_rows"] == 3
    assert rmax["n"] == pooled.size


def test_domain_edges_and_clipping() -> None:
    s = [{"age": np.array([0.0, 5.0])}, {"age": np.array([120.0])}]
    assert get("max").decode(spec("max"), run(spec("max"), s)).to_dict()["value"] == 120
    assert get("min").decode(spec("min"), run(spec("min"), s)).to_dict()["value"] == 0
    vec, rep = get("max").encode_with_report(
        spec("max", params={"domain": [10, 20]}), {"age": np.array([3.0, 15.0, 99.0])}
    )
    assert rep.clipped == {"age": 2}
    assert vec == [3, 1, 1] + [1] * 10  # max clipped to 20: every ge(t) for t in 11..20
    only_low = get("max").encode(spec("max", params={"domain": [10, 20]}), {"age": np.array([2.0])})
    assert only_low[3:] == [0] * 10
    res = get("max").decode(spec("max", params={"domain": [10, 20]}), only_low).to_dict()
    assert res["value"] == 10


def test_all_equal_and_single_row_and_rounding() -> None:
    t = {"age": np.full(7, 33.0)}
    assert get("max").decode(spec("max"), run(spec("max"), [t])).to_dict()["value"] == 33
    assert get("min").decode(spec("min"), run(spec("min"), [t])).to_dict()["value"] == 33
    one = {"age": np.array([44.5])}  # rounds half to even -> 44
    assert get("max").decode(spec("max"), run(spec("max"), [one])).to_dict()["value"] == 44


def test_no_rows_anywhere_gives_none() -> None:
    e = {"age": np.array([])}
    res = get("max").decode(spec("max"), run(spec("max"), [e, e])).to_dict()
    assert res["value"] is None and res["providers"] == 2 and res["providers_with_rows"] == 0


def test_small_n_suppressed() -> None:
    s = spec("max", min_cell_size=5)
    res = get("max").decode(s, run(s, [{"age": np.array([50.0, 60.0])}])).to_dict()
    assert res["value"] is None and res["suppressed"] and res["n"] is None


def test_domain_from_integer_bounds() -> None:
    s = spec("min", params={}, bounds={"age": [0, 10]})
    assert len(get("min").layout(s)) == 3 + 10


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"params": {"domain": [5, 5]}}, "params.domain"),
        ({"params": {"domain": [5, 1]}}, "params.domain"),
        ({"params": {"domain": [0.5, 3]}}, "params.domain"),
        ({"params": {"domain": [0, 10_000]}}, "params.domain"),
        ({"params": {"domain": [0]}}, "params.domain"),
        ({"params": {"domain": "0..5"}}, "params.domain"),
        ({"params": {}, "bounds": {"age": [0, 10.5]}}, "params.domain"),
        ({"group_by": ["g"], "categories": {"g": ["a"]}}, "group_by"),
        ({"columns": []}, "columns"),
        ({"params": {"domain": [0, 1], "x": 1}}, "params.x"),
    ],
)
def test_validation_rejects(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        spec("max", **kw)


def test_layout_sensitivity_and_decode_twins() -> None:
    s = spec("max", params={"domain": [0, 4]}, max_rows=9)
    lay = get("max").layout(s)
    assert lay.labels == ["n", "providers", "nonempty", "ge(1)", "ge(2)", "ge(3)", "ge(4)"]
    assert lay.ranges[0] == (0, 9) and set(lay.ranges[1:]) == {(0, 1)}
    assert get("max").sensitivity(s) == [1, 0, 1, 1, 1, 1, 1]
    assert get("min").layout(spec("min", params={"domain": [0, 4]})).labels[3:] == [
        "le(0)",
        "le(1)",
        "le(2)",
        "le(3)",
    ]
    with pytest.raises(MalformedError, match="totals"):
        get("max").decode(s, [0] * 6)
    with pytest.raises(MalformedError, match="outside declared range"):
        get("max").encode(s, {"age": np.zeros(10)})
