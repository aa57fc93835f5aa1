"""Known-answer vectors: exact entry bytes / digests (regression pins).

The expected values were produced by this implementation (Ed25519 is deterministic) and pin
the wire format: a change to key order, number spelling, the signing domain or the signed
message breaks these tests on purpose.  Each vector has a ``desc`` and a verdict.
"""

from __future__ import annotations

import pytest

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E

KEY = SigningKey.from_bytes(bytes(range(32)))
QID = "ab" * 32


def _pt(k: int) -> str:
    return base_mul(Scalar(k)).to_bytes().hex()


SUBMISSION_BYTES = (
    b'{"kind":"submission","provider":"prov-1","query_id":"' + b"ab" * 32 + b'","sig":"617fa8'
    b"7d22da0856cac37b852ff5af6267442177799a259703e7336f0942958263daa7ddfcc8b00ddfcc767d3b1b3e"
    b'4a0a04a9c5ae3563f4f538d21825d1b104","v":1,"vector":"0102ff"}'
)

DIGESTS = [
    {"desc": "provider registration",
     "entry": lambda: E.PartyEntry("prov-1", "provider", KEY.public_key().to_bytes().hex()),
     "sha256": "9d5244e28890061859fdbd5e3a8e59e873a93d9f108a0f808090ced520ea8de3"},
    {"desc": "setup with two nodes",
     "entry": lambda: E.SetupEntry("cluster-1", ("node-a", "node-b"), _pt(23), 1),
     "sha256": "1ae91b525d5ce01f256777f7f57e57c6ef668d1be923c8a3ef4125d47b73cbfc"},
    {"desc": "aggregate with one ciphertext",
     "entry": lambda: E.AggregateEntry(QID, (3, 4), (5,), (_pt(2) + _pt(3),)),
     "sha256": "d0aa12ef3ccf8f02ac7fd19151b5e90169dadf753b1f1dd88b597a89161cc144"},
    {"desc": "result with a total beyond 2^53 (decimal string) and a float",
     "entry": lambda: E.ResultEntry.for_totals(QID, [12345, -7, 2**80], {"mean": 41.5, "n": 3}),
     "sha256": "439e2a30c684489c9c08086ad785c96fcce2f09327e47afe99bef50ff5a80a1a"},
    {"desc": "endorsement",
     "entry": lambda: E.EndorsementEntry(QID, "prov-1", "ee" * 32),
     "sha256": "7475a787301b2d325e027fd27a032f6fc4f956b93e254ea64a31b7fa31f9df3b"},
]


@pytest.mark.parametrize("vec", DIGESTS, ids=[v["desc"] for v in DIGESTS])
def test_digest_vectors(vec):
    s = E.sign(vec["entry"](), KEY)
    assert s.digest() == vec["sha256"]
    assert E.Entry.from_bytes(s.to_bytes()) == s


def test_submission_bytes_exact():
    s = E.sign(E.SubmissionEntry(QID, "prov-1", "0102ff"), KEY)
    assert s.to_bytes() == SUBMISSION_BYTES
    E.verify_signature(E.Entry.from_bytes(SUBMISSION_BYTES), KEY.public_key(), "prov-1")


REJECTS = [
    {"desc": "trailing-newline", "data": SUBMISSION_BYTES + b"\n", "error": MalformedError},
    {"desc": "leading-space", "data": b" " + SUBMISSION_BYTES, "error": MalformedError},
    {"desc": "uppercase-vector-hex", "data": SUBMISSION_BYTES.replace(b"0102ff", b"0102FF"),
     "error": MalformedError},
    {"desc": "space-after-colon", "data": SUBMISSION_BYTES.replace(b'"v":1', b'"v": 1'),
     "error": MalformedError},
    {"desc": "v-as-float", "data": SUBMISSION_BYTES.replace(b'"v":1', b'"v":1.0'),
     "error": MalformedError},
    {"desc": "truncated", "data": SUBMISSION_BYTES[:-1], "error": MalformedError},
    {"desc": "modified-vector", "data": SUBMISSION_BYTES.replace(b"0102ff", b"0102fe"),
     "error": VerificationError},
    {"desc": "modified-provider", "data": SUBMISSION_BYTES.replace(b"prov-1", b"prov-2"),
     "error": VerificationError},
]


@pytest.mark.parametrize("vec", REJECTS, ids=[v["desc"] for v in REJECTS])
def test_reject_vectors(vec):
    with pytest.raises(vec["error"]):
        e = E.Entry.from_bytes(vec["data"])
        E.verify_signature(e, KEY.public_key(), "prov-1")

