"""canonical_bytes / parse_json / sha256_hex and fixed point: accepts with reject twins."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.canonical import canonical_bytes, parse_json, sha256_hex
from statledger.protocol.fixedpoint import check_scale, clip, fixed_bounds, from_fixed, to_fixed


def test_canonical_known_answers() -> None:
    assert canonical_bytes({"b": 1, "a": [1.5, "é", None, True, False]}) == (
        b'{"a":[1.5,"\xc3\xa9",null,true,false],"b":1}'
    )
    assert canonical_bytes({"a": (1, 2)}) == b'{"a":[1,2]}'
    assert canonical_bytes(1e21) == b"1e+21"
    assert canonical_bytes(-0.0) == b"0"
    assert canonical_bytes(2**53 - 1) == b"9007199254740991"
    assert canonical_bytes(2.0**80) == b"1.2089258196146292e+24"
    assert canonical_bytes({"\u20ac": 1, "$": 2, "\U0001f600": 3}) == (
        '{"$":2,"\u20ac":1,"\U0001f600":3}'.encode()
    )


@pytest.mark.parametrize(
    "obj,match",
    [
        (float("nan"), "not representable"),
        (float("inf"), "not representable"),
        ({"a": [float("-inf")]}, r"\$\.a\[0\]"),
        ({1: 2}, "not a string"),
        (2**53, "2\\^53"),
        (2.0**53, "2\\^53"),
        (-(2**53) - 1, "2\\^53"),
        ({"a": {"b": 2**64}}, r"\$\.a\.b"),
        (b"bytes", "not JSON"),
        ({"a": {1, 2}}, "not JSON"),
        ("\ud800", "Unicode"),
    ],
)
def test_canonical_rejects(obj: object, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        canonical_bytes(obj)


def test_canonical_rejects_deep_nesting() -> None:
    obj: object = 1
    for _ in range(100):
        obj = [obj]
    with pytest.raises(MalformedError, match="nesting"):
        canonical_bytes(obj)


def test_parse_json_accepts_and_roundtrips() -> None:
    text = b'{"a": [1, 2.5, "x", null, true], "b": {"c": -3}}'
    v = parse_json(text)
    assert v == {"a": [1, 2.5, "x", None, True], "b": {"c": -3}}
    assert parse_json(canonical_bytes(v)) == v
    assert parse_json(text.decode()) == v


@pytest.mark.parametrize(
    "data,match",
    [
        (b'{"a":1,"a":2}', "duplicate"),
        (b'{"a":{"b":1,"b":1}}', "duplicate"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b"[-Infinity]", "Infinity"),
        (b"[1e400]", "overflow"),
        (b"[9007199254740992]", "2\\^53"),
        (b'{"a":1} ', None),
        (b'{"a":1}x', "invalid JSON"),
        (b'{"a":1', "invalid JSON"),
        (b"", "invalid JSON"),
        (b'"\xff"', "UTF-8"),
        ('\ufeff{"a":1}'.encode(), "byte-order mark"),
        (b'["\\ud800"]', "Unicode"),
    ],
)
def test_parse_json_rejects(data: bytes, match: str | None) -> None:
    if match is None:  # trailing whitespace is valid JSON: accepted (twin of the line below)
        assert parse_json(data) == {"a": 1}
        return
    with pytest.raises(MalformedError, match=match):
        parse_json(data)


def test_parse_json_wrong_type() -> None:
    with pytest.raises(MalformedError):
        parse_json(123)  # type: ignore[arg-type]


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex(b"abc") != sha256_hex(b"abd")
    with pytest.raises(MalformedError):
        sha256_hex("abc")  # type: ignore[arg-type]


# ------------------------------------------------------------------ fixed point
def test_to_fixed_round_half_even() -> None:
    assert to_fixed(0.5, 1) == 0
    assert to_fixed(1.5, 1) == 2
    assert to_fixed(2.5, 1) == 2
    assert to_fixed(-0.5, 1) == 0
    assert to_fixed(-1.5, 1) == -2
    assert to_fixed(-2.5, 1) == -2
    assert to_fixed(1.0, 2**16) == 65536
    assert to_fixed(-1.25, 4) == -5
    assert to_fixed(0.125, 10) == 1  # 1.25 -> 1 (half to even)
    assert to_fixed(0.35, 10) == 4  # fl(0.35 * 10) = 3.5 -> 4
    arr = to_fixed(np.array([0.5, 1.5, 2.5, -2.5]), 1)
    assert arr.dtype == np.int64
    assert arr.tolist() == [0, 2, 2, -2]


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -float("inf"), 2.0**60, "1", None, True]
)
def test_to_fixed_rejects(bad: object) -> None:
    with pytest.raises(MalformedError):
        to_fixed(bad, 2**16)  # type: ignore[call-overload]


def test_to_fixed_rejects_arrays() -> None:
    with pytest.raises(MalformedError):
        to_fixed(np.array([1.0, np.nan]), 16)
    with pytest.raises(MalformedError):
        to_fixed(np.array([1.0, 2.0**60]), 16)
    assert to_fixed(np.array([], dtype=np.float64), 16).size == 0


@pytest.mark.parametrize("scale", [1, 2, 1024, 2**16, 2**32, 10, 1000, 10**9])
def test_scales_ok(scale: int) -> None:
    check_scale(scale)
    assert from_fixed(to_fixed(3.0, scale), scale) == 3.0


@pytest.mark.parametrize("scale", [0, -2, 3, 12, 2**33, 10**10, 2.0, True, "16"])
def test_scales_rejected(scale: object) -> None:
    with pytest.raises(MalformedError, match="scale"):
        check_scale(scale)  # type: ignore[arg-type]


def test_from_fixed_big_and_powers() -> None:
    assert from_fixed(3 * 2**32, 2**16, power=2) == 3.0
    assert math.isclose(from_fixed(10**40 + 1, 1), 1e40)


def test_clip_reports_count() -> None:
    out, n = clip(np.array([-1.0, 0.0, 5.0, 10.0, 11.0, np.nan]), 0.0, 10.0)
    assert n == 2
    assert out[:5].tolist() == [0.0, 0.0, 5.0, 10.0, 10.0]
    assert math.isnan(out[5])
    _, n0 = clip(np.array([0.0, 10.0]), 0.0, 10.0)
    assert n0 == 0
    with pytest.raises(MalformedError):
        clip(np.array([1.0]), 2.0, 1.0)


def test_fixed_bounds_contain_clipped_values() -> None:
    rng = np.random.default_rng(3)
    lo, hi = -3.3, 7.7
    x, _ = clip(rng.uniform(-10, 10, 1000), lo, hi)
    for scale in (1, 10, 2**16, 1000):
        flo, fhi = fixed_bounds(lo, hi, scale)
        f = to_fixed(x, scale)
        assert f.min() >= flo and f.max() <= fhi
