"""Known-answer vectors for the sigma proofs (tests/vectors/sigma_kat.json).

The proofs were generated once and frozen: the accept vectors pin the transcript format,
domain separators and encodings; the reject vectors pin the failing step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statledger.proofs import sigma
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point

DATA = json.loads((Path(__file__).parent / "sigma_kat.json").read_text())
VECTORS: list[dict[str, Any]] = DATA["vectors"]


def _pt(h: str) -> Point:
    return Point.from_bytes(bytes.fromhex(h))


def _verify(v: dict[str, Any]) -> None:
    st, ctx, raw = v["statement"], bytes.fromhex(v["context"]), bytes.fromhex(v["proof"])
    kind = v["kind"]
    if kind == "schnorr":
        sigma.verify_schnorr(_pt(st["X"]), sigma.SchnorrProof.from_bytes(raw), ctx)
    elif kind == "dleq":
        sigma.verify_dleq(_pt(st["X"]), _pt(st["B"]), _pt(st["D"]),
                          sigma.DLEQProof.from_bytes(raw), ctx)
    elif kind == "dleq_batch":
        sigma.verify_dleq_batch(_pt(st["X"]), [_pt(h) for h in st["C1s"]],
                                [_pt(h) for h in st["Ds"]],
                                sigma.DLEQBatchProof.from_bytes(raw), ctx)
    elif kind == "zero_one":
        ct = Ciphertext.from_bytes(bytes.fromhex(st["ct"]))
        sigma.verify_zero_one(_pt(st["X"]), ct, sigma.ZeroOneProof.from_bytes(raw), ctx)
    elif kind == "plaintext":
        ct = Ciphertext.from_bytes(bytes.fromhex(st["ct"]))
        sigma.verify_plaintext(_pt(st["X"]), ct, int(st["m"]),
                               sigma.PlaintextProof.from_bytes(raw), ctx)
    else:  # pragma: no cover - a typo in the data file
        raise AssertionError(f"unknown kind {kind}")


def test_vector_file_shape() -> None:
    assert DATA["format"] == "statledger-sigma-kat/v1"
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == {"schnorr", "dleq", "dleq_batch", "zero_one", "plaintext"}
    for kind in kinds:
        verdicts = {v["verdict"] for v in VECTORS if v["kind"] == kind}
        assert verdicts == {"accept", "reject"}, kind


@pytest.mark.parametrize("v", VECTORS, ids=[v["desc"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    if v["verdict"] == "accept":
        _verify(v)
    elif v["error"] == "MalformedError":
        with pytest.raises(MalformedError):
            _verify(v)
    else:
        with pytest.raises(VerificationError, match=v["error"]):
            _verify(v)
