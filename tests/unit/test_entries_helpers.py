"""Builders of one valid, signed entry of every kind (shared by the entries/state-machine tests).

This module holds no tests; test files in this directory import it by name.
"""

from __future__ import annotations

from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol.query import QuerySpec

KEYS = {name: SigningKey.from_bytes(bytes([i + 1]) * 32) for i, name in enumerate(
    ["ledger", "node-a", "node-b", "prov-1", "prov-2", "prov-3", "researcher"])}


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
        "setup": E.SetupEntry("cluster-1", ("node-a", "node-b"), point_hex(23), 1),
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


AUTHOR = {"party": "prov-1", "party_compute": "node-a", "setup": "ledger", "query": "researcher",
          "submission": "prov-1", "noise": "node-a", "aggregate": "researcher",
          "decryption": "node-a", "result": "researcher", "endorsement": "prov-1"}


def signed_entries() -> dict[str, E.Entry]:
    return {name: E.sign(e, KEYS[AUTHOR[name]]) for name, e in unsigned_entries().items()}
