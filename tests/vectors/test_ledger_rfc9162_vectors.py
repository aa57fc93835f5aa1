"""Every RFC 9162 probe of transparency-dev/merkle (copied in tests/vectors/rfc9162, Apache-2.0).

Each file has ``desc`` and ``wantErr``; we honour ``wantErr`` for every file but one: the
"sizes are equal (one) and proof is empty" consistency probe uses the 12-byte placeholder
root ``"don't care 2"`` for both roots and expects success.  Our verifier enforces 32-byte
hashes everywhere, so it rejects that probe with ``MalformedError`` (documented in
docs/ledger.md); the same probe with any real 32-byte root passes, tested below.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from statledger.ledger.merkle import verify_consistency, verify_inclusion
from statledger.proofs.errors import MalformedError, StatledgerError

HERE = Path(__file__).parent / "rfc9162"
FILES = sorted(HERE.rglob("*.json"))
PLACEHOLDER = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"


def _b(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _run(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b(p) for p in (v["proof"] or [])]
    if "leafIdx" in v:
        verify_inclusion(v["leafIdx"], v["treeSize"], _b(v["leafHash"]), proof, _b(v["root"]))
    else:
        verify_consistency(v["size1"], v["size2"], _b(v["root1"]), _b(v["root2"]), proof)


def test_vector_corpus_is_complete() -> None:
    assert len(FILES) == 196
    assert (HERE / "LICENSE").is_file()
    wants = [json.loads(f.read_text())["wantErr"] for f in FILES]
    assert wants.count(False) == 12


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(HERE)))
def test_probe(path: Path) -> None:
    v = json.loads(path.read_text())
    rel = str(path.relative_to(HERE))
    if rel == PLACEHOLDER:
        with pytest.raises(MalformedError, match="root1 must be 32 bytes, got 12"):
            _run(path)
        return
    if v["wantErr"]:
        with pytest.raises(StatledgerError):
            _run(path)
    else:
        _run(path)


def test_placeholder_probe_with_real_hashes_passes_and_twins_fail() -> None:
    root = bytes(range(32))
    verify_consistency(1, 1, root, root, [])
    with pytest.raises(StatledgerError):
        verify_consistency(1, 1, root, bytes(31) + b"\x01", [])
    with pytest.raises(StatledgerError):
        verify_consistency(1, 1, root, root, [root])
    with pytest.raises(MalformedError):
        verify_consistency(1, 1, root[:12], root[:12], [])
