"""The verifier's use of the protocol checks: step 7 inserted into the protocol's table.

Steps 5, 6 and 8-15 are :mod:`statledger.protocol.view` and :mod:`statledger.protocol.checks`
(the parties run them too).  Step 7 -- at least ``witness_quorum`` valid witness
cosignatures on a checkpoint -- needs the ledger's signed notes, so it lives here, on top of
the one quorum rule :func:`statledger.ledger.note.verify_quorum`.  ``statledger verify``
(:mod:`statledger.verifier.verify`) and ``statledger audit`` (:mod:`statledger.verifier.audit`)
both run it through :func:`check_witness_quorum`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from statledger.ledger.note import CosignatureVerifier, Note, NoteVerifier, verify_quorum
from statledger.protocol.checks import STEPS, Step, StepContext
from statledger.protocol.consortium import Roster

__all__ = [
    "WITNESS_STEP",
    "check_witness_quorum",
    "roster_log_key",
    "roster_witnesses",
    "with_witness_step",
]

#: Step 7 (number, name).
WITNESS_STEP: tuple[int, str] = (7, "witness quorum")


def roster_log_key(roster: Roster) -> NoteVerifier:
    """The log's checkpoint key (:meth:`Roster.log_key`) as a note verifier."""
    return NoteVerifier(*roster.log_key())


def roster_witnesses(roster: Roster) -> list[CosignatureVerifier]:
    """The witnesses (:meth:`Roster.witness_keys`) as cosignature verifiers."""
    return [CosignatureVerifier(name, key) for name, key in roster.witness_keys()]


def check_witness_quorum(note: Note, witnesses: Sequence[NoteVerifier], quorum: int) -> str:
    """(7) At least ``quorum`` of ``witnesses`` (cosignature verifiers) validly cosigned the
    checkpoint ``note``.

    A bad cosignature by a listed witness blames that witness; too few blame the ledger
    (:class:`statledger.ledger.note.QuorumError`).  Returns the report's detail line.
    """
    names = verify_quorum(note, witnesses, quorum, step=f"step {WITNESS_STEP[0]}",
                          party="ledger", kind="cosignature", signers="witnesses")
    return f"{len(names)} of {len(witnesses)} witnesses cosigned (quorum {quorum})"


def with_witness_step(
    run: Callable[[StepContext], str], steps: Sequence[Step] = STEPS
) -> tuple[Step, ...]:
    """``steps`` with step 7 (``run``) inserted in number order."""
    seven = Step(WITNESS_STEP[0], WITNESS_STEP[1], run)
    return tuple(sorted((*steps, seven), key=lambda s: s.number))
