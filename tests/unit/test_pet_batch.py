"""The PET chain verified in one batch (protocol/pet.py ``verify_cells``, proofs/batch.py,
checks.check_pet_chain): commitment-form blinding and shuffle proofs of every cell of every
step checked as one random linear combination.  The adversary is a compute node publishing
its step (or a log operator serving a changed one): every forgery below fails, and the error
names the party, step 12, the entry and cell, and the ciphertext (or the shuffle) -- also
when the one bad cell hides among many good ones.  The batched verdict is cross-checked
against each proof's own verifier on random valid and invalid instances."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from test_suppression import _entry, _fails, _honest, _put

from statledger.proofs import batch, sigma
from statledger.proofs.elgamal import Ciphertext, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, G, Point, Scalar
from statledger.proofs.shuffle import ShuffleProof, shuffle, verify_shuffle
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol import pet
from statledger.protocol.cbor import cbor_bytes

QID = "cd" * 32
K = 4
CELLS = 6
NODE = "node-x"
_, X = keygen()


def _cells(counts: list[int], node: str = NODE) -> list[pet.PetCheck]:
    out = []
    for c, n in enumerate(counts):
        ctx = pet.pet_context(QID, node, c)
        inputs = pet.candidates(encrypt(X, n), K)
        out.append(pet.PetCheck(inputs, pet.blind_and_shuffle(X, inputs, ctx), ctx, node,
                                f"entry 9, cell {c}"))
    return out


GOOD = _cells([0, 3, 7, 1, 12, 4])


def _with(checks: list[pet.PetCheck], cell: int, **change: object) -> list[pet.PetCheck]:
    out = list(checks)
    out[cell] = replace(out[cell], batch=replace(out[cell].batch, **change))  # type: ignore[arg-type]
    return out


def _fails_at(checks: list[pet.PetCheck], where: str, what: str) -> VerificationError:
    with pytest.raises(VerificationError) as ei:
        pet.verify_cells(X, checks, step="step 12")
    err = ei.value
    assert err.step == "step 12" and err.party == NODE, err
    assert f"({where})" in err.reason and what in err.reason, err.reason
    return err


def test_a_whole_chain_verifies_in_one_batch() -> None:
    pet.verify_cells(X, GOOD, step="step 12")
    pet.verify_cells(X, [], step="step 12")
    # two steps: the second node's inputs are the first node's outputs
    second = []
    for c, check in enumerate(GOOD):
        ctx = pet.pet_context(QID, "node-y", c)
        ins = list(check.batch.shuffled)
        second.append(pet.PetCheck(ins, pet.blind_and_shuffle(X, ins, ctx), ctx, "node-y",
                                   f"entry 10, cell {c}"))
    pet.verify_cells(X, GOOD + second, step="step 12")


def _flip_point(P: Point) -> Point:
    """A valid point that is not ``P`` (a bit flip that still decodes)."""
    return P + G


@pytest.mark.parametrize("cell", [0, 3, CELLS - 1])
def test_a_flipped_commitment_or_response_names_its_cell(cell: int) -> None:
    b = GOOD[cell].batch
    where = f"entry 9, cell {cell}"
    i = cell % K
    proofs = list(b.blind_proofs)
    for bad in (replace(proofs[i], A1=_flip_point(proofs[i].A1)),
                replace(proofs[i], A2=-proofs[i].A2),
                replace(proofs[i], s=proofs[i].s + Scalar(1))):
        changed = list(proofs)
        changed[i] = bad
        _fails_at(_with(GOOD, cell, blind_proofs=tuple(changed)), where,
                  f"blinding of ciphertext {i}")
    sp = b.shuffle_proof
    for bad_sp in (replace(sp, A_p=_flip_point(sp.A_p)), replace(sp, C_p=-sp.C_p),
                   replace(sp, D_p=_flip_point(sp.D_p)), replace(sp, F_p=sp.F_p[::-1]),
                   replace(sp, B_p=(sp.B_p[0] + G, *sp.B_p[1:])),
                   replace(sp, U=sp.U[::-1]), replace(sp, B=(*sp.B[:-1], sp.B[-1] + G)),
                   replace(sp, k_A=sp.k_A + Scalar(1)), replace(sp, k_F=-sp.k_F),
                   replace(sp, k_B=(*sp.k_B[:-1], sp.k_B[-1] + Scalar(1))),
                   replace(sp, k_E=sp.k_E[::-1]), replace(sp, k_C=sp.k_D, k_D=sp.k_C)):
        _fails_at(_with(GOOD, cell, shuffle_proof=bad_sp), where, "shuffle")


def test_every_bit_of_a_cells_encoded_proofs_matters() -> None:
    """Mechanical twins: every single-bit flip of one DLEQ-pair proof and of the shuffle
    proof is refused on decoding or fails the batch naming that cell."""
    cell = 2
    b = GOOD[cell].batch
    raw_dleq = b.blind_proofs[1].to_bytes()
    raw_sh = b.shuffle_proof.to_bytes()
    flips = [(pos, bit) for pos in range(len(raw_dleq)) for bit in (0, 7)]
    for pos, bit in flips:
        bad = bytearray(raw_dleq)
        bad[pos] ^= 1 << bit
        try:
            proof = sigma.DLEQPairProof.from_bytes(bytes(bad))
        except MalformedError:
            continue
        changed = list(b.blind_proofs)
        changed[1] = proof
        _fails_at(_with(GOOD, cell, blind_proofs=tuple(changed)), f"entry 9, cell {cell}",
                  "blinding of ciphertext 1")
    for pos in range(0, len(raw_sh), 7):
        bad = bytearray(raw_sh)
        bad[pos] ^= 0x01
        try:
            sp = ShuffleProof.from_bytes(bytes(bad), K)
        except MalformedError:
            continue
        _fails_at(_with(GOOD, cell, shuffle_proof=sp), f"entry 9, cell {cell}", "shuffle")


def test_truncated_or_extended_proofs_are_refused_on_decoding() -> None:
    raw = GOOD[0].batch.blind_proofs[0].to_bytes()
    for bad in (raw[:-1], raw + b"\x00", raw[:64], b"\x00" + raw):
        with pytest.raises(MalformedError):
            sigma.DLEQPairProof.from_bytes(bad)
    raw = GOOD[0].batch.shuffle_proof.to_bytes()
    for bad in (raw[:-1], raw + b"\x00", raw[:-32], raw + raw[:33]):
        with pytest.raises(MalformedError):
            ShuffleProof.from_bytes(bad, K)
    with pytest.raises(MalformedError):  # a proof of K read as one of K + 1
        ShuffleProof.from_bytes(raw, K + 1)


def test_swapped_cells_are_named() -> None:
    swapped = list(GOOD)
    swapped[1], swapped[4] = (replace(GOOD[1], batch=GOOD[4].batch),
                              replace(GOOD[4], batch=GOOD[1].batch))
    _fails_at(swapped, "entry 9, cell 1", "blinding of ciphertext 0")


@pytest.mark.parametrize("how", ["drop", "duplicate", "fresh zero"])
def test_a_shuffle_that_drops_or_duplicates_a_candidate(how: str) -> None:
    b = GOOD[5].batch
    out = list(b.shuffled)
    if how == "drop":
        out[2] = Ciphertext(out[2].C1 + G, out[2].C2 + X)  # still k items, one value gone
    elif how == "duplicate":
        out[0] = out[3]
    else:
        out[1] = encrypt(X, 0)  # would force "small"
    _fails_at(_with(GOOD, 5, shuffled=tuple(out)), "entry 9, cell 5", "shuffle")
    # and re-proved honestly over a changed multiset: the blinding proofs no longer match
    blinded = list(b.blinded)
    blinded[0] = blinded[1]
    out2, proof2 = shuffle(X, blinded, context=GOOD[5].context)
    _fails_at(_with(GOOD, 5, blinded=tuple(blinded), shuffled=tuple(out2),
                    shuffle_proof=proof2), "entry 9, cell 5", "blinding of ciphertext 0")


def test_a_zero_blinding_exponent_is_named() -> None:
    b = GOOD[3].batch
    blinded = list(b.blinded)
    blinded[2] = Ciphertext(Point.identity(), Point.identity())
    err = _fails_at(_with(GOOD, 3, blinded=tuple(blinded)), "entry 9, cell 3",
                    "blinding of ciphertext 2")
    assert "identity" in err.reason


def test_a_proof_moved_to_another_cells_context() -> None:
    moved = list(GOOD)
    moved[2] = replace(GOOD[2], context=pet.pet_context(QID, NODE, 3))
    _fails_at(moved, "entry 9, cell 2", "blinding of ciphertext 0")
    other_node = list(GOOD)
    other_node[4] = replace(GOOD[4], context=pet.pet_context(QID, "node-y", 4))
    _fails_at(other_node, "entry 9, cell 4", "blinding of ciphertext 0")


def test_size_mismatches_are_named_before_any_equation() -> None:
    b = GOOD[1].batch
    _fails_at(_with(GOOD, 1, shuffled=b.shuffled[:-1]), "entry 9, cell 1", "batch")
    _fails_at(_with(GOOD, 1, blind_proofs=b.blind_proofs + b.blind_proofs[:1]),
              "entry 9, cell 1", "batch")


def test_one_bad_cell_among_many_is_named_exactly() -> None:
    many = _cells([secrets.randbelow(20) for _ in range(24)])
    pet.verify_cells(X, many, step="step 12")
    for bad_cell in (0, 13, 23):
        b = many[bad_cell].batch
        sp = b.shuffle_proof
        _fails_at(_with(many, bad_cell, shuffle_proof=replace(sp, k_D=sp.k_D + Scalar(1))),
                  f"entry 9, cell {bad_cell}", "shuffle")
        proofs = list(b.blind_proofs)
        proofs[3] = replace(proofs[3], s=proofs[3].s + Scalar(1))
        _fails_at(_with(many, bad_cell, blind_proofs=tuple(proofs)),
                  f"entry 9, cell {bad_cell}", "blinding of ciphertext 3")
    # two bad cells: the first in order is named, as checking cell by cell would
    two = _with(many, 17, shuffle_proof=replace(many[17].batch.shuffle_proof,
                                                k_C=Scalar(1)))
    two = _with(two, 8, shuffle_proof=replace(many[8].batch.shuffle_proof, k_C=Scalar(1)))
    _fails_at(two, "entry 9, cell 8", "shuffle")


def _one_by_one(checks: list[pet.PetCheck]) -> tuple[int, str] | None:
    """The first failing proof, each checked by its own verifier (no batch across proofs)."""
    for c, ch in enumerate(checks):
        b = ch.batch
        for i, (w, d, p) in enumerate(zip(ch.inputs, b.blinded, b.blind_proofs, strict=True)):
            try:
                sigma.verify_dleq_pair(w.C1, w.C2, d.C1, d.C2, p, ch.context)
            except VerificationError:
                return c, f"blinding of ciphertext {i}"
        try:
            verify_shuffle(X, list(b.blinded), list(b.shuffled), b.shuffle_proof, ch.context)
        except VerificationError:
            return c, "shuffle"
    return None


def test_batched_and_one_by_one_verdicts_agree_on_random_instances() -> None:
    """Random mixes of valid cells and cells with one random corruption (a response, a
    commitment, an output, a context): the batch accepts exactly when every proof verifies
    alone, and names the same first failure."""
    rng = secrets.SystemRandom()
    for _ in range(12):
        checks = list(GOOD)
        for _ in range(rng.choice([0, 0, 1, 2])):
            c = rng.randrange(CELLS)
            b = checks[c].batch
            kind = rng.randrange(5)
            if kind == 0:
                i = rng.randrange(K)
                proofs = list(b.blind_proofs)
                proofs[i] = replace(proofs[i], s=Scalar(rng.randrange(ORDER)))
                checks = _with(checks, c, blind_proofs=tuple(proofs))
            elif kind == 1:
                sp = b.shuffle_proof
                checks = _with(checks, c, shuffle_proof=replace(
                    sp, k_E=(*sp.k_E[:-1], Scalar(rng.randrange(ORDER)))))
            elif kind == 2:
                sp = b.shuffle_proof
                checks = _with(checks, c, shuffle_proof=replace(sp, A_p=sp.A_p + G))
            elif kind == 3:
                out = list(b.shuffled)
                j = rng.randrange(K)
                out[j] = Ciphertext(out[j].C1, out[j].C2 + G)
                checks = _with(checks, c, shuffled=tuple(out))
            else:
                checks[c] = replace(checks[c], context=checks[c].context + b"!")
        expected = _one_by_one(checks)
        if expected is None:
            pet.verify_cells(X, checks, step="step 12")
        else:
            _fails_at(checks, f"entry 9, cell {expected[0]}", expected[1])


def test_the_random_combination_sees_one_false_equation_among_many() -> None:
    eqs = [[(Scalar(1), G), (Scalar(ORDER - 1), G)] for _ in range(50)]
    assert batch.holds(eqs) and batch.holds([])
    assert not batch.holds([*eqs, [(Scalar(2), G), (Scalar(ORDER - 1), G)]])
    # two false equations that cancel with weights 1 and 1 still fail: fresh random weights
    assert not batch.holds([[(Scalar(1), G)], [(Scalar(ORDER - 1), G)]])


# -- the pet entry: encoding version ----------------------------------------------------------


def test_a_version_1_pet_entry_is_refused_by_name() -> None:
    cells = GOOD[:2]
    e = E.sign(E.PetEntry.of(QID, NODE, [c.batch for c in cells]), SigningKey.generate())
    assert e.proof_version == pet.PET_VERSION == 2
    back = E.Entry.from_bytes(e.to_bytes())
    assert back == e and back.batches() == [c.batch for c in cells]  # type: ignore[attr-defined]
    wire = e.to_wire_obj()
    del wire["proof_version"]
    with pytest.raises(MalformedError, match="version 1 PET entry"):
        E.Entry.from_bytes(cbor_bytes(wire))
    wire["proof_version"] = 1
    with pytest.raises(MalformedError, match="PET encoding version 1"):
        E.Entry.from_bytes(cbor_bytes(wire))
    with pytest.raises(MalformedError, match="proof_version"):
        replace(e, proof_version=3)


# -- the chain on the log (step 12) ----------------------------------------------------------


def test_the_chain_names_entry_and_cell_of_a_bad_second_step() -> None:
    rows, _info = _honest()
    rows = list(rows)
    index, e = _entry(rows, "pet", node="node-b")
    cell = e.cells - 1
    k = len(e.blinded) // e.cells
    proofs = list(e.blind_proofs)
    raw = bytearray(bytes.fromhex(proofs[cell * k + 1]))
    raw[-1] ^= 1  # the response s
    proofs[cell * k + 1] = raw.hex()
    _fails(_put(rows, index, replace(e, blind_proofs=tuple(proofs)), "node-b"), 12, "node-b",
           rf"PET blinding of ciphertext 1 \(entry {index}, cell {cell}\)")


def test_an_earlier_steps_bad_proof_is_named_before_a_later_steps_fault() -> None:
    """Proofs are checked after the structure of every step; a bad proof of node-a's step
    is still named before node-b's (later) signature fault, as when steps were checked in
    turn."""
    rows, _info = _honest()
    rows = list(rows)
    ia, a = _entry(rows, "pet", node="node-a")
    ib, b = _entry(rows, "pet", node="node-b")
    proofs = list(a.shuffle_proofs)
    raw = bytearray(bytes.fromhex(proofs[0]))
    raw[-1] ^= 1  # k_F
    proofs[0] = raw.hex()
    forged = _put(rows, ia, replace(a, shuffle_proofs=tuple(proofs)), "node-a")
    forged = _put(forged, ib, b, "node-a")  # node-b's step signed by node-a
    _fails(forged, 12, "node-a", rf"PET shuffle \(entry {ia}, cell 0\)")


def test_a_bad_proof_is_named_before_a_later_cells_size_fault() -> None:
    proofs = list(GOOD[1].batch.blind_proofs)
    proofs[2] = replace(proofs[2], s=proofs[2].s + Scalar(1))
    checks = _with(GOOD, 1, blind_proofs=tuple(proofs))
    checks = _with(checks, 4, shuffled=GOOD[4].batch.shuffled[:-1])
    _fails_at(checks, "entry 9, cell 1", "blinding of ciphertext 2")
    # without the earlier bad proof, the size fault is named
    _fails_at(_with(GOOD, 4, shuffled=GOOD[4].batch.shuffled[:-1]), "entry 9, cell 4", "batch")
