"""Verifiable distributed DP noise: committed secret bits XOR public coins (docs/noise.md).

Mechanism.  Every compute node adds, to every entry of the encrypted aggregate, a share

    Z = u - offset,   u = U + Delta * (V_1 + ... + V_s),   Delta = 2^m,

with ``U`` uniform on ``[0, Delta)`` and ``V_i`` uniform on ``[0, 2^r)``: ``m + s*r`` uniform
bits per entry.  ``r = 1`` is the centred binomial; ``r > 1`` a discrete Irwin--Hall sum.
The bits are *derived*, never chosen: the node first publishes ElGamal encryptions of
secret bits ``b`` under the collective key with one aggregated proof that every one is 0 or
1 (:func:`statledger.proofs.vector.encrypt_vector_with_proof`, ranges ``(0, 1)``); only
after every node's commitment is on the log are the public coins ``c`` fixed, by a
threshold coin ``x*P`` (``x`` the collective secret key, ``P`` hashed from the query id and
the digest of all commitments; each node publishes ``x_i*P`` with a DLEQ proof).  The noise
bit is ``b XOR c = c + (1 - 2c) b``, a *linear* function of the committed bit, so anyone
computes the share's ciphertext homomorphically (:func:`derive_share`).

Privacy (docs/noise.md, Theorem 1): with ``h = N - T + 1`` honest nodes, the released value is
``delta``-approximately ``rho``-zCDP (mixture form) for the ``rho`` and ``delta`` of
:func:`privacy_bound`, computed numerically from the exact law of the honest ``K`` (sum of
``h*s`` uniforms) with a conservative bracketing of the Renyi order.

Pure: no I/O, no clock.  Randomness: ``secrets`` (bits) inside ``encrypt_vector_with_proof``.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul, hash_to_curve, sum_points
from statledger.proofs.sigma import DLEQProof, prove_dleq, verify_dleq
from statledger.proofs.vector import (
    EncryptedVector,
    encrypt_vector_with_proof,
    verify_encrypted_vector,
    verify_encrypted_vectors_batch,
)
from statledger.protocol.canonical import canonical_bytes

__all__ = [
    "DOMAIN",
    "DEFAULT_DELTA",
    "NoiseParams",
    "NoiseCommitment",
    "CoinShare",
    "PrivacyBound",
    "honest_count",
    "privacy_bound",
    "rho_for_shift",
    "calibrate",
    "commitment_context",
    "commit_noise",
    "verify_commitment",
    "verify_commitments_batch",
    "commitments_digest",
    "coin_base",
    "make_coin_share",
    "verify_coin_share",
    "coin_seed",
    "derive_coins",
    "derive_share",
    "derive_share_limbs",
    "limb_bounds",
    "check_share",
    "verify_noise_round",
    "verify_noise_round_limbs",
    "verified_coins",
    "bit_weight",
]

DOMAIN = b"statledger/noise/v1"
DEFAULT_DELTA = 1e-10
"""Default total ``delta`` of the approximate-zCDP statement for one query (all entries)."""

_COIN_DST = b"statledger/noise/v1/coin-base"
MAX_SUPPORT = 1 << 16  # largest support of K for which the exact law is computed
_MAX_SUPPORT = MAX_SUPPORT


def honest_count(n_nodes: int, threshold: int) -> int:
    """``h = N - T + 1``: nodes that are honest when at most ``T - 1`` are dishonest."""
    for name, v in (("n_nodes", n_nodes), ("threshold", threshold)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise MalformedError(f"{name} must be an int")
    if not 1 <= threshold <= n_nodes:
        raise MalformedError(f"need 1 <= threshold <= n_nodes, got T={threshold}, N={n_nodes}")
    return n_nodes - threshold + 1


@dataclass(frozen=True)
class NoiseParams:
    """Public parameters of one query's noise (from the spec and the roster only).

    ``entries`` d, ``summands`` s and ``summand_bits`` r of ``K`` per node, ``uniform_bits`` m
    (``Delta = 2^m``).  Bit ``k`` of an entry has weight :func:`bit_weight`: bits ``0..m-1``
    are ``U``; then ``s`` groups of ``r`` bits, each weighted ``Delta * 2^j``.
    """

    n_nodes: int
    threshold: int
    entries: int
    summands: int
    summand_bits: int
    uniform_bits: int

    def __post_init__(self) -> None:
        honest_count(self.n_nodes, self.threshold)
        for name in ("entries", "summands", "summand_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise MalformedError(f"{name} must be an int >= 1")
        m = self.uniform_bits
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 100:
            raise MalformedError("uniform_bits must be an int in [0, 100]")
        if self.share_max.bit_length() > 120:
            raise MalformedError("noise share would exceed 2^120")

    @property
    def honest(self) -> int:
        return honest_count(self.n_nodes, self.threshold)

    @property
    def step(self) -> int:
        """``Delta = 2^m``."""
        return 1 << self.uniform_bits

    @property
    def bits_per_entry(self) -> int:
        return self.uniform_bits + self.summands * self.summand_bits

    @property
    def total_bits(self) -> int:
        return self.entries * self.bits_per_entry

    @property
    def share_max(self) -> int:
        """Largest ``u``: ``Delta - 1 + Delta * s * (2^r - 1)``."""
        return self.step - 1 + self.step * self.summands * ((1 << self.summand_bits) - 1)

    @property
    def offset(self) -> int:
        """Public offset: the share entry is ``Z = u - offset`` (``offset = share_max // 2``)."""
        return self.share_max // 2

    @property
    def share_mean(self) -> Fraction:
        """``E[Z] = share_max/2 - offset``: 0 or 1/2 integer unit, public."""
        return Fraction(self.share_max, 2) - self.offset

    @property
    def share_variance(self) -> Fraction:
        """``Var Z = (Delta^2 - 1)/12 + Delta^2 s (4^r - 1)/12`` (exact)."""
        d2 = self.step * self.step
        return Fraction(d2 - 1, 12) + Fraction(d2 * self.summands * (4**self.summand_bits - 1), 12)

    @property
    def honest_variance(self) -> Fraction:
        """Variance of the sum of the ``h`` honest shares (what privacy rests on)."""
        return self.honest * self.share_variance

    @property
    def total_variance(self) -> Fraction:
        """Variance of the released noise (all ``N`` shares: dishonest ones are random too)."""
        return self.n_nodes * self.share_variance

    def ranges(self) -> list[tuple[int, int]]:
        """Declared range of every entry of a share: ``[-offset, share_max - offset]``."""
        return [(-self.offset, self.share_max - self.offset)] * self.entries

    @classmethod
    def from_json_obj(cls, obj: object) -> NoiseParams:
        """Strict inverse of :meth:`to_json_obj` (MalformedError: other keys, non-ints)."""
        keys = {"n_nodes", "threshold", "entries", "summands", "summand_bits", "uniform_bits"}
        if not isinstance(obj, dict) or set(obj) != keys:
            raise MalformedError(f"noise params: expected exactly the keys {sorted(keys)}")
        for k in keys:
            v = obj[k]
            if isinstance(v, bool) or not isinstance(v, int):
                raise MalformedError(f"noise params: {k} must be an integer")
        return cls(obj["n_nodes"], obj["threshold"], obj["entries"], obj["summands"],
                   obj["summand_bits"], obj["uniform_bits"])

    def to_json_obj(self) -> dict[str, int]:
        return {
            "n_nodes": self.n_nodes,
            "threshold": self.threshold,
            "entries": self.entries,
            "summands": self.summands,
            "summand_bits": self.summand_bits,
            "uniform_bits": self.uniform_bits,
        }


def bit_weight(params: NoiseParams, k: int) -> int:
    """Weight of bit ``k`` (0-based, within one entry) in ``u``."""
    m, r = params.uniform_bits, params.summand_bits
    if k < m:
        return 1 << k
    return 1 << (m + (k - m) % r)


# ---------------------------------------------------------------------------------------
# Privacy (floats; a report and a calibration, never a sample)
# ---------------------------------------------------------------------------------------


def _k_pmf(summands: int, bits: int) -> np.ndarray:
    """Exact law (float64) of the sum of ``summands`` uniforms on ``[0, 2^bits)``."""
    size = summands * ((1 << bits) - 1) + 1
    if size > _MAX_SUPPORT:
        raise MalformedError(f"support of K too large to evaluate ({size} > {_MAX_SUPPORT})")
    u = np.full(1 << bits, 1.0 / (1 << bits))
    p = np.array([1.0])
    # square-and-multiply on the number of summands
    base, e = u, summands
    while e:
        if e & 1:
            p = np.convolve(p, base)
        e >>= 1
        if e:
            base = np.convolve(base, base)
    p = np.clip(p, 0.0, None)
    return np.asarray(p / p.sum())


def rho_for_shift(pmf: np.ndarray, q: int, delta: float) -> tuple[float, float]:
    """``(rho_q, delta_q)`` for ``K`` with law ``pmf`` (symmetric, support ``0..L``) and an
    integer shift ``q >= 0``: with ``a`` the largest cut whose tails ``F(a-1) + F(a+q-1)`` are
    ``<= delta``, ``J = [q + a, L - a]``, ``P = K | J`` and ``Q = (K + q) | J`` have equal
    weights ``1 - delta_q`` and ``D_alpha(P || Q) = D_alpha(Q || P) <= alpha * rho_q`` for all
    ``alpha > 1`` (docs/noise.md, Lemma 2).  ``rho_q`` is a conservative bracket: Renyi
    divergence is nondecreasing in ``alpha``, so on ``[a_i, a_{i+1}]``,
    ``D_alpha / alpha <= D_{a_{i+1}} / a_i``; beyond the last grid point ``D_inf / alpha``."""
    if q == 0:
        return 0.0, 0.0
    size = len(pmf) - 1
    cdf = np.cumsum(pmf)

    def tail(a: int) -> float:
        return 0.0 if a <= 0 else float(cdf[a - 1])

    a = 0
    while q + a + 1 <= size - a - 1 and tail(a + 1) + tail(a + 1 + q) <= delta:
        a += 1
    if q + a > size - a:
        return math.inf, 1.0
    with np.errstate(divide="ignore"):
        lp = np.log(pmf[q + a : size - a + 1])
        lq = np.log(pmf[a : size - a - q + 1])
    if not (np.isfinite(lp).all() and np.isfinite(lq).all()):
        return math.inf, 1.0
    from scipy.special import logsumexp  # lazily: a verifier's cold start needs no scipy

    lp = lp - logsumexp(lp)
    lq = lq - logsumexp(lq)
    d_inf = float((lp - lq).max()) + 1e-12
    ratio = 1.05
    alpha = 1.0 + 1e-4
    prev_alpha = alpha
    best = 0.0
    first = True
    while True:
        batch = alpha * ratio ** np.arange(32)
        vals = np.array([logsumexp(x * lp + (1.0 - x) * lq) / (x - 1.0) for x in batch])
        vals = np.maximum(vals, 0.0) * (1.0 + 1e-9) + 1e-15
        if first:  # alpha in (1, a_0]: D_alpha <= D_{a_0} and alpha > 1
            best = float(vals[0])
            first = False
        lows = np.concatenate(([prev_alpha], batch[:-1]))
        best = max(best, float((vals / lows).max()))
        prev_alpha = float(batch[-1])
        alpha = prev_alpha * ratio
        if d_inf / prev_alpha <= best or prev_alpha > 1e7:
            break
    best = max(best, d_inf / prev_alpha)
    return best, tail(a) + tail(a + q)


@dataclass(frozen=True)
class PrivacyBound:
    """``delta``-approximate ``rho``-zCDP (mixture form) of the released noisy entries."""

    rho: float
    delta: float
    per_shift: dict[int, float]

    def epsilon(self, delta_prime: float) -> tuple[float, float]:
        """(epsilon, delta + delta') by CKS 2020 Cor. 13 on ``rho`` (docs/noise.md)."""
        from statledger.protocol.dp import epsilon_from_rho

        return epsilon_from_rho(Fraction(repr(self.rho)), delta_prime), self.delta + delta_prime


def _shifts(params: NoiseParams, sensitivities: Sequence[int]) -> list[int]:
    # one per entry, or fewer: the entries one row can move together (a privacy profile,
    # calibration.privacy_profile); the others cost nothing
    if not 0 < len(sensitivities) <= params.entries:
        raise MalformedError(f"{len(sensitivities)} sensitivities but {params.entries} entries")
    out = []
    for j, t in enumerate(sensitivities):
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise MalformedError(f"sensitivity[{j}] must be an int >= 0")
        out.append(-(-t // params.step))
    return out


def privacy_bound(
    params: NoiseParams, sensitivities: Sequence[int], delta: float = DEFAULT_DELTA
) -> PrivacyBound:
    """The guarantee of Theorem 1 for entries whose sensitivities (integer units) are given.

    Each entry j with ``q_j = ceil(t_j / Delta)`` costs ``max_{q <= q_j} rho_q`` and
    ``delta_{q_j}`` (tails at ``delta / d`` each); entries add (independent noise)."""
    if not 0.0 < delta < 1.0:
        raise MalformedError("delta must be in (0, 1)")
    qs = _shifts(params, sensitivities)
    pmf = _k_pmf(params.honest * params.summands, params.summand_bits)
    per_entry = delta / params.entries
    rho_of: dict[int, float] = {}
    delta_of: dict[int, float] = {}
    running = 0.0
    for q in range(0, max(qs) + 1):
        r, d = rho_for_shift(pmf, q, per_entry)
        running = max(running, r)
        rho_of[q] = running
        delta_of[q] = d
    rho = sum(rho_of[q] for q in qs)
    dlt = min(1.0, sum(max(delta_of[x] for x in range(q + 1)) for q in qs))
    return PrivacyBound(rho=rho, delta=dlt, per_shift=rho_of)


def calibrate(
    sensitivities: Sequence[int],
    rho: float | Fraction,
    n_nodes: int,
    threshold: int,
    *,
    delta: float = DEFAULT_DELTA,
    max_inflation: float = 1.5,
    max_summand_bits: int = 6,
    entries: int | None = None,
) -> NoiseParams:
    """Parameters with ``privacy_bound(...).rho <= rho`` and ``.delta <= delta``.

    Among ``Delta = 2^m`` (shift ``q = ceil(t_max / Delta)`` between 2 and 64), summand
    widths ``r <= max_summand_bits`` and the smallest ``s`` that meets ``rho``, return the one
    with the fewest bits per entry whose honest variance is at most ``max_inflation`` times
    the ideal ``sum t_j^2 / (2 rho)`` (a discrete Gaussian's); if none is, the one with the
    smallest variance.

    ``entries``: how many entries get noise, when ``sensitivities`` lists only those one row
    can move together (``calibration.privacy_profile``); default ``len(sensitivities)``."""
    h = honest_count(n_nodes, threshold)
    if len(sensitivities) == 0:
        raise MalformedError("no entries")
    d = len(sensitivities) if entries is None else entries
    if isinstance(d, bool) or not isinstance(d, int) or d < len(sensitivities):
        raise MalformedError("entries must be an int >= the number of sensitivities")
    target = float(rho)
    if not target > 0:
        raise MalformedError("rho must be > 0")
    t_max = max(sensitivities)
    if t_max <= 0:
        raise MalformedError("all sensitivities are zero")
    ideal = sum(t * t for t in sensitivities) / (2.0 * target)
    candidates: list[tuple[NoiseParams, float]] = []
    per_entry = delta / d
    for m in range(0, 101):
        step = 1 << m
        q_max = -(-t_max // step)
        if q_max > 64:
            continue
        if q_max < 2 and m > 0:
            break
        counts: dict[int, int] = {}
        for t in sensitivities:
            q = -(-t // step)
            counts[q] = counts.get(q, 0) + 1
        for r in range(1, max_summand_bits + 1):

            def meets(s: int, r: int = r, counts: dict[int, int] = counts) -> bool:
                pmf = _k_pmf(h * s, r)
                tot_rho = 0.0
                tot_delta = 0.0
                for q, c in counts.items():
                    rq, dq = rho_for_shift(pmf, q, per_entry)
                    tot_rho += c * rq
                    tot_delta += c * dq
                return tot_rho <= target and tot_delta <= delta

            s_cap = (_MAX_SUPPORT - 1) // (h * ((1 << r) - 1))
            var_unit = (4**r - 1) / 12.0
            lo = max(1, math.ceil(ideal / (step * step * var_unit * h)))
            if lo > s_cap:
                continue
            hi = lo
            while hi <= s_cap and not meets(hi):
                lo = hi + 1
                hi = min(s_cap + 1, hi * 2)
            if hi > s_cap:
                continue
            while lo < hi:  # smallest s in [lo, hi] that meets the target
                mid = (lo + hi) // 2
                if meets(mid):
                    hi = mid
                else:
                    lo = mid + 1
            s_best = hi
            while s_best <= s_cap:  # the full check (every shift up to q_max) decides
                p = NoiseParams(n_nodes, threshold, d, s_best, r, m)
                b = privacy_bound(p, sensitivities, delta)
                if b.rho <= target and b.delta <= delta:
                    candidates.append((p, float(p.honest_variance) / ideal))
                    break
                s_best += 1
    if not candidates:
        raise MalformedError("no noise parameters meet the target (raise delta or rho)")
    ok = [c for c in candidates if c[1] <= max_inflation]
    if ok:
        return min(ok, key=lambda c: (c[0].bits_per_entry, c[1]))[0]
    return min(candidates, key=lambda c: (c[1], c[0].bits_per_entry))[0]


# ---------------------------------------------------------------------------------------
# Round 1: commitments to secret bits
# ---------------------------------------------------------------------------------------


def _check_str(v: object, what: str) -> str:
    if not isinstance(v, str) or not v:
        raise MalformedError(f"{what} must be a non-empty string")
    return v


def _absorb(h: Any, *parts: bytes) -> Any:
    """Feed ``parts`` to the hash ``h``, each length-prefixed (8 bytes, big-endian), so that
    no two part lists share an input; returns ``h``."""
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h


def _params_bytes(params: NoiseParams) -> bytes:
    return canonical_bytes(params.to_json_obj())


def commitment_context(params: NoiseParams, query_id: str, node: str) -> bytes:
    """Binds a commitment's proof to the query, the node and the parameters."""
    _check_str(query_id, "query id")
    _check_str(node, "node id")
    return bytes(_absorb(hashlib.sha256(), DOMAIN, b"commit", query_id.encode(), node.encode(),
                         _params_bytes(params)).digest())


@dataclass(frozen=True)
class NoiseCommitment:
    """Round 1 entry of one node: ``total_bits`` encrypted bits, entry-major, and one
    aggregated proof that each is 0 or 1 (an :class:`EncryptedVector` with ranges (0, 1))."""

    node: str
    bits: EncryptedVector

    def ciphertexts(self) -> list[Ciphertext]:
        return [row[0] for row in self.bits.limbs]

    def to_bytes(self) -> bytes:
        return self.bits.to_bytes()


def commit_noise(
    X: Point,
    params: NoiseParams,
    query_id: str,
    node: str,
    *,
    bits: Sequence[int] | None = None,
) -> NoiseCommitment:
    """A node's round-1 commitment: fresh secret bits (``secrets``) encrypted under ``X``.

    ``bits`` is a test hook (a node choosing its bits); the derived noise does not depend
    on the choice once the coins are fixed later."""
    n = params.total_bits
    if bits is None:
        bits = [secrets.randbelow(2) for _ in range(n)]
    if len(bits) != n:
        raise MalformedError(f"need {n} bits, got {len(bits)}")
    ctx = commitment_context(params, query_id, node)
    ev = encrypt_vector_with_proof(X, list(bits), [(0, 1)] * n, ctx)
    return NoiseCommitment(node, ev)


def verify_commitment(
    X: Point, params: NoiseParams, query_id: str, commitment: NoiseCommitment
) -> None:
    """Every committed ciphertext encrypts 0 or 1, proved for this query, node and params.

    Raises :class:`VerificationError` (step ``noise-commitment``) naming the node."""
    node = commitment.node
    try:
        ctx = commitment_context(params, query_id, node)
        verify_encrypted_vector(X, commitment.bits, [(0, 1)] * params.total_bits, ctx, party=node)
    except VerificationError as exc:
        raise VerificationError(
            f"bit commitment rejected: {exc.reason}", step="noise-commitment", party=node
        ) from exc


def verify_commitments_batch(
    X: Point, params: NoiseParams, query_id: str, commitments: Sequence[NoiseCommitment]
) -> None:
    """:func:`verify_commitment` for many nodes with one multi-scalar multiplication; on
    failure the first bad node is named (step ``noise-commitment``)."""
    ranges = [(0, 1)] * params.total_bits
    items = [
        (X, c.bits, ranges, commitment_context(params, query_id, c.node)) for c in commitments
    ]
    try:
        verify_encrypted_vectors_batch(items, [c.node for c in commitments])
    except VerificationError as exc:
        raise VerificationError(
            f"bit commitment rejected: {exc.reason}", step="noise-commitment", party=exc.party
        ) from exc


def commitments_digest(
    params: NoiseParams, query_id: str, commitments: Sequence[NoiseCommitment]
) -> bytes:
    """SHA-256 over the parameters, the query and every commitment, in roster order.

    ``commitments`` are those of the noise set: between 1 and ``params.n_nodes`` of them,
    of distinct nodes (every node id and commitment is length-prefixed, so two different
    sets never share a digest input)."""
    if not 1 <= len(commitments) <= params.n_nodes:
        raise MalformedError(f"{len(commitments)} commitments for {params.n_nodes} nodes")
    if len({c.node for c in commitments}) != len(commitments):
        raise MalformedError("two commitments of one node")
    parts = [DOMAIN, b"digest", query_id.encode(), _params_bytes(params)]
    for c in commitments:
        parts += [c.node.encode(), c.to_bytes()]
    return bytes(_absorb(hashlib.sha256(), *parts).digest())


# ---------------------------------------------------------------------------------------
# Round 2: the threshold coin x*P
# ---------------------------------------------------------------------------------------


def coin_base(query_id: str, digest: bytes) -> Point:
    """``P = hash_to_curve(query id || digest of all commitments)``: nobody knows log_G P."""
    _check_str(query_id, "query id")
    return hash_to_curve(query_id.encode() + b"\x00" + digest, _COIN_DST)


@dataclass(frozen=True)
class CoinShare:
    """``D_i = x_i * P`` with a DLEQ proof against the node's registered key ``X_i``."""

    node: str
    D: Point
    proof: DLEQProof


def _coin_context(query_id: str, node: str) -> bytes:
    return DOMAIN + b"/coin/" + query_id.encode() + b"/" + node.encode()


def make_coin_share(x_i: Scalar, X_i: Point, P: Point, query_id: str, node: str) -> CoinShare:
    """Published by an honest node only once all N commitments are on the log."""
    D = x_i * P
    return CoinShare(node, D, prove_dleq(x_i, X_i, P, D, _coin_context(query_id, node)))


def verify_coin_share(X_i: Point, P: Point, share: CoinShare, query_id: str) -> None:
    try:
        verify_dleq(X_i, P, share.D, share.proof, _coin_context(query_id, share.node))
    except VerificationError as exc:
        raise VerificationError(
            f"coin share rejected: {exc.reason}", step="noise-coin", party=share.node
        ) from exc


def coin_seed(P: Point, shares: Sequence[Point], weights: Sequence[int] | None = None) -> bytes:
    """``seed = SHA-256(domain, P, x*P)`` with ``x*P = sum w_i D_i`` (``w_i = 1``: n-of-n key;
    Lagrange coefficients of any T nodes for a T-of-N key: the same ``x*P`` either way)."""
    if weights is None:
        total = sum_points(shares)
    else:
        if len(weights) != len(shares):
            raise MalformedError("one weight per share")
        total = Point.identity()
        for w, D in zip(weights, shares, strict=True):
            total = total + Scalar.reduce(w) * D
    return bytes(_absorb(hashlib.sha256(), DOMAIN, b"seed", P.to_bytes(), total.to_bytes())
                 .digest())


def derive_coins(seed: bytes, query_id: str, node: str, count: int) -> list[int]:
    """``count`` public coin bits for ``node``'s commitment (SHAKE-256 of seed, query, node)."""
    x = _absorb(hashlib.shake_256(), DOMAIN, b"coins", seed, query_id.encode(), node.encode())
    stream = x.digest((count + 7) // 8)
    return [(stream[i >> 3] >> (i & 7)) & 1 for i in range(count)]


# ---------------------------------------------------------------------------------------
# The share, derived homomorphically
# ---------------------------------------------------------------------------------------


def _horner(levels: Sequence[Sequence[Point]]) -> Point:
    """``sum_k 2^k * sum(levels[k])`` by doubling inside one combine per level."""
    acc = Point.identity()
    for level in reversed(levels):
        acc = sum_points([acc, acc, *level])
    return acc


def _signed_entry(
    params: NoiseParams, cts: Sequence[Ciphertext], coins: Sequence[int], j: int, limb_bits: int
) -> dict[int, tuple[list[list[Ciphertext]], list[list[Ciphertext]], int]]:
    """Bits of entry ``j`` grouped by limb (``limb_bits``-bit limbs; ``0`` = one limb) and,
    within a limb, by level: ``{limb: (positive levels, negative levels, public constant)}``."""
    L = params.bits_per_entry
    out: dict[int, tuple[list[list[Ciphertext]], list[list[Ciphertext]], int]] = {}
    for k in range(L):
        e = bit_weight(params, k).bit_length() - 1
        limb, lvl = (0, e) if limb_bits == 0 else divmod(e, limb_bits)
        if limb not in out:
            width = limb_bits if limb_bits else params.uniform_bits + params.summand_bits
            out[limb] = ([[] for _ in range(width)], [[] for _ in range(width)], 0)
        pos, neg, const = out[limb]
        if coins[j * L + k]:
            neg[lvl].append(cts[j * L + k])
            out[limb] = (pos, neg, const + (1 << lvl))
        else:
            pos[lvl].append(cts[j * L + k])
    return out


def _combine_levels(
    pos: Sequence[Sequence[Ciphertext]], neg: Sequence[Sequence[Ciphertext]], const: int
) -> Ciphertext:
    C1 = _horner([[c.C1 for c in lv] for lv in pos]) - _horner([[c.C1 for c in lv] for lv in neg])
    C2 = _horner([[c.C2 for c in lv] for lv in pos]) - _horner([[c.C2 for c in lv] for lv in neg])
    if const:
        C2 = C2 + base_mul(Scalar(const))
    return Ciphertext(C1, C2)


def _check_derive(params: NoiseParams, commitment: NoiseCommitment,
                  coins: Sequence[int]) -> list[Ciphertext]:
    cts = commitment.ciphertexts()
    if len(cts) != params.total_bits or len(coins) != params.total_bits:
        raise MalformedError("commitment or coins do not match the parameters")
    return cts


def derive_share(
    params: NoiseParams, commitment: NoiseCommitment, coins: Sequence[int]
) -> list[Ciphertext]:
    """Per entry, ``Enc(u)`` with ``u = sum_k w_k (b_k XOR c_k)`` (the share is ``u - offset``).

    ``b XOR c = c + (1 - 2c) b``: the public part ``sum w_k c_k`` is a trivial encryption
    ``(O, (sum w_k c_k) G)``; the rest is ``sum +-w_k Enc(b_k)``, computed with additions only
    (weights are powers of two: one Horner chain for ``+`` and one for ``-``)."""
    cts = _check_derive(params, commitment, coins)
    out: list[Ciphertext] = []
    for j in range(params.entries):
        pos, neg, const = _signed_entry(params, cts, coins, j, 0)[0]
        out.append(_combine_levels(pos, neg, const))
    return out


def limb_bounds(params: NoiseParams, limb_bits: int = 16) -> list[int]:
    """Largest plaintext of each limb ciphertext of :func:`derive_share_limbs` (same for
    every entry): the sum of the ``2^(e mod limb_bits)`` of the bits that fall in the limb."""
    top = params.share_max.bit_length()
    bounds = [0] * max(1, -(-top // limb_bits))
    for k in range(params.bits_per_entry):
        e = bit_weight(params, k).bit_length() - 1
        limb, lvl = divmod(e, limb_bits)
        bounds[limb] += 1 << lvl
    return bounds


def derive_share_limbs(
    params: NoiseParams, commitment: NoiseCommitment, coins: Sequence[int], limb_bits: int = 16
) -> list[list[Ciphertext]]:
    """Like :func:`derive_share` but split in ``limb_bits``-bit limbs, as the aggregate is:
    limb ``i`` of entry ``j`` encrypts the part of ``u_j`` carried by bits of weight
    ``2^e`` with ``floor(e / limb_bits) = i``, scaled by ``2^(-limb_bits * i)``; so
    ``u_j = sum_i 2^(limb_bits * i) * limb_i`` (``join_limbs``) and each limb plaintext is at
    most ``limb_bounds(params)[i]`` (a small discrete log)."""
    if isinstance(limb_bits, bool) or not isinstance(limb_bits, int) or limb_bits < 1:
        raise MalformedError("limb_bits must be an int >= 1")
    cts = _check_derive(params, commitment, coins)
    n_limbs = len(limb_bounds(params, limb_bits))
    out: list[list[Ciphertext]] = []
    for j in range(params.entries):
        groups = _signed_entry(params, cts, coins, j, limb_bits)
        row = []
        for i in range(n_limbs):
            if i in groups:
                row.append(_combine_levels(*groups[i]))
            else:
                row.append(Ciphertext.zero())
        out.append(row)
    return out


def check_share(node: str, claimed: Sequence[Ciphertext], derived: Sequence[Ciphertext]) -> None:
    """A share a node posts (or that an aggregate uses) must be exactly the derived one."""
    if len(claimed) != len(derived):
        raise VerificationError(
            f"{len(claimed)} share entries, expected {len(derived)}", step="noise-share",
            party=node,
        )
    for j, (a, b) in enumerate(zip(claimed, derived, strict=True)):
        if a != b:
            raise VerificationError(
                f"share entry {j} is not the one derived from the commitment and the coins",
                step="noise-share", party=node,
            )


def verified_coins(
    X: Point,
    params: NoiseParams,
    query_id: str,
    roster: Sequence[tuple[str, Point]],
    commitments: Sequence[NoiseCommitment],
    coin_shares: Sequence[CoinShare],
    *,
    batch: bool = True,
) -> dict[str, list[int]]:
    """Check a whole noise round and return every node's public coins (in roster order).

    ``roster`` is ``[(node id, X_i)]`` in the registered order (n-of-n key ``X = sum X_i``);
    ``commitments`` and ``coin_shares`` must follow it.  Raises :class:`VerificationError`
    naming the node: a commitment out of place or with a bad proof, a coin share with a bad
    DLEQ proof (the coin base ``P`` is recomputed from the commitments here).  ``batch``:
    all bit proofs in one multi-scalar multiplication (the culprit is still named)."""
    if len(roster) != params.n_nodes:
        raise MalformedError(f"roster has {len(roster)} nodes, params say {params.n_nodes}")
    for (node, _), com in zip(roster, commitments, strict=False):
        if com.node != node:
            raise VerificationError(
                f"commitment of {com.node} in {node}'s place", step="noise-commitment",
                party=com.node,
            )
    if len(commitments) != len(roster):
        missing = [n for n, _ in roster][len(commitments):]
        raise VerificationError("commitment missing", step="noise-commitment", party=missing[0])
    if batch:
        verify_commitments_batch(X, params, query_id, commitments)
    else:
        for com in commitments:
            verify_commitment(X, params, query_id, com)
    P = coin_base(query_id, commitments_digest(params, query_id, commitments))
    if len(coin_shares) != len(roster):
        missing = [n for n, _ in roster if n not in {s.node for s in coin_shares}]
        raise VerificationError("coin share missing", step="noise-coin",
                                party=missing[0] if missing else None)
    for (node, X_i), share in zip(roster, coin_shares, strict=True):
        if share.node != node:
            raise VerificationError(f"coin share of {share.node} in {node}'s place",
                                    step="noise-coin", party=share.node)
        verify_coin_share(X_i, P, share, query_id)
    seed = coin_seed(P, [s.D for s in coin_shares])
    return {
        com.node: derive_coins(seed, query_id, com.node, params.total_bits)
        for com in commitments
    }


def verify_noise_round(
    X: Point,
    params: NoiseParams,
    query_id: str,
    roster: Sequence[tuple[str, Point]],
    commitments: Sequence[NoiseCommitment],
    coin_shares: Sequence[CoinShare],
    *,
    batch: bool = True,
) -> dict[str, list[Ciphertext]]:
    """:func:`verified_coins`, then every node's derived share (``Enc(u)`` per entry)."""
    coins = verified_coins(X, params, query_id, roster, commitments, coin_shares, batch=batch)
    return {com.node: derive_share(params, com, coins[com.node]) for com in commitments}


def verify_noise_round_limbs(
    X: Point,
    params: NoiseParams,
    query_id: str,
    roster: Sequence[tuple[str, Point]],
    commitments: Sequence[NoiseCommitment],
    coin_shares: Sequence[CoinShare],
    *,
    limb_bits: int = 16,
    batch: bool = True,
) -> dict[str, list[list[Ciphertext]]]:
    """:func:`verified_coins`, then every node's derived share in limbs, as the aggregate is
    (:func:`derive_share_limbs`; limb plaintexts bounded by :func:`limb_bounds`)."""
    coins = verified_coins(X, params, query_id, roster, commitments, coin_shares, batch=batch)
    return {
        com.node: derive_share_limbs(params, com, coins[com.node], limb_bits)
        for com in commitments
    }

