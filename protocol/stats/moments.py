"""Covariance and correlation matrices over k numeric columns; cosine similarity of two.

Encoding per group-by cell, ``x_f = to_fixed(clip(x))`` for each column (rows with a
missing value in any of the columns are dropped, i.e. listwise deletion):

* covariance / correlation: ``n``, ``S_i = sum x_i,f`` (i = 1..k), then
  ``P_ij = sum x_i,f x_j,f`` for ``i <= j`` in row-major upper-triangle order;
* cosine: ``n``, ``P_xx``, ``P_yy``, ``P_xy``.

Decoding (exact rationals, rounded once to a float -- deterministic, step 14 compares bit for
bit; square roots are taken of the exact rationals, correctly rounded, never with libm):

* ``cov_ij = (n P_ij - S_i S_j) / (n (n - 1) scale^2)`` -- sample covariance (ddof=1, like
  ``numpy.cov``);
* ``corr_ij = cov_ij / sqrt(cov_ii cov_jj)`` (None when a variance is 0), like
  ``numpy.corrcoef``: ``sign(cov_ij) sqrt(cov_ij^2 / (cov_ii cov_jj))`` correctly rounded,
  clamped to [-1, 1] (only DP noise can push it out);
* ``cosine = P_xy / sqrt(P_xx P_yy)`` (None when a norm is 0), the same way.

Suppression before decryption (exact queries with ``min_cell_size >= 2``,
:mod:`statledger.protocol.suppression`): the gates are every group-by cell's ``n``; the
blinded shuffled PET reveals only "``n < min_cell_size``" per cell (an empty cell is small).
A small cell -- with its complementary cells, by position, laid out like the moments'
(:func:`~statledger.protocol.stats.base.suppress_small_group_cells`: one line with the total
as margin for one group_by column, rows x columns for two) -- is never decrypted: neither
its ``n`` nor any sum or product (a 3-row covariance would give away the three rows' sums
and cross-products).  ``min_cell_size == 1``: no gates (only an empty cell could be small).
A DP query has no gates: its noisy counts are suppressed after decoding
(:func:`~statledger.protocol.stats.base.suppress_group_cells`, post-processing).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.stats.base import (
    CellGated,
    Layout,
    LocalReport,
    StatResult,
    Table,
    cell_label,
    cell_prefix,
    check_released_totals,
    count_range,
    group_cells,
    int_dot,
    int_sum,
    max_abs_fixed,
    max_abs_product,
    product_range,
    register,
    require_params,
    select_rows,
    sum_range,
)
from statledger.protocol.stats.exact import signed_sqrt_ratio, to_float

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["Covariance", "Correlation", "Cosine"]

_MAX_COLUMNS = 64


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


def _unit_ratio(num: Fraction, den2: Fraction) -> float:
    """``num / sqrt(den2)`` (``den2 > 0``) correctly rounded, clamped to [-1, 1] exactly."""
    if num * num >= den2:
        return 1.0 if num > 0 else -1.0
    return signed_sqrt_ratio(num, den2)


class _Matrix(CellGated):
    kind: str = "covariance"

    def _block(self, spec: QuerySpec) -> int:
        return self._width(len(spec.columns))

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        k = len(spec.columns)
        if k < 2 or k > _MAX_COLUMNS:
            raise MalformedError(f"columns: {self.name} needs 2..{_MAX_COLUMNS} numeric columns")
        for i, c in enumerate(spec.columns):
            if c not in spec.bounds:
                raise MalformedError(f"columns[{i}]: column {c!r} needs public bounds (numeric)")

    def _width(self, k: int) -> int:
        return 1 + k + k * (k + 1) // 2

    def layout(self, spec: QuerySpec) -> Layout:
        cols = spec.columns
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels.append(f"{p}n")
            ranges.append(count_range(spec))
            for c in cols:
                labels.append(f"{p}sum({c})")
                ranges.append(sum_range(spec, c))
            for i, j in _pairs(len(cols)):
                labels.append(f"{p}sum({cols[i]}*{cols[j]})")
                ranges.append(product_range(spec, cols[i], cols[j]))
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        cols = spec.columns
        block = [1] + [max_abs_fixed(spec, c) for c in cols]
        block += [max_abs_product(spec, cols[i], cols[j]) for i, j in _pairs(len(cols))]
        return block * len(group_cells(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        cols = spec.columns
        sel = select_rows(spec, table, numeric=cols)
        out: list[int] = []
        for k in range(sel.n_cells):
            m = sel.cell_mask(k)
            xs = [sel.fixed[c][m] for c in cols]
            out.append(int(m.sum()))
            out.extend(int_sum(x) for x in xs)
            out.extend(int_dot(xs[i], xs[j]) for i, j in _pairs(len(cols)))
        return self._finish(spec, out, sel.report)

    def _matrix(self, spec: QuerySpec, block: list[int]) -> list[list[float | None]] | None:
        k = len(spec.columns)
        n = block[0]
        if n < 2:
            return None
        s = block[1 : 1 + k]
        p = dict(zip(_pairs(k), block[1 + k :], strict=True))
        den = n * (n - 1) * spec.scale * spec.scale

        def cov(i: int, j: int) -> Fraction:
            a, b = (i, j) if i <= j else (j, i)
            return Fraction(n * p[(a, b)] - s[a] * s[b], den)

        out: list[list[float | None]] = []
        for i in range(k):
            row: list[float | None] = []
            for j in range(k):
                if self.kind == "covariance":
                    v = cov(i, j)
                    row.append(to_float(max(v, Fraction(0))) if i == j else to_float(v))
                else:
                    vi, vj = cov(i, i), cov(j, j)
                    if vi <= 0 or vj <= 0:
                        row.append(None)
                    elif i == j:
                        row.append(1.0)
                    else:
                        row.append(_unit_ratio(cov(i, j), vi * vj))
            out.append(row)
        return out

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = check_released_totals(spec, self.layout(spec), totals, [])
        cols = spec.columns
        w = self._width(len(cols))
        cells = group_cells(spec)
        mask = self._cell_mask(spec, t)
        out_cells: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for c, cell in enumerate(cells):
            block = [int(v or 0) for v in t[c * w : (c + 1) * w]]
            mat = None if mask[c] else self._matrix(spec, block)
            n_pub = None if mask[c] else block[0]
            out_cells.append(
                {
                    "cell": dict(zip(spec.group_by, cell, strict=True)),
                    "n": n_pub,
                    "matrix": mat,
                    "suppressed": mask[c],
                }
            )
            label = cell_label(spec, cell)
            for i, ci in enumerate(cols):
                rows.append(
                    [f"{label}: {ci}" if spec.group_by else ci]
                    + [None if mat is None else mat[i][j] for j in range(len(cols))]
                )
        values: dict[str, Any] = {"columns": list(cols), "group_by": list(spec.group_by)}
        if not spec.group_by:
            values["n"] = out_cells[0]["n"]
            values["matrix"] = out_cells[0]["matrix"]
        values["cells"] = out_cells
        notes = [
            "n = "
            + ", ".join(
                f"{cell_label(spec, cl)}: {d['n']}" for cl, d in zip(cells, out_cells, strict=True)
            ),
        ]
        if self.kind == "covariance":
            notes.append("sample covariance (ddof=1)")
        if any(mask):
            notes.append(
                f"suppressed cells: fewer than {spec.min_cell_size} rows, or complementary"
            )
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"{self.kind} matrix",
            header=[""] + list(cols),
            rows=rows,
            notes=notes,
        )


class Covariance(_Matrix):
    """Sample covariance matrix (ddof=1)."""

    name = "covariance"
    kind = "covariance"


class Correlation(_Matrix):
    """Pearson correlation matrix."""

    name = "correlation"
    kind = "correlation"


class Cosine(CellGated):
    """Cosine similarity of two numeric columns."""

    name = "cosine"

    def _block(self, spec: QuerySpec) -> int:
        return 4

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        if len(spec.columns) != 2:
            raise MalformedError("columns: cosine needs exactly two numeric columns")
        for i, c in enumerate(spec.columns):
            if c not in spec.bounds:
                raise MalformedError(f"columns[{i}]: column {c!r} needs public bounds (numeric)")

    def layout(self, spec: QuerySpec) -> Layout:
        x, y = spec.columns
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels += [f"{p}n", f"{p}sum({x}*{x})", f"{p}sum({y}*{y})", f"{p}sum({x}*{y})"]
            ranges += [
                count_range(spec),
                product_range(spec, x, x),
                product_range(spec, y, y),
                product_range(spec, x, y),
            ]
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        x, y = spec.columns
        block = [
            1,
            max_abs_product(spec, x, x),
            max_abs_product(spec, y, y),
            max_abs_product(spec, x, y),
        ]
        return block * len(group_cells(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        x, y = spec.columns
        sel = select_rows(spec, table, numeric=[x, y])
        out: list[int] = []
        for k in range(sel.n_cells):
            m = sel.cell_mask(k)
            a, b = sel.fixed[x][m], sel.fixed[y][m]
            out += [int(m.sum()), int_dot(a, a), int_dot(b, b), int_dot(a, b)]
        return self._finish(spec, out, sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = check_released_totals(spec, self.layout(spec), totals, [])
        cells = group_cells(spec)
        mask = self._cell_mask(spec, t)
        out_cells: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for c, cell in enumerate(cells):
            n, pxx, pyy, pxy = (int(v or 0) for v in t[4 * c : 4 * c + 4])
            value: float | None = None
            if not mask[c] and pxx > 0 and pyy > 0:
                value = _unit_ratio(Fraction(pxy), Fraction(pxx * pyy))
            n_pub = None if mask[c] else n
            out_cells.append(
                {
                    "cell": dict(zip(spec.group_by, cell, strict=True)),
                    "n": n_pub,
                    "value": value,
                    "suppressed": mask[c],
                }
            )
            rows.append([cell_label(spec, cell), n_pub, value])
        values: dict[str, Any] = {"columns": list(spec.columns), "group_by": list(spec.group_by)}
        if not spec.group_by:
            values["n"] = out_cells[0]["n"]
            values["value"] = out_cells[0]["value"]
        values["cells"] = out_cells
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"cosine similarity({spec.columns[0]}, {spec.columns[1]})",
            header=["cell", "n", "cosine"],
            rows=rows,
            notes=[],
        )


for _stat in (Covariance(), Correlation(), Cosine()):
    register(_stat)
