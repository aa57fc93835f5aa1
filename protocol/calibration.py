"""Per-entry DP calibration: public integer weights, unscaling, error reports (docs/privacy.md).

The verifiable noise (:mod:`statledger.protocol.noise`) adds one noise distribution to every
entry of the encrypted aggregate.  Calibrated for the L2 norm of raw sensitivities, a count
(sensitivity 1) would get the noise of a scaled sum (sensitivity ``max|x| * scale``).  So
when a query asks for DP, entry ``i`` travels *scaled* by a public integer weight

    c_i = max(1, floor(t_max / t_i))       (t_i its sensitivity, t_max the largest)

-- the owner encodes ``c_i * v_i`` with the range ``c_i * [lo, hi]``, the noise is calibrated
for the scaled sensitivities ``c_i * t_i`` (all within ``[t_max / 2, t_max]``), and the
decoder divides the total by ``c_i``: the noise on entry ``i`` has standard deviation
``sigma / c_i``, proportional to ``t_i``.  The budget is thereby split equally over the
``d`` entries (``rho_i = rho (c_i t_i)^2 / sum_j (c_j t_j)^2``, ``~ rho / d``).  For a mean
``S / n`` the variance ``Var S / n^2 + mu^2 Var n / n^2`` is smallest for
``rho_S / rho_n = t_S / |mu|``: equal at the worst case ``|mu| = max |bound|``, which is all a
spec-only (data-blind) rule can use.  The noise itself is untouched: scaling the *noise*
instead of the data would give entries of different supports, which the privacy bound of
Theorem 1 (docs/noise.md) does not cover.

A statistic may choose its own weights (``Statistic.dp_weights``): a workload its strategy's,
linear regression the split that minimises the noise of its coefficients
(:func:`statledger.protocol.stats.ols.ols_dp_weights`); and its own documented
post-processing of the unscaled totals (``Statistic.dp_postprocess``, given each entry's
exact noise variance: linear regression's ridge).

Everything here is a function of the spec (and, for the error report, of the logged noise
parameters): the provider, the querier, the compute nodes and the verifier all call it, so
the weights are never sent, only recomputed (steps 9, 10, 13 and 14).  Queries without DP
have every weight 1 and decode exactly as before.

Post-processing (free under DP): the unscaled totals are rounded to the nearest integer
(half to even) and an entry that cannot be negative without noise (declared range ``lo >=
0``: counts, sums of squares, sums of non-negative values) is clamped at 0.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, cast

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    RangeExceededError,
    StatResult,
    Table,
)
from statledger.protocol.stats.vertical import is_vertical_statistic

if TYPE_CHECKING:
    from statledger.protocol.noise import NoiseParams
    from statledger.protocol.query import QuerySpec

__all__ = [
    "is_dp",
    "weights",
    "quanta",
    "quantize",
    "wire_layout",
    "dlog_bound",
    "check_dlog_bound",
    "wire_sensitivity",
    "privacy_profile",
    "wire_encode",
    "unscale",
    "entry_sd",
    "entry_var",
    "budget_share",
    "NoiseInfo",
    "decode",
    "clip_buckets",
    "clip_report",
    "CLIP_BUCKETS",
    "CLIP_WITHHELD_DP",
    "CLIP_WITHHELD_SMALL",
    "CLIP_WITHHELD_VERTICAL",
    "clip_withheld_for",
    "check_clip_report",
    "clip_withheld",
    "clip_warning",
    "too_many_rows",
    "Z95",
    "MAX_SD_ENTRIES",
    "noise_rows",
    "noise_of",
    "budget_split_line",
    "DESIGN_DEPENDENT",
    "UNIFORM_CAVEAT",
    "synthetic_table",
    "plan",
    "PLAN_RUNS",
    "simulate_noise",
]

#: two-sided 95 % normal quantile used for the reported intervals
Z95 = 1.959963984540054
#: above this many entries the per-value error (one decode per entry) is not computed
MAX_SD_ENTRIES = 256
#: a DP entry's quantum is the largest power of two <= its weighted sensitivity / this
_QUANTUM_DIVISOR = 256
#: a DP spec is refused when one decrypted total of this many owners could exceed
#: ``2^MAX_DP_DLOG_BITS`` wire units (docs/privacy.md, "Limb sums")
DLOG_CHECK_OWNERS = 1000
MAX_DP_DLOG_BITS = 42


def is_dp(spec: QuerySpec) -> bool:
    return spec.privacy.mechanism != "none"


def weights(spec: QuerySpec) -> list[int]:
    """``c_i = max(1, t_max // t_i)`` per entry when the query asks for DP, else all 1."""
    stat = get_statistic(spec.statistic)
    sens = list(stat.sensitivity(spec))
    if not is_dp(spec) or not sens:
        return [1] * len(sens)
    own = stat.dp_weights(spec)  # a statistic that sets its own (e.g. workload strategies)
    if own is not None:
        return list(own)
    t_max = max(sens)
    return [max(1, t_max // t) if t > 0 else 1 for t in sens]


def quanta(spec: QuerySpec) -> list[int]:
    """The public quantum ``q_j`` of every entry: 1 without DP; with DP the largest power of
    two ``<= max_k(c_k t_k) / 256`` (at least 1), ``c_k`` the weights and ``t_k`` the
    sensitivities -- one quantum for every entry of the query.

    A DP entry is decrypted as ONE number (:func:`statledger.protocol.flow.decryption_targets`:
    its limb sums would not be covered by the DP theorem), so its total must stay a cheap
    discrete log: the owner sends its weighted value in units of ``q`` (:func:`quantize`),
    the largest weighted sensitivity becoming ``256 .. 511`` units, whatever the scale.
    One quantum for all entries (not a power of two per entry) keeps the weights' budget
    split exactly (e.g. linear regression's, :func:`weights`); the rounding costs at most
    ``q/2`` per owner and entry, against noise whose sd is a few hundred ``q`` at rho <= 1
    and shrinks like 1/sqrt(rho) (docs/privacy.md, "The quantum")."""
    stat = get_statistic(spec.statistic)
    sens = list(stat.sensitivity(spec))
    if not is_dp(spec) or not sens:
        return [1] * len(sens)
    x = max(c * t for c, t in zip(weights(spec), sens, strict=True)) // _QUANTUM_DIVISOR
    return [1 << (x.bit_length() - 1) if x >= 1 else 1] * len(sens)


def quantize(spec: QuerySpec, values: Sequence[int]) -> list[int]:
    """The wire value of local values ``v_j``: ``round_half_up(c_j v_j / q_j)``, i.e.
    ``floor((2 c_j v_j + q_j) / (2 q_j))`` (exact integers).  ``c_j v_j`` without DP."""
    return [(2 * c * v + q) // (2 * q)
            for c, q, v in zip(weights(spec), quanta(spec), values, strict=True)]


def wire_layout(spec: QuerySpec) -> Layout:
    """The layout of what is encrypted and range-proved: every range times its weight, in
    units of its quantum, ``[floor(c lo / q), ceil(c hi / q)]`` (holds every
    :func:`quantize` of a value in ``[lo, hi]``: ``floor(x) <= floor(x + 1/2) <= ceil(x)``)."""
    layout = get_statistic(spec.statistic).layout(spec)
    w, qs = weights(spec), quanta(spec)
    return Layout(list(layout.labels),
                  [((c * lo) // q, -((-c * hi) // q))
                   for c, q, (lo, hi) in zip(w, qs, layout.ranges, strict=True)])


def wire_sensitivity(spec: QuerySpec) -> list[int]:
    """Sensitivities of the wire entries, ``ceil(c_j t_j / q_j)`` (what the noise is
    calibrated for; ``c_j t_j`` when ``q_j = 1``).

    Proof: one row moves the local value ``v_j`` by at most ``t_j``, so ``a = c_j v_j / q_j``
    moves by ``d <= c_j t_j / q_j``; the wire value is ``floor(a + 1/2)``, and for any reals
    ``floor(x) - floor(y) < x - y + 1``, an integer, hence ``<= ceil(x - y) <= ceil(d)``
    (both directions).  So the rounding never adds more than the ceiling's fraction."""
    sens = get_statistic(spec.statistic).sensitivity(spec)
    return [-((-c * t) // q)
            for c, q, t in zip(weights(spec), quanta(spec), sens, strict=True)]


def dlog_bound(spec: QuerySpec, owners: int = DLOG_CHECK_OWNERS) -> int:
    """The largest per-entry plaintext a DP decryption searches for ``owners`` owners, noise
    left out: ``owners * max_j (hi_j - lo_j)`` of the :func:`wire_layout`.  Calibrated noise
    adds a few sensitivities (``< 2^22`` wire units down to the smallest rho calibration
    accepts); :func:`statledger.protocol.flow.check_noise_params` refuses noise parameters
    whose shares would take the total past ``2^MAX_DP_DLOG_BITS``."""
    ranges = wire_layout(spec).ranges
    return owners * max((hi - lo for lo, hi in ranges), default=0)


def check_dlog_bound(spec: QuerySpec) -> None:
    """Refuse (MalformedError, actionable) a DP spec whose one-number-per-entry decryption
    would need a discrete log beyond ``2^MAX_DP_DLOG_BITS`` for
    :data:`DLOG_CHECK_OWNERS` owners.  Called by ``QuerySpec`` at parse."""
    if not is_dp(spec):
        return
    bound = dlog_bound(spec)
    if bound.bit_length() > MAX_DP_DLOG_BITS:
        raise MalformedError(
            f"statistic: a DP total of {DLOG_CHECK_OWNERS} owners would reach "
            f"2^{bound.bit_length()} wire units (> 2^{MAX_DP_DLOG_BITS}: its discrete log is "
            "too slow); lower max_rows or narrow the bounds")


def privacy_profile(spec: QuerySpec) -> list[int]:
    """What the privacy bound is charged for (``noise.privacy_bound``): the wire sensitivities
    of the entries that adding or removing ONE row can move together.  By default every
    entry (:func:`wire_sensitivity`).  A statistic whose rows are one-hot over blocks
    (:meth:`~statledger.protocol.stats.base.Statistic.onehot_blocks`: a row adds to one cell
    of every block, e.g. a workload's marginals) moves one entry per block: its profile is
    the largest wire sensitivity of each block.  The noise is independent per entry, so the
    entries one row cannot move cost nothing (docs/privacy.md, "Workloads")."""
    sens = wire_sensitivity(spec)
    blocks = get_statistic(spec.statistic).onehot_blocks(spec)
    if blocks is None:
        return sens
    if sum(blocks) != len(sens):
        raise MalformedError("one-hot blocks do not cover the encoded vector")
    out: list[int] = []
    pos = 0
    for n in blocks:
        out.append(max(sens[pos:pos + n]))
        pos += n
    return out


def wire_encode(spec: QuerySpec, table: Table, party: str = "this site"
                ) -> tuple[list[int], LocalReport]:
    """The owner's vector as encrypted: :func:`quantize` of its values, plus its
    (unpublished) local report.  A vector outside the layout is refused with an actionable
    message that carries no count (PolicyError: "site P has more rows than max_rows; raise
    max_rows")."""
    sql_encode = getattr(table, "encode_with_report", None)  # protocol/duckdb_encode.py
    try:
        values, report = (sql_encode(spec) if callable(sql_encode)
                          else get_statistic(spec.statistic).encode_with_report(spec, table))
    except RangeExceededError:
        raise too_many_rows(party) from None
    return quantize(spec, values), report


def too_many_rows(party: str) -> PolicyError:
    """The one refusal of a site whose selected rows exceed ``max_rows``, on every path
    (horizontal encoding here, vertical owners in :mod:`statledger.protocol.vertical`):
    actionable, and without the site's row count."""
    return PolicyError(f"site {party} has more rows than max_rows; raise max_rows")


def unscale(spec: QuerySpec, totals: Sequence[int]) -> list[int]:
    """Totals in the statistic's own units: ``round(T_i q_i / c_i)`` (half to even), clamped
    at 0 for entries whose declared range is non-negative (post-processing).  A statistic that
    decodes wire totals itself gets ``T_i q_i`` (its weighted units, unrounded).  The
    identity when the query asks for no DP."""
    w = weights(spec)
    if len(totals) != len(w):
        raise MalformedError(f"totals: {len(totals)} entries, the query's layout has {len(w)}")
    if not is_dp(spec):
        return list(totals)
    qs = quanta(spec)
    stat = get_statistic(spec.statistic)
    ranges = stat.layout(spec).ranges
    out: list[int] = []
    for i, (c, q, t, (lo, _hi)) in enumerate(zip(w, qs, totals, ranges, strict=True)):
        if t is None:  # withheld: never decrypted (protocol/suppression.py)
            out.append(t)
            continue
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise MalformedError(f"totals[{i}]: not an int")
        if stat.decodes_wire_totals:
            out.append(int(t) * q)
            continue
        v = round(Fraction(int(t) * q, c))
        out.append(max(v, 0) if lo >= 0 else v)
    return out


def entry_var(spec: QuerySpec, params: NoiseParams, shares: int) -> list[Fraction]:
    """Exact noise variance of every entry in the statistic's units: ``shares *
    share_variance * q_i^2 / c_i^2``."""
    var = shares * params.share_variance
    return [var * q * q / (c * c) for c, q in zip(weights(spec), quanta(spec), strict=True)]


def entry_sd(spec: QuerySpec, params: NoiseParams, shares: int) -> list[float]:
    """Standard deviation of the noise on every entry, in the statistic's units: the released
    noise is the sum of ``shares`` independent shares of variance ``share_variance`` each
    (docs/noise.md), times the quantum, divided by the weight."""
    var = shares * params.share_variance
    return [math.sqrt(float(var)) * q / c
            for c, q in zip(weights(spec), quanta(spec), strict=True)]


@dataclass(frozen=True)
class NoiseInfo:
    """What the error report needs: the logged noise parameters and the noise set's size."""

    params: NoiseParams
    shares: int


def _leaves(obj: Any, path: str, out: dict[str, float]) -> None:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    if isinstance(obj, (int, float)):
        out[path] = float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if k == "dp":
                continue
            _leaves(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _leaves(v, f"{path}[{i}]", out)


def _value_sd(spec: QuerySpec, totals: list[int], base: dict[str, float],
              sds: list[float]) -> dict[str, float]:
    """First-order (delta-method) noise sd of every released number: each entry moved by
    ``h`` = about an eighth of its sd (at least 1 unit), the statistic decoded again, the
    changes scaled to one sd and their squares summed.  Deterministic (the decoders are), so
    step 14 recomputes it bit for bit."""
    stat = get_statistic(spec.statistic)
    acc = dict.fromkeys(base, 0.0)
    for i, sd in enumerate(sds):
        h = max(1, round(sd / 8))
        moved = list(totals)
        if moved[i] is None:  # withheld (protocol/suppression.py): no value to move
            continue
        moved[i] += h
        try:
            other: dict[str, float] = {}
            _leaves(stat.decode(spec, moved).to_dict(), "", other)
        except MalformedError:
            continue
        for path, v in base.items():
            w = other.get(path)
            if w is not None:
                acc[path] += ((w - v) / h * sd) ** 2
    return {p: math.sqrt(v) for p, v in acc.items()}


def decode(spec: QuerySpec, totals: Sequence[int], noise: NoiseInfo | None = None,
           small: Sequence[bool] | None = None) -> StatResult:
    """Decode wire totals: unscale (and post-process) then the statistic's decoder; for a DP
    query add ``values["dp"]`` -- the charge, the noise sd of every entry and of every
    released number with its 95 % interval -- and a note.  ``noise`` is required for DP.
    ``small``: a gated query's PET bits (its release entry's), passed to
    ``Statistic.decode_gated`` (a presence statistic reads its answer from them)."""
    stat = get_statistic(spec.statistic)
    plain = _postprocessed(spec, totals, noise)
    result = stat.decode(spec, plain) if small is None else stat.decode_gated(
        spec, plain, small)
    if not is_dp(spec):
        return result
    if noise is None:
        raise MalformedError("decode: a DP query needs its noise parameters")
    sds = entry_sd(spec, noise.params, noise.shares)
    labels = stat.layout(spec).labels
    base: dict[str, float] = {}
    _leaves(result.to_dict(), "", base)
    base.pop("statistic", None)
    qs = set(quanta(spec))  # a statistic's own value_sd takes one sd in its weighted units
    own_sd = (stat.value_sd(spec, math.sqrt(float(noise.shares * noise.params.share_variance))
                            * qs.pop()) if len(qs) == 1 else None)
    value_sd = (own_sd if own_sd is not None else
                _value_sd(spec, plain, base, sds) if len(sds) <= MAX_SD_ENTRIES else {})
    result.values["dp"] = {
        "privacy": spec.privacy.model_dump(),
        "noise_shares": noise.shares,
        "weights": weights(spec),
        "quanta": quanta(spec),
        "entry_sd": dict(zip(labels, sds, strict=True)),
        "value_sd": value_sd,
        "ci95": {p: [base[p] - Z95 * s, base[p] + Z95 * s] for p, s in value_sd.items()},
    }
    top = {p: s for p, s in value_sd.items() if "." not in p and "[" not in p}
    shown = ", ".join(f"{p} ± {Z95 * s:.4g}" for p, s in list((top or value_sd).items())[:8])
    result.notes.append(
        f"differentially private ({spec.privacy.mechanism}); 95% noise intervals: {shown}"
        if shown else f"differentially private ({spec.privacy.mechanism})")
    if not stat.decodes_wire_totals:
        result.notes.append("DP post-processing: totals rounded, non-negative totals clamped at 0")
    return result


def noise_rows(values: dict[str, Any]) -> list[tuple[str, float, float, float, float]]:
    """Every released number of a DP result with its noise, as :func:`decode` stated it in
    ``values["dp"]``: ``(path, value, noise sd, 95 % low, 95 % high)`` in the block's order
    (paths such as ``n``, ``value``, ``coef[1]``).  Empty for an exact result (no ``dp``
    block): it has no noise.  Only reads the block; it computes nothing new."""
    dp = values.get("dp")
    if not isinstance(dp, dict):
        return []
    sds, ci = dp.get("value_sd"), dp.get("ci95")
    if not isinstance(sds, dict) or not isinstance(ci, dict):
        return []
    released = _leaf_map(values)
    out: list[tuple[str, float, float, float, float]] = []
    for path, sd in sds.items():
        v, lh = released.get(path), ci.get(path)
        if v is None or not isinstance(lh, list) or len(lh) != 2:
            continue
        out.append((str(path), v, float(sd), float(lh[0]), float(lh[1])))
    return out


def noise_of(values: dict[str, Any], path: str) -> tuple[float, float, float] | None:
    """``(noise sd, 95 % low, 95 % high)`` of one released number (``"coef[1]"``), or None
    when the result has no noise for it (an exact result)."""
    for p, _v, sd, lo, hi in noise_rows(values):
        if p == path:
            return sd, lo, hi
    return None


def budget_split_line(spec: QuerySpec) -> str:
    """The budget split of :func:`budget_share` in one line, as ``statledger plan`` prints
    it (and ``run``, ``verify --show`` and ``show`` for a DP result: recomputed from the
    spec, never logged)."""
    split = ", ".join(f"{lab} {100 * s:.3g}%" for lab, s in budget_share(spec).items())
    return f"budget split over the encoded entries: {split}"


#: the buckets of :func:`clip_buckets`, smallest first
CLIP_BUCKETS = ("0", "1-9", "10-99", "100+")
#: the bucket of every column of a DP query's clip report: an un-noised count of any
#: resolution would void the query's privacy guarantee, so none is ever sent
CLIP_WITHHELD_DP = "withheld (DP query)"
#: the bucket of every column of an exact query's clip report when the site selected fewer
#: rows than ``min_cell_size``: sweeping the bounds over such a selection would read off
#: one person's value (the 0 -> 1-9 flip), suppressed or not
CLIP_WITHHELD_SMALL = "withheld (fewer rows than min_cell_size)"
#: the bucket of every column of a vertical query's clip report: an owner's counts would be
#: over its OWN selected rows, which the differencing history does not record (it records
#: the joined rows), so two queries whose owner-side selections differ by one row would read
#: off that row's value by sweeping the bounds
CLIP_WITHHELD_VERTICAL = "withheld (vertical query)"
_CLIP_WITHHELD = (CLIP_WITHHELD_DP, CLIP_WITHHELD_SMALL, CLIP_WITHHELD_VERTICAL)


def clip_withheld_for(spec: QuerySpec) -> str | None:
    """The withheld form EVERY site sends for ``spec`` whatever its rows (a vertical or a DP
    query: the querier says it once), or None when the buckets may leave a site with enough
    selected rows (:func:`clip_report`)."""
    if is_vertical_statistic(spec):
        return CLIP_WITHHELD_VERTICAL
    if is_dp(spec):
        return CLIP_WITHHELD_DP
    return None


def clip_buckets(report: LocalReport) -> dict[str, str]:
    """Per column, how many values were clipped to the bounds, bucketed so the querier learns
    an order of magnitude, never a count: ``"0"``, ``"1-9"``, ``"10-99"``, ``"100+"``.  What
    a provider sends is :func:`clip_report`, which decides whether these may leave it."""
    out: dict[str, str] = {}
    for col, k in sorted(report.clipped.items()):
        out[col] = CLIP_BUCKETS[0 if k == 0 else 1 if k < 10 else 2 if k < 100 else 3]
    return out


def clip_report(spec: QuerySpec, report: LocalReport) -> dict[str, str]:
    """The clip report a provider sends the querier with its contribution (the one rule,
    decided locally before anything leaves the provider).  The querier chooses the filter
    and the bounds, and the buckets are counted before suppression and without noise, so:

    * a vertical query gets :data:`CLIP_WITHHELD_VERTICAL` for every column (an owner's own
      selection is not in the differencing history), a DP query :data:`CLIP_WITHHELD_DP`:
      never a count;
    * an exact query whose selection at this site (``report.n_selected``: its own rows,
      after missing values and filters) is smaller than ``spec.min_cell_size`` gets
      :data:`CLIP_WITHHELD_SMALL` for every column: this reveals one bit, "this site's
      selection is below k", never the count or a value;
    * otherwise the buckets of :func:`clip_buckets`: sweeping the bounds over a selection of
      at least k rows can reveal its order statistics (the largest, the 10th, the 100th),
      the same class of disclosure as the ``max`` statistic over n >= k rows
      (docs/privacy.md)."""
    buckets = clip_buckets(report)
    whole = clip_withheld_for(spec)
    if whole is not None:
        return dict.fromkeys(buckets, whole)
    if report.n_selected < spec.min_cell_size:
        return dict.fromkeys(buckets, CLIP_WITHHELD_SMALL)
    return buckets


def check_clip_report(obj: Any, spec: QuerySpec, party: str) -> dict[str, str]:
    """A site's clip report as the querier receives it (the contribution response; absent or
    ``None``: no report): an object mapping some of ``spec``'s bounded columns either all to
    one of :data:`CLIP_BUCKETS` or all to the one withheld form the spec allows
    (:func:`clip_report`): :data:`CLIP_WITHHELD_DP` for a DP query, which admits nothing
    else, and :data:`CLIP_WITHHELD_SMALL` for an exact one.  Anything else raises
    :class:`MalformedError` naming ``party`` and never echoing what it sent, so a hostile
    site can neither pass off an exact count or a value as a bucket, nor a count where the
    spec allows none, nor put its own text into the querier's output."""
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise MalformedError(f"{party}: its clip report is not an object of column -> bucket")
    whole = clip_withheld_for(spec)
    withheld = whole if whole is not None else CLIP_WITHHELD_SMALL
    allowed = (withheld,) if whole is not None else (*CLIP_BUCKETS, withheld)
    out: dict[str, str] = {}
    for col, bucket in sorted(obj.items(), key=lambda kv: str(kv[0])):
        if not isinstance(col, str) or col not in spec.bounds:
            raise MalformedError(f"{party}: its clip report names a column that is not one of "
                                 "the query's bounded columns")
        if not isinstance(bucket, str) or bucket not in allowed:
            raise MalformedError(f"{party}: its clip report for column {col!r} is not one of "
                                 + (f"the buckets {', '.join(CLIP_BUCKETS)} or "
                                    if whole is None else "")
                                 + f"{withheld!r}")
        out[col] = bucket
    if withheld in out.values() and set(out.values()) != {withheld}:
        raise MalformedError(f"{party}: its clip report withholds some columns and not others "
                             "(a site withholds all or none)")
    return out


def clip_withheld(buckets: Mapping[str, str]) -> str | None:
    """Why a checked clip report (:func:`check_clip_report`) is withheld -- ``"DP query"``,
    ``"vertical query"`` or ``"fewer rows than min_cell_size"`` -- or None when it carries
    buckets."""
    for b in buckets.values():
        if b in _CLIP_WITHHELD:
            return b[len("withheld ("):-1]
    return None


def clip_warning(party: str, buckets: dict[str, str]) -> str | None:
    """The warning for a site's clip report (its columns with a bucket other than ``"0"``),
    or None when it clipped nothing or withheld its counts (:func:`clip_withheld`):
    "P clipped values to the bounds: bmi (10-99)"."""
    hit = [f"{c} ({b})" for c, b in sorted(buckets.items()) if b in CLIP_BUCKETS[1:]]
    return f"{party} clipped values to the bounds: {', '.join(hit)}" if hit else None


#: Statistics whose released numbers divide by the spread of the data (a regression's
#: ``(X'X)^-1``, a correlation's standard deviations): their noise error depends on the
#: owners' design, so a plan on synthetic rows spread uniformly over the bounds understates
#: it whenever the real columns spread less (issue 12: the diabetes OLS, 3.5-8x).
DESIGN_DEPENDENT = frozenset({"linear_regression", "logistic_approx", "logistic_irls",
                              "cox_regression", "vertical_regression", "correlation"})
#: What :func:`plan` says about such figures when it has no sample (text and ``--json``).
UNIFORM_CAVEAT = ("for features spread uniformly over their bounds - real data with less "
                  "spread gives larger errors; pass --sample")

#: per statistic, the parameter naming a column whose values must be 0 or 1
_BINARY_PARAM = {"logistic_approx": "target", "logistic_irls": "target",
                 "model_evaluation": "target", "kaplan_meier": "event",
                 "cox_regression": "event"}


def synthetic_table(spec: QuerySpec, rows: int, seed: int = 0) -> dict[str, Any]:
    """``rows`` made-up rows for :func:`plan`: every numeric column uniform within its bounds
    (a fixed seed: the plan is reproducible) -- except a column the statistic needs as 0/1
    (a logistic target, an event), drawn uniformly from {0, 1} -- every categorical one
    cycling its categories."""
    import numpy as np

    rng = np.random.default_rng(seed)
    binary = spec.params.get(_BINARY_PARAM.get(spec.statistic, ""))
    table: dict[str, Any] = {}
    for col in spec.used_columns():
        if col in spec.bounds:
            lo, hi = spec.bounds[col]
            table[col] = (rng.integers(0, 2, rows).astype(float) if col == binary
                          else rng.uniform(lo, hi, rows))
        elif col in spec.categories:
            cats = spec.categories[col]
            table[col] = np.asarray([cats[i % len(cats)] for i in range(rows)], dtype=object)
    return table


def _sample_columns(spec: QuerySpec, sample: Any) -> tuple[dict[str, Any], int]:
    """The columns of a researcher's sample that the query reads, checked: present, numeric
    where the query declares bounds, of one length, at least one row.  Messages name the
    column and what is wrong, never a value."""
    import numpy as np

    if not isinstance(sample, Mapping) and hasattr(sample, "columns") and hasattr(
            sample, "__getitem__"):  # a pandas DataFrame: its columns as arrays
        sample = {str(c): np.asarray(sample[c]) for c in sample.columns}
    if not isinstance(sample, Mapping):
        raise MalformedError("sample: expected a table (column name -> values)")
    cols: dict[str, Any] = {}
    for col in spec.used_columns():
        if col not in sample:
            raise MalformedError(f"sample: no column {col!r}")
        arr = np.asarray(sample[col])
        if arr.ndim != 1:
            raise MalformedError(f"sample: column {col!r} is not one column of values")
        if spec.is_numeric(col) and arr.dtype.kind not in "biuf":
            try:
                arr = np.array([math.nan if v is None else v for v in arr.tolist()],
                               dtype=np.float64)
            except (TypeError, ValueError):
                raise MalformedError(
                    f"sample: column {col!r} must be numeric, but some of its cells are text "
                    "that is not a number (missing values may be empty or NA)") from None
        cols[col] = arr
    lengths = {a.shape[0] for a in cols.values()}
    if len(lengths) > 1:
        raise MalformedError("sample: its columns have different lengths")
    rows = lengths.pop() if lengths else 0
    if rows == 0:
        raise MalformedError("sample: no rows")
    return cols, rows


def _pooled_totals(spec: QuerySpec, cols: Mapping[str, Any], rows: int, where: str
                   ) -> tuple[list[int], LocalReport]:
    """The statistic's totals (its own units, before weights and quantum) over ``rows`` rows,
    encoded as owners of at most ``max_rows`` rows each would (the aggregate is a sum over
    owners), with their reports summed."""
    stat = get_statistic(spec.statistic)
    total = [0] * len(stat.layout(spec))
    rep = LocalReport()
    step = spec.max_rows
    for start in range(0, rows, step):
        chunk = {c: a[start:start + step] for c, a in cols.items()}
        try:
            vals, r = stat.encode_with_report(spec, chunk)
        except MalformedError as exc:
            msg = str(exc)
            if msg.startswith("entry "):  # a layout check names the value: say why instead
                msg = "its rows do not fit the ranges the query declares"
            raise MalformedError(f"{where}: {msg}") from None
        total = [t + v for t, v in zip(total, vals, strict=True)]
        rep.n_rows += r.n_rows
        rep.n_selected += r.n_selected
        rep.n_missing += r.n_missing
        rep.n_undeclared_category += r.n_undeclared_category
        rep.n_filtered_out += r.n_filtered_out
        for c, k in r.clipped.items():
            rep.clipped[c] = rep.clipped.get(c, 0) + k
    return total, rep


def _postprocessed(spec: QuerySpec, totals: Sequence[int], noise: NoiseInfo | None
                   ) -> list[int]:
    """Unscaled totals after the documented post-processing (:func:`unscale`, and for a DP
    query the statistic's own, e.g. the OLS ridge): what :func:`decode` decodes."""
    plain = unscale(spec, totals)
    if is_dp(spec) and noise is not None:  # documented post-processing (e.g. OLS ridge)
        # withheld entries stay None, as unscale leaves them (its list[int] is as loose)
        plain = cast("list[int]", get_statistic(spec.statistic).dp_postprocess(
            spec, plain, entry_var(spec, noise.params, noise.shares)))
    return plain


#: simulated releases in :func:`plan` (0.02 s each for the README's regression)
PLAN_RUNS = 200


def _simulate(spec: QuerySpec, wire: list[int], info: NoiseInfo, exact: dict[str, float],
              runs: int, seed: int) -> dict[str, dict[str, float | None]]:
    """Spread of every released number over ``runs`` releases of ``wire`` with noise drawn
    from its exact law (:func:`simulate_noise`, seeded: the plan is reproducible), decoded
    as :func:`decode` decodes: per number the robust sd (1.4826 x the median absolute
    deviation, a normal law's sd: a few nearly singular noisy designs make the plain sd,
    also given, unstable; coarse for a rounded count), the 95th percentile of the absolute
    error, and the share of runs in which the number is undefined (None: a singular fit)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    stat = get_statistic(spec.statistic)
    draws: dict[str, list[float]] = {p: [] for p in exact}
    for _ in range(runs):
        noisy = [v + z for v, z in zip(wire, simulate_noise(info.params, info.shares, rng),
                                       strict=True)]
        try:
            got = _leaf_map(stat.decode(spec, _postprocessed(spec, noisy, info)).to_dict())
        except MalformedError:  # a decoder that refuses the noisy totals: all undefined
            got = {}
        for p in exact:
            if p in got:
                draws[p].append(got[p])
    out: dict[str, dict[str, float | None]] = {}
    for p, v in exact.items():
        d = np.asarray(draws[p], dtype=float)
        if d.size == 0:  # None, not NaN: the plan is printed as JSON
            out[p] = {"robust_sd": None, "sd": None, "p95_abs_error": None, "undefined": 1.0}
            continue
        out[p] = {"robust_sd": float(1.4826 * np.median(np.abs(d - np.median(d)))),
                  "sd": float(np.std(d, ddof=1)) if d.size > 1 else None,
                  "p95_abs_error": float(np.quantile(np.abs(d - v), 0.95)),
                  "undefined": 1.0 - d.size / runs}
    return out


def plan(spec: QuerySpec, n_compute: int, rows: int | None = None, delta: float = 1e-6, *,
         sample: Any = None, params: NoiseParams | None = None,
         runs: int = PLAN_RUNS, seed: int = 0) -> dict[str, Any]:
    """What a DP query would cost and how wrong its numbers would be, spending nothing and
    contacting no one: the querier's noise calibration for ``n_compute`` nodes (all in the
    noise set), the guarantee (rho, and epsilon at ``delta`` beyond the mechanism's own
    delta), the noise sd of every encoded entry and of every released number -- through the
    same weights, post-processing and delta method as a real decode -- on a design of
    ``rows`` rows (the owners' expected total, before filters):

    * ``sample`` given (a table the researcher holds -- column name -> values, or a pandas
      DataFrame: public pilot data, a synthetic copy, one site's public extract): its rows,
      **reweighted** to ``rows`` -- every encoded total (all are sums over rows) multiplied
      by ``rows / len(sample)`` and rounded, exactly what ``k`` copies of the sample give
      when the ratio is an integer ``k``; so the sample's means, spread and correlations are
      kept, deterministically.  ``rows`` defaults to the sample's size.
    * no sample: ``rows`` synthetic rows spread uniformly over the bounds
      (:func:`synthetic_table`).  For a :data:`DESIGN_DEPENDENT` statistic the result says
      so (``design_caveat``): real columns spread less and give larger errors.

    Two error figures per released number: ``value_sd``, first-order (the delta method at
    the noise-free totals, what a release reports), and ``simulated`` (``runs`` releases
    with noise from its exact law, seeded by ``seed``: the robust sd, the 95th percentile
    of the absolute error, the share of undefined runs), which also sees the second-order
    excess and heavy tails of a regression's noisy ``X'X``; ``runs = 0`` skips it.

    ``params``: noise parameters already calibrated for this query (a bench, a test, a
    logged setup); checked to meet its rho over ``n_compute`` shares, else calibrated here.
    """
    from statledger.protocol import flow, noise

    rho = flow.privacy_rho(spec)
    if rho is None:
        raise MalformedError("privacy.mechanism: the query asks for no differential privacy; "
                             "it would be answered exactly (nothing to plan)")
    if n_compute < 1:
        raise MalformedError("plan: at least one compute node")
    if sample is not None:
        cols, n_sample = _sample_columns(spec, sample)
        rows = n_sample if rows is None else rows
    elif rows is None:
        raise MalformedError("plan: give the number of rows or a sample")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise MalformedError("plan: rows must be a positive integer")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
        raise MalformedError("plan: runs must be a non-negative integer")
    if sample is None:  # the design first: a bad sample is refused before any search
        synth = synthetic_table(spec, rows)
        plain, report = _pooled_totals(spec, synth, rows, "synthetic rows")
    else:
        plain, report = _pooled_totals(spec, cols, n_sample, "sample")
        if report.n_selected == 0:
            raise MalformedError("sample: no row is selected (every row has a missing value, "
                                 "a category the query does not declare, or fails its "
                                 "filters)")
        if rows != n_sample:
            plain = [round(Fraction(t * rows, n_sample)) for t in plain]
    sens = privacy_profile(spec)
    entries = len(wire_sensitivity(spec))
    if params is None:
        params = noise.calibrate(sens, rho, n_compute, n_compute, entries=entries)
    elif params.entries != entries:
        raise MalformedError("plan: the noise parameters are for another layout")
    bound = noise.privacy_bound(params, sens)
    if bound.rho > rho:
        raise MalformedError("plan: the noise parameters do not meet the query's rho")
    eps, dlt = bound.epsilon(delta)
    vals = quantize(spec, plain)  # the wire, as one owner would send the pooled totals
    info = NoiseInfo(params, n_compute)
    result = decode(spec, vals, info).to_dict()
    dp_block = result["dp"]
    exact = {p: v for p, v in _leaf_map(get_statistic(spec.statistic).decode(spec, plain)
                                        .to_dict()).items() if p in dp_block["value_sd"]}
    caveat = (UNIFORM_CAVEAT if sample is None and spec.statistic in DESIGN_DEPENDENT
              else None)
    out: dict[str, Any] = {
        "statistic": spec.statistic,
        "rho": float(rho),
        "rho_bound": bound.rho,
        "epsilon": eps,
        "delta": dlt,
        "compute_nodes": n_compute,
        "rows": rows,
        # "uniform": synthetic rows spread over the bounds; "sample": the researcher's
        # sample, reweighted to ``rows``
        "design": "uniform" if sample is None else "sample",
        "design_dependent": spec.statistic in DESIGN_DEPENDENT,
        "design_caveat": caveat,
        "weights": dp_block["weights"],
        "budget_share": budget_share(spec),
        "entry_sd": dp_block["entry_sd"],
        "value_sd": dp_block["value_sd"],
        # the statistic's exact (noise-free) value on the design
        "values": exact,
        "simulated_runs": runs,
        "simulated": _simulate(spec, vals, info, exact, runs, seed) if runs else {},
        "noise_bits_per_entry": params.bits_per_entry,
    }
    if sample is not None:  # bucketed like an owner's clip report (never a count)
        out["sample_clipped"] = clip_buckets(report)
    return out


def budget_share(spec: QuerySpec) -> dict[str, float]:
    """The budget split stated by :func:`plan`: each charged item's share of ``rho``,
    ``s_i^2 / sum_j s_j^2`` over the :func:`privacy_profile` (the zCDP charge of noise of one
    sd on every wire entry, before the noise's shift rounding): one item per entry, or per
    one-hot block (labelled ``first..last`` entry) when one row moves one cell of a block."""
    stat = get_statistic(spec.statistic)
    labels = stat.layout(spec).labels
    blocks = stat.onehot_blocks(spec) or [1] * len(labels)
    names: list[str] = []
    pos = 0
    for n in blocks:
        names.append(labels[pos] if n == 1 else f"{labels[pos]}..{labels[pos + n - 1]}")
        pos += n
    sq = [x * x for x in privacy_profile(spec)]
    total = sum(sq)
    return {lab: s / total for lab, s in zip(names, sq, strict=True)}


def _leaf_map(obj: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    _leaves(obj, "", out)
    return out


def simulate_noise(params: NoiseParams, shares: int, rng: Any = None) -> list[int]:
    """One draw of the released noise of a noise set of ``shares`` nodes, in wire units: the
    exact law of docs/noise.md (every bit ``b XOR c`` uniform when the coin is), each share
    ``u - offset``.  For in-process accuracy tests, benches and :func:`plan`; the protocol
    never samples here (the nodes commit to bits).  ``rng``: a seeded
    ``numpy.random.Generator`` for a reproducible draw (a plan); default ``secrets``."""
    import secrets

    from statledger.protocol import flow, noise

    nbits = params.bits_per_entry
    mask = (1 << nbits) - 1
    weights = [noise.bit_weight(params, b) for b in range(nbits)]
    out = [0] * params.entries
    for pos in range(shares):
        off = flow.noise_offset(params, pos)
        for j in range(params.entries):
            bits = (secrets.randbits(nbits) if rng is None
                    else int.from_bytes(rng.bytes((nbits + 7) // 8), "little") & mask)
            out[j] += sum(w for b, w in enumerate(weights) if bits >> b & 1) - off
    return out
