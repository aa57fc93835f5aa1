"""The ``statledger`` CLI through real subprocesses: ``run`` on an ephemeral cluster with one
provider per bundled CSV, ``verify`` of the certificate it wrote (and of tampered twins), and
``node init`` (configs and 0600 keys)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from statledger.nodes.data import load_table
from statledger.protocol import datasets
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.verifier.certificate import Certificate, parse_certificate

CLI = [sys.executable, "-m", "statledger"]
SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}


def _cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _inproc(*args: str | Path) -> tuple[int, str]:
    """The same CLI in this process (for the cheap refusals and tampered twins)."""
    from typer.testing import CliRunner

    from statledger.nodes.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


def _csv(site: str) -> Path:
    return Path(str(datasets.path("diabetes", site)))


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path,
                                                              subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("cli")
    query = work / "query.json"
    query.write_text(json.dumps(SPEC), encoding="utf-8")
    cert = work / "query.cert"
    proc = _cli("run", query, "--data", _csv("site1"), _csv("site2"), "--out", cert,
                timeout=240)
    return cert, proc


def test_run_prints_the_result_and_writes_a_certificate(run_out: tuple[Path, Any]) -> None:
    cert, proc = run_out
    assert proc.returncode == 0, proc.stderr[-3000:]
    bmi = np.concatenate([load_table(_csv(s))["bmi"] for s in ("site1", "site2")])
    lines = [ln.split() for ln in proc.stdout.splitlines()]
    row = next(ln for ln in lines if ln and ln[0] == "all")
    assert int(row[1]) == len(bmi)
    assert float(row[2]) == pytest.approx(float(np.mean(np.clip(bmi, 15, 50))), abs=0.006)
    assert f"certificate: {cert}" in proc.stdout
    assert cert.is_file()


def test_verify_accepts_the_certificate(run_out: tuple[Path, Any]) -> None:
    cert, _ = run_out
    v = _cli("verify", cert)
    assert v.returncode == 0, v.stdout
    assert "VALID" in v.stdout and "INVALID" not in v.stdout
    j = _cli("verify", "--json", cert)
    assert j.returncode == 0 and json.loads(j.stdout)["valid"] is True


def _tampered_result(cert: Certificate) -> Certificate:
    """Change the published result (the mean's ``n``) inside the result entry's bytes."""
    entries = list(cert.entries)
    for i, e in enumerate(entries):
        data = parse_cbor(e.data)
        if data.get("kind") == "result":
            data["result"]["n"] += 1
            entries[i] = replace(e, data=cbor_bytes(data))
            return replace(cert, entries=tuple(entries))
    raise AssertionError("no result entry in the certificate")


@pytest.mark.parametrize("tamper", ["result", "checkpoint", "drop-entry", "truncated"])
def test_verify_rejects_tampered_twins(run_out: tuple[Path, Any], tmp_path: Path,
                                       tamper: str) -> None:
    cert, _ = run_out
    raw = cert.read_bytes()
    doc = parse_certificate(raw)
    if tamper == "result":
        out = _tampered_result(doc).to_bytes()
    elif tamper == "checkpoint":
        out = replace(doc, checkpoint=doc.checkpoint.replace("\n", "\n\n", 1)).to_bytes()
    elif tamper == "drop-entry":
        out = replace(doc, entries=tuple(e for e in doc.entries
                                         if parse_cbor(e.data).get("kind")
                                         != "endorsement")).to_bytes()
    else:
        out = raw[: len(raw) // 2]
    bad = tmp_path / "bad.cert"
    bad.write_bytes(out)
    code, output = _inproc("verify", bad)
    assert code in (1, 2), (code, output)
    assert "INVALID" in output or "NOT A CERTIFICATE" in output


def test_run_refuses_a_bad_query_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "statistic": "nope"}', encoding="utf-8")
    code, output = _inproc("run", bad, "--data", _csv("site1"), _csv("site2"))
    assert code == 2 and "error:" in output and "statistic" in output
    code, output = _inproc("run", tmp_path / "missing.json", "--data", _csv("site1"))
    assert code == 2 and "error:" in output
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SPEC), encoding="utf-8")
    code, output = _inproc("run", good, "--data", _csv("site1"), tmp_path / "no.csv")
    assert code == 2 and "no.csv: no such file" in output


def test_node_init_writes_configs_and_private_keys(tmp_path: Path) -> None:
    base = tmp_path / "deploy"
    proc = _cli("node", "init", base, "--compute", "2",
                "--provider", f"clinic-1=diabetes:{_csv('site1')}",
                "--provider", f"clinic-2=diabetes:{_csv('site2')}")
    assert proc.returncode == 0, proc.stderr
    parties = ["ledger", "compute-1", "compute-2", "clinic-1", "clinic-2", "querier"]
    for pid in parties:
        assert pid in proc.stdout
        assert (base / pid / "config.toml").is_file(), pid
        key = base / pid / "identity.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, pid
    for pid in ("compute-1", "compute-2"):
        assert stat.S_IMODE((base / pid / "elgamal.key").stat().st_mode) == 0o600
    assert not (base / "clinic-1" / "elgamal.key").exists()
    layout = json.loads((base / "cluster.json").read_text(encoding="utf-8"))
    assert set(layout["parties"]) == set(parties)
    assert str(_csv("site1").resolve()) in (base / "clinic-1" / "config.toml").read_text()
    # re-running init keeps the keys (never rotates them silently)
    before = (base / "compute-1" / "elgamal.key").read_bytes()
    assert _inproc("node", "init", base, "--compute", "2")[0] == 0
    assert (base / "compute-1" / "elgamal.key").read_bytes() == before


@pytest.mark.parametrize("provider", ["nodata", "p=", "p=diabetes", "=diabetes:x.csv"])
def test_node_init_refuses_bad_provider_specs(tmp_path: Path, provider: str) -> None:
    code, output = _inproc("node", "init", tmp_path / "d", "--provider", provider)
    assert code == 2 and "error:" in output
