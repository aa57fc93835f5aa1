"""Known-answer vectors for the verifiable shuffle (tests/vectors/shuffle_kat.json).

Each vector has a ``desc``, the statement (``n``, ``context``, ``X``, ``inputs``,
``outputs``; ciphertexts as 66-byte ``C1 ‖ C2`` hex), the encoded ``ShuffleProof`` and the
expected ``verdict``: ``accept``, or ``reject`` with ``error`` = ``MalformedError`` (from
``ShuffleProof.from_bytes``) or the ``VerificationError`` step (``shuffle step N``).  Accept
vectors also carry the sorted input ``plaintexts``; the file's ``secret_key`` decrypts them.

The file is generated deterministically by :func:`build` below, with no system randomness:
every scalar is ``sha256(b"statledger/kat/shuffle/" + label) mod n`` (:func:`_scalar`): the
secret key (label ``x``), the encryption randomness (``r/<case>/<i>``), the re-randomisers
(``s/<case>/<i>``) and the prover's own randomness, passed to the private prover
``_prove_shuffle`` as ``draw`` (the k-th draw has label ``nonce/<case>/<k>``); the
permutations and plaintexts are fixed below.  ``test_file_is_reproducible`` rebuilds the file
in memory and compares it byte for byte, so it also pins the prover.  Regenerate (only when
the format or the prover changes on purpose) with
``python tests/vectors/test_shuffle_kat.py --regenerate``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from statledger.proofs.dlog import DlogTable
from statledger.proofs.elgamal import Ciphertext, combine, decryption_share, encode_message
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import FIELD, ORDER, Point, Scalar, base_mul
from statledger.proofs.shuffle import ShuffleProof, _prove_shuffle, verify_shuffle

PATH = Path(__file__).with_name("shuffle_kat.json")
FORMAT = "statledger-shuffle-kat/v2"
CONTEXT = b"statledger/kat/shuffle/context|query-0001|compute-1"


def _scalar(label: bytes) -> Scalar:
    return Scalar.reduce(int.from_bytes(hashlib.sha256(b"statledger/kat/shuffle/" + label)
                                        .digest(), "big"))


def _drbg(case: str) -> Callable[[], Scalar]:
    counter = [0]

    def draw() -> Scalar:
        k = counter[0]
        counter[0] += 1
        return _scalar(b"nonce/%s/%d" % (case.encode(), k))

    return draw


def _encrypt(X: Point, m: int, r: Scalar) -> Ciphertext:
    return Ciphertext(base_mul(r), encode_message(m) + r * X)


def _reencrypt(X: Point, c: Ciphertext, s: Scalar) -> Ciphertext:
    return Ciphertext(c.C1 + base_mul(s), c.C2 + s * X)


def _honest(case: str, X: Point, values: list[int], perm: list[int], trivial: bool = False
            ) -> tuple[list[Ciphertext], list[Ciphertext], ShuffleProof]:
    n = len(values)
    if trivial:  # a public list (Drynx noise): r = 0, C1 = O
        ins = [Ciphertext(Point.identity(), encode_message(m)) for m in values]
    else:
        ins = [_encrypt(X, m, _scalar(b"r/%s/%d" % (case.encode(), i)))
               for i, m in enumerate(values)]
    ss = [_scalar(b"s/%s/%d" % (case.encode(), i)) for i in range(n)]
    outs = [_reencrypt(X, ins[perm[i]], ss[i]) for i in range(n)]
    proof = _prove_shuffle(X, ins, outs, perm, ss, CONTEXT, _drbg(case))
    return ins, outs, proof


def _vector(desc: str, X: Point, ins: list[Ciphertext], outs: list[Ciphertext], proof: bytes,
            n: int, verdict: str, *, error: str | None = None, context: bytes = CONTEXT,
            plaintexts: list[int] | None = None) -> dict[str, Any]:
    v: dict[str, Any] = {
        "desc": desc,
        "n": n,
        "context": context.hex(),
        "X": X.to_bytes().hex(),
        "inputs": [c.to_bytes().hex() for c in ins],
        "outputs": [c.to_bytes().hex() for c in outs],
        "proof": proof.hex(),
        "verdict": verdict,
    }
    if error is not None:
        v["error"] = error
    if plaintexts is not None:
        v["plaintexts"] = sorted(plaintexts)
    return v


def build() -> dict[str, Any]:
    """The whole file, deterministically (see the module docstring)."""
    x = _scalar(b"x")
    X = base_mul(x)
    Y = base_mul(_scalar(b"y"))
    vectors: list[dict[str, Any]] = []

    values = [7, -3, 12]
    perm = [2, 0, 1]
    ins, outs, proof = _honest("main", X, values, perm)
    good = proof.to_bytes()
    n = 3
    vectors.append(_vector("valid shuffle of 3 ciphertexts", X, ins, outs, good, n, "accept",
                           plaintexts=values))
    ins1, outs1, proof1 = _honest("one", X, [5], [0])
    vectors.append(_vector("valid shuffle of 1 ciphertext", X, ins1, outs1, proof1.to_bytes(),
                           1, "accept", plaintexts=[5]))
    noise = [-1, 0, 0, 2]
    ins4, outs4, proof4 = _honest("noise", X, noise, [1, 3, 0, 2], trivial=True)
    vectors.append(_vector("valid shuffle of a trivially encrypted public noise list (C1 = O)",
                           X, ins4, outs4, proof4.to_bytes(), 4, "accept", plaintexts=noise))

    def reject(desc: str, error: str, *, key: Point = X, i: list[Ciphertext] = ins,
               o: list[Ciphertext] = outs, p: bytes = good, size: int = n,
               context: bytes = CONTEXT) -> None:
        vectors.append(_vector(desc, key, i, o, p, size, "reject", error=error,
                               context=context))

    step3 = "shuffle step 3"
    reject("wrong context", step3, context=CONTEXT + b"x")
    reject("outputs 0 and 1 swapped", step3, o=[outs[1], outs[0], outs[2]])
    reject("output 1 re-randomised again", step3,
           o=[outs[0], _reencrypt(X, outs[1], _scalar(b"t")), outs[2]])
    reject("output 2 replaced by an encryption of 42", step3,
           o=[outs[0], outs[1], _encrypt(X, 42, _scalar(b"u"))])
    reject("inputs reordered", step3, i=[ins[1], ins[2], ins[0]])
    reject("wrong key", step3, key=Y)
    # layout (commitment form): U, B, A', B', C', D', F'1, F'2 (points), then k_A, k_B,
    # k_C, k_D, k_E, k_F (scalars)
    scalars_at = (3 * n + 5) * 33
    off_kE1 = scalars_at + 32 * (1 + n + 2) + 32 * 1
    kE1 = int.from_bytes(good[off_kE1 : off_kE1 + 32], "big")
    reject("response k_E[1] + 1", step3,
           p=good[:off_kE1] + ((kE1 + 1) % ORDER).to_bytes(32, "big") + good[off_kE1 + 32 :])
    reject("response k_A with its last bit flipped", step3,
           p=good[: scalars_at + 31] + bytes((good[scalars_at + 31] ^ 1,))
           + good[scalars_at + 32 :])
    off_A = 2 * 33 * n
    reject("commitment A' negated", step3,
           p=good[:off_A] + bytes((good[off_A] ^ 1,)) + good[off_A + 1 :])
    reject("one output dropped (N mismatch)", "shuffle step 1", o=outs[:2])
    reject("public key is the identity", "shuffle step 2", key=Point.identity())
    reject("output 0 has C1 = O", "shuffle step 2",
           o=[Ciphertext(Point.identity(), outs[0].C2), outs[1], outs[2]])
    malformed = "MalformedError"
    reject("proof truncated by one byte", malformed, p=good[:-1])
    reject("proof with a trailing zero byte", malformed, p=good + b"\x00")
    reject("k_F = n (non-canonical scalar)", malformed, p=good[:-32] + ORDER.to_bytes(32, "big"))
    reject("U_0 is the identity", malformed, p=bytes(33) + good[33:])
    reject("B_1 has x = p (non-canonical point)", malformed,
           p=good[: 33 * (n + 1)] + b"\x02" + FIELD.to_bytes(32, "big") + good[33 * (n + 2) :])
    reject("proof of N = 3 read as N = 4 (N mismatch)", malformed, size=4,
           i=[*ins, ins[0]], o=[*outs, outs[0]])
    return {
        "format": FORMAT,
        "desc": (
            "Verifiable shuffle (proofs/shuffle.py, Terelius-Wikstrom). Generated "
            "deterministically by tests/vectors/test_shuffle_kat.py (build): every scalar is "
            "sha256('statledger/kat/shuffle/' + label) mod n, including the prover's "
            "randomness. X = x*G with x = secret_key."
        ),
        "secret_key": x.to_bytes().hex(),
        "vectors": vectors,
    }


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"


DATA: dict[str, Any] = {} if __name__ == "__main__" else json.loads(PATH.read_text())
VECTORS: list[dict[str, Any]] = DATA.get("vectors", [])
TABLE = None if __name__ == "__main__" else DlogTable.build(1 << 8)


def _verify(v: dict[str, Any]) -> None:
    X = Point.from_bytes(bytes.fromhex(v["X"]))
    ins = [Ciphertext.from_bytes(bytes.fromhex(h)) for h in v["inputs"]]
    outs = [Ciphertext.from_bytes(bytes.fromhex(h)) for h in v["outputs"]]
    proof = ShuffleProof.from_bytes(bytes.fromhex(v["proof"]), v["n"])
    verify_shuffle(X, ins, outs, proof, bytes.fromhex(v["context"]))


def test_vector_file_shape() -> None:
    assert DATA["format"] == FORMAT
    verdicts = Counter(v["verdict"] for v in VECTORS)
    assert verdicts["accept"] >= 3 and verdicts["reject"] >= 15
    errors = {v.get("error") for v in VECTORS}
    assert {"MalformedError", "shuffle step 1", "shuffle step 2", "shuffle step 3"} <= errors
    assert len({v["desc"] for v in VECTORS}) == len(VECTORS)


@pytest.mark.parametrize("v", VECTORS, ids=[v["desc"] for v in VECTORS])
def test_vector(v: dict[str, Any]) -> None:
    if v["verdict"] == "accept":
        _verify(v)
        x = Scalar.from_bytes(bytes.fromhex(DATA["secret_key"]))
        assert base_mul(x).to_bytes().hex() == v["X"]
        assert TABLE is not None
        outs = [Ciphertext.from_bytes(bytes.fromhex(h)) for h in v["outputs"]]
        got = sorted(TABLE.solve(combine(c, [decryption_share(x, c)]), 100) for c in outs)
        assert got == v["plaintexts"]
        assert ShuffleProof.from_bytes(bytes.fromhex(v["proof"]), v["n"]).to_bytes().hex() \
            == v["proof"]
    elif v["error"] == "MalformedError":
        with pytest.raises(MalformedError):
            _verify(v)
    else:
        with pytest.raises(VerificationError) as err:
            _verify(v)
        assert err.value.step == v["error"]


def test_file_is_reproducible() -> None:
    assert _dump(build()) == PATH.read_text()


if __name__ == "__main__":  # pragma: no cover
    if "--regenerate" in sys.argv:
        PATH.write_text(_dump(build()))
        print(f"wrote {PATH}")
    else:
        print(__doc__)
