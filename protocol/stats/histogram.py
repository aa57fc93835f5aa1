"""Histogram (frequency count) of a numeric column over declared bin edges.

``params.bins`` is a strictly increasing list of ``m + 1`` edges (``2 <= m + 1 <= 1025``)
that covers the column's bounds (``bins[0] <= lo`` and ``bins[-1] >= hi``).  Bins are
``[e_i, e_{i+1})`` except the last, which is closed -- exactly ``numpy.histogram``.  Values
are clipped to the bounds first (reported), so every selected row lands in a bin.

Encoding per group-by cell: the ``m`` bin counts, each in ``[0, max_rows]``.

Suppression: the table rows are the group-by cells (one row without group_by), the columns
the bins; :func:`~statledger.protocol.stats.base.suppress_cells` applies primary and complementary
suppression, and the published total counts published bins only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

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
    register,
    require_params,
    select_rows,
    suppress_cells,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["Histogram", "MAX_BINS"]

MAX_BINS = 1024


def _edges(spec: QuerySpec) -> list[float]:
    return [float(e) for e in spec.params["bins"]]


class Histogram(Statistic):
    """Counts per declared bin (and per group-by cell)."""

    name = "histogram"

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("bins",), ("bins",))
        if len(spec.columns) != 1:
            raise MalformedError("columns: histogram takes exactly one numeric column")
        col = spec.columns[0]
        if col not in spec.bounds:
            raise MalformedError(f"bounds.{col}: missing public bounds for numeric column")
        bins = spec.params["bins"]
        if not isinstance(bins, list) or not 2 <= len(bins) <= MAX_BINS + 1:
            raise MalformedError(f"params.bins: needs a list of 2..{MAX_BINS + 1} edges")
        for i, e in enumerate(bins):
            if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e):
                raise MalformedError(f"params.bins[{i}]: not a finite number")
        if any(not bins[i] < bins[i + 1] for i in range(len(bins) - 1)):
            raise MalformedError("params.bins: edges must be strictly increasing")
        lo, hi = spec.bounds[col]
        if bins[0] > lo or bins[-1] < hi:
            raise MalformedError(
                f"params.bins: edges [{bins[0]}, {bins[-1]}] must cover bounds.{col} [{lo}, {hi}]"
            )

    def layout(self, spec: QuerySpec) -> Layout:
        col = spec.columns[0]
        e = _edges(spec)
        labels: list[str] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            last = len(e) - 2
            labels += [
                f"{p}count({col} in [{e[i]:g}, {e[i + 1]:g}{']' if i == last else ')'})"
                for i in range(len(e) - 1)
            ]
        return Layout(labels, [count_range(spec)] * len(labels))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1] * len(self.layout(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        e = np.asarray(_edges(spec), dtype=np.float64)
        m = e.size - 1
        sel = select_rows(spec, table, numeric=[col])
        x = sel.values[col]
        idx = np.searchsorted(e, x, side="right") - 1
        idx = np.where(x == e[-1], m - 1, idx)
        out: list[int] = []
        for k in range(sel.n_cells):
            counts = np.bincount(idx[sel.cell_mask(k)], minlength=m)
            out.extend(int(c) for c in counts[:m])
        return self._finish(spec, out, sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        t = check_totals(spec, self.layout(spec), totals)
        col = spec.columns[0]
        e = _edges(spec)
        m = len(e) - 1
        cells = group_cells(spec)
        grid = [t[k * m : (k + 1) * m] for k in range(len(cells))]
        mask = suppress_cells(grid, spec.min_cell_size)
        pub = [[None if mask[k][i] else grid[k][i] for i in range(m)] for k in range(len(cells))]
        out_cells: list[dict[str, Any]] = []
        for k, cell in enumerate(cells):
            out_cells.append(
                {
                    "cell": dict(zip(spec.group_by, cell, strict=True)),
                    "counts": pub[k],
                    "total_published": sum(c for c in pub[k] if c is not None),
                }
            )
        values: dict[str, Any] = {
            "column": col,
            "edges": e,
            "group_by": list(spec.group_by),
        }
        if not spec.group_by:
            values["counts"] = pub[0]
            values["total_published"] = out_cells[0]["total_published"]
        values["cells"] = out_cells
        header = ["bin"] + [cell_label(spec, c) for c in cells]
        rows: list[list[Any]] = []
        for i in range(m):
            close = "]" if i == m - 1 else ")"
            rows.append(
                [f"[{e[i]:g}, {e[i + 1]:g}{close}"] + [pub[k][i] for k in range(len(cells))]
            )
        rows.append(["total (published)"] + [d["total_published"] for d in out_cells])
        notes = []
        if any(any(r) for r in mask):
            notes.append(
                f"'.' = suppressed (fewer than {spec.min_cell_size} rows, or complementary); "
                "totals count published bins only"
            )
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"histogram({col})",
            header=header,
            rows=rows,
            notes=notes,
        )


register(Histogram())
