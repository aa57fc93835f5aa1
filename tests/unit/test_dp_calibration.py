"""Per-entry DP calibration (protocol/calibration.py): weights, unscaling, error reports, and
the accuracy targets of issue 12, simulated in process with the exact law of the verifiable
noise (every noise bit uniform: committed bit XOR a uniform coin)."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol import calibration, flow, noise
from statledger.protocol.datasets import load
from statledger.protocol.noise import NoiseParams
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N_COMPUTE = 3


def _spec(**kw: object) -> QuerySpec:
    base: dict[str, object] = {"version": 1, "statistic": "mean", "columns": ["bmi"],
                               "bounds": {"bmi": [15.0, 50.0]},
                               "privacy": {"mechanism": "zcdp", "rho": 1.0}, "max_rows": 1000}
    base.update(kw)
    return QuerySpec.parse(base)


@pytest.fixture(scope="module")
def mean_params() -> NoiseParams:
    spec = _spec()
    return noise.calibrate(calibration.wire_sensitivity(spec), Fraction(1), N_COMPUTE, N_COMPUTE)


def _noise(params: NoiseParams, k: int) -> list[int]:
    return calibration.simulate_noise(params, k)


def test_simulated_noise_is_the_derived_share_law(mean_params: NoiseParams) -> None:
    """Cross-check of the simulator against the protocol's own pieces: each share's entry
    lies in its declared noise range, and the mean over many draws is the public mean."""
    lo, hi = flow.noise_ranges(mean_params, 0)[0]
    one = [calibration.simulate_noise(mean_params, 1) for _ in range(400)]
    assert all(lo <= v <= hi for d in one for v in d)
    m = float(np.mean([d[0] for d in one]))
    sd = float(mean_params.share_variance) ** 0.5
    assert abs(m - float(Fraction(mean_params.share_max, 2) - flow.noise_offset(mean_params, 0))
               ) < 5 * sd / 20


def test_exact_queries_keep_weight_one_and_decode_as_before() -> None:
    spec = _spec(privacy={"mechanism": "none"})
    assert calibration.weights(spec) == [1, 1]
    assert calibration.wire_layout(spec) == get("mean").layout(spec)
    table = load("diabetes")
    vals, _ = calibration.wire_encode(spec, table)
    assert vals == get("mean").encode(spec, table)
    assert calibration.decode(spec, vals).to_dict() == get("mean").decode(spec, vals).to_dict()


def test_weights_equalise_sensitivities() -> None:
    spec = _spec()
    sens = get("mean").sensitivity(spec)
    w = calibration.weights(spec)
    assert w == [sens[1], 1]  # the count travels scaled by the sum's sensitivity
    # one public quantum for every entry: the largest power of two <= max(c t) / 256
    q = calibration.quanta(spec)
    assert len(set(q)) == 1 and q[0] & (q[0] - 1) == 0
    assert 256 * q[0] <= sens[1] < 512 * q[0]
    assert calibration.wire_sensitivity(spec) == [-(-sens[1] // q[0])] * 2
    lay = calibration.wire_layout(spec)
    assert lay.ranges[0] == (0, -(-spec.max_rows * sens[1] // q[0]))
    # the owner's value, rounded half up in units of q (an independent Fraction oracle)
    table = load("diabetes")
    vals, _ = calibration.wire_encode(spec, table)
    raw = get("mean").encode(spec, table)
    assert vals == [math.floor(Fraction(2 * c * v + q[0], 2 * q[0]))
                    for c, v in zip(w, raw, strict=True)]
    assert all(abs(Fraction(c * v, q[0]) - x) <= Fraction(1, 2)
               for c, v, x in zip(w, raw, vals, strict=True))
    # the default rule (a crosstab's counts and sums): every scaled sensitivity within
    # [t_max / 2, t_max]; linear regression splits its own way (tests/unit/test_dp_ols.py)
    tab = QuerySpec.parse({**json.loads((EXAMPLES / "crosstab.json").read_text()),
                           "privacy": {"mechanism": "zcdp", "rho": 1.0}})
    ws = calibration.wire_sensitivity(tab)
    assert len(set(get("crosstab").sensitivity(tab))) > 1
    assert all(max(ws) // 2 < s <= max(ws) for s in ws)


def test_unscale_rounds_and_clamps_counts() -> None:
    spec = _spec()
    c, q = calibration.weights(spec)[0], calibration.quanta(spec)[0]
    unit = Fraction(c, q)  # one row of the count, in wire units (q units of c)
    assert unit > 100
    assert calibration.unscale(spec, [round(unit * Fraction(106, 10)), 5]) == [11, 5 * q]
    assert calibration.unscale(spec, [round(-3 * unit), 7]) == [0, 7 * q]  # never negative
    # nor a sum of values in [15, 50]
    assert calibration.unscale(spec, [round(3 * unit), -7]) == [3, 0]
    signed = _spec(bounds={"bmi": [-15.0, 50.0]})
    cs, qs = calibration.weights(signed)[0], calibration.quanta(signed)[0]
    assert calibration.unscale(signed, [round(3 * Fraction(cs, qs)), -7]) == [3, -7 * qs]
    with pytest.raises(MalformedError, match="totals"):
        calibration.unscale(spec, [1])
    with pytest.raises(MalformedError, match="totals"):
        calibration.unscale(spec, [1, 2, 3])


def test_dp_decode_needs_noise_parameters() -> None:
    spec = _spec()
    with pytest.raises(MalformedError, match="noise parameters"):
        calibration.decode(spec, [0, 0])


def test_reported_sd_matches_the_noise(mean_params: NoiseParams) -> None:
    """The stated sd is the noise's: 300 simulated draws, sample sd within 15 % (chi-square:
    a false failure below 1e-4)."""
    spec = _spec()
    sd = calibration.entry_sd(spec, mean_params, N_COMPUTE)
    c, q = calibration.weights(spec), calibration.quanta(spec)
    draws = np.array([_noise(mean_params, N_COMPUTE) for _ in range(300)], dtype=float)
    for j in range(2):
        got = float(np.std(draws[:, j] * q[j] / c[j], ddof=1))
        assert abs(got / sd[j] - 1) < 0.15, (j, got, sd[j])
    # the count's noise sd is a few units, not millions
    assert sd[0] < 3


def test_dp_mean_accuracy_targets(mean_params: NoiseParams) -> None:
    """Issue 12 targets, in-process runs of a DP mean at rho = 1 over 200 rows: |n error|
    <= 5 in at least 95 % of 200 runs, and the mean within 5 % of the exact mean in at least
    95 % of runs.

    False-failure rates (asserted below, each < 1e-4), from the reported noise sds:
    * n: sd s = entry_sd (about 2.1), one run misses with p ~ P(|N(0, s^2)| > 5.5) ~ 0.008
      (after rounding; 0.0095 measured over 2,000 runs); the test fails with more than 10
      misses of 200: binom.sf(10, 200, p) < 1e-4.
    * the mean: sd about 0.59 on a mean of about 26 over 200 rows, so 5 % is only ~2.2 sd and
      one run misses with p ~ 0.03: 200 runs cannot tell 97 % from 95 % reliably (a 10-miss
      threshold fails ~3 % of the time: it did, once, in CI).  So the mean is judged on 1,000
      runs: more than 50 misses has probability binom.sf(50, 1000, p) < 1e-4."""
    from scipy.stats import norm

    spec = _spec()
    table = {k: v[:200] for k, v in load("diabetes").items()}
    vals, _ = calibration.wire_encode(spec, table)
    exact = get("mean").decode(spec, calibration.unscale(spec, vals)).to_dict()
    info = calibration.NoiseInfo(mean_params, N_COMPUTE)
    sd_n = calibration.entry_sd(spec, mean_params, N_COMPUTE)[0]
    sd_mean = calibration.decode(spec, vals, info).to_dict()["dp"]["value_sd"]["value"]
    p_n = 2 * norm.sf(5.5 / sd_n)
    p_mean = 2 * norm.sf(0.05 * abs(exact["value"]) / sd_mean)
    assert binom.sf(10, 200, p_n) < 1e-4
    assert binom.sf(50, 1000, p_mean) < 1e-4
    n_ok = mean_ok = 0
    for run in range(1000):
        noisy = [v + z for v, z in zip(vals, _noise(mean_params, N_COMPUTE), strict=True)]
        got = calibration.decode(spec, noisy, info).to_dict()
        n_ok += run < 200 and abs(got["n"] - exact["n"]) <= 5
        mean_ok += abs(got["value"] - exact["value"]) <= 0.05 * abs(exact["value"])
    assert n_ok >= 190, n_ok
    assert mean_ok >= 950, mean_ok


def test_result_reports_sd_and_interval(mean_params: NoiseParams) -> None:
    spec = _spec()
    vals, _ = calibration.wire_encode(spec, load("diabetes"))
    out = calibration.decode(spec, vals, calibration.NoiseInfo(mean_params, N_COMPUTE))
    d = out.to_dict()["dp"]
    assert set(d["value_sd"]) >= {"n", "value"}
    lo, hi = d["ci95"]["value"]
    assert lo < out.values["value"] < hi
    assert hi - lo == pytest.approx(2 * calibration.Z95 * d["value_sd"]["value"])
    # the delta method against the textbook formula sd(S/n) ~ sqrt(sd_S^2 + mean^2 sd_n^2)/n
    sd_n, sd_s = calibration.entry_sd(spec, mean_params, N_COMPUTE)
    n, mean = out.values["n"], out.values["value"]
    want = (sd_s**2 / spec.scale**2 + mean**2 * sd_n**2) ** 0.5 / n
    assert d["value_sd"]["value"] == pytest.approx(want, rel=0.02)
    assert any("95% noise intervals" in note for note in out.notes)
    # deterministic: step 14 recomputes it bit for bit
    again = calibration.decode(spec, vals, calibration.NoiseInfo(mean_params, N_COMPUTE))
    assert again.to_dict() == out.to_dict()
    # another noise set size gives another report (the verifier uses the logged one)
    other = calibration.decode(spec, vals, calibration.NoiseInfo(mean_params, 2))
    assert other.to_dict()["dp"] != out.to_dict()["dp"]


def test_more_rows_than_max_rows_message_has_no_count() -> None:
    spec = _spec(privacy={"mechanism": "none"}, max_rows=100)
    table = load("diabetes")  # 442 rows
    with pytest.raises(PolicyError) as info:
        calibration.wire_encode(spec, table, "provider-2")
    msg = str(info.value)
    assert msg == "site provider-2 has more rows than max_rows; raise max_rows"
    assert "442" not in msg and not any(ch.isdigit() for ch in msg.replace("provider-2", ""))


def test_clip_buckets_hide_counts() -> None:
    spec = _spec(privacy={"mechanism": "none"}, bounds={"bmi": [20.0, 30.0]})
    _, report = calibration.wire_encode(spec, load("diabetes"))
    b = calibration.clip_buckets(report)
    assert b == {"bmi": "100+"}
    report.clipped = {"a": 0, "b": 1, "c": 42, "d": 9}
    assert calibration.clip_buckets(report) == {"a": "0", "b": "1-9", "c": "10-99", "d": "1-9"}


def test_plan_spends_nothing_and_prints_errors() -> None:
    spec = QuerySpec.parse((EXAMPLES / "dp_mean.json").read_text())
    p = calibration.plan(spec, N_COMPUTE, 200)
    assert p["rho_bound"] <= 1.0 and p["epsilon"] > 0
    assert p["value_sd"]["n"] < 3
    assert p["value_sd"]["value"] < 0.05 * p["values"]["value"]
    assert p["design"] == "uniform" and p["design_caveat"] is None  # a mean: no caveat
    # the simulated releases agree with the first-order sd for a mean (within 30 %: 200
    # seeded runs, the robust sd's relative error is ~9 %)
    assert abs(p["simulated"]["value"]["robust_sd"] / p["value_sd"]["value"] - 1) < 0.3
    with pytest.raises(MalformedError, match="no differential privacy"):
        calibration.plan(_spec(privacy={"mechanism": "none"}), N_COMPUTE, 10)
