"""Clipping is never silent, never exact, end to end on real processes (issue 12).

``statledger run`` (a subprocess, its own ephemeral cluster of 1 compute node) on two bundled
diabetes sites with ``bmi`` bounds [20, 30]: each site's warning names the site and the
column with a bucket, and ``--json`` carries the same buckets by data file; its twin with
bounds that clip nothing prints no warning and every bucket is ``"0"``.  A vertical query
(``examples/vertical_ols.json`` with ``bmi`` in [20, 30]) says once that its owners withheld
their counts (it was silent before; an owner's own selection is not in the differencing
history, so its buckets would be an oracle).  The Python API (one module-scoped local
cluster) carries the buckets in ``Result.clipped`` and warns with a ``ClippingWarning``,
without a progress callback; its twin warns nothing.

The expected buckets are computed here from the CSV files with numpy; no exact count
appears anywhere: every warning line and every reported bucket has the bucket's shape only.

The querier is the adversary of the withheld reports (it chooses filter and bounds; the
buckets are counted before suppression and without noise): a DP ``run --budget`` gets every
column withheld and one line saying so, never a bucket; through the API, a filter that
selects fewer than ``min_cell_size`` rows at one site gets that site's report withheld (and no
``ClippingWarning`` for it) while the other site, with ``k`` rows, keeps its bucket.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from statledger.nodes.data import load_table
from statledger.protocol import datasets

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "statledger"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SITES = ("site1", "site2")
BUCKETS = ("0", "1-9", "10-99", "100+")
#: a warning line of the progress output, nothing but the site, the columns and buckets
LINE = re.compile(r"^  warning: (provider-\d) clipped values to the bounds: "
                  r"((?:[a-z0-9_]+ \((?:1-9|10-99|100\+)\)(?:, )?)+)\.\.\.$")


def _mean(lo: float, hi: float) -> dict[str, Any]:
    return {"version": 1, "statistic": "mean", "columns": ["bmi"],
            "bounds": {"bmi": [lo, hi]}, "max_rows": 1000}


def _csv(site: str) -> Path:
    return Path(str(datasets.path("diabetes", site)))


def _bucket(values: Any, lo: float, hi: float) -> str:
    """The bucket of the number of (non-missing) values outside ``[lo, hi]``: numpy and the
    issue's bucket edges, independently of protocol/calibration.py."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    k = int(np.count_nonzero((x < lo) | (x > hi)))
    return "0" if k == 0 else "1-9" if k < 10 else "10-99" if k < 100 else "100+"


def _run(spec: dict[str, Any], data: list[Path], work: Path,
         *extra: str) -> subprocess.CompletedProcess[str]:
    query = work / "query.json"
    query.write_text(json.dumps(spec), encoding="utf-8")
    return subprocess.run([*CLI, "run", str(query), "--data", *map(str, data), "--json",
                           "--compute", "1", "--threshold", "1", *extra],
                          capture_output=True, text=True, timeout=300, check=False)


def _warnings(stderr: str) -> dict[str, str]:
    """``{provider: "col (bucket), ..."}`` of the progress output; any other line that
    mentions clipping fails (so a count or a value next to it would too)."""
    out: dict[str, str] = {}
    for ln in stderr.splitlines():
        if "clip" in ln:
            m = LINE.fullmatch(ln)
            assert m is not None, ln
            out[m.group(1)] = m.group(2)
    return out


@pytest.fixture(scope="module")
def clipping(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return _run(_mean(20.0, 30.0), [_csv(s) for s in SITES], tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return _run(_mean(10.0, 60.0), [_csv(s) for s in SITES], tmp_path_factory.mktemp("wide"))


def test_run_warns_per_site_and_json_carries_the_buckets(
        clipping: subprocess.CompletedProcess[str]) -> None:
    assert clipping.returncode == 0, clipping.stderr[-3000:]
    want = {s: _bucket(load_table(_csv(s))["bmi"], 20.0, 30.0) for s in SITES}
    assert set(want.values()) - {"0"}, "the test's bounds must clip something"
    said = _warnings(clipping.stderr)
    assert said == {f"provider-{i}": f"bmi ({want[s]})" for i, s in enumerate(SITES, 1)
                    if want[s] != "0"}
    doc = json.loads(clipping.stdout)
    assert doc["clipped"] == {str(_csv(s)): {"bmi": want[s]} for s in SITES}
    assert doc["sites"] == sorted(doc["clipped"])  # keyed like the sites: by data file


def test_run_that_clips_nothing_says_nothing(wide: subprocess.CompletedProcess[str]) -> None:
    assert wide.returncode == 0, wide.stderr[-3000:]
    assert {s: _bucket(load_table(_csv(s))["bmi"], 10.0, 60.0) for s in SITES} == \
        dict.fromkeys(SITES, "0")
    assert "clip" not in wide.stderr
    assert json.loads(wide.stdout)["clipped"] == {str(_csv(s)): {"bmi": "0"} for s in SITES}


def test_dp_run_withholds_every_clip_count(tmp_path: Path) -> None:
    """A DP mean whose bounds clip values at both sites: no bucket leaves either provider."""
    spec = {**_mean(20.0, 30.0), "privacy": {"mechanism": "zcdp", "rho": 1.0}}
    assert {_bucket(load_table(_csv(s))["bmi"], 20.0, 30.0) for s in SITES} - {"0"}
    proc = _run(spec, [_csv(s) for s in SITES], tmp_path, "--budget", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["clipped"] == {str(_csv(s)): {"bmi": "withheld (DP query)"} for s in SITES}
    said = [ln for ln in proc.stderr.splitlines() if "clip" in ln]
    assert said == ["  clip counts withheld (DP query)..."]  # one line, no site, no bucket


def _slice(src: Path, dst: Path, keep: Any) -> set[str]:
    """Copy the rows of ``src`` whose id ``keep`` accepts; their ids."""
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    kept = [r for i, r in enumerate(rows[1:]) if keep(i, r[0])]
    with dst.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([rows[0], *kept])
    return {r[0] for r in kept}


def test_vertical_run_says_its_counts_are_withheld(tmp_path: Path) -> None:
    """A vertical owner's counts would be over its own selection, which the differencing
    history does not record: every owner withholds them, and ``run`` says so once (never
    silent, never a bucket), even though owner A did clip values here."""
    spec = json.loads((EXAMPLES / "vertical_ols.json").read_text(encoding="utf-8"))
    spec["bounds"]["bmi"] = [20.0, 30.0]
    spec["max_rows"] = 128  # a slice of the example's owners: a short run
    files = [tmp_path / "owner_a.csv", tmp_path / "owner_b.csv"]
    ids = _slice(EXAMPLES / "vertical" / "diabetes_owner_a.csv", files[0], lambda i, _: i < 120)
    _slice(EXAMPLES / "vertical" / "diabetes_owner_b.csv", files[1], lambda _, p: p in ids)
    proc = _run(spec, files, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    own = spec["params"]["partition"]["columns"]
    assert _bucket(load_table(files[0])["bmi"], 20.0, 30.0) != "0"  # A clipped values
    doc = json.loads(proc.stdout)
    assert doc["clipped"] == {str(f): dict.fromkeys(own[o], "withheld (vertical query)")
                              for o, f in zip(("provider-1", "provider-2"), files,
                                              strict=True)}
    said = [ln for ln in proc.stderr.splitlines() if "clip" in ln]
    assert said == ["  clip counts withheld (vertical query)..."]  # one line, no bucket


# ---------------------------------------------------------------------------- Python API
@pytest.fixture(scope="module")
def session() -> Iterator[Any]:
    import statledger

    with statledger.local({"north": _csv("site1"), "south": _csv("site2")}, compute=1,
                          threshold=1) as s:
        yield s


def test_api_result_carries_the_buckets_and_warns(session: Any) -> None:
    import statledger

    with pytest.warns(statledger.ClippingWarning) as rec:
        res = session.query(_mean(20.0, 30.0))
    want = {n: _bucket(load_table(_csv(s))["bmi"], 20.0, 30.0)
            for n, s in (("north", "site1"), ("south", "site2"))}
    assert res.clipped == {n: {"bmi": b} for n, b in want.items()}
    assert sorted(str(w.message) for w in rec if w.category is statledger.ClippingWarning) \
        == sorted(f"site {n} clipped values to the bounds: bmi ({b})"
                  for n, b in want.items() if b != "0")
    assert all(set(c.values()) <= set(BUCKETS) for c in res.clipped.values())
    assert "clipped" not in res.to_dict()  # not a certified number
    res.verify()  # the certified values are untouched


def test_api_result_that_clips_nothing_warns_nothing(session: Any) -> None:
    import statledger

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = session.query(_mean(10.0, 60.0))
    assert not [w for w in rec if w.category is statledger.ClippingWarning]
    assert res.clipped == {"north": {"bmi": "0"}, "south": {"bmi": "0"}}


def test_api_withholds_a_site_below_min_cell_size(session: Any) -> None:
    """``bmi > 35.5`` selects k = 5 rows at north and fewer at south (computed below); the
    bounds [20, 37] clip some of north's.  South's report is withheld, north's is a bucket."""
    import statledger

    spec = {**_mean(20.0, 37.0), "min_cell_size": 5,
            "filters": [{"column": "bmi", "op": ">", "value": 35.5}]}
    sel = {n: np.asarray(load_table(_csv(s))["bmi"], dtype=float)
           for n, s in (("north", "site1"), ("south", "site2"))}
    sel = {n: x[x > 35.5] for n, x in sel.items()}
    assert len(sel["north"]) >= 5 > len(sel["south"]) >= 1  # the data this test relies on
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = session.query(spec)
    north = _bucket(sel["north"], 20.0, 37.0)
    assert north != "0"
    assert res.clipped == {"north": {"bmi": north},
                           "south": {"bmi": "withheld (fewer rows than min_cell_size)"}}
    clip = [str(w.message) for w in rec if w.category is statledger.ClippingWarning]
    assert clip == [f"site north clipped values to the bounds: bmi ({north})"]
