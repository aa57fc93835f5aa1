"""Transcript known-answer traces: reproduced by statledger.proofs.transcript AND by an independent
re-implementation of the byte format in docs/notes/transcript.md (plain hashlib here)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from statledger.proofs.group import ORDER, Point, Scalar
from statledger.proofs.transcript import Transcript

KAT = json.loads((Path(__file__).parent / "transcript_kat.json").read_text())


def _item(op: bytes, label: bytes, data: bytes) -> bytes:
    return op + struct.pack(">I", len(label)) + label + struct.pack(">Q", len(data)) + data


def _int_bytes(v: int) -> bytes:
    m = abs(v)
    return (b"\x01" if v < 0 else b"\x00") + m.to_bytes((m.bit_length() + 7) // 8, "big")


def _independent(case: dict[str, Any]) -> tuple[list[str], bytes]:
    """Spec-only implementation: build T, squeeze SHAKE256(T)."""
    T = _item(b"D", KAT["protocol_label"].encode(), bytes.fromhex(case["domain"]))
    outs = []
    for op in case["ops"]:
        lab = op["label"].encode()
        k = op["op"]
        if k == "message":
            T += _item(b"M", lab, bytes.fromhex(op["data"]))
        elif k == "scalar":
            T += _item(b"S", lab, bytes.fromhex(op["value"]))
        elif k == "point":
            T += _item(b"P", lab, bytes.fromhex(op["value"]))
        elif k == "points":
            data = struct.pack(">I", len(op["values"])) + b"".join(
                bytes.fromhex(v) for v in op["values"]
            )
            T += _item(b"V", lab, data)
        elif k == "int":
            T += _item(b"I", lab, _int_bytes(int(op["value"])))
        else:
            n = 64 if k == "challenge_scalar" else op["n"]
            T += _item(b"C", lab, struct.pack(">Q", n))
            out = hashlib.shake_256(T).digest(n)
            T += _item(b"R", lab, out)
            if k == "challenge_scalar":
                out = (int.from_bytes(out, "big") % ORDER).to_bytes(32, "big")
            outs.append(out.hex())
    return outs, T


def _ours(case: dict[str, Any]) -> tuple[list[str], bytes]:
    t = Transcript(bytes.fromhex(case["domain"]), record=True)
    outs = []
    for op in case["ops"]:
        lab = op["label"].encode()
        k = op["op"]
        if k == "message":
            t.append_message(lab, bytes.fromhex(op["data"]))
        elif k == "scalar":
            t.append_scalar(lab, Scalar.from_bytes(bytes.fromhex(op["value"])))
        elif k == "point":
            t.append_point(lab, Point.from_bytes(bytes.fromhex(op["value"])))
        elif k == "points":
            t.append_points(lab, [Point.from_bytes(bytes.fromhex(v)) for v in op["values"]])
        elif k == "int":
            t.append_int(lab, int(op["value"]))
        elif k == "challenge_scalar":
            outs.append(t.challenge_scalar(lab).to_bytes().hex())
        else:
            outs.append(t.challenge_bytes(lab, op["n"]).hex())
    return outs, t.recorded()


def _expected(case: dict[str, Any]) -> list[str]:
    return [op["expected"] for op in case["ops"] if op["op"].startswith("challenge")]


@pytest.mark.parametrize("case", KAT["cases"], ids=lambda c: c["desc"][:40])
def test_kat_reproduced_by_transcript(case: dict[str, Any]) -> None:
    outs, T = _ours(case)
    assert outs == _expected(case)
    assert len(T) == case["transcript_bytes_len"]
    assert hashlib.sha256(T).hexdigest() == case["transcript_sha256"]


@pytest.mark.parametrize("case", KAT["cases"], ids=lambda c: c["desc"][:40])
def test_kat_reproduced_from_spec_alone(case: dict[str, Any]) -> None:
    outs, T = _independent(case)
    assert outs == _expected(case)
    assert hashlib.sha256(T).hexdigest() == case["transcript_sha256"]


def test_kat_has_reject_twins() -> None:
    cases = {c["desc"]: c for c in KAT["cases"]}
    a = cases["length-split twin A: ('ab','c')"]
    b = cases["length-split twin B: ('a','bc')"]
    assert _expected(a) != _expected(b)
    two = cases["one message then two challenges under the same label (must differ)"]
    c1, c2 = _expected(two)
    assert c1 != c2


@pytest.mark.parametrize("case", KAT["cases"], ids=lambda c: c["desc"][:40])
def test_kat_mutated_domain_changes_everything(case: dict[str, Any]) -> None:
    mutated = dict(case, domain=case["domain"] + "00")
    outs, _ = _ours(mutated)
    assert all(o != e for o, e in zip(outs, _expected(case), strict=True))
