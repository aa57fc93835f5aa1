"""DP linear regression (issue 12 item 2): the budget split chosen for the fit, the ridge by
the noise level, the reported noise sd of every released number, in process.

The noise is simulated from its exact law (every noise bit uniform: the committed bit XOR a
uniform public coin, docs/noise.md) with a seeded numpy generator, so the statistical tests
are deterministic: the thresholds below have margin against what the seed gives (and, with
an unseeded draw, a binomial false-failure rate under 1 %: see each test)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol import calibration, datasets, flow, noise
from statledger.protocol.noise import NoiseParams
from statledger.protocol.query import MAX_ENTRY_BITS, QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.ols import (
    GramColumn,
    ols_allocation,
    ols_dp_weights,
    ols_ridge,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N_COMPUTE = 3
ZCDP = {"mechanism": "zcdp", "rho": 1.0}
STAT = get("linear_regression")


def _obj(**over: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((EXAMPLES / "linear_regression.json").read_text())
    obj["privacy"] = ZCDP
    obj.update(over)
    return obj


def _spec(**over: Any) -> QuerySpec:
    return QuerySpec.parse(_obj(**over))


def _cols(spec: QuerySpec) -> list[GramColumn]:
    feats = spec.params["features"]
    return [GramColumn.of(spec, c) for c in [*feats, spec.params["target"]]]


@pytest.fixture(scope="module")
def params() -> NoiseParams:
    return noise.calibrate(flow.noise_sensitivities(_spec()), Fraction(1), N_COMPUTE, N_COMPUTE)


def _draw(rng: np.random.Generator, p: NoiseParams, shares: int) -> list[int]:
    """One draw of the released noise (wire units) from its exact law, seeded."""
    w = [noise.bit_weight(p, b) for b in range(p.bits_per_entry)]
    out = [0] * p.entries
    for pos in range(shares):
        off = flow.noise_offset(p, pos)
        bits = rng.integers(0, 2, size=(p.entries, p.bits_per_entry))
        for j in range(p.entries):
            out[j] += sum(wb for wb, b in zip(w, bits[j], strict=True) if b) - off
    return out


# ---------------------------------------------------------------------------- the allocation
def test_allocation_is_a_pure_function_of_the_public_spec() -> None:
    a, b = _spec(), _spec()
    w = calibration.weights(a)
    assert w == calibration.weights(b) == ols_dp_weights(_cols(a))
    assert all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in w)
    assert min(w) >= 16  # the smallest weight still rounds finely
    top = max(calibration.wire_sensitivity(a))
    b = (top - 1).bit_length()
    assert (1 << b) * 15 // 16 < top <= 1 << b  # aligned just below a power of two
    assert all(c >= 1 for c in calibration.wire_sensitivity(a))
    # the data never enters: two different tables travel with the same weights
    diabetes = datasets.load("diabetes")
    half = {k: np.asarray(v)[: len(v) // 2] for k, v in diabetes.items()}
    for table in (diabetes, half):
        wire, _ = calibration.wire_encode(a, table)
        raw = STAT.encode(a, table)
        # c * v in units of the one public quantum, rounded half up (Fraction oracle)
        q = calibration.quanta(a)
        assert len(set(q)) == 1 and q[0] & (q[0] - 1) == 0
        assert wire == [math.floor(Fraction(2 * c * v + q[0], 2 * q[0]))
                        for c, v in zip(w, raw, strict=True)]
    # within the calibration's limits: every wire range provable, the shares bounded below
    lay = calibration.wire_layout(a)
    assert all((hi - lo).bit_length() <= MAX_ENTRY_BITS for lo, hi in lay.ranges)
    share = calibration.budget_share(a)
    assert math.isclose(sum(share.values()), 1.0)
    assert min(share.values()) >= max(share.values()) / 16**2 * 0.9
    # the cross products that carry the slopes get more than the equal split 1/d
    d = len(w)
    assert all(share[f"sum({f}*target)"] > 1 / d for f in ("bmi", "bp", "s5"))
    assert share["n"] < 1 / d


def test_allocation_follows_the_public_bounds_not_an_exact_query() -> None:
    w = calibration.weights(_spec())
    wider = _obj()
    wider["bounds"] = {**wider["bounds"], "bp": [40.0, 160.0]}
    assert calibration.weights(QuerySpec.parse(wider)) != w
    assert calibration.weights(_spec(privacy={"mechanism": "none"})) == [1] * len(w)


def test_allocation_matches_an_independent_numerical_delta_method() -> None:
    """Cross-check of the closed forms: numpy finite differences of an OLS fit (intercept,
    slopes, sigma^2) at the reference design, averaged over the signs of the reference slopes
    and mean offsets (sum of squares, as ols_allocation states), give the same importances
    within 25 % (the closed forms drop terms of second order in the offsets)."""
    spec = _spec()
    cols = _cols(spec)
    k = len(cols)
    p = k - 1
    pairs = [(i, j) for i in range(k) for j in range(i, k)]
    t = np.array([float(max(abs(lo), abs(hi))) for lo, hi in (c.shifted() for c in cols)])
    mid = np.array([float(c.shift) for c in cols])
    s2 = t**2 / 3
    sig2 = t[p] ** 2 / 6
    n = 1.0e6

    def theta(e: np.ndarray) -> np.ndarray:
        nn, s = e[0], e[1:1 + k]
        pm = np.zeros((k, k))
        for (i, j), v in zip(pairs, e[1 + k:], strict=True):
            pm[i, j] = pm[j, i] = v
        a = pm / nn - np.outer(s, s) / nn**2
        b = np.linalg.solve(a[:p, :p], a[:p, p])
        xbar = s / nn + mid
        rss = a[p, p] - b @ a[:p, p]
        return np.concatenate([[xbar[p] - xbar[:p] @ b], b, [rss]])

    v0 = sig2 * (1 + np.sum(mid[:p] ** 2 / s2[:p]))
    var = np.concatenate([[v0], sig2 / s2[:p], [2 * sig2**2]]) / n
    sens = np.array([1.0] + list(t) + [t[i] * t[j] for i, j in pairs])
    acc = np.zeros(len(sens))
    rng = np.random.default_rng(7)
    draws = 64
    for _ in range(draws):
        bsign = rng.choice([-1.0, 1.0], p)
        mu = rng.choice([-1.0, 1.0], k) * t * math.sqrt(1 / 12) * 1e-3  # small offsets
        beta = bsign * t[p] / (t[:p] * math.sqrt(2 * p))
        cov = np.diag(s2)
        cov[:p, p] = cov[p, :p] = beta * s2[:p]
        cov[p, p] = beta @ (beta * s2[:p]) + sig2
        e0 = np.array([n] + list(n * mu) + [n * (cov[i, j] + mu[i] * mu[j]) for i, j in pairs])
        base = theta(e0)
        for e in range(len(sens)):
            h = 1e-4 * sens[e] * math.sqrt(n)
            moved = e0.copy()
            moved[e] += h
            g = (theta(moved) - base) / h
            acc[e] += np.sum(g**2 / var) * sens[e] ** 2 * n  # D is O(1/n): n = 1
    numeric = acc / draws
    closed = np.array([float(x) for x in ols_allocation(cols)])
    # the offsets' own term (first order in mu) vanishes as mu -> 0: compare the rest
    k1 = 1 + k
    assert np.allclose(numeric[k1:], closed[k1:], rtol=0.25)
    assert numeric[0] == pytest.approx(closed[0], rel=0.25)


# ---------------------------------------------------------------------------- the ridge
def test_ridge_adds_the_noise_sd_to_the_features_sums_of_squares_only() -> None:
    spec = _spec()
    cols = _cols(spec)
    lay = STAT.layout(spec)
    totals = STAT.encode(spec, datasets.load("diabetes"))
    var = [Fraction(10**6 + 7 * i, 3) for i in range(len(totals))]
    out = ols_ridge(cols, totals, var)
    for i, label in enumerate(lay.labels):
        ridge = math.isqrt(var[i].numerator // var[i].denominator)
        feature_square = label in ("sum(bmi*bmi)", "sum(bp*bp)", "sum(s5*s5)")
        assert out[i] == totals[i] + (ridge if feature_square else 0), label
    # withheld stays withheld; a wrong length is refused
    withheld: list[int | None] = [None] * len(totals)
    assert ols_ridge(cols, withheld, var) == withheld
    with pytest.raises(MalformedError, match="entries"):
        ols_ridge(cols, totals[:-1], var)


def test_ridge_rescues_a_variance_the_noise_pushed_below_zero(params: NoiseParams) -> None:
    """One feature whose noisy centred sum of squares fell half a noise sd below zero: the
    plain fit is singular, the DP decode (ridge of one noise sd) returns a fit; twin: the
    exact query (no DP) gets no ridge and stays singular."""
    obj = _obj(columns=["bp", "target"], params={"target": "target", "features": ["bp"]})
    obj["bounds"] = {c: obj["bounds"][c] for c in ("bp", "target")}
    spec = QuerySpec.parse(obj)
    info = calibration.NoiseInfo(params, N_COMPUTE)
    lay = STAT.layout(spec)
    totals = STAT.encode(spec, datasets.load("diabetes"))
    i, j = lay.labels.index("sum(bp*bp)"), lay.labels.index("sum(bp)")
    var = calibration.entry_var(spec, params, N_COMPUTE)[i]
    lam = math.isqrt(var.numerator // var.denominator)
    n = totals[0]
    totals[i] = totals[j] * totals[j] // n - lam // 2  # n P - S^2 < 0 by ~ n lam / 2
    assert STAT.decode(spec, totals).to_dict()["coef"][0] is None  # singular as it is
    wire = calibration.quantize(spec, totals)  # c * v in units of the quantum
    res = calibration.decode(spec, wire, info)
    assert all(isinstance(c, float) for c in res.to_dict()["coef"])
    assert any("ridge" in note for note in res.notes)
    exact = QuerySpec.parse({**obj, "privacy": {"mechanism": "none"}})
    assert calibration.decode(exact, totals).to_dict()["coef"][0] is None
    # 1.5 sd below zero: one sd is not enough, the ridge doubles once (2 sd), exactly
    var_all = calibration.entry_var(spec, params, N_COMPUTE)
    for short, step in ((lam // 2, 0), (3 * lam // 2, 1), (5 * lam // 2, 2)):
        totals[i] = totals[j] * totals[j] // n - short
        assert ols_ridge(_cols(spec), totals, var_all)[i] == totals[i] + (lam << step)


# ---------------------------------------------------------------------------- decode
def test_dp_decode_is_deterministic_and_refuses_malformed_totals(params: NoiseParams) -> None:
    spec = _spec()
    info = calibration.NoiseInfo(params, N_COMPUTE)
    wire, _ = calibration.wire_encode(spec, datasets.load("diabetes"))
    noisy = [v + z for v, z in zip(wire, _draw(np.random.default_rng(1), params, N_COMPUTE),
                                   strict=True)]
    one = calibration.decode(spec, noisy, info).to_dict()
    two = calibration.decode(spec, list(noisy), info).to_dict()
    assert one == two  # bit for bit, floats included
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    # reject twins: truncated, one too many, a float, a bool, a string, withheld in a fit
    bad: list[list[Any]] = [noisy[:-1], [*noisy, 0], [*noisy[:-1], float(noisy[-1])],
                            [*noisy[:5], True, *noisy[6:]], [*noisy[:-1], "7"],
                            [*noisy[:-1], None]]
    for b in bad:
        with pytest.raises(MalformedError):
            calibration.decode(spec, b, info)
    with pytest.raises(MalformedError, match="noise parameters"):
        calibration.decode(spec, noisy, None)
    # swapped entries decode to a different fit (the layout order is read, not guessed)
    swapped = list(noisy)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert calibration.decode(spec, swapped, info).to_dict()["coef"] != one["coef"]


# ---------------------------------------------------------------------------- statistics
RUNS = 150


@pytest.fixture(scope="module")
def runs(params: NoiseParams) -> dict[str, Any]:
    """RUNS seeded draws, each decoded as the querier and step 14 do (calibration.decode):
    the released coefficients and their reported sd and 95 % interval."""
    spec = _spec()
    info = calibration.NoiseInfo(params, N_COMPUTE)
    table = datasets.load("diabetes")
    exact = STAT.decode(_spec(privacy={"mechanism": "none"}), STAT.encode(spec, table))
    wire, _ = calibration.wire_encode(spec, table)
    rng = np.random.default_rng(2026)
    coefs, sds, lo, hi = [], [], [], []
    for _ in range(RUNS):
        noisy = [v + z for v, z in zip(wire, _draw(rng, params, N_COMPUTE), strict=True)]
        res = calibration.decode(spec, noisy, info).to_dict()
        coefs.append(res["coef"])
        paths = [f"coef[{i}]" for i in range(4)]
        sds.append([res["dp"]["value_sd"].get(q, math.nan) for q in paths])
        lo.append([res["dp"]["ci95"].get(q, [math.nan])[0] for q in paths])
        hi.append([res["dp"]["ci95"].get(q, [0.0, math.nan])[1] for q in paths])
    undefined = sum(c[0] is None for c in coefs)
    arr = np.asarray([[math.inf if x is None else x for x in c] for c in coefs], dtype=float)
    return {"exact": np.asarray(exact.to_dict()["coef"]), "coef": arr,
            "sd": np.asarray(sds), "lo": np.asarray(lo), "hi": np.asarray(hi),
            "undefined": undefined}


def test_the_ridge_leaves_no_run_without_a_fit(runs: dict[str, Any]) -> None:
    """The doubling ridge leaves no run without a fit (with a fixed one-sd ridge, 1 in 200
    runs of an earlier seed had an indefinite noisy X'X and published no coefficients)."""
    assert runs["undefined"] == 0


def test_reported_sd_matches_the_empirical_spread(runs: dict[str, Any]) -> None:
    """Robust empirical sd (1.4826 MAD over the runs; its own sampling error ~9 %) within
    25 % of the median reported sd for every coefficient (the seed gives ratios 1.08, 1.01,
    0.95, 1.05).  Before, the reported sd overstated the spread ~2x
    (bench/results/dp_accuracy.json of the equal split)."""
    c = runs["coef"]
    robust = 1.4826 * np.median(np.abs(c - np.median(c, axis=0)), axis=0)
    ratio = robust / np.median(runs["sd"], axis=0)
    assert np.all((ratio > 0.75) & (ratio < 1.25)), ratio


def test_noise_intervals_cover_the_exact_fit(runs: dict[str, Any]) -> None:
    """Each run's released 95 % interval (``dp.ci95``) holds the exact (non-DP) coefficient
    in >= 88 % of the runs for each coefficient and >= 91 % pooled (the seed gives 0.93,
    0.93, 0.96, 1.00; pooled 0.955).  The ridge's shrinkage (0.15-0.5 sd on these slopes) is
    not in the interval (docs/privacy.md).  Seeded; unseeded, at a true 0.93 the
    per-coefficient line fails with P(Bin(150, .93) < 132) < 1 %, at 0.95 < 0.03 %."""
    inside = (runs["lo"] <= runs["exact"]) & (runs["exact"] <= runs["hi"])
    assert np.all(inside.mean(axis=0) >= 0.88), inside.mean(axis=0)
    assert inside.mean() >= 0.91, inside.mean()


def test_slopes_are_materially_more_accurate_than_the_equal_split(
        runs: dict[str, Any]) -> None:
    """Median relative error of the three slopes: 0.48, 0.77, 0.46 with the equal split
    and no ridge (bench/results/dp_accuracy.json before this change); now each below 0.6
    and their mean below 0.42 (the seed gives 0.32, 0.49, 0.29)."""
    rel = np.abs(runs["coef"] - runs["exact"]) / np.abs(runs["exact"])
    med = np.median(rel, axis=0)[1:]
    assert np.all(med < 0.6), med
    assert med.mean() < 0.42, med


# ---------------------------------------------------------------------------- the plan
def test_plan_reports_the_same_allocation_and_errors(params: NoiseParams,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`statledger plan` goes through the same weights, post-processing and delta method as
    a real decode (the noise search is replaced by the module's result: same inputs)."""
    spec = _spec()
    monkeypatch.setattr(noise, "calibrate", lambda *a, **k: params)
    p = calibration.plan(spec, N_COMPUTE, 442)
    assert p["weights"] == calibration.weights(spec)
    assert p["budget_share"] == calibration.budget_share(spec)
    vals, _ = calibration.wire_encode(spec, calibration.synthetic_table(spec, 442))
    again = calibration.decode(spec, vals, calibration.NoiseInfo(params, N_COMPUTE)).to_dict()
    assert p["value_sd"] == again["dp"]["value_sd"]
    assert all(p["value_sd"][f"coef[{i}]"] > 0 for i in range(4))




