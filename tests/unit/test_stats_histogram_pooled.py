"""histogram across sites vs numpy.histogram on the pooled clipped rows (exact counts)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

EDGES = [0, 10, 20, 35, 50, 80, 100]


def spec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": "histogram",
        "columns": ["x"],
        "bounds": {"x": [0, 100]},
        "categories": {"g": ["a", "b", "c"]},
        "params": {"bins": EDGES},
        "min_cell_size": 1,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def run(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    st = get("histogram")
    lay = st.layout(s)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(s, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def data(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(45, 30, n)
    x[:6] = [0.0, 10.0, 100.0, 35.0, -5.0, 130.0]  # edges and out-of-bounds values
    return {"x": x, "g": rng.choice(np.array(["a", "b", "c"], dtype=object), n)}


def test_counts_match_numpy_histogram() -> None:
    t = data(800)
    sites = [{k: v[i:j] for k, v in t.items()} for i, j in [(0, 300), (300, 300), (300, 800)]]
    res = get("histogram").decode(spec(), run(spec(), sites)).to_dict()
    want, _ = np.histogram(np.clip(t["x"], 0, 100), bins=EDGES)
    assert res["counts"] == want.tolist()
    assert res["total_published"] == 800
    assert res["edges"] == [float(e) for e in EDGES]


def test_grouped_counts() -> None:
    t = data(500, seed=2)
    s = spec(group_by=["g"])
    res = get("histogram").decode(s, run(s, [t])).to_dict()
    for cell in res["cells"]:
        m = t["g"] == cell["cell"]["g"]
        want, _ = np.histogram(np.clip(t["x"][m], 0, 100), bins=EDGES)
        assert cell["counts"] == want.tolist()


def test_clipping_reported_and_bounds_land_in_end_bins() -> None:
    t = {"x": np.array([-5.0, 0.0, 100.0, 130.0, 99.999])}
    vec, rep = get("histogram").encode_with_report(spec(), t)
    assert rep.clipped == {"x": 2}
    assert vec == [2, 0, 0, 0, 0, 3]


def test_edges_wider_than_bounds() -> None:
    s = spec(params={"bins": [-10, 50, 200]})
    assert get("histogram").encode(s, {"x": np.array([-3.0, 60.0, 100.0])}) == [1, 2]


def test_suppression_small_bins_and_complement() -> None:
    s = spec(min_cell_size=5)
    vec = [50, 3, 40, 20, 30, 10]  # one small bin -> the next smallest (10) is suppressed too
    res = get("histogram").decode(s, vec).to_dict()
    assert res["counts"] == [50, None, 40, 20, 30, None]
    assert res["total_published"] == 140
    assert "suppressed" in get("histogram").decode(s, vec).summary()


def test_empty_site_and_single_row() -> None:
    s = spec()
    empty = {"x": np.array([])}
    assert get("histogram").encode(s, empty) == [0] * 6
    assert get("histogram").encode(s, {"x": np.array([12.0])}) == [0, 1, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "bins,match",
    [
        ([0, 100], None),
        ([0], "params.bins"),
        ([0, 50, 50, 100], "increasing"),
        ([0, 60, 50, 100], "increasing"),
        ([1, 50, 100], "cover"),
        ([0, 50, 99], "cover"),
        ([0, "50", 100], r"params.bins\[1\]"),
        ([0, True, 100], r"params.bins\[1\]"),
        ("0-100", "params.bins"),
        (list(range(0, 2000)), "params.bins"),
    ],
)
def test_bins_validation(bins: Any, match: str | None) -> None:
    if match is None:
        spec(params={"bins": bins})
        return
    with pytest.raises(MalformedError, match=match):
        spec(params={"bins": bins})


def test_missing_bins_and_extra_params() -> None:
    with pytest.raises(MalformedError, match="params.bins: required"):
        spec(params={})
    with pytest.raises(MalformedError, match="params.width"):
        spec(params={"bins": EDGES, "width": 2})
    with pytest.raises(MalformedError, match="columns"):
        spec(columns=[])


def test_sensitivity_and_layout() -> None:
    s = spec(group_by=["g"], max_rows=7)
    lay = get("histogram").layout(s)
    assert len(lay) == 18 and set(lay.ranges) == {(0, 7)}
    assert get("histogram").sensitivity(s) == [1] * 18
    with pytest.raises(MalformedError, match="totals"):
        get("histogram").decode(s, [0] * 17)
