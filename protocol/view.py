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
    GateEntry,
    GenesisEntry,
    MembershipEntry,
    NoiseCoinEntry,
    NoiseCommitEntry,
    PartyEntry,
    PetEntry,
    QueryEntry,
    ReleaseEntry,
    ResultEntry,
    SetupEntry,
    SubmissionEntry,
    VerticalBlockEntry,
    VerticalProductsEntry,
    VerticalRowsEntry,
)
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import StatResult

__all__ = ["PARSE_STEP", "QueryView", "fail", "key_in_force", "parse_entries"]

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
    #: the setup or rekey entry in force for the query (the last one logged before the query
    #: entry; the first setup if the query came first; the last one if there is no query)
    setup: SetupEntry | None = None
    setup_index: int | None = None
    #: every setup and rekey entry (docs/dkg.md, "Key lifecycle"), in log order
    setups: list[tuple[int, SetupEntry]] = field(default_factory=list)
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
    #: suppression before decryption (protocol/suppression.py): gate shares, the decision
    gates: list[tuple[int, GateEntry]] = field(default_factory=list)
    pets: list[tuple[int, PetEntry]] = field(default_factory=list)
    release: tuple[int, ReleaseEntry] | None = None
    decryptions: list[tuple[int, DecryptionEntry]] = field(default_factory=list)
    result: tuple[int, ResultEntry, bytes] | None = None
    endorsements: list[tuple[int, EndorsementEntry]] = field(default_factory=list)
    #: a vertically partitioned query's owner entries (protocol/vertical.py): rows, products
    #: and block, in log order (their order and authors are step 9's)
    vertical: list[tuple[int, VerticalRowsEntry | VerticalProductsEntry | VerticalBlockEntry]
                   ] = field(default_factory=list)
    #: a chained round's previous round: its query and result entries (protocol/chain.py)
    previous_query: tuple[int, QueryEntry] | None = None
    previous_result: tuple[int, ResultEntry, bytes] | None = None
    #: ... and the owners' endorsements of that result (step 8: it must be established)
    previous_endorsements: list[tuple[int, EndorsementEntry]] = field(default_factory=list)
    totals: list[int] | None = None
    decoded: dict[str, Any] | None = None
    #: (14) the result object ``decoded`` is the dict of (summary table, notes, DP block):
    #: what ``statledger verify --show`` prints, never decoded a second way
    decoded_result: StatResult | None = None

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

    def contributors(self) -> set[str]:
        """The owners whose data the query's aggregate combines: the submitters, or the
        two owners of a vertical query's entries."""
        return ({s.provider for _, s in self.submissions}
                | {e.provider for _, e in self.vertical})

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
    queries: list[tuple[int, QueryEntry]] = []
    results: list[tuple[int, ResultEntry, bytes]] = []
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
            if e.KIND == "setup" and view.setups:
                raise fail(5, f"entry {index}: two setup entries (a second key ceremony)")
            if e.KIND != "setup" and not view.setups:
                raise fail(5, f"entry {index}: a {e.KIND} entry before the setup")
            view.setups.append((index, e))
        elif isinstance(e, QueryEntry):
            queries.append((index, e))
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
        elif isinstance(e, GateEntry):
            view.gates.append((index, e))
        elif isinstance(e, PetEntry):
            view.pets.append((index, e))
        elif isinstance(e, ReleaseEntry):
            if view.release is not None:
                raise fail(5, f"entry {index}: two release entries")
            view.release = (index, e)
        elif isinstance(e, ResultEntry):
            results.append((index, e, bytes(data)))
        elif isinstance(e, EndorsementEntry):
            view.endorsements.append((index, e))
        elif isinstance(e, VerticalRowsEntry | VerticalProductsEntry | VerticalBlockEntry):
            view.vertical.append((index, e))
        else:  # pragma: no cover - Entry.from_bytes knows no other kinds
            raise fail(5, f"entry {index}: unexpected kind {e.KIND}")
    _sort_chain(view, queries, results)
    in_force = key_in_force(view.setups, view.query_index)
    if in_force is not None:
        view.setup_index, view.setup = in_force
    return view


def _sort_chain(view: QueryView, queries: list[tuple[int, QueryEntry]],
                results: list[tuple[int, ResultEntry, bytes]]) -> None:
    """One query entry is the query; a second one is allowed only as the previous round its
    spec names in ``params.previous`` (protocol/chain.py), with at most its result entry and
    its endorsements."""
    if len(queries) > 2:
        raise fail(5, f"entry {queries[2][0]}: more than two query entries", queries[2][1].querier)
    if len(queries) == 2:
        (ia, a), (ib, b) = queries
        if b.spec.get("params", {}).get("previous") == a.query_id:
            view.previous_query = (ia, a)
            queries = [(ib, b)]
        elif a.spec.get("params", {}).get("previous") == b.query_id:
            view.previous_query = (ib, b)
            queries = [(ia, a)]
        else:
            raise fail(5, f"entry {ib}: two query entries", b.querier)
    if queries:
        view.query_index, view.query = queries[0]
    prev = view.previous_query[1].query_id if view.previous_query is not None else None
    for r in results:
        if prev is not None and r[1].query_id == prev:
            if view.previous_result is not None:
                raise fail(5, f"entry {r[0]}: two result entries of the previous round")
            view.previous_result = r
        elif view.result is not None:
            raise fail(5, f"entry {r[0]}: two result entries")
        else:
            view.result = r
    if prev is not None:
        view.previous_endorsements = [e for e in view.endorsements if e[1].query_id == prev]
        view.endorsements = [e for e in view.endorsements if e[1].query_id != prev]


def key_in_force(setups: Sequence[tuple[int, SetupEntry]], index: int | None
                 ) -> tuple[int, SetupEntry] | None:
    """The setup or rekey entry whose key a query logged at ``index`` uses: the last one
    before it; the first setup if the query came before any (its parties wait for the key);
    the last one when ``index`` is None.  The one rule every party applies."""
    if not setups:
        return None
    if index is None:
        return setups[-1]
    before = [s for s in setups if s[0] < index]
    return before[-1] if before else setups[0]
