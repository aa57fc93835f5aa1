"""The blinded shuffled PET (protocol/pet.py) and its log entry (``pet``): n < k finds a zero,
n >= k finds none; a node that blinds with r = 0, uses two exponents on one ciphertext, drops,
adds or duplicates a ciphertext, or replays another cell's proof is caught and named; the
entry decodes strictly (bit flips, truncation, swapped fields, wrong sizes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from statledger.proofs import sigma
from statledger.proofs.elgamal import Ciphertext, decryption_share, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar
from statledger.proofs.shuffle import shuffle
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol import pet
from statledger.protocol.dkg import lagrange_at_zero

QID = "ab" * 32
K = 5


def _chain(X: Point, count: Ciphertext, k: int, nodes: int) -> list[pet.PetBatch]:
    current = pet.candidates(count, k)
    out = []
    for t in range(nodes):
        b = pet.blind_and_shuffle(X, current, pet.pet_context(QID, f"node-{t}", 0))
        pet.verify_batch(X, current, b, pet.pet_context(QID, f"node-{t}", 0),
                         party=f"node-{t}", step="step 12")
        out.append(b)
        current = list(b.shuffled)
    return out


def _small(x: Scalar, final: tuple[Ciphertext, ...]) -> bool:
    return pet.is_small(final, [[decryption_share(x, c) for c in final]], [Scalar(1)])


@pytest.mark.parametrize("n", [0, 1, K - 1, K, K + 1, 1000])
def test_small_iff_below_k(n: int) -> None:
    x, X = keygen()
    chain = _chain(X, encrypt(X, n), K, 2)
    assert _small(x, chain[-1].shuffled) is (n < K)


def test_threshold_decryption_two_of_three() -> None:
    # a 2-of-3 key: x = f(0), shares f(1), f(2), f(3); any two combine with Lagrange weights
    a0, a1 = Scalar.random(), Scalar.random()
    shares = [a0 + a1 * Scalar(i) for i in (1, 2, 3)]
    X = G * a0
    for n, want in ((2, True), (7, False)):
        final = _chain(X, encrypt(X, n), K, 2)[-1].shuffled
        ds = [[decryption_share(shares[i], c) for c in final] for i in (0, 2)]
        assert pet.is_small(final, ds, lagrange_at_zero([1, 3])) is want


def test_only_the_zero_is_recognisable() -> None:
    # the non-zero plaintexts are not (n - j) G: the blinding hides them
    x, X = keygen()
    n = 3
    final = _chain(X, encrypt(X, n), K, 1)[-1].shuffled
    plain = [c.C2 - decryption_share(x, c) for c in final]
    assert sum(p.is_identity() for p in plain) == 1
    exposed = {G * Scalar.reduce(n - j) for j in range(K)}
    assert not exposed & {p for p in plain if not p.is_identity()}


def test_count_ciphertext_recombines_limbs_and_shift() -> None:
    x, X = keygen()
    n = 3 * 65536 + 7
    limbs = [encrypt(X, 7), encrypt(X, 3)]
    c = pet.count_ciphertext(limbs, 0)
    assert c.C2 - decryption_share(x, c) == G * Scalar(n)
    c = pet.count_ciphertext([encrypt(X, 2)], -2)
    assert (c.C2 - decryption_share(x, c)).is_identity()
    with pytest.raises(MalformedError):
        pet.count_ciphertext([], 0)
    with pytest.raises(MalformedError, match="k"):
        pet.candidates(c, 0)
    with pytest.raises(MalformedError, match="k"):
        pet.candidates(c, pet.MAX_PET_K + 1)


# ---------------------------------------------------------------------------------------
# cheating nodes, each caught and named
# ---------------------------------------------------------------------------------------


def _setup() -> tuple[Point, list[Ciphertext], bytes]:
    _, X = keygen()
    return X, pet.candidates(encrypt(X, 2), K), pet.pet_context(QID, "evil", 0)


def _reshuffle(X: Point, blinded: list[Ciphertext], proofs: list[sigma.DLEQPairProof],
               ctx: bytes) -> pet.PetBatch:
    out, proof = shuffle(X, blinded, context=ctx)
    return pet.PetBatch(tuple(blinded), tuple(proofs), tuple(out), proof)


def test_zero_blinding_is_caught() -> None:
    X, w, ctx = _setup()
    good = pet.blind_and_shuffle(X, w, ctx)
    blinded = list(good.blinded)
    blinded[1] = Ciphertext(Point.identity(), Point.identity())  # r = 0: Enc(0) forced
    forged = replace(good, blinded=tuple(blinded))
    with pytest.raises(VerificationError, match="ciphertext 1.*identity") as ei:
        pet.verify_batch(X, w, forged, ctx, party="evil", step="step 12")
    assert ei.value.party == "evil" and ei.value.step == "step 12"
    with pytest.raises(MalformedError):
        sigma.prove_dleq_pair(Scalar(0), w[0].C1, w[0].C2, Point.identity(), Point.identity(),
                              ctx)


def test_two_exponents_on_one_ciphertext_are_caught() -> None:
    # C1' = r1 C1, C2' = r2 C2: would turn Enc(n - j) into an encryption of anything
    X, w, ctx = _setup()
    r1, r2 = Scalar.random(), Scalar.random()
    blinded, proofs = [], []
    for i, c in enumerate(w):
        b = Ciphertext(r1 * c.C1, (r2 if i == 2 else r1) * c.C2)
        blinded.append(b)
        proofs.append(sigma.prove_dleq_pair(r1, c.C1, c.C2, b.C1, b.C2, ctx))
    forged = _reshuffle(X, blinded, proofs, ctx)
    with pytest.raises(VerificationError, match="blinding of ciphertext 2") as ei:
        pet.verify_batch(X, w, forged, ctx, party="evil", step="step 12")
    assert ei.value.party == "evil"


@pytest.mark.parametrize("how", ["drop", "duplicate", "add", "replace"])
def test_shuffle_that_changes_the_multiset_is_caught(how: str) -> None:
    X, w, ctx = _setup()
    good = pet.blind_and_shuffle(X, w, ctx)
    out = list(good.shuffled)
    if how == "drop":
        out = out[:-1]
    elif how == "duplicate":
        out[0] = out[1]
    elif how == "add":
        out.append(out[0])
    else:  # swap in a fresh encryption of zero: would force "small"
        out[3] = encrypt(X, 0)
    forged = replace(good, shuffled=tuple(out))
    with pytest.raises(VerificationError) as ei:
        pet.verify_batch(X, w, forged, ctx, party="evil", step="step 12")
    assert ei.value.party == "evil"


def test_proof_bound_to_node_and_cell() -> None:
    X, w, ctx = _setup()
    good = pet.blind_and_shuffle(X, w, ctx)
    pet.verify_batch(X, w, good, ctx, party="evil", step="step 12")
    for other in (pet.pet_context(QID, "honest", 0), pet.pet_context(QID, "evil", 1),
                  pet.pet_context("cd" * 32, "evil", 0)):
        with pytest.raises(VerificationError):
            pet.verify_batch(X, w, good, other, party="evil", step="step 12")


def test_wrong_inputs_are_caught() -> None:
    # a batch computed from other inputs (e.g. candidates of another count)
    X, w, ctx = _setup()
    other = pet.candidates(encrypt(X, 9), K)
    good = pet.blind_and_shuffle(X, other, ctx)
    with pytest.raises(VerificationError, match="blinding"):
        pet.verify_batch(X, w, good, ctx, party="evil", step="step 12")
    with pytest.raises(VerificationError, match="ciphertexts for"):
        pet.verify_batch(X, w[:-1], good, ctx, party="evil", step="step 12")


# ---------------------------------------------------------------------------------------
# the pet entry: strict decoding, reject twins
# ---------------------------------------------------------------------------------------


_ENTRY: list[tuple[E.PetEntry, list[pet.PetBatch], Point, list[list[Ciphertext]]]] = []


def _entry() -> tuple[E.PetEntry, list[pet.PetBatch]]:
    if not _ENTRY:
        _, X = keygen()
        inputs = [pet.candidates(encrypt(X, n), 3) for n in (1, 8)]
        batches = [pet.blind_and_shuffle(X, w, pet.pet_context(QID, "node-1", c))
                   for c, w in enumerate(inputs)]
        e = E.sign(E.PetEntry.of(QID, "node-1", batches), SigningKey.generate())
        _ENTRY.append((e, batches, X, inputs))
    return _ENTRY[0][0], _ENTRY[0][1]


def test_entry_roundtrip() -> None:
    e, batches = _entry()
    back = E.Entry.from_bytes(e.to_bytes())
    assert back == e and isinstance(back, E.PetEntry)
    assert back.cells == 2 and back.claimed_author() == "node-1"
    assert back.batches() == batches


def _flip(h: str, pos: int) -> str:
    raw = bytearray(bytes.fromhex(h))
    raw[pos] ^= 0x01
    return raw.hex()


def test_entry_reject_twins() -> None:
    e, _ = _entry()
    bad: list[dict[str, object]] = [
        {"blinded": e.blinded[:-1]},                       # truncated list
        {"shuffled": e.shuffled + e.shuffled[:1]},         # one too many
        {"blind_proofs": e.blind_proofs[:-1]},
        {"shuffle_proofs": e.shuffle_proofs[:1] * 3},     # cells do not divide
        {"blinded": (e.blinded[0][:-2],) + e.blinded[1:]},  # truncated ciphertext
        {"blinded": (e.blinded[0] + "00",) + e.blinded[1:]},  # trailing garbage
        {"blinded": ("02" + "00" * 32 + e.blinded[0][66:],) + e.blinded[1:]},  # not a point
        {"shuffle_proofs": (e.shuffle_proofs[0][:-2],) + e.shuffle_proofs[1:]},
        {"blind_proofs": (e.blind_proofs[0][:132] + "ff" * 32,) + e.blind_proofs[1:]},  # s >= n
        {"blind_proofs": ("00" * 33 + e.blind_proofs[0][66:],) + e.blind_proofs[1:]},  # A1 = O
        {"proof_version": 1},
        {"proof_version": True},
        {"blinded": (e.blinded[0].upper(),) + e.blinded[1:]},  # not canonical hex
        {"node": "bad node"},
        {"blinded": ()},
    ]
    for change in bad:
        with pytest.raises(MalformedError):
            replace(e, **change)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):  # swapped fields: proofs where ciphertexts go
        replace(e, blinded=e.blind_proofs, blind_proofs=e.blinded)


def test_entry_bit_flip_fails_the_chain() -> None:
    # a flipped byte that still decodes (a point re-encoded) never verifies
    e, _ = _entry()
    _, _, X, inputs = _ENTRY[0]
    ctx = pet.pet_context(QID, "node-1", 0)
    pet.verify_batch(X, inputs[0], e.batches()[0], ctx, party="node-1", step="step 12")
    checked = 0
    for field_name, pos in (("blind_proofs", 80), ("shuffle_proofs", -10),
                            ("shuffled", 40), ("blinded", 60)):
        items = list(getattr(e, field_name))
        items[0] = _flip(items[0], pos)
        try:
            forged = replace(e, **{field_name: tuple(items)})
            b = forged.batches()[0]
        except MalformedError:
            continue  # rejected on decoding: also fine
        checked += 1
        with pytest.raises(VerificationError) as ei:
            pet.verify_batch(X, inputs[0], b, ctx, party="node-1", step="step 12")
        assert ei.value.party == "node-1"
    assert checked >= 2


def test_contexts_are_length_prefixed_and_distinct() -> None:
    # ("a", "bc") and ("ab", "c") must not collide; cell indices are part of the context
    assert pet.pet_context("a", "bc", 0) != pet.pet_context("ab", "c", 0)
    assert pet.pet_context(QID, "n", 1) != pet.pet_context(QID, "n", 11)
    assert pet.pet_context(QID, "n", 0).startswith(pet.PET_CONTEXT)


def test_is_small_refuses_mismatched_shares() -> None:
    x, X = keygen()
    final = _chain(X, encrypt(X, 1), 3, 1)[-1].shuffled
    shares = [decryption_share(x, c) for c in final]
    with pytest.raises(MalformedError):
        pet.is_small(final, [shares[:-1]], [Scalar(1)])
    with pytest.raises(MalformedError):
        pet.is_small(final, [shares], [Scalar(1), Scalar(2)])
    # a wrong key share never yields the identity by accident: "not small" is the answer
    wrong = [decryption_share(x + Scalar(1), c) for c in final]
    assert pet.is_small(final, [wrong], [Scalar(1)]) is False


def test_dleq_pair_accepts_and_its_twins_fail() -> None:
    _, X = keygen()
    c = encrypt(X, 3)
    w = Scalar.random()
    D1, D2 = w * c.C1, w * c.C2
    proof = sigma.prove_dleq_pair(w, c.C1, c.C2, D1, D2, b"ctx")
    sigma.verify_dleq_pair(c.C1, c.C2, D1, D2, proof, b"ctx")
    assert sigma.DLEQPairProof.from_bytes(proof.to_bytes()) == proof
    other = Scalar.random() * c.C2
    twins = [
        (c.C1, c.C2, D1, other, proof, b"ctx"),      # another exponent on C2
        (c.C1, c.C2, D2, D1, proof, b"ctx"),         # swapped images
        (c.C2, c.C1, D2, D1, proof, b"ctx"),         # swapped statement
        (c.C1, c.C2, D1, D2, proof, b"ctx2"),        # another context
        (c.C1, c.C2, D1, D2, sigma.DLEQPairProof(proof.A1, proof.A2, proof.s + Scalar(1)),
         b"ctx"),
        (c.C1, c.C2, D1, D2, sigma.DLEQPairProof(proof.A2, proof.A1, proof.s), b"ctx"),
        (c.C1, c.C2, D1, D2, sigma.DLEQPairProof(-proof.A1, proof.A2, proof.s), b"ctx"),
        (c.C1, c.C2, D1, D2, sigma.DLEQPairProof(proof.A1, proof.A2 + G, proof.s), b"ctx"),
    ]
    for B1, B2, E1, E2, p, ctx in twins:
        with pytest.raises(VerificationError, match="dleq-pair"):
            sigma.verify_dleq_pair(B1, B2, E1, E2, p, ctx)
    with pytest.raises(VerificationError, match="identity"):
        sigma.verify_dleq_pair(c.C1, c.C2, Point.identity(), Point.identity(), proof, b"ctx")
    with pytest.raises(MalformedError):
        sigma.DLEQPairProof.from_bytes(proof.to_bytes()[:-1])
    with pytest.raises(MalformedError):
        sigma.DLEQPairProof.from_bytes(proof.to_bytes() + b"\x00")
    raw = proof.to_bytes()
    assert len(raw) == sigma.DLEQPairProof.SIZE == 98
    for bad in (bytes(33) + raw[33:], raw[:33] + bytes(33) + raw[66:],  # identity commitment
                raw[:66] + b"\xff" * 32):                                # s >= n
        with pytest.raises(MalformedError):
            sigma.DLEQPairProof.from_bytes(bad)
    with pytest.raises(VerificationError, match="dleq-pair step 1.*commitment"):
        sigma.verify_dleq_pair(c.C1, c.C2, D1, D2,
                               sigma.DLEQPairProof(Point.identity(), proof.A2, proof.s), b"ctx")
    with pytest.raises(TypeError):
        sigma.verify_dleq_pair(c.C1, c.C2, D1, D2, sigma.DLEQProof(proof.s, proof.s),  # type: ignore[arg-type]
                               b"ctx")
