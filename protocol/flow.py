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

from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs import elgamal, sigma
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import DecryptionError, MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, sum_points
from statledger.proofs.vector import LIMB_BITS, EncryptedVector, n_limbs
from statledger.protocol import dp
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic

__all__ = [
    "KEYREG_CONTEXT",
    "keyreg_context",
    "submission_context",
    "noise_context",
    "decryption_context",
    "collective_key",
    "Contribution",
    "aggregate",
    "limb_bounds",
    "flatten",
    "unflatten",
    "make_decryption",
    "verify_decryption",
    "decrypt_totals",
    "noise_plan",
]

KEYREG_CONTEXT = b"statledger/keyreg/v2\n"
_SUBMISSION = b"statledger/submission/v1\n"
_NOISE = b"statledger/noise/v1\n"
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


def noise_context(query_id: str, node: str) -> bytes:
    """Binds a compute node's DP noise share to one query and one node."""
    return _join(_NOISE, query_id, node)


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
    """One encrypted vector added into the aggregate with the public ranges it was proved in."""

    vector: EncryptedVector
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
    """
    width = len(contributions_ranges[0])
    out: list[list[int]] = []
    for j in range(width):
        per_limb: dict[int, int] = {}
        for ranges in contributions_ranges:
            lo, hi = ranges[j]
            w = hi - lo
            for i in range(n_limbs(lo, hi)):
                top = w >> (LIMB_BITS * i)
                per_limb[i] = per_limb.get(i, 0) + min((1 << LIMB_BITS) - 1, top)
        out.append([per_limb[i] for i in range(len(per_limb))])
    return out


def flatten(agg: Sequence[Sequence[Ciphertext]]) -> list[Ciphertext]:
    """Row-major list of the aggregate's limb ciphertexts (the order decryption shares use)."""
    return [ct for limbs in agg for ct in limbs]


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
    agg: Sequence[Sequence[Ciphertext]],
    shares_by_node: Sequence[Sequence[Point]],
    contributions_ranges: Sequence[Sequence[tuple[int, int]]],
) -> list[int]:
    """Combine every node's shares, take exact discrete logs, recombine limbs, undo shifts.

    ``total_j = sum_c lo_{c,j} + sum_i 2^(16 i) * dlog(C2_{j,i} - sum_nodes D_{j,i})``.
    Raises :class:`DecryptionError` if a limb is outside its honest bound.
    """
    flat = flatten(agg)
    for shares in shares_by_node:
        if len(shares) != len(flat):
            raise MalformedError("decryption shares do not match the aggregate's size")
    bounds = limb_bounds(contributions_ranges)
    points: list[Point] = []
    flat_bounds: list[int] = []
    pos = 0
    for j, limbs in enumerate(agg):
        if len(limbs) != len(bounds[j]):
            raise MalformedError(f"aggregate entry {j} has {len(limbs)} limbs, expected "
                                 f"{len(bounds[j])}")
        for i, ct in enumerate(limbs):
            node_shares = [shares[pos] for shares in shares_by_node]
            points.append(elgamal.combine(ct, node_shares))
            flat_bounds.append(bounds[j][i])
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


def noise_plan(spec: QuerySpec, n_nodes: int) -> dp.NoisePlan | None:
    """The public DP noise parameters of a query, or ``None`` when it asks for no DP.

    Every compute node adds one share.  Confidentiality already assumes only that one node is
    honest (n-of-n key), so the noise is calibrated the same way: ``t = n - 1`` nodes may add
    nothing, and each share alone carries the full variance ``sigma^2 = Delta_2^2 / (2 rho)``
    (docs/privacy.md).  ``(epsilon, delta)`` queries are converted to the zCDP ``rho`` that
    gives them (CKS 2020).
    """
    privacy = spec.privacy
    if privacy.mechanism == "none":
        return None
    if privacy.mechanism == "zcdp":
        rho = dp.as_fraction(privacy.rho, name="privacy.rho")
    else:
        if privacy.delta == 0:
            raise MalformedError(
                "privacy.delta: pure epsilon-DP (delta = 0) needs Laplace noise, which the "
                "distributed Gaussian shares cannot give; use delta > 0 or zcdp"
            )
        rho = dp.rho_for_epsilon_delta(privacy.epsilon, privacy.delta)
    sens = get_statistic(spec.statistic).sensitivity(spec)
    return dp.plan_distributed_noise(sens, rho, n_nodes, n_nodes - 1)
