"""Kaplan-Meier survival curves per group and the logrank test, statistic ``"kaplan_meier"``.

Spec: ``params.time`` and ``params.event`` (numeric columns; ``event`` must be 0/1 -- 1 =
event observed, 0 = censored), a public time grid, optionally ``params.max_ties`` and
``params.alpha`` (default 0.05, the confidence level is ``1 - alpha``).  Groups come from
``group_by`` (at most one column with declared categories); without ``group_by`` there is one
group ``all``.  ``columns`` must list exactly ``[time, event]``.  Times are **not** clipped
(their ``bounds`` are required by the spec schema but unused): the grid decides.

The grid is declared in the spec, so it is public and depends on no owner's data: either
``params.times`` (strictly increasing positive numbers ``t_1 < ... < t_m``) or the integer
domain ``params.max_time = M`` with an optional ``params.step = s`` (default 1; ``M`` a
multiple of ``s``): the grid ``s, 2s, ..., M``, written in two numbers however many points it
has (a daily grid over three years is ``{"max_time": 1095}``).  At most 4096 points.  The
grid reveals nothing about the data; the released counts on it reveal the pooled event table
at its resolution (a daily grid: how many events and censorings each group had on each day).
A data-dependent grid (the owners' distinct times) is not offered: it would publish each
owner's set of times, or need a round that decrypts the pooled times before the query.

Encoding, per group ``g`` (in declared category order): ``a_g``, the rows still at risk after
the last grid point (time ``T > t_m``), then for each grid point ``t_k``: ``d_gk`` (events)
and ``c_gk`` (censored), where a row with time ``T`` is counted at the first grid point
``t_k >= T``.  The group size is derived, not encoded: ``n_g = a_g + sum_k (d_gk + c_gk)``, so
no submission can claim more removals than rows (a vector whose censorings exceed its group
size does not exist) and one row changes exactly one entry by 1.  Ranges: ``a_g`` in ``[0,
max_rows]``; ``d_gk`` and ``c_gk`` in ``[0, max_ties]`` (``params.max_ties``, default
``max_rows``; an owner with more tied events -- or censorings -- at one grid point in one group
refuses the query with a PolicyError that names no count).  The range proof's bit width of an
entry is ``bitlen(hi)``, plus as many again unless ``hi + 1`` is a power of two
(:class:`statledger.proofs.rangeproof.RangeLayout`): ``max_ties = 2^b - 1`` costs ``b`` bits
per entry (7: 3 bits), ``max_ties = max_rows = 1000`` costs 20.  Sensitivity 1 per entry.
With a grid that contains every distinct observed time (e.g. integer times and ``max_time >=
max T``) the counts are exactly lifelines' event table.

Decoding (see docs/statistics.md), per group: ``n = a + sum_k (d_k + c_k)``, at risk ``r_k =
n - sum_{j<k} (d_j + c_j)`` (never below ``d_k + c_k``);
``S(t_k) = prod_{j<=k} (r_j - d_j) / r_j`` (the product-limit estimate); Greenwood ``V_k =
sum_{j<=k} d_j / (r_j (r_j - d_j))`` (terms with ``r_j = d_j`` count 0); the exponential
("log(-log)") band with ``z = Phi^-1(1 - alpha/2)``: ``exp(-exp(log(-log S) -+ z sqrt(V) /
log S))`` (1.0 while ``S = 1``, 0.0 once ``S = 0``, as lifelines); median = first ``t_k`` with
``S <= 1/2`` (None = not reached, lifelines' inf).  Logrank over the non-empty groups: ``O_g -
E_g = sum_k d_gk - d_k r_gk / r_k``, hypergeometric covariance ``V_gh = sum_k d_k (r_k - d_k) /
(r_k - 1) * r_gk (delta_gh r_k - r_hk) / r_k^2``, ``chi^2 = Z' V'^+ Z`` over the first ``G -
1`` groups, ``df = G - 1``.

Coarsened before decryption (an exact query with ``min_cell_size = k >= 2``; docs/privacy.md):
the gates are every events entry ``d_gk`` (the PET reveals only ``d_gk < k``); per group,
:func:`coarsen` of its bits gives the released intervals -- a run of small points merged with
the next non-small point ``e``, whose events and censorings are decrypted as two sums at
``t_e`` (release groups, :meth:`KaplanMeier.release_groups`) -- and the truncated tail: the
small points after the last non-small point ``L`` and ``a_g`` are added to ``c_gL`` (censored
at ``t_L``).  A group without a non-small point releases nothing.  The decoder receives each
sum at its target and 0 at the other members, so the released points are exactly those with
``d >= k``; it publishes per group only those points (the curve on the coarsened grid,
lifelines' on rows rounded up to the released interval's end), with ``merged`` and
``truncated`` listing the other grid points, and the logrank on the coarsened counts.  With
``min_cell_size = 1`` (or DP) there are no gates: the full table below.

Deterministic decoding (step 14 of docs/verification.md compares every number bit for bit):
``S`` is an exact rational (integer numerator and denominator) rounded once to a float, and
the median compares it exactly with 1/2; ``O``, ``E``, ``V`` and ``chi^2`` are exact rationals
(``Z' V'^+ Z`` by fraction-free symmetric elimination over their common denominator,
:func:`~statledger.protocol.stats.exact.int_psd_quadratic_form`); the band (``ln``, ``exp``,
``sqrt``), the normal quantile and the chi-squared tail ``Q((G-1)/2, chi^2/2)`` (of the exact
statistic truncated to 320 bits) are computed in decimal arithmetic under the fixed context of
:mod:`~statledger.protocol.stats.exact` (60 digits, fixed algorithms), then rounded to floats.
No numpy, scipy or libm in decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    RangeExceededError,
    Statistic,
    StatResult,
    Table,
    cell_label,
    cell_prefix,
    check_released_totals,
    fmt,
    group_cells,
    is_finite_number,
    register,
    require_params,
    select_rows,
    suppress_group_cells,
)
from statledger.protocol.stats.exact import (
    chi2_sf,
    dec_to_float,
    decimal_context,
    int_psd_quadratic_form,
    norm_isf,
    truncated,
)
from statledger.protocol.stats.ols import check_columns_listed

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["KaplanMeier", "coarsen", "km_curve", "logrank"]


_MAX_GRID = 4096


def coarsen(small: Sequence[bool]) -> tuple[list[tuple[int, int]], int]:
    """The coarsened grid of one group from its PET bits (``small[k]``: fewer than
    ``min_cell_size`` events at grid point ``k``): the released intervals ``(first, last)``
    (grid indices, inclusive) -- every run of small points merged with the next non-small
    point, so each released interval holds at least ``min_cell_size`` events -- and the
    index of the first truncated point (``len(small)`` when none is: the trailing run of
    small points after the last non-small one).  No non-small point: no interval, nothing is
    released.  A pure function of public bits."""
    out: list[tuple[int, int]] = []
    start = 0
    for k, b in enumerate(small):
        if not b:
            out.append((start, k))
            start = k + 1
    return out, start


def km_curve(
    n: int, d: Sequence[int], c: Sequence[int], alpha: float = 0.05
) -> dict[str, Any]:
    """Product-limit estimate and exponential Greenwood band from one group's counts.

    Returns lists over the grid (without the leading time 0): ``at_risk`` (ints),
    ``survival``, ``ci_lower``, ``ci_upper`` (floats) and ``below_half`` (bools, exact ``S <=
    1/2``).  Raises :class:`MalformedError` when the counts are inconsistent (more removals
    than rows).
    """
    if n < 0 or any(x < 0 for x in d) or any(x < 0 for x in c):
        raise MalformedError("totals: negative count")
    if sum(d) + sum(c) > n:
        raise MalformedError(f"totals: {sum(d) + sum(c)} removals exceed the group size {n}")
    z = norm_isf(Fraction(alpha) / 2)
    at_risk: list[int] = []
    surv: list[float] = []
    lower: list[float] = []
    upper: list[float] = []
    below: list[bool] = []
    num, den = 1, 1  # S = num / den exactly (not reduced: no gcd on growing integers)
    with localcontext(decimal_context()):
        log_s = Decimal(0)  # ln S = sum ln((r - d) / r)
        green = Decimal(0)  # Greenwood sum
        r = n
        for dj, cj in zip(d, c, strict=True):
            at_risk.append(r)
            if dj == 0 and surv:  # no event: S and V unchanged, the same numbers again
                surv.append(surv[-1])
                below.append(below[-1])
                lower.append(lower[-1])
                upper.append(upper[-1])
            else:
                if dj > 0:
                    num *= r - dj
                    den *= r
                    if r > dj:
                        log_s += (Decimal(r - dj) / Decimal(r)).ln()
                        green += Decimal(dj) / Decimal(r * (r - dj))
                surv.append(num / den)  # int / int: correctly rounded, no gcd
                below.append(2 * num <= den)
                if num == 0:  # S = 0
                    lower.append(0.0)
                    upper.append(0.0)
                elif num == den:  # no event yet: S = 1
                    lower.append(1.0)
                    upper.append(1.0)
                else:
                    c_ = (-log_s).ln()
                    e_ = z * green.sqrt() / log_s
                    lower.append(dec_to_float((-(c_ - e_).exp()).exp()))
                    upper.append(dec_to_float((-(c_ + e_).exp()).exp()))
            r -= dj + cj
    return {
        "at_risk": at_risk,
        "survival": surv,
        "ci_lower": lower,
        "ci_upper": upper,
        "below_half": below,
    }


def logrank(d: Sequence[Sequence[int]], r: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Logrank test of ``G >= 2`` groups from events ``d[g][k]`` and at-risk ``r[g][k]``,
    exactly: every sum is kept over one common integer denominator (no gcd per term)."""
    g = len(d)
    h = g - 1  # V is needed over the first G - 1 groups only
    m = len(d[0])
    # E_g and V_gh over the common denominator `den` (numerators e[g], v[g][h])
    den = 1
    e = [0] * g
    v = [[0] * h for _ in range(h)]
    for k in range(m):
        rk = sum(r[i][k] for i in range(g))
        dk = sum(d[i][k] for i in range(g))
        if dk == 0 or rk == 0:
            continue
        term_den = rk * rk * max(rk - 1, 1)
        grow = term_den // math.gcd(den, term_den)
        if grow > 1:
            den *= grow
            e = [x * grow for x in e]
            v = [[x * grow for x in row] for row in v]
        unit = den // term_den
        e_unit = rk * max(rk - 1, 1) * unit
        for i in range(g):
            e[i] += (dk * r[i][k]) * e_unit  # d_k r_gk / r_k
        if rk > 1:
            fac = dk * (rk - dk) * unit  # d_k (r_k - d_k) / ((r_k - 1) r_k^2)
            for i in range(h):
                for j in range(i, h):
                    c = r[i][k] * ((rk if i == j else 0) - r[j][k])
                    if c:
                        v[i][j] += c * fac
    for i in range(h):
        for j in range(i):
            v[i][j] = v[j][i]
    observed = [sum(row) for row in d]
    # Z = (O den - e) / den and V = v / den share the denominator: chi^2 = z' v^+ z / den
    zn = [o * den - x for o, x in zip(observed, e, strict=True)]
    quad = int_psd_quadratic_form(v, zn[:h])
    if quad is None:  # pragma: no cover - consistent counts always give Z in range(V)
        raise MalformedError("totals: inconsistent logrank covariance")
    stat_num, stat_den = quad[0], quad[1] * den
    df = g - 1
    return {
        "test_statistic": stat_num / stat_den,  # int / int: correctly rounded
        # the tail of the exact statistic truncated to 320 bits (a float has 53)
        "p_value": chi2_sf(truncated(stat_num, stat_den), df),
        "df": df,
        "observed": [float(o) for o in observed],  # counts, published as floats (as before)
        "expected": [x / den for x in e],  # int / int: correctly rounded
    }


class _KMResult(StatResult):
    def summary(self) -> str:
        v = self.values
        out = [f"<statledger.KaplanMeier: {v['time']} / {v['event']}>"]
        out.append(f"{'alpha':>18} = {fmt(v['alpha'])}")
        out.append(f"{'grid points':>18} = {len(v['times'])}")
        out.append("")
        for grp in v["groups"]:
            out.append(f"--- {grp['label']}: n = {fmt(grp['n'])}, "
                       f"median = {fmt(grp['median']) if grp['median'] is not None else 'inf'}")
            if grp["suppressed"]:
                out.append("    (suppressed: fewer than min_cell_size rows, or complementary;"
                           " coarsened grid: no interval with min_cell_size events)")
                continue
            if grp.get("merged") or grp.get("truncated"):
                out.append(f"    coarsened: {len(grp['merged'])} grid points merged into a "
                           f"later one, {len(grp['truncated'])} truncated (curve ends at "
                           f"{fmt(grp['times'][-1])})")
            lo_name = f"lower_{1 - v['alpha']:g}"
            hi_name = f"upper_{1 - v['alpha']:g}"
            out.append(f"{'timeline':>10} {'at_risk':>8} {'observed':>8} {'censored':>8} "
                       f"{'KM_estimate':>12} {lo_name:>12} {hi_name:>12}")
            for k, t in enumerate(grp["times"]):
                if k > 0 and grp["events"][k] == 0 and grp["censored"][k] == 0:
                    continue
                out.append(
                    f"{fmt(t):>10} {fmt(grp['at_risk'][k]):>8} {fmt(grp['events'][k]):>8} "
                    f"{fmt(grp['censored'][k]):>8} {grp['survival'][k]:>12.6f} "
                    f"{grp['ci_lower'][k]:>12.6f} {grp['ci_upper'][k]:>12.6f}"
                )
            out.append("")
        lr = v["logrank"]
        if lr is not None:
            p = lr["p_value"]
            out += [
                "<lifelines-style StatisticalResult: logrank_test>",
                f"{'null_distribution':>18} = chi squared",
                f"{'degrees_of_freedom':>18} = {lr['df']}",
                f"{'test_name':>18} = logrank_test",
                "",
                "---",
                f"{'test_statistic':>15} {'p':>8} {'-log2(p)':>9}",
                f"{lr['test_statistic']:>15.2f} "
                f"{('<0.005' if p < 0.005 else f'{p:.2f}'):>8} "
                f"{(-math.log2(p) if p > 0 else float('inf')):>9.2f}",
            ]
        out.extend(self.notes)
        return "\n".join(out)


class KaplanMeier(Statistic):
    """Kaplan-Meier per group with exponential Greenwood band, median, and logrank test."""

    name = "kaplan_meier"
    description = "Kaplan-Meier curves per group, Greenwood band, median, logrank test"

    # ------------------------------------------------------------------ spec
    def _grid(self, spec: QuerySpec) -> list[float]:
        has_t, has_m = "times" in spec.params, "max_time" in spec.params
        if has_t == has_m:
            raise MalformedError(
                "params.times: give exactly one of params.times or params.max_time"
            )
        if has_m:
            return self._integer_grid(spec)
        if "step" in spec.params:
            raise MalformedError("params.step: only with params.max_time (an integer grid)")
        ts = spec.params["times"]
        if not isinstance(ts, list) or not 1 <= len(ts) <= _MAX_GRID:
            raise MalformedError(f"params.times: must be a list of 1..{_MAX_GRID} numbers")
        for i, t in enumerate(ts):
            if not is_finite_number(t):
                raise MalformedError(f"params.times[{i}]: must be a finite number")
            if i == 0 and t <= 0:
                raise MalformedError("params.times[0]: must be > 0")
            if i > 0 and not t > ts[i - 1]:
                raise MalformedError(f"params.times[{i}]: must be > params.times[{i - 1}]")
        return [float(t) for t in ts]

    def _integer_grid(self, spec: QuerySpec) -> list[float]:
        """The grid ``s, 2s, ..., M`` of ``params.max_time = M`` and ``params.step = s``."""
        m = spec.params["max_time"]
        s = spec.params.get("step", 1)
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise MalformedError("params.step: must be a positive integer")
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise MalformedError("params.max_time: must be a positive integer")
        if m % s:
            raise MalformedError("params.max_time: must be a multiple of params.step")
        if m // s > _MAX_GRID:
            raise MalformedError(f"params.max_time: the grid has {m // s} points, at most "
                                 f"{_MAX_GRID} (raise params.step)")
        return [float(k) for k in range(s, m + 1, s)]

    def _max_ties(self, spec: QuerySpec) -> int:
        """``params.max_ties``: the largest count of one kind (events, or censorings) one
        owner may have at one grid point in one group (default ``max_rows``)."""
        k = spec.params.get("max_ties", spec.max_rows)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= spec.max_rows:
            raise MalformedError("params.max_ties: must be an integer in 1..max_rows")
        return k

    def _alpha(self, spec: QuerySpec) -> float:
        a = spec.params.get("alpha", 0.05)
        if not is_finite_number(a) or not 0.0 < float(a) < 1.0:
            raise MalformedError("params.alpha: must be a number in (0, 1)")
        return float(a)

    def _cols(self, spec: QuerySpec) -> tuple[str, str]:
        return self.time_event(spec)

    @staticmethod
    def time_event(spec: QuerySpec) -> tuple[str, str]:
        """``params.time`` and ``params.event``: two distinct numeric (bounded) columns."""
        out = []
        for key in ("time", "event"):
            c = spec.params.get(key)
            if not isinstance(c, str):
                raise MalformedError(f"params.{key}: must be a column name (string)")
            if c not in spec.bounds:
                raise MalformedError(f"params.{key}: column {c!r} has no bounds (numeric)")
            out.append(c)
        if out[0] == out[1]:
            raise MalformedError("params.event: must differ from params.time")
        return out[0], out[1]

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("time", "event", "times", "max_time", "step", "max_ties", "alpha"),
                       ("time", "event"))
        if len(spec.group_by) > 1:
            raise MalformedError("group_by: kaplan_meier supports at most one group column")
        time, event = self._cols(spec)
        check_columns_listed(spec, [time, event])
        lo, hi = spec.bounds[event]
        if lo > 0 or hi < 1:
            raise MalformedError(f"bounds.{event}: an event column needs bounds containing [0, 1]")
        self._grid(spec)
        self._max_ties(spec)
        self._alpha(spec)

    def layout(self, spec: QuerySpec) -> Layout:
        grid = self._grid(spec)
        ties = (0, self._max_ties(spec))
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels.append(f"{p}n>{fmt(grid[-1])}")
            ranges.append((0, spec.max_rows))
            for t in grid:
                labels += [f"{p}d@{fmt(t)}", f"{p}c@{fmt(t)}"]
            ranges += [ties] * (2 * len(grid))
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1] * len(self.layout(spec))

    # ------------------------------------------------------------------ suppression
    @staticmethod
    def coarsened(spec: QuerySpec) -> bool:
        """Whether the query releases the coarsened grid (an exact query with
        ``min_cell_size >= 2``): its gates are the events entries; else (``min_cell_size =
        1``, or DP) every entry is decrypted: the exact table, or the noisy one."""
        return spec.privacy.mechanism == "none" and spec.min_cell_size >= 2

    def gates(self, spec: QuerySpec) -> list[int]:
        """Every (group, grid point) events entry ``d_gk`` (PET: ``d_gk < min_cell_size``)."""
        if not self.coarsened(spec):
            return []
        m = len(self._grid(spec))
        w = 1 + 2 * m
        return [i * w + 1 + 2 * k for i in range(len(group_cells(spec))) for k in range(m)]

    def release_groups(self, spec: QuerySpec, small: Sequence[bool]
                       ) -> list[tuple[int, tuple[int, ...]]]:
        """Per group, :func:`coarsen` of its bits: a released interval ``[s, e]`` decrypts
        ``sum d_s..d_e`` at ``d_e`` and ``sum c_s..c_e`` at ``c_e``; the last one's censorings
        group also sums every entry of the truncated points and the rows after the grid
        (counted as censored at its end).  A group without a non-small point: nothing."""
        if not self.coarsened(spec):
            return super().release_groups(spec, small)
        m = len(self._grid(spec))
        w = 1 + 2 * m
        out: list[tuple[int, tuple[int, ...]]] = []
        for i in range(len(group_cells(spec))):
            base = i * w
            intervals, cut = coarsen(small[i * m:(i + 1) * m])
            for n, (s, e) in enumerate(intervals):
                d = tuple(base + 1 + 2 * k for k in range(s, e + 1))
                c = [base + 2 + 2 * k for k in range(s, e + 1)]
                if n == len(intervals) - 1:  # the tail: truncated points, rows after the grid
                    c = [base, *c, *(base + 1 + j for j in range(2 * cut, 2 * m))]
                out.append((d[-1], d))
                out.append((base + 2 + 2 * e, tuple(sorted(c))))
        return out

    # ------------------------------------------------------------------ encode
    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        time, event = self._cols(spec)
        grid = np.asarray(self._grid(spec), dtype=np.float64)
        m = grid.size
        sel = select_rows(spec, table, numeric=[time, event], clip_values=False)
        tv, ev = sel.values[time], sel.values[event]
        if np.any((ev != 0.0) & (ev != 1.0)):
            raise MalformedError(f"table.{event}: event values must be 0 or 1")
        k = np.searchsorted(grid, tv, side="left")
        ties = self._max_ties(spec)
        # the released cells (differencing history): per group, the rows after the grid,
        # then per grid point its events and its censorings, in the layout's order
        sel.report.refine_cells(
            np.where(k < m, 1 + 2 * k + (ev == 0.0), 0).astype(np.int64), 2 * m + 1)
        out: list[int] = []
        for cell in range(sel.n_cells):
            mask = sel.cell_mask(cell)
            if int(mask.sum()) > spec.max_rows:
                raise RangeExceededError("a group has more rows than max_rows")
            kk, ee = k[mask], ev[mask]
            inside = kk < m
            d = np.bincount(kk[inside], weights=ee[inside], minlength=m).astype(np.int64)
            c = np.bincount(kk[inside], weights=1.0 - ee[inside], minlength=m).astype(np.int64)
            if m and max(int(d.max()), int(c.max())) > ties:
                # no count in the message: it would tell the site's data
                raise PolicyError("params.max_ties: this site has more tied events or "
                                  "censorings at one grid point than max_ties allows; raise "
                                  "params.max_ties or coarsen the grid")
            out.append(int((~inside).sum()))
            pairs = np.empty(2 * m, dtype=np.int64)
            pairs[0::2], pairs[1::2] = d, c
            out += [int(x) for x in pairs]
        return self._finish(spec, out, sel.report)

    # ------------------------------------------------------------------ decode
    def _released_points(self, spec: QuerySpec, block: Sequence[int], i: int) -> list[int]:
        """The grid indices a coarsened group releases, from its expanded totals (a released
        interval's sums at its last point, 0 at the merged and truncated points and after
        the grid: :meth:`release_groups`): the points with at least ``min_cell_size``
        events.  Raises :class:`MalformedError` for totals no coarsened release gives."""
        d, c = block[1::2], block[2::2]
        points = [k for k, x in enumerate(d) if x >= self.gate_k(spec)]
        keep = set(points)
        if (not points or block[0] != 0
                or any((d[k] or c[k]) for k in range(len(d)) if k not in keep)):
            raise MalformedError(f"totals: group {i} is not a coarsened release (every "
                                 "released interval has at least min_cell_size events)")
        return points

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        time, event = self._cols(spec)
        grid = self._grid(spec)
        alpha = self._alpha(spec)
        coarse = self.coarsened(spec)
        layout = self.layout(spec)
        # coarsened: a group none of whose intervals is released is withheld (None)
        raw = check_released_totals(spec, layout, totals, [] if coarse else range(len(layout)))
        m = len(grid)
        w = 1 + 2 * m
        cells = group_cells(spec)
        blocks: list[list[int] | None] = []
        for i in range(len(cells)):
            b = raw[i * w : (i + 1) * w]
            if all(v is None for v in b):
                blocks.append(None)
                continue
            if any(v is None for v in b):
                raise MalformedError(f"totals: group {i} is partly withheld")
            ints = [int(v) for v in b if v is not None]
            if min(ints) < 0:
                raise MalformedError(f"totals: negative count in group {i}")
            blocks.append(ints)
        # the group size is derived: rows at risk after the grid plus every removal on it
        ns = [0 if blk is None else sum(blk) for blk in blocks]
        points: list[list[int] | None] = [None] * len(cells)
        if coarse:
            mask = [blk is None for blk in blocks]
            for i, blk in enumerate(blocks):
                if blk is not None:
                    points[i] = self._released_points(spec, blk, i)
        else:
            mask = suppress_group_cells(spec, ns)
        groups: list[dict[str, Any]] = []
        d_all: list[list[int]] = []
        r_all: list[list[int]] = []
        for i, cell in enumerate(cells):
            block = blocks[i] or []
            n = ns[i]
            d = block[1::2]
            c = block[2::2]
            label = cell_label(spec, cell)
            entry: dict[str, Any] = {
                "label": label,
                "group": dict(zip(spec.group_by, cell, strict=True)),
                "suppressed": mask[i],
            }
            if mask[i]:
                entry.update({"n": None, "median": None})
                groups.append(entry)
                continue
            km = km_curve(n, d, c, alpha)
            # coarsened: only the released points (the curve on the coarsened grid; the
            # merged and truncated points have no row of their own)
            rows = points[i]
            keep = list(range(m)) if rows is None else rows
            below = [k for k in keep if km["below_half"][k]]
            median = grid[below[0]] if below else None
            entry.update(
                {
                    "n": n,
                    "times": [0.0, *(grid[k] for k in keep)],
                    "at_risk": [n, *(km["at_risk"][k] for k in keep)],
                    "events": [0, *(d[k] for k in keep)],
                    "censored": [0, *(c[k] for k in keep)],
                    "survival": [1.0, *(km["survival"][k] for k in keep)],
                    "ci_lower": [1.0, *(km["ci_lower"][k] for k in keep)],
                    "ci_upper": [1.0, *(km["ci_upper"][k] for k in keep)],
                    "median": median,
                }
            )
            if rows is not None:
                last, shown = rows[-1], set(rows)
                entry["merged"] = [grid[k] for k in range(last) if k not in shown]
                entry["truncated"] = [grid[k] for k in range(last + 1, m)]
            groups.append(entry)
            if n > 0:
                d_all.append(list(d))
                r_all.append(list(km["at_risk"]))
        notes = [
            "times are binned up to the first grid point >= the observed time",
            f"confidence band: exponential Greenwood (log(-log)), level {1 - alpha:g}",
        ]
        if coarse:
            notes.append(
                f"grid coarsened before decryption: a run of grid points with fewer than "
                f"{spec.min_cell_size} (min_cell_size) events is merged into the next point "
                "(its events and censorings counted there: 'merged'); the points after a "
                "group's last released point ('truncated') and the rows after the grid are "
                "one sum counted as censored at that point; logrank is computed on these "
                "coarsened counts")
        lr = None
        if any(mask):
            notes.append("logrank not computed: a group is suppressed")
        elif len(d_all) >= 2:
            lr = logrank(d_all, r_all)
        values: dict[str, Any] = {
            "time": time,
            "event": event,
            "alpha": alpha,
            "group_by": list(spec.group_by),
            "times": [0.0, *grid],
            "groups": groups,
            "logrank": lr,
        }
        return _KMResult(statistic=self.name, values=values, title="Kaplan-Meier", notes=notes)


register(KaplanMeier())
