"""Reading a data owner's rows: CSV, Parquet or an SQLite table -> columns of numpy arrays.

A column whose every non-empty cell parses as a number becomes float64 (empty cells -> NaN);
any other column stays a column of ``str`` objects (empty -> ``None``).  The statistic then
applies the query's filters, categories and public bounds (``statledger.protocol.stats.base``).
"""

from __future__ import annotations

import csv
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from statledger.proofs.errors import MalformedError

__all__ = ["load_table", "Table"]

Table = dict[str, np.ndarray]


def _column(values: list[Any]) -> np.ndarray:
    floats: list[float] = []
    numeric = True
    for v in values:
        if v is None or (isinstance(v, str) and v.strip() == ""):
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
        out[i] = None if v is None or (isinstance(v, str) and v == "") else str(v)
    return out


def _from_rows(header: list[str], rows: list[list[Any]], where: str) -> Table:
    if len(set(header)) != len(header):
        raise MalformedError(f"{where}: duplicate column names")
    for n, r in enumerate(rows, start=2):
        if len(r) != len(header):
            raise MalformedError(f"{where}: row {n} has {len(r)} cells, header has {len(header)}")
    return {name: _column([r[i] for r in rows]) for i, name in enumerate(header)}


def load_table(path: str | Path, fmt: str | None = None, table: str | None = None) -> Table:
    """Load a dataset; ``fmt`` is ``csv``/``parquet``/``sqlite`` (default: from the suffix)."""
    p = Path(path)
    kind = fmt or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet",
                   ".sqlite": "sqlite", ".db": "sqlite", ".sqlite3": "sqlite"}.get(
        p.suffix.lower(), "")
    if not p.is_file():
        raise MalformedError(f"dataset {p} does not exist")
    if kind == "csv":
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise MalformedError(f"{p}: empty CSV file") from None
            return _from_rows(header, list(reader), str(p))
    if kind == "parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(p)
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
