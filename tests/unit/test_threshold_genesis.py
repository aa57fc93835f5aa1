"""The decryption threshold the consortium pins: its bounds, its default, its encoding, and a
membership change that would leave fewer compute nodes than it (reject twins)."""

from __future__ import annotations

import json

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
)

ROLES = {"ledger": "ledger", "compute-1": "compute", "compute-2": "compute",
         "compute-3": "compute", "hospital-a": "provider", "querier": "querier"}
KEYS = {p: SigningKey.from_bytes(bytes([i + 7]) * 32) for i, p in enumerate(ROLES)}


def _genesis(threshold: object = None) -> Genesis:
    members = tuple(Member(p, r, KEYS[p].public_key().to_bytes().hex())
                    for p, r in ROLES.items())
    return Genesis("t", "statledger.test/t", members, 2, AdmissionRule(2, ("compute",)),
                   threshold)  # type: ignore[arg-type]


def _signed(g: Genesis) -> SignedGenesis:
    sg = SignedGenesis(g)
    for p in ROLES:
        sg = sg.sign(p, KEYS[p])
    return sg


def test_default_is_every_compute_node_and_it_is_encoded() -> None:
    g = _genesis()
    assert g.decryption_threshold == 3
    obj = g.to_json_obj()
    assert obj["decryption_threshold"] == 3 and obj["v"] == 2
    assert Genesis.from_json_obj(json.loads(json.dumps(obj))) == g
    two = _genesis(2)
    assert two.consortium_id != g.consortium_id  # the threshold is part of the identity


@pytest.mark.parametrize("bad", [0, 4, -1, True, "2", 2.0])
def test_threshold_outside_one_to_n_compute_is_refused(bad: object) -> None:
    with pytest.raises(MalformedError):
        _genesis(bad)


@pytest.mark.parametrize("edit", [
    lambda o: o.pop("decryption_threshold"),
    lambda o: o.update(decryption_threshold=0),
    lambda o: o.update(decryption_threshold=4),
    lambda o: o.update(decryption_threshold="3"),
])
def test_decoding_is_strict(edit) -> None:  # type: ignore[no-untyped-def]
    obj = _genesis().to_json_obj()
    edit(obj)
    with pytest.raises(MalformedError):
        Genesis.from_json_obj(obj)


def test_a_v1_genesis_is_refused_by_name() -> None:
    obj = _genesis().to_json_obj()
    obj["v"] = 1
    obj.pop("decryption_threshold")
    with pytest.raises(MalformedError, match="v1"):
        Genesis.from_json_obj(obj)


def test_roster_carries_it_and_a_change_cannot_leave_fewer_nodes_than_t() -> None:
    roster = Roster.from_genesis(_signed(_genesis(3)))
    assert roster.decryption_threshold == 3
    change = MembershipChange(roster.consortium_id, 1, roster.head, revoke=("compute-3",))
    for s in ("compute-1", "compute-2"):
        change = change.sign(s, KEYS[s])
    with pytest.raises(VerificationError, match="decryption threshold"):
        roster.apply(change)
    two = Roster.from_genesis(_signed(_genesis(2)))
    change2 = MembershipChange(two.consortium_id, 1, two.head, revoke=("compute-3",))
    for s in ("compute-1", "compute-2"):
        change2 = change2.sign(s, KEYS[s])
    after = two.apply(change2)
    assert after.decryption_threshold == 2 and after.compute_epoch == 1
