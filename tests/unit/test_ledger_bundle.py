"""Offline proof bundles (C2SP tlog-proof text and JSON): round trips, strict parsing,
verification and its reject twins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statledger.ledger.bundle import HEADER, ProofBundle, verify_bundle
from statledger.ledger.store import LedgerStore
from statledger.ledger.witness import Witness, WitnessPolicy
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError

ORIGIN = "ledger.example/bundle"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[LedgerStore, WitnessPolicy]:
    tmp = tmp_path_factory.mktemp("bundle")
    s = LedgerStore(tmp / "log.db", ORIGIN, bytes(range(32)))
    ws = [
        Witness(tmp / f"w{i}.db", f"w{i}.example", bytes([i + 9]) * 32, [s.log_verifier])
        for i in range(3)
    ]
    s.witnesses = tuple(w.verifier() for w in ws)
    s.append_many([("k", b"entry %d" % i) for i in range(37)])
    note = s.sign_checkpoint()
    for w in ws[:2]:
        s.add_cosignature(note + w.cosign(note, [], 0).line())
    return s, WitnessPolicy(s.log_verifier, list(s.witnesses), 2)


def test_round_trips_and_verify(setup: tuple[LedgerStore, WitnessPolicy]) -> None:
    s, policy = setup
    for i in (0, 1, 17, 35, 36):
        b = s.bundle(i)
        verify_bundle(b, policy)
        text = b.to_text()
        assert text.startswith(HEADER + "\nextra ") and f"\nindex {i}\n" in text
        assert ProofBundle.from_text(text) == b
        assert ProofBundle.from_text(text.encode()) == b
        assert ProofBundle.from_json(b.to_json()) == b
        assert json.loads(b.to_json())["format"] == "statledger-proof/v1"


def _twins(b: ProofBundle) -> list[tuple[str, ProofBundle]]:
    out = []
    for k in range(len(b.proof)):
        p = list(b.proof)
        p[k] = bytes([p[k][0] ^ 0x80]) + p[k][1:]
        out.append((f"flip proof {k}", ProofBundle(b.index, b.entry, tuple(p), b.checkpoint)))
    out += [
        ("entry changed", ProofBundle(b.index, b.entry + b"!", b.proof, b.checkpoint)),
        ("index+1", ProofBundle(b.index + 1, b.entry, b.proof, b.checkpoint)),
        ("truncated", ProofBundle(b.index, b.entry, b.proof[:-1], b.checkpoint)),
        ("extended", ProofBundle(b.index, b.entry, (*b.proof, b.proof[0]), b.checkpoint)),
        ("index beyond size", ProofBundle(37, b.entry, b.proof, b.checkpoint)),
        (
            "checkpoint size edited",
            ProofBundle(b.index, b.entry, b.proof, b.checkpoint.replace("\n37\n", "\n36\n", 1)),
        ),
    ]
    return out


def test_verify_twins(setup: tuple[LedgerStore, WitnessPolicy]) -> None:
    s, policy = setup
    b = s.bundle(17)
    for _desc, bad in _twins(b):
        with pytest.raises(VerificationError):
            verify_bundle(bad, policy)
    strict = WitnessPolicy(s.log_verifier, list(s.witnesses), 3)
    with pytest.raises(VerificationError, match="step 1.*found 2 valid"):
        verify_bundle(b, strict)


def test_malformed_text(setup: tuple[LedgerStore, WitnessPolicy]) -> None:
    s, _ = setup
    text = s.bundle(5).to_text()
    lines = text.split("\n")
    bads = [
        text.replace(HEADER, "c2sp.org/tlog-proof@v2"),
        text.replace("\nextra ", "\nextra  "),
        "\n".join([lines[0]] + lines[2:]),  # no extra line
        text.replace("\nindex 5\n", "\nindex 05\n"),
        text.replace("\nindex 5\n", "\nindex -5\n"),
        text.replace("\nindex 5\n", "\nindex 5 \n"),
        text.replace(lines[3], lines[3][:-2]),  # bad base64
        text.replace(lines[3], lines[3][:20] + "=="),  # wrong hash size
        text.replace(lines[3] + "\n", lines[3] + "\n\n"),  # blank line inside the proof
        text + "trailing",
        text + "\n",
        text[:-1],
        "garbage" + text,
        text.replace("\n\n", "\n", 1),
    ]
    for bad in bads:
        with pytest.raises(MalformedError):
            ProofBundle.from_text(bad)
    with pytest.raises(MalformedError):
        ProofBundle.from_text(b"\xff" + text.encode())


def test_malformed_json(setup: tuple[LedgerStore, WitnessPolicy]) -> None:
    s, _ = setup
    obj = json.loads(s.bundle(3).to_json())
    mutations = [
        {**obj, "extra": 1},
        {k: v for k, v in obj.items() if k != "entry"},
        {**obj, "format": "statledger-proof/v2"},
        {**obj, "index": "3"},
        {**obj, "index": True},
        {**obj, "index": -1},
        {**obj, "inclusion": obj["inclusion"][0]},
        {**obj, "inclusion": [h.upper() for h in obj["inclusion"]]},
        {**obj, "inclusion": [obj["inclusion"][0][:-2]] + obj["inclusion"][1:]},
        {**obj, "entry": obj["entry"] + "="},
        {**obj, "checkpoint": obj["checkpoint"] + "x"},
        [obj],
    ]
    for bad in mutations:
        with pytest.raises(MalformedError):
            ProofBundle.from_json(json.dumps(bad))
    dup = s.bundle(3).to_json()[:-1] + ',"index":4}'
    with pytest.raises(MalformedError, match="duplicate"):
        ProofBundle.from_json(dup)
    with pytest.raises(MalformedError):
        ProofBundle.from_json("{not json")
    # twin: the unmodified object parses
    ProofBundle.from_json(json.dumps(obj))


def test_wrong_log(setup: tuple[LedgerStore, WitnessPolicy], tmp_path: Path) -> None:
    s, policy = setup
    other = LedgerStore(tmp_path / "o.db", ORIGIN, bytes(32))
    other.append_many([("k", b"entry %d" % i) for i in range(37)])
    other.sign_checkpoint()
    with pytest.raises(StatledgerError):
        verify_bundle(other.bundle(3), policy)
