"""Reading a data owner's file (nodes/data.py) and `statledger run`'s checks before any
cluster starts: missing values, a byte-order mark, a bad file named with its reason, the
same rows given twice, too few sites.  No process is started here: each refusal must come
before the cluster (the CLI would otherwise take seconds to start one)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.nodes.data import (
    check_distinct,
    check_for_query,
    load_table,
    table_digest,
)
from statledger.proofs.errors import MalformedError
from statledger.protocol.query import QuerySpec

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}


def _write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_na_and_empty_cells_are_missing_numbers(tmp_path: Path) -> None:
    t = load_table(_write(tmp_path / "a.csv", "bmi,g\n20,x\nNA,NA\n,\n N/A ,y\n30,\n"))
    assert t["bmi"].dtype == np.float64
    assert t["bmi"][0] == 20.0 and t["bmi"][4] == 30.0
    assert all(math.isnan(v) for v in t["bmi"][1:4])
    assert list(t["g"]) == ["x", None, None, "y", None]


def test_text_in_a_numeric_column_keeps_it_text(tmp_path: Path) -> None:
    t = load_table(_write(tmp_path / "a.csv", "bmi\n20\nabc\n"))
    assert t["bmi"].dtype == object  # then refused by the statistic, never read as 0/NaN


def test_bom_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    t = load_table(_write(tmp_path / "a.csv", "bmi,bp\n20,80\n", bom=True))
    assert list(t) == ["bmi", "bp"]
    # twin: without the utf-8-sig reading the name would be '\ufeffbmi'
    raw = (tmp_path / "a.csv").read_text(encoding="utf-8")
    assert raw.split(",")[0] == "\ufeffbmi"


def test_blank_trailing_lines_are_no_rows(tmp_path: Path) -> None:
    t = load_table(_write(tmp_path / "a.csv", "bmi\n20\n21\n\n\n"))
    assert t["bmi"].tolist() == [20.0, 21.0]


@pytest.mark.parametrize("text,needle", [
    ("bmi,bp\n20,80\n21\n", "a row has 1 cells, the header has 2 columns"),
    ("bmi,bmi\n20,80\n", "duplicate column names ('bmi')"),
    ("", "empty CSV file"),
])
def test_malformed_files_are_named_without_values(tmp_path: Path, text: str,
                                                  needle: str) -> None:
    p = _write(tmp_path / "a.csv", text)
    with pytest.raises(MalformedError) as e:
        load_table(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"bmi\n\xff\xfe20\n")
    with pytest.raises(MalformedError, match="not UTF-8"):
        load_table(p)


def test_not_parquet_is_a_clear_error(tmp_path: Path) -> None:
    p = _write(tmp_path / "a.parquet", "bmi\n20\n")
    with pytest.raises(MalformedError, match="not a readable Parquet file"):
        load_table(p)


def test_parquet_and_csv_of_the_same_rows_have_one_digest(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"bmi": [20.0, None, 31.5], "g": ["a", None, "b"]})
    df.to_parquet(tmp_path / "a.parquet", index=False)
    _write(tmp_path / "b.csv", "bmi,g\n20,a\nNA,\n31.5,b\n")
    a, b = load_table(tmp_path / "a.parquet"), load_table(tmp_path / "b.csv")
    assert table_digest(a) == table_digest(b)
    _write(tmp_path / "c.csv", "bmi,g\n20,a\nNA,\n31.6,b\n")  # one value differs
    assert table_digest(load_table(tmp_path / "c.csv")) != table_digest(a)
    with pytest.raises(MalformedError, match="the same rows as"):
        check_distinct({"A": tmp_path / "a.parquet", "B": tmp_path / "b.csv"},
                       {"A": a, "B": b})
    with pytest.raises(MalformedError, match="the same file as"):
        check_distinct({"A": tmp_path / "b.csv", "B": tmp_path / ".." / tmp_path.name / "b.csv"},
                       {})


def test_check_for_query_names_the_column_never_a_value(tmp_path: Path) -> None:
    spec = QuerySpec.parse(SPEC)
    bad = load_table(_write(tmp_path / "a.csv", "bmi\n20\nabc123\n"))
    with pytest.raises(MalformedError) as e:
        check_for_query(bad, spec, "A.csv")
    assert "A.csv: column 'bmi' must be numeric" in str(e.value)
    assert "abc123" not in str(e.value)
    with pytest.raises(MalformedError, match="A.csv: no column 'bmi'"):
        check_for_query(load_table(_write(tmp_path / "b.csv", "bp\n20\n")), spec, "A.csv")
    small = QuerySpec.parse({**SPEC, "max_rows": 2})
    rows = "bmi\n" + "".join(f"{20 + i}\n" for i in range(7))
    with pytest.raises(MalformedError) as e:
        check_for_query(load_table(_write(tmp_path / "c.csv", rows)), small, "C.csv")
    assert "max_rows" in str(e.value) and "7" not in str(e.value)
    check_for_query(load_table(_write(tmp_path / "d.csv", "bmi\n20\nNA\n")), spec, "D.csv")


# -- `statledger run` refuses before any cluster starts ----------------------------------
def _run(tmp_path: Path, *files: Path, extra: tuple[str, ...] = (),
         spec: dict[str, object] = SPEC) -> tuple[int, str]:
    q = tmp_path / "q.json"
    q.write_text(json.dumps(spec), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(q), "--data", *map(str, files), *extra])
    return res.exit_code, res.output


@pytest.fixture()
def sites(tmp_path: Path) -> list[Path]:
    return [_write(tmp_path / f"s{i}.csv", "bmi\n" + "".join(f"{20 + i + k}\n" for k in range(9)))
            for i in range(3)]


def test_run_names_a_failing_site_and_fails(tmp_path: Path, sites: list[Path]) -> None:
    bad = _write(tmp_path / "bad.csv", "bmi\n20\nabc\n")
    code, out = _run(tmp_path, *sites[:2], bad)
    assert code == 2
    assert f"{bad}: column 'bmi' must be numeric" in out and "--allow-partial" in out
    assert "abc" not in out.replace(str(tmp_path), "")
    nocol = _write(tmp_path / "nocol.csv", "age\n20\n")
    code, out = _run(tmp_path, *sites[:2], nocol)
    assert code == 2 and f"{nocol}: no column 'bmi'" in out


def test_run_allow_partial_still_needs_min_providers(tmp_path: Path, sites: list[Path]) -> None:
    bad = _write(tmp_path / "bad.csv", "bmi\nabc\n")
    code, out = _run(tmp_path, sites[0], bad, extra=("--allow-partial",))
    assert code == 2
    assert f"WARNING: {bad} is left out" in out and "needs at least 2 providers" in out


def test_run_one_site_fails_before_a_cluster(tmp_path: Path, sites: list[Path]) -> None:
    code, out = _run(tmp_path, sites[0])
    assert code == 2 and "needs at least 2 providers" in out
    code, out = _run(tmp_path, *sites, spec={**SPEC, "min_providers": 4})
    assert code == 2 and "3 data file(s) can answer, the query needs at least 4" in out


def test_run_refuses_the_same_file_twice(tmp_path: Path, sites: list[Path]) -> None:
    code, out = _run(tmp_path, sites[0], sites[0])
    assert code == 2 and "listed twice" in out
    code, out = _run(tmp_path, sites[0], tmp_path / ".." / tmp_path.name / sites[0].name)
    assert code == 2 and "the same file as" in out
    copy = _write(tmp_path / "copy.csv", sites[0].read_text(encoding="utf-8"), bom=True)
    code, out = _run(tmp_path, sites[0], copy)
    assert code == 2 and f"{copy}: the same rows as {sites[0]}" in out
