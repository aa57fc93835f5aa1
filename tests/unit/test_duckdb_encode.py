"""The DuckDB engine (protocol/duckdb_encode.py, nodes/data.py ``engine = "duckdb"``):
equal to the in-memory encoder on CSV, Parquet and SQLite for every statistic with an SQL
path and through the fallback; and its refusals -- each one a twin of an accepted input
(missing column, text in a numeric column, too many rows, injected names, leaky errors,
unreadable cells, unsupported types, NaN behind Parquet statistics)."""

from __future__ import annotations

import csv
import datetime
import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from statledger.nodes.config import DatasetConfig
from statledger.nodes.data import check_for_query, load_dataset, load_table, open_duckdb
from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol import calibration
from statledger.protocol.duckdb_encode import SQL_STATISTICS, DuckDBTable
from statledger.protocol.query import QuerySpec

N = 400
BOUNDS = {"x": [-2.0, 3.0], "y": [-5.0, 8.0], "z": [0.0, 100.0]}
CATS = {"g": ["a", "b", "c"], "h": ["0", "1", "2"]}


def _rows(n: int = N) -> dict[str, list[Any]]:
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2, n).round(4)
    y = rng.normal(1, 3, n)
    z = rng.integers(-5, 110, n).astype(float)
    x[::13] = np.nan
    x[5] = 0.5 / 1024  # a tie at scale 2^10 ...
    x[6] = -1.5 / 1024  # ... and a negative one
    return {"x": x.tolist(), "y": y.tolist(), "z": z.tolist(),
            "g": rng.choice(["a", "b", "c", "d"], n).tolist(),
            "h": rng.integers(0, 3, n).astype(float).tolist()}


def _write_csv(path: Path, cols: dict[str, list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(list(cols))
        for r in zip(*cols.values(), strict=True):
            w.writerow(["NA" if isinstance(v, float) and np.isnan(v) else v for v in r])
    return path


def _write_sqlite(path: Path, cols: dict[str, list[Any]], table: str = "t") -> Path:
    con = sqlite3.connect(path)
    con.execute(f'CREATE TABLE {table} ({", ".join(cols)})')
    rows = [[None if isinstance(v, float) and np.isnan(v) else v for v in r]
            for r in zip(*cols.values(), strict=True)]
    con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows)
    con.commit()
    con.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("duck")
    cols = _rows()
    pq.write_table(pa.table(cols), d / "t.parquet")
    return {"parquet": d / "t.parquet", "csv": _write_csv(d / "t.csv", cols),
            "sqlite": _write_sqlite(d / "t.sqlite", cols)}


SPECS: dict[str, dict[str, Any]] = {
    "count": {"statistic": "count", "columns": ["g"], "group_by": ["h"]},
    "sum": {"statistic": "sum", "columns": ["x"], "group_by": ["g"]},
    "mean": {"statistic": "mean", "columns": ["x"],
             "filters": [{"column": "y", "op": ">", "value": 0.25}]},
    "variance": {"statistic": "variance", "columns": ["y"], "group_by": ["g", "h"]},
    "std": {"statistic": "std", "columns": ["x"],
            "filters": [{"column": "h", "op": "in", "value": ["0", "2"]}]},
    "histogram": {"statistic": "histogram", "columns": ["z"],
                  "params": {"bins": [0.0, 10.0, 25.5, 50.0, 99.0, 100.0]}, "group_by": ["g"]},
    "crosstab": {"statistic": "crosstab", "group_by": ["g", "h"], "params": {"value": "y"}},
    "linear_regression": {"statistic": "linear_regression", "columns": ["x", "z", "y"],
                          "params": {"target": "y", "features": ["x", "z"]}},
    # statistics without an SQL path: their own encode over the mapping
    "min": {"statistic": "min", "columns": ["z"]},
    "cosine": {"statistic": "cosine", "columns": ["x", "y"]},
}


def _spec(extra: dict[str, Any], **over: Any) -> QuerySpec:
    return QuerySpec.parse({"version": 1, "bounds": BOUNDS, "categories": CATS,
                            "scale": 2**10, "max_rows": 10_000, "min_cell_size": 1,
                            **extra, **over})


def _both(path: Path, spec: QuerySpec, table: str | None = None) -> tuple[Any, Any]:
    mem = calibration.wire_encode(spec, load_table(path, table=table))
    duck = load_table(path, table=table, engine="duckdb")
    try:
        got = calibration.wire_encode(spec, duck)
    finally:
        duck.close()
    return mem, got


@pytest.mark.parametrize("kind", ["parquet", "csv", "sqlite"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_equal_to_in_memory(files: dict[str, Path], kind: str, name: str) -> None:
    spec = _spec(SPECS[name])
    (v1, r1), (v2, r2) = _both(files[kind], spec, "t" if kind == "sqlite" else None)
    assert v2 == v1
    assert r2.to_dict() == r1.to_dict()
    assert r1.selected is not None and r2.selected is not None
    assert np.array_equal(r2.selected, r1.selected)
    # the released cells of the differencing history (protocol/history.py) too
    assert r1.cells is not None and r2.cells is not None and r2.n_cells == r1.n_cells
    assert np.array_equal(r2.cells, r1.cells)
    assert r1.n_selected > 0 and any(v != 0 for v in v1)  # the comparison is not vacuous


def test_sql_path_covers_the_issue_list() -> None:
    assert {"count", "sum", "mean", "variance", "histogram", "crosstab",
            "linear_regression"} <= SQL_STATISTICS


def test_fallback_logs_a_note(files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="statledger.protocol.duckdb_encode"):
        _both(files["parquet"], _spec(SPECS["cosine"]))
    assert "no SQL path" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="statledger.protocol.duckdb_encode"):
        _both(files["parquet"], _spec(SPECS["mean"]))
    assert "no SQL path" not in caplog.text


def test_dp_weights_applied(files: dict[str, Path]) -> None:
    spec = _spec(SPECS["variance"], privacy={"mechanism": "zcdp", "rho": 0.5})
    (v1, _), (v2, _) = _both(files["parquet"], spec)
    assert v2 == v1


def test_mapping_reads_columns_as_the_loader(files: dict[str, Path]) -> None:
    mem = load_table(files["csv"])
    duck = open_duckdb(files["csv"])
    assert list(duck) == list(mem) and len(duck) == len(mem) and "x" in duck
    for c in mem:
        a, b = mem[c], duck[c]
        assert a.dtype == b.dtype
        if a.dtype == object:
            assert a.tolist() == b.tolist()
        else:
            assert np.array_equal(a, b, equal_nan=True)
    assert duck.n_rows() == N
    duck.close()


# ---------------------------------------------------------------------------- refusals
def test_missing_column_same_error(files: dict[str, Path]) -> None:
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["w"],
                            "bounds": {"w": [0.0, 1.0]}})
    msgs = []
    for engine in ("pandas", "duckdb"):
        with pytest.raises(MalformedError, match="missing column 'w'") as ei:
            calibration.wire_encode(spec, load_table(files["parquet"], engine=engine))
        msgs.append(str(ei.value))
    assert msgs[0] == msgs[1]


def test_text_in_numeric_column_same_error(tmp_path: Path) -> None:
    cols = _rows(20)
    cols["y"] = [str(v) for v in cols["y"]]
    cols["y"][3] = "high"
    path = _write_csv(tmp_path / "t.csv", cols)
    spec = _spec(SPECS["variance"])
    for engine in ("pandas", "duckdb"):
        t = load_table(path, engine=engine)
        with pytest.raises(MalformedError, match=r"table\.y: numeric column has non-numeric"):
            calibration.wire_encode(spec, t)
        with pytest.raises(MalformedError, match="column 'y' must be numeric"):
            check_for_query(t, spec, "site-a")
    # twin: the same file without the text cell is accepted
    cols["y"][3] = "1.5"
    path = _write_csv(tmp_path / "t.csv", cols)
    _both(path, spec)


def test_more_rows_than_max_rows(files: dict[str, Path]) -> None:
    spec = _spec(SPECS["mean"], max_rows=50)
    with pytest.raises(PolicyError, match="more rows than max_rows"):
        calibration.wire_encode(spec, open_duckdb(files["parquet"]), "site-a")
    # twin: enough room
    calibration.wire_encode(_spec(SPECS["mean"], max_rows=N), open_duckdb(files["parquet"]))


def test_injected_names_and_categories_are_data(tmp_path: Path) -> None:
    """A querier controls column names and categories: they are quoted identifiers and bound
    parameters, so an injection is compared as text, never run."""
    evil_col = 'v"); DROP TABLE src; --'
    evil_cat = "a'); DROP TABLE src; --"
    cols = {evil_col: [1.0, 2.0, 3.0, 4.0], "g": [evil_cat, "b", evil_cat, "$1"]}
    path = _write_csv(tmp_path / "evil.csv", cols)
    spec = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": [evil_col],
                            "bounds": {evil_col: [0.0, 10.0]}, "group_by": ["g"],
                            "categories": {"g": [evil_cat, "b", "$1"]}, "min_cell_size": 1})
    (v1, _), (v2, _) = _both(path, spec)
    assert v2 == v1 == [2, 4 * 2**16, 1, 2 * 2**16, 1, 4 * 2**16]


def test_duckdb_errors_do_not_quote_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("x,y\n1,2\n3,SECRET-4711,9\n", encoding="utf-8")
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": []})
    with pytest.raises(MalformedError) as ei:
        calibration.wire_encode(spec, open_duckdb(path))
    assert "SECRET" not in str(ei.value) and "4711" not in str(ei.value)
    assert str(path) in str(ei.value) and "duckdb engine" in str(ei.value)
    # twin: the in-memory loader refuses the same file, also without the value
    with pytest.raises(MalformedError) as ei2:
        load_table(path)
    assert "SECRET" not in str(ei2.value)


def test_python_only_numbers_refused(tmp_path: Path) -> None:
    """Python's float() reads Arabic-Indic digits; SQL cannot: refuse, never read differently."""
    path = _write_csv(tmp_path / "t.csv", {"x": ["1", "\u0661\u0662", "3"], "y": ["1", "2", "3"]})
    spec = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                            "bounds": {"x": [0.0, 20.0]}, "min_cell_size": 1})
    assert calibration.wire_encode(spec, load_table(path))[0] == [3, 16 * 2**16]
    with pytest.raises(MalformedError, match="column 'x' has cells"):
        calibration.wire_encode(spec, open_duckdb(path))
    # twin: an ordinary text cell makes the column text in both engines (same error)
    path = _write_csv(tmp_path / "t.csv", {"x": ["1", "twelve", "3"], "y": ["1", "2", "3"]})
    for engine in ("pandas", "duckdb"):
        with pytest.raises(MalformedError, match="numeric column has non-numeric"):
            calibration.wire_encode(spec, load_table(path, engine=engine))


def test_unicode_spaces_around_missing_text(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "t.csv",
                      {"x": ["1", "\u00a0NA\u3000", " 2_0 ", "\tnan\n", "+.5"], "y": list("abcde")})
    spec = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                            "bounds": {"x": [0.0, 30.0]}, "min_cell_size": 1})
    (v1, r1), (v2, r2) = _both(path, spec)
    assert v1 == v2 == [3, round(21.5 * 2**16)]
    assert r1.n_missing == r2.n_missing == 2


def test_nan_behind_parquet_statistics(tmp_path: Path) -> None:
    """Parquet min/max statistics leave NaN out; DuckDB's statistics propagation would fold
    isnan() to false and read NaN as a value.  NaN must be missing, as in memory."""
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"x": [1.0, float("nan"), 2.0, float("nan")]}), path)
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["x"],
                            "bounds": {"x": [0.0, 4.0]}, "min_cell_size": 1})
    (v1, r1), (v2, r2) = _both(path, spec)
    assert v1 == v2 == [2, 3 * 2**16]
    assert r2.n_missing == 2


def test_unsupported_column_type_named(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"d": [datetime.date(2020, 1, 1)], "x": [1.0]}), path)
    t = open_duckdb(path)
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": ["d"],
                            "categories": {"d": ["2020-01-01"]}})
    with pytest.raises(MalformedError, match="column 'd' has type DATE.*engine"):
        calibration.wire_encode(spec, t)
    # twin: an unused DATE column does not matter
    ok = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                          "bounds": {"x": [0.0, 2.0]}, "min_cell_size": 1})
    assert calibration.wire_encode(ok, t)[0] == [1, 2**16]


@pytest.mark.parametrize("text,match", [
    ("x\n1\n\n2\n", "one-column CSV"),
    ("x,x\n1,2\n", "duplicate column names"),
])
def test_csv_shapes_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MalformedError, match=match):
        open_duckdb(path)


def test_files_refused(tmp_path: Path) -> None:
    with pytest.raises(MalformedError, match="does not exist"):
        open_duckdb(tmp_path / "none.parquet")
    (tmp_path / "t.txt").write_text("x", encoding="utf-8")
    with pytest.raises(MalformedError, match="unknown dataset format"):
        open_duckdb(tmp_path / "t.txt")
    with pytest.raises(MalformedError, match="unknown engine"):
        load_table(tmp_path / "t.txt", engine="spark")
    db = _write_sqlite(tmp_path / "b.sqlite", {"x": [1.0, 2.0]})
    with pytest.raises(MalformedError, match="plain table name"):
        open_duckdb(db, table="t; DROP TABLE t")
    with pytest.raises(MalformedError, match="not a readable SQLite table"):
        open_duckdb(db, table="nope")


def test_sqlite_blob_refused(tmp_path: Path) -> None:
    db = tmp_path / "b.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x, y)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, b"\x00"), (2, 3)])
    con.commit()
    con.close()
    with pytest.raises(MalformedError, match="column 'y' holds binary"):
        open_duckdb(db, table="t")


def test_sqlite_mixed_cells(tmp_path: Path) -> None:
    """SQLite's dynamic types: ints, floats, texts and NULLs in one column."""
    db = tmp_path / "m.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x, g)")
    con.executemany("INSERT INTO t VALUES (?, ?)",
                    [(1, "a"), (2.5, 1), ("3", "a"), (None, 2.0), (" 4 ", "b"), (2**60 + 1, 1)])
    con.commit()
    con.close()
    spec = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                            "bounds": {"x": [0.0, 10.0]}, "group_by": ["g"],
                            "categories": {"g": ["a", "1", "2"]}, "min_cell_size": 1})
    (v1, r1), (v2, r2) = _both(db, spec, "t")
    assert v1 == v2 and r1.to_dict() == r2.to_dict()


def test_dataset_config_engine(tmp_path: Path, files: dict[str, Path]) -> None:
    ds = DatasetConfig(path=files["parquet"], engine="duckdb", memory_limit="256MB", threads=1)
    assert isinstance(load_dataset(ds), DuckDBTable)
    assert isinstance(load_dataset(DatasetConfig(path=files["parquet"])), dict)
    for bad in ({"engine": "spark"}, {"memory_limit": "lots"}, {"threads": 0}):
        with pytest.raises(ValueError):
            DatasetConfig(path=files["parquet"], **bad)


def test_overflow_falls_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """DuckDB raises on integer overflow (never wraps); the statistic's own encode then takes
    over.  Forced here by letting a 2^72 product run in 64-bit integers."""
    from statledger.protocol import duckdb_encode

    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": [1e6, -1e6, 5e5, 123.25]}), path)
    spec = QuerySpec.parse({"version": 1, "statistic": "variance", "columns": ["x"],
                            "bounds": {"x": [-1e6, 1e6]}, "min_cell_size": 1})
    (v1, _), (v2, _) = _both(path, spec)
    assert v1 == v2
    monkeypatch.setattr(duckdb_encode, "_BIGINT_PRODUCT", 2**200)
    with caplog.at_level(logging.INFO, logger="statledger.protocol.duckdb_encode"):
        (v3, r3), (v4, r4) = _both(path, spec)
    assert "overflows DuckDB's integers" in caplog.text
    assert v3 == v4 == v1 and r3.to_dict() == r4.to_dict()


@pytest.mark.parametrize("text", [
    "\ufeffx,y\r\n1,a\r\n2.5,b\r\n\r\n3,\"c,d\"\r\n",  # Excel: byte-order mark, CRLF
    "x,y\n1,a\n\n2.5,\"multi\nline\"\n3,\"say \"\"hi\"\"\"\n",  # blank line, quoted cells
])
def test_csv_dialects_equal(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text, encoding="utf-8", newline="")
    spec = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                            "bounds": {"x": [0.0, 10.0]}, "min_cell_size": 1})
    (v1, r1), (v2, r2) = _both(path, spec)
    assert v1 == v2 == [3, round(6.5 * 2**16)] and r1.to_dict() == r2.to_dict()
    assert list(open_duckdb(path)) == ["x", "y"]
