"""The query state machine: happy paths and every out-of-order / duplicate / unknown event."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_statemachine_helpers import (
    COMPUTE,
    KEYS,
    NOISE_PARAMS,
    ROSTER,
    events,
    make_spec,
    sign,
    signed_genesis,
    vk,
)

from statledger.proofs.errors import ProtocolError
from statledger.protocol import entries as E
from statledger.protocol.consortium import Member, MembershipChange
from statledger.protocol.consortium import Roster as ConsortiumRoster
from statledger.protocol.statemachine import (
    Phase,
    QueryState,
    Roster,
    advance,
    expected_next,
    replay,
    start,
)

EV = events(dp=True)
EV_PLAIN = events(dp=False)


def _run(ev: dict[str, E.Entry], names: list[str], **kw) -> QueryState:
    return replay([ev[n] for n in names], ROSTER, **kw)


def test_happy_path_dp_phases_and_expected():
    names = list(EV)
    state = start(EV["query"], ROSTER)  # type: ignore[arg-type]
    assert state.phase is Phase.CREATED and state.noise_required and state.min_providers == 2
    assert ("submission", "prov-4") in expected_next(state)
    assert ("aggregate", None) not in expected_next(state)
    phases = []
    for i, n in enumerate(names[1:], start=1):
        state = advance(state, EV[n], i)
        phases.append((n, state.phase))
    assert dict(phases) == {
        "sub:prov-1": Phase.COLLECTING, "sub:prov-2": Phase.COLLECTING,
        "sub:prov-3": Phase.COLLECTING, "commit:node-a": Phase.COLLECTING,
        "commit:node-b": Phase.COLLECTING, "coin:node-a": Phase.COLLECTING,
        "coin:node-b": Phase.COLLECTING, "aggregate": Phase.AGGREGATED,
        "dec:node-a": Phase.DECRYPTING, "dec:node-b": Phase.DECRYPTED,
        "result": Phase.RELEASED, "end:prov-1": Phase.RELEASED, "end:prov-2": Phase.RELEASED,
        "end:prov-3": Phase.ENDORSED}
    assert state.submitted == ("prov-1", "prov-2", "prov-3")
    assert state.committed == COMPUTE and state.coined == COMPUTE
    assert state.decrypted == COMPUTE
    assert state.endorsed == ("prov-1", "prov-2", "prov-3")
    assert state.result_digest == E.result_digest(EV["result"])  # type: ignore[arg-type]
    assert expected_next(state) == []
    assert _run(EV, names) == state


def test_expected_next_along_the_way():
    s = _run(EV, ["query", "sub:prov-1", "sub:prov-2"])
    nxt = expected_next(s)
    assert ("noise_commit", "node-a") in nxt and ("submission", "prov-3") in nxt
    assert not any(k == "noise_coin" for k, _ in nxt)  # no commitment yet
    assert ("aggregate", None) not in nxt  # noise still missing
    s = _run(EV, ["query", "sub:prov-1", "sub:prov-2", "commit:node-a", "commit:node-b"])
    assert ("noise_coin", "node-a") in expected_next(s)
    assert ("aggregate", None) not in expected_next(s)  # the noise set is still open
    s = _run(EV, ["query", "sub:prov-1", "sub:prov-2", "commit:node-a", "commit:node-b",
                  "coin:node-b"])
    assert ("aggregate", None) not in expected_next(s)  # 1 of the T = 2 coin shares
    assert not any(k == "noise_commit" for k, _ in expected_next(s))  # the set is closed
    s = advance(s, EV["coin:node-a"])
    assert ("aggregate", None) in expected_next(s)
    s = _run(EV, list(EV)[:10])
    assert s.phase is Phase.DECRYPTING and expected_next(s) == [("decryption", "node-b")]
    s = _run(EV, list(EV)[:12])
    assert expected_next(s) == [("endorsement", p) for p in ("prov-1", "prov-2", "prov-3")]
    s = _run(EV, list(EV)[:11])
    assert expected_next(s) == [("result", None)]


def test_happy_path_without_dp():
    s = _run(EV_PLAIN, list(EV_PLAIN))
    assert s.phase is Phase.ENDORSED and not s.noise_required and s.committed == ()
    s = _run(EV_PLAIN, ["query", "sub:prov-1", "sub:prov-2"])
    assert ("aggregate", None) in expected_next(s)
    assert not any(k.startswith("noise") for k, _ in expected_next(s))


def test_noise_may_precede_submissions():
    names = ["query", "commit:node-b", "sub:prov-2", "commit:node-a", "coin:node-a",
             "sub:prov-1", "sub:prov-3", "coin:node-b"]
    s = _run(EV, names, indices=[0, 5, 2, 4, 6, 1, 3, 7])
    assert s.phase is Phase.COLLECTING
    s = advance(s, EV["aggregate"])
    assert s.phase is Phase.AGGREGATED


PREFIX_AGG = ["query", "sub:prov-1", "sub:prov-2", "sub:prov-3", "commit:node-a",
              "commit:node-b", "coin:node-a", "coin:node-b", "aggregate"]


@pytest.mark.parametrize("names, match", [
    (["query", "dec:node-a"], "decryption from node node-a before the aggregate"),
    (["query", "sub:prov-1", "result"], "result before 2 decryptions"),
    (["query", "sub:prov-1", "end:prov-1"], "endorsement from provider prov-1 before the result"),
    (["query", "sub:prov-1", "commit:node-a", "commit:node-b", "coin:node-a", "aggregate"],
     "aggregate before enough submissions: 1 of 2"),
    (["query", "sub:prov-1", "sub:prov-2", "sub:prov-3", "commit:node-a", "aggregate"],
     "aggregate before the noise round completed"),
    (["query", "sub:prov-1", "sub:prov-2", "commit:node-a", "commit:node-b", "coin:node-a",
      "aggregate"], r"aggregate before the noise round completed \(1 of 2 coin shares\)"),
    (["query", "sub:prov-1", "commit:node-a", "coin:node-a"],
     "coin share from node node-a before 2 noise commitments"),
    (["query", "commit:node-a", "commit:node-b", "coin:node-a", "commit:node-a"],
     "noise commitment from node node-a after the first coin share"),
    (PREFIX_AGG + ["sub:prov-1"], "submission from provider prov-1 after the aggregate"),
    (PREFIX_AGG + ["commit:node-a"], "noise commitment from node node-a after the aggregate"),
    (PREFIX_AGG + ["coin:node-a"], "coin share from node node-a after the aggregate"),
    (PREFIX_AGG + ["result"], r"result before 2 decryptions \(none yet from node-a, node-b;"),
    (PREFIX_AGG + ["dec:node-a", "result"],
     r"result before 2 decryptions \(none yet from node-b;"),
    (PREFIX_AGG + ["dec:node-a", "end:prov-1"], "endorsement from provider prov-1 before"),
    (["sub:prov-1", "query"], "submission entry from prov-1 before the query entry"),
])
def test_out_of_order_rejected(names, match):
    with pytest.raises(ProtocolError, match=match):
        _run(EV, names)
    # twin: the same prefix without its last event is accepted
    if len(names) > 1 and names[0] == "query":
        _run(EV, names[:-1])


@pytest.mark.parametrize("names, match", [
    (["query", "sub:prov-1", "sub:prov-1"], "duplicate submission from provider prov-1"),
    (["query", "commit:node-a", "commit:node-a"], "duplicate noise commitment from node node-a"),
    (["query", "commit:node-a", "commit:node-b", "coin:node-b", "coin:node-b"],
     "duplicate coin share from node node-b"),
    (PREFIX_AGG + ["dec:node-b", "dec:node-b"], "duplicate decryption from node node-b"),
    (PREFIX_AGG + ["dec:node-a", "dec:node-b", "dec:node-b"],
     "duplicate decryption from node node-b"),
    (PREFIX_AGG + ["aggregate"], "aggregate: duplicate"),
    (PREFIX_AGG + ["dec:node-a", "dec:node-b", "result", "result"], "duplicate result"),
    (PREFIX_AGG + ["dec:node-a", "dec:node-b", "result", "end:prov-2", "end:prov-2"],
     "duplicate endorsement from provider prov-2"),
    (["query", "query"], "query entry from researcher: duplicate query"),
])
def test_duplicates_rejected(names, match):
    with pytest.raises(ProtocolError, match=match):
        _run(EV, names)
    _run(EV, names[:-1])


def test_unknown_parties_rejected():
    q = EV["query"].query_id  # type: ignore[attr-defined]
    s = _run(EV, ["query", "sub:prov-1"])
    cases = [
        (E.SubmissionEntry(q, "prov-9", "00"), "submission from unknown provider prov-9"),
        (E.SubmissionEntry(q, "node-a", "00"), "submission from unknown provider node-a"),
        (E.NoiseCommitEntry(q, "node-z", "00", NOISE_PARAMS),
         "noise commitment from unknown compute node node-z"),
        (E.NoiseCommitEntry(q, "prov-1", "00", NOISE_PARAMS),
         "noise commitment from unknown compute node prov-1"),
        (E.NoiseCoinEntry(q, "node-z", _G, "cd" * 64), "coin share from unknown compute node"),
    ]
    for e, match in cases:
        with pytest.raises(ProtocolError, match=match):
            advance(s, e)
    s = _run(EV, list(EV)[:9])
    with pytest.raises(ProtocolError, match="decryption from unknown compute node node-z"):
        advance(s, replace(EV["dec:node-a"], node="node-z"))
    s = _run(EV, list(EV)[:12])
    digest = E.result_digest(EV["result"])  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="endorsement from unknown provider prov-9"):
        advance(s, E.EndorsementEntry(q, "prov-9", digest))
    with pytest.raises(ProtocolError, match="endorsement from provider prov-4, which did not"):
        advance(s, E.EndorsementEntry(q, "prov-4", digest))
    # twin: the same endorsement from a submitter is accepted
    advance(s, E.EndorsementEntry(q, "prov-1", digest))


def test_unknown_querier_and_roster_checks():
    spec = make_spec(True)
    other = sign(E.QueryEntry.for_spec(spec, "mallory"), "researcher")
    with pytest.raises(ProtocolError, match="unknown querier mallory"):
        start(other, ROSTER)  # type: ignore[arg-type]
    start(other, replace(ROSTER, queriers=None))  # type: ignore[arg-type]
    big = sign(E.QueryEntry.for_spec(make_spec(True, min_providers=5), "researcher"),
               "researcher")
    with pytest.raises(ProtocolError, match="needs 5 providers, roster has 4"):
        start(big, ROSTER)  # type: ignore[arg-type]
    for bad in (dict(compute=(), providers=("p",)), dict(compute=("a", "a"), providers=("p",)),
                dict(compute=("a",), providers=("a",)), dict(compute=("a",), providers=())):
        with pytest.raises(ProtocolError):
            Roster(**bad)  # type: ignore[arg-type]


def test_wrong_query_id_rejected():
    other = events(dp=True, min_providers=3)
    s = _run(EV, ["query", "sub:prov-1"])
    for name in ("sub:prov-2", "commit:node-a", "coin:node-a", "aggregate", "dec:node-a",
                 "result", "end:prov-1"):
        e = other[name]
        who = e.claimed_author()
        pattern = f"{e.KIND} entry{' from ' + who if who else ''}: wrong query id"
        with pytest.raises(ProtocolError, match=pattern):
            advance(s, e)


def test_noise_on_query_without_dp_rejected():
    s = _run(EV_PLAIN, ["query", "sub:prov-1"])
    q = EV_PLAIN["query"].query_id  # type: ignore[attr-defined]
    with pytest.raises(ProtocolError,
                       match="noise commitment from node node-a, but query .* no differen"):
        advance(s, sign(E.NoiseCommitEntry(q, "node-a", "00", NOISE_PARAMS), "node-a"))
    with pytest.raises(ProtocolError, match="coin share from node node-a, but query"):
        advance(s, sign(E.NoiseCoinEntry(q, "node-a", _G, "cd" * 64), "node-a"))


def test_non_query_kinds_rejected():
    s = _run(EV, ["query"])
    party = E.PartyEntry("prov-1", "provider", KEYS["prov-1"].public_key().to_bytes().hex())
    with pytest.raises(ProtocolError, match="party entry from prov-1 is not an event"):
        advance(s, party)
    genesis = sign(E.GenesisEntry.of(signed_genesis()), "ledger")
    with pytest.raises(ProtocolError, match="genesis entry from ledger is not an event"):
        advance(s, genesis)
    with pytest.raises(ProtocolError, match="membership entry is not an event"):
        advance(s, sign(E.MembershipEntry.of(_admit_prov_4()), "ledger"))
    with pytest.raises(ProtocolError, match="setup entry is not an event"):
        advance(s, sign(E.SetupEntry("ab" * 32, COMPUTE, 2, _G, (_G, _G)), "ledger"))
    for cls in (E.DkgDealEntry, E.DkgAckEntry, E.DkgKeyEntry, E.DkgDisclosureEntry):
        with pytest.raises(ProtocolError, match=f"{cls.KIND} entry from node-a"):
            advance(s, sign(cls("node-a", "00"), "node-a"))
    with pytest.raises(ProtocolError, match="not a log entry"):
        advance(s, "hello")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="cannot start"):
        start(EV["aggregate"], ROSTER)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="no entries"):
        replay([], ROSTER)


def test_aggregate_must_list_exactly_the_logged_contributions():
    names = PREFIX_AGG[:-1]
    agg = EV["aggregate"]
    assert isinstance(agg, E.AggregateEntry)
    s = _run(EV, names)  # indices 0..7: subs 1-3, commitments 4-5, coin shares 6-7
    advance(s, agg)  # lists (1, 2, 3) and (4, 5): accepted
    for subs, noise, match in [
        ((1, 2), (4, 5), "lists 2 submissions, the log has 3"),
        ((1, 2, 3, 9), (4, 5), "lists 4 submissions"),
        ((1, 2, 9), (4, 5), r"lists submissions \[1, 2, 9\], the log has \[1, 2, 3\]"),
        ((1, 2, 3), (4,), "lists 1 noise commitments, the log has 2"),
        ((1, 2, 3), (5, 6), "lists noise commitments"),
        ((1, 2, 3), (6, 7), "lists noise commitments"),  # the coin shares are no share
        ((2, 3, 4), (1, 5), "lists submissions"),
    ]:
        with pytest.raises(ProtocolError, match=match):
            advance(s, replace(agg, submissions=subs, noise=noise))


def test_endorsement_must_name_the_released_result():
    s = _run(EV, list(EV)[:12])
    e = EV["end:prov-1"]
    with pytest.raises(ProtocolError, match="endorsement from provider prov-1 names result"):
        advance(s, replace(e, result_digest="00" * 32))
    advance(s, e)


_G = "02" "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # the generator


def _admit_prov_4() -> MembershipChange:
    cid = signed_genesis().genesis.consortium_id
    change = MembershipChange(cid, 1, cid, admit=(Member("prov-4", "provider", vk("prov-4")),))
    change = change.sign("node-a", KEYS["node-a"]).sign("node-b", KEYS["node-b"])
    return change.prove_possession("prov-4", KEYS["prov-4"])


def test_min_providers_override_and_roster_from_entries():
    s = _run(EV, ["query", "sub:prov-1", "commit:node-a", "commit:node-b", "coin:node-a",
                  "coin:node-b"], min_providers=1)
    assert ("aggregate", None) in expected_next(s)
    signed = signed_genesis()
    cid = signed.genesis.consortium_id
    genesis = sign(E.GenesisEntry.of(signed), "ledger")
    setup = sign(E.SetupEntry(cid, COMPUTE, 2, _G, (_G, _G)), "ledger")
    # providers and queriers come from the consortium roster, compute nodes from the setup;
    # party entries (key shares) play no part
    shares = [sign(E.PartyEntry(n, "compute", vk(n), _G, "ab" * 64), n) for n in COMPUTE]
    # ... and the decryption threshold from the setup
    founders = Roster(COMPUTE, ("prov-1", "prov-2", "prov-3"), ("researcher",), 2)
    assert Roster.from_entries([genesis, *shares, setup]) == founders
    assert Roster.from_entries([genesis, setup]) == founders
    # a membership change admitting prov-4: in the roster after the chain is replayed
    admit = _admit_prov_4()
    member = sign(E.MembershipEntry.of(admit), "ledger")
    r = Roster.from_entries([genesis, *shares, member, setup])
    assert r == replace(ROSTER, threshold=2)
    assert r.providers == ("prov-1", "prov-2", "prov-3", "prov-4")
    # ... and out of it again once revoked
    after = ConsortiumRoster.from_genesis(signed).apply(admit)
    revoke = MembershipChange(cid, 2, after.head, revoke=("prov-2",))
    revoke = revoke.sign("node-a", KEYS["node-a"]).sign("node-b", KEYS["node-b"])
    r = Roster.from_entries([genesis, member, sign(E.MembershipEntry.of(revoke), "ledger"), setup])
    assert r.providers == ("prov-1", "prov-3", "prov-4")
    assert Roster.of(after, ("node-b",)) == Roster(("node-b",), ROSTER.providers, ("researcher",))
    # reject twins: no genesis, no setup, two of either
    with pytest.raises(ProtocolError, match="no setup"):
        Roster.from_entries([genesis, *shares])
    with pytest.raises(ProtocolError, match="more than one setup"):
        Roster.from_entries([genesis, setup, setup])
    with pytest.raises(ProtocolError, match="no genesis"):
        Roster.from_entries([*shares, setup])
    with pytest.raises(ProtocolError, match="more than one genesis"):
        Roster.from_entries([genesis, genesis, setup])
    # a change without its quorum (one of the two compute signatures), a replayed change,
    # a change whose admitted key was not proven: the chain is refused, not skipped
    weak = MembershipChange(cid, 1, cid, admit=(Member("prov-4", "provider", vk("prov-4")),))
    weak = weak.sign("node-a", KEYS["node-a"]).prove_possession("prov-4", KEYS["prov-4"])
    unproven = MembershipChange(cid, 1, cid, admit=(Member("prov-4", "provider", vk("prov-4")),))
    unproven = unproven.sign("node-a", KEYS["node-a"]).sign("node-b", KEYS["node-b"])
    for bad, match in ((weak, "1 of the 2 signatures"), (unproven, "proof of possession")):
        with pytest.raises(ProtocolError, match=f"membership chain: .*{match}"):
            Roster.from_entries([genesis, sign(E.MembershipEntry.of(bad), "ledger"), setup])
    with pytest.raises(ProtocolError, match="membership chain: .*does not extend the chain"):
        Roster.from_entries([genesis, member, member, setup])
    # a genesis a founder did not sign
    unsigned = sign(E.GenesisEntry.of(replace(signed, signatures={
        p: s for p, s in signed.signatures.items() if p != "prov-3"})), "ledger")
    with pytest.raises(ProtocolError, match="prov-3 has not signed the genesis"):
        Roster.from_entries([unsigned, setup])


def test_decryption_share_count_must_match_aggregate():
    """An exact query: one share per aggregate ciphertext.  A DP query: one share per entry
    of its layout (never per limb: docs/privacy.md, "Limb sums"), whatever the aggregate's
    ciphertext count."""
    plain = ["query", "sub:prov-1", "sub:prov-2", "sub:prov-3", "aggregate"]
    s = _run(EV_PLAIN, plain)
    assert s.n_ciphertexts == 1 and s.n_entries is None
    d = EV_PLAIN["dec:node-a"]
    assert isinstance(d, E.DecryptionEntry)
    with pytest.raises(ProtocolError, match="decryption from node node-a has 2 shares for 1"):
        advance(s, replace(d, shares=d.shares * 2))
    advance(s, d)
    s = _run(EV, PREFIX_AGG)
    assert s.n_ciphertexts == 1 and s.n_entries == 2  # a DP mean: n and the sum
    d = EV["dec:node-a"]
    assert isinstance(d, E.DecryptionEntry) and len(d.shares) == 2
    for shares in (d.shares[:1], d.shares * 2):
        with pytest.raises(ProtocolError, match=f"node node-a has {len(shares)} shares; a DP "
                                                "query decrypts one ciphertext per entry"):
            advance(s, replace(d, shares=shares))
    advance(s, d)


def test_a_t_of_n_roster_needs_t_decryptions_and_the_named_ones():
    """2-of-3: the result may follow the second decryption; a third node may still decrypt
    until the result (once); the result names nodes that logged decryption shares only.
    Without a threshold the roster needs every compute node (the twin above)."""
    nodes = (*COMPUTE, "node-c")
    roster = Roster(nodes, ROSTER.providers, ("researcher",), 2)
    assert roster.needed == 2 and ROSTER.needed == len(COMPUTE)
    for bad in (0, 4, -1):
        with pytest.raises(ProtocolError, match="threshold must be between 1 and"):
            Roster(nodes, ROSTER.providers, ("researcher",), bad)
    plain = ["query", "sub:prov-1", "sub:prov-2", "sub:prov-3", "aggregate"]
    dec_c = sign(replace(EV_PLAIN["dec:node-a"], node="node-c", sig=None), "node-a")
    s = replay([EV_PLAIN[n] for n in plain], roster)
    s = advance(s, EV_PLAIN["dec:node-a"])
    assert s.phase is Phase.DECRYPTING and ("result", None) not in expected_next(s)
    with pytest.raises(ProtocolError, match=r"result before 2 decryptions \(none yet from "
                                            "node-b, node-c"):
        advance(s, EV_PLAIN["result"])
    s = advance(s, dec_c)
    assert s.phase is Phase.DECRYPTED and s.decrypted == ("node-a", "node-c")
    assert expected_next(s) == [("decryption", "node-b"), ("result", None)]
    res_ac = sign(replace(EV_PLAIN["result"], decryptors=("node-a", "node-c"), sig=None),
                  "researcher")
    assert advance(s, res_ac).phase is Phase.RELEASED
    # the result of ``EV_PLAIN`` names node-a and node-b: node-b has not decrypted
    with pytest.raises(ProtocolError, match="result names decrypting node.s. node-b, which "
                                            "logged no decryption shares"):
        advance(s, EV_PLAIN["result"])
    # node-b decrypts late, once; then any two of the three may be named
    s3 = advance(s, EV_PLAIN["dec:node-b"])
    assert s3.phase is Phase.DECRYPTED and s3.decrypted == ("node-a", "node-c", "node-b")
    with pytest.raises(ProtocolError, match="duplicate decryption from node node-b"):
        advance(s3, EV_PLAIN["dec:node-b"])
    for res in (EV_PLAIN["result"], res_ac):
        done = advance(s3, res)
        assert done.phase is Phase.RELEASED
        assert done.result_digest == E.result_digest(res)  # type: ignore[arg-type]
    # after the result, no more decryptions
    with pytest.raises(ProtocolError, match="decryption from node node-b after phase released"):
        advance(advance(s, res_ac), EV_PLAIN["dec:node-b"])
