"""Histogram (frequency count) of a numeric column over declared bin edges.

``params.bins`` is a strictly increasing list of ``m + 1`` edges (``2 <= m + 1 <= 1025``)
that covers the column's bounds (``bins[0] <= lo`` and ``bins[-1] >= hi``).  Bins are
``[e_i, e_{i+1})`` except the last, which is closed -- exactly ``numpy.histogram``.  Values
are clipped to the bounds first (reported), so every selected row lands in a bin.

Encoding per group-by cell: the ``m`` bin counts, each in ``[0, max_rows]``.

Suppression: the table rows are the group-by cells (one row without group_by), the columns
the bins; the published total of a row counts its published bins only.

* **Exact queries with** ``min_cell_size >= 2``: suppression *before decryption*
  (:mod:`statledger.protocol.suppression`).  The gates are every bin count; the blinded
  shuffled PET reveals only "``count < min_cell_size``" per bin (an empty bin is small, so
  an empty bin is withheld too: ``0`` and ``1`` look alike).  A small bin is never
  decrypted, and neither is its complement: while a line of the table (a group's bins; with
  group_by also a bin across the groups) has exactly one withheld bin, the first released
  bin of that line *by position* is withheld too
  (:func:`~statledger.protocol.stats.base.suppress_small_cells`, the rule crosstab uses).
  Why: the histogram's total ``n`` is not published, but it is derivable elsewhere (a
  ``count`` with the same filters, or the sum of the other bins plus a known margin), and
  one withheld bin would then be ``n`` minus the published ones.
* ``min_cell_size == 1``: nothing but an empty bin could be small, and a 0 hides nothing:
  no gates, every bin decrypted in one phase.
* **DP queries**: no gates; every noisy bin is decrypted and the decoder suppresses by the
  noisy values (:func:`~statledger.protocol.stats.base.suppress_cells`: primary ``0 < c <
  min_cell_size``, complementary the smallest cell of the line; post-processing).
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
    check_released_totals,
    count_range,
    group_cells,
    register,
    require_params,
    select_rows,
    suppress_cells,
    suppress_small_cells,
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

    def gates(self, spec: QuerySpec) -> list[int]:
        # every bin count; none at min_cell_size 1 (only an empty bin would be small, and a
        # 0 hides nothing).  DP queries: protocol/suppression.py drops the gates.
        if spec.min_cell_size <= 1:
            return []
        return list(range(len(self.layout(spec))))

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: one per bin expected")
        m = len(_edges(spec)) - 1
        bits = [bool(b) for b in small]
        grid = [bits[k : k + m] for k in range(0, len(bits), m)]
        return [not b for row in suppress_small_cells(grid) for b in row]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        e = np.asarray(_edges(spec), dtype=np.float64)
        m = e.size - 1
        sel = select_rows(spec, table, numeric=[col])
        x = sel.values[col]
        idx = np.searchsorted(e, x, side="right") - 1
        idx = np.where(x == e[-1], m - 1, idx)
        sel.report.refine_cells(idx, m)  # each bin is a released cell (differencing history)
        out: list[int] = []
        for k in range(sel.n_cells):
            counts = np.bincount(idx[sel.cell_mask(k)], minlength=m)
            out.extend(int(c) for c in counts[:m])
        return self._finish(spec, out, sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = check_released_totals(spec, self.layout(spec), totals, [])
        col = spec.columns[0]
        e = _edges(spec)
        m = len(e) - 1
        cells = group_cells(spec)
        if any(v is None for v in t):
            # withheld bins: the PET gate's decision (exact queries), never decrypted
            if spec.privacy.mechanism != "none" or not self.gates(spec):
                raise MalformedError("totals: withheld entries for a query without gates")
            mask = [[t[k * m + i] is None for i in range(m)] for k in range(len(cells))]
            if [not b for row in mask for b in row] != self.release(
                    spec, [b for row in mask for b in row]):
                # the rule withholds a stable set (no line with exactly one withheld bin);
                # any other pattern did not come from it
                raise MalformedError("totals: the withheld bins are not a release decision "
                                     "of the histogram's rule")
        else:
            # every bin decrypted: exact counts >= min_cell_size (gated or min_cell_size 1)
            # or a DP query's noisy counts, suppressed by their values (post-processing)
            grid_all = [[int(v or 0) for v in t[k * m : (k + 1) * m]]
                        for k in range(len(cells))]
            mask = suppress_cells(grid_all, spec.min_cell_size)
        grid = [[int(v or 0) for v in t[k * m : (k + 1) * m]] for k in range(len(cells))]
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
