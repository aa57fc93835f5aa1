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
   with the Terelius--Wikstrom shuffle proof (:mod:`statledger.proofs.shuffle`).
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

from statledger.proofs import sigma
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar, msm
from statledger.proofs.shuffle import MAX_SHUFFLE_SIZE, ShuffleProof, shuffle, verify_shuffle
from statledger.proofs.vector import LIMB_BITS

__all__ = [
    "PET_CONTEXT",
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


def verify_batch(X: Point, inputs: Sequence[Ciphertext], batch: PetBatch, context: bytes,
                 *, party: str | None, step: str) -> None:
    """Raise :class:`VerificationError` (naming ``party`` and ``step``) unless ``batch`` is
    a blinding of ``inputs`` by non-zero exponents (one per ciphertext, the same on both
    components) followed by a proven re-encryption shuffle of exactly those ``k``
    ciphertexts: a zero exponent, two exponents on one ciphertext, a dropped, added or
    duplicated ciphertext all fail here."""
    k = len(inputs)
    if not (len(batch.blinded) == len(batch.blind_proofs) == len(batch.shuffled) == k):
        raise VerificationError(
            f"PET batch of {len(batch.blinded)} blinded, {len(batch.blind_proofs)} proofs and "
            f"{len(batch.shuffled)} shuffled ciphertexts for {k} inputs", step=step, party=party)
    for i, (w, b, p) in enumerate(zip(inputs, batch.blinded, batch.blind_proofs, strict=True)):
        try:
            sigma.verify_dleq_pair(w.C1, w.C2, b.C1, b.C2, p, context)
        except VerificationError as exc:
            raise VerificationError(f"PET blinding of ciphertext {i}: {exc.reason}",
                                    step=step, party=party) from None
    try:
        verify_shuffle(X, list(batch.blinded), list(batch.shuffled), batch.shuffle_proof,
                       context, party=party)
    except VerificationError as exc:
        raise VerificationError(f"PET shuffle: {exc.reason}", step=step,
                                party=party) from None


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
