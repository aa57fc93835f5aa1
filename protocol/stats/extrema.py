"""min and max over a declared integer domain, with Drynx-style unary threshold vectors.

``params.domain = [a, b]`` (integers, ``b - a <= 4096``; if absent, the column's bounds,
which must then be integers).  Values are clipped to ``[a, b]`` (reported) and rounded half to
even to integers.

Encoding (no group_by), every entry 0 or 1 except ``n``:

* ``n``: number of selected rows, in ``[0, max_rows]`` (for small-cell suppression);
* ``providers``: 1 (the summed entry counts contributors);
* ``nonempty``: 1 if the provider has at least one selected row;
* max: ``ge(t)`` for ``t = a+1 .. b``: 1 if the provider's largest value is ``>= t``;
* min: ``le(t)`` for ``t = a .. b-1``: 1 if the provider's smallest value is ``<= t``.

The crypto adds, so a summed threshold entry counts the providers with a value beyond ``t``;
a count > 0 is the OR.  Decoding: ``max`` = the largest ``t`` with ``ge(t) > 0`` (``a`` if none
but some provider is non-empty); ``min`` = the smallest ``t`` with ``le(t) > 0`` (``b`` if
none).

Suppression before decryption (:mod:`statledger.protocol.suppression`): an exact query's
*gate* is ``n``, tested by the blinded shuffled PET, which reveals only the bit ``n <
min_cell_size`` -- never ``n``.  An empty selection counts as small (also at ``min_cell_size
= 1``, where the PET tests ``n == 0``).  When the bit is set, :meth:`_Extreme.release`
releases ``providers`` alone (the aggregate entry lists the contributions anyway): ``n``,
``nonempty`` and every threshold are never decrypted, and the result shows the value and
``n`` as None ("suppressed").  A DP query has no gate: every entry is decrypted noised and
the result is suppressed when the noisy ``n`` is in ``(0, min_cell_size)``; the extreme read
off noisy threshold counts is rarely useful (docs/queries.md, "What a DP query releases").
An extreme is by nature one individual's value: use it on non-sensitive columns.
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
    count_range,
    register,
    require_no_group_by,
    require_params,
    select_rows,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["Min", "Max", "MAX_DOMAIN"]

MAX_DOMAIN = 4096


def domain(spec: QuerySpec) -> tuple[int, int]:
    """The declared integer domain ``(a, b)`` of the query."""
    d = spec.params.get("domain")
    if d is None:
        lo, hi = spec.bounds[spec.columns[0]]
        return int(lo), int(hi)
    return int(d[0]), int(d[1])


class _Extreme(Statistic):
    is_max: bool = True

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("domain",))
        require_no_group_by(spec, self.name)
        if len(spec.columns) != 1:
            raise MalformedError(f"columns: {self.name} takes exactly one numeric column")
        col = spec.columns[0]
        if col not in spec.bounds:
            raise MalformedError(f"bounds.{col}: missing public bounds for numeric column")
        d = spec.params.get("domain")
        if d is None:
            lo, hi = spec.bounds[col]
            if lo != int(lo) or hi != int(hi):
                raise MalformedError(f"params.domain: missing, and bounds.{col} are not integers")
            a, b = int(lo), int(hi)
        else:
            if (
                not isinstance(d, list)
                or len(d) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) for x in d)
            ):
                raise MalformedError("params.domain: must be a list of two integers [a, b]")
            a, b = d
        if not a < b:
            raise MalformedError(f"params.domain: needs a < b, got [{a}, {b}]")
        if b - a > MAX_DOMAIN:
            raise MalformedError(f"params.domain: at most {MAX_DOMAIN} + 1 values")

    def _thresholds(self, spec: QuerySpec) -> list[int]:
        a, b = domain(spec)
        return list(range(a + 1, b + 1)) if self.is_max else list(range(a, b))

    def layout(self, spec: QuerySpec) -> Layout:
        op = "ge" if self.is_max else "le"
        th = self._thresholds(spec)
        labels = ["n", "providers", "nonempty"] + [f"{op}({t})" for t in th]
        ranges = [count_range(spec), (0, 1), (0, 1)] + [(0, 1)] * len(th)
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1, 0, 1] + [1] * len(self._thresholds(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        col = spec.columns[0]
        a, b = domain(spec)
        sel = select_rows(spec, table, numeric=[col], clip_values=False)
        x = sel.values[col]
        n_clip = int(np.count_nonzero((x < a) | (x > b)))
        sel.report.clipped[col] = n_clip
        xi = np.rint(np.clip(x, a, b)).astype(np.int64)
        th = self._thresholds(spec)
        out = [sel.n, 1, 1 if sel.n > 0 else 0]
        if sel.n == 0:
            out += [0] * len(th)
        elif self.is_max:
            top = int(xi.max())
            out += [1 if top >= t else 0 for t in th]
        else:
            bottom = int(xi.min())
            out += [1 if bottom <= t else 0 for t in th]
        return self._finish(spec, out, sel.report)

    def gates(self, spec: QuerySpec) -> list[int]:
        return [0]  # n: tested by the PET (protocol/suppression.py)

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != 1:
            raise MalformedError("gate bits: expected one (n)")
        width = len(self.layout(spec))
        if small[0]:
            # n < min_cell_size (an empty selection included): only the number of providers,
            # which the aggregate entry lists anyway
            return [False, True] + [False] * (width - 2)
        return [True] * width

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = check_released_totals(spec, self.layout(spec), totals, [1])
        a, b = domain(spec)
        n, providers = int(t[0] or 0), int(t[1] or 0)
        # a withheld n: the PET found it small; a present one: exact and >= k, or DP-noisy
        suppressed = t[0] is None or 0 < n < spec.min_cell_size
        if not suppressed and any(v is None for v in t):
            raise MalformedError("totals: an entry of an unsuppressed result is withheld")
        nonempty = int(t[2] or 0)
        th = self._thresholds(spec)
        counts = [int(c or 0) for c in t[3:]]
        value: int | None = None
        if nonempty > 0 and not suppressed:
            hits = [th[i] for i, c in enumerate(counts) if c > 0]
            if self.is_max:
                value = max(hits) if hits else a
            else:
                value = min(hits) if hits else b
        col = spec.columns[0]
        values: dict[str, Any] = {
            "column": col,
            "domain": [a, b],
            "value": value,
            "n": None if suppressed else n,
            "providers": providers,
            "providers_with_rows": None if suppressed else nonempty,
            "suppressed": suppressed,
        }
        notes = []
        if suppressed:
            notes.append(f"suppressed: fewer than {spec.min_cell_size} rows")
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"{self.name}({col}) over [{a}, {b}]",
            header=["statistic", "value", "n", "providers"],
            rows=[[self.name, value, values["n"], providers]],
            notes=notes,
        )


class Max(_Extreme):
    """Largest value over all providers."""

    name = "max"
    is_max = True


class Min(_Extreme):
    """Smallest value over all providers."""

    name = "min"
    is_max = False


register(Max())
register(Min())
