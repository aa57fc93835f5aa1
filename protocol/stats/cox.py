"""Cox proportional hazards regression by federated Newton rounds, statistic ``"cox_regression"``.

Spec: ``params.time`` and ``params.event`` (numeric columns; ``event`` 0/1, 1 = event
observed), ``params.covariates`` (numeric columns with bounds; no intercept: the baseline
hazard absorbs it), the public time grid exactly as ``kaplan_meier`` declares it
(``params.times``, strictly increasing positive numbers, or ``params.max_time`` ``M``: the
grid ``1..M``), ``params.ties`` (``"breslow"``, the default, or ``"efron"``), and the chain
parameters of an iterative fit: ``params.beta`` (one float per covariate, default zeros),
``params.round`` (default 0), ``params.previous`` (from round 1 on, the previous round's
query id: :mod:`statledger.protocol.chain`), ``params.tol`` (default 1e-7) and
``params.max_rounds`` (default 25).  Strata: ``group_by`` (columns with declared
categories): each cell is a stratum with its own baseline hazard and risk sets; the
coefficients are shared.  ``columns`` must list exactly time, event and the covariates.  No
differential privacy (refused).

**Times on the grid.** As for Kaplan-Meier, a row with time ``T`` belongs to the first grid
point ``t_k >= T`` (bin ``k``); it is at risk at ``t_1 .. t_k`` and, if its event is 1, has its
event at ``t_k``.  A row with ``T > t_m`` is at risk at every grid point and counted as
censored (it is put in bin ``m`` with its event dropped).  Times are not clipped; covariates
are clipped to their bounds.  With a grid holding every distinct time (integer times and
``max_time >= max T``) the fit is the ordinary Cox fit; a coarser grid fits grouped times.

**Encoding** (per owner).  Covariates are centred on public constants: ``c_i`` the midpoint
of the fixed-point bounds, ``d_i = q_i - c_i`` (integers, ``q_i = to_fixed(x_i)``), ``a_i =
d_i / s`` with ``s = spec.scale``.  Centring changes no coefficient (the partial likelihood
is invariant to it) and keeps ``e^{a.beta}`` within ``e^{Z}``, ``Z = sum |beta_i| max|a_i|``.
Per row, with ``S = s^2``: ``U = rint(S e^{a.beta})`` computed **deterministically** -- the
exact rational ``a.beta`` (the spec's floats taken exactly) rounded once to 60 digits, its
exponential correctly rounded in the decimal context of
:mod:`~statledger.protocol.stats.exact`, times ``S``, rounded half-even -- so every owner and
every test gets the same integers; then ``U_i = round(U d_i / s)`` and ``U_ij = round(U d_i
d_j / s^2)`` in integer arithmetic.  The vector, in order:

* ``n`` (rows), ``d`` (events on the grid); per stratum and grid point ``n@t`` (rows in the
  bin), ``d@t`` (its events) and, with Efron ties, ``c@t`` (its censored rows);
* ``xev(i) = sum d_i`` over the event rows on the grid;
* per stratum and grid point, over the rows *in the bin*: ``e0 = sum U``, ``e1(i) = sum
  U_i``, ``e2(i*j) = sum U_ij`` (``i <= j``); with Efron ties also ``f0, f1(i), f2(i*j)``, the
  same sums over the bin's event rows.

Every per-row value has a public range from the bounds and ``beta`` (``0 <= U <= rint(S
e^Z) + 1``), the totals ranges are ``max_rows`` times those.

**Suppression before decryption** (:mod:`statledger.protocol.suppression`; gates: ``d`` and
every ``n@t`` -- with Efron ties every ``d@t`` and ``c@t``).  The PET reveals one bit per gate,
"below ``min_cell_size``" (an empty bin counts as small); when no gate is small everything is
decrypted, otherwise nothing.  Why these gates: the risk-set sums at two grid points differ by
the sums of whole bins, Efron's event-set sums split a bin into its events and its censored
rows, and ``xev`` sums all events -- so no difference of released sums covers fewer than
``min_cell_size`` rows.  A fine grid over sparse times is therefore suppressed: declare a
coarser grid (Efron also needs every bin to hold ``min_cell_size`` censored rows, so on data
censored only at the end use Breslow ties).

**Decoding** (deterministic: decimal arithmetic under the fixed context, no numpy, scipy or
libm).  Risk-set sums are the exact integer reverse cumulative sums ``R_k, S0_k, S1_k, S2_k``
of the bins.  At a grid point with ``d > 0`` events, for ``l = 0 .. d-1`` (Efron: ``w = l /
d``; Breslow: ``w = 0``) with ``phi = S0 - w F0``, ``phi_i = S1_i - w F1_i``, ``phi_ij = S2_ij -
w F2_ij`` (computed as exact integers after multiplying by ``d``): log-likelihood ``-=
ln(phi / S)``, gradient ``-= phi_i / phi``, information ``+= phi_ij / phi - phi_i phi_j /
phi^2``; then gradient ``+= xev / s`` and log-likelihood ``+= beta . xev / s``.  Newton step
``delta = I^-1 g`` (LDL^T elimination; "singular" when a pivot is not above ``1e-14`` of its
diagonal), ``beta_next = beta + delta``; standard errors ``sqrt(diag I^-1)`` at the round's
``beta``, Wald z, normal p values, 95 % CI, hazard ratios ``e^coef``; the null
log-likelihood from the counts alone (``phi = R - w d``) and the likelihood-ratio test
``2 (ll(beta) - ll(0))`` on ``k`` degrees of freedom; ``converged = max|delta| < tol``.  Use
:func:`cox_start` and :func:`cox_next_spec` to loop the rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

import numpy as np

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import clip, to_fixed
from statledger.protocol.query import QuerySpec
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
    fmt,
    group_cells,
    register,
    require_params,
    round_beta,
    round_index,
    round_limit,
    round_tol,
    select_rows,
)
from statledger.protocol.stats.exact import (
    chi2_sf,
    ci_bounds,
    dec,
    dec_to_float,
    decimal_context,
    norm_isf,
    norm_sf2,
)
from statledger.protocol.stats.ols import (
    _RegressionResult,
    check_column_list,
    check_columns_listed,
    coef_table,
    two_col,
)
from statledger.protocol.stats.survival import KaplanMeier

__all__ = ["CoxRegression", "cox_start", "cox_next_spec"]

DEFAULT_TOL = 1e-7
DEFAULT_MAX_ROUNDS = 25
_MAX_ROUNDS_CAP = 100
_MAX_ABS_BETA = 1e3
_TIES = ("breslow", "efron")
#: a pivot of the information matrix at or below this fraction of its diagonal: singular
_PIVOT_FLOOR = Decimal("1e-14")

_GRID = KaplanMeier()  # one rule for the declared time grid (params.times / max_time)


def _rdiv(a: int, b: int) -> int:
    """``a / b`` rounded to the nearest integer, halves up (``b > 0``); exact."""
    return (2 * a + b) // (2 * b)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class CoxRegression(Statistic):
    """Cox proportional hazards, Breslow or Efron ties, one Newton step per round."""

    name = "cox_regression"
    description = "Cox proportional hazards regression (Breslow/Efron ties), Newton rounds"

    # ------------------------------------------------------------------ params
    def _cols(self, spec: QuerySpec) -> tuple[str, str, list[str]]:
        time, event = KaplanMeier.time_event(spec)  # the same rule as Kaplan-Meier's
        covs = check_column_list(spec, "covariates")
        for c in covs:
            if c in (time, event):
                raise MalformedError(f"params.covariates: {c!r} is the time or event column")
        return time, event, covs

    def _ties(self, spec: QuerySpec) -> str:
        t = spec.params.get("ties", "breslow")
        if t not in _TIES:
            raise MalformedError("params.ties: must be \"breslow\" or \"efron\"")
        return str(t)

    def _beta(self, spec: QuerySpec, k: int) -> list[float]:
        return round_beta(spec, k, _MAX_ABS_BETA, "one per covariate")

    def _round(self, spec: QuerySpec) -> int:
        return round_index(spec, _MAX_ROUNDS_CAP)

    def _tol(self, spec: QuerySpec) -> float:
        return round_tol(spec, DEFAULT_TOL)

    def _max_rounds(self, spec: QuerySpec) -> int:
        return round_limit(spec, DEFAULT_MAX_ROUNDS, _MAX_ROUNDS_CAP)

    def validate(self, spec: QuerySpec) -> None:
        require_params(
            spec,
            ("time", "event", "covariates", "times", "max_time", "ties", "beta", "round",
             "previous", "tol", "max_rounds"),
            ("time", "event", "covariates"),
        )
        time, event, covs = self._cols(spec)
        check_columns_listed(spec, [time, event, *covs])
        lo, hi = spec.bounds[event]
        if lo > 0 or hi < 1:
            raise MalformedError(f"bounds.{event}: an event column needs bounds containing [0, 1]")
        if spec.privacy.mechanism != "none":
            raise MalformedError("privacy: cox_regression has no differential-privacy "
                                 "calibration; ask it without privacy")
        _GRID._grid(spec)
        self._ties(spec)
        self._beta(spec, len(covs))
        self._round(spec)
        prev = spec.params.get("previous")
        if prev is not None and not (isinstance(prev, str) and len(prev) == 64
                                     and all(c in "0123456789abcdef" for c in prev)):
            raise MalformedError("params.previous: expected the previous round's query id "
                                 "(64 lowercase hex digits; protocol/chain.py)")
        self._tol(spec)
        self._max_rounds(spec)

    # ------------------------------------------------------------------ layout
    def _centres(self, spec: QuerySpec, covs: Sequence[str]) -> tuple[list[int], list[int]]:
        """Per covariate the fixed-point centre ``c_i`` and ``max |d_i|``."""
        cs, md = [], []
        for c in covs:
            lo, hi = spec.bounds[c]
            qlo, qhi = to_fixed(float(lo), spec.scale), to_fixed(float(hi), spec.scale)
            mid = (qlo + qhi) // 2
            cs.append(mid)
            md.append(max(qhi - mid, mid - qlo))
        return cs, md

    def _u_max(self, spec: QuerySpec, beta: Sequence[float], md: Sequence[int]) -> int:
        s = spec.scale
        zmax = sum((abs(Fraction(b)) * Fraction(m, s) for b, m in zip(beta, md, strict=True)),
                   Fraction(0))
        with localcontext(decimal_context()) as ctx:
            u = (dec(zmax).exp() * (s * s)).to_integral_value(ROUND_HALF_EVEN, ctx)
        return int(u) + 1

    def _sum_ranges(self, spec: QuerySpec) -> tuple[list[str], list[tuple[int, int]]]:
        """Suffix labels and per-row ranges of one bin's risk sums (e0, e1(i), e2(i*j))."""
        _, _, covs = self._cols(spec)
        s = spec.scale
        _, md = self._centres(spec, covs)
        um = self._u_max(spec, self._beta(spec, len(covs)), md)
        labels = ["0"]
        ranges = [(0, um)]
        for i, c in enumerate(covs):
            b = _cdiv(um * md[i], s) + 1
            labels.append(f"1({c})")
            ranges.append((-b, b))
        for i, ci in enumerate(covs):
            for j in range(i, len(covs)):
                b = _cdiv(um * md[i] * md[j], s * s) + 1
                labels.append(f"2({ci}*{covs[j]})")
                ranges.append((0, b) if i == j else (-b, b))
        return labels, ranges

    def _row_ranges(self, spec: QuerySpec) -> tuple[list[str], list[tuple[int, int]]]:
        """Labels and *per-row* ranges of the whole vector (before ``max_rows``)."""
        _, _, covs = self._cols(spec)
        grid = _GRID._grid(spec)
        efron = self._ties(spec) == "efron"
        cells = group_cells(spec)
        labels: list[str] = ["n", "d"]
        ranges: list[tuple[int, int]] = [(0, 1), (0, 1)]
        for cell in cells:
            p = cell_prefix(spec, cell)
            for t in grid:
                labels += [f"{p}{x}@{fmt(t)}" for x in self._count_keys(spec)]
                ranges += [(0, 1)] * len(self._count_keys(spec))
        _, md = self._centres(spec, covs)
        for c, m in zip(covs, md, strict=True):
            labels.append(f"xev({c})")
            ranges.append((-m, m))
        suffixes, sr = self._sum_ranges(spec)
        for cell in cells:
            p = cell_prefix(spec, cell)
            for t in grid:
                labels += [f"{p}e{x}@{fmt(t)}" for x in suffixes]
                ranges += sr
                if efron:
                    labels += [f"{p}f{x}@{fmt(t)}" for x in suffixes]
                    ranges += sr
        return labels, ranges

    def layout(self, spec: QuerySpec) -> Layout:
        labels, ranges = self._row_ranges(spec)
        m = spec.max_rows
        return Layout(labels, [count_range(spec)]
                      + [(min(0, m * lo), max(0, m * hi)) for lo, hi in ranges[1:]])

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        _, ranges = self._row_ranges(spec)
        return [max(abs(lo), abs(hi)) for lo, hi in ranges]

    # ------------------------------------------------------------------ suppression
    def _count_keys(self, spec: QuerySpec) -> tuple[str, ...]:
        """The per-bin counts: rows and events, and with Efron ties the censored rows."""
        return ("n", "d", "c") if self._ties(spec) == "efron" else ("n", "d")

    def _n_counts(self, spec: QuerySpec) -> int:
        return 2 + len(self._count_keys(spec)) * len(group_cells(spec)) * len(_GRID._grid(spec))

    def gates(self, spec: QuerySpec) -> list[int]:
        """``d`` (events on the grid) and per bin ``n@t`` (Breslow) or ``d@t`` and ``c@t``
        (Efron): the groups whose sums a difference of released sums can isolate."""
        keys = self._count_keys(spec)
        out = [1]
        for j in range(self._n_counts(spec) - 2):
            if keys[j % len(keys)] in (("d", "c") if len(keys) == 3 else ("n",)):
                out.append(2 + j)
        return out

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        """Everything when no gate count is small, nothing otherwise."""
        return [not any(small)] * len(self.layout(spec))

    # ------------------------------------------------------------------ encode
    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        time, event, covs = self._cols(spec)
        grid = np.asarray(_GRID._grid(spec), dtype=np.float64)
        m = int(grid.size)
        k = len(covs)
        s = spec.scale
        efron = self._ties(spec) == "efron"
        sel = select_rows(spec, table, numeric=[time, event, *covs], clip_values=False)
        tv, ev = sel.values[time], sel.values[event]
        if np.any((ev != 0.0) & (ev != 1.0)):
            raise MalformedError(f"table.{event}: event values must be 0 or 1")
        cs, md = self._centres(spec, covs)
        dcols: list[list[int]] = []
        for c, ctr in zip(covs, cs, strict=True):
            lo, hi = spec.bounds[c]
            vals, n_clip = clip(sel.values[c], lo, hi)
            sel.report.clipped[c] = n_clip
            dcols.append([int(q) - ctr for q in to_fixed(vals, s).tolist()])
        bins = np.searchsorted(grid, tv, side="left")
        beyond = bins >= m
        bins = np.where(beyond, m - 1, bins)
        evs = np.where(beyond, 0.0, ev)
        beta = [Fraction(b) for b in self._beta(spec, k)]
        um = self._u_max(spec, self._beta(spec, k), md)
        ss = s * s
        n_cells = sel.n_cells
        cnt = [[0] * (2 * m) for _ in range(n_cells)]
        xev = [0] * k
        width = 1 + k + k * (k + 1) // 2
        sums = [[[0] * width for _ in range(m)] for _ in range(n_cells)]
        fsum = [[[0] * width for _ in range(m)] for _ in range(n_cells)]
        pairs = [(i, j) for i in range(k) for j in range(i, k)]
        with localcontext(decimal_context()) as ctx:
            for r in range(sel.n):
                cell, b, is_ev = int(sel.cell[r]), int(bins[r]), bool(evs[r] == 1.0)
                d = [col[r] for col in dcols]
                z = sum((bi * di for bi, di in zip(beta, d, strict=True)), Fraction(0)) / s
                u = int((dec(z).exp() * ss).to_integral_value(ROUND_HALF_EVEN, ctx))
                u = min(u, um)  # a no-op: exp is monotone and z <= Z (defence in depth)
                vec = [u] + [_rdiv(u * di, s) for di in d] + [
                    _rdiv(u * d[i] * d[j], ss) for i, j in pairs]
                cnt[cell][2 * b] += 1
                acc = sums[cell][b]
                for x, v in enumerate(vec):
                    acc[x] += v
                if is_ev:
                    cnt[cell][2 * b + 1] += 1
                    for i in range(k):
                        xev[i] += d[i]
                    if efron:
                        facc = fsum[cell][b]
                        for x, v in enumerate(vec):
                            facc[x] += v
        out = [sel.n, sum(sum(c[1::2]) for c in cnt)]
        for cell in range(n_cells):
            for b in range(m):
                nb, db = cnt[cell][2 * b], cnt[cell][2 * b + 1]
                out += [nb, db, nb - db] if efron else [nb, db]
        out += xev
        for cell in range(n_cells):
            for b in range(m):
                out += sums[cell][b]
                if efron:
                    out += fsum[cell][b]
        return self._finish(spec, out, sel.report)

    # ------------------------------------------------------------------ decode
    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        time, event, covs = self._cols(spec)
        k = len(covs)
        grid = _GRID._grid(spec)
        m = len(grid)
        ties = self._ties(spec)
        efron = ties == "efron"
        beta = self._beta(spec, k)
        tol = self._tol(spec)
        rnd = self._round(spec)
        s = spec.scale
        cells = group_cells(spec)
        g = self._n_counts(spec)
        nc = len(self._count_keys(spec))
        t = check_released_totals(spec, self.layout(spec), totals, [])
        none: list[Any] = [None] * k
        values: dict[str, Any] = {
            "time": time, "event": event, "covariates": covs, "terms": covs, "ties": ties,
            "strata": [cell_label(spec, c) for c in cells] if spec.group_by else [],
            "round": rnd, "beta": list(beta), "n": None, "events": None,
            "log_likelihood": None, "log_likelihood_null": None,
            "lr_test": None, "coef": none, "hazard_ratio": none, "std_err": none,
            "z": none, "p_value": none, "ci_lower": none, "ci_upper": none,
            "beta_next": None, "max_abs_step": None, "converged": False,
        }
        notes = [f"Cox PH, {ties} ties, Newton round {rnd}; tol {tol:g}; log-likelihood and "
                 "standard errors at the round's input beta",
                 "times are binned up to the first grid point >= the observed time"]
        if all(v is None for v in t):
            notes.append(f"suppressed before decryption: the events, or the rows (Efron: the "
                         f"events or the censored rows) of a grid interval, are fewer than "
                         f"min_cell_size {spec.min_cell_size} (an empty interval counts as "
                         "small); declare a coarser grid")
            return _CoxResult(self.name, values, _cox_summary(values), notes)
        if any(v is None for v in t):
            raise MalformedError("totals: some entries of the fit are withheld, others not")
        full = [int(v) for v in t if v is not None]
        n, events = full[0], full[1]
        nk = [full[2 + nc * m * c: 2 + nc * m * (c + 1): nc] for c in range(len(cells))]
        dk = [full[3 + nc * m * c: 2 + nc * m * (c + 1): nc] for c in range(len(cells))]
        for c in range(len(cells)):
            ck = (full[4 + nc * m * c: 2 + nc * m * (c + 1): nc] if efron
                  else [x - d for x, d in zip(nk[c], dk[c], strict=True)])
            if any(not 0 <= d <= x or cc != x - d
                   for d, x, cc in zip(dk[c], nk[c], ck, strict=True)):
                raise MalformedError(f"totals: inconsistent counts in stratum {c}")
        if sum(sum(x) for x in nk) != n or sum(sum(x) for x in dk) != events:
            raise MalformedError("totals: the bins' rows or events do not add up to n or d")
        values["n"], values["events"] = n, events
        if events == 0:
            notes.append("no events on the grid: the partial likelihood is flat")
            return _CoxResult(self.name, values, _cox_summary(values), notes)
        xev = full[g: g + k]
        width = 1 + k + k * (k + 1) // 2
        per_bin = width * (2 if efron else 1)
        pairs = [(i, j) for i in range(k) for j in range(i, k)]
        pos = g + k
        with localcontext(decimal_context()):
            ln_s = dec(s * s).ln()
            ll = sum((dec(Fraction(b) * x) for b, x in zip(beta, xev, strict=True)),
                     Decimal(0)) / s
            ll0 = Decimal(0)
            grad = [Decimal(x) / s for x in xev]
            info = [[Decimal(0)] * k for _ in range(k)]
            for c in range(len(cells)):
                block = full[pos + c * m * per_bin: pos + (c + 1) * m * per_bin]
                risk = [0] * width
                at_risk = 0
                for b in range(m - 1, -1, -1):
                    row = block[b * per_bin: (b + 1) * per_bin]
                    risk = [x + y for x, y in zip(risk, row[:width], strict=True)]
                    at_risk += nk[c][b]
                    d = dk[c][b]
                    if d == 0:
                        continue
                    fev = row[width:] if efron else [0] * width
                    for lv in range(d if efron else 1):
                        mult = 1 if efron else d  # Breslow: d identical terms
                        a = [d * x - lv * y for x, y in zip(risk, fev, strict=True)]
                        r0 = d * at_risk - lv * d
                        if a[0] <= 0 or r0 <= 0:
                            raise MalformedError(f"totals: an empty risk set with events "
                                                 f"in stratum {c}")
                        a0 = Decimal(a[0])
                        ll -= mult * (a0.ln() - dec(d).ln() - ln_s)
                        ll0 -= mult * (Decimal(r0).ln() - dec(d).ln())
                        r1 = [Decimal(a[1 + i]) / a0 for i in range(k)]
                        for i in range(k):
                            grad[i] -= mult * r1[i]
                        for x, (i, j) in enumerate(pairs):
                            v = mult * (Decimal(a[1 + k + x]) / a0 - r1[i] * r1[j])
                            info[i][j] += v
                            if i != j:
                                info[j][i] += v
            solved = _spd_solve(info, grad)
            values["log_likelihood"] = dec_to_float(ll)
            values["log_likelihood_null"] = dec_to_float(ll0)
            lr = max(Decimal(0), 2 * (ll - ll0))
            values["lr_test"] = {"statistic": dec_to_float(lr), "df": k,
                                 "p_value": chi2_sf(Fraction(lr), k)}
            if solved is None:
                notes.append("singular information matrix (a covariate is constant or "
                             "collinear within the risk sets, or monotone likelihood)")
                return _CoxResult(self.name, values, _cox_summary(values), notes)
            delta, inv = solved
            nxt = [Decimal(b) + dlt for b, dlt in zip(beta, delta, strict=True)]
            step = max(abs(x) for x in delta)
            hr = [dec_to_float(x.exp()) for x in nxt]
        q = norm_isf(Fraction(1, 40))  # z_{0.975}
        cf = [Fraction(x) for x in nxt]
        var = [Fraction(inv[i][i]) for i in range(k)]
        cis = [ci_bounds(c, v, q) for c, v in zip(cf, var, strict=True)]
        coef = [dec_to_float(x) for x in nxt]
        with localcontext(decimal_context()):
            se_d = [inv[i][i].sqrt() for i in range(k)]
            zs = [dec_to_float(x / e) for x, e in zip(nxt, se_d, strict=True)]
            se = [dec_to_float(e) for e in se_d]
        values.update({
            "coef": coef,
            "hazard_ratio": hr,
            "std_err": se,
            "z": zs,
            "p_value": [norm_sf2(c * c / v) for c, v in zip(cf, var, strict=True)],
            "ci_lower": [lo for lo, _ in cis],
            "ci_upper": [hi for _, hi in cis],
            "beta_next": list(coef),
            "max_abs_step": dec_to_float(step),
            "converged": step < Decimal(tol),
        })
        return _CoxResult(self.name, values, _cox_summary(values), notes)


def _spd_solve(a: list[list[Decimal]], g: list[Decimal]
               ) -> tuple[list[Decimal], list[list[Decimal]]] | None:
    """``(A^-1 g, A^-1)`` for a symmetric positive definite ``A`` by Gauss-Jordan elimination
    without pivoting (in the caller's decimal context); None when a pivot is not above
    ``_PIVOT_FLOOR`` times its original diagonal entry (singular or not positive definite)."""
    k = len(a)
    aug = [list(a[i]) + [Decimal(int(i == j)) for j in range(k)] + [g[i]] for i in range(k)]
    for p in range(k):
        piv = aug[p][p]
        if not piv > _PIVOT_FLOOR * abs(a[p][p]) or not piv > 0:
            return None
        row = [x / piv for x in aug[p]]
        aug[p] = row
        for i in range(k):
            if i != p and aug[i][p] != 0:
                f = aug[i][p]
                aug[i] = [x - f * y for x, y in zip(aug[i], row, strict=True)]
    inv = [aug[i][k: 2 * k] for i in range(k)]
    for i in range(k):  # positive variances (a positive definite A has them)
        if not inv[i][i] > 0:
            return None
    return [aug[i][2 * k] for i in range(k)], inv


class _CoxResult(_RegressionResult):
    """Regression result of a Cox round."""


def _cox_summary(v: dict[str, Any]) -> list[str]:
    lr = v["lr_test"] or {}
    lines = ["Cox Proportional Hazards (federated Newton)"]
    lines += two_col([
        ("duration col", v["time"]), ("event col", v["event"]), ("ties", v["ties"]),
        ("No. Observations", v["n"]), ("No. events", v["events"]),
        ("partial log-lik", v["log_likelihood"]), ("Round", v["round"]),
        ("converged", v["converged"]), ("max |step|", v["max_abs_step"]),
        ("LR test", lr.get("statistic")), ("LR p value", lr.get("p_value")),
    ])
    if v["strata"]:
        lines.append(f"strata: {', '.join(v['strata'])}")
    lines.append("")
    nan = float("nan")

    def col(key: str) -> list[float]:
        return [nan if x is None else float(x) for x in v[key]]

    lines += coef_table(v["terms"], col("coef"), col("std_err"), col("z"), col("p_value"),
                        col("ci_lower"), col("ci_upper"), "z")
    return lines


def cox_start(spec: QuerySpec) -> QuerySpec:
    """The first round: ``params.beta`` = zeros, ``params.round`` = 0, no ``previous``."""
    if spec.statistic != _COX.name:
        raise MalformedError(f"statistic: cox_start needs {_COX.name!r}")
    _, _, covs = _COX._cols(spec)
    obj = spec.to_json_obj()
    params = {k: v for k, v in obj["params"].items() if k != "previous"}
    obj["params"] = {**params, "beta": [0.0] * len(covs), "round": 0}
    return QuerySpec.parse(obj)


def cox_next_spec(spec: QuerySpec, result: StatResult, previous: str | None = None
                  ) -> QuerySpec | None:
    """The next round's spec (beta = the published ``beta_next``, round + 1, ``previous`` =
    the query id of the round that published ``result``), or None when ``result`` converged,
    failed, was suppressed or the rounds ran out."""
    if spec.statistic != _COX.name or result.statistic != _COX.name:
        raise MalformedError(f"statistic: cox_next_spec needs {_COX.name!r}")
    v = result.values
    if v.get("converged") or v.get("beta_next") is None:
        return None
    rnd = _COX._round(spec) + 1
    if rnd >= _COX._max_rounds(spec):
        return None
    obj = spec.to_json_obj()
    obj["params"] = {**obj["params"], "beta": [float(b) for b in v["beta_next"]], "round": rnd}
    if previous is not None:
        obj["params"]["previous"] = previous
    return QuerySpec.parse(obj)


_COX = CoxRegression()
register(_COX)
