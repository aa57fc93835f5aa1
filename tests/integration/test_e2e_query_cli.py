"""`statledger query` against a running cluster, with the querier config `node init` wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from statledger.protocol import datasets

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "statledger", *args], cwd=cwd, capture_output=True,
        text=True, timeout=600, check=False)


def test_query_with_node_init_config(e2e_cluster: Any, tmp_path: Path) -> None:
    cfg = e2e_cluster.layout.parties["querier"].config_path
    spec = tmp_path / "q.json"
    spec.write_text(json.dumps({"version": 1, "statistic": "mean", "columns": ["bp"],
                                "bounds": {"bp": [60.0, 140.0]}, "max_rows": 1000,
                                "min_cell_size": 3}))
    cert = tmp_path / "query.cert"
    r = _cli("query", str(spec), "--config", cfg, "--dataset", "diabetes",
             "--out", str(cert), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pooled = datasets.load("diabetes")["bp"]
    assert f"{np.clip(pooled, 60, 140).mean():.4f}"[:6] in r.stdout
    v = _cli("verify", str(cert), "--json", cwd=tmp_path)
    assert v.returncode == 0, v.stdout
    assert json.loads(v.stdout.splitlines()[0])["valid"] is True


def test_query_refuses_a_config_of_another_role(e2e_cluster: Any, tmp_path: Path) -> None:
    cfg = e2e_cluster.layout.parties["compute-1"].config_path
    r = _cli("query", str(ROOT / "examples" / "mean.json"), "--config", cfg, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "error:" in r.stderr


def test_query_missing_config_exit_2(tmp_path: Path) -> None:
    r = _cli("query", str(ROOT / "examples" / "mean.json"), "--config",
             str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
