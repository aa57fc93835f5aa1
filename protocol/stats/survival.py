"""Kaplan-Meier survival curves per group and the logrank test, statistic ``"kaplan_meier"``.

Spec: ``params.time`` and ``params.event`` (numeric columns; ``event`` must be 0/1 -- 1 =
event observed, 0 = censored), a declared time grid -- either ``params.times`` (strictly
increasing positive numbers ``t_1 < ... < t_m``) or ``params.max_time`` (an integer ``M``:
the unit grid ``1, 2, ..., M``) -- and optionally ``params.alpha`` (default 0.05, the
confidence level is ``1 - alpha``).  Groups come from ``group_by`` (at most one column with
declared categories); without ``group_by`` there is one group ``all``.  ``columns`` must list
exactly ``[time, event]``.  Times are **not** clipped (their ``bounds`` are required by the
spec schema but unused): the grid decides.

Encoding, per group ``g`` (in declared category order): ``n_g`` (rows of the group), then for
each grid point ``t_k``: ``d_gk`` (events) and ``c_gk`` (censored), where a row with time
``T`` is counted at the first grid point ``t_k >= T``; rows with ``T > t_m`` are counted only
in ``n_g`` (still at risk at the end of the grid).  Every entry has range ``[0, max_rows]``
and sensitivity 1.  With a grid that contains every distinct observed time (e.g. integer
times and ``max_time >= max T``) the counts are exactly lifelines' event table.

Decoding (see docs/statistics.md), per group: at risk ``r_k = n - sum_{j<k} (d_j + c_j)``;
``S(t_k) = exp(sum_{j<=k} log(1 - d_j / r_j))`` (the product-limit estimate, computed as a
sum of logs like lifelines); Greenwood ``V_k = sum_{j<=k} d_j / (r_j (r_j - d_j))`` (terms
with ``r_j = d_j`` count 0); the exponential ("log(-log)") band with ``z = Phi^-1(1 -
alpha/2)``: ``exp(-exp(log(-log S) -+ z sqrt(V) / log S))`` (1.0 where undefined, as
lifelines); median = first ``t_k`` with ``S <= 1/2`` (None = not reached, lifelines' inf).
Logrank over the non-empty groups: ``O_g - E_g = sum_k d_gk - d_k r_gk / r_k``, hypergeometric
covariance ``V_gh = sum_k d_k (r_k - d_k) / (r_k - 1) * r_gk (delta_gh r_k - r_hk) / r_k^2``,
``chi^2 = Z' pinv(V') Z`` over the first ``G - 1`` groups, ``df = G - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

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
    fmt,
    group_cells,
    register,
    require_params,
    select_rows,
    suppress_group_cells,
)
from statledger.protocol.stats.ols import check_columns_listed

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["KaplanMeier", "km_curve", "logrank"]


def _sps() -> Any:
    """scipy.stats, imported on first use (it costs ~0.9 s; services start faster)."""
    from scipy import stats

    return stats

_MAX_GRID = 4096

FloatArray = npt.NDArray[np.float64]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def km_curve(
    n: int, d: Sequence[int], c: Sequence[int], alpha: float = 0.05
) -> dict[str, FloatArray]:
    """Product-limit estimate and exponential Greenwood band from one group's counts.

    Returns arrays over the grid (without the leading time 0): ``at_risk``, ``survival``,
    ``variance`` (Greenwood sum), ``ci_lower``, ``ci_upper``.  Raises
    :class:`MalformedError` when the counts are inconsistent (more removals than rows).
    """
    dd = np.asarray(d, dtype=np.float64)
    cc = np.asarray(c, dtype=np.float64)
    if n < 0 or np.any(dd < 0) or np.any(cc < 0):
        raise MalformedError("totals: negative count")
    removed = np.cumsum(dd + cc)
    if removed.size and removed[-1] > n:
        raise MalformedError(f"totals: {int(removed[-1])} removals exceed the group size {n}")
    r = float(n) - np.concatenate([[0.0], removed[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(dd > 0, np.log(r - dd) - np.log(r), 0.0)
        surv = np.exp(np.cumsum(term))
        var_t = dd / (r * (r - dd))
        var_t = np.where(np.isfinite(var_t), var_t, 0.0)
        var = np.cumsum(var_t)
        z = float(_sps().norm.ppf(1.0 - alpha / 2.0))
        v = np.log(surv)
        lower = np.exp(-np.exp(np.log(-v) - z * np.sqrt(var) / v))
        upper = np.exp(-np.exp(np.log(-v) + z * np.sqrt(var) / v))
    lower = np.where(np.isnan(lower), 1.0, lower)
    upper = np.where(np.isnan(upper), 1.0, upper)
    return {
        "at_risk": r,
        "survival": surv,
        "variance": var,
        "ci_lower": lower,
        "ci_upper": upper,
    }


def logrank(
    d: Sequence[Sequence[int]], r: Sequence[Sequence[float]]
) -> dict[str, Any]:
    """Logrank test of ``G >= 2`` groups from events ``d[g][k]`` and at-risk ``r[g][k]``."""
    dg = np.asarray(d, dtype=np.float64)
    rg = np.asarray(r, dtype=np.float64)
    g = dg.shape[0]
    dt = dg.sum(axis=0)
    rt = rg.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.where(rt > 0, dt / rt, 0.0)
        fac = (rt - dt) / (rt - 1.0)
        fac = np.where(np.isfinite(fac), fac, 1.0) * np.where(rt > 0, dt / (rt * rt), 0.0)
    observed = dg.sum(axis=1)
    expected = (rg * e).sum(axis=1)
    zv = observed - expected
    v = np.empty((g, g), dtype=np.float64)
    for i in range(g):
        for j in range(g):
            v[i, j] = float(np.sum(fac * rg[i] * ((rt if i == j else 0.0) - rg[j])))
    stat = float(zv[:-1] @ np.linalg.pinv(v[:-1, :-1]) @ zv[:-1])
    df = g - 1
    return {
        "test_statistic": stat,
        "p_value": float(_sps().chi2.sf(stat, df)),
        "df": df,
        "observed": observed.tolist(),
        "expected": expected.tolist(),
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
                out.append("    (suppressed: fewer than min_cell_size rows, or complementary)")
                continue
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
            m = spec.params["max_time"]
            if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= _MAX_GRID:
                raise MalformedError(f"params.max_time: must be an integer in 1..{_MAX_GRID}")
            return [float(k) for k in range(1, m + 1)]
        ts = spec.params["times"]
        if not isinstance(ts, list) or not 1 <= len(ts) <= _MAX_GRID:
            raise MalformedError(f"params.times: must be a list of 1..{_MAX_GRID} numbers")
        for i, t in enumerate(ts):
            if not _is_num(t):
                raise MalformedError(f"params.times[{i}]: must be a finite number")
            if i == 0 and t <= 0:
                raise MalformedError("params.times[0]: must be > 0")
            if i > 0 and not t > ts[i - 1]:
                raise MalformedError(f"params.times[{i}]: must be > params.times[{i - 1}]")
        return [float(t) for t in ts]

    def _alpha(self, spec: QuerySpec) -> float:
        a = spec.params.get("alpha", 0.05)
        if not _is_num(a) or not 0.0 < float(a) < 1.0:
            raise MalformedError("params.alpha: must be a number in (0, 1)")
        return float(a)

    def _cols(self, spec: QuerySpec) -> tuple[str, str]:
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
        require_params(spec, ("time", "event", "times", "max_time", "alpha"), ("time", "event"))
        if len(spec.group_by) > 1:
            raise MalformedError("group_by: kaplan_meier supports at most one group column")
        time, event = self._cols(spec)
        check_columns_listed(spec, [time, event])
        lo, hi = spec.bounds[event]
        if lo > 0 or hi < 1:
            raise MalformedError(f"bounds.{event}: an event column needs bounds containing [0, 1]")
        self._grid(spec)
        self._alpha(spec)

    def layout(self, spec: QuerySpec) -> Layout:
        grid = self._grid(spec)
        labels: list[str] = []
        for cell in group_cells(spec):
            p = cell_prefix(spec, cell)
            labels.append(f"{p}n")
            for t in grid:
                labels += [f"{p}d@{fmt(t)}", f"{p}c@{fmt(t)}"]
        return Layout(labels, [(0, spec.max_rows)] * len(labels))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1] * len(self.layout(spec))

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
        out: list[int] = []
        for cell in range(sel.n_cells):
            mask = sel.cell_mask(cell)
            kk, ee = k[mask], ev[mask]
            inside = kk < m
            d = np.bincount(kk[inside], weights=ee[inside], minlength=m)
            c = np.bincount(kk[inside], weights=1.0 - ee[inside], minlength=m)
            out.append(int(mask.sum()))
            for j in range(m):
                out += [int(d[j]), int(c[j])]
        return self._finish(spec, out, sel.report)

    # ------------------------------------------------------------------ decode
    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        time, event = self._cols(spec)
        grid = self._grid(spec)
        alpha = self._alpha(spec)
        t = check_totals(spec, self.layout(spec), totals)
        m = len(grid)
        w = 1 + 2 * m
        cells = group_cells(spec)
        ns = [t[i * w] for i in range(len(cells))]
        for i in range(len(cells)):
            block = t[i * w : (i + 1) * w]
            if min(block) < 0:
                raise MalformedError(f"totals: negative count in group {i}")
            if sum(block[1:]) > block[0]:
                raise MalformedError(
                    f"totals: {sum(block[1:])} removals exceed the size {block[0]} of group {i}"
                )
        mask = suppress_group_cells(spec, ns)
        groups: list[dict[str, Any]] = []
        d_all: list[list[int]] = []
        r_all: list[list[float]] = []
        for i, cell in enumerate(cells):
            block = t[i * w : (i + 1) * w]
            n = block[0]
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
            surv = km["survival"]
            below = np.nonzero(surv <= 0.5)[0]
            median = grid[int(below[0])] if below.size else None
            entry.update(
                {
                    "n": n,
                    "times": [0.0, *grid],
                    "at_risk": [n, *[int(x) for x in km["at_risk"]]],
                    "events": [0, *d],
                    "censored": [0, *c],
                    "survival": [1.0, *surv.tolist()],
                    "ci_lower": [1.0, *km["ci_lower"].tolist()],
                    "ci_upper": [1.0, *km["ci_upper"].tolist()],
                    "median": median,
                }
            )
            groups.append(entry)
            if n > 0:
                d_all.append(list(d))
                r_all.append(km["at_risk"].tolist())
        notes = [
            "times are binned up to the first grid point >= the observed time",
            f"confidence band: exponential Greenwood (log(-log)), level {1 - alpha:g}",
        ]
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
