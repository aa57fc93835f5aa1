"""A test that reveals only whether an encrypted count is small: blinded, shuffled PETs.

Construction and proofs: ``docs/notes/pet.md``.  Used by suppression before decryption
(:mod:`statledger.protocol.suppression`): the count ciphertext of every gate cell is tested
before anything of the query is decrypted, and only the bit ``n < k`` comes out.

For a count ciphertext ``C = Enc(n)`` (the aggregate entry's limbs recombined
homomorphically, :func:`count_ciphertext`) and ``k`` the statistic's gate threshold
(``Statistic.gate_k``: ``min_cell_size``, or 1 for a presence test, "is the count 0?"):

1. **candidates** -- ``E_j = C - (O, j*G) = Enc(n - j)`` for ``j = 0..k-1``
   (:func:`candidates`; a public function of the aggregate, re-derived by everyone).
   ``j = 0`` is included: an empty cell is *small* (``n = 0`` and ``n = 1`` look alike).
2. **blind and shuffle**, by ``T`` distinct compute nodes in sequence (:func:`blind_and_shuffle`,
   checked by :func:`verify_batch`): node ``t`` takes the previous node's ``k`` outputs
   ``W_i``, raises each to its own secret non-zero scalar, ``W'_i = r_i * W_i`` (both
   components; a DLEQ-pair proof ``log_{C1} C1' == log_{C2} C2'`` per ciphertext, no point
   the identity, so ``r_i != 0``), then re-encrypts and permutes the ``k`` blinded ciphertexts
   with the Terelius--Wikstrom shuffle proof (:mod:`statledger.proofs.shuffle`).  Both
   proofs are in commitment form (the PET entry's encoding version :data:`PET_VERSION`), so
   :func:`verify_cells` checks every proof of every cell of a whole chain as one random
   linear combination -- one multi-scalar multiplication -- and, when it fails, finds the
   failing cell and ciphertext by halving.
3. **decrypt** the last node's ``k`` outputs with threshold decryption shares (batched DLEQ,
   :mod:`statledger.protocol.flow`) and look for the identity (:func:`is_small`): output
   ``i`` decrypts to ``rho_i (n - j_i) * G`` with ``rho_i`` the product of ``T`` independent
   uniform non-zero scalars, so it is ``O`` exactly when ``n = j_i``, i.e. one of them is
   ``O`` iff ``0 <= n < k``; every other output is a uniform non-identity point.

What a coalition below ``T`` learns (it holds fewer than ``T`` key shares, so nothing is
decrypted without the honest node's shares, which it gives only for the final batch): at
least one of the ``T`` nodes in the chain is outside it; that node's independent ``r_i``
make every non-zero plaintext uniform, and its secret permutation hides which ``j`` the
zero (if any) came from.  So the coalition learns the bit ``n < k`` and nothing else -- not
``n``, not which ``j``.  A coalition of ``T`` nodes can decrypt the count itself: that is
the threshold of every decryption here.

Per-ciphertext blinding is essential: one ``r`` for the whole batch would publish the
arithmetic progression ``{r (n - j) G}``, whose step ``r G`` gives ``n`` away by a small
discrete-log search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs import batch as lincomb
from statledger.proofs import sigma
from statledger.proofs.batch import Equation
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar, msm
from statledger.proofs.shuffle import (
    MAX_SHUFFLE_SIZE,
    ShuffleProof,
    shuffle,
    shuffle_equations,
    verify_shuffle,
)
from statledger.proofs.vector import LIMB_BITS, find_failing

__all__ = [
    "PET_CONTEXT",
    "PET_VERSION",
    "PetCheck",
    "verify_cells",
    "MAX_PET_K",
    "PetBatch",
    "pet_context",
    "count_ciphertext",
    "candidates",
    "blind_and_shuffle",
    "verify_batch",
    "is_small",
]

PET_CONTEXT = b"statledger/pet/v1\n"
#: The PET entry's encoding version: 2 = commitment-form blinding and shuffle proofs (98-byte
#: DLEQ-pair proofs, ``163k + 293``-byte shuffle proofs); 1 (challenge--response) is refused.
PET_VERSION = 2
#: The largest ``k`` (``min_cell_size``) tested: a denial-of-service bound (each node blinds
#: and shuffles ``k`` ciphertexts per cell), far above any cell size an owner asks for, and
#: within the shuffle's own bound.
MAX_PET_K = min(1024, MAX_SHUFFLE_SIZE)


def pet_context(query_id: str, node: str, cell: int) -> bytes:
    """Binds one node's blinding and shuffle proofs of one gate cell to (query, node, cell),
    under the PET domain (a PET proof never passes for another query, node or cell)."""
    out = bytearray(PET_CONTEXT)
    for p in (query_id, node, str(int(cell))):
        raw = p.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_PET_K:
        raise MalformedError(f"PET: k (min_cell_size) must be in [1, {MAX_PET_K}]")


def count_ciphertext(limbs: Sequence[Ciphertext], shift: int) -> Ciphertext:
    """``Enc(n)`` from an aggregate entry's limbs, ``n = shift + sum_i 2^(16 i) m_i``:
    ``sum_i 2^(16 i) * L_i + (O, shift*G)``, computed by everyone from public values."""
    if not limbs:
        raise MalformedError("PET: a count entry without limbs")
    acc = Ciphertext.zero()
    for i, ct in enumerate(limbs):
        acc = acc + ct * (1 << (LIMB_BITS * i))
    if shift:
        acc = acc + Ciphertext(Point.identity(), G * Scalar.reduce(shift))
    return acc


def candidates(count: Ciphertext, k: int) -> list[Ciphertext]:
    """``[Enc(n - j) for j = 0..k-1]``: ``count - (O, j*G)``; one of them encrypts 0 iff
    ``0 <= n < k``."""
    _check_k(k)
    out = [count]
    step = Ciphertext(Point.identity(), G)
    for _ in range(1, k):
        out.append(out[-1] - step)
    return out


@dataclass(frozen=True)
class PetBatch:
    """One node's step for one cell: the inputs blinded in order (``W'_i = r_i W_i``), one
    DLEQ-pair proof per ciphertext, the blinded ciphertexts re-encrypted and permuted, and
    the shuffle proof from ``blinded`` to ``shuffled``."""

    blinded: tuple[Ciphertext, ...]
    blind_proofs: tuple[sigma.DLEQPairProof, ...]
    shuffled: tuple[Ciphertext, ...]
    shuffle_proof: ShuffleProof


def blind_and_shuffle(X: Point, inputs: Sequence[Ciphertext], context: bytes) -> PetBatch:
    """Blind every input by its own secret non-zero scalar (``secrets``, via
    :meth:`Scalar.random`), prove it, then shuffle with a proof under the collective key
    ``X``.  The scalars and the permutation are discarded."""
    _check_k(len(inputs))
    blinded: list[Ciphertext] = []
    proofs: list[sigma.DLEQPairProof] = []
    for w in inputs:
        r = Scalar.random()
        while r.is_zero():  # pragma: no cover - probability 1/n
            r = Scalar.random()
        b = Ciphertext(r * w.C1, r * w.C2)
        proofs.append(sigma.prove_dleq_pair(r, w.C1, w.C2, b.C1, b.C2, context))
        blinded.append(b)
    out, proof = shuffle(X, blinded, context=context)
    return PetBatch(tuple(blinded), tuple(proofs), tuple(out), proof)


@dataclass(frozen=True)
class PetCheck:
    """One cell of one node's step, to verify: its ``inputs`` (the candidates or the previous
    step's outputs for that cell), the node's ``batch``, the proofs' ``context``
    (:func:`pet_context`), the ``party`` blamed and ``where`` it is (e.g. ``"entry 12, cell
    3"``; empty for a lone cell), named in every error."""

    inputs: Sequence[Ciphertext]
    batch: PetBatch
    context: bytes
    party: str | None
    where: str = ""


def _error(check: PetCheck, what: str, reason: str, step: str) -> VerificationError:
    at = f" ({check.where})" if check.where else ""
    return VerificationError(f"PET {what}{at}: {reason}", step=step, party=check.party)


def _what(i: int | None) -> str:
    return "shuffle" if i is None else f"blinding of ciphertext {i}"


def _equations(X: Point, check: PetCheck,
               step: str) -> list[tuple[int | None, list[Equation]]]:
    """The cell's proofs as ``(ciphertext index, equations)``: one DLEQ pair per ciphertext,
    then the shuffle (index None).  Raises at once for what needs no equation (sizes,
    identity points)."""
    inputs, b = check.inputs, check.batch
    k = len(inputs)
    if not (len(b.blinded) == len(b.blind_proofs) == len(b.shuffled) == k):
        raise _error(check, "batch", f"{len(b.blinded)} blinded, {len(b.blind_proofs)} proofs "
                     f"and {len(b.shuffled)} shuffled ciphertexts for {k} inputs", step)
    out: list[tuple[int | None, list[Equation]]] = []
    for i, (w, d, p) in enumerate(zip(inputs, b.blinded, b.blind_proofs, strict=True)):
        try:
            out.append((i, sigma.dleq_pair_equations(w.C1, w.C2, d.C1, d.C2, p,
                                                     check.context)))
        except VerificationError as exc:
            raise _error(check, _what(i), exc.reason, step) from None
    try:
        out.append((None, shuffle_equations(X, list(b.blinded), list(b.shuffled),
                                                 b.shuffle_proof, check.context,
                                                 party=check.party)))
    except VerificationError as exc:
        raise _error(check, "shuffle", exc.reason, step) from None
    return out


def _alone(X: Point, check: PetCheck, i: int | None, step: str) -> VerificationError | None:
    """One proof of ``check`` (the DLEQ pair of ciphertext ``i``, or the shuffle for None)
    verified by its own verifier (the one rule): its error, or None."""
    b = check.batch
    try:
        if i is None:
            verify_shuffle(X, list(b.blinded), list(b.shuffled), b.shuffle_proof,
                           check.context, party=check.party)
        else:
            w, d = check.inputs[i], b.blinded[i]
            sigma.verify_dleq_pair(w.C1, w.C2, d.C1, d.C2, b.blind_proofs[i], check.context)
    except VerificationError as exc:
        return _error(check, _what(i), exc.reason, step)
    return None


def verify_cells(X: Point, checks: Sequence[PetCheck], *, step: str) -> None:
    """Raise :class:`VerificationError` (naming the party, ``step``, the cell's ``where``
    and the ciphertext or the shuffle) unless every check's batch is a blinding of its
    inputs by non-zero exponents (one per ciphertext, the same on both components) followed
    by a proven re-encryption shuffle of exactly those ``k`` ciphertexts: a zero exponent,
    two exponents on one ciphertext, a dropped, added or duplicated ciphertext all fail.

    Every proof of every check is reduced to its equations (sizes and identity points are
    refused on the way, after the proofs before them) and all are checked at once
    (:func:`statledger.proofs.batch.holds`: fresh 128-bit weights, one msm; a false
    equation passes with probability <= 2^-127).  If that fails,
    :func:`statledger.proofs.vector.find_failing` halves the proofs (fresh weights at every
    check) down to the failing ones, each confirmed by its own verifier, and the first of
    them in order is named -- as if checked one by one."""
    items: list[tuple[PetCheck, int | None, list[Equation]]] = []
    try:
        for check in checks:
            items += [(check, i, eqs) for i, eqs in _equations(X, check, step)]
    except VerificationError:
        _check_items(X, items, step)  # a bad proof of an earlier cell is named first
        raise
    _check_items(X, items, step)


def _check_items(X: Point, items: Sequence[tuple[PetCheck, int | None, list[Equation]]],
                 step: str) -> None:
    if lincomb.holds(eq for _, _, eqs in items for eq in eqs):
        return
    bad = find_failing(
        range(len(items)),
        lambda part: lincomb.holds(eq for i in part for eq in items[i][2]),
        lambda i: _alone(X, items[i][0], items[i][1], step),
        step=step)
    raise min(bad, key=lambda pair: pair[0])[1]


def verify_batch(X: Point, inputs: Sequence[Ciphertext], batch: PetBatch, context: bytes,
                 *, party: str | None, step: str, where: str = "") -> None:
    """:func:`verify_cells` of one cell."""
    verify_cells(X, [PetCheck(inputs, batch, context, party, where)], step=step)


def is_small(final: Sequence[Ciphertext], shares_by_node: Sequence[Sequence[Point]],
             weights: Sequence[Scalar]) -> bool:
    """Whether a plaintext of the last batch is zero (``n < k``), from ``T`` nodes' proven
    decryption shares of ``final`` and their combination weights.  Only the identity test is
    made: the other plaintexts are uniform points and are not looked at."""
    if len(weights) != len(shares_by_node) or not final:
        raise MalformedError("PET: one weight per node's shares and a non-empty batch needed")
    for shares in shares_by_node:
        if len(shares) != len(final):
            raise MalformedError("PET: decryption shares do not match the batch")
    zero = False
    for i, ct in enumerate(final):
        # every output is combined (no early exit): the work does not depend on the answer
        M = ct.C2 - msm(list(weights), [s[i] for s in shares_by_node])
        zero = zero | M.is_identity()
    return zero
