"""Verification reports: the per-step outcome of a certificate or audit check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from statledger.proofs.errors import VerificationError
from statledger.protocol.checks import STEP_NAMES
from statledger.protocol.view import QueryView
from statledger.verifier.checks import WITNESS_STEP

__all__ = ["StepResult", "Report", "STEPS"]

#: Step titles, numbered as in docs/verification.md: the certificate's envelope (1-4) here,
#: step 7 from :mod:`statledger.verifier.checks`, steps 5, 6 and 8-15 from the protocol's
#: table (:data:`statledger.protocol.checks.STEPS`), so that each name is written once.
STEPS: dict[int, str] = dict(sorted({
    1: "certificate format",
    2: "trust policy",
    3: "checkpoint signature",
    4: "inclusion in the log",
    WITNESS_STEP[0]: WITNESS_STEP[1],
    **STEP_NAMES,
}.items()))


@dataclass
class StepResult:
    step: int
    title: str
    ok: bool
    detail: str = ""


@dataclass
class Report:
    """Outcome of one verification.  ``valid`` is False as soon as one step fails.

    Callers must look at ``valid`` (the CLI maps it to the exit code) or call
    :meth:`raise_for_invalid`.
    """

    source: str
    valid: bool = True
    step: int | None = None
    reason: str | None = None
    party: str | None = None
    trust: str = ""
    query_id: str | None = None
    statistic: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    result: dict[str, Any] | None = None
    #: the certificate's entries as decoded at step 5 (None when an earlier step failed);
    #: checked only as far as ``steps`` says -- :mod:`statledger.verifier.show` reads it
    view: QueryView | None = field(default=None, repr=False, compare=False)
    #: called as ``progress(step, detail)`` after each step passes (a long verification
    #: tells its reader how far it got: ``statledger verify --verbose`` prints it)
    progress: Callable[[int, str], None] | None = field(default=None, repr=False,
                                                        compare=False)

    def passed(self, step: int, detail: str = "") -> None:
        self.steps.append(StepResult(step, STEPS[step], True, detail))
        if self.progress is not None:
            self.progress(step, detail)

    def failed(self, err: VerificationError, step: int) -> None:
        self.valid = False
        self.step = step
        self.reason = err.reason
        self.party = err.party
        self.steps.append(StepResult(step, STEPS[step], False, err.reason))

    def raise_for_invalid(self) -> None:
        if not self.valid:
            raise VerificationError(
                self.reason or "invalid", step=f"step {self.step}", party=self.party
            )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "valid": self.valid,
            "step": self.step,
            "reason": self.reason,
            "party": self.party,
            "trust": self.trust,
            "query_id": self.query_id,
            "statistic": self.statistic,
            "steps": [
                {"step": s.step, "title": s.title, "ok": s.ok, "detail": s.detail}
                for s in self.steps
            ],
        }
