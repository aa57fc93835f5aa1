"""The query recipes: one function per protocol step, shared by the nodes and the verifier.

No I/O here.  Each step of one query end to end (docs/architecture.md) is a pure function so the
parties (``nodes/``) and the independent checker (``verifier/``) run the *same* code:

* contexts that bind every proof to its query and party (no replay across queries);
* the collective key ``X = sum X_i``;
* a provider's submission: encode -> limb-encrypt -> range-prove (:mod:`statledger.proofs.vector`);
* the aggregate: component-wise (limb-wise) sum of all contributions, publicly recomputable;
* a compute node's decryption shares ``D_k = x_i * C1_k`` with one batched DLEQ proof;
* combination of the shares, exact discrete logarithms, limb recombination -> integer totals;
* decoding of the totals into the statistic's result.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from statledger.proofs import elgamal, sigma
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import (
    DecryptionError,
    MalformedError,
    PolicyError,
    VerificationError,
)
from statledger.proofs.group import Point, Scalar, msm, sum_points
from statledger.proofs.vector import LIMB_BITS, EncryptedVector, n_limbs
from statledger.protocol import calibration, dkg, dp, noise
from statledger.protocol.entries import NoiseCoinEntry, NoiseCommitEntry, SetupEntry
from statledger.protocol.noise import CoinShare, NoiseCommitment, NoiseParams
from statledger.protocol.query import QuerySpec

__all__ = [
    "KEYREG_CONTEXT",
    "keyreg_context",
    "submission_context",
    "decryption_context",
    "collective_key",
    "Contribution",
    "aggregate",
    "limb_bounds",
    "flatten",
    "unflatten",
    "decrypts_whole_entries",
    "recombine",
    "decryption_targets",
    "decryption_count",
    "make_decryption",
    "verify_decryption",
    "decrypt_totals",
    "noise_plan",
    "check_noise_params",
    "logged_noise_params",
    "noise_bound",
    "privacy_rho",
    "noise_sensitivities",
    "privacy_profile",
    "NoiseRange",
    "noise_offset",
    "noise_ranges",
    "DerivedShare",
    "noise_set",
    "noise_coin_base",
    "noise_seed",
    "derive_noise_share",
    "decryption_threshold",
    "combination_weights",
]

KEYREG_CONTEXT = b"statledger/keyreg/v2\n"
_SUBMISSION = b"statledger/submission/v1\n"
_DECRYPTION = b"statledger/decryption/v1\n"


def _join(prefix: bytes, *parts: str) -> bytes:
    out = bytearray(prefix)
    for p in parts:
        raw = p.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def keyreg_context(consortium: str, party_id: str) -> bytes:
    """Context of a compute node's Schnorr proof of knowledge of its key share: bound to
    the consortium id (a proof made for one consortium is refused by every other) and to the
    node's party id (no node can claim another's share)."""
    return _join(KEYREG_CONTEXT, consortium, party_id)


def submission_context(query_id: str, provider: str) -> bytes:
    """Binds a provider's range proofs to one query and one provider (no replay)."""
    return _join(_SUBMISSION, query_id, provider)


def decryption_context(query_id: str, node: str) -> bytes:
    """Binds a compute node's batched DLEQ proof to one query and one node."""
    return _join(_DECRYPTION, query_id, node)


def collective_key(keys: Sequence[Point]) -> Point:
    """``X = sum_i X_i`` (n-of-n key: every node's share is needed to decrypt)."""
    if not keys:
        raise MalformedError("collective key: no compute node keys")
    total = sum_points(keys)
    if total == Point.identity():
        raise MalformedError("collective key is the identity")
    return total


@dataclass(frozen=True)
class Contribution:
    """One encrypted vector added into the aggregate with the public ranges it was proved in
    (a provider's submission), or a derived DP noise share with its noise ranges."""

    vector: EncryptedVector | DerivedShare
    ranges: tuple[tuple[int, int], ...]


def aggregate(contributions: Sequence[Contribution]) -> list[list[Ciphertext]]:
    """Limb-wise sum of every contribution: ``A[j][i] = sum_c C_c[j][i]``.

    Contributions may have different ranges (DP noise shares have ``[-B, B]``) and therefore a
    different number of limbs for the same entry; limb ``i`` of entry ``j`` sums every
    contribution that has such a limb.  Recombination over the integers
    (``sum_i 2^(16 i) * A[j][i]``) is unaffected.
    """
    if not contributions:
        raise MalformedError("aggregate: no contributions")
    width = len(contributions[0].ranges)
    out: list[list[Ciphertext]] = []
    for c in contributions:
        if len(c.ranges) != width or len(c.vector.limbs) != width:
            raise MalformedError("aggregate: contributions have different vector lengths")
    for j in range(width):
        depth = max(len(c.vector.limbs[j]) for c in contributions)
        limbs: list[Ciphertext] = []
        for i in range(depth):
            acc: Ciphertext | None = None
            for c in contributions:
                if i < len(c.vector.limbs[j]):
                    ct = c.vector.limbs[j][i]
                    acc = ct if acc is None else acc + ct
            if acc is None:  # pragma: no cover - depth is a max over existing limbs
                raise MalformedError("aggregate: empty limb")
            limbs.append(acc)
        out.append(limbs)
    return out


def limb_bounds(contributions_ranges: Sequence[Sequence[tuple[int, int]]]) -> list[list[int]]:
    """Upper bound of every aggregated limb of an honest run (``sum_c`` max limb value).

    The discrete-log search of limb ``(j, i)`` covers ``[-bound, bound]``: an honest aggregate
    always decrypts; anything else raises :class:`DecryptionError`, never a wrong value.
    A derived noise share's entry (a :class:`NoiseRange`) adds its exact limb maxima.
    """
    width = len(contributions_ranges[0])
    out: list[list[int]] = []
    for j in range(width):
        per_limb: dict[int, int] = {}
        for ranges in contributions_ranges:
            r = ranges[j]
            if isinstance(r, NoiseRange):
                for i, top in enumerate(r.limb_max):
                    per_limb[i] = per_limb.get(i, 0) + top
                continue
            lo, hi = r
            w = hi - lo
            for i in range(n_limbs(lo, hi)):
                top = w >> (LIMB_BITS * i)
                per_limb[i] = per_limb.get(i, 0) + min((1 << LIMB_BITS) - 1, top)
        out.append([per_limb[i] for i in range(len(per_limb))])
    return out


def flatten(agg: Sequence[Sequence[Ciphertext]]) -> list[Ciphertext]:
    """Row-major list of the aggregate's limb ciphertexts (the order decryption shares use)."""
    return [ct for limbs in agg for ct in limbs]


def decrypts_whole_entries(spec: QuerySpec) -> bool:
    """Whether a query's decryption covers ONE ciphertext per entry (a DP query) or every
    limb ciphertext (an exact query).  The noise's guarantee covers an entry's total only;
    its limb sums -- which per-limb shares would let anyone recombine -- carry
    data-dependent carries and limbs no noise reaches (docs/privacy.md, "Limb sums")."""
    return calibration.is_dp(spec)


def recombine(limbs: Sequence[Ciphertext]) -> Ciphertext:
    """``C = sum_i 2^(16 i) * C_i``: one ciphertext of an entry's (shifted) total from its
    limb ciphertexts.  Public and deterministic: everyone recomputes the same ``C``."""
    if not limbs:
        raise MalformedError("recombine: an entry without limbs")
    acc = limbs[0]
    for i, ct in enumerate(limbs[1:], start=1):
        acc = acc + ct * (1 << (LIMB_BITS * i))
    return acc


def decryption_targets(spec: QuerySpec, agg: Sequence[Sequence[Ciphertext]]
                       ) -> list[Ciphertext]:
    """THE list of ciphertexts a query's decryption covers, for an aggregate (or a released
    sub-aggregate, :func:`statledger.protocol.suppression.select`): a DP query's
    :func:`recombine` of every entry (one share per entry), an exact query's
    :func:`flatten` (one share per limb).  Compute nodes share exactly these, the querier
    and the verifier check the shares against them."""
    if decrypts_whole_entries(spec):
        return [recombine(limbs) for limbs in agg]
    return flatten(agg)


def decryption_count(spec: QuerySpec, agg: Sequence[Sequence[Ciphertext]]) -> int:
    """``len(decryption_targets(spec, agg))`` without the scalar multiplications."""
    return len(agg) if decrypts_whole_entries(spec) else sum(len(limbs) for limbs in agg)


def unflatten(flat: Sequence[Point], shape: Sequence[int]) -> list[list[Point]]:
    """Inverse of :func:`flatten` for per-limb values, given the limb count of every entry."""
    if sum(shape) != len(flat):
        raise MalformedError(f"expected {sum(shape)} values, got {len(flat)}")
    out: list[list[Point]] = []
    pos = 0
    for k in shape:
        out.append(list(flat[pos : pos + k]))
        pos += k
    return out


def decryption_threshold(setup: SetupEntry) -> int:
    """``T``: how many of the setup's compute nodes must take part in a decryption or a
    noise coin (any ``T`` of them; fewer than ``T`` colluding learn nothing)."""
    return setup.threshold


def combination_weights(setup: SetupEntry, nodes: Sequence[str]) -> list[Scalar]:
    """The weights ``w_j`` with ``x = sum_j w_j x_j`` for exactly ``T`` distinct nodes of the
    setup, ``x_j`` their key shares: the Lagrange coefficients at 0 of their evaluation
    points (position in ``setup.compute`` + 1).  Raises MalformedError for a wrong count, an
    unknown node or a repeated one."""
    t = decryption_threshold(setup)
    if len(nodes) != t or len(set(nodes)) != t:
        raise MalformedError(f"a combination needs exactly {t} distinct compute nodes, "
                             f"got {list(nodes)}")
    points = []
    for node in nodes:
        if node not in setup.compute:
            raise MalformedError(f"{node} is not a compute node of the setup")
        points.append(setup.compute.index(node) + 1)
    return dkg.lagrange_at_zero(points)


def make_decryption(
    x_i: Scalar, X_i: Point, cts: Sequence[Ciphertext], context: bytes
) -> tuple[list[Point], sigma.DLEQBatchProof]:
    """A node's shares ``D_k = x_i * C1_k`` and one batched DLEQ proof for all of them."""
    c1s = [c.C1 for c in cts]
    shares = [elgamal.decryption_share(x_i, c) for c in cts]
    proof = sigma.prove_dleq_batch(x_i, X_i, c1s, shares, context)
    return shares, proof


def verify_decryption(
    X_i: Point,
    cts: Sequence[Ciphertext],
    shares: Sequence[Point],
    proof: sigma.DLEQBatchProof,
    context: bytes,
    *,
    party: str,
    step: str,
) -> None:
    """Raise unless ``log_G X_i == log_{C1_k} D_k`` for every k (the node decrypted honestly)."""
    if len(shares) != len(cts):
        raise VerificationError(
            f"{len(shares)} decryption shares for {len(cts)} ciphertexts", step=step, party=party
        )
    try:
        sigma.verify_dleq_batch(X_i, [c.C1 for c in cts], list(shares), proof, context)
    except VerificationError as exc:
        raise VerificationError(
            f"decryption shares: {exc.reason}", step=step, party=party
        ) from exc


def decrypt_totals(
    spec: QuerySpec,
    agg: Sequence[Sequence[Ciphertext]],
    shares_by_node: Sequence[Sequence[Point]],
    contributions_ranges: Sequence[Sequence[tuple[int, int]]],
    weights: Sequence[Scalar],
    *,
    targets: Sequence[Ciphertext] | None = None,
) -> list[int]:
    """Combine ``T`` nodes' shares of :func:`decryption_targets`, take exact discrete logs,
    recombine limbs (exact queries), undo shifts.  ``targets``: the caller's
    ``decryption_targets(spec, agg)`` when it already has them (step 12 and the querier
    checked the shares against them; recombining a DP entry again would cost two scalar
    multiplications per extra limb).

    Exact query: ``total_j = sum_c lo_{c,j} + sum_i 2^(16 i) * dlog(C2_{j,i} - sum_n w_n
    D_{n,j,i})`` with ``w_n`` the nodes' :func:`combination_weights` (Lagrange coefficients
    at 0: ``sum_n w_n x_n = x``, so ``sum_n w_n D_n = x*C1``); each limb searched within its
    honest :func:`limb_bounds`.  DP query: one share per entry, of :func:`recombine` of its
    limbs; ``total_j = sum_c lo_{c,j} + dlog(C2_j - sum_n w_n D_{n,j})``, searched within
    ``sum_c (hi_{c,j} - lo_{c,j})`` (every contribution's range is proved exactly; a noise
    share's plaintext lies in ``[0, share_max]``).  Raises :class:`DecryptionError` if a
    plaintext is outside its honest bound.
    """
    if len(weights) != len(shares_by_node):
        raise MalformedError(f"{len(weights)} weights for {len(shares_by_node)} nodes' shares")
    if targets is None:
        targets = decryption_targets(spec, agg)
    for shares in shares_by_node:
        if len(shares) != len(targets):
            raise MalformedError("decryption shares do not match the aggregate's size")
    if decrypts_whole_entries(spec):
        bounds = [sum(int(r[j][1]) - int(r[j][0]) for r in contributions_ranges)
                  for j in range(len(agg))]
        points = [ct.C2 - msm(weights, [shares[k] for shares in shares_by_node])
                  for k, ct in enumerate(targets)]
        values = elgamal.discrete_log_many(points, max(bounds) if bounds else 0)
        out: list[int] = []
        for j, v in enumerate(values):
            if not 0 <= v <= bounds[j]:
                raise DecryptionError(f"entry {j}: plaintext outside its bound {bounds[j]}")
            out.append(v + sum(int(r[j][0]) for r in contributions_ranges))
        return out
    bounds_l = limb_bounds(contributions_ranges)
    points = []
    flat_bounds: list[int] = []
    pos = 0
    for j, limbs in enumerate(agg):
        if len(limbs) != len(bounds_l[j]):
            raise MalformedError(f"aggregate entry {j} has {len(limbs)} limbs, expected "
                                 f"{len(bounds_l[j])}")
        for i, ct in enumerate(limbs):
            node_shares = [shares[pos] for shares in shares_by_node]
            points.append(ct.C2 - msm(weights, node_shares))
            flat_bounds.append(bounds_l[j][i])
            pos += 1
    values = elgamal.discrete_log_many(points, max(flat_bounds) if flat_bounds else 0)
    totals: list[int] = []
    pos = 0
    for j, limbs in enumerate(agg):
        limb_values = []
        for i in range(len(limbs)):
            v = values[pos]
            if abs(v) > flat_bounds[pos]:
                raise DecryptionError(
                    f"entry {j} limb {i}: plaintext {v} outside its bound {flat_bounds[pos]}"
                )
            limb_values.append(v)
            pos += 1
        shift = sum(ranges[j][0] for ranges in contributions_ranges)
        totals.append(elgamal.join_limbs(limb_values, LIMB_BITS) + shift)
    return totals


# ---------------------------------------------------------------------------------------
# DP noise: committed bits XOR a threshold coin (protocol/noise.py, docs/noise.md)
# ---------------------------------------------------------------------------------------


def privacy_rho(spec: QuerySpec) -> Fraction | None:
    """The zCDP charge ``rho`` of a query (exact), or ``None`` when it asks for no DP.

    ``zcdp`` queries give ``rho``; ``approx(epsilon, delta)`` queries are converted to the
    largest ``rho`` whose CKS 2020 conversion gives them (:func:`dp.rho_for_epsilon_delta`);
    pure epsilon-DP (``delta = 0``) is refused.  What a data owner charges to its budget."""
    privacy = spec.privacy
    if privacy.mechanism == "none":
        return None
    if privacy.mechanism == "zcdp":
        return dp.as_fraction(privacy.rho, name="privacy.rho")
    if privacy.delta == 0:
        raise MalformedError(
            "privacy.delta: pure epsilon-DP (delta = 0) needs Laplace noise, which the "
            "distributed noise shares cannot give; use delta > 0 or zcdp"
        )
    return dp.rho_for_epsilon_delta(privacy.epsilon, privacy.delta)


def noise_sensitivities(spec: QuerySpec) -> list[int]:
    """How much one row can move each entry of the query's encrypted vector (integer units,
    the per-entry weights of :mod:`statledger.protocol.calibration` included)."""
    return calibration.wire_sensitivity(spec)


def privacy_profile(spec: QuerySpec) -> list[int]:
    """The sensitivities the privacy bound is charged for: those of the entries one row can
    move together (:func:`calibration.privacy_profile`; every entry unless the statistic's
    rows are one-hot over blocks)."""
    return calibration.privacy_profile(spec)


@functools.lru_cache(maxsize=32)
def _calibrated(sensitivities: tuple[int, ...], rho: Fraction, n_nodes: int,
                entries: int) -> NoiseParams:
    # n_nodes = threshold = N: honest_count(N, N) = 1 (docs/privacy.md, "The guarantee")
    return noise.calibrate(sensitivities, rho, n_nodes, n_nodes, entries=entries)


def noise_plan(spec: QuerySpec, setup: SetupEntry) -> NoiseParams | None:
    """The querier's choice of noise parameters, or ``None`` when the query asks for no DP:
    ``noise.calibrate(sensitivities, rho, N, N)`` with ``N`` the setup's compute nodes, i.e.
    calibrated for **one** honest node among those whose shares are added (the noise set
    has at least ``T`` nodes, at most ``T - 1`` dishonest: docs/privacy.md).  A search of up
    to several seconds, cached per process; run once per query, by the querier, whose
    choice travels in every noise commitment.  Nobody has to trust it: every other party
    checks the parameters it is given with :func:`check_noise_params` (one privacy bound,
    ~0.1 s)."""
    rho = privacy_rho(spec)
    if rho is None:
        return None
    return _calibrated(tuple(privacy_profile(spec)), rho, len(setup.compute),
                       len(noise_sensitivities(spec)))


#: the largest noise parameters anyone is asked to commit to or check: bits per entry, and
#: the largest shift ``ceil(t / 2^m)`` of a sensitivity (``noise.calibrate`` uses <= 64)
MAX_NOISE_BITS_PER_ENTRY = 4096
MAX_NOISE_SHIFT = 64


@functools.lru_cache(maxsize=256)
def noise_bound(params: NoiseParams, sensitivities: tuple[int, ...]) -> noise.PrivacyBound:
    """``noise.privacy_bound`` of ``params`` (cached per process: every party checks the
    parameters of a query once)."""
    return noise.privacy_bound(params, sensitivities)


def _bound_ok(params: NoiseParams, sensitivities: tuple[int, ...], rho: Fraction) -> str | None:
    bound = noise_bound(params, sensitivities)
    if bound.rho > float(rho) or bound.delta > noise.DEFAULT_DELTA:
        return (f"they give rho <= {bound.rho:.6g} and delta <= {bound.delta:.3g}; the query "
                f"asks rho {float(rho):.6g}, delta {noise.DEFAULT_DELTA:.3g}")
    return None


def check_noise_params(spec: QuerySpec, setup: SetupEntry, params: NoiseParams) -> None:
    """The one rule on noise parameters, for everyone who is handed them (a compute node
    asked to commit, the ledger, the verifier at step 10): they are shaped for this query and
    setup (one entry per encoded value, ``n_nodes = threshold = N``: one honest node assumed)
    and within the work limits, and with one honest node's share they meet the query's
    ``rho`` and ``noise.DEFAULT_DELTA`` (:func:`noise.privacy_bound`).  Raises
    MalformedError (shape, limits) or PolicyError (not private enough) without naming a
    party: the caller knows who handed them over."""
    rho = privacy_rho(spec)
    if rho is None:
        raise MalformedError("noise parameters for a query that asks for no DP")
    sens = tuple(noise_sensitivities(spec))
    n = len(setup.compute)
    if (params.n_nodes, params.threshold, params.entries) != (n, n, len(sens)):
        raise MalformedError(f"noise parameters shaped for {params.n_nodes} nodes, threshold "
                             f"{params.threshold}, {params.entries} entries; this query "
                             f"needs {n}, {n}, {len(sens)}")
    # the bound costs one Renyi evaluation per shift q = ceil(t / 2^m) up to the largest:
    # at most MAX_NOISE_SHIFT of them, as noise.calibrate itself allows
    shift = -(-max(sens) // (1 << params.uniform_bits)) if sens else 0
    if (params.bits_per_entry > MAX_NOISE_BITS_PER_ENTRY
            or params.summands * ((1 << params.summand_bits) - 1) >= noise.MAX_SUPPORT
            or shift > MAX_NOISE_SHIFT):
        raise MalformedError("noise parameters beyond the work limits (bits per entry, "
                             "support of the summands, shift of the largest sensitivity)")
    # a DP entry is decrypted as one number (decryption_targets): the noise shares add to
    # its discrete log, so noise far larger than calibration gives (a querier's choice: the
    # privacy bound only asks for enough) would make every decryption slow or impossible
    top = (n * params.share_max + calibration.dlog_bound(spec)).bit_length()
    if top > calibration.MAX_DP_DLOG_BITS:
        raise MalformedError(f"noise parameters: the noise shares would take a DP total to "
                             f"2^{top} wire units (> 2^{calibration.MAX_DP_DLOG_BITS}: its "
                             "discrete log is too slow); calibrate for the query's rho")
    why = _bound_ok(params, tuple(privacy_profile(spec)), rho)
    if why is not None:
        raise PolicyError(f"the noise parameters are not private enough: {why}")


def logged_noise_params(spec: QuerySpec, setup: SetupEntry,
                        commits: Sequence[tuple[int, NoiseCommitEntry]]) -> NoiseParams | None:
    """The noise parameters a query's commitments carry (``None`` while none is logged):
    every commitment carries the same, and they pass :func:`check_noise_params`.
    VerificationError (step ``noise``) naming the first node whose commitment differs or
    whose parameters fail."""
    params: NoiseParams | None = None
    for index, c in sorted(commits, key=lambda r: r[0]):
        try:
            p = c.noise_params()
            if params is None:
                check_noise_params(spec, setup, p)
                params = p
            elif p != params:
                raise MalformedError("its noise parameters differ from the first commitment's")
        except (MalformedError, PolicyError) as exc:
            raise VerificationError(f"noise commitment {index}: {exc}", step="noise",
                                    party=c.node) from None
    return params


class NoiseRange(tuple[int, int]):
    """The range ``(lo, hi)`` of one entry of a derived noise share, with the exact largest
    plaintext of each of its limbs (``noise.limb_bounds``): a limb of a derived share
    carries the weights of many bits and may exceed ``2^16 - 1``.  Compares equal to the
    plain pair; :func:`limb_bounds` reads ``limb_max``."""

    limb_max: tuple[int, ...]

    def __new__(cls, lo: int, hi: int, limb_max: Sequence[int]) -> NoiseRange:
        self = super().__new__(cls, (lo, hi))
        self.limb_max = tuple(limb_max)
        return self

    def __getnewargs__(self) -> tuple[int, int, tuple[int, ...]]:
        return self[0], self[1], self.limb_max


def noise_offset(params: NoiseParams, position: int) -> int:
    """The public offset of the share of the noise set's ``position``-th node (in
    ``setup.compute`` order): the share entry is ``Z = u - offset``, ``u`` the derived
    plaintext in ``[0, share_max]``.  ``floor(share_max / 2)``, plus 1 at odd positions when
    ``share_max`` is odd, so that the offsets of ``k`` shares add up to
    ``floor(k * share_max / 2)``: the released noise has mean 0, or 1/2 integer unit when
    ``k`` and ``share_max`` are both odd, never more."""
    half = params.share_max // 2
    return half + (position % 2 if params.share_max % 2 else 0)


def noise_ranges(params: NoiseParams, position: int) -> list[NoiseRange]:
    """Per entry, ``[-offset, share_max - offset]`` with the limb maxima: what a derived
    share contributes to the aggregate (:func:`decrypt_totals` adds ``lo = -offset``)."""
    off = noise_offset(params, position)
    lm = noise.limb_bounds(params, LIMB_BITS)
    return [NoiseRange(-off, params.share_max - off, lm)] * params.entries


@dataclass(frozen=True)
class DerivedShare:
    """A noise share derived from a commitment and the public coins: limb ciphertexts only
    (``noise.derive_share_limbs``), no proof -- anyone recomputes it."""

    limbs: tuple[tuple[Ciphertext, ...], ...]


def noise_set(
    commits: Sequence[tuple[int, NoiseCommitEntry]],
    coins: Sequence[tuple[int, NoiseCoinEntry]],
) -> list[tuple[int, NoiseCommitEntry]]:
    """The noise set ``S`` of a query, a function of the log alone: its ``noise_commit``
    entries that precede, in log order, its first ``noise_coin`` entry (all of them while no
    coin share is logged), in log order.  A commitment logged after the first coin share is
    ignored.  Duplicates are left to the caller (step 10 refuses them)."""
    first = min((i for i, _ in coins), default=None)
    return sorted(((i, c) for i, c in commits if first is None or i < first),
                  key=lambda item: item[0])


def noise_coin_base(params: NoiseParams, query_id: str,
                    commitments: Sequence[NoiseCommitment]) -> Point:
    """``P = noise.coin_base(query id, commitments_digest(S's commitments))``, the
    commitments in the order of ``setup.compute``."""
    return noise.coin_base(query_id, noise.commitments_digest(params, query_id, commitments))


def noise_seed(setup: SetupEntry, base: Point, shares: Sequence[CoinShare]) -> bytes:
    """The coin seed from exactly ``T`` coin shares (the first ``T`` valid ones in log
    order): ``x*P = sum_j w_j D_j`` with :func:`combination_weights`."""
    weights = combination_weights(setup, [s.node for s in shares])
    return noise.coin_seed(base, [s.D for s in shares], [int(w) for w in weights])


def derive_noise_share(
    params: NoiseParams, query_id: str, commitment: NoiseCommitment, seed: bytes,
    position: int,
) -> Contribution:
    """The noise set's ``position``-th node's share as a contribution to the aggregate: its
    coins ``derive_coins(seed, query id, node)``, its limbs ``derive_share_limbs`` (16-bit
    limbs, as the aggregate's), its ranges :func:`noise_ranges`."""
    coins = noise.derive_coins(seed, query_id, commitment.node, params.total_bits)
    limbs = noise.derive_share_limbs(params, commitment, coins, LIMB_BITS)
    return Contribution(DerivedShare(tuple(tuple(row) for row in limbs)),
                        tuple(noise_ranges(params, position)))
