"""Step 14 is exact (docs/verification.md): no tolerance in ``results_match``, and every
decoder is deterministic bit for bit (``statledger.protocol.stats.exact``).

* ``results_match`` reject twins: an int published as a float (or a float as an int), a bool
  for an int, a float one ulp off, a count of 10^9 off by one, an extra or missing key, a list
  of another length -- each reported with its nested path -- and the 1e-9 "attack" the old
  tolerance let through;
* the published result survives the result entry's canonical CBOR bit for bit (every float of
  every statistic, and the awkward doubles: -0.0, subnormals, the largest double);
* through ``check_query``: the honest result passes step 14, the same result with one float
  moved by one ulp (or one count by one) fails it, naming the querier and the path;
* determinism: decoding twice, under one BLAS thread, under a hostile global decimal context,
  in a fresh interpreter, and in one that uses the pure-Python ``_pydecimal``, gives the same
  bytes;
* the deterministic arithmetic agrees with independent implementations (scipy, numpy,
  ``math.sqrt``, Fraction arithmetic) -- the only place a tolerance appears;
* decoders never publish NaN or inf: random totals within the layout decode to finite
  numbers or explicit Nones (or are refused as inconsistent).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from decimal import ROUND_DOWN, Context, localcontext
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import datasets
from statledger.protocol import entries as E
from statledger.protocol.cbor import cbor_bytes
from statledger.protocol.checks import STEPS, Step, StepContext, check_query, results_match
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import exact as X
from statledger.protocol.stats import get

ROOT = Path(__file__).resolve().parents[2]
RESEARCHER = SigningKey.from_bytes(bytes([77]) * 32)
#: the compute nodes a result entry names as its decryptors (steps 12-13 are stood in for
#: here: tests/unit/test_protocol_checks.py)
DECRYPTORS = ("node-a", "node-b")

# ---------------------------------------------------------------------------- the cases
DIABETES_BOUNDS: dict[str, list[float]] = {
    "age": [18, 80], "sex": [1, 2], "bmi": [15, 45], "bp": [60, 140], "s1": [90, 310],
    "s5": [3, 7], "target": [20, 350],
}
BC_FEATS = ["mean_radius", "mean_texture", "mean_concavity"]
BC_BOUNDS: dict[str, list[float]] = {
    "mean_radius": [6.981, 28.11], "mean_texture": [9.71, 39.28],
    "mean_concavity": [0.0, 0.427], "benign": [0, 1],
}
BC_STD = {"mean_radius": [14.13, 3.524], "mean_texture": [19.29, 4.301],
          "mean_concavity": [0.0888, 0.07972]}


def _diabetes(statistic: str, columns: list[str], **over: Any) -> dict[str, Any]:
    return {"version": 1, "statistic": statistic, "columns": columns,
            "bounds": {c: DIABETES_BOUNDS[c] for c in columns
                       if c in DIABETES_BOUNDS and c != "sex"}, **over}


SEX = {"categories": {"sex": ["1", "2"]}}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "count": ("diabetes", _diabetes("count", [], **SEX, group_by=["sex"])),
    "sum": ("diabetes", _diabetes("sum", ["bmi"])),
    "mean": ("diabetes", _diabetes("mean", ["bmi"], **SEX, group_by=["sex"])),
    "variance": ("diabetes", _diabetes("variance", ["s5"])),
    "std": ("diabetes", _diabetes("std", ["bp"], **SEX, group_by=["sex"])),
    "covariance": ("diabetes", _diabetes("covariance", ["bmi", "bp", "s5"])),
    "correlation": ("diabetes", _diabetes("correlation", ["bmi", "bp", "s5", "target"])),
    "cosine": ("diabetes", _diabetes("cosine", ["bmi", "s5"])),
    "histogram": ("diabetes", _diabetes("histogram", ["bmi"],
                                        params={"bins": [15, 20, 25, 30, 35, 45]})),
    "crosstab": ("diabetes", _diabetes("crosstab", [], **SEX, group_by=["sex"],
                                       bounds={"bmi": [15, 45]}, params={"value": "bmi"})),
    "max": ("diabetes", _diabetes("max", ["age"])),
    "min": ("diabetes", _diabetes("min", ["age"])),
    "set_union": ("diabetes", _diabetes("set_union", ["sex"], **SEX)),
    "bool_or": ("diabetes", _diabetes("bool_or", ["s5"])),
    "linear_regression": ("diabetes", _diabetes(
        "linear_regression", ["bmi", "bp", "s5", "target"],
        params={"target": "target", "features": ["bmi", "bp", "s5"]})),
    "logistic_approx": ("breast_cancer", {
        "version": 1, "statistic": "logistic_approx", "columns": [*BC_FEATS, "benign"],
        "bounds": BC_BOUNDS,
        "params": {"target": "benign", "features": BC_FEATS, "standardize": BC_STD}}),
    "logistic_irls": ("breast_cancer", {
        "version": 1, "statistic": "logistic_irls", "columns": [*BC_FEATS, "benign"],
        "bounds": BC_BOUNDS,
        "params": {"target": "benign", "features": BC_FEATS, "standardize": BC_STD,
                   "beta": [0.4, -2.5, -1.1, -1.9], "round": 2}}),
    "kaplan_meier": ("waltons", {
        "version": 1, "statistic": "kaplan_meier", "columns": ["time", "event"],
        "bounds": {"time": [0, 100], "event": [0, 1]},
        "categories": {"group": ["control", "miR-137"]}, "group_by": ["group"],
        "params": {"time": "time", "event": "event", "max_time": 80, "alpha": 0.1},
        "min_cell_size": 1}),
}


def _table(dataset: str, site: str) -> dict[str, Any]:
    t = dict(datasets.load(dataset, site))
    if dataset == "rossi":
        t["prio_band"] = np.array(["low" if v <= 1 else ("mid" if v <= 4 else "high")
                                   for v in t["prio"]], dtype=object)
    return t


CASES["logrank_3_groups"] = ("rossi", {
    "version": 1, "statistic": "kaplan_meier", "columns": ["week", "arrest"],
    "bounds": {"week": [0, 52], "arrest": [0, 1]},
    "categories": {"prio_band": ["low", "mid", "high"]}, "group_by": ["prio_band"],
    "params": {"time": "week", "event": "arrest", "max_time": 52}, "min_cell_size": 1})


@cache
def case(name: str) -> tuple[QuerySpec, tuple[int, ...]]:
    """The spec and the pooled totals (the sum of every site's encoding)."""
    dataset, obj = CASES[name]
    spec = QuerySpec.parse(obj)
    stat = get(spec.statistic)
    tot = [0] * len(stat.layout(spec))
    for site in datasets.sites(dataset):
        tot = [a + b for a, b in zip(tot, stat.encode(spec, _table(dataset, site)), strict=True)]
    return spec, tuple(tot)


def decoded(name: str) -> dict[str, Any]:
    spec, tot = case(name)
    return get(spec.statistic).decode(spec, list(tot)).to_dict()


def leaves(obj: Any, path: str = "result") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in leaves(obj[k], f"{path}.{k}")]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in leaves(v, f"{path}[{i}]")]
    return [(path, obj)]


def set_at(obj: Any, path: str, value: Any) -> Any:
    """A copy of ``obj`` with the leaf at ``path`` (``result.a[2].b``) replaced."""
    out = copy.deepcopy(obj)
    keys: list[Any] = []
    for part in path.removeprefix("result").replace("[", ".[").split(".")[1:]:
        keys.append(int(part[1:-1]) if part.startswith("[") else part)
    cur = out
    for k in keys[:-1]:
        cur = cur[k]
    cur[keys[-1]] = value
    return out


# ---------------------------------------------------------------------------- results_match
def test_identical_results_match() -> None:
    for name in CASES:
        d = decoded(name)
        assert results_match(d, copy.deepcopy(d)) is None, name


@pytest.mark.parametrize(
    ("recomputed", "published", "where"),
    [
        # an int published as a float, a float as an int, a bool as an int: types differ
        ({"n": 80}, {"n": 80.0}, "result.n (type)"),
        ({"value": 2.0}, {"value": 2}, "result.value (type)"),
        ({"n": 1}, {"n": True}, "result.n (type)"),
        ({"ok": False}, {"ok": 0}, "result.ok (type)"),
        ({"value": None}, {"value": 0.0}, "result.value (type)"),
        ({"value": 0}, {"value": None}, "result.value (type)"),
        ({"members": ["a"]}, {"members": "a"}, "result.members (type)"),
        # what the old 1e-9 relative tolerance accepted
        ({"n": 80.0}, {"n": 80.00000007}, "result.n"),
        ({"n": 10**9}, {"n": 10**9 + 1}, "result.n"),
        ({"n": 10**9}, {"n": 10**9 - 1}, "result.n"),
        # one ulp, either way, and the sign of zero
        ({"v": 0.1}, {"v": math.nextafter(0.1, 1.0)}, "result.v"),
        ({"v": 0.1}, {"v": math.nextafter(0.1, 0.0)}, "result.v"),
        ({"v": 1e-300}, {"v": math.nextafter(1e-300, 0.0)}, "result.v"),
        ({"v": 0.0}, {"v": -0.0}, "result.v"),
        ({"v": 5e-324}, {"v": 0.0}, "result.v"),
        # keys, lengths, nested paths
        ({"a": 1, "b": 2}, {"a": 1}, "result.b (missing)"),
        ({"a": 1}, {"a": 1, "b": 2}, "result.b (unexpected)"),
        ({"coef": [1.0, 2.0]}, {"coef": [1.0, 2.0, 3.0]}, "result.coef (length)"),
        ({"coef": [1.0, 2.0]}, {"coef": [1.0]}, "result.coef (length)"),
        ({"cells": [{"matrix": [[1.0, 0.5], [0.5, 1.0]]}]},
         {"cells": [{"matrix": [[1.0, 0.5], [math.nextafter(0.5, 1.0), 1.0]]}]},
         "result.cells[0].matrix[1][0]"),
        ({"groups": [{"label": "a"}, {"label": "b"}]}, {"groups": [{"label": "a"},
                                                                   {"label": "c"}]},
         "result.groups[1].label"),
        # NaN and infinities match nothing, not even themselves
        ({"v": math.nan}, {"v": math.nan}, "result.v (not finite)"),
        ({"v": math.inf}, {"v": math.inf}, "result.v (not finite)"),
    ],
)
def test_results_match_reject_twins(recomputed: dict[str, Any], published: dict[str, Any],
                                    where: str) -> None:
    assert results_match(recomputed, published) == where


def test_results_match_accepts_equal_twins() -> None:
    """The twins of the rejections: the same values and types match."""
    for value in (80, 80.0, 10**9, 0.1, -0.0, 5e-324, 1.7976931348623157e308, True, None,
                  "x", [1, 2.5, None], {"a": {"b": [0.0]}}):
        assert results_match({"v": value}, {"v": copy.deepcopy(value)}) is None


def test_every_leaf_of_every_result_is_compared() -> None:
    """Changing any single number of a real result -- a float by one ulp, an int by one --
    is reported at exactly its path."""
    for name in ("linear_regression", "kaplan_meier", "correlation", "crosstab"):
        d = decoded(name)
        numbers = [(p, v) for p, v in leaves(d)
                   if isinstance(v, int | float) and not isinstance(v, bool)]
        assert numbers
        for path, v in numbers:
            bumped = math.nextafter(v, math.inf) if isinstance(v, float) else v + 1
            assert results_match(d, set_at(d, path, bumped)) == path, (name, path)


# ---------------------------------------------------------------------------- CBOR round trip
def _round_trip(result: dict[str, Any]) -> dict[str, Any]:
    raw = E.sign(E.ResultEntry.for_totals("ab" * 32, [1], result, DECRYPTORS),
                 RESEARCHER).to_bytes()
    parsed = E.Entry.from_bytes(raw)
    assert isinstance(parsed, E.ResultEntry)
    return parsed.result


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_result_survives_its_canonical_encoding_bit_for_bit(name: str) -> None:
    d = decoded(name)
    back = _round_trip(d)
    assert results_match(d, back) is None
    for (p1, a), (p2, b) in zip(leaves(d), leaves(back), strict=True):
        assert p1 == p2 and type(a) is type(b)
        if isinstance(a, float):
            assert a.hex() == b.hex(), p1


@pytest.mark.parametrize("value", [
    0.1, 1 / 3, -2.5, 0.0, -0.0, 1.0, 0.5, 65504.0, 65505.0, 1e21, 3.4028234663852886e38,
    5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, math.nextafter(1.0, 2.0),
    math.nextafter(0.05, 0.0), float(2**53 - 1), 1e-310,
])
def test_awkward_doubles_survive_the_result_entry(value: float) -> None:
    """Deterministic CBOR writes a float in its shortest exact form (half, single or double)
    and reads it back as the same double: the published result is what was decoded."""
    back = _round_trip({"v": value, "vs": [value, -value]})
    for got, want in ((back["v"], value), (back["vs"][0], value), (back["vs"][1], -value)):
        assert type(got) is float and got.hex() == want.hex()


# ---------------------------------------------------------------------------- through check_query
STEP_14 = next(s for s in STEPS if s.number == 14)


def _view_rows(name: str, tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
               ) -> tuple[list[tuple[int, bytes]], Step]:
    """A query entry and its (possibly tampered) signed result entry, as log rows, and a
    stand-in for steps 8-13 that resolves the spec and statistic and takes the honest totals
    (those steps -- roster, signatures, range proofs, decryption -- have their own tests:
    tests/unit/test_protocol_checks.py; step 14 must not depend on them)."""
    spec, tot = case(name)
    qid = spec.query_id_for("researcher")
    result = decoded(name)
    if tamper is not None:
        result = tamper(result)
    q = E.sign(E.QueryEntry.for_spec(spec, "researcher"), RESEARCHER)
    r = E.sign(E.ResultEntry.for_totals(qid, list(tot), result, DECRYPTORS), RESEARCHER)

    def through_13(ctx: StepContext) -> str:
        ctx.view.spec = ctx.query().query_spec()
        ctx.stat = get(ctx.view.spec.statistic)
        ctx.view.totals = list(tot)
        return "stand-in for steps 8-13: the honest totals"

    return [(10, q.to_bytes()), (20, r.to_bytes())], Step(13, "totals", through_13)


def _check(rows: list[tuple[int, bytes]], through_13: Step) -> list[int]:
    from statledger.protocol.view import parse_entries

    seen: list[int] = []
    check_query(parse_entries(rows), steps=(through_13, STEP_14),
                on_step=lambda n, _d: seen.append(n))
    return seen


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("mean", "result.cells[1].value"),
        ("std", "result.cells[0].value"),
        ("correlation", "result.matrix[0][3]"),
        ("linear_regression", "result.p_value[2]"),
        ("linear_regression", "result.ci_upper[0]"),
        ("logistic_irls", "result.beta_next[1]"),
        ("kaplan_meier", "result.groups[0].ci_lower[40]"),
        ("logrank_3_groups", "result.logrank.p_value"),
    ],
)
def test_one_ulp_fails_step_14_through_check_query(name: str, path: str) -> None:
    rows, through_13 = _view_rows(name)
    assert _check(rows, through_13) == [13, 14]  # the honest twin passes
    value = dict(leaves(decoded(name)))[path]
    assert isinstance(value, float)
    for bumped in (math.nextafter(value, math.inf), math.nextafter(value, -math.inf)):
        rows, through_13 = _view_rows(name, lambda d, b=bumped: set_at(d, path, b))
        with pytest.raises(VerificationError) as ei:
            _check(rows, through_13)
        assert ei.value.step == "step 14" and ei.value.party == "researcher"
        assert f"differs from decode(totals) at {path}" in ei.value.reason


def test_count_off_by_one_at_a_billion_fails_step_14() -> None:
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "max_rows": 2**31})
    tot = [10**9]
    honest = get("count").decode(spec, tot).to_dict()
    assert honest["n"] == honest["value"] == 10**9

    def rows_for(result: dict[str, Any]) -> tuple[list[tuple[int, bytes]], Step]:
        q = E.sign(E.QueryEntry.for_spec(spec, "researcher"), RESEARCHER)
        r = E.sign(E.ResultEntry.for_totals(spec.query_id_for("researcher"), tot, result,
                                            DECRYPTORS), RESEARCHER)

        def through_13(ctx: StepContext) -> str:
            ctx.view.spec = ctx.query().query_spec()
            ctx.stat = get("count")
            ctx.view.totals = list(tot)
            return "stand-in"

        return [(1, q.to_bytes()), (2, r.to_bytes())], Step(13, "totals", through_13)

    assert _check(*rows_for(honest)) == [13, 14]
    for result, where in (
        ({**honest, "n": 10**9 + 1}, "result.n"),
        ({**honest, "value": 10**9 - 1}, "result.value"),
        ({**honest, "value": float(10**9)}, "result.value (type)"),
        ({**honest, "extra": 1}, "result.extra (unexpected)"),
        ({k: v for k, v in honest.items() if k != "notes"}, "result.notes (missing)"),
    ):
        with pytest.raises(VerificationError, match=rf"at {re.escape(where)}$") as ei:
            _check(*rows_for(result))
        assert ei.value.step == "step 14" and ei.value.party == "researcher"


def test_totals_that_do_not_decode_fail_step_14() -> None:
    """Counts no real rows give (a negative count in a group) cannot have a result: a
    published one fails step 14, blaming the querier, instead of escaping as an exception."""
    spec, tot = case("kaplan_meier")
    bad = list(tot)
    bad[0] = -1  # the control group "has" minus one row after the grid
    q = E.sign(E.QueryEntry.for_spec(spec, "researcher"), RESEARCHER)
    r = E.sign(E.ResultEntry.for_totals(spec.query_id_for("researcher"), bad,
                                        decoded("kaplan_meier"), DECRYPTORS), RESEARCHER)

    def through_13(ctx: StepContext) -> str:
        ctx.view.spec = ctx.query().query_spec()
        ctx.stat = get("kaplan_meier")
        ctx.view.totals = bad
        return "stand-in"

    with pytest.raises(VerificationError, match="the totals do not decode") as ei:
        _check([(1, q.to_bytes()), (2, r.to_bytes())], Step(13, "totals", through_13))
    assert ei.value.step == "step 14" and ei.value.party == "researcher"


# ---------------------------------------------------------------------------- determinism
def _all_bytes(names: list[str]) -> bytes:
    return b"".join(cbor_bytes(decoded(n)) for n in names)


def test_decode_twice_same_bytes() -> None:
    names = sorted(CASES)
    assert _all_bytes(names) == _all_bytes(names)


def test_decode_ignores_blas_threads_and_the_global_decimal_context() -> None:
    from threadpoolctl import threadpool_limits

    names = sorted(CASES)
    want = _all_bytes(names)
    with threadpool_limits(limits=1):
        assert _all_bytes(names) == want
    hostile = Context(prec=5, rounding=ROUND_DOWN, Emin=-10, Emax=10, traps=[])
    with localcontext(hostile):
        assert _all_bytes(names) == want


_SUBPROCESS = """
import sys, hashlib, json
import _pydecimal
if sys.argv[1] == "pydecimal":
    sys.modules["decimal"] = _pydecimal
sys.path.insert(0, sys.argv[2])
import test_exact_decode as T
from statledger.protocol.stats import exact
assert (exact.Decimal is _pydecimal.Decimal) == (sys.argv[1] == "pydecimal")
names = json.loads(sys.argv[3])
print(hashlib.sha256(T._all_bytes(names)).hexdigest())
"""


def _digest_in_subprocess(mode: str, names: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, mode, str(Path(__file__).parent),
         json.dumps(names)], capture_output=True, text=True, env=env, cwd=ROOT,
        timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_decode_in_a_fresh_interpreter_with_one_thread_same_bytes() -> None:
    names = sorted(CASES)
    want = hashlib.sha256(_all_bytes(names)).hexdigest()
    assert _digest_in_subprocess("c", names) == want


def test_pure_python_decimal_gives_the_same_bytes() -> None:
    """The C ``_decimal`` and the pure-Python ``_pydecimal`` both round every operation we use
    correctly, so they agree digit for digit: the decoders do not depend on which one a
    platform has."""
    names = ["std", "correlation", "linear_regression", "logistic_irls", "kaplan_meier"]
    want = hashlib.sha256(_all_bytes(names)).hexdigest()
    assert _digest_in_subprocess("pydecimal", names) == want


# ---------------------------------------------------------------------------- cross-checks
def test_to_float_and_sqrt_float_are_correctly_rounded() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        x = rng.uniform(1e-6, 1e6) * 10.0 ** rng.randrange(-200, 200)
        assert X.sqrt_float(Fraction(x)) == math.sqrt(x)  # math.sqrt is IEEE-exact
        q = Fraction(rng.randrange(1, 10**40), rng.randrange(1, 10**40))
        assert X.to_float(q) == float(q)
        s = X.sqrt_float(q)
        lo = (Fraction(math.nextafter(s, 0.0)) + Fraction(s)) / 2
        hi = (Fraction(s) + Fraction(math.nextafter(s, math.inf))) / 2
        assert lo * lo <= q <= hi * hi  # s is the float nearest to sqrt(q)
    assert X.sqrt_float(Fraction(9, 4)) == 1.5 and X.sqrt_float(0) == 0.0
    assert X.signed_sqrt_ratio(-3, 4) == -1.5
    with pytest.raises(MalformedError):
        X.sqrt_float(Fraction(-1, 2))


def test_constants_and_lgamma() -> None:
    assert X.dec_to_float(X._pi()) == math.pi
    for z in (Fraction(1, 2), Fraction(1), Fraction(3, 2), Fraction(7), Fraction(201, 2),
              Fraction(10**6 + 1, 2), Fraction(2**40)):
        got = X.dec_to_float(X.lgamma(z))
        assert got == pytest.approx(math.lgamma(float(z)), rel=1e-14, abs=1e-15)
    assert X.dec_to_float(X.lgamma(Fraction(1))) == 0.0  # ln 0! exactly, to 60 digits


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def test_tail_probabilities_match_scipy() -> None:
    for z in (0.0, 0.3, 1.0, 1.96, 3.5, 8.0, 20.0, 37.0):
        assert _rel(X.norm_sf2(Fraction(z) ** 2), 2 * stats.norm.sf(z)) < 1e-12
    for df in (1, 2, 3, 7, 30, 436, 10**4, 10**7):
        for t in (0.0, 0.05, 0.7, 1.96, 4.0, 12.0, 60.0):
            want = 2 * stats.t.sf(t, df)
            if want > 1e-290:
                assert _rel(X.t_sf2(Fraction(t) ** 2, df), want) < 1e-11, (df, t)
    for f, d1, d2, tol in ((0.0, 3, 10, 1e-11), (0.4, 1, 1, 1e-11), (2.5, 3, 40, 1e-11),
                           (40.0, 10, 431, 1e-11),
                           # scipy rounds x = d2 / (d2 + d1 f) to a double: at d2 = 10^6 that
                           # alone moves its answer by ~1e-11 (ours takes x exactly)
                           (1.1, 64, 10**6, 1e-9)):
        assert _rel(X.f_sf(Fraction(f), d1, d2), stats.f.sf(f, d1, d2)) < tol
    for x, df in ((0.0, 1), (0.5, 1), (3.84, 1), (7.5, 2), (30.0, 5), (1000.0, 1023), (300.0, 3)):
        assert _rel(X.chi2_sf(Fraction(x), df), stats.chi2.sf(x, df)) < 1e-11


def test_quantiles_match_scipy() -> None:
    for q in (Fraction(1, 40), Fraction(1, 20), Fraction(49, 100), Fraction(1, 10**12),
              Fraction(1, 10**300)):
        assert _rel(X.dec_to_float(X.norm_isf(q)), stats.norm.isf(float(q))) < 1e-13
    for df in (1, 2, 3, 5, 30, 436, 10**5):
        for alpha in (Fraction(1, 20), Fraction(1, 100), Fraction(1, 2)):
            want = stats.t.isf(float(alpha) / 2, df)
            assert _rel(X.dec_to_float(X.t_isf2(alpha, df)), want) < 1e-12, (df, alpha)


def _frac_inverse(a: list[list[int]]) -> list[list[Fraction]]:
    n = len(a)
    m = [[Fraction(x) for x in row] + [Fraction(int(i == j)) for j in range(n)]
         for i, row in enumerate(a)]
    for k in range(n):
        p = next(i for i in range(k, n) if m[i][k] != 0)
        m[k], m[p] = m[p], m[k]
        m[k] = [x / m[k][k] for x in m[k]]
        for i in range(n):
            if i != k and m[i][k] != 0:
                f = m[i][k]
                m[i] = [x - f * y for x, y in zip(m[i], m[k], strict=True)]
    return [row[n:] for row in m]


def test_integer_spd_inverse_is_exact() -> None:
    rng = random.Random(3)
    for n in (1, 2, 3, 5, 8):
        for _ in range(10):
            b = [[rng.randrange(-50, 51) for _ in range(n + 2)] for _ in range(n)]
            a = [[sum(x * y for x, y in zip(r1, r2, strict=True)) for r2 in b] for r1 in b]
            got = X.int_spd_inverse(a)
            want = _frac_inverse(a)
            assert got is not None
            adj, det = got
            assert det > 0
            assert [[Fraction(x, det) for x in row] for row in adj] == want
    assert X.int_spd_inverse([[1, 2], [2, 1]]) is None  # indefinite
    assert X.int_spd_inverse([[1, 1], [1, 1]]) is None  # singular
    assert X.int_spd_inverse([[0]]) is None
    big = 10**8  # VIF = 1 + big^2 > 10^14: nearly collinear, reported singular
    assert X.int_spd_inverse([[big * big + 1, big], [big, 1]]) is None
    assert X.int_spd_inverse([[10**6 + 1, 1000], [1000, 1]]) is not None


def test_psd_quadratic_form_matches_pinv() -> None:
    rng = np.random.default_rng(5)
    for n, rank in ((1, 1), (2, 1), (3, 3), (4, 2), (5, 3), (3, 0)):
        b = rng.integers(-9, 10, size=(n, rank))
        v = (b @ b.T).astype(int)
        z = (v @ rng.integers(-5, 6, size=n)).astype(int)  # in the range
        got = X.int_psd_quadratic_form(v.tolist(), z.tolist())
        assert got is not None
        want = float(z @ np.linalg.pinv(v.astype(float)) @ z)
        assert abs(got[0] / got[1] - want) <= 1e-9 * max(1.0, abs(want))
    assert X.int_psd_quadratic_form([[1, 0], [0, 0]], [1, 1]) is None  # z not in the range
    assert X.int_psd_quadratic_form([[-1]], [1]) is None  # not PSD


def test_ols_p_values_including_tiny_ones_match_statsmodels() -> None:
    import statsmodels.api as sm

    from statledger.protocol.fixedpoint import to_fixed

    spec, tot = case("linear_regression")
    v = get("linear_regression").decode(spec, list(tot)).values
    d = datasets.load("diabetes")
    cols = [to_fixed(np.clip(d[c], *DIABETES_BOUNDS[c]), spec.scale) / spec.scale
            for c in ("bmi", "bp", "s5", "target")]
    m = sm.OLS(cols[-1], sm.add_constant(np.column_stack(cols[:-1]))).fit()
    assert min(m.pvalues) < 1e-20  # the tail is exercised
    for ours, theirs in zip(v["p_value"], m.pvalues, strict=True):
        assert _rel(ours, theirs) < 1e-8
    assert _rel(v["f_p_value"], m.f_pvalue) < 1e-8
    ci = m.conf_int()
    assert max(_rel(a, b) for a, b in zip(v["ci_lower"], ci[:, 0], strict=True)) < 1e-9
    assert max(_rel(a, b) for a, b in zip(v["t"], m.tvalues, strict=True)) < 1e-9


def test_correlation_and_cosine_match_numpy() -> None:
    from statledger.protocol.fixedpoint import to_fixed

    spec, tot = case("correlation")
    d = datasets.load("diabetes")
    q = np.column_stack([to_fixed(np.clip(d[c], *DIABETES_BOUNDS[c]), spec.scale)
                         for c in spec.columns]) / spec.scale
    got = np.array(get("correlation").decode(spec, list(tot)).values["matrix"])
    assert np.max(np.abs(got - np.corrcoef(q, rowvar=False))) < 1e-13
    spec, tot = case("cosine")
    x, y = (to_fixed(np.clip(d[c], *DIABETES_BOUNDS[c]), spec.scale) for c in spec.columns)
    want = float(x @ y / np.sqrt(float(x @ x) * float(y @ y)))
    assert abs(get("cosine").decode(spec, list(tot)).values["value"] - want) < 1e-14


# ---------------------------------------------------------------------------- never NaN
def test_undefined_values_are_none_with_a_note() -> None:
    spec = QuerySpec.parse({"version": 1, "statistic": "linear_regression",
                            "columns": ["x", "y"], "bounds": {"x": [0, 10], "y": [0, 30]},
                            "params": {"target": "y", "features": ["x"]},
                            "min_cell_size": 1})
    stat = get("linear_regression")
    x = np.arange(10.0)
    perfect = stat.decode(spec, stat.encode(spec, {"x": x, "y": 2 * x + 1}))
    assert perfect.values["coef"] == [1.0, 2.0] and perfect.values["std_err"] == [0.0, 0.0]
    assert perfect.values["t"] == [None, None] and perfect.values["f_statistic"] is None
    assert any("perfect fit" in n for n in perfect.notes)
    flat = stat.decode(spec, stat.encode(spec, {"x": x, "y": np.full(10, 3.0)}))
    assert flat.values["r_squared"] is None and flat.values["adj_r_squared"] is None
    assert any("R-squared is undefined" in n for n in flat.notes)
    for res in (perfect, flat):
        cbor_bytes(res.to_dict())


FUZZ_SPECS: list[dict[str, Any]] = [
    {"statistic": "mean", "columns": ["a"], "categories": {"g": ["p", "q"]},
     "group_by": ["g"]},
    {"statistic": "std", "columns": ["a"]},
    {"statistic": "correlation", "columns": ["a", "b"]},
    {"statistic": "cosine", "columns": ["a", "b"]},
    {"statistic": "crosstab", "categories": {"g": ["p", "q"]}, "group_by": ["g"],
     "params": {"value": "a"}},
    {"statistic": "linear_regression", "columns": ["a", "b", "y"],
     "params": {"target": "y", "features": ["a", "b"]}},
    {"statistic": "logistic_approx", "columns": ["a", "b", "y"],
     "params": {"target": "y", "features": ["a", "b"]}},
    {"statistic": "logistic_irls", "columns": ["a", "b", "y"],
     "params": {"target": "y", "features": ["a", "b"], "beta": [0.5, -1.0, 2.0]}},
    {"statistic": "kaplan_meier", "columns": ["a", "y"], "categories": {"g": ["p", "q"]},
     "group_by": ["g"], "params": {"time": "a", "event": "y", "times": [1, 2, 4]}},
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.integers(0, len(FUZZ_SPECS) - 1))
def test_random_totals_decode_to_finite_numbers_or_none(data: st.DataObject,
                                                        which: int) -> None:
    spec = QuerySpec.parse({"version": 1, "bounds": {"a": [-3, 5], "b": [0, 2.5],
                                                     "y": [0, 1]},
                            "min_cell_size": 1, "max_rows": 60, "scale": 256,
                            **FUZZ_SPECS[which]})
    stat = get(spec.statistic)
    tot = [data.draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1]))
                     .filter(lambda v, lo=lo, hi=hi: lo <= v <= hi))
           for lo, hi in stat.layout(spec).ranges]
    try:
        res = stat.decode(spec, tot)
    except MalformedError as exc:
        assert spec.statistic == "kaplan_meier" and "totals" in str(exc)
        return
    d = res.to_dict()  # raises on NaN / inf
    for path, v in leaves(d):
        assert not isinstance(v, float) or math.isfinite(v), path
    assert cbor_bytes(d) == cbor_bytes(stat.decode(spec, tot).to_dict())

