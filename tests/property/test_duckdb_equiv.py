"""Property: the out-of-core DuckDB encoding (protocol/duckdb_encode.py) gives exactly the
in-memory encoder's vector, local report and selected-rows mask -- or the same refusal --
over random tables (CSV text cells and typed Parquet columns) and random specs: fixed-point
ties at every scale, negative values, clipping, NaN and missing texts, Python float
spellings (``1_0``, ``+.5``, `` 3 ``, ``inf``), numeric category columns, filters."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statledger.nodes.data import load_table
from statledger.proofs.errors import StatledgerError
from statledger.protocol import calibration
from statledger.protocol.query import QuerySpec

SCALES = [1, 2**4, 2**16, 10**3]
MISSING = ["", "NA", " nan ", "NULL", "None", "#N/A", "n/a", "\u00a0NA"]

# numbers: ties at every scale (k + 1/2) / scale, small and large, negative
number = st.one_of(
    st.builds(lambda k, s: (k + 0.5) / s, st.integers(-2000, 2000), st.sampled_from(SCALES)),
    st.floats(-60, 60, allow_nan=False, allow_infinity=False),
    st.integers(-50, 50).map(float),
    st.sampled_from([0.0, -0.0, 1e-9, -2.5, 2.5, 0.0005, -0.0015, 1e300, -1e300]),
)


def _spell(v: float, how: int) -> str:
    """A text Python's float() reads as ``v`` (or as a value near it, for ``how == 3``)."""
    if how == 1:
        return f" {v!r} "
    if how == 2 and v == int(v) and abs(v) < 1e6:
        s = str(int(v))
        return (s[0] + "_" + s[1:]) if len(s) > 1 and s[0].isdigit() else s
    if how == 3:
        return f"{v:.6g}"
    return repr(v)


cell = st.one_of(
    st.tuples(number, st.integers(0, 3)).map(lambda t: _spell(*t)),
    st.sampled_from(MISSING),
    st.sampled_from(["inf", "-Infinity", "+.5", "5.", "1e1", "NAN"]),
)
category = st.sampled_from(["a", "b", "c", " a", "1", "2", "2.0", "NA", ""])
num_category = st.sampled_from(["1", "2", "2.0", "2.5", "-0.0", "", "NA"])


@st.composite
def tables(draw: Any) -> dict[str, list[str]]:
    n = draw(st.integers(0, 40))
    cols = {
        "x": draw(st.lists(cell, min_size=n, max_size=n)),
        "y": draw(st.lists(cell, min_size=n, max_size=n)),
        "g": draw(st.lists(category, min_size=n, max_size=n)),
        "h": draw(st.lists(num_category, min_size=n, max_size=n)),
    }
    if draw(st.integers(0, 9)) == 0 and n:  # a text cell: the column is not numeric
        cols["y"][draw(st.integers(0, n - 1))] = "abc"
    return cols


@st.composite
def specs(draw: Any) -> dict[str, Any]:
    stat = draw(st.sampled_from(["count", "sum", "mean", "variance", "std", "histogram",
                                 "crosstab", "linear_regression"]))
    scale = draw(st.sampled_from(SCALES))
    lo = draw(st.sampled_from([-50.0, -2.5, 0.0, -1e-3]))
    hi = draw(st.sampled_from([2.5, 7.25, 50.0]))
    bounds: dict[str, Any] = {"x": [lo, hi], "y": [-10.0, 10.0]}
    cats = {"g": ["a", "b", " a", "1"], "h": ["1", "2", "2.5", "0"]}
    obj: dict[str, Any] = {"version": 1, "statistic": stat, "scale": scale, "max_rows": 100,
                           "min_cell_size": 1, "bounds": bounds, "categories": cats}
    group = draw(st.sampled_from([[], ["g"], ["h"], ["g", "h"]]))
    if stat == "count":
        obj["columns"] = draw(st.sampled_from([[], ["x"], ["g"]]))
        obj["group_by"] = group
    elif stat in ("sum", "mean", "variance", "std"):
        obj["columns"] = ["x"]
        obj["group_by"] = group
    elif stat == "histogram":
        obj["columns"] = ["x"]
        obj["group_by"] = group[:1]
        inner = sorted(set(draw(st.lists(st.floats(lo, hi, allow_nan=False), max_size=5))))
        edges = sorted({lo, hi, *inner})
        obj["params"] = {"bins": edges}
    elif stat == "crosstab":
        obj["group_by"] = group or ["g"]
        if draw(st.booleans()):
            obj["params"] = {"value": "x"}
    else:
        obj["columns"] = ["x", "y"]
        obj["params"] = {"target": "y", "features": ["x"]}
    filters = draw(st.lists(st.sampled_from([
        {"column": "y", "op": ">", "value": 0.5},
        {"column": "y", "op": "<=", "value": 2},
        {"column": "x", "op": "in", "value": [2.5, -2.5, 0.0]},
        {"column": "x", "op": "!=", "value": 0.0},
        {"column": "g", "op": "==", "value": "a"},
        {"column": "h", "op": "!=", "value": "2"},
        {"column": "h", "op": "in", "value": ["1", "2.5"]},
    ]), max_size=2, unique_by=lambda f: f["column"] + f["op"]))
    obj["filters"] = filters
    return obj


def _outcome(spec: QuerySpec, table: Any) -> tuple[str, Any]:
    try:
        values, report = calibration.wire_encode(spec, table)
    except StatledgerError as exc:
        return "error", (type(exc).__name__, str(exc))
    sel = report.selected
    return "ok", (values, report.to_dict(), None if sel is None else sel.tolist())


def _check(path: Path, obj: dict[str, Any]) -> None:
    try:
        spec = QuerySpec.parse(obj)
    except StatledgerError:
        return  # a spec the querier could not post
    mem = _outcome(spec, load_table(path))
    duck_table = load_table(path, engine="duckdb")
    try:
        duck = _outcome(spec, duck_table)
    finally:
        duck_table.close()
    assert duck == mem


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cols=tables(), obj=specs())
def test_csv_equal(cols: dict[str, list[str]], obj: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(list(cols))
            w.writerows(zip(*cols.values(), strict=True))
        _check(path, obj)


def _typed(values: list[str], kind: str) -> pa.Array:
    if kind == "double":
        out: list[float | None] = []
        for v in values:
            try:
                out.append(float(v))
            except ValueError:
                out.append(None if v.strip() in ("", "NA", "NULL", "None", "#N/A", "n/a")
                           else float("nan"))
        return pa.array(out, type=pa.float64())
    if kind == "int":
        return pa.array([None if i % 7 == 3 else (i * 37) % 11 - 5 for i in range(len(values))],
                        type=pa.int64())
    if kind == "bool":
        return pa.array([i % 3 == 0 for i in range(len(values))], type=pa.bool_())
    return pa.array(values, type=pa.string())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cols=tables(), obj=specs(), kinds=st.tuples(
    st.sampled_from(["double", "string", "int"]), st.sampled_from(["double", "string", "int"]),
    st.sampled_from(["string"]), st.sampled_from(["string", "double", "int", "bool"])))
def test_parquet_equal(cols: dict[str, list[str]], obj: dict[str, Any],
                       kinds: tuple[str, str, str, str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.parquet"
        arrays = [_typed(v, k) for v, k in zip(cols.values(), kinds, strict=True)]
        pq.write_table(pa.table(arrays, names=list(cols)), path)
        _check(path, obj)


@pytest.mark.parametrize("scale", SCALES)
def test_every_tie_rounds_to_even(scale: int) -> None:
    """Every half-way value in [-64, 64] at the scale: the encoded sum and sum of squares
    equal numpy's rint (ties to even), cell by cell through a group-by."""
    ks = np.arange(-64 * scale, 64 * scale)[:: max(1, scale // 4)]
    xs = (ks + 0.5) / scale
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ties.parquet"
        pq.write_table(pa.table({"x": xs, "g": [str(i % 3) for i in range(len(xs))]}), path)
        obj = {"version": 1, "statistic": "variance", "columns": ["x"], "scale": scale,
               "bounds": {"x": [-64.0, 64.0]}, "categories": {"g": ["0", "1", "2"]},
               "group_by": ["g"], "max_rows": 10**6, "min_cell_size": 1}
        _check(path, obj)
