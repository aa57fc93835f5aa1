"""`statledger run` for researchers, through a real subprocess and cluster: IRLS logistic
regression on two bundled sites with a third, broken file, `--allow-partial --json --out`:
the broken file is named (with its reason, never its values) in a loud warning and in the
JSON, every IRLS round's certificate is written and verifies, and the JSON carries the
result that the last certificate certifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from statledger.protocol import datasets
from statledger.verifier.verify import verify_certificate_file

SPEC = {"version": 1, "statistic": "logistic_irls",
        "columns": ["mean_radius", "mean_texture", "benign"],
        "bounds": {"mean_radius": [5.0, 30.0], "mean_texture": [9.0, 40.0],
                   "benign": [0.0, 1.0]},
        "params": {"target": "benign", "features": ["mean_radius", "mean_texture"],
                   "standardize": {"mean_radius": [14.0, 3.5], "mean_texture": [19.0, 4.3]}},
        "max_rows": 1000}


def test_run_irls_allow_partial_json(tmp_path: Path) -> None:
    sites = [Path(str(datasets.path("breast_cancer", s))) for s in ("site1", "site2")]
    lines = Path(str(datasets.path("breast_cancer", "site3"))).read_text(
        encoding="utf-8").splitlines()
    header = lines[0].split(",")
    col = header.index("mean_radius")
    row = lines[5].split(",")
    secret = row[col]
    row[col] = "twelve"
    lines[5] = ",".join(row)
    bad = tmp_path / "site3.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    query = tmp_path / "q.json"
    query.write_text(json.dumps(SPEC), encoding="utf-8")
    out = tmp_path / "logit.cert"
    proc = subprocess.run(
        [sys.executable, "-m", "statledger", "run", str(query), "--data", *map(str, sites),
         str(bad), "--allow-partial", "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"WARNING: {bad} is left out of the query: column 'mean_radius' must be numeric" \
        in proc.stderr
    assert "twelve" not in proc.stderr and f",{secret}," not in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["statistic"] == "logistic_irls" and doc["result"]["converged"] is True
    assert list(doc["dropped"]) == [str(bad)]
    assert doc["sites"] == sorted(map(str, sites))
    rounds = doc["rounds"]
    assert rounds >= 3 and len(doc["query_ids"]) == rounds
    assert doc["certificates"] == [str(tmp_path / f"logit-round{i}.cert")
                                   for i in range(1, rounds + 1)] + [str(out)]
    for i, path in enumerate(doc["certificates"][:-1]):
        report = verify_certificate_file(path)
        assert report.valid, (path, report.step, report.reason)
        assert report.query_id == doc["query_ids"][i]
    last = verify_certificate_file(out)
    assert last.valid and last.result == doc["result"]
