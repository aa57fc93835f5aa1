"""Known-answer vectors for statledger.proofs.vector / statledger.proofs.rangeproof
(tests/vectors/rangeproof_kat.json).

Each case has a ``desc``, the statement (X, ranges, context), the encoded EncryptedVector and
the expected verdict: ``accept``, ``MalformedError`` or ``VerificationError:<step>``.  The
accepted case also carries the secret key and the values so the limb ciphertexts can be
decrypted.  The file pins the wire format and the transcript: a second implementation must
reach the same verdicts.  Regenerate (only when the format changes on purpose) with
``python tests/vectors/test_rangeproof_kat.py --regenerate``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from statledger.proofs import vector as V
from statledger.proofs.elgamal import decrypt
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul

PATH = Path(__file__).with_name("rangeproof_kat.json")


def _load() -> list[dict[str, object]]:
    data = json.loads(PATH.read_text())
    assert data["format"] == "statledger/rangeproof-kat/v1"
    cases = data["cases"]
    assert isinstance(cases, list) and len(cases) >= 6
    return cases


CASES = [] if __name__ == "__main__" else _load()


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["desc"]))
def test_known_answer(case: dict) -> None:
    X = Point.from_bytes(bytes.fromhex(case["X"]))
    ranges = [tuple(r) for r in case["ranges"]]
    context = bytes.fromhex(case["context"])
    blob = bytes.fromhex(case["vector"])
    expect = case["expect"]
    if expect == "accept":
        ev = V.EncryptedVector.from_bytes(blob, ranges)
        V.verify_encrypted_vector(X, ev, ranges, context)
        x = Scalar.from_bytes(bytes.fromhex(case["x"]))
        assert base_mul(x) == X
        limbs = [[decrypt(x, c, 2**16) for c in row] for row in ev.limbs]
        assert V.decode_totals(limbs, ranges, 1) == case["values"]
        assert ev.to_bytes() == blob
    elif expect == "MalformedError":
        with pytest.raises(MalformedError):
            V.EncryptedVector.from_bytes(blob, ranges)
    else:
        kind, step = expect.split(":")
        assert kind == "VerificationError"
        ev = V.EncryptedVector.from_bytes(blob, ranges)
        with pytest.raises(VerificationError) as err:
            V.verify_encrypted_vector(X, ev, ranges, context)
        assert err.value.step == step


def _regenerate() -> None:  # pragma: no cover - maintenance helper
    from statledger.proofs.elgamal import keygen

    x, X = keygen()
    ranges = [(0, 255), (-3, 9), (0, 2**20)]
    values = [200, -1, 2**20]
    ctx = b"query-0001|provider-a"
    ev = V.encrypt_vector_with_proof(X, values, ranges, ctx)
    good = ev.to_bytes()
    rs, layout = V._layout(ranges)
    cases: list[dict[str, object]] = []

    def add(desc: str, blob: bytes, expect: str, **extra: object) -> None:
        case: dict[str, object] = {
            "desc": desc,
            "X": X.to_bytes().hex(),
            "ranges": [list(r) for r in ranges],
            "context": extra.pop("context", ctx).hex(),  # type: ignore[union-attr]
            "vector": blob.hex(),
            "expect": expect,
        }
        case.update(extra)
        cases.append(case)

    add("valid", good, "accept", x=x.to_bytes().hex(), values=values)
    add(
        "replayed-under-other-provider",
        good,
        "VerificationError:range-proof",
        context=b"query-0001|provider-b",
    )
    add("trailing-garbage", good + b"\x00", "MalformedError")
    add("truncated-proof", good[:-1], "MalformedError")
    flipped = bytearray(good)
    flipped[len(good) - 32 * 3 - 1] ^= 0x01  # last byte of A3: another point or off-curve
    add("modified-proof-A3", bytes(flipped), "VerificationError:link-proof")
    t_hat_pos = len(good) - len(ev.proof.to_bytes()) + 4 * 33 + 2 * 32
    flipped = bytearray(good)
    flipped[t_hat_pos + 31] ^= 0x04
    add("modified-t_hat", bytes(flipped), "VerificationError:range-proof")
    forged = V._encrypt(X, [[200], [4], [1, 16]], rs, layout, ctx)  # u = 2^20 + 1
    add("value-above-hi-forged-proof", forged.to_bytes(), "VerificationError:range-proof")
    unlinked = V._encrypt(X, [[5], [4], [1, 2]], rs, layout, ctx, [[6], [4], [1, 2]])
    add("ciphertext-not-the-committed-value", unlinked.to_bytes(), "VerificationError:link-proof")
    PATH.write_text(
        json.dumps({"format": "statledger/rangeproof-kat/v1", "cases": cases}, indent=1) + "\n"
    )


if __name__ == "__main__":  # pragma: no cover
    if "--regenerate" in sys.argv:
        _regenerate()
