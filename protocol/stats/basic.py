"""count, sum, mean, variance and std -- per group-by cell.

Encoding (per cell, in :func:`~statledger.protocol.stats.base.group_cells` order), ``x_f =
to_fixed(clip(x))``:

==========  ====================================  ==========================================
statistic   entries per cell                      decode
==========  ====================================  ==========================================
count       ``n``                                 ``n``
sum         ``n``, ``S1 = sum x_f``               ``S1 / scale``
mean        ``n``, ``S1``                         ``S1 / (n scale)``
variance    ``n``, ``S1``, ``S2 = sum x_f^2``     ``(n S2 - S1^2) / (n (n-1) scale^2)``
std         same as variance                      ``sqrt(variance)``
==========  ====================================  ==========================================

Variance is the *sample* variance (``ddof=1``, like ``numpy.var(ddof=1)`` and pandas).
``S2`` is the sum of squares of the fixed-point values (at ``scale**2``), so the decoded
variance is the exact sample variance of the quantised data.
Cells are suppressed by :func:`~statledger.protocol.stats.base.suppress_group_cells`; a suppressed
cell
publishes neither its value nor its ``n``.  With DP noise ``n`` can be <= 0: the mean is then
undefined (None) and a negative variance estimate is clamped to 0.

Deterministic decoding (step 14 compares bit for bit): every value is an exact rational of
the integer totals (``Fraction``) rounded once to the nearest float; ``std`` is the correctly
rounded square root of the exact variance (:func:`~statledger.protocol.stats.exact.sqrt_float`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    cell_label,
    cell_prefix,
    check_totals,
    count_range,
    group_cells,
    int_dot,
    int_sum,
    max_abs_fixed,
    product_range,
    register,
    require_params,
    select_rows,
    sum_range,
    suppress_group_cells,
)
from statledger.protocol.stats.exact import sqrt_float, to_float

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["Count", "Sum", "Mean", "Variance", "Std"]


class _Basic(Statistic):
    order: int = 1

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        if self.order == 0:
            if len(spec.columns) > 1:
                raise MalformedError("columns: count takes at most one column")
            return
        if len(spec.columns) != 1:
            raise MalformedError(f"columns: {self.name} takes exactly one numeric column")
        if spec.columns[0] not in spec.bounds:
            raise MalformedError(
                f"bounds.{spec.columns[0]}: missing public bounds for numeric column"
            )

    def _col(self, spec: QuerySpec) -> str | None:
        return spec.columns[0] if spec.columns else None

    def layout(self, spec: QuerySpec) -> Layout:
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        col = self._col(spec)
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels.append(f"{p}n")
            ranges.append(count_range(spec))
            if self.order >= 1 and col is not None:
                labels.append(f"{p}sum({col})")
                ranges.append(sum_range(spec, col))
            if self.order >= 2 and col is not None:
                labels.append(f"{p}sum({col}^2)")
                ranges.append(product_range(spec, col, col))
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        col = self._col(spec)
        out: list[int] = []
        for _ in group_cells(spec):
            out.append(1)
            if self.order >= 1 and col is not None:
                out.append(max_abs_fixed(spec, col))
            if self.order >= 2 and col is not None:
                out.append(max_abs_fixed(spec, col) ** 2)
        return out

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = self._col(spec)
        if col is not None and spec.is_numeric(col):
            sel = select_rows(spec, table, numeric=[col])
        else:
            sel = select_rows(spec, table, categorical=[col] if col is not None else [])
        out: list[int] = []
        for k in range(sel.n_cells):
            m = sel.cell_mask(k)
            out.append(int(m.sum()))
            if self.order >= 1 and col is not None:
                xf = sel.fixed[col][m]
                out.append(int_sum(xf))
                if self.order >= 2:
                    out.append(int_dot(xf, xf))
        return self._finish(spec, out, sel.report)

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        raise NotImplementedError

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        t = check_totals(spec, self.layout(spec), totals)
        col = self._col(spec)
        width = 1 + (self.order if col is not None else 0)
        cells = group_cells(spec)
        ns = [t[k * width] for k in range(len(cells))]
        mask = suppress_group_cells(spec, ns)
        out_cells: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for k, cell in enumerate(cells):
            block = t[k * width : (k + 1) * width] + [0, 0]
            n, s1, s2 = block[0], block[1], block[2]
            if mask[k]:
                value: float | int | None = None
                n_pub: int | None = None
            else:
                value = self._value(spec, n, s1, s2)
                n_pub = n
            out_cells.append(
                {
                    "cell": dict(zip(spec.group_by, cell, strict=True)),
                    "n": n_pub,
                    "value": value,
                    "suppressed": mask[k],
                }
            )
            rows.append([cell_label(spec, cell), n_pub, value])
        values: dict[str, Any] = {"column": col, "group_by": list(spec.group_by)}
        if not spec.group_by:
            values["n"] = out_cells[0]["n"]
            values["value"] = out_cells[0]["value"]
        values["cells"] = out_cells
        notes = []
        if any(mask):
            notes.append(
                f"'.' = suppressed (fewer than {spec.min_cell_size} rows, or complementary)"
            )
        if self.order >= 2:
            notes.append("sample variance (ddof=1)")
        what = self.name if col is None else f"{self.name}({col})"
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"{what}",
            header=["cell", "n", self.name],
            rows=rows,
            notes=notes,
        )


class Count(_Basic):
    """Number of selected rows."""

    name = "count"
    order = 0

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        return n


class Sum(_Basic):
    """Sum of a clipped numeric column."""

    name = "sum"
    order = 1

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        return to_float(Fraction(s1, spec.scale))  # exact, rounded once


class Mean(_Basic):
    """Mean of a clipped numeric column."""

    name = "mean"
    order = 1

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        if n <= 0:
            return None
        return to_float(Fraction(s1, n * spec.scale))


def _variance(spec: QuerySpec, n: int, s1: int, s2: int) -> Fraction | None:
    if n < 2:
        return None
    v = Fraction(n * s2 - s1 * s1, n * (n - 1) * spec.scale * spec.scale)
    return max(v, Fraction(0))


class Variance(_Basic):
    """Sample variance (ddof=1) of a clipped numeric column."""

    name = "variance"
    order = 2

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        v = _variance(spec, n, s1, s2)
        return None if v is None else to_float(v)


class Std(_Basic):
    """Sample standard deviation (ddof=1) of a clipped numeric column."""

    name = "std"
    order = 2

    def _value(self, spec: QuerySpec, n: int, s1: int, s2: int) -> float | int | None:
        v = _variance(spec, n, s1, s2)
        return None if v is None else sqrt_float(v)  # correctly rounded root of the exact variance


for _stat in (Count(), Sum(), Mean(), Variance(), Std()):
    register(_stat)
