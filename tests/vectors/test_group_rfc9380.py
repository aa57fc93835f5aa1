"""RFC 9380 known-answer vectors for secp256k1_XMD:SHA-256_SSWU_RO_ / _NU_ and expand_message_xmd.

Every published value is reproduced (u[0], u[1], Q0, Q1, P); reject twins check that a
changed message, DST or coordinate no longer matches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statledger.proofs.group import (
    FIELD,
    Point,
    encode_to_curve,
    expand_message_xmd,
    hash_to_curve,
    hash_to_field,
    map_to_curve,
)

HERE = Path(__file__).parent
H2C = json.loads((HERE / "rfc9380_secp256k1.json").read_text())
XMD = json.loads((HERE / "rfc9380_expand_message_xmd_sha256.json").read_text())
RO = H2C["hash_to_curve"]
NU = H2C["encode_to_curve"]


def _pt(d: dict[str, str]) -> tuple[int, int]:
    return int(d["x"], 16), int(d["y"], 16)


def test_vector_files_are_complete() -> None:
    assert "RFC 9380" in H2C["source"] and "RFC 9380" in XMD["source"]
    msgs = [v["msg"] for v in RO["vectors"]]
    assert msgs == ["", "abc", "abcdef0123456789", "q128_" + "q" * 128, "a512_" + "a" * 512]
    assert [v["msg"] for v in NU["vectors"]] == msgs
    assert len(XMD["vectors"]) == 10
    assert RO["dst"] == "QUUX-V01-CS02-with-secp256k1_XMD:SHA-256_SSWU_RO_"


@pytest.mark.parametrize("vec", RO["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_hash_to_curve_vectors(vec: dict[str, Any]) -> None:
    msg, dst = vec["msg"].encode(), RO["dst"].encode()
    u = hash_to_field(msg, dst, 2)
    assert [f"{x:064x}" for x in u] == vec["u"]
    assert map_to_curve(u[0]).to_affine() == _pt(vec["Q0"])
    assert map_to_curve(u[1]).to_affine() == _pt(vec["Q1"])
    P = hash_to_curve(msg, dst)
    assert P.to_affine() == _pt(vec["P"])
    assert P == Point.from_affine(*_pt(vec["P"]))
    # reject twins: another message / DST / y gives something else
    assert hash_to_curve(msg + b"\x00", dst) != P
    assert hash_to_curve(msg, dst + b"X") != P
    assert hash_to_curve(msg, dst[:-1]) != P
    x, y = _pt(vec["P"])
    assert P != Point.from_affine(x, FIELD - y)


@pytest.mark.parametrize("vec", NU["vectors"], ids=lambda v: v["msg"][:8] or "empty")
def test_encode_to_curve_vectors(vec: dict[str, Any]) -> None:
    msg, dst = vec["msg"].encode(), NU["dst"].encode()
    assert [f"{x:064x}" for x in hash_to_field(msg, dst, 1)] == vec["u"]
    P = encode_to_curve(msg, dst)
    assert P.to_affine() == _pt(vec["P"])
    assert encode_to_curve(msg, dst + b"X") != P


@pytest.mark.parametrize("vec", XMD["vectors"], ids=lambda v: f"{v['msg'][:6]}-{v['len_in_bytes']}")
def test_expand_message_xmd_vectors(vec: dict[str, Any]) -> None:
    dst = XMD["dst"].encode()
    out = expand_message_xmd(vec["msg"].encode(), dst, vec["len_in_bytes"])
    assert out.hex() == vec["uniform_bytes"]
    assert expand_message_xmd(vec["msg"].encode() + b"a", dst, vec["len_in_bytes"]) != out
    assert expand_message_xmd(vec["msg"].encode(), dst + b"a", vec["len_in_bytes"]) != out
    # a different length is not a prefix relation (length is hashed in)
    assert expand_message_xmd(vec["msg"].encode(), dst, vec["len_in_bytes"] + 1)[:8] != out[:8]


def test_hash_to_curve_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        hash_to_curve(b"abc", b"")
    with pytest.raises(TypeError):
        hash_to_curve("abc", b"dst")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        map_to_curve(FIELD)
    with pytest.raises(ValueError):
        expand_message_xmd(b"", b"dst", 256 * 32)
