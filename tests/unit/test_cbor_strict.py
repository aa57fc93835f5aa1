"""protocol/cbor.py: deterministic encoding and its strict decoder, with reject twins."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.errors import MalformedError
from statledger.protocol.cbor import MAX_DEPTH, cbor_bytes, parse_cbor

VALUE = {"v": 2, "kind": "x", "b": b"\x00\x01", "l": [1, -1, 2**40, "t", None, True, 1.5],
         "m": {"a": {"b": []}}}

json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20)
    | st.binary(max_size=40) | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30)


def test_round_trip_and_known_bytes():
    data = cbor_bytes(VALUE)
    assert parse_cbor(data) == VALUE
    # RFC 8949 appendix A examples (the deterministic ones)
    assert cbor_bytes(0) == bytes.fromhex("00")
    assert cbor_bytes(23) == bytes.fromhex("17")
    assert cbor_bytes(24) == bytes.fromhex("1818")
    assert cbor_bytes(-1000) == bytes.fromhex("3903e7")
    assert cbor_bytes(1.5) == bytes.fromhex("f93e00")
    assert cbor_bytes(100000.0) == bytes.fromhex("fa47c35000")
    assert cbor_bytes(1.1) == bytes.fromhex("fb3ff199999999999a")
    assert cbor_bytes({"b": 1, "a": 2, "aa": 3}) == bytes.fromhex("a361610261620162616103")
    assert cbor_bytes(b"\x01\x02") == bytes.fromhex("420102")


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_round_trip_property(value):
    data = cbor_bytes(value)
    assert cbor_bytes(parse_cbor(data)) == data


@pytest.mark.parametrize("bad, why", [
    (b"", "empty"),
    (bytes.fromhex("1817"), "deterministic"),            # 23 in the long form
    (bytes.fromhex("190017"), "deterministic"),
    (bytes.fromhex("5801ff"), "deterministic"),          # 1-byte string, long length
    (bytes.fromhex("fa3fc00000"), "deterministic"),      # 1.5 as a single
    (bytes.fromhex("fb3ff8000000000000"), "deterministic"),  # 1.5 as a double
    (bytes.fromhex("a2616201616102"), "deterministic"),  # keys not sorted
    (bytes.fromhex("a2616101616102"), "(?i)duplicate"),  # duplicate key
    (bytes.fromhex("5f4101ff"), "(?i)indefinite"),       # indefinite byte string
    (bytes.fromhex("9f01ff"), "(?i)indefinite"),
    (bytes.fromhex("bf616101ff"), "(?i)indefinite"),
    (bytes.fromhex("c249010000000000000000"), "tag"),     # bignum 2^64
    (bytes.fromhex("c24101"), "tag"),
    (bytes.fromhex("d9d9f701"), "tag"),                    # self-described CBOR
    (bytes.fromhex("d81c81d81d00"), "tag"),                # shared value cycle
    (bytes.fromhex("c074323031332d30332d32315432303a30343a30305a"), "tag"),
    (bytes.fromhex("d9ffff01"), "tag"),                    # an unknown tag
    (bytes.fromhex("f7"), "undefined|type"),               # undefined
    (bytes.fromhex("f0"), "type|simple"),                  # simple value 16
    (bytes.fromhex("f97e00"), "nan"),                      # NaN
    (bytes.fromhex("f97c00"), "inf"),                      # +infinity
    (bytes.fromhex("a10101"), "(?i)key"),                  # integer map key
    (bytes.fromhex("62c328"), "(?i)utf|decod"),            # invalid UTF-8
    (bytes.fromhex("0000"), "deterministic"),              # trailing item
    (bytes.fromhex("5b7fffffffffffffff00"), "truncated"),  # huge declared length
    (bytes.fromhex("9b7fffffffffffffff"), "truncated"),
    (bytes.fromhex("bb7fffffffffffffff"), "truncated"),
    (bytes.fromhex("1c"), "(?i)CBOR"),                     # reserved additional info
    (bytes.fromhex("ff"), "break"),                        # lone break
])
def test_reject_twins(bad, why):
    with pytest.raises(MalformedError, match=why):
        parse_cbor(bad)


def test_depth_limit_and_types():
    ok = [0]
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    parse_cbor(cbor_bytes(ok))
    deep = b"\x81" * (MAX_DEPTH + 1) + b"\x00"
    with pytest.raises(MalformedError):
        parse_cbor(deep)
    with pytest.raises(MalformedError):
        parse_cbor(b"\x81" * 100_000 + b"\x00")
    with pytest.raises(MalformedError):
        parse_cbor("text")  # type: ignore[arg-type]
    for bad in ({1: 2}, {"a": set()}, float("nan"), 2**64, -(2**64) - 1, object()):
        with pytest.raises(MalformedError):
            cbor_bytes(bad)


def test_every_truncation_and_bit_flip_of_a_value():
    data = cbor_bytes(VALUE)
    for cut in range(len(data)):
        with pytest.raises(MalformedError):
            parse_cbor(data[:cut])
    for pos in range(len(data)):
        for bit in range(8):
            m = bytearray(data)
            m[pos] ^= 1 << bit
            try:
                got = parse_cbor(bytes(m))
            except MalformedError:
                continue
            # anything that still decodes is deterministic and differs from the original
            assert cbor_bytes(got) == bytes(m) and got != VALUE


def test_cbor2_non_canonical_output_is_refused():
    value = {"zz": 1, "a": [1.0, 2**32]}
    with pytest.raises(MalformedError, match="deterministic"):
        parse_cbor(cbor2.dumps(value))
    assert parse_cbor(cbor2.dumps(value, canonical=True)) == value
