"""Reading a data owner's rows: CSV, Parquet or an SQLite table -> columns of numpy arrays.

A cell is missing when it is empty or one of :data:`MISSING_TEXT` (``NA``, ``N/A``, ``NaN``,
``NULL``, ... as R, pandas and Excel exports write them; surrounding spaces ignored).  A column
whose every non-missing cell parses as a number becomes float64 (missing -> NaN); any other
column stays a column of ``str`` objects (missing -> ``None``).  A UTF-8 byte-order mark (as
Excel writes) is not part of the first column's name.  The statistic then applies the query's
filters, categories and public bounds (``statledger.protocol.stats.base``).

Errors name the file and what is wrong, never a cell's value or the number of rows: a data
owner's refusal reaches the querier.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from statledger.proofs.errors import MalformedError, PolicyError

# one missing-value rule for both engines (protocol/duckdb_encode.py reads it in SQL)
from statledger.protocol.duckdb_encode import MISSING_TEXT, DuckDBTable, is_missing_text

__all__ = ["load_table", "Table", "AnyTable", "MISSING_TEXT", "is_missing_text", "check_for_query",
           "table_digest", "check_distinct", "open_duckdb", "load_dataset"]

Table = dict[str, np.ndarray]
#: what a provider encodes from: an in-memory table or a DuckDB one (``engine = "duckdb"``)
AnyTable = Table | DuckDBTable


def _column(values: list[Any]) -> np.ndarray:
    floats: list[float] = []
    numeric = True
    for v in values:
        if is_missing_text(v):
            floats.append(math.nan)
            continue
        if isinstance(v, bool):
            floats.append(float(v))
            continue
        try:
            floats.append(float(v))
        except (TypeError, ValueError):
            numeric = False
            break
    if numeric:
        return np.asarray(floats, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = None if is_missing_text(v) else str(v)
    return out


def _from_rows(header: list[str], rows: list[list[Any]], where: str) -> Table:
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise MalformedError(f"{where}: duplicate column names ({', '.join(map(repr, dup))})")
    for r in rows:
        if len(r) != len(header):
            # no row number: a data owner's refusal reaches the querier (no row counts)
            raise MalformedError(f"{where}: a row has {len(r)} cells, the header has "
                                 f"{len(header)} columns")
    return {name: _column([r[i] for r in rows]) for i, name in enumerate(header)}


def _format(p: Path, fmt: str | None) -> str:
    return fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                   ".sqlite": "sqlite", ".db": "sqlite", ".sqlite3": "sqlite"}.get(
        p.suffix.lower(), "")


@overload
def load_table(path: str | Path, fmt: str | None = None, table: str | None = None,
               engine: Literal["pandas"] = "pandas") -> Table: ...


@overload
def load_table(path: str | Path, fmt: str | None = None, table: str | None = None, *,
               engine: Literal["duckdb"]) -> DuckDBTable: ...


def load_table(path: str | Path, fmt: str | None = None, table: str | None = None,
               engine: str = "pandas") -> AnyTable:
    """Load a dataset; ``fmt`` is ``csv``/``parquet``/``sqlite`` (default: from the suffix).
    ``engine = "duckdb"`` reads nothing yet: it returns a :func:`open_duckdb` table that
    encodes queries out of core (a mapping of columns too)."""
    if engine == "duckdb":
        return open_duckdb(path, fmt, table)
    if engine != "pandas":
        raise MalformedError(f"dataset {path}: unknown engine {engine!r} (pandas or duckdb)")
    p = Path(path)
    kind = _format(p, fmt)
    if not p.is_file():
        raise MalformedError(f"dataset {p} does not exist")
    if kind == "csv":
        # utf-8-sig: a leading byte-order mark (Excel's "CSV UTF-8") is dropped, not read as
        # part of the first column's name
        try:
            with p.open(newline="", encoding="utf-8-sig") as fh:
                reader = csv.reader(fh)
                try:
                    header = next(reader)
                except StopIteration:
                    raise MalformedError(f"{p}: empty CSV file") from None
                # a blank line (no cells at all, e.g. at the end of the file) is no row
                rows = [r for r in reader if r]
                return _from_rows([h.strip() for h in header], rows, str(p))
        except UnicodeDecodeError:
            raise MalformedError(f"{p}: not UTF-8 text (save the CSV as UTF-8)") from None
        except csv.Error as exc:
            raise MalformedError(f"{p}: not a valid CSV file ({exc})") from None
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            t = pq.read_table(p)
        except (pa.ArrowException, OSError) as exc:
            raise MalformedError(f"{p}: not a readable Parquet file ({type(exc).__name__})"
                                 ) from None
        return {name: _column(t.column(name).to_pylist()) for name in t.column_names}
    if kind == "sqlite":
        if not table or not table.replace("_", "").isalnum():
            raise MalformedError(f"{p}: an SQLite dataset needs a plain table name")
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
        try:
            cur = con.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - name checked above
            header = [d[0] for d in cur.description]
            return _from_rows(header, [list(r) for r in cur.fetchall()], f"{p}:{table}")
        finally:
            con.close()
    raise MalformedError(f"{p}: unknown dataset format {kind or p.suffix!r}")


def load_dataset(ds: Any) -> AnyTable:
    """A configured dataset (``DatasetConfig`` of nodes/config.py) read by its engine."""
    if ds.engine == "duckdb":
        return open_duckdb(ds.path, ds.format, ds.table, ds.memory_limit, ds.threads)
    return load_table(ds.path, ds.format, ds.table)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _csv_header(p: Path) -> list[str]:
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise MalformedError(f"{p}: not UTF-8 text (save the CSV as UTF-8)") from None
    except csv.Error as exc:
        raise MalformedError(f"{p}: not a valid CSV file ({exc})") from None
    if header is None:
        raise MalformedError(f"{p}: empty CSV file")
    return [h.strip() for h in header]


def open_duckdb(path: str | Path, fmt: str | None = None, table: str | None = None,
                memory_limit: str | None = None, threads: int | None = None) -> DuckDBTable:
    """A dataset read by DuckDB (:class:`statledger.protocol.duckdb_encode.DuckDBTable`):
    Parquet and CSV files are scanned in place, in parallel, on every query; an SQLite table
    is copied once into a temporary DuckDB file (DuckDB's SQLite reader is an extension
    downloaded at run time, which an owner's node must not need).  CSV cells are read as
    text and parsed by the same rules as :func:`load_table`; a one-column CSV is refused
    (DuckDB reads a blank line as a row, Python's reader skips it)."""
    import duckdb

    from statledger.protocol.duckdb_encode import DuckDBTable

    p = Path(path)
    kind = _format(p, fmt)
    if not p.is_file():
        raise MalformedError(f"dataset {p} does not exist")
    if kind not in ("csv", "parquet", "sqlite"):
        raise MalformedError(f"{p}: unknown dataset format {kind or p.suffix!r}")
    if kind == "sqlite":
        return _sqlite_into_duckdb(p, table, memory_limit, threads)
    con = duckdb.connect(config=_duck_config(memory_limit, threads))
    try:
        if kind == "parquet":
            src = f"read_parquet({_sql_literal(str(p))})"
        else:
            header = _csv_header(p)
            if len(set(header)) != len(header):
                dup = sorted({h for h in header if header.count(h) > 1})
                raise MalformedError(f"{p}: duplicate column names ({', '.join(map(repr, dup))})")
            if len(header) < 2:
                raise MalformedError(f"{p}: a one-column CSV file; use engine = \"pandas\"")
            cols = ", ".join(f"{_sql_literal(h)}: 'VARCHAR'" for h in header)
            src = (f"read_csv({_sql_literal(str(p))}, header = true, columns = {{{cols}}}, "
                   "delim = ',', quote = '\"', escape = '\"', auto_detect = false, "
                   "strict_mode = true, null_padding = false, encoding = 'utf-8')")
        con.execute(f"CREATE VIEW src AS SELECT * FROM {src}")  # noqa: S608 - literals quoted
        return DuckDBTable(con, "src", str(p))
    except BaseException:
        con.close()
        raise


def _duck_config(memory_limit: str | None, threads: int | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"preserve_insertion_order": True}  # the selected-rows mask
    if memory_limit is not None:
        cfg["memory_limit"] = memory_limit
    if threads is not None:
        cfg["threads"] = threads
    return cfg


def _sqlite_into_duckdb(p: Path, table: str | None, memory_limit: str | None,
                        threads: int | None) -> DuckDBTable:
    """Copy an SQLite table into a temporary DuckDB file, every cell as the text Python
    gives it (``str`` of an int or float round-trips exactly); blobs are refused."""
    import atexit
    import shutil
    import tempfile

    import duckdb
    import pyarrow as pa

    from statledger.protocol.duckdb_encode import DuckDBTable

    if not table or not table.replace("_", "").isalnum():
        raise MalformedError(f"{p}: an SQLite dataset needs a plain table name")
    tmp = Path(tempfile.mkdtemp(prefix="statledger-duckdb-"))
    atexit.register(shutil.rmtree, tmp, True)
    con = duckdb.connect(str(tmp / "copy.duckdb"), config=_duck_config(memory_limit, threads))
    lite = sqlite3.connect(f"file:{p}?mode=ro", uri=True)
    try:
        try:
            cur = lite.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - name checked above
        except sqlite3.Error as exc:
            raise MalformedError(f"{p}:{table}: not a readable SQLite table "
                                 f"({type(exc).__name__})") from None
        header = [d[0] for d in cur.description]
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise MalformedError(f"{p}:{table}: duplicate column names "
                                 f"({', '.join(map(repr, dup))})")
        schema = pa.schema([(h, pa.string()) for h in header])
        con.execute("CREATE TABLE src AS SELECT * FROM (SELECT " + ", ".join(  # noqa: S608
            f'CAST(NULL AS VARCHAR) AS "{h.replace(chr(34), chr(34) * 2)}"' for h in header)
            + ") WHERE FALSE")
        while rows := cur.fetchmany(65536):
            cols: list[list[str | None]] = [[] for _ in header]
            for r in rows:
                for j, v in enumerate(r):
                    if isinstance(v, bytes):
                        raise MalformedError(f"{p}:{table}: column {header[j]!r} holds binary "
                                             'cells; use engine = "pandas"')
                    cols[j].append(None if v is None else str(v))
            batch = pa.table(cols, schema=schema)  # noqa: F841 - read by DuckDB below
            con.execute("INSERT INTO src SELECT * FROM batch")
        return DuckDBTable(con, "src", f"{p}:{table}")
    except BaseException:
        con.close()
        raise
    finally:
        lite.close()


def check_for_query(table: Table, spec: Any, where: str) -> None:
    """Raise :class:`MalformedError` starting with ``where`` if a data owner holding ``table``
    could not answer ``spec`` (a missing column, text in a numeric column, values the
    statistic refuses); the same encoding the owner runs, done before any cluster starts.
    The message names the column and the reason, never a value or a row count."""
    from statledger.protocol import calibration

    for col in sorted(set(spec.used_columns())):
        if col not in table:
            raise MalformedError(f"{where}: no column {col!r}")
        is_text = getattr(table, "is_text", None)  # a DuckDB table: no column read
        if spec.is_numeric(col) and (is_text(col) if is_text else table[col].dtype == object):
            raise MalformedError(f"{where}: column {col!r} must be numeric, but some of its "
                                 "cells are text that is not a number (missing values may be "
                                 "empty or NA)")
    try:
        calibration.wire_encode(spec, table, where)  # what the owner's node encodes
    except PolicyError as exc:  # e.g. more rows than max_rows (the message has no count)
        raise MalformedError(f"{where}: {exc}") from None
    except MalformedError as exc:
        msg = str(exc)
        if msg.startswith("entry "):  # the layout check names the value: say why instead
            msg = ("its rows do not fit the ranges the query declares (more selected rows "
                   "than max_rows)")
        raise MalformedError(f"{where}: {msg}") from None


def check_vertical_owner(table: Any, spec: Any, owner: str, where: str) -> None:
    """Raise :class:`MalformedError` starting with ``where`` unless ``table`` holds the id
    column and ``owner``'s columns of a vertical spec's partition (protocol/vertical.py);
    the owner's node checks the rest (ids, bounds) when it answers."""
    from statledger.protocol.vertical import VerticalPlan

    part = VerticalPlan.of(spec).part
    for col in (part.id_column, *part.columns[owner]):
        if col not in table:
            raise MalformedError(f"{where}: no column {col!r}")


def table_digest(table: Table) -> str:
    """SHA-256 of a loaded table's columns (names, kinds and values, in column order): two
    files with equal digests hold the same rows, whatever their format."""
    h = hashlib.sha256()
    for name, col in table.items():
        h.update(json.dumps(name).encode() + b"\x00")
        if col.dtype == object:
            h.update(b"s" + json.dumps([None if v is None else str(v) for v in col]).encode())
        else:
            h.update(b"f" + np.ascontiguousarray(col, dtype="<f8").tobytes())
        h.update(b"\x01")
    return h.hexdigest()


def check_distinct(sites: Mapping[str, str | Path], tables: Mapping[str, Table]) -> None:
    """Refuse two sites given the same file (same path) or the same rows (same
    :func:`table_digest`): their rows would be counted twice, silently."""
    paths: dict[Path, str] = {}
    digests: dict[str, str] = {}
    for name, path in sites.items():
        rp = Path(path).resolve()
        if rp in paths:
            raise MalformedError(f"{name}: the same file as {paths[rp]}; its rows would be "
                                 "counted twice")
        paths[rp] = name
        if name in tables:
            d = table_digest(tables[name])
            if d in digests:
                raise MalformedError(f"{name}: the same rows as {digests[d]}; they would be "
                                     "counted twice")
            digests[d] = name
