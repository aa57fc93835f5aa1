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
Suppression before decryption (exact queries with ``min_cell_size >= 2``): the gates are every
cell's ``n`` (:mod:`statledger.protocol.suppression`); only the bit ``n < min_cell_size`` per
cell is learnt (an empty cell is small), and a small cell -- with its complementary cells,
chosen by position (:func:`~statledger.protocol.stats.base.suppress_small_cells`; with one
group_by column the overall total is the margin, with two the rows and columns) -- is never
decrypted: neither its ``n`` nor its sums.  A count is gated too (its ``n`` *is* the answer).
With ``min_cell_size == 1`` nothing is small but an empty selection, whose answer (0, or no
mean) hides nothing: no gates, one decryption phase.  A DP query has no gates: its noisy
counts are suppressed after decoding by
:func:`~statledger.protocol.stats.base.suppress_group_cells` (``0 < n < min_cell_size``,
post-processing).  A suppressed cell publishes neither its value nor its ``n``.  With DP
noise ``n`` can be <= 0: the mean is then undefined (None) and a negative variance estimate
is clamped to 0.

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


class _Basic(CellGated):
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

    def _width(self, spec: QuerySpec) -> int:
        """Entries per cell: ``n`` then the sums."""
        return 1 + (self.order if self._col(spec) is not None else 0)

    def _block(self, spec: QuerySpec) -> int:
        # gates: every cell's n (CellGated); none at min_cell_size 1 (only an empty selection
        # would be small, and its answer hides nothing).  DP: protocol/suppression.py drops them
        return self._width(spec)

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

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = check_released_totals(spec, self.layout(spec), totals, [])
        col = self._col(spec)
        width = self._width(spec)
        cells = group_cells(spec)
        gone = [t[k * width] is None for k in range(len(cells))]
        # withheld counts: the PET gate's decision (never decrypted, exact queries); all
        # counts present: exact counts >= min_cell_size or a DP query's noisy counts,
        # suppressed by their values (post-processing)
        if any(v is None for v in t) and (spec.privacy.mechanism != "none"
                                          or not self.gates(spec)):
            raise MalformedError("totals: withheld entries for a query without gates")
        if any(gone):
            mask = gone
        else:
            mask = suppress_group_cells(spec, [int(t[k * width] or 0) for k in range(len(cells))])
        out_cells: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for k, cell in enumerate(cells):
            raw = t[k * width : (k + 1) * width]
            if not mask[k] and any(v is None for v in raw):
                raise MalformedError("totals: an entry of a published cell is withheld")
            block = [int(v or 0) for v in raw] + [0, 0]
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
