"""Steps 6 and 8-15 of docs/verification.md over the entries of one query.

One function per numbered step, ``step_N_name(ctx) -> str`` (the detail line of the report),
run in order from the table :data:`STEPS` by :func:`run_steps`; a new step is added by
extending the table.  Step 5 is :func:`statledger.protocol.view.parse_entries`; step 7 (the
witness quorum on a checkpoint) needs the ledger's signed notes, so the verifier inserts it
into the table (:mod:`statledger.verifier.checks`).

:func:`check_query` is used by the certificate verifier, by the log auditor and by the parties
themselves (a compute node checks steps 5-11 before it decrypts; a data owner checks 5-14
before it endorses a result).  Every failure raises :class:`VerificationError` with
``step="step N"`` and the party blamed; a step that finds an entry it needs absent from the
log (no aggregate, a node's decryption shares, no result, an owner's endorsement) raises the
subclass :class:`MissingEntryError`, so that an auditor can tell a query that stopped early
from a query that is wrong.

Step 11 carries the rule on the number of providers (:data:`MIN_PROVIDERS_FLOOR`,
:func:`check_min_providers`), which compute nodes also apply before they decrypt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import DecryptionError, MalformedError, VerificationError
from statledger.proofs.group import Point
from statledger.proofs.onehot import OneHotProof
from statledger.proofs.vector import EncryptedVector, verify_encrypted_vectors_batch
from statledger.protocol import (
    calibration,
    ceremony,
    chain,
    flow,
    noise,
    pet,
    suppression,
    validity,
    vertical,
)
from statledger.protocol.consortium import Member, RosterTimeline
from statledger.protocol.entries import (
    VERTICAL_KINDS,
    AggregateEntry,
    DecryptionEntry,
    Entry,
    GateEntry,
    NoiseCommitEntry,
    QueryEntry,
    ResultEntry,
    SetupEntry,
    VerticalBlockEntry,
    VerticalProductsEntry,
    VerticalRowsEntry,
    result_digest,
    verify_signature,
)
from statledger.protocol.noise import CoinShare, NoiseCommitment, NoiseParams
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.base import Statistic
from statledger.protocol.view import PARSE_STEP, QueryView, fail

__all__ = [
    "MIN_PROVIDERS_FLOOR",
    "MissingEntryError",
    "NOISE_STEPS",
    "NoiseRound",
    "STEPS",
    "STEP_NAMES",
    "Step",
    "StepContext",
    "StepHook",
    "check_addressed",
    "check_min_providers",
    "check_release",
    "check_pet_chain",
    "check_query",
    "check_setup",
    "key_chain",
    "results_match",
    "run_steps",
    "step_6_roster",
    "step_8_query",
    "step_9_submissions",
    "step_10_noise",
    "step_11_aggregate",
    "step_12_decryption",
    "step_13_totals",
    "step_14_result",
    "step_15_endorsements",
]

StepHook = Callable[[int, str], None]

#: An aggregate combines at least this many distinct providers, whatever the query's
#: ``min_providers`` says: one submission presented as an aggregate would be decrypted alone.
MIN_PROVIDERS_FLOOR = 2

Ranges = list[tuple[int, int]]


class MissingEntryError(VerificationError):
    """A step needs an entry that is not on the log (yet): the query stopped before it."""


def _missing(step: int, reason: str, party: str | None = None) -> MissingEntryError:
    return MissingEntryError(reason, step=f"step {step}", party=party)


@dataclass
class StepContext:
    """What the steps of one run share: the view and what earlier steps computed."""

    view: QueryView
    verify_range_proofs: bool = True
    #: the consortium id this party or verifier pins (None: self-asserted by the genesis)
    pinned: str | None = None
    #: (8) the provider running the steps before it contributes (it counts as a contributor:
    #: the previous result a chained round rests on must carry its endorsement)
    contributor: str | None = None
    #: (6) the roster at every log index, replayed from the genesis
    roster: RosterTimeline | None = None
    #: (6) the compute nodes' verification keys ``Y_j`` (re-derived from the key ceremony),
    #: in the setup entry's order
    keys: list[Point] = field(default_factory=list)
    #: (6) every key epoch up to the one in force (the setup, then each rekey), re-derived
    key_epochs: list[ceremony.KeyEpoch] = field(default_factory=list)
    #: (9) the statistic and its public ranges
    stat: Statistic | None = None
    ranges: Ranges = field(default_factory=list)
    #: (9, 10) every decoded contribution by log index: (author, vector, ranges)
    #: (a noise share: derived from its commitment and the coins, with its NoiseRanges)
    contributions: dict[int, tuple[str, EncryptedVector | flow.DerivedShare, Ranges]] = field(
        default_factory=dict)
    #: (10) the DP noise round (its set, coin and parameters), None without DP
    noise: NoiseRound | None = None
    #: (11) the recomputed aggregate (limb-wise), flattened, and its contributions' ranges
    aggregate: list[list[Ciphertext]] = field(default_factory=list)
    recomputed: list[Ciphertext] = field(default_factory=list)
    aggregate_ranges: list[tuple[tuple[int, int], ...]] = field(default_factory=list)
    #: (12) the decryption shares of each node of ``decryptors``, in that order
    shares_by_node: list[list[Point]] = field(default_factory=list)
    #: (12) the T nodes whose shares are combined, sorted
    decryptors: list[str] = field(default_factory=list)
    #: (12) the layout positions decrypted (all of them unless the statistic has gates:
    #: protocol/suppression.py), each with its release group's members (the position
    #: alone unless the statistic merges entries), and the released sub-aggregate, flattened
    released: list[int] = field(default_factory=list)
    release_groups: list[tuple[int, ...]] = field(default_factory=list)
    released_cts: list[Ciphertext] = field(default_factory=list)
    #: (9) a vertical query's decoded owner entries: rows, products, block (None until
    #: logged); (11) what its aggregate decrypts (protocol/vertical.py)
    vertical_entries: tuple[vertical.VerticalRows | None, vertical.VerticalProducts | None,
                            EncryptedVector | None] = (None, None, None)
    vertical_release: vertical.Release | None = None

    # Accessors for what an earlier step established (each raises, never asserts).
    def setup(self) -> SetupEntry:
        if self.view.setup is None:
            raise fail(6, "no setup entry")
        return self.view.setup

    def timeline(self) -> RosterTimeline:
        if self.roster is None:
            raise fail(6, "the roster was not derived (step 6)")
        return self.roster

    def query(self) -> QueryEntry:
        if self.view.query is None:
            raise fail(8, "no query entry")
        return self.view.query

    def spec(self) -> QuerySpec:
        if self.view.spec is None:
            raise fail(8, "the query spec was not checked (step 8)")
        return self.view.spec

    def statistic(self) -> Statistic:
        if self.stat is None:
            raise fail(9, "the statistic was not resolved (step 9)")
        return self.stat

    def aggregate_entry(self) -> tuple[int, AggregateEntry]:
        if self.view.aggregate is None:
            raise _missing(11, "no aggregate entry", self.query().querier)
        return self.view.aggregate

    def result_entry(self) -> tuple[int, ResultEntry, bytes]:
        if self.view.result is None:
            raise _missing(13, "no result entry", self.query().querier)
        return self.view.result


def _member(ctx: StepContext, index: int | None, party_id: str, role: str,
            step: int) -> Member:
    """The consortium member ``party_id`` of ``role`` in force for an entry at log ``index``
    (a key revoked before the entry, or admitted after it, signs nothing valid)."""
    if index is None:
        raise fail(step, f"an entry by {party_id} has no log index", party_id)
    try:
        return ctx.timeline().at(index).member(party_id, role, step=f"step {step}")
    except VerificationError as exc:
        raise fail(step, f"entry {index}: {exc.reason}", party_id) from None


def _signed(ctx: StepContext, index: int | None, entry: Entry, author: str, role: str,
            step: int) -> None:
    """``entry`` (at ``index``) is signed by ``author``, a member of ``role`` at that point."""
    key = _member(ctx, index, author, role, step).verify_key()
    verify_signature(entry, key, author, step=f"step {step}")


def _batch_verify(
    batch: list[tuple[Point, EncryptedVector, Ranges, bytes]], parties: list[str], step: int
) -> None:
    try:
        verify_encrypted_vectors_batch(batch, parties)
    except VerificationError as exc:
        raise fail(step, f"range proof: {exc.reason}", exc.party) from None


# -- the steps --------------------------------------------------------------------------------


def step_6_roster(ctx: StepContext) -> str:
    """(6) Consortium and roster: the genesis (entry 0) signed by every founding member -- the
    pinned one, if a consortium id is pinned; the membership chain replayed from it; each
    ``party`` entry signed with the key the roster admitted at its index; the setup signed by
    the log, of this consortium, listing exactly the roster's compute nodes and its decryption
    threshold; their transport keys proven (bound to the consortium); the key ceremony's
    ``dkg_*`` entries signed by their nodes and re-derived (protocol/ceremony.py): the setup's
    collective key ``Y`` and every verification key ``Y_j`` are the ceremony's."""
    view = ctx.view
    if view.genesis is None:
        raise fail(6, "no genesis entry (entry 0 of the log)", "ledger")
    signed = view.genesis.signed_genesis()
    try:
        signed.verify(ctx.pinned)
    except VerificationError as exc:
        raise fail(6, exc.reason, exc.party or signed.genesis.ledger.party_id) from None
    log = signed.genesis.ledger
    log_key = log.verify_key()
    verify_signature(view.genesis, log_key, log.party_id, step="step 6")
    for _, m in view.memberships:
        verify_signature(m, log_key, log.party_id, step="step 6")
    try:
        ctx.roster = timeline = RosterTimeline.derive(
            signed, [(i, m.change()) for i, m in view.memberships])
    except VerificationError as exc:
        raise fail(6, f"membership chain: {exc.reason}", exc.party) from None
    cid = timeline.consortium_id
    for pid, p in view.parties.items():
        index = view.party_index[pid]
        member = _member(ctx, index, pid, p.role, 6)
        if member.sig_key != p.sig_key:
            raise fail(6, f"the party entry of {pid} carries a key the consortium did not "
                          "admit", pid)
        verify_signature(p, member.verify_key(), pid, step="step 6")
    setup = ctx.setup()
    first_index, first = view.setups[0]
    chain_upto = [(i, e) for i, e in view.setups if i <= (view.setup_index or 0)]
    for _, key_entry in chain_upto:
        verify_signature(key_entry, log_key, log.party_id, step="step 6")
    try:  # (the names first: a node that is no member has no registered key to look for)
        ceremony.check_setup_fields(first, timeline.at(first_index), cid, log=log.party_id)
    except VerificationError as exc:
        raise fail(6, exc.reason, exc.party) from None
    transport: dict[str, Point] = {}
    for node in first.compute:
        share = view.parties.get(node)
        if share is None or view.party_index[node] > first_index:
            raise fail(6, f"{node} registered no key before the setup", node)
        share.verify_pok(cid, step="step 6")
        transport[node] = share.elgamal_point()
    rows = [(i, e) for i, e in view.dkg if i < (view.setup_index or 0)]
    for i, e in rows:
        _signed(ctx, i, e, e.claimed_author() or "", "compute", 6)
    try:
        epochs = ceremony.check_key_chain(chain_upto, rows, timeline, transport,
                                          log=log.party_id)
    except VerificationError as exc:
        raise fail(6, exc.reason, exc.party) from None
    result = epochs[-1].result
    keys = setup.verification_points()
    ctx.key_epochs = epochs
    ctx.keys = keys
    final = timeline.final
    return (f"consortium {cid[:16]}... ({'pinned' if ctx.pinned else 'self-asserted'}), "
            f"{len(view.memberships)} membership change(s), {len(final.members)} members; "
            f"key ceremony of {len(keys)} compute nodes re-derived ({setup.threshold}-of-"
            f"{len(keys)}, {len(result.qual)} qualified dealers"
            + (f"; key epoch {len(epochs)}: {len(epochs) - 1} resharing(s) re-derived"
               if len(epochs) > 1 else "")
            + (f", disqualified: {', '.join(sorted(result.disqualified))}"
               if result.disqualified else "") + ")")


def step_8_query(ctx: StepContext) -> str:
    """(8) The query: signed by a querier of the consortium; id = hash of the canonical spec
    and the querier (checked when the entry was decoded); every other entry is about this
    query."""
    view = ctx.view
    q = ctx.query()
    _signed(ctx, view.query_index, q, q.querier, "querier", 8)
    spec = q.query_spec()
    for kind, items in (("submission", view.submissions), ("noise", view.noise),
                        ("pet", view.pets), ("gate", view.gates),
                        ("decryption", view.decryptions),
                        ("endorsement", view.endorsements), ("vertical", view.vertical)):
        for index, e in items:
            if e.query_id != q.query_id:
                raise fail(8, f"{kind} entry {index} belongs to query {e.query_id}",
                           e.claimed_author())
    if view.aggregate is not None and view.aggregate[1].query_id != q.query_id:
        raise fail(8, "the aggregate belongs to another query", q.querier)
    if view.result is not None and view.result[1].query_id != q.query_id:
        raise fail(8, "the result belongs to another query", q.querier)
    if view.release is not None and view.release[1].query_id != q.query_id:
        raise fail(8, "the release decision belongs to another query", q.querier)
    # a chained round (IRLS): beta is the previous round's published beta_next
    if view.previous_query is not None:
        pi, pq = view.previous_query
        _signed(ctx, pi, pq, pq.querier, "querier", 8)
    if view.previous_result is not None and view.previous_query is not None:
        ri, pr, _ = view.previous_result
        _signed(ctx, ri, pr, view.previous_query[1].querier, "querier", 8)
    chained = chain.check_chain(spec, q.querier, view.previous_query, view.previous_result)
    # ... and that result is established: endorsed by every owner that contributes here
    for ei, en in view.previous_endorsements:
        _signed(ctx, ei, en, en.provider, "provider", 8)
    contributors = view.contributors() | ({ctx.contributor} if ctx.contributor else set())
    established = chain.check_established(
        q.querier, view.previous_query, view.previous_result, view.previous_endorsements,
        query_index=view.query_index, contributors=contributors, floor=MIN_PROVIDERS_FLOOR)
    view.spec = spec
    return (f"query {q.query_id[:16]}... ({spec.statistic}) by {q.querier}"
            + (f"; {chained}" if chained else "")
            + (f"; {established}" if established else ""))


def check_addressed(spec: QuerySpec, provider: str, index: int | None = None) -> None:
    """(9) A pull-mode query (docs/owners.md) takes submissions only from the owners it
    addresses.  The one rule for the ledger's append check and verification step 9."""
    if spec.pull is not None and not spec.pull.addresses(provider):
        where = "a submission" if index is None else f"submission {index}"
        raise fail(9, f"{where} by {provider}, whom the pull query does not address",
                   provider)


def step_9_submissions(ctx: StepContext) -> str:
    """(9) Submissions: signed, one per provider, addressed (pull mode), decodable, range
    proofs valid (all of them in one batched check), and one-hot proofs valid when the query
    asks for them (one-record owners, protocol/validity.py; one batched check)."""
    view, spec = ctx.view, ctx.spec()
    ctx.stat = get_statistic(spec.statistic)
    ctx.ranges = ranges = list(calibration.wire_layout(spec).ranges)
    X = ctx.setup().collective_point()
    if vertical.is_vertical(spec) or view.vertical:
        return _vertical_entries(ctx, X)
    seen: set[str] = set()
    batch: list[tuple[Point, EncryptedVector, Ranges, bytes]] = []
    onehots: list[tuple[str, EncryptedVector, OneHotProof | None, bytes]] = []
    parties: list[str] = []
    for index, s in view.submissions:
        _signed(ctx, index, s, s.provider, "provider", 9)
        if s.provider in seen:
            raise fail(9, f"provider {s.provider} submitted twice", s.provider)
        seen.add(s.provider)
        check_addressed(spec, s.provider, index)
        try:
            ev, onehot = validity.decode_submission(spec, s, ranges)
        except MalformedError as exc:
            raise fail(9, f"submission {index}: {exc}", s.provider) from None
        ctx.contributions[index] = (s.provider, ev, ranges)
        sub_ctx = flow.submission_context(ctx.query().query_id, s.provider)
        batch.append((X, ev, ranges, sub_ctx))
        onehots.append((s.provider, ev, onehot, sub_ctx))
        parties.append(s.provider)
    if ctx.verify_range_proofs and batch:
        _batch_verify(batch, parties, 9)
        try:  # one-record owners of a one-hot statistic (protocol/validity.py)
            validity.verify_onehot_submissions(spec, X, onehots)
        except VerificationError as exc:
            raise fail(9, f"one-hot proof: {exc.reason}", exc.party) from None
    return (f"{len(view.submissions)} submissions"
            + (", every value proven in range" if ctx.verify_range_proofs else
               " (range proofs not re-checked here)"))


def _vertical_entries(ctx: StepContext, X: Point) -> str:
    """(9) of a vertical query (protocol/vertical.py): no submissions; the owner entries
    present are a prefix of rows (owner A), products (owner B), block (owner A) in log
    order, each signed by its owner and decoded strictly; every proof of those present
    verifies (:func:`statledger.protocol.vertical.verify_vertical`, the check owner B and
    every compute node run before they act on them)."""
    view, spec, qid = ctx.view, ctx.spec(), ctx.query().query_id
    if not vertical.is_vertical(spec):
        index, e = view.vertical[0]
        raise fail(9, f"entry {index}: a {e.KIND} entry for a query that is not vertical",
                   e.claimed_author())
    if view.submissions:
        index, s = view.submissions[0]
        raise fail(9, f"submission {index} for a vertical query (its owners publish "
                      "vertical entries)", s.provider)
    plan = vertical.VerticalPlan.of(spec)
    owners = (plan.part.a, plan.part.b, plan.part.a)
    decoded: list[Any] = [None, None, None]
    for pos, (index, e) in enumerate(view.vertical):
        if pos >= len(VERTICAL_KINDS) or e.KIND != VERTICAL_KINDS[pos]:
            raise fail(9, f"entry {index}: a {e.KIND} entry out of order (rows, products, "
                          "block)", e.claimed_author())
        author = str(e.claimed_author())
        if author != owners[pos]:
            raise fail(9, f"entry {index}: a {e.KIND} entry by {author}, not by "
                          f"{owners[pos]}", author)
        _signed(ctx, index, e, author, "provider", 9)
        try:
            if isinstance(e, VerticalRowsEntry):
                decoded[pos] = e.decode_rows(spec)
            elif isinstance(e, VerticalProductsEntry):
                decoded[pos] = e.decode_products(spec)
            elif isinstance(e, VerticalBlockEntry):
                decoded[pos] = e.decode_block(spec)
        except MalformedError as exc:
            raise fail(9, f"{e.KIND} entry {index}: {exc}", author) from None
    rows, prods, block = decoded
    ctx.vertical_entries = (rows, prods, block)
    if rows is not None and ctx.verify_range_proofs:
        try:
            vertical.verify_vertical(spec, qid, X, rows, prods, block)
        except VerificationError as exc:
            raise fail(9, f"{exc.step}: {exc.reason}", exc.party) from None
    return (f"vertical query: {len(view.vertical)} of 3 owner entries"
            + (", every proof valid" if ctx.verify_range_proofs else
               " (proofs not re-checked here)"))


@dataclass(frozen=True)
class NoiseRound:
    """What step 10 established about a DP query's noise (docs/noise.md): the public
    parameters, the threshold ``T``, the noise set ``S`` -- ``(log index of its noise_commit
    entry, node)`` in ``setup.compute`` order, with the verified commitments in that order --
    its coin base ``P`` (None while ``S`` is empty), the valid coin shares in log order, and
    the coin seed once ``T`` of them are logged (None before)."""

    params: NoiseParams
    threshold: int
    members: tuple[tuple[int, str], ...]
    commitments: tuple[NoiseCommitment, ...]
    base: Point | None
    coins: tuple[tuple[int, CoinShare], ...]
    seed: bytes | None

    @property
    def indices(self) -> list[int]:
        """The log indices of S's commitments, increasing (what the aggregate lists)."""
        return sorted(i for i, _ in self.members)


def _noise_round(ctx: StepContext, params: NoiseParams) -> NoiseRound:
    """(10) Every noise entry by a compute node and signed; the noise set ``S`` (the
    commitments before the first coin share, at most one per node), its bit proofs (one
    batched check), ``|S| >= T`` once a coin share closed it, and every coin share's DLEQ
    against its node's key ``ctx.keys[i]`` for the coin base of ``S`` (at most one per node)."""
    view, setup, qid = ctx.view, ctx.setup(), ctx.query().query_id
    if len(ctx.keys) != len(setup.compute):
        raise fail(10, "the compute nodes' keys were not derived (step 6)")
    for index, e in view.noise:
        if e.node not in setup.compute:
            raise fail(10, f"noise entry {index} by {e.node}, not a compute node", e.node)
        _signed(ctx, index, e, e.node, "compute", 10)
    t = flow.decryption_threshold(setup)
    in_set: dict[str, tuple[int, NoiseCommitEntry]] = {}
    for index, c in flow.noise_set(view.noise_commits, view.noise_coins):
        if c.node in in_set:
            raise fail(10, f"node {c.node} logged two noise commitments", c.node)
        in_set[c.node] = (index, c)
    members = tuple((in_set[n][0], n) for n in setup.compute if n in in_set)
    commitments: list[NoiseCommitment] = []
    for index, node in members:
        try:
            commitments.append(in_set[node][1].decode_commitment(params))
        except MalformedError as exc:
            raise fail(10, f"noise commitment {index}: {exc}", node) from None
    if ctx.verify_range_proofs and commitments:
        try:
            noise.verify_commitments_batch(setup.collective_point(), params, qid, commitments)
        except VerificationError as exc:
            raise fail(10, f"noise commitment: {exc.reason}", exc.party) from None
    coins_logged = sorted(view.noise_coins, key=lambda item: item[0])
    if coins_logged and len(members) < t:
        first_index, first = coins_logged[0]
        raise fail(10, f"the first coin share (entry {first_index}) closed a noise set of "
                       f"{len(members)} commitment(s); at least {t} are needed", first.node)
    base = flow.noise_coin_base(params, qid, commitments) if commitments else None
    coins: list[tuple[int, CoinShare]] = []
    coined: set[str] = set()
    for index, e in coins_logged:
        if e.node in coined:
            raise fail(10, f"node {e.node} logged two coin shares", e.node)
        coined.add(e.node)
        if base is None:  # pragma: no cover - |S| >= T >= 1 was required above
            raise fail(10, "a coin share for an empty noise set", e.node)
        share = e.decode_share()
        try:
            noise.verify_coin_share(ctx.keys[setup.compute.index(e.node)], base, share, qid)
        except VerificationError as exc:
            raise fail(10, f"coin share (entry {index}): {exc.reason}", e.node) from None
        coins.append((index, share))
    seed = None
    if len(coins) >= t and base is not None:
        seed = flow.noise_seed(setup, base, [s for _, s in coins[:t]])
    return NoiseRound(params, t, members, tuple(commitments), base, tuple(coins), seed)


def step_10_noise(ctx: StepContext) -> str:
    """(10) DP noise (docs/noise.md), iff the query asks for DP: every noise entry signed by a
    compute node; the noise set ``S`` = the commitments logged before the first coin share
    (one per node, ``|S| >= T``), each commitment's proof that it encrypts bits (batched);
    every coin share's DLEQ against its node's key for ``P`` = the coin base of ``S``; the
    coin = the first ``T`` coin shares combined; each share of ``S`` derived from its bits
    XOR its coins (``ctx.contributions``); the parameters meet the query's ``rho``."""
    view, spec, setup = ctx.view, ctx.spec(), ctx.setup()
    qid = ctx.query().query_id
    ctx.noise = None
    rho = flow.privacy_rho(spec)
    if rho is None:
        if view.noise:
            raise fail(10, "noise entries for a query without DP", view.noise[0][1].node)
        return "no DP requested"
    try:  # the querier's parameters, carried by every commitment, checked (one bound)
        params = flow.logged_noise_params(spec, setup, view.noise_commits)
    except VerificationError as exc:
        raise fail(10, exc.reason, exc.party) from None
    if params is None:
        if view.noise_coins or view.aggregate is not None:
            raise fail(10, "no noise commitment before the coin shares or the aggregate",
                       ctx.query().querier)
        return "noise round not started"
    rnd = ctx.noise = _noise_round(ctx, params)
    if rnd.seed is None:
        if view.aggregate is not None:
            raise fail(10, f"the aggregate was logged before the noise round completed "
                           f"({len(rnd.members)} commitment(s), {len(rnd.coins)} of the "
                           f"{rnd.threshold} coin shares needed)", ctx.query().querier)
        return (f"noise round in progress: {len(rnd.members)} commitment(s) and "
                f"{len(rnd.coins)} of the {rnd.threshold} coin shares needed, all valid")
    for position, ((index, node), com) in enumerate(
            zip(rnd.members, rnd.commitments, strict=True)):
        share = flow.derive_noise_share(params, qid, com, rnd.seed, position)
        ctx.contributions[index] = (node, share.vector, list(share.ranges))
    bound = flow.noise_bound(params, tuple(flow.privacy_profile(spec)))
    k = len(rnd.members)
    offsets = sum(flow.noise_offset(params, p) for p in range(k))
    mean = Fraction(k * params.share_max, 2) - offsets
    return (f"DP noise of a set of {k} compute nodes (closed by entry {rnd.coins[0][0]}), "
            f"each share derived from its committed bits XOR a {rnd.threshold}-of-"
            f"{len(setup.compute)} threshold coin ({params.bits_per_entry} bits per entry: "
            f"m={params.uniform_bits}, s={params.summands}, r={params.summand_bits}); "
            f"one honest node among them gives rho <= {bound.rho:.6g} (asked {float(rho):.6g})"
            f", delta <= {bound.delta:.3g}; noise mean {mean} unit")


def check_min_providers(view: QueryView) -> None:
    """(11) The aggregate combines at least ``max(MIN_PROVIDERS_FLOOR, spec.min_providers)``
    distinct providers.  The one rule for every party: step 11 of every verification and a
    compute node before it decrypts."""
    if view.spec is None or view.query is None:
        raise fail(11, "no checked query: cannot count the providers it needs")
    distinct = len(view.contributors())
    wanted = view.spec.min_providers
    need = max(MIN_PROVIDERS_FLOOR, wanted)
    if distinct < need:
        reason = f"{distinct} providers, the query needs at least {need}"
        if wanted < MIN_PROVIDERS_FLOOR:
            reason += (f" (its min_providers {wanted} is below the floor of "
                       f"{MIN_PROVIDERS_FLOOR} distinct providers)")
        raise fail(11, reason, view.query.querier)


def step_11_aggregate(ctx: StepContext) -> str:
    """(11) Aggregate: signed by the querier, lists exactly the certificate's contributions,
    enough distinct providers, recomputed."""
    view = ctx.view
    querier = ctx.query().querier
    agg_index, agg = ctx.aggregate_entry()
    # The aggregate is recomputed below, but it is still the querier's signed statement: an
    # unchecked signature would be a field anyone (the log operator) could change.
    _signed(ctx, agg_index, agg, querier, "querier", 11)
    if vertical.is_vertical(ctx.spec()):
        return _vertical_aggregate(ctx, agg)
    if sorted(agg.submissions) != sorted(i for i, _ in view.submissions):
        raise fail(11, "the aggregate does not list exactly the submissions", querier)
    if sorted(agg.noise) != (ctx.noise.indices if ctx.noise is not None else []):
        raise fail(11, "the aggregate does not list exactly the noise set's commitments",
                   querier)
    check_min_providers(view)
    order = list(agg.submissions) + list(agg.noise)
    contributions = [flow.Contribution(ctx.contributions[i][1], tuple(ctx.contributions[i][2]))
                     for i in order]
    ctx.aggregate = flow.aggregate(contributions)
    ctx.aggregate_ranges = [c.ranges for c in contributions]
    ctx.recomputed = flow.flatten(ctx.aggregate)
    if ctx.recomputed != agg.decode_ciphertexts():
        raise fail(11, "the logged aggregate is not the sum of the contributions", querier)
    return (f"aggregate of {len(view.submissions)} providers recomputed "
            f"({len(ctx.recomputed)} ciphertexts)")


def _vertical_aggregate(ctx: StepContext, agg: AggregateEntry) -> str:
    """(11) of a vertical query: the aggregate lists exactly the three owner entries and
    holds exactly :func:`statledger.protocol.vertical.release_ciphertexts` of them (sums
    over the joined rows only), which needs ``n >= min_cell_size`` joined rows."""
    view, spec, querier = ctx.view, ctx.spec(), ctx.query().querier
    rows, prods, block = ctx.vertical_entries
    if rows is None or prods is None or block is None:
        raise _missing(11, f"{len(view.vertical)} of the 3 owner entries of a vertical query",
                       querier)
    if sorted(agg.submissions) != sorted(i for i, _ in view.vertical):
        raise fail(11, "the aggregate does not list exactly the vertical entries", querier)
    if agg.noise:
        raise fail(11, "the aggregate of a vertical query lists noise entries", querier)
    check_min_providers(view)
    release = vertical.release_ciphertexts(spec, rows, prods, block)
    if release.n < spec.min_cell_size:
        # owner B's support rule refuses this before it logs its products
        raise fail(11, "fewer joined rows than min_cell_size", str(view.vertical[1][1]
                                                                    .claimed_author()))
    ctx.vertical_release = release
    ctx.aggregate = [[ct] for ct in release.ciphertexts]
    ctx.aggregate_ranges = []
    ctx.recomputed = list(release.ciphertexts)
    if ctx.recomputed != agg.decode_ciphertexts():
        raise fail(11, "the logged aggregate is not the release of the vertical entries",
                   querier)
    return (f"vertical aggregate of 2 owners recomputed ({len(ctx.recomputed)} ciphertexts "
            "over the joined rows)")


def _compute_share_entry(ctx: StepContext, index: int, e: GateEntry | DecryptionEntry,
                         what: str, seen: Mapping[str, object]) -> None:
    """(12) What a gate and a decryption entry share: by a compute node of the setup,
    signed by it (admitted at that index), and its only entry of that kind."""
    if e.node not in ctx.setup().compute:
        raise fail(12, f"{what} entry {index} by {e.node}, not a compute node", e.node)
    _signed(ctx, index, e, e.node, "compute", 12)
    if e.node in seen:
        raise fail(12, f"node {e.node} sent two {what} entries", e.node)


def check_pet_chain(ctx: StepContext, *, complete: bool,
                    known: set[tuple[str, int, str]] | None = None) -> list[list[Ciphertext]]:
    """(12, PET) The blinded shuffled PET chain of a gated query (protocol/pet.py): the
    ``pet`` entries in log order, each signed by a distinct compute node, at most ``T`` of
    them, each a proven blinding (non-zero exponent per ciphertext, the same on both
    components) and shuffle of the previous entry's outputs -- the candidates ``Enc(n - j)``
    re-derived from the aggregate for the first.  ``complete``: exactly ``T`` entries are
    required (a missing step raises :class:`MissingEntryError`).  Returns the last outputs,
    per gate cell (the candidates when the chain is empty).  The one rule: step 12 and a
    compute node before it adds its own step, its gate shares and its decryption.

    The proofs of every cell of every step not yet verified are checked together, as one
    random linear combination (:func:`statledger.protocol.pet.verify_cells`); a failure
    names the entry, the cell and the ciphertext (or the shuffle), and an earlier step's
    bad proof is named before a later step's other fault, as when steps were checked in
    turn.

    ``known`` (a compute node's memory): ``(inputs, log index, entry digest)`` of steps
    whose proofs this party already verified, ``inputs`` naming what the step blinded: the
    aggregate's digest for the first step, ``"{aggregate digest}:{index}:{digest}"`` of the
    previous step otherwise (a ledger that hides an earlier step from the query's index
    changes a step's inputs, and so its key); their proofs are not re-verified, everything
    else is; newly verified steps are added."""
    view, setup, qid = ctx.view, ctx.setup(), ctx.query().query_id
    spec = ctx.spec()
    if not ctx.aggregate:
        raise fail(12, "no recomputed aggregate (step 11)")
    current = suppression.pet_inputs(spec, ctx.aggregate, ctx.aggregate_ranges)
    t = flow.decryption_threshold(setup)
    agg_index, agg_entry = ctx.aggregate_entry()
    agg_digest = agg_entry.digest()
    seen: set[str] = set()
    X = setup.collective_point()
    pending: list[pet.PetCheck] = []
    new_keys: list[tuple[str, int, str]] = []
    inputs_of = agg_digest  # what the next step's inputs are (see ``known``)

    def verify_pending() -> None:
        pet.verify_cells(X, pending, step="step 12")
        if known is not None:
            known.update(new_keys)

    try:
        for step_no, (index, e) in enumerate(view.pets):
            if e.node not in setup.compute:
                raise fail(12, f"PET entry {index} by {e.node}, not a compute node", e.node)
            _signed(ctx, index, e, e.node, "compute", 12)
            if index < agg_index:
                raise fail(12, f"PET entry {index} precedes the aggregate", e.node)
            if e.node in seen:
                raise fail(12, f"node {e.node} sent two PET entries (the chain needs {t} "
                               "distinct nodes)", e.node)
            if step_no >= t:
                raise fail(12, f"PET entry {index} is step {step_no + 1} of a chain of {t}",
                           e.node)
            seen.add(e.node)
            k = len(current[0]) if current else 0
            if e.cells != len(current) or len(e.blinded) != len(current) * k:
                raise fail(12, f"PET entry {index} has {len(e.blinded)} ciphertexts in "
                               f"{e.cells} cells; the query tests {len(current)} cells of {k}",
                           e.node)
            try:
                batches = e.batches()
            except MalformedError as exc:
                raise fail(12, f"PET entry {index}: {exc}", e.node) from None
            # the step's inputs are named in its key: the aggregate's candidates for the
            # first, else the previous step's outputs (that entry's index and digest)
            key = (inputs_of, index, e.digest())
            if known is None or key not in known:
                pending.extend(
                    pet.PetCheck(inputs, batch, pet.pet_context(qid, e.node, cell), e.node,
                                 f"entry {index}, cell {cell}")
                    for cell, (inputs, batch) in enumerate(zip(current, batches, strict=True)))
                new_keys.append(key)
            current = [list(b.shuffled) for b in batches]
            inputs_of = f"{agg_digest}:{index}:{key[2]}"
    except VerificationError:
        verify_pending()  # an earlier step's bad proof is named first
        raise
    verify_pending()
    if complete and len(view.pets) < t:
        waiting = [n for n in setup.compute if n not in seen]
        raise _missing(12, f"{len(view.pets)} of the {t} PET steps", waiting[0] if waiting
                       else None)
    return current


def check_release(ctx: StepContext, *,
                  known_pets: set[tuple[str, int, str]] | None = None) -> str:
    """(12, first part) Suppression before decryption (protocol/suppression.py).  Without
    gates: no ``pet``, ``gate`` or ``release`` entry; every entry is decrypted.  With gates:
    the PET chain is complete and valid (:func:`check_pet_chain`); at most one ``gate``
    entry per compute node, signed by it, after the chain; the ``release`` entry is signed
    by the querier and names ``T`` nodes whose gate entries prove (batched DLEQ, gate
    context) their shares of the chain's last ciphertexts; its small bits are "a plaintext
    of the cell is zero"; the released positions are ``Statistic.release`` of those bits; no
    ``decryption`` entry precedes the release entry.  What is decrypted is
    :func:`flow.decryption_targets` (a DP query: one ciphertext per entry; every decryption
    entry of a DP query has exactly that many shares).  Sets ``ctx.released`` and
    ``ctx.released_cts``.  The one rule: step 12 of every verification and a compute node
    before it decrypts."""
    view, setup, qid = ctx.view, ctx.setup(), ctx.query().query_id
    spec, querier = ctx.spec(), ctx.query().querier
    gates = suppression.gate_entries(spec)
    if not ctx.aggregate:
        raise fail(12, "no recomputed aggregate (step 11)")
    if not gates:
        if view.pets:
            raise fail(12, f"a PET entry for a query without gates (entry {view.pets[0][0]})",
                       view.pets[0][1].node)
        if view.gates:
            raise fail(12, f"a gate entry for a query without gates (entry {view.gates[0][0]})",
                       view.gates[0][1].node)
        if view.release is not None:
            raise fail(12, "a release decision for a query without gates", querier)
        everything = suppression.everything(len(ctx.aggregate))
        ctx.released, ctx.release_groups = list(everything.released), everything.groups()
        ctx.released_cts = flow.decryption_targets(spec, ctx.aggregate)
        if not flow.decrypts_whole_entries(spec):
            return "no gates: every entry decrypted"
        for index, d in view.decryptions:
            # limb shares (or any other count) for a DP query: with T of them its limb sums,
            # which the noise does not cover, would be public (docs/privacy.md, "Limb sums")
            if len(d.shares) != len(ctx.released_cts):
                raise fail(12, f"decryption entry {index} has {len(d.shares)} shares for the "
                               f"{len(ctx.released_cts)} entries of this DP query: a DP query "
                               "decrypts one ciphertext per entry, never its limbs", d.node)
        return "no gates: every entry decrypted (DP: one ciphertext per entry)"
    if view.pets or view.gates or view.release is not None:
        final = check_pet_chain(ctx, complete=True, known=known_pets)
    else:
        raise _missing(12, "no PET step yet (the query tests its gates first)",
                       setup.compute[0])
    last_pet = view.pets[-1][0]
    gate_cts = [ct for cell in final for ct in cell]
    k = len(final[0])
    entries: dict[str, tuple[int, GateEntry]] = {}
    for index, g in view.gates:
        _compute_share_entry(ctx, index, g, "gate", entries)
        if index < last_pet:
            raise fail(12, f"gate entry {index} precedes the last PET step", g.node)
        if len(g.shares) != len(gate_cts):
            raise fail(12, f"gate entry {index} has {len(g.shares)} shares for the "
                           f"{len(gate_cts)} PET ciphertexts: it covers other ciphertexts",
                       g.node)
        entries[g.node] = (index, g)
    if view.release is None:
        if view.decryptions:
            index, d = view.decryptions[0]
            raise fail(12, f"decryption entry {index} before any release decision (the "
                           "query tests its gates first)", d.node)
        raise _missing(12, f"no release decision yet ({len(entries)} gate entries)", querier)
    rel_index, rel = view.release
    _signed(ctx, rel_index, rel, querier, "querier", 12)
    t = flow.decryption_threshold(setup)
    if len(rel.decryptors) != t:
        raise fail(12, f"the release decision names {len(rel.decryptors)} gate nodes; the "
                       f"threshold is {t}", querier)
    shares_by_node: list[list[Point]] = []
    for node in rel.decryptors:
        if node not in entries or entries[node][0] > rel_index:
            raise fail(12, f"the release decision names {node}, which logged no gate shares "
                           "before it", querier)
        g = entries[node][1]
        try:
            shares = g.share_points()
            proof = g.decode_proof()
            flow.verify_decryption(ctx.keys[setup.compute.index(node)], gate_cts, shares,
                                   proof, suppression.gate_context(qid, node), party=node,
                                   step="step 12")
        except (VerificationError, MalformedError) as exc:
            reason = exc.reason if isinstance(exc, VerificationError) else str(exc)
            raise fail(12, f"the release decision names {node}, whose gate shares are "
                           f"invalid ({reason})", querier) from None
        shares_by_node.append(list(shares))
    weights = flow.combination_weights(setup, list(rel.decryptors))
    small = [pet.is_small(cell, [s[c * k:(c + 1) * k] for s in shares_by_node], weights)
             for c, cell in enumerate(final)]
    if rel.small_bits() != small:
        raise fail(12, "the release decision's small-cell bits are not the PET's outcome",
                   querier)
    decision = suppression.decide(spec, small)
    if list(rel.released) != list(decision.released):
        raise fail(12, "the release decision releases other entries than the statistic's "
                       "rule allows for these small-cell bits", querier)
    if list(rel.merged) != list(decision.merged):
        raise fail(12, "the release decision groups (sums) other entries than the "
                       "statistic's rule gives for these small-cell bits", querier)
    ctx.released, ctx.release_groups = list(decision.released), decision.groups()
    ctx.released_cts = flow.decryption_targets(
        spec, suppression.select(ctx.aggregate, ctx.release_groups))
    if rel.ciphertexts != len(ctx.released_cts):
        raise fail(12, f"the release decision counts {rel.ciphertexts} released ciphertexts; "
                       f"its entries have {len(ctx.released_cts)}", querier)
    for index, d in view.decryptions:
        if index < rel_index:
            raise fail(12, f"decryption entry {index} precedes the release decision",
                       d.node)
        if len(d.shares) != len(ctx.released_cts):
            # shares of a withheld ciphertext are on the log: never combined, still named
            raise fail(12, f"decryption entry {index} has {len(d.shares)} shares for the "
                           f"{len(ctx.released_cts)} released ciphertexts: it covers "
                           "ciphertexts the release decision withholds", d.node)
    summed = sum(len(g) for g in ctx.release_groups)
    withheld = len(ctx.aggregate) - summed
    merged = (f" ({summed - len(ctx.released)} more decrypted only inside "
              f"{len(rel.merged)} sums)" if rel.merged else "")
    return (f"PET chain of {len(view.pets)} nodes; gates tested by "
            f"{', '.join(rel.decryptors)} ({sum(small)} of {len(small)} small); "
            f"{len(ctx.released)} entries released{merged}, {withheld} withheld (never "
            "decrypted)")


def step_12_decryption(ctx: StepContext) -> str:
    """(12) Decryption shares: at most one entry per compute node, each signed by its node;
    the ``T`` nodes the result names (or, before a result exists, the first ``T`` valid
    entries in log order) each prove their shares with a batched DLEQ against their
    verification key ``Y_j``.  Other nodes' shares are never combined, so their DLEQ is not
    needed (a result naming a node whose shares are invalid fails, blaming the querier)."""
    gate_detail = check_release(ctx)
    view, setup, qid = ctx.view, ctx.setup(), ctx.query().query_id
    t = flow.decryption_threshold(setup)
    if not ctx.released_cts:
        # the release decision withholds every entry: nothing may be decrypted
        if view.decryptions:
            index, d = view.decryptions[0]
            raise fail(12, f"decryption entry {index}: the release decision withholds every "
                           "entry", d.node)
        if view.result is not None and view.result[1].decryptors:
            raise fail(12, "the result names decrypting nodes; the release decision "
                           "withholds every entry", ctx.query().querier)
        ctx.decryptors, ctx.shares_by_node = [], []
        return f"nothing decrypted; {gate_detail}"
    entries: dict[str, tuple[int, DecryptionEntry]] = {}
    for index, d in view.decryptions:
        _compute_share_entry(ctx, index, d, "decryption", entries)
        entries[d.node] = (index, d)

    def shares_of(node: str) -> list[Point]:
        d = entries[node][1]
        try:
            shares = d.share_points()
            proof = d.decode_proof()
        except MalformedError as exc:
            raise fail(12, f"decryption entry: {exc}", node) from None
        flow.verify_decryption(ctx.keys[setup.compute.index(node)], ctx.released_cts, shares,
                               proof, flow.decryption_context(qid, node), party=node,
                               step="step 12")
        return list(shares)

    named = list(view.result[1].decryptors) if view.result is not None else None
    chosen: dict[str, list[Point]] = {}
    invalid: list[str] = []
    if named is not None:
        if len(named) != t:
            raise fail(12, f"the result names {len(named)} decrypting nodes; the threshold is "
                           f"{t}", ctx.query().querier)
        for node in named:
            if node not in entries:
                raise fail(12, f"the result names {node}, which logged no decryption shares",
                           ctx.query().querier)
            try:
                chosen[node] = shares_of(node)
            except VerificationError as exc:
                raise fail(12, f"the result names {node}, whose decryption shares are invalid "
                               f"({exc.reason})", ctx.query().querier) from None
    else:
        for node, _ in sorted(entries.items(), key=lambda kv: kv[1][0]):
            if len(chosen) == t:
                break
            try:
                chosen[node] = shares_of(node)
            except VerificationError:
                invalid.append(node)
        if len(chosen) < t:
            waiting = [n for n in setup.compute if n not in entries]
            raise _missing(12, f"{len(chosen)} of the {t} decryption shares needed"
                               + (f"; no decryption shares from {', '.join(waiting)}"
                                  if waiting else "")
                               + (f"; invalid: {', '.join(invalid)}" if invalid else ""),
                           waiting[0] if waiting else (invalid[0] if invalid else None))
    ctx.decryptors = sorted(chosen)
    ctx.shares_by_node = [chosen[n] for n in ctx.decryptors]
    return (f"decryption shares of {', '.join(ctx.decryptors)} proven (batched DLEQ; "
            f"{t}-of-{len(setup.compute)}); {gate_detail}")


def step_13_totals(ctx: StepContext) -> str:
    """(13) Totals: combine, exact discrete logs, recombine limbs, undo shifts; the result
    entry is signed by the querier and publishes exactly these totals."""
    view = ctx.view
    released, groups = ctx.released, ctx.release_groups
    if ctx.vertical_release is not None:
        return _vertical_totals(ctx)
    try:
        totals = [] if not released else flow.decrypt_totals(
            ctx.spec(), suppression.select(ctx.aggregate, groups), ctx.shares_by_node,
            suppression.sub_ranges(ctx.aggregate_ranges, groups),
            flow.combination_weights(ctx.setup(), ctx.decryptors), targets=ctx.released_cts)
    except DecryptionError as exc:
        raise fail(13, f"the aggregate does not decrypt within its bounds: {exc}") from None
    querier = ctx.query().querier
    res_index, res, _ = ctx.result_entry()
    _signed(ctx, res_index, res, querier, "querier", 13)
    if res.totals_int() != totals:
        # a withheld (suppressed) total published, or a wrong one
        raise fail(13, "the published totals are not the decryption of the released entries "
                       "of the aggregate", querier)
    view.totals = totals if len(released) == len(ctx.aggregate) else suppression.expand(
        len(ctx.aggregate), released, totals, groups)  # type: ignore[assignment]
    withheld = len(ctx.aggregate) - sum(len(g) for g in groups)
    summed = sum(len(g) for g in groups if len(g) > 1)
    return f"{len(totals)} totals decrypted exactly" + (
        f" ({withheld} withheld entries never decrypted)" if withheld else "") + (
        f" ({summed} entries decrypted only inside sums)" if summed else "")


def _vertical_totals(ctx: StepContext) -> str:
    """(13) of a vertical query: the release decrypts exactly (each plaintext within its
    bound); the result entry publishes those plaintexts; the statistic's totals are
    :func:`statledger.protocol.vertical.assemble_totals` of them."""
    release = ctx.vertical_release
    if release is None:  # pragma: no cover - the caller checked
        raise fail(13, "no release (step 11)")
    try:
        plain = vertical.decrypt_release(release, ctx.shares_by_node,
                                         flow.combination_weights(ctx.setup(), ctx.decryptors))
    except DecryptionError as exc:
        raise fail(13, f"the aggregate does not decrypt within its bounds: {exc}") from None
    querier = ctx.query().querier
    res_index, res, _ = ctx.result_entry()
    _signed(ctx, res_index, res, querier, "querier", 13)
    if res.totals_int() != plain:
        raise fail(13, "the published totals are not the decryption of the vertical release",
                   querier)
    ctx.view.totals = vertical.assemble_totals(ctx.spec(), release.n,  # type: ignore[assignment]
                                               plain)
    return f"{len(plain)} vertical aggregates decrypted exactly (n = {release.n} joined rows)"


def step_14_result(ctx: StepContext) -> str:
    """(14) Result: decoded again from the totals; every number equal exactly (bit for bit:
    the decoders are deterministic, :mod:`statledger.protocol.stats.exact`)."""
    view = ctx.view
    if view.totals is None:
        raise fail(14, "no totals (step 13)")
    _, res, _ = ctx.result_entry()
    querier = ctx.query().querier
    try:
        noise = (None if ctx.noise is None else
                 calibration.NoiseInfo(ctx.noise.params, len(ctx.noise.members)))
        small = None if view.release is None else view.release[1].small_bits()
        result = calibration.decode(ctx.spec(), view.totals, noise, small)
        decoded = result.to_dict()
    except MalformedError as exc:
        # the querier published a result for totals that have none
        raise fail(14, f"the totals do not decode: {exc}", querier) from None
    view.decoded = decoded
    where = results_match(decoded, res.result)
    if where is not None:
        raise fail(14, f"the published result differs from decode(totals) at {where}", querier)
    view.decoded_result = result  # the certified result, for display (verifier/show.py)
    return "every number of the result recomputed from the totals, exactly equal"


def step_15_endorsements(ctx: StepContext) -> str:
    """(15) Endorsements: every contributing provider signed the result digest."""
    view = ctx.view
    _, _, rbytes = ctx.result_entry()
    digest = result_digest(rbytes)
    endorsed: set[str] = set()
    for index, en in view.endorsements:
        _signed(ctx, index, en, en.provider, "provider", 15)
        if en.provider in endorsed:
            raise fail(15, f"provider {en.provider} endorsed twice", en.provider)
        if en.result_digest != digest:
            raise fail(15, f"endorsement {index} signs another result", en.provider)
        endorsed.add(en.provider)
    contributors = view.contributors()
    extra = sorted(endorsed - contributors)
    if extra:
        raise fail(15, f"endorsement by {extra[0]}, who did not contribute", extra[0])
    missing = sorted(contributors - endorsed)
    if missing:
        raise _missing(15, f"no endorsement from contributing provider {missing[0]}",
                       missing[0])
    return f"{len(endorsed)} owners endorsed the result"


# -- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One numbered step: its number and name (docs/verification.md) and its check."""

    number: int
    name: str
    run: Callable[[StepContext], str]


#: Steps 6 and 8-15, in the order they run.  Names are the report's titles.
STEPS: tuple[Step, ...] = (
    Step(6, "consortium, roster and key proofs", step_6_roster),
    Step(8, "query", step_8_query),
    Step(9, "submissions and range proofs", step_9_submissions),
    Step(10, "DP noise round", step_10_noise),
    Step(11, "aggregate", step_11_aggregate),
    Step(12, "decryption shares", step_12_decryption),
    Step(13, "totals", step_13_totals),
    Step(14, "result", step_14_result),
    Step(15, "owners' endorsements", step_15_endorsements),
)

#: The names of the steps this package runs: 5 (:func:`parse_entries`) and :data:`STEPS`.
STEP_NAMES: dict[int, str] = {PARSE_STEP[0]: PARSE_STEP[1], **{s.number: s.name for s in STEPS}}

#: Steps 6, 8 and 10: what a party runs before it acts in the noise round or aggregates it
#: (the consortium and keys, the query, the noise round so far; ``StepContext.noise``).
NOISE_STEPS: tuple[Step, ...] = tuple(s for s in STEPS if s.number in (6, 8, 10))


def run_steps(
    ctx: StepContext,
    steps: Sequence[Step] = STEPS,
    *,
    through: int = 15,
    on_step: StepHook | None = None,
) -> None:
    """Run every step of ``steps`` numbered up to ``through``, in order; ``on_step(n,
    detail)`` after each one passes.  The first failure raises."""
    for step in steps:
        if step.number > through:
            break
        detail = step.run(ctx)
        if on_step is not None:
            on_step(step.number, detail)


def check_query(
    view: QueryView,
    *,
    through: int = 15,
    on_step: StepHook | None = None,
    verify_range_proofs: bool = True,
    steps: Sequence[Step] = STEPS,
    pinned: str | None = None,
    contributor: str | None = None,
) -> QueryView:
    """Run the steps of ``steps`` (default :data:`STEPS`: 6 and 8-15) up to ``through`` on
    ``view`` (step 7 needs the checkpoint: see :mod:`statledger.verifier.checks`).

    ``on_step(n, detail)`` is called after each step passes.  Returns ``view`` with ``spec``
    (step 8), ``totals`` (13) and ``decoded`` (14) filled in when those steps ran.
    ``verify_range_proofs=False`` skips only the range proofs of steps 9-10; every other
    check still runs.  ``pinned`` is the consortium id the caller trusts (its trust file):
    step 6 then refuses a log whose genesis is another consortium's.  ``contributor`` is the
    provider running the steps before it contributes (step 8 counts it as a contributor).
    """
    ctx = StepContext(view, verify_range_proofs=verify_range_proofs, pinned=pinned,
                      contributor=contributor)
    run_steps(ctx, steps, through=through, on_step=on_step)
    return view


def key_chain(view: QueryView, *, pinned: str | None = None) -> list[ceremony.KeyEpoch]:
    """Step 6 alone, and every key epoch up to the one in force for ``view`` (the setup,
    then each rekey), re-derived from the log: what a compute node runs before it uses a key
    share of any epoch."""
    ctx = StepContext(view, pinned=pinned)
    step_6_roster(ctx)
    return ctx.key_epochs


def check_setup(view: QueryView, *, pinned: str | None = None) -> list[Point]:
    """Step 6 alone (the consortium, the key ceremony, the setup): the compute nodes'
    verification keys ``Y_j`` in the setup's order.  What a compute node runs before it uses
    its key share."""
    ctx = StepContext(view, pinned=pinned)
    step_6_roster(ctx)
    return ctx.keys


def results_match(a: Any, b: Any, path: str = "result") -> str | None:
    """``None`` if ``a`` (recomputed) and ``b`` (published) are exactly the same JSON value,
    else where they first differ: the path (``result.coef[2]``), with ``(type)`` when the
    types differ, ``(missing)`` / ``(unexpected)`` for a key, ``(length)`` for a list.

    Exact, no tolerance (step 14): an int equals only an int of the same value (an int and
    a float never match, not even 1 and 1.0; a bool is neither); a float equals only a float
    with the same bits (``float.hex``; 0.0 and -0.0 differ), which the canonical CBOR of the
    result entry preserves; a NaN or an infinity matches nothing (decoders never publish one).
    """
    ta, tb = type(a), type(b)
    if ta is not tb:
        return f"{path} (type)"
    if a is None:
        return None
    if ta is bool or ta is int or ta is str:
        return None if a == b else path
    if ta is float:
        if not (math.isfinite(a) and math.isfinite(b)):
            return f"{path} (not finite)"
        return None if a.hex() == b.hex() else path
    if ta is dict:
        for k in sorted(set(a) | set(b)):
            if k not in b:
                return f"{path}.{k} (missing)"
            if k not in a:
                return f"{path}.{k} (unexpected)"
            w = results_match(a[k], b[k], f"{path}.{k}")
            if w is not None:
                return w
        return None
    if ta is list:
        if len(a) != len(b):
            return f"{path} (length)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            w = results_match(x, y, f"{path}[{i}]")
            if w is not None:
                return w
        return None
    return f"{path} (not a JSON value)"
