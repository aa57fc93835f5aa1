"""Statistics over vertically partitioned data: ``vertical_regression`` and
``vertical_covariance``.

Two owners hold different columns about the same people, linked by an identifier column.
The cryptographic protocol (row alignment, per-row encryption, proved homomorphic products)
is :mod:`statledger.protocol.vertical`; this module holds what every statistic holds: the
spec's parameters, the public layout of the released totals, and the exact decoding.

Spec (``params``)::

    "partition": {"kind": "vertical", "id_column": "pid",
                  "owners": ["provider-1", "provider-2"],
                  "columns": {"provider-1": ["x1", "x2"], "provider-2": ["x3", "y"]}}

``owners[0]`` is owner A (it encrypts its rows), ``owners[1]`` owner B (it multiplies).
Every bounded column of ``columns`` belongs to exactly one owner.  ``vertical_regression``
also takes ``target`` and ``features`` (as ``linear_regression``; an intercept is included);
``vertical_covariance`` reads every partitioned column.

Released totals (the layout; all over the rows present at both owners, ``I``): ``n = |I|``,
``sum(v)`` and ``sum(v*w)`` (``v <= w``) of the values shifted by their encoded lower bound,
``u_v = to_fixed(clip(v)) - lo_v >= 0``.  That is exactly the gram block of
:func:`statledger.protocol.stats.ols.gram_layout` with each column's shift at its lower bound
(the centred cross products are shift-invariant), so the fit is decoded by
:func:`statledger.protocol.stats.ols.ols_from_totals` -- nothing is solved twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any

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
    register,
    require_no_group_by,
    require_params,
)
from statledger.protocol.stats.exact import sqrt_float, to_float
from statledger.protocol.stats.ols import (
    GramColumn,
    _ols_summary,
    _RegressionResult,
    check_column_list,
    check_columns_listed,
    check_target,
    ols_from_totals,
)

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = [
    "Partition",
    "VerticalCovariance",
    "VerticalRegression",
    "PRODUCT_BITS",
    "b_limb_bits",
    "block_columns",
    "is_vertical_statistic",
    "pair_index",
    "partition_of",
]

_ID_MAX = 128
#: Bits of the largest decrypted cross-product (the discrete-log search bound).
PRODUCT_BITS = 36
#: Limb width of the per-row encryption (that of :mod:`statledger.proofs.vector`).
_LIMB_BITS = 16


def b_limb_bits(spec: QuerySpec) -> int:
    """Limb width ``lb`` of owner B's multipliers: the largest (at most 16) with ``max_rows
    * (2^a - 1) * (2^lb - 1) < 2^PRODUCT_BITS``, ``a`` the widest limb of owner A's
    columns; :class:`MalformedError` when none fits."""
    part = partition_of(spec)
    a_bits = 1
    for c in part.columns[part.a]:
        g = gram_col(spec, c)
        a_bits = max(a_bits, min(_LIMB_BITS, max(1, (g.hi - g.lo).bit_length())))
    lb = min(16, PRODUCT_BITS - spec.max_rows.bit_length() - a_bits)
    if lb < 1:
        raise MalformedError("max_rows: too many rows for a vertical query with these bounds "
                             f"(the cross-products must stay below 2^{PRODUCT_BITS}); lower "
                             "max_rows, the scale or owner A's bounds")
    return lb


class Partition:
    """The parsed ``params.partition`` of a vertical spec."""

    def __init__(self, id_column: str, owners: tuple[str, str], columns: dict[str, list[str]]):
        self.id_column = id_column
        self.owners = owners
        self.columns = columns

    @property
    def a(self) -> str:
        return self.owners[0]

    @property
    def b(self) -> str:
        return self.owners[1]

    def owner_of(self, column: str) -> str:
        for o in self.owners:
            if column in self.columns[o]:
                return o
        raise MalformedError(f"params.partition.columns: column {column!r} has no owner")


def partition_of(spec: QuerySpec) -> Partition:
    """Parse and check ``params.partition`` (raises :class:`MalformedError` naming the field)."""
    p = spec.params.get("partition")
    where = "params.partition"
    if not isinstance(p, dict):
        raise MalformedError(f"{where}: required, an object")
    extra = set(p) - {"kind", "id_column", "owners", "columns"}
    if extra:
        raise MalformedError(f"{where}: unknown field(s) {sorted(extra)}")
    if p.get("kind") != "vertical":
        raise MalformedError(f"{where}.kind: must be 'vertical'")
    idc = p.get("id_column")
    if not isinstance(idc, str) or not 1 <= len(idc) <= _ID_MAX:
        raise MalformedError(f"{where}.id_column: must be a column name")
    if spec.is_declared(idc):
        raise MalformedError(f"{where}.id_column: {idc!r} must not be a declared data column")
    owners = p.get("owners")
    if (not isinstance(owners, list) or len(owners) != 2
            or not all(isinstance(o, str) and 1 <= len(o) <= _ID_MAX for o in owners)):
        raise MalformedError(f"{where}.owners: must list exactly two owner ids")
    if owners[0] == owners[1]:
        raise MalformedError(f"{where}.owners: the two owners must differ")
    cols = p.get("columns")
    if not isinstance(cols, dict) or set(cols) != set(owners):
        raise MalformedError(f"{where}.columns: must map each of the two owners to its columns")
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for o in owners:
        lst = cols[o]
        if not isinstance(lst, list) or not lst:
            raise MalformedError(f"{where}.columns.{o}: a non-empty list of column names")
        for c in lst:
            if not isinstance(c, str) or c not in spec.bounds:
                raise MalformedError(
                    f"{where}.columns.{o}: column {c!r} has no bounds (numeric)")
            if c in seen:
                raise MalformedError(f"{where}.columns.{o}: column {c!r} listed twice")
            seen.add(c)
        out[o] = list(lst)
    if spec.filters:
        raise MalformedError("filters: not supported on vertically partitioned data")
    if spec.pull is not None:
        raise MalformedError("pull: the owners of a vertical query answer in three ordered "
                             "phases the querier drives; pull mode is not supported")
    require_no_group_by(spec, spec.statistic)
    if spec.privacy.mechanism != "none":
        raise MalformedError("privacy: differential privacy is not supported on vertical "
                             "statistics yet")
    return Partition(idc, (owners[0], owners[1]), out)


def gram_col(spec: QuerySpec, column: str) -> GramColumn:
    """Column ``column`` shifted by its encoded lower bound (values ``u >= 0``)."""
    lo, hi = fixed_bounds(*spec.bounds[column], spec.scale)
    return GramColumn(column, lo, hi, lo, spec.scale)


def block_columns(spec: QuerySpec) -> list[str]:
    """Column order of the released block: ``[*features, target]`` for the regression,
    owner A's then owner B's columns for the covariance."""
    if spec.statistic == VerticalRegression.name:
        feats = check_column_list(spec, "features")
        return [*feats, check_target(spec, feats)]
    part = partition_of(spec)
    return [*part.columns[part.a], *part.columns[part.b]]


def pair_index(k: int) -> list[tuple[int, int]]:
    """The ``(v, w)`` pairs of the block, ``v <= w`` in block order."""
    return [(i, j) for i in range(k) for j in range(i, k)]


def block_layout(spec: QuerySpec) -> Layout:
    names = block_columns(spec)
    cols = [gram_col(spec, c) for c in names]
    labels = ["n"]
    ranges = [count_range(spec)]
    for c in cols:
        labels.append(f"sum({c.name})")
        ranges.append((0, spec.max_rows * (c.hi - c.lo)))
    for i, j in pair_index(len(cols)):
        labels.append(f"sum({cols[i].name}*{cols[j].name})")
        ranges.append((0, spec.max_rows * (cols[i].hi - cols[i].lo) * (cols[j].hi - cols[j].lo)))
    return Layout(labels, ranges)


class _Vertical(Statistic):
    """Shared parts: the layout is the released block; one owner alone cannot encode."""

    def layout(self, spec: QuerySpec) -> Layout:
        return block_layout(spec)

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        lay = block_layout(spec)
        return [max(1, hi // spec.max_rows) for _lo, hi in lay.ranges]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        raise MalformedError(
            f"{self.name}: vertically partitioned; each owner contributes through "
            "statledger.protocol.vertical, not one encoded vector")

    def gates(self, spec: QuerySpec) -> list[int]:
        # No PET phase: ``n`` is public (the popcount of owner B's mask), and
        # statledger.protocol.vertical.release_ciphertexts applies the min_cell_size rule to
        # it before anything is decrypted.
        return []

    def _totals(self, spec: QuerySpec, totals: Sequence[int | None]) -> list[int]:
        partial = check_released_totals(spec, self.layout(spec), totals, [0])
        if (partial[0] or 0) >= spec.min_cell_size and None in partial:
            raise MalformedError("totals: an entry of an unsuppressed result is withheld")
        return [0 if v is None else int(v) for v in partial]


class VerticalRegression(_Vertical):
    """OLS with intercept over the joined rows of two owners (statsmodels' ``OLS``)."""

    name = "vertical_regression"
    description = "OLS with intercept over columns held by two owners (vertical partition)"

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("target", "features", "partition"),
                       ("target", "features", "partition"))
        part = partition_of(spec)
        feats = check_column_list(spec, "features")
        target = check_target(spec, feats)
        check_columns_listed(spec, [*feats, target])
        listed = set(part.columns[part.a]) | set(part.columns[part.b])
        if listed != {*feats, target}:
            raise MalformedError("params.partition.columns: must assign exactly the target "
                                 "and the features to the two owners")
        b_limb_bits(spec)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = self._totals(spec, totals)
        names = block_columns(spec)
        values, notes = ols_from_totals(spec, [gram_col(spec, c) for c in names], t)
        values["target"] = names[-1]
        values["features"] = names[:-1]
        notes.append("vertically partitioned: rows present at both owners")
        return _RegressionResult(self.name, values, _ols_summary(values), notes)


class VerticalCovariance(_Vertical):
    """Means, covariance (ddof 1) and Pearson correlation of every partitioned column."""

    name = "vertical_covariance"
    description = "covariance and correlation of columns held by two owners (vertical)"

    def validate(self, spec: QuerySpec) -> None:
        require_params(spec, ("partition",), ("partition",))
        part = partition_of(spec)
        check_columns_listed(spec, [*part.columns[part.a], *part.columns[part.b]])
        b_limb_bits(spec)

    def decode(self, spec: QuerySpec, totals: Sequence[int | None]) -> StatResult:
        t = self._totals(spec, totals)
        names = block_columns(spec)
        cols = [gram_col(spec, c) for c in names]
        k = len(cols)
        n = t[0]
        values: dict[str, Any] = {"columns": names, "n": n, "mean": [None] * k,
                                  "covariance": None, "correlation": None}
        notes = [f"fixed-point scale {spec.scale}; rows present at both owners"]
        if n < spec.min_cell_size:
            notes.append(f"suppressed: n = {n} < min_cell_size {spec.min_cell_size}")
            values["n"] = None
            return self._result(values, notes)
        if n < 2:
            notes.append("too few rows: n < 2")
            return self._result(values, notes)
        s = t[1 : 1 + k]
        prod = dict(zip(pair_index(k), t[1 + k :], strict=True))
        a = [[n * prod[(min(i, j), max(i, j))] - s[i] * s[j] for j in range(k)] for i in range(k)]
        sc = spec.scale
        values["mean"] = [to_float(Fraction(s[i] + n * cols[i].shift, n * sc)) for i in range(k)]
        values["covariance"] = [[to_float(Fraction(a[i][j], n * (n - 1) * sc * sc))
                                 for j in range(k)] for i in range(k)]
        corr: list[list[float | None]] = []
        for i in range(k):
            row: list[float | None] = []
            for j in range(k):
                den = a[i][i] * a[j][j]
                if den <= 0:
                    row.append(None)
                    continue
                num = a[i][j]
                # r = a_ij / sqrt(a_ii a_jj), from the exact ratio a_ij^2 / (a_ii a_jj)
                mag = sqrt_float(Fraction(num * num, den))
                row.append(mag if num >= 0 else -mag)
            corr.append(row)
        if any(v is None for r in corr for v in r):
            notes.append("a column is constant in the joined rows: its correlation is undefined")
        values["correlation"] = corr
        return self._result(values, notes)

    def _result(self, values: dict[str, Any], notes: list[str]) -> StatResult:
        names = values["columns"]
        rows: list[list[Any]] = []
        cov = values["covariance"]
        for i, c in enumerate(names):
            cells = cov[i] if cov is not None else [None] * len(names)
            rows.append([c, values["mean"][i], *cells])
        return StatResult(statistic=self.name, values=values, title="Covariance (vertical)",
                          header=["column", "mean", *names], rows=rows, notes=notes)


register(VerticalRegression())
register(VerticalCovariance())


def is_vertical_statistic(spec: QuerySpec) -> bool:
    """Whether ``spec`` is a vertically partitioned query (its owners publish the three
    ``vertical_*`` entries instead of submissions): the one test, which
    :func:`statledger.protocol.vertical.is_vertical` re-exports."""
    return spec.statistic in (VerticalRegression.name, VerticalCovariance.name)
