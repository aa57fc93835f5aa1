"""Fixed-point encoding of reals and clipping to public bounds.

Encoding
--------
A real ``x`` is encoded at the public ``scale`` (a power of two or of ten, ``1 <= scale <=
2**32``; default ``2**16``) as the integer

    ``to_fixed(x, scale) = rint(fl(x * scale))``

where ``rint`` rounds half to even (IEEE 754 roundTiesToEven, ``numpy.rint``).  For a
power-of-two scale the double product ``x * scale`` is exact, so the result is exactly the
round-half-even of the real value ``x * scale``; for a power-of-ten scale the product is first
rounded to the nearest double.  Negative values are ordinary negative Python ints: the crypto
layer shifts each entry by its public lower bound before encryption, so no sign convention is
needed here.  Both steps are monotone, so a value clipped to ``[lo, hi]`` always encodes into
``[to_fixed(lo), to_fixed(hi)]`` -- this is what makes the declared ranges sound.

Decoding divides by ``scale`` (products of two fixed-point values by ``scale**2``).  The
quantisation error of one value is at most ``0.5 / scale``.

Clipping
--------
:func:`clip` clamps values to the public ``[lo, hi]`` and returns how many were changed; that
count goes into the provider's local (unencrypted, never published) report.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError

__all__ = [
    "DEFAULT_SCALE",
    "MAX_FIXED",
    "check_scale",
    "to_fixed",
    "from_fixed",
    "clip",
    "fixed_bounds",
]

DEFAULT_SCALE = 2**16
#: Largest magnitude of a single encoded value (exact in a double and in int64).
MAX_FIXED = 2**53

_ALLOWED_SCALES = frozenset([2**k for k in range(33)] + [10**k for k in range(10)])


def check_scale(scale: int) -> None:
    """Raise :class:`MalformedError` unless ``scale`` is an allowed power of two or ten."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in _ALLOWED_SCALES:
        raise MalformedError(
            f"scale: {scale!r} must be a power of two (<= 2^32) or of ten (<= 10^9)"
        )


@overload
def to_fixed(x: float, scale: int) -> int: ...


@overload
def to_fixed(x: npt.NDArray[np.float64], scale: int) -> npt.NDArray[np.int64]: ...


def to_fixed(x: float | npt.NDArray[np.float64], scale: int) -> int | npt.NDArray[np.int64]:
    """Encode a float (-> int) or a float array (-> int64 array); see the module docstring.

    Raises :class:`MalformedError` for NaN, infinities or magnitudes above ``2**53``.
    """
    check_scale(scale)
    if isinstance(x, np.ndarray):
        arr = np.asarray(x, dtype=np.float64)
        prod = np.rint(arr * float(scale))
        if not np.all(np.isfinite(prod)):
            raise MalformedError("to_fixed: NaN or infinite value")
        if prod.size and float(np.max(np.abs(prod))) > MAX_FIXED:
            raise MalformedError("to_fixed: encoded value exceeds 2^53")
        return prod.astype(np.int64)
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise MalformedError(f"to_fixed: expected a number, got {type(x).__name__}")
    p = float(np.rint(float(x) * float(scale)))
    if p != p or p in (float("inf"), float("-inf")):
        raise MalformedError("to_fixed: NaN or infinite value")
    if abs(p) > MAX_FIXED:
        raise MalformedError("to_fixed: encoded value exceeds 2^53")
    return int(p)


def from_fixed(v: int, scale: int, power: int = 1) -> float:
    """Decode an integer at ``scale**power`` back to a float."""
    check_scale(scale)
    return float(v / scale**power)  # int / int is correctly rounded in Python


def clip(
    values: npt.NDArray[np.float64], lo: float, hi: float
) -> tuple[npt.NDArray[np.float64], int]:
    """Clamp ``values`` to ``[lo, hi]``; return ``(clipped, number_of_values_changed)``.

    NaN values are left as NaN and are not counted (callers drop missing rows first).
    """
    if not (lo <= hi):
        raise MalformedError(f"clip: lower bound {lo} > upper bound {hi}")
    arr = np.asarray(values, dtype=np.float64)
    n_clipped = int(np.count_nonzero((arr < lo) | (arr > hi)))
    return np.clip(arr, lo, hi), n_clipped


def fixed_bounds(lo: float, hi: float, scale: int) -> tuple[int, int]:
    """Encoded bounds ``(to_fixed(lo), to_fixed(hi))`` of a clipped column."""
    return to_fixed(float(lo), scale), to_fixed(float(hi), scale)
