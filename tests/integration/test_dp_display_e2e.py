"""A real DP certificate, shown (issue 12 item 2, "report every released number with its
noise"): ``statledger run examples/dp_mean.json --budget 1 --out CERT`` on two bundled sites
and one compute node, then ``statledger verify CERT --show`` and ``statledger show CERT
--html``.  Before, both printed the statistic's decoder on the *scaled* wire totals (n in the
hundreds of millions, a mean of ~1e-5) and no interval; now they print step 14's decoded
result -- the certificate's own numbers -- each with its noise sd and 95 % interval, and the
budget split ``plan`` states (also in ``run``'s output).  The in-process twins (exact query,
invalid certificate, regression summary, API) are in tests/unit/test_dp_display.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from statledger.protocol import calibration, datasets
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import fmt
from statledger.verifier.verify import verify_certificate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "dp_mean.json"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statledger", *args], capture_output=True,
                          text=True, timeout=600, check=False)


def test_dp_certificate_shows_the_certified_numbers_with_noise(tmp_path: Path) -> None:
    sites = datasets.sites("diabetes")[:2]
    files = [str(datasets.path("diabetes", s)) for s in sites]
    cert = tmp_path / "dp_mean.cert"
    run = _cli("run", str(EXAMPLE), "--data", *files, "--compute", "1", "--budget", "1",
               "--out", str(cert))
    assert run.returncode == 0, run.stderr
    spec = QuerySpec.parse(EXAMPLE.read_text())
    split = calibration.budget_split_line(spec)
    assert split in run.stdout.splitlines()

    report = verify_certificate(cert.read_bytes())
    report.raise_for_invalid()
    res = report.result  # what step 14 decoded and found equal to the published result
    assert res is not None
    n_true = sum(len(datasets.load("diabetes", s)["bmi"]) for s in sites)
    assert abs(res["n"] - n_true) <= 12  # > 8 noise sd: a false failure below 1e-12
    dp = res["dp"]

    shown = _cli("verify", str(cert), "--show")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    for path in ("n", "value"):
        lo, hi = dp["ci95"][path]
        want = [path, fmt(res[path]), fmt(dp["value_sd"][path]), fmt(lo), fmt(hi)]
        assert want in [x.split() for x in lines], (path, shown.stdout)
    # the result table: the certified n and mean, not the scaled wire totals
    assert ["all", fmt(res["n"]), fmt(res["value"])] in [x.split() for x in lines]
    assert "budget split over the encoded entries (share of the query's rho)" in shown.stdout

    page = tmp_path / "page.html"
    html = _cli("show", str(cert), "--html", str(page))
    assert html.returncode == 0, html.stderr
    text = page.read_text(encoding="utf-8")
    assert 'class="noise"' in text and 'class="budget"' in text
    for path in ("n", "value"):
        row = "".join(f'<td class="n">{fmt(x)}</td>' for x in
                      (res[path], dp["value_sd"][path], *dp["ci95"][path]))
        assert f"<td>{path}</td>{row}" in text, path
    assert json.dumps(res["n"]) in text
