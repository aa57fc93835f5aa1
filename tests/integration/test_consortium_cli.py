"""``statledger consortium init/sign/show/export-trust`` as a deployment runs them (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from statledger.protocol import datasets
from statledger.protocol.consortium import parse_trust_document

PARTIES = ["compute-1", "compute-2", "compute-3", "ledger", "h-a", "h-b", "querier"]


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "statledger", *map(str, args)],  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture()
def deployment(tmp_path: Path) -> Path:
    base = tmp_path / "cluster"
    sites = datasets.sites("diabetes")
    r = _cli("node", "init", base, "--compute", "3",
             "--provider", f"h-a=diabetes:{datasets.path('diabetes', sites[0])}",
             "--provider", f"h-b=diabetes:{datasets.path('diabetes', sites[1])}")
    assert r.returncode == 0, r.stderr
    return base


def test_found_sign_show_export(deployment: Path, tmp_path: Path) -> None:
    r = _cli("consortium", "init", deployment, "--name", "Diabetes network")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.split()[1]
    genesis = deployment / "consortium.json"
    assert "to sign (7)" in r.stdout
    # incomplete: show exits 1 and names who is missing; export-trust refuses
    r = _cli("consortium", "show", genesis)
    assert r.returncode == 1 and "NOT SIGNED" in r.stdout and "compute-1" in r.stdout
    r = _cli("consortium", "export-trust", genesis, "--out", tmp_path / "t.json")
    assert r.returncode == 1 and "has not signed" in r.stderr
    assert not (tmp_path / "t.json").exists()
    for pid in PARTIES:
        r = _cli("consortium", "sign", genesis, "--config", deployment / pid / "config.toml")
        assert r.returncode == 0, r.stderr
        assert pid in r.stdout and cid in r.stdout
    assert "every member signed" in r.stdout
    r = _cli("consortium", "show", genesis)
    assert r.returncode == 0 and "NOT SIGNED" not in r.stdout and cid in r.stdout
    r = _cli("consortium", "export-trust", genesis, "--out", tmp_path / "trust.json")
    assert r.returncode == 0, r.stderr
    signed = parse_trust_document((tmp_path / "trust.json").read_bytes())
    assert signed.genesis.consortium_id == cid
    assert {m.party_id: m.role for m in signed.genesis.members} == {
        "compute-1": "compute", "compute-2": "compute", "compute-3": "compute",
        "ledger": "ledger", "h-a": "provider", "h-b": "provider", "querier": "querier"}
    assert signed.genesis.witness_quorum == 2
    r = _cli("consortium", "show", tmp_path / "trust.json")  # a trust file shows too
    assert r.returncode == 0 and cid in r.stdout


def test_sign_all_and_tampering(deployment: Path, tmp_path: Path) -> None:
    r = _cli("consortium", "init", deployment, "--sign-all", "--admission-quorum", "3")
    assert r.returncode == 0, r.stderr
    assert "to sign" not in r.stdout
    genesis = deployment / "consortium.json"
    obj = json.loads(genesis.read_text())
    assert obj["genesis"]["admission"] == {"quorum": 3, "roles": ["compute"]}
    # the document changed after signing (a querier made an owner): every signature
    # breaks, nothing is exported
    q = next(m for m in obj["genesis"]["members"] if m["role"] == "querier")
    q["role"] = "provider"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(obj))
    r = _cli("consortium", "show", bad)
    assert r.returncode == 1 and "does not verify" in r.stdout
    r = _cli("consortium", "export-trust", bad, "--out", tmp_path / "t.json")
    assert r.returncode == 1
    # not JSON, truncated, wrong shape: exit 2 with the file named, no traceback
    for text in ("not json", genesis.read_text()[:100], "[]"):
        bad.write_text(text)
        r = _cli("consortium", "show", bad)
        assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr


def test_refusals(deployment: Path, tmp_path: Path) -> None:
    r = _cli("consortium", "init", tmp_path / "nowhere")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _cli("consortium", "init", deployment, "--admission-quorum", "4")
    assert r.returncode == 2 and "quorum 4" in r.stderr
    r = _cli("consortium", "init", deployment, "--admission-roles", "root")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = _cli("consortium", "init", deployment)
    assert r.returncode == 0
    other = tmp_path / "other"
    r2 = _cli("node", "init", other, "--compute", "1")
    assert r2.returncode == 0, r2.stderr
    # a party of another deployment cannot sign this genesis
    r = _cli("consortium", "sign", deployment / "consortium.json",
             "--config", other / "compute-1" / "config.toml")
    assert r.returncode == 2 and "not the member's key" in r.stderr


def test_decryption_threshold_is_kept_set_shown_and_bounded(tmp_path: Path) -> None:
    """`node init --threshold 2` founds a 2-of-3 consortium; `consortium init` keeps that T
    unless told otherwise, refuses a T outside 1..N, and `consortium show` prints it."""
    base = tmp_path / "t"
    sites = datasets.sites("diabetes")
    r = _cli("node", "init", base, "--compute", "3", "--threshold", "2",
             "--provider", f"h-a=diabetes:{datasets.path('diabetes', sites[0])}")
    assert r.returncode == 0, r.stderr
    assert "decryption threshold: 2 of 3" in r.stdout
    genesis = base / "consortium.json"

    def threshold() -> int:
        return int(json.loads(genesis.read_text())["genesis"]["decryption_threshold"])

    assert threshold() == 2
    r = _cli("consortium", "init", base, "--sign-all")
    assert r.returncode == 0, r.stderr
    assert threshold() == 2 and "decryption threshold 2 of 3" in r.stdout
    r = _cli("consortium", "show", genesis)
    assert r.returncode == 0 and "decryption threshold: 2" in r.stdout
    r = _cli("consortium", "init", base, "--sign-all", "--threshold", "3")
    assert r.returncode == 0, r.stderr
    assert threshold() == 3
    for bad in ("0", "4"):
        r = _cli("consortium", "init", base, "--threshold", bad)
        assert r.returncode == 2 and "--threshold" in r.stderr and "Traceback" not in r.stderr
        assert threshold() == 3  # nothing written
    for bad in ("0", "4"):
        r = _cli("node", "init", tmp_path / f"bad{bad}", "--compute", "3", "--threshold", bad)
        assert r.returncode == 2 and "--threshold" in r.stderr and "Traceback" not in r.stderr
