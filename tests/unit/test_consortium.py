"""The consortium: pinned genesis, membership chain, derived roster -- accepts and reject twins.

Each reject test plays an adversary: the ledger operator serving a self-made roster, a
revoked member signing after its revocation, a signer not (yet) admitted, a replayed or
forked change, a new key nobody holds.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey
from statledger.protocol.consortium import (
    AdmissionRule,
    Genesis,
    Member,
    MembershipChange,
    Roster,
    SignedGenesis,
    derive_roster,
    parse_trust_document,
    trust_document,
)

ROLES = {"ledger": "ledger", "compute-1": "compute", "compute-2": "compute",
         "compute-3": "compute", "hospital-a": "provider", "hospital-b": "provider",
         "querier": "querier"}


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {p: SigningKey.from_bytes(bytes([i + 1]) * 32) for i, p in enumerate(ROLES)}


def _genesis(keys: dict[str, SigningKey], **kw: object) -> Genesis:
    members = tuple(Member(p, r, keys[p].public_key().to_bytes().hex()) for p, r in ROLES.items())
    args: dict[str, object] = {"name": "test consortium", "origin": "statledger.test/log",
                               "members": members, "witness_quorum": 2,
                               "admission": AdmissionRule(2, ("compute",))}
    args.update(kw)
    return Genesis(**args)  # type: ignore[arg-type]


def _signed(keys: dict[str, SigningKey], genesis: Genesis | None = None) -> SignedGenesis:
    sg = SignedGenesis(genesis or _genesis(keys))
    for p in ROLES:
        sg = sg.sign(p, keys[p])
    return sg


def _change(roster: Roster, **kw: object) -> MembershipChange:
    return MembershipChange(roster.consortium_id, roster.seq + 1, roster.head, **kw)  # type: ignore[arg-type]


def _by(change: MembershipChange, keys: dict[str, SigningKey], *signers: str) -> MembershipChange:
    for s in signers:
        change = change.sign(s, keys[s])
    return change


def _new(pid: str, role: str, seed: int) -> tuple[Member, SigningKey]:
    k = SigningKey.from_bytes(bytes([seed]) * 32)
    return Member(pid, role, k.public_key().to_bytes().hex()), k


# -- genesis -------------------------------------------------------------------------------


def test_genesis_accepts_and_roundtrips(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    sg.verify()
    sg.verify(sg.genesis.consortium_id)
    again = SignedGenesis.from_bytes(sg.to_bytes())
    assert again.to_bytes() == sg.to_bytes()
    assert again.genesis.consortium_id == sg.genesis.consortium_id
    roster = Roster.from_genesis(sg, sg.genesis.consortium_id)
    assert roster.ledger.party_id == "ledger"
    assert [m.party_id for m in roster.of_role("compute")] == ["compute-1", "compute-2",
                                                               "compute-3"]
    assert roster.member("hospital-a", "provider").role == "provider"


def test_consortium_id_binds_every_field(keys: dict[str, SigningKey]) -> None:
    g = _genesis(keys)
    variants = [replace(g, name="other"), replace(g, origin="other/log"),
                replace(g, witness_quorum=3), replace(g, admission=AdmissionRule(3, ("compute",))),
                replace(g, members=g.members[:-1]), replace(g, decryption_threshold=2)]
    ids = {v.consortium_id for v in variants} | {g.consortium_id}
    assert len(ids) == len(variants) + 1


def test_genesis_missing_signature_names_member(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    sigs = dict(sg.signatures)
    del sigs["hospital-b"]
    with pytest.raises(VerificationError, match="hospital-b has not signed") as err:
        replace(sg, signatures=sigs).verify()
    assert err.value.party == "hospital-b"


@pytest.mark.parametrize("byte", [0, 31, 32, 63])
def test_genesis_bit_flipped_signature(keys: dict[str, SigningKey], byte: int) -> None:
    sg = _signed(keys)
    bad = bytearray(sg.signatures["compute-2"])
    bad[byte] ^= 1
    with pytest.raises(VerificationError) as err:
        replace(sg, signatures={**sg.signatures, "compute-2": bytes(bad)}).verify()
    assert err.value.party == "compute-2"


def test_genesis_swapped_signatures(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    s = dict(sg.signatures)
    s["compute-1"], s["compute-2"] = s["compute-2"], s["compute-1"]
    with pytest.raises(VerificationError):
        replace(sg, signatures=s).verify()


def test_genesis_signature_by_outsider(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    with pytest.raises(VerificationError, match="not a founding member"):
        replace(sg, signatures={**sg.signatures, "mallory": bytes(64)}).verify()
    with pytest.raises(MalformedError, match="not the member's key"):
        sg.sign("hospital-a", keys["hospital-b"])


def test_a_different_consortium_is_refused(keys: dict[str, SigningKey]) -> None:
    # The ledger serves a self-made genesis (its own compute nodes): every signature is
    # valid, but its id is not the pinned one.
    pinned = _signed(keys).genesis.consortium_id
    fake_keys = {p: SigningKey.from_bytes(bytes([99 - i]) * 32) for i, p in enumerate(ROLES)}
    fake = _signed(fake_keys)
    fake.verify()
    with pytest.raises(VerificationError, match="not the pinned"):
        Roster.from_genesis(fake, pinned)


def test_tampered_genesis_breaks_signatures(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    obj = sg.to_json_obj()
    obj["genesis"]["witness_quorum"] = 1
    with pytest.raises(VerificationError):
        SignedGenesis.from_json_obj(obj).verify()


@pytest.mark.parametrize("mutate", [
    lambda o: o["genesis"].update(v=3),  # (v 2: the genesis that pins the threshold)
    lambda o: o["genesis"].update(v=1),  # the retired n-of-n version
    lambda o: o["genesis"].update(v=2.0),
    lambda o: o["genesis"].update(kind="membership"),
    lambda o: o["genesis"].update(extra=1),
    lambda o: o["genesis"].pop("origin"),
    lambda o: o["genesis"].update(witness_quorum=0),
    lambda o: o["genesis"].update(witness_quorum=4),
    lambda o: o["genesis"].update(witness_quorum=True),
    lambda o: o["genesis"].update(decryption_threshold=0),
    lambda o: o["genesis"].update(decryption_threshold=4),  # 3 compute nodes
    lambda o: o["genesis"].update(decryption_threshold=True),
    lambda o: o["genesis"].update(decryption_threshold=None),  # written out, never null
    lambda o: o["genesis"].update(decryption_threshold="2"),
    lambda o: o["genesis"].update(decryption_threshold=2.0),
    lambda o: o["genesis"].pop("decryption_threshold"),
    lambda o: o["genesis"]["admission"].update(quorum=0),
    lambda o: o["genesis"]["admission"].update(quorum=4),
    lambda o: o["genesis"]["admission"].update(roles=["root"]),
    lambda o: o["genesis"]["admission"].update(roles=["provider", "compute"]),
    lambda o: o["genesis"]["members"].append(dict(o["genesis"]["members"][0])),
    lambda o: o["genesis"]["members"][1].update(sig_key=o["genesis"]["members"][2]["sig_key"]),
    lambda o: o["genesis"]["members"][1].update(role="ledger"),
    lambda o: o["genesis"]["members"][1].update(role="admin"),
    lambda o: o["genesis"]["members"][1].update(sig_key="00" * 32),
    lambda o: o["genesis"]["members"][1].update(sig_key="AB" * 32),
    lambda o: o["genesis"]["members"][1].update(sig_key="ab" * 31),
    lambda o: o["genesis"]["members"][1].update(party_id="bad id"),
    lambda o: o["signatures"].update({"compute-1": "00" * 63}),
    lambda o: o.update(extra=1),
])
def test_malformed_genesis(keys: dict[str, SigningKey], mutate: object) -> None:
    obj = json.loads(json.dumps(_signed(keys).to_json_obj()))
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(MalformedError):
        SignedGenesis.from_json_obj(obj)


def test_a_version_1_genesis_is_refused_by_name(keys: dict[str, SigningKey]) -> None:
    """A genesis of the n-of-n design (v 1, no decryption threshold) is not read as a T = N
    consortium: it is refused, saying why."""
    obj = json.loads(json.dumps(_signed(keys).to_json_obj()))
    assert obj["genesis"]["v"] == 2
    old = {k: v for k, v in obj["genesis"].items() if k != "decryption_threshold"}
    for genesis in ({**old, "v": 1}, {**obj["genesis"], "v": 1}):
        with pytest.raises(MalformedError, match="v1 .*no longer supported"):
            SignedGenesis.from_json_obj({**obj, "genesis": genesis})


def test_genesis_decryption_threshold(keys: dict[str, SigningKey]) -> None:
    """T: any T compute nodes decrypt.  Default: every compute node; always written in the
    genesis document; from 1 to the number of compute nodes."""
    g = _genesis(keys)
    assert g.decryption_threshold == 3 and g.to_json_obj()["decryption_threshold"] == 3
    assert _genesis(keys, decryption_threshold=3).consortium_id == g.consortium_id
    for t in (1, 2):
        sg = _signed(keys, _genesis(keys, decryption_threshold=t))
        again = SignedGenesis.from_bytes(sg.to_bytes())
        assert again.genesis.decryption_threshold == t
        assert Roster.from_genesis(again).decryption_threshold == t
    assert Roster.from_genesis(_signed(keys)).decryption_threshold == 3
    for bad in (0, 4, -1, True, 2.0, "2"):
        with pytest.raises(MalformedError, match="genesis.decryption_threshold"):
            _genesis(keys, decryption_threshold=bad)


def test_genesis_needs_compute_and_one_ledger(keys: dict[str, SigningKey]) -> None:
    g = _genesis(keys)
    with pytest.raises(MalformedError, match="compute"):
        replace(g, members=tuple(m for m in g.members if m.role != "compute"),
                admission=AdmissionRule(1, ("provider",)), witness_quorum=1)
    with pytest.raises(MalformedError, match="ledger"):
        replace(g, members=tuple(m for m in g.members if m.role != "ledger"))


# -- membership chain ----------------------------------------------------------------------


def test_admit_many_owners_in_one_change(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    news = []
    for i in range(200):
        k = SigningKey.from_bytes(i.to_bytes(2, "big") * 16)
        news.append((Member(f"clinic-{i}", "provider", k.public_key().to_bytes().hex()), k))
    change = _change(roster, admit=tuple(m for m, _ in news))
    for m, k in news:
        change = change.prove_possession(m.party_id, k)
    change = _by(change, keys, "compute-1", "compute-3")
    again = MembershipChange.from_bytes(change.to_bytes())
    assert again.to_bytes() == change.to_bytes() and again.digest == change.digest
    after = derive_roster(_signed(keys), [again])
    assert len(after.of_role("provider")) == 202
    assert after.seq == 1 and after.head == change.digest and after.compute_epoch == 0


def test_quorum_short_and_ineligible_signer(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    m, k = _new("hospital-c", "provider", 77)
    base = _change(roster, admit=(m,)).prove_possession("hospital-c", k)
    with pytest.raises(VerificationError, match="1 of the 2 signatures"):
        roster.apply(_by(base, keys, "compute-1"))
    with pytest.raises(VerificationError, match="may not sign") as err:
        roster.apply(_by(base, keys, "compute-1", "hospital-a"))
    assert err.value.party == "hospital-a"
    # the same signer twice is one signature
    twice = base.sign("compute-1", keys["compute-1"]).sign("compute-1", keys["compute-1"])
    with pytest.raises(VerificationError, match="1 of the 2"):
        roster.apply(twice)


def test_not_yet_admitted_signer_refused(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    m, k = _new("compute-4", "compute", 55)
    change = _by(_change(roster, admit=(m,)).prove_possession("compute-4", k), keys,
                 "compute-1")
    with pytest.raises(VerificationError, match="not a member") as err:
        roster.apply(change.sign("compute-4", k))
    assert err.value.party == "compute-4"


def test_missing_or_wrong_possession(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    m, k = _new("hospital-c", "provider", 77)
    with pytest.raises(VerificationError, match="no proof of possession") as err:
        roster.apply(_by(_change(roster, admit=(m,)), keys, "compute-1", "compute-2"))
    assert err.value.party == "hospital-c"
    _, other = _new("x", "provider", 78)
    wrong = _change(roster, admit=(m,)).prove_possession("hospital-c", other)
    with pytest.raises(VerificationError, match="possession of hospital-c"):
        roster.apply(_by(wrong, keys, "compute-1", "compute-2"))
    stray = _change(roster, revoke=("hospital-b",)).prove_possession("hospital-a",
                                                                     keys["hospital-a"])
    with pytest.raises(VerificationError, match="not new"):
        roster.apply(_by(stray, keys, "compute-1", "compute-2"))


def test_revoked_member_cannot_sign_or_return(keys: dict[str, SigningKey]) -> None:
    """(A 2-of-3 consortium: two compute nodes left can still decrypt.)"""
    roster = Roster.from_genesis(_signed(keys, _genesis(keys, decryption_threshold=2)))
    r1 = roster.apply(_by(_change(roster, revoke=("compute-3",)), keys, "compute-1",
                          "compute-2"))
    assert r1.compute_epoch == 1 and "compute-3" in r1.revoked
    assert r1.decryption_threshold == 2
    with pytest.raises(VerificationError, match="revoked") as err:
        r1.member("compute-3")
    assert err.value.party == "compute-3"
    m, k = _new("hospital-c", "provider", 77)
    late = _change(r1, admit=(m,)).prove_possession("hospital-c", k)
    with pytest.raises(VerificationError, match="revoked") as err:
        r1.apply(_by(late, keys, "compute-1", "compute-3"))
    assert err.value.party == "compute-3"
    back = Member("compute-3", "compute", k.public_key().to_bytes().hex())
    again = _by(_change(r1, admit=(back,)).prove_possession("compute-3", k), keys,
                "compute-1", "compute-2")
    with pytest.raises(VerificationError, match="already"):
        r1.apply(again)


def test_a_change_leaving_fewer_compute_nodes_than_the_threshold_is_refused(
        keys: dict[str, SigningKey]) -> None:
    """3-of-3: revoking a compute node would leave a key nobody can decrypt with; 2-of-3 (the
    twin) allows it, and the threshold does not follow the roster down or up."""
    full = Roster.from_genesis(_signed(keys))
    change = _by(_change(full, revoke=("compute-3",)), keys, "compute-1", "compute-2")
    with pytest.raises(VerificationError, match="the change leaves 2 compute node.s. for a "
                                                "decryption threshold of 3"):
        full.apply(change)
    two = Roster.from_genesis(_signed(keys, _genesis(keys, decryption_threshold=2,
                                                     witness_quorum=1)))
    r1 = two.apply(_by(_change(two, revoke=("compute-3",)), keys, "compute-1", "compute-2"))
    assert r1.decryption_threshold == 2
    with pytest.raises(VerificationError, match="decryption threshold of 2"):
        r1.apply(_by(_change(r1, revoke=("compute-2",)), keys, "compute-1", "compute-2"))
    m, k = _new("compute-4", "compute", 78)
    r2 = r1.apply(_by(_change(r1, admit=(m,)).prove_possession("compute-4", k), keys,
                      "compute-1", "compute-2"))
    assert r2.decryption_threshold == 2 and len(r2.of_role("compute")) == 3


def test_replayed_dropped_and_forked_changes(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    roster = Roster.from_genesis(sg)
    c1 = _by(_change(roster, revoke=("hospital-b",)), keys, "compute-1", "compute-2")
    r1 = roster.apply(c1)
    with pytest.raises(VerificationError, match="does not extend"):
        r1.apply(c1)  # replay
    m, k = _new("hospital-c", "provider", 77)
    c2 = _by(_change(r1, admit=(m,)).prove_possession("hospital-c", k), keys, "compute-1",
             "compute-2")
    with pytest.raises(VerificationError, match="does not extend"):
        roster.apply(c2)  # c1 dropped
    fork = _by(MembershipChange(roster.consortium_id, 2, "ab" * 32, revoke=("hospital-a",)),
               keys, "compute-1", "compute-2")
    with pytest.raises(VerificationError, match="does not extend"):
        r1.apply(fork)
    other = _by(MembershipChange("cd" * 32, 1, roster.head, revoke=("hospital-a",)), keys,
                "compute-1", "compute-2")
    with pytest.raises(VerificationError, match="another consortium"):
        roster.apply(other)
    assert derive_roster(sg, [c1, c2]).seq == 2


def test_rotation_needs_the_new_key_and_retires_the_old(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    _, k2 = _new("compute-1", "compute", 91)
    rot = _change(roster, rotate=(("compute-1", k2.public_key().to_bytes().hex()),))
    r1 = roster.apply(_by(rot.prove_possession("compute-1", k2), keys, "compute-1",
                          "compute-2"))
    assert r1.member("compute-1").sig_key == k2.public_key().to_bytes().hex()
    assert r1.compute_epoch == 1
    nxt = _change(r1, revoke=("hospital-a",))
    with pytest.raises(VerificationError, match="compute-1 does not verify"):
        r1.apply(_by(nxt, keys, "compute-1", "compute-2"))  # the old key
    r1.apply(nxt.sign("compute-1", k2).sign("compute-2", keys["compute-2"]))


def test_admission_rule_changes_under_the_old_rule(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    rule = AdmissionRule(3, ("compute", "provider"))
    r1 = roster.apply(_by(_change(roster, admission=rule), keys, "compute-1", "compute-2"))
    assert r1.admission == rule
    nxt = _change(r1, revoke=("querier",))
    with pytest.raises(VerificationError, match="2 of the 3"):
        r1.apply(_by(nxt, keys, "compute-1", "compute-2"))
    r1.apply(_by(nxt, keys, "compute-1", "compute-2", "hospital-a"))
    impossible = _change(roster, admission=AdmissionRule(5, ("compute",)))
    with pytest.raises(VerificationError, match="admission quorum of 5"):
        roster.apply(_by(impossible, keys, "compute-1", "compute-2"))


def test_witness_quorum_stays_satisfiable(keys: dict[str, SigningKey]) -> None:
    roster = Roster.from_genesis(_signed(keys))
    r1 = roster.apply(_by(_change(roster, witness_quorum=3), keys, "compute-1", "compute-2"))
    assert r1.witness_quorum == 3
    with pytest.raises(VerificationError, match="witness quorum of 3"):
        r1.apply(_by(_change(r1, revoke=("compute-3",)), keys, "compute-1", "compute-2"))
    with pytest.raises(MalformedError):
        _change(roster, witness_quorum=0)
    with pytest.raises(VerificationError, match="log itself"):
        roster.apply(_by(_change(roster, revoke=("ledger",)), keys, "compute-1", "compute-2"))


@pytest.mark.parametrize("mutate", [
    lambda o: o.update(v=1),
    lambda o: o.update(v=3),
    lambda o: o.update(seq=0),
    lambda o: o.update(seq="1"),
    lambda o: o.update(prev="AB" * 32),
    lambda o: o.update(consortium="ab" * 31),
    lambda o: o.update(kind="genesis"),
    lambda o: o.update(extra=True),
    lambda o: o.pop("possession"),
    lambda o: o.update(revoke=["hospital-a", "hospital-a"]),
    lambda o: o.update(revoke=[], admit=[]),
    lambda o: o["signatures"].update({"compute-1": "zz" * 64}),
    lambda o: o.update(rotate=[{"party_id": "compute-1"}]),
])
def test_malformed_change(keys: dict[str, SigningKey], mutate: object) -> None:
    roster = Roster.from_genesis(_signed(keys))
    obj = json.loads(_by(_change(roster, revoke=("hospital-a",)), keys, "compute-1",
                         "compute-2").to_bytes())
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(MalformedError):
        MembershipChange.from_json_obj(obj)


# -- trust file ----------------------------------------------------------------------------


def test_trust_document(keys: dict[str, SigningKey]) -> None:
    sg = _signed(keys)
    doc = trust_document(sg)
    back = parse_trust_document(json.dumps(doc))
    assert back.genesis.consortium_id == doc["consortium"]
    doc2 = dict(doc, consortium="00" * 32)
    with pytest.raises(VerificationError, match="not the pinned"):
        parse_trust_document(json.dumps(doc2))
    with pytest.raises(MalformedError, match="format"):
        parse_trust_document(json.dumps(dict(doc, format="statledger-trust/v1")))
    unsigned = SignedGenesis(sg.genesis)
    with pytest.raises(VerificationError, match="has not signed"):
        trust_document(unsigned)
