"""Out-of-core owner encoding: the statistics' ``encode`` run as one DuckDB query.

A data owner whose rows do not fit in memory points a dataset at a CSV, Parquet or SQLite
file with ``engine = "duckdb"`` (``docs/deployment.md``).  ``statledger.nodes.data`` opens
the file as a DuckDB relation (the I/O) and hands it here as a :class:`DuckDBTable`; this
module only turns a query spec into SQL and the aggregates into the encoded vector.  DuckDB
scans the file in parallel on every core and keeps only the group-by aggregates in memory.

Exactness.  The vector (and the owner's :class:`LocalReport`) equals, integer for integer,
what the statistic's own ``encode`` computes over the in-memory table
(``tests/property/test_duckdb_equiv.py``):

* *reading* follows ``statledger.nodes.data``: a cell is missing when it is NULL or its text,
  stripped of Python's whitespace, is one of ``MISSING_TEXT``; a text column is numeric when
  every other cell is a Python float literal (digits with single underscores, exponent,
  ``inf``/``infinity``/``nan`` in any case); integer and float columns are numeric
  (``CAST(... AS DOUBLE)`` rounds to nearest, as Python's ``float(int)``).  A text cell that
  the SQL grammar rejects is re-checked with Python's own ``float()`` and missing-text rule;
  if Python would read it (non-ASCII digits, say) the column is refused with a message
  rather than read differently;
* *selection* (missing values, declared categories, filters) is the rule list of
  ``statledger.protocol.stats.base``; a numeric column used as a category matches the
  declared category ``c`` exactly when its value equals the one float whose category text
  is ``c``;
* *fixed point*: ``rint(clip(x) * scale)`` with ties to even, written with IEEE double
  operations only (``round`` breaks ties away from zero, so a tie ``y`` is rounded as
  ``2 round(y / 2)``; ``y / 2`` is exact);
* *NaN*: DuckDB's statistics propagation trusts Parquet min/max statistics, which leave NaN
  out, and would fold ``isnan(x)`` to false; it is switched off on every connection here;
* *sums and products* run in DuckDB's 64-bit integers where the public bounds show the
  per-row product fits, else in 128-bit integers, and the sums in 128-bit integers; DuckDB
  raises on overflow (never wraps), and then -- an entry may be up to 128 bits wide, which a
  signed 128-bit sum may not hold -- the statistic's own encode takes over (Python ints).

Statistics with an SQL path: count, sum, mean, variance, std, histogram, crosstab,
linear_regression.  Every other statistic is encoded by its own ``encode`` over this table
used as a mapping: only the columns the query names are read into memory (a logged note
says so).

Adversary: the querier writes the spec, so every column name is quoted as an identifier
and every category and filter value is passed as a bound parameter, never spliced into the
SQL text; a DuckDB error is reported by its kind only (its text may quote a row).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import fixed_bounds
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.base import LocalReport, _category_text, group_cells

if TYPE_CHECKING:
    import duckdb

    from statledger.protocol.query import QuerySpec

__all__ = ["DuckDBTable", "SQL_STATISTICS", "MISSING_TEXT", "is_missing_text"]

log = logging.getLogger(__name__)

#: Cell texts read as a missing value (compared after stripping whitespace); the one list,
#: ``statledger.nodes.data`` re-exports it.
MISSING_TEXT: frozenset[str] = frozenset(
    {"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A"})


def is_missing_text(v: Any) -> bool:
    """``v`` is None or a text that stands for a missing value (:data:`MISSING_TEXT`)."""
    return v is None or (isinstance(v, str) and v.strip() in MISSING_TEXT)


#: Statistics encoded in SQL; the rest use their own ``encode`` over the mapping.
SQL_STATISTICS: frozenset[str] = frozenset(
    {"count", "sum", "mean", "variance", "std", "histogram", "crosstab", "linear_regression"})

# Python's str.strip() whitespace (str.isspace), as an RE2 class.
_WS = (r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
       r"\x{202f}\x{205f}\x{3000}]")
# A Python float literal without words (float() grammar: digitparts with single underscores).
_DIGITS = r"[0-9](?:_?[0-9])*"
_PYFLOAT = rf"^[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?$"
_WORDS = {"inf": "inf", "+inf": "inf", "infinity": "inf", "+infinity": "inf",
          "-inf": "-inf", "-infinity": "-inf", "nan": "nan", "+nan": "nan", "-nan": "nan"}
_NUMERIC_TYPES = frozenset({"BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT",
                            "USMALLINT", "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE"})
_TEXT_TYPES = frozenset({"VARCHAR"})
_BIGINT_PRODUCT = 2**62  # a per-row product below this stays in 64-bit integers
_TEXT_SAMPLE = 64  # distinct unparsed cells re-checked with Python


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _dbl(x: float) -> str:
    """An exact DOUBLE constant (``repr`` round-trips; a bare ``0.1`` would be a DECIMAL)."""
    return f"CAST('{float(x)!r}' AS DOUBLE)"


def _category_float(text: str) -> float | None:
    """The one float whose category text (base._category_text) is ``text``, if any."""
    try:
        f = float(text)
    except ValueError:
        return None
    if math.isnan(f) or _category_text(f) != text:
        return None
    return f


class _TotalOverflowError(MalformedError):
    """A product or sum left DuckDB's integers (entries may be 128 bits wide, more than a
    signed 128-bit sum holds): the statistic's own encode, with Python's ints, takes over."""


@dataclass(frozen=True)
class _Column:
    kind: Literal["number", "text"]
    value: str  # SQL: DOUBLE (NULL when missing) or VARCHAR (NULL when missing)


class _Sql:
    """SQL text with its bound parameters."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def param(self, v: Any) -> str:
        """A numbered placeholder (``$k`` may appear several times in the text)."""
        self.params.append(v)
        return f"${len(self.params)}"


class DuckDBTable(Mapping[str, "npt.NDArray[Any]"]):
    """A dataset read by DuckDB: ``relation`` is a view or table of ``con`` (made by
    ``statledger.nodes.data``), ``where`` names the file in messages.

    As a mapping it yields column names and, on ``table[col]``, that one column read as the
    in-memory loader reads it (float64 with NaN, or ``str``/``None`` objects).
    :meth:`encode_with_report` encodes a query out of core."""

    def __init__(self, con: duckdb.DuckDBPyConnection, relation: str, where: str) -> None:
        self._con = con
        self.relation = relation
        self.where = where
        # DuckDB's statistics propagation trusts Parquet min/max statistics, which leave NaN
        # out, and folds isnan(x) to false: NaN cells would be read as values.  Off.
        self.run("SET disabled_optimizers = 'statistics_propagation'", [])
        rows = self.run(f"DESCRIBE SELECT * FROM {relation}", []).fetchall()  # noqa: S608
        self._types: dict[str, str] = {str(r[0]): str(r[1]) for r in rows}
        self._columns: dict[str, _Column] = {}

    # ------------------------------------------------------------------ plumbing
    def run(self, sql: str, params: Sequence[Any]) -> duckdb.DuckDBPyConnection:
        import duckdb

        try:
            return self._con.execute(sql, list(params))
        except duckdb.OutOfRangeException:
            raise _TotalOverflowError(f"{self.where}: an integer overflows DuckDB's integers"
                                      ) from None
        except duckdb.Error as exc:
            # the text of a DuckDB error may quote a row: name its kind only
            raise MalformedError(f"{self.where}: the duckdb engine cannot read this dataset "
                                 f"({type(exc).__name__}); check the file, or use engine = "
                                 '"pandas"') from None

    def close(self) -> None:
        self._con.close()

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, key: object) -> bool:
        return key in self._types

    def __getitem__(self, col: str) -> npt.NDArray[Any]:
        c = self.column(col)
        if c.kind == "number":
            got = self.run(f"SELECT COALESCE({c.value}, CAST('nan' AS DOUBLE)) AS v "  # noqa: S608
                            f"FROM {self.relation}", []).fetchnumpy()["v"]
            return np.asarray(got, dtype=np.float64)
        sel = f"SELECT {c.value} FROM {self.relation}"  # noqa: S608 - quoted identifiers
        vals = [r[0] for r in self.run(sel, []).fetchall()]
        out = np.empty(len(vals), dtype=object)
        out[:] = vals
        return out

    def n_rows(self) -> int:
        row = self.run(f"SELECT count(*) FROM {self.relation}", []).fetchone()  # noqa: S608
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ reading
    def is_text(self, col: str) -> bool:
        """The column holds text that is not a number (the in-memory loader's ``object``)."""
        return self.column(col).kind == "text"

    def column(self, col: str) -> _Column:
        """How column ``col`` is read: its kind and an SQL expression of its value."""
        if col not in self._types:
            raise MalformedError(f"table: missing column {col!r}")
        if col in self._columns:
            return self._columns[col]
        typ = self._types[col].upper()
        q = _ident(col)
        if typ in _NUMERIC_TYPES:
            d = f"CAST({q} AS DOUBLE)"
            out = _Column("number", f"(CASE WHEN isnan({d}) THEN NULL ELSE {d} END)")
        elif typ in _TEXT_TYPES:
            out = self._text_column(col, q)
        else:
            raise MalformedError(f"{self.where}: column {col!r} has type {typ}, which the "
                                 'duckdb engine does not read; use engine = "pandas"')
        self._columns[col] = out
        return out

    def _text_column(self, col: str, q: str) -> _Column:
        stripped = f"regexp_replace({q}, '^{_WS}+|{_WS}+$', '', 'g')"
        missing_list = ", ".join(f"'{m}'" for m in sorted(MISSING_TEXT))
        missing = f"({q} IS NULL OR {stripped} IN ({missing_list}))"
        words = " ".join(f"WHEN '{w}' THEN CAST('{v}' AS DOUBLE)" for w, v in _WORDS.items())
        parsed = (f"(CASE WHEN regexp_full_match({stripped}, '{_PYFLOAT}') "
                  f"THEN CAST(replace({stripped}, '_', '') AS DOUBLE) "
                  f"ELSE (CASE lower({stripped}) {words} END) END)")
        # the distinct cells that are neither missing nor parse: any at all -> text
        odd = [r[0] for r in self.run(
            f"SELECT DISTINCT {q} FROM {self.relation} "  # noqa: S608 - quoted identifier
            f"WHERE NOT {missing} AND {parsed} IS NULL"
            f" LIMIT {_TEXT_SAMPLE}", []).fetchall()]
        if not odd:
            return _Column("number",
                           f"(CASE WHEN {missing} THEN NULL WHEN isnan({parsed}) THEN NULL "
                           f"ELSE {parsed} END)")
        if all(is_missing_text(v) or _parses(v) for v in odd):
            raise MalformedError(
                f"{self.where}: column {col!r} has cells (non-ASCII digits or spaces) that the "
                'duckdb engine cannot read as the in-memory loader does; use engine = "pandas"')
        return _Column("text", f"(CASE WHEN {missing} THEN NULL ELSE {q} END)")

    # ------------------------------------------------------------------ encoding
    def encode_with_report(self, spec: QuerySpec) -> tuple[list[int], LocalReport]:
        """The statistic's encoded vector and local report, equal to its own ``encode``
        over the in-memory table; statistics without an SQL path use that ``encode`` over
        this mapping (only the named columns are read)."""
        stat = get_statistic(spec.statistic)
        if spec.statistic not in SQL_STATISTICS:
            log.info("%s: statistic %s has no SQL path; its columns are read into memory",
                     self.where, spec.statistic)
            return stat.encode_with_report(spec, self)
        try:
            values, report = _encode(self, spec)
        except _TotalOverflowError:
            log.info("%s: a total of %s overflows DuckDB's integers; its columns are read "
                     "into memory", self.where, spec.statistic)
            return stat.encode_with_report(spec, self)
        stat.layout(spec).check(values)  # as Statistic._finish: RangeExceededError if too many rows
        return values, report

    def selection_sql(self, spec: QuerySpec, numeric: Sequence[str], categorical: Sequence[str],
                      sql: _Sql) -> dict[str, str]:
        """SQL expressions of the row-selection rules (stats/base.py ``select_rows``):
        ``nm`` (no missing value), ``decl`` (declared categories), ``keep`` (filters too),
        ``cell`` (group-by cell index) and, per numeric column, ``x:<col>`` (its value)."""
        num_cols = list(dict.fromkeys(
            list(numeric) + [f.column for f in spec.filters if spec.is_numeric(f.column)]))
        cat_cols = list(dict.fromkeys(
            list(categorical) + list(spec.group_by)
            + [f.column for f in spec.filters if spec.is_categorical(f.column)]))
        for c in num_cols + cat_cols:
            self.column(c)  # missing column -> "table: missing column"
        xs: dict[str, str] = {}
        for c in num_cols:
            col = self.column(c)
            if col.kind != "number":
                raise MalformedError(f"table.{c}: numeric column has non-numeric values")
            xs[c] = col.value
        conds_nm = [f"{x} IS NOT NULL" for x in xs.values()]
        idx: dict[str, str] = {}
        for c in cat_cols:
            col = self.column(c)
            conds_nm.append(f"{col.value} IS NOT NULL")
            idx[c] = self._category_index(c, spec.categories[c], sql)
        nm = " AND ".join(conds_nm) or "TRUE"
        decl = " AND ".join([nm] + [f"{i} IS NOT NULL" for i in idx.values()])
        filt = [self._filter_sql(f, spec, sql) for f in spec.filters]
        keep = " AND ".join([f"({decl})"] + [f"({x})" for x in filt])
        cell = "0"
        for g in spec.group_by:
            cell = f"({cell}) * {len(spec.categories[g])} + {idx[g]}"
        out = {"nm": nm, "decl": decl, "keep": keep, "cell": cell}
        out.update({f"x:{c}": x for c, x in xs.items()})
        return out

    def _category_index(self, c: str, levels: Sequence[str], sql: _Sql) -> str:
        col = self.column(c)
        whens: list[str] = []
        if col.kind == "text":
            for i, lv in enumerate(levels):
                whens.append(f"WHEN {col.value} = {sql.param(lv)} THEN {i}")
        else:
            for i, lv in enumerate(levels):
                f = _category_float(lv)
                if f is not None:
                    whens.append(f"WHEN {col.value} = {_dbl(f)} THEN {i}")
        if not whens:
            return "CAST(NULL AS BIGINT)"
        return f"(CASE {' '.join(whens)} END)"

    def _filter_sql(self, f: Any, spec: QuerySpec, sql: _Sql) -> str:
        col = self.column(f.column)
        vals = f.values()
        if spec.is_numeric(f.column):
            if f.op == "in":
                return f"{col.value} IN ({', '.join(_dbl(float(v)) for v in vals)})"
            return f"{col.value} {'=' if f.op == '==' else f.op} {_dbl(float(vals[0]))}"
        if col.kind == "text":
            if f.op == "in":
                return f"{col.value} IN ({', '.join(sql.param(str(v)) for v in vals)})"
            eq = f"{col.value} = {sql.param(str(vals[0]))}"
        else:
            fl = [x for x in (_category_float(str(v)) for v in vals) if x is not None]
            if f.op == "in":
                return (f"{col.value} IN ({', '.join(_dbl(x) for x in fl)})" if fl else "FALSE")
            eq = f"{col.value} = {_dbl(fl[0])}" if fl else "FALSE"
        return eq if f.op == "==" else f"NOT ({eq})"


def _parses(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _fixed_sql(x: str, lo: float, hi: float, scale: int) -> str:
    """``rint(clip(x) * scale)`` (ties to even) as BIGINT, with double operations only."""
    y = f"(LEAST(GREATEST({x}, {_dbl(lo)}), {_dbl(hi)}) * {_dbl(float(scale))})"
    return (f"CAST(CASE WHEN abs({y} - trunc({y})) = 0.5 THEN 2 * round({y} / 2) "
            f"ELSE round({y}) END AS BIGINT)")


def _product(a: str, ma: int, b: str, mb: int) -> str:
    """``a * b`` in BIGINT when ``|a| <= ma``, ``|b| <= mb`` keep it below 2^62, else HUGEINT."""
    if ma * mb < _BIGINT_PRODUCT:
        return f"({a}) * ({b})"
    return f"CAST({a} AS HUGEINT) * CAST({b} AS HUGEINT)"


def _bin_sql(x: str, edges: list[float], lo: int, hi: int) -> str:
    """``searchsorted(edges, x, 'right') - 1`` restricted to bins ``lo..hi`` (binary search)."""
    if lo == hi:
        return str(lo)
    mid = (lo + hi + 1) // 2
    return (f"(CASE WHEN {x} < {_dbl(edges[mid])} THEN {_bin_sql(x, edges, lo, mid - 1)} "
            f"ELSE {_bin_sql(x, edges, mid, hi)} END)")


def _encode(t: DuckDBTable, spec: QuerySpec) -> tuple[list[int], LocalReport]:
    """One aggregate query: per group-by cell (and histogram bin) the sums the statistic
    encodes, plus the report's counts; then a scan for the selected-rows mask."""
    name = spec.statistic
    sql = _Sql()
    hist_edges: list[float] | None = None
    if name == "linear_regression":
        numeric = [*spec.params["features"], spec.params["target"]]
        categorical: list[str] = []
    elif name == "crosstab":
        v = spec.params.get("value")
        numeric = [v] if isinstance(v, str) else []
        categorical = []
    elif name == "histogram":
        numeric = [spec.columns[0]]
        categorical = []
        hist_edges = [float(e) for e in spec.params["bins"]]
    else:  # count, sum, mean, variance, std
        col = spec.columns[0] if spec.columns else None
        if col is not None and spec.is_numeric(col):
            numeric, categorical = [col], []
        else:
            numeric, categorical = [], ([col] if col is not None else [])
    s = t.selection_sql(spec, numeric, categorical, sql)

    # base: the selection rules once per row; mid: fixed point, clip flags, bin; then sums
    base = [f"({s['nm']}) AS nm", f"({s['decl']}) AS decl", f"({s['keep']}) AS keep",
            f"({s['cell']}) AS cell0"] + [f"{s[f'x:{c}']} AS x{i}" for i, c in enumerate(numeric)]
    mid = ["CASE WHEN keep THEN cell0 END AS cell", "nm", "decl", "keep"]
    bound: list[int] = []
    for i, c in enumerate(numeric):
        lo, hi = spec.bounds[c]
        mid.append(f"CASE WHEN keep THEN {_fixed_sql(f'x{i}', lo, hi, spec.scale)} END AS q{i}")
        mid.append(f"(keep AND (x{i} < {_dbl(lo)} OR x{i} > {_dbl(hi)})) AS clip{i}")
        flo, fhi = fixed_bounds(lo, hi, spec.scale)
        bound.append(max(abs(flo), abs(fhi)))
    group = "cell"
    m = 0
    if hist_edges is not None:
        lo, hi = spec.bounds[numeric[0]]
        xc = f"LEAST(GREATEST(x0, {_dbl(lo)}), {_dbl(hi)})"
        m = len(hist_edges) - 1
        mid.append(f"CASE WHEN keep THEN LEAST({_bin_sql(xc, hist_edges, 0, m)}, "
                   f"{m - 1}) END AS bin")
        group = "cell, bin"

    sums: list[str] = []
    if name == "linear_regression":
        from statledger.protocol.stats.ols import GramColumn

        gram = [GramColumn.of(spec, c) for c in numeric]
        us = [f"(q{i} - {g.shift})" for i, g in enumerate(gram)]
        mags = [max(abs(a), abs(b)) for a, b in (g.shifted() for g in gram)]
        sums += [f"sum({u})" for u in us]
        sums += [f"sum({_product(us[i], mags[i], us[j], mags[j])})"
                 for i in range(len(us)) for j in range(i, len(us))]
    elif name in ("sum", "mean", "crosstab") and numeric:
        sums.append("sum(q0)")
    elif name in ("variance", "std") and numeric:
        sums += ["sum(q0)", f"sum({_product('q0', bound[0], 'q0', bound[0])})"]

    aggs = (["count(*)", "count_if(nm)", "count_if(decl)", "count_if(keep)"]
            + [f"count_if(clip{i})" for i in range(len(numeric))] + sums)
    # identifiers quoted, spec values bound as parameters (module docstring)
    query = (f"SELECT {group}, {', '.join(aggs)} FROM (SELECT {', '.join(mid)} FROM "  # noqa: S608
             f"(SELECT {', '.join(base)} FROM {t.relation})) GROUP BY {group}")
    rows = t.run(query, sql.params).fetchall()

    width = 2 if hist_edges is not None else 1
    n_rows = n_nm = n_decl = n_keep = 0
    n_clip = [0] * len(numeric)
    per_cell: dict[tuple[int, ...], list[int]] = {}
    for r in rows:
        counts = [int(v) for v in r[width:width + 4]]
        n_rows += counts[0]
        n_nm += counts[1]
        n_decl += counts[2]
        n_keep += counts[3]
        off = width + 4
        for i in range(len(numeric)):
            n_clip[i] += int(r[off + i])
        if r[0] is None:
            continue  # the rows that were not selected
        per_cell[tuple(int(k) for k in r[:width])] = [counts[3]] + [
            0 if v is None else int(v) for v in r[off + len(numeric):]]

    out: list[int] = []
    for k in range(len(group_cells(spec))):
        if hist_edges is not None:
            out.extend(per_cell.get((k, b), [0])[0] for b in range(m))
        else:
            out.extend(per_cell.get((k,), [0] * (1 + len(sums))))
    report = LocalReport(n_rows=n_rows, n_selected=n_keep, n_missing=n_rows - n_nm,
                         n_undeclared_category=n_nm - n_decl, n_filtered_out=n_decl - n_keep,
                         clipped={c: n_clip[i] for i, c in enumerate(numeric)})
    # the selected-rows mask and each row's released cell (group-by cell, histogram bin),
    # in table order, for the owner's differencing history (protocol/history.py)
    cell = "cell0"
    n_cells = len(group_cells(spec))
    if hist_edges is not None:
        lo, hi = spec.bounds[numeric[0]]
        xc = f"LEAST(GREATEST(x0, {_dbl(lo)}), {_dbl(hi)})"
        cell = f"cell0 * {m} + LEAST({_bin_sql(xc, hist_edges, 0, m)}, {m - 1})"
        n_cells *= m
    scan = t.run(f"SELECT COALESCE(keep, FALSE) AS k, CASE WHEN keep THEN {cell} ELSE -1 END "  # noqa: S608
                 f"AS c FROM (SELECT {', '.join(base)} FROM {t.relation})",
                 sql.params).fetchnumpy()
    report.selected = np.asarray(scan["k"], dtype=bool)
    report.cells = np.asarray(scan["c"], dtype=np.int64)
    report.n_cells = n_cells
    return out, report
