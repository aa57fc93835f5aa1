"""linear_regression: per-site encode, add integer vectors, decode; compare with statsmodels.

Tolerances (stated in docs/statistics.md):
* vs statsmodels OLS on the pooled *quantised* clipped rows (``to_fixed(clip(x)) / scale``):
  rel 1e-9 (measured ~1e-13) at the default scale 2^16;
* vs statsmodels on the unquantised clipped rows: rel 1e-3 at 2^16 (measured max 5.5e-5, on
  the small ``age`` coefficient); rel 1e-9 at scale 10^4, where every diabetes value is exact.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from statledger.proofs.errors import MalformedError
from statledger.protocol import datasets
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

FEATS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
BOUNDS: dict[str, list[float]] = {
    "age": [18, 80], "sex": [1, 2], "bmi": [15, 45], "bp": [60, 140], "s1": [90, 310],
    "s2": [40, 250], "s3": [20, 100], "s4": [1, 10], "s5": [3, 7], "s6": [55, 125],
    "target": [20, 350],
}
STAT = get("linear_regression")


def make_spec(feats: list[str] = FEATS, **over: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": "linear_regression",
        "columns": [*feats, "target"],
        "bounds": {c: BOUNDS[c] for c in [*feats, "target"]},
        "params": {"target": "target", "features": feats},
    }
    obj.update(over)
    return QuerySpec.parse(obj)


def pooled_totals(spec: QuerySpec, tables: list[dict[str, np.ndarray]]) -> list[int]:
    layout = STAT.layout(spec)
    tot = [0] * len(layout)
    for t in tables:
        v = STAT.encode(spec, t)
        layout.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def site_tables() -> list[dict[str, np.ndarray]]:
    return [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]


def sm_fit(spec: QuerySpec, feats: list[str], quantise: bool) -> Any:
    d = datasets.load("diabetes")
    cols = []
    for c in [*feats, "target"]:
        x = np.clip(d[c], *spec.bounds[c])
        if quantise:
            x = to_fixed(x, spec.scale) / spec.scale
        cols.append(x)
    X = sm.add_constant(np.column_stack(cols[:-1]))
    return sm.OLS(cols[-1], X).fit()


def _rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def _check(values: dict[str, Any], m: Any, tol: float) -> None:
    assert _rel(values["coef"], m.params) < tol
    assert _rel(values["std_err"], m.bse) < tol
    assert _rel(values["t"], m.tvalues) < tol
    assert _rel(values["p_value"], m.pvalues) < max(tol * 100, 1e-7)
    ci = m.conf_int()
    assert _rel(values["ci_lower"], ci[:, 0]) < tol
    assert _rel(values["ci_upper"], ci[:, 1]) < tol
    assert abs(values["r_squared"] - m.rsquared) < tol
    assert abs(values["adj_r_squared"] - m.rsquared_adj) < tol
    assert _rel(values["f_statistic"], m.fvalue) < tol
    assert _rel(values["residual_std_error"], np.sqrt(m.scale)) < tol
    assert values["n"] == int(m.nobs)
    assert values["df_resid"] == int(m.df_resid)


def test_matches_statsmodels_on_quantised_rows() -> None:
    spec = make_spec()
    res = STAT.decode(spec, pooled_totals(spec, site_tables()))
    _check(res.values, sm_fit(spec, FEATS, quantise=True), 1e-9)
    assert res.values["terms"] == ["const", *FEATS]


def test_close_to_statsmodels_on_raw_rows_default_scale() -> None:
    spec = make_spec()
    res = STAT.decode(spec, pooled_totals(spec, site_tables()))
    m = sm_fit(spec, FEATS, quantise=False)
    assert _rel(res.values["coef"], m.params) < 1e-3
    assert _rel(res.values["std_err"], m.bse) < 1e-4
    # and it is not *exact*: the difference really is the quantisation
    assert _rel(res.values["coef"], m.params) > 1e-9


def test_exact_on_raw_rows_at_decimal_scale() -> None:
    spec = make_spec(scale=10**4)
    res = STAT.decode(spec, pooled_totals(spec, site_tables()))
    _check(res.values, sm_fit(spec, FEATS, quantise=False), 1e-9)


def test_site_split_does_not_matter() -> None:
    spec = make_spec()
    split = pooled_totals(spec, site_tables())
    whole = pooled_totals(spec, [datasets.load("diabetes")])
    assert split == whole


def test_site_with_zero_matching_rows() -> None:
    spec = make_spec(filters=[{"column": "age", "op": "<", "value": 50}])
    tables = site_tables()
    empty = {k: v[v.size:] for k, v in tables[0].items()}  # a site with no rows at all
    none_match = {k: v.copy() for k, v in tables[1].items()}
    none_match["age"] = np.full_like(none_match["age"], 70.0)  # filtered out entirely
    zero = STAT.encode(spec, empty)
    assert zero == [0] * len(STAT.layout(spec))
    assert STAT.encode(spec, none_match) == zero
    res = STAT.decode(spec, pooled_totals(spec, [empty, none_match, tables[2], tables[3]]))
    d = {k: np.concatenate([tables[2][k], tables[3][k]]) for k in tables[2]}
    keep = d["age"] < 50
    cols = [to_fixed(np.clip(d[c][keep], *BOUNDS[c]), spec.scale) / spec.scale
            for c in [*FEATS, "target"]]
    m = sm.OLS(cols[-1], sm.add_constant(np.column_stack(cols[:-1]))).fit()
    _check(res.values, m, 1e-9)


def test_single_row_gives_no_estimate() -> None:
    spec = make_spec(["bmi"], min_cell_size=1)
    one = {k: v[:1] for k, v in datasets.load("diabetes", "site1").items()}
    res = STAT.decode(spec, STAT.encode(spec, one))
    assert res.values["n"] == 1
    assert res.values["coef"] == [None, None]
    assert any("too few rows" in n for n in res.notes)
    json.dumps(res.to_dict())


def test_small_n_is_suppressed() -> None:
    spec = make_spec(["bmi"], min_cell_size=10)
    few = {k: v[:9] for k, v in datasets.load("diabetes", "site1").items()}
    res = STAT.decode(spec, STAT.encode(spec, few))
    assert res.values["n"] is None and res.values["coef"] == [None, None]


def test_constant_feature_is_singular_not_crash() -> None:
    spec = make_spec(["bmi", "sex"])
    t = {k: v.copy() for k, v in datasets.load("diabetes").items()}
    t["sex"][:] = 1.0
    res = STAT.decode(spec, STAT.encode(spec, t))
    assert res.values["coef"] == [None, None, None]
    assert any("singular" in n for n in res.notes)


def test_values_outside_bounds_are_clipped_and_reported() -> None:
    spec = make_spec(["bmi"])
    t = {k: v.copy() for k, v in datasets.load("diabetes").items()}
    t["bmi"][:5] = 100.0  # above the bound 45
    t["target"][:3] = -10.0  # below the bound 20
    v, report = STAT.encode_with_report(spec, t)
    assert report.clipped == {"bmi": 5, "target": 3}
    clipped = {k: a.copy() for k, a in t.items()}
    clipped["bmi"][:5] = 45.0
    clipped["target"][:3] = 20.0
    assert v == STAT.encode(spec, clipped)


def test_extreme_rows_stay_in_range() -> None:
    # max_rows rows, every one at a corner of the bounds box: each entry at its range edge
    spec = make_spec(["bmi", "bp"], max_rows=8)
    layout = STAT.layout(spec)
    for corner in [(15, 60, 20), (45, 140, 350), (15, 140, 350), (45, 60, 20)]:
        t = {c: np.full(8, float(x)) for c, x in zip(["bmi", "bp", "target"], corner,
                                                       strict=True)}
        v = STAT.encode(spec, t)
        layout.check(v)
    assert max(layout.bits()) < 60
    nine = {c: np.full(9, 30.0) for c in ["bmi", "bp"]} | {"target": np.full(9, 100.0)}
    with pytest.raises(MalformedError):
        STAT.encode(spec, nine)  # more rows than max_rows


def test_ranges_are_tight() -> None:
    spec = make_spec(["bmi"], max_rows=1)
    layout = STAT.layout(spec)
    hit_lo = [False] * len(layout)
    hit_hi = [False] * len(layout)
    grid = [15.0, 45.0]
    ys = [20.0, 350.0]
    for b in grid:
        for y in ys:
            v = STAT.encode(spec, {"bmi": np.array([b]), "target": np.array([y])})
            for i, (x, (lo, hi)) in enumerate(zip(v, layout.ranges, strict=True)):
                hit_lo[i] |= x == lo
                hit_hi[i] |= x == hi
    v0 = STAT.encode(spec, {"bmi": np.array([]), "target": np.array([])})
    for i, (x, (lo, hi)) in enumerate(zip(v0, layout.ranges, strict=True)):
        hit_lo[i] |= x == lo
        hit_hi[i] |= x == hi
    assert all(hit_lo) and all(hit_hi), (hit_lo, hit_hi)


def test_sensitivity_bounds_one_row_change() -> None:
    spec = make_spec(["bmi", "s5"])
    sens = STAT.sensitivity(spec)
    assert len(sens) == len(STAT.layout(spec))
    base = datasets.load("diabetes", "site1")
    v0 = STAT.encode(spec, base)
    for extra in [(15.0, 3.0, 20.0), (45.0, 7.0, 350.0), (15.0, 7.0, 350.0)]:
        t = {c: np.append(base[c], x) for c, x in zip(["bmi", "s5", "target"], extra,
                                                       strict=True)}
        v1 = STAT.encode(spec, t)
        assert all(abs(a - b) <= s for a, b, s in zip(v0, v1, sens, strict=True))
    assert sens[0] == 1


def test_decode_deterministic_and_json() -> None:
    spec = make_spec()
    tot = pooled_totals(spec, site_tables())
    a, b = STAT.decode(spec, tot), STAT.decode(spec, list(tot))
    assert json.dumps(a.to_dict(), sort_keys=True) == json.dumps(b.to_dict(), sort_keys=True)
    s = a.summary()
    assert "OLS Regression Results" in s and "R-squared" in s and "bmi" in s
    assert a.to_dict()["statistic"] == "linear_regression"


# ------------------------------------------------------------------ reject twins
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"target": "target", "features": ["age", "bmi", "nope"]}, r"params\.features\[2\]"),
        ({"target": "target", "features": []}, r"params\.features"),
        ({"target": "target", "features": "bmi"}, r"params\.features"),
        ({"target": "target", "features": ["bmi", "bmi"]}, r"params\.features\[1\]"),
        ({"target": "target", "features": ["bmi", 3]}, r"params\.features\[1\]"),
        ({"target": "bmi", "features": ["bmi"]}, r"params\.target"),
        ({"target": 7, "features": ["bmi"]}, r"params\.target"),
        ({"features": ["bmi"]}, r"params\.target"),
        ({"target": "target"}, r"params\.features"),
        ({"target": "target", "features": ["bmi"], "extra": 1}, r"params\.extra"),
    ],
)
def test_bad_params_rejected(params: dict[str, Any], match: str) -> None:
    obj = {
        "version": 1, "statistic": "linear_regression", "columns": ["bmi", "target"],
        "bounds": {"bmi": [15, 45], "target": [20, 350], "age": [18, 80]}, "params": params,
    }
    with pytest.raises(MalformedError, match=match):
        QuerySpec.parse(obj)


def test_columns_must_list_read_columns() -> None:
    with pytest.raises(MalformedError, match="columns"):
        make_spec(["bmi"], columns=["bmi"])
    with pytest.raises(MalformedError, match="columns"):
        make_spec(["bmi"], columns=["bmi", "target", "age"], bounds={
            "bmi": [15, 45], "target": [20, 350], "age": [18, 80]})


def test_group_by_rejected() -> None:
    with pytest.raises(MalformedError, match="group_by"):
        make_spec(["bmi"], categories={"g": ["a", "b"]}, group_by=["g"])


@pytest.mark.parametrize("mutate", ["truncate", "extend", "float", "bool", "str", "none"])
def test_bad_totals_rejected(mutate: str) -> None:
    spec = make_spec(["bmi"])
    tot: list[Any] = pooled_totals(spec, site_tables())
    if mutate == "truncate":
        tot = tot[:-1]
    elif mutate == "extend":
        tot = tot + [0]
    elif mutate == "float":
        tot[2] = float(tot[2])
    elif mutate == "bool":
        tot[0] = True
    elif mutate == "str":
        tot = "1,2,3"  # type: ignore[assignment]
    else:
        tot[1] = None
    with pytest.raises(MalformedError):
        STAT.decode(spec, tot)


def test_swapped_totals_change_result() -> None:
    spec = make_spec(["bmi", "bp"])
    tot = pooled_totals(spec, site_tables())
    good = STAT.decode(spec, tot).values["coef"]
    swapped = list(tot)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert STAT.decode(spec, swapped).values["coef"] != good
    flipped = list(tot)
    flipped[4] ^= 1 << 20
    assert STAT.decode(spec, flipped).values["coef"] != good


def test_missing_column_in_table_rejected() -> None:
    spec = make_spec(["bmi"])
    t = dict(datasets.load("diabetes", "site1"))
    del t["bmi"]
    with pytest.raises(MalformedError, match="bmi"):
        STAT.encode(spec, t)
