"""What a certificate certifies, for people: the query in words, the result table, a plot,
the parties, and a verdict in plain language (``statledger verify --show``, ``statledger show
CERT --html OUT.html``).

Nothing here checks anything: :func:`inspect` runs :func:`~statledger.verifier.verify.
verify_certificate` and only then reads what it verified.  The result shown is the one step
14 decoded from the certified totals (:func:`statledger.protocol.calibration.decode`: for a
DP query unscaled by its weights, with the logged noise parameters, and with the noise sd and
95 % interval of every released number) and found equal to the published one; never decoded
a second way.  It is shown only for a valid certificate: an invalid one shows its failed
step, never a table that looks certified.  The query and the parties of an invalid
certificate are shown as *claimed*.  A DP result also shows the budget split, recomputed from
the spec by the function ``statledger plan`` uses (it is not logged).

A certificate is hostile input: every string taken from it (party ids, column names,
categories, terms, reasons, the origin) is HTML-escaped where it is written, the page loads
nothing (no script, no stylesheet, no font, no image from anywhere) and its Content Security
Policy forbids scripts and network access, so an escaping slip still cannot run code.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from statledger.proofs.errors import StatledgerError
from statledger.protocol.calibration import Z95, budget_share, is_dp, noise_rows
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import StatResult, fmt, format_table
from statledger.protocol.stats.survival import KaplanMeier
from statledger.verifier.certificate import parse_certificate
from statledger.verifier.report import STEPS, Report
from statledger.verifier.verify import TrustPolicy, verify_certificate

__all__ = ["Shown", "Table", "inspect", "shown_from_report", "describe_query", "verdict",
           "result_tables", "noise_table", "budget_table", "plot_svg", "render_text",
           "terminal_safe",
           "render_html", "MAX_NOISE_ROWS"]

#: at most this many released numbers are listed with their noise (the rest are counted;
#: every one is in the certificate's ``dp`` block)
MAX_NOISE_ROWS = 120


@dataclass(frozen=True)
class Table:
    """One table of the page: a caption, a header and rows of cells."""

    caption: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Shown:
    """What a certificate says, as far as it was verified (``report.valid``)."""

    report: Report
    origin: str = ""
    spec: QuerySpec | None = None
    #: the decoded result: set only when the certificate is valid
    result: StatResult | None = None
    querier: str | None = None
    contributors: list[str] = field(default_factory=list)
    endorsers: list[str] = field(default_factory=list)
    compute: list[str] = field(default_factory=list)
    decryptors: list[str] = field(default_factory=list)
    threshold: int | None = None
    consortium_id: str | None = None


def inspect(raw: bytes, trust: TrustPolicy | None = None, *,
            source: str = "<certificate>",
            progress: Callable[[int, str], None] | None = None) -> Shown:
    """Verify ``raw`` and gather what it certifies (``progress(step, detail)`` after each
    step passes).  Raises :class:`~statledger.proofs.errors.MalformedError` when ``raw`` is
    not a certificate."""
    report = verify_certificate(raw, trust, source=source, progress=progress)
    return shown_from_report(report, origin=parse_certificate(raw).origin)


def shown_from_report(report: Report, *, origin: str = "") -> Shown:
    """Gather the facts of a finished verification (the view of step 5 onwards)."""
    sh = Shown(report=report, origin=origin)
    view = report.view
    if view is None:
        return sh
    if view.query is not None:
        sh.querier = view.query.querier
        try:
            sh.spec = view.spec if view.spec is not None else QuerySpec.parse(view.query.spec)
        except StatledgerError:
            sh.spec = None  # an invalid certificate's claimed spec: shown as absent
    sh.contributors = sorted(view.contributors())
    sh.endorsers = sorted({e.provider for _, e in view.endorsements})
    if view.setup is not None:
        sh.compute = list(view.setup.compute)
        sh.threshold = view.setup.threshold
    if view.result is not None:
        sh.decryptors = list(view.result[1].decryptors)
    try:
        sh.consortium_id = view.consortium_id
    except StatledgerError:
        sh.consortium_id = None
    if report.valid and sh.spec is not None:
        # what step 14 decoded from the totals step 13 decrypted (calibration.decode, with a
        # DP query's weights and logged noise) and found equal to the published result
        sh.result = view.decoded_result
    return sh


# ------------------------------------------------------------------------------ words


def _num(v: float) -> str:
    return fmt(v)


def _privacy(spec: QuerySpec) -> str:
    p = spec.privacy
    if p.mechanism == "zcdp":
        return f"differential privacy: zCDP noise added, rho = {_num(p.rho)}"
    if p.mechanism == "approx":
        return (f"differential privacy: ({_num(p.epsilon)}, {_num(p.delta)})-DP noise added")
    return "no differential privacy: the exact aggregate was released"


def _what(spec: QuerySpec) -> str:
    prm = spec.params
    stat = spec.statistic
    if "target" in prm and isinstance(prm.get("features"), list):
        feats = ", ".join(str(f) for f in prm["features"])
        return f"{stat}: {prm['target']} on {feats}"
    if "time" in prm and "event" in prm:
        return f"{stat}: survival time {prm['time']}, event {prm['event']}"
    cols = list(spec.columns)
    if "value" in prm:
        cols.append(str(prm["value"]))
    return f"{stat} of {', '.join(cols)}" if cols else stat


def describe_query(spec: QuerySpec) -> list[str]:
    """The query in words, one sentence a line."""
    first = _what(spec)
    if spec.group_by:
        parts = []
        for g in spec.group_by:
            cats = spec.categories.get(g, [])
            parts.append(f"{g} ({', '.join(cats)})")
        first += " by " + " x ".join(parts)
    lines = [first]
    if spec.filters:
        conds = []
        for f in spec.filters:
            val = ", ".join(str(v) for v in f.values())
            conds.append(f"{f.column} {f.op} {val}" if f.op != "in" else f"{f.column} in {{{val}}}")
        lines.append("rows where " + " and ".join(conds))
    if spec.bounds:
        lines.append("values clipped to " + ", ".join(
            f"{c} in [{_num(lo)}, {_num(hi)}]" for c, (lo, hi) in spec.bounds.items()))
    small = (f"grid points with fewer than {spec.min_cell_size} events merged into the next "
             "one before decryption" if spec.statistic == KaplanMeier.name
             and KaplanMeier.coarsened(spec) else
             f"cells of fewer than {spec.min_cell_size} rows suppressed")
    lines.append(f"{small}; at least {spec.min_providers} data owners; at most "
                 f"{spec.max_rows} rows per owner")
    lines.append(_privacy(spec))
    return lines


def _names(xs: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(xs[:limit])
    return shown + (f", and {len(xs) - limit} more" if len(xs) > limit else "")


def verdict(sh: Shown) -> str:
    """One plain-language sentence: what was certified, by whom, pinned to what."""
    r = sh.report
    if not r.valid:
        title = STEPS.get(r.step or 0, "?")
        return (f"INVALID: step {r.step} ({title}) failed: {r.reason}"
                + (f" (blamed: {r.party})" if r.party else "")
                + ". Nothing in this certificate is certified.")
    cid = (sh.consortium_id or "?")[:16]
    if r.trust.startswith("consortium "):
        pinned = f"pinned to consortium {cid}... ({r.trust.split(' pinned by ', 1)[-1]})"
    else:
        pinned = f"consortium {cid}... self-asserted, not pinned (pin it with --trust)"
    n_dec = len(sh.decryptors)
    return (f"VALID: {len(sh.contributors)} data owners contributed "
            f"({_names(sh.contributors)}), {n_dec} of {len(sh.compute)} compute nodes "
            f"decrypted ({_names(sh.decryptors)}), numbers unaltered (every number recomputed "
            f"from the decrypted totals), {len(sh.endorsers)} owners endorsed the result, "
            f"{pinned}.")


def terminal_safe(text: str) -> str:
    """``text`` with every non-printable character but the newline written as its escape
    (``\\x1b``): names in a certificate are anyone's strings, and a hostile one must not
    drive the reader's terminal (clear it, retitle it, hide a line)."""
    return "".join(ch if ch == "\n" or ch.isprintable() else repr(ch)[1:-1]
                   for ch in text)


def render_text(sh: Shown, *, verbose: bool = False) -> str:
    """What ``statledger verify --show`` prints after the verdict: query, result table
    (:func:`terminal_safe`)."""
    out: list[str] = []
    if sh.spec is not None:
        out.append("query" + ("" if sh.report.valid else " (claimed, not certified)") + ":")
        out += [f"  {line}" for line in describe_query(sh.spec)]
        if sh.querier:
            out.append(f"  asked by {sh.querier}")
    if sh.result is not None and sh.report.valid:
        out += ["", sh.result.summary()]
        for t in (noise_table(sh.result),
                  budget_table(sh.spec) if sh.spec is not None else None):
            if t is not None:
                out += ["", format_table(t.caption, t.header, t.rows)]
    elif not sh.report.valid:
        out.append("result: not shown (the certificate is invalid)")
    if verbose and sh.report.query_id:
        out.append(f"query id: {sh.report.query_id}")
    return terminal_safe("\n".join(out))


# ------------------------------------------------------------------------------ tables


def _is_num(v: Any) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def result_tables(result: StatResult) -> list[Table]:
    """The result as tables (from the decoder's own values, header and rows)."""
    v = result.values
    if isinstance(v.get("terms"), list) and isinstance(v.get("coef"), list):
        keys = [k for k in ("coef", "std_err", "t", "z", "p_value", "ci_lower", "ci_upper")
                if isinstance(v.get(k), list) and len(v[k]) == len(v["terms"])]
        rows = [[t, *(v[k][i] for k in keys)] for i, t in enumerate(v["terms"])]
        fit = [[k, v[k]] for k in sorted(v) if _is_num(v[k])]
        tables = [Table(result.title or result.statistic, ["term", *keys], rows)]
        if fit:
            tables.append(Table("fit", ["measure", "value"], fit))
        return tables
    if isinstance(v.get("groups"), list) and "times" in v:
        lr = v.get("logrank")
        summary = [[g.get("label"), g.get("n"),
                    g.get("median") if g.get("median") is not None else "not reached",
                    "suppressed" if g.get("suppressed") else ""] for g in v["groups"]]
        tables = [Table("Kaplan-Meier by group", ["group", "n", "median", ""], summary)]
        for g in v["groups"]:
            if g.get("suppressed") or not isinstance(g.get("times"), list):
                continue
            rows = [[t, g["at_risk"][k], g["events"][k], g["censored"][k], g["survival"][k],
                     g["ci_lower"][k], g["ci_upper"][k]]
                    for k, t in enumerate(g["times"])
                    if k == 0 or g["events"][k] or g["censored"][k]]
            tables.append(Table(f"{g.get('label')}", ["time", "at risk", "events", "censored",
                                                      "survival", "lower", "upper"], rows))
        if isinstance(lr, dict):
            tables.append(Table("logrank test", ["statistic", "df", "p"],
                                [[lr.get("test_statistic"), lr.get("df"), lr.get("p_value")]]))
        return tables
    if result.header or result.rows:
        return [Table(result.title or result.statistic, list(result.header),
                      [list(r) for r in result.rows])]
    scalars = [[k, val] for k, val in v.items() if _is_num(val) or isinstance(val, str)]
    return [Table(result.title or result.statistic, ["", "value"], scalars)]


def noise_table(result: StatResult) -> Table | None:
    """A DP result's released numbers with their noise (``values["dp"]``, as step 14 decoded
    it): value, noise sd, 95 % interval; None for an exact result (it has no noise).  At
    most :data:`MAX_NOISE_ROWS` rows, then one row counting the rest."""
    rows = noise_rows(result.values)
    if not rows:
        return None
    mech = result.values["dp"].get("privacy", {}).get("mechanism", "dp")
    out: list[list[Any]] = [[p, v, sd, lo, hi] for p, v, sd, lo, hi in rows[:MAX_NOISE_ROWS]]
    if len(rows) > MAX_NOISE_ROWS:
        out.append([f"... and {len(rows) - MAX_NOISE_ROWS} more (the result's dp block)",
                    "", "", "", ""])
    return Table(f"DP noise ({mech}) of every released number, 95% = value +- {Z95:.2f} sd",
                 ["number", "released", "noise sd", "95% low", "95% high"], out)


def budget_table(spec: QuerySpec) -> Table | None:
    """The budget split of a DP query, share of rho per encoded entry (or one-hot block):
    :func:`statledger.protocol.calibration.budget_share`, the function ``statledger plan``
    states it with, recomputed from the spec (it is not logged).  None without DP."""
    if not is_dp(spec):
        return None
    return Table("budget split over the encoded entries (share of the query's rho)",
                 ["entry", "share %"],
                 [[lab, 100 * sh] for lab, sh in budget_share(spec).items()])


# ------------------------------------------------------------------------------ plots

_W, _H = 640, 360
_ML, _MR, _MT, _MB = 64, 160, 24, 48
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        out.append(round(first + k * step, 12))
        k += 1
    return out


class _Frame:
    """Maps data to SVG coordinates and writes the axes."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)

    def x(self, v: float) -> float:
        return _ML + (v - self.x0) / (self.x1 - self.x0) * (_W - _ML - _MR)

    def y(self, v: float) -> float:
        return _H - _MB - (v - self.y0) / (self.y1 - self.y0) * (_H - _MT - _MB)

    def axes(self, xlabel: str, ylabel: str, *, xticks: bool = True) -> list[str]:
        out = [f'<line x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}" '
               'stroke="#333"/>',
               f'<line x1="{_ML}" y1="{_MT}" x2="{_ML}" y2="{_H - _MB}" stroke="#333"/>']
        for t in _ticks(self.y0, self.y1):
            y = self.y(t)
            out.append(f'<line x1="{_ML - 4}" y1="{y:.1f}" x2="{_W - _MR}" y2="{y:.1f}" '
                       'stroke="#ddd"/>')
            out.append(f'<text x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(fmt(t))}'
                       '</text>')
        if xticks:
            for t in _ticks(self.x0, self.x1):
                x = self.x(t)
                out.append(f'<line x1="{x:.1f}" y1="{_H - _MB}" x2="{x:.1f}" '
                           f'y2="{_H - _MB + 4}" stroke="#333"/>')
                out.append(f'<text x="{x:.1f}" y="{_H - _MB + 16}" text-anchor="middle">'
                           f'{_e(fmt(t))}</text>')
        out.append(f'<text x="{(_ML + _W - _MR) / 2:.1f}" y="{_H - 8}" text-anchor="middle">'
                   f'{_e(xlabel)}</text>')
        out.append(f'<text x="14" y="{(_MT + _H - _MB) / 2:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 14 {(_MT + _H - _MB) / 2:.1f})">{_e(ylabel)}</text>')
        return out


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    for i, (label, color) in enumerate(items):
        y = _MT + 14 + 18 * i
        out.append(f'<rect x="{_W - _MR + 12}" y="{y - 9}" width="12" height="10" '
                   f'fill="{color}"/>')
        out.append(f'<text x="{_W - _MR + 30}" y="{y}">{_e(label[:24])}</text>')
    return out


def _svg(kind: str, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="plot" data-kind="{_e(kind)}" '
            f'width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img" '
            f'aria-label="{_e(title)}" font-family="sans-serif" font-size="11">'
            f'<title>{_e(title)}</title>' + "".join(body) + "</svg>")


def _km_svg(v: dict[str, Any]) -> str | None:
    groups = [g for g in v["groups"] if not g.get("suppressed")
              and isinstance(g.get("survival"), list) and g["survival"]]
    if not groups:
        return None
    tmax = max(float(t) for g in groups for t in g["times"])
    fr = _Frame(0.0, tmax, 0.0, 1.0)
    body = fr.axes(str(v.get("time", "time")), "survival probability")
    legend = []
    for i, g in enumerate(groups):
        color = _COLORS[i % len(_COLORS)]
        times = [float(t) for t in g["times"]]

        def steps(ys: Sequence[float], times: list[float] = times) -> list[tuple[float, float]]:
            pts = [(times[0], float(ys[0]))]
            for k in range(1, len(times)):
                pts.append((times[k], float(ys[k - 1])))
                pts.append((times[k], float(ys[k])))
            return pts

        upper = steps(g["ci_upper"])
        lower = steps(g["ci_lower"])
        band = " ".join(f"{fr.x(a):.1f},{fr.y(b):.1f}" for a, b in [*upper, *reversed(lower)])
        body.append(f'<polygon class="ci" points="{band}" fill="{color}" fill-opacity="0.15" '
                    'stroke="none"/>')
        d = "M" + " L".join(f"{fr.x(a):.1f},{fr.y(b):.1f}" for a, b in steps(g["survival"]))
        body.append(f'<path class="curve" d="{d}" fill="none" stroke="{color}" '
                    f'stroke-width="2"><title>{_e(g.get("label"))}</title></path>')
        legend.append((str(g.get("label")), color))
    return _svg("kaplan_meier", "Kaplan-Meier survival curves", body + _legend(legend))


def _coef_svg(v: dict[str, Any]) -> str | None:
    terms = v["terms"]
    coef, lo, hi = v["coef"], v.get("ci_lower"), v.get("ci_upper")
    items = []
    for i, t in enumerate(terms):
        c = coef[i] if i < len(coef) else None
        if not _is_num(c):
            continue
        a = lo[i] if isinstance(lo, list) and i < len(lo) and _is_num(lo[i]) else c
        b = hi[i] if isinstance(hi, list) and i < len(hi) and _is_num(hi[i]) else c
        items.append((str(t), float(c), float(a), float(b)))
    if not items:
        return None
    xlo = min(0.0, *(a for _, _, a, _ in items))
    xhi = max(0.0, *(b for _, _, _, b in items))
    pad = (xhi - xlo) * 0.05 or 1.0
    fr = _Frame(xlo - pad, xhi + pad, 0.0, float(len(items)))
    body = [f'<line x1="{_ML}" y1="{_H - _MB}" x2="{_W - _MR}" y2="{_H - _MB}" stroke="#333"/>']
    for t in _ticks(fr.x0, fr.x1):
        x = fr.x(t)
        body.append(f'<text x="{x:.1f}" y="{_H - _MB + 16}" text-anchor="middle">'
                    f'{_e(fmt(t))}</text>')
    body.append(f'<line x1="{fr.x(0):.1f}" y1="{_MT}" x2="{fr.x(0):.1f}" y2="{_H - _MB}" '
                'stroke="#999" stroke-dasharray="4 3"/>')
    for i, (t, c, a, b) in enumerate(items):
        y = fr.y(len(items) - i - 0.5)
        body.append(f'<line class="ci" x1="{fr.x(a):.1f}" y1="{y:.1f}" x2="{fr.x(b):.1f}" '
                    f'y2="{y:.1f}" stroke="{_COLORS[0]}" stroke-width="2"/>')
        body.append(f'<circle class="point" cx="{fr.x(c):.1f}" cy="{y:.1f}" r="4" '
                    f'fill="{_COLORS[0]}"><title>{_e(t)}: {_e(fmt(c))}</title></circle>')
        body.append(f'<text x="{_W - _MR + 8}" y="{y + 4:.1f}">{_e(t[:24])}</text>')
    body.append(f'<text x="{(_ML + _W - _MR) / 2:.1f}" y="{_H - 8}" text-anchor="middle">'
                'coefficient (with confidence interval)</text>')
    return _svg("coefficients", "coefficients with confidence intervals", body)


def _bars_svg(result: StatResult) -> str | None:
    header, rows = result.header, result.rows
    if len(header) < 2 or not rows or len(rows) > 60:
        return None
    col = None
    for j in range(len(header) - 1, 0, -1):
        if all(j < len(r) and (_is_num(r[j]) or r[j] is None) for r in rows) and any(
                _is_num(r[j]) for r in rows):
            col = j
            break
    if col is None:
        return None
    vals = [(str(r[0]), float(r[col]) if _is_num(r[col]) else None) for r in rows]
    nums = [x for _, x in vals if x is not None]
    fr = _Frame(0.0, float(len(vals)), min(0.0, *nums), max(0.0, *nums))
    body = fr.axes(str(header[0]), str(header[col]), xticks=False)
    width = (_W - _ML - _MR) / len(vals)
    for i, (label, x) in enumerate(vals):
        x0 = fr.x(i) + width * 0.1
        if x is None:  # a suppressed cell: a hatched gap, no number
            body.append(f'<text class="suppressed" x="{x0 + width * 0.4:.1f}" '
                        f'y="{fr.y(0) - 4:.1f}" text-anchor="middle">.</text>')
        else:
            top, bottom = fr.y(max(x, 0.0)), fr.y(min(x, 0.0))
            body.append(f'<rect class="bar" x="{x0:.1f}" y="{top:.1f}" '
                        f'width="{width * 0.8:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                        f'fill="{_COLORS[0]}"><title>{_e(label)}: {_e(fmt(x))}</title></rect>')
        if len(vals) <= 16:
            body.append(f'<text x="{x0 + width * 0.4:.1f}" y="{_H - _MB + 16}" '
                        f'text-anchor="middle">{_e(label[:14])}</text>')
    return _svg("bars", f"{header[col]} by {header[0]}", body)


def plot_svg(result: StatResult) -> str | None:
    """An inline SVG of the result: Kaplan-Meier curves, a coefficient plot, or bars of the
    result table's last numeric column; None when the result has nothing to plot."""
    v = result.values
    if isinstance(v.get("groups"), list) and "times" in v:
        return _km_svg(v)
    if isinstance(v.get("terms"), list) and isinstance(v.get("coef"), list):
        return _coef_svg(v)
    return _bars_svg(result)


# ------------------------------------------------------------------------------ page

_CSS = """
body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;border-bottom:1px solid #ccc;padding-bottom:.2em}
.verdict{padding:.7em 1em;border-radius:4px;font-weight:bold}
.valid{background:#e6f4ea;border:1px solid #34a853}
.invalid{background:#fce8e6;border:1px solid #d93025}
table{border-collapse:collapse;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:bold;padding:.2em 0}
.ok{color:#188038;font-weight:bold} .fail{color:#d93025;font-weight:bold}
.notrun{color:#777} pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
code{word-break:break-all}
"""

#: Nothing may run and nothing may be fetched: inline styles only, images as data: only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _table_html(t: Table, cls: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(
        f"<td>{_e(c)}</td>" if isinstance(c, str) else f'<td class="n">{_e(fmt(c))}</td>'
        for c in r) + "</tr>" for r in t.rows)
    return (f'<table class="{cls}"><caption>{_e(t.caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def render_html(sh: Shown) -> str:
    """One self-contained HTML page (no network, no script) of a verified certificate."""
    r = sh.report
    stat = sh.spec.statistic if sh.spec is not None else (r.statistic or "?")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>statledger certificate: {_e(stat)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>statledger certificate: {_e(stat)}</h1>",
        f'<p id="verdict" class="verdict {"valid" if r.valid else "invalid"}">'
        f"{_e(verdict(sh))}</p>",
        f"<p>file <code>{_e(r.source)}</code>; trust: {_e(r.trust or 'not reached')}</p>",
    ]
    parts.append("<h2>Query" + ("" if r.valid else " (claimed, not certified)") + "</h2>")
    if sh.spec is not None:
        parts.append('<ul id="query">' + "".join(f"<li>{_e(s)}</li>"
                                                 for s in describe_query(sh.spec)) + "</ul>")
        if sh.querier:
            parts.append(f"<p>asked by <b>{_e(sh.querier)}</b>; query id "
                         f"<code>{_e(r.query_id or '')}</code></p>")
    else:
        parts.append("<p>not readable from this certificate</p>")
    parts.append("<h2>Result</h2>")
    if sh.result is not None and r.valid:
        svg = plot_svg(sh.result)
        parts.append(svg if svg is not None else "<p>nothing to plot for this result</p>")
        for i, t in enumerate(result_tables(sh.result)):
            parts.append(_table_html(t, "result" if i == 0 else "result-more"))
        for extra, cls in ((noise_table(sh.result), "noise"),
                           (budget_table(sh.spec) if sh.spec is not None else None, "budget")):
            if extra is not None:
                parts.append(_table_html(extra, cls))
        if sh.result.notes:
            parts.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>"
                                                        for n in sh.result.notes) + "</ul>")
        parts.append("<details><summary>text summary</summary><pre>"
                     f"{_e(sh.result.summary())}</pre></details>")
    else:
        parts.append("<p>not shown: the certificate is invalid, so no number in it is "
                     "certified</p>")
    parts.append("<h2>Parties</h2>")
    prow: list[list[Any]] = []
    if sh.querier:
        prow.append(["querier", sh.querier, "posted the query and the result"])
    for p in sh.contributors:
        prow.append(["data owner", p, "contributed" + (", endorsed the result"
                                                        if p in sh.endorsers else "")])
    for p in sh.compute:
        prow.append(["compute node", p, "decrypted" if p in sh.decryptors else "holds a share"])
    prow.append(["log", sh.origin or "?", "logged every step"])
    parts.append(_table_html(Table(f"consortium {sh.consortium_id or '?'}",
                                   ["role", "party", "part"], prow), "parties"))
    if sh.threshold is not None:
        parts.append(f"<p>decryption threshold: any {sh.threshold} of {len(sh.compute)} "
                     "compute nodes</p>")
    parts.append("<h2>Verification</h2><ol id='steps'>")
    done = {s.step: s for s in r.steps}
    for n, title in STEPS.items():
        s = done.get(n)
        if s is None:
            parts.append(f'<li value="{n}" class="notrun">{_e(title)}: not run</li>')
        else:
            mark = '<span class="ok">ok</span>' if s.ok else '<span class="fail">FAIL</span>'
            parts.append(f'<li value="{n}">{mark} {_e(title)}: {_e(s.detail)}</li>')
    parts.append("</ol>")
    parts.append("<p>Check it yourself, offline: <code>statledger verify CERT --trust "
                 "TRUST.json --verbose</code></p></body></html>")
    return "\n".join(parts) + "\n"
