"""One query as the log shows it: its decoded entries and the roster they rely on.

:func:`parse_entries` is step 5 of docs/verification.md (every entry decodes canonically and
is sorted into a :class:`QueryView`); the later steps (:mod:`statledger.protocol.checks`) read
the view.  The parties (``statledger.nodes``) and the verifier (``statledger.verifier``) both
build their views here.  Every failure raises :class:`VerificationError` with
``step="step N"`` and the party blamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import VerifyKey
from statledger.protocol.entries import (
    AggregateEntry,
    DecryptionEntry,
    EndorsementEntry,
    Entry,
    NoiseEntry,
    PartyEntry,
    QueryEntry,
    ResultEntry,
    SetupEntry,
    SubmissionEntry,
)
from statledger.protocol.query import QuerySpec

__all__ = ["PARSE_STEP", "QueryView", "fail", "parse_entries"]

#: Step 5 (number, name): run by :func:`parse_entries`, before the steps of
#: :data:`statledger.protocol.checks.STEPS`.
PARSE_STEP: tuple[int, str] = (5, "entry encoding")


def fail(step: int, reason: str, party: str | None = None) -> VerificationError:
    """The error of a failed numbered step: ``VerificationError(reason, step="step N")``."""
    return VerificationError(reason, step=f"step {step}", party=party)


@dataclass
class QueryView:
    """The parsed entries of one query and the roster they rely on."""

    ledger: PartyEntry | None = None
    setup: SetupEntry | None = None
    parties: dict[str, PartyEntry] = field(default_factory=dict)
    query: QueryEntry | None = None
    spec: QuerySpec | None = None
    submissions: list[tuple[int, SubmissionEntry]] = field(default_factory=list)
    noise: list[tuple[int, NoiseEntry]] = field(default_factory=list)
    aggregate: tuple[int, AggregateEntry] | None = None
    decryptions: list[tuple[int, DecryptionEntry]] = field(default_factory=list)
    result: tuple[int, ResultEntry, bytes] | None = None
    endorsements: list[tuple[int, EndorsementEntry]] = field(default_factory=list)
    totals: list[int] | None = None
    decoded: dict[str, Any] | None = None
    _keys: dict[str, VerifyKey] = field(default_factory=dict)

    def key_of(self, party: PartyEntry) -> VerifyKey:
        """The party's Ed25519 key, decoded (and validated) once per verification."""
        key = self._keys.get(party.party_id)
        if key is None:
            key = self._keys[party.party_id] = party.verify_key()
        return key

    @property
    def query_id(self) -> str | None:
        return self.query.query_id if self.query is not None else None

    def compute_nodes(self) -> list[PartyEntry]:
        """The compute nodes of the setup entry, in its order (step 6 if one is missing)."""
        if self.setup is None:
            raise fail(6, "no setup entry")
        nodes = []
        for p in self.setup.compute:
            node = self.parties.get(p)
            if node is None:
                raise fail(6, f"{p} is not a registered party", p)
            nodes.append(node)
        return nodes


def parse_entries(entries: Sequence[tuple[int, bytes]]) -> QueryView:
    """(5) Decode every entry canonically and sort it into a :class:`QueryView`."""
    view = QueryView()
    for index, data in entries:
        try:
            e = Entry.from_bytes(data)
        except MalformedError as exc:
            raise fail(5, f"entry {index}: {exc}") from None
        if isinstance(e, PartyEntry):
            if e.party_id in view.parties:
                raise fail(5, f"entry {index}: party {e.party_id} registered twice", e.party_id)
            view.parties[e.party_id] = e
            if e.role == "ledger":
                if view.ledger is not None:
                    raise fail(5, f"entry {index}: two ledger parties", e.party_id)
                view.ledger = e
        elif isinstance(e, SetupEntry):
            if view.setup is not None:
                raise fail(5, f"entry {index}: two setup entries")
            view.setup = e
        elif isinstance(e, QueryEntry):
            if view.query is not None:
                raise fail(5, f"entry {index}: two query entries", e.querier)
            view.query = e
        elif isinstance(e, SubmissionEntry):
            view.submissions.append((index, e))
        elif isinstance(e, NoiseEntry):
            view.noise.append((index, e))
        elif isinstance(e, AggregateEntry):
            if view.aggregate is not None:
                raise fail(5, f"entry {index}: two aggregate entries")
            view.aggregate = (index, e)
        elif isinstance(e, DecryptionEntry):
            view.decryptions.append((index, e))
        elif isinstance(e, ResultEntry):
            if view.result is not None:
                raise fail(5, f"entry {index}: two result entries")
            view.result = (index, e, bytes(data))
        elif isinstance(e, EndorsementEntry):
            view.endorsements.append((index, e))
        else:  # pragma: no cover - Entry.from_bytes knows no other kinds
            raise fail(5, f"entry {index}: unexpected kind {e.KIND}")
    return view
