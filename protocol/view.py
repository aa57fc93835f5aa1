"""One query as the log shows it: its decoded entries and the roster they rely on.

The roster entries are the consortium's genesis (entry 0), its membership changes, the
compute nodes' ``party`` entries (their key shares) and the ``setup`` entry; the query's
entries follow.  Nothing here is checked beyond decoding: the steps of
:mod:`statledger.protocol.checks` do that.

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
from statledger.protocol.entries import (
    DKG_KINDS,
    AggregateEntry,
    DecryptionEntry,
    EndorsementEntry,
    Entry,
    GenesisEntry,
    MembershipEntry,
    NoiseCoinEntry,
    NoiseCommitEntry,
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

    genesis: GenesisEntry | None = None
    memberships: list[tuple[int, MembershipEntry]] = field(default_factory=list)
    setup: SetupEntry | None = None
    setup_index: int | None = None
    parties: dict[str, PartyEntry] = field(default_factory=dict)
    party_index: dict[str, int] = field(default_factory=dict)
    #: the key ceremony's ``dkg_*`` entries (docs/dkg.md), in log order
    dkg: list[tuple[int, Entry]] = field(default_factory=list)
    query: QueryEntry | None = None
    query_index: int | None = None
    spec: QuerySpec | None = None
    submissions: list[tuple[int, SubmissionEntry]] = field(default_factory=list)
    #: DP noise, round 1 and round 2 (docs/noise.md), each in log order
    noise_commits: list[tuple[int, NoiseCommitEntry]] = field(default_factory=list)
    noise_coins: list[tuple[int, NoiseCoinEntry]] = field(default_factory=list)
    aggregate: tuple[int, AggregateEntry] | None = None
    decryptions: list[tuple[int, DecryptionEntry]] = field(default_factory=list)
    result: tuple[int, ResultEntry, bytes] | None = None
    endorsements: list[tuple[int, EndorsementEntry]] = field(default_factory=list)
    totals: list[int] | None = None
    decoded: dict[str, Any] | None = None

    @property
    def consortium_id(self) -> str | None:
        """The id of the genesis this view carries (not yet checked: step 6)."""
        if self.genesis is None:
            return None
        cid: str = self.genesis.signed_genesis().genesis.consortium_id
        return cid

    @property
    def noise(self) -> list[tuple[int, NoiseCommitEntry | NoiseCoinEntry]]:
        """Every noise entry of the query (commitments and coin shares), in log order."""
        merged: list[tuple[int, NoiseCommitEntry | NoiseCoinEntry]] = [
            *self.noise_commits, *self.noise_coins]
        return sorted(merged, key=lambda item: item[0])

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
        if isinstance(e, GenesisEntry):
            if index != 0 or view.genesis is not None:
                raise fail(5, f"entry {index}: a genesis entry that is not entry 0 of the log "
                              "(a second consortium on one log)", e.claimed_author())
            view.genesis = e
        elif isinstance(e, MembershipEntry):
            view.memberships.append((index, e))
        elif isinstance(e, PartyEntry):
            if e.party_id in view.parties:
                raise fail(5, f"entry {index}: party {e.party_id} registered twice", e.party_id)
            view.parties[e.party_id] = e
            view.party_index[e.party_id] = index
        elif e.KIND in DKG_KINDS:
            view.dkg.append((index, e))
        elif isinstance(e, SetupEntry):
            if view.setup is not None:
                raise fail(5, f"entry {index}: two setup entries (a second key ceremony)")
            view.setup = e
            view.setup_index = index
        elif isinstance(e, QueryEntry):
            if view.query is not None:
                raise fail(5, f"entry {index}: two query entries", e.querier)
            view.query = e
            view.query_index = index
        elif isinstance(e, SubmissionEntry):
            view.submissions.append((index, e))
        elif isinstance(e, NoiseCommitEntry):
            view.noise_commits.append((index, e))
        elif isinstance(e, NoiseCoinEntry):
            view.noise_coins.append((index, e))
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
