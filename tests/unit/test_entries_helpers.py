"""Builders of one valid, signed entry of every kind (shared by the entries/state-machine tests).

This module holds no tests; test files in this directory import it by name.
"""

from __future__ import annotations

from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol.consortium import (
    AdmissionRule,
    Genesis,
    Member,
    MembershipChange,
    SignedGenesis,
)
from statledger.protocol.query import QuerySpec

KEYS = {name: SigningKey.from_bytes(bytes([i + 1]) * 32) for i, name in enumerate(
    ["ledger", "node-a", "node-b", "prov-1", "prov-2", "prov-3", "researcher", "prov-4"])}
#: The founding members (prov-4 is admitted later, by :data:`CHANGE`).
FOUNDERS = {"ledger": "ledger", "node-a": "compute", "node-b": "compute", "prov-1": "provider",
            "prov-2": "provider", "prov-3": "provider", "researcher": "querier"}


def _vk(name: str) -> str:
    return KEYS[name].public_key().to_bytes().hex()


def signed_genesis() -> SignedGenesis:
    """The consortium of the founders, signed by each of them."""
    members = tuple(Member(p, r, _vk(p)) for p, r in FOUNDERS.items())
    signed = SignedGenesis(Genesis("entries test consortium", "statledger.test/entries",
                                   members, 1, AdmissionRule(2, ("compute",))))
    for p in FOUNDERS:
        signed = signed.sign(p, KEYS[p])
    return signed


GENESIS = signed_genesis()
CONSORTIUM = GENESIS.genesis.consortium_id


def membership_change() -> MembershipChange:
    """The first change of the chain: admits prov-4 (with its proof of possession), signed by
    both compute nodes."""
    change = MembershipChange(CONSORTIUM, 1, CONSORTIUM,
                              admit=(Member("prov-4", "provider", _vk("prov-4")),))
    change = change.sign("node-a", KEYS["node-a"]).sign("node-b", KEYS["node-b"])
    return change.prove_possession("prov-4", KEYS["prov-4"])


CHANGE = membership_change()


def point_hex(k: int) -> str:
    return base_mul(Scalar(k)).to_bytes().hex()


def spec(privacy: dict | None = None, min_providers: int = 2) -> QuerySpec:
    obj = {"version": 1, "statistic": "mean", "columns": ["age"], "bounds": {"age": [0, 120]},
           "min_providers": min_providers}
    if privacy is not None:
        obj["privacy"] = privacy
    return QuerySpec.parse(obj)


SPEC = spec()
QID = SPEC.query_id_for("researcher")


def unsigned_entries() -> dict[str, E.Entry]:
    vk = {n: k.public_key().to_bytes().hex() for n, k in KEYS.items()}
    return {
        "party": E.PartyEntry("prov-1", "provider", vk["prov-1"]),
        "party_compute": E.PartyEntry("node-a", "compute", vk["node-a"], point_hex(11),
                                      "ab" * 64),
        "setup": E.SetupEntry(CONSORTIUM, ("node-a", "node-b"), point_hex(23)),
        "genesis": E.GenesisEntry.of(GENESIS),
        "membership": E.MembershipEntry.of(CHANGE),
        "query": E.QueryEntry.for_spec(SPEC, "researcher"),
        "submission": E.SubmissionEntry(QID, "prov-1", "0102ff"),
        "noise": E.NoiseEntry(QID, "node-a", "aa55"),
        "aggregate": E.AggregateEntry(QID, (3, 4), (5,), (point_hex(2) + point_hex(3),
                                                          "00" * 33 + point_hex(4))),
        "decryption": E.DecryptionEntry(QID, "node-a", (point_hex(5), point_hex(6)), "cd" * 64),
        "result": E.ResultEntry.for_totals(QID, [12345, -7, 0, 2**80],
                                           {"statistic": "mean", "mean": 41.5, "n": 3}),
        "endorsement": E.EndorsementEntry(QID, "prov-1", "ee" * 32),
    }


AUTHOR = {"party": "prov-1", "party_compute": "node-a", "setup": "ledger", "genesis": "ledger",
          "membership": "ledger", "query": "researcher",
          "submission": "prov-1", "noise": "node-a", "aggregate": "researcher",
          "decryption": "node-a", "result": "researcher", "endorsement": "prov-1"}


def signed_entries() -> dict[str, E.Entry]:
    return {name: E.sign(e, KEYS[AUTHOR[name]]) for name, e in unsigned_entries().items()}
