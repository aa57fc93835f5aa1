"""The simple statistics on the bundled real datasets, split across their 4 sites, against
numpy / pandas on the pooled rows (1e-12 relative against the quantised rows; 0.5/scale
absolute for means against the raw rows)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from statledger.protocol import datasets
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

SCALE = 2**16


def run(spec: dict[str, Any], name: str) -> dict[str, Any]:
    s = QuerySpec.parse({"version": 1, "min_cell_size": 1, **spec})
    st = get(s.statistic)
    lay = st.layout(s)
    tot = [0] * len(lay)
    for site in datasets.sites(name):
        v = st.encode(s, datasets.load(name, site=site))
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    out: dict[str, Any] = st.decode(s, tot).to_dict()
    return out


def q(x: np.ndarray) -> np.ndarray:
    return to_fixed(x, SCALE) / SCALE


DIABETES_BOUNDS = {"age": [0, 100], "bmi": [10, 50], "bp": [40, 160], "target": [0, 400]}


@pytest.mark.parametrize("col", ["age", "bmi", "bp", "target"])
def test_diabetes_mean_variance(col: str) -> None:
    pooled = datasets.load("diabetes")[col]
    b = {col: DIABETES_BOUNDS[col]}
    mean = run({"statistic": "mean", "columns": [col], "bounds": b}, "diabetes")
    var = run({"statistic": "variance", "columns": [col], "bounds": b}, "diabetes")
    std = run({"statistic": "std", "columns": [col], "bounds": b}, "diabetes")
    assert mean["n"] == pooled.size == 442
    assert abs(mean["value"] - pooled.mean()) <= 0.5 / SCALE
    assert var["value"] == pytest.approx(q(pooled).var(ddof=1), rel=1e-12)
    assert std["value"] == pytest.approx(pd.Series(pooled).std(), rel=1e-6)


def test_diabetes_correlation_matrix() -> None:
    cols = list(DIABETES_BOUNDS)
    pooled = datasets.load("diabetes")
    res = run({"statistic": "correlation", "columns": cols, "bounds": DIABETES_BOUNDS}, "diabetes")
    X = np.vstack([q(pooled[c]) for c in cols])
    np.testing.assert_allclose(np.array(res["matrix"]), np.corrcoef(X), rtol=1e-12, atol=1e-12)
    raw = pd.DataFrame({c: pooled[c] for c in cols}).corr().to_numpy()
    np.testing.assert_allclose(np.array(res["matrix"]), raw, atol=1e-5)


def test_rossi_crosstab_counts_and_means() -> None:
    pooled = pd.DataFrame(datasets.load("rossi"))
    spec = {
        "statistic": "crosstab",
        "group_by": ["fin", "race"],
        "categories": {"fin": ["0", "1"], "race": ["0", "1"]},
        "bounds": {"prio": [0, 20]},
        "params": {"value": "prio"},
    }
    res = run(spec, "rossi")
    want_n = pd.crosstab(pooled.fin, pooled.race).to_numpy().tolist()
    assert res["counts"] == want_n
    want_m = pooled.groupby(["fin", "race"]).prio.mean()
    for i in range(2):
        for j in range(2):
            assert res["means"][i][j] == pytest.approx(want_m[(float(i), float(j))], rel=1e-12)


def test_rossi_grouped_mean_with_filter() -> None:
    pooled = pd.DataFrame(datasets.load("rossi"))
    spec = {
        "statistic": "mean",
        "columns": ["age"],
        "group_by": ["wexp"],
        "categories": {"wexp": ["0", "1"]},
        "bounds": {"age": [15, 50], "week": [0, 52]},
        "filters": [{"column": "week", "op": "<=", "value": 30}],
    }
    res = run(spec, "rossi")
    sub = pooled[pooled.week <= 30]
    want = sub.groupby("wexp").age.mean()
    for cell in res["cells"]:
        assert cell["value"] == pytest.approx(want[float(cell["cell"]["wexp"])], rel=1e-12)


def test_rossi_histogram_age() -> None:
    edges = [15, 20, 25, 30, 35, 40, 45, 50]
    res = run(
        {
            "statistic": "histogram",
            "columns": ["age"],
            "bounds": {"age": [15, 50]},
            "params": {"bins": edges},
        },
        "rossi",
    )
    want, _ = np.histogram(datasets.load("rossi")["age"], bins=edges)
    assert res["counts"] == want.tolist()


def test_waltons_extrema_sets_booleans() -> None:
    pooled = datasets.load("waltons")
    b = {"time": [0, 100], "event": [0, 1]}
    assert run({"statistic": "max", "columns": ["time"], "bounds": b}, "waltons")["value"] == int(
        pooled["time"].max()
    )
    assert run({"statistic": "min", "columns": ["time"], "bounds": b}, "waltons")["value"] == int(
        pooled["time"].min()
    )
    groups = sorted(set(pooled["group"].tolist()))
    res = run(
        {
            "statistic": "set_union",
            "columns": ["group"],
            "categories": {"group": [*groups, "other"]},
        },
        "waltons",
    )
    assert res["members"] == groups
    assert run({"statistic": "bool_or", "columns": ["event"], "bounds": b}, "waltons")["value"]
    assert not run({"statistic": "bool_and", "columns": ["event"], "bounds": b}, "waltons")["value"]
