"""Builders of one valid, signed entry of every kind (shared by the entries/state-machine tests),
and of an honest key ceremony with its setup and threshold decryption (shared by the tests
that build a whole log in process: test_protocol_checks, test_consortium_log).

This module holds no tests; test files in this directory import it by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from statledger.proofs.elgamal import encrypt
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import ceremony, dkg, flow, pet
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


# -- the key ceremony (docs/dkg.md) and threshold decryption, built in process -----------


@dataclass(frozen=True)
class Ceremony:
    """An honest key ceremony among ``nodes`` (docs/dkg.md) and what it gives."""

    params: dkg.DkgParams
    nodes: tuple[str, ...]
    threshold: int
    #: the ``dkg_*`` entries, each signed by its node, in the order they are logged
    entries: tuple[E.Entry, ...]
    #: ``Y``, as step 6 derives it from ``entries``
    collective: Point
    #: node -> its verification key ``Y_j``, as step 6 derives it
    verification: dict[str, Point]
    #: node -> its key share ``x_j`` (``x_j * G == Y_j``), as the node derives it
    shares: dict[str, Scalar]

    def setup(self, consortium: str) -> E.SetupEntry:
        """The (unsigned) setup entry of this ceremony, as the ledger writes it."""
        return E.SetupEntry(consortium, self.nodes, self.threshold,
                            self.collective.to_bytes().hex(),
                            tuple(self.verification[n].to_bytes().hex() for n in self.nodes))


_DKG_ENTRY = {kind: E.KINDS[kind] for kind in E.DKG_KINDS}


def key_ceremony(consortium: str, transport: Mapping[str, Scalar], threshold: int,
                 keys: Mapping[str, SigningKey], *, epoch: int = 0) -> Ceremony:
    """An honest ``threshold``-of-N ceremony among the nodes of ``transport`` (node -> the
    secret of its transport key) for ``consortium`` at compute ``epoch``, run in one process
    (``ceremony.simulate``), each entry signed with its node's identity key from ``keys``.
    The one builder of ceremonies for the logs the unit tests make (test_protocol_checks,
    test_consortium_log)."""
    params = ceremony.params_for(consortium=consortium, nodes=list(transport),
                                 threshold=threshold, epoch=epoch)
    entries = tuple(E.sign(_DKG_ENTRY[kind](node, message.hex()), keys[node])
                    for kind, node, message in ceremony.simulate(params, transport))
    rows = list(enumerate(entries))
    public = {n: base_mul(x) for n, x in transport.items()}
    result = ceremony.derive_from_log(params, public, rows)
    shares = {n: ceremony.key_share(params, public, rows, n, transport[n])
              for n in params.nodes}
    assert all(base_mul(shares[n]) == result.verification_keys[n] for n in params.nodes)
    return Ceremony(params, params.nodes, threshold, entries, result.collective_key,
                    dict(result.verification_keys), shares)


def threshold_decryption(cer: Ceremony, setup: E.SetupEntry, qid: str,
                         agg: list[list[Any]], ranges: Sequence[Sequence[tuple[int, int]]],
                         keys: Mapping[str, SigningKey], decrypting: Sequence[str],
                         decryptors: Sequence[str] | None = None, *,
                         spec: QuerySpec,
                         ) -> tuple[list[E.Entry], list[int], tuple[str, ...]]:
    """Every node of ``decrypting`` decrypts the aggregate ``agg`` (``D = x_j * C1`` with a
    batched DLEQ proof against ``Y_j``): its signed decryption entry.  The totals combine the
    shares of ``decryptors`` (default: the first ``T`` of ``decrypting``) with their Lagrange
    weights.  Returns the entries (in ``decrypting`` order), the totals and the decryptors
    (sorted, as the result names them).  The shares cover the query's decryption targets
    (``flow.decryption_targets``: one per entry for a DP ``spec``, one per limb otherwise)."""
    flat = flow.decryption_targets(spec, agg)
    shares_of: dict[str, list[Point]] = {}
    out: list[E.Entry] = []
    for n in decrypting:
        shares, proof = flow.make_decryption(cer.shares[n], cer.verification[n], flat,
                                             flow.decryption_context(qid, n))
        shares_of[n] = list(shares)
        out.append(E.sign(E.DecryptionEntry(qid, n, tuple(s.to_bytes().hex() for s in shares),
                                            proof.to_bytes().hex()), keys[n]))
    named = tuple(sorted(decryptors if decryptors is not None
                         else list(decrypting)[:setup.threshold]))
    totals = flow.decrypt_totals(spec, agg, [shares_of[n] for n in named], ranges,
                                 flow.combination_weights(setup, named))
    return out, totals, named


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
#: The noise parameters a noise commitment carries (``NoiseParams.to_json_obj``; any valid
#: set: the codec and the state machine do not check them, ``flow.check_noise_params`` does).
NOISE_PARAMS = {"n_nodes": 2, "threshold": 2, "entries": 1, "summands": 34, "summand_bits": 1,
                "uniform_bits": 0}


def ceremony_messages() -> dict[str, tuple[str, bytes]]:
    """One real message of each kind of the key ceremony (a 2-of-2 ceremony of node-a and
    node-b for :data:`CONSORTIUM`): node-a's deal, node-b's ack, node-a's key commitment,
    and node-b's disclosure of its share of node-a's deal."""
    transport = {"node-a": Scalar(11), "node-b": Scalar(12)}
    cer = key_ceremony(CONSORTIUM, transport, 2, KEYS)
    by = {(e.KIND, e.claimed_author()): bytes.fromhex(e.message)  # type: ignore[attr-defined]
          for e in cer.entries}
    deal = dkg.Deal.from_bytes(by["dkg_deal", "node-a"], cer.params)
    disclosure = dkg.disclose(cer.params, deal, "node-b", transport["node-b"],
                              base_mul(transport["node-b"]))
    return {"dkg_deal": ("node-a", by["dkg_deal", "node-a"]),
            "dkg_ack": ("node-b", by["dkg_ack", "node-b"]),
            "dkg_key": ("node-a", by["dkg_key", "node-a"]),
            "dkg_disclosure": ("node-b", disclosure.to_bytes()),
            "dkg_transport": ("node-a", _transport_message(cer))}


def _transport_message(cer: Ceremony) -> bytes:
    """node-a's transport key for a resharing of ``cer``'s key among the same nodes."""
    prior = dkg.Prior(cer.nodes, cer.threshold, tuple(cer.verification[n] for n in cer.nodes),
                      cer.collective, cer.nodes)
    params = dkg.DkgParams(cer.params.consortium, 1, cer.nodes, cer.threshold, prior)
    return dkg.transport_key(params, "node-a", Scalar(13)).to_bytes()


CEREMONY_MESSAGES = ceremony_messages()


def pet_entry() -> E.PetEntry:
    """node-a's step of the blinded shuffled PET (docs/privacy.md, "Suppression before
    decryption"): one gate cell, ``k = 2`` candidates ``Enc(3 - j)`` under the collective key
    of the setup below, blinded and shuffled with their proofs (real, strictly decodable)."""
    X = base_mul(Scalar(23))
    batch = pet.blind_and_shuffle(X, pet.candidates(encrypt(X, 3), 2),
                                  pet.pet_context(QID, "node-a", 0))
    return E.PetEntry.of(QID, "node-a", [batch])


PET_ENTRY = pet_entry()


def unsigned_entries() -> dict[str, E.Entry]:
    vk = {n: k.public_key().to_bytes().hex() for n, k in KEYS.items()}
    return {
        "party": E.PartyEntry("prov-1", "provider", vk["prov-1"]),
        "party_compute": E.PartyEntry("node-a", "compute", vk["node-a"], point_hex(11),
                                      "ab" * 64),
        "setup": E.SetupEntry(CONSORTIUM, ("node-a", "node-b"), 2, point_hex(23),
                              (point_hex(24), point_hex(25))),
        "rekey": E.RekeyEntry(CONSORTIUM, ("node-a", "node-b"), 2, point_hex(23),
                              (point_hex(26), point_hex(27))),
        "genesis": E.GenesisEntry.of(GENESIS),
        "membership": E.MembershipEntry.of(CHANGE),
        "query": E.QueryEntry.for_spec(SPEC, "researcher"),
        "submission": E.SubmissionEntry(QID, "prov-1", "0102ff"),
        "noise_commit": E.NoiseCommitEntry(QID, "node-a", "aa55", NOISE_PARAMS),
        "noise_coin": E.NoiseCoinEntry(QID, "node-a", point_hex(7), "cd" * 64),
        "aggregate": E.AggregateEntry(QID, (3, 4), (5,), (point_hex(2) + point_hex(3),
                                                          "00" * 33 + point_hex(4))),
        "decryption": E.DecryptionEntry(QID, "node-a", (point_hex(5), point_hex(6)), "cd" * 64),
        "result": E.ResultEntry.for_totals(QID, [12345, -7, 0, 2**80],
                                           {"statistic": "mean", "mean": 41.5, "n": 3},
                                           ("node-b", "node-a")),
        "endorsement": E.EndorsementEntry(QID, "prov-1", "ee" * 32),
        # suppression before decryption (protocol/suppression.py): the PET step, a node's
        # gate shares (the shape of a decryption entry, another kind), the release decision
        # (two gates; position 0 merged into the released position 1)
        "pet": PET_ENTRY,
        "gate": E.GateEntry(QID, "node-a", (point_hex(8), point_hex(9)), "cd" * 64),
        "release": E.ReleaseEntry.of(QID, ("node-b", "node-a"), [True, False], [1, 2], 3,
                                     [[1, 0]]),
        # a vertical query's three owner phases (protocol/vertical.py): opaque bytes to the
        # codec, decoded against the query's plan by step 9
        "vertical_rows": E.VerticalRowsEntry(QID, "prov-1", "0a0b0c"),
        "vertical_products": E.VerticalProductsEntry(QID, "prov-2", "0d0e0f"),
        "vertical_block": E.VerticalBlockEntry(QID, "prov-1", "1a1b1c"),
        # the key ceremony's messages (docs/dkg.md): opaque bytes to the codec, decoded
        # against the ceremony's parameters by step 6
        **{kind: E.KINDS[kind](node, message.hex())  # type: ignore[call-arg]
           for kind, (node, message) in CEREMONY_MESSAGES.items()},
    }


AUTHOR = {"party": "prov-1", "party_compute": "node-a", "setup": "ledger", "genesis": "ledger",
          "membership": "ledger", "query": "researcher",
          "submission": "prov-1", "noise_commit": "node-a", "noise_coin": "node-a",
          "aggregate": "researcher",
          "decryption": "node-a", "result": "researcher", "endorsement": "prov-1",
          "dkg_deal": "node-a", "dkg_ack": "node-b", "dkg_key": "node-a",
          "dkg_disclosure": "node-b", "dkg_transport": "node-a", "rekey": "ledger",
          "pet": "node-a", "gate": "node-a", "release": "researcher",
          "vertical_rows": "prov-1", "vertical_products": "prov-2", "vertical_block": "prov-1"}


def signed_entries() -> dict[str, E.Entry]:
    return {name: E.sign(e, KEYS[AUTHOR[name]]) for name, e in unsigned_entries().items()}
