"""The key ceremony on the log: which ``dkg_*`` entries count, in which phase (docs/dkg.md).

:mod:`statledger.protocol.dkg` is the mathematics (a pure function of the messages it is
given); this module is the rule that turns the *log* into those messages, so that the ledger
(before it writes the setup), every compute node (before it acts, and to learn its own key
share) and every verifier (step 6) draw the same transcript from the same entries.

Adversary: a compute node (up to ``T - 1`` of them, colluding with the ledger operator) that
wants to bias the collective key, learn it, or leave an honest node with a useless share.
GJKR's defence needs *rounds*: the qualified set is fixed before anyone reveals a Feldman
value.  On a log, rounds are log positions:

1. **Deals** (``dkg_deal``): one per compute node of the setup; a deal counts only if it
   precedes the first ``dkg_ack`` (an honest node acks only once it has seen every deal).
2. **Acks** (``dkg_ack``): one per node, carrying the run's digest (:func:`run_digest`: an ack
   belongs to one run) and its complaints (a ``Disclosure`` of every share that failed its
   check).  The complaint round closes when *every* node has acked; complaints are those in
   the acks.
3. **Keys** (``dkg_key``): a qualified dealer's Feldman values, valid only after every node's
   ack.  A ``dkg_key`` logged before the last ack would let its author see the honest
   dealers' Feldman values while complaints can still change the qualified set; such a
   transcript is refused (the ceremony is aborted, its author named) -- the ledger never
   appends one, and every checker rejects a log that holds one.
4. **Disclosures** (``dkg_disclosure``): after the acks, a node's disclosure of its share of a
   qualified dealer whose phase-2 values are missing or invalid; ``T`` of them reconstruct
   that dealer's polynomial (its key cannot be dropped: that would bias the key).

Only the run's entries count (the caller passes exactly those: before the setup for the
first ceremony, :func:`run_rows` for a resharing).  The ceremony needs every compute node to
deal and to ack (a node that never acks stalls it, visibly); decryption later needs only
``T``.  A resharing (``params.prior``; docs/dkg.md, "Key lifecycle") adds a fresh transport
key per new node (``dkg_transport``) before the first deal, has the previous nodes deal and
the new ones ack, and has no disclosures.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.protocol import dkg
from statledger.protocol.entries import (
    DkgAckEntry,
    DkgDealEntry,
    DkgDisclosureEntry,
    DkgKeyEntry,
    DkgTransportEntry,
    Entry,
    SetupEntry,
)

if TYPE_CHECKING:
    from statledger.protocol.consortium import Roster, RosterTimeline

_DKG_ENTRIES = (DkgDealEntry, DkgAckEntry, DkgKeyEntry, DkgDisclosureEntry, DkgTransportEntry)

__all__ = [
    "CeremonyState",
    "KeyEpoch",
    "run_params",
    "run_digest",
    "run_rows",
    "check_key_chain",
    "check_setup_fields",
    "pending_run",
    "params_for",
    "qualified",
    "next_message",
    "key_share",
    "simulate",
    "pack",
    "unpack",
    "state_of",
    "derive_from_log",
]

_STEP = "dkg"
_MAX_ITEMS = 1 << 12


def pack(items: Sequence[bytes]) -> bytes:
    """Length-prefixed concatenation (4-byte big-endian count, then 4-byte length + bytes)."""
    out = [struct.pack(">I", len(items))]
    for item in items:
        out.append(struct.pack(">I", len(item)))
        out.append(item)
    return b"".join(out)


def unpack(data: bytes, what: str) -> list[bytes]:
    """Strict inverse of :func:`pack` (MalformedError on any deviation)."""
    if len(data) < 4:
        raise MalformedError(f"{what}: truncated")
    (count,) = struct.unpack(">I", data[:4])
    if count > _MAX_ITEMS:
        raise MalformedError(f"{what}: too many items")
    pos, out = 4, []
    for _ in range(count):
        if len(data) < pos + 4:
            raise MalformedError(f"{what}: truncated")
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        pos += 4
        if len(data) < pos + n:
            raise MalformedError(f"{what}: truncated")
        out.append(data[pos:pos + n])
        pos += n
    if pos != len(data):
        raise MalformedError(f"{what}: trailing bytes")
    return out


def params_for(setup: SetupEntry | None = None, epoch: int = 0, *,
               consortium: str | None = None, nodes: Sequence[str] | None = None,
               threshold: int | None = None) -> dkg.DkgParams:
    """The ceremony's parameters: those a setup entry states (what step 6 checks), or, before
    the setup exists, the roster's (what the nodes and the ledger use)."""
    if setup is not None:
        return dkg.DkgParams(setup.consortium, epoch, tuple(setup.compute), setup.threshold)
    if consortium is None or nodes is None or threshold is None:
        raise MalformedError("params_for: a setup entry, or consortium, nodes and threshold")
    return dkg.DkgParams(consortium, epoch, tuple(sorted(nodes)), threshold)


def _fail(reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=_STEP, party=party)


@dataclass
class CeremonyState:
    """The ceremony's entries on the log, sorted into the phases of the module docstring."""

    params: dkg.DkgParams
    deals: dict[str, tuple[int, dkg.Deal]]
    late_deals: list[str]
    acks: dict[str, tuple[int, list[dkg.Disclosure]]]
    keys: dict[str, tuple[int, dkg.KeyCommit | None]]
    disclosures: list[tuple[int, dkg.Disclosure]]
    transports: dict[str, tuple[int, dkg.TransportKey]] = field(default_factory=dict)

    @property
    def dealt(self) -> bool:
        """Every dealer has a deal that counts."""
        return set(self.deals) == set(self.params.dealers)

    @property
    def acked(self) -> bool:
        """The complaint round is closed: every node has acked."""
        return set(self.acks) == set(self.params.nodes)

    @property
    def keyed(self) -> bool:
        """Resharing: every node has logged its transport key for this run."""
        return set(self.transports) == set(self.params.nodes)

    def transport_keys(self) -> dict[str, Point]:
        """Resharing: the run's transport keys (each proven when it was sorted in)."""
        return {n: tk.X for n, (_, tk) in self.transports.items()}

    def waiting_for(self) -> tuple[str, list[str]]:
        """The phase the ceremony is in and the nodes it waits for."""
        if self.params.prior is not None and not self.keyed:
            return "transport", [n for n in self.params.nodes if n not in self.transports]
        if not self.acks:
            return "deal", [n for n in self.params.dealers if n not in self.deals]
        if not self.acked:
            return "ack", [n for n in self.params.nodes if n not in self.acks]
        return "key", []


def state_of(params: dkg.DkgParams, rows: Sequence[tuple[int, Entry]]) -> CeremonyState:
    """Sort the ``dkg_*`` entries of ``rows`` (index order; every entry before the setup)
    into phases; raise VerificationError naming the node for a duplicate, an entry by a
    non-node, an undecodable message or a key commitment logged before the complaint round
    closed.  Signatures are the caller's business (step 6 checks them with the roster)."""
    st = CeremonyState(params, {}, [], {}, {}, [])
    reshare = params.prior is not None
    nodes, dealers = set(params.nodes), set(params.dealers)
    for index, e in sorted(rows, key=lambda r: r[0]):
        if not isinstance(e, _DKG_ENTRIES):
            continue
        node = e.node
        by_dealer = isinstance(e, (DkgDealEntry, DkgKeyEntry))
        if node not in (dealers if by_dealer else nodes):
            raise _fail(f"{e.KIND} entry {index} by {node}, not a "
                        f"{'dealer' if by_dealer else 'compute node'} of the ceremony", node)
        try:
            if isinstance(e, DkgTransportEntry):
                if not reshare:
                    raise _fail(f"transport key entry {index} in a fresh key ceremony (the "
                                "nodes' registered keys are its transport keys)", node)
                if node in st.transports:
                    raise _fail(f"{node} logged two transport keys", node)
                if st.deals or st.late_deals:
                    raise _fail(f"transport key entry {index} by {node} after the first deal",
                                node)
                tk = dkg.TransportKey.from_bytes(e.message_bytes())
                if tk.node != node:
                    raise _fail(f"transport key entry {index} by {node} carries {tk.node}'s "
                                "key", node)
                dkg.verify_transport_key(params, tk)
                st.transports[node] = (index, tk)
            elif isinstance(e, DkgDealEntry):
                if node in st.deals or node in st.late_deals:
                    raise _fail(f"{node} dealt twice", node)
                if reshare and not st.keyed:
                    raise _fail(f"deal entry {index} by {node} before every node's transport "
                                "key", node)
                deal = dkg.Deal.from_bytes(e.message_bytes(), params)
                if deal.dealer != node:
                    raise _fail(f"deal entry {index} by {node} carries {deal.dealer}'s deal",
                                node)
                if st.acks:
                    st.late_deals.append(node)  # after the first ack: does not count
                else:
                    st.deals[node] = (index, deal)
            elif isinstance(e, DkgAckEntry):
                if node in st.acks:
                    raise _fail(f"{node} acked twice", node)
                if st.keys:
                    raise _fail(f"ack entry {index} by {node} after a key commitment", node)
                items = unpack(e.message_bytes(), f"ack entry {index}")
                if not items or items[0] != run_digest(params):
                    raise _fail(f"ack entry {index} by {node} is not bound to this run (an "
                                "ack of another ceremony or resharing)", node)
                complaints = [dkg.Disclosure.from_bytes(b) for b in items[1:]]
                for c in complaints:
                    if c.recipient != node:
                        raise _fail(f"ack entry {index} by {node} carries a complaint of "
                                    f"{c.recipient}", node)
                st.acks[node] = (index, complaints)
            elif isinstance(e, DkgKeyEntry):
                if not st.acked:
                    raise _fail(f"key commitment {index} by {node} logged before every node "
                                "acked: the ceremony is aborted", node)
                if node in st.keys:
                    raise _fail(f"{node} published two key commitments", node)
                try:
                    kc: dkg.KeyCommit | None = dkg.KeyCommit.from_bytes(e.message_bytes(),
                                                                        params)
                except MalformedError:
                    kc = None  # an undecodable phase-2 message: reconstructed like a missing one
                if kc is not None and kc.dealer != node:
                    raise _fail(f"key entry {index} by {node} carries {kc.dealer}'s values",
                                node)
                st.keys[node] = (index, kc)
            else:
                if reshare:
                    raise _fail(f"disclosure {index} by {node} in a resharing (nothing is "
                                "reconstructed: a silent dealer is dropped)", node)
                if not st.acked:
                    raise _fail(f"disclosure {index} by {node} before every node acked", node)
                d = dkg.Disclosure.from_bytes(e.message_bytes())
                if d.recipient != node:
                    raise _fail(f"disclosure {index} by {node} of {d.recipient}'s share", node)
                st.disclosures.append((index, d))
        except MalformedError as exc:
            raise _fail(f"{e.KIND} entry {index}: {exc}", node) from None
    return st


def derive_from_log(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
                    rows: Sequence[tuple[int, Entry]]) -> dkg.DkgResult:
    """The ceremony's outcome from the log (see the module docstring).  Raises
    ``dkg.DkgIncomplete`` while the ceremony is not finished (a node has not dealt or acked, a
    qualified dealer's values are neither published nor reconstructible) and
    VerificationError for a transcript that breaks the rules.

    A pure function of its inputs, so a finished ceremony is derived once per process: every
    query's step 6 (each node, owner, querier and verifier re-checks it for every query)
    then costs one hash of the transcript instead of ``N^2`` share-proof checks and the
    verification keys' multi-scalar multiplications."""
    h = hashlib.sha256(params.context())
    for node in params.nodes:
        X = transport_keys.get(node)
        h.update(X.to_bytes() if isinstance(X, Point) else b"-")
    for index, e in sorted(rows, key=lambda r: r[0]):
        if isinstance(e, _DKG_ENTRIES):
            # what the derivation reads: position, kind, author, message (signatures are
            # the caller's check)
            h.update(pack([struct.pack(">Q", index), e.KIND.encode(), e.node.encode(),
                           e.message_bytes()]))
    key = h.digest()
    cached = _DERIVED.get(key)
    if cached is not None:
        return cached
    result = _derive(params, transport_keys, rows)
    if len(_DERIVED) >= 64:
        _DERIVED.clear()
    _DERIVED[key] = result
    return result


#: finished ceremonies already derived in this process, by the digest of their inputs
_DERIVED: dict[bytes, dkg.DkgResult] = {}


def _derive(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
            rows: Sequence[tuple[int, Entry]]) -> dkg.DkgResult:
    st = state_of(params, rows)
    phase, waiting = st.waiting_for()
    if phase != "key":
        raise dkg.DkgIncomplete(f"key ceremony in phase {phase}: waiting for "
                                f"{', '.join(waiting) or 'the first ack'}", step=_STEP,
                                party=waiting[0] if waiting else None)
    complaints = [c for n in params.nodes for c in st.acks[n][1]]
    key_commits = [kc for _, kc in st.keys.values() if kc is not None]
    return dkg.derive(params, _keys(params, transport_keys, st),
                      [d for _, d in st.deals.values()], complaints,
                      key_commits, [d for _, d in st.disclosures])


def _keys(params: dkg.DkgParams, registered: Mapping[str, Point],
          st: CeremonyState) -> Mapping[str, Point]:
    """The run's transport keys: the nodes' registered keys (a fresh ceremony) or the keys
    logged for this run (a resharing)."""
    return registered if params.prior is None else st.transport_keys()


def _seed(params: dkg.DkgParams, node: str, x: Scalar) -> bytes:
    """The seed of the node's secret polynomials, derived from its long-term key and the
    ceremony (HMAC-SHA-512): a restarted node re-creates the polynomials of the deal it
    logged, so nothing secret has to be stored between the phases."""
    return hmac.new(x.to_bytes(), b"statledger/dkg/seed/v1\n" + params.context()
                    + node.encode(), hashlib.sha512).digest()


def qualified(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
              st: CeremonyState) -> list[str]:
    """QUAL after phase 1 (``dkg.qualified_dealers`` on the deals and complaints that count)."""
    complaints = [c for n in params.nodes if n in st.acks for c in st.acks[n][1]]
    return list(dkg.qualified_dealers(params, _keys(params, transport_keys, st),
                                      [d for _, d in st.deals.values()], complaints))


def simulate(params: dkg.DkgParams, transport_secrets: Mapping[str, Scalar],
             prior_shares: Mapping[str, Scalar] | None = None
             ) -> list[tuple[str, str, bytes]]:
    """An honest ceremony run in one process: ``(kind, node, message)`` in a log order that
    follows the rules above (every deal, every ack, every key commitment; for a resharing,
    every transport key first, the dealers dealing ``prior_shares``).  For offline tools,
    benchmarks and tests that build a log without running the nodes."""
    keys = {n: base_mul(transport_secrets[n]) for n in params.nodes}
    out: list[tuple[str, str, bytes]] = []
    rows: list[tuple[int, Entry]] = []
    kinds = {cls.KIND: cls for cls in _DKG_ENTRIES}
    shares = dict(prior_shares or {})
    progress = True
    while progress:
        progress = False
        for node in sorted(set(params.nodes) | set(params.dealers)):
            act = next_message(params, keys, rows, node, transport_secrets.get(node),
                               prior_share=shares.get(node))
            if act is not None:
                kind, message = act
                out.append((kind, node, message))
                rows.append((len(rows), kinds[kind](node, message.hex())))
                progress = True
    return out


def next_message(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
                 rows: Sequence[tuple[int, Entry]], me: str, x: Scalar | None, *,
                 reconstruct: bool = False, prior_share: Scalar | None = None
                 ) -> tuple[str, bytes] | None:
    """What node ``me`` logs next, or None while it waits for others.  ``x`` is its transport
    secret for this run (None for a resharing dealer that is not a new node: it only deals).

    Fresh key: deal first; ack (with a complaint for every share that fails its check) once
    every node dealt; publish its Feldman values once every node acked and it is qualified;
    with ``reconstruct`` (the caller's patience ran out), and once its own phase-2 values are
    on the log, disclose its share of every qualified dealer whose phase-2 values are missing
    or invalid.

    Resharing (``params.prior``; ``prior_share`` = ``me``'s previous share if it deals): log
    its fresh transport key; deal its previous share once every node's transport key is on
    the log; ack; publish its Feldman values (``A_0`` = its previous verification key).
    Nothing is ever disclosed."""
    st = state_of(params, rows)
    if params.prior is not None:
        return _next_reshare(params, st, me, x, prior_share)
    if x is None:
        raise MalformedError("a fresh key ceremony needs the node's transport secret")
    X = base_mul(x)
    if not st.acks and me not in st.deals:
        deal, _ = dkg.deal(params, me, transport_keys, seed=_seed(params, me, x))
        return "dkg_deal", deal.to_bytes()
    if me not in st.acks:
        if not st.dealt and not st.acks:
            return None
        return "dkg_ack", _ack(params, st, me, x)
    if not st.acked or (me in st.keys and not reconstruct):
        return None
    qual = qualified(params, transport_keys, st)
    if me in qual and me not in st.keys:
        return "dkg_key", _key_commit(params, transport_keys, st, me,
                                      _seed(params, me, x)).to_bytes()
    if reconstruct and me in qual and me in st.keys:
        # only once this node's own phase-2 values are on the log: a ledger that hid every
        # honest key commitment from it must not get it to disclose honest polynomials
        disclosed = {d.dealer for _, d in st.disclosures if d.recipient == me}
        for dealer in qual:
            if dealer in disclosed or dealer == me:
                continue
            _, kc = st.keys.get(dealer, (0, None))
            deal = st.deals[dealer][1]
            if kc is not None:
                try:
                    dkg.verify_key_commit(params, deal, kc)
                    continue
                except VerificationError:
                    pass
            try:
                return "dkg_disclosure", dkg.disclose(params, deal, me, x, X).to_bytes()
            except (VerificationError, MalformedError):
                continue
    return None


def run_digest(params: dkg.DkgParams) -> bytes:
    """SHA-256 of the run's parameters: the first item of every ack, so that an ack (often
    just "no complaint") belongs to one run and is never a copy of another run's."""
    return hashlib.sha256(params.context()).digest()


def _ack(params: dkg.DkgParams, st: CeremonyState, me: str, x: Scalar) -> bytes:
    """``me``'s ack: the run's digest, then a complaint (disclosure) for every share that
    fails its check."""
    X = base_mul(x)
    complaints = [run_digest(params)]
    for _, (_, deal) in sorted(st.deals.items()):
        try:
            dkg.open_share(params, deal, me, x)
        except VerificationError:
            try:
                complaints.append(dkg.disclose(params, deal, me, x, X).to_bytes())
            except (VerificationError, MalformedError):
                # the share's randomness proof fails: the dealer is disqualified by
                # everyone without a complaint, and disclosing would leak (docs/dkg.md)
                continue
    return pack(complaints)


def _key_commit(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
                st: CeremonyState, me: str, seed: bytes,
                constant: Scalar | None = None) -> dkg.KeyCommit:
    """``me``'s phase-2 values, from the polynomials its seed re-creates (checked against
    the deal it logged)."""
    logged = st.deals[me][1]
    _, secret = dkg.deal(params, me, _keys(params, transport_keys, st), seed=seed,
                         constant=constant)
    H = dkg.pedersen_h()
    if [base_mul(a) + b * H for a, b in zip(secret.a, secret.b, strict=True)] != list(
            logged.commitments):
        fate = ("will be reconstructed from disclosures" if params.prior is None
                else "cannot be published: the resharing goes on without it")
        raise VerificationError(f"{me} cannot re-create the polynomials of the deal it "
                                f"logged (its key changed?): its phase-2 values {fate}",
                                step=_STEP, party=me)
    return dkg.key_commit(params, logged, secret)


def _next_reshare(params: dkg.DkgParams, st: CeremonyState, me: str, x: Scalar | None,
                  prior_share: Scalar | None) -> tuple[str, bytes] | None:
    recipient, dealer = me in params.nodes, me in params.dealers
    if recipient and x is None:
        raise MalformedError(f"{me} is a node of the resharing: it needs its transport secret")
    if dealer and prior_share is None:
        raise MalformedError(f"{me} deals in the resharing: it needs its previous share")
    if recipient and x is not None and me not in st.transports:
        if st.deals or st.late_deals:
            return None  # too late: the run goes on without this node's key (it stalls)
        return "dkg_transport", dkg.transport_key(params, me, x).to_bytes()
    if not st.keyed:
        return None
    if dealer and prior_share is not None:
        seed = _seed(params, me, prior_share)
        if not st.acks and me not in st.deals:
            deal, _ = dkg.deal(params, me, st.transport_keys(), seed=seed,
                               constant=prior_share)
            return "dkg_deal", deal.to_bytes()
    if recipient and x is not None and me not in st.acks:
        if not st.dealt and not st.acks:
            return None
        return "dkg_ack", _ack(params, st, me, x)
    if (dealer and prior_share is not None and st.acked and me not in st.keys
            and me in qualified(params, {}, st)):
        return "dkg_key", _key_commit(params, {}, st, me, _seed(params, me, prior_share),
                                      prior_share).to_bytes()
    return None


def key_share(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
              rows: Sequence[tuple[int, Entry]], me: str, x: Scalar) -> Scalar:
    """Node ``me``'s share ``x_j`` of the collective key, from the finished ceremony."""
    result = derive_from_log(params, transport_keys, rows)
    st = state_of(params, rows)
    return dkg.node_secret(params, result, me, x, [d for _, d in st.deals.values()])


# --------------------------------------------------------------------------------------------
# The key over the life of the log: one run per key epoch (docs/dkg.md, "Key lifecycle")
# --------------------------------------------------------------------------------------------


def run_params(consortium: str, roster: Roster, previous: SetupEntry | None
               ) -> dkg.DkgParams:
    """The parameters of the run that gives the key for ``roster`` (its compute nodes, its
    decryption threshold, its compute epoch): a fresh ceremony if no key exists yet, else a
    resharing of ``previous`` (the setup or rekey in force) by its nodes that are still
    members.  :class:`MalformedError` if too few of them remain to re-share the key."""
    nodes = tuple(sorted(m.party_id for m in roster.of_role("compute")))
    if previous is None:
        return dkg.DkgParams(consortium, roster.compute_epoch, nodes,
                             roster.decryption_threshold)
    prior = dkg.Prior(tuple(previous.compute), previous.threshold,
                      tuple(previous.verification_points()), previous.collective_point(),
                      tuple(n for n in previous.compute if n in nodes))
    return dkg.DkgParams(consortium, roster.compute_epoch, nodes,
                         roster.decryption_threshold, prior)


def run_rows(rows: Sequence[tuple[int, Entry]], after: int, before: int | None
             ) -> list[tuple[int, Entry]]:
    """The ``dkg_*`` entries of one run: those logged after the previous setup or rekey
    (``after``; -1 for the first run) and before this run's (``before``; None while the run
    goes on)."""
    return [(i, e) for i, e in rows
            if isinstance(e, _DKG_ENTRIES) and i > after and (before is None or i < before)]


@dataclass(frozen=True)
class KeyEpoch:
    """One key epoch: its setup or rekey entry (at ``index``), the run that produced it and
    what anyone derives from that run."""

    index: int
    setup: SetupEntry
    params: dkg.DkgParams
    result: dkg.DkgResult


def check_key_chain(setups: Sequence[tuple[int, SetupEntry]],
                    rows: Sequence[tuple[int, Entry]], timeline: RosterTimeline,
                    registered: Mapping[str, Point], *, log: str | None = None
                    ) -> list[KeyEpoch]:
    """Re-derive every setup / rekey entry of ``setups`` (log order) from its run on the log.

    The first must be a ``setup`` (a fresh ceremony among the compute nodes of the roster in
    force at its index, with their ``registered`` transport keys); each later one a ``rekey``
    that re-shares the previous key among the compute nodes of the roster at *its* index,
    which must be a new compute epoch (a membership change touched the compute nodes, or a
    refresh was asked).  Each entry must state exactly the roster's compute nodes and
    threshold and the key and verification keys its run produced.

    Raises VerificationError (``step="dkg"``): the reason starts with "key ceremony: " and
    ``party`` is the node at fault for a broken run; ``party`` = ``log`` (the log's party
    id) when the log is at fault (a setup or rekey that misstates its run, precedes its end,
    or has no run)."""
    out: list[KeyEpoch] = []
    for index, setup in setups:
        prev = out[-1] if out else None
        kind = "setup" if prev is None else "rekey"
        if setup.KIND != kind:
            raise _fail(f"entry {index}: a {setup.KIND} entry where the log needs a {kind}",
                        log)
        roster = timeline.at(index)
        if prev is not None and roster.compute_epoch == prev.params.epoch:
            raise _fail(f"rekey entry {index} without a membership change or refresh since the "
                        f"key epoch at {prev.index}", log)
        cid = timeline.consortium_id
        check_setup_fields(setup, roster, cid, log=log)
        try:
            params = run_params(cid, roster, prev.setup if prev else None)
        except MalformedError as exc:
            raise _fail(f"{kind} entry {index}: {exc}", log) from None
        run = run_rows(rows, prev.index if prev else -1, index)
        try:
            result = derive_from_log(params, registered, run)
        except dkg.DkgIncomplete as exc:
            raise _fail(f"the {kind} precedes the end of the key ceremony: {exc.reason}",
                        log) from None
        except VerificationError as exc:
            raise _fail(f"key ceremony: {exc.reason}", exc.party) from None
        if result.collective_key != setup.collective_point():
            raise _fail(f"{kind}.collective_key is not the key the ceremony on the log "
                        "produced", log)
        if [result.verification_keys[n] for n in setup.compute] != \
                setup.verification_points():
            raise _fail(f"{kind}.verification_keys are not the ones the ceremony on the log "
                        "produced", log)
        out.append(KeyEpoch(index, setup, params, result))
    return out


def check_setup_fields(setup: SetupEntry, roster: Roster, consortium: str, *,
                       log: str | None = None) -> None:
    """A setup or rekey entry states this consortium, exactly the compute nodes of the
    roster in force at its index and the roster's decryption threshold (VerificationError
    blaming ``log``, the log's party id)."""
    kind = setup.KIND
    if setup.consortium != consortium:
        raise _fail(f"the {kind} entry belongs to another consortium", log)
    members = sorted(m.party_id for m in roster.of_role("compute"))
    if list(setup.compute) != members:
        raise _fail(f"the {kind} names compute nodes {list(setup.compute)}, the consortium's "
                    f"are {members}", log)
    if setup.threshold != roster.decryption_threshold:
        raise _fail(f"the {kind} says threshold {setup.threshold}, the consortium's is "
                    f"{roster.decryption_threshold}", log)


def pending_run(setups: Sequence[tuple[int, SetupEntry]], timeline: RosterTimeline,
                ) -> tuple[dkg.DkgParams, int] | None:
    """The run the log waits for now, as ``(params, after)`` (its entries are those after
    index ``after``), or None when the key in force matches the roster: no setup yet (a fresh
    ceremony), or the compute epoch moved since the last setup / rekey (a resharing).
    ``setups`` must be verified already (:func:`check_key_chain`).  MalformedError when the
    roster can no longer re-share the key (too few previous nodes remain)."""
    roster = timeline.final
    cid = timeline.consortium_id
    if not setups:
        return run_params(cid, roster, None), -1
    index, last = setups[-1]
    if timeline.at(index).compute_epoch == roster.compute_epoch:
        return None
    return run_params(cid, roster, last), index
