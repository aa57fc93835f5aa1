"""Crosstab: counts, or means of a value column, by one or two categorical columns.

``group_by`` names the one or two categorical columns (rows, then columns of the table);
``params.value`` (optional) names a numeric column whose mean is reported per cell.

Encoding per cell (row-major): ``n`` and, with a value column, ``S = sum v_f``.

Disclosure control (see ``docs/queries.md``, ``docs/privacy.md``): primary suppression of cells
with ``0 < n < min_cell_size``, then complementary suppression
(:func:`~statledger.protocol.stats.base.suppress_cells`) so that no row or column has exactly one
suppressed cell -- this protects the suppressed cells even against someone who knows the
true margins from another release.  The margins we publish are computed from published
cells only (and say so), so they reveal nothing about suppressed cells either.

Suppression before decryption (:mod:`statledger.protocol.suppression`, exact queries): the
cell counts ``n`` are the *gates* -- tested by the blinded shuffled PET, which reveals only
"``n < min_cell_size``" per cell (an empty cell is small) -- and neither the count nor the
sum of a suppressed cell (primary or complementary, :meth:`Crosstab._mask_bits`: the first
unsuppressed cell of a line by position) is ever decrypted; ``decode`` receives ``None`` for
them.  A DP query has no gates: its noisy counts are suppressed by value after decryption.

Decoding is deterministic (step 14 compares bit for bit): counts are integers; a mean is the
exact rational ``S / (n scale)`` rounded once to the nearest float.
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
    cell_prefix,
    check_released_totals,
    count_range,
    group_cells,
    int_sum,
    max_abs_fixed,
    register,
    require_params,
    select_rows,
    sum_range,
    suppress_cells,
    suppress_small_cells,
)
from statledger.protocol.stats.exact import to_float

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["Crosstab"]


def _value_col(spec: QuerySpec) -> str | None:
    v = spec.params.get("value")
    return v if isinstance(v, str) else None


def _mean(s: int, n: int, scale: int) -> float | None:
    return to_float(Fraction(s, n * scale)) if n > 0 else None


class Crosstab(Statistic):
    """Counts or means by one or two categorical columns, with suppression."""

    name = "crosstab"

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("value",))
        if not 1 <= len(spec.group_by) <= 2:
            raise MalformedError("group_by: crosstab needs one or two categorical columns")
        if spec.columns:
            raise MalformedError(
                "columns: crosstab takes no columns (use group_by, and params.value for means)"
            )
        if "value" in spec.params:
            v = spec.params["value"]
            if not isinstance(v, str):
                raise MalformedError("params.value: must be a column name")
            if v not in spec.bounds:
                raise MalformedError(f"params.value: column {v!r} needs public bounds (numeric)")

    def _width(self, spec: QuerySpec) -> int:
        return 2 if _value_col(spec) is not None else 1

    def layout(self, spec: QuerySpec) -> Layout:
        v = _value_col(spec)
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels.append(f"{p}n")
            ranges.append(count_range(spec))
            if v is not None:
                labels.append(f"{p}sum({v})")
                ranges.append(sum_range(spec, v))
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        v = _value_col(spec)
        block = [1] if v is None else [1, max_abs_fixed(spec, v)]
        return block * len(group_cells(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        v = _value_col(spec)
        sel = select_rows(spec, table, numeric=[v] if v is not None else [])
        out: list[int] = []
        for k in range(sel.n_cells):
            m = sel.cell_mask(k)
            out.append(int(m.sum()))
            if v is not None:
                out.append(int_sum(sel.fixed[v][m]))
        return self._finish(spec, out, sel.report)

    def gates(self, spec: QuerySpec) -> list[int]:
        # the cell counts, with or without a value column (a small count is itself withheld)
        return list(range(0, len(self.layout(spec)), self._width(spec)))

    def _mask_bits(self, spec: QuerySpec, small: list[list[bool]]) -> list[list[bool]]:
        """Suppression from the PET bits alone
        (:func:`~statledger.protocol.stats.base.suppress_small_cells`: complementary cells
        by position); one categorical column: the categories form one line."""
        if len(small[0]) == 1:
            return [[m] for m in suppress_small_cells([[r[0] for r in small]])[0]]
        return suppress_small_cells(small)

    def _mask(self, spec: QuerySpec, n: list[list[int]]) -> list[list[bool]]:
        R, C = len(n), len(n[0])
        if C == 1:
            # One categorical column: the categories form one line whose margin is the total.
            return [
                [m] for m in suppress_cells([[n[i][0] for i in range(R)]], spec.min_cell_size)[0]
            ]
        return suppress_cells(n, spec.min_cell_size)

    def _grid(self, spec: QuerySpec, counts: Sequence[int]) -> list[list[int]]:
        R = len(spec.categories[spec.group_by[0]])
        C = len(spec.categories[spec.group_by[1]]) if len(spec.group_by) == 2 else 1
        return [[int(counts[i * C + j]) for j in range(C)] for i in range(R)]

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: one per cell expected")
        grid = self._grid(spec, [int(b) for b in small])
        mask = [m for row in self._mask_bits(spec, [[bool(b) for b in r] for r in grid])
                for m in row]
        return [not m for m in mask for _ in range(self._width(spec))]

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        layout = self.layout(spec)
        v = _value_col(spec)
        w = self._width(spec)
        t = check_released_totals(spec, layout, totals, [])
        row_cats = spec.categories[spec.group_by[0]]
        col_cats = spec.categories[spec.group_by[1]] if len(spec.group_by) == 2 else ["all"]
        R, C = len(row_cats), len(col_cats)
        n = [[int(t[(i * C + j) * w] or 0) for j in range(C)] for i in range(R)]
        gone = [[t[(i * C + j) * w] is None for j in range(C)] for i in range(R)]
        # withheld counts: the PET gate's decision (never decrypted); all counts present: a
        # DP query's noisy counts, suppressed by their values (post-processing)
        mask = gone if any(any(r) for r in gone) else self._mask(spec, n)
        withheld = [[v is not None and t[(i * C + j) * w + 1] is None for j in range(C)]
                    for i in range(R)]
        if any(withheld[i][j] and not mask[i][j] for i in range(R) for j in range(C)):
            raise MalformedError("totals: the sum of a published cell is withheld")
        s = [[int(t[(i * C + j) * w + 1] or 0) if v else 0 for j in range(C)] for i in range(R)]
        pub_n = [[None if mask[i][j] else n[i][j] for j in range(C)] for i in range(R)]

        def _sum_n(cells: list[tuple[int, int]]) -> int:
            return sum(n[i][j] for i, j in cells if not mask[i][j])

        def _sum_s(cells: list[tuple[int, int]]) -> int:
            return sum(s[i][j] for i, j in cells if not mask[i][j])

        row_cells = [[(i, j) for j in range(C)] for i in range(R)]
        col_cells = [[(i, j) for i in range(R)] for j in range(C)]
        all_cells = [(i, j) for i in range(R) for j in range(C)]
        values: dict[str, Any] = {
            "rows": {"column": spec.group_by[0], "categories": list(row_cats)},
            "columns": (
                {"column": spec.group_by[1], "categories": list(col_cats)}
                if len(spec.group_by) == 2
                else None
            ),
            "value": v,
            "counts": pub_n,
            "suppressed": mask,
            "row_totals": [_sum_n(rc) for rc in row_cells],
            "column_totals": [_sum_n(cc) for cc in col_cells],
            "total": _sum_n(all_cells),
            "margins": "published cells only",
        }
        if v is not None:
            pub_mean = [
                [None if mask[i][j] else _mean(s[i][j], n[i][j], spec.scale) for j in range(C)]
                for i in range(R)
            ]
            values["means"] = pub_mean
            values["row_means"] = [_mean(_sum_s(rc), _sum_n(rc), spec.scale) for rc in row_cells]
            values["column_means"] = [_mean(_sum_s(cc), _sum_n(cc), spec.scale) for cc in col_cells]
            values["overall_mean"] = _mean(_sum_s(all_cells), _sum_n(all_cells), spec.scale)
            body: list[list[Any]] = [list(r) for r in pub_mean]
            row_m = values["row_means"]
            col_m = values["column_means"]
            tot: Any = values["overall_mean"]
        else:
            body = [list(r) for r in pub_n]
            row_m = values["row_totals"]
            col_m = values["column_totals"]
            tot = values["total"]
        corner = spec.group_by[0] + (f" \\ {spec.group_by[1]}" if len(spec.group_by) == 2 else "")
        margin_name = "mean" if v is not None else "total"
        header = [corner] + list(col_cats if C > 1 else ["n" if v is None else f"mean({v})"])
        rows: list[list[Any]] = []
        for i in range(R):
            rows.append([row_cats[i]] + list(body[i]) + ([row_m[i]] if C > 1 else []))
        rows.append([margin_name] + list(col_m if C > 1 else [tot]) + ([tot] if C > 1 else []))
        if C > 1:
            header.append(margin_name)
        notes = [f"margins ({margin_name}) computed from published cells only"]
        if any(any(r) for r in mask):
            notes.append(
                f"'.' = suppressed (fewer than {spec.min_cell_size} rows, or complementary)"
            )
        what = "counts" if v is None else f"mean({v})"
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"crosstab: {what} by {' x '.join(spec.group_by)}",
            header=header,
            rows=rows,
            notes=notes,
        )


register(Crosstab())
