"""Deterministic arithmetic for the decoders: what step 14 of docs/verification.md re-runs.

Every number a decoder publishes must be the same on every machine, whatever BLAS, thread
count, numpy or libm it has, because the verifier recomputes it and compares it *exactly* (bit
for bit) with the published one.  So no decoder uses numpy.linalg, scipy or libm (``math.exp``,
``math.log``, ...).  Every published number is computed in one of two ways:

* **exact rational arithmetic** (Python ints and :class:`fractions.Fraction`): sums, means,
  variances, covariances, the OLS / IRLS linear solves (fraction-free Gauss-Jordan elimination
  on integer matrices, :func:`int_spd_inverse`), survival products, logrank sums and quadratic
  form (:func:`int_psd_quadratic_form`).  The exact value is converted to a float once, at the end:
  :func:`to_float` (``int / int`` true division, correctly rounded in CPython) and
  :func:`sqrt_float` / :func:`signed_sqrt_ratio` (integer square root with a sticky bit:
  the correctly rounded square root of an exact rational);
* **decimal arithmetic under one fixed context** (:data:`PREC` = 60 significant digits,
  ``ROUND_HALF_EVEN``, exponents within +-10^8, set locally by :func:`decimal_context`) for
  what is transcendental: ``exp``, ``ln`` and ``sqrt`` of :class:`decimal.Decimal` are
  correctly rounded, as are ``+ - * /``, so a fixed sequence of decimal operations gives the
  same digits everywhere (C ``_decimal`` or pure-Python ``_pydecimal``).  On top of them, with
  fixed algorithms: pi (the decimal module's documented series), log-gamma (argument shifted
  to >= 64, Stirling series with exact Bernoulli numbers), the regularized incomplete gamma
  function (series / Lentz continued fraction, Numerical Recipes' split at ``x = a + 1``) and
  incomplete beta function (Lentz continued fraction, split at ``x = (a+1)/(a+b+2)``), hence
  the normal, Student t, F and chi-squared tail probabilities; the normal quantile (Newton on
  ``ln sf``) and the Student t quantile (Newton safeguarded by bisection in a bracket found by
  doubling).  Every series, continued fraction and Newton iteration stops on a test of those
  decimal values only (relative change below ``10^-(PREC - 10)``), with an iteration cap
  (:data:`MAX_ITER`, :data:`MAX_NEWTON`); reaching a cap raises :class:`MalformedError` (the
  same on every machine) instead of publishing an unconverged number.  A decimal is turned
  into a float by ``float(str(d))``, correctly rounded.

No function here returns NaN or an infinity: undefined cases are the callers' ``None``, with a
note saying why.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from fractions import Fraction
from math import isqrt
from typing import ParamSpec, TypeVar

from statledger.proofs.errors import MalformedError

__all__ = [
    "PREC",
    "MAX_ITER",
    "MAX_NEWTON",
    "VIF_LIMIT",
    "decimal_context",
    "dec",
    "dec_to_float",
    "to_float",
    "sqrt_float",
    "signed_sqrt_ratio",
    "int_spd_inverse",
    "int_psd_quadratic_form",
    "truncated",
    "lgamma",
    "gamma_q",
    "beta_reg",
    "norm_sf2",
    "t_sf2",
    "f_sf",
    "chi2_sf",
    "norm_isf",
    "t_isf2",
    "ci_bounds",
]

#: Significant decimal digits of every decimal computation.
PREC = 60
#: Cap on the terms of a series or continued fraction (each converges far sooner on any query
#: the protocol accepts; reaching it raises).
MAX_ITER = 1_000_000
#: Cap on Newton / bisection steps of a quantile.
MAX_NEWTON = 400
#: A positive definite matrix whose largest variance inflation factor ``A_ii (A^-1)_ii``
#: exceeds this is reported singular (an exact rational comparison).
VIF_LIMIT = 10**14

_EXP_LIMIT = 10**8
# decimal literals are exact whatever the context (a power would be rounded by the global one)
_EPS = Decimal(f"1e-{PREC - 10}")
_TINY = Decimal(f"1e-{3 * PREC}")

P = ParamSpec("P")
R = TypeVar("R")


def decimal_context() -> Context:
    """The one decimal context of every decoder (a fresh copy)."""
    return Context(prec=PREC, rounding=ROUND_HALF_EVEN, Emin=-_EXP_LIMIT, Emax=_EXP_LIMIT,
                   capitals=1, clamp=0, flags=[], traps=[InvalidOperation, DivisionByZero,
                                                         Overflow])


def _in_context(f: Callable[P, R]) -> Callable[P, R]:
    """Run ``f`` under :func:`decimal_context` (whatever the caller's context is)."""

    @functools.wraps(f)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(decimal_context()):
            return f(*args, **kwargs)

    return run


# ---------------------------------------------------------------------------- conversions
def to_float(q: Fraction | int) -> float:
    """The float nearest to ``q`` (ties to even): CPython's int / int is correctly rounded."""
    if isinstance(q, int):
        return q / 1
    return q.numerator / q.denominator


def sqrt_float(q: Fraction | int) -> float:
    """The float nearest to ``sqrt(q)`` for an exact rational ``q >= 0`` (correctly rounded).

    ``S = isqrt(floor(q 4^e))`` with ``S >= 2^57``; ``M = 2S + sticky`` (sticky = 1 unless the
    root is exact) lies on the same side as the true ``2 sqrt(q) 2^e`` of every rounding
    boundary at 55 bits or fewer, so ``M / 2^(e+1)`` rounded once (``int / int``, subnormals
    included) is the correctly rounded root.
    """
    q = Fraction(q)
    if q < 0:
        raise MalformedError("sqrt of a negative number")
    if q == 0:
        return 0.0
    p, d = q.numerator, q.denominator
    e = (116 - (p.bit_length() - d.bit_length())) // 2 + 1
    if e >= 0:
        num, den = p << (2 * e), d
    else:
        num, den = p, d << (-2 * e)
    s = isqrt(num // den)
    sticky = 0 if s * s * den == num else 1
    m, sh = 2 * s + sticky, e + 1
    return m / (1 << sh) if sh >= 0 else float(m << -sh)


def signed_sqrt_ratio(num: Fraction | int, var: Fraction | int) -> float:
    """``num / sqrt(var)`` correctly rounded (``var > 0``): ``sign(num) sqrt(num^2 / var)``."""
    r = sqrt_float(Fraction(num) ** 2 / Fraction(var))
    return -r if num < 0 else r


def dec(q: Fraction | int) -> Decimal:
    """``q`` rounded to the current decimal context (call it under :func:`decimal_context`)."""
    q = Fraction(q)
    return Decimal(q.numerator) / Decimal(q.denominator)


def dec_to_float(d: Decimal) -> float:
    """The float nearest to a decimal (``float(str(d))`` is correctly rounded); 0 is +0.0."""
    if d.is_zero():
        return 0.0
    return float(str(d))


# ---------------------------------------------------------------------------- linear algebra
def _load_mpz() -> Callable[[int], int]:
    """gmpy2's ``mpz`` when installed (GMP: the same exact integers, ~20x faster on the
    thousand-bit minors of a large elimination), else ``int``."""
    try:
        mod = importlib.import_module("gmpy2")
    except ImportError:  # pragma: no cover - gmpy2 is a dependency
        return int
    mpz: Callable[[int], int] = mod.mpz
    return mpz


_mpz = _load_mpz()


def int_spd_inverse(a: Sequence[Sequence[int]]) -> tuple[list[list[int]], int] | None:
    """``(adj, det)`` with ``a^-1 = adj / det`` for a symmetric positive definite integer
    matrix, by fraction-free (Bareiss) Gauss-Jordan elimination without pivoting; every
    intermediate value is an integer minor, so the division is exact.

    ``None`` when ``a`` is not positive definite (a leading principal minor ``<= 0``, which the
    pivots are: Sylvester's criterion) or nearly singular (a variance inflation factor
    ``a_ii (a^-1)_ii > VIF_LIMIT``).
    """
    n = len(a)
    m = [[_mpz(int(v)) for v in row] + [_mpz(1 if i == j else 0) for j in range(n)]
         for i, row in enumerate(a)]
    prev = _mpz(1)
    for k in range(n):
        rk = m[k]
        piv = rk[k]
        if piv <= 0:
            return None
        for i in range(n):
            if i != k:
                f = m[i][k]  # column k becomes (piv f - f piv) / prev = 0
                m[i] = [(piv * x - f * y) // prev for x, y in zip(m[i], rk, strict=True)]
        prev = piv
    det = int(prev)
    adj = [[int(v) for v in row[n:]] for row in m]
    for i in range(n):
        if int(a[i][i]) * adj[i][i] > VIF_LIMIT * det:
            return None
    return adj, det


def int_psd_quadratic_form(v: Sequence[Sequence[int]], z: Sequence[int]) -> tuple[int, int] | None:
    """``z' v^+ z`` for a symmetric positive semi-definite integer matrix ``v`` and ``z`` in
    its range, exactly, as ``(numerator, denominator > 0)`` (not reduced: no gcd of huge
    integers), by fraction-free (Bareiss) symmetric elimination of ``[v | z]``, pivoting on
    the first remaining non-zero diagonal entry.

    With ``p_k`` the k-th pivot (a leading principal minor of the permuted ``v``) and ``w_k``
    the ``z`` entry of the pivot row, ``z' v^- z = sum_k w_k^2 / (p_{k-1} p_k)`` -- the same for
    every generalized inverse when ``z`` is in the range.  ``None`` when ``v`` is not PSD or
    ``z`` is not in its range."""
    g = len(v)
    m = [[_mpz(int(x)) for x in row] + [_mpz(int(zi))] for row, zi in zip(v, z, strict=True)]
    left = list(range(g))
    prev = _mpz(1)
    num, den = _mpz(0), _mpz(1)
    while True:
        k = next((i for i in left if m[i][i] != 0), None)
        if k is None:
            break
        rk = m[k]
        piv = rk[k]
        if piv < 0:
            return None
        left.remove(k)
        term_den = prev * piv
        num, den = num * term_den + rk[g] * rk[g] * den, den * term_den
        for i in left:
            f = m[i][k]
            m[i] = [(piv * x - f * y) // prev for x, y in zip(m[i], rk, strict=True)]
        prev = piv
    if any(m[r][c] != 0 for r in left for c in (*left, g)):
        return None
    return int(num), int(den)


def truncated(num: int, den: int, bits: int = 320) -> Fraction:
    """``num / den`` (``den > 0``) itself when both are small, else truncated towards minus
    infinity to ``bits`` significant bits: a deterministic stand-in, accurate to
    ``2^-bits`` relative, for a huge exact ratio whose reduction (a gcd of huge integers)
    would cost more than the whole decode."""
    if max(abs(num).bit_length(), den.bit_length()) <= 4 * bits:
        return Fraction(num, den)
    k = max(0, bits - (abs(num).bit_length() - den.bit_length()))
    return Fraction((num << k) // den, 1 << k)


# ---------------------------------------------------------------------------- constants
@functools.cache
def _pi() -> Decimal:
    """pi to PREC digits: the decimal module documentation's series, at PREC + 10 digits."""
    with localcontext(decimal_context()) as ctx:
        ctx.prec = PREC + 10
        three = Decimal(3)
        lasts, t, s, n, na, d, da = Decimal(0), three, three, 1, 0, 0, 24
        while s != lasts:
            lasts = s
            n, na = n + na, na + 8
            d, da = d + da, da + 32
            t = (t * n) / d
            s += t
        ctx.prec = PREC
        return +s


@functools.cache
def _ln_sqrt_2pi() -> Decimal:
    with localcontext(decimal_context()):
        return (2 * _pi()).ln() / 2


@functools.cache
def _bernoulli(m: int) -> Fraction:
    """The Bernoulli number B_m (B_1 = -1/2), exactly, by the standard recurrence."""
    if m == 0:
        return Fraction(1)
    total = Fraction(0)
    binom = 1  # C(m + 1, k)
    for k in range(m):
        total += binom * _bernoulli(k)
        binom = binom * (m + 1 - k) // (k + 1)
    return -total / (m + 1)


_STIRLING_MIN = 64
_STIRLING_TERMS = 200


@functools.lru_cache(maxsize=4096)
@_in_context
def lgamma(z: Fraction | int) -> Decimal:
    """``ln Gamma(z)`` for rational ``z > 0``: shift to ``w = z + N >= 64`` (the product
    ``z (z+1) ... (z+N-1)`` exact), then Stirling's series in ``w`` with exact Bernoulli
    numbers until a term is below ``10^-(PREC+5)`` (error < e^(-2 pi w) << 10^-PREC)."""
    z = Fraction(z)
    if z <= 0:
        raise MalformedError("lgamma of a non-positive number")
    shift = 0
    prod = Fraction(1)
    while z + shift < _STIRLING_MIN:
        prod *= z + shift
        shift += 1
    w = dec(z + shift)
    total = (w - Decimal("0.5")) * w.ln() - w + _ln_sqrt_2pi()
    w2 = w * w
    power = w
    limit = Decimal(f"1e-{PREC + 5}")
    for k in range(1, _STIRLING_TERMS + 1):
        term = dec(_bernoulli(2 * k) / (2 * k * (2 * k - 1))) / power
        total += term
        if abs(term) < limit:
            break
        power *= w2
    else:  # pragma: no cover - w >= 64 converges in < 40 terms
        raise MalformedError("lgamma: Stirling series did not converge")
    if shift:
        total -= dec(prod).ln()
    return total


# ---------------------------------------------------------------------------- incomplete gamma
def _gamma_q_dec(a: Fraction, x: Decimal) -> Decimal:
    """Regularized upper incomplete gamma ``Q(a, x)``, ``a > 0``, ``x >= 0`` (in context)."""
    if x <= 0:
        return Decimal(1)
    da = dec(a)
    front = (da * x.ln() - x - lgamma(a)).exp()
    if x < da + 1:
        # P(a, x) = front * sum_n x^n / (a (a+1) ... (a+n))
        term = 1 / da
        total = term
        ap = da
        for _ in range(MAX_ITER):
            ap += 1
            term = term * x / ap
            total += term
            if abs(term) <= abs(total) * _EPS:
                break
        else:  # pragma: no cover - guarded by MAX_ITER
            raise MalformedError("incomplete gamma series did not converge")
        return 1 - front * total
    # Q(a, x) = front / (x+1-a - 1(1-a) / (x+3-a - 2(2-a) / ...)), modified Lentz
    b = x + 1 - da
    c = 1 / _TINY
    d = 1 / b
    h = d
    for i in range(1, MAX_ITER + 1):
        an = -i * (i - da)
        b += 2
        c, d = _lentz_step(an, b, c, d)
        delta = d * c
        h *= delta
        if abs(delta - 1) <= _EPS:
            break
    else:  # pragma: no cover - guarded by MAX_ITER
        raise MalformedError("incomplete gamma continued fraction did not converge")
    return front * h


@_in_context
def gamma_q(a: Fraction | int, x: Fraction | int) -> Decimal:
    """Regularized upper incomplete gamma function ``Q(a, x)`` of exact rationals."""
    return _gamma_q_dec(Fraction(a), dec(x))


# ---------------------------------------------------------------------------- incomplete beta
def _lentz_step(aa: Decimal, bb: Decimal | int, c: Decimal,
                d: Decimal) -> tuple[Decimal, Decimal]:
    """One modified-Lentz update of ``(C, 1/D)`` with the partial numerator ``aa`` and
    denominator ``bb`` (Numerical Recipes section 5.2; tiny values replace zeros)."""
    d = bb + aa * d
    if abs(d) < _TINY:
        d = _TINY
    c = bb + aa / c
    if abs(c) < _TINY:
        c = _TINY
    return c, 1 / d


def _betacf(a: Decimal, b: Decimal, x: Decimal) -> Decimal:
    """Continued fraction of the incomplete beta function (modified Lentz, in context)."""
    qab, qap, qam = a + b, a + 1, a - 1
    c = Decimal(1)
    d = 1 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1 / d
    h = d
    for m in range(1, MAX_ITER + 1):
        m2 = 2 * m
        c, d = _lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), 1, c, d)
        h *= d * c
        c, d = _lentz_step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), 1, c, d)
        delta = d * c
        h *= delta
        if abs(delta - 1) <= _EPS:
            return h
    raise MalformedError("incomplete beta continued fraction did not converge")


def _beta_reg_dec(a: Fraction, b: Fraction, x: Decimal, y: Decimal) -> Decimal:
    """``I_x(a, b)`` with ``y = 1 - x`` given separately (no cancellation), in context."""
    if x <= 0:
        return Decimal(0)
    if y <= 0:
        return Decimal(1)
    da, db = dec(a), dec(b)
    front = (lgamma(a + b) - lgamma(a) - lgamma(b) + da * x.ln() + db * y.ln()).exp()
    if Fraction(x) < (a + 1) / (a + b + 2):
        return front * _betacf(da, db, x) / da
    return 1 - front * _betacf(db, da, y) / db


@_in_context
def beta_reg(a: Fraction | int, b: Fraction | int, x: Fraction | int) -> Decimal:
    """Regularized incomplete beta function ``I_x(a, b)`` of exact rationals."""
    x = Fraction(x)
    return _beta_reg_dec(Fraction(a), Fraction(b), dec(x), dec(1 - x))


# ---------------------------------------------------------------------------- tail probabilities
def norm_sf2(z2: Fraction | int) -> float:
    """Two-sided normal p value ``2 sf(|z|) = erfc(|z| / sqrt 2) = Q(1/2, z^2 / 2)`` from the
    exact ``z^2``."""
    return dec_to_float(gamma_q(Fraction(1, 2), Fraction(z2) / 2))


def t_sf2(t2: Fraction | int, df: int) -> float:
    """Two-sided Student t p value ``2 sf(|t|; df) = I_{df/(df+t^2)}(df/2, 1/2)`` from the
    exact ``t^2``."""
    t2 = Fraction(t2)
    return dec_to_float(beta_reg(Fraction(df, 2), Fraction(1, 2), df / (df + t2)))


def f_sf(f: Fraction | int, d1: int, d2: int) -> float:
    """F distribution upper tail ``sf(f; d1, d2) = I_{d2/(d2+d1 f)}(d2/2, d1/2)``, ``f >= 0``."""
    f = Fraction(f)
    return dec_to_float(beta_reg(Fraction(d2, 2), Fraction(d1, 2), d2 / (d2 + d1 * f)))


def chi2_sf(x: Fraction | int, df: int) -> float:
    """Chi-squared upper tail ``sf(x; df) = Q(df/2, x/2)``, ``x >= 0``."""
    return dec_to_float(gamma_q(Fraction(df, 2), Fraction(x) / 2))


# ---------------------------------------------------------------------------- quantiles
@_in_context
def ci_bounds(coef: Fraction | int, var: Fraction | int, q: Decimal) -> tuple[float, float]:
    """``coef -+ q sqrt(var)`` (``var >= 0``, ``q`` a quantile from this module) in the decimal
    context, each bound rounded once to a float."""
    if var < 0:
        raise MalformedError("ci_bounds: negative variance")
    c = dec(coef)
    half = +q * dec(var).sqrt()
    return dec_to_float(c - half), dec_to_float(c + half)


def _norm_sf_dec(z: Decimal) -> Decimal:
    """Normal upper tail ``sf(z)`` for ``z >= 0`` (in context)."""
    return _gamma_q_dec(Fraction(1, 2), z * z / 2) / 2


@_in_context
def norm_isf(q: Fraction) -> Decimal:
    """The normal quantile ``z > 0`` with ``sf(z) = q`` for rational ``0 < q < 1/2``.

    Newton on ``h(z) = ln sf(z) - ln q`` (concave, decreasing) from ``z = 0``: the first step
    lands above the root, then the iterates decrease monotonically to it.  Stops when a step
    is below ``10^-(PREC-10)`` relative."""
    q = Fraction(q)
    if not 0 < q < Fraction(1, 2):
        raise MalformedError("norm_isf: q must be in (0, 1/2)")
    lnq = dec(q).ln()
    inv_sqrt_2pi = 1 / (2 * _pi()).sqrt()
    z = Decimal(0)
    for _ in range(MAX_NEWTON):
        sf = _norm_sf_dec(z)
        pdf = (-(z * z) / 2).exp() * inv_sqrt_2pi
        step = (sf.ln() - lnq) * sf / pdf
        z += step
        if abs(step) <= _EPS * max(Decimal(1), z):
            return z
    raise MalformedError("norm_isf: Newton did not converge")  # pragma: no cover


def _t_tail2_dec(t: Decimal, df: int) -> Decimal:
    """Two-sided tail ``P(|T| > t)`` of Student t with ``df`` degrees of freedom (in context)."""
    t2 = t * t
    nu = Decimal(df)
    return _beta_reg_dec(Fraction(df, 2), Fraction(1, 2), nu / (nu + t2), t2 / (nu + t2))


@_in_context
def t_isf2(alpha: Fraction, df: int) -> Decimal:
    """The Student t quantile ``t > 0`` with ``P(|T| > t) = alpha`` (so ``t_{1 - alpha/2}``),
    ``0 < alpha < 1``, ``df >= 1``.

    Bracket ``[0, hi]`` with ``hi`` doubled from 1 until the tail is below ``alpha``; Newton
    steps from the normal quantile, replaced by the bracket's midpoint whenever they leave
    it; stops when a step is below ``10^-(PREC-10)`` relative."""
    alpha = Fraction(alpha)
    if not 0 < alpha < 1 or df < 1:
        raise MalformedError("t_isf2: alpha must be in (0, 1) and df >= 1")
    target = dec(alpha)
    nu = Decimal(df)
    # log of the density's constant: lgamma((df+1)/2) - lgamma(df/2) - ln(df pi) / 2
    lnc = lgamma(Fraction(df + 1, 2)) - lgamma(Fraction(df, 2)) - (nu * _pi()).ln() / 2
    half_nu1 = (nu + 1) / 2
    lo, hi = Decimal(0), Decimal(1)
    for _ in range(MAX_NEWTON):
        if _t_tail2_dec(hi, df) < target:
            break
        lo, hi = hi, 2 * hi
    else:  # pragma: no cover
        raise MalformedError("t_isf2: no bracket")
    x = norm_isf(alpha / 2)
    if not lo < x < hi:
        x = (lo + hi) / 2
    for _ in range(MAX_NEWTON):
        g = _t_tail2_dec(x, df) - target
        if g > 0:
            lo = x
        else:
            hi = x
        pdf = (lnc - half_nu1 * (1 + x * x / nu).ln()).exp()
        nxt = x + g / (2 * pdf)
        if not lo < nxt < hi:
            nxt = (lo + hi) / 2
        done = abs(nxt - x) <= _EPS * x
        x = nxt
        if done:
            return x
    raise MalformedError("t_isf2: Newton did not converge")  # pragma: no cover
