"""crosstab across sites vs pandas.crosstab / groupby, and the suppression rule."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.base import suppress_cells

SCALE = 2**16
ROWS = ["r1", "r2", "r3"]
COLS = ["c1", "c2", "c3", "c4"]


def spec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": "crosstab",
        "group_by": ["r", "c"],
        "categories": {"r": ROWS, "c": COLS},
        "bounds": {"v": [0, 10]},
        "min_cell_size": 1,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def data(n: int, seed: int = 9) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "r": rng.choice(np.array(ROWS, dtype=object), n, p=[0.5, 0.3, 0.2]),
        "c": rng.choice(np.array(COLS, dtype=object), n),
        "v": rng.gamma(2.0, 2.0, n),
    }


def run(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    st = get("crosstab")
    lay = st.layout(s)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(s, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def split(t: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [
        {k: v[i:j] for k, v in t.items()} for i, j in [(0, 100), (100, 100), (100, 250), (250, 600)]
    ]


def test_counts_match_pandas_crosstab() -> None:
    t = data(600)
    res = get("crosstab").decode(spec(), run(spec(), split(t))).to_dict()
    want = pd.crosstab(pd.Series(t["r"]), pd.Series(t["c"])).reindex(index=ROWS, columns=COLS)
    assert res["counts"] == want.to_numpy().tolist()
    assert res["row_totals"] == want.sum(axis=1).tolist()
    assert res["column_totals"] == want.sum(axis=0).tolist()
    assert res["total"] == 600
    json.dumps(res, allow_nan=False)


def test_means_match_pandas_groupby() -> None:
    t = data(600)
    s = spec(params={"value": "v"})
    res = get("crosstab").decode(s, run(s, split(t))).to_dict()
    df = pd.DataFrame(t)
    df["q"] = to_fixed(np.clip(df.v.to_numpy(), 0, 10), SCALE) / SCALE
    want = df.groupby(["r", "c"])["q"].mean()
    for i, r in enumerate(ROWS):
        for j, c in enumerate(COLS):
            assert res["means"][i][j] == pytest.approx(want[(r, c)], rel=1e-12)
    assert res["overall_mean"] == pytest.approx(df.q.mean(), rel=1e-12)
    assert res["row_means"][0] == pytest.approx(df[df.r == "r1"].q.mean(), rel=1e-12)
    assert "mean(v)" in get("crosstab").decode(s, run(s, split(t))).summary()


def test_one_way_crosstab() -> None:
    t = data(300)
    s = spec(group_by=["r"], categories={"r": ROWS})
    res = get("crosstab").decode(s, run(s, [t])).to_dict()
    assert [row[0] for row in res["counts"]] == [int((t["r"] == r).sum()) for r in ROWS]
    assert res["columns"] is None


def test_suppression_primary_and_complementary_2d() -> None:
    s = spec(min_cell_size=5)
    counts = [[20, 3, 30, 40], [25, 18, 12, 50], [22, 16, 9, 60]]
    flat = [c for row in counts for c in row]
    res = get("crosstab").decode(s, flat).to_dict()
    supp = res["suppressed"]
    assert supp[0][1]  # primary
    # no row or column has exactly one suppressed cell
    for row in supp:
        assert sum(row) != 1
    for j in range(4):
        assert sum(supp[i][j] for i in range(3)) != 1
    # margins come from published cells only
    for i in range(3):
        pub = [counts[i][j] for j in range(4) if not supp[i][j]]
        assert res["row_totals"][i] == sum(pub)
    assert res["total"] == sum(counts[i][j] for i in range(3) for j in range(4) if not supp[i][j])
    assert all(res["counts"][i][j] is None for i in range(3) for j in range(4) if supp[i][j])
    text = get("crosstab").decode(s, flat).summary()
    assert "published cells only" in text


def test_zero_cells_published_and_complement_prefers_nonzero() -> None:
    mask = suppress_cells([[0, 2, 0, 7, 9]], 5)
    assert mask == [[False, True, False, True, False]]
    # nothing else to pick: single-cell line stays as is
    assert suppress_cells([[2]], 5) == [[True]]
    # iteration reaches a fixed point across rows and columns
    m = suppress_cells([[1, 50, 50], [50, 50, 50], [50, 50, 50]], 5)
    assert m[0][0] and sum(m[0]) >= 2 and sum(r[0] for r in m) >= 2
    for row in m:
        assert sum(row) != 1
    for j in range(3):
        assert sum(r[j] for r in m) != 1


def test_min_cell_size_one_suppresses_nothing() -> None:
    assert suppress_cells([[0, 1, 2], [3, 0, 1]], 1) == [[False] * 3, [False] * 3]


def test_empty_and_single_row_sites() -> None:
    s = spec()
    e = {"r": np.array([], dtype=object), "c": np.array([], dtype=object)}
    one = {"r": np.array(["r2"], dtype=object), "c": np.array(["c3"], dtype=object)}
    res = get("crosstab").decode(s, run(s, [e, one])).to_dict()
    assert res["counts"][1][2] == 1 and res["total"] == 1


def test_means_empty_cell_is_none_and_clipping_reported() -> None:
    s = spec(params={"value": "v"})
    t = {
        "r": np.array(["r1", "r1"], dtype=object),
        "c": np.array(["c1", "c1"], dtype=object),
        "v": np.array([-1.0, 12.0]),
    }
    vec, rep = get("crosstab").encode_with_report(s, t)
    assert rep.clipped == {"v": 2}
    res = get("crosstab").decode(s, vec).to_dict()
    assert res["means"][0][0] == 5.0
    assert res["means"][0][1] is None


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"group_by": []}, "group_by"),
        ({"columns": ["v"]}, "columns"),
        ({"params": {"value": "w"}}, "params.value"),
        ({"params": {"value": 3}}, "params.value"),
        ({"params": {"weights": "v"}}, "params.weights"),
    ],
)
def test_validation_rejects(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        spec(**kw)


def test_layout_and_sensitivity() -> None:
    s = spec(params={"value": "v"}, max_rows=10)
    lay = get("crosstab").layout(s)
    assert len(lay) == 24
    assert lay.ranges[0] == (0, 10) and lay.ranges[1] == (0, 10 * 10 * SCALE)
    assert get("crosstab").sensitivity(s)[:2] == [1, 10 * SCALE]
    with pytest.raises(MalformedError, match="totals"):
        get("crosstab").decode(s, [0] * 23)
