"""ttest and chi2_independence across sites vs scipy.stats on the fixed-point data, their
suppression (refusal) rules and bad-input twins."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy import stats

from statledger.proofs.errors import MalformedError
from statledger.protocol import datasets
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.classical import welch_p_value

SCALE = 2**16
REL = 1e-9
Table = dict[str, npt.NDArray[Any]]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def _pool(spec: QuerySpec, sites: list[Table]) -> list[int]:
    st = get(spec.statistic)
    lay = st.layout(spec)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(spec, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def _released(spec: QuerySpec, totals: list[int]) -> list[int | None]:
    """What the two-phase decryption hands the decoder: withheld entries are None."""
    st = get(spec.statistic)
    small = [totals[g] < spec.min_cell_size for g in st.gates(spec)]  # the PET's bits
    rel = st.release(spec, small)
    return [v if ok else None for v, ok in zip(totals, rel, strict=True)]


def _q(x: npt.NDArray[Any], lo: float, hi: float) -> npt.NDArray[np.float64]:
    """The fixed-point values every party's numbers are about."""
    return np.rint(np.clip(np.asarray(x, dtype=np.float64), lo, hi) * SCALE) / SCALE


# ---------------------------------------------------------------------------- ttest
def tspec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "ttest", "columns": ["x"], "group_by": ["g"],
        "categories": {"g": ["a", "b"]}, "bounds": {"x": [-20.0, 40.0]}, "max_rows": 10_000,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def tdata(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array(["a", "b", "c"], dtype=object), n, p=[0.45, 0.45, 0.1])
    x = np.where(g == "a", rng.normal(10, 3, n), rng.gamma(2.0, 5.0, n))
    x[rng.random(n) < 0.02] = np.nan  # missing values: dropped
    return {"g": g, "x": x}


def _split(t: Table, cuts: list[int]) -> list[Table]:
    edges = [0, *cuts, len(t["g"])]
    return [{k: v[i:j] for k, v in t.items()} for i, j in zip(edges, edges[1:], strict=False)]


def test_ttest_equals_scipy_welch_on_generated_sites() -> None:
    spec = tspec()
    full = tdata(900, 4)
    res = get("ttest").decode(spec, _released(spec, _pool(spec, _split(full, [100, 100, 500]))))
    v = res.to_dict()
    keep = ~np.isnan(full["x"].astype(float)) & np.isin(full["g"], ["a", "b"])
    q = _q(full["x"][keep], -20, 40)
    g = full["g"][keep]
    ref = stats.ttest_ind(q[g == "a"], q[g == "b"], equal_var=False)
    assert _rel(v["t"], float(ref.statistic)) < REL
    assert _rel(v["p_value"], float(ref.pvalue)) < REL
    assert _rel(v["df"], float(ref.df)) < REL
    assert v["n"] == [int((g == "a").sum()), int((g == "b").sum())]
    assert _rel(v["mean"][0], float(q[g == "a"].mean())) < 1e-12
    assert _rel(v["variance"][1], float(q[g == "b"].var(ddof=1))) < 1e-12
    assert _rel(v["mean_difference"], float(q[g == "a"].mean() - q[g == "b"].mean())) < 1e-12
    # clipping is applied: an out-of-bounds value counts at its bound
    assert json.loads(json.dumps(v)) == v
    assert "t-test" in res.summary()


def test_ttest_on_the_bundled_diabetes_sites() -> None:
    sites = [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]
    spec = tspec(columns=["bmi"], group_by=["sex"], categories={"sex": ["1", "2"]},
                 bounds={"bmi": [15.0, 50.0]})
    v = get("ttest").decode(spec, _released(spec, _pool(spec, sites))).to_dict()
    al = datasets.load("diabetes")
    q = _q(al["bmi"], 15, 50)
    sex = al["sex"]
    ref = stats.ttest_ind(q[sex == 1], q[sex == 2], equal_var=False)
    assert _rel(v["t"], float(ref.statistic)) < REL
    assert _rel(v["p_value"], float(ref.pvalue)) < REL
    assert _rel(v["df"], float(ref.df)) < REL


@pytest.mark.parametrize("shift", [0.0, 0.3, 5.0])
def test_ttest_p_values_across_the_range(shift: float) -> None:
    rng = np.random.default_rng(int(shift * 10))
    a, b = rng.normal(0, 1, 40), rng.normal(shift, 2.5, 25)
    spec = tspec(bounds={"x": [-20.0, 40.0]})
    t = {"g": np.array(["a"] * 40 + ["b"] * 25, dtype=object), "x": np.concatenate([a, b])}
    v = get("ttest").decode(spec, _released(spec, _pool(spec, [t]))).to_dict()
    ref = stats.ttest_ind(_q(a, -20, 40), _q(b, -20, 40), equal_var=False)
    assert _rel(v["t"], float(ref.statistic)) < REL
    assert _rel(v["p_value"], float(ref.pvalue)) < REL


def test_welch_p_value_is_student_t_for_integer_df() -> None:
    from fractions import Fraction

    for t2, df in ((Fraction(4), 7), (Fraction(1, 3), 120), (Fraction(50), 2)):
        ref = 2 * stats.t.sf(float(t2) ** 0.5, df)
        assert _rel(welch_p_value(t2, Fraction(df)), float(ref)) < REL
    with pytest.raises(MalformedError):
        welch_p_value(Fraction(1), Fraction(0))


def test_ttest_small_group_is_refused_and_its_sums_never_decrypted() -> None:
    spec = tspec(min_cell_size=5)
    t = {"g": np.array(["a"] * 30 + ["b"] * 3, dtype=object),
         "x": np.linspace(0, 10, 33)}
    tot = _pool(spec, [t])
    st = get("ttest")
    # the small group (primary) and its complement: nothing of either is decrypted
    assert st.release(spec, [False, True]) == [False] * 6
    assert st.release(spec, [False, False]) == [True] * 6
    res = st.decode(spec, _released(spec, tot))
    v = res.to_dict()
    assert v["t"] is None and v["p_value"] is None and v["n"] == [None, None]
    assert any("refused" in n for n in v["notes"])
    # reject twin: a released sum that goes missing for an unsuppressed group
    ok = tspec(min_cell_size=1)
    full = _pool(ok, [t])
    broken: list[int | None] = list(full)
    broken[1] = None
    with pytest.raises(MalformedError, match="withheld"):
        st.decode(ok, broken)


def test_ttest_degenerate_groups_are_none_not_nan() -> None:
    spec = tspec(min_cell_size=1)
    t = {"g": np.array(["a", "a", "b", "b"], dtype=object), "x": np.array([1.0, 1, 2, 2])}
    v = get("ttest").decode(spec, _pool(spec, [t])).to_dict()
    assert v["t"] is None and v["p_value"] is None and v["std_err"] == 0.0
    one = {"g": np.array(["a", "b", "b"], dtype=object), "x": np.array([1.0, 2, 3])}
    v = get("ttest").decode(spec, _pool(spec, [one])).to_dict()
    assert v["t"] is None and any("at least 2 rows" in n for n in v["notes"])


def test_ttest_bad_inputs() -> None:
    with pytest.raises(MalformedError, match="exactly two groups; 3 categories"):
        tspec(categories={"g": ["a", "b", "c"]})
    with pytest.raises(MalformedError, match="exactly one grouping column"):
        tspec(group_by=[])
    with pytest.raises(MalformedError, match="exactly one numeric column"):
        tspec(columns=["x", "y"], bounds={"x": [0.0, 1.0], "y": [0.0, 1.0]})
    with pytest.raises(MalformedError, match="needs public bounds"):
        tspec(columns=["h"], bounds={}, categories={"g": ["a", "b"], "h": ["u"]})
    with pytest.raises(MalformedError, match="params.alternative"):
        tspec(params={"alternative": "less"})
    spec = tspec()
    good = tdata(50, 1)
    # a missing column at one owner: a clear error naming the column, no partial result
    with pytest.raises(MalformedError, match="missing column 'x'"):
        get("ttest").encode(spec, {"g": good["g"]})
    # wrong-size totals, and a vector out of its declared range
    tot = _pool(spec, [good])
    with pytest.raises(MalformedError, match="5 entries, layout of .ttest. has 6"):
        get("ttest").decode(spec, tot[:-1])
    bad = list(tot)
    bad[0] = spec.max_rows + 1
    with pytest.raises(MalformedError, match="outside declared range"):
        get("ttest").layout(spec).check(bad)


# ---------------------------------------------------------------------------- chi2
ROWS = ["r1", "r2", "r3"]
COLS = ["c1", "c2", "c3", "c4"]


def cspec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "chi2_independence", "group_by": ["r", "c"],
        "categories": {"r": ROWS, "c": COLS}, "min_cell_size": 5, "max_rows": 10_000,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def cdata(n: int, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    r = rng.choice(np.array(ROWS, dtype=object), n, p=[0.5, 0.3, 0.2])
    # dependence: c depends on r
    c = np.where(r == "r1", rng.choice(np.array(COLS, dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]),
                 rng.choice(np.array(COLS, dtype=object), n))
    return {"r": r, "c": c}


def _table(t: Table) -> npt.NDArray[np.int64]:
    return np.array([[int(((t["r"] == a) & (t["c"] == b)).sum()) for b in COLS] for a in ROWS])


def test_chi2_equals_scipy_without_correction() -> None:
    spec = cspec()
    full = cdata(1500, 3)
    sites = [{k: v[i:j] for k, v in full.items()} for i, j in [(0, 400), (400, 400), (400, 1500)]]
    res = get("chi2_independence").decode(spec, _pool(spec, sites))
    v = res.to_dict()
    obs = _table(full)
    ref = stats.chi2_contingency(obs, correction=False)
    assert _rel(v["chi2"], float(ref.statistic)) < REL
    assert _rel(v["p_value"], float(ref.pvalue)) < REL
    assert v["df"] == ref.dof == 6
    assert np.allclose(np.array(v["expected"]), ref.expected_freq, rtol=1e-12, atol=0)
    assert v["counts"] == obs.tolist() and v["total"] == 1500
    n = obs.sum()
    assert _rel(v["cramers_v"], float(np.sqrt(ref.statistic / (n * 2)))) < REL
    assert "chi-squared" in res.summary()


def test_chi2_two_by_two_is_uncorrected_on_the_bundled_rossi_sites() -> None:
    sites = [datasets.load("rossi", s) for s in datasets.sites("rossi")]
    spec = cspec(group_by=["fin", "arrest"], categories={"fin": ["0", "1"], "arrest": ["0", "1"]})
    v = get("chi2_independence").decode(spec, _pool(spec, sites)).to_dict()
    al = datasets.load("rossi")
    obs = np.array([[int(((al["fin"] == a) & (al["arrest"] == b)).sum()) for b in (0, 1)]
                    for a in (0, 1)])
    plain = stats.chi2_contingency(obs, correction=False)
    yates = stats.chi2_contingency(obs)  # scipy's default corrects 2x2 tables
    assert _rel(v["chi2"], float(plain.statistic)) < REL
    assert _rel(v["p_value"], float(plain.pvalue)) < REL
    assert _rel(v["chi2"], float(yates.statistic)) > 1e-3  # we state: no correction
    assert v["correction"] is False


def test_chi2_is_refused_when_a_cell_is_suppressed() -> None:
    spec = cspec(min_cell_size=5)
    full = cdata(600, 5)
    keep = ~((full["r"] == "r3") & (full["c"] == "c4"))
    keep[np.flatnonzero((full["r"] == "r3") & (full["c"] == "c4"))[:2]] = True  # 2 rows left
    t = {k: v[keep] for k, v in full.items()}
    v = get("chi2_independence").decode(spec, _pool(spec, [t])).to_dict()
    assert v["chi2"] is None and v["p_value"] is None and v["expected"] is None
    assert v["suppressed"][2][3] is True and v["counts"][2][3] is None
    # complementary suppression hides the small cell from its row and column too
    assert sum(v["suppressed"][2]) >= 2
    assert any("refused: a cell is suppressed" in n for n in v["notes"])
    # the twin: the same table with min_cell_size 1 is tested
    assert get("chi2_independence").decode(cspec(min_cell_size=1),
                                           _pool(cspec(min_cell_size=1), [t])).to_dict()["chi2"]


def test_chi2_zero_margin_and_negative_counts_are_refused() -> None:
    spec = cspec(min_cell_size=1)
    t = cdata(300, 2)
    keep = t["r"] != "r2"
    v = get("chi2_independence").decode(spec, _pool(spec, [{k: a[keep] for k, a in t.items()}]))
    assert v.to_dict()["chi2"] is None
    assert any("total is zero" in n for n in v.notes)
    tot = _pool(spec, [t])
    tot[0] = -3  # only DP noise can do this
    v = get("chi2_independence").decode(spec, tot)
    assert v.to_dict()["p_value"] is None and any("negative" in n for n in v.notes)


def test_chi2_bad_inputs() -> None:
    with pytest.raises(MalformedError, match="two categorical columns"):
        cspec(group_by=["r"])
    with pytest.raises(MalformedError, match="params.value"):
        cspec(params={"value": "v"}, bounds={"v": [0.0, 1.0]})
    with pytest.raises(MalformedError, match="takes no columns"):
        cspec(columns=["v"], bounds={"v": [0.0, 1.0]})
    with pytest.raises(MalformedError, match="at least two categories"):
        cspec(categories={"r": ["r1"], "c": COLS})
    spec = cspec()
    with pytest.raises(MalformedError, match="missing column 'c'"):
        get("chi2_independence").encode(spec, {"r": np.array(ROWS, dtype=object)})
    tot = _pool(spec, [cdata(100, 1)])
    with pytest.raises(MalformedError, match="13 entries, layout of .chi2_independence. has 12"):
        get("chi2_independence").decode(spec, [*tot, 0])
    for bad in ("3", True, 2.0):
        with pytest.raises(MalformedError, match=r"totals\[0\]: not an int"):
            get("chi2_independence").decode(spec, [bad, *tot[1:]])


def test_decoders_are_deterministic() -> None:
    spec = cspec(min_cell_size=1)
    tot = _pool(spec, [cdata(400, 8)])
    a = get("chi2_independence").decode(spec, tot).to_dict()
    b = get("chi2_independence").decode(spec, list(tot)).to_dict()
    assert json.dumps(a) == json.dumps(b)
    ts = tspec()
    tt = _released(ts, _pool(ts, [tdata(300, 9)]))
    assert json.dumps(get("ttest").decode(ts, tt).to_dict()) == json.dumps(
        get("ttest").decode(ts, list(tt)).to_dict())
