"""How DP results are SHOWN (issue 12, item 2: "report every released number with its noise
sd / 95 % interval"), in process: ``verify --show`` / ``show`` print what step 14 decoded
(unscaled by the weights, with the logged noise), never a second decode of the wire totals;
every released number with its noise sd and 95 % interval; a DP regression's summary and the
Python API state the coefficients' noise (the ``[0.025 0.975]`` columns are sampling-only);
and the budget split ``plan`` states, recomputed from the spec, next to the result.

The DP results are real decodes: the owners' wire encodings of a bundled dataset, plus one
draw of the noise law of docs/noise.md (``calibration.simulate_noise``) at the parameters the
querier calibrates, decoded by step 14 itself on a hand-built step context.  The adversary
of step 14's twin is a querier publishing a result other than decode(totals): the verifier
refuses it and nothing is shown.  tests/integration/test_dp_display_e2e.py runs the same on a
real certificate of ``statledger run --budget``.
"""

from __future__ import annotations

import functools
import json
import re
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from statledger.proofs.errors import VerificationError
from statledger.protocol import calibration, datasets, noise
from statledger.protocol.checks import StepContext, step_14_result
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats.base import StatResult, fmt
from statledger.protocol.view import QueryView
from statledger.results import RegressionResult, Result, make_result
from statledger.verifier.report import STEPS, Report
from statledger.verifier.show import (
    MAX_NOISE_ROWS,
    budget_table,
    noise_table,
    render_html,
    render_text,
    shown_from_report,
)

ROOT = Path(__file__).resolve().parents[2]
N_COMPUTE = 3
EVIL = '<script>document.title="pwned"</script>'

MEAN = json.loads((ROOT / "examples" / "dp_mean.json").read_text())
OLS = {**json.loads((ROOT / "examples" / "linear_regression.json").read_text()),
       "privacy": {"mechanism": "zcdp", "rho": 1.0}}
EXACT = {"mechanism": "none"}


def _wire_totals(spec: QuerySpec, name: str = "diabetes") -> list[int]:
    """What the owners' encrypted vectors sum to: every site's wire encoding, added."""
    tot = [0] * len(calibration.wire_layout(spec))
    for s in datasets.sites(name)[:2]:
        vals, _ = calibration.wire_encode(spec, datasets.load(name, s))
        tot = [a + b for a, b in zip(tot, vals, strict=True)]
    return tot


def _params(spec: QuerySpec) -> noise.NoiseParams:
    """The querier's calibration (as ``calibration.plan`` and the nodes make it): a search of
    seconds, made once per spec in this module."""
    return _calibrated(spec.model_dump_json())


@functools.cache
def _calibrated(key: str) -> noise.NoiseParams:
    spec = QuerySpec.parse(key)
    rho = Fraction(str(spec.privacy.rho))
    return noise.calibrate(calibration.privacy_profile(spec), rho, N_COMPUTE, N_COMPUTE,
                           entries=len(calibration.wire_sensitivity(spec)))


def _step14(spec: QuerySpec, totals: list[int], params: noise.NoiseParams | None,
            published: dict[str, Any] | None = None) -> QueryView:
    """Run step 14 on a hand-built context: the totals of step 13, the noise round of step
    10 (its parameters and set size), the result entry publishing ``published`` (by default
    the honest decode, through JSON as on the log)."""
    info = None if params is None else calibration.NoiseInfo(params, N_COMPUTE)
    if published is None:
        published = json.loads(json.dumps(calibration.decode(spec, totals, info).to_dict()))
    view = QueryView(spec=spec, totals=totals)
    view.query = SimpleNamespace(querier="querier", spec=spec.model_dump())  # type: ignore[assignment]
    view.result = (7, SimpleNamespace(result=published, decryptors=("c0", "c1", "c2")),  # type: ignore[assignment]
                   b"")
    rnd = None if params is None else SimpleNamespace(
        params=params, members=tuple((i, f"c{i}") for i in range(N_COMPUTE)))
    step_14_result(StepContext(view=view, noise=rnd))  # type: ignore[arg-type]
    return view


def _dp(obj: dict[str, Any]) -> tuple[QuerySpec, list[int], QueryView]:
    """A DP query's noisy wire totals and step 14's view of them (one noise draw per spec
    in this module: the tests only read it)."""
    return _dp_once(json.dumps(obj, sort_keys=True))


@functools.cache
def _dp_once(key: str) -> tuple[QuerySpec, list[int], QueryView]:
    spec = QuerySpec.parse(key)
    params = _params(spec)
    exact = _wire_totals(spec)
    totals = [v + z for v, z in zip(exact, calibration.simulate_noise(params, N_COMPUTE),
                                    strict=True)]
    return spec, totals, _step14(spec, totals, params)


def _exact(obj: dict[str, Any]) -> tuple[QuerySpec, list[int], QueryView]:
    spec = QuerySpec.parse({**obj, "privacy": EXACT})
    totals = _wire_totals(spec)
    return spec, totals, _step14(spec, totals, None)


def _valid_report(view: QueryView) -> Report:
    report = Report(source="x.cert", trust="self-asserted")
    for n in STEPS:
        report.passed(n, "ok")
    report.view = view
    report.query_id = "ab" * 32
    return report


def _true_n(spec: QuerySpec) -> int:
    return sum(len(datasets.load("diabetes", s)["bmi"]) for s in datasets.sites("diabetes")[:2])


# ------------------------------------------------------------------ step 14 -> show


def test_step_14_keeps_the_result_it_certified_and_nothing_else() -> None:
    spec, totals, view = _dp(MEAN)
    assert isinstance(view.decoded_result, StatResult)
    assert view.decoded_result.to_dict() == view.decoded
    # reject twin: a querier publishing another n fails step 14, and no result is kept
    bad = dict(view.decoded or {})
    bad["n"] = bad["n"] + 1
    with pytest.raises(VerificationError, match="step 14"):
        _step14(spec, totals, _params(spec), published=bad)
    twin = QueryView(spec=spec, totals=totals)
    assert twin.decoded_result is None


def test_show_prints_step_14s_dp_mean_with_its_noise_and_split() -> None:
    """The bug: show decoded the *scaled* wire totals with the bare decoder (n in the
    hundreds of millions, the mean ~1e-5).  Now it shows step 14's result: n within a few
    units of the true count, the mean near the exact one, each with sd and interval."""
    spec, totals, view = _dp(MEAN)
    n_true = _true_n(spec)
    # what the old code showed: the statistic's decoder on the wire totals (reject twin)
    wrong = get(spec.statistic).decode(spec, totals).values
    assert abs(wrong["n"] - n_true) > 1000
    sh = shown_from_report(_valid_report(view))
    assert sh.result is view.decoded_result
    got = sh.result.values
    assert abs(got["n"] - n_true) <= 10
    exact = get("mean").decode(spec, calibration.unscale(spec, _wire_totals(spec))).values
    assert abs(got["value"] - exact["value"]) < 0.05 * exact["value"]
    dp = got["dp"]
    text = render_text(sh)
    assert fmt(wrong["n"]) not in text
    rows = {r[0]: r for r in noise_table(sh.result).rows}  # type: ignore[union-attr]
    for path in ("n", "value"):
        lo, hi = dp["ci95"][path]
        assert rows[path] == [path, got[path], dp["value_sd"][path], lo, hi]
        line = next(x for x in text.splitlines() if x.split()[:1] == [path])
        assert line.split() == [path, fmt(got[path]), fmt(dp["value_sd"][path]), fmt(lo),
                                fmt(hi)]
    # the budget split, from plan's function
    share = calibration.budget_share(spec)
    assert [r[0] for r in budget_table(spec).rows] == list(share)  # type: ignore[union-attr]
    assert "budget split over the encoded entries" in text
    page = render_html(sh)
    assert 'class="noise"' in page and 'class="budget"' in page
    cells = _cells(page, "noise")
    assert ["n", fmt(got["n"]), fmt(dp["value_sd"]["n"]), fmt(dp["ci95"]["n"][0]),
            fmt(dp["ci95"]["n"][1])] in cells
    assert [[lab, fmt(100 * s)] for lab, s in share.items()] == _cells(page, "budget")


def test_exact_twin_is_shown_as_before() -> None:
    spec, totals, view = _exact(MEAN)
    sh = shown_from_report(_valid_report(view))
    assert sh.result is not None
    before = get(spec.statistic).decode(spec, totals)  # the old path, exact: the same
    assert sh.result.to_dict() == before.to_dict()
    assert render_text(sh).endswith(before.summary())
    assert noise_table(sh.result) is None and budget_table(spec) is None
    page = render_html(sh)
    assert 'class="noise"' not in page and 'class="budget"' not in page
    assert "noise sd" not in page and "budget split" not in render_text(sh)


def test_invalid_report_shows_no_dp_result() -> None:
    _, _, view = _dp(MEAN)
    report = _valid_report(view)
    report.failed(VerificationError("bad share", step="step 12", party="c1"), 12)
    sh = shown_from_report(report)
    assert sh.result is None
    assert 'class="noise"' not in render_html(sh) and "noise sd" not in render_text(sh)


def test_noise_rows_are_capped_and_hostile_paths_escaped() -> None:
    g = "g" + EVIL
    obj = {"version": 1, "statistic": "crosstab", "group_by": [g],
           "categories": {g: [EVIL, *(f"c{i}" for i in range(70))]},
           "max_rows": 1000, "min_cell_size": 1,
           "privacy": {"mechanism": "zcdp", "rho": 1.0}}
    spec = QuerySpec.parse(obj)
    stat = get("crosstab")
    plain = [3] * len(stat.layout(spec))
    res = calibration.decode(spec, [c * v for c, v in zip(calibration.weights(spec), plain,
                                                          strict=True)],
                             calibration.NoiseInfo(_params(spec), N_COMPUTE))
    rows = calibration.noise_rows(res.values)
    t = noise_table(res)
    assert t is not None
    if len(rows) > MAX_NOISE_ROWS:
        assert len(t.rows) == MAX_NOISE_ROWS + 1 and "more" in t.rows[-1][0]
    else:  # pragma: no cover - the layout above has more
        assert len(t.rows) == len(rows)
    view = QueryView(spec=spec, totals=plain)
    view.query = SimpleNamespace(querier="q")  # type: ignore[assignment]
    view.decoded_result = res
    page = render_html(shown_from_report(_valid_report(view)))
    assert "<script" not in page.lower()


# ------------------------------------------------------------------ regression summary


def _coef_noise_lines(summary: str, terms: list[str]) -> dict[str, list[str]]:
    lines = summary.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("DP noise per coefficient"))
    out = {}
    for x in lines[start:]:
        parts = x.split()
        if parts and parts[0] in terms and parts[0] not in out:
            out[parts[0]] = parts[1:]
    return out


def test_dp_regression_summary_states_each_coefficients_noise() -> None:
    spec, _, view = _dp(OLS)
    res = view.decoded_result
    assert res is not None
    v = res.values
    s = res.summary()
    assert "sampling-only" in s and "1.96 noise sd" in s
    noisy = _coef_noise_lines(s, v["terms"])
    assert list(noisy) == v["terms"]
    for i, t in enumerate(v["terms"]):
        sd = v["dp"]["value_sd"][f"coef[{i}]"]
        lo, hi = v["dp"]["ci95"][f"coef[{i}]"]
        assert noisy[t] == [fmt(sd), fmt(lo), fmt(hi)]
        assert lo < v["coef"][i] < hi
    # the summary is rendering only: the certified dict is unchanged by it
    assert "DP noise per coefficient" not in json.dumps(res.to_dict())


def test_exact_regression_summary_has_no_noise_block() -> None:
    _, _, view = _exact(OLS)
    assert view.decoded_result is not None
    s = view.decoded_result.summary()
    assert "DP noise" not in s and "noise sd" not in s and "[0.025" in s


# ------------------------------------------------------------------ Python API


def _api(spec: QuerySpec, view: QueryView) -> Result:
    assert view.decoded_result is not None
    outcome = SimpleNamespace(spec=spec, result=view.decoded_result,
                              certificate=b"(placeholder)", query_id="ab" * 32,
                              contributors=["a", "b"])
    return make_result([outcome])


def test_api_regression_exposes_coefficient_noise() -> None:
    spec, _, view = _dp(OLS)
    fit = _api(spec, view)
    assert isinstance(fit, RegressionResult) and fit.is_dp
    dp = fit.values["dp"]
    terms = fit.values["terms"]
    sd = fit.noise_sd
    assert list(sd.index) == terms
    assert sd.tolist() == [dp["value_sd"][f"coef[{i}]"] for i in range(len(terms))]
    ci = fit.noise_conf_int()
    assert list(ci.columns) == [0, 1] and list(ci.index) == terms
    assert ci.to_numpy().tolist() == [dp["ci95"][f"coef[{i}]"] for i in range(len(terms))]
    ci90 = fit.noise_conf_int(0.1).to_numpy()
    coef = np.array(fit.values["coef"])
    np.testing.assert_allclose(ci90[:, 1] - coef, 1.6448536269514722 * sd.to_numpy(),
                               rtol=1e-12)
    # narrower than the 95 % one, and not the sampling interval
    assert (ci90[:, 1] < ci.to_numpy()[:, 1]).all()
    assert not np.allclose(ci.to_numpy(), fit.conf_int().to_numpy())
    assert fit.to_frame()["noise sd"].tolist() == sd.tolist()
    assert fit.budget_share == calibration.budget_share(spec)
    with pytest.raises(ValueError, match="alpha"):
        fit.noise_conf_int(0.0)


def test_api_exact_regression_has_no_noise() -> None:
    spec, _, view = _exact(OLS)
    fit = _api(spec, view)
    assert isinstance(fit, RegressionResult) and not fit.is_dp
    assert fit.noise_sd is None and fit.noise_conf_int() is None
    assert fit.budget_share is None
    assert "noise sd" not in list(fit.to_frame().columns)


def test_api_mean_exposes_noise_of_every_number() -> None:
    spec, _, view = _dp(MEAN)
    res = _api(spec, view)
    assert type(res) is Result and res.is_dp
    dp = res.values["dp"]
    assert res.noise_sd == dp["value_sd"]
    assert res.noise_conf_int() == {p: tuple(v) for p, v in dp["ci95"].items()}
    lo, hi = res.noise_conf_int(0.5)["value"]
    assert hi - lo == pytest.approx(2 * 0.6744897501960817 * dp["value_sd"]["value"])
    assert res.budget_share == calibration.budget_share(spec)
    # reject twin: the exact mean
    ex_spec, _, ex_view = _exact(MEAN)
    ex = _api(ex_spec, ex_view)
    assert not ex.is_dp and ex.noise_sd is None and ex.noise_conf_int() is None
    assert ex.budget_share is None


# ------------------------------------------------------------------ the split, one function


def test_plan_and_show_state_the_same_split() -> None:
    from statledger.nodes.cli import app

    path = ROOT / "examples" / "dp_mean.json"
    out = CliRunner().invoke(app, ["plan", str(path), "--rows", "50"])
    assert out.exit_code == 0, out.output
    spec = QuerySpec.parse(path.read_text())
    line = calibration.budget_split_line(spec)
    assert line in out.output.splitlines()
    assert re.fullmatch(r"budget split over the encoded entries: n 50%, sum\(bmi\) 50%", line)


class _Cells(HTMLParser):
    def __init__(self, cls: str) -> None:
        super().__init__(convert_charrefs=True)
        self.cls, self.inside, self.rows = cls, False, []  # type: list[list[str]]
        self.row: list[str] | None = None
        self.cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = dict(attrs).get("class") == self.cls
        elif self.inside and tag == "tr":
            self.row = []
        elif self.inside and tag == "td":
            self.cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag == "td" and self.row is not None and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        elif self.inside and tag == "tr" and self.row:
            self.rows.append(self.row)
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data


def _cells(page: str, cls: str) -> list[list[str]]:
    p = _Cells(cls)
    p.feed(page)
    return p.rows
