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

Decoding.  The centred cross products ``C_vw = n sum(u_v u_w) - sum(u_v) sum(u_w)`` are
shift-invariant, so they are computed exactly in integers from the shifted totals;
``x_bar_v = (sum(u_v) + n c_v) / (n scale)``.  Then (float64)
``b = Cxx^-1 Cxy`` (slopes), ``b_0 = y_bar - x_bar . b``, ``RSS = (Cyy - b . Cxy) / (n s^2)``,
``sigma^2 = RSS / (n - k)`` with ``k = p + 1``, ``Var(b) = sigma^2 n s^2 Cxx^-1``,
``Var(b_0) = sigma^2 (1/n + x_bar^T (Cxx / (n s^2))^-1 x_bar)``, t = coef / se with
``n - k`` degrees of freedom, 95 % CI ``coef +- t_{0.975, n-k} se``,
``R^2 = 1 - RSS / TSS``, adjusted ``R^2``, F statistic.  This equals statsmodels OLS on the
pooled quantised rows ``q / scale`` to ~1e-12 relative; against the unquantised clipped rows
the difference is the fixed-point quantisation (see docs/statistics.md for measured figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    check_totals,
    count_range,
    fmt,
    int_dot,
    int_sum,
    register,
    require_no_group_by,
    require_params,
    select_rows,
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
    "centered_moments",
    "coef_table",
]


def _sps() -> Any:
    """scipy.stats, imported on first use (it costs ~0.9 s; services start faster)."""
    from scipy import stats

    return stats

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


def centered_moments(
    cols: Sequence[GramColumn], block: Sequence[int]
) -> tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(n, means, C)`` from gram totals: ``C[v, w] = sum (v - v_bar)(w - w_bar)`` (floats).

    The centred products are computed exactly in integers (``n P - S S``, invariant under the
    shifts) before the single division by ``n scale_v scale_w``.
    """
    k = len(cols)
    n = block[0]
    s = list(block[1 : 1 + k])
    p = dict(zip(_pairs(k), block[1 + k :], strict=True))
    cm = np.empty((k, k), dtype=np.float64)
    for i, j in _pairs(k):
        v = (n * p[(i, j)] - s[i] * s[j]) / (n * cols[i].scale * cols[j].scale)
        cm[i, j] = cm[j, i] = v
    means = np.array([(s[i] + n * cols[i].shift) / (n * cols[i].scale) for i in range(k)])
    return n, means, cm


def spd_inverse(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
    """Inverse of a symmetric positive definite matrix (diagonal-equilibrated), or None."""
    d = np.sqrt(np.diag(a))
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        return None
    r = a / np.outer(d, d)
    try:
        np.linalg.cholesky(r)
        ri = np.linalg.inv(r)
    except np.linalg.LinAlgError:
        return None
    if np.linalg.cond(r) > 1e14:
        return None
    out: npt.NDArray[np.float64] = ri / np.outer(d, d)
    return (out + out.T) / 2


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
        width = max(len(x) for x in self.summary_lines)
        out = [self.summary_lines[0].center(width).rstrip(), "=" * width]
        out.extend(self.summary_lines[1:])
        out.append("=" * width)
        out.extend(self.notes)
        return "\n".join(out)


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

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        feats, target = self._cols(spec)
        cols = [*feats, target]
        sel = select_rows(spec, table, numeric=cols)
        out = gram_encode([sel.fixed[c] for c in cols], self._gram(spec), sel.n)
        return self._finish(spec, out, sel.report)

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        feats, target = self._cols(spec)
        t = check_totals(spec, self.layout(spec), totals)
        values, notes = ols_from_totals(spec, self._gram(spec), t)
        values["target"] = target
        values["features"] = feats
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
    _, means, cm = centered_moments(cols, block)
    p = len(feats)
    cxx, cxy, cyy = cm[:p, :p], cm[:p, p], float(cm[p, p])
    cinv = spd_inverse(cxx)
    if cinv is None:
        notes.append("singular design: a feature is constant or collinear in the pooled rows")
        return values, notes
    b = cinv @ cxy
    b0 = float(means[p] - means[:p] @ b)
    rss = max(cyy - float(b @ cxy), 0.0)
    df = n - k
    sigma2 = rss / df
    var_b = sigma2 * np.diag(cinv)
    var_b0 = sigma2 * (1.0 / n + float(means[:p] @ cinv @ means[:p]))
    coef = np.concatenate([[b0], b])
    se = np.sqrt(np.concatenate([[var_b0], var_b]))
    with np.errstate(divide="ignore", invalid="ignore"):
        tv = coef / se
    pv = 2.0 * _sps().t.sf(np.abs(tv), df)
    q = float(_sps().t.ppf(0.975, df))
    r2 = 1.0 - rss / cyy if cyy > 0 else float("nan")
    adj = 1.0 - (n - 1) / df * (1.0 - r2) if cyy > 0 else float("nan")
    fstat = ((cyy - rss) / p) / sigma2 if sigma2 > 0 else float("nan")
    fp = float(_sps().f.sf(fstat, p, df)) if math.isfinite(fstat) else float("nan")
    values.update(
        {
            "coef": coef.tolist(),
            "std_err": se.tolist(),
            "t": tv.tolist(),
            "p_value": pv.tolist(),
            "ci_lower": (coef - q * se).tolist(),
            "ci_upper": (coef + q * se).tolist(),
            "r_squared": r2,
            "adj_r_squared": adj,
            "residual_std_error": math.sqrt(sigma2),
            "f_statistic": fstat,
            "f_p_value": fp,
            "rss": rss,
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
