"""Set union / intersection over a declared universe; boolean OR / AND -- presence only.

These statistics publish presence, never a count: how many providers hold ``e`` stays
hidden.  Each provider encodes one 0/1 indicator per tested fact; the summed indicator is a
*gate* (:mod:`statledger.protocol.suppression`) tested by the blinded shuffled PET with ``k =
1`` (:meth:`_Presence.gate_k`), which reveals only "the sum is 0" or "the sum is not 0".
Nothing at all is decrypted (the release rule withholds every entry): the result is read off
the PET bits alone (:meth:`_Presence.decode_gated`), so no decryption share on the log lets
anyone recompute a per-element count.  This holds whatever ``min_cell_size`` is (it plays no
part: no count is ever released).

=================  ======================================  ==================================
statistic          indicator per provider                  result (``small`` = sum is 0)
=================  ======================================  ==================================
set_union          ``has(e)``: a selected row has ``e``     ``e`` member iff not small
set_intersection   ``lacks(e) = 1 - has(e)``                ``e`` member iff small
bool_or            ``any_true``: a selected row is true     true iff not small
bool_and           ``any_false``: a selected row is false   true iff small
=================  ======================================  ==================================

Sets take one categorical column whose declared categories are the universe; booleans one
numeric column (a row is *true* when its value is non-zero).  A provider with no selected
row has no element and no true row: it *lacks every element* (so an intersection over
providers including it is empty) and has no false row (``bool_and`` vacuously true for it),
exactly as before the PET.

The number of providers is not an entry: it is public anyway (the aggregate entry lists the
contributions, the certificate carries them), and an entry would only be one more ciphertext
to hide.

A DP query (``privacy.mechanism != "none"``) has no gates (:mod:`statledger.protocol.suppression`):
its per-element sums are decrypted *with noise* calibrated to the budget (sensitivity 1 per
entry) and presence is read from the rounded noisy sums (union: ``> 0``; intersection:
``lacks == 0``) -- a DP answer can be wrong, and its noisy sums are published (protected by
the DP guarantee, not hidden).  ``group_by`` is not supported.
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
    check_released_totals,
    register,
    require_no_group_by,
    require_params,
    select_rows,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["SetUnion", "SetIntersection", "BoolOr", "BoolAnd"]


class _Presence(Statistic):
    """Shared by the four: every entry is a 0/1 indicator per provider, gated with ``k = 1``
    and never decrypted (exact queries).  ``positive``: whether a non-zero sum means *yes*
    (union, OR) or a zero sum does (intersection: nobody lacks ``e``; AND: nobody has a
    false row)."""

    positive: bool = True

    def _labels(self, spec: QuerySpec) -> list[str]:
        raise NotImplementedError

    def layout(self, spec: QuerySpec) -> Layout:
        labels = self._labels(spec)
        return Layout(labels, [(0, 1)] * len(labels))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1] * len(self._labels(spec))

    def gates(self, spec: QuerySpec) -> list[int]:
        # every indicator sum; DP queries: protocol/suppression.py drops the gates
        return list(range(len(self._labels(spec))))

    def gate_k(self, spec: QuerySpec) -> int:
        return 1  # "sum == 0" and nothing else, whatever min_cell_size says

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: one per element expected")
        return [False] * len(self._labels(spec))  # nothing is decrypted

    def _answers(self, spec: QuerySpec, totals: Sequence[int | None],
                 small: Sequence[bool] | None) -> list[bool]:
        """Per entry, the yes/no answer: from the PET bits (exact, gated) or from the
        decrypted (DP-noisy, rounded and clamped) sums."""
        width = len(self._labels(spec))
        if small is not None:
            if len(small) != width:
                raise MalformedError(f"gate bits: {len(small)} for {width} entries")
            if any(v is not None for v in totals):
                raise MalformedError("totals: a presence query decrypts nothing")
            zero = [bool(b) for b in small]
        else:
            t = check_released_totals(spec, self.layout(spec), totals, [])
            if any(v is None for v in t):
                # withheld entries without the PET bits: the caller must pass them
                raise MalformedError("totals: a presence result is read from the gate bits")
            zero = [int(v or 0) <= 0 for v in t]
        return [not z if self.positive else z for z in zero]

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        return self._result(spec, self._answers(spec, totals, None))

    def decode_gated(self, spec: QuerySpec, totals: Sequence[int | None],
                     small: Sequence[bool]) -> StatResult:
        return self._result(spec, self._answers(spec, totals, small))

    def _result(self, spec: QuerySpec, answers: list[bool]) -> StatResult:
        raise NotImplementedError


class _SetStat(_Presence):
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

    def _labels(self, spec: QuerySpec) -> list[str]:
        what = "has" if self.positive else "lacks"
        return [f"{what}({e})" for e in spec.categories[spec.columns[0]]]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        sel = select_rows(spec, table, categorical=[col])
        present = set(sel.labels[col].tolist())
        has = [1 if e in present else 0 for e in spec.categories[col]]
        out = has if self.positive else [1 - h for h in has]
        return self._finish(spec, out, sel.report)

    def _result(self, spec: QuerySpec, answers: list[bool]) -> StatResult:
        col = spec.columns[0]
        universe = spec.categories[col]
        members = [e for e, a in zip(universe, answers, strict=True) if a]
        values: dict[str, Any] = {
            "column": col,
            "universe": list(universe),
            "members": members,
        }
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"{self.name}({col})",
            header=["element", "member"],
            rows=[[e, e in members] for e in universe],
            notes=["presence only: no per-element count is published"],
        )


class SetUnion(_SetStat):
    """Elements present at any provider."""

    name = "set_union"
    positive = True


class SetIntersection(_SetStat):
    """Elements present at every provider."""

    name = "set_intersection"
    positive = False


class _BoolStat(_Presence):
    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        require_no_group_by(spec, self.name)
        if len(spec.columns) != 1:
            raise MalformedError(f"columns: {self.name} takes exactly one numeric column")
        col = spec.columns[0]
        if col not in spec.bounds:
            raise MalformedError(f"bounds.{col}: missing public bounds for numeric column")

    def _labels(self, spec: QuerySpec) -> list[str]:
        return ["any_true" if self.positive else "any_false"]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        sel = select_rows(spec, table, numeric=[col], clip_values=False)
        truth = sel.values[col] != 0
        # OR: is any selected row true; AND: is any selected row false (none: AND holds)
        bit = bool(np.any(truth)) if self.positive else bool(np.any(~truth))
        return self._finish(spec, [int(bit)], sel.report)

    def _result(self, spec: QuerySpec, answers: list[bool]) -> StatResult:
        col = spec.columns[0]
        value = answers[0]
        return StatResult(
            statistic=self.name,
            values={"column": col, "value": value},
            title=f"{self.name}({col} != 0)",
            header=["statistic", "value"],
            rows=[[self.name, value]],
            notes=["presence only: no count of rows or providers is published"],
        )


class BoolOr(_BoolStat):
    """True if any selected row at any provider is non-zero."""

    name = "bool_or"
    positive = True


class BoolAnd(_BoolStat):
    """True if every selected row at every provider is non-zero."""

    name = "bool_and"
    positive = False


for _stat in (SetUnion(), SetIntersection(), BoolOr(), BoolAnd()):
    register(_stat)
