"""Verification equations of commitment-form proofs, checked many at a time.

A proof in *commitment form* carries the prover's commitments; its verifier recomputes the
Fiat--Shamir challenge from the transcript (statement, context, commitments) and is left
with equations ``sum_j k_j * P_j = O`` (an :data:`Equation`: the terms ``(k_j, P_j)``).
Instead of one multi-scalar multiplication per equation, :func:`holds` weights equation
``i`` by a fresh random ``rho_i`` (128 bits from ``secrets``, odd) and checks the single sum

    sum_i rho_i * (sum_j k_ij * P_ij) = O

as ONE :func:`~statledger.proofs.group.msm`, a point that appears in several equations (a
base, a ciphertext shared by two proofs) entering once with its coefficients added up.

Soundness (the random linear combination; docs/notes/shuffle.md, "Batch verification"): if
some equation is false, its left side ``E_i`` is a non-identity point of the prime-order
group; with every other weight fixed, at most one of the ``2^127`` possible values of
``rho_i`` makes the sum the identity.  A false equation therefore passes one check with
probability at most ``2^-127``, whatever the prover chose (the weights are drawn after the
proofs are fixed, by the verifier, and never published).  Each call draws new weights.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from statledger.proofs.group import Point, Scalar, msm

__all__ = ["WEIGHT_BITS", "Equation", "holds"]

#: bits of each random weight (the low bit is set: 2^127 odd values, never zero)
WEIGHT_BITS = 128

#: one verification equation: ``sum k * P`` over its terms must be the identity (``k`` a
#: Scalar or an int, reduced mod n)
Equation = Sequence[tuple[Scalar | int, Point]]


def holds(equations: Iterable[Equation]) -> bool:
    """Whether every equation holds, up to probability ``2^-127`` per false one: one
    :func:`~statledger.proofs.group.msm` of the equations weighted by fresh random scalars
    (terms on the same point object merged).  An empty set holds."""
    coef: dict[int, int] = {}
    points: dict[int, Point] = {}
    for equation in equations:
        rho = secrets.randbits(WEIGHT_BITS) | 1  # fresh for every equation and every call
        for k, P in equation:
            key = id(P)  # the point objects stay alive in ``points`` until the sum is taken
            if key in coef:
                coef[key] += rho * int(k)
            else:
                coef[key] = rho * int(k)
                points[key] = P
    if not coef:
        return True
    keys = list(coef)
    return msm([Scalar.reduce(coef[k]) for k in keys],
               [points[k] for k in keys]).is_identity()
