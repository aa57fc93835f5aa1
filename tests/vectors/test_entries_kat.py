"""Known-answer vectors: exact entry bytes / digests (regression pins).

The expected values were produced by this implementation (Ed25519 is deterministic) and pin
the wire format (entry version 2, deterministic CBOR): a change to key order, integer or
length spelling, the signing domain or the signed message breaks these tests on purpose.
Each vector has a ``desc`` and a verdict.

Regenerate (only when the entry encoding changes on purpose, and say so in the commit):
``python tests/vectors/test_entries_kat.py`` prints the digests and the submission's bytes.
"""

from __future__ import annotations

import pytest

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol.consortium import (
    AdmissionRule,
    Genesis,
    Member,
    MembershipChange,
    SignedGenesis,
    derive_roster,
)

KEY = SigningKey.from_bytes(bytes(range(32)))
QID = "ab" * 32


def _pt(k: int) -> str:
    return base_mul(Scalar(k)).to_bytes().hex()


NODE_KEY = SigningKey.from_bytes(bytes(range(1, 33)))
PROV_KEY = SigningKey.from_bytes(bytes(range(2, 34)))
#: SHA-256 of the canonical genesis document of ``_genesis()`` (its consortium id).
#: Recomputed when the consortium documents went to version 2 on purpose (the t-of-n key
#: from the key ceremony, docs/dkg.md): the genesis gained ``decryption_threshold`` (always
#: written, here its default 1 = the one compute node).  The id of the version 1 document
#: was 6c8f7c145a27a7c68f3fce1366d8cf9ee557c77878c36a897a31b6eec05b9a88.
CONSORTIUM_ID = "601ca6075ff4c5e743d2ffee621e86d226b2d8460dd1a718c285e4b0b6637b97"


def _vk(key: SigningKey) -> str:
    return key.public_key().to_bytes().hex()


def _genesis() -> SignedGenesis:
    g = Genesis("kat consortium", "statledger.test/kat",
                (Member("ledger", "ledger", _vk(KEY)), Member("node-a", "compute", _vk(NODE_KEY))),
                1, AdmissionRule(1, ("compute",)))
    return SignedGenesis(g).sign("ledger", KEY).sign("node-a", NODE_KEY)


def _admission() -> MembershipChange:
    change = MembershipChange(CONSORTIUM_ID, 1, CONSORTIUM_ID,
                              admit=(Member("prov-1", "provider", _vk(PROV_KEY)),))
    return change.sign("node-a", NODE_KEY).prove_possession("prov-1", PROV_KEY)


# The signed submission of ``test_submission_bytes_exact``, item by item (RFC 8949 section
# 4.2.1: definite lengths, shortest arguments, keys sorted by their encoded bytes, i.e. by
# length then bytewise).
SIG = ("a5e8a9e5ac77a5e881bb3f0b81937c590b14e92018cdfeb95d6dccc5e89ba40c"
       "b0288a300a9ecc4724d4ba756e0292672a0ecbc137cd56f6152854504e6bb90d")
SUBMISSION_BYTES = bytes.fromhex(
    "a6"                                          # map of 6 pairs
    "6176" "02"                                   # "v": 2
    "63736967" "5840" + SIG +                     # "sig": 64 bytes
    "646b696e64" "6a7375626d697373696f6e"         # "kind": "submission"
    "66766563746f72" "430102ff"                   # "vector": h'0102ff'
    "6870726f7669646572" "6670726f762d31"         # "provider": "prov-1"
    "6871756572795f6964" "5820" + "ab" * 32       # "query_id": 32 bytes
)

#: The same entry in the version 1 encoding (RFC 8785 JSON, hex): refused by name.
SUBMISSION_V1 = (
    b'{"kind":"submission","provider":"prov-1","query_id":"' + b"ab" * 32 + b'","sig":"617fa8'
    b"7d22da0856cac37b852ff5af6267442177799a259703e7336f0942958263daa7ddfcc8b00ddfcc767d3b1b3e"
    b'4a0a04a9c5ae3563f4f538d21825d1b104","v":1,"vector":"0102ff"}'
)

DIGESTS = [
    {"desc": "provider registration",
     "entry": lambda: E.PartyEntry("prov-1", "provider", KEY.public_key().to_bytes().hex()),
     "sha256": "f5ca412a15ec2107dcfb3925ed61c73f10f961d6742b56abf1290d3beae0fa43"},
    # Recomputed when the setup entry's format changed on purpose (the consortium on the
    # log): ``cluster_id`` became ``consortium`` (the 32-byte consortium id, a byte string)
    # and ``witness_quorum`` left the entry (it is the consortium roster's).  The digest of
    # the old format was 973f97a86266030c467542c0aa77380139d6d3f05dc03e3fc9dadca8e0e3b99a.
    # Recomputed again when the key became t-of-n from the key ceremony on the log
    # (docs/dkg.md): the setup gained ``threshold`` and ``verification_keys`` (one point per
    # compute node).  The digest of the n-of-n format (no such fields) was
    # c9e04beb446753ef33eb33cc2789d2a4cf64cda1a7694bda85c7edcaf934afa5.
    {"desc": "setup with two nodes",
     "entry": lambda: E.SetupEntry("c0" * 32, ("node-a", "node-b"), 2, _pt(23),
                                   (_pt(24), _pt(25))),
     "sha256": "c0d83dadad646cea9774de14870546d2c3ce440d7f5aaf4fd6d342885d80329b"},
    # New kinds (the consortium on the log), pinned when they were introduced.  Both
    # recomputed for the version 2 consortium documents (see CONSORTIUM_ID; the change is
    # version 2 too and names the genesis it extends); the version 1 digests were
    # c9e0b0738ae41e68128177ece9550790200cdf8a7bcceb7fdd0b6a5e0e11b903 (genesis) and
    # d1411dbfdee81041a5e9e3b9eec6e006720526d074daafe974b769f06fd03e94 (change).
    {"desc": "genesis of a two-member consortium",
     "entry": lambda: E.GenesisEntry.of(_genesis()),
     "sha256": "bcabbe1c3c6b207968303425980385a179fe89062267dbe03882085f56220561"},
    {"desc": "membership change admitting a provider",
     "entry": lambda: E.MembershipEntry.of(_admission()),
     "sha256": "7289e98d7e2bf2b900f52ec5aa52e27d11003c04f2161a4dda2d996663cd2567"},
    {"desc": "aggregate with one ciphertext",
     "entry": lambda: E.AggregateEntry(QID, (3, 4), (5,), (_pt(2) + _pt(3),)),
     "sha256": "1a4cfea54f0d92bf2f73317dda7117b8b43b6c3ce14c26dc7b87f6f65f8acb61"},
    # Recomputed when the result gained ``decryptors`` on purpose (the T nodes whose
    # decryption shares were combined, docs/dkg.md); the digest before was
    # 7c7ba1bc27ee7010f091cfb5d20e5a7f30fd01f7a849fe363e1cd29d6d8dbb2a.
    {"desc": "result with a total beyond 2^53 (decimal string) and a float",
     "entry": lambda: E.ResultEntry.for_totals(QID, [12345, -7, 2**80], {"mean": 41.5, "n": 3},
                                               ("node-a", "node-c")),
     "sha256": "de05be071c548486165367118d095d5f2a7ff91420f00f12ec1b20a3f9e5f9b5"},
    {"desc": "endorsement",
     "entry": lambda: E.EndorsementEntry(QID, "prov-1", "ee" * 32),
     "sha256": "7795f5a654c1264b8a5ab3f72b72836848a2cef71b92add69d4978c7b6eaf7dc"},
    # The verifiable noise round (docs/noise.md) replaced the `noise` kind; pinned when the
    # two kinds were introduced.  The commitment's vector changed on purpose: the commitment
    # carries the querier's parameters (`params`, NoiseParams.to_json_obj); the digest before
    # was 91932ba1c91cf57407bf4b4f2b6d435a9210a88cc33a01ae9bd4c728770d5058.
    {"desc": "noise commitment",
     "entry": lambda: E.NoiseCommitEntry(QID, "node-a", "0102ff", {
         "n_nodes": 3, "threshold": 3, "entries": 1, "summands": 34, "summand_bits": 1,
         "uniform_bits": 0}),
     "sha256": "391749c83f73595eb776eb6e5f0c7d3fbd1983d710b4e92a118ce104ada54dad"},
    {"desc": "noise coin share",
     "entry": lambda: E.NoiseCoinEntry(QID, "node-a", _pt(7), "11" * 64),
     "sha256": "40547af4afeff0b1a76200cb4f1a403f092f2d41a79f9934dba7c5bbb05a2c48"},
    # The key ceremony's kinds (docs/dkg.md), pinned when they were introduced (the message
    # is opaque to the entry codec).
    {"desc": "dkg deal",
     "entry": lambda: E.DkgDealEntry("node-a", "0102ff"),
     "sha256": "a79e0037fcf4dd564272dfcef8f7e8c3ee8a060dc4f210cee4605eff57f4af7f"},
    {"desc": "dkg ack",
     "entry": lambda: E.DkgAckEntry("node-a", "00000000"),
     "sha256": "2c129283d28367f5203767fd1370e6f9b6e9ffaa7b678d981df1cece4df7538a"},
    {"desc": "dkg key commitment",
     "entry": lambda: E.DkgKeyEntry("node-a", "0102ff"),
     "sha256": "d7325e5696937ebfa21aee2dabacaad8bfcf6c58ce7b35ceb51a6004cf1d3340"},
    {"desc": "dkg disclosure",
     "entry": lambda: E.DkgDisclosureEntry("node-b", "0102ff"),
     "sha256": "8a9b6d8e5fba1891b2e99850717f6151db08960a7637edadf6b2cf1e54267d77"},
]


@pytest.mark.parametrize("vec", DIGESTS, ids=[v["desc"] for v in DIGESTS])
def test_digest_vectors(vec):
    s = E.sign(vec["entry"](), KEY)
    assert s.digest() == vec["sha256"]
    assert E.Entry.from_bytes(s.to_bytes()) == s


def test_consortium_vectors_are_valid():
    """The pinned genesis and change are what they claim: the id is the genesis' hash, the
    change extends the chain and admits prov-1."""
    signed = _genesis()
    assert signed.genesis.consortium_id == CONSORTIUM_ID
    assert signed.genesis.to_json_obj()["decryption_threshold"] == 1  # written when defaulted
    signed.verify(CONSORTIUM_ID)
    roster = derive_roster(signed, [_admission()], CONSORTIUM_ID)
    assert roster.member("prov-1", "provider").sig_key == _vk(PROV_KEY)
    g = E.Entry.from_bytes(E.sign(E.GenesisEntry.of(signed), KEY).to_bytes())
    assert isinstance(g, E.GenesisEntry) and g.signed_genesis() == signed


def test_submission_bytes_exact():
    s = E.sign(E.SubmissionEntry(QID, "prov-1", "0102ff"), KEY)
    assert s.to_bytes() == SUBMISSION_BYTES
    E.verify_signature(E.Entry.from_bytes(SUBMISSION_BYTES), KEY.public_key(), "prov-1")


REJECTS = [
    {"desc": "trailing-byte", "data": SUBMISSION_BYTES + b"\x00", "error": MalformedError},
    {"desc": "leading-byte", "data": b"\xa0" + SUBMISSION_BYTES, "error": MalformedError},
    {"desc": "vector-as-hex-text",
     "data": SUBMISSION_BYTES.replace(b"\x43\x01\x02\xff", b"\x66" + b"0102ff"),
     "error": MalformedError},
    {"desc": "v-as-half-float", "data": SUBMISSION_BYTES.replace(b"av\x02", b"av\xf9\x40\x00"),
     "error": MalformedError},
    {"desc": "v-long-form", "data": SUBMISSION_BYTES.replace(b"av\x02", b"av\x18\x02"),
     "error": MalformedError},
    {"desc": "vector-length-long-form",
     "data": SUBMISSION_BYTES.replace(b"\x43\x01\x02\xff", b"\x58\x03\x01\x02\xff"),
     "error": MalformedError},
    {"desc": "truncated", "data": SUBMISSION_BYTES[:-1], "error": MalformedError},
    {"desc": "version-1-json", "data": SUBMISSION_V1, "error": MalformedError},
    {"desc": "modified-vector", "data": SUBMISSION_BYTES.replace(b"\x01\x02\xff", b"\x01\x02\xfe"),
     "error": VerificationError},
    {"desc": "modified-provider", "data": SUBMISSION_BYTES.replace(b"prov-1", b"prov-2"),
     "error": VerificationError},
]


@pytest.mark.parametrize("vec", REJECTS, ids=[v["desc"] for v in REJECTS])
def test_reject_vectors(vec):
    with pytest.raises(vec["error"]):
        e = E.Entry.from_bytes(vec["data"])
        E.verify_signature(e, KEY.public_key(), "prov-1")



def test_version_1_is_named():
    with pytest.raises(MalformedError, match="version 1"):
        E.Entry.from_bytes(SUBMISSION_V1)


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    for vec in DIGESTS:
        print(f"{vec['desc']}: {E.sign(vec['entry'](), KEY).digest()}")
    print("submission:", E.sign(E.SubmissionEntry(QID, "prov-1", "0102ff"), KEY).to_bytes().hex())
