"""Sigma protocols made non-interactive with a strong Fiat--Shamir transcript.

Notes (relation, reference, cost): ``docs/notes/schnorr.md``, ``docs/notes/dleq.md`` (single
and batched Chaum--Pedersen), ``docs/notes/or-proof.md`` (CDS disjunction, 0/1 ciphertexts).

Every proof here but the DLEQ pair (below) is in *challenge--response* form ``(c, s)``: the
verifier recomputes the commitments from ``(c, s)`` and the statement, re-derives the
challenge from a fresh :class:`~statledger.proofs.transcript.Transcript` and compares.
Each transcript starts with a domain separator naming the proof and its version, then
absorbs ``context`` (binds the proof to its use: query id, party id), then the *whole
statement* (bases, public keys, ciphertexts), then every commitment, and only then
squeezes the challenge (docs/notes/transcript.md).

Relations (``G`` the base point, all points in secp256k1, witnesses in ``Z_n``):

* Schnorr: ``{ (X; x) : X = x*G }``.
* DLEQ (Chaum--Pedersen 1992): ``{ (X, B, D; x) : X = x*G and D = x*B }``.  For decryption
  shares ``B = C1``, ``D = x_i*C1``.
* Batched DLEQ: ``{ (X, C1_1..C1_K, D_1..D_K; x) : X = x*G and D_k = x*C1_k for all k }``,
  by folding with transcript weights ``w_k = z^k`` into one DLEQ on
  ``C* = sum w_k C1_k``, ``D* = sum w_k D_k``.
* 0/1 ciphertext (Cramer--Damgard--Schoenmakers 1994): ``{ (X, C1, C2; r) : C1 = r*G and
  (C2 = r*X or C2 - G = r*X) }``.
* Known plaintext: ``{ (X, C1, C2, m; r) : C1 = r*G and C2 - m*G = r*X }``.
* DLEQ pair: ``{ (B1, B2, D1, D2; w) : D1 = w*B1 and D2 = w*B2, no point the identity }``
  (a ciphertext blinded by a secret non-zero exponent; protocol/pet.py).  Unlike the others
  it is in *commitment form* ``(A1, A2, s)`` (98 bytes, :class:`DLEQPairProof`): the
  verifier re-derives ``c`` from the transcript and is left with two equations
  (:func:`dleq_pair_equations`) that :func:`statledger.proofs.batch.holds` checks for many
  proofs in one multi-scalar multiplication (docs/notes/pet.md).

Encodings: scalars are 32-byte big-endian and must be < n (anything else is
:class:`~statledger.proofs.errors.MalformedError`);
``SchnorrProof``/``DLEQProof``/``DLEQBatchProof``/
``PlaintextProof`` are ``c || s`` (64 bytes), ``ZeroOneProof`` is ``c0 || c1 || s0 || s1``
(128 bytes).  Verification returns ``None`` or raises
:class:`~statledger.proofs.errors.VerificationError` naming the failed step
(``"<proof> step N"``: step 1 = statement checks, the last step = challenge comparison).

The provers do not re-check their witness (that would cost as much as verifying); a wrong
witness simply yields a proof that fails verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from statledger.proofs import batch
from statledger.proofs.batch import Equation
from statledger.proofs.elgamal import Ciphertext, encode_message
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import G, Point, Scalar, base_mul, msm
from statledger.proofs.transcript import Transcript

__all__ = [
    "SCHNORR_DOMAIN",
    "DLEQ_DOMAIN",
    "DLEQ_BATCH_DOMAIN",
    "ZERO_ONE_DOMAIN",
    "PLAINTEXT_DOMAIN",
    "SchnorrProof",
    "DLEQProof",
    "DLEQBatchProof",
    "ZeroOneProof",
    "PlaintextProof",
    "prove_schnorr",
    "verify_schnorr",
    "prove_dleq",
    "verify_dleq",
    "prove_dleq_batch",
    "verify_dleq_batch",
    "dleq_batch_weights",
    "DLEQ_PAIR_DOMAIN",
    "DLEQPairProof",
    "prove_dleq_pair",
    "verify_dleq_pair",
    "dleq_pair_equations",
    "prove_zero_one",
    "verify_zero_one",
    "prove_plaintext",
    "verify_plaintext",
]

SCHNORR_DOMAIN = b"statledger/sigma/schnorr/v1"
DLEQ_DOMAIN = b"statledger/sigma/dleq/v1"
DLEQ_BATCH_DOMAIN = b"statledger/sigma/dleq-batch/v1"
ZERO_ONE_DOMAIN = b"statledger/sigma/zero-one/v1"
PLAINTEXT_DOMAIN = b"statledger/sigma/plaintext/v1"
DLEQ_PAIR_DOMAIN = b"statledger/sigma/dleq-pair/v2"

_SCALAR = 32


def _scalars_from_bytes(data: bytes, count: int, name: str) -> list[Scalar]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"{name} encoding must be bytes")
    data = bytes(data)
    if len(data) != count * _SCALAR:
        raise MalformedError(f"{name} encoding must be {count * _SCALAR} bytes, got {len(data)}")
    return [Scalar.from_bytes(data[i * _SCALAR : (i + 1) * _SCALAR]) for i in range(count)]


@dataclass(frozen=True, slots=True)
class _ChallengeResponse:
    """``(c, s)``: challenge and response of a one-witness sigma protocol.  64 bytes."""

    c: Scalar
    s: Scalar
    NAME: ClassVar[str] = "proof"
    SIZE: ClassVar[int] = 64

    def __post_init__(self) -> None:
        if not isinstance(self.c, Scalar) or not isinstance(self.s, Scalar):
            raise TypeError(f"{self.NAME} fields must be Scalars")

    def to_bytes(self) -> bytes:
        return self.c.to_bytes() + self.s.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Strict: exactly 64 bytes, both scalars canonical (< n)."""
        c, s = _scalars_from_bytes(data, 2, cls.NAME)
        return cls(c, s)


@dataclass(frozen=True, slots=True)
class SchnorrProof(_ChallengeResponse):
    """Proof of knowledge of ``x`` with ``X = x*G`` (key registration).  ``c || s``."""

    NAME: ClassVar[str] = "Schnorr proof"


@dataclass(frozen=True, slots=True)
class DLEQProof(_ChallengeResponse):
    """Chaum--Pedersen proof that ``log_G X == log_B D``.  ``c || s``."""

    NAME: ClassVar[str] = "DLEQ proof"


@dataclass(frozen=True, slots=True)
class DLEQBatchProof(_ChallengeResponse):
    """One constant-size proof that ``log_G X == log_{C1_k} D_k`` for all k.  ``c || s``."""

    NAME: ClassVar[str] = "batched DLEQ proof"


@dataclass(frozen=True, slots=True)
class DLEQPairProof:
    """Chaum--Pedersen proof that ``log_{B1} D1 == log_{B2} D2`` (no ``G``), in commitment
    form: ``A1 || A2 || s`` (two 33-byte points, neither the identity, and a scalar: 98
    bytes), ``A_i = k*B_i`` and ``s = k + c*w``."""

    A1: Point
    A2: Point
    s: Scalar
    NAME: ClassVar[str] = "DLEQ pair proof"
    SIZE: ClassVar[int] = 98

    def __post_init__(self) -> None:
        if not isinstance(self.A1, Point) or not isinstance(self.A2, Point):
            raise TypeError(f"{self.NAME} commitments must be Points")
        if not isinstance(self.s, Scalar):
            raise TypeError(f"{self.NAME} response must be a Scalar")

    def to_bytes(self) -> bytes:
        return self.A1.to_bytes() + self.A2.to_bytes() + self.s.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> DLEQPairProof:
        """Strict: exactly 98 bytes, both points canonical, on the curve and not the
        identity, the scalar canonical (< n)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError(f"{cls.NAME} encoding must be bytes")
        data = bytes(data)
        if len(data) != cls.SIZE:
            raise MalformedError(f"{cls.NAME} encoding must be {cls.SIZE} bytes, got "
                                 f"{len(data)}")
        A1, A2 = Point.from_bytes(data[:33]), Point.from_bytes(data[33:66])
        if A1.is_identity() or A2.is_identity():
            raise MalformedError(f"{cls.NAME}: a commitment is the identity")
        return cls(A1, A2, Scalar.from_bytes(data[66:]))


@dataclass(frozen=True, slots=True)
class PlaintextProof(_ChallengeResponse):
    """Proof that a ciphertext encrypts a given public value.  ``c || s``."""

    NAME: ClassVar[str] = "plaintext proof"


@dataclass(frozen=True, slots=True)
class ZeroOneProof:
    """CDS disjunctive proof that a ciphertext encrypts 0 or 1.  ``c0 || c1 || s0 || s1``."""

    c0: Scalar
    c1: Scalar
    s0: Scalar
    s1: Scalar
    SIZE: ClassVar[int] = 128

    def __post_init__(self) -> None:
        for v in (self.c0, self.c1, self.s0, self.s1):
            if not isinstance(v, Scalar):
                raise TypeError("ZeroOneProof fields must be Scalars")

    def to_bytes(self) -> bytes:
        return b"".join(v.to_bytes() for v in (self.c0, self.c1, self.s0, self.s1))

    @classmethod
    def from_bytes(cls, data: bytes) -> ZeroOneProof:
        """Strict: exactly 128 bytes, four canonical scalars."""
        c0, c1, s0, s1 = _scalars_from_bytes(data, 4, "0/1 proof")
        return cls(c0, c1, s0, s1)


# --------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------


def _start(domain: bytes, context: bytes) -> Transcript:
    if not isinstance(context, bytes | bytearray):
        raise TypeError("context must be bytes")
    t = Transcript(domain)
    t.append_message(b"context", bytes(context))
    return t


def _fail(proof: str, step: int, reason: str) -> VerificationError:
    return VerificationError(reason, step=f"{proof} step {step}")


def _lincomb(s: Scalar, B: Point, c: Scalar, Y: Point) -> Point:
    """``s*B - c*Y`` (the recomputed commitment); ``B is G`` uses the fast base table."""
    return (base_mul(s) if B is G else s * B) - c * Y


def _prove_eq(t: Transcript, w: Scalar, bases: Sequence[Point]) -> tuple[Scalar, Scalar]:
    """Commit ``A_i = k*B_i``, absorb them, squeeze ``c``, answer ``s = k + c*w``."""
    k = Scalar.random()
    for i, B in enumerate(bases):
        t.append_point(b"A%d" % (i + 1), base_mul(k) if B is G else k * B)
    c = t.challenge_scalar(b"c")
    return c, k + c * w


def _verify_eq(
    t: Transcript,
    proof: _ChallengeResponse,
    bases: Sequence[Point],
    images: Sequence[Point],
    name: str,
    step: int,
) -> None:
    for i, (B, Y) in enumerate(zip(bases, images, strict=True)):
        t.append_point(b"A%d" % (i + 1), _lincomb(proof.s, B, proof.c, Y))
    if t.challenge_scalar(b"c") != proof.c:
        raise _fail(name, step, "challenge mismatch: the equation does not hold")


def _check_type(proof: object, cls: type) -> None:
    if not isinstance(proof, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(proof).__name__}")


# --------------------------------------------------------------------------------------------
# Schnorr proof of knowledge
# --------------------------------------------------------------------------------------------


def _schnorr_transcript(X: Point, context: bytes) -> Transcript:
    t = _start(SCHNORR_DOMAIN, context)
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    return t


def prove_schnorr(x: Scalar, X: Point, context: bytes) -> SchnorrProof:
    """Prove knowledge of ``x`` with ``X = x*G``.  Cost: 1 base multiplication."""
    if X.is_identity():
        raise MalformedError("Schnorr: X is the identity")
    c, s = _prove_eq(_schnorr_transcript(X, context), x, [G])
    return SchnorrProof(c, s)


def verify_schnorr(X: Point, proof: SchnorrProof, context: bytes) -> None:
    """Steps: (1) X is not the identity; (2) recompute ``A = s*G - c*X`` and the challenge."""
    _check_type(proof, SchnorrProof)
    if X.is_identity():
        raise _fail("schnorr", 1, "public key X is the identity")
    _verify_eq(_schnorr_transcript(X, context), proof, [G], [X], "schnorr", 2)


# --------------------------------------------------------------------------------------------
# Chaum--Pedersen DLEQ
# --------------------------------------------------------------------------------------------


def _dleq_transcript(X: Point, B: Point, D: Point, context: bytes) -> Transcript:
    t = _start(DLEQ_DOMAIN, context)
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    t.append_point(b"B", B)
    t.append_point(b"D", D)
    return t


def prove_dleq(x: Scalar, X: Point, B: Point, D: Point, context: bytes) -> DLEQProof:
    """Prove ``X = x*G`` and ``D = x*B`` (e.g. ``B = C1``, ``D`` a decryption share).

    Cost: 1 base + 1 variable multiplication.
    """
    if X.is_identity() or B.is_identity():
        raise MalformedError("DLEQ: X and B must not be the identity")
    c, s = _prove_eq(_dleq_transcript(X, B, D, context), x, [G, B])
    return DLEQProof(c, s)


def verify_dleq(X: Point, B: Point, D: Point, proof: DLEQProof, context: bytes) -> None:
    """Steps: (1) X, B not the identity; (2) recompute ``A1 = s*G - c*X``,
    ``A2 = s*B - c*D`` and the challenge.  Cost: 1 base + 3 variable multiplications."""
    _check_type(proof, DLEQProof)
    if X.is_identity():
        raise _fail("dleq", 1, "public key X is the identity")
    if B.is_identity():
        raise _fail("dleq", 1, "base B is the identity")
    _verify_eq(_dleq_transcript(X, B, D, context), proof, [G, B], [X, D], "dleq", 2)


# --------------------------------------------------------------------------------------------
# Batched DLEQ: one proof for a whole vector of decryption shares
# --------------------------------------------------------------------------------------------


def _batch_statement(
    X: Point, C1s: Sequence[Point], Ds: Sequence[Point], context: bytes
) -> tuple[Transcript, list[Scalar]]:
    """Absorb the whole statement, then derive the folding weights ``w_k = z^k``."""
    t = _start(DLEQ_BATCH_DOMAIN, context)
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    t.append_int(b"K", len(C1s))
    t.append_points(b"C1", C1s)
    t.append_points(b"D", Ds)
    z = t.challenge_scalar(b"z")
    weights = [Scalar(1)]
    for _ in range(len(C1s) - 1):
        weights.append(weights[-1] * z)
    return t, weights


def dleq_batch_weights(
    X: Point, C1s: Sequence[Point], Ds: Sequence[Point], context: bytes
) -> list[Scalar]:
    """The folding weights ``w_k = z^k`` (exposed for tests and independent verifiers)."""
    return _batch_statement(X, C1s, Ds, context)[1]


def _check_batch(X: Point, C1s: Sequence[Point], Ds: Sequence[Point]) -> str | None:
    if len(C1s) != len(Ds):
        return f"{len(C1s)} ciphertexts but {len(Ds)} shares"
    if not C1s:
        return "empty batch"
    if X.is_identity():
        return "public key X is the identity"
    for k, C1 in enumerate(C1s):
        if C1.is_identity():
            return f"C1 of ciphertext {k} is the identity"
    return None


def prove_dleq_batch(
    x: Scalar, X_i: Point, C1s: Sequence[Point], Ds: Sequence[Point], context: bytes
) -> DLEQBatchProof:
    """Prove ``X_i = x*G`` and ``D_k = x*C1_k`` for every k in one 64-byte proof.

    Cost: K variable multiplications (fold ``C*``; ``D* = x*C*`` costs one more) + 1 base.
    """
    problem = _check_batch(X_i, C1s, Ds)
    if problem is not None:
        raise MalformedError(f"batched DLEQ: {problem}")
    t, weights = _batch_statement(X_i, C1s, Ds, context)
    C_star = msm(weights, C1s)
    if C_star.is_identity():  # probability ~K/n for honest inputs
        raise MalformedError("batched DLEQ: folded base is the identity")
    c, s = _prove_eq(t, x, [G, C_star])
    return DLEQBatchProof(c, s)


def verify_dleq_batch(
    X_i: Point,
    C1s: Sequence[Point],
    Ds: Sequence[Point],
    proof: DLEQBatchProof,
    context: bytes,
) -> None:
    """Steps: (1) statement well formed (equal lengths, K >= 1, no identity key or C1);
    (2) absorb the statement, derive ``w_k``, fold ``C* = sum w_k C1_k``, ``D* = sum w_k D_k``;
    (3) recompute ``A1 = s*G - c*X_i``, ``A2 = s*C* - c*D*`` and the challenge.

    Cost: 2K variable multiplications (the two folds) + 1 base + 3 variable.
    """
    _check_type(proof, DLEQBatchProof)
    problem = _check_batch(X_i, C1s, Ds)
    if problem is not None:
        raise _fail("dleq-batch", 1, problem)
    t, weights = _batch_statement(X_i, C1s, Ds, context)
    C_star = msm(weights, C1s)
    D_star = msm(weights, Ds)
    if C_star.is_identity():
        raise _fail("dleq-batch", 2, "folded base C* is the identity")
    _verify_eq(t, proof, [G, C_star], [X_i, D_star], "dleq-batch", 3)


# --------------------------------------------------------------------------------------------
# DLEQ over two arbitrary bases: a ciphertext raised to a secret exponent (PET blinding)
# --------------------------------------------------------------------------------------------


def _dleq_pair_transcript(B1: Point, B2: Point, D1: Point, D2: Point,
                          context: bytes) -> Transcript:
    t = _start(DLEQ_PAIR_DOMAIN, context)
    for label, P in ((b"B1", B1), (b"B2", B2), (b"D1", D1), (b"D2", D2)):
        t.append_point(label, P)
    return t


def _check_pair(B1: Point, B2: Point, D1: Point, D2: Point) -> str | None:
    for name, P in (("B1", B1), ("B2", B2), ("D1", D1), ("D2", D2)):
        if P.is_identity():
            # D = O with B != O means a zero exponent: the relation excludes it
            return f"{name} is the identity"
    return None


def prove_dleq_pair(w: Scalar, B1: Point, B2: Point, D1: Point, D2: Point,
                    context: bytes) -> DLEQPairProof:
    """Prove ``D1 = w*B1`` and ``D2 = w*B2`` for one non-zero ``w`` (e.g. ``(B1, B2)`` a
    ciphertext, ``(D1, D2)`` the same ciphertext blinded by ``w``).  No ``w*G`` is revealed.
    Commitment form: ``A_i = k*B_i``, ``c`` from the transcript (domain, context, the four
    points, ``A1``, ``A2``), ``s = k + c*w``.  Cost: 2 variable multiplications."""
    problem = _check_pair(B1, B2, D1, D2)
    if problem is not None or w.is_zero():
        raise MalformedError(f"DLEQ pair: {problem or 'the exponent is zero'}")
    k = Scalar.random()
    A1, A2 = k * B1, k * B2
    c = _dleq_pair_challenge(_dleq_pair_transcript(B1, B2, D1, D2, context), A1, A2)
    return DLEQPairProof(A1, A2, k + c * w)


def _dleq_pair_challenge(t: Transcript, A1: Point, A2: Point) -> Scalar:
    t.append_point(b"A1", A1)
    t.append_point(b"A2", A2)
    return t.challenge_scalar(b"c")


def dleq_pair_equations(B1: Point, B2: Point, D1: Point, D2: Point, proof: DLEQPairProof,
                        context: bytes) -> list[Equation]:
    """The proof's two verification equations ``A_i + c*D_i - s*B_i = O`` (``i = 1, 2``),
    ``c`` re-derived from the transcript, for :func:`statledger.proofs.batch.holds`.
    Step 1 first: :class:`VerificationError` if a point of the statement or a commitment is
    the identity (``D = O`` with ``B != O`` means a zero exponent)."""
    _check_type(proof, DLEQPairProof)
    problem = _check_pair(B1, B2, D1, D2)
    if problem is None and (proof.A1.is_identity() or proof.A2.is_identity()):
        problem = "a commitment is the identity"
    if problem is not None:
        raise _fail("dleq-pair", 1, problem)
    c = _dleq_pair_challenge(_dleq_pair_transcript(B1, B2, D1, D2, context), proof.A1,
                             proof.A2)
    # the commitment keeps the coefficient 1: weighted, a 128-bit scalar (cheaper in an msm)
    minus_s, one = -proof.s, Scalar(1)
    return [[(one, proof.A1), (c, D1), (minus_s, B1)],
            [(one, proof.A2), (c, D2), (minus_s, B2)]]


def verify_dleq_pair(B1: Point, B2: Point, D1: Point, D2: Point, proof: DLEQPairProof,
                     context: bytes) -> None:
    """Steps: (1) no point is the identity (so the exponent is not zero); (2) the two
    equations of :func:`dleq_pair_equations` hold (one random linear combination, a batch
    of one).  Cost: one 6-term multi-scalar multiplication."""
    if not batch.holds(dleq_pair_equations(B1, B2, D1, D2, proof, context)):
        raise _fail("dleq-pair", 2, "the equation does not hold")


# --------------------------------------------------------------------------------------------
# CDS disjunction: the ciphertext encrypts 0 or 1
# --------------------------------------------------------------------------------------------


def _zero_one_transcript(X: Point, ct: Ciphertext, context: bytes) -> Transcript:
    t = _start(ZERO_ONE_DOMAIN, context)
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    t.append_point(b"C1", ct.C1)
    t.append_point(b"C2", ct.C2)
    return t


def _zero_one_absorb(t: Transcript, commitments: Sequence[Point]) -> Scalar:
    t.append_point(b"a0", commitments[0])
    t.append_point(b"b0", commitments[1])
    t.append_point(b"a1", commitments[2])
    t.append_point(b"b1", commitments[3])
    return t.challenge_scalar(b"c")


def prove_zero_one(
    X: Point, ct: Ciphertext, m: int, r: Scalar, context: bytes
) -> ZeroOneProof:
    """Prove ``ct = Enc_X(m; r)`` with ``m in {0, 1}`` without revealing which.

    Branch b states ``C1 = r*G and C2 - b*G = r*X``.  The real branch commits honestly,
    the other is simulated from random ``(c_b', s_b')``.  Cost: 2 base + 4 variable mults.
    """
    if m not in (0, 1) or isinstance(m, bool):
        raise MalformedError("0/1 proof: plaintext must be the int 0 or 1")
    if X.is_identity():
        raise MalformedError("0/1 proof: X is the identity")
    t = _zero_one_transcript(X, ct, context)
    targets = [ct.C2, ct.C2 - G]  # C2 - b*G for b = 0, 1
    other = 1 - m
    c_sim, s_sim = Scalar.random(), Scalar.random()
    k = Scalar.random()
    comm: list[Point] = [Point.identity()] * 4
    comm[2 * m] = base_mul(k)
    comm[2 * m + 1] = k * X
    comm[2 * other] = _lincomb(s_sim, G, c_sim, ct.C1)
    comm[2 * other + 1] = _lincomb(s_sim, X, c_sim, targets[other])
    c = _zero_one_absorb(t, comm)
    c_real = c - c_sim
    s_real = k + c_real * r
    if m == 0:
        return ZeroOneProof(c_real, c_sim, s_real, s_sim)
    return ZeroOneProof(c_sim, c_real, s_sim, s_real)


def verify_zero_one(X: Point, ct: Ciphertext, proof: ZeroOneProof, context: bytes) -> None:
    """Steps: (1) X is not the identity; (2) recompute ``a_b = s_b*G - c_b*C1``,
    ``b_b = s_b*X - c_b*(C2 - b*G)`` for b = 0, 1, the challenge ``c``, and check
    ``c0 + c1 == c``.  Cost: 2 base + 6 variable multiplications."""
    _check_type(proof, ZeroOneProof)
    if X.is_identity():
        raise _fail("zero-one", 1, "public key X is the identity")
    t = _zero_one_transcript(X, ct, context)
    comm = [
        _lincomb(proof.s0, G, proof.c0, ct.C1),
        _lincomb(proof.s0, X, proof.c0, ct.C2),
        _lincomb(proof.s1, G, proof.c1, ct.C1),
        _lincomb(proof.s1, X, proof.c1, ct.C2 - G),
    ]
    if _zero_one_absorb(t, comm) != proof.c0 + proof.c1:
        raise _fail("zero-one", 2, "challenge mismatch: c0 + c1 != c")


# --------------------------------------------------------------------------------------------
# Known plaintext
# --------------------------------------------------------------------------------------------


def _plaintext_transcript(X: Point, ct: Ciphertext, m: int, context: bytes) -> Transcript:
    t = _start(PLAINTEXT_DOMAIN, context)
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    t.append_point(b"C1", ct.C1)
    t.append_point(b"C2", ct.C2)
    t.append_int(b"m", m)
    return t


def prove_plaintext(
    X: Point, ct: Ciphertext, m: int, r: Scalar, context: bytes
) -> PlaintextProof:
    """Prove ``ct = Enc_X(m; r)`` for the public int ``m`` (DLEQ of r over (G, C1), (X,
    C2 - m*G)).  Cost: 1 base + 1 variable multiplication."""
    if X.is_identity():
        raise MalformedError("plaintext proof: X is the identity")
    c, s = _prove_eq(_plaintext_transcript(X, ct, m, context), r, [G, X])
    return PlaintextProof(c, s)


def verify_plaintext(
    X: Point, ct: Ciphertext, m: int, proof: PlaintextProof, context: bytes
) -> None:
    """Steps: (1) X is not the identity; (2) recompute ``A1 = s*G - c*C1``,
    ``A2 = s*X - c*(C2 - m*G)`` and the challenge.  Cost: 2 base + 3 variable mults."""
    _check_type(proof, PlaintextProof)
    if X.is_identity():
        raise _fail("plaintext", 1, "public key X is the identity")
    target = ct.C2 - encode_message(m)
    _verify_eq(
        _plaintext_transcript(X, ct, m, context), proof, [G, X], [ct.C1, target], "plaintext", 2
    )
