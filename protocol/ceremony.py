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
2. **Acks** (``dkg_ack``): one per node, carrying its complaints (a ``Disclosure`` of every
   share that failed its check).  The complaint round closes when *every* node has acked;
   complaints are those in the acks.
3. **Keys** (``dkg_key``): a qualified dealer's Feldman values, valid only after every node's
   ack.  A ``dkg_key`` logged before the last ack would let its author see the honest
   dealers' Feldman values while complaints can still change the qualified set; such a
   transcript is refused (the ceremony is aborted, its author named) -- the ledger never
   appends one, and every checker rejects a log that holds one.
4. **Disclosures** (``dkg_disclosure``): after the acks, a node's disclosure of its share of a
   qualified dealer whose phase-2 values are missing or invalid; ``T`` of them reconstruct
   that dealer's polynomial (its key cannot be dropped: that would bias the key).

Only entries before the setup entry count (the caller passes exactly those).  The
ceremony needs every compute node to deal and to ack (a node that never acks stalls it,
visibly); decryption later needs only ``T``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.protocol import dkg
from statledger.protocol.entries import (
    DkgAckEntry,
    DkgDealEntry,
    DkgDisclosureEntry,
    DkgKeyEntry,
    Entry,
    SetupEntry,
)

__all__ = [
    "CeremonyState",
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

    @property
    def dealt(self) -> bool:
        """Every node has a deal that counts."""
        return set(self.deals) == set(self.params.nodes)

    @property
    def acked(self) -> bool:
        """The complaint round is closed: every node has acked."""
        return set(self.acks) == set(self.params.nodes)

    def waiting_for(self) -> tuple[str, list[str]]:
        """The phase the ceremony is in and the nodes it waits for."""
        if not self.acks:
            return "deal", [n for n in self.params.nodes if n not in self.deals]
        if not self.acked:
            return "ack", [n for n in self.params.nodes if n not in self.acks]
        return "key", []


def state_of(params: dkg.DkgParams, rows: Sequence[tuple[int, Entry]]) -> CeremonyState:
    """Sort the ``dkg_*`` entries of ``rows`` (index order; every entry before the setup)
    into phases; raise VerificationError naming the node for a duplicate, an entry by a
    non-node, an undecodable message or a key commitment logged before the complaint round
    closed.  Signatures are the caller's business (step 6 checks them with the roster)."""
    st = CeremonyState(params, {}, [], {}, {}, [])
    nodes = set(params.nodes)
    for index, e in sorted(rows, key=lambda r: r[0]):
        if not isinstance(e, (DkgDealEntry, DkgAckEntry, DkgKeyEntry, DkgDisclosureEntry)):
            continue
        node = e.node
        if node not in nodes:
            raise _fail(f"{e.KIND} entry {index} by {node}, not a compute node of the "
                        "ceremony", node)
        try:
            if isinstance(e, DkgDealEntry):
                if node in st.deals or node in st.late_deals:
                    raise _fail(f"{node} dealt twice", node)
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
                complaints = [dkg.Disclosure.from_bytes(b) for b in
                              unpack(e.message_bytes(), f"ack entry {index}")]
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
        if isinstance(e, (DkgDealEntry, DkgAckEntry, DkgKeyEntry, DkgDisclosureEntry)):
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
    return dkg.derive(params, transport_keys, [d for _, d in st.deals.values()], complaints,
                      key_commits, [d for _, d in st.disclosures])


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
    return list(dkg.qualified_dealers(params, transport_keys,
                                      [d for _, d in st.deals.values()], complaints))


def simulate(params: dkg.DkgParams, transport_secrets: Mapping[str, Scalar]
             ) -> list[tuple[str, str, bytes]]:
    """An honest ceremony run in one process: ``(kind, node, message)`` in a log order that
    follows the rules above (every deal, every ack, every key commitment).  For offline
    tools, benchmarks and tests that build a log without running the nodes."""
    keys = {n: base_mul(transport_secrets[n]) for n in params.nodes}
    out: list[tuple[str, str, bytes]] = []
    rows: list[tuple[int, Entry]] = []
    kinds = {"dkg_deal": DkgDealEntry, "dkg_ack": DkgAckEntry, "dkg_key": DkgKeyEntry,
             "dkg_disclosure": DkgDisclosureEntry}
    progress = True
    while progress:
        progress = False
        for node in params.nodes:
            act = next_message(params, keys, rows, node, transport_secrets[node])
            if act is not None:
                kind, message = act
                out.append((kind, node, message))
                rows.append((len(rows), kinds[kind](node, message.hex())))
                progress = True
    return out


def next_message(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
                 rows: Sequence[tuple[int, Entry]], me: str, x: Scalar, *,
                 reconstruct: bool = False) -> tuple[str, bytes] | None:
    """What node ``me`` (transport key ``x``) logs next, or None while it waits for others.

    Deal first; ack (with a complaint for every share that fails its check) once every node
    dealt; publish its Feldman values once every node acked and it is qualified; with
    ``reconstruct`` (the caller's patience ran out), and once its own phase-2 values are on
    the log, disclose its share of every qualified dealer whose phase-2 values are missing or
    invalid."""
    st = state_of(params, rows)
    X = base_mul(x)
    if not st.acks and me not in st.deals:
        deal, _ = dkg.deal(params, me, transport_keys, seed=_seed(params, me, x))
        return "dkg_deal", deal.to_bytes()
    if me not in st.acks:
        if not st.dealt and not st.acks:
            return None
        complaints = []
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
        return "dkg_ack", pack(complaints)
    if not st.acked or (me in st.keys and not reconstruct):
        return None
    qual = qualified(params, transport_keys, st)
    if me in qual and me not in st.keys:
        logged = st.deals[me][1]
        _, secret = dkg.deal(params, me, transport_keys, seed=_seed(params, me, x))
        H = dkg.pedersen_h()
        if [base_mul(a) + b * H for a, b in zip(secret.a, secret.b, strict=True)] != list(
                logged.commitments):
            raise VerificationError(f"{me} cannot re-create the polynomials of the deal it "
                                    "logged (its key changed?): its phase-2 values will be "
                                    "reconstructed from disclosures", step=_STEP, party=me)
        return "dkg_key", dkg.key_commit(params, logged, secret).to_bytes()
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


def key_share(params: dkg.DkgParams, transport_keys: Mapping[str, Point],
              rows: Sequence[tuple[int, Entry]], me: str, x: Scalar) -> Scalar:
    """Node ``me``'s share ``x_j`` of the collective key, from the finished ceremony."""
    result = derive_from_log(params, transport_keys, rows)
    st = state_of(params, rows)
    return dkg.node_secret(params, result, me, x, [d for _, d in st.deals.values()])
