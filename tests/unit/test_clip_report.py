"""Clipping is never silent and never exact (issue 12, "Messages that don't leak").

In process: a vertical owner's clip counts (protocol/vertical.py ``local_report``) against
numpy on its own selected rows, bucketed by the one ``calibration.clip_buckets``; the
vertical and horizontal refusals for more rows than ``max_rows`` are the one message
(``calibration.too_many_rows``), actionable and without a count; the querier's check of a
site's clip report (``calibration.check_clip_report``) plays a hostile site: an exact count,
a value, a column the query does not bound, terminal control text, a list instead of an
object; none is kept and none is echoed.  ``Result.clipped`` carries the last round's
buckets.  tests/integration/test_clip_report_e2e.py runs the same through real processes.
"""

from __future__ import annotations

import re
import secrets
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol import calibration
from statledger.protocol import vertical as V
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.results import Result, make_result

A, B = "provider-1", "provider-2"
A_COLS, B_COLS = ["x1", "x2"], ["z1", "y"]
BOUNDS = {"x1": [0.0, 10.0], "x2": [-5.0, 5.0], "z1": [0.0, 100.0], "y": [-50.0, 150.0]}


def vspec(bounds: dict[str, list[float]] | None = None, **over: Any) -> QuerySpec:
    part = {"kind": "vertical", "id_column": "pid", "owners": [A, B],
            "columns": {A: A_COLS, B: B_COLS}}
    obj: dict[str, Any] = {
        "version": 1, "statistic": "vertical_regression", "columns": [*A_COLS, *B_COLS],
        "bounds": bounds or BOUNDS, "scale": 64, "max_rows": 300, "min_cell_size": 5,
        "params": {"partition": part, "target": "y", "features": ["x1", "x2", "z1"]},
    }
    obj.update(over)
    return QuerySpec.parse(obj)


def tables(seed: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """Owner A (220 rows) and owner B (200 rows, 140 shared ids); A's ``x1`` spills over its
    upper bound on 37 rows, B's ``y`` under its lower bound on 4; a filter later drops some."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"p{i:04d}" for i in rng.permutation(500)[:280]], dtype=object)
    na, nb = 220, 200
    x1 = rng.uniform(0, 10, na)
    x1[rng.choice(na, 37, replace=False)] = rng.uniform(10.5, 20, 37)
    y = rng.uniform(0, 100, nb)
    y[rng.choice(nb, 4, replace=False)] = rng.uniform(-90, -60, 4)
    ta = {"pid": ids[:na], "x1": x1, "x2": rng.uniform(-4, 4, na)}
    tb = {"pid": ids[80:], "z1": rng.uniform(0, 100, nb), "y": y}
    return ta, tb


def _outside(x: np.ndarray, lo: float, hi: float) -> int:
    return int(np.count_nonzero((x < lo) | (x > hi)))


# ---------------------------------------------------------------------------- vertical owners
def test_vertical_owners_report_their_own_clip_counts() -> None:
    spec = vspec()
    ta, tb = tables()
    ra = V.local_report(spec, ta, A)
    rb = V.local_report(spec, tb, B)
    # numpy on each owner's own rows and columns, nothing of the partner's
    assert ra.clipped == {"x1": 37, "x2": 0}
    assert ra.clipped["x1"] == _outside(ta["x1"], 0, 10)
    assert rb.clipped == {"z1": 0, "y": 4} and rb.clipped["y"] == _outside(tb["y"], -50, 150)
    assert calibration.clip_buckets(ra) == {"x1": "10-99", "x2": "0"}
    assert calibration.clip_buckets(rb) == {"y": "1-9", "z1": "0"}


def test_vertical_clip_counts_follow_the_selection() -> None:
    """Over the owner's selected rows, as its phases encode them: a row with a missing value
    in one of its columns is dropped (listwise), and so is its clipped value."""
    spec = vspec()
    ta, _ = tables()
    over = np.flatnonzero(ta["x1"] > 10)[:5]
    ta["x2"] = ta["x2"].copy()
    ta["x2"][over] = np.nan
    keep = ~np.isnan(ta["x2"])
    rep = V.local_report(spec, ta, A)
    assert rep.clipped["x1"] == _outside(ta["x1"][keep], 0, 10) == 32
    assert rep.n_selected == 215


def test_vertical_bounds_that_clip_nothing_report_zero() -> None:
    wide = {"x1": [0.0, 25.0], "x2": [-5.0, 5.0], "z1": [0.0, 100.0], "y": [-100.0, 150.0]}
    spec = vspec(wide)
    ta, tb = tables()
    for owner, t in ((A, ta), (B, tb)):
        buckets = calibration.clip_buckets(V.local_report(spec, t, owner))
        assert set(buckets.values()) == {"0"}
        assert calibration.clip_warning(owner, buckets) is None


def test_vertical_report_refuses_a_non_owner_and_missing_columns() -> None:
    spec = vspec()
    ta, tb = tables()
    with pytest.raises(PolicyError, match="owner provider-3: not an owner"):
        V.local_report(spec, ta, "provider-3")
    with pytest.raises(PolicyError, match=f"owner {B}: column 'z1' is missing"):
        V.local_report(spec, {k: v for k, v in tb.items() if k != "z1"}, B)


# ---------------------------------------------------------------------------- one refusal
def test_too_many_rows_is_one_message_on_both_paths() -> None:
    ta, _ = tables()
    with pytest.raises(PolicyError) as vert:
        V.local_report(vspec(max_rows=100), ta, A)
    with pytest.raises(PolicyError) as phase:  # owner A's first phase, the same refusal
        V.a_rows(vspec(max_rows=100), "q", ta, V.OwnerConfig(A, {B: secrets.token_bytes(32)}),
                 keygen()[1])
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["x1"],
                            "bounds": {"x1": [0.0, 10.0]}, "max_rows": 100})
    with pytest.raises(PolicyError) as horiz:
        calibration.wire_encode(spec, ta, A)
    want = f"site {A} has more rows than max_rows; raise max_rows"
    assert str(vert.value) == str(phase.value) == str(horiz.value) == want
    assert str(calibration.too_many_rows(A)) == want
    assert not re.search(r"\d", want.replace(A, ""))  # no row count, no value


# ---------------------------------------------------------------------------- the querier's check
def hspec() -> QuerySpec:
    return QuerySpec.parse({"version": 1, "statistic": "linear_regression",
                            "columns": ["bmi", "bp", "target"],
                            "bounds": {"bmi": [20.0, 30.0], "bp": [60.0, 140.0],
                                       "target": [25.0, 350.0]},
                            "params": {"target": "target", "features": ["bmi", "bp"]},
                            "max_rows": 1000})


def test_check_clip_report_keeps_well_formed_buckets() -> None:
    spec = hspec()
    rep = {"target": "0", "bmi": "10-99", "bp": "1-9"}
    assert calibration.check_clip_report(rep, spec, "site-a") == rep
    assert list(calibration.check_clip_report(rep, spec, "site-a")) == ["bmi", "bp", "target"]
    assert calibration.check_clip_report({}, spec, "site-a") == {}
    assert calibration.check_clip_report(None, spec, "site-a") == {}  # no report sent
    for b in calibration.CLIP_BUCKETS:
        assert calibration.check_clip_report({"bmi": b}, spec, "s") == {"bmi": b}


@pytest.mark.parametrize("sent", [
    {"bmi": 42},  # an exact count
    {"bmi": "42"},  # an exact count as text
    {"bmi": "10-99 (42)"},  # a count smuggled next to a bucket
    {"bmi": 27.3},  # a value
    {"bmi": "1-9", "bp": None},
    {"bmi": "\x1b[2Jsecret"},  # terminal control text
    {"bmi": ["1-9"]},
    {"bmi": ""},
    {"age": "1-9"},  # a column the query does not bound
    {"\x1b[31mbmi": "1-9"},
    {"": "0"},
    {7: "0"},
    ["bmi", "1-9"],  # a list
    "bmi (1-9)",
    42,
])
def test_check_clip_report_refuses_a_hostile_site(sent: Any) -> None:
    with pytest.raises(MalformedError, match="^site-b: its clip report") as info:
        calibration.check_clip_report(sent, hspec(), "site-b")
    msg = str(info.value)
    for bad in ("42", "27.3", "secret", "\x1b", "age"):
        assert bad not in msg  # never echoed


def test_querier_keeps_good_reports_and_drops_hostile_ones() -> None:
    """The querier's reading of the contribution answers (nodes/querier.py ``clip_reports``):
    an honest site's buckets are kept and warned about; a hostile site's report (a list, an
    exact count, control text) neither crashes the query nor reaches the warning or the
    result; a site with no report (or an answer that is not an object) has none."""
    from statledger.nodes.querier import clip_reports

    said: list[str] = []
    answers = {
        "provider-1": {"index": 4, "clipped": {"bmi": "10-99", "bp": "0", "target": "0"}},
        "provider-2": {"index": 5, "clipped": ["bmi", "1-9"]},
        "provider-3": {"index": 6, "clipped": {"bmi": 42}},
        "provider-4": {"index": 7, "clipped": {"bmi": "\x1b[2J1-9"}},
        "provider-5": {"index": 8, "clipped": {"bmi": "0", "bp": "0", "target": "0"}},
        "provider-6": {"index": 9},
        "provider-7": 10,
    }
    got = clip_reports(answers, hspec(), said.append)
    assert got == {"provider-1": {"bmi": "10-99", "bp": "0", "target": "0"},
                   "provider-5": {"bmi": "0", "bp": "0", "target": "0"}, "provider-6": {}}
    assert said[-1] == "warning: provider-1 clipped values to the bounds: bmi (10-99)"
    bad = said[:-1]
    assert [m.split(":")[1].strip() for m in bad] == ["provider-2", "provider-3", "provider-4"]
    assert all(m.endswith("whether it clipped values is unknown") for m in bad)
    assert not any("42" in m or "\x1b" in m for m in said)


def test_clip_warning_names_the_columns_with_a_bucket() -> None:
    assert calibration.clip_warning("provider-1", {"bmi": "10-99", "bp": "0"}) == \
        "provider-1 clipped values to the bounds: bmi (10-99)"
    assert calibration.clip_warning("site north", {"target": "100+", "bmi": "1-9"}) == \
        "site north clipped values to the bounds: bmi (1-9), target (100+)"
    assert calibration.clip_warning("provider-1", {"bmi": "0"}) is None
    assert calibration.clip_warning("provider-1", {}) is None


# ---------------------------------------------------------------------------- the API's Result
def _outcome(clipped: dict[str, dict[str, str]], qid: str) -> Any:
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "max_rows": 100})
    res = get("count").decode(spec, [10])
    return SimpleNamespace(spec=spec, result=res, certificate=b"(placeholder)",
                           query_id=qid, contributors=["a", "b"], clipped=clipped)


def test_result_carries_the_last_rounds_buckets() -> None:
    first = _outcome({"a": {"bmi": "100+"}}, "ab" * 32)
    last = _outcome({"a": {"bmi": "1-9"}, "b": {"bmi": "0"}}, "cd" * 32)
    r = make_result([first, last])
    assert r.clipped == {"a": {"bmi": "1-9"}, "b": {"bmi": "0"}}
    last.clipped["a"]["bmi"] = "100+"  # a copy: the outcome cannot change the result later
    assert r.clipped["a"] == {"bmi": "1-9"}
    assert "clipped" not in r.to_dict()  # not a released number: not in the certified values
    # no report at all (an outcome without one, e.g. pull mode): empty, not missing
    bare = SimpleNamespace(**{k: v for k, v in vars(_outcome({}, "ef" * 32)).items()
                              if k != "clipped"})
    assert make_result([bare]).clipped == {}
    assert Result(bare.spec, {}, "", [b"x"], ["ef" * 32], []).clipped == {}  # type: ignore[list-item]


# ---------------------------------------------------------------------------- withheld reports
# The adversary is the querier: it chooses the filter and the bounds, and the buckets are
# counted before suppression and without noise.  Every case below runs what the provider
# runs (nodes/provider_service.py: ``calibration.wire_encode`` then ``calibration.clip_report``
# on the horizontal path, ``vertical.local_report`` then ``clip_report`` on the vertical one).
SALARY = 187_654.0


def people(n: int = 40, seed: int = 11) -> dict[str, Any]:
    """``n`` people with distinct ages 20..; the one aged 47 earns :data:`SALARY`."""
    rng = np.random.default_rng(seed)
    age = np.arange(20, 20 + n, dtype=float)
    salary = rng.uniform(20_000, 90_000, n)
    salary[age == 47] = SALARY
    return {"age": age, "salary": salary}


def xspec(hi: float, k: int = 5, where: list[dict[str, Any]] | None = None,
          privacy: dict[str, Any] | None = None) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "mean", "columns": ["salary"],
        "bounds": {"salary": [0.0, hi], "age": [0.0, 120.0]}, "max_rows": 1000,
        "min_cell_size": k, "filters": where if where is not None else [
            {"column": "age", "op": "==", "value": 47}]}
    if privacy is not None:
        obj["privacy"] = privacy
    return QuerySpec.parse(obj)


def provider_report(spec: QuerySpec, table: dict[str, Any]) -> dict[str, str]:
    """What the provider sends the querier for ``spec`` over ``table``."""
    _, report = calibration.wire_encode(spec, table, "provider-1")
    return calibration.clip_report(spec, report)


def bisect(oracle: Any, lo: float = 0.0, hi: float = 1e6, steps: int = 40) -> float | None:
    """The attack: the smallest upper bound ``x`` at which nothing is clipped, by bisection
    on whether ``oracle(x)`` says ``"0"``; None when the oracle never answers with a bucket."""
    if oracle(hi) not in calibration.CLIP_BUCKETS:
        return None
    for _ in range(steps):
        mid = (lo + hi) / 2
        b = oracle(mid)
        if b not in calibration.CLIP_BUCKETS:
            return None
        lo, hi = (lo, mid) if b == "0" else (mid, hi)
    return hi


def test_bisection_on_one_person_gets_withheld_for_every_bound() -> None:
    t = people()
    # the premise: the raw buckets are the oracle (the old report recovers the salary)
    def raw(x: float) -> str:
        return calibration.clip_buckets(calibration.wire_encode(xspec(x), t, "p")[1])["salary"]

    got = bisect(raw)
    assert got is not None and abs(got - SALARY) < 1e-3
    # what the provider sends: withheld for every bound, so bisection learns nothing
    sent = [provider_report(xspec(x), t) for x in (1.0, 50_000.0, SALARY - 1, SALARY + 1, 1e6)]
    assert all(r == {"salary": calibration.CLIP_WITHHELD_SMALL} for r in sent)
    assert bisect(lambda x: provider_report(xspec(x), t)["salary"]) is None
    # a selection of k - 1 rows is withheld too; exactly k rows is not
    four = [{"column": "age", "op": ">=", "value": 47}, {"column": "age", "op": "<", "value": 51}]
    assert set(provider_report(xspec(1e6, where=four), t).values()) == \
        {calibration.CLIP_WITHHELD_SMALL}
    five = [{"column": "age", "op": ">=", "value": 47}, {"column": "age", "op": "<", "value": 52}]
    assert provider_report(xspec(1e6, where=five), t) == {"salary": "0"}


def test_a_selection_of_k_rows_keeps_its_bucket_and_reveals_only_its_order_statistic() -> None:
    """The twin: at least ``min_cell_size`` selected rows get their buckets; what bisection
    then finds is the selection's largest value (the ``max`` statistic's class,
    docs/privacy.md), here the salary of the richest of the five."""
    t = people()
    five = [{"column": "age", "op": ">=", "value": 45}, {"column": "age", "op": "<", "value": 50}]
    sel = t["salary"][(t["age"] >= 45) & (t["age"] < 50)]
    assert sel.size == 5
    assert provider_report(xspec(50_000.0, where=five), t)["salary"] == \
        ("0" if sel.max() <= 50_000 else "1-9")
    got = bisect(lambda x: provider_report(xspec(x, where=five), t)["salary"])
    assert got is not None and abs(got - float(sel.max())) < 1e-3


def test_min_cell_size_one_reports_buckets_for_one_person() -> None:
    t = people()
    assert provider_report(xspec(SALARY - 1, k=1), t) == {"salary": "1-9"}
    assert provider_report(xspec(SALARY + 1, k=1), t) == {"salary": "0"}
    # an empty selection is below any k: withheld (its buckets would all be "0" anyway)
    none = [{"column": "age", "op": ">", "value": 119}]
    assert set(provider_report(xspec(1.0, k=1, where=none), t).values()) == \
        {calibration.CLIP_WITHHELD_SMALL}


@pytest.mark.parametrize("privacy", [{"mechanism": "zcdp", "rho": 1.0},
                                     {"mechanism": "approx", "epsilon": 1.0, "delta": 1e-6}])
def test_a_dp_query_reports_no_clip_count(privacy: dict[str, Any]) -> None:
    t = people()
    everyone: list[dict[str, Any]] = []
    for x in (1.0, 50_000.0, SALARY + 1):  # 40 rows, all or some clipped: never a bucket
        rep = provider_report(xspec(x, where=everyone, privacy=privacy), t)
        assert rep == {"salary": calibration.CLIP_WITHHELD_DP}
    assert provider_report(xspec(1.0, where=everyone), t)["salary"] == "10-99"  # exact twin
    assert bisect(lambda x: provider_report(xspec(x, privacy=privacy), t)["salary"]) is None


def test_vertical_owner_withholds_its_counts() -> None:
    """The adversary: a querier asking two vertical queries whose owner-side selections
    differ by one row (owner A's columns with and without a column that row misses).  The
    differencing history records the JOINED rows, not an owner's own selection, so the
    buckets of the two would read off that row's value by sweeping the bounds.  A vertical
    owner therefore withholds its counts, whatever its rows and k."""
    ta, _ = tables()
    assert calibration.clip_buckets(V.local_report(vspec(), ta, A)) == \
        {"x1": "10-99", "x2": "0"}  # what the owner counted
    for k in (1, 4, 5):
        assert calibration.clip_report(vspec(min_cell_size=k), V.local_report(
            vspec(min_cell_size=k), ta, A)) == dict.fromkeys(
            ["x1", "x2"], calibration.CLIP_WITHHELD_VERTICAL)
    # two owner-side selections one row apart: the raw buckets flip, the reports do not
    few = {c: a.copy() for c, a in ta.items()}
    over = int(np.flatnonzero(ta["x1"] > 10)[0])
    few["x2"][np.arange(len(few["x2"])) >= 4] = np.nan
    few["x1"][0], few["x2"][0] = few["x1"][over], 0.0
    more = {c: a.copy() for c, a in few.items()}
    more["x2"][0] = np.nan  # the one row with the clipped value drops out listwise
    reps = [V.local_report(vspec(min_cell_size=1), t, A) for t in (few, more)]
    assert [calibration.clip_buckets(r)["x1"] for r in reps] == ["1-9", "0"]  # the oracle
    assert {calibration.clip_report(vspec(min_cell_size=1), r)["x1"] for r in reps} == \
        {calibration.CLIP_WITHHELD_VERTICAL}


def test_a_vertical_query_admits_only_its_withheld_form() -> None:
    w = dict.fromkeys(["x1", "x2"], calibration.CLIP_WITHHELD_VERTICAL)
    assert calibration.check_clip_report(w, vspec(), "owner-a") == w
    assert calibration.clip_withheld(w) == "vertical query"
    for sent in ({"x1": "10-99"}, {"x1": "0", "x2": "0"},
                 {"x1": calibration.CLIP_WITHHELD_SMALL},
                 {"x1": calibration.CLIP_WITHHELD_VERTICAL, "x2": "0"}):
        with pytest.raises(MalformedError, match="^owner-a: its clip report"):
            calibration.check_clip_report(sent, vspec(), "owner-a")
    said: list[str] = []
    from statledger.nodes.querier import clip_reports

    assert clip_reports({"owner-a": {"clipped": w}, "owner-b": {"clipped": w}}, vspec(),
                        said.append) == {"owner-a": w, "owner-b": w}
    assert said == ["clip counts withheld (vertical query)"]


def test_check_clip_report_accepts_exactly_the_withheld_form_of_the_spec() -> None:
    exact, dp = xspec(1e6), xspec(1e6, privacy={"mechanism": "zcdp", "rho": 1.0})
    small = {"salary": calibration.CLIP_WITHHELD_SMALL, "age": calibration.CLIP_WITHHELD_SMALL}
    withheld_dp = dict.fromkeys(["salary", "age"], calibration.CLIP_WITHHELD_DP)
    assert calibration.check_clip_report(small, exact, "s") == small
    assert calibration.check_clip_report(withheld_dp, dp, "s") == withheld_dp
    assert calibration.check_clip_report({}, dp, "s") == {}
    assert calibration.check_clip_report(None, dp, "s") == {}
    assert calibration.clip_withheld(small) == "fewer rows than min_cell_size"
    assert calibration.clip_withheld(withheld_dp) == "DP query"
    assert calibration.clip_withheld({"salary": "1-9"}) is None
    assert calibration.clip_withheld({}) is None
    assert calibration.clip_warning("s", small) is None
    assert calibration.clip_warning("s", withheld_dp) is None


@pytest.mark.parametrize(("dp", "sent"), [
    (True, {"salary": "0"}),  # a bucket on a DP query: an un-noised count
    (True, {"salary": "1-9", "age": "withheld (DP query)"}),
    (True, {"salary": "withheld (fewer rows than min_cell_size)"}),  # the wrong reason
    (False, {"salary": "withheld (DP query)"}),  # a DP reason on an exact query
    (False, {"salary": "withheld (fewer rows than min_cell_size)", "age": "1-9"}),  # mixed
    (False, {"salary": "withheld"}),
    (False, {"salary": "withheld (vertical query)"}),  # a vertical reason on a horizontal one
    (True, {"salary": "withheld (vertical query)"}),
    (False, {"salary": "withheld (fewer rows than min_cell_size) 42"}),
    (False, {"salary": "WITHHELD (fewer rows than min_cell_size)"}),
    (False, {"salary": "withheld (fewer rows than min_cell_size"}),  # truncated
    (True, {"salary": "withheld (DP query)\x1b[2J"}),
    (True, {"withheld": "dp"}),  # a report-level form: "withheld" is no bounded column
    (True, {"salary": {"withheld": "dp"}}),
    (True, "withheld (DP query)"),
    (True, ["withheld (DP query)"]),
])
def test_check_clip_report_refuses_a_malformed_withheld_form(dp: bool, sent: Any) -> None:
    spec = xspec(1e6, privacy={"mechanism": "zcdp", "rho": 1.0} if dp else None)
    with pytest.raises(MalformedError, match="^site-b: its clip report") as info:
        calibration.check_clip_report(sent, spec, "site-b")
    assert "42" not in str(info.value) and "\x1b" not in str(info.value)


def test_querier_says_withheld_once_for_dp_and_per_site_below_k() -> None:
    from statledger.nodes.querier import clip_reports

    dp = xspec(1e6, privacy={"mechanism": "zcdp", "rho": 1.0})
    said: list[str] = []
    w = {"salary": calibration.CLIP_WITHHELD_DP, "age": calibration.CLIP_WITHHELD_DP}
    got = clip_reports({"provider-1": {"clipped": w}, "provider-2": {"clipped": w},
                        "provider-3": {"clipped": {"salary": "10-99"}}}, dp, said.append)
    assert got == {"provider-1": w, "provider-2": w}  # never a guessed number
    assert said == ["warning: provider-3: its clip report for column 'salary' is not one of "
                    "'withheld (DP query)'; whether it clipped values is unknown",
                    "clip counts withheld (DP query)"]
    said.clear()
    s = {"salary": calibration.CLIP_WITHHELD_SMALL, "age": calibration.CLIP_WITHHELD_SMALL}
    got = clip_reports({"provider-1": {"clipped": {"salary": "1-9", "age": "0"}},
                        "provider-2": {"clipped": s}}, xspec(1e6), said.append)
    assert got == {"provider-1": {"age": "0", "salary": "1-9"}, "provider-2": s}
    assert said == ["warning: provider-1 clipped values to the bounds: salary (1-9)",
                    "provider-2: clip counts withheld (fewer rows than min_cell_size)"]


def test_result_carries_the_withheld_state() -> None:
    w = {"bmi": calibration.CLIP_WITHHELD_DP}
    r = make_result([_outcome({"a": w, "b": w}, "ab" * 32)])
    assert r.clipped == {"a": w, "b": w}
    assert "clipped" not in r.to_dict()
