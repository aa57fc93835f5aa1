"""The query state machine: a pure function ``advance(state, entry) -> state``.

One query's lifecycle on the log (docs/entries.md, "Order of a query")::

    query --> submission* (providers) -------------------------+--> aggregate --> decryption*
          \\-> noise_commit* (nodes) --> noise_coin* (nodes) ----/  (iff DP)  --> result
                                                                           --> endorsement*

Phases: ``created`` (query logged) -> ``collecting`` (>= 1 submission or noise entry) ->
``aggregated`` -> ``decrypting`` (>= 1 decryption share) -> ``decrypted`` (``T`` compute
nodes, the setup's threshold; more may still decrypt until the result) -> ``released``
(result) -> ``endorsed`` (every provider that submitted endorsed).

Suppression before decryption (protocol/suppression.py): for a statistic with gate entries
(``QueryState.gates_required``), ``gate`` entries (at most one per compute node) follow the
aggregate, then one ``release`` decision by the querier naming ``T`` of them; decryption
shares are accepted only after it, each with exactly the release entry's ``ciphertexts``
shares (a share of a withheld ciphertext is refused; that they are the released ones is the
DLEQ of step 12).  For other statistics both kinds are refused.

DP noise (docs/noise.md) is two rounds *before* the aggregate, which lists the noise set it
summed: ``noise_commit`` entries (at most one per compute node), then ``noise_coin`` entries
(at most one per node).  The first coin share closes the noise set: a commitment after it is
refused.  A coin share needs at least ``T`` commitments (``Roster.needed``, the setup's
threshold), the aggregate of a DP query at least ``T`` coin shares and lists exactly the
set's commitments.  Whether they verify (bit proofs, DLEQs) is checked by the ledger's
append rule (5b) and by verification step 10.

A vertically partitioned query (protocol/vertical.py) takes no submission: its owners log
``vertical_rows`` (owner A), ``vertical_products`` (owner B), ``vertical_block`` (owner A), in
that order; the aggregate follows all three and lists exactly them; its endorsements are the
two owners'.  The three kinds are refused for any other query.

Every rejected event raises :class:`~statledger.proofs.errors.ProtocolError` whose message names the
event (kind) and the party.  The machine checks order, uniqueness, membership and the
cross-references it can see (query id, listed log indices, result digest); cryptographic
checks (signatures, range proofs, DLEQ) are the verifier's job.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from statledger.proofs.errors import MalformedError, ProtocolError, VerificationError
from statledger.protocol import calibration, flow, suppression, vertical
from statledger.protocol.consortium import Roster as ConsortiumRoster
from statledger.protocol.consortium import RosterTimeline
from statledger.protocol.entries import (
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
    check_party_id,
)
from statledger.protocol.stats.vertical import partition_of

__all__ = [
    "Phase",
    "Roster",
    "QueryState",
    "start",
    "advance",
    "expected_next",
    "replay",
]


class Phase(enum.Enum):
    CREATED = "created"
    COLLECTING = "collecting"
    AGGREGATED = "aggregated"
    DECRYPTING = "decrypting"
    DECRYPTED = "decrypted"
    RELEASED = "released"
    ENDORSED = "endorsed"


@dataclass(frozen=True)
class Roster:
    """Who may take part: compute node ids, provider ids, querier ids (``None`` = anyone)."""

    compute: tuple[str, ...]
    providers: tuple[str, ...]
    queriers: tuple[str, ...] | None = None
    #: decryption shares a result needs (the setup's ``T``); ``None`` = every compute node
    threshold: int | None = None

    def __post_init__(self) -> None:
        for name in ("compute", "providers"):
            ids = tuple(getattr(self, name))
            if not ids:
                raise ProtocolError(f"roster: no {name}")
            for p in ids:
                check_party_id(p, f"roster.{name}")
            if len(set(ids)) != len(ids):
                raise ProtocolError(f"roster: duplicate id in {name}")
            object.__setattr__(self, name, ids)
        if self.queriers is not None:
            qs = tuple(self.queriers)
            for p in qs:
                check_party_id(p, "roster.queriers")
            object.__setattr__(self, "queriers", qs)
        if set(self.compute) & set(self.providers):
            raise ProtocolError("roster: an id is both compute node and provider")
        if self.threshold is not None and not 1 <= self.threshold <= len(self.compute):
            raise ProtocolError("roster: threshold must be between 1 and the compute nodes")

    @property
    def needed(self) -> int:
        """How many decryption shares a result needs."""
        return len(self.compute) if self.threshold is None else self.threshold

    @classmethod
    def from_entries(cls, entries: Iterable[Entry]) -> Roster:
        """Roster from the log's consortium entries (the genesis and its membership changes,
        in log order: the members after the last change) and the key in force: the
        ``setup`` entry, or the last ``rekey`` given (the caller passes the query's).
        The membership chain is replayed with its signatures checked
        (:class:`statledger.protocol.consortium.RosterTimeline`)."""
        genesis: GenesisEntry | None = None
        changes: list[MembershipEntry] = []
        setup: SetupEntry | None = None
        for e in entries:
            if isinstance(e, GenesisEntry):
                if genesis is not None:
                    raise ProtocolError("genesis: more than one genesis entry")
                genesis = e
            elif isinstance(e, MembershipEntry):
                changes.append(e)
            elif isinstance(e, SetupEntry):  # the setup, or a rekey: the last one given
                if setup is not None and e.KIND == "setup":
                    raise ProtocolError("setup: more than one setup entry")
                setup = e
        if genesis is None:
            raise ProtocolError("genesis: no genesis entry")
        if setup is None:
            raise ProtocolError("setup: no setup entry")
        try:
            final = RosterTimeline.derive(
                genesis.signed_genesis(),
                [(i, c.change()) for i, c in enumerate(changes, start=1)]).final
        except VerificationError as exc:
            raise ProtocolError(f"membership chain: {exc.reason}") from None
        return cls.of(final, setup.compute, setup.threshold)

    @classmethod
    def of(cls, roster: ConsortiumRoster, compute: Sequence[str],
           threshold: int | None = None) -> Roster:
        """The state machine's roster: the consortium roster's providers and queriers, and
        the setup entry's ``compute`` nodes and threshold."""
        return cls(tuple(compute),
                   tuple(m.party_id for m in roster.of_role("provider")),
                   tuple(m.party_id for m in roster.of_role("querier")), threshold)


@dataclass(frozen=True)
class QueryState:
    """Everything the machine knows about one query after some prefix of its entries.

    ``submissions`` / ``noise_commits`` / ``noise_coins`` / ``decryptions`` /
    ``endorsements`` are tuples of ``(party, log index or None)`` in arrival order; the
    commitments are the noise set (none is accepted after the first coin share).
    """

    query_id: str
    querier: str
    roster: Roster
    min_providers: int
    noise_required: bool
    phase: Phase = Phase.CREATED
    submissions: tuple[tuple[str, int | None], ...] = ()
    noise_commits: tuple[tuple[str, int | None], ...] = ()
    noise_coins: tuple[tuple[str, int | None], ...] = ()
    decryptions: tuple[tuple[str, int | None], ...] = ()
    n_ciphertexts: int | None = None
    result_digest: str | None = None
    endorsements: tuple[tuple[str, int | None], ...] = ()
    #: suppression before decryption (protocol/suppression.py): the statistic has gates,
    #: the nodes that logged gate shares, whether the release decision is logged
    gates_required: bool = False
    gates: tuple[tuple[str, int | None], ...] = ()
    #: the nodes that logged a blinded shuffled PET step (protocol/pet.py), in log order
    pets: tuple[tuple[str, int | None], ...] = ()
    #: the ciphertext count of the PET steps (every step and every gate entry has it)
    n_pet: int | None = None
    released: bool = False
    #: the released ciphertexts (the release entry's count): every decryption's share count
    n_released: int | None = None
    #: a vertical query (protocol/vertical.py): the author of each of its owner entries in
    #: order (rows, products, block: owners A, B, A), and the entries logged so far
    vertical_authors: tuple[str, ...] | None = None
    vertical: tuple[tuple[str, int | None], ...] = ()
    #: a DP query's entry count: its decryptions carry one share per entry, never per limb
    #: (:func:`statledger.protocol.flow.decryption_targets`); None for an exact query
    n_entries: int | None = None

    @property
    def gated(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.gates)

    @property
    def submitted(self) -> tuple[str, ...]:
        """The contributing providers: the submitters, or a vertical query's two owners."""
        if self.vertical_authors is not None:
            return tuple(dict.fromkeys(p for p, _ in self.vertical))
        return tuple(p for p, _ in self.submissions)

    @property
    def committed(self) -> tuple[str, ...]:
        """The nodes of the noise set (their commitments), in arrival order."""
        return tuple(p for p, _ in self.noise_commits)

    @property
    def coined(self) -> tuple[str, ...]:
        """The nodes that published a coin share, in arrival order."""
        return tuple(p for p, _ in self.noise_coins)

    @property
    def decrypted(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.decryptions)

    @property
    def endorsed(self) -> tuple[str, ...]:
        return tuple(p for p, _ in self.endorsements)


def start(query: QueryEntry, roster: Roster, *, min_providers: int | None = None,
          noise_required: bool | None = None) -> QueryState:
    """Initial state from the query entry; ``min_providers`` / ``noise_required`` default to
    the spec's ``min_providers`` and ``privacy.mechanism != "none"``."""
    if not isinstance(query, QueryEntry):
        raise ProtocolError(f"{_kind(query)} entry cannot start a query (expected query)")
    if roster.queriers is not None and query.querier not in roster.queriers:
        raise ProtocolError(f"query from unknown querier {query.querier}")
    spec = query.query_spec()
    gates_required = suppression.gated(spec)
    authors: tuple[str, ...] | None = None
    if vertical.is_vertical(spec):
        try:
            part = partition_of(spec)
        except MalformedError as exc:
            raise ProtocolError(f"query {query.query_id}: {exc}") from None
        for o in part.owners:
            if o not in roster.providers:
                raise ProtocolError(f"query {query.query_id}: vertical owner {o} is not a "
                                    "provider")
        authors = (part.a, part.b, part.a)
    if min_providers is None or noise_required is None:
        if min_providers is None:
            min_providers = spec.min_providers
        if noise_required is None:
            noise_required = spec.privacy.mechanism != "none"
    if min_providers < 1:
        raise ProtocolError(f"query {query.query_id}: min_providers must be >= 1")
    if min_providers > len(roster.providers):
        raise ProtocolError(
            f"query {query.query_id}: needs {min_providers} providers, roster has "
            f"{len(roster.providers)}"
        )
    n_entries = (len(calibration.wire_layout(spec))
                 if authors is None and flow.decrypts_whole_entries(spec) else None)
    return QueryState(query.query_id, query.querier, roster, min_providers, noise_required,
                      gates_required=gates_required, vertical_authors=authors,
                      n_entries=n_entries)


def _kind(entry: object) -> str:
    return entry.KIND if isinstance(entry, Entry) else type(entry).__name__


def _fmt(p: str | None) -> str:
    return "" if p is None else f" from {p}"


def advance(state: QueryState, entry: Entry, index: int | None = None) -> QueryState:
    """The state after ``entry`` (at log ``index``, if known), or :class:`ProtocolError`.

    When every submission and noise share was advanced with its index, the aggregate's
    ``submissions`` / ``noise`` lists must equal those indices exactly (no dropped or extra
    contribution); without indices only their counts are compared.
    """
    if not isinstance(entry, Entry):
        raise ProtocolError(f"{_kind(entry)} is not a log entry")
    kind = entry.KIND
    who = entry.claimed_author()
    if isinstance(entry, QueryEntry):
        raise ProtocolError(f"query entry{_fmt(who)}: duplicate query (already started "
                            f"{state.query_id})")
    if isinstance(entry, PartyEntry | SetupEntry | GenesisEntry | MembershipEntry):
        raise ProtocolError(f"{kind} entry{_fmt(who)} is not an event of query "
                            f"{state.query_id}")
    qid = getattr(entry, "query_id", None)
    if qid != state.query_id:
        raise ProtocolError(f"{kind} entry{_fmt(who)}: wrong query id {qid} (expected "
                            f"{state.query_id})")
    if isinstance(entry, SubmissionEntry):
        return _submission(state, entry, index)
    if isinstance(entry, VerticalRowsEntry | VerticalProductsEntry | VerticalBlockEntry):
        return _vertical(state, entry, index)
    if isinstance(entry, NoiseCommitEntry):
        return _noise_commit(state, entry, index)
    if isinstance(entry, NoiseCoinEntry):
        return _noise_coin(state, entry, index)
    if isinstance(entry, AggregateEntry):
        return _aggregate(state, entry)
    if isinstance(entry, DecryptionEntry):
        return _decryption(state, entry, index)
    if isinstance(entry, PetEntry):
        return _pet(state, entry, index)
    if isinstance(entry, GateEntry):
        return _gate(state, entry, index)
    if isinstance(entry, ReleaseEntry):
        return _release(state, entry)
    if isinstance(entry, ResultEntry):
        return _result(state, entry)
    if isinstance(entry, EndorsementEntry):
        return _endorsement(state, entry, index)
    raise ProtocolError(f"{kind} entry: unknown kind")  # pragma: no cover


_BEFORE_AGGREGATE = (Phase.CREATED, Phase.COLLECTING)


def _submission(state: QueryState, e: SubmissionEntry, index: int | None) -> QueryState:
    p = e.provider
    if p not in state.roster.providers:
        raise ProtocolError(f"submission from unknown provider {p}")
    if state.vertical_authors is not None:
        raise ProtocolError(f"submission from provider {p} to a vertical query (its owners "
                            "log vertical entries)")
    if state.phase not in _BEFORE_AGGREGATE:
        raise ProtocolError(f"submission from provider {p} after the aggregate "
                            f"(phase {state.phase.value})")
    if p in state.submitted:
        raise ProtocolError(f"duplicate submission from provider {p}")
    return replace(state, phase=Phase.COLLECTING,
                   submissions=state.submissions + ((p, index),))


def _vertical(state: QueryState,
              e: VerticalRowsEntry | VerticalProductsEntry | VerticalBlockEntry,
              index: int | None) -> QueryState:
    """A vertical query's owner entries: only for a vertical query, before the aggregate,
    exactly in the order rows (owner A), products (owner B), block (owner A)."""
    p = e.provider
    authors = state.vertical_authors
    if authors is None:
        raise ProtocolError(f"{e.KIND} entry from provider {p}: the query is not vertical")
    if state.phase not in _BEFORE_AGGREGATE:
        raise ProtocolError(f"{e.KIND} entry from provider {p} after the aggregate "
                            f"(phase {state.phase.value})")
    pos = len(state.vertical)
    if pos >= len(VERTICAL_ORDER) or e.KIND != VERTICAL_ORDER[pos]:
        want = VERTICAL_ORDER[pos] if pos < len(VERTICAL_ORDER) else "no further entry"
        raise ProtocolError(f"{e.KIND} entry from provider {p} out of order (expected "
                            f"{want})")
    if p != authors[pos]:
        raise ProtocolError(f"{e.KIND} entry from provider {p}: only {authors[pos]} writes it")
    return replace(state, phase=Phase.COLLECTING, vertical=state.vertical + ((p, index),))


#: The owner entries of a vertical query, in their order on the log.
VERTICAL_ORDER = ("vertical_rows", "vertical_products", "vertical_block")


def _noise_event(state: QueryState, what: str, n: str) -> None:
    if n not in state.roster.compute:
        raise ProtocolError(f"{what} from unknown compute node {n}")
    if not state.noise_required:
        raise ProtocolError(f"{what} from node {n}, but query {state.query_id} asks for no "
                            "differential privacy")
    if state.phase not in _BEFORE_AGGREGATE:
        raise ProtocolError(f"{what} from node {n} after the aggregate "
                            f"(phase {state.phase.value})")


def _noise_commit(state: QueryState, e: NoiseCommitEntry, index: int | None) -> QueryState:
    n = e.node
    _noise_event(state, "noise commitment", n)
    if state.noise_coins:
        raise ProtocolError(f"noise commitment from node {n} after the first coin share (the "
                            "noise set is closed)")
    if n in state.committed:
        raise ProtocolError(f"duplicate noise commitment from node {n}")
    return replace(state, phase=Phase.COLLECTING,
                   noise_commits=state.noise_commits + ((n, index),))


def _noise_coin(state: QueryState, e: NoiseCoinEntry, index: int | None) -> QueryState:
    n = e.node
    _noise_event(state, "coin share", n)
    need = state.roster.needed
    if len(state.noise_commits) < need:
        raise ProtocolError(f"coin share from node {n} before {need} noise commitments "
                            f"({len(state.noise_commits)} logged)")
    if n in state.coined:
        raise ProtocolError(f"duplicate coin share from node {n}")
    return replace(state, phase=Phase.COLLECTING,
                   noise_coins=state.noise_coins + ((n, index),))


def _check_listed(state: QueryState, what: str, listed: tuple[int, ...],
                  have: tuple[tuple[str, int | None], ...]) -> None:
    indices = [i for _, i in have]
    if len(listed) != len(have):
        raise ProtocolError(f"aggregate lists {len(listed)} {what}, the log has {len(have)}")
    if all(i is not None for i in indices) and sorted(
        i for i in indices if i is not None
    ) != list(listed):
        raise ProtocolError(f"aggregate lists {what} {list(listed)}, the log has "
                            f"{sorted(i for i in indices if i is not None)}")


def _aggregate(state: QueryState, e: AggregateEntry) -> QueryState:
    if state.phase not in _BEFORE_AGGREGATE:
        raise ProtocolError(f"aggregate: duplicate or late (phase {state.phase.value})")
    if state.vertical_authors is not None:
        if len(state.vertical) != len(VERTICAL_ORDER):
            raise ProtocolError(f"aggregate before the vertical entries: {len(state.vertical)} "
                                f"of {len(VERTICAL_ORDER)}")
        _check_listed(state, "vertical entries", e.submissions, state.vertical)
        _check_listed(state, "noise commitments", e.noise, state.noise_commits)
        return replace(state, phase=Phase.AGGREGATED, n_ciphertexts=len(e.ciphertexts))
    k = len(state.submissions)
    if k < state.min_providers:
        raise ProtocolError(f"aggregate before enough submissions: {k} of "
                            f"{state.min_providers} required")
    if state.noise_required and len(state.noise_coins) < state.roster.needed:
        raise ProtocolError(f"aggregate before the noise round completed "
                            f"({len(state.noise_coins)} of {state.roster.needed} coin shares)")
    _check_listed(state, "submissions", e.submissions, state.submissions)
    _check_listed(state, "noise commitments", e.noise, state.noise_commits)
    return replace(state, phase=Phase.AGGREGATED, n_ciphertexts=len(e.ciphertexts))


def _decryption(state: QueryState, e: DecryptionEntry, index: int | None) -> QueryState:
    n = e.node
    if n not in state.roster.compute:
        raise ProtocolError(f"decryption from unknown compute node {n}")
    if state.phase in _BEFORE_AGGREGATE:
        raise ProtocolError(f"decryption from node {n} before the aggregate")
    if state.phase not in (Phase.AGGREGATED, Phase.DECRYPTING, Phase.DECRYPTED):
        if n in state.decrypted:
            raise ProtocolError(f"duplicate decryption from node {n}")
        raise ProtocolError(f"decryption from node {n} after phase {state.phase.value}")
    if n in state.decrypted:
        raise ProtocolError(f"duplicate decryption from node {n}")
    if state.gates_required and not state.released:
        raise ProtocolError(f"decryption from node {n} before the release decision (the "
                            "query decrypts its gates first)")
    if state.gates_required:
        if len(e.shares) != state.n_released:
            raise ProtocolError(f"decryption from node {n} has {len(e.shares)} shares for "
                                f"the {state.n_released} released ciphertexts (a share of a "
                                "withheld ciphertext is refused)")
    elif state.n_entries is not None:
        if len(e.shares) != state.n_entries:
            raise ProtocolError(f"decryption from node {n} has {len(e.shares)} shares; a DP "
                                f"query decrypts one ciphertext per entry ({state.n_entries}), "
                                "never its limbs")
    elif len(e.shares) != state.n_ciphertexts:
        raise ProtocolError(f"decryption from node {n} has {len(e.shares)} shares for "
                            f"{state.n_ciphertexts} aggregate ciphertexts")
    decs = state.decryptions + ((n, index),)
    done = len(decs) >= state.roster.needed
    return replace(state, phase=Phase.DECRYPTED if done else Phase.DECRYPTING,
                   decryptions=decs)


def _pet(state: QueryState, e: PetEntry, index: int | None) -> QueryState:
    n = e.node
    if n not in state.roster.compute:
        raise ProtocolError(f"PET step from unknown compute node {n}")
    if not state.gates_required:
        raise ProtocolError(f"PET step from node {n}, but query {state.query_id} has no "
                            "gate entries")
    if state.phase in _BEFORE_AGGREGATE:
        raise ProtocolError(f"PET step from node {n} before the aggregate")
    if state.released or state.gates or state.phase is not Phase.AGGREGATED:
        raise ProtocolError(f"PET step from node {n} after the gate shares")
    if n in (p for p, _ in state.pets):
        raise ProtocolError(f"duplicate PET step from node {n}")
    if len(state.pets) >= state.roster.needed:
        raise ProtocolError(f"PET step from node {n}: the chain already has "
                            f"{len(state.pets)} steps")
    if state.n_pet is not None and len(e.shuffled) != state.n_pet:
        raise ProtocolError(f"PET step from node {n}: {len(e.shuffled)} ciphertexts, the "
                            f"chain has {state.n_pet}")
    return replace(state, pets=state.pets + ((n, index),), n_pet=len(e.shuffled))


def _gate(state: QueryState, e: GateEntry, index: int | None) -> QueryState:
    n = e.node
    if n not in state.roster.compute:
        raise ProtocolError(f"gate shares from unknown compute node {n}")
    if not state.gates_required:
        raise ProtocolError(f"gate shares from node {n}, but query {state.query_id} has no "
                            "gate entries")
    if state.phase in _BEFORE_AGGREGATE:
        raise ProtocolError(f"gate shares from node {n} before the aggregate")
    if state.released or state.phase is not Phase.AGGREGATED:
        raise ProtocolError(f"gate shares from node {n} after the release decision")
    if n in state.gated:
        raise ProtocolError(f"duplicate gate shares from node {n}")
    if len(state.pets) < state.roster.needed:
        raise ProtocolError(f"gate shares from node {n} before the PET chain is complete "
                            f"({len(state.pets)} of {state.roster.needed} steps)")
    if len(e.shares) != state.n_pet:
        raise ProtocolError(f"gate shares from node {n}: {len(e.shares)} shares for "
                            f"the {state.n_pet} ciphertexts of the PET chain")
    return replace(state, gates=state.gates + ((n, index),))


def _release(state: QueryState, e: ReleaseEntry) -> QueryState:
    if not state.gates_required:
        raise ProtocolError(f"release decision, but query {state.query_id} has no gate "
                            "entries")
    if state.phase in _BEFORE_AGGREGATE:
        raise ProtocolError("release decision before the aggregate")
    if state.released:
        raise ProtocolError("release: duplicate release decision")
    _named_share_nodes(state, e.decryptors, state.gated, "release decision", "gate node(s)",
                       "node(s)", "gate shares")
    if state.n_ciphertexts is not None and e.ciphertexts > state.n_ciphertexts:
        raise ProtocolError(f"release decision of {e.ciphertexts} ciphertexts; the aggregate "
                            f"has {state.n_ciphertexts}")
    return replace(state, released=True, n_released=e.ciphertexts)


def _named_share_nodes(state: QueryState, names: Sequence[str], logged: Iterable[str],
                       what: str, counted: str, unknown_noun: str, shares: str) -> None:
    """A release decision or a result names exactly ``T`` nodes, each of which logged its
    (gate or decryption) shares."""
    if len(names) != state.roster.needed:
        raise ProtocolError(f"{what} names {len(names)} {counted}; the threshold is "
                            f"{state.roster.needed}")
    have = set(logged)
    unknown = [n for n in names if n not in have]
    if unknown:
        raise ProtocolError(f"{what} names {unknown_noun} {', '.join(unknown)}, which logged "
                            f"no {shares}")


def _result(state: QueryState, e: ResultEntry) -> QueryState:
    if state.phase in (Phase.RELEASED, Phase.ENDORSED):
        raise ProtocolError("result: duplicate result")
    if state.gates_required and state.released and state.n_released == 0:
        # every entry withheld (suppression before decryption): nothing was decrypted
        if e.decryptors or e.totals:
            raise ProtocolError("result: the release decision withholds every entry; the "
                                "result names no decrypting node and publishes no total")
        digest = e.digest() if e.sig is not None else None
        return replace(state, phase=Phase.RELEASED, result_digest=digest)
    if state.phase is not Phase.DECRYPTED:
        missing = [n for n in state.roster.compute if n not in state.decrypted]
        raise ProtocolError(f"result before {state.roster.needed} decryptions (none yet from "
                            f"{', '.join(missing)}; phase {state.phase.value})")
    _named_share_nodes(state, e.decryptors, state.decrypted, "result",
                       "decrypting node(s)", "decrypting node(s)", "decryption shares")
    digest = e.digest() if e.sig is not None else None
    return replace(state, phase=Phase.RELEASED, result_digest=digest)


def _endorsement(state: QueryState, e: EndorsementEntry, index: int | None) -> QueryState:
    p = e.provider
    if p not in state.roster.providers:
        raise ProtocolError(f"endorsement from unknown provider {p}")
    if state.phase not in (Phase.RELEASED, Phase.ENDORSED):
        raise ProtocolError(f"endorsement from provider {p} before the result "
                            f"(phase {state.phase.value})")
    if p not in state.submitted:
        raise ProtocolError(f"endorsement from provider {p}, which did not submit")
    if p in state.endorsed:
        raise ProtocolError(f"duplicate endorsement from provider {p}")
    if state.result_digest is None or e.result_digest != state.result_digest:
        raise ProtocolError(f"endorsement from provider {p} names result digest "
                            f"{e.result_digest}, not the released result's")
    ends = state.endorsements + ((p, index),)
    done = len(ends) == len(state.submitted)
    return replace(state, phase=Phase.ENDORSED if done else Phase.RELEASED, endorsements=ends)


def expected_next(state: QueryState) -> list[tuple[str, str | None]]:
    """What the machine would accept next: ``(kind, party or None)`` pairs.

    Before the aggregate: a submission from every roster provider that has not submitted;
    for DP queries a ``noise_commit`` from every node without one while no coin share is
    logged, and a ``noise_coin`` from every node without one once ``T`` commitments are; and
    ``("aggregate", None)`` once its preconditions hold.  Then one decryption per missing
    node, the result, and one endorsement per submitting provider not yet endorsed.  Empty
    once ``endorsed``.
    """
    ph = state.phase
    out: list[tuple[str, str | None]] = []
    if ph in _BEFORE_AGGREGATE and state.vertical_authors is not None:
        pos = len(state.vertical)
        if pos < len(VERTICAL_ORDER):
            out.append((VERTICAL_ORDER[pos], state.vertical_authors[pos]))
        else:
            out.append(("aggregate", None))
    elif ph in _BEFORE_AGGREGATE:
        out += [("submission", p) for p in state.roster.providers if p not in state.submitted]
        if state.noise_required:
            if not state.noise_coins:
                out += [("noise_commit", n) for n in state.roster.compute
                        if n not in state.committed]
            if len(state.noise_commits) >= state.roster.needed:
                out += [("noise_coin", n) for n in state.roster.compute
                        if n not in state.coined]
        noise_ok = (not state.noise_required
                    or len(state.noise_coins) >= state.roster.needed)
        if len(state.submissions) >= state.min_providers and noise_ok:
            out.append(("aggregate", None))
    elif (ph is Phase.AGGREGATED and state.gates_required and not state.released
          and len(state.pets) < state.roster.needed):
        chained = {p for p, _ in state.pets}
        out += [("pet", n) for n in state.roster.compute if n not in chained]
    elif ph is Phase.AGGREGATED and state.gates_required and not state.released:
        out += [("gate", n) for n in state.roster.compute if n not in state.gated]
        if len(state.gates) >= state.roster.needed:
            out.append(("release", None))
    elif ph in (Phase.AGGREGATED, Phase.DECRYPTING):
        out += [("decryption", n) for n in state.roster.compute if n not in state.decrypted]
    elif ph is Phase.DECRYPTED:
        out += [("decryption", n) for n in state.roster.compute if n not in state.decrypted]
        out.append(("result", None))
    elif ph is Phase.RELEASED:
        out += [("endorsement", p) for p in state.submitted if p not in state.endorsed]
    return out


def replay(entries: Sequence[Entry], roster: Roster, *,
           indices: Sequence[int] | None = None,
           min_providers: int | None = None,
           noise_required: bool | None = None) -> QueryState:
    """Fold :func:`advance` over one query's entries (the first must be its query entry).

    ``indices`` are the entries' log indices (default: their positions 0, 1, ...).
    """
    if not entries:
        raise ProtocolError("replay: no entries")
    if indices is None:
        indices = range(len(entries))
    if len(indices) != len(entries):
        raise ProtocolError("replay: indices and entries differ in length")
    first = entries[0]
    if not isinstance(first, QueryEntry):
        raise ProtocolError(f"{_kind(first)} entry{_fmt(first.claimed_author())} before the "
                            "query entry")
    state = start(first, roster, min_providers=min_providers, noise_required=noise_required)
    for e, i in zip(entries[1:], indices[1:], strict=True):
        state = advance(state, e, i)
    return state
