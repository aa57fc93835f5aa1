"""Certified results for Python users, shaped like statsmodels' results and lifelines' fitters.

Every :class:`Result` holds the numbers the query released *and* the certificate(s) that prove
them: ``.certificate`` (the last round's), ``.certificates`` (every IRLS round's),
``.save(path)`` and ``.verify(trust=...)``, which re-runs the 15 checks of
docs/verification.md on every certificate under the pinned consortium and then checks that
the numbers this object shows are the certified ones, exactly.

* :class:`RegressionResult` (``linear_regression``, ``logistic_irls``, ``logistic_approx``):
  ``params``, ``bse``, ``tvalues``, ``pvalues``, ``conf_int()``, ``nobs`` ...
* :class:`KaplanMeierResult`: ``survival_function_``, ``confidence_interval_``,
  ``median_survival_time_``, ``event_table()``, ``logrank``, ``.plot()``;
* :class:`Result` for every other statistic: ``to_frame()``, ``summary()``.

A differentially private result also states its noise: ``noise_sd`` and ``noise_conf_int()``
(per released number; per coefficient on a :class:`RegressionResult`) read the ``dp`` block
the certified decoder wrote, and ``budget_share`` is the split ``statledger plan`` states.
An exact result has none of them (``None``).

pandas is needed for the tables (``pip install "statledger[notebook]"``), matplotlib for
``.plot()``; a clear :class:`ImportError` says so when one is missing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from statledger.proofs.errors import MalformedError, VerificationError

if TYPE_CHECKING:  # pragma: no cover
    from statledger.protocol.query import QuerySpec
    from statledger.verifier.certificate import Certificate
    from statledger.verifier.report import Report
    from statledger.verifier.verify import TrustPolicy

__all__ = ["Result", "RegressionResult", "KaplanMeierResult", "Summary", "make_result",
           "trust_policy"]


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("this needs pandas: pip install \"statledger[notebook]\" "
                          "(or pip install pandas)") from None
    return pd


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install \"statledger[plot]\" "
                          "(or pip install matplotlib)") from None
    return plt


def trust_policy(trust: Any) -> TrustPolicy:
    """A :class:`~statledger.verifier.verify.TrustPolicy` from a trust file path or a policy."""
    from statledger.verifier.verify import TrustPolicy, load_trust

    if isinstance(trust, TrustPolicy):
        return trust
    if isinstance(trust, (str, Path)):
        return load_trust(trust)
    raise TypeError("trust: expected the consortium's trust file (a path) or a TrustPolicy")


class Summary(str):
    """The text table of :meth:`Result.summary`; shows as a table in a notebook too."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


class Result:
    """One certified result (see the module docstring)."""

    def __init__(self, spec: QuerySpec, values: dict[str, Any], text: str,
                 certificates: Sequence[Certificate], query_ids: Sequence[str],
                 contributors: Sequence[str], trust: TrustPolicy | None = None,
                 left_out: dict[str, str] | None = None,
                 clipped: dict[str, dict[str, str]] | None = None) -> None:
        if not certificates or len(certificates) != len(query_ids):
            raise MalformedError("a result needs one certificate per round")
        self.spec = spec
        self.statistic: str = spec.statistic
        self.values = values
        self._text = text
        self.certificates: list[Certificate] = list(certificates)
        self.query_ids: list[str] = list(query_ids)
        self.contributors: list[str] = list(contributors)
        #: sites that did not contribute (``allow_partial=True``), with the reason
        self.left_out: dict[str, str] = dict(left_out or {})
        #: per site and column, how many values were clipped to the bounds as a bucket
        #: (``"0"``, ``"1-9"``, ``"10-99"``, ``"100+"``; never a count), or withheld
        #: (``"withheld (DP query)"``; ``"withheld (fewer rows than min_cell_size)"`` when the
        #: site selected fewer rows), as each site reported it for the (last) round; not
        #: certified: a site vouches for its own
        self.clipped: dict[str, dict[str, str]] = {
            s: dict(c) for s, c in (clipped or {}).items()}
        self._trust = trust

    # -- what was released ----------------------------------------------------------------
    @property
    def certificate(self) -> Certificate:
        """The certificate of the (last) round: what a reviewer verifies."""
        return self.certificates[-1]

    @property
    def query_id(self) -> str:
        return self.query_ids[-1]

    @property
    def notes(self) -> list[str]:
        return [str(n) for n in self.values.get("notes", [])]

    def to_dict(self) -> dict[str, Any]:
        """The released result as plain JSON (what the certificate's result entry holds)."""
        return dict(self.values)

    # -- the noise of a DP result ------------------------------------------------------------
    @property
    def is_dp(self) -> bool:
        """Whether the numbers carry differential-privacy noise (the result has a ``dp``
        block)."""
        return isinstance(self.values.get("dp"), dict)

    def _noise(self) -> list[tuple[str, float, float, float, float]]:
        from statledger.protocol.calibration import noise_rows

        return noise_rows(self.values)

    @property
    def noise_sd(self) -> Any:
        """The noise standard deviation of every released number, ``{path: sd}`` (paths as
        in ``values["dp"]["value_sd"]``: ``"n"``, ``"value"``, ``"cells[0].n"``...); None
        for an exact result, which has no noise."""
        if not self.is_dp:
            return None
        return {p: sd for p, _v, sd, _lo, _hi in self._noise()}

    def noise_conf_int(self, alpha: float = 0.05) -> Any:
        """The noise interval of every released number, ``{path: (low, high)}``: the
        certified 95 % interval (``values["dp"]["ci95"]``) for ``alpha=0.05``, other levels
        ``value -+ z sd`` with the normal quantile; None for an exact result.  It covers the
        DP noise only, not the sampling error."""
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha: expected 0 < alpha < 1")
        if not self.is_dp:
            return None
        return {p: self._noise_bounds(v, sd, lo, hi, alpha) for p, v, sd, lo, hi in self._noise()}

    @staticmethod
    def _noise_bounds(v: float, sd: float, lo: float, hi: float,
                      alpha: float) -> tuple[float, float]:
        if alpha == 0.05:
            return lo, hi
        from statistics import NormalDist

        z = NormalDist().inv_cdf(1 - alpha / 2)
        return v - z * sd, v + z * sd

    @property
    def budget_share(self) -> dict[str, float] | None:
        """A DP query's budget split, each encoded entry's share of rho: recomputed from the
        spec by the function ``statledger plan`` states it with (it is not logged); None
        for an exact query."""
        from statledger.protocol.calibration import budget_share, is_dp

        return budget_share(self.spec) if is_dp(self.spec) else None

    def summary(self) -> Summary:
        """A text table in the style of statsmodels' ``summary()``."""
        return Summary(self._text)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return (f"<statledger {type(self).__name__} {self.statistic}: "
                f"{len(self.contributors)} owners, {len(self.certificates)} certificate(s), "
                f"query {self.query_id[:12]}>")

    def to_frame(self) -> Any:
        """The result as a pandas DataFrame (one row per published cell)."""
        pd = _pandas()
        v = self.values
        if "cells" in v:
            rows = [{**c.get("cell", {}), **{k: x for k, x in c.items() if k != "cell"}}
                    for c in v["cells"]]
            return pd.DataFrame(rows)
        if self.statistic == "crosstab":
            return _crosstab_frame(pd, v)
        scalars = {k: x for k, x in v.items()
                   if k not in ("statistic", "notes") and not isinstance(x, (list, dict))}
        return pd.DataFrame([scalars])

    def _repr_html_(self) -> str:
        try:
            table = self.to_frame().to_html()
        except ImportError:
            table = f"<pre>{html.escape(self._text)}</pre>"
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f"<div><b>{html.escape(self.statistic)}</b> certified by "
                f"{len(self.certificates)} certificate(s); {len(self.contributors)} data "
                f"owners contributed"
                + (f"; <b>left out: {html.escape(', '.join(self.left_out))}</b>"
                   if self.left_out else "")
                + f"{table}" + (f"<ul>{notes}</ul>" if notes else "") + "</div>")

    # -- the proof --------------------------------------------------------------------------
    def save(self, path: str | Path) -> list[Path]:
        """Write the certificate to ``path``; a multi-round result (IRLS) also writes every
        round's certificate as ``STEM-roundK.SUFFIX`` next to it.  Returns the files."""
        p = Path(path)
        written: list[Path] = []
        if len(self.certificates) > 1:
            for i, c in enumerate(self.certificates, 1):
                rp = p.with_name(f"{p.stem}-round{i}{p.suffix}")
                rp.write_bytes(c.to_bytes())
                written.append(rp)
        p.write_bytes(self.certificate.to_bytes())
        written.append(p)
        return written

    def verify(self, trust: Any = None) -> list[Report]:
        """Verify every round's certificate offline under ``trust`` (the consortium's trust
        file, or by default the one this result's session pinned), then check that the
        numbers this object shows are exactly the certified ones.  Raises
        :class:`~statledger.proofs.errors.VerificationError` naming the step and the party;
        returns the reports (one per round) when everything holds."""
        from statledger.protocol.stats.base import json_safe
        from statledger.verifier.verify import verify_certificate

        if trust is None:
            if self._trust is None:
                raise VerificationError("no trust file: pass trust=the consortium's trust "
                                        "file (statledger consortium export-trust)")
            policy = self._trust
        else:
            policy = trust_policy(trust)
        reports: list[Report] = []
        for i, (cert, qid) in enumerate(zip(self.certificates, self.query_ids, strict=True)):
            report = verify_certificate(cert.to_bytes(), policy, source=f"round {i + 1}")
            report.raise_for_invalid()
            if report.query_id != qid:
                raise VerificationError(f"round {i + 1}: the certificate is for query "
                                        f"{report.query_id}, not {qid}", step="step 14")
            reports.append(report)
        if reports[-1].result != json_safe(self.values):
            raise VerificationError("the numbers of this result are not the certified ones",
                                    step="step 14")
        return reports


def _crosstab_frame(pd: Any, v: dict[str, Any]) -> Any:
    rows = v["rows"]
    cols = v.get("columns")
    col_cats = cols["categories"] if cols else [None]
    out = []
    for i, r in enumerate(rows["categories"]):
        for j, c in enumerate(col_cats):
            rec: dict[str, Any] = {rows["column"]: r}
            if cols:
                rec[cols["column"]] = c
            rec["n"] = v["counts"][i][j]
            rec["suppressed"] = v["suppressed"][i][j]
            if v.get("means") is not None:
                rec[f"mean({v['value']})"] = v["means"][i][j]
            out.append(rec)
    return pd.DataFrame(out)


class RegressionResult(Result):
    """Linear or logistic regression, like a statsmodels ``RegressionResults``."""

    def _series(self, key: str) -> Any:
        pd = _pandas()
        vals = [math.nan if x is None else x for x in self.values[key]]
        return pd.Series(vals, index=list(self.values["terms"]), name=key)

    @property
    def params(self) -> Any:
        return self._series("coef")

    @property
    def bse(self) -> Any:
        return self._series("std_err")

    @property
    def tvalues(self) -> Any:
        return self._series("t" if "t" in self.values else "z")

    @property
    def pvalues(self) -> Any:
        return self._series("p_value")

    @property
    def nobs(self) -> int:
        return int(self.values["n"])

    @property
    def df_resid(self) -> float | None:
        v = self.values.get("df_resid")
        return None if v is None else float(v)

    @property
    def rsquared(self) -> float | None:
        return self.values.get("r_squared")

    @property
    def rsquared_adj(self) -> float | None:
        return self.values.get("adj_r_squared")

    @property
    def fvalue(self) -> float | None:
        return self.values.get("f_statistic")

    @property
    def llf(self) -> float | None:
        return self.values.get("log_likelihood")

    @property
    def converged(self) -> bool | None:
        return self.values.get("converged")

    @property
    def rounds(self) -> int:
        """Rounds (queries) it took: 1, or the IRLS iterations."""
        return len(self.certificates)

    def conf_int(self, alpha: float = 0.05) -> Any:
        """Confidence intervals (columns 0 and 1, like statsmodels): the certified 95% bounds
        for ``alpha=0.05``; other levels from ``params`` and ``bse`` (t with ``df_resid``
        degrees of freedom for OLS, normal for logistic regression)."""
        pd = _pandas()
        terms = list(self.values["terms"])
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha: expected 0 < alpha < 1")
        if alpha == 0.05:
            lo, hi = self.values["ci_lower"], self.values["ci_upper"]
        else:
            from scipy import stats

            df = self.df_resid if "t" in self.values else None
            q = float(stats.t.ppf(1 - alpha / 2, df) if df else stats.norm.ppf(1 - alpha / 2))
            lo = [b - q * s for b, s in zip(self.params, self.bse, strict=True)]
            hi = [b + q * s for b, s in zip(self.params, self.bse, strict=True)]
        return pd.DataFrame({0: lo, 1: hi}, index=terms)

    @property
    def noise_sd(self) -> Any:
        """A DP fit's noise sd per coefficient (a Series by term, NaN for a coefficient not
        released); None for an exact fit.  ``bse`` and ``conf_int()`` are sampling-only."""
        if not self.is_dp:
            return None
        pd = _pandas()
        sds = {p: sd for p, _v, sd, _lo, _hi in self._noise()}
        terms = list(self.values["terms"])
        return pd.Series([sds.get(f"coef[{i}]", math.nan) for i in range(len(terms))],
                         index=terms, name="noise_sd")

    def noise_conf_int(self, alpha: float = 0.05) -> Any:
        """A DP fit's noise interval per coefficient (columns 0 and 1 like ``conf_int()``):
        the certified 95 % one for ``alpha=0.05``, else ``coef -+ z noise_sd``; None for an
        exact fit.  It covers the DP noise only; ``conf_int()`` the sampling error only."""
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha: expected 0 < alpha < 1")
        if not self.is_dp:
            return None
        pd = _pandas()
        rows = {p: self._noise_bounds(v, sd, lo, hi, alpha)
                for p, v, sd, lo, hi in self._noise()}
        terms = list(self.values["terms"])
        got = [rows.get(f"coef[{i}]", (math.nan, math.nan)) for i in range(len(terms))]
        return pd.DataFrame({0: [a for a, _ in got], 1: [b for _, b in got]}, index=terms)

    def to_frame(self) -> Any:
        pd = _pandas()
        ci = self.conf_int()
        stat = "t" if "t" in self.values else "z"
        frame = pd.DataFrame({"coef": self.params, "std err": self.bse, stat: self.tvalues,
                              f"P>|{stat}|": self.pvalues, "[0.025": ci[0], "0.975]": ci[1]})
        if self.is_dp:  # the noise next to the (sampling-only) interval
            frame["noise sd"] = self.noise_sd
        return frame


class KaplanMeierResult(Result):
    """Kaplan–Meier curves (one per group) and the logrank test, like lifelines'
    ``KaplanMeierFitter``: ``survival_function_`` is indexed by ``timeline``; without
    ``group_by`` its one column is ``KM_estimate``, else one column per group label."""

    def _groups(self) -> list[dict[str, Any]]:
        return [g for g in self.values["groups"] if not g.get("suppressed")]

    def _label(self, g: dict[str, Any]) -> str:
        return "KM_estimate" if not self.values.get("group_by") else str(g["label"])

    @property
    def timeline(self) -> list[float]:
        return list(self.values["times"])

    @property
    def suppressed_groups(self) -> list[str]:
        """Groups below the minimum cell size: published without a curve."""
        return [str(g["label"]) for g in self.values["groups"] if g.get("suppressed")]

    def _frame(self, cols: dict[str, tuple[dict[str, Any], str]]) -> Any:
        """Columns ``name -> (group, key)`` over the union of the groups' times.  A coarsened
        curve (``min_cell_size >= 2``: docs/statistics.md) has its own released times: a
        step function, carried forward between them, NaN after its last (truncated)."""
        pd = _pandas()
        times = sorted({float(t) for g, _ in cols.values() for t in g["times"]})
        idx = pd.Index(times or self.timeline, name="timeline")
        out: dict[str, Any] = {}
        for name, (g, key) in cols.items():
            ser = pd.Series(g[key], index=[float(t) for t in g["times"]], dtype=float)
            full = ser.reindex(idx, method="ffill")
            full[idx > ser.index[-1]] = float("nan")
            out[name] = full.to_numpy()
        return pd.DataFrame(out, index=idx)

    @property
    def survival_function_(self) -> Any:
        return self._frame({self._label(g): (g, "survival") for g in self._groups()})

    @property
    def confidence_interval_(self) -> Any:
        level = 1 - float(self.values.get("alpha", 0.05))
        cols: dict[str, tuple[dict[str, Any], str]] = {}
        for g in self._groups():
            cols[f"{self._label(g)}_lower_{level:g}"] = (g, "ci_lower")
            cols[f"{self._label(g)}_upper_{level:g}"] = (g, "ci_upper")
        return self._frame(cols)

    @property
    def median_survival_time_(self) -> Any:
        """The median (None where the curve stays above 0.5): a number without group_by,
        else a Series by group."""
        groups = self._groups()
        if not self.values.get("group_by"):
            return groups[0]["median"] if groups else None
        pd = _pandas()
        return pd.Series({self._label(g): g["median"] for g in groups}, name="median")

    @property
    def logrank(self) -> dict[str, Any] | None:
        """The logrank test across the groups (``test_statistic``, ``p_value``, ``df``)."""
        lr = self.values.get("logrank")
        return None if lr is None else dict(lr)

    def event_table(self, group: str | None = None) -> Any:
        """At risk, observed and censored per grid time (lifelines' ``event_table``)."""
        pd = _pandas()
        groups = self._groups()
        if group is None:
            if len(groups) != 1:
                raise ValueError(f"group: name one of {[self._label(g) for g in groups]}")
            g = groups[0]
        else:
            found = [g for g in groups if self._label(g) == group]
            if not found:
                raise ValueError(f"group: no published group {group!r}")
            g = found[0]
        return pd.DataFrame({"at_risk": g["at_risk"], "observed": g["events"],
                             "censored": g["censored"]},
                            index=pd.Index(g["times"], name="event_at"))

    def to_frame(self) -> Any:
        return self.survival_function_.join(self.confidence_interval_)

    def plot(self, ax: Any = None, ci_show: bool = True, **kwargs: Any) -> Any:
        """Step plot of every published curve with its confidence band (matplotlib);
        returns the axes."""
        plt = _pyplot()
        if ax is None:
            _, ax = plt.subplots()
        for g in self._groups():
            times = g["times"]  # a coarsened curve: its released times only
            label = "KM_estimate" if not self.values.get("group_by") else str(g["label"])
            (line,) = ax.step(times, g["survival"], where="post", label=label, **kwargs)
            if ci_show:
                ax.fill_between(times, g["ci_lower"], g["ci_upper"], step="post",
                                alpha=0.25, color=line.get_color())
        ax.set_xlabel("timeline")
        ax.set_ylabel("survival probability")
        ax.set_ylim(0.0, 1.05)
        ax.legend()
        return ax


_KINDS: dict[str, type[Result]] = {
    "linear_regression": RegressionResult,
    "logistic_irls": RegressionResult,
    "logistic_approx": RegressionResult,
    "cox_regression": RegressionResult,
    "kaplan_meier": KaplanMeierResult,
}


def make_result(outcomes: Sequence[Any], *, trust: TrustPolicy | None = None,
                left_out: dict[str, str] | None = None) -> Result:
    """The :class:`Result` of a query's outcomes (one per round, from
    :func:`statledger.nodes.querier.run_rounds`)."""
    if not outcomes:
        raise MalformedError("no outcome")
    final = outcomes[-1]
    spec = outcomes[0].spec
    cls = _KINDS.get(spec.statistic, Result)
    return cls(spec, final.result.to_dict(), final.result.summary(),
               [o.certificate for o in outcomes], [o.query_id for o in outcomes],
               final.contributors, trust, left_out, getattr(final, "clipped", None))
