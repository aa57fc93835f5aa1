"""``statledger.verifier.show``: the query in words, the result tables, the SVG plots and the
self-contained page, with every string taken from a certificate treated as hostile.

The results here come from the statistics' own encoders and decoders (no hand-made numbers):
a certificate's totals are what the providers' encodings sum to, and the page decodes them
with the same decoder step 14 runs.  The adversary is whoever wrote the certificate: it
chooses party ids, column names, categories, terms, failure reasons and the log's origin,
and wants its text to run as script, load a resource or pass for a certified table.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import VerificationError
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.base import StatResult
from statledger.verifier.report import STEPS, Report
from statledger.verifier.show import (
    CSP,
    Shown,
    describe_query,
    plot_svg,
    render_html,
    render_text,
    result_tables,
    verdict,
)

EVIL = '<script>document.title="pwned"</script>'
EVIL_ATTR = '"><img src=x onerror=alert(1)>'


def _result(spec: dict[str, Any], table: dict[str, Any]) -> tuple[QuerySpec, StatResult]:
    """Decode what the providers' encodings of ``table`` sum to (split over two sites)."""
    qs = QuerySpec.parse(spec)
    stat = get_statistic(qs.statistic)
    n = len(next(iter(table.values())))
    halves = [{k: v[: n // 2] for k, v in table.items()}, {k: v[n // 2:] for k, v in table.items()}]
    totals = [a + b for a, b in zip(*(stat.encode(qs, h) for h in halves), strict=True)]
    return qs, stat.decode(qs, totals)


def _km() -> tuple[QuerySpec, StatResult]:
    rng = np.random.default_rng(7)
    n = 80
    t_col, e_col, g_col = "t" + EVIL, "e" + EVIL_ATTR, "g" + EVIL
    spec = {"version": 1, "statistic": "kaplan_meier", "columns": [t_col, e_col],
            "bounds": {t_col: [0.0, 30.0], e_col: [0.0, 1.0]}, "group_by": [g_col],
            "categories": {g_col: [EVIL, EVIL_ATTR]},
            "params": {"time": t_col, "event": e_col, "max_time": 30}, "max_rows": 1000,
            "min_cell_size": 1}
    table = {t_col: rng.integers(1, 30, n).astype(float),
             e_col: rng.integers(0, 2, n).astype(float),
             g_col: np.array([EVIL, EVIL_ATTR] * (n // 2), dtype=object)}
    return _result(spec, table)


def _ols() -> tuple[QuerySpec, StatResult]:
    rng = np.random.default_rng(3)
    n = 200
    x1, x2, y = "x" + EVIL, "w" + EVIL_ATTR, "y"
    a = rng.uniform(0, 10, n)
    b = rng.uniform(-5, 5, n)
    spec = {"version": 1, "statistic": "linear_regression", "columns": [x1, x2, y],
            "bounds": {x1: [0.0, 10.0], x2: [-5.0, 5.0], y: [-100.0, 100.0]},
            "params": {"target": y, "features": [x1, x2]}, "max_rows": 1000}
    return _result(spec, {x1: a, x2: b, y: 3 * a - 2 * b + rng.normal(0, 1, n)})


def _crosstab() -> tuple[QuerySpec, StatResult]:
    g = "g" + EVIL
    spec = {"version": 1, "statistic": "crosstab", "group_by": [g],
            "categories": {g: [EVIL, "b", "rare"]}, "bounds": {"v": [0.0, 10.0]},
            "params": {"value": "v"}, "min_cell_size": 5, "max_rows": 1000,
            "filters": [{"column": "v", "op": ">=", "value": 0.5}]}
    labels = np.array([EVIL] * 20 + ["b"] * 20 + ["rare"] * 2, dtype=object)
    return _result(spec, {g: labels, "v": np.linspace(1, 9, len(labels))})


def _valid(spec: QuerySpec, result: StatResult) -> Shown:
    report = Report(source="certs/" + EVIL + ".cert",
                    trust=f"consortium 5c1d{EVIL}... pinned by {EVIL}.json")
    for n in STEPS:
        report.passed(n, "detail " + EVIL)
    report.query_id = "ab" * 32
    return Shown(report=report, origin="log" + EVIL, spec=spec, result=result,
                 querier="querier" + EVIL, contributors=["h-a" + EVIL, "h-b"],
                 endorsers=["h-a" + EVIL, "h-b"], compute=["c-1" + EVIL_ATTR, "c-2", "c-3"],
                 decryptors=["c-1" + EVIL_ATTR, "c-2"], threshold=2,
                 consortium_id="5c1d" + EVIL)


class _Elements(HTMLParser):
    """Every element and attribute of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _elements(page: str) -> _Elements:
    p = _Elements()
    p.feed(page)
    p.close()
    return p


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "code",
                "ul", "li", "b", "table", "caption", "thead", "tbody", "tr", "th", "td",
                "details", "summary", "pre", "ol", "span", "svg", "line", "text", "path",
                "polygon", "rect", "circle"}


@pytest.mark.parametrize("make", [_km, _ols, _crosstab], ids=["km", "ols", "crosstab"])
def test_hostile_strings_render_as_text(make: Any) -> None:
    spec, result = make()
    page = render_html(_valid(spec, result))
    els = _elements(page)
    # no element or attribute the certificate could have injected
    assert set(els.tags) <= ALLOWED_TAGS, set(els.tags) - ALLOWED_TAGS
    assert "script" not in els.tags and "img" not in els.tags
    assert not [a for a, _ in els.attrs if a.lower().startswith("on")]
    assert "<script" not in page.lower() and "<img" not in page.lower()
    # ... and the hostile text is there, as text (escaped in the source, whole in the DOM)
    assert "&lt;script&gt;" in page
    text = "".join(els.text)
    assert EVIL in text and EVIL_ATTR in text
    # nothing is fetched: no src/href at all, and the only URL is the SVG namespace
    assert not [a for a, _ in els.attrs if a in ("src", "href", "xlink:href", "action")]
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert f'content="{CSP}"' in page and "script-src" not in CSP and "default-src 'none'" in CSP


def test_escaping_is_what_protects_the_page() -> None:
    """Reject twin: the same page with one escape removed is caught by the checks above."""
    spec, result = _crosstab()
    page = render_html(_valid(spec, result))
    broken = page.replace("&lt;script&gt;", "<script>", 1)
    assert "script" in _elements(broken).tags


def test_km_page_has_curves_bands_and_tables() -> None:
    spec, result = _km()
    svg = plot_svg(result)
    assert svg is not None and 'data-kind="kaplan_meier"' in svg
    groups = [g for g in result.values["groups"] if not g["suppressed"]]
    assert svg.count('class="curve"') == len(groups) == 2
    assert svg.count('class="ci"') == 2
    # each curve is a step function: one point at t0, then two per later grid time
    for g, d in zip(groups, re.findall(r'class="curve" d="([^"]+)"', svg), strict=True):
        assert len(d.split(" L")) == 1 + 2 * (len(g["times"]) - 1)
    tables = result_tables(result)
    assert tables[0].header[:3] == ["group", "n", "median"]
    assert [r[1] for r in tables[0].rows] == [g["n"] for g in result.values["groups"]]
    assert tables[-1].caption == "logrank test"


def test_regression_tables_and_coefficient_plot() -> None:
    spec, result = _ols()
    tables = result_tables(result)
    coef = tables[0]
    assert coef.header[:3] == ["term", "coef", "std_err"]
    assert [r[0] for r in coef.rows] == result.values["terms"]
    assert [r[1] for r in coef.rows] == result.values["coef"]
    svg = plot_svg(result)
    assert svg is not None and svg.count('class="point"') == len(result.values["terms"])
    assert svg.count('class="ci"') == len(result.values["terms"])
    # the slope of the first feature is ~3: its dot is right of the zero line
    assert abs(result.values["coef"][1] - 3) < 0.2


def test_suppressed_cell_is_no_bar() -> None:
    spec, result = _crosstab()
    rows = result_tables(result)[0].rows
    rare = [r for r in rows if r[0] == "rare"]
    assert rare and rare[0][-1] is None  # suppressed by the decoder: fewer than 5 rows
    svg = plot_svg(result)
    assert svg is not None
    assert svg.count('class="bar"') == sum(1 for r in rows if r[-1] is not None)
    assert 'class="suppressed"' in svg


def test_query_in_words() -> None:
    spec, _ = _crosstab()
    words = describe_query(spec)
    assert words[0].startswith("crosstab of v by g")
    assert any(w.startswith("rows where v >= 0.5") for w in words)
    assert any("fewer than 5 rows suppressed" in w for w in words)
    assert words[-1].startswith("no differential privacy")
    dp = QuerySpec.parse({"version": 1, "statistic": "sum", "columns": ["x"],
                          "bounds": {"x": [0, 1]}, "privacy": {"mechanism": "zcdp",
                                                               "rho": 0.5}})
    assert describe_query(dp)[-1] == "differential privacy: zCDP noise added, rho = 0.5"


def test_valid_verdict_names_parties_and_pin() -> None:
    spec, result = _crosstab()
    sh = _valid(spec, result)
    v = verdict(sh)
    assert v.startswith("VALID: 2 data owners contributed")
    assert "2 of 3 compute nodes decrypted" in v and "numbers unaltered" in v
    assert "pinned to consortium" in v
    sh.report.trust = "self-asserted: the consortium of the genesis the certificate carries"
    assert "self-asserted, not pinned (pin it with --trust)" in verdict(sh)


def test_invalid_certificate_shows_no_result() -> None:
    """An invalid certificate's numbers are never shown as a table or a plot, even when the
    caller passes a decoded result along."""
    spec, result = _km()
    report = Report(source="x.cert")
    report.passed(1, "3 entries")
    report.failed(VerificationError("entry 3 is not in the log", step="step 4",
                                    party="ledger"), 4)
    sh = Shown(report=report, spec=spec, result=result, querier="q")
    v = verdict(sh)
    assert v.startswith("INVALID: step 4 (inclusion in the log) failed")
    assert "blamed: ledger" in v and "Nothing in this certificate is certified" in v
    page = render_html(sh)
    assert "<svg" not in page and 'class="result"' not in page
    assert "not shown: the certificate is invalid" in page
    assert "(claimed, not certified)" in page
    assert page.count(": not run<") == len(STEPS) - 2  # only steps 1 and 4 ran
    text = render_text(sh)
    assert "claimed, not certified" in text and "not shown" in text


ESC = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, retitle the terminal


def test_terminal_control_text_is_escaped_in_text_output() -> None:
    """A certificate's names reach the reader's terminal: control characters in a column
    name (the query, the result table, the DP budget table) are printed as their escapes."""
    from statledger.verifier.show import terminal_safe

    x = "bmi" + ESC
    spec = {"version": 1, "statistic": "mean", "columns": [x], "bounds": {x: [15.0, 50.0]},
            "max_rows": 1000, "min_cell_size": 1}
    qs, result = _result(spec, {x: np.linspace(20, 40, 50)})
    text = render_text(_valid(qs, result), verbose=True)
    assert "\x1b" not in text and "\x07" not in text
    assert "bmi\\x1b[2J\\x1b]0;pwned\\x07" in text
    dp = QuerySpec.parse({**spec, "privacy": {"mechanism": "zcdp", "rho": 1.0}})
    budget = render_text(_valid(dp, result))
    assert "\x1b" not in budget and "budget" in budget.lower()
    # the twin: ordinary text, newlines included, passes unchanged
    assert terminal_safe("a b\nc é") == "a b\nc é"
    assert terminal_safe("\t\r") == "\\t\\r"
