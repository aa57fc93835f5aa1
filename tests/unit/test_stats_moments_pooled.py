"""covariance / correlation / cosine across sites vs numpy on the pooled rows.

Tolerance: 1e-12 relative against numpy on the quantised clipped rows (exact rational
decoding); against the raw clipped rows |d cov_ij| <= (sd_i + sd_j) / scale and
|d corr_ij| <= (1/sd_i + 1/sd_j) / scale (quantisation error of 0.5/scale per value).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

SCALE = 2**16
BOUNDS = {"a": [-5, 5], "b": [0, 10], "c": [-100, 100], "d": [0, 1]}


def table(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 2, n)
    return {
        "a": a,
        "b": 5 + a + rng.normal(0, 1, n),
        "c": rng.normal(0, 40, n) - 10 * a,
        "d": rng.uniform(0, 1, n),
        "g": rng.choice(np.array(["x", "y"], dtype=object), n),
    }


def spec(stat: str, cols: list[str], **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": stat,
        "columns": cols,
        "bounds": {c: BOUNDS[c] for c in cols},
        "categories": {"g": ["x", "y"]},
        "min_cell_size": 1,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def run(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    stat = get(s.statistic)
    layout = stat.layout(s)
    total = [0] * len(layout)
    for t in sites:
        v = stat.encode(s, t)
        layout.check(v)
        total = [x + y for x, y in zip(total, v, strict=True)]
    return total


def sites_of(t: dict[str, np.ndarray], cuts: list[int]) -> list[dict[str, np.ndarray]]:
    n = len(t["a"])
    e = [0, *cuts, n]
    return [{k: v[i:j] for k, v in t.items()} for i, j in zip(e[:-1], e[1:], strict=True)]


def q(t: dict[str, np.ndarray], cols: list[str], mask: np.ndarray | None = None) -> np.ndarray:
    out = []
    for c in cols:
        x = np.clip(t[c], *BOUNDS[c])
        if mask is not None:
            x = x[mask]
        out.append(to_fixed(x, SCALE) / SCALE)
    return np.vstack(out)


@pytest.mark.parametrize("cols", [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]])
def test_covariance_and_correlation_match_numpy(cols: list[str]) -> None:
    t = table(700)
    sites = sites_of(t, [200, 200, 450])
    X = q(t, cols)
    raw = np.vstack([np.clip(t[c], *BOUNDS[c]) for c in cols])
    cov = get("covariance").decode(spec("covariance", cols), run(spec("covariance", cols), sites))
    cor = get("correlation").decode(
        spec("correlation", cols), run(spec("correlation", cols), sites)
    )
    C = np.array(cov.to_dict()["matrix"])
    R = np.array(cor.to_dict()["matrix"])
    np.testing.assert_allclose(C, np.cov(X, ddof=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(R, np.corrcoef(X), rtol=1e-12, atol=1e-12)
    # quantisation error (<= 0.5/scale per value) moves cov_ij by at most ~(sd_i + sd_j)/scale
    sd = raw.std(axis=1, ddof=1)
    assert np.all(np.abs(C - np.cov(raw, ddof=1)) <= (sd[:, None] + sd[None, :]) / SCALE)
    assert np.all(np.abs(R - np.corrcoef(raw)) <= (1 / sd[:, None] + 1 / sd[None, :]) / SCALE)
    assert cov.to_dict()["n"] == 700
    assert "covariance" in cov.summary()
    json.dumps(cor.to_dict(), allow_nan=False)


def test_grouped_covariance() -> None:
    t = table(300, seed=3)
    s = spec("covariance", ["a", "c"], group_by=["g"])
    res = get("covariance").decode(s, run(s, sites_of(t, [100, 101]))).to_dict()
    for cell in res["cells"]:
        m = t["g"] == cell["cell"]["g"]
        np.testing.assert_allclose(
            np.array(cell["matrix"]), np.cov(q(t, ["a", "c"], m), ddof=1), rtol=1e-12
        )
        assert cell["n"] == int(m.sum())


def test_cosine_matches_formula() -> None:
    t = table(400, seed=4)
    s = spec("cosine", ["a", "c"])
    res = get("cosine").decode(s, run(s, sites_of(t, [0, 150]))).to_dict()
    X = q(t, ["a", "c"])
    want = X[0] @ X[1] / (np.linalg.norm(X[0]) * np.linalg.norm(X[1]))
    assert math.isclose(res["value"], want, rel_tol=1e-12)
    assert res["n"] == 400


def test_constant_column_gives_none_correlation_and_zero_norm_cosine() -> None:
    t = {"a": np.zeros(10), "b": np.linspace(0, 10, 10)}
    s = spec("correlation", ["a", "b"])
    m = get("correlation").decode(s, run(s, [t])).to_dict()["matrix"]
    assert m[0][0] is None and m[0][1] is None and m[1][1] == 1.0
    s = spec("covariance", ["a", "b"])
    m = get("covariance").decode(s, run(s, [t])).to_dict()["matrix"]
    assert m[0][0] == 0.0 and m[0][1] == 0.0
    s = spec("cosine", ["a", "b"])
    assert get("cosine").decode(s, run(s, [t])).to_dict()["value"] is None


def test_single_row_and_empty_site() -> None:
    s = spec("covariance", ["a", "b"])
    one = {"a": np.array([1.0]), "b": np.array([2.0])}
    empty = {"a": np.array([]), "b": np.array([])}
    res = get("covariance").decode(s, run(s, [one, empty])).to_dict()
    assert res["n"] == 1 and res["matrix"] is None


def test_listwise_deletion_and_clipping_reported() -> None:
    s = spec("covariance", ["a", "b"])
    t = {"a": np.array([1.0, np.nan, 9.0, 2.0]), "b": np.array([1.0, 2.0, 3.0, np.nan])}
    vec, rep = get("covariance").encode_with_report(s, t)
    assert vec[0] == 2 and rep.n_missing == 2 and rep.clipped == {"a": 1, "b": 0}


def test_layout_extremes_attained() -> None:
    s = spec("covariance", ["a", "b"], max_rows=3)
    lay = get("covariance").layout(s)
    top = get("covariance").encode(s, {"a": np.full(3, -5.0), "b": np.full(3, 10.0)})
    lay.check(top)
    # sum(a) at its minimum, sum(b) at max, sum(a*a) at max, sum(a*b) at min
    assert top[1] == lay.ranges[1][0] and top[2] == lay.ranges[2][1]
    assert top[3] == lay.ranges[3][1] and top[4] == lay.ranges[4][0] and top[5] == lay.ranges[5][1]
    sens = get("covariance").sensitivity(s)
    one = get("covariance").encode(s, {"a": np.array([-5.0]), "b": np.array([10.0])})
    assert [abs(v) for v in one] == sens


@pytest.mark.parametrize(
    "stat,cols,match",
    [
        ("covariance", ["a"], "columns"),
        ("correlation", [], "columns"),
        ("cosine", ["a", "b", "c"], "columns"),
    ],
)
def test_validation_rejects(stat: str, cols: list[str], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        spec(stat, cols)


def test_validation_rejects_categorical_column_and_params() -> None:
    with pytest.raises(MalformedError, match=r"columns\[1\]"):
        QuerySpec.parse(
            {
                "version": 1,
                "statistic": "covariance",
                "columns": ["a", "g"],
                "bounds": {"a": [0, 1]},
                "categories": {"g": ["x"]},
            }
        )
    with pytest.raises(MalformedError, match="params.k"):
        spec("cosine", ["a", "b"], params={"k": 1})


def test_decode_rejects_wrong_length() -> None:
    s = spec("correlation", ["a", "b"])
    good = run(s, [table(10)])
    with pytest.raises(MalformedError, match="totals"):
        get("correlation").decode(s, good[:-1])
    with pytest.raises(MalformedError, match="totals"):
        get("cosine").decode(spec("cosine", ["a", "b"]), good)
