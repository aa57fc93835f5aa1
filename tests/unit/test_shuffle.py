"""Verifiable shuffle (proofs/shuffle.py): every accept test has mechanical reject twins."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from statledger.proofs import batch as batch_mod
from statledger.proofs import shuffle as shuffle_mod
from statledger.proofs.dlog import DlogTable
from statledger.proofs.elgamal import (
    Ciphertext,
    combine,
    decryption_share,
    encode_message,
    encrypt,
    keygen,
    rerandomize,
)
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import FIELD, ORDER, G, Point, Scalar, base_mul, msm
from statledger.proofs.shuffle import (
    MAX_SHUFFLE_SIZE,
    ShuffleProof,
    prove_shuffle,
    shuffle,
    shuffle_costs,
    shuffle_generators,
    verify_shuffle,
)

CTX = b"query:abc|node:compute-1|noise-shuffle"
REJECT = (MalformedError, VerificationError)
TABLE = DlogTable.build(1 << 10)
KEY = keygen()


def _dec(c: Ciphertext) -> int:
    return TABLE.solve(combine(c, [decryption_share(KEY[0], c)]), 1 << 16)


def _inputs(n: int, X: Point | None = None) -> list[Ciphertext]:
    X = KEY[1] if X is None else X
    return [encrypt(X, 3 * i - n) for i in range(n)]


def _step(err: pytest.ExceptionInfo[VerificationError]) -> str | None:
    return err.value.step


Statement = tuple[list[Ciphertext], list[Ciphertext], ShuffleProof, list[int], list[Scalar]]


@pytest.fixture(scope="module")
def statement() -> Statement:
    """A shuffle of 5 ciphertexts with its witness (permutation, re-randomisers)."""
    X = KEY[1]
    ins = _inputs(5)
    perm = [3, 0, 4, 1, 2]
    rs = [Scalar.random() for _ in ins]
    outs = [rerandomize(X, ins[perm[i]], rs[i]) for i in range(5)]
    proof = prove_shuffle(X, ins, outs, perm, rs, CTX)
    verify_shuffle(X, ins, outs, proof, CTX)
    return ins, outs, proof, perm, rs


# -- accept ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 10, 100])
def test_accept(n: int) -> None:
    X = KEY[1]
    ins = _inputs(n)
    outs, proof = shuffle(X, ins, context=CTX)
    verify_shuffle(X, ins, outs, proof, CTX)
    data = proof.to_bytes()
    assert len(data) == ShuffleProof.encoded_size(n) == 163 * n + 293
    again = ShuffleProof.from_bytes(data, n)
    assert again == proof and again.n == n
    assert ShuffleProof.from_bytes(bytearray(data), n) == proof  # type: ignore[arg-type]
    verify_shuffle(X, ins, outs, again, bytearray(CTX))  # type: ignore[arg-type]
    # same multiset of plaintexts, fresh ciphertexts (no output equals an input)
    assert Counter(_dec(c) for c in outs) == Counter(_dec(c) for c in ins)
    assert not set(c.to_bytes() for c in outs) & set(c.to_bytes() for c in ins)


def test_explicit_witness_any_permutation() -> None:
    X = KEY[1]
    ins = _inputs(4)
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 2, 3, 0]):
        rs = [Scalar.random() for _ in ins]
        outs = [rerandomize(X, ins[perm[i]], rs[i]) for i in range(4)]
        verify_shuffle(X, ins, outs, prove_shuffle(X, ins, outs, perm, rs, CTX), CTX)


def test_trivial_encryptions_of_a_public_noise_list() -> None:
    """Drynx-style: a public list of noise values encrypted with r = 0 (C1 = O, even the
    all-identity (O, O) for 0) is a valid input; the outputs are real encryptions."""
    X = KEY[1]
    noise = [-2, -1, 0, 0, 1, 2, 5]
    ins = [Ciphertext(Point.identity(), encode_message(m)) for m in noise]
    assert ins[2] == Ciphertext.zero()
    outs, proof = shuffle(X, ins, context=CTX)
    verify_shuffle(X, ins, outs, proof, CTX)
    assert sorted(_dec(c) for c in outs) == noise
    assert all(not c.C1.is_identity() for c in outs)


def test_chained_shuffles_by_two_nodes() -> None:
    X = KEY[1]
    ins = _inputs(6)
    mid, p1 = shuffle(X, ins, context=b"node-1")
    out, p2 = shuffle(X, mid, context=b"node-2")
    verify_shuffle(X, ins, mid, p1, b"node-1")
    verify_shuffle(X, mid, out, p2, b"node-2")
    with pytest.raises(VerificationError):
        verify_shuffle(X, ins, out, p2, b"node-2")  # skipping a node's step
    assert sorted(_dec(c) for c in out) == sorted(_dec(c) for c in ins)


def test_two_shuffles_of_the_same_list_differ() -> None:
    X = KEY[1]
    ins = _inputs(3)
    a, pa = shuffle(X, ins, context=CTX)
    b, pb = shuffle(X, ins, context=CTX)
    assert a != b and pa != pb


# -- reject twins: the statement --------------------------------------------------------------


def _twins(ins: list[Ciphertext], outs: list[Ciphertext]) -> Iterator[
        tuple[str, Point, list[Ciphertext], list[Ciphertext], bytes]]:
    X, (_y, Y) = KEY[1], keygen()
    swapped = list(outs)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    yield "outputs swapped", X, ins, swapped, CTX
    yield "outputs reversed", X, ins, outs[::-1], CTX
    for j in range(len(outs)):
        rer = list(outs)
        rer[j] = rerandomize(X, outs[j])
        yield f"output {j} re-randomised again", X, ins, rer, CTX
        other = list(outs)
        other[j] = encrypt(X, 1000 + j)
        yield f"output {j} replaced by another value", X, ins, other, CTX
        shifted = list(outs)
        shifted[j] = outs[j] + encrypt(X, 1, Scalar(0))  # plaintext + 1, same randomness
        yield f"output {j} plaintext + 1", X, ins, shifted, CTX
        moved = list(outs)
        moved[j] = Ciphertext(outs[j].C1 + G, outs[j].C2)
        yield f"output {j} C1 moved", X, ins, moved, CTX
        changed = list(ins)
        changed[j] = encrypt(X, 77)
        yield f"input {j} changed", X, changed, outs, CTX
        trivial = list(ins)
        trivial[j] = Ciphertext(Point.identity(), ins[j].C2)
        yield f"input {j} C1 dropped", X, trivial, outs, CTX
    yield "inputs reordered", X, ins[1:] + ins[:1], outs, CTX
    yield "inputs swapped", X, [ins[1], ins[0], *ins[2:]], outs, CTX
    yield "wrong key", Y, ins, outs, CTX
    yield "key + G", X + G, ins, outs, CTX
    yield "wrong context", X, ins, outs, CTX + b"!"
    yield "empty context", X, ins, outs, b""
    yield "inputs and outputs exchanged", X, outs, ins, CTX
    dup = list(outs)
    dup[1] = dup[0]
    yield "output duplicated", X, ins, dup, CTX


def test_reject_twins_of_the_statement(statement: Statement) -> None:
    ins, outs, proof, _perm, _rs = statement
    count = 0
    for name, X, i2, o2, ctx in _twins(ins, outs):
        with pytest.raises(VerificationError) as err:
            verify_shuffle(X, i2, o2, proof, ctx, party="compute-1")
        assert _step(err) == "shuffle step 3", name
        assert err.value.party == "compute-1"
        count += 1
    assert count == 6 * len(outs) + 10


def test_wrong_witness_gives_a_failing_proof() -> None:
    X = KEY[1]
    ins = _inputs(4)
    perm = [2, 0, 3, 1]
    rs = [Scalar.random() for _ in ins]
    outs = [rerandomize(X, ins[perm[i]], rs[i]) for i in range(4)]
    bad_rs = list(rs)
    bad_rs[2] = bad_rs[2] + Scalar(1)
    for p, r in (([0, 1, 2, 3], rs), ([2, 0, 1, 3], rs), (perm, bad_rs)):
        proof = prove_shuffle(X, ins, outs, p, r, CTX)
        with pytest.raises(VerificationError, match="shuffle step 3"):
            verify_shuffle(X, ins, outs, proof, CTX)
    # a "shuffle" that changes a plaintext cannot be proved with any witness of that shape
    forged = list(outs)
    forged[0] = rerandomize(X, encrypt(X, 999), Scalar(5))
    with pytest.raises(VerificationError, match="shuffle step 3"):
        verify_shuffle(X, ins, forged, prove_shuffle(X, ins, forged, perm, rs, CTX), CTX)


def test_proof_of_another_shuffle_of_the_same_inputs(statement: Statement) -> None:
    ins, outs, proof, _perm, _rs = statement
    outs2, proof2 = shuffle(KEY[1], ins, context=CTX)
    with pytest.raises(VerificationError, match="shuffle step 3"):
        verify_shuffle(KEY[1], ins, outs2, proof, CTX)
    with pytest.raises(VerificationError, match="shuffle step 3"):
        verify_shuffle(KEY[1], ins, outs, proof2, CTX)


# -- N mismatch ---------------------------------------------------------------------------------


def test_n_mismatch(statement: Statement) -> None:
    ins, outs, proof, _perm, _rs = statement
    X = KEY[1]
    with pytest.raises(VerificationError, match="shuffle step 1") as err:
        verify_shuffle(X, ins, outs[:-1], proof, CTX, party="node-9")
    assert err.value.party == "node-9"
    with pytest.raises(VerificationError, match="shuffle step 1"):
        verify_shuffle(X, ins[:-1], outs, proof, CTX)
    with pytest.raises(VerificationError, match="shuffle step 1"):
        verify_shuffle(X, ins[:-1], outs[:-1], proof, CTX)
    with pytest.raises(VerificationError, match="shuffle step 1"):
        verify_shuffle(X, [*ins, ins[0]], [*outs, outs[0]], proof, CTX)
    with pytest.raises(VerificationError, match="shuffle step 1"):
        verify_shuffle(X, [], [], proof, CTX)
    data = proof.to_bytes()
    for n in (proof.n - 1, proof.n + 1, 1, 0, -1, MAX_SHUFFLE_SIZE + 1):
        with pytest.raises(MalformedError):
            ShuffleProof.from_bytes(data, n)
    # a proof for 4 that happens to be the right length for nothing else
    small_outs, small = shuffle(X, ins[:4], context=CTX)
    with pytest.raises(VerificationError, match="shuffle step 1"):
        verify_shuffle(X, ins, outs, small, CTX)
    with pytest.raises(MalformedError):
        ShuffleProof.from_bytes(small.to_bytes(), 5)


def test_proof_shape_checks(statement: Statement) -> None:
    proof = statement[2]
    with pytest.raises(MalformedError):
        dataclasses.replace(proof, k_B=proof.k_B[:-1])
    with pytest.raises(MalformedError):
        dataclasses.replace(proof, B=proof.B + proof.B[:1])
    with pytest.raises(MalformedError):
        dataclasses.replace(proof, B_p=proof.B_p[:-1])
    with pytest.raises(MalformedError):
        dataclasses.replace(proof, U=(), B=(), B_p=(), k_B=(), k_E=())
    with pytest.raises(TypeError):
        dataclasses.replace(proof, k_A=int(proof.k_A))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dataclasses.replace(proof, F_p=proof.F_p[:1])
    with pytest.raises(TypeError):
        dataclasses.replace(proof, C_p=proof.C_p.to_bytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dataclasses.replace(proof, U=(proof.U[0].to_bytes(),) + proof.U[1:])  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        ShuffleProof.from_bytes(proof.to_bytes(), True)
    with pytest.raises(MalformedError):
        ShuffleProof.from_bytes("00" * len(proof.to_bytes()), proof.n)  # type: ignore[arg-type]
    as_list = dataclasses.replace(proof, U=list(proof.U))  # type: ignore[arg-type]
    assert as_list == proof and isinstance(as_list.U, tuple)
    with pytest.raises(TypeError):
        verify_shuffle(KEY[1], statement[0], statement[1], proof.to_bytes(), CTX)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_shuffle(KEY[1], statement[0], statement[1], proof, "ctx")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_shuffle(KEY[1], [c.to_bytes() for c in statement[0]],  # type: ignore[misc]
                       statement[1], proof, CTX)


# -- identity points where they are not allowed ---------------------------------------------------


def test_identity_key_and_outputs(statement: Statement) -> None:
    ins, outs, proof, perm, rs = statement
    O = Point.identity()
    with pytest.raises(VerificationError, match="shuffle step 2"):
        verify_shuffle(O, ins, outs, proof, CTX)
    with pytest.raises(MalformedError):
        prove_shuffle(O, ins, outs, perm, rs, CTX)
    with pytest.raises(MalformedError):
        shuffle(O, ins, context=CTX)
    bad = list(outs)
    bad[2] = Ciphertext(O, outs[2].C2)
    with pytest.raises(VerificationError, match="shuffle step 2"):
        verify_shuffle(KEY[1], ins, bad, proof, CTX)
    bad[2] = Ciphertext.zero()
    with pytest.raises(VerificationError, match="shuffle step 2"):
        verify_shuffle(KEY[1], ins, bad, proof, CTX)


@pytest.mark.parametrize("field,name", [("U", "U"), ("B", "B"), ("B_p", "B'"), ("F_p", "F'")])
def test_identity_commitments(statement: Statement, field: str, name: str) -> None:
    ins, outs, proof, _perm, _rs = statement
    n = len(getattr(proof, field))
    for i in (0, n - 1):
        pts = list(getattr(proof, field))
        pts[i] = Point.identity()
        bad = dataclasses.replace(proof, **{field: tuple(pts)})  # type: ignore[arg-type]
        with pytest.raises(VerificationError, match=f"shuffle step 2.*{name}_{i}"):
            verify_shuffle(KEY[1], ins, outs, bad, CTX)
        wire = name if field != "F_p" else f"F'{i + 1}"
        with pytest.raises(MalformedError, match=f"{wire}(_{i})? is the identity"):
            ShuffleProof.from_bytes(bad.to_bytes(), proof.n)


@pytest.mark.parametrize("field", ["A_p", "C_p", "D_p"])
def test_identity_single_commitments(statement: Statement, field: str) -> None:
    ins, outs, proof, _perm, _rs = statement
    bad = dataclasses.replace(proof, **{field: Point.identity()})  # type: ignore[arg-type]
    name = field[0] + "'"
    with pytest.raises(VerificationError, match=f"shuffle step 2.*{name}_0"):
        verify_shuffle(KEY[1], ins, outs, bad, CTX)
    with pytest.raises(MalformedError, match=f"{name} is the identity"):
        ShuffleProof.from_bytes(bad.to_bytes(), proof.n)


# -- reject twins: the proof bytes ----------------------------------------------------------------


def _fields(n: int) -> list[tuple[str, int, int, str]]:
    """(name, offset, length, kind) of every field of the encoding."""
    out: list[tuple[str, int, int, str]] = []
    pos = 0

    def add(name: str, kind: str) -> None:
        nonlocal pos
        size = 33 if kind == "point" else 32
        out.append((name, pos, size, kind))
        pos += size

    for name in ("U", "B"):
        for i in range(n):
            add(f"{name}_{i}", "point")
    add("A'", "point")
    for i in range(n):
        add(f"B'_{i}", "point")
    for name in ("C'", "D'", "F'1", "F'2"):
        add(name, "point")
    add("k_A", "scalar")
    for i in range(n):
        add(f"k_B_{i}", "scalar")
    add("k_C", "scalar")
    add("k_D", "scalar")
    for i in range(n):
        add(f"k_E_{i}", "scalar")
    add("k_F", "scalar")
    assert pos == ShuffleProof.encoded_size(n)
    return out


def _field_mutations(data: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    for name, off, size, kind in _fields(n):
        field = data[off : off + size]

        def put(new: bytes, off: int = off, size: int = size) -> bytes:
            return data[:off] + new + data[off + size :]

        for k in range(size):
            for bit in range(8):
                b = bytearray(field)
                b[k] ^= 1 << bit
                yield f"{name} flip@{k}.{bit}", put(bytes(b))
        if kind == "scalar":
            s = int.from_bytes(field, "big")
            for bad in (ORDER, ORDER + 1, 2**256 - 1):
                yield f"{name} = {bad:x}"[:24], put(bad.to_bytes(32, "big"))
            if s + ORDER < 2**256:
                yield f"{name} + n", put((s + ORDER).to_bytes(32, "big"))
            yield f"{name} = 0", put(bytes(32))
            yield f"{name} + 1", put(((s + 1) % ORDER).to_bytes(32, "big"))
        else:
            yield f"{name} identity", put(bytes(33))
            yield f"{name} prefix 04", put(b"\x04" + field[1:])
            yield f"{name} prefix 00", put(b"\x00" + field[1:])
            yield f"{name} x = p", put(field[:1] + FIELD.to_bytes(32, "big"))
            yield f"{name} negated", put(bytes((field[0] ^ 1,)) + field[1:])
            yield f"{name} = G", put(G.to_bytes())


def test_every_field_mutation_is_rejected() -> None:
    X = KEY[1]
    ins = _inputs(2)
    outs, proof = shuffle(X, ins, context=CTX)
    data = proof.to_bytes()
    count = 0
    for name, bad in _field_mutations(data, 2):
        assert bad != data and len(bad) == len(data), name
        with pytest.raises(REJECT):
            verify_shuffle(X, ins, outs, ShuffleProof.from_bytes(bad, 2), CTX)
        count += 1
    assert count > 8 * len(data)


def test_length_and_layout_mutations_are_rejected() -> None:
    X = KEY[1]
    ins = _inputs(3)
    outs, proof = shuffle(X, ins, context=CTX)
    data = proof.to_bytes()
    n = 3
    cases = {
        "empty": b"",
        "truncated-1": data[:-1],
        "truncated-32": data[:-32],
        "truncated-33": data[:-33],
        "truncated-163": data[:-163],
        "trailing-00": data + b"\x00",
        "trailing-scalar": data + bytes(32),
        "leading-00": b"\x00" + data,
        "doubled": data + data,
        "extended-163": data + data[:163],
    }
    for name, bad in cases.items():
        with pytest.raises(MalformedError):
            ShuffleProof.from_bytes(bad, n)
        assert name
    # well-formed rearrangements: swapped fields, rotated vectors
    p = proof
    rearranged = [
        dataclasses.replace(p, U=p.B, B=p.U),
        dataclasses.replace(p, k_B=p.k_E, k_E=p.k_B),
        dataclasses.replace(p, k_C=p.k_D, k_D=p.k_C),
        dataclasses.replace(p, k_A=p.k_F, k_F=p.k_A),
        dataclasses.replace(p, B=p.B_p, B_p=p.B),
        dataclasses.replace(p, A_p=p.C_p, C_p=p.A_p),
        dataclasses.replace(p, C_p=p.D_p, D_p=p.C_p),
        dataclasses.replace(p, F_p=p.F_p[::-1]),
        dataclasses.replace(p, B_p=p.B_p[1:] + p.B_p[:1]),
        dataclasses.replace(p, U=p.U[1:] + p.U[:1]),
        dataclasses.replace(p, B=p.B[::-1]),
        dataclasses.replace(p, k_E=p.k_E[::-1]),
        dataclasses.replace(p, k_B=p.k_B[1:] + p.k_B[:1]),
        dataclasses.replace(p, A_p=-p.A_p),
        dataclasses.replace(p, k_F=-p.k_F),
    ]
    for bad_proof in rearranged:
        with pytest.raises(VerificationError, match="shuffle step 3"):
            verify_shuffle(X, ins, outs, ShuffleProof.from_bytes(bad_proof.to_bytes(), n), CTX)


def test_prover_input_checks() -> None:
    X = KEY[1]
    ins = _inputs(3)
    rs = [Scalar.random() for _ in ins]
    outs = [rerandomize(X, ins[i], rs[i]) for i in range(3)]
    bad_calls: list[tuple[Sequence[Ciphertext], Sequence[Ciphertext], list[int],
                          list[Scalar]]] = [
        (ins, outs[:2], [0, 1, 2], rs),
        (ins, outs, [0, 1], rs),
        (ins, outs, [0, 1, 2], rs[:2]),
        (ins, outs, [0, 1, 1], rs),
        (ins, outs, [1, 2, 3], rs),
        (ins, outs, [0, 1, -1], rs),
        (ins, outs, [0, True, 2], rs),
        ([], [], [], []),
    ]
    for i2, o2, perm, r2 in bad_calls:
        with pytest.raises(MalformedError):
            prove_shuffle(X, i2, o2, perm, r2, CTX)
    with pytest.raises(TypeError):
        prove_shuffle(X, ins, outs, [0, 1, 2], [1, 2, 3], CTX)  # type: ignore[list-item]
    with pytest.raises(TypeError):
        prove_shuffle(X, ins, outs, [0, 1, 2], rs, "ctx")  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        shuffle(X, [], context=CTX)
    with pytest.raises(TypeError):
        shuffle(X, [c.to_bytes() for c in ins], context=CTX)  # type: ignore[misc]


def test_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shuffle_mod, "MAX_SHUFFLE_SIZE", 3)
    X = KEY[1]
    ins = _inputs(4)
    with pytest.raises(MalformedError, match="1 <= N <= 3"):
        shuffle(X, ins, context=CTX)
    outs, proof = shuffle(X, ins[:3], context=CTX)
    verify_shuffle(X, ins[:3], outs, proof, CTX)
    with pytest.raises(MalformedError):
        ShuffleProof.from_bytes(bytes(ShuffleProof.encoded_size(4)), 4)


# -- costs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 7])
def test_scalar_multiplication_counts(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module multiplies only through base_mul and msm; the counts match shuffle_costs
    (the verifier: ONE msm, each distinct point once)."""
    counts = {"base": 0, "var": 0}

    def counting_base_mul(k: Scalar) -> Point:
        counts["base"] += 1
        return base_mul(k)

    def counting_msm(ks: Sequence[Scalar], Ps: Sequence[Point], *, workers: int = 1) -> Point:
        counts["var"] += sum(1 for k, P in zip(ks, Ps, strict=True)
                             if not k.is_zero() and not P.is_identity())
        return msm(ks, Ps, workers=workers)

    X = KEY[1]
    ins = _inputs(n)
    rs = [Scalar.random() for _ in ins]
    perm = list(range(n))[::-1]
    outs = [rerandomize(X, ins[perm[i]], rs[i]) for i in range(n)]
    shuffle_generators(n)
    monkeypatch.setattr(shuffle_mod, "base_mul", counting_base_mul)
    monkeypatch.setattr(shuffle_mod, "msm", counting_msm)
    monkeypatch.setattr(batch_mod, "msm", counting_msm)  # the verifier's one msm
    proof = prove_shuffle(X, ins, outs, perm, rs, CTX)
    assert counts == shuffle_costs(n)["prove"]
    counts.update(base=0, var=0)
    verify_shuffle(X, ins, outs, proof, CTX)
    assert counts == shuffle_costs(n)["verify"]


def test_generators_are_independent_of_the_pedersen_ones() -> None:
    J, H = shuffle_generators(4)
    from statledger.proofs.group import H as PEDERSEN_H

    pts = [G, PEDERSEN_H, J, *H]
    assert len({P.to_bytes() for P in pts}) == len(pts)
    assert shuffle_generators(2)[1] == H[:2]  # prefix-stable
