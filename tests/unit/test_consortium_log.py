"""The consortium on the log (step 6 of docs/verification.md) against an adversarial log
operator, on synthetic logs built in process, and the strict decoding of the two new entry
kinds.

Each reject test plays one adversary and names the step and the party that fail; its twin
(the same log without the forgery) passes:

* (a) a log whose genesis is another consortium's (a look-alike with sybil providers): only a
  party that pins the consortium id tells it from the real one;
* (b) a provider admitted by a membership change signing before its admission;
* (c) a revoked provider (or compute node) signing after its revocation;
* (d) a membership change short of the admission quorum;
* (e) a setup naming a compute node that is not a member (a fake node with a valid proof of
  knowledge of its transport key and a ceremony it took part in), or not naming one that is;
* (f) a setup whose collective key is not the one the key ceremony on the log produced
  (the ceremony's own adversaries: tests/unit/test_protocol_checks.py);
* (g) a ``party`` entry whose key is not the one the consortium admitted;
* (h) a genesis that is not entry 0 (a second consortium on one log).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from test_entries_helpers import Ceremony, key_ceremony, threshold_decryption
from test_protocol_checks import (
    CONSORTIUM,
    FOUNDERS,
    GENESIS,
    GENESIS_2OF3,
    KEYS,
    NODES,
    TRANSPORT,
    _genesis,
    _spec,
)

from statledger.proofs import sigma
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries as E
from statledger.protocol import flow
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.protocol.checks import check_query
from statledger.protocol.consortium import Member, MembershipChange, Roster, SignedGenesis
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries
from statledger.verifier.audit import check_one_query

#: Parties that are not founders: prov-4 (admitted by a change), node-x (a compute node the
#: log operator made up), mallory (a key nobody admitted).
OUTSIDERS = {"prov-4": 71, "node-x": 72, "mallory": 73}
ALL_KEYS = {**KEYS, **{p: SigningKey.from_bytes(bytes([s]) * 32) for p, s in OUTSIDERS.items()}}
#: the secrets of the compute nodes' transport keys (the ElGamal keys of their party entries)
ALL_TRANSPORT = {**TRANSPORT, "node-x": Scalar(4242), "mallory": Scalar(4343)}
ALL_STEPS = [6, 8, 9, 10, 11, 12, 13, 14, 15]


def _vk(party: str, keys: dict[str, SigningKey] = ALL_KEYS) -> str:
    return keys[party].public_key().to_bytes().hex()


class Log:
    """A synthetic log, built entry by entry in call order (an entry's index is its position).

    ``genesis`` is the consortium the log carries and ``keys`` the keys its parties sign
    with (defaults: the consortium of :mod:`test_protocol_checks` and the keys of its
    founders plus :data:`OUTSIDERS`).  The builder replays every membership change it logs
    (a change that is not valid is logged all the same: the log operator is the adversary)
    and keeps the key ceremony's and the query's state so that :meth:`finish` can complete
    the query honestly.
    """

    def __init__(self, genesis: SignedGenesis = GENESIS,
                 keys: dict[str, SigningKey] | None = None, min_providers: int = 2) -> None:
        self.signed = genesis
        self.cid = genesis.genesis.consortium_id
        self.keys = dict(ALL_KEYS if keys is None else keys)
        self.entries: list[E.Entry] = []
        g = genesis.genesis  # the roster it states, unverified: the builder is the adversary
        self.roster = Roster(self.cid, g.origin, {m.party_id: m for m in g.members},
                             frozenset(), g.witness_quorum, g.admission, 0, self.cid, 0,
                             g.decryption_threshold or 1)
        self.spec = _spec(min_providers)
        self.qid = self.spec.query_id_for("researcher")
        self.stat = get_statistic(self.spec.statistic)
        self.ranges = list(self.stat.layout(self.spec).ranges)
        #: the key ceremony logged by :meth:`ceremony`, if any
        self.logged_ceremony: Ceremony | None = None
        #: the ceremony whose key shares decrypt (the one the setup was made from)
        self.ceremony_of_setup: Ceremony | None = None
        self.setup_entry: E.SetupEntry | None = None
        self.compute: tuple[str, ...] = NODES
        self.X: Point | None = None
        self.subs: list[int] = []
        self.submitters: list[str] = []
        self.contributions: list[flow.Contribution] = []
        self.result_entry: E.Entry | None = None

    # -- the roster -------------------------------------------------------------------------
    def add(self, entry: E.Entry, signer: str) -> int:
        self.entries.append(E.sign(entry, self.keys[signer]))
        return len(self.entries) - 1

    def genesis(self, signed: SignedGenesis | None = None, signer: str = "ledger") -> int:
        return self.add(E.GenesisEntry.of(signed or self.signed), signer)

    def change(self, *, signers: Sequence[str] = ("node-a", "node-b"),
               admit: Sequence[Member] = (), revoke: Sequence[str] = ()) -> MembershipChange:
        """The next link of the chain, signed by ``signers``, with a proof of possession of
        every admitted key."""
        c = MembershipChange(self.cid, self.roster.seq + 1, self.roster.head,
                             admit=tuple(admit), revoke=tuple(revoke))
        for s in signers:
            c = c.sign(s, self.keys[s])
        for m in admit:
            c = c.prove_possession(m.party_id, self.keys[m.party_id])
        return c

    def membership(self, change: MembershipChange) -> int:
        index = self.add(E.MembershipEntry.of(change), "ledger")
        try:
            self.roster = self.roster.apply(change)
        except VerificationError:
            pass  # logged anyway: step 6 must refuse it
        return index

    def transport_key(self, node: str, *, key_of: str | None = None,
                      consortium: str | None = None) -> int:
        """``node``'s transport key (the ElGamal key the key ceremony encrypts its shares
        to), its proof of knowledge bound to ``consortium`` (default: the log's), in a party
        entry carrying and signed by the identity key of ``key_of`` (default: ``node``
        itself)."""
        x = ALL_TRANSPORT[node]
        X = base_mul(x)
        pok = sigma.prove_schnorr(x, X, flow.keyreg_context(consortium or self.cid, node))
        signer = key_of or node
        return self.add(E.PartyEntry(node, "compute", _vk(signer, self.keys), X.to_bytes().hex(),
                                     pok.to_bytes().hex()), signer)

    def party(self, party: str, role: str, *, key_of: str | None = None) -> int:
        """A provider's or querier's (optional) party entry."""
        signer = key_of or party
        return self.add(E.PartyEntry(party, role, _vk(signer, self.keys)), signer)

    def _ceremony_of(self, nodes: Sequence[str], threshold: int | None,
                     epoch: int | None) -> Ceremony:
        """An honest ceremony among ``nodes`` (their transport keys of :data:`ALL_TRANSPORT`)
        at the roster's threshold (at most ``len(nodes)``) and compute epoch, unless given."""
        t = min(self.roster.decryption_threshold, len(nodes)) if threshold is None else threshold
        return key_ceremony(self.cid, {n: ALL_TRANSPORT[n] for n in nodes}, t, self.keys,
                            epoch=self.roster.compute_epoch if epoch is None else epoch)

    def ceremony(self, nodes: Sequence[str] | None = None, *, threshold: int | None = None,
                 epoch: int | None = None) -> list[int]:
        """Log the ``dkg_*`` entries of an honest key ceremony among ``nodes`` (default: the
        compute members of the roster), each signed by its node."""
        nodes = nodes or [m.party_id for m in self.roster.of_role("compute")]
        self.logged_ceremony = cer = self._ceremony_of(nodes, threshold, epoch)
        return [self.add(e, e.claimed_author() or "") for e in cer.entries]

    def setup(self, compute: Sequence[str] | None = None, *, collective: Point | None = None,
              verification_keys: Sequence[Point] | None = None, threshold: int | None = None,
              consortium: str | None = None) -> int:
        """The setup the log signs: the outcome of the logged ceremony (or, when none is
        logged for ``compute``, of the honest ceremony among them, run off the log), each
        field replaceable by the log operator."""
        cer = self.logged_ceremony
        if cer is None or (compute is not None and tuple(sorted(compute)) != cer.nodes):
            cer = self._ceremony_of(sorted(compute or NODES), None, None)
        honest = cer.setup(self.cid)
        self.ceremony_of_setup = cer
        self.compute = cer.nodes
        self.X = collective if collective is not None else cer.collective
        self.setup_entry = replace(
            honest, consortium=consortium or self.cid,
            threshold=honest.threshold if threshold is None else threshold,
            collective_key=self.X.to_bytes().hex(),
            verification_keys=honest.verification_keys if verification_keys is None else
            tuple(p.to_bytes().hex() for p in verification_keys))
        return self.add(self.setup_entry, "ledger")

    def roster_entries(self) -> Log:
        """Genesis, the compute nodes' transport keys, the key ceremony, setup: the honest
        roster."""
        self.genesis()
        for n in sorted(m.party_id for m in self.roster.of_role("compute")):
            self.transport_key(n)
        self.ceremony()
        self.setup()
        return self

    # -- the query --------------------------------------------------------------------------
    def query(self) -> int:
        return self.add(E.QueryEntry.for_spec(self.spec, "researcher"), "researcher")

    def submit(self, provider: str) -> int:
        assert self.X is not None
        k = len(self.submitters)
        values = [min(hi, lo + 3 + k) for lo, hi in self.ranges]
        ev = encrypt_vector_with_proof(self.X, values, self.ranges,
                                       flow.submission_context(self.qid, provider))
        index = self.add(E.SubmissionEntry(self.qid, provider, ev.to_bytes().hex()), provider)
        self.subs.append(index)
        self.submitters.append(provider)
        self.contributions.append(flow.Contribution(ev, tuple(self.ranges)))
        return index

    def finish(self, endorsers: Sequence[str] | None = None, *,
               decrypting: Sequence[str] | None = None,
               decryptors: Sequence[str] | None = None) -> Log:
        """Aggregate, the decryption shares of ``decrypting`` (default: every compute node
        of the setup), the result naming ``decryptors`` (default: the first ``T`` of them)
        and the endorsements of ``endorsers`` (default: every provider that submitted), all
        honest."""
        assert self.ceremony_of_setup is not None and self.setup_entry is not None
        agg = flow.aggregate(self.contributions)
        flat = flow.flatten(agg)
        self.add(E.AggregateEntry(self.qid, tuple(self.subs), (),
                                  tuple(c.to_bytes().hex() for c in flat)), "researcher")
        decs, totals, named = threshold_decryption(
            self.ceremony_of_setup, self.setup_entry, self.qid, agg,
            [c.ranges for c in self.contributions], self.keys,
            self.compute if decrypting is None else decrypting, decryptors, spec=self.spec)
        self.entries += decs
        self.add(E.ResultEntry.for_totals(self.qid, totals,
                                          self.stat.decode(self.spec, totals).to_dict(), named),
                 "researcher")
        result = self.entries[-1]
        for p in self.submitters if endorsers is None else endorsers:
            self.add(E.EndorsementEntry(self.qid, p, E.result_digest(result.to_bytes())), p)
        return self

    def rows(self) -> list[tuple[int, bytes]]:
        return [(i, e.to_bytes()) for i, e in enumerate(self.entries)]


def _steps(rows: list[tuple[int, bytes]], **kw: Any) -> list[int]:
    seen: list[int] = []
    check_query(parse_entries(rows), on_step=lambda n, _d: seen.append(n), **kw)
    return seen


def _fails(rows: list[tuple[int, bytes]], step: int, party: str | None, match: str,
           **kw: Any) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as ei:
        check_query(parse_entries(rows), **kw)
    assert (ei.value.step, ei.value.party) == (f"step {step}", party), ei.value
    return ei.value


def _admit(log: Log, party: str = "prov-4", role: str = "provider", **kw: Any) -> MembershipChange:
    return log.change(admit=(Member(party, role, _vk(party)),), **kw)


def _honest(providers: Sequence[str] = ("prov-1", "prov-2")) -> Log:
    log = Log().roster_entries()
    log.query()
    for p in providers:
        log.submit(p)
    return log.finish()


# -- happy path --------------------------------------------------------------------------------


def test_a_membership_change_admitting_a_provider_passes_steps_5_to_15() -> None:
    log = Log().roster_entries()
    change = log.membership(_admit(log))
    log.party("prov-4", "provider")  # an optional party entry, with the admitted key
    log.query()
    log.submit("prov-1")
    log.submit("prov-4")
    rows = log.finish().rows()
    details: dict[int, str] = {}
    view = check_query(parse_entries(rows), pinned=CONSORTIUM, on_step=details.__setitem__)
    assert list(details) == ALL_STEPS
    assert view.consortium_id == CONSORTIUM and [i for i, _ in view.memberships] == [change]
    assert "(pinned), 1 membership change(s), 8 members" in details[6]
    assert "key ceremony of 2 compute nodes re-derived (2-of-2, 2 qualified dealers)" in (
        details[6])
    assert _steps(rows) == ALL_STEPS  # self-asserted: the same log
    r = check_one_query("q", rows)
    assert (r["status"], r["step"]) == ("valid", None), r


def test_the_honest_log_passes_pinned() -> None:
    assert _steps(_honest().rows(), pinned=CONSORTIUM) == ALL_STEPS


# -- (a) another consortium's genesis ----------------------------------------------------------


def test_a_look_alike_consortium_fails_step_6_when_the_real_one_is_pinned() -> None:
    """The log operator founds its own consortium, with the same name and party ids but keys
    it holds (sybil providers, its own compute nodes): every signature inside its log is
    valid, so only the pinned id tells it apart."""
    fake_keys = {p: SigningKey.from_bytes(bytes([i + 90]) * 32) for i, p in enumerate(FOUNDERS)}
    fake = _genesis(founders=FOUNDERS, keys=fake_keys)
    assert fake.genesis.name == GENESIS.genesis.name
    assert fake.genesis.consortium_id != CONSORTIUM
    log = Log(genesis=fake, keys=fake_keys).roster_entries()
    log.query()
    log.submit("prov-1")
    log.submit("prov-2")
    rows = log.finish().rows()
    assert _steps(rows) == ALL_STEPS  # internally consistent, self-asserted
    assert _steps(rows, pinned=fake.genesis.consortium_id) == ALL_STEPS
    err = _fails(rows, 6, "ledger", "not the pinned", pinned=CONSORTIUM)
    assert CONSORTIUM[:16] in err.reason and fake.genesis.consortium_id[:16] in err.reason
    # twin: the real consortium's log, the same pin
    assert _steps(_honest().rows(), pinned=CONSORTIUM) == ALL_STEPS


def test_the_real_genesis_with_a_missing_founder_signature_fails_step_6() -> None:
    unsigned = SignedGenesis(GENESIS.genesis, {p: s for p, s in GENESIS.signatures.items()
                                               if p != "prov-3"})
    log = Log(genesis=unsigned).roster_entries()
    log.query()
    _fails(log.rows(), 6, "prov-3", "founding member prov-3 has not signed the genesis",
           through=8)


def test_a_genesis_appended_under_another_key_fails_step_6() -> None:
    """Entry 0 is the real genesis but was not appended (signed) by its ledger member."""
    log = Log()
    log.genesis(signer="mallory")
    for n in NODES:
        log.transport_key(n)
    log.ceremony()
    log.setup()
    log.query()
    _fails(log.rows(), 6, "ledger", "signature", through=8)
    assert _steps(Log().roster_entries().rows(), through=6) == [6]  # twin: the ledger's key


def test_no_genesis_fails_step_6() -> None:
    log = Log()
    for n in NODES:
        log.transport_key(n)
    log.ceremony()
    log.setup()
    log.query()
    _fails(log.rows(), 6, "ledger", "no genesis entry", through=8)


# -- (b) signing before admission, (c) after revocation ------------------------------------------


@pytest.mark.parametrize("admitted_first", [True, False])
def test_a_provider_signing_before_its_admission_fails_step_9(admitted_first: bool) -> None:
    log = Log().roster_entries()
    log.query()
    if admitted_first:
        log.membership(_admit(log))
    early = log.submit("prov-4")
    if not admitted_first:
        admitted = log.membership(_admit(log))
        assert admitted == early + 1
    log.submit("prov-1")
    rows = log.finish().rows()
    if admitted_first:  # the twin: admitted, then submitted
        assert _steps(rows, pinned=CONSORTIUM) == ALL_STEPS
        return
    _fails(rows, 9, "prov-4", f"entry {early}: prov-4 is not a member of consortium "
                              f"{CONSORTIUM[:16]}")


def test_a_revoked_provider_submitting_after_its_revocation_fails_step_9() -> None:
    log = Log().roster_entries()
    log.query()
    log.submit("prov-1")
    log.membership(log.change(revoke=("prov-2",)))
    late = log.submit("prov-2")
    log.submit("prov-3")
    rows = log.finish().rows()
    _fails(rows, 9, "prov-2", f"entry {late}: prov-2 was revoked from the consortium",
           pinned=CONSORTIUM)
    r = check_one_query("q", rows)
    assert (r["status"], r["step"], r["party"]) == ("invalid", 9, "prov-2"), r


def test_a_revocation_after_the_query_leaves_it_valid() -> None:
    """The twin: the same revocation logged after the last endorsement."""
    log = _honest(("prov-1", "prov-2", "prov-3"))
    log.membership(log.change(revoke=("prov-2",)))
    assert _steps(log.rows(), pinned=CONSORTIUM) == ALL_STEPS


def test_a_provider_revoked_mid_query_cannot_endorse() -> None:
    log = Log().roster_entries()
    log.query()
    for p in ("prov-1", "prov-2"):
        log.submit(p)
    log.membership(log.change(revoke=("prov-2",)))
    _fails(log.finish().rows(), 15, "prov-2", "prov-2 was revoked")


def test_a_revoked_compute_node_cannot_decrypt() -> None:
    """2-of-3: node-b is revoked after the setup: its decryption share, logged after, is
    refused, named by the result or not.  The twin: node-a and node-c decrypt.  In the
    2-of-2 consortium the same revocation is itself refused: it would leave fewer compute
    nodes than the decryption threshold."""
    def query_then_revoke(genesis: SignedGenesis) -> Log:
        log = Log(genesis=genesis).roster_entries()
        log.query()
        log.submit("prov-1")
        log.submit("prov-2")
        log.membership(log.change(signers=("node-a", "ledger"), revoke=("node-b",)))
        return log

    for decryptors in (("node-a", "node-b"), ("node-a", "node-c")):
        rows = query_then_revoke(GENESIS_2OF3).finish(decryptors=decryptors).rows()
        _fails(rows, 12, "node-b", "node-b was revoked")
    twin = query_then_revoke(GENESIS_2OF3).finish(decrypting=("node-a", "node-c")).rows()
    assert _steps(twin, pinned=GENESIS_2OF3.genesis.consortium_id) == ALL_STEPS
    rows = query_then_revoke(GENESIS).finish().rows()
    _fails(rows, 6, None, "membership chain: the change leaves 1 compute node.s. for a "
                          "decryption threshold of 2")


# -- (d) a change short of the admission quorum -----------------------------------------------


@pytest.mark.parametrize("signers, party, match", [
    (("node-a",), None, "has 1 of the 2 signatures it needs"),
    (("prov-1", "prov-2"), "prov-1", r"prov-1 \(provider\) may not sign membership changes"),
    (("node-a", "mallory"), "mallory", "mallory is not a member"),
])
def test_a_change_without_its_quorum_fails_step_6(signers: tuple[str, ...], party: str | None,
                                                   match: str) -> None:
    log = Log().roster_entries()
    log.membership(_admit(log, signers=signers))
    log.query()
    log.submit("prov-1")
    log.submit("prov-4")
    rows = log.finish().rows()
    _fails(rows, 6, party, f"membership chain: .*{match}", pinned=CONSORTIUM)
    # the twin: the same change signed by a quorum (two compute nodes; node and ledger)
    for quorum in (("node-a", "node-b"), ("node-a", "ledger")):
        good = Log().roster_entries()
        good.membership(_admit(good, signers=quorum))
        good.query()
        good.submit("prov-1")
        good.submit("prov-4")
        assert _steps(good.finish().rows(), pinned=CONSORTIUM) == ALL_STEPS


def test_a_change_without_proof_of_possession_fails_step_6() -> None:
    log = Log().roster_entries()
    change = _admit(log)
    log.membership(MembershipChange(change.consortium, change.seq, change.prev, change.admit,
                                    signatures=change.signatures))
    log.query()
    _fails(log.rows(), 6, "prov-4", "no proof of possession", through=8)


def test_a_replayed_change_fails_step_6() -> None:
    log = Log().roster_entries()
    change = _admit(log)
    log.membership(change)
    log.membership(change)
    log.query()
    _fails(log.rows(), 6, None, "does not extend the chain", through=8)


def test_a_membership_entry_not_appended_by_the_log_fails_step_6() -> None:
    log = Log().roster_entries()
    log.add(E.MembershipEntry.of(_admit(log)), "node-a")  # a valid change, wrong outer key
    log.query()
    _fails(log.rows(), 6, "ledger", "signature", through=8)


# -- (e) the setup's compute nodes, (f) its collective key ----------------------------------------


def test_a_setup_with_a_fake_compute_node_fails_step_6() -> None:
    """The log operator adds node-x, whose keys it holds: a transport key with a valid
    proof of knowledge bound to this consortium, and a key ceremony of the three nodes
    (every entry validly signed).  node-x is no member, so the setup is refused."""
    log = Log()
    log.genesis()
    for n in (*NODES, "node-x"):
        log.transport_key(n)
    log.ceremony((*NODES, "node-x"))
    log.setup((*NODES, "node-x"))
    log.query()
    _fails(log.rows(), 6, "node-x", "node-x is not a member of consortium", through=8)
    # the same setup without node-x's party entry: the setup itself is refused
    log = Log()
    log.genesis()
    for n in NODES:
        log.transport_key(n)
    log.ceremony((*NODES, "node-x"))
    log.setup((*NODES, "node-x"))
    log.query()
    _fails(log.rows(), 6, "ledger", r"the setup names compute nodes \['node-a', 'node-b', "
                                    r"'node-x'\], the consortium's are \['node-a', 'node-b'\]",
           through=8)


def test_a_setup_leaving_out_a_member_node_fails_step_6() -> None:
    """A setup naming node-a alone (a collective key one node can decrypt with), from a
    ceremony of node-a alone."""
    log = Log()
    log.genesis()
    for n in NODES:
        log.transport_key(n)
    log.ceremony(("node-a",))
    assert log.logged_ceremony is not None and log.logged_ceremony.threshold == 1
    log.setup(("node-a",))
    log.query()
    _fails(log.rows(), 6, "ledger", "the setup names compute nodes", through=8)


def test_a_compute_node_admitted_by_a_change_may_be_in_the_setup() -> None:
    """The twin of the fake node: node-x admitted by a change before the setup.  The
    consortium's threshold stays 2 (now 2-of-3) and the change opened compute epoch 1: the
    ceremony is bound to it, so a ceremony run for epoch 0 (before the change, or replayed
    from it) is refused."""
    def build(epoch: int | None) -> Log:
        log = Log()
        log.genesis()
        log.membership(_admit(log, "node-x", "compute"))
        assert (log.roster.compute_epoch, log.roster.decryption_threshold) == (1, 2)
        for n in (*NODES, "node-x"):
            log.transport_key(n)
        log.ceremony(epoch=epoch)
        log.setup()
        log.query()
        log.submit("prov-1")
        log.submit("prov-2")
        return log

    log = build(None)
    assert log.compute == (*NODES, "node-x") and log.setup_entry is not None
    assert log.setup_entry.threshold == 2
    assert _steps(log.finish().rows(), pinned=CONSORTIUM) == ALL_STEPS
    stale = build(0)
    with pytest.raises(VerificationError, match="key ceremony: ") as ei:
        check_query(parse_entries(stale.rows()), pinned=CONSORTIUM, through=9)
    assert ei.value.step == "step 6"


def test_a_second_setup_fails_step_5() -> None:
    log = Log().roster_entries()
    log.transport_key("node-x")
    second = log.setup((*NODES, "node-x"))
    log.query()
    with pytest.raises(VerificationError, match=f"entry {second}: two setup entries") as ei:
        parse_entries(log.rows())
    assert ei.value.step == "step 5"


@pytest.mark.parametrize("which", ["random", "one transport key", "the sum of the transport keys",
                                   "a transport key swapped"])
def test_a_fake_collective_key_fails_step_6(which: str) -> None:
    """The log carries the honest ceremony; the setup states another collective key: one
    the log operator holds, a node's transport key, the sum of the transport keys (the key
    of the n-of-n design), that sum with a transport key the operator holds."""
    fake = {"random": base_mul(Scalar(987654321)),  # a key the log operator holds
            "one transport key": base_mul(TRANSPORT["node-a"]),
            "the sum of the transport keys": flow.collective_key(
                [base_mul(TRANSPORT[n]) for n in NODES]),
            "a transport key swapped": flow.collective_key(
                [base_mul(ALL_TRANSPORT["node-x"]), base_mul(TRANSPORT["node-b"])])}[which]
    log = Log()
    log.genesis()
    for n in NODES:
        log.transport_key(n)
    log.ceremony()
    log.setup(collective=fake)
    log.query()
    log.submit("prov-1")
    _fails(log.rows(), 6, "ledger",
           "collective_key is not the key the ceremony on the log produced", through=9)


def test_a_setup_of_another_consortium_fails_step_6() -> None:
    log = Log()
    log.genesis()
    for n in NODES:
        log.transport_key(n)
    log.ceremony()
    log.setup(consortium="ab" * 32)
    log.query()
    _fails(log.rows(), 6, "ledger", "the setup entry belongs to another consortium", through=8)


def test_a_key_share_proven_for_another_consortium_fails_step_6() -> None:
    log = Log()
    log.genesis()
    log.transport_key("node-a")
    log.transport_key("node-b", consortium=_genesis("elsewhere").genesis.consortium_id)
    log.ceremony()
    log.setup()
    log.query()
    _fails(log.rows(), 6, "node-b", "proof of knowledge", through=8)


def test_a_key_share_logged_after_the_setup_fails_step_6() -> None:
    log = Log()
    log.genesis()
    log.transport_key("node-a")
    log.ceremony()
    log.setup()
    log.transport_key("node-b")
    log.query()
    _fails(log.rows(), 6, "node-b", "node-b registered no key before the setup", through=8)


# -- (g) a party entry with a key the consortium did not admit ------------------------------------


@pytest.mark.parametrize("who", ["node-a", "prov-1", "researcher"])
def test_a_party_entry_with_another_key_fails_step_6(who: str) -> None:
    log = Log()
    log.genesis()
    for n in NODES:
        log.transport_key(n, key_of="mallory" if n == who else None)
    if who != "node-a":
        log.party(who, FOUNDERS[who], key_of="mallory")
    log.ceremony()
    log.setup()
    log.query()
    _fails(log.rows(), 6, who, f"the party entry of {who} carries a key the consortium did "
                               "not admit", through=8)
    # twin: the same party entry under the admitted key
    twin = Log()
    twin.genesis()
    for n in NODES:
        twin.transport_key(n)
    if who != "node-a":
        twin.party(who, FOUNDERS[who])
    twin.ceremony()
    twin.setup()
    twin.query()
    assert _steps(twin.rows(), through=8) == [6, 8]


def test_a_party_entry_in_another_role_fails_step_6() -> None:
    log = Log().roster_entries()
    log.party("prov-1", "querier")
    log.query()
    _fails(log.rows(), 6, "prov-1", "prov-1 is a provider, not a querier", through=8)


def test_a_party_entry_before_its_admission_fails_step_6() -> None:
    log = Log().roster_entries()
    log.party("prov-4", "provider")
    log.membership(_admit(log))
    log.query()
    _fails(log.rows(), 6, "prov-4", "prov-4 is not a member", through=8)


# -- (h) the genesis is entry 0 ----------------------------------------------------------------


def test_a_genesis_at_index_3_fails_step_5() -> None:
    log = Log()
    for n in NODES:
        log.transport_key(n)
    log.setup()
    assert log.genesis() == 3
    log.query()
    with pytest.raises(VerificationError, match="entry 3: a genesis entry that is not entry 0"
                       ) as ei:
        check_query(parse_entries(log.rows()), pinned=CONSORTIUM)
    assert (ei.value.step, ei.value.party) == ("step 5", "ledger")


def test_a_second_genesis_fails_step_5() -> None:
    log = Log().roster_entries()
    other = _genesis("a second consortium")
    second = log.add(E.GenesisEntry.of(other), "ledger")
    assert second == 10  # genesis, 2 transport keys, 6 ceremony entries, setup
    log.query()
    with pytest.raises(VerificationError, match="entry 10: a genesis entry that is not entry 0"
                       ) as ei:
        parse_entries(log.rows())
    assert ei.value.step == "step 5"
    r = check_one_query("q", log.rows())
    assert (r["status"], r["step"]) == ("invalid", 5), r


# -- codec: reject twins of the two new kinds ------------------------------------------------


def _entries() -> dict[str, E.Entry]:
    log = Log()
    log.genesis()
    log.membership(_admit(log))
    return {"genesis": log.entries[0], "membership": log.entries[1]}


ENTRIES = _entries()
KINDS = sorted(ENTRIES)


def _wire(kind: str) -> dict[str, Any]:
    return parse_cbor(ENTRIES[kind].to_bytes())


def _with_document(kind: str, document: object) -> bytes:
    return cbor_bytes({**_wire(kind), "document": document})


@pytest.mark.parametrize("kind", KINDS)
def test_the_new_kinds_round_trip(kind: str) -> None:
    e = ENTRIES[kind]
    data = e.to_bytes()
    back = E.Entry.from_bytes(data)
    assert back == e and back.to_bytes() == data and back.KIND == kind
    assert isinstance(_wire(kind)["document"], bytes)  # a byte string on the wire
    E.verify_signature(back, ALL_KEYS["ledger"].public_key(), "ledger")
    if isinstance(back, E.GenesisEntry):
        assert back.signed_genesis() == GENESIS and back.claimed_author() == "ledger"
    else:
        assert isinstance(back, E.MembershipEntry)
        assert Roster.from_genesis(GENESIS).apply(back.change()).member("prov-4")


@pytest.mark.parametrize("kind", KINDS)
def test_a_bit_flip_in_the_document_is_refused(kind: str) -> None:
    doc = _wire(kind)["document"]
    # structure broken: the opening brace; the first hex digit of a signature turned into a
    # character that is no hex digit
    first_sig = re.search(rb'"signatures":\{"[^"]+":"', doc)
    assert first_sig is not None
    for pos, bit in ((0, 0), (first_sig.end(), 6)):
        flipped = bytearray(doc)
        flipped[pos] ^= 1 << bit
        with pytest.raises(MalformedError, match=f"{kind}.document"):
            E.Entry.from_bytes(_with_document(kind, bytes(flipped)))
    # any bit: refused at decoding, or decoded with neither the log's signature nor the
    # consortium's valid
    malformed = 0
    for pos in range(0, len(doc), max(1, len(doc) // 150)):
        flipped = bytearray(doc)
        flipped[pos] ^= 1
        try:
            e = E.Entry.from_bytes(_with_document(kind, bytes(flipped)))
        except MalformedError:
            malformed += 1
            continue
        with pytest.raises(VerificationError):
            E.verify_signature(e, ALL_KEYS["ledger"].public_key(), "ledger")
        with pytest.raises(VerificationError):
            if isinstance(e, E.GenesisEntry):
                e.signed_genesis().verify(CONSORTIUM)
            else:
                assert isinstance(e, E.MembershipEntry)
                Roster.from_genesis(GENESIS).apply(e.change())
    assert malformed > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_non_canonical_document_is_refused(kind: str) -> None:
    obj = json.loads(_wire(kind)["document"])
    for text in (json.dumps(obj),                              # spaces after separators
                 json.dumps(obj, separators=(",", ":"), indent=1),
                 json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")),
                 json.dumps(obj, separators=(",", ":"), sort_keys=True) + "\n",
                 " " + json.dumps(obj, separators=(",", ":"), sort_keys=True)):
        with pytest.raises(MalformedError, match=f"{kind}.document: not the canonical"):
            E.Entry.from_bytes(_with_document(kind, text.encode()))
    # the version (2 since the genesis pins the decryption threshold) spelled 2.0 (== 2 in
    # Python): refused by the document parser itself (an exact integer 2), and the canonical
    # re-encoding would refuse it too; spelled true (== 1, the retired version) likewise
    for v, why in ((2.0, "expected v 2"), (True, "")):
        body = json.loads(_wire(kind)["document"])
        (body["genesis"] if kind == "genesis" else body)["v"] = v
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        with pytest.raises(MalformedError, match=f"{kind}.document: .*{why}"):
            E.Entry.from_bytes(_with_document(kind, text.encode()))
    # twin: the canonical text is accepted
    canonical = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
    assert canonical == _wire(kind)["document"]
    assert E.Entry.from_bytes(_with_document(kind, canonical)) == ENTRIES[kind]
    # not JSON a strict parser takes: a duplicate key, a BOM, not UTF-8
    last = sorted(obj)[-1]
    dup = canonical[:-1] + b"," + json.dumps({last: obj[last]}, separators=(",", ":"),
                                             sort_keys=True).encode()[1:]
    for bad in (dup, b"\xef\xbb\xbf" + canonical, canonical[:-1] + b"\xff}"):
        with pytest.raises(MalformedError, match=f"{kind}.document"):
            E.Entry.from_bytes(_with_document(kind, bad))


@pytest.mark.parametrize("kind", KINDS)
def test_a_truncated_or_padded_document_is_refused(kind: str) -> None:
    doc = _wire(kind)["document"]
    for bad in (doc[:-1], doc[: len(doc) // 2], doc[:1], b"", doc + b"\x00", doc + b"{}"):
        with pytest.raises(MalformedError, match=f"{kind}.document"):
            E.Entry.from_bytes(_with_document(kind, bad))


@pytest.mark.parametrize("kind", KINDS)
def test_extra_missing_keys_and_wrong_types_are_refused(kind: str) -> None:
    obj = _wire(kind)
    with pytest.raises(MalformedError, match="unexpected"):
        E.Entry.from_bytes(cbor_bytes({**obj, "zzz": 1}))
    with pytest.raises(MalformedError, match="unexpected"):  # the other kind's field names
        E.Entry.from_bytes(cbor_bytes({**obj, "party_id": "ledger"}))
    with pytest.raises(MalformedError, match="missing"):
        E.Entry.from_bytes(cbor_bytes({k: v for k, v in obj.items() if k != "document"}))
    doc = obj["document"]
    for wrong in (doc.decode(), doc.hex(), list(doc[:4]), 7, None, True, 1.5,
                  json.loads(doc)):
        with pytest.raises(MalformedError, match=f"{kind}.document"):
            E.Entry.from_bytes(_with_document(kind, wrong))


def test_a_document_of_the_other_kind_is_refused() -> None:
    genesis_doc = _wire("genesis")["document"]
    change_doc = _wire("membership")["document"]
    with pytest.raises(MalformedError, match="genesis.document"):
        E.Entry.from_bytes(_with_document("genesis", change_doc))
    with pytest.raises(MalformedError, match="membership.document"):
        E.Entry.from_bytes(_with_document("membership", genesis_doc))
    # the bare genesis (without its signatures) is not a signed genesis either
    bare = json.dumps(json.loads(genesis_doc)["genesis"], separators=(",", ":"),
                      sort_keys=True).encode()
    with pytest.raises(MalformedError, match="genesis.document"):
        E.Entry.from_bytes(_with_document("genesis", bare))
    # a genesis that breaks its own rules (two ledgers), canonically encoded
    g = json.loads(genesis_doc)
    g["genesis"]["members"][1]["role"] = "ledger"
    with pytest.raises(MalformedError, match="genesis.document: .*exactly one member with role"):
        E.Entry.from_bytes(_with_document(
            "genesis", json.dumps(g, separators=(",", ":"), sort_keys=True).encode()))


def test_the_constructors_validate_the_document() -> None:
    doc = _wire("genesis")["document"].hex()
    assert E.GenesisEntry(doc).signed_genesis() == GENESIS
    for bad in (doc.upper(), doc[:-2], "", doc + "0", 5):
        with pytest.raises(MalformedError, match="genesis.document"):
            E.GenesisEntry(bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="membership.document"):
        E.MembershipEntry(doc)
