"""Shared machinery of every statistic: layout, the ``Statistic`` base class, results,
row selection (filters, missing values, declared categories), group-by cells, exact integer
sums, and small-cell + complementary suppression.

A statistic turns a provider's local rows into a vector of Python ints (``encode``) whose
public per-entry ranges (``layout``) are derived only from the spec; the crypto layer proves
each entry is in its range and adds the vectors of all providers; ``decode`` turns the summed
totals into a :class:`StatResult`.

Row selection (the same for every statistic, see ``docs/queries.md``):

1. every referenced column must be present in the table and all must have the same length;
2. rows with a missing value (NaN / None) in any referenced column are dropped (listwise);
3. rows whose value of a referenced categorical column is not among the declared categories
   are dropped (non-string cells are compared by their text; integral numbers without
   ``.0``, so a 0/1 float column matches categories ``"0"``/``"1"``);
4. filters are applied to the raw (unclipped) values; all filters are AND-ed;
5. numeric values of the selected rows are clipped to their public bounds and encoded at the
   spec's fixed-point scale.

The counts of 2-5 go into the provider's :class:`LocalReport` (never published).
"""

from __future__ import annotations

import difflib
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.fixedpoint import clip, fixed_bounds, to_fixed

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = [
    "CellGated",
    "Layout",
    "RangeExceededError",
    "LocalReport",
    "Selection",
    "StatResult",
    "Statistic",
    "REGISTRY",
    "register",
    "get",
    "Table",
    "select_rows",
    "group_cells",
    "cell_label",
    "cell_prefix",
    "int_sum",
    "int_dot",
    "count_range",
    "sum_range",
    "product_range",
    "max_abs_fixed",
    "max_abs_product",
    "check_totals",
    "check_released_totals",
    "suppress_cells",
    "suppress_group_cells",
    "suppress_small_cells",
    "suppress_small_group_cells",
    "json_safe",
    "format_table",
    "require_numeric",
    "require_categorical",
    "require_no_group_by",
    "require_params",
    "fmt",
    "is_finite_number",
    "round_beta",
    "round_index",
    "round_tol",
    "round_limit",
]

Table = Mapping[str, Any]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


# ---------------------------------------------------------------------------- layout
class RangeExceededError(MalformedError):
    """A local vector does not fit the public layout: clipped values always fit, so the site
    has more rows than ``max_rows``.  The message carries no value."""


@dataclass(frozen=True)
class Layout:
    """Public description of an encoded vector: one label and one inclusive range per entry."""

    labels: list[str]
    ranges: list[tuple[int, int]]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.ranges):
            raise MalformedError("layout: labels and ranges differ in length")
        for label, r in zip(self.labels, self.ranges, strict=True):
            lo, hi = r
            if (
                isinstance(lo, bool)
                or isinstance(hi, bool)
                or not (isinstance(lo, int) and isinstance(hi, int))
            ):
                raise MalformedError(f"layout: range of {label!r} is not a pair of ints")
            if lo > hi:
                raise MalformedError(f"layout: range of {label!r} is empty ({lo} > {hi})")

    def __len__(self) -> int:
        return len(self.ranges)

    def bits(self) -> list[int]:
        """Bit width of each entry (``bit_length(hi - lo)``, at least 1)."""
        return [max(1, (hi - lo).bit_length()) for lo, hi in self.ranges]

    def check(self, values: Sequence[int]) -> None:
        """Raise :class:`MalformedError` unless ``values`` fits this layout exactly."""
        if len(values) != len(self.ranges):
            raise MalformedError(
                f"vector has {len(values)} entries, layout declares {len(self.ranges)}"
            )
        for i, (v, (lo, hi)) in enumerate(zip(values, self.ranges, strict=True)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedError(f"entry {i} ({self.labels[i]}): not an int")
            if not lo <= v <= hi:
                # no value in the message: it would tell a site's row count or data
                raise RangeExceededError(
                    f"entry {i} ({self.labels[i]}) is outside declared range (more rows "
                    "than max_rows?)"
                )


def count_range(spec: QuerySpec) -> tuple[int, int]:
    """Range of a row count: ``[0, max_rows]``."""
    return (0, spec.max_rows)


def sum_range(spec: QuerySpec, column: str) -> tuple[int, int]:
    """Range of ``sum(to_fixed(clip(x)))`` over 0..max_rows rows."""
    lo_f, hi_f = fixed_bounds(*spec.bounds[column], spec.scale)
    return (min(0, spec.max_rows * lo_f), max(0, spec.max_rows * hi_f))


def product_range(spec: QuerySpec, a: str, b: str) -> tuple[int, int]:
    """Range of ``sum(x_f * y_f)`` (fixed-point at ``scale**2``) over 0..max_rows rows.

    For ``a == b`` this is the tight range of a sum of squares.
    """
    alo, ahi = fixed_bounds(*spec.bounds[a], spec.scale)
    if a == b:
        top = max(alo * alo, ahi * ahi)
        return (0, spec.max_rows * top)
    blo, bhi = fixed_bounds(*spec.bounds[b], spec.scale)
    prods = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    return (min(0, spec.max_rows * min(prods)), max(0, spec.max_rows * max(prods)))


def max_abs_fixed(spec: QuerySpec, column: str) -> int:
    """``max(|to_fixed(lo)|, |to_fixed(hi)|)``: the per-row sensitivity of a sum."""
    lo_f, hi_f = fixed_bounds(*spec.bounds[column], spec.scale)
    return max(abs(lo_f), abs(hi_f))


def max_abs_product(spec: QuerySpec, a: str, b: str) -> int:
    """Per-row sensitivity of ``sum(x_f * y_f)``."""
    alo, ahi = fixed_bounds(*spec.bounds[a], spec.scale)
    blo, bhi = fixed_bounds(*spec.bounds[b], spec.scale)
    return max(abs(alo * blo), abs(alo * bhi), abs(ahi * blo), abs(ahi * bhi))


# ---------------------------------------------------------------------------- results
def json_safe(obj: Any) -> Any:
    """Plain JSON value: numpy scalars -> Python, tuples -> lists.

    A NaN or an infinity raises :class:`MalformedError`: a decoder never publishes one (an
    undefined value is an explicit None with a note saying why), and a silent conversion
    would hide a decoder bug from step 14, which compares results exactly."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating, Fraction)):
        f = obj.numerator / obj.denominator if isinstance(obj, Fraction) else float(obj)
        if not math.isfinite(f):
            raise MalformedError(f"result value {f!r} is not finite")
        return f
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    raise MalformedError(f"result value of type {type(obj).__name__} is not JSON")


def is_finite_number(v: Any) -> bool:
    """A JSON number a spec may carry: an int or a finite float, never a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# ------------------------------------------------------- parameters of chained rounds
# Logistic IRLS and Cox run federated Newton rounds chained by ``params.previous``
# (protocol/chain.py); both read their round parameters through these.
def round_beta(spec: QuerySpec, k: int, max_abs: float, what: str) -> list[float]:
    """``params.beta``: ``k`` finite numbers, each ``|b| <= max_abs`` (zeros when absent:
    round 0); ``what`` says what the entries are, for the error message."""
    b = spec.params.get("beta")
    if b is None:
        return [0.0] * k
    if not isinstance(b, list) or len(b) != k:
        raise MalformedError(f"params.beta: must be a list of {k} numbers ({what})")
    for i, v in enumerate(b):
        if not is_finite_number(v) or abs(v) > max_abs:
            bound = f"{max_abs:.0e}".replace("e+0", "e")  # 1e3, 1e6
            raise MalformedError(f"params.beta[{i}]: must be a finite number, |b| <= {bound}")
    return [float(v) for v in b]


def round_index(spec: QuerySpec, cap: int) -> int:
    """``params.round``: an integer in ``0..cap-1`` (0 when absent)."""
    r = spec.params.get("round", 0)
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r < cap:
        raise MalformedError(f"params.round: must be an integer in 0..{cap - 1}")
    return r


def round_tol(spec: QuerySpec, default: float) -> float:
    """``params.tol``: the convergence tolerance, a number in (0, 1)."""
    t = spec.params.get("tol", default)
    if not is_finite_number(t) or not 0 < float(t) < 1:
        raise MalformedError("params.tol: must be a number in (0, 1)")
    return float(t)


def round_limit(spec: QuerySpec, default: int, cap: int) -> int:
    """``params.max_rounds``: an integer in ``1..cap``."""
    m = spec.params.get("max_rounds", default)
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= cap:
        raise MalformedError(f"params.max_rounds: must be an integer in 1..{cap}")
    return m


def fmt(v: Any) -> str:
    """Format one table cell: floats with 6 significant digits, None as a dot."""
    if v is None:
        return "."
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating, Fraction)):
        f = float(v)
        if not math.isfinite(f):
            return "."
        return f"{f:.6g}"
    return str(v)


def format_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()
) -> str:
    """A plain-text table in the style of statsmodels' ``summary()``."""
    cells = [[fmt(c) for c in r] for r in rows]
    ncol = max([len(header)] + [len(r) for r in cells]) if (header or cells) else 0
    head = list(header) + [""] * (ncol - len(header))
    widths = [len(h) for h in head]
    for r in cells:
        for j, c in enumerate(r):
            widths[j] = max(widths[j], len(c))
    total = max(sum(widths) + 2 * max(ncol - 1, 0), len(title), 20)
    lines = [title.center(total).rstrip(), "=" * total]
    if head:
        lines.append(
            "  ".join(
                (h.ljust(w) if j == 0 else h.rjust(w))
                for j, (h, w) in enumerate(zip(head, widths, strict=True))
            ).rstrip()
        )
        lines.append("-" * total)
    for r in cells:
        r = r + [""] * (ncol - len(r))
        lines.append(
            "  ".join(
                (c.ljust(w) if j == 0 else c.rjust(w))
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    lines.append("=" * total)
    lines.extend(notes)
    return "\n".join(lines)


@dataclass
class StatResult:
    """A decoded result.

    ``values`` is the machine-readable body (merged into :meth:`to_dict`); ``header``/``rows``
    is the human table printed by :meth:`summary`; ``notes`` explain suppression, clipping or
    DP.  Subclasses may override :meth:`summary` for richer layouts.
    """

    statistic: str
    values: dict[str, Any]
    title: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ``{"statistic": ..., **values, "notes": [...]}`` (no NaN, no inf)."""
        out: dict[str, Any] = {"statistic": self.statistic}
        body = json_safe(self.values)
        if not isinstance(body, dict):  # pragma: no cover - values is a dict by type
            raise MalformedError("result values must be a dict")
        out.update(body)
        out["notes"] = [str(n) for n in self.notes]
        return out

    def summary(self) -> str:
        """A text table like statsmodels' ``summary()``."""
        return format_table(self.title or self.statistic, self.header, self.rows, self.notes)


# ---------------------------------------------------------------------------- statistic
class Statistic(ABC):
    """One statistic.  Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def validate(self, spec: QuerySpec) -> None:
        """Raise :class:`MalformedError` naming the field (``params.bins: ...``)."""

    @abstractmethod
    def layout(self, spec: QuerySpec) -> Layout:
        """Public labels and ranges of the encoded vector, from the spec only."""

    @abstractmethod
    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        """Encode local rows; also return the (unpublished) local report."""

    def encode(self, spec: QuerySpec, table: Table) -> list[int]:
        """Encode local rows into a vector of ints, each within :meth:`layout`'s range."""
        return self.encode_with_report(spec, table)[0]

    @abstractmethod
    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        """Turn summed (possibly DP-noised) totals into a result.

        Deterministic bit for bit on every machine (step 14 re-runs it and compares exactly):
        exact rational arithmetic rounded once to floats, or decimal arithmetic under the
        fixed context of :mod:`statledger.protocol.stats.exact`; never numpy.linalg, scipy or
        libm.  No NaN or infinity: undefined values are None with a note."""

    @abstractmethod
    def sensitivity(self, spec: QuerySpec) -> list[int]:
        """Per-entry L1 sensitivity to adding or removing one row (for DP calibration)."""

    def gates(self, spec: QuerySpec) -> list[int]:
        """Row-count entries whose smallness decides what is decrypted (suppression before
        decryption, :mod:`statledger.protocol.suppression`): each is tested by the blinded
        shuffled PET, which reveals only ``n < min_cell_size``.  Empty (the default): every
        entry is decrypted in one phase."""
        return []

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        """Per entry of :meth:`layout`, whether it may be decrypted, given one bit per
        :meth:`gates` entry (in that order, ``True`` = small): a pure function of public
        values, re-run by every compute node and the verifier.  A small gate is never
        released."""
        return [True] * len(self.layout(spec))

    def gate_k(self, spec: QuerySpec) -> int:
        """The PET threshold ``k`` of every gate: a gate is *small* iff its count is below
        ``k`` (:func:`statledger.protocol.suppression.pet_inputs` tests ``Enc(n - j)``,
        ``j < k``).  Default ``min_cell_size``; ``1`` for a presence test (``n == 0``: the
        set statistics, which publish presence and never a count)."""
        return spec.min_cell_size

    def decode_gated(self, spec: QuerySpec, totals: Sequence[int | None],
                     small: Sequence[bool]) -> StatResult:
        """Decode a gated query's totals (``None`` at every withheld entry) knowing the
        PET's public gate bits ``small`` (the release entry's, one per :meth:`gates` entry).
        Default: :meth:`decode` (the withheld entries say enough); a statistic whose answer
        *is* the gate bits (presence, :mod:`statledger.protocol.stats.sets`) overrides it."""
        return self.decode(spec, totals)  # type: ignore[arg-type]

    def release_groups(self, spec: QuerySpec, small: Sequence[bool]
                       ) -> list[tuple[int, tuple[int, ...]]]:
        """The release decision as *release groups* ``(target, members)``: the sum of the
        members' entries (coefficient 1) is decrypted as one number, published at ``target``
        (a member); a member's own value never is.  Default: every entry :meth:`release`
        allows, alone.  Kaplan-Meier merges small intervals with the next one
        (:mod:`statledger.protocol.stats.survival`).  Same purity as :meth:`release`."""
        return [(j, (j,)) for j, f in enumerate(self.release(spec, small)) if f]

    #: True when :meth:`decode` takes the wire totals (DP weights included, not rounded or
    #: clamped) and un-weights them itself (:func:`statledger.protocol.calibration.unscale`)
    decodes_wire_totals: ClassVar[bool] = False

    def dp_weights(self, spec: QuerySpec) -> list[int] | None:
        """Per-entry DP weights chosen by the statistic itself (None: the calibration's
        default rule, :func:`statledger.protocol.calibration.weights`)."""
        return None

    def dp_postprocess(self, spec: QuerySpec, totals: Sequence[int | None],
                       entry_var: Sequence[Fraction]) -> list[int | None]:
        """Documented DP post-processing of the unscaled totals before :meth:`decode`, given
        the exact noise variance of every entry (statistic units); deterministic.  Default:
        unchanged (linear regression adds a ridge, :mod:`statledger.protocol.stats.ols`)."""
        return list(totals)

    def onehot_blocks(self, spec: QuerySpec) -> list[int] | None:
        """Cells per block when one row adds exactly one to one cell of every block (or to
        none): a one-record owner then proves its blocks one-hot
        (:mod:`statledger.protocol.validity`).  None: no such structure."""
        return None

    def value_sd(self, spec: QuerySpec, wire_sd: float) -> dict[str, float] | None:
        """Exact noise sd of every released number (result paths) when every wire entry
        carries noise of sd ``wire_sd``; None: the calibration's delta method."""
        return None

    def _finish(
        self, spec: QuerySpec, values: list[int], report: LocalReport
    ) -> tuple[list[int], LocalReport]:
        """Check ``values`` against the layout (defence in depth) and return them."""
        self.layout(spec).check(values)
        return values, report


class CellGated(Statistic):
    """A statistic whose every group-by cell is a block of ``_block(spec)`` entries starting
    with the cell's ``n``: gated by ``n`` (exact, ``min_cell_size >= 2``), a suppressed
    cell -- with its complementary cells, by position (:func:`suppress_small_group_cells`)
    -- withheld whole.  The one rule of count/sum/mean/variance/std and of the moment
    matrices (covariance, correlation, cosine)."""

    def _block(self, spec: QuerySpec) -> int:
        raise NotImplementedError

    def gates(self, spec: QuerySpec) -> list[int]:
        # every cell's n; none at min_cell_size 1.  DP: protocol/suppression.py drops them
        if spec.min_cell_size <= 1:
            return []
        return list(range(0, len(self.layout(spec)), self._block(spec)))

    def release(self, spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
        if len(small) != len(self.gates(spec)):
            raise MalformedError("gate bits: one per cell expected")
        mask = suppress_small_group_cells(spec, small)
        return [not m for m in mask for _ in range(self._block(spec))]

    def _cell_mask(self, spec: QuerySpec, t: Sequence[int | None]) -> list[bool]:
        """Per cell, suppressed: withheld by the PET gate's decision (``None`` totals, never
        decrypted) or, with every total present (exact counts >= min_cell_size, or a DP
        query's noisy ones), by the counts' values (post-processing)."""
        w = self._block(spec)
        cells = len(t) // w
        gone = [t[c * w] is None for c in range(cells)]
        if any(v is None for v in t):
            if spec.privacy.mechanism != "none" or not self.gates(spec):
                raise MalformedError("totals: withheld entries for a query without gates")
            for c in range(cells):
                if any((v is None) != gone[c] for v in t[c * w : (c + 1) * w]):
                    raise MalformedError("totals: a cell is partly withheld")
            if [not g for g in gone for _ in range(w)] != self.release(spec, gone):
                raise MalformedError("totals: the withheld cells are not a release decision "
                                     "of the rule")
            return gone
        return suppress_group_cells(spec, [int(t[c * w] or 0) for c in range(cells)])


REGISTRY: dict[str, Statistic] = {}


def register(stat: Statistic) -> Statistic:
    """Add ``stat`` to :data:`REGISTRY` under ``stat.name`` (one line per statistic)."""
    if stat.name in REGISTRY and type(REGISTRY[stat.name]) is not type(stat):
        raise MalformedError(f"statistic {stat.name!r} registered twice")
    REGISTRY[stat.name] = stat
    return stat


def get(name: str) -> Statistic:
    """The registered statistic ``name``; :class:`MalformedError` if unknown."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        hint = ""
        if isinstance(name, str):
            # the same first word (logistic_regression -> logistic_approx, logistic_irls),
            # else the closest spellings (meen -> mean)
            stem = name.split("_")[0]
            alike = sorted(k for k in REGISTRY if k.split("_")[0] == stem)
            alike = alike or difflib.get_close_matches(name, sorted(REGISTRY), n=3, cutoff=0.6)
            if alike:
                hint = f"; did you mean {' or '.join(alike)}?"
        raise MalformedError(f"statistic: unknown statistic {name!r}{hint} (known: {known})"
                             ) from None


# ---------------------------------------------------------------------------- validation helpers
def require_numeric(spec: QuerySpec, column: str, where: str) -> None:
    """``column`` must have public bounds."""
    if column not in spec.bounds:
        raise MalformedError(f"{where}: column {column!r} needs public bounds (numeric)")


def require_categorical(spec: QuerySpec, column: str, where: str) -> None:
    """``column`` must have declared categories."""
    if column not in spec.categories:
        raise MalformedError(f"{where}: column {column!r} needs declared categories")


def require_no_group_by(spec: QuerySpec, name: str) -> None:
    """Reject ``group_by`` for statistics that do not support it."""
    if spec.group_by:
        raise MalformedError(f"group_by: statistic {name!r} does not support group_by")


def require_params(spec: QuerySpec, allowed: Sequence[str], required: Sequence[str] = ()) -> None:
    """Reject unknown ``params`` keys and missing required ones."""
    for key in spec.params:
        if key not in allowed:
            raise MalformedError(
                f"params.{key}: unknown parameter for {spec.statistic!r} "
                f"(allowed: {', '.join(allowed) or 'none'})"
            )
    for key in required:
        if key not in spec.params:
            raise MalformedError(f"params.{key}: required for {spec.statistic!r}")


# ---------------------------------------------------------------------------- row selection
@dataclass
class LocalReport:
    """What a provider learns about its own rows while encoding; never published."""

    n_rows: int = 0
    n_selected: int = 0
    n_missing: int = 0
    n_undeclared_category: int = 0
    n_filtered_out: int = 0
    clipped: dict[str, int] = field(default_factory=dict)
    #: which rows of the local table were selected (for the owner's differencing history)
    selected: npt.NDArray[np.bool_] | None = field(default=None, repr=False, compare=False)
    #: per local table row, the released cell its values enter (group-by cell, crosstab
    #: cell, histogram bin...; ``-1``: none), for the owner's differencing history
    #: (protocol/history.py); the cells of one query are disjoint
    cells: npt.NDArray[np.int64] | None = field(default=None, repr=False, compare=False)
    #: the number of released cells (``cells`` takes values in ``range(n_cells)``)
    n_cells: int = field(default=0, repr=False, compare=False)

    def refine_cells(self, within: npt.NDArray[np.int64], width: int) -> None:
        """Split every cell into ``width`` sub-cells: ``within`` gives, per selected row
        (in table order), its sub-cell (``-1``: it enters none), e.g. a histogram bin."""
        if self.cells is None or self.selected is None:
            raise MalformedError("local report: no cells to refine")
        sub = np.asarray(within, dtype=np.int64)
        if sub.shape != (int(np.count_nonzero(self.selected)),) or width < 1 or (
                sub.size and int(sub.max()) >= width):
            raise MalformedError("local report: sub-cells do not match the selection")
        old = self.cells[self.selected]
        self.cells[self.selected] = np.where((old < 0) | (sub < 0), -1, old * width + sub)
        self.n_cells *= width

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON."""
        return {
            "n_rows": self.n_rows,
            "n_selected": self.n_selected,
            "n_missing": self.n_missing,
            "n_undeclared_category": self.n_undeclared_category,
            "n_filtered_out": self.n_filtered_out,
            "clipped": dict(self.clipped),
        }


def _is_missing_obj(v: Any) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and math.isnan(float(v)))


def _as_float(table: Table, col: str) -> FloatArray:
    raw = table[col]
    try:
        arr = np.asarray(raw)
        if arr.dtype == object:
            arr = np.array([np.nan if _is_missing_obj(v) else v for v in arr], dtype=np.float64)
        return np.asarray(arr, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise MalformedError(f"table.{col}: numeric column has non-numeric values") from None


def _as_str(table: Table, col: str) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    arr = np.asarray(table[col], dtype=object).reshape(-1)
    missing = np.fromiter((_is_missing_obj(v) for v in arr), dtype=bool, count=arr.size)
    out = np.array([_category_text(v) for v in arr], dtype=object)
    return out, missing


def _category_text(v: Any) -> str:
    """Category label of a cell: strings as they are, integral numbers without ``.0``."""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)) and math.isfinite(float(v)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


@dataclass
class Selection:
    """Selected rows of a local table, ready to encode.

    ``cell`` gives, per selected row, the index of its group-by cell (see :func:`group_cells`);
    ``fixed[col]`` the clipped fixed-point values (int64) and ``values[col]`` the clipped
    floats of every numeric column asked for; ``labels[col]`` the strings of categorical ones.
    """

    n: int
    cell: IntArray
    n_cells: int
    fixed: dict[str, IntArray]
    values: dict[str, FloatArray]
    labels: dict[str, npt.NDArray[np.object_]]
    report: LocalReport

    def cell_mask(self, k: int) -> npt.NDArray[np.bool_]:
        """Boolean mask of the selected rows in cell ``k``."""
        return np.asarray(self.cell == k)

    def cell_counts(self) -> list[int]:
        """Number of selected rows per cell."""
        return [int(c) for c in np.bincount(self.cell, minlength=self.n_cells)]


def _filter_mask(
    f: Any, num: FloatArray | None, cat: npt.NDArray[np.object_] | None
) -> npt.NDArray[np.bool_]:
    vals = f.values()
    if num is not None:
        fv = [float(v) for v in vals]
        if f.op == "in":
            return np.isin(num, np.asarray(fv, dtype=np.float64))
        ops = {
            "==": operator.eq,
            "!=": operator.ne,
            "<": operator.lt,
            "<=": operator.le,
            ">": operator.gt,
            ">=": operator.ge,
        }
        return np.asarray(ops[f.op](num, fv[0]), dtype=bool)
    if cat is None:  # pragma: no cover - callers pass one of the two
        raise MalformedError("filter: no column values")
    if f.op == "in":
        return np.isin(cat, np.asarray(vals, dtype=object))
    eq = np.asarray(cat == vals[0], dtype=bool)
    return eq if f.op == "==" else ~eq


def select_rows(
    spec: QuerySpec,
    table: Table,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    *,
    clip_values: bool = True,
) -> Selection:
    """Apply the row-selection rules (module docstring) and encode the asked-for columns.

    ``numeric`` columns are clipped and fixed-point encoded; ``categorical`` columns (plus the
    spec's group_by and filter columns) are checked against their declared categories.
    """
    if not isinstance(table, Mapping):
        raise MalformedError("table: expected a mapping of column name -> array")
    num_cols = list(
        dict.fromkeys(list(numeric) + [f.column for f in spec.filters if spec.is_numeric(f.column)])
    )
    cat_cols = list(
        dict.fromkeys(
            list(categorical)
            + list(spec.group_by)
            + [f.column for f in spec.filters if spec.is_categorical(f.column)]
        )
    )
    for c in num_cols + cat_cols:
        if c not in table:
            raise MalformedError(f"table: missing column {c!r}")
    nums = {c: _as_float(table, c) for c in num_cols}
    cats: dict[str, npt.NDArray[np.object_]] = {}
    missing_cat: dict[str, npt.NDArray[np.bool_]] = {}
    for c in cat_cols:
        cats[c], missing_cat[c] = _as_str(table, c)
    lengths = {c: a.size for c, a in nums.items()} | {c: a.size for c, a in cats.items()}
    if len(set(lengths.values())) > 1:
        raise MalformedError(f"table: columns have different lengths {lengths}")
    n_rows = next(iter(lengths.values())) if lengths else _table_len(table)
    report = LocalReport(n_rows=n_rows)

    keep = np.ones(n_rows, dtype=bool)
    for a in nums.values():
        keep &= ~np.isnan(a)
    for c in cat_cols:
        keep &= ~missing_cat[c]
    report.n_missing = int(n_rows - np.count_nonzero(keep))

    before = int(np.count_nonzero(keep))
    for c in cat_cols:
        keep &= np.isin(cats[c], np.asarray(spec.categories[c], dtype=object))
    report.n_undeclared_category = before - int(np.count_nonzero(keep))

    before = int(np.count_nonzero(keep))
    for f in spec.filters:
        m = _filter_mask(f, nums.get(f.column), cats.get(f.column))
        keep &= m
    report.n_filtered_out = before - int(np.count_nonzero(keep))
    report.n_selected = int(np.count_nonzero(keep))
    report.selected = keep.copy()

    cell = np.zeros(report.n_selected, dtype=np.int64)
    n_cells = 1
    for g in spec.group_by:
        levels = spec.categories[g]
        index = {v: i for i, v in enumerate(levels)}
        idx = np.fromiter(
            (index[v] for v in cats[g][keep]), dtype=np.int64, count=report.n_selected
        )
        cell = cell * len(levels) + idx
        n_cells *= len(levels)
    report.cells = np.full(n_rows, -1, dtype=np.int64)
    report.cells[keep] = cell
    report.n_cells = n_cells

    fixed: dict[str, IntArray] = {}
    values: dict[str, FloatArray] = {}
    for c in numeric:
        sel = nums[c][keep]
        if clip_values:
            lo, hi = spec.bounds[c]
            sel, n_clip = clip(sel, lo, hi)
            report.clipped[c] = n_clip
            fixed[c] = to_fixed(sel, spec.scale)
        values[c] = sel
    labels = {c: cats[c][keep] for c in categorical}
    return Selection(
        n=report.n_selected,
        cell=cell,
        n_cells=n_cells,
        fixed=fixed,
        values=values,
        labels=labels,
        report=report,
    )


def _table_len(table: Table) -> int:
    for v in table.values():
        return int(np.asarray(v, dtype=object).reshape(-1).size)
    return 0


# ---------------------------------------------------------------------------- cells
def group_cells(spec: QuerySpec) -> list[tuple[str, ...]]:
    """The group-by cells in encoding order (row-major product of declared categories)."""
    return list(product(*(spec.categories[g] for g in spec.group_by)))


def cell_label(spec: QuerySpec, cell: tuple[str, ...]) -> str:
    """Human label of a cell: ``"sex=F, arm=A"`` (``"all"`` without group_by)."""
    if not spec.group_by:
        return "all"
    return ", ".join(f"{g}={v}" for g, v in zip(spec.group_by, cell, strict=True))


def cell_prefix(spec: QuerySpec, cell: tuple[str, ...]) -> str:
    """Entry-label prefix of a cell: ``""`` or ``"[sex=F,arm=A]"``."""
    if not spec.group_by:
        return ""
    return "[" + ",".join(f"{g}={v}" for g, v in zip(spec.group_by, cell, strict=True)) + "]"


# ---------------------------------------------------------------------------- exact sums
def int_sum(a: IntArray) -> int:
    """Exact Python-int sum of an int64 array (no overflow)."""
    return int(sum(a.tolist(), 0))


def int_dot(a: IntArray, b: IntArray) -> int:
    """Exact Python-int dot product of two int64 arrays (no overflow)."""
    return int(sum(map(operator.mul, a.tolist(), b.tolist()), 0))


def check_released_totals(
    spec: QuerySpec, layout: Layout, totals: Sequence[int | None], gates: Sequence[int]
) -> list[int | None]:
    """Like :func:`check_totals`, but an entry may be ``None``: withheld (never decrypted,
    :mod:`statledger.protocol.suppression`); a gate entry never is."""
    if isinstance(totals, (str, bytes)):
        raise MalformedError("totals: expected a sequence of ints")
    out = list(totals)
    if len(out) != len(layout):
        raise MalformedError(
            f"totals: {len(out)} entries, layout of {spec.statistic!r} has {len(layout)}"
        )
    for i, v in enumerate(out):
        if v is None and i not in gates:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise MalformedError(f"totals[{i}]: not an int")
    return [None if v is None else int(v) for v in out]


def check_totals(spec: QuerySpec, layout: Layout, totals: Sequence[int]) -> list[int]:
    """Check the totals vector has the layout's length and int entries; return a list."""
    checked = check_released_totals(spec, layout, totals, range(len(layout)))
    return [int(v) for v in checked if v is not None]


# ---------------------------------------------------------------------------- suppression
def suppress_cells(counts: Sequence[Sequence[int]], min_cell_size: int) -> list[list[bool]]:
    """Primary and complementary suppression of a 2-D table of cell counts.

    Returns a same-shape mask, ``True`` = suppressed.  Rule (``docs/queries.md``):

    1. primary: a cell with ``0 < n < min_cell_size`` is suppressed (zeros are published);
    2. complementary: while some row or column has exactly one suppressed cell, suppress the
       smallest unsuppressed cell of that line -- preferring cells with ``n > 0``, ties broken
       by position -- and repeat until no line has exactly one suppressed cell (a line with no
       other cell stays as it is; its published margin excludes the suppressed cell).

    A 1-D table is passed as a single row: its total acts as the margin.  Rows are processed
    before columns, top to bottom / left to right, so the result is deterministic.
    """
    grid = [list(r) for r in counts]
    supp = [[0 < c < min_cell_size for c in r] for r in grid]
    nrow = len(grid)
    ncol = len(grid[0]) if nrow else 0

    def _pick(cands: list[tuple[int, int]]) -> tuple[int, int] | None:
        if not cands:
            return None
        pos = [rc for rc in cands if grid[rc[0]][rc[1]] > 0]
        pool = pos or cands
        return min(pool, key=lambda rc: (grid[rc[0]][rc[1]], rc))

    changed = True
    while changed:
        changed = False
        for i in range(nrow):
            if sum(supp[i]) == 1:
                pick = _pick([(i, j) for j in range(ncol) if not supp[i][j]])
                if pick is not None:
                    supp[pick[0]][pick[1]] = True
                    changed = True
        if nrow > 1:
            for j in range(ncol):
                if sum(supp[i][j] for i in range(nrow)) == 1:
                    pick = _pick([(i, j) for i in range(nrow) if not supp[i][j]])
                    if pick is not None:
                        supp[pick[0]][pick[1]] = True
                        changed = True
    return supp


def suppress_small_cells(small: Sequence[Sequence[bool]]) -> list[list[bool]]:
    """Suppression of a 2-D table from one bit per cell alone (the PET gate,
    :mod:`statledger.protocol.pet`: no count is known).  Returns a same-shape mask.

    1. primary: the small cells (``n < min_cell_size``, empty cells included);
    2. complementary: while a line (a row; a column when the table has more than one row) has
       exactly one suppressed cell, suppress the *first unsuppressed cell of that line by
       position* -- a public deterministic rule that cannot rank by counts.  Rows before
       columns, repeated until stable.  A line with no other cell stays as it is.

    A 1-D table is passed as a single row (its total is the margin)."""
    grid = [[bool(b) for b in row] for row in small]
    nrow = len(grid)
    ncol = len(grid[0]) if nrow else 0
    lines = [[(i, j) for j in range(ncol)] for i in range(nrow)]
    if nrow > 1:
        lines += [[(i, j) for i in range(nrow)] for j in range(ncol)]
    changed = True
    while changed:
        changed = False
        for line in lines:
            if sum(grid[i][j] for i, j in line) == 1:
                free = [(i, j) for i, j in line if not grid[i][j]]
                if free:
                    grid[free[0][0]][free[0][1]] = True
                    changed = True
    return grid


def suppress_small_group_cells(spec: QuerySpec, small: Sequence[bool]) -> list[bool]:
    """Suppression of the flat list of group-by cells of ``spec`` from the PET bits alone
    (one per cell, ``True`` = small): the cells laid out as in :func:`suppress_group_cells`
    (one line with the total as its margin for zero or one group_by column; rows x columns
    for two), complementary cells by position (:func:`suppress_small_cells`)."""
    bits = [bool(b) for b in small]
    if len(spec.group_by) < 2:
        return suppress_small_cells([bits])[0]
    ncol = len(spec.categories[spec.group_by[1]])
    grid = [bits[i : i + ncol] for i in range(0, len(bits), ncol)]
    return [m for row in suppress_small_cells(grid) for m in row]


def suppress_group_cells(spec: QuerySpec, counts: Sequence[int]) -> list[bool]:
    """Suppression mask for the flat list of group-by cells of ``spec``.

    Without group_by the single cell is suppressed when ``0 < n < min_cell_size``.  With one
    group_by column the cells form one row (the overall total is the margin); with two, the
    table is rows = first column's categories, columns = second's.
    """
    k = spec.min_cell_size
    if not spec.group_by:
        return [0 < counts[0] < k]
    if len(spec.group_by) == 1:
        return suppress_cells([list(counts)], k)[0]
    ncol = len(spec.categories[spec.group_by[1]])
    grid = [list(counts[i : i + ncol]) for i in range(0, len(counts), ncol)]
    mask = suppress_cells(grid, k)
    return [m for row in mask for m in row]
