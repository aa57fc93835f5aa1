"""Adversarial review of the batched PET chain and the caches around it (review R1)."""

from __future__ import annotations

import pytest
from test_suppression import _entry, _honest

from statledger.proofs.errors import VerificationError
from statledger.protocol.checks import STEPS, StepContext, check_pet_chain, run_steps
from statledger.protocol.view import parse_entries


def _ctx(rows: list[tuple[int, bytes]]) -> StepContext:
    ctx = StepContext(parse_entries(rows))
    run_steps(ctx, STEPS, through=11)
    return ctx


def test_a_remembered_pet_step_is_not_accepted_on_other_inputs() -> None:
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
    hidden = [(i, d) for i, d in rows if i != ia]
    with pytest.raises(VerificationError, match="PET blinding of ciphertext 0"):
        check_pet_chain(_ctx(hidden), complete=False)  # fresh: refused
    with pytest.raises(VerificationError, match="PET blinding of ciphertext 0"):
        check_pet_chain(_ctx(hidden), complete=False, known=known)  # remembered: refused too
