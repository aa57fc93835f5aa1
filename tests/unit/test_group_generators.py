"""Generators follow their documented derivation; the batched hash-to-curve equals the
one-at-a-time RFC 9380 path (including exceptional inputs)."""

from __future__ import annotations

import secrets
import struct

from statledger.proofs.group import (
    FIELD,
    GENERATOR_DST,
    GENERATORS_DST,
    H,
    _hash_to_curve_many,
    _map_to_curve_many,
    _map_to_curve_reference,
    generator,
    generators,
    hash_to_curve,
    map_to_curve,
)


def test_generator_derivation_is_the_documented_one() -> None:
    assert generator(b"abc") == hash_to_curve(b"abc", GENERATOR_DST)
    assert H == hash_to_curve(b"statledger/pedersen/H", GENERATOR_DST)
    label = b"test/gens/derivation"
    gs = generators(label, 5)
    pre = struct.pack(">I", len(label)) + label
    for i, P in enumerate(gs):
        assert P == hash_to_curve(pre + struct.pack(">I", i), GENERATORS_DST)
    # reject twin: the index is big-endian u32, not a bare byte
    assert gs[1] != hash_to_curve(pre + b"\x01", GENERATORS_DST)


def test_batched_map_equals_single_and_reference() -> None:
    us = [secrets.randbelow(FIELD) for _ in range(300)] + [0, 1, 2, FIELD - 1, FIELD - 2]
    batch = _map_to_curve_many(us)
    assert batch == [map_to_curve(u) for u in us]
    assert batch[-5:] == [_map_to_curve_reference(u) for u in us[-5:]]
    assert _map_to_curve_many([]) == []


def test_batched_hash_equals_single() -> None:
    msgs = [b"", b"abc"] + [secrets.token_bytes(i % 40) for i in range(60)]
    assert _hash_to_curve_many(msgs, b"dst") == [hash_to_curve(m, b"dst") for m in msgs]
