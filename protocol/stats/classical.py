"""Classical tests: Welch's two-sample t-test (``"ttest"``) and the chi-squared test of
independence on a two-way table (``"chi2_independence"``).

``ttest`` -- spec: ``columns`` = one numeric column ``x`` (with public bounds); ``group_by``
= one categorical column with **exactly two** declared categories ``[a, b]``; no params.
Encoding per group (declared order): ``n``, ``sum(x)`` (``sum q``, ``q = to_fixed(clip(x))``)
and ``sum(x^2)`` (``sum q^2``, scale^2), exact Python ints.  Gates (suppression before
decryption, :mod:`statledger.protocol.suppression`): the two counts, tested by the PET (it
reveals only ``n < min_cell_size`` per group, an empty group included); when either group is
small nothing of either group is decrypted (complementary: the other count would give the
small one away from a total) and the test is refused with the reason.  A DP query has no
gates: its noisy counts are suppressed by value
(:func:`~statledger.protocol.stats.base.suppress_group_cells`).  Decoding, all exact
rationals: ``m_i = S_i / (n_i s)``, ``v_i = (n_i Q_i - S_i^2) / (n_i (n_i - 1) s^2)``,
``a_i = v_i / n_i``; ``t = (m_a - m_b) / sqrt(a_a + a_b)`` (correctly rounded from the exact
``t^2``), Welch-Satterthwaite ``df = (a_a + a_b)^2 / (a_a^2 / (n_a - 1) + a_b^2 / (n_b -
1))`` (an exact rational, rounded once), the two-sided p value ``I_{df / (df + t^2)}(df / 2,
1 / 2)`` from the exact ``t^2`` and ``df`` (incomplete beta in the fixed decimal context of
:mod:`~statledger.protocol.stats.exact`).
This is ``scipy.stats.ttest_ind(a, b, equal_var=False)`` on the fixed-point values ``q / s``.

``chi2_independence`` -- spec: ``group_by`` = two categorical columns (rows, columns of the
table, each with at least two declared categories); no ``columns``, no params.  It is a
:class:`~statledger.protocol.stats.crosstab.Crosstab` of counts (same encoding, layout,
sensitivity and suppression rule), decoded into Pearson's statistic without continuity
correction -- ``scipy.stats.chi2_contingency(table, correction=False)`` -- ``chi2 = N (sum
O_ij^2 / (R_i C_j) - 1)`` exactly, ``df = (r - 1)(c - 1)``, ``p = Q(df / 2, chi2 / 2)``,
expected counts ``R_i C_j / N`` and Cramer's V ``sqrt(chi2 / (N (min(r, c) - 1)))``.  The
test is refused (statistic None, a note saying why) when a cell is suppressed by the
crosstab rule, when a row or column total is zero (an expected count of zero: scipy raises),
or when a (DP-noised) count is negative.  The cell counts are the crosstab's gates: a
suppressed cell's count is never decrypted (the PET reveals only that it is small, an empty
cell included), so a table with a small cell gives no test at all.

Both decoders are deterministic bit for bit (step 14 re-runs them).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    check_released_totals,
    count_range,
    int_dot,
    int_sum,
    max_abs_fixed,
    max_abs_product,
    product_range,
    register,
    require_params,
    select_rows,
    sum_range,
    suppress_group_cells,
)
from statledger.protocol.stats.crosstab import Crosstab
from statledger.protocol.stats.exact import (
    beta_reg,
    chi2_sf,
    dec_to_float,
    signed_sqrt_ratio,
    sqrt_float,
    to_float,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = ["TTest", "Chi2Independence", "welch_p_value"]

_WIDTH = 3  # n, sum(x), sum(x^2) per group


def welch_p_value(t2: Fraction, df: Fraction) -> float:
    """Two-sided Student t tail ``P(|T| > |t|)`` for a rational ``df > 0`` from the exact
    ``t^2``: ``I_{df / (df + t^2)}(df / 2, 1 / 2)``."""
    if df <= 0 or t2 < 0:
        raise MalformedError("welch_p_value: df must be > 0 and t^2 >= 0")
    return dec_to_float(beta_reg(df / 2, Fraction(1, 2), df / (df + t2)))


class TTest(Statistic):
    """Welch's two-sample t-test of one numeric column between two declared groups."""

    name = "ttest"
    description = "Welch two-sample t-test: t, df, two-sided p value (by a two-level group)"

    def _column(self, spec: QuerySpec) -> str:
        return spec.columns[0]

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        if len(spec.columns) != 1:
            raise MalformedError("columns: ttest needs exactly one numeric column")
        col = spec.columns[0]
        if col not in spec.bounds:
            raise MalformedError(f"columns[0]: column {col!r} needs public bounds (numeric)")
        if len(spec.group_by) != 1:
            raise MalformedError("group_by: ttest needs exactly one grouping column")
        g = spec.group_by[0]
        if len(spec.categories[g]) != 2:
            raise MalformedError(
                f"categories.{g}: ttest compares exactly two groups; "
                f"{len(spec.categories[g])} categories are declared"
            )

    def layout(self, spec: QuerySpec) -> Layout:
        x = self._column(spec)
        g = spec.group_by[0]
        labels: list[str] = []
        ranges: list[tuple[int, int]] = []
        for cat in spec.categories[g]:
            p = f"[{g}={cat}]"
            labels += [f"{p}n", f"{p}sum({x})", f"{p}sum({x}^2)"]
            ranges += [count_range(spec), sum_range(spec, x), product_range(spec, x, x)]
        return Layout(labels, ranges)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        x = self._column(spec)
        return [1, max_abs_fixed(spec, x), max_abs_product(spec, x, x)] * 2

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        x = self._column(spec)
        sel = select_rows(spec, table, numeric=[x])
        out: list[int] = []
        for k in range(2):
            q = sel.fixed[x][sel.cell_mask(k)]
            out += [int(q.size), int_sum(q), int_dot(q, q)]
        return self._finish(spec, out, sel.report)

    def gates(self, spec: QuerySpec) -> list[int]:
        return [0, _WIDTH]

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != 2:
            raise MalformedError("gate bits: one per group expected")
        # a small group (n < min_cell_size, empty included) and, complementary, the other
        # one: with two groups the other's count would give the small one away from a total
        return [not any(small)] * (2 * _WIDTH)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        x = self._column(spec)
        g = spec.group_by[0]
        cats = list(spec.categories[g])
        t = check_released_totals(spec, self.layout(spec), totals, [])
        ns = [int(t[0] or 0), int(t[_WIDTH] or 0)]
        # a withheld count: the PET found a group small (exact query); all counts present:
        # exact and not small, or DP-noisy -- suppressed by value (post-processing)
        gone = t[0] is None or t[_WIDTH] is None
        mask = [True, True] if gone else suppress_group_cells(spec, ns)
        if not any(mask) and None in t:
            raise MalformedError("totals: an entry of an unsuppressed test is withheld")
        s = spec.scale
        values: dict[str, Any] = {
            "column": x,
            "groups": {"column": g, "categories": cats},
            "n": [None if mask[k] else ns[k] for k in range(2)],
            "mean": [None, None],
            "variance": [None, None],
            "mean_difference": None,
            "std_err": None,
            "t": None,
            "df": None,
            "p_value": None,
            "alternative": "two-sided",
            "method": "Welch (unequal variances)",
        }
        notes = [f"difference = mean({g}={cats[0]}) - mean({g}={cats[1]}); "
                 f"fixed-point scale {s}"]
        if any(mask):
            notes.append(f"refused: a group has fewer than {spec.min_cell_size} rows "
                         "(suppressed, with its complement); no test is published")
            return self._result(spec, values, notes)
        if min(ns) < 2:
            notes.append("too few rows: each group needs at least 2 rows for a variance")
            return self._result(spec, values, notes)
        sums = [int(t[k * _WIDTH + 1] or 0) for k in range(2)]
        sq = [int(t[k * _WIDTH + 2] or 0) for k in range(2)]
        mean = [Fraction(sums[k], ns[k] * s) for k in range(2)]
        var = [Fraction(ns[k] * sq[k] - sums[k] * sums[k], ns[k] * (ns[k] - 1) * s * s)
               for k in range(2)]
        values["mean"] = [to_float(m) for m in mean]
        if min(var) < 0:  # only DP noise can do this
            notes.append("a noisy variance is negative: the test is undefined")
            return self._result(spec, values, notes)
        values["variance"] = [to_float(v) for v in var]
        a = [var[k] / ns[k] for k in range(2)]
        se2 = a[0] + a[1]
        diff = mean[0] - mean[1]
        values["mean_difference"] = to_float(diff)
        values["std_err"] = sqrt_float(se2)
        if se2 == 0:
            notes.append("both groups are constant: t and p are undefined")
            return self._result(spec, values, notes)
        t2 = diff * diff / se2
        df = se2 * se2 / (a[0] * a[0] / (ns[0] - 1) + a[1] * a[1] / (ns[1] - 1))
        values["t"] = signed_sqrt_ratio(diff, se2)
        values["df"] = to_float(df)
        values["p_value"] = welch_p_value(t2, df)
        return self._result(spec, values, notes)

    def _result(self, spec: QuerySpec, values: dict[str, Any], notes: list[str]) -> StatResult:
        cats = values["groups"]["categories"]
        g = values["groups"]["column"]
        rows: list[list[Any]] = [
            [f"{g}={cats[k]}", values["n"][k], values["mean"][k], values["variance"][k]]
            for k in range(2)
        ]
        rows += [["difference", None, values["mean_difference"], None],
                 ["std err", None, values["std_err"], None],
                 ["t", None, values["t"], None],
                 ["df", None, values["df"], None],
                 ["p (two-sided)", None, values["p_value"], None]]
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"Welch two-sample t-test: {values['column']} by {g}",
            header=["", "n", "mean", "variance"],
            rows=rows,
            notes=notes,
        )


class Chi2Independence(Crosstab):
    """Pearson's chi-squared test of independence of two categorical columns."""

    name = "chi2_independence"
    description = "chi-squared test of independence on a two-way table of counts"

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ())
        if len(spec.group_by) != 2:
            raise MalformedError("group_by: chi2_independence needs two categorical columns "
                                 "(rows, columns)")
        if spec.columns:
            raise MalformedError("columns: chi2_independence takes no columns (use group_by)")
        for g in spec.group_by:
            if len(spec.categories[g]) < 2:
                raise MalformedError(f"categories.{g}: at least two categories are needed")

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        # the crosstab's decoding and suppression rule, unchanged: a suppressed cell's count
        # is None (withheld by the PET gate, or suppressed by value for a DP query)
        table = super().decode(spec, totals).values
        mask: list[list[bool]] = table["suppressed"]
        r_cats = list(spec.categories[spec.group_by[0]])
        c_cats = list(spec.categories[spec.group_by[1]])
        R, C = len(r_cats), len(c_cats)
        values: dict[str, Any] = {
            "rows": table["rows"],
            "columns": table["columns"],
            "counts": table["counts"],
            "suppressed": mask,
            "expected": None,
            "row_totals": None,
            "column_totals": None,
            "total": None,
            "chi2": None,
            "df": (R - 1) * (C - 1),
            "p_value": None,
            "cramers_v": None,
            "correction": False,
        }
        notes = ["Pearson chi-squared without continuity correction"]
        if any(any(row) for row in mask):
            notes.append(f"refused: a cell is suppressed (fewer than {spec.min_cell_size} "
                         "rows, or complementary); no test is published")
            return self._chi2_result(spec, values, notes)
        obs = [[int(v) for v in row] for row in table["counts"]]
        if any(v < 0 for row in obs for v in row):
            notes.append("refused: a (noisy) count is negative")
            return self._chi2_result(spec, values, notes)
        rows = [sum(obs[i]) for i in range(R)]
        cols = [sum(obs[i][j] for i in range(R)) for j in range(C)]
        n = sum(rows)
        values.update({"row_totals": rows, "column_totals": cols, "total": n})
        if min(rows) == 0 or min(cols) == 0:
            notes.append("refused: a row or column total is zero (an expected count is zero)")
            return self._chi2_result(spec, values, notes)
        ratio = sum((Fraction(obs[i][j] ** 2, rows[i] * cols[j])
                     for i in range(R) for j in range(C)), Fraction(0))
        chi2 = n * ratio - n
        df = (R - 1) * (C - 1)
        values.update({
            "expected": [[to_float(Fraction(rows[i] * cols[j], n)) for j in range(C)]
                         for i in range(R)],
            "chi2": to_float(chi2),
            "p_value": chi2_sf(chi2, df),
            "cramers_v": sqrt_float(chi2 / (n * (min(R, C) - 1))),
        })
        return self._chi2_result(spec, values, notes)

    def _chi2_result(self, spec: QuerySpec, values: dict[str, Any],
                     notes: list[str]) -> StatResult:
        r = values["rows"]
        c = values["columns"]
        header = [f"{r['column']} \\ {c['column']}", *c["categories"]]
        rows: list[list[Any]] = [[cat, *values["counts"][i]]
                                 for i, cat in enumerate(r["categories"])]
        width = len(header)
        for label, key in (("chi2", "chi2"), ("df", "df"), ("p value", "p_value"),
                           ("Cramer's V", "cramers_v")):
            rows.append([label, values[key]] + [""] * (width - 2))
        if any(any(m) for m in values["suppressed"]):
            notes.append(f"'.' = suppressed (fewer than {spec.min_cell_size} rows, or "
                         "complementary)")
        return StatResult(
            statistic=self.name,
            values=values,
            title=f"chi-squared test of independence: {r['column']} x {c['column']}",
            header=header,
            rows=rows,
            notes=notes,
        )


register(TTest())
register(Chi2Independence())
