"""Set union / intersection over a declared universe; boolean OR / AND.

Sets (``set_union``, ``set_intersection``): one categorical column; the universe is its
declared categories.  Encoding: ``providers`` = 1, then ``has(e)`` = 1 if the provider has a
selected row with value ``e`` (each entry in ``[0, 1]``).  The summed ``has(e)`` counts the
providers holding ``e``; union = ``{e : count > 0}``, intersection = ``{e : count ==
providers}``.  Only the set is published, not the per-element counts.

Booleans (``bool_or``, ``bool_and``): one numeric column, a row is *true* when its value is
non-zero.  Encoding: ``providers`` = 1 and ``bit`` = 1 if any selected row is true (OR) /
all selected rows are true (AND, vacuously 1 for a provider with no selected row).  OR =
``bit > 0``; AND = ``bit == providers``.

These statistics reveal presence, not counts of rows; ``min_cell_size`` does not apply
(document-level choice; see ``docs/queries.md``).  ``group_by`` is not supported.
"""

from __future__ import annotations

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
    check_totals,
    register,
    require_no_group_by,
    require_params,
    select_rows,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["SetUnion", "SetIntersection", "BoolOr", "BoolAnd"]


class _SetStat(Statistic):
    union: bool = True

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        require_no_group_by(spec, self.name)
        if len(spec.columns) != 1:
            raise MalformedError(f"columns: {self.name} takes exactly one categorical column")
        col = spec.columns[0]
        if col not in spec.categories:
            raise MalformedError(
                f"categories.{col}: {self.name} needs the declared universe of {col!r}"
            )

    def layout(self, spec: QuerySpec) -> Layout:
        universe = spec.categories[spec.columns[0]]
        labels = ["providers"] + [f"has({e})" for e in universe]
        return Layout(labels, [(0, 1)] * len(labels))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [0] + [1] * len(spec.categories[spec.columns[0]])

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        sel = select_rows(spec, table, categorical=[col])
        present = set(sel.labels[col].tolist())
        out = [1] + [1 if e in present else 0 for e in spec.categories[col]]
        return self._finish(spec, out, sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        t = check_totals(spec, self.layout(spec), totals)
        col = spec.columns[0]
        universe = spec.categories[col]
        providers = t[0]
        if self.union:
            members = [e for e, c in zip(universe, t[1:], strict=True) if c > 0]
        else:
            members = [
                e for e, c in zip(universe, t[1:], strict=True) if providers > 0 and c == providers
            ]
        values: dict[str, Any] = {
            "column": col,
            "universe": list(universe),
            "members": members,
            "providers": providers,
        }
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"{self.name}({col}) over {providers} providers",
            header=["element", "member"],
            rows=[[e, e in members] for e in universe],
            notes=[],
        )


class SetUnion(_SetStat):
    """Elements present at any provider."""

    name = "set_union"
    union = True


class SetIntersection(_SetStat):
    """Elements present at every provider."""

    name = "set_intersection"
    union = False


class _BoolStat(Statistic):
    is_or: bool = True

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        require_no_group_by(spec, self.name)
        if len(spec.columns) != 1:
            raise MalformedError(f"columns: {self.name} takes exactly one numeric column")
        col = spec.columns[0]
        if col not in spec.bounds:
            raise MalformedError(f"bounds.{col}: missing public bounds for numeric column")

    def layout(self, spec: QuerySpec) -> Layout:
        return Layout(["providers", "bit"], [(0, 1), (0, 1)])

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [0, 1]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        sel = select_rows(spec, table, numeric=[col], clip_values=False)
        truth = sel.values[col] != 0
        bit = bool(np.any(truth)) if self.is_or else bool(np.all(truth))
        return self._finish(spec, [1, int(bit)], sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        providers, bit = check_totals(spec, self.layout(spec), totals)
        value = bit > 0 if self.is_or else (providers > 0 and bit == providers)
        col = spec.columns[0]
        return StatResult(
            statistic=self.name,
            values={"column": col, "value": value, "providers": providers},
            title=f"{self.name}({col} != 0)",
            header=["statistic", "value", "providers"],
            rows=[[self.name, value, providers]],
            notes=[],
        )


class BoolOr(_BoolStat):
    """True if any selected row at any provider is non-zero."""

    name = "bool_or"
    is_or = True


class BoolAnd(_BoolStat):
    """True if every selected row at every provider is non-zero."""

    name = "bool_and"
    is_or = False


for _stat in (SetUnion(), SetIntersection(), BoolOr(), BoolAnd()):
    register(_stat)
