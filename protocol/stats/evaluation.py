"""Model evaluation (``"model_evaluation"``): how good a published model is on the owners' rows.

The model is not the querier's to choose: ``params.previous`` names the query id of an
earlier fit (``linear_regression``, ``logistic_irls`` or ``logistic_approx``, named again in
``params.model``) whose published result holds the coefficients.  The spec repeats that
fit's ``target``, ``features``, ``standardize`` (logistic) and ``coef`` (intercept first) so
every party can encode and lay out the query from the spec alone; step 8
(:mod:`statledger.protocol.chain`, run by every provider before it answers, by every compute
node and by the verifier) checks, with the fit's query and result entries that travel with
the query, that they are exactly the published ones (:func:`check_model_reference`).  Build
such a spec with :func:`evaluation_spec`.  Without this rule a querier would choose ``coef``
freely and each evaluation would be an arbitrary weighted probe of the rows.

Spec: ``columns`` = target + features (as in the fit), each with public ``bounds`` (they may
differ from the fit's: the evaluation rows are the owners' current rows, clipped to these);
no ``group_by``; filters as usual.  Per row, with ``a_j`` the dequantised feature actually
used by the fit (``to_fixed(x') / scale``, ``x'`` the clipped and, for logistic, standardized
value) and ``eta = b_0 + sum_j b_j a_j``:

* **linear** (``model = linear_regression``): residual ``r = y - eta`` (``y`` the
  dequantised target), encoded as ``e = rint(r s)`` (``s`` = scale; quantisation error
  ``<= 1/(2 s)`` per row).  Entries: ``n``, ``sum(y)`` (scale), ``sum(y^2)`` (scale^2),
  ``sum(e^2)`` (scale^2), ``sum(|e|)`` (scale).  Decoded exactly: ``MSE = sum e^2 / (n
  s^2)``, ``RMSE = sqrt(MSE)``, ``MAE = sum |e| / (n s)``, ``R^2 = 1 - n sum e^2 / (n
  sum(y^2) - sum(y)^2)`` (sklearn's ``r2_score``, ``mean_squared_error``,
  ``mean_absolute_error`` on the quantised rows).
* **logistic** (``model`` = ``logistic_irls`` / ``logistic_approx``; target 0/1): score
  ``p = 1 / (1 + e^-eta)``; entries ``n_pos``, ``n_neg`` (rows with ``y = 1`` / ``0``), ``tp`` and
  ``fp`` (rows predicted positive, ``p >= threshold``, ``params.threshold`` default 0.5),
  ``sum(loss)`` with ``loss = -[y ln p + (1 - y) ln(1 - p)]`` encoded ``rint(loss s)``, and
  the **score histogram per class**: ``params.bins`` (default 100, at most 1000) equal bins
  of ``[0, 1]``, bin ``min(floor(p B), B - 1)``, the ``B`` counts of the positive rows then
  the ``B`` counts of the negative rows.  Decoded exactly: log-loss ``sum(loss) / (n s)``,
  accuracy, precision, recall, F1 (``2 tp / (2 tp + fp + fn)``) and ROC AUC by the trapezoid
  over the histogram thresholds: ``sum_i pos_i (neg_{<i} + neg_i / 2) / (P N)`` -- exactly
  sklearn's ``roc_auc_score`` of the binned scores (ties count one half); against the
  unbinned scores the difference is at most the share of (positive, negative) pairs that
  share a bin.

Ranges come from the spec alone: ``|eta| <= |b_0| + sum |b_j| max|a_j|`` (exact rationals),
so ``|r|`` and ``loss <= |eta| + ln 2 < |eta| + 1`` are bounded; every per-row value is
clamped into its per-row range (a no-op but for float rounding at the edge).

Suppression before decryption (:mod:`statledger.protocol.suppression`): gates ``n``
(linear) or ``n_pos`` and ``n_neg`` (logistic), tested by the PET (it reveals only "below
``min_cell_size``", empty included); when a gate is small nothing at all is decrypted (a
logistic evaluation needs both classes).  A DP query has no gates: its noisy counts are
suppressed by value.  What a released evaluation reveals: the sums above and the per-class
score histogram (``2 B`` counts, small bins included), see docs/privacy.md.

Decoding is deterministic bit for bit (step 14): exact rationals rounded once, correctly
rounded square roots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import fixed_bounds, to_fixed
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    check_released_totals,
    count_range,
    is_finite_number,
    max_abs_fixed,
    max_abs_product,
    product_range,
    register,
    require_no_group_by,
    require_params,
    select_rows,
    sum_range,
    suppress_cells,
)
from statledger.protocol.stats.exact import sqrt_float, to_float
from statledger.protocol.stats.logistic import LogisticIRLS
from statledger.protocol.stats.ols import check_column_list, check_columns_listed, check_target

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = [
    "ModelEvaluation",
    "MODELS",
    "DEFAULT_BINS",
    "DEFAULT_THRESHOLD",
    "check_model_reference",
    "evaluation_spec",
]

#: the fits whose published coefficients can be evaluated, and their kind
MODELS: dict[str, str] = {
    "linear_regression": "linear",
    "logistic_irls": "logistic",
    "logistic_approx": "logistic",
}
DEFAULT_BINS = 100
MAX_BINS = 1000
DEFAULT_THRESHOLD = 0.5
_MAX_ABS_COEF = 1e12
_ID_LEN = 64

FloatArray = npt.NDArray[np.float64]

#: the fit's standardization rule (``x' = (clip(x) - center) / spread``), reused as is
_LOGISTIC = LogisticIRLS()


def _same_numbers(a: Any, b: Any) -> bool:
    """Two lists of the same finite numbers, exactly (an int and a float are the same number
    when equal as rationals: canonical JSON writes 1.0 as 1)."""
    return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
            and all(is_finite_number(x) and is_finite_number(y) and Fraction(x) == Fraction(y)
                    for x, y in zip(a, b, strict=True)))


def _kind(spec: QuerySpec) -> str:
    m = spec.params.get("model")
    if not isinstance(m, str) or m not in MODELS:
        raise MalformedError(f"params.model: must be one of {', '.join(MODELS)}")
    return MODELS[m]


def _cols(spec: QuerySpec) -> tuple[list[str], str]:
    feats = check_column_list(spec, "features")
    return feats, check_target(spec, feats)


def _coef(spec: QuerySpec) -> list[Fraction]:
    feats, _ = _cols(spec)
    c = spec.params.get("coef")
    if not isinstance(c, list) or len(c) != len(feats) + 1:
        raise MalformedError(f"params.coef: must be the fit's {len(feats) + 1} coefficients "
                             "(intercept first)")
    for i, v in enumerate(c):
        if not is_finite_number(v) or abs(v) > _MAX_ABS_COEF:
            raise MalformedError(f"params.coef[{i}]: must be a finite number, |coef| <= 1e12")
    return [Fraction(v) for v in c]


def _threshold(spec: QuerySpec) -> float:
    t = spec.params.get("threshold", DEFAULT_THRESHOLD)
    if not is_finite_number(t) or not 0 < t < 1:
        raise MalformedError("params.threshold: must be a number in (0, 1)")
    return float(t)


def _bins(spec: QuerySpec) -> int:
    b = spec.params.get("bins", DEFAULT_BINS)
    if isinstance(b, bool) or not isinstance(b, int) or not 2 <= b <= MAX_BINS:
        raise MalformedError(f"params.bins: must be an integer in [2, {MAX_BINS}]")
    return b


def _feature_bounds(spec: QuerySpec, feats: Sequence[str]) -> list[tuple[int, int]]:
    if _kind(spec) == "logistic":
        return _LOGISTIC._feature_bounds(spec, feats)
    return [fixed_bounds(*spec.bounds[f], spec.scale) for f in feats]


def _eta_bound(spec: QuerySpec) -> tuple[Fraction, Fraction]:
    """Exact ``[min eta, max eta]`` over the feature bounds (corner sums)."""
    feats, _ = _cols(spec)
    coef = _coef(spec)
    lo = hi = coef[0]
    for b, (flo, fhi) in zip(coef[1:], _feature_bounds(spec, feats), strict=True):
        ends = (b * Fraction(flo, spec.scale), b * Fraction(fhi, spec.scale))
        lo += min(ends)
        hi += max(ends)
    return lo, hi


def _floor(q: Fraction) -> int:
    return q.numerator // q.denominator


def _ceil(q: Fraction) -> int:
    return -((-q.numerator) // q.denominator)


def _residual_range(spec: QuerySpec) -> tuple[int, int]:
    """Per-row range of ``e = rint(r s)``."""
    _, target = _cols(spec)
    ylo, yhi = fixed_bounds(*spec.bounds[target], spec.scale)
    elo, ehi = _eta_bound(spec)
    s = spec.scale
    return _floor(ylo - ehi * s) - 1, _ceil(yhi - elo * s) + 1


def _loss_max(spec: QuerySpec) -> int:
    """Per-row bound of ``rint(loss s)``: ``loss <= |eta| + ln 2 < |eta| + 1``."""
    elo, ehi = _eta_bound(spec)
    return _ceil((max(abs(elo), abs(ehi)) + 1) * spec.scale) + 1


def _scaled(r: tuple[int, int], m: int) -> tuple[int, int]:
    return min(0, m * r[0]), max(0, m * r[1])


class ModelEvaluation(Statistic):
    """Metrics of a published linear or logistic model on the owners' rows."""

    name = "model_evaluation"
    description = ("a published model on the owners' rows: R^2/RMSE/MAE (linear); log-loss, "
                   "accuracy, precision, recall, F1, ROC AUC (logistic)")

    def validate(self, spec: QuerySpec) -> None:
        kind = _kind(spec)
        extra = ("standardize", "threshold", "bins") if kind == "logistic" else ()
        require_params(spec, ("previous", "model", "target", "features", "coef", *extra),
                       ("previous", "model", "target", "features", "coef"))
        require_no_group_by(spec, self.name)
        prev = spec.params["previous"]
        if (not isinstance(prev, str) or len(prev) != _ID_LEN
                or any(ch not in "0123456789abcdef" for ch in prev)):
            raise MalformedError("params.previous: expected the fit's query id "
                                 "(64 lowercase hex digits)")
        feats, target = _cols(spec)
        check_columns_listed(spec, [*feats, target])
        _coef(spec)
        if kind == "logistic":
            lo, hi = spec.bounds[target]
            if lo > 0 or hi < 1:
                raise MalformedError(f"bounds.{target}: a 0/1 target needs bounds containing "
                                     "[0, 1]")
            _LOGISTIC._standardize(spec, feats)
            _threshold(spec)
            _bins(spec)

    # ------------------------------------------------------------------ layout
    def layout(self, spec: QuerySpec) -> Layout:
        _, target = _cols(spec)
        m = spec.max_rows
        if _kind(spec) == "linear":
            elo, ehi = _residual_range(spec)
            emax = max(abs(elo), abs(ehi))
            return Layout(
                ["n", f"sum({target})", f"sum({target}^2)", "sum(residual^2)",
                 "sum(|residual|)"],
                [count_range(spec), sum_range(spec, target), product_range(spec, target, target),
                 (0, m * emax * emax), (0, m * emax)],
            )
        b = _bins(spec)
        labels = ["n_pos", "n_neg", "tp", "fp", "sum(log_loss)"]
        labels += [f"hist[pos,{i}]" for i in range(b)] + [f"hist[neg,{i}]" for i in range(b)]
        ranges = [count_range(spec)] * 4 + [_scaled((0, _loss_max(spec)), m)]
        ranges += [count_range(spec)] * (2 * b)
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        _, target = _cols(spec)
        if _kind(spec) == "linear":
            elo, ehi = _residual_range(spec)
            emax = max(abs(elo), abs(ehi))
            return [1, max_abs_fixed(spec, target), max_abs_product(spec, target, target),
                    emax * emax, emax]
        return [1, 1, 1, 1, _loss_max(spec)] + [1] * (2 * _bins(spec))

    def gates(self, spec: QuerySpec) -> list[int]:
        return [0] if _kind(spec) == "linear" else [0, 1]

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: one per gate expected")
        return [not any(small)] * len(self.layout(spec))

    def _hidden(self, spec: QuerySpec, t: Sequence[int | None]) -> bool:
        """Whether the evaluation is suppressed: a gate withheld (the PET found it small) or,
        for a DP query (every total present, noisy), a count below ``min_cell_size`` (the
        group-cell rule of :func:`~statledger.protocol.stats.base.suppress_cells` for the
        two classes)."""
        gates = self.gates(spec)
        if any(t[g] is None for g in gates):
            return True
        counts = [int(t[g] or 0) for g in gates]
        if _kind(spec) == "linear":
            return counts[0] < spec.min_cell_size
        return any(suppress_cells([counts], spec.min_cell_size)[0])

    # ------------------------------------------------------------------ encode
    def _rows(self, spec: QuerySpec, table: Table
              ) -> tuple[FloatArray, npt.NDArray[np.int64], LocalReport]:
        """``eta`` per selected row and the encoded (clipped, fixed-point) target."""
        feats, target = _cols(spec)
        sel = select_rows(spec, table, numeric=[*feats, target])
        coef = [float(c) for c in _coef(spec)]
        eta = np.full(sel.n, coef[0], dtype=np.float64)
        if _kind(spec) == "logistic":
            std = _LOGISTIC._standardize(spec, feats)
            for b, f in zip(coef[1:], feats, strict=True):
                a = to_fixed(_LOGISTIC._transform(spec, f, sel.values[f], std), spec.scale)
                eta += b * (a.astype(np.float64) / spec.scale)
        else:
            for b, f in zip(coef[1:], feats, strict=True):
                eta += b * (sel.fixed[f].astype(np.float64) / spec.scale)
        return eta, sel.fixed[target], sel.report

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        eta, q, report = self._rows(spec, table)
        n = int(q.size)
        y = q.astype(np.float64) / spec.scale
        if _kind(spec) == "linear":
            lo, hi = _residual_range(spec)
            e = [min(max(int(v), lo), hi) for v in np.rint((y - eta) * spec.scale).tolist()]
            qs = [int(v) for v in q.tolist()]
            out = [n, sum(qs), sum(v * v for v in qs), sum(v * v for v in e),
                   sum(abs(v) for v in e)]
            return self._finish(spec, out, report)
        _, target = _cols(spec)
        if np.any((y != 0.0) & (y != 1.0)):
            raise MalformedError(f"table.{target}: values must be 0 or 1")
        pos = y == 1.0
        p = 1.0 / (1.0 + np.exp(-eta))
        pred = p >= _threshold(spec)
        loss = np.where(pos, np.logaddexp(0.0, -eta), np.logaddexp(0.0, eta))
        lmax = _loss_max(spec)
        lsum = sum(min(max(int(v), 0), lmax) for v in np.rint(loss * spec.scale).tolist())
        b = _bins(spec)
        idx = np.minimum(np.floor(p * b).astype(np.int64), b - 1)
        h_pos = np.bincount(idx[pos], minlength=b)
        h_neg = np.bincount(idx[~pos], minlength=b)
        out = [int(pos.sum()), int((~pos).sum()), int((pred & pos).sum()),
               int((pred & ~pos).sum()), lsum]
        out += [int(v) for v in h_pos.tolist()] + [int(v) for v in h_neg.tolist()]
        return self._finish(spec, out, report)

    # ------------------------------------------------------------------ decode
    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        feats, target = _cols(spec)
        kind = _kind(spec)
        t = check_released_totals(spec, self.layout(spec), totals, [])
        hidden = self._hidden(spec, t)
        if not hidden and None in t:
            raise MalformedError("totals: an entry of an unsuppressed evaluation is withheld")
        values: dict[str, Any] = {
            "model": spec.params["model"],
            "model_query": spec.params["previous"],
            "target": target,
            "features": feats,
            "coef": [to_float(c) for c in _coef(spec)],
            "n": None,
        }
        notes = [f"model: {spec.params['model']} of query {spec.params['previous'][:16]}...; "
                 f"fixed-point scale {spec.scale}"]
        v = [0 if x is None else int(x) for x in t]
        if kind == "linear":
            values.update(dict.fromkeys(("r_squared", "rmse", "mse", "mae")))
            if hidden:
                notes.append(f"suppressed: n < min_cell_size {spec.min_cell_size}; nothing "
                             "is decrypted")
            else:
                values["n"] = v[0]
                self._linear(spec, v, values, notes)
        else:
            values.update(dict.fromkeys(
                ("n_pos", "n_neg", "threshold", "bins", "confusion", "log_loss", "accuracy",
                 "precision", "recall", "f1", "roc_auc", "histogram")))
            values["threshold"] = _threshold(spec)
            values["bins"] = _bins(spec)
            if hidden:
                notes.append(f"suppressed: a class has fewer than {spec.min_cell_size} rows; "
                             "nothing is decrypted")
            else:
                self._logistic(spec, v, values, notes)
        return _EvaluationResult(self.name, values, notes)

    def _linear(self, spec: QuerySpec, v: list[int], values: dict[str, Any],
                notes: list[str]) -> None:
        n, sy, syy, se2, sae = v[:5]
        s = spec.scale
        if n <= 0:
            notes.append("no rows")
            return
        mse = Fraction(se2, n * s * s)
        if mse < 0 or sae < 0:  # only DP noise can do this
            notes.append("a noisy sum of squares is negative: metrics undefined")
            return
        values.update({"mse": to_float(mse), "rmse": sqrt_float(mse),
                       "mae": to_float(Fraction(sae, n * s))})
        tss = n * syy - sy * sy
        if tss > 0:
            values["r_squared"] = to_float(1 - Fraction(n * se2, tss))
        else:
            notes.append("the target is constant in the pooled rows: R-squared is undefined")

    def _logistic(self, spec: QuerySpec, v: list[int], values: dict[str, Any],
                  notes: list[str]) -> None:
        pos, neg, tp, fp, lsum = v[:5]
        n = pos + neg
        values["n"] = n
        b = _bins(spec)
        h_pos, h_neg = v[5:5 + b], v[5 + b:5 + 2 * b]
        fn, tn = pos - tp, neg - fp
        values.update({"n_pos": pos, "n_neg": neg,
                       "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
                       "histogram": {"positive": h_pos, "negative": h_neg}})
        if n <= 0:
            notes.append("no rows")
            return

        def ratio(a: int, d: int, what: str) -> float | None:
            if d <= 0:
                notes.append(f"{what} is undefined (its denominator is 0)")
                return None
            return to_float(Fraction(a, d))

        values["log_loss"] = to_float(Fraction(lsum, n * spec.scale))
        values["accuracy"] = ratio(tp + tn, n, "accuracy")
        values["precision"] = ratio(tp, tp + fp, "precision")
        values["recall"] = ratio(tp, pos, "recall")
        values["f1"] = ratio(2 * tp, 2 * tp + fp + fn, "F1")
        p_tot, n_tot = sum(h_pos), sum(h_neg)
        if p_tot <= 0 or n_tot <= 0 or min(h_pos + h_neg) < 0:
            notes.append("ROC AUC is undefined (one class has no rows)")
            return
        below = 0
        area2 = 0  # 2 x sum pos_i (neg_<i + neg_i / 2)
        for hp, hn in zip(h_pos, h_neg, strict=True):
            area2 += hp * (2 * below + hn)
            below += hn
        values["roc_auc"] = to_float(Fraction(area2, 2 * p_tot * n_tot))
        notes.append(f"ROC AUC by the trapezoid over {b} score bins of width 1/{b}")


class _EvaluationResult(StatResult):
    def __init__(self, statistic: str, values: dict[str, Any], notes: list[str]) -> None:
        keys = (["r_squared", "rmse", "mse", "mae"] if MODELS[values["model"]] == "linear"
                else ["log_loss", "accuracy", "precision", "recall", "f1", "roc_auc"])
        rows: list[list[Any]] = [["n", values["n"]]] + [[k, values[k]] for k in keys]
        if "threshold" in values:
            rows.append(["threshold", values["threshold"]])
        super().__init__(statistic=statistic, values=values,
                         title=f"model evaluation: {values['model']} of {values['target']}",
                         header=["metric", "value"], rows=rows, notes=notes)


# ---------------------------------------------------------------------------- the reference
def check_model_reference(spec: QuerySpec, model_spec: QuerySpec,
                          model_result: Mapping[str, Any]) -> str:
    """Step 8's rule for a model evaluation: ``model_spec`` / ``model_result`` are the query
    and the published result of the query ``params.previous`` names.  MalformedError with
    the reason unless that query fits ``params.model`` on the same target, features (and
    standardization) and its published ``coef`` are exactly ``params.coef``.  Returns a
    detail line."""
    model = spec.params.get("model")
    if model_spec.statistic != model:
        raise MalformedError(f"the referenced query is a {model_spec.statistic!r}, not the "
                             f"{model!r} fit params.model names")
    if model not in MODELS:
        raise MalformedError(f"{model!r} is not a model statistic")
    if model_result.get("statistic") != model_spec.statistic:
        raise MalformedError("the referenced result is not the result of a model fit")
    for key in ("target", "features"):
        if model_spec.params.get(key) != spec.params.get(key):
            raise MalformedError(f"params.{key} differs from the fit's")
    if model_spec.params.get("standardize", {}) != spec.params.get("standardize", {}):
        raise MalformedError("params.standardize differs from the fit's")
    coef = model_result.get("coef")
    if not isinstance(coef, list) or not all(is_finite_number(c) for c in coef):
        raise MalformedError("the referenced result holds no model (no coefficients: "
                             "suppressed or singular)")
    if not _same_numbers(coef, spec.params.get("coef")):
        raise MalformedError("params.coef is not the fit's published coef (a forged model)")
    return f"model = the published coef of {model} query {spec.params['previous'][:16]}..."


def evaluation_spec(model_spec: QuerySpec, model_query_id: str, model_result: Mapping[str, Any],
                    **overrides: Any) -> QuerySpec:
    """The ``model_evaluation`` spec of a published fit: its columns, bounds, scale and row
    limits, ``params`` naming the fit and copying its coefficients; ``threshold`` and
    ``bins`` (logistic) and any other spec field (``bounds``, ``filters``, ``min_cell_size``,
    ...) in ``overrides``."""
    from statledger.protocol.query import QuerySpec

    if model_spec.statistic not in MODELS:
        raise MalformedError(f"{model_spec.statistic!r} is not a model fit "
                             f"({', '.join(MODELS)})")
    coef = model_result.get("coef")
    if not isinstance(coef, list) or not all(is_finite_number(c) for c in coef):
        raise MalformedError("the fit's result holds no coefficients (suppressed or singular)")
    src = model_spec.to_json_obj()
    params: dict[str, Any] = {
        "previous": model_query_id, "model": model_spec.statistic,
        "target": src["params"]["target"], "features": list(src["params"]["features"]),
        "coef": list(coef),
    }
    if "standardize" in src["params"]:
        params["standardize"] = src["params"]["standardize"]
    for key in ("threshold", "bins"):
        if key in overrides:
            params[key] = overrides.pop(key)
    obj: dict[str, Any] = {
        "version": 1, "statistic": "model_evaluation", "columns": src["columns"],
        "bounds": src["bounds"], "scale": src["scale"], "max_rows": src["max_rows"],
        "min_cell_size": src["min_cell_size"], "min_providers": src["min_providers"],
        "params": params,
    }
    obj.update(overrides)
    return QuerySpec.parse(obj)


register(ModelEvaluation())
