"""Certificate verification: the numbered procedure of docs/verification.md.

``verify_certificate(raw, trust=None) -> Report`` never raises for an *invalid* certificate:
it returns a report whose ``valid`` is False and which names the step, the reason and the
party.  It raises :class:`MalformedError` only when the input is not a certificate at all
(step 1), which the CLI maps to exit code 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import leaf_hash, verify_inclusion
from statledger.ledger.note import CosignatureVerifier, NoteVerifier, check_quorum
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.protocol.checks import StepContext, check_query
from statledger.protocol.view import parse_entries
from statledger.verifier.certificate import Certificate, parse_certificate
from statledger.verifier.checks import (
    check_witness_quorum,
    registered_witnesses,
    with_witness_step,
)
from statledger.verifier.report import Report

__all__ = ["TrustPolicy", "load_trust", "verify_certificate", "verify_certificate_file"]


@dataclass(frozen=True)
class TrustPolicy:
    """Pinned trust: the log's verifier key, witness keys and the quorum of cosignatures."""

    log_key: str
    witness_keys: tuple[str, ...]
    quorum: int
    source: str

    @classmethod
    def parse(cls, obj: Any, source: str) -> TrustPolicy:
        if not isinstance(obj, dict) or set(obj) != {"log_key", "witness_keys", "quorum"}:
            raise MalformedError(f"{source}: a trust file has exactly the keys log_key, "
                                 "witness_keys, quorum")
        keys = obj["witness_keys"]
        if not isinstance(obj["log_key"], str) or not isinstance(keys, list) or not all(
            isinstance(k, str) for k in keys
        ):
            raise MalformedError(f"{source}: log_key must be a string, witness_keys strings")
        q = check_quorum(obj["quorum"], len(keys), what=f"{source}: quorum")
        NoteVerifier.from_vkey(obj["log_key"])
        for k in keys:
            CosignatureVerifier.from_vkey(k)
        return cls(obj["log_key"], tuple(keys), q, source)

    def to_json_obj(self) -> dict[str, Any]:
        return {"log_key": self.log_key, "witness_keys": list(self.witness_keys),
                "quorum": self.quorum}


def load_trust(path: str | Path) -> TrustPolicy:
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedError(f"trust file {p}: {exc}") from None
    return TrustPolicy.parse(obj, str(p))


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
    raw: bytes, trust: TrustPolicy | None = None, *, source: str = "<certificate>"
) -> Report:
    """Run steps 1-15 on one certificate.  MalformedError only for step 1 (not a certificate)."""
    report = Report(source=source)
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
    # (2) trust policy: pinned from a file, or self-asserted by the certificate.
    if trust is not None:
        if trust.log_key != cert.log_key:
            raise _fail(2, f"the certificate's log key is not the trusted one ({trust.source})",
                        "ledger")
        report.trust = f"pinned by {trust.source}"
    else:
        report.trust = ("self-asserted: the certificate's own log key and the witnesses it "
                        "registers (pin them with --trust)")
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
    report.passed(5, "every entry decodes canonically")
    if view.query is not None:
        report.query_id = view.query.query_id
        report.statistic = str(view.query.spec.get("statistic"))

    # (6) roster: the ledger's party entry must carry this log key.
    if view.ledger is None:
        raise _fail(6, "no ledger party entry", "ledger")
    ledger_vkey = NoteVerifier(cert.origin, view.ledger.verify_key().to_bytes())
    if ledger_vkey.vkey() != cert.log_key:
        raise _fail(6, "the ledger's registered key is not the log key", view.ledger.party_id)

    def step_7(ctx: StepContext) -> str:
        # (7) the witness quorum on the checkpoint, once the roster (6) is known: the pinned
        # witnesses and quorum, or the registered compute nodes and the setup's quorum.
        if trust is not None:
            witnesses = [CosignatureVerifier.from_vkey(k) for k in trust.witness_keys]
            return check_witness_quorum(note, witnesses, trust.quorum)
        return check_witness_quorum(note, registered_witnesses(ctx.view),
                                    ctx.setup().witness_quorum)

    check_query(view, on_step=report.passed, steps=with_witness_step(step_7))
    report.result = view.decoded


def verify_certificate_file(path: str | Path, trust: TrustPolicy | None = None) -> Report:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise MalformedError(f"{p}: cannot read: {exc.strerror}") from None
    return verify_certificate(raw, trust, source=str(p))

