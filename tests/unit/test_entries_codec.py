"""Entries: canonical round trips, signatures, and mechanical reject twins for every kind.

The wire form is deterministic CBOR (entry version 2): ``_obj`` is the decoded wire map
(binary fields as bytes), ``_enc`` its deterministic encoding.
"""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from test_entries_helpers import (
    AUTHOR,
    CONSORTIUM,
    KEYS,
    NOISE_PARAMS,
    QID,
    SPEC,
    point_hex,
    signed_entries,
    spec,
)

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.protocol import entries as E
from statledger.protocol.cbor import cbor_bytes, parse_cbor

SIGNED = signed_entries()
NAMES = sorted(SIGNED)


def _obj(name: str) -> dict:
    return parse_cbor(SIGNED[name].to_bytes())


def _enc(obj: dict) -> bytes:
    return cbor_bytes(obj)


def _b(h: str) -> bytes:
    return bytes.fromhex(h)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_and_signature(name):
    e = SIGNED[name]
    data = e.to_bytes()
    back = E.Entry.from_bytes(data)
    assert back == e and type(back) is type(e)
    assert back.to_bytes() == data
    assert data == cbor_bytes(e.to_wire_obj())
    obj = parse_cbor(data)
    assert obj["v"] == 2 and obj["kind"] == e.KIND and obj["sig"] == _b(e.sig)
    assert len(obj["sig"]) == 64
    # every binary field is a byte string on the wire, hex in the readable view
    view = e.to_json_obj()
    for key, is_list in e.BINARY.items():
        if key in obj:
            assert obj[key] == ([_b(h) for h in view[key]] if is_list else _b(view[key]))
    assert E.Entry.from_json_obj(view) == e
    vk = KEYS[AUTHOR[name]].public_key()
    E.verify_signature(back, vk, AUTHOR[name])
    E.verify_entry_signature(back, vk, AUTHOR[name])
    # the signed message is the domain + canonical bytes without sig
    del obj["sig"]
    assert e.signing_message() == b"statledger/entry/v2\n" + cbor_bytes(obj)
    vk.verify(e.signing_message(), bytes.fromhex(e.sig))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_key_and_unsigned(name):
    e = SIGNED[name]
    other = KEYS["ledger" if AUTHOR[name] != "ledger" else "prov-1"].public_key()
    with pytest.raises(VerificationError, match="party mallory"):
        E.verify_signature(e, other, "mallory")
    from dataclasses import replace

    bare = replace(e, sig=None)
    with pytest.raises(MalformedError, match="not signed"):
        bare.to_bytes()
    with pytest.raises(VerificationError, match="not signed"):
        E.verify_signature(bare, KEYS[AUTHOR[name]].public_key(), AUTHOR[name])


@pytest.mark.parametrize("name", NAMES)
def test_bit_flips_never_verify(name):
    data = SIGNED[name].to_bytes()
    vk = KEYS[AUTHOR[name]].public_key()
    step = max(1, len(data) // 60)
    for pos in range(0, len(data), step):
        for bit in (0, 1, 5):
            mutated = bytearray(data)
            mutated[pos] ^= 1 << bit
            try:
                e2 = E.Entry.from_bytes(bytes(mutated))
            except MalformedError:
                continue
            with pytest.raises(VerificationError):
                E.verify_signature(e2, vk, AUTHOR[name])


@pytest.mark.parametrize("name", NAMES)
def test_truncation_and_garbage(name):
    data = SIGNED[name].to_bytes()
    for cut in list(range(0, len(data), max(1, len(data) // 60))) + [len(data) - 1]:
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(data[:cut])
    for junk in (b" ", b"\n", b"{}", b"\x00", b"0", b"\xa0", b"\xf6"):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(data + junk)
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(junk + data)


@pytest.mark.parametrize("name", NAMES)
def test_non_canonical_encodings_rejected(name):
    obj = _obj(name)
    data = SIGNED[name].to_bytes()
    # keys in another order (insertion order, reversed)
    for variant in (cbor2.dumps(obj), cbor2.dumps(dict(reversed(list(obj.items()))))):
        if variant == data:
            continue
        with pytest.raises(MalformedError, match="deterministic"):
            E.Entry.from_bytes(variant)
    # the map's length written in a longer form (0xb8 n instead of 0xa0 + n)
    assert data[0] == 0xA0 + len(obj)
    with pytest.raises(MalformedError, match="deterministic"):
        E.Entry.from_bytes(bytes([0xB8, len(obj)]) + data[1:])
    # indefinite-length map
    with pytest.raises(MalformedError, match="indefinite"):
        E.Entry.from_bytes(b"\xbf" + data[1:] + b"\xff")
    # the version as a float, as a long-form integer; a tag around the entry / the version
    for bad in (data.replace(b"av\x02", b"av\xf9\x40\x00", 1),
                data.replace(b"av\x02", b"av\x18\x02", 1),
                b"\xd9\xd9\xf7" + data, b"\xc0" + data,
                data.replace(b"av\x02", b"av\xc2\x41\x02", 1)):
        assert bad != data
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(bad)


@pytest.mark.parametrize("name", NAMES)
def test_duplicate_missing_extra_keys(name):
    data = SIGNED[name].to_bytes()
    n = data[0] - 0xA0
    dup = bytes([0xA0 + n + 1]) + data[1:] + cbor_bytes("v") + cbor_bytes(2)
    with pytest.raises(MalformedError, match="(?i)duplicate"):
        E.Entry.from_bytes(dup)
    obj = _obj(name)
    for key in list(obj):
        partial = {k: v for k, v in obj.items() if k != key}
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc(partial))
    with pytest.raises(MalformedError, match="unexpected"):
        E.Entry.from_bytes(_enc({**obj, "zzz": 1}))


@pytest.mark.parametrize("name", NAMES)
def test_version_kind_and_type_confusion(name):
    obj = _obj(name)
    for bad in ({**obj, "v": 1}, {**obj, "v": 3}, {**obj, "v": "2"}, {**obj, "v": True},
                {**obj, "v": 2.0}, {**obj, "v": 1.5}, {**obj, "v": b"\x02"},
                {**obj, "kind": "Party"}, {**obj, "kind": "nope"}, {**obj, "kind": 1}):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc(bad))
    # every field replaced by a value of a different JSON type
    for key in obj:
        if key in ("v", "kind"):
            continue
        for wrong in (None, 7, [], {}, True, 1.0, "text", b"\x01"):
            if type(wrong) is type(obj[key]):
                continue
            with pytest.raises(MalformedError):
                E.Entry.from_bytes(_enc({**obj, key: wrong}))
    with pytest.raises(MalformedError):
        E.Entry.from_bytes(b"\x80")
    with pytest.raises(MalformedError):
        E.Entry.from_bytes(b"")
    with pytest.raises(MalformedError):
        E.Entry.from_bytes("{}")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_binary_fields_strict(name):
    obj = _obj(name)
    binary = {**SIGNED[name].BINARY, "sig": False}
    for key, is_list in binary.items():
        if key not in obj:
            continue
        v = obj[key][0] if is_list else obj[key]
        assert isinstance(v, bytes)
        # the hex text of the bytes (the version 1 spelling), a bytearray-like list, empty
        for bad in (v.hex(), list(v), b""):
            with pytest.raises(MalformedError, match=key):
                E.Entry.from_bytes(_enc({**obj, key: [bad] if is_list else bad}))
        # the others have a fixed length (a vertical phase's ``data`` is decoded by step 9)
        if key not in ("vector", "commitment", "message", "data"):
            for bad in (v[:-1], v + b"\x00"):
                with pytest.raises(MalformedError, match=key):
                    E.Entry.from_bytes(_enc({**obj, key: [bad] if is_list else bad}))


@pytest.mark.parametrize("key, nbytes", [("sig", 64), ("sig_key", 32)])
def test_fixed_lengths(key, nbytes):
    obj = _obj("party")
    for n in (nbytes - 1, nbytes + 1):
        with pytest.raises(MalformedError, match="bytes"):
            E.Entry.from_bytes(_enc({**obj, key: b"\x11" * n}))
    for name in ("submission", "endorsement", "aggregate"):
        o = _obj(name)
        with pytest.raises(MalformedError, match="query_id"):
            E.Entry.from_bytes(_enc({**o, "query_id": o["query_id"][:-1]}))
    o = _obj("endorsement")
    with pytest.raises(MalformedError, match="result_digest"):
        E.Entry.from_bytes(_enc({**o, "result_digest": b"\xee" * 33}))


@pytest.mark.parametrize("bad_id", ["", "-x", "a b", "é", "a" * 129, "x\n", "a/b", "ab\n",
                                    "ab\r\n"])
def test_party_ids(bad_id):
    for name, key in (("party", "party_id"), ("submission", "provider"),
                      ("noise_commit", "node"), ("noise_coin", "node"),
                      ("query", "querier"), ("endorsement", "provider"),
                      ("decryption", "node"), ("dkg_deal", "node"), ("dkg_ack", "node"),
                      ("dkg_key", "node"), ("dkg_disclosure", "node"), ("pet", "node"),
                      ("gate", "node"), ("vertical_rows", "provider"),
                      ("vertical_products", "provider"), ("vertical_block", "provider")):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc({**_obj(name), key: bad_id}))
    # the nodes a result names as its decryptors
    with pytest.raises(MalformedError, match=r"decryptors\[0\]"):
        E.Entry.from_bytes(_enc({**_obj("result"), "decryptors": [bad_id]}))
    # the nodes whose gate shares a release decision combined
    with pytest.raises(MalformedError, match=r"decryptors\[0\]"):
        E.Entry.from_bytes(_enc({**_obj("release"), "decryptors": [bad_id]}))
    # the setup's compute node ids (the setup names no cluster any more: its consortium is
    # a 32-byte id, see test_setup_rules)
    with pytest.raises(MalformedError, match=r"compute\[0\]"):
        E.Entry.from_bytes(_enc({**_obj("setup"), "compute": [bad_id]}))
    assert E.check_party_id("a" * 128) == "a" * 128


def test_party_roles_and_keys():
    obj = _obj("party_compute")
    # compute without elgamal_key or pok
    for key in ("elgamal_key", "pok"):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc({k: v for k, v in obj.items() if k != key}))
    # provider / querier / ledger must not carry them
    for role in ("provider", "querier", "ledger"):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc({**obj, "role": role}))
    with pytest.raises(MalformedError, match="role"):
        E.Entry.from_bytes(_enc({**_obj("party"), "role": "admin"}))
    # points: identity, off curve, bad prefix, x >= p
    for bad in ("00" * 33, "02" + "00" * 31 + "07", "04" + point_hex(3)[2:],
                "02" + "ff" * 32):
        with pytest.raises(MalformedError, match="elgamal_key"):
            E.Entry.from_bytes(_enc({**obj, "elgamal_key": _b(bad)}))
    # Ed25519 key: small-order point refused
    with pytest.raises(MalformedError, match="sig_key"):
        E.Entry.from_bytes(_enc({**_obj("party"), "sig_key": _b("01" + "00" * 31)}))
    e = E.Entry.from_bytes(SIGNED["party_compute"].to_bytes())
    assert isinstance(e, E.PartyEntry)
    assert e.elgamal_point().to_bytes().hex() == point_hex(11)
    assert e.verify_key() == KEYS["node-a"].public_key()
    with pytest.raises(MalformedError):
        SIGNED["party"].elgamal_point()  # type: ignore[attr-defined]


def test_setup_rules():
    obj = _obj("setup")
    for bad in (["node-b", "node-a"], ["node-a", "node-a"], []):
        with pytest.raises(MalformedError, match="compute"):
            E.Entry.from_bytes(_enc({**obj, "compute": bad}))
    # the consortium is the 32-byte id of the genesis, not a free-form cluster name
    assert obj["consortium"] == _b(CONSORTIUM)
    for bad in (b"", obj["consortium"][:-1], obj["consortium"] + b"\x00", "cluster-1",
                CONSORTIUM, 1):
        with pytest.raises(MalformedError, match="consortium"):
            E.Entry.from_bytes(_enc({**obj, "consortium": bad}))
    for bad_id in ("cluster-1", "C" * 64, "ab" * 31, "ab" * 33, ""):
        with pytest.raises(MalformedError, match="consortium"):
            E.SetupEntry(bad_id, ("n",), 1, point_hex(2), (point_hex(3),))
    # the old fields are gone: a setup carrying cluster_id / witness_quorum is refused
    # (the witness quorum is the consortium roster's)
    with pytest.raises(MalformedError, match="unexpected"):
        E.Entry.from_bytes(_enc({**obj, "witness_quorum": 1}))
    old = {k: v for k, v in obj.items() if k != "consortium"}
    with pytest.raises(MalformedError, match="missing"):
        E.Entry.from_bytes(_enc({**old, "cluster_id": "cluster-1"}))
    # any 32-byte id decodes (step 6 checks it)
    E.SetupEntry("ab" * 32, ("n",), 1, point_hex(2), (point_hex(3),))
    with pytest.raises(MalformedError, match="collective_key"):
        E.Entry.from_bytes(_enc({**obj, "collective_key": bytes(33)}))
    setup = SIGNED["setup"]
    assert isinstance(setup, E.SetupEntry)
    assert setup.collective_point().to_bytes().hex() == point_hex(23)
    assert setup.consortium == CONSORTIUM and setup.compute == ("node-a", "node-b")
    assert setup.threshold == 2
    assert [p.to_bytes().hex() for p in setup.verification_points()] == [point_hex(24),
                                                                        point_hex(25)]
    assert setup.verification_point("node-b").to_bytes().hex() == point_hex(25)
    with pytest.raises(MalformedError, match="node-c is not a compute node"):
        setup.verification_point("node-c")


def test_setup_threshold_and_verification_keys():
    """The threshold: an integer from 1 to the number of compute nodes; the verification
    keys: one curve point per compute node, in their order."""
    obj = _obj("setup")
    assert obj["threshold"] == 2 and len(obj["verification_keys"]) == 2
    for t in (1, 2):  # the twins: 1-of-2 and 2-of-2
        e = E.Entry.from_bytes(_enc({**obj, "threshold": t}))
        assert isinstance(e, E.SetupEntry) and e.threshold == t
    for bad, why in ((0, "out of range"), (-1, "out of range"), (3, "more than the number"),
                     (2**53, "out of range"), (True, "expected an integer"),
                     (2.0, "expected an integer"), ("2", "expected an integer"),
                     (None, "expected an integer"), (b"\x02", "expected an integer"),
                     ([2], "expected an integer")):
        with pytest.raises(MalformedError, match=f"setup.threshold: .*{why}"):
            E.Entry.from_bytes(_enc({**obj, "threshold": bad}))
    with pytest.raises(MalformedError, match="threshold"):
        E.Entry.from_bytes(_enc({k: v for k, v in obj.items() if k != "threshold"}))
    for bad_t in (0, 3):
        with pytest.raises(MalformedError, match="setup.threshold"):
            E.SetupEntry(CONSORTIUM, ("node-a", "node-b"), bad_t, point_hex(23),
                         (point_hex(24), point_hex(25)))
    # one verification key per compute node
    y1, y2 = obj["verification_keys"]
    for bad in ([], [y1], [y1, y2, y1], [y1, y2, _b(point_hex(26))]):
        with pytest.raises(MalformedError, match="verification_keys"):
            E.Entry.from_bytes(_enc({**obj, "verification_keys": bad}))
    for bad in ((point_hex(24),), (point_hex(24), point_hex(25), point_hex(26))):
        with pytest.raises(MalformedError, match="verification_keys: one per compute node"):
            E.SetupEntry(CONSORTIUM, ("node-a", "node-b"), 2, point_hex(23), bad)
    # points: off the curve, the identity, a bad prefix, x >= p, uncompressed, wrong length
    for bad_point in ("02" + "00" * 31 + "07", "00" * 33, "04" + point_hex(3)[2:],
                      "02" + "ff" * 32, "04" + "11" * 64, point_hex(3)[:-2],
                      point_hex(3) + "00"):
        for pos in (0, 1):
            keys = [y1, y2]
            keys[pos] = _b(bad_point)
            with pytest.raises(MalformedError, match=rf"verification_keys(\[{pos}\])?"):
                E.Entry.from_bytes(_enc({**obj, "verification_keys": keys}))
        with pytest.raises(MalformedError, match=r"verification_keys\[1\]"):
            E.SetupEntry(CONSORTIUM, ("node-a", "node-b"), 2, point_hex(23),
                         (point_hex(24), bad_point))
    # a list of byte strings on the wire, never one string or hex text
    for bad in (y1 + y2, [y1.hex(), y2.hex()], point_hex(24), 7, None):
        with pytest.raises(MalformedError, match="verification_keys"):
            E.Entry.from_bytes(_enc({**obj, "verification_keys": bad}))
    # lists given to the constructor become tuples
    e = E.SetupEntry(CONSORTIUM, ["node-a"], 1, point_hex(2),  # type: ignore[arg-type]
                     [point_hex(3)])  # type: ignore[arg-type]
    assert e.compute == ("node-a",) and e.verification_keys == (point_hex(3),)


def test_query_rules():
    obj = _obj("query")
    other = spec(min_providers=3)
    # query id of another spec
    with pytest.raises(MalformedError, match="query_id"):
        E.Entry.from_bytes(_enc({**obj, "query_id": _b(other.query_id_for(obj["querier"]))}))
    # the same spec under another querier's id (or another querier under this id): the
    # querier is part of the id, so nobody can post, occupy or resume another's query
    with pytest.raises(MalformedError, match="query_id"):
        E.Entry.from_bytes(_enc({**obj, "query_id": _b(SPEC.query_id_for("mallory"))}))
    with pytest.raises(MalformedError, match="query_id"):
        E.Entry.from_bytes(_enc({**obj, "querier": "mallory"}))
    # a spec that is not normalised (defaults dropped) is refused
    short = {"version": 1, "statistic": "mean", "columns": ["age"],
             "bounds": {"age": [0, 120]}, "min_providers": 2}
    with pytest.raises(MalformedError, match="spec"):
        E.Entry.from_bytes(_enc({**obj, "spec": short}))
    # an invalid spec
    with pytest.raises(MalformedError, match="spec"):
        E.Entry.from_bytes(_enc({**obj, "spec": {**obj["spec"], "version": 9}}))
    q = E.Entry.from_bytes(SIGNED["query"].to_bytes())
    assert isinstance(q, E.QueryEntry)
    assert q.query_spec() == SPEC and q.query_id == QID
    # recomputed independently: SHA-256 of RFC 8785 bytes of {domain, querier, spec}
    import rfc8785

    expected = hashlib.sha256(rfc8785.dumps({"domain": "statledger/query-id/v1",
                                             "querier": q.querier,
                                             "spec": SPEC.to_json_obj()})).hexdigest()
    assert q.query_id == expected
    assert SPEC.digest == hashlib.sha256(SPEC.canonical_bytes()).hexdigest() != q.query_id
    assert SPEC.query_id_for("another-querier") != q.query_id


def test_aggregate_rules():
    obj = _obj("aggregate")
    for key, bad in (("submissions", [4, 3]), ("submissions", [3, 3]), ("submissions", []),
                     ("submissions", [-1, 2]), ("submissions", [True]), ("noise", [3]),
                     ("noise", [1.5]), ("ciphertexts", []),
                     ("ciphertexts", [obj["ciphertexts"][0][:-1]]),
                     ("ciphertexts", [_b("02" + "00" * 31 + "07" + point_hex(2))]),
                     ("ciphertexts", [obj["ciphertexts"][0].hex()])):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(_enc({**obj, key: bad}))
    assert E.Entry.from_bytes(_enc({**obj, "noise": []})).noise == ()  # type: ignore


def test_decryption_and_result_rules():
    obj = _obj("decryption")
    for bad in ([], [_b("02" + "00" * 31 + "07")], [_b(point_hex(3)[:-2])], [point_hex(3)]):
        with pytest.raises(MalformedError, match="shares"):
            E.Entry.from_bytes(_enc({**obj, "shares": bad}))
    d = SIGNED["decryption"]
    assert [p.to_bytes().hex() for p in d.share_points()] == [point_hex(5), point_hex(6)]
    r = _obj("result")
    for bad in (["01"], ["-0"], ["+1"], [5], ["1.0"], ["1e3"], [], [" 1"], ["9" * 401]):
        with pytest.raises(MalformedError, match="totals"):
            E.Entry.from_bytes(_enc({**r, "totals": bad}))
    with pytest.raises(MalformedError, match="result"):
        E.Entry.from_bytes(_enc({**r, "result": [1, 2]}))
    res = SIGNED["result"]
    assert res.totals_int() == [12345, -7, 0, 2**80]  # type: ignore[attr-defined]
    # the decryptors: sorted by for_totals, and on the wire a sorted list of distinct ids
    assert res.decryptors == ("node-a", "node-b")  # type: ignore[attr-defined]
    assert r["decryptors"] == ["node-a", "node-b"]
    one = E.Entry.from_bytes(_enc({**r, "decryptors": ["node-b"]}))
    assert isinstance(one, E.ResultEntry) and one.decryptors == ("node-b",)
    # empty decryptors only with empty totals (every entry withheld by the PET gate)
    for bad, why in (([], "totals without decrypting nodes"),
                     (["node-b", "node-a"], "sorted and unique"),
                     (["node-a", "node-a"], "sorted and unique"),
                     (["node-a", "node-b", "node-a"], "sorted and unique"),
                     ("node-a", "expected a list"), ([b"node-a"], "not a valid party id"),
                     ([1], "not a valid party id"), (None, "expected a list")):
        with pytest.raises(MalformedError, match=f"result.decryptors.*{why}"):
            E.Entry.from_bytes(_enc({**r, "decryptors": bad}))
    with pytest.raises(MalformedError, match="decryptors"):
        E.Entry.from_bytes(_enc({k: v for k, v in r.items() if k != "decryptors"}))
    for bad_names in ((), ("node-b", "node-a"), ("node-a", "node-a")):
        with pytest.raises(MalformedError, match="result.decryptors"):
            E.ResultEntry(QID, ("1",), {}, bad_names)
    with pytest.raises(MalformedError, match="result.decryptors"):
        E.ResultEntry.for_totals(QID, [1], {}, ["node-a", "node-a"])


@pytest.mark.parametrize("kind", ["dkg_deal", "dkg_ack", "dkg_key", "dkg_disclosure"])
def test_dkg_entry_rules(kind):
    """The key ceremony's entries: a node id and a non-empty byte string (the codec does not
    decode the message: step 6 decodes it against the ceremony's parameters)."""
    obj = _obj(kind)
    cls = E.KINDS[kind]
    e = SIGNED[kind]
    assert isinstance(e, cls) and e.KIND == kind and e.claimed_author() == obj["node"]
    assert e.message_bytes() == obj["message"]  # type: ignore[attr-defined]
    # any bytes decode: the twin of the rejects below
    assert E.Entry.from_bytes(_enc({**obj, "message": b"\x00"})) == cls(obj["node"], "00",
                                                                         sig=e.sig)
    # a bad node id
    for bad_id in ("", "-x", "a b", "node a", "é", "a" * 129, 7, None, b"node-a"):
        with pytest.raises(MalformedError, match=f"{kind}.node"):
            E.Entry.from_bytes(_enc({**obj, "node": bad_id}))
        with pytest.raises(MalformedError, match=f"{kind}.node"):
            cls(bad_id, "00")  # type: ignore[call-arg]
    # a message that is not bytes on the wire / not lowercase hex of whole bytes in the
    # constructor
    for bad in (obj["message"].hex(), "zz", b"", 5, None, [1, 2], True):
        with pytest.raises(MalformedError, match=f"{kind}.message"):
            E.Entry.from_bytes(_enc({**obj, "message": bad}))
    for bad in ("", "0", "abc", "zz", "AB", "0x01", " 01", "01 ", 1, b"\x01", None):
        with pytest.raises(MalformedError, match=f"{kind}.message"):
            cls("node-a", bad)  # type: ignore[call-arg]
    # the kind is signed: the same fields under another ceremony kind do not verify
    for other in ("dkg_deal", "dkg_ack", "dkg_key", "dkg_disclosure"):
        if other == kind:
            continue
        moved = E.Entry.from_bytes(_enc({**obj, "kind": other}))
        assert type(moved) is E.KINDS[other]
        with pytest.raises(VerificationError):
            E.verify_signature(moved, KEYS[AUTHOR[kind]].public_key(), AUTHOR[kind])

def test_swapped_fields_do_not_verify():
    # provider ids swapped between two otherwise valid submissions: signature breaks
    obj = _obj("submission")
    swapped = E.Entry.from_bytes(_enc({**obj, "provider": "prov-2"}))
    with pytest.raises(VerificationError):
        E.verify_signature(swapped, KEYS["prov-1"].public_key(), "prov-1")
    # a signature moved from one kind to another
    n = _obj("noise_commit")
    moved = E.Entry.from_bytes(_enc({**n, "sig": obj["sig"]}))
    with pytest.raises(VerificationError):
        E.verify_signature(moved, KEYS["prov-1"].public_key(), "prov-1")
    # a submission and a noise commitment with the same bytes are different messages (the
    # kind and the field names are signed)
    sub = E.sign(E.SubmissionEntry(QID, "node-a", "aa55"), KEYS["node-a"])
    noise_obj = {**parse_cbor(sub.to_bytes()), "kind": "noise_commit", "node": "node-a"}
    del noise_obj["provider"]
    noise_obj["commitment"] = noise_obj.pop("vector")
    noise_obj["params"] = NOISE_PARAMS
    as_noise = E.Entry.from_bytes(_enc(noise_obj))
    with pytest.raises(VerificationError):
        E.verify_signature(as_noise, KEYS["node-a"].public_key(), "node-a")


def test_result_digest():
    res = SIGNED["result"]
    d = E.result_digest(res)  # type: ignore[arg-type]
    assert d == hashlib.sha256(res.to_bytes()).hexdigest()
    assert E.result_digest(res.to_bytes()) == d
    with pytest.raises(MalformedError):
        E.result_digest(SIGNED["submission"].to_bytes())
    with pytest.raises(MalformedError):
        E.result_digest(res.to_bytes() + b" ")
    with pytest.raises(MalformedError):
        E.result_digest("abc")  # type: ignore[arg-type]
    from dataclasses import replace
    with pytest.raises(MalformedError):
        E.result_digest(replace(res, sig=None))  # type: ignore[arg-type]


def test_entries_are_immutable_and_construction_validates():
    e = SIGNED["submission"]
    with pytest.raises(AttributeError):
        e.provider = "x"  # type: ignore[misc]
    with pytest.raises(MalformedError):
        E.SubmissionEntry(QID, "prov-1", "XYZ")
    with pytest.raises(MalformedError):
        E.SubmissionEntry(QID, "prov-1", "00", sig="00")
    # lists given to the constructor become tuples (deep immutability of sequences)
    agg = E.AggregateEntry(QID, [1], [], [point_hex(2) + point_hex(3)])  # type: ignore[arg-type]
    assert agg.submissions == (1,) and agg.ciphertexts == (point_hex(2) + point_hex(3),)


def test_every_registered_kind_has_a_signed_entry():
    """The generic suite above runs for every entry of ``signed_entries``: a kind registered
    in ``entries.KINDS`` without one there would skip every reject twin.  This fails first."""
    covered = {e.KIND for e in SIGNED.values()}
    missing = set(E.KINDS) - covered
    assert not missing, f"add a signed entry of {sorted(missing)} to test_entries_helpers"
    assert covered <= set(E.KINDS)
    for name, e in SIGNED.items():
        assert type(e) is E.KINDS[e.KIND], name


@pytest.mark.parametrize("name", NAMES)
def test_kind_confusion(name):
    """The same fields under every other kind: refused by the codec (another shape), or, when
    two kinds share a shape (decryption / gate, setup / rekey, the ceremony's and the
    vertical phases' kinds), decoded as that kind but never verifying: the kind is signed."""
    obj = _obj(name)
    vk = KEYS[AUTHOR[name]].public_key()
    same_shape = 0
    for other in sorted(E.KINDS):
        if other == obj["kind"]:
            continue
        try:
            moved = E.Entry.from_bytes(_enc({**obj, "kind": other}))
        except MalformedError:
            continue
        same_shape += 1
        assert type(moved) is E.KINDS[other]
        with pytest.raises(VerificationError):
            E.verify_signature(moved, vk, AUTHOR[name])
    if obj["kind"] in ("gate", "decryption", *E.VERTICAL_KINDS):
        assert same_shape >= 1  # the twin above really ran for these kinds


def test_gate_and_decryption_shares_are_not_interchangeable():
    """A gate entry carries decryption shares of the PET's last ciphertexts only; presented as
    a decryption entry (or back) it must not verify, whoever signed it."""
    gate = SIGNED["gate"]
    as_dec = E.DecryptionEntry(gate.query_id, gate.node, gate.shares,  # type: ignore[attr-defined]
                               gate.proof, sig=gate.sig)  # type: ignore[attr-defined]
    with pytest.raises(VerificationError):
        E.verify_signature(as_dec, KEYS["node-a"].public_key(), "node-a")
    E.verify_signature(gate, KEYS["node-a"].public_key(), "node-a")


def test_pet_entry_rules():
    obj = _obj("pet")
    e = SIGNED["pet"]
    assert isinstance(e, E.PetEntry) and e.cells == 1 and e.claimed_author() == "node-a"
    assert len(e.batches()[0].blinded) == 2
    # a version 1 entry (no proof_version) and another version are refused by name
    with pytest.raises(MalformedError, match="proof_version|version 1"):
        E.Entry.from_bytes(_enc({k: v for k, v in obj.items() if k != "proof_version"}))
    for bad in (1, 3, True, "2"):
        with pytest.raises(MalformedError, match="proof_version"):
            E.Entry.from_bytes(_enc({**obj, "proof_version": bad}))
    # lists of unequal length; an empty list; a ciphertext that is the identity
    for key in ("blinded", "blind_proofs", "shuffled"):
        with pytest.raises(MalformedError, match="pet"):
            E.Entry.from_bytes(_enc({**obj, key: obj[key][:1]}))
        with pytest.raises(MalformedError, match=key):
            E.Entry.from_bytes(_enc({**obj, key: []}))
    with pytest.raises(MalformedError, match="blinded"):
        E.Entry.from_bytes(_enc({**obj, "blinded": [bytes(66)] + obj["blinded"][1:]}))
    # the two halves of a blinded ciphertext swapped still decode, but the chain's proofs
    # (step 12) are not the codec's business: the signature still binds the bytes
    swapped = [c[33:] + c[:33] for c in obj["blinded"]]
    moved = E.Entry.from_bytes(_enc({**obj, "blinded": swapped}))
    with pytest.raises(VerificationError):
        E.verify_signature(moved, KEYS["node-a"].public_key(), "node-a")


def test_release_rules():
    obj = _obj("release")
    e = SIGNED["release"]
    assert isinstance(e, E.ReleaseEntry)
    assert e.decryptors == ("node-a", "node-b") and e.small_bits() == [True, False]
    assert e.released == (1, 2) and e.merged == ((1, 0),) and e.ciphertexts == 3
    # the twins that decode: nothing released, no merged group
    for ok in ({"released": [], "merged": []}, {"merged": []}):
        E.Entry.from_bytes(_enc({**obj, **ok}))
    for key, bad in (("decryptors", ["node-b", "node-a"]), ("decryptors", ["node-a"] * 2),
                     ("decryptors", []), ("small", []), ("small", [2]), ("small", [True]),
                     ("small", [-1]), ("released", [2, 1]), ("released", [1, 1]),
                     ("released", [-1]), ("released", [True]), ("ciphertexts", 1),
                     ("ciphertexts", -1), ("ciphertexts", True),
                     ("merged", [[0, 1]]),           # the target is not released
                     ("merged", [[1]]),              # no other member
                     ("merged", [[1, 2]]),           # a member that is itself released
                     ("merged", [[1, 0], [2, 0]]),   # a member in two groups
                     ("merged", [[2, 0], [1, 3]]),   # groups out of order
                     ("merged", [[1, 3, 0]])):       # members not increasing
        with pytest.raises(MalformedError, match=f"release.{key}"):
            E.Entry.from_bytes(_enc({**obj, key: bad}))


@pytest.mark.parametrize("kind", E.VERTICAL_KINDS)
def test_vertical_entry_rules(kind):
    """An owner's phase: a query id, a provider id and non-empty bytes (decoded by step 9
    against the query's plan, not by the codec)."""
    obj = _obj(kind)
    e = SIGNED[kind]
    assert e.claimed_author() == obj["provider"]
    assert E.Entry.from_bytes(_enc({**obj, "data": b"\x00"})).data == "00"  # type: ignore
    for bad in (b"", obj["data"].hex(), 5, None, [obj["data"]]):
        with pytest.raises(MalformedError, match=f"{kind}.data"):
            E.Entry.from_bytes(_enc({**obj, "data": bad}))
    with pytest.raises(MalformedError, match="query_id"):
        E.Entry.from_bytes(_enc({**obj, "query_id": obj["query_id"][:-1]}))
