"""verifier/certificate.py: the statledger-certificate/v2 layout, round trips, reject twins."""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.errors import MalformedError
from statledger.verifier import certificate as C
from statledger.verifier.certificate import (
    MAGIC,
    CertEntry,
    Certificate,
    build_certificate,
    parse_certificate,
)

CERT = build_certificate(
    "example.org/log", "example.org/log+0a0b0c0d+AAAA",
    "example.org/log\n3\nAAAA\n\n\u2014 example.org/log abcd\n",
    [(7, b"\xa1av\x02", [b"\x11" * 32]), (0, b"entry-0", [b"\x22" * 32, b"\x33" * 32]),
     (2, b"\x00" * 300, [])])


def _fields(cert: Certificate) -> list[tuple[str, bytes]]:
    """The certificate as (field name, bytes) in layout order: every field boundary."""
    out = [("magic", MAGIC)]
    for name, fmt, text in (("origin", ">H", cert.origin), ("log_key", ">H", cert.log_key),
                            ("checkpoint", ">I", cert.checkpoint)):
        raw = text.encode()
        out += [(f"{name} length", struct.pack(fmt, len(raw))), (name, raw)]
    out.append(("count", struct.pack(">I", len(cert.entries))))
    for i, e in enumerate(cert.entries):
        out += [(f"[{i}].index", struct.pack(">Q", e.index)),
                (f"[{i}].data length", struct.pack(">I", len(e.data))), (f"[{i}].data", e.data),
                (f"[{i}].proof count", bytes([len(e.proof)])),
                (f"[{i}].proof", b"".join(e.proof))]
    return out


def test_round_trip_and_exact_layout():
    data = CERT.to_bytes()
    assert data.startswith(b"statledger-certificate/v2\n")
    assert data == b"".join(b for _, b in _fields(CERT))
    back = parse_certificate(data)
    assert back == CERT
    assert [e.index for e in back.entries] == [0, 2, 7]
    assert back.to_bytes() == data
    assert parse_certificate(bytearray(data)) == CERT
    assert C.FORMAT == "statledger-certificate/v2" and C.SUFFIX == ".cert"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.binary(min_size=1, max_size=64),
                          st.lists(st.binary(min_size=32, max_size=32), max_size=5)),
                min_size=1, max_size=6, unique_by=lambda t: t[0]),
       st.text(min_size=1, max_size=30))
def test_round_trip_property(triples, origin):
    cert = build_certificate(origin, "k", "cp\n", triples)
    assert parse_certificate(cert.to_bytes()) == cert


def test_truncation_at_every_field_boundary_and_every_byte():
    data = CERT.to_bytes()
    pos = 0
    boundaries = []
    for _name, b in _fields(CERT):
        pos += len(b)
        boundaries.append(pos)
    assert boundaries[-1] == len(data)
    for cut in {*boundaries[:-1], *range(len(data))}:
        with pytest.raises(MalformedError):
            parse_certificate(data[:cut])


def test_trailing_garbage_wrong_magic_and_version():
    data = CERT.to_bytes()
    for bad in (data + b"\x00", data + data, b"\x00" + data):
        with pytest.raises(MalformedError):
            parse_certificate(bad)
    with pytest.raises(MalformedError, match="trailing"):
        parse_certificate(data + b"\x00")
    with pytest.raises(MalformedError, match="unsupported format 'statledger-certificate/v3'"):
        parse_certificate(data.replace(b"/v2\n", b"/v3\n", 1))
    with pytest.raises(MalformedError, match="wrong magic"):
        parse_certificate(b"S" + data[1:].lower())
    with pytest.raises(MalformedError, match="expected bytes"):
        parse_certificate(data.decode("latin-1"))  # type: ignore[arg-type]


def test_v1_json_certificate_is_named():
    v1 = json.dumps({"format": "statledger-certificate/v1", "origin": "o", "log_key": "k",
                     "checkpoint": "c", "entries": [{"index": 0, "data": "AA==",
                                                     "proof": []}]}, indent=1)
    for raw in (v1.encode(), b"\n  " + v1.encode()):
        with pytest.raises(MalformedError, match=r"statledger-certificate/v1"):
            parse_certificate(raw)


def _rebuild(fields: list[tuple[str, bytes]], name: str, value: bytes) -> bytes:
    return b"".join(value if n == name else b for n, b in fields)


@pytest.mark.parametrize("name, value, why", [
    ("origin length", struct.pack(">H", 0), "origin: length 0"),
    ("origin length", struct.pack(">H", 1025), "origin: length 1025"),
    ("log_key length", struct.pack(">H", 0), "log_key"),
    ("checkpoint length", struct.pack(">I", 0), "checkpoint"),
    ("checkpoint length", struct.pack(">I", 2**32 - 1), "checkpoint"),
    ("count", struct.pack(">I", 0), "entry count 0"),
    ("count", struct.pack(">I", 100_001), "entry count 100001"),
    ("count", struct.pack(">I", 2**32 - 1), "entry count"),
    ("count", struct.pack(">I", 4), "truncated|cannot fit"),
    ("count", struct.pack(">I", 2), "trailing"),
    ("[0].index", struct.pack(">Q", 2**63), "beyond 2\\^63"),
    ("[1].index", struct.pack(">Q", 0), "strictly increasing"),
    ("[2].index", struct.pack(">Q", 1), "strictly increasing"),
    ("[0].data length", struct.pack(">I", 0), "data: length 0"),
    ("[0].data length", struct.pack(">I", 16 * 2**20 + 1), "data: length"),
    ("[0].data length", struct.pack(">I", 2**32 - 1), "data: length"),
    ("[2].data length", struct.pack(">I", 301), "truncated"),
    ("[0].proof count", bytes([65]), "at most 64"),
    ("[0].proof count", bytes([255]), "at most 64"),
    ("[0].proof count", bytes([3]), "truncated|index"),
    ("origin", b"\xff\xfe" + b"x" * 13, "UTF-8"),
])
def test_field_reject_twins(name, value, why):
    fields = _fields(CERT)
    assert name in {n for n, _ in fields}
    with pytest.raises(MalformedError, match=why):
        parse_certificate(_rebuild(fields, name, value))


def test_oversized_counts_do_not_allocate():
    # a header claiming 100,000 entries followed by nothing: refused from the byte count
    head = b"".join(b for n, b in _fields(CERT) if not n.startswith("[") and n != "count")
    with pytest.raises(MalformedError, match="cannot fit"):
        parse_certificate(head + struct.pack(">I", 100_000))


def test_bit_flips_in_the_framing_never_parse_to_the_same_certificate():
    data = CERT.to_bytes()
    for pos in range(len(data)):
        for bit in (0, 3, 7):
            m = bytearray(data)
            m[pos] ^= 1 << bit
            try:
                got = parse_certificate(bytes(m))
            except MalformedError:
                continue
            assert got != CERT and got.to_bytes() == bytes(m)


def test_writer_refuses_what_the_reader_refuses():
    with pytest.raises(MalformedError):
        replace(CERT, origin="").to_bytes()
    with pytest.raises(MalformedError):
        replace(CERT, entries=()).to_bytes()
    with pytest.raises(MalformedError, match="strictly increasing"):
        replace(CERT, entries=tuple(reversed(CERT.entries))).to_bytes()
    with pytest.raises(MalformedError):
        replace(CERT, entries=(CertEntry(0, b"", ()),)).to_bytes()
    with pytest.raises(MalformedError):
        replace(CERT, entries=(CertEntry(0, b"x", (b"short",)),)).to_bytes()
    with pytest.raises(MalformedError):
        replace(CERT, entries=(CertEntry(0, b"x", (b"\x00" * 32,) * 65),)).to_bytes()
