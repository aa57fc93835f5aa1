"""Linear regression (ordinary least squares), statistic ``"linear_regression"``.

Spec: ``params.target`` (numeric column ``y``), ``params.features`` (list of numeric columns
``x_1..x_p``), every one with public ``bounds``; ``columns`` must list exactly these columns
(target + features, any order) so policies see what is read.  An **intercept is always
included** (statsmodels ``add_constant`` first).  No ``group_by``.  Full math:
``docs/statistics.md``.

Encoding (one provider, its selected rows).  For each used column ``v`` (features, then the
target) let ``q_v = to_fixed(clip(v))`` and ``c_v = floor((to_fixed(lo_v) + to_fixed(hi_v)) /
2)`` the public integer midpoint of its encoded bounds; the provider encodes the *shifted*
values ``u_v = q_v - c_v``, which keeps every entry (and its range proof) ~2 bits smaller
and centred on 0.  Entries, all exact Python ints:

* ``n`` -- number of rows, range ``[0, max_rows]``;
* ``sum(v)`` = ``sum u_v`` for each column ``v`` (scale^1);
* ``sum(v*w)`` = ``sum u_v u_w`` for ``v <= w`` in column order (upper triangle incl. the
  diagonal, so it contains ``X^T X``, ``X^T y`` and ``y^T y``; scale^2).

Ranges are ``max_rows`` times the per-row range (corner products of the shifted bounds),
always including 0 (a provider may have no row).

Decoding -- exact and deterministic (step 14 of docs/verification.md compares every number bit
for bit; nothing here uses numpy.linalg, scipy or libm).  The centred cross products
``A_vw = n sum(u_v u_w) - sum(u_v) sum(u_w)`` are shift-invariant integers; in real units
``C_vw = A_vw / (n s_v s_w)`` and ``x_bar_v = (sum(u_v) + n c_v) / (n s_v)``, exact rationals.
``A_xx`` (features) is inverted exactly, ``A_xx^-1 = adj / det``, by fraction-free integer
Gauss-Jordan elimination (:func:`~statledger.protocol.stats.exact.int_spd_inverse`; "singular"
when it is not positive definite or a variance inflation factor exceeds ``10^14``).  Then, all
as exact rationals: ``b = Cxx^-1 Cxy`` (slopes), ``b_0 = y_bar - x_bar . b``, ``RSS = Cyy -
b . Cxy``, ``sigma^2 = RSS / (n - k)`` with ``k = p + 1``, ``Var(b) = sigma^2 diag(Cxx^-1)``,
``Var(b_0) = sigma^2 (1/n + x_bar' Cxx^-1 x_bar)``, ``R^2 = 1 - RSS / TSS``, adjusted ``R^2``,
``F = ((TSS - RSS) / p) / sigma^2``; each is rounded once to the nearest float.  ``se =
sqrt(Var)`` and ``t = coef / se = sign(coef) sqrt(coef^2 / Var)`` are correctly rounded square
roots of exact rationals.  p values: ``P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2)`` and the F
tail ``I_{df/(df+p F)}(df/2, p/2)`` from the exact ``t^2`` and ``F``, the 95 % CI ``coef +-
t_{0.975, n-k} se`` -- incomplete beta function and Student t quantile in decimal arithmetic
under the fixed context of :mod:`~statledger.protocol.stats.exact` (60 digits, fixed
algorithms and stopping rules).  Undefined values are None with a note, never NaN: R^2 when the
target is constant, t, p and F when the fit is perfect (``sigma^2 = 0``).  This equals
statsmodels OLS on the pooled quantised rows ``q / scale`` to ~1e-12 relative; against the
unquantised clipped rows the difference is the fixed-point quantisation (see
docs/statistics.md for measured figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import fixed_bounds
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    check_released_totals,
    count_range,
    fmt,
    int_dot,
    int_sum,
    register,
    require_no_group_by,
    require_params,
    select_rows,
)
from statledger.protocol.stats.exact import (
    ci_bounds,
    f_sf,
    int_spd_inverse,
    signed_sqrt_ratio,
    sqrt_float,
    t_isf2,
    t_sf2,
    to_float,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = [
    "LinearRegression",
    "check_column_list",
    "check_columns_listed",
    "GramColumn",
    "gram_layout",
    "gram_encode",
    "gram_sensitivity",
    "GramFit",
    "gram_ols",
    "coef_table",
    "ols_allocation",
    "ols_dp_weights",
    "ols_ridge",
]


_MAX_FEATURES = 64


# ---------------------------------------------------------------------------- shared helpers
def check_column_list(spec: QuerySpec, key: str) -> list[str]:
    """``params.<key>``: a non-empty list of distinct numeric (bounded) column names."""
    feats = spec.params.get(key)
    if not isinstance(feats, list) or not feats:
        raise MalformedError(f"params.{key}: must be a non-empty list of column names")
    if len(feats) > _MAX_FEATURES:
        raise MalformedError(f"params.{key}: at most {_MAX_FEATURES} columns")
    for i, f in enumerate(feats):
        if not isinstance(f, str):
            raise MalformedError(f"params.{key}[{i}]: must be a column name (string)")
        if f not in spec.bounds:
            raise MalformedError(f"params.{key}[{i}]: column {f!r} has no bounds (numeric)")
        if feats.index(f) != i:
            raise MalformedError(f"params.{key}[{i}]: duplicate column {f!r}")
    return list(feats)


def check_target(spec: QuerySpec, features: Sequence[str]) -> str:
    """``params.target``: one numeric column, not among the features."""
    t = spec.params.get("target")
    if not isinstance(t, str):
        raise MalformedError("params.target: must be a column name (string)")
    if t not in spec.bounds:
        raise MalformedError(f"params.target: column {t!r} has no bounds (numeric)")
    if t in features:
        raise MalformedError(f"params.target: column {t!r} is also a feature")
    return t


def check_columns_listed(spec: QuerySpec, used: Sequence[str]) -> None:
    """``columns`` must list exactly the columns the statistic reads (any order)."""
    if set(spec.columns) != set(used):
        missing = [c for c in used if c not in spec.columns]
        extra = [c for c in spec.columns if c not in used]
        raise MalformedError(
            f"columns: must list exactly the columns read ({', '.join(used)}); "
            f"missing {missing}, extra {extra}"
        )


@dataclass(frozen=True)
class GramColumn:
    """One column of a gram block: encoded range ``[lo, hi]`` (ints at ``scale``), the public
    ``shift`` subtracted before encoding, and the fixed-point ``scale`` of the column."""

    name: str
    lo: int
    hi: int
    shift: int
    scale: int

    @classmethod
    def of(cls, spec: QuerySpec, column: str) -> GramColumn:
        """A bounded column of ``spec``, shifted by its midpoint."""
        lo, hi = fixed_bounds(*spec.bounds[column], spec.scale)
        return cls(column, lo, hi, (lo + hi) // 2, spec.scale)

    def shifted(self) -> tuple[int, int]:
        return self.lo - self.shift, self.hi - self.shift


def _prod_bounds(a: tuple[int, int], b: tuple[int, int], same: bool) -> tuple[int, int]:
    if same:
        top = max(a[0] * a[0], a[1] * a[1])
        bot = 0 if a[0] <= 0 <= a[1] else min(a[0] * a[0], a[1] * a[1])
        return bot, top
    prods = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(prods), max(prods)


def _scaled(r: tuple[int, int], m: int) -> tuple[int, int]:
    """Range of a sum of 0..m values in ``r`` (always contains 0)."""
    return min(0, m * r[0]), max(0, m * r[1])


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


def gram_layout(spec: QuerySpec, cols: Sequence[GramColumn]) -> Layout:
    """``n``, ``sum(v)``, ``sum(v*w)`` (v <= w) of the shifted fixed-point columns."""
    labels = ["n"]
    ranges = [count_range(spec)]
    sb = [c.shifted() for c in cols]
    for c, r in zip(cols, sb, strict=True):
        labels.append(f"sum({c.name})")
        ranges.append(_scaled(r, spec.max_rows))
    for i, j in _pairs(len(cols)):
        labels.append(f"sum({cols[i].name}*{cols[j].name})")
        ranges.append(_scaled(_prod_bounds(sb[i], sb[j], i == j), spec.max_rows))
    return Layout(labels, ranges)


def gram_sensitivity(cols: Sequence[GramColumn]) -> list[int]:
    """Per-entry change of :func:`gram_layout` entries when one row is added or removed."""
    sb = [c.shifted() for c in cols]
    out = [1] + [max(abs(r[0]), abs(r[1])) for r in sb]
    for i, j in _pairs(len(cols)):
        lo, hi = _prod_bounds(sb[i], sb[j], i == j)
        out.append(max(abs(lo), abs(hi)))
    return out


def gram_encode(
    fixed: Sequence[npt.NDArray[np.int64]], cols: Sequence[GramColumn], n: int
) -> list[int]:
    """Entries of :func:`gram_layout` from the (unshifted) encoded columns ``fixed``."""
    us = []
    for f, c in zip(fixed, cols, strict=True):
        if f.size and (int(f.min()) < c.lo or int(f.max()) > c.hi):
            raise MalformedError(f"table.{c.name}: encoded value outside [{c.lo}, {c.hi}]")
        us.append(f - c.shift)
    out = [n]
    out.extend(int_sum(u) for u in us)
    out.extend(int_dot(us[i], us[j]) for i, j in _pairs(len(cols)))
    return out


# ---------------------------------------------------------------------------- DP allocation
#: mean offset of the reference design: each column's mean uniform in the middle half of its
#: bounds, ``E[mu^2] = t^2 / 12`` (``t`` the half-width)
_REF_OFFSET2 = Fraction(1, 12)
#: the smallest DP weight (rounding the allocation down to integers moves a share by < 13 %,
#: most by far less: the other weights are larger)
_MIN_WEIGHT = 16
#: no entry's wire sensitivity below the largest's / _SHARE_FLOOR (its budget share >=
#: 1/_SHARE_FLOOR^2 of the largest: the noise's shift granularity, noise.calibrate)
_SHARE_FLOOR = 16
#: fixed-point bits of the fourth roots of the allocation
_ROOT_BITS = 32
#: the ridge doubles at most this many times (z <= 2^10 noise sds) to reach a definite X'X
_RIDGE_DOUBLINGS = 10


def ols_allocation(cols: Sequence[GramColumn]) -> list[Fraction]:
    """Importance ``D_e`` of every :func:`gram_layout` entry of ``cols`` (features...,
    target) for the released fit: ``D_e = t_e^2 sum_q E[(d theta_q / d e)^2] / V_q`` over the
    released ``theta = (b_0, b_1..b_p, sigma^2)``, each normalised by its sampling variance
    ``V_q``, at a public reference design (docs/privacy.md, "Linear regression"):

    * each column ``v`` has half-width ``t_v`` (its sensitivity) around its midpoint
      ``M_v`` (the encoding's shift) and variance ``s_v^2 = t_v^2 / 3`` (uniform on its bounds),
      features independent;
    * the target is ``sum_k b_k x_k + e`` with ``b_k = +-t_y / (t_k sqrt(2p))`` (independent
      random signs; the features explain half its variance) and ``Var e = sigma^2 = t_y^2 /
      6``;
    * the means sit at ``M_v + mu_v`` with ``E[mu_v^2] = t_v^2 / 12`` (random signs): a sum's
      noise moves the centred cross products by ``mu_w eps_v / n`` (its only first-order
      effect on the slopes).

    Minimising ``sum_e D_e / rho_e`` under ``sum_e rho_e = rho`` gives ``rho_e ~ sqrt(D_e)``
    (Lagrange).  ``n`` cancels, so nothing here depends on data or on the row count.  Exact
    rationals (the same on every machine)."""
    k = len(cols)
    p = k - 1
    t = [max(abs(lo), abs(hi)) for lo, hi in (c.shifted() for c in cols)]
    s2 = [Fraction(x * x, 3) for x in t]
    m2 = [Fraction(c.shift * c.shift) for c in cols]
    b2 = [Fraction(t[p] * t[p], 2 * p * t[i] * t[i]) for i in range(p)]  # b_k^2
    sig2 = Fraction(t[p] * t[p], 6)
    v0 = sig2 * (1 + sum((m2[i] / s2[i] for i in range(p)), Fraction(0)))  # intercept
    vs = 2 * sig2 * sig2  # sigma^2
    # per unit of P_vw: sum_q E[g_q^2] / V_q  (slopes: V_k = sigma^2 / s_k^2)
    unit: dict[tuple[int, int], Fraction] = {}
    for i, j in _pairs(k):
        if i == j == p:  # P_yy: sigma^2 only
            g = 1 / vs
        elif j == p:  # P_ky
            g = (1 / (s2[i] * sig2) + m2[i] / (s2[i] * s2[i] * v0) + 4 * b2[i] / vs)
        elif i == j:  # P_kk
            g = (b2[i] / (s2[i] * sig2) + m2[i] * b2[i] / (s2[i] * s2[i] * v0)
                 + b2[i] * b2[i] / vs)
        else:  # P_kl, features k < l
            g = (b2[j] / (s2[i] * sig2) + b2[i] / (s2[j] * sig2)
                 + (m2[i] * b2[j] / (s2[i] * s2[i]) + m2[j] * b2[i] / (s2[j] * s2[j])) / v0
                 + 4 * b2[i] * b2[j] / vs)
        unit[(i, j)] = g
    out = [Fraction(1, 2)]  # n: sigma^2 = RSS / n moves with n
    for v in range(k):
        own = (1 if v == p else b2[v]) / v0  # the intercept reads the means directly
        off = sum((_REF_OFFSET2 * t[w] * t[w] * (4 if w == v else 1)
                   * unit[(min(v, w), max(v, w))] for w in range(k)), Fraction(0))
        out.append(t[v] * t[v] * (own + off))
    for i, j in _pairs(k):
        out.append(t[i] * t[i] * t[j] * t[j] * unit[(i, j)])
    return out


def _root4(x: Fraction) -> int:
    """``floor(x^(1/4) * 2^_ROOT_BITS)``, exactly (integer square roots)."""
    return math.isqrt(math.isqrt(x.numerator * (1 << (4 * _ROOT_BITS)) // x.denominator))


def ols_dp_weights(cols: Sequence[GramColumn]) -> list[int]:
    """Integer DP weights of the :func:`gram_layout` entries: ``c_e ~ D_e^(1/4) / t_e``
    (wire sensitivity ``c_e t_e ~ sqrt(rho_e)``, :func:`ols_allocation`), every share at
    least ``1/_SHARE_FLOOR^2`` of the largest: ``c_e = floor(2^B a_e / (a_max t_e))`` with
    ``B`` the smallest exponent giving every weight at least ``_MIN_WEIGHT``.  The widest wire
    sensitivity is then just below ``2^B``, a power of two like the noise's step ``Delta``
    (:func:`~statledger.protocol.noise.calibrate`): measured on the README's fit, 253 noise
    bits per entry where an unaligned scale needed up to 344.  A pure function of the spec."""
    sens = gram_sensitivity(cols)
    a = [_root4(d) for d in ols_allocation(cols)]
    top = max(a)
    a = [max(x, -(-top // _SHARE_FLOOR), 1) for x in a]
    need = max(-(-_MIN_WEIGHT * top * t // x) for t, x in zip(sens, a, strict=True))
    b = (need - 1).bit_length()  # 2^b >= need
    return [(x << b) // (top * t) for t, x in zip(sens, a, strict=True)]


def ols_ridge(cols: Sequence[GramColumn], totals: Sequence[int | None],
              entry_var: Sequence[Fraction]) -> list[int | None]:
    """DP post-processing of unscaled gram totals: every feature's ``sum(x_k^2)`` raised by
    ``z * lambda_k``, ``lambda_k = floor(sd_k)`` the noise sd of that entry and ``z`` the
    smallest of ``1, 2, 4, ..., 2^_RIDGE_DOUBLINGS`` that makes the noisy centred ``X'X``
    positive definite (exact, :func:`~statledger.protocol.stats.exact.int_spd_inverse`; ``z =
    1`` when none does: decode then reports the design singular).  A ridge by the noise level
    in the spirit of AdaSSP (Wang 2018), which picks ``lambda`` from the noisy smallest
    eigenvalue; here no eigenvalue is needed and every step is exact integer arithmetic, so
    step 14 recomputes it bit for bit.  Withheld entries stay withheld; non-int entries are
    left for decode to refuse."""
    k = len(cols)
    out = list(totals)
    if len(out) != len(entry_var) or len(out) != 1 + k + k * (k + 1) // 2:
        raise MalformedError(f"totals: {len(out)} entries, the fit's layout has "
                             f"{1 + k + k * (k + 1) // 2}")
    diag = [1 + k + pos for pos, (i, j) in enumerate(_pairs(k)) if i == j < k - 1]
    lam = [math.isqrt(entry_var[e].numerator // entry_var[e].denominator) for e in diag]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
        return out  # withheld (suppressed fit) or malformed: nothing to post-process
    ints: list[int] = [v for v in out if v is not None]

    def ridged(step: int) -> list[int]:
        trial = list(ints)
        for e, lam_k in zip(diag, lam, strict=True):
            trial[e] += lam_k << step
        return trial

    if ints[0] > 0:  # with no rows there is no design: decode says so
        for step in range(_RIDGE_DOUBLINGS + 1):
            trial = ridged(step)
            a = _centred(k, trial)
            if int_spd_inverse([row[: k - 1] for row in a[: k - 1]]) is not None:
                return list(trial)
    return list(ridged(0))


@dataclass(frozen=True)
class GramFit:
    """Exact least squares of the last gram column on the others, with an intercept.

    Real units: ``cxx_inv`` is the inverse of the features' centred cross-product matrix
    ``Cxx``, ``cyy`` the target's centred sum of squares (TSS), ``explained = b . Cxy``.
    """

    n: int
    means: list[Fraction]
    slopes: list[Fraction]
    intercept: Fraction
    cxx_inv: list[list[Fraction]]
    cyy: Fraction
    explained: Fraction


def _centred(k: int, block: Sequence[int]) -> list[list[int]]:
    """``A_vw = n P_vw - S_v S_w`` (k x k, integers) from gram totals of ``k`` columns."""
    n = block[0]
    s = list(block[1 : 1 + k])
    prod = dict(zip(_pairs(k), block[1 + k :], strict=True))
    return [[n * prod[(min(i, j), max(i, j))] - s[i] * s[j] for j in range(k)]
            for i in range(k)]


def gram_ols(cols: Sequence[GramColumn], block: Sequence[int]) -> GramFit | None:
    """The exact OLS fit from gram totals of ``cols`` (features..., target), or None when the
    features' centred cross-product matrix is not positive definite or is nearly singular
    (largest variance inflation factor above ``10^14``).

    ``A_vw = n P_vw - S_v S_w`` (integers, invariant under the shifts) and ``C = A / (n s_v
    s_w)``; ``A_xx^-1 = adj / det`` exactly (fraction-free elimination), so ``b_i = s_i
    (adj A_xy)_i / (det s_y)`` and ``b . Cxy = A_xy' adj A_xy / (det n s_y^2)``.
    """
    k = len(cols)
    p = k - 1
    n = block[0]
    if n <= 0:
        return None
    s = list(block[1 : 1 + k])
    a = _centred(k, block)
    inv = int_spd_inverse([row[:p] for row in a[:p]])
    if inv is None:
        return None
    adj, det = inv
    sc = [c.scale for c in cols]
    sy = sc[p]
    w = [sum(adj[i][j] * a[j][p] for j in range(p)) for i in range(p)]  # adj A_xy
    slopes = [Fraction(sc[i] * w[i], det * sy) for i in range(p)]
    means = [Fraction(s[i] + n * cols[i].shift, n * sc[i]) for i in range(k)]
    intercept = means[p] - sum((means[i] * slopes[i] for i in range(p)), Fraction(0))
    cxx_inv = [[Fraction(n * sc[i] * sc[j] * adj[i][j], det) for j in range(p)]
               for i in range(p)]
    cyy = Fraction(a[p][p], n * sy * sy)
    explained = Fraction(sum(a[i][p] * w[i] for i in range(p)), det * n * sy * sy)
    return GramFit(n, means, slopes, intercept, cxx_inv, cyy, explained)


def coef_table(
    terms: Sequence[str],
    coef: Sequence[float],
    se: Sequence[float],
    stat: Sequence[float],
    p: Sequence[float],
    lo: Sequence[float],
    hi: Sequence[float],
    stat_name: str,
) -> list[str]:
    """Coefficient block of a statsmodels-like summary."""
    w0 = max([len(t) for t in terms] + [10])
    pname = "P>|t|" if stat_name == "t" else "P>|z|"
    head = (
        f"{'':<{w0}} {'coef':>10} {'std err':>10} {stat_name:>10} {pname:>10} "
        f"{'[0.025':>10} {'0.975]':>10}"
    )
    lines = [head, "-" * len(head)]
    for i, t in enumerate(terms):
        lines.append(
            f"{t:<{w0}} {fmt(coef[i]):>10} {fmt(se[i]):>10} {fmt(stat[i]):>10} "
            f"{_fmt_p(p[i]):>10} {fmt(lo[i]):>10} {fmt(hi[i]):>10}"
        )
    return lines


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "."
    return f"{p:.3f}" if p >= 0.001 else f"{p:.2e}"


def two_col(pairs: Sequence[tuple[str, Any]]) -> list[str]:
    """Header block of ``key: value`` pairs laid out in two columns."""
    cells = [f"{k + ':':<22}{fmt(v):>14}" for k, v in pairs]
    lines = []
    for i in range(0, len(cells), 2):
        lines.append("   ".join(cells[i : i + 2]))
    return lines


class _RegressionResult(StatResult):
    """StatResult whose summary is a statsmodels-like regression table."""

    summary_lines: list[str]

    def __init__(self, statistic: str, values: dict[str, Any], lines: list[str],
                 notes: list[str]) -> None:
        super().__init__(statistic=statistic, values=values, title=lines[0], notes=notes)
        self.summary_lines = lines

    def summary(self) -> str:
        lines = self.summary_lines + self._noise_lines()
        width = max(len(x) for x in lines)
        out = [lines[0].center(width).rstrip(), "=" * width]
        out.extend(lines[1:])
        out.append("=" * width)
        out.extend(self.notes)
        return "\n".join(out)

    def _noise_lines(self) -> list[str]:
        """A DP fit's coefficient noise (the ``dp`` block :func:`statledger.protocol.
        calibration.decode` added): per term its noise sd and 95 % noise interval, and what
        the ``[0.025 0.975]`` columns above do not include.  Nothing for an exact fit."""
        from statledger.protocol.calibration import noise_of

        terms = self.values.get("terms")
        if not isinstance(terms, list) or not isinstance(self.values.get("dp"), dict):
            return []
        rows = [(str(t), noise_of(self.values, f"coef[{i}]")) for i, t in enumerate(terms)]
        w0 = max([len(t) for t, _ in rows] + [10])
        head = f"{'':<{w0}} {'noise sd':>10} {'noise [0.025':>13} {'0.975]':>10}"
        out = ["", "DP noise per coefficient: the [0.025 0.975] columns above are "
               "sampling-only;", "the noise's 95% interval is coef +- 1.96 noise sd:", head,
               "-" * len(head)]
        for t, nz in rows:
            if nz is None:  # not released (suppressed or singular): no noise to state
                out.append(f"{t:<{w0}} {'.':>10} {'.':>13} {'.':>10}")
            else:
                out.append(f"{t:<{w0}} {fmt(nz[0]):>10} {fmt(nz[1]):>13} {fmt(nz[2]):>10}")
        return out


# ---------------------------------------------------------------------------- statistic
class LinearRegression(Statistic):
    """OLS with intercept; decodes what statsmodels ``OLS(y, add_constant(X)).fit()`` gives."""

    name = "linear_regression"
    description = "ordinary least squares with intercept: coef, se, t, p, CI, R^2"

    def _cols(self, spec: QuerySpec) -> tuple[list[str], str]:
        feats = check_column_list(spec, "features")
        target = check_target(spec, feats)
        return feats, target

    def _gram(self, spec: QuerySpec) -> list[GramColumn]:
        feats, target = self._cols(spec)
        return [GramColumn.of(spec, c) for c in [*feats, target]]

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("target", "features"), ("target", "features"))
        require_no_group_by(spec, self.name)
        feats, target = self._cols(spec)
        check_columns_listed(spec, [*feats, target])

    def layout(self, spec: QuerySpec) -> Layout:
        return gram_layout(spec, self._gram(spec))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return gram_sensitivity(self._gram(spec))

    def dp_weights(self, spec: QuerySpec) -> list[int] | None:
        """The budget split that minimises the noise of the fit (:func:`ols_dp_weights`)."""
        return ols_dp_weights(self._gram(spec))

    def dp_postprocess(self, spec: QuerySpec, totals: Sequence[int | None],
                       entry_var: Sequence[Fraction]) -> list[int | None]:
        """The ridge by the noise level (:func:`ols_ridge`)."""
        return ols_ridge(self._gram(spec), totals, entry_var)

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        feats, target = self._cols(spec)
        cols = [*feats, target]
        sel = select_rows(spec, table, numeric=cols)
        out = gram_encode([sel.fixed[c] for c in cols], self._gram(spec), sel.n)
        return self._finish(spec, out, sel.report)

    def gates(self, spec: QuerySpec) -> list[int]:
        return [0]  # n: when small (PET) nothing is decrypted (protocol/suppression.py)

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        return [not small[0]] * len(self.layout(spec))

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        feats, target = self._cols(spec)
        partial = check_released_totals(spec, self.layout(spec), totals, [])
        if partial[0] is not None and None in partial:
            raise MalformedError("totals: an entry of an unsuppressed fit is withheld")
        # below min_cell_size only n is read (ols_from_totals returns before the sums)
        t = [0 if v is None else v for v in partial]
        values, notes = ols_from_totals(spec, self._gram(spec), t)
        if partial[0] is None:
            # withheld by the PET gate: only "n < min_cell_size" is known, not n
            values["n"] = values["df_resid"] = None
            notes = [notes[0], f"suppressed: fewer than {spec.min_cell_size} rows "
                               "(the count itself is not published)"]
        values["target"] = target
        values["features"] = feats
        if spec.privacy.mechanism != "none" and partial[0] is not None:
            notes.append("DP post-processing: each feature's sum of squares raised by its "
                         "noise sd, doubled until X'X is positive definite (ridge by the "
                         "noise level, docs/privacy.md)")
            if values["coef"][0] is None:
                notes.append("under DP the noise, not necessarily the data, can leave the "
                             "design singular or too small")
        return _RegressionResult(self.name, values, _ols_summary(values), notes)


def _empty_values(terms: list[str], n: int, df_resid: int) -> dict[str, Any]:
    none = [None] * len(terms)
    return {
        "terms": terms,
        "n": n,
        "df_model": len(terms) - 1,
        "df_resid": df_resid,
        "coef": none,
        "std_err": none,
        "t": none,
        "p_value": none,
        "ci_lower": none,
        "ci_upper": none,
        "r_squared": None,
        "adj_r_squared": None,
        "residual_std_error": None,
        "f_statistic": None,
        "f_p_value": None,
        "rss": None,
    }


def ols_from_totals(
    spec: QuerySpec, cols: Sequence[GramColumn], block: Sequence[int]
) -> tuple[dict[str, Any], list[str]]:
    """Decode gram totals of ``cols`` (features..., target) into the OLS result values."""
    feats = [c.name for c in cols[:-1]]
    terms = ["const", *feats]
    k = len(terms)
    n = block[0]
    notes: list[str] = [f"intercept included; fixed-point scale {spec.scale}"]
    values = _empty_values(terms, n, n - k)
    if n < spec.min_cell_size:
        notes.append(f"suppressed: n = {n} < min_cell_size {spec.min_cell_size}")
        values["n"] = None
        return values, notes
    if n <= k:
        notes.append(f"too few rows: n = {n} <= number of coefficients {k}")
        return values, notes
    fit = gram_ols(cols, block)
    if fit is None:
        notes.append("singular design: a feature is constant or collinear in the pooled rows")
        return values, notes
    p = len(feats)
    df = n - k
    m = fit.means[:p]
    rss = max(fit.cyy - fit.explained, Fraction(0))
    sigma2 = rss / df
    quad = sum((m[i] * fit.cxx_inv[i][j] * m[j] for i in range(p) for j in range(p)),
               Fraction(0))
    coef = [fit.intercept, *fit.slopes]
    var = [sigma2 * (Fraction(1, n) + quad)] + [sigma2 * fit.cxx_inv[i][i] for i in range(p)]
    q = t_isf2(Fraction(1, 20), df)  # t_{0.975, df}
    tv: list[float | None] = []
    pv: list[float | None] = []
    lo: list[float] = []
    hi: list[float] = []
    for c, v in zip(coef, var, strict=True):
        if v > 0:
            tv.append(signed_sqrt_ratio(c, v))
            pv.append(t_sf2(c * c / v, df))  # exact t^2
        else:
            tv.append(None)
            pv.append(None)
        a, b = ci_bounds(c, v, q)
        lo.append(a)
        hi.append(b)
    if sigma2 == 0:
        notes.append("perfect fit (residual variance 0): t, p values and F are undefined")
    r2: float | None = None
    adj: float | None = None
    if fit.cyy > 0:
        r2q = 1 - rss / fit.cyy
        r2 = to_float(r2q)
        adj = to_float(1 - Fraction(n - 1, df) * (1 - r2q))
    else:
        notes.append("the target is constant in the pooled rows: R-squared is undefined")
    fstat: float | None = None
    fp: float | None = None
    if sigma2 > 0:
        fq = ((fit.cyy - rss) / p) / sigma2
        fstat = to_float(fq)
        fp = f_sf(fq, p, df)
    values.update(
        {
            "coef": [to_float(c) for c in coef],
            "std_err": [sqrt_float(v) for v in var],
            "t": tv,
            "p_value": pv,
            "ci_lower": lo,
            "ci_upper": hi,
            "r_squared": r2,
            "adj_r_squared": adj,
            "residual_std_error": sqrt_float(sigma2),
            "f_statistic": fstat,
            "f_p_value": fp,
            "rss": to_float(rss),
        }
    )
    return values, notes


def _ols_summary(v: dict[str, Any]) -> list[str]:
    lines = ["OLS Regression Results"]
    lines += two_col(
        [
            ("Dep. Variable", v["target"]),
            ("R-squared", v["r_squared"]),
            ("Model", "OLS"),
            ("Adj. R-squared", v["adj_r_squared"]),
            ("No. Observations", v["n"]),
            ("F-statistic", v["f_statistic"]),
            ("Df Residuals", v["df_resid"]),
            ("Prob (F-statistic)", v["f_p_value"]),
            ("Df Model", v["df_model"]),
            ("Resid. Std. Err.", v["residual_std_error"]),
        ]
    )
    lines.append("")
    nan = float("nan")

    def col(key: str) -> list[float]:
        return [nan if x is None else float(x) for x in v[key]]

    lines += coef_table(
        v["terms"], col("coef"), col("std_err"), col("t"), col("p_value"),
        col("ci_lower"), col("ci_upper"), "t",
    )
    return lines


register(LinearRegression())
