"""Batched proof of plaintext--ciphertext multiplication: accept, and reject twins.

The decrypted products are cross-checked against plain integer dot products (numpy-free,
exact), and the group arithmetic of the batched verification against an equation-by-equation
recomputation with py_ecc's independent secp256k1.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from py_ecc.secp256k1 import secp256k1 as ref

from statledger.proofs.elgamal import Ciphertext, decrypt, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import ORDER, Point, Scalar
from statledger.proofs.mulproof import MulProof, multiply_with_proof, verify_products

N, M, K = 12, 3, 2
CTX = b"test-context"


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    x, X = keygen()
    vals = [[secrets.randbelow(1 << 12) for _ in range(M)] for _ in range(N)]
    Kmat = [[encrypt(X, v) for v in row] for row in vals]
    ys = [[secrets.randbelow(1 << 10) for _ in range(N)] for _ in range(K)]
    ys[1][0] = -5  # signed multipliers work too
    D, proof = multiply_with_proof(X, Kmat, ys, CTX)
    return {"x": x, "X": X, "vals": vals, "K": Kmat, "ys": ys, "D": D, "proof": proof}


def test_products_decrypt_to_dot_products(setup: dict[str, Any]) -> None:
    for i in range(M):
        for j in range(K):
            want = sum(setup["ys"][j][r] * setup["vals"][r][i] for r in range(N))
            assert decrypt(setup["x"], setup["D"][i][j], 1 << 30) == want


def test_accepts_and_round_trips(setup: dict[str, Any]) -> None:
    verify_products(setup["X"], setup["K"], setup["D"], setup["proof"], CTX)
    data = setup["proof"].to_bytes()
    assert len(data) == MulProof.encoded_size(M, K, N)
    again = MulProof.from_bytes(data, M, K, N)
    assert again == setup["proof"]
    verify_products(setup["X"], setup["K"], setup["D"], again, CTX)


def _to_ref(P: Point) -> Any:
    xy = P.to_affine()
    assert xy is not None
    return xy


def test_equation_holds_in_py_ecc(setup: dict[str, Any]) -> None:
    """One equation (i=1, j=0, first component) recomputed with py_ecc, independently."""
    from statledger.proofs.group import G
    from statledger.proofs.transcript import Transcript

    pf, Kmat, D, X = setup["proof"], setup["K"], setup["D"], setup["X"]
    t = Transcript(b"statledger/mulproof/v1")
    t.append_message(b"context", CTX)
    t.append_point(b"X", X)
    t.append_int(b"rows", N)
    t.append_int(b"columns", M)
    t.append_int(b"vectors", K)
    t.append_points(b"K", [P for row in Kmat for c in row for P in (c.C1, c.C2)])
    t.append_points(b"D", [P for row in D for c in row for P in (c.C1, c.C2)])
    t.append_points(b"T", [P for row in pf.T for c in row for P in (c.C1, c.C2)])
    e = int(t.challenge_scalar(b"e"))
    i, j = 1, 0
    lhs = ref.multiply(_to_ref(G), int(pf.tau[i][j]))
    for r in range(N):
        lhs = ref.add(lhs, ref.multiply(_to_ref(Kmat[r][i].C1), int(pf.z[j][r])))
    rhs = ref.add(_to_ref(pf.T[i][j].C1), ref.multiply(_to_ref(D[i][j].C1), e))
    assert lhs == rhs


def test_wrong_product_rejected_names_party(setup: dict[str, Any]) -> None:
    X = setup["X"]
    D = [list(r) for r in setup["D"]]
    D[2][1] = D[2][1] + encrypt(X, 1)
    with pytest.raises(VerificationError, match="mul-proof / party B: the products are not"):
        verify_products(X, setup["K"], D, setup["proof"], CTX, party="B")


def test_different_multiplier_rejected(setup: dict[str, Any]) -> None:
    """A product computed with another y (its own proof valid) does not verify in place."""
    X = setup["X"]
    other = [list(y) for y in setup["ys"]]
    other[0][3] += 1
    D2, _ = multiply_with_proof(X, setup["K"], other, CTX)
    D = [list(r) for r in setup["D"]]
    D[0][0] = D2[0][0]
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(X, setup["K"], D, setup["proof"], CTX)


def test_other_statement_rejected(setup: dict[str, Any]) -> None:
    X = setup["X"]
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(X, setup["K"], setup["D"], setup["proof"], b"other-context")
    K2 = [list(r) for r in setup["K"]]
    K2[0][0] = encrypt(X, 7)
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(X, K2, setup["D"], setup["proof"], CTX)
    _, X2 = keygen()
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(X2, setup["K"], setup["D"], setup["proof"], CTX)
    swapped = [list(r) for r in setup["D"]]
    swapped[0][0], swapped[0][1] = swapped[0][1], swapped[0][0]
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(X, setup["K"], swapped, setup["proof"], CTX)


@pytest.mark.parametrize("where", ["T", "z", "tau"])
def test_tampered_proof_fields_rejected(setup: dict[str, Any], where: str) -> None:
    pf: MulProof = setup["proof"]
    one = Scalar(1)
    if where == "T":
        T = [list(r) for r in pf.T]
        T[0][1] = T[0][1] + Ciphertext(Point.identity(), setup["X"])
        bad = MulProof(tuple(tuple(r) for r in T), pf.z, pf.tau)
    elif where == "z":
        z = [list(r) for r in pf.z]
        z[1][N - 1] = z[1][N - 1] + one
        bad = MulProof(pf.T, tuple(tuple(r) for r in z), pf.tau)
    else:
        tau = [list(r) for r in pf.tau]
        tau[M - 1][0] = tau[M - 1][0] + one
        bad = MulProof(pf.T, pf.z, tuple(tuple(r) for r in tau))
    with pytest.raises(VerificationError, match="mul-proof"):
        verify_products(setup["X"], setup["K"], setup["D"], bad, CTX)


def test_bit_flips_in_encoding(setup: dict[str, Any]) -> None:
    data = setup["proof"].to_bytes()
    for pos in (3, 66 * M * K + 5, len(data) - 1):
        b = bytearray(data)
        b[pos] ^= 0x10
        try:
            pf = MulProof.from_bytes(bytes(b), M, K, N)
        except MalformedError:
            continue
        with pytest.raises(VerificationError, match="mul-proof"):
            verify_products(setup["X"], setup["K"], setup["D"], pf, CTX)


def test_strict_decoding(setup: dict[str, Any]) -> None:
    data = setup["proof"].to_bytes()
    for bad in (data[:-1], data + b"\x00", b""):
        with pytest.raises(MalformedError):
            MulProof.from_bytes(bad, M, K, N)
    with pytest.raises(MalformedError):
        MulProof.from_bytes(data, M, K, N + 1)
    over = data[: -32] + ORDER.to_bytes(32, "big")  # tau not reduced
    with pytest.raises(MalformedError):
        MulProof.from_bytes(over, M, K, N)


def test_shape_mismatch_rejected(setup: dict[str, Any]) -> None:
    pf: MulProof = setup["proof"]
    with pytest.raises(VerificationError, match="shape"):
        verify_products(setup["X"], setup["K"][:-1], setup["D"], pf, CTX)
    with pytest.raises(VerificationError, match="matrix"):
        verify_products(setup["X"], setup["K"], setup["D"][:-1], pf, CTX)
    with pytest.raises(MalformedError):
        multiply_with_proof(setup["X"], setup["K"], [[1] * (N - 1)], CTX)
    with pytest.raises(MalformedError):
        multiply_with_proof(Point.identity(), setup["K"], setup["ys"], CTX)


def test_identity_ciphertexts_are_handled() -> None:
    """Adversarial identity points in K do not break proving or verifying."""
    x, X = keygen()
    Kmat = [[Ciphertext.zero(), encrypt(X, 3)], [encrypt(X, 2), Ciphertext.zero()]]
    D, pf = multiply_with_proof(X, Kmat, [[5, 7]], CTX)
    verify_products(X, Kmat, D, pf, CTX)
    assert decrypt(x, D[0][0], 100) == 14 and decrypt(x, D[1][0], 100) == 15
