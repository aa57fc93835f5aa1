"""Adversarial review of the batched PET chain and the caches around it (review R1)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace

import pytest
from test_suppression import _entry, _honest

from statledger.ledger.store import Entry as LedgerEntry
from statledger.nodes.ledger_service import EntryPages
from statledger.proofs import sigma
from statledger.proofs.elgamal import encrypt, keygen
from statledger.proofs.errors import VerificationError
from statledger.proofs.group import Scalar, msm
from statledger.protocol import pet
from statledger.protocol.checks import STEPS, StepContext, check_pet_chain, run_steps
from statledger.protocol.view import parse_entries


def _ctx(rows: list[tuple[int, bytes]]) -> StepContext:
    ctx = StepContext(parse_entries(rows))
    run_steps(ctx, STEPS, through=11)
    return ctx


def test_a_remembered_pet_step_is_not_accepted_on_other_inputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A malicious ledger's query index hides node-a's PET step from a compute node that
    verified the whole chain before: node-b's step then sits first, its inputs the
    candidates.  A fresh verifier refuses it (its blinding proofs are of node-a's outputs);
    a node that remembered node-b's step (same aggregate, index and digest) must refuse
    too: what it verified was a blinding of other inputs."""
    rows = list(_honest()[0])
    ia, _a = _entry(rows, "pet", node="node-a")
    _entry(rows, "pet", node="node-b")
    known: set[tuple[str, int, str]] = set()
    check_pet_chain(_ctx(rows), complete=False, known=known)
    assert len(known) >= 2
    # remembered steps are still not verified again on the same log
    seen: list[int] = []
    real = pet.verify_cells
    monkeypatch.setattr(pet, "verify_cells",
                        lambda X, checks, *, step: (seen.append(len(checks)),
                                                    real(X, checks, step=step))[1])
    check_pet_chain(_ctx(rows), complete=False, known=known)
    assert seen == [0]
    monkeypatch.setattr(pet, "verify_cells", real)
    hidden = [(i, d) for i, d in rows if i != ia]
    with pytest.raises(VerificationError, match="PET blinding of ciphertext 0"):
        check_pet_chain(_ctx(hidden), complete=False)  # fresh: refused
    with pytest.raises(VerificationError, match="PET blinding of ciphertext 0"):
        check_pet_chain(_ctx(hidden), complete=False, known=known)  # remembered: refused too


# -- batch verification: forgeries that cancel across proofs ---------------------------------


def test_two_forged_blindings_that_cancel_in_an_unweighted_sum_are_refused() -> None:
    """Two cells blind the same input objects (points merged by identity in the msm); the
    forger shifts one response by +d and the other's by -d, so the residuals cancel in a sum
    with equal weights.  Fresh random weights per equation refuse it, batched and alone."""
    _, X = keygen()
    inputs = pet.candidates(encrypt(X, 2), 3)
    ctx0, ctx1 = pet.pet_context("ab" * 32, "node-x", 0), pet.pet_context("ab" * 32,
                                                                           "node-x", 1)
    b0, b1 = pet.blind_and_shuffle(X, inputs, ctx0), pet.blind_and_shuffle(X, inputs, ctx1)
    d = Scalar.random()
    p0, p1 = list(b0.blind_proofs), list(b1.blind_proofs)
    p0[0] = replace(p0[0], s=p0[0].s + d)
    p1[0] = replace(p1[0], s=p1[0].s - d)
    checks = [pet.PetCheck(inputs, replace(b0, blind_proofs=tuple(p0)), ctx0, "node-x", "c0"),
              pet.PetCheck(inputs, replace(b1, blind_proofs=tuple(p1)), ctx1, "node-x", "c1")]
    # the equations do cancel with weight 1 each: a sum without random weights would pass
    eqs = [eq for c in checks for eq in sigma.dleq_pair_equations(
        c.inputs[0].C1, c.inputs[0].C2, c.batch.blinded[0].C1, c.batch.blinded[0].C2,
        c.batch.blind_proofs[0], c.context)]
    total = msm([k for eq in eqs for k, _ in eq], [P for eq in eqs for _, P in eq])
    assert total.is_identity()
    for _ in range(3):
        with pytest.raises(VerificationError, match=r"PET blinding of ciphertext 0 \(c0\)"):
            pet.verify_cells(X, checks, step="step 12")
    with pytest.raises(VerificationError, match=r"\(c1\)"):
        pet.verify_cells(X, checks[1:], step="step 12")
    pet.verify_cells(X, [replace(checks[0], batch=b0), replace(checks[1], batch=b1)],
                     step="step 12")


# -- the ledger's page cache -------------------------------------------------------------------


def test_entry_pages_serve_the_stored_bytes_and_stay_bounded() -> None:
    """A page is byte-for-byte what the route served before the cache (FastAPI's JSON of the
    same objects); a row whose stored bytes differ at the same index (another store behind
    the same node object) is never answered from the cache; the cache starts over past its
    bound."""
    from fastapi.responses import JSONResponse

    def row(i: int, data: bytes) -> LedgerEntry:
        return LedgerEntry(i, "query", data, hashlib.sha256(b"\0" + data).digest(), 0)

    rows = [row(i, bytes([i]) * (40 + i)) for i in range(5)]
    pages = EntryPages(max_bytes=300)
    old = JSONResponse([{"index": e.index, "kind": e.kind,
                         "data": base64.b64encode(e.data).decode("ascii")} for e in rows]).body
    assert pages.page(rows) == old and pages.page(rows) == old
    assert json.loads(pages.page(rows[1:3])) == json.loads(old)[1:3]
    other = row(2, b"another entry at index 2")
    assert json.loads(pages.page([other]))[0]["data"] == base64.b64encode(other.data).decode()
    assert pages._bytes <= 300  # bounded
    assert pages.page([]) == b"[]"


# -- the cached consortium id ----------------------------------------------------------------


def test_the_cached_consortium_id_is_the_hash_of_what_the_genesis_encodes() -> None:
    """``Genesis.consortium_id`` is computed once: the document it hashes must not change
    after, even when the caller handed in (and later changed) a list of members."""
    from statledger.proofs.signatures import SigningKey
    from statledger.protocol.canonical import sha256_hex
    from statledger.protocol.consortium import AdmissionRule, Genesis, Member

    def member(pid: str, role: str) -> Member:
        return Member(pid, role, SigningKey.generate().public_key().to_bytes().hex())

    members = [member("ledger", "ledger"), member("compute-1", "compute")]
    roles = ["compute"]
    g = Genesis("c", "example.org/log", members, 1,  # type: ignore[arg-type]
                AdmissionRule(1, roles))  # type: ignore[arg-type]
    first = g.consortium_id
    members.append(member("compute-2", "compute"))
    roles.append("ledger")
    assert g.consortium_id == first == sha256_hex(g.to_bytes())


def test_remembered_range_proofs_are_keyed_by_the_key_in_force() -> None:
    """A compute node's memory of verified range proofs names the aggregate AND the setup or
    rekey entry in force: a ledger that hides (or shows) a rekey puts another key in force,
    and the same aggregate's proofs are then checked afresh."""
    from dataclasses import dataclass

    from statledger.nodes.compute_service import _proofs_key
    from statledger.protocol.view import QueryView

    @dataclass(frozen=True)
    class Logged:  # an entry as the key sees it: its digest
        name: str

        def digest(self) -> str:
            return "digest-of-" + self.name

    view = QueryView()
    assert _proofs_key(view) is None  # nothing to remember before the aggregate
    view.aggregate = (9, Logged("aggregate"))  # type: ignore[assignment]
    view.setup_index, view.setup = 1, Logged("setup")  # type: ignore[assignment]
    first = _proofs_key(view)
    view.setup_index, view.setup = 5, Logged("rekey")  # type: ignore[assignment]
    assert _proofs_key(view) != first
    view.setup_index, view.setup = 1, Logged("setup")  # type: ignore[assignment]
    assert _proofs_key(view) == first
    view.aggregate = (9, Logged("another aggregate"))  # type: ignore[assignment]
    assert _proofs_key(view) != first
