"""Encrypted, range-proved vectors: what a provider (or a DP noise share) submits.

Math and notation: ``docs/notes/rangeproof.md`` (range part) and ``docs/notes/linking.md``
(why the Pedersen commitments are tied to the ciphertexts).

A vector of integers ``v_j`` with public inclusive ranges ``[lo_j, hi_j]`` becomes
``u_j = v_j - lo_j`` in ``[0, w_j]`` (``w_j = hi_j - lo_j``), split into ``LIMB_BITS``-bit
limbs ``m_ji`` (``n_limbs(lo_j, hi_j) = ceil(b_j / 16)``, ``b_j = max(1, bitlen(w_j))``).
Each limb is ElGamal-encrypted under the collective key ``X`` and Pedersen-committed
(``V_ji = m_ji*G + s_ji*H``); one :class:`~statledger.proofs.rangeproof.RangeProof` shows that
every limb
is a ``16``-bit (top limb: narrower) number, that ``lo_j <= v_j <= hi_j`` exactly, and that
each ciphertext encrypts the committed limb.  Because every limb is proved small, the
limb-wise sum of many submissions decrypts with a small discrete-log table and
:func:`decode_totals` recombines it over the integers.

Transcript (domain ``statledger/range/v1``): ``context`` (query id || party id, chosen by the
caller), ``X``, the ranges, all limb ciphertexts, all commitments, then the proof's own
messages and challenges (see :mod:`statledger.proofs.rangeproof`).

Encoding of an :class:`EncryptedVector` (length fixed by the ranges): every limb ciphertext
(66 bytes, value-major, limb-minor), then every commitment (33 bytes, same order), then the
proof (``RangeProof.encoded_size(rounds)`` bytes).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statledger.proofs.elgamal import CIPHERTEXT_BYTES, Ciphertext, encrypt, join_limbs, split_limbs
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, H, Point, Scalar, base_mul
from statledger.proofs.rangeproof import (
    LIMB_BITS,
    MAX_BITS,
    RangeLayout,
    RangeProof,
    VerificationTerms,
    _terms_is_identity,
    check_terms,
    prove_range_and_link,
    range_and_link_terms,
)
from statledger.proofs.transcript import Transcript

__all__ = [
    "DOMAIN",
    "LIMB_BITS",
    "MAX_BITS",
    "EncryptedVector",
    "Ranges",
    "aggregate",
    "decode_totals",
    "encrypt_vector_with_proof",
    "encrypt_vector_with_openings",
    "n_limbs",
    "verify_encrypted_vector",
    "verify_encrypted_vectors_batch",
    "find_invalid_vectors",
    "find_failing",
]

DOMAIN = b"statledger/range/v1"
_POINT = 33

Ranges = Sequence[tuple[int, int]]


def _check_int(v: object, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise MalformedError(f"{what} must be an int")
    return v


def _normalize_ranges(ranges: Ranges) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for j, r in enumerate(ranges):
        if not isinstance(r, tuple | list) or len(r) != 2:
            raise MalformedError(f"range {j} must be a pair (lo, hi)")
        lo = _check_int(r[0], f"range {j} lo")
        hi = _check_int(r[1], f"range {j} hi")
        if hi < lo:
            raise MalformedError(f"range {j}: hi < lo")
        out.append((lo, hi))
    if not out:
        raise MalformedError("a vector needs at least one value")
    return tuple(out)


def _layout(ranges: Ranges) -> tuple[tuple[tuple[int, int], ...], RangeLayout]:
    rs = _normalize_ranges(ranges)
    return rs, RangeLayout.from_spans([hi - lo for lo, hi in rs])


def n_limbs(lo: int, hi: int) -> int:
    """Number of limbs of a value in ``[lo, hi]``: ``ceil(max(1, bitlen(hi - lo)) / 16)``."""
    # the checks of _normalize_ranges for one pair, without building a layout (called once per
    # value and contribution: a layout per call cost ~0.1 ms, seconds on a large vector)
    _check_int(lo, "range 0 lo")
    _check_int(hi, "range 0 hi")
    if hi < lo:
        raise MalformedError("range 0: hi < lo")
    bits = max(1, (hi - lo).bit_length())
    if bits > MAX_BITS:
        raise MalformedError(f"value 0: range wider than 2^{MAX_BITS}")
    return -(-bits // LIMB_BITS)


@dataclass(frozen=True)
class EncryptedVector:
    """Limb ciphertexts, limb commitments (same shape) and the proof."""

    limbs: tuple[tuple[Ciphertext, ...], ...]
    commitments: tuple[tuple[Point, ...], ...]
    proof: RangeProof

    def __post_init__(self) -> None:
        rows_ok = isinstance(self.limbs, tuple) and all(
            isinstance(r, tuple) and all(isinstance(c, Ciphertext) for c in r) for r in self.limbs
        )
        coms_ok = isinstance(self.commitments, tuple) and all(
            isinstance(r, tuple) and all(isinstance(V, Point) for V in r) for r in self.commitments
        )
        if not rows_ok or not coms_ok or not isinstance(self.proof, RangeProof):
            raise TypeError(
                "EncryptedVector needs tuples of Ciphertexts, tuples of Points and a RangeProof"
            )

    @staticmethod
    def encoded_size(ranges: Ranges) -> int:
        _, layout = _layout(ranges)
        return layout.total_limbs * (CIPHERTEXT_BYTES + _POINT) + RangeProof.encoded_size(
            layout.rounds
        )

    def to_bytes(self) -> bytes:
        parts = [c.to_bytes() for row in self.limbs for c in row]
        parts += [V.to_bytes() for row in self.commitments for V in row]
        parts.append(self.proof.to_bytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, ranges: Ranges) -> EncryptedVector:
        """Strict: the length is fixed by ``ranges``; every point and scalar canonical."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("encrypted vector must be bytes")
        data = bytes(data)
        _, layout = _layout(ranges)
        want = cls.encoded_size(ranges)
        if len(data) != want:
            raise MalformedError(f"encrypted vector must be {want} bytes, got {len(data)}")
        pos = 0
        limbs: list[tuple[Ciphertext, ...]] = []
        for n in layout.n_limbs:
            row = []
            for _ in range(n):
                row.append(Ciphertext.from_bytes(data[pos : pos + CIPHERTEXT_BYTES]))
                pos += CIPHERTEXT_BYTES
            limbs.append(tuple(row))
        coms: list[tuple[Point, ...]] = []
        for n in layout.n_limbs:
            prow = []
            for _ in range(n):
                prow.append(Point.from_bytes(data[pos : pos + _POINT]))
                pos += _POINT
            coms.append(tuple(prow))
        proof = RangeProof.from_bytes(data[pos:], layout.rounds)
        return cls(tuple(limbs), tuple(coms), proof)


def _statement(
    X: Point,
    ranges: Sequence[tuple[int, int]],
    limbs: Sequence[Sequence[Ciphertext]],
    commitments: Sequence[Sequence[Point]],
    context: bytes,
) -> Transcript:
    if not isinstance(context, bytes | bytearray):
        raise TypeError("context must be bytes")
    t = Transcript(DOMAIN)
    t.append_message(b"context", bytes(context))
    t.append_point(b"X", X)
    t.append_int(b"values", len(ranges))
    for lo, hi in ranges:
        t.append_int(b"lo", lo)
        t.append_int(b"hi", hi)
    t.append_points(b"ciphertexts", [P for row in limbs for c in row for P in (c.C1, c.C2)])
    t.append_points(b"commitments", [V for row in commitments for V in row])
    return t


def _check_key(X: Point) -> None:
    if not isinstance(X, Point):
        raise TypeError("X must be a Point")
    if X.is_identity():
        raise MalformedError("the collective key X is the identity")


def _rand_scalar() -> int:
    return secrets.randbelow(ORDER - 1) + 1


def _encrypt(
    X: Point,
    limb_values: Sequence[Sequence[int]],
    ranges: tuple[tuple[int, int], ...],
    layout: RangeLayout,
    context: bytes,
    ct_values: Sequence[Sequence[int]] | None = None,
    rands_out: list[list[int]] | None = None,
) -> EncryptedVector:
    """Encrypt, commit and prove given limbs (ct_values: test hook, see the tests;
    rands_out receives the ElGamal randomness, for a proof about the same ciphertexts)."""
    blinds = [[_rand_scalar() for _ in row] for row in limb_values]
    rands = [[_rand_scalar() for _ in row] for row in limb_values]
    if rands_out is not None:
        rands_out.extend([list(row) for row in rands])
    enc_vals = limb_values if ct_values is None else ct_values
    # m*G is shared by the ciphertext and the commitment (one base multiplication per limb
    # saved); the limb values are small, signed only through the test hook.
    mG = [[base_mul(Scalar.reduce(m)) for m in row] for row in limb_values]
    cts = tuple(
        tuple(
            Ciphertext(base_mul(Scalar(r)), M + X * Scalar(r))
            if ct_values is None
            else encrypt(X, m, Scalar(r))
            for M, m, r in zip(mrow, erow, rrow, strict=True)
        )
        for mrow, erow, rrow in zip(mG, enc_vals, rands, strict=True)
    )
    coms = tuple(
        tuple(M + H * Scalar(s) for M, s in zip(mrow, srow, strict=True))
        for mrow, srow in zip(mG, blinds, strict=True)
    )
    t = _statement(X, ranges, cts, coms, context)
    proof = prove_range_and_link(t, X, layout, limb_values, blinds, rands)
    return EncryptedVector(cts, coms, proof)


def encrypt_vector_with_proof(
    X: Point, values: Sequence[int], ranges: Ranges, context: bytes
) -> EncryptedVector:
    """Encrypt ``values`` limb-wise under ``X`` and prove ``lo_j <= v_j <= hi_j``.

    A value outside its range raises :class:`MalformedError` before anything is proved.
    """
    return encrypt_vector_with_openings(X, values, ranges, context)[0]


def encrypt_vector_with_openings(
    X: Point, values: Sequence[int], ranges: Ranges, context: bytes
) -> tuple[EncryptedVector, list[list[int]]]:
    """:func:`encrypt_vector_with_proof`, also returning the ElGamal randomness of every
    limb ciphertext (``C1 = r*G``): the witness of a further proof about the same
    ciphertexts (:mod:`statledger.proofs.onehot`).  Keep it secret."""
    _check_key(X)
    rs, layout = _layout(ranges)
    if len(values) != len(rs):
        raise MalformedError(f"{len(values)} values but {len(rs)} ranges")
    limb_values: list[list[int]] = []
    for j, (v, (lo, hi)) in enumerate(zip(values, rs, strict=True)):
        _check_int(v, f"value {j}")
        if not lo <= v <= hi:
            raise MalformedError(f"value {j} is outside its range [{lo}, {hi}]")
        limb_values.append(split_limbs(v - lo, LIMB_BITS, layout.n_limbs[j]))
    rands: list[list[int]] = []
    ev = _encrypt(X, limb_values, rs, layout, context, rands_out=rands)
    return ev, rands


def _terms(
    X: Point, ev: EncryptedVector, ranges: Ranges, context: bytes, party: str | None
) -> tuple[VerificationTerms, VerificationTerms]:
    _check_key(X)
    if not isinstance(ev, EncryptedVector):
        raise TypeError("ev must be an EncryptedVector")
    rs, layout = _layout(ranges)
    shape = list(layout.n_limbs)
    if [len(r) for r in ev.limbs] != shape or [len(r) for r in ev.commitments] != shape:
        raise VerificationError(
            "vector shape does not match the ranges", step="range-proof", party=party
        )
    t = _statement(X, rs, ev.limbs, ev.commitments, context)
    c1 = [[c.C1 for c in row] for row in ev.limbs]
    c2 = [[c.C2 for c in row] for row in ev.limbs]
    return range_and_link_terms(t, X, layout, ev.commitments, c1, c2, ev.proof, party=party)


def verify_encrypted_vector(
    X: Point, ev: EncryptedVector, ranges: Ranges, context: bytes, *, party: str | None = None
) -> None:
    """Check ``ev`` against ``X``, ``ranges`` and ``context``; raises
    :class:`VerificationError` (step ``range-proof`` or ``link-proof``, naming ``party``)."""
    rng, lk = _terms(X, ev, ranges, context, party)
    check_terms(rng, lk, party=party)


def verify_encrypted_vectors_batch(
    items: Sequence[tuple[Point, EncryptedVector, Ranges, bytes]],
    parties: Sequence[str] | None = None,
) -> None:
    """Verify many vectors with ONE multi-scalar multiplication (random weights per proof;
    the generator-vector terms merge).  If any is invalid, raise for the first bad one
    (``party`` = ``parties[i]``, or the item index), naming every other bad one in the
    reason (:func:`find_invalid_vectors`): one bad proof never lets the batch pass."""
    bad = find_invalid_vectors(items, parties)
    if not bad:
        return
    _, first = bad[0]
    if len(bad) == 1:
        raise first
    others = ", ".join(str(e.party) for _, e in bad[1:])
    raise VerificationError(f"{first.reason} (also invalid: {others})", step=first.step,
                            party=first.party)


def find_invalid_vectors(
    items: Sequence[tuple[Point, EncryptedVector, Ranges, bytes]],
    parties: Sequence[str] | None = None,
) -> list[tuple[int, VerificationError]]:
    """Every invalid vector of ``items``, each with the error that names its party ([] if
    all verify).  All proofs are checked with ONE multi-scalar multiplication; only if it
    fails are the failing items found by halving (each half re-checked with fresh random
    weights, one MSM per half -- the second half of a failed group only when the first held
    not, a single item's own check naming its failing part), so ``k`` bad proofs among
    ``n`` cost about ``2k log2(n)`` MSMs, not ``n``.  Each proof's
    challenges are recomputed once."""
    if parties is not None and len(parties) != len(items):
        raise MalformedError(f"{len(items)} items but {len(parties)} party names")
    names = [str(i) if parties is None else parties[i] for i in range(len(items))]
    bad: list[tuple[int, VerificationError]] = []
    terms: dict[int, tuple[VerificationTerms, VerificationTerms]] = {}
    for i, ((X, ev, ranges, context), name) in enumerate(zip(items, names, strict=True)):
        try:
            terms[i] = _terms(X, ev, ranges, context, name)
        except VerificationError as exc:  # structural: wrong shape, wrong round count
            bad.append((i, exc))

    def holds(group: Sequence[int]) -> bool:
        total = VerificationTerms.empty()
        for i in group:
            weight = secrets.randbits(128) | 1  # fresh for every check
            total.add(terms[i][0], weight)
            total.add(terms[i][1], weight)
        return _terms_is_identity(total)

    def alone(i: int) -> VerificationError | None:
        try:
            check_terms(*terms[i], party=names[i])
        except VerificationError as exc:
            return exc
        return None

    bad += find_failing(list(terms), holds, alone, step="range-proof")
    return sorted(bad, key=lambda b: b[0])


def find_failing(
    group: Sequence[int], holds: Callable[[Sequence[int]], bool],
    alone: Callable[[int], VerificationError | None], *, step: str,
) -> list[tuple[int, VerificationError]]:
    """The failing items of a batch check, by halving: ``holds(items)`` is one batched
    check (fresh random weights at every call), ``alone(i)`` item ``i``'s own check (its
    error naming its party, or None).  One check if all hold; else each failed group is
    halved -- the second half of a failed group checked only when the first held not -- so
    ``k`` bad items among ``n`` cost about ``2k log2(n)`` checks, and an item is cleared
    only by a check that held on a group containing it.  The one search shared by the
    range proofs (:func:`find_invalid_vectors`) and the one-hot proofs
    (:func:`statledger.proofs.onehot.find_invalid_onehots`)."""
    bad: list[tuple[int, VerificationError]] = []

    def search(part: Sequence[int]) -> None:
        if len(part) == 1:
            exc = alone(part[0])
            if exc is not None:
                bad.append((part[0], exc))
            return
        half = len(part) // 2
        left, right = part[:half], part[half:]
        left_holds = holds(left)
        if not left_holds:
            search(left)
        # the left half held: the failure is in the right half, no need to check it whole
        if left_holds or not holds(right):
            search(right)

    if group and not holds(group):
        search(group)
        if not bad:  # the halves all held with fresh weights: re-check one by one
            for i in group:
                exc = alone(i)
                if exc is not None:
                    bad.append((i, exc))
            if not bad:  # pragma: no cover - a failed check is never ignored
                raise VerificationError("batch verification failed", step=step)
    return bad


def aggregate(vectors: Sequence[EncryptedVector]) -> list[list[Ciphertext]]:
    """Limb-wise sums of the ciphertexts (the caller verified each vector first)."""
    if not vectors:
        raise MalformedError("nothing to aggregate")
    shape = [len(row) for row in vectors[0].limbs]
    for v in vectors:
        if [len(row) for row in v.limbs] != shape:
            raise MalformedError("vectors of different shapes cannot be aggregated")
    out: list[list[Ciphertext]] = []
    for j, n in enumerate(shape):
        row: list[Ciphertext] = []
        for i in range(n):
            acc = Ciphertext.zero()
            for v in vectors:
                acc = acc + v.limbs[j][i]
            row.append(acc)
        out.append(row)
    return out


def decode_totals(
    limb_sums: Sequence[Sequence[int]], ranges: Ranges, n_contributors: int
) -> list[int]:
    """``sum_c v_cj = join_limbs(limb sums) + n_contributors * lo_j`` for every value j."""
    rs, layout = _layout(ranges)
    n = _check_int(n_contributors, "n_contributors")
    if n < 0:
        raise MalformedError("n_contributors must be >= 0")
    if len(limb_sums) != len(rs):
        raise MalformedError(f"{len(limb_sums)} limb rows but {len(rs)} ranges")
    out: list[int] = []
    for j, (row, (lo, _hi)) in enumerate(zip(limb_sums, rs, strict=True)):
        if len(row) != layout.n_limbs[j]:
            raise MalformedError(f"value {j}: expected {layout.n_limbs[j]} limb sums")
        out.append(join_limbs(row, LIMB_BITS) + n * lo)
    return out
