"""Differential privacy: exact discrete samplers, zCDP accounting, distributed noise, budgets.

Everything that decides *which* noise is added is exact integer/rational arithmetic
(:class:`fractions.Fraction`); no floating-point number is ever turned into a sample
(Mironov 2012).  Floats appear only in *reports* of the guarantee (the (epsilon, delta)
conversions and tail masses), never in sampling or in budget bookkeeping.

Samplers (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for Differential Privacy",
Algorithms 1-3):

* :func:`sample_bernoulli_exp` -- Bernoulli(exp(-gamma)) for rational gamma >= 0;
* :func:`sample_discrete_laplace` -- P[Y = y] proportional to exp(-|y| / scale);
* :func:`sample_discrete_gaussian` -- P[Y = y] proportional to exp(-y^2 / (2 sigma2));
* :func:`sample_vector` -- n independent draws of either, optionally truncated to [-B, B]
  by rejection (re-sampling), never by clamping.

Every sampler takes ``randbelow``: a callable ``randbelow(n) -> int`` uniform in [0, n).  The
default is :func:`secrets.randbelow`; tests pass ``random.Random(seed).randrange``.

Accounting (zCDP, Bun and Steinke 2016): the discrete Gaussian with parameter sigma2 on a
query whose L2 sensitivity is Delta is rho-zCDP with rho = Delta^2 / (2 sigma2) (CKS 2020,
Theorem 14); rho adds up under composition; rho-zCDP implies (epsilon, delta)-DP for the
epsilon of :func:`epsilon_from_rho` (CKS 2020, Corollary 13, the tighter one) or
:func:`epsilon_from_rho_simple` (Bun-Steinke 2016, Proposition 1.3: rho + 2 sqrt(rho
log(1/delta))).  Pure epsilon-DP (discrete Laplace with scale Delta_1/epsilon) implies
(epsilon^2 / 2)-zCDP.

Distributed noise (:func:`plan_distributed_noise`): ``n`` compute nodes each add one share,
at most ``t`` are dishonest and may add nothing; each share uses sigma2 / (n - t) so the
honest shares alone sum to total parameter >= sigma2.  See docs/privacy.md for the guarantee
(Kairouz, Liu, Steinke 2021) and the truncation bound.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from statledger.proofs.errors import MalformedError, PolicyError

__all__ = [
    "RandBelow",
    "RationalLike",
    "as_fraction",
    "sample_bernoulli_exp",
    "sample_discrete_laplace",
    "sample_discrete_gaussian",
    "sample_vector",
    "discrete_gaussian_pmf",
    "discrete_laplace_pmf",
    "discrete_gaussian_tail",
    "l2_squared",
    "rho_discrete_gaussian",
    "compose_rho",
    "sigma2_for_rho",
    "epsilon_from_rho",
    "epsilon_from_rho_simple",
    "delta_from_rho",
    "rho_for_epsilon_delta",
    "rho_from_pure_epsilon",
    "laplace_scale_for_epsilon",
    "bound_for_sigma2",
    "distributed_rho",
    "NoisePlan",
    "plan_distributed_noise",
    "BudgetLedger",
    "DEFAULT_TAIL_SIGMAS",
]

RandBelow = Callable[[int], int]
"""``randbelow(n)`` returns an integer uniform in ``[0, n)`` (``secrets.randbelow``)."""

RationalLike = Fraction | int | str | Decimal | float

DEFAULT_TAIL_SIGMAS = 12
"""Hard noise bound per share: ``B = ceil(12 * sigma_share)`` (see :func:`bound_for_sigma2`)."""

_FRACTION_RE = re.compile(r"^(0|[1-9][0-9]*)(/[1-9][0-9]*)?$")


def as_fraction(value: RationalLike, *, name: str = "value") -> Fraction:
    """Convert to an exact :class:`Fraction`.

    ``int``, ``Fraction``, ``Decimal`` and strings (``"1/10"``, ``"0.1"``, ``"3"``) are exact.
    A ``float`` is read through its shortest ``repr`` (``0.1`` -> ``1/10``, what a human
    typing the number meant) and must be finite.  ``bool`` is refused.
    """
    if isinstance(value, bool):
        raise MalformedError(f"{name}: bool is not a number")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedError(f"{name}: {value!r} is not finite")
        return Fraction(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise MalformedError(f"{name}: {value!r} is not finite")
        return Fraction(value)
    if isinstance(value, str):
        try:
            frac = Fraction(value)
        except (ValueError, ZeroDivisionError) as exc:
            raise MalformedError(f"{name}: {value!r} is not a rational number") from exc
        return frac
    raise MalformedError(f"{name}: unsupported type {type(value).__name__}")


def _rb(randbelow: RandBelow | None) -> RandBelow:
    return secrets.randbelow if randbelow is None else randbelow


def _positive(value: RationalLike, name: str) -> Fraction:
    frac = as_fraction(value, name=name)
    if frac <= 0:
        raise ValueError(f"{name} must be > 0, got {frac}")
    return frac


# ---------------------------------------------------------------------------------------
# Exact samplers (CKS 2020, Algorithms 1-3)
# ---------------------------------------------------------------------------------------


def _bernoulli_exp_le1(gamma: Fraction, rb: RandBelow) -> bool:
    """Bernoulli(exp(-gamma)) for 0 <= gamma <= 1 (CKS 2020, Algorithm 1, first part).

    Draw A_k ~ Bernoulli(gamma / k) for k = 1, 2, ... until the first A_k = 0; return True
    iff that k is odd.  P[K > k] = gamma^k / k!, so P[K odd] = sum (-gamma)^j / j! = exp(-gamma).
    """
    p, q = gamma.numerator, gamma.denominator
    k = 1
    while rb(q * k) < p:
        k += 1
    return k % 2 == 1


def sample_bernoulli_exp(gamma: RationalLike, randbelow: RandBelow | None = None) -> bool:
    """Exact Bernoulli(exp(-gamma)) for rational ``gamma >= 0`` (CKS 2020, Algorithm 1).

    For gamma > 1: floor(gamma) independent Bernoulli(exp(-1)) trials must all succeed,
    then one Bernoulli(exp(-(gamma - floor(gamma)))).
    """
    g = as_fraction(gamma, name="gamma")
    if g < 0:
        raise ValueError(f"gamma must be >= 0, got {g}")
    rb = _rb(randbelow)
    one = Fraction(1)
    whole = g.numerator // g.denominator
    for _ in range(whole):
        if not _bernoulli_exp_le1(one, rb):
            return False
    return _bernoulli_exp_le1(g - whole, rb)


def sample_discrete_laplace(scale: RationalLike, randbelow: RandBelow | None = None) -> int:
    """Exact discrete Laplace: P[Y = y] = (e^{1/s} - 1)/(e^{1/s} + 1) * exp(-|y|/s), s = scale.

    CKS 2020, Algorithm 2, with scale = t/s in lowest terms (t = numerator, s = denominator):
    U uniform in [0, t) accepted with probability exp(-U/t); V geometric with
    P[V = v] = (1 - 1/e) e^{-v}; X = U + t V is then geometric with parameter 1 - e^{-1/t};
    Y = floor(X / s); a fair sign bit, rejecting "-0" so 0 is not counted twice.
    """
    sc = _positive(scale, "scale")
    rb = _rb(randbelow)
    t, s = sc.numerator, sc.denominator
    one = Fraction(1)
    while True:
        u = rb(t)
        if not sample_bernoulli_exp(Fraction(u, t), rb):
            continue
        v = 0
        while _bernoulli_exp_le1(one, rb):
            v += 1
        y = (u + t * v) // s
        negative = rb(2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def sample_discrete_gaussian(sigma2: RationalLike, randbelow: RandBelow | None = None) -> int:
    """Exact discrete Gaussian N_Z(0, sigma2): P[Y = y] proportional to exp(-y^2/(2 sigma2)).

    CKS 2020, Algorithm 3: t = floor(sigma) + 1; Y ~ discrete Laplace(t); accept with
    probability exp(-(|Y| - sigma2/t)^2 / (2 sigma2)).  ``sigma2`` is the *parameter*; the
    variance of N_Z(0, sigma2) is slightly below sigma2 (CKS 2020, Corollary 9).
    """
    s2 = _positive(sigma2, "sigma2")
    rb = _rb(randbelow)
    # floor(sqrt(x)) == isqrt(floor(x)) for x >= 0.
    t = math.isqrt(s2.numerator // s2.denominator) + 1
    lap_scale = Fraction(t)
    shift = s2 / t
    two_s2 = 2 * s2
    while True:
        y = sample_discrete_laplace(lap_scale, rb)
        gamma = (abs(y) - shift) ** 2 / two_s2
        if sample_bernoulli_exp(gamma, rb):
            return y


def sample_vector(
    n: int,
    *,
    sigma2: RationalLike | None = None,
    laplace_scale: RationalLike | None = None,
    bound: int | None = None,
    randbelow: RandBelow | None = None,
) -> list[int]:
    """``n`` independent draws of the discrete Gaussian (``sigma2``) or Laplace (``laplace_scale``).

    Exactly one of ``sigma2`` / ``laplace_scale`` is given.  With ``bound = B`` every draw is
    conditioned on |y| <= B by *re-sampling* (the result is the truncated distribution, still
    symmetric; never clamped, so no atom sits on the boundary).  The range proof of a noise
    share then proves each entry in [-B, B].
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if (sigma2 is None) == (laplace_scale is None):
        raise ValueError("give exactly one of sigma2 and laplace_scale")
    if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int) or bound < 0):
        raise ValueError(f"bound must be a non-negative int, got {bound!r}")
    rb = _rb(randbelow)
    draw: Callable[[], int]
    if sigma2 is not None:
        s2 = _positive(sigma2, "sigma2")

        def draw() -> int:
            return sample_discrete_gaussian(s2, rb)

    else:
        sc = _positive(laplace_scale if laplace_scale is not None else 0, "laplace_scale")

        def draw() -> int:
            return sample_discrete_laplace(sc, rb)

    out: list[int] = []
    for _ in range(n):
        y = draw()
        while bound is not None and abs(y) > bound:
            y = draw()
        out.append(y)
    return out


# ---------------------------------------------------------------------------------------
# Probability masses (floats: for tests and reports only)
# ---------------------------------------------------------------------------------------


def discrete_gaussian_pmf(sigma2: RationalLike, support: range) -> list[float]:
    """P[Y = y] for y in ``support`` under N_Z(0, sigma2) (normaliser summed to 1e-300)."""
    s2 = float(_positive(sigma2, "sigma2"))
    norm = 1.0
    y = 1
    while True:
        term = math.exp(-(y * y) / (2.0 * s2))
        if term < 1e-300:
            break
        norm += 2.0 * term
        y += 1
    return [math.exp(-(y * y) / (2.0 * s2)) / norm for y in support]


def discrete_laplace_pmf(scale: RationalLike, support: range) -> list[float]:
    """P[Y = y] = tanh(1/(2s)) exp(-|y|/s) for y in ``support`` (discrete Laplace, scale s)."""
    s = float(_positive(scale, "scale"))
    c = math.tanh(1.0 / (2.0 * s))
    return [c * math.exp(-abs(y) / s) for y in support]


def discrete_gaussian_tail(sigma2: RationalLike, bound: int) -> float:
    """P[|Y| > bound] for Y ~ N_Z(0, sigma2), an upper estimate (floats; for reports).

    Sums the mass beyond ``bound`` term by term; below ~1e-300 per term it adds the
    geometric remainder, so the value is an over- (never under-) estimate.
    """
    s2 = float(_positive(sigma2, "sigma2"))
    if bound < 0:
        return 1.0
    norm = 1.0
    y = 1
    while True:
        term = math.exp(-(y * y) / (2.0 * s2))
        if term < 1e-300:
            break
        norm += 2.0 * term
        y += 1
    # Log-space so tiny tails (12 sigma ~ e^-72) are not lost.
    tail = 0.0
    y = bound + 1
    log_first = -(y * y) / (2.0 * s2)
    while True:
        log_term = -(y * y) / (2.0 * s2) - log_first
        term = math.exp(log_term)
        if term < 1e-20:
            break
        tail += term
        y += 1
    # ratio of consecutive terms beyond y is <= exp(-(2y+1)/(2 s2)) < 1: geometric remainder.
    ratio = math.exp(-(2 * y + 1) / (2.0 * s2))
    tail += math.exp(-(y * y) / (2.0 * s2) - log_first) / (1.0 - ratio)
    return 2.0 * math.exp(log_first) * tail / norm


# ---------------------------------------------------------------------------------------
# zCDP accounting
# ---------------------------------------------------------------------------------------


def l2_squared(sensitivities: list[int] | tuple[int, ...]) -> int:
    """Delta_2^2 = sum_j Delta_j^2: squared L2 sensitivity when every entry may change at once.

    ``sensitivities`` are the per-entry bounds of ``Statistic.sensitivity(spec)`` (how much
    one row can move each entry).  This is an upper bound on the true L2 sensitivity.
    """
    total = 0
    for j, d in enumerate(sensitivities):
        if isinstance(d, bool) or not isinstance(d, int) or d < 0:
            raise ValueError(f"sensitivity[{j}] must be a non-negative int, got {d!r}")
        total += d * d
    return total


def rho_discrete_gaussian(l2_sq: RationalLike, sigma2: RationalLike) -> Fraction:
    """rho = Delta^2 / (2 sigma2) for the discrete Gaussian (CKS 2020, Theorem 14)."""
    d2 = as_fraction(l2_sq, name="l2_sq")
    if d2 < 0:
        raise ValueError(f"l2_sq must be >= 0, got {d2}")
    return d2 / (2 * _positive(sigma2, "sigma2"))


def compose_rho(*rhos: RationalLike) -> Fraction:
    """Sequential composition of zCDP: the rhos add (Bun-Steinke 2016, Lemma 2.3)."""
    total = Fraction(0)
    for r in rhos:
        fr = as_fraction(r, name="rho")
        if fr < 0:
            raise ValueError(f"rho must be >= 0, got {fr}")
        total += fr
    return total


def sigma2_for_rho(l2_sq: RationalLike, rho: RationalLike) -> Fraction:
    """Calibration: sigma2 = Delta^2 / (2 rho), exact, so that the mechanism is rho-zCDP."""
    d2 = _positive(l2_sq, "l2_sq")
    return d2 / (2 * _positive(rho, "rho"))


def epsilon_from_rho_simple(rho: RationalLike, delta: float) -> float:
    """epsilon = rho + 2 sqrt(rho log(1/delta)) (Bun-Steinke 2016, Proposition 1.3)."""
    r = float(as_fraction(rho, name="rho"))
    _check_delta(delta)
    if r < 0:
        raise ValueError("rho must be >= 0")
    return r + 2.0 * math.sqrt(r * math.log(1.0 / delta))


def _check_delta(delta: float) -> None:
    if not (0.0 < delta < 1.0):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")


def _eps_at_alpha(r: float, log_inv_delta: float, alpha: float) -> float:
    # CKS 2020 Corollary 13: eps = alpha rho + (log(1/delta) + (alpha-1) log(1-1/alpha)
    #                              - log(alpha)) / (alpha - 1), valid for every alpha > 1.
    return alpha * r + (
        log_inv_delta + (alpha - 1.0) * math.log1p(-1.0 / alpha) - math.log(alpha)
    ) / (alpha - 1.0)



def _golden_min(f: Callable[[float], float], lo: float = -30.0, hi: float = 30.0,
                iterations: int = 200) -> float:
    """Minimum of a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    phi = (math.sqrt(5.0) - 1.0) / 2.0
    a = hi - phi * (hi - lo)
    b = lo + phi * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iterations):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - phi * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + phi * (hi - lo)
            fb = f(b)
    return min(fa, fb)

def epsilon_from_rho(rho: RationalLike, delta: float) -> float:
    """Tight conversion rho-zCDP -> (epsilon, delta)-DP (CKS 2020, Corollary 13).

    epsilon = inf_{alpha > 1} alpha rho + (log(1/delta) + (alpha - 1) log(1 - 1/alpha)
    - log(alpha)) / (alpha - 1).  Any alpha gives a valid bound; we minimise numerically
    (golden section on log alpha) and never return more than the simple bound.
    """
    r = float(as_fraction(rho, name="rho"))
    _check_delta(delta)
    if r < 0:
        raise ValueError("rho must be >= 0")
    simple = epsilon_from_rho_simple(rho, delta)
    if r == 0.0:
        return 0.0
    lid = math.log(1.0 / delta)

    def f(log_a: float) -> float:
        return _eps_at_alpha(r, lid, 1.0 + math.exp(log_a))

    best = _golden_min(f)
    return max(0.0, min(best, simple))


def delta_from_rho(rho: RationalLike, epsilon: float) -> float:
    """delta(epsilon) for rho-zCDP (CKS 2020, Corollary 13):

    delta = inf_{alpha > 1} exp((alpha - 1)(alpha rho - epsilon)) / (alpha - 1)
    * (1 - 1/alpha)^alpha, minimised numerically; capped at 1.
    """
    r = float(as_fraction(rho, name="rho"))
    if r < 0 or epsilon < 0:
        raise ValueError("rho and epsilon must be >= 0")
    if r == 0.0:
        return 0.0

    def logd(log_a: float) -> float:
        alpha = 1.0 + math.exp(log_a)
        return (
            (alpha - 1.0) * (alpha * r - epsilon)
            - math.log(alpha - 1.0)
            + alpha * math.log1p(-1.0 / alpha)
        )

    best = _golden_min(logd)
    return 1.0 if best >= 0.0 else math.exp(best)


def rho_for_epsilon_delta(epsilon: RationalLike, delta: float) -> Fraction:
    """Largest rho (rounded *down* to a multiple of 1e-12) with epsilon_from_rho(rho) <= epsilon.

    Used to turn an ``approx(epsilon, delta)`` privacy request into a zCDP charge and a
    calibrated sigma2.  Bisection on the tight conversion; monotone in rho.
    """
    eps = _positive(epsilon, "epsilon")
    _check_delta(delta)
    eps_f = float(eps)
    denom = 10**12
    lo, hi = 0, 1
    while epsilon_from_rho(Fraction(hi, denom), delta) <= eps_f:
        lo, hi = hi, hi * 2
        if hi > denom * 10**6:
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if epsilon_from_rho(Fraction(mid, denom), delta) <= eps_f:
            lo = mid
        else:
            hi = mid
    if lo == 0:
        raise ValueError(f"epsilon={eps} with delta={delta} leaves no usable rho")
    return Fraction(lo, denom)


def rho_from_pure_epsilon(epsilon: RationalLike) -> Fraction:
    """epsilon-DP implies (epsilon^2 / 2)-zCDP (Bun-Steinke 2016, Proposition 1.4)."""
    eps = as_fraction(epsilon, name="epsilon")
    if eps < 0:
        raise ValueError("epsilon must be >= 0")
    return eps * eps / 2


def laplace_scale_for_epsilon(l1_sensitivity: RationalLike, epsilon: RationalLike) -> Fraction:
    """Discrete Laplace scale Delta_1 / epsilon gives pure epsilon-DP (exact rational)."""
    d1 = _positive(l1_sensitivity, "l1_sensitivity")
    return d1 / _positive(epsilon, "epsilon")


# ---------------------------------------------------------------------------------------
# Distributed noise
# ---------------------------------------------------------------------------------------


def bound_for_sigma2(sigma2: RationalLike, tail_sigmas: int = DEFAULT_TAIL_SIGMAS) -> int:
    """B = ceil(tail_sigmas * sqrt(sigma2)), computed exactly (no float)."""
    s2 = _positive(sigma2, "sigma2")
    if isinstance(tail_sigmas, bool) or not isinstance(tail_sigmas, int) or tail_sigmas < 1:
        raise ValueError(f"tail_sigmas must be a positive int, got {tail_sigmas!r}")
    x = tail_sigmas * tail_sigmas * s2
    m = -((-x.numerator) // x.denominator)  # ceil(x); ceil(sqrt(x)) == ceil(sqrt(ceil(x)))
    r = math.isqrt(m)
    return r if r * r == m else r + 1


def distributed_rho(l2_sq: RationalLike, sigma2_share: RationalLike, n_honest: int,
                    dim: int) -> float:
    """zCDP rho of the sum of ``n_honest`` i.i.d. N_Z(0, sigma2_share)^dim shares.

    Kairouz, Liu, Steinke 2021 ("The Distributed Discrete Gaussian Mechanism", Theorem 1):
    with tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma2_share k/(k+1)), the sum is
    (eps^2/2)-zCDP with eps = min(sqrt(Delta^2/(n sigma2_share) + tau dim / 2),
    Delta/sqrt(n sigma2_share) + tau sqrt(dim)).  For n = 1 this is exactly
    Delta^2/(2 sigma2).  Float: a report, not a budget charge.
    """
    if n_honest < 1 or dim < 1:
        raise ValueError("n_honest and dim must be >= 1")
    d2 = float(as_fraction(l2_sq, name="l2_sq"))
    s2 = float(_positive(sigma2_share, "sigma2_share"))
    tau = 10.0 * sum(
        math.exp(-2.0 * math.pi**2 * s2 * k / (k + 1)) for k in range(1, n_honest)
    )
    ns2 = n_honest * s2
    eps = min(math.sqrt(d2 / ns2 + tau * dim / 2.0), math.sqrt(d2 / ns2) + tau * math.sqrt(dim))
    return eps * eps / 2.0


@dataclass(frozen=True)
class NoisePlan:
    """Public noise parameters of one DP query, derived from the spec and the roster only.

    ``sigma2`` is the total (target) parameter, ``sigma2_share = sigma2 / (n - t)`` what each
    compute node uses, ``bound`` the hard per-entry bound B of a share (range proof
    ``[-B, B]``), ``rho`` the zCDP charge (= l2_sq / (2 sigma2), exact), ``dim`` the vector
    length.
    """

    l2_sq: int
    rho: Fraction
    sigma2: Fraction
    n_nodes: int
    t_dishonest: int
    sigma2_share: Fraction
    bound: int
    dim: int
    tail_sigmas: int

    @property
    def n_honest(self) -> int:
        return self.n_nodes - self.t_dishonest

    def ranges(self) -> list[tuple[int, int]]:
        """Declared range of every entry of a noise share: ``[(-B, B)] * dim``."""
        return [(-self.bound, self.bound)] * self.dim

    def sample_share(self, randbelow: RandBelow | None = None) -> list[int]:
        """One node's noise share: dim draws of N_Z(0, sigma2_share) truncated to [-B, B]."""
        return sample_vector(
            self.dim, sigma2=self.sigma2_share, bound=self.bound, randbelow=randbelow
        )

    def tail_mass(self) -> float:
        """eta = P[some honest entry would have exceeded B] <= n_honest * dim * P[|Y| > B]."""
        return min(
            1.0, self.n_honest * self.dim * discrete_gaussian_tail(self.sigma2_share, self.bound)
        )

    def kls_rho(self) -> float:
        """The KLS 2021 bound for the honest sum (float; slightly above ``rho``)."""
        return distributed_rho(self.l2_sq, self.sigma2_share, self.n_honest, self.dim)

    def epsilon_delta(self, delta: float) -> tuple[float, float]:
        """(epsilon, delta') the released noisy totals satisfy, truncation included.

        epsilon from the KLS rho via CKS Corollary 13; delta' = delta + (1 + e^epsilon) eta
        where eta is :meth:`tail_mass` (total-variation distance of the truncated mechanism).
        """
        eps = epsilon_from_rho(Fraction(repr(self.kls_rho())), delta)
        return eps, delta + (1.0 + math.exp(eps)) * self.tail_mass()


def plan_distributed_noise(
    sensitivities: list[int] | tuple[int, ...],
    rho: RationalLike,
    n_nodes: int,
    t_dishonest: int,
    *,
    tail_sigmas: int = DEFAULT_TAIL_SIGMAS,
) -> NoisePlan:
    """Calibrate shares: sigma2 = Delta^2/(2 rho), sigma2_share = sigma2/(n - t), B = ceil(k sigma).

    ``sensitivities`` are the per-entry sensitivities of the statistic; ``t_dishonest`` the
    number of compute nodes that may add no noise at all (0 <= t < n).
    """
    r = _positive(rho, "rho")
    for name, val in (("n_nodes", n_nodes), ("t_dishonest", t_dishonest)):
        if isinstance(val, bool) or not isinstance(val, int):
            raise ValueError(f"{name} must be an int, got {val!r}")
    if n_nodes < 1 or not (0 <= t_dishonest < n_nodes):
        raise ValueError(f"need n_nodes >= 1 and 0 <= t_dishonest < n_nodes, got {n_nodes}, "
                         f"{t_dishonest}")
    if len(sensitivities) == 0:
        raise ValueError("sensitivities must not be empty")
    d2 = l2_squared(sensitivities)
    if d2 == 0:
        raise ValueError("all sensitivities are zero: nothing to protect, no noise needed")
    s2 = sigma2_for_rho(d2, r)
    share = s2 / (n_nodes - t_dishonest)
    return NoisePlan(
        l2_sq=d2,
        rho=r,
        sigma2=s2,
        n_nodes=n_nodes,
        t_dishonest=t_dishonest,
        sigma2_share=share,
        bound=bound_for_sigma2(share, tail_sigmas),
        dim=len(sensitivities),
        tail_sigmas=tail_sigmas,
    )


# ---------------------------------------------------------------------------------------
# Budget ledger
# ---------------------------------------------------------------------------------------


def _frac_str(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _parse_frac_str(s: Any, what: str) -> Fraction:
    if not isinstance(s, str) or not _FRACTION_RE.fullmatch(s):
        raise MalformedError(f"{what}: expected a non-negative rational 'p' or 'p/q', got {s!r}")
    f = Fraction(s)
    if _frac_str(f) != s:
        raise MalformedError(f"{what}: {s!r} is not in lowest terms")
    return f


class BudgetLedger:
    """A data owner's zCDP budget for one dataset.

    ``charge(query_id, rho)`` is idempotent per query id (the same query charged twice is one
    charge; the same id with a different rho is refused), and refuses with
    :class:`PolicyError` naming the dataset, spent, requested and remaining budget when the
    total would be exceeded.  Exact rationals throughout; :meth:`to_dict` /
    :meth:`from_dict` round-trip for persistence (the node does the I/O).
    """

    VERSION = 1

    def __init__(self, dataset: str, total_rho: RationalLike,
                 charges: Mapping[str, RationalLike] | None = None) -> None:
        if not isinstance(dataset, str) or not dataset:
            raise MalformedError("dataset must be a non-empty string")
        total = as_fraction(total_rho, name="total_rho")
        if total < 0:
            raise MalformedError(f"total_rho must be >= 0, got {total}")
        self._dataset = dataset
        self._total = total
        self._charges: dict[str, Fraction] = {}
        for qid, r in (charges or {}).items():
            fr = as_fraction(r, name=f"charge[{qid}]")
            if fr <= 0:
                raise MalformedError(f"charge for query {qid} must be > 0, got {fr}")
            self._charges[qid] = fr
        if self.spent > self._total:
            raise MalformedError(
                f"dataset {dataset}: recorded charges {self.spent} exceed total {self._total}"
            )

    @property
    def dataset(self) -> str:
        return self._dataset

    @property
    def total(self) -> Fraction:
        return self._total

    @property
    def spent(self) -> Fraction:
        return sum(self._charges.values(), Fraction(0))

    @property
    def remaining(self) -> Fraction:
        return self._total - self.spent

    @property
    def charges(self) -> dict[str, Fraction]:
        return dict(self._charges)

    def has_charged(self, query_id: str) -> bool:
        return query_id in self._charges

    def check(self, query_id: str, rho: RationalLike) -> None:
        """Raise :class:`PolicyError` if :meth:`charge` would refuse; change nothing."""
        if not isinstance(query_id, str) or not query_id:
            raise PolicyError(f"dataset {self._dataset}: query id must be a non-empty string")
        try:
            r = as_fraction(rho, name="rho")
        except MalformedError as exc:
            raise PolicyError(f"dataset {self._dataset}: query {query_id}: {exc}") from exc
        if r <= 0:
            raise PolicyError(
                f"dataset {self._dataset}: query {query_id}: requested rho {r} must be > 0"
            )
        prior = self._charges.get(query_id)
        if prior is not None:
            if prior != r:
                raise PolicyError(
                    f"dataset {self._dataset}: query {query_id} already charged rho {prior}, "
                    f"refusing a different charge {r}"
                )
            return
        if self.spent + r > self._total:
            raise PolicyError(
                f"privacy budget exceeded for dataset {self._dataset}: spent {self.spent}, "
                f"requested {r}, remaining {self.remaining} (total {self._total})"
            )

    def charge(self, query_id: str, rho: RationalLike) -> None:
        """Record ``rho`` for ``query_id`` (idempotent) or raise :class:`PolicyError`."""
        self.check(query_id, rho)
        self._charges.setdefault(query_id, as_fraction(rho, name="rho"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.VERSION,
            "dataset": self._dataset,
            "total_rho": _frac_str(self._total),
            "charges": {q: _frac_str(r) for q, r in sorted(self._charges.items())},
        }

    @classmethod
    def from_dict(cls, obj: Any) -> BudgetLedger:
        """Strict inverse of :meth:`to_dict`; anything else raises :class:`MalformedError`."""
        if not isinstance(obj, dict):
            raise MalformedError("budget ledger: expected an object")
        keys = {"version", "dataset", "total_rho", "charges"}
        if set(obj) != keys:
            raise MalformedError(f"budget ledger: expected keys {sorted(keys)}, got {sorted(obj)}")
        version = obj["version"]
        if isinstance(version, bool) or version != cls.VERSION:
            raise MalformedError(f"budget ledger: unsupported version {version!r}")
        dataset = obj["dataset"]
        if not isinstance(dataset, str) or not dataset:
            raise MalformedError("budget ledger: dataset must be a non-empty string")
        total = _parse_frac_str(obj["total_rho"], "budget ledger: total_rho")
        charges_obj = obj["charges"]
        if not isinstance(charges_obj, dict):
            raise MalformedError("budget ledger: charges must be an object")
        charges: dict[str, Fraction] = {}
        for q, r in charges_obj.items():
            if not isinstance(q, str) or not q:
                raise MalformedError("budget ledger: query ids must be non-empty strings")
            charges[q] = _parse_frac_str(r, f"budget ledger: charge {q}")
        return cls(dataset, total, charges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BudgetLedger):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"BudgetLedger(dataset={self._dataset!r}, total={self._total}, "
                f"spent={self.spent})")
