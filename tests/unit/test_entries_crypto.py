"""Entries that carry group elements / proofs: key-registration proof, accessors."""

from __future__ import annotations

import pytest
from test_entries_helpers import CONSORTIUM, KEYS, QID, point_hex

from statledger.proofs import elgamal, sigma
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import entries as E
from statledger.protocol.cbor import cbor_bytes
from statledger.protocol.flow import keyreg_context

OTHER_CONSORTIUM = "0f" * 32


def _compute_entry(party_id: str, x: Scalar, *, context_id: str | None = None,
                   consortium: str = CONSORTIUM) -> E.PartyEntry:
    X = base_mul(x)
    pok = sigma.prove_schnorr(x, X, keyreg_context(consortium, context_id or party_id))
    vk = KEYS["node-a"].public_key().to_bytes().hex()
    e = E.PartyEntry(party_id, "compute", vk, X.to_bytes().hex(), pok.to_bytes().hex())
    return E.sign(e, KEYS["node-a"])


def test_pok_accepts_and_round_trips():
    e = _compute_entry("node-a", Scalar(123456789))
    back = E.Entry.from_bytes(e.to_bytes())
    assert isinstance(back, E.PartyEntry)
    back.verify_pok(CONSORTIUM, step="step 1")


def test_pok_bound_to_party_id():
    # a proof made for node-b, relabelled as node-a: rejected, blaming node-a
    e = _compute_entry("node-a", Scalar(42), context_id="node-b")
    with pytest.raises(VerificationError, match="party node-a"):
        e.verify_pok(CONSORTIUM, step="step 1")
    _compute_entry("node-a", Scalar(42)).verify_pok(CONSORTIUM)  # twin: its own proof


def test_pok_bound_to_consortium():
    # a key share proven for another consortium is refused in this one (and vice versa):
    # a share cannot be replayed into a second consortium's key ceremony
    e = _compute_entry("node-a", Scalar(42), consortium=OTHER_CONSORTIUM)
    with pytest.raises(VerificationError, match="step 6 / party node-a: proof of knowledge"):
        e.verify_pok(CONSORTIUM, step="step 6")
    e.verify_pok(OTHER_CONSORTIUM, step="step 6")
    with pytest.raises(VerificationError, match="party node-a"):
        _compute_entry("node-a", Scalar(42)).verify_pok(OTHER_CONSORTIUM)
    # the context is the v2 domain + length-prefixed consortium id + party id
    ctx = keyreg_context(CONSORTIUM, "node-a")
    assert ctx.startswith(b"statledger/keyreg/v2\n")
    assert ctx != keyreg_context(OTHER_CONSORTIUM, "node-a")
    assert ctx != keyreg_context(CONSORTIUM, "node-b")
    # no ambiguity between (consortium, party) pairs that concatenate to the same text
    assert keyreg_context("ab", "c") != keyreg_context("a", "bc")


def test_pok_for_another_key_rejected():
    good = _compute_entry("node-a", Scalar(42))
    other = E.PartyEntry("node-a", "compute", good.sig_key, point_hex(43), good.pok)
    with pytest.raises(VerificationError, match="step 1 / party node-a"):
        other.verify_pok(CONSORTIUM, step="step 1")


def test_pok_bit_flips_rejected():
    good = _compute_entry("node-a", Scalar(7))
    assert good.pok is not None
    for pos in range(0, 128, 5):
        nib = good.pok[pos]
        flipped = "0123456789abcdef"[("0123456789abcdef".index(nib) ^ 1)]
        pok = good.pok[:pos] + flipped + good.pok[pos + 1:]
        try:
            e = E.PartyEntry("node-a", "compute", good.sig_key, good.elgamal_key, pok)
        except MalformedError:
            continue  # a scalar >= n does not even decode
        with pytest.raises(VerificationError, match="node-a"):
            e.verify_pok(CONSORTIUM)


def test_pok_encoding_strict():
    good = _compute_entry("node-a", Scalar(7))
    assert good.pok is not None
    order_hex = "ff" * 32  # c >= n: not a canonical scalar
    for bad in (good.pok[:-2], good.pok + "00", order_hex + good.pok[64:]):
        with pytest.raises(MalformedError, match="pok"):
            E.PartyEntry("node-a", "compute", good.sig_key, good.elgamal_key, bad)


def test_decryption_proof_and_aggregate_accessors():
    x = Scalar(99)
    X = base_mul(x)
    cts = [elgamal.encrypt(X, m) for m in (3, -4, 0)]
    ds = [elgamal.decryption_share(x, c) for c in cts]
    ctx = b"test"
    proof = sigma.prove_dleq_batch(x, X, [c.C1 for c in cts], ds, ctx)
    d = E.sign(E.DecryptionEntry(QID, "node-a", tuple(p.to_bytes().hex() for p in ds),
                                 proof.to_bytes().hex()), KEYS["node-a"])
    back = E.Entry.from_bytes(d.to_bytes())
    assert isinstance(back, E.DecryptionEntry)
    sigma.verify_dleq_batch(X, [c.C1 for c in cts], back.share_points(), back.decode_proof(),
                            ctx)
    agg = E.sign(E.AggregateEntry(QID, (1, 2), (), tuple(c.to_bytes().hex() for c in cts)),
                 KEYS["researcher"])
    back_agg = E.Entry.from_bytes(agg.to_bytes())
    assert isinstance(back_agg, E.AggregateEntry)
    assert back_agg.decode_ciphertexts() == cts
    # proof with a scalar >= n is refused at decoding
    obj = d.to_wire_obj()
    obj["proof"] = b"\xff" * 64
    with pytest.raises(MalformedError, match="proof"):
        E.Entry.from_bytes(cbor_bytes(obj))


def test_submission_and_noise_vectors_decode_against_ranges():
    from statledger.proofs.vector import encrypt_vector_with_proof, verify_encrypted_vector
    from statledger.protocol.flow import submission_context
    from statledger.protocol.noise import NoiseParams, commit_noise

    x = Scalar(31337)
    X = base_mul(x)
    ranges = [(0, 100), (-5, 5)]
    ev = encrypt_vector_with_proof(X, [42, -3], ranges, submission_context(QID, "prov-1"))
    sub = E.sign(E.SubmissionEntry(QID, "prov-1", ev.to_bytes().hex()), KEYS["prov-1"])
    back = E.Entry.from_bytes(sub.to_bytes())
    assert isinstance(back, E.SubmissionEntry)
    got = back.decode_vector(ranges)
    assert got.to_bytes() == ev.to_bytes()
    verify_encrypted_vector(X, got, ranges, submission_context(QID, "prov-1"))
    # twin: other ranges (a different limb layout) do not decode
    with pytest.raises(MalformedError):
        back.decode_vector([(0, 2**40), (-5, 5)])
    with pytest.raises(MalformedError):
        back.decode_vector([(0, 100)])
    # twin: truncated vector bytes
    short = E.SubmissionEntry(QID, "prov-1", ev.to_bytes()[:-1].hex())
    with pytest.raises(MalformedError):
        short.decode_vector(ranges)
    # a noise commitment decodes against its parameters' bit count only
    params = NoiseParams(2, 2, 2, 2, 1, 1)
    com = commit_noise(X, params, QID, "node-a")
    nz = E.NoiseCommitEntry.of(QID, com, params)
    assert nz.node == "node-a" and nz.noise_params() == params
    assert nz.decode_commitment(params).to_bytes() == com.to_bytes()
    with pytest.raises(MalformedError):
        nz.decode_commitment(NoiseParams(2, 2, 2, 3, 1, 1))
