"""Logistic regression two ways: ``"logistic_approx"`` (one round) and ``"logistic_irls"``.

Common spec: ``params.target`` (numeric column with values exactly 0/1 and bounds containing
[0, 1]), ``params.features`` (numeric columns with bounds), optional ``params.standardize``
``{column: [center, spread]}`` (public constants, ``spread > 0``): the feature used is
``x' = (clip(x) - center) / spread``, so coefficients are on that scale.  ``columns`` must
list exactly target + features.  An intercept is always included.  No ``group_by``.  The
feature value actually used by every party is the dequantised ``a = to_fixed(x', scale) /
scale``.  Full math and measured accuracy: ``docs/statistics.md``.

(a) ``logistic_approx`` -- Drynx-style degree-2 Taylor expansion of the log-likelihood at
``beta = 0``: ``log(1 + e^z) ~ log 2 + z/2 + z^2/8`` gives
``l(beta) ~ sum (y - 1/2) z - z^2/8 - n log 2`` with ``z = a . beta``, maximised in closed
form by ``beta = 4 (A^T A)^-1 A^T (y - 1/2)`` -- i.e. 4 x the OLS coefficients of
``y - 1/2`` on ``[1, a]``.  Encoded: the gram block (``n``, sums, upper-triangle products) of
the shifted fixed-point features and of ``u = 2y - 1`` (at scale 1), exactly as in
:mod:`statledger.protocol.stats.ols`.  Approximate: it is the linear-probability model rescaled.

(b) ``logistic_irls`` -- exact federated Newton/IRLS.  Round ``t`` is a query whose public
``params.beta`` (``k = p + 1`` floats, intercept first; default zeros) and ``params.round``
(default 0) are in the spec; ``params.tol`` (default 1e-6) and ``params.max_rounds``
(default 25).  Each provider encodes, for its rows with ``z = a . beta``, ``p = 1/(1+e^-z)``,
``w = p (1 - p)``:

* ``n``;
* ``xwx(i*j) = sum rint(S w a_i a_j)`` for ``i <= j`` (``a_0 = 1``), per-row range
  ``[floor(S min(0, m_ij) / 4), ceil(S max(0, M_ij) / 4)]`` where ``m_ij, M_ij`` are
  the extreme corner products of the bounds (``0 <= w <= 1/4``);
* ``xr(i) = sum rint(S a_i (y - p))``, per-row range ``+-ceil(S max|a_i|)``;
* ``loglik = sum rint(S (y log p + (1-y) log(1-p)))``, per-row range
  ``[floor(-S (Z + log 2)) - 1, 0]`` with ``Z = sum |beta_i| max|a_i|`` (so
  ``|z| <= Z``).

All three are real-valued per row, so they are encoded at ``S = scale**2`` (the resolution
of a product of two fixed-point values, as for OLS' ``x_i x_j``): per-row rounding error
``<= 1/(2 S)``, which keeps the Newton iteration's noise floor far below ``tol`` at the
default scale.

Every per-row value is clamped into its per-row range (a no-op except for floating-point
rounding at the very edge), so the declared totals ranges (``max_rows`` x per-row) are
sound.  Decoding: ``H = xwx / S``, ``g = xr / S``, Newton step ``delta = H^-1 g``,
``beta_next = beta + delta``; standard errors ``sqrt(diag H^-1)``, Wald z, normal p values,
95 % CI, log-likelihood at ``beta``; ``converged = max|delta| < tol``.  Use
:func:`irls_start` and :func:`irls_next_spec` to loop the rounds.

Both decoders are exact and deterministic (step 14 of docs/verification.md compares every
number bit for bit): (a) is :func:`~statledger.protocol.stats.ols.gram_ols` (exact rational
least squares); in (b) ``H^-1 = S adj(xwx) / det(xwx)`` by fraction-free integer elimination
(:func:`~statledger.protocol.stats.exact.int_spd_inverse`: "singular" unless positive
definite with every variance inflation factor <= 10^14), so ``delta = adj(xwx) xr / det``,
``beta_next = beta + delta`` (the spec's floats taken exactly), ``Var = S adj_ii / det``, the
log-likelihood ``loglik / S`` and ``max|delta|`` are exact rationals rounded once; ``se`` and
``z = sign sqrt(coef^2 / Var)`` correctly rounded square roots; the p value ``erfc(|z| /
sqrt 2) = Q(1/2, z^2 / 2)`` (exact ``z^2``) and the CI's ``z_{0.975}`` in decimal arithmetic
under the fixed context of :mod:`~statledger.protocol.stats.exact`; ``converged`` compares
the exact ``max|delta|`` with ``tol``.  The layout (which decoding checks the totals against)
uses no libm either.

Suppression before decryption (exact queries with ``min_cell_size >= 2``,
:mod:`statledger.protocol.suppression`), both forms: the gate is ``n``; the blinded shuffled
PET reveals only "``n < min_cell_size``" (no rows counts as small), and then *nothing* is
decrypted -- no ``n``, no gram block, no ``xwx``/``xr``/``loglik`` -- the result says
"suppressed" and (IRLS) has no ``beta_next``, so no later round can follow it
(:mod:`statledger.protocol.chain`).  **Every IRLS round is gated**, not only round 0: the
chain fixes the spec (filters included) but not *which owners* answer a round (any subset
that endorsed the previous result, :func:`statledger.protocol.chain.check_established`), so
a querier could ask round 1 of only the owners with few rows, whose ``n`` round 0's test
never saw.  The price is one PET cell per round (``k = min_cell_size`` candidates,
docs/notes/pet.md, measured in docs/performance.md).  ``min_cell_size == 1``: no gate (only
an empty selection, whose design is singular, would be small).  A DP query has no gate: a
noisy ``n`` below ``min_cell_size`` suppresses the result after decoding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    check_released_totals,
    count_range,
    is_finite_number,
    register,
    require_no_group_by,
    require_params,
    round_beta,
    round_index,
    round_limit,
    round_tol,
    select_rows,
)
from statledger.protocol.stats.exact import (
    ci_bounds,
    int_spd_inverse,
    norm_isf,
    norm_sf2,
    signed_sqrt_ratio,
    sqrt_float,
    to_float,
)
from statledger.protocol.stats.ols import (
    GramColumn,
    _RegressionResult,
    check_column_list,
    check_columns_listed,
    coef_table,
    gram_encode,
    gram_layout,
    gram_ols,
    gram_sensitivity,
    two_col,
)

__all__ = ["LogisticApprox", "LogisticIRLS", "irls_start", "irls_next_spec"]


def _spf() -> Any:
    """scipy.special, imported on first use."""
    from scipy import special

    return special

#: ln 2 rounded to the nearest double, written out: the layout must not depend on libm.
_LN2 = 0.6931471805599453

DEFAULT_TOL = 1e-6
DEFAULT_MAX_ROUNDS = 25
_MAX_ROUNDS_CAP = 100
_MAX_ABS_BETA = 1e6

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------- shared
class _LogisticBase(Statistic):
    _extra_params: tuple[str, ...] = ()

    def gates(self, spec: QuerySpec) -> list[int]:
        # n; none at min_cell_size 1.  DP queries: protocol/suppression.py drops the gate
        return [0] if spec.min_cell_size > 1 else []

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: expected one (n)")
        return [not any(small)] * len(self.layout(spec))

    def _released_n(self, spec: QuerySpec, totals: Sequence[int | None]) -> list[int] | None:
        """The totals, or None when the PET gate withheld them all (n < min_cell_size:
        nothing decrypted).  A partial release is refused."""
        t = check_released_totals(spec, self.layout(spec), totals, [])
        if all(v is None for v in t):
            if spec.privacy.mechanism != "none" or not self.gates(spec):
                raise MalformedError("totals: withheld entries for a query without gates")
            return None
        if any(v is None for v in t):
            raise MalformedError("totals: an entry of a published result is withheld")
        return [int(v or 0) for v in t]

    def _features(self, spec: QuerySpec) -> tuple[list[str], str]:
        feats = check_column_list(spec, "features")
        t = spec.params.get("target")
        if not isinstance(t, str):
            raise MalformedError("params.target: must be a column name (string)")
        if t not in spec.bounds:
            raise MalformedError(f"params.target: column {t!r} has no bounds (numeric)")
        if t in feats:
            raise MalformedError(f"params.target: column {t!r} is also a feature")
        return feats, t

    def _standardize(self, spec: QuerySpec, feats: Sequence[str]) -> dict[str, tuple[float, float]]:
        raw = spec.params.get("standardize", {})
        if not isinstance(raw, dict):
            raise MalformedError("params.standardize: must be an object {column: [center, spread]}")
        out: dict[str, tuple[float, float]] = {}
        for col, cs in raw.items():
            where = f"params.standardize.{col}"
            if col not in feats:
                raise MalformedError(f"{where}: not one of params.features")
            if not isinstance(cs, list) or len(cs) != 2 or not all(is_finite_number(v) for v in cs):
                raise MalformedError(f"{where}: must be [center, spread] (two finite numbers)")
            if not cs[1] > 0:
                raise MalformedError(f"{where}: spread must be > 0")
            out[col] = (float(cs[0]), float(cs[1]))
        return out

    def _transform(
        self, spec: QuerySpec, col: str, x: FloatArray, std: dict[str, tuple[float, float]]
    ) -> FloatArray:
        if col not in std:
            return x
        c, s = std[col]
        out: FloatArray = (x - c) / s
        return out

    def _feature_bounds(self, spec: QuerySpec, feats: Sequence[str]) -> list[tuple[int, int]]:
        """Encoded (fixed-point) bounds of every transformed feature."""
        std = self._standardize(spec, feats)
        out = []
        for f in feats:
            lo, hi = spec.bounds[f]
            arr = self._transform(spec, f, np.array([lo, hi], dtype=np.float64), std)
            qlo, qhi = to_fixed(float(arr[0]), spec.scale), to_fixed(float(arr[1]), spec.scale)
            out.append((qlo, qhi))
        return out

    def _common_validate(self, spec: QuerySpec) -> tuple[list[str], str]:
        require_params(
            spec, ("target", "features", "standardize", *self._extra_params), ("target", "features")
        )
        require_no_group_by(spec, self.name)
        feats, target = self._features(spec)
        check_columns_listed(spec, [*feats, target])
        lo, hi = spec.bounds[target]
        if lo > 0 or hi < 1:
            raise MalformedError(f"bounds.{target}: a 0/1 target needs bounds containing [0, 1]")
        self._standardize(spec, feats)
        return feats, target

    def _rows(
        self, spec: QuerySpec, table: Table
    ) -> tuple[list[IntArray], FloatArray, LocalReport]:
        feats, target = self._features(spec)
        std = self._standardize(spec, feats)
        sel = select_rows(spec, table, numeric=[*feats, target])
        y = sel.values[target]
        if np.any((y != 0.0) & (y != 1.0)):
            raise MalformedError(f"table.{target}: values must be 0 or 1")
        qs: list[IntArray] = []
        for f in feats:
            qs.append(to_fixed(self._transform(spec, f, sel.values[f], std), spec.scale))
        return qs, y, sel.report


# ---------------------------------------------------------------------------- (a) approx
class LogisticApprox(_LogisticBase):
    """One-round degree-2 Taylor approximation of the logistic log-likelihood (Drynx-style)."""

    name = "logistic_approx"
    description = "approximate logistic regression (degree-2 Taylor at beta = 0), one round"

    def _gram(self, spec: QuerySpec) -> list[GramColumn]:
        feats, _ = self._features(spec)
        cols = [
            GramColumn(f, lo, hi, (lo + hi) // 2, spec.scale)
            for f, (lo, hi) in zip(feats, self._feature_bounds(spec, feats), strict=True)
        ]
        cols.append(GramColumn("2y-1", -1, 1, 0, 1))
        return cols

    def validate(self, spec: QuerySpec) -> None:
        self._common_validate(spec)

    def layout(self, spec: QuerySpec) -> Layout:
        return gram_layout(spec, self._gram(spec))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return gram_sensitivity(self._gram(spec))

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        qs, y, report = self._rows(spec, table)
        u = (2 * y - 1).astype(np.int64)
        out = gram_encode([*qs, u], self._gram(spec), int(y.size))
        return self._finish(spec, out, report)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        feats, target = self._features(spec)
        cols = self._gram(spec)
        released = self._released_n(spec, totals)
        t = released if released is not None else [0] * len(self.layout(spec))
        terms = ["const", *feats]
        n = t[0]
        notes = [
            "approximate: degree-2 Taylor expansion of the log-likelihood at beta = 0 "
            "(= 4 x OLS of y - 1/2); no standard errors",
        ]
        coef: list[float] | None = None
        # withheld by the PET gate (never decrypted), or a DP query's small noisy n
        suppressed = released is None or n < spec.min_cell_size
        if suppressed:
            notes.append(f"suppressed: fewer than {spec.min_cell_size} rows")
        else:
            fit = gram_ols(cols, t)  # exact rational least squares
            if fit is None:
                notes.append("singular design: a feature is constant or collinear")
            else:
                # u = 2y - 1 = 2 (y - 1/2): beta = 4 OLS(y - 1/2) = 2 OLS(u)
                coef = [to_float(2 * b) for b in (fit.intercept, *fit.slopes)]
        values: dict[str, Any] = {
            "target": target,
            "features": feats,
            "terms": terms,
            "n": None if suppressed else n,
            "coef": coef if coef is not None else [None] * len(terms),
            "standardize": {k: list(v) for k, v in self._standardize(spec, feats).items()},
        }
        lines = ["Logistic Regression (one-round Taylor approximation)"]
        lines += two_col([("Dep. Variable", target), ("No. Observations", values["n"])])
        lines.append("")
        lines.append(f"{'':<24} {'coef':>12}")
        lines.append("-" * 37)
        for term, c in zip(terms, values["coef"], strict=True):
            lines.append(f"{term:<24} {('.' if c is None else f'{c:.6g}'):>12}")
        return _RegressionResult(self.name, values, lines, notes)


# ---------------------------------------------------------------------------- (b) IRLS
def _floor_div4(x: Fraction, scale: int) -> int:
    return math.floor(x * scale / 4)


def _ceil_div4(x: Fraction, scale: int) -> int:
    return math.ceil(x * scale / 4)


class LogisticIRLS(_LogisticBase):
    """Exact logistic regression by federated Newton (IRLS) rounds."""

    name = "logistic_irls"
    description = "logistic regression, exact: one Newton/IRLS step per round"
    _extra_params = ("beta", "round", "tol", "max_rounds", "previous")

    # ------------------------------------------------------------------ params
    def _beta(self, spec: QuerySpec, k: int) -> list[float]:
        return round_beta(spec, k, _MAX_ABS_BETA, "intercept first")

    def _round(self, spec: QuerySpec) -> int:
        return round_index(spec, _MAX_ROUNDS_CAP)

    def _tol(self, spec: QuerySpec) -> float:
        return round_tol(spec, DEFAULT_TOL)

    def _max_rounds(self, spec: QuerySpec) -> int:
        return round_limit(spec, DEFAULT_MAX_ROUNDS, _MAX_ROUNDS_CAP)

    def validate(self, spec: QuerySpec) -> None:
        feats, _ = self._common_validate(spec)
        self._beta(spec, len(feats) + 1)
        self._round(spec)
        prev = spec.params.get("previous")
        if prev is not None and not (isinstance(prev, str) and len(prev) == 64
                                     and all(c in "0123456789abcdef" for c in prev)):
            raise MalformedError("params.previous: expected the previous round's query id "
                                 "(64 lowercase hex digits; protocol/chain.py)")
        self._tol(spec)
        self._max_rounds(spec)

    # ------------------------------------------------------------------ layout
    def _row_ranges(self, spec: QuerySpec) -> tuple[list[str], list[tuple[int, int]]]:
        """Labels and *per-row* ranges (after ``n``) of the encoded entries."""
        feats, _ = self._features(spec)
        fs = spec.scale
        s = fs * fs  # the IRLS sums are encoded at scale^2 (see the module docstring)
        ab = [(Fraction(1), Fraction(1))] + [
            (Fraction(lo, fs), Fraction(hi, fs)) for lo, hi in self._feature_bounds(spec, feats)
        ]
        terms = ["const", *feats]
        k = len(terms)
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for i in range(k):
            for j in range(i, k):
                corners = [x * y for x in ab[i] for y in ab[j]]
                if i == j and ab[i][0] <= 0 <= ab[i][1]:
                    corners.append(Fraction(0))
                lo, hi = min(min(corners), Fraction(0)), max(max(corners), Fraction(0))
                labels.append(f"xwx({terms[i]}*{terms[j]})")
                ranges.append((_floor_div4(lo, s), _ceil_div4(hi, s)))
        amax = [max(abs(a), abs(b)) for a, b in ab]
        for i in range(k):
            m = math.ceil(amax[i] * s)
            labels.append(f"xr({terms[i]})")
            ranges.append((-m, m))
        beta = self._beta(spec, k)
        # float arithmetic in a fixed order (no libm, no sum(): Python 3.12 compensates it)
        zmax = 0.0
        for b, a in zip(beta, amax, strict=True):
            zmax += abs(b) * float(a)
        labels.append("loglik")
        ranges.append((math.floor(-(zmax * (1 + 1e-9) + _LN2) * s) - 1, 0))
        return labels, ranges

    def layout(self, spec: QuerySpec) -> Layout:
        labels, ranges = self._row_ranges(spec)
        m = spec.max_rows
        return Layout(
            ["n", *labels],
            [count_range(spec)] + [(min(0, m * lo), max(0, m * hi)) for lo, hi in ranges],
        )

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        _, ranges = self._row_ranges(spec)
        return [1] + [max(abs(lo), abs(hi)) for lo, hi in ranges]

    # ------------------------------------------------------------------ encode
    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        qs, y, report = self._rows(spec, table)
        fs = spec.scale
        s = fs * fs
        k = len(qs) + 1
        beta = np.asarray(self._beta(spec, k), dtype=np.float64)
        n = int(y.size)
        a = np.ones((n, k), dtype=np.float64)
        for j, q in enumerate(qs):
            a[:, j + 1] = q / fs
        z = a @ beta
        p = _spf().expit(z)
        w = p * (1.0 - p)
        r = y - p
        ll = np.where(y == 1.0, -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z))
        _, ranges = self._row_ranges(spec)
        cols: list[FloatArray] = []
        for i in range(k):
            for j in range(i, k):
                cols.append(w * a[:, i] * a[:, j])
        cols += [a[:, i] * r for i in range(k)]
        cols.append(ll)
        out = [n]
        for col, (lo, hi) in zip(cols, ranges, strict=True):
            q = np.rint(col * float(s)).tolist()
            # exact float -> int conversion (values may exceed int64 at large scales)
            out.append(sum(min(max(int(v), lo), hi) for v in q))
        return self._finish(spec, out, report)

    # ------------------------------------------------------------------ decode
    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        feats, target = self._features(spec)
        terms = ["const", *feats]
        k = len(terms)
        released = self._released_n(spec, totals)
        t = released if released is not None else [0] * len(self.layout(spec))
        beta = self._beta(spec, k)
        tol = self._tol(spec)
        rnd = self._round(spec)
        s = spec.scale * spec.scale
        n = t[0]
        xwx = [[0] * k for _ in range(k)]  # H = xwx / s, integers
        pos = 1
        for i in range(k):
            for j in range(i, k):
                xwx[i][j] = xwx[j][i] = t[pos]
                pos += 1
        xr = t[pos : pos + k]  # g = xr / s
        none = [None] * k
        values: dict[str, Any] = {
            "target": target,
            "features": feats,
            "terms": terms,
            "standardize": {kk: list(v) for kk, v in self._standardize(spec, feats).items()},
            "round": rnd,
            "beta": list(beta),
            "n": n,
            "log_likelihood": to_float(Fraction(t[pos + k], s)),
            "coef": none,
            "std_err": none,
            "z": none,
            "p_value": none,
            "ci_lower": none,
            "ci_upper": none,
            "beta_next": None,
            "max_abs_step": None,
            "converged": False,
        }
        notes = [
            f"IRLS round {rnd}; tol {tol:g}; log-likelihood at the round's input beta",
        ]
        if released is None or n < spec.min_cell_size:
            # withheld by the PET gate (never decrypted), or a DP query's small noisy n
            notes.append(f"suppressed: fewer than {spec.min_cell_size} rows")
            values["n"] = None
            values["log_likelihood"] = None
        else:
            inv = int_spd_inverse(xwx)  # H^-1 = s adj / det, exactly
            if inv is None:
                notes.append("singular information matrix (separation or collinearity)")
            else:
                adj, det = inv
                delta = [Fraction(sum(adj[i][j] * xr[j] for j in range(k)), det)
                         for i in range(k)]
                nxt = [Fraction(b) + d for b, d in zip(beta, delta, strict=True)]
                var = [Fraction(s * adj[i][i], det) for i in range(k)]
                q = norm_isf(Fraction(1, 40))  # z_{0.975}
                cis = [ci_bounds(c, v, q) for c, v in zip(nxt, var, strict=True)]
                step = max(abs(d) for d in delta)
                coef = [to_float(c) for c in nxt]
                values.update(
                    {
                        "coef": coef,
                        "std_err": [sqrt_float(v) for v in var],
                        "z": [signed_sqrt_ratio(c, v) for c, v in zip(nxt, var, strict=True)],
                        "p_value": [norm_sf2(c * c / v) for c, v in zip(nxt, var, strict=True)],
                        "ci_lower": [lo for lo, _ in cis],
                        "ci_upper": [hi for _, hi in cis],
                        "beta_next": list(coef),
                        "max_abs_step": to_float(step),
                        "converged": step < Fraction(tol),
                    }
                )
        return _RegressionResult(self.name, values, _irls_summary(values), notes)


def _irls_summary(v: dict[str, Any]) -> list[str]:
    lines = ["Logit Regression Results (federated IRLS)"]
    lines += two_col(
        [
            ("Dep. Variable", v["target"]),
            ("No. Observations", v["n"]),
            ("Model", "Logit"),
            ("Log-Likelihood", v["log_likelihood"]),
            ("Method", "IRLS"),
            ("Round", v["round"]),
            ("converged", v["converged"]),
            ("max |step|", v["max_abs_step"]),
        ]
    )
    lines.append("")
    nan = float("nan")

    def col(key: str) -> list[float]:
        return [nan if x is None else float(x) for x in v[key]]

    lines += coef_table(
        v["terms"], col("coef"), col("std_err"), col("z"), col("p_value"),
        col("ci_lower"), col("ci_upper"), "z",
    )
    return lines


def irls_start(spec: QuerySpec) -> QuerySpec:
    """The first IRLS round: ``params.beta`` = zeros, ``params.round`` = 0."""
    stat = _IRLS
    if spec.statistic != stat.name:
        raise MalformedError(f"statistic: irls_start needs {stat.name!r}")
    feats, _ = stat._features(spec)
    obj = spec.to_json_obj()
    params = {k: v for k, v in obj["params"].items() if k != "previous"}
    obj["params"] = {**params, "beta": [0.0] * (len(feats) + 1), "round": 0}
    return QuerySpec.parse(obj)


def irls_next_spec(spec: QuerySpec, result: StatResult, previous: str | None = None
                   ) -> QuerySpec | None:
    """The next round's spec, or None when ``result`` converged, failed or rounds ran out.
    ``previous`` is the query id of the round that published ``result``: it goes into
    ``params.previous``, which the owners and the verifier require from round 1 on
    (protocol/chain.py: the next beta is that round's published ``beta_next``)."""
    if spec.statistic != _IRLS.name or result.statistic != _IRLS.name:
        raise MalformedError(f"statistic: irls_next_spec needs {_IRLS.name!r}")
    v = result.values
    if v.get("converged") or v.get("beta_next") is None:
        return None
    rnd = _IRLS._round(spec) + 1
    if rnd >= _IRLS._max_rounds(spec):
        return None
    obj = spec.to_json_obj()
    obj["params"] = {**obj["params"], "beta": [float(b) for b in v["beta_next"]], "round": rnd}
    if previous is not None:
        obj["params"]["previous"] = previous
    return QuerySpec.parse(obj)


register(LogisticApprox())
_IRLS = LogisticIRLS()
register(_IRLS)
