"""Which validity proofs a submission carries, and the one check of them (docs/notes/onehot.md).

Every submission carries the range proofs of :mod:`statledger.proofs.vector` (each encoded
entry within its public range).  When the statistic's rows are one-hot over blocks
(:meth:`~statledger.protocol.stats.base.Statistic.onehot_blocks`, e.g. a workload's
marginals) and the query declares ``max_rows == 1`` (one-record owners), the submission also
carries a one-hot proof (:mod:`statledger.proofs.onehot`) after the vector's bytes: every
block sums to ``k_b * beta`` with one ``beta`` in {0, 1}, ``k_b`` the block's DP weight.
With the range proofs (``0 <= cell <= k_b``) a weight-1 block is one-hot or all zero, so a
single owner cannot put a count of 2, two ones, or a negative count in a block, nor count
its record in one block and not in another.

Whether the proof is required is a function of the spec only: the owner, the ledger's
append check and verification step 9 all ask :func:`onehot_layout`; a submission whose
bytes do not have exactly the required shape is malformed (:func:`decode_submission`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point
from statledger.proofs.onehot import (
    PROOF_BYTES,
    OneHotProof,
    prove_onehot,
    verify_onehot_batch,
)
from statledger.proofs.vector import EncryptedVector, encrypt_vector_with_openings
from statledger.protocol import calibration
from statledger.protocol.stats import get as get_statistic

if TYPE_CHECKING:
    from statledger.protocol.entries import SubmissionEntry
    from statledger.protocol.query import QuerySpec

__all__ = [
    "onehot_layout",
    "tail_bytes",
    "encrypt_submission",
    "decode_submission",
    "verify_onehot_submissions",
    "onehot_statement",
    "OneHotStatement",
]


def onehot_layout(spec: QuerySpec) -> tuple[list[int], list[int]] | None:
    """``(cells per block, weight per block)`` when the spec's submissions must carry a
    one-hot proof (one-record owners of a one-hot statistic), else None."""
    sizes = get_statistic(spec.statistic).onehot_blocks(spec)
    if sizes is None or spec.max_rows != 1:
        return None
    # the wire value of a one-row cell (DP weight and quantum included); an empty cell is 0
    weights = calibration.quantize(spec, [1] * len(calibration.weights(spec)))
    scales: list[int] = []
    pos = 0
    for n in sizes:
        block = weights[pos:pos + n]
        if len(set(block)) != 1:  # pragma: no cover - a statistic weighs blocks uniformly
            raise MalformedError("one-hot block with mixed weights")
        scales.append(block[0])
        pos += n
    if pos != len(weights):  # pragma: no cover - blocks cover the layout
        raise MalformedError("one-hot blocks do not cover the encoded vector")
    return sizes, scales


def tail_bytes(spec: QuerySpec) -> int:
    """Bytes of validity proof after the vector: :data:`PROOF_BYTES` or 0."""
    return PROOF_BYTES if onehot_layout(spec) is not None else 0


def _blocks(ev: EncryptedVector, sizes: Sequence[int]) -> list[list[Ciphertext]]:
    cells = []
    for row in ev.limbs:
        if len(row) != 1:
            raise MalformedError("a one-hot cell must be one limb")
        cells.append(row[0])
    if len(cells) != sum(sizes):
        raise MalformedError("the vector does not match the one-hot blocks")
    out: list[list[Ciphertext]] = []
    pos = 0
    for n in sizes:
        out.append(cells[pos:pos + n])
        pos += n
    return out


def encrypt_submission(spec: QuerySpec, X: Point, values: Sequence[int], context: bytes
                       ) -> bytes:
    """The owner's submission bytes: the range-proved vector, then (when the spec asks for
    it) the one-hot proof over the same ciphertexts."""
    ranges = list(calibration.wire_layout(spec).ranges)
    ev, rands = encrypt_vector_with_openings(X, list(values), ranges, context)
    layout = onehot_layout(spec)
    if layout is None:
        return ev.to_bytes()
    sizes, scales = layout
    beta = 1 if sum(values[:sizes[0]]) else 0
    pos = 0
    rs: list[list[int]] = []
    for n in sizes:
        rs.append([r[0] for r in rands[pos:pos + n]])
        pos += n
    proof = prove_onehot(X, _blocks(ev, sizes), scales, beta, rs, context)
    return ev.to_bytes() + proof.to_bytes()


def decode_submission(spec: QuerySpec, entry: SubmissionEntry, ranges: Sequence[tuple[int, int]]
                      ) -> tuple[EncryptedVector, OneHotProof | None]:
    """Strictly decode a submission: the vector, and the one-hot proof iff the spec asks
    for one (MalformedError otherwise)."""
    tail = tail_bytes(spec)
    ev = entry.decode_vector(ranges, tail=tail)
    if not tail:
        return ev, None
    return ev, OneHotProof.from_bytes(bytes.fromhex(entry.vector)[-tail:])


def verify_onehot_submissions(
    spec: QuerySpec, X: Point,
    items: Sequence[tuple[str, EncryptedVector, OneHotProof | None, bytes]],
) -> None:
    """Check every one-hot proof of ``items`` (party, vector, proof, context) with one
    multi-scalar multiplication; nothing to do when the spec asks for none.  Raises
    :class:`VerificationError` (step ``onehot``) naming the first bad owner."""
    layout = onehot_layout(spec)
    if layout is None:
        return
    batch = [onehot_statement(spec, X, party, ev, proof, context, layout)
             for party, ev, proof, context in items]
    verify_onehot_batch([b for b in batch if b is not None], [p for p, _, _, _ in items])


OneHotStatement = tuple[Point, list[list[Ciphertext]], list[int], OneHotProof, bytes]


def onehot_statement(spec: QuerySpec, X: Point, party: str, ev: EncryptedVector,
                     proof: OneHotProof | None, context: bytes,
                     layout: tuple[list[int], list[int]] | None = None,
                     ) -> OneHotStatement | None:
    """What :func:`statledger.proofs.onehot.find_invalid_onehots` checks for ``party``'s
    submission (None when the spec asks for no one-hot proof): the ledger's batcher
    gathers these across concurrent appends.  Raises :class:`VerificationError` naming
    ``party`` when the proof is missing or the vector does not fit the blocks."""
    layout = onehot_layout(spec) if layout is None else layout
    if layout is None:
        return None
    sizes, scales = layout
    if proof is None:
        raise VerificationError("the submission lacks its one-hot proof", step="onehot",
                                party=party)
    try:
        blocks = _blocks(ev, sizes)
    except MalformedError as exc:
        raise VerificationError(str(exc), step="onehot", party=party) from None
    return (X, blocks, list(scales), proof, context)
