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
from collections.abc import Sequence
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
    "Z95",
    "MAX_SD_ENTRIES",
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
    ``q/2`` per owner and entry, against noise of sd above ``256 q`` (docs/privacy.md,
    "Limb sums")."""
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
    left out: ``owners * max_j (hi_j - lo_j)`` of the :func:`wire_layout` (the noise adds a few
    sensitivities, ``< 2^20`` wire units)."""
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
        raise PolicyError(f"site {party} has more rows than max_rows; raise max_rows") from None
    return quantize(spec, values), report


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
    plain = unscale(spec, totals)
    if is_dp(spec) and noise is not None:  # documented post-processing (e.g. OLS ridge)
        # withheld entries stay None, as unscale leaves them (its list[int] is as loose)
        plain = cast("list[int]", stat.dp_postprocess(
            spec, plain, entry_var(spec, noise.params, noise.shares)))
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


def clip_buckets(report: LocalReport) -> dict[str, str]:
    """Per column, how many values were clipped to the bounds, bucketed so the querier learns
    an order of magnitude, never a count: ``"0"``, ``"1-9"``, ``"10-99"``, ``"100+"``."""
    out: dict[str, str] = {}
    for col, k in sorted(report.clipped.items()):
        out[col] = "0" if k == 0 else "1-9" if k < 10 else "10-99" if k < 100 else "100+"
    return out


def synthetic_table(spec: QuerySpec, rows: int, seed: int = 0) -> dict[str, Any]:
    """``rows`` made-up rows for :func:`plan`: every numeric column uniform within its bounds
    (a fixed seed: the plan is reproducible), every categorical one cycling its categories."""
    import numpy as np

    rng = np.random.default_rng(seed)
    table: dict[str, Any] = {}
    for col in spec.used_columns():
        if col in spec.bounds:
            lo, hi = spec.bounds[col]
            table[col] = rng.uniform(lo, hi, rows)
        elif col in spec.categories:
            cats = spec.categories[col]
            table[col] = np.asarray([cats[i % len(cats)] for i in range(rows)], dtype=object)
    return table


def plan(spec: QuerySpec, n_compute: int, rows: int, delta: float = 1e-6) -> dict[str, Any]:
    """What a DP query would cost and how wrong its numbers would be, spending nothing: the
    querier's noise calibration for ``n_compute`` nodes (all in the noise set), the
    guarantee (rho, and epsilon at ``delta`` beyond the mechanism's own delta), the noise sd
    of every encoded entry and of every released number on ``rows`` synthetic rows spread
    over the bounds (:func:`synthetic_table`)."""
    from statledger.protocol import flow, noise

    rho = flow.privacy_rho(spec)
    if rho is None:
        raise MalformedError("privacy.mechanism: the query asks for no differential privacy; "
                             "it would be answered exactly (nothing to plan)")
    sens = privacy_profile(spec)
    params = noise.calibrate(sens, rho, n_compute, n_compute,
                             entries=len(wire_sensitivity(spec)))
    bound = noise.privacy_bound(params, sens)
    eps, dlt = bound.epsilon(delta)
    vals, _ = wire_encode(spec, synthetic_table(spec, rows))
    result = decode(spec, vals, NoiseInfo(params, n_compute)).to_dict()
    dp_block = result["dp"]
    exact = get_statistic(spec.statistic).decode(spec, unscale(spec, vals)).to_dict()
    return {
        "statistic": spec.statistic,
        "rho": float(rho),
        "rho_bound": bound.rho,
        "epsilon": eps,
        "delta": dlt,
        "compute_nodes": n_compute,
        "rows": rows,
        "weights": dp_block["weights"],
        "budget_share": budget_share(spec),
        "entry_sd": dp_block["entry_sd"],
        "value_sd": dp_block["value_sd"],
        "synthetic_values": {p: v for p, v in _leaf_map(exact).items()
                             if p in dp_block["value_sd"]},
        "noise_bits_per_entry": params.bits_per_entry,
    }


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


def simulate_noise(params: NoiseParams, shares: int) -> list[int]:
    """One draw of the released noise of a noise set of ``shares`` nodes, in wire units: the
    exact law of docs/noise.md (every bit ``b XOR c`` uniform when the coin is), each share
    ``u - offset``.  For in-process accuracy tests and benches; the protocol never samples
    here (the nodes commit to bits)."""
    import secrets

    from statledger.protocol import flow, noise

    weights = [noise.bit_weight(params, b) for b in range(params.bits_per_entry)]
    out = [0] * params.entries
    for pos in range(shares):
        off = flow.noise_offset(params, pos)
        for j in range(params.entries):
            bits = secrets.randbits(params.bits_per_entry)
            out[j] += sum(w for b, w in enumerate(weights) if bits >> b & 1) - off
    return out
