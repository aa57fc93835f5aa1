"""Verifiable re-encryption shuffle of exponential-ElGamal ciphertexts (Terelius--Wikstrom).

Note (relation, protocol step by step, transcript layout, soundness, costs):
``docs/notes/shuffle.md``.  Notation as in ``docs/notes/notation.md``.

Relation.  Public: the ElGamal key ``X``, inputs ``w_j = (C1_j, C2_j)`` and outputs
``w'_i = (C1'_i, C2'_i)`` for ``i, j = 0..N-1``.  The prover knows a permutation ``pi`` of
``{0..N-1}`` and re-randomisers ``s_i`` (the API's ``rerandomizers``) with

    C1'_i = C1_{pi(i)} + s_i*G,    C2'_i = C2_{pi(i)} + s_i*X

i.e. ``w'_i = w_{pi(i)} + Enc_X(0; s_i)``: the outputs encrypt the same multiset of
plaintexts, and nobody without ``pi`` can tell which output came from which input.

Proof: the commitment-consistent proof of a shuffle of D. Wikstrom ("A commitment-consistent
proof of a shuffle", ACISP 2009) with the permutation-matrix argument of B. Terelius and
D. Wikstrom ("Proofs of restricted shuffles", AFRICACRYPT 2010), as used by Verificatum
(names as in Wikstrom's "How to implement a stand-alone verifier for the Verificatum
mix-net"):

* ``H_i = generators(H_LABEL, N)`` and ``J = generator(J_LABEL)``: independent generators
  (RFC 9380 hash-to-curve, nobody knows a discrete-log relation between them and ``G``);
* ``U_j = r_j*G + H_{pi^-1(j)}``: a Pedersen commitment to column ``j`` of the permutation
  matrix;
* ``e_j``: the batching vector, transcript challenges drawn after the statement and ``U``;
  ``e'_i = e_{pi(i)}``;
* ``B_i = b_i*G + e'_i*B_{i-1}`` with ``B_{-1} = J``: a chain committing to ``prod e'_i``;
* commitments ``A', B'_i, C', D', F' = (F'1, F'2)``, challenge ``v``, responses ``k_A``,
  ``k_B`` (vector), ``k_C``, ``k_D``, ``k_E`` (vector), ``k_F``.

The proof is in *commitment form* (version 2; version 1 was challenge--response)
``(U, B, A', B', C', D', F', k_A, k_B, k_C, k_D, k_E, k_F)``: the verifier rebuilds the
transcript (domain, ``N``, context, ``X``, the bases, every input and output ciphertext,
``U``, then ``e``, then ``B`` and the prover's commitments, then ``v``) and is left with the
``N + 5`` verification equations of :func:`shuffle_equations`, which
:func:`statledger.proofs.batch.holds` checks -- for one proof (:func:`verify_shuffle`) or
for many proofs and other commitment-form proofs at once (protocol/pet.py) -- as one
random linear combination, one multi-scalar multiplication.  Encoding
(:meth:`ShuffleProof.to_bytes`): ``U ‖ B ‖ A' ‖ B' ‖ C' ‖ D' ‖ F'1 ‖ F'2 ‖ k_A ‖ k_B ‖ k_C ‖
k_D ‖ k_E ‖ k_F``, ``163*N + 293`` bytes; :meth:`ShuffleProof.from_bytes` is strict (exact
length, canonical scalars, points on the curve and not the identity).

Every multi-scalar multiplication goes through :func:`~statledger.proofs.group.msm`, every
multiple of ``G`` through :func:`~statledger.proofs.group.base_mul`; :func:`shuffle_costs`
gives the exact counts (prove: ``3N + 4`` base and ``5N + 1`` variable-base multiplications;
verify alone: one multi-scalar multiplication of ``8N + 8`` terms).

The prover does not re-check its witness (that would cost as much as the shuffle): a wrong
permutation or re-randomiser simply yields a proof that fails verification.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statledger.proofs import batch
from statledger.proofs.batch import Equation
from statledger.proofs.elgamal import Ciphertext, rerandomize
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import (
    G,
    Point,
    Scalar,
    base_mul,
    generator,
    generators,
    msm,
)
from statledger.proofs.transcript import Transcript

__all__ = [
    "SHUFFLE_DOMAIN",
    "H_LABEL",
    "J_LABEL",
    "MAX_SHUFFLE_SIZE",
    "ShuffleProof",
    "shuffle",
    "prove_shuffle",
    "verify_shuffle",
    "shuffle_equations",
    "shuffle_generators",
    "shuffle_costs",
]

SHUFFLE_DOMAIN = b"statledger/shuffle/terelius-wikstrom/v2"
H_LABEL = b"statledger/shuffle/v1/H"
J_LABEL = b"statledger/shuffle/v1/J"
# A denial-of-service bound, not a security parameter: a proof of 2^16 ciphertexts is 10.7 MB
# and takes seconds to verify on one core.  Raising it changes no byte of any proof.
MAX_SHUFFLE_SIZE = 1 << 16

_POINT = 33
_SCALAR = 32
_NAME = "shuffle"


def shuffle_generators(n: int) -> tuple[Point, list[Point]]:
    """``(J, [H_0, ..., H_{n-1}])``: the chain base and the commitment generators (cached)."""
    return generator(J_LABEL), generators(H_LABEL, n)


def shuffle_costs(n: int) -> dict[str, dict[str, int]]:
    """Scalar multiplications of :func:`prove_shuffle` and :func:`verify_shuffle` for ``n``
    ciphertexts (``base`` = ``base_mul``, ``var`` = ``msm`` terms).  Exact when no input
    contains the identity (``msm`` skips identity terms, e.g. ``C1 = O`` of a trivial
    encryption); the re-encryption of :func:`shuffle` adds ``n`` base + ``n`` var.  The
    verifier's terms are those of ONE msm (distinct points: ``G, J, X``, ``H`` (n), ``U``,
    ``B``, ``B'`` (n each), ``A', C', D', F'1, F'2``, inputs and outputs (2n each))."""
    return {
        "prove": {"base": 3 * n + 4, "var": 5 * n + 1},
        "verify": {"base": 0, "var": 8 * n + 8},
        "reencrypt": {"base": n, "var": n},
    }


# --------------------------------------------------------------------------------------------
# The proof object and its encoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShuffleProof:
    """Terelius--Wikstrom proof of a shuffle of ``n`` ciphertexts, in commitment form.

    ``U`` permutation commitments and ``B`` chain commitments (``n`` points each), the
    prover's commitments ``A_p`` (``A'``), ``B_p`` (``B'``, ``n``), ``C_p``, ``D_p``,
    ``F_p = (F'1, F'2)`` and the responses ``k_A, k_B (n), k_C, k_D, k_E (n), k_F``.
    """

    U: tuple[Point, ...]
    B: tuple[Point, ...]
    A_p: Point
    B_p: tuple[Point, ...]
    C_p: Point
    D_p: Point
    F_p: tuple[Point, Point]
    k_A: Scalar
    k_B: tuple[Scalar, ...]
    k_C: Scalar
    k_D: Scalar
    k_E: tuple[Scalar, ...]
    k_F: Scalar

    def __post_init__(self) -> None:
        for name in ("U", "B", "B_p", "F_p", "k_B", "k_E"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        points = self.U + self.B + self.B_p + (self.A_p, self.C_p, self.D_p) + self.F_p
        if len(self.F_p) != 2 or not all(isinstance(P, Point) for P in points):
            raise TypeError("ShuffleProof U, B, A', B', C', D' and F' (two) must be Points")
        scalars = (self.k_A, self.k_C, self.k_D, self.k_F) + self.k_B + self.k_E
        if not all(isinstance(s, Scalar) for s in scalars):
            raise TypeError("ShuffleProof responses must be Scalars")
        n = len(self.U)
        _check_size(n, MalformedError)
        if not len(self.B) == len(self.B_p) == len(self.k_B) == len(self.k_E) == n:
            raise MalformedError(
                f"shuffle proof: U, B, B', k_B, k_E must have one entry per ciphertext, got "
                f"{n}, {len(self.B)}, {len(self.B_p)}, {len(self.k_B)}, {len(self.k_E)}"
            )

    @property
    def n(self) -> int:
        """The number of ciphertexts the proof is about."""
        return len(self.U)

    @staticmethod
    def encoded_size(n: int) -> int:
        """``163*n + 293``: ``3n + 5`` points, ``2n + 4`` scalars."""
        return (3 * n + 5) * _POINT + (2 * n + 4) * _SCALAR

    def to_bytes(self) -> bytes:
        """``U ‖ B ‖ A' ‖ B' ‖ C' ‖ D' ‖ F'1 ‖ F'2 ‖ k_A ‖ k_B ‖ k_C ‖ k_D ‖ k_E ‖ k_F``
        (points 33 bytes, scalars 32)."""
        points = [*self.U, *self.B, self.A_p, *self.B_p, self.C_p, self.D_p, *self.F_p]
        scalars = [self.k_A, *self.k_B, self.k_C, self.k_D, *self.k_E, self.k_F]
        return b"".join([P.to_bytes() for P in points] + [s.to_bytes() for s in scalars])

    @classmethod
    def from_bytes(cls, data: bytes, n: int) -> ShuffleProof:
        """Strict inverse of :meth:`to_bytes` for a shuffle of ``n`` ciphertexts.

        :class:`MalformedError` unless ``1 <= n <= MAX_SHUFFLE_SIZE``, ``data`` is exactly
        ``encoded_size(n)`` bytes, every point decodes canonically and is not the identity,
        and every scalar is < n (the group order).
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise MalformedError("shuffle proof: n must be an int")
        _check_size(n, MalformedError)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("shuffle proof encoding must be bytes")
        data = bytes(data)
        size = cls.encoded_size(n)
        if len(data) != size:
            raise MalformedError(
                f"shuffle proof for {n} ciphertexts must be {size} bytes, got {len(data)}"
            )
        names = ([f"U_{i}" for i in range(n)] + [f"B_{i}" for i in range(n)] + ["A'"]
                 + [f"B'_{i}" for i in range(n)] + ["C'", "D'", "F'1", "F'2"])
        points = []
        for i, name in enumerate(names):
            P = Point.from_bytes(data[_POINT * i : _POINT * (i + 1)])
            if P.is_identity():
                raise MalformedError(f"shuffle proof: {name} is the identity")
            points.append(P)
        pos = _POINT * len(names)
        scalars = [Scalar.from_bytes(data[pos + _SCALAR * i : pos + _SCALAR * (i + 1)])
                   for i in range(2 * n + 4)]
        U, B = points[:n], points[n : 2 * n]
        A_p, B_p = points[2 * n], points[2 * n + 1 : 3 * n + 1]
        C_p, D_p, F1, F2 = points[3 * n + 1 :]
        k_A, k_B = scalars[0], scalars[1 : n + 1]
        k_C, k_D, k_E, k_F = scalars[n + 1], scalars[n + 2], scalars[n + 3 : 2 * n + 3], \
            scalars[-1]
        return cls(tuple(U), tuple(B), A_p, tuple(B_p), C_p, D_p, (F1, F2), k_A, tuple(k_B),
                   k_C, k_D, tuple(k_E), k_F)


def _check_size(n: int, error: Callable[[str], Exception]) -> None:
    if not 1 <= n <= MAX_SHUFFLE_SIZE:
        raise error(f"shuffle of {n} ciphertexts: need 1 <= N <= {MAX_SHUFFLE_SIZE}")


# --------------------------------------------------------------------------------------------
# Transcript
# --------------------------------------------------------------------------------------------


def _flatten(cts: Sequence[Ciphertext]) -> list[Point]:
    out: list[Point] = []
    for c in cts:
        out.append(c.C1)
        out.append(c.C2)
    return out


def _statement(
    X: Point, inputs: Sequence[Ciphertext], outputs: Sequence[Ciphertext], J: Point,
    context: bytes,
) -> Transcript:
    """Domain, N, context, key, bases, every input and every output ciphertext."""
    t = Transcript(SHUFFLE_DOMAIN)
    t.append_int(b"N", len(inputs))
    t.append_message(b"context", bytes(context))
    t.append_point(b"X", X)
    t.append_point(b"G", G)
    t.append_point(b"J", J)
    t.append_message(b"H", H_LABEL)  # H_i = generators(H_LABEL, N): a function of label, N
    t.append_points(b"inputs", _flatten(inputs))
    t.append_points(b"outputs", _flatten(outputs))
    return t


def _batching_vector(t: Transcript, U: Sequence[Point]) -> list[Scalar]:
    """Absorb the permutation commitment, then squeeze ``e_0..e_{N-1}``."""
    t.append_points(b"U", U)
    return t.challenge_scalars(b"e", len(U))


def _challenge(
    t: Transcript,
    B: Sequence[Point],
    A_p: Point,
    B_p: Sequence[Point],
    C_p: Point,
    D_p: Point,
    F_p: tuple[Point, Point],
) -> Scalar:
    """Absorb the chain and every commitment, then squeeze ``v``."""
    t.append_points(b"B", B)
    t.append_point(b"A'", A_p)
    t.append_points(b"B'", B_p)
    t.append_point(b"C'", C_p)
    t.append_point(b"D'", D_p)
    t.append_point(b"F'1", F_p[0])
    t.append_point(b"F'2", F_p[1])
    return t.challenge_scalar(b"v")


def _lin(k0: Scalar, ks: Sequence[Scalar], Ps: Sequence[Point]) -> Point:
    """``k0*G + sum k_i*P_i``: one ``base_mul`` and one ``msm``."""
    return base_mul(k0) + msm(ks, Ps)


def _check_context(context: bytes) -> None:
    if not isinstance(context, bytes | bytearray):
        raise TypeError("context must be bytes")


def _check_ciphertexts(cts: Sequence[Ciphertext], name: str) -> None:
    for c in cts:
        if not isinstance(c, Ciphertext):
            raise TypeError(f"{name} must be Ciphertexts")


# --------------------------------------------------------------------------------------------
# Prover
# --------------------------------------------------------------------------------------------


def _random_permutation(n: int) -> list[int]:
    """A uniform permutation of ``range(n)`` (Fisher--Yates with ``secrets``)."""
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffle(
    X: Point, ciphertexts: Sequence[Ciphertext], *, context: bytes
) -> tuple[list[Ciphertext], ShuffleProof]:
    """Shuffle and re-randomise ``ciphertexts`` under ``X``, with a proof.

    Draws a uniform permutation ``pi`` and re-randomisers ``s_i`` with ``secrets``; output
    ``i`` is ``ciphertexts[pi(i)] + Enc_X(0; s_i)``.  The witness is discarded.
    Cost: the re-encryption (N base + N var) plus :func:`prove_shuffle`.
    """
    _check_ciphertexts(ciphertexts, "ciphertexts")
    _check_size(len(ciphertexts), MalformedError)
    if not isinstance(X, Point) or X.is_identity():
        raise MalformedError("shuffle: the public key X must be a non-identity Point")
    n = len(ciphertexts)
    permutation = _random_permutation(n)
    rerandomizers = [Scalar.random() for _ in range(n)]
    outputs = [
        rerandomize(X, ciphertexts[permutation[i]], rerandomizers[i]) for i in range(n)
    ]
    proof = prove_shuffle(X, ciphertexts, outputs, permutation, rerandomizers, context)
    return outputs, proof


def prove_shuffle(
    X: Point,
    inputs: Sequence[Ciphertext],
    outputs: Sequence[Ciphertext],
    permutation: Sequence[int],
    rerandomizers: Sequence[Scalar],
    context: bytes,
) -> ShuffleProof:
    """Prove ``outputs[i] = inputs[permutation[i]] + Enc_X(0; rerandomizers[i])`` for all i.

    ``permutation`` is a permutation of ``range(N)``; the statement must have
    ``1 <= N <= MAX_SHUFFLE_SIZE`` and ``X`` must not be the identity (else
    :class:`MalformedError`).  Cost: ``3N + 4`` base + ``5N + 1`` variable-base
    multiplications (:func:`shuffle_costs`).
    """
    return _prove_shuffle(
        X, inputs, outputs, permutation, rerandomizers, context, Scalar.random
    )


def _check_witness(
    X: Point,
    inputs: Sequence[Ciphertext],
    outputs: Sequence[Ciphertext],
    permutation: Sequence[int],
    rerandomizers: Sequence[Scalar],
) -> None:
    _check_ciphertexts(inputs, "inputs")
    _check_ciphertexts(outputs, "outputs")
    n = len(inputs)
    _check_size(n, MalformedError)
    if not isinstance(X, Point) or X.is_identity():
        raise MalformedError("shuffle: the public key X must be a non-identity Point")
    if len(outputs) != n or len(permutation) != n or len(rerandomizers) != n:
        raise MalformedError(
            f"shuffle: {n} inputs, {len(outputs)} outputs, {len(permutation)} permutation "
            f"entries and {len(rerandomizers)} re-randomisers (need one each)"
        )
    if any(isinstance(p, bool) or not isinstance(p, int) for p in permutation):
        raise MalformedError("shuffle: the permutation must be a list of ints")
    if sorted(permutation) != list(range(n)):
        raise MalformedError(f"shuffle: not a permutation of range({n})")
    if not all(isinstance(s, Scalar) for s in rerandomizers):
        raise TypeError("shuffle: re-randomisers must be Scalars")


def _prove_shuffle(
    X: Point,
    inputs: Sequence[Ciphertext],
    outputs: Sequence[Ciphertext],
    permutation: Sequence[int],
    rerandomizers: Sequence[Scalar],
    context: bytes,
    draw: Callable[[], Scalar],
) -> ShuffleProof:
    """:func:`prove_shuffle` with the prover's randomness from ``draw`` (``Scalar.random``;
    the known-answer script passes a deterministic one).  Draw order: ``r`` (N), ``b`` (N),
    ``alpha``, ``beta`` (N), ``gamma``, ``delta``, ``epsilon`` (N), ``phi``."""
    _check_context(context)
    _check_witness(X, inputs, outputs, permutation, rerandomizers)
    n = len(inputs)
    J, H = shuffle_generators(n)
    t = _statement(X, inputs, outputs, J, context)

    # Permutation commitment: U_j = r_j*G + H_{pi^-1(j)}.
    inverse = [0] * n
    for i, p in enumerate(permutation):
        inverse[p] = i
    r = [draw() for _ in range(n)]
    U = [base_mul(r[j]) + H[inverse[j]] for j in range(n)]

    e = _batching_vector(t, U)
    e_p = [e[permutation[i]] for i in range(n)]  # e'_i = e_{pi(i)}

    # Chain: B_i = b_i*G + e'_i*B_{i-1}, B_{-1} = J, so B_{N-1} = d*G + (prod e_i)*J.
    b = [draw() for _ in range(n)]
    B: list[Point] = []
    prev = J
    for i in range(n):
        prev = _lin(b[i], [e_p[i]], [prev])
        B.append(prev)

    alpha = draw()
    beta = [draw() for _ in range(n)]
    gamma = draw()
    delta = draw()
    eps = [draw() for _ in range(n)]
    phi = draw()
    A_p = _lin(alpha, eps, H)
    B_prev = [J, *B[:-1]]
    B_p = [_lin(beta[i], [eps[i]], [B_prev[i]]) for i in range(n)]
    C_p = base_mul(gamma)
    D_p = base_mul(delta)
    F_p = (
        _lin(-phi, eps, [w.C1 for w in outputs]),
        msm([*eps, -phi], [*(w.C2 for w in outputs), X]),
    )
    v = _challenge(t, B, A_p, B_p, C_p, D_p, F_p)

    zero = Scalar(0)
    a = zero  # <r, e>: opening of A = sum e_j*U_j
    c = zero  # sum r_j: opening of C = sum U_j - sum H_i
    for j in range(n):
        a = a + r[j] * e[j]
        c = c + r[j]
    d = zero  # opening of D = B_{N-1} - (prod e_i)*J: sum_i b_i * prod_{l>i} e'_l
    tail = Scalar(1)
    for i in range(n - 1, -1, -1):
        d = d + b[i] * tail
        tail = tail * e_p[i]
    f = zero  # <s, e'>: F' relation randomness
    for i in range(n):
        f = f + rerandomizers[i] * e_p[i]
    return ShuffleProof(
        U=tuple(U),
        B=tuple(B),
        A_p=A_p,
        B_p=tuple(B_p),
        C_p=C_p,
        D_p=D_p,
        F_p=F_p,
        k_A=alpha + v * a,
        k_B=tuple(beta[i] + v * b[i] for i in range(n)),
        k_C=gamma + v * c,
        k_D=delta + v * d,
        k_E=tuple(eps[i] + v * e_p[i] for i in range(n)),
        k_F=phi + v * f,
    )


# --------------------------------------------------------------------------------------------
# Verifier
# --------------------------------------------------------------------------------------------


def _fail(step: int, reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=f"{_NAME} step {step}", party=party)


def shuffle_equations(
    X: Point,
    inputs: Sequence[Ciphertext],
    outputs: Sequence[Ciphertext],
    proof: ShuffleProof,
    context: bytes,
    *,
    party: str | None = None,
) -> list[Equation]:
    """Steps 1-2 of :func:`verify_shuffle` (raising), then the challenges re-derived and the
    proof's ``N + 5`` verification equations (each ``sum k*P = O``), for
    :func:`statledger.proofs.batch.holds`::

        A'   + v*sum e_j*U_j - k_A*G - sum k_E,i*H_i          = O
        B'_i + v*B_i - k_B,i*G - k_E,i*B_{i-1}                 = O   (i = 0..N-1, B_{-1} = J)
        C'   + v*(sum U_j - sum H_i) - k_C*G                   = O
        D'   + v*(B_{N-1} - (prod e_j)*J) - k_D*G              = O
        F'1  + v*sum e_j*C1_j + k_F*G - sum k_E,i*C1'_i        = O
        F'2  + v*sum e_j*C2_j + k_F*X - sum k_E,i*C2'_i        = O
    """
    if not isinstance(proof, ShuffleProof):
        raise TypeError(f"expected a ShuffleProof, got {type(proof).__name__}")
    _check_context(context)
    _check_ciphertexts(inputs, "inputs")
    _check_ciphertexts(outputs, "outputs")
    if not isinstance(X, Point):
        raise TypeError("public key X must be a Point")
    n = len(inputs)
    if len(outputs) != n:
        raise _fail(1, f"{n} inputs but {len(outputs)} outputs", party)
    if not 1 <= n <= MAX_SHUFFLE_SIZE:
        raise _fail(1, f"need 1 <= N <= {MAX_SHUFFLE_SIZE}, got {n}", party)
    if proof.n != n:
        raise _fail(1, f"proof is for {proof.n} ciphertexts, the statement has {n}", party)

    if X.is_identity():
        raise _fail(2, "public key X is the identity", party)
    for i, w in enumerate(outputs):
        if w.C1.is_identity():
            raise _fail(2, f"output {i} has C1 = O (its plaintext is exposed)", party)
    for name, Ps in (("U", proof.U), ("B", proof.B), ("B'", proof.B_p),
                     ("A'", (proof.A_p,)), ("C'", (proof.C_p,)), ("D'", (proof.D_p,)),
                     ("F'", proof.F_p)):
        for i, P in enumerate(Ps):
            if P.is_identity():
                raise _fail(2, f"commitment {name}_{i} is the identity", party)

    J, H = shuffle_generators(n)
    t = _statement(X, inputs, outputs, J, context)
    U, B, k_E = proof.U, proof.B, proof.k_E
    e = _batching_vector(t, U)
    v = _challenge(t, B, proof.A_p, proof.B_p, proof.C_p, proof.D_p, proof.F_p)
    ve = [v * e_j for e_j in e]
    minus_v, one = -v, Scalar(1)
    prod_e = Scalar(1)
    for e_j in e:
        prod_e = prod_e * e_j

    # Written as ``commitment + v*(statement) - responses*(bases) = O``: the prover's
    # commitments keep the coefficient 1, so once weighted their scalars have 128 bits and
    # cost half as much in the bucket msm.
    eq_a = [(one, proof.A_p), (-proof.k_A, G)]
    eq_a += [(-k, P) for k, P in zip(k_E, H, strict=True)]
    eq_a += zip(ve, U, strict=True)
    B_prev = [J, *B[:-1]]
    eq_b = [[(one, proof.B_p[i]), (-proof.k_B[i], G), (-k_E[i], B_prev[i]), (v, B[i])]
            for i in range(n)]
    eq_c = [(one, proof.C_p), (-proof.k_C, G)]
    eq_c += [(v, P) for P in U]
    eq_c += [(minus_v, P) for P in H]
    eq_d = [(one, proof.D_p), (-proof.k_D, G), (v, B[-1]), (minus_v * prod_e, J)]
    eq_f1 = [(one, proof.F_p[0]), (proof.k_F, G)]
    eq_f1 += [(-k, w.C1) for k, w in zip(k_E, outputs, strict=True)]
    eq_f1 += [(ve_j, w.C1) for ve_j, w in zip(ve, inputs, strict=True)]
    eq_f2 = [(one, proof.F_p[1]), (proof.k_F, X)]
    eq_f2 += [(-k, w.C2) for k, w in zip(k_E, outputs, strict=True)]
    eq_f2 += [(ve_j, w.C2) for ve_j, w in zip(ve, inputs, strict=True)]
    return [eq_a, *eq_b, eq_c, eq_d, eq_f1, eq_f2]


def verify_shuffle(
    X: Point,
    inputs: Sequence[Ciphertext],
    outputs: Sequence[Ciphertext],
    proof: ShuffleProof,
    context: bytes,
    *,
    party: str | None = None,
) -> None:
    """Check that ``outputs`` is a re-encrypted permutation of ``inputs`` under ``X``.

    Returns ``None`` or raises :class:`VerificationError` (``step="shuffle step N"``,
    ``party`` as given):

    1. sizes: ``len(inputs) == len(outputs) == proof.n`` and ``1 <= N <= MAX_SHUFFLE_SIZE``;
    2. no identity where it is not allowed: ``X``, an output's ``C1'`` (an honest shuffle
       never produces one; it would expose that output's plaintext), a ``U_j``, ``B_i`` or
       any of the prover's commitments (inputs may contain the identity: trivial
       encryptions ``(O, m*G)`` of public values);
    3. re-derive ``e`` and ``v`` from the transcript and check the ``N + 5`` equations of
       :func:`shuffle_equations` -- a batch of one proof for
       :func:`statledger.proofs.batch.holds` (fresh random weights, one msm; a false
       equation passes with probability <= 2^-127).

    Cost: one multi-scalar multiplication of ``8N + 8`` terms.
    """
    if not batch.holds(shuffle_equations(X, inputs, outputs, proof, context, party=party)):
        raise _fail(3, "an equation does not hold: the outputs are not a proven shuffle of "
                       "the inputs", party)
