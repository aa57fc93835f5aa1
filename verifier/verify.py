"""Certificate verification: the numbered procedure of docs/verification.md.

``verify_certificate(raw, trust=None) -> Report`` never raises for an *invalid* certificate:
it returns a report whose ``valid`` is False and which names the step, the reason and the
party.  It raises :class:`MalformedError` only when the input is not a certificate at all
(step 1), which the CLI maps to exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import leaf_hash, verify_inclusion
from statledger.ledger.note import NoteVerifier
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.protocol.canonical import parse_json
from statledger.protocol.checks import StepContext, check_query
from statledger.protocol.consortium import Roster, SignedGenesis, parse_trust_document
from statledger.protocol.view import parse_entries
from statledger.verifier.certificate import Certificate, parse_certificate
from statledger.verifier.checks import (
    check_witness_quorum,
    roster_log_key,
    roster_witnesses,
    with_witness_step,
)
from statledger.verifier.report import Report

__all__ = ["TrustPolicy", "load_trust", "verify_certificate", "verify_certificate_file"]


@dataclass(frozen=True)
class TrustPolicy:
    """Pinned trust: the consortium a reviewer trusts, i.e. its signed genesis (from a
    ``statledger-trust/v2`` file written by ``statledger consortium export-trust``).  The log
    key, the witnesses, their quorum and every party's key are derived from it and the
    membership chain the certificate carries."""

    genesis: SignedGenesis
    source: str

    @property
    def consortium_id(self) -> str:
        cid: str = self.genesis.genesis.consortium_id
        return cid

    @classmethod
    def parse(cls, data: bytes | str, source: str) -> TrustPolicy:
        try:
            obj = parse_json(data)
        except MalformedError as exc:
            raise MalformedError(f"{source}: {exc}") from None
        if isinstance(obj, dict) and "format" not in obj and "log_key" in obj:
            raise MalformedError(
                f"{source}: a statledger-trust/v1 file (a log key and witnesses) pins no "
                "consortium and is no longer accepted; ask for the consortium's trust file "
                "(`statledger consortium export-trust`)")
        try:
            return cls(parse_trust_document(data), source)
        except MalformedError as exc:
            raise MalformedError(f"{source}: {exc}") from None
        except VerificationError as exc:
            raise MalformedError(f"{source}: not a valid consortium genesis: {exc}") from None

    def log_key(self) -> str:
        """The verifier key (C2SP vkey) of the pinned consortium's log."""
        return roster_log_key(Roster.from_genesis(self.genesis)).vkey()


def load_trust(path: str | Path) -> TrustPolicy:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise MalformedError(f"trust file {p}: cannot read: {exc.strerror}") from None
    return TrustPolicy.parse(data, str(p))


def _fail(step: int, reason: str, party: str | None = None) -> VerificationError:
    return VerificationError(reason, step=f"step {step}", party=party)


def _step_number(err: VerificationError, default: int) -> int:
    if err.step and err.step.startswith("step "):
        try:
            return int(err.step.split()[1])
        except ValueError:
            return default
    return default


def verify_certificate(
    raw: bytes, trust: TrustPolicy | None = None, *, source: str = "<certificate>",
    progress: Callable[[int, str], None] | None = None,
) -> Report:
    """Run steps 1-15 on one certificate.  MalformedError only for step 1 (not a certificate).
    ``progress(step, detail)`` is called after each step passes."""
    report = Report(source=source, progress=progress)
    # (1) format: statledger-certificate/v2, exact lengths, limits, increasing indices.
    cert = parse_certificate(raw)
    report.passed(1, f"{len(cert.entries)} entries")
    try:
        _verify(cert, trust, report)
    except VerificationError as exc:
        report.failed(exc, _step_number(exc, report.steps[-1].step + 1))
    except StatledgerError as exc:  # malformed content deep inside an authenticated entry
        report.failed(VerificationError(str(exc)), report.steps[-1].step + 1)
    return report


def _verify(cert: Certificate, trust: TrustPolicy | None, report: Report) -> None:
    # (2) trust policy: a consortium pinned from a trust file, or self-asserted by the
    # genesis the certificate carries.
    if trust is not None:
        if trust.log_key() != cert.log_key:
            raise _fail(2, f"the certificate comes from another log than the pinned "
                           f"consortium's ({trust.consortium_id[:16]}..., {trust.source})",
                        "ledger")
        report.trust = f"consortium {trust.consortium_id[:16]}... pinned by {trust.source}"
    else:
        report.trust = ("self-asserted: the consortium of the genesis the certificate carries "
                        "(pin it with --trust)")
    report.passed(2, report.trust)

    # (3) checkpoint: C2SP signed note, signed by the log key, origin as stated.
    try:
        log_key = NoteVerifier.from_vkey(cert.log_key)
    except MalformedError as exc:
        raise _fail(3, f"log_key: {exc}", "ledger") from None
    if log_key.name != cert.origin:
        raise _fail(3, "the log key's name is not the certificate's origin", "ledger")
    try:
        cp, note = open_checkpoint(cert.checkpoint, log_key, origin=cert.origin)
    except StatledgerError as exc:
        raise _fail(3, f"checkpoint: {exc}", "ledger") from None
    report.passed(3, f"checkpoint of size {cp.size} signed by {cert.origin}")

    # (4) inclusion of every entry at its index in the checkpoint's tree.
    for e in cert.entries:
        if e.index >= cp.size:
            raise _fail(4, f"entry {e.index} is beyond the checkpoint (size {cp.size})", "ledger")
        try:
            verify_inclusion(e.index, cp.size, leaf_hash(e.data), list(e.proof), cp.root)
        except StatledgerError as exc:
            raise _fail(4, f"entry {e.index} is not in the log: {exc}", "ledger") from None
    report.passed(4, f"{len(cert.entries)} entries included in the tree of size {cp.size}")

    # (5) entries decode canonically.
    view = parse_entries([(e.index, e.data) for e in cert.entries])
    report.view = view
    report.passed(5, "every entry decodes canonically")
    if view.query is not None:
        report.query_id = view.query.query_id
        report.statistic = str(view.query.spec.get("statistic"))

    def step_7(ctx: StepContext) -> str:
        # (7) the witness quorum on the checkpoint, once the roster (6) is known: the
        # consortium's log (its key signed the checkpoint, step 3) and its witnesses (the
        # compute members) with the roster's quorum.
        roster = ctx.timeline().final
        if roster_log_key(roster).vkey() != cert.log_key or roster.origin != cert.origin:
            raise _fail(7, "the checkpoint is not signed by the consortium's log", "ledger")
        return check_witness_quorum(note, roster_witnesses(roster), roster.witness_quorum)

    check_query(view, on_step=report.passed, steps=with_witness_step(step_7),
                pinned=trust.consortium_id if trust is not None else None)
    report.result = view.decoded


def verify_certificate_file(path: str | Path, trust: TrustPolicy | None = None) -> Report:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MalformedError(f"{p}: cannot read: {exc.strerror}") from None
    return verify_certificate(raw, trust, source=str(p))

