"""Kaplan–Meier at real resolution end to end: lifelines' lung data split over three owners
(real processes over HTTP on loopback, ``statledger.local``), the integer grid declared as
``max_time`` + ``step`` and the per-point bound ``max_ties`` through the Python API, the
certified curves equal to lifelines on the pooled rows (times binned up to the grid), the
certificate verified with progress reported step by step (in process and by ``statledger
verify --verbose`` on stderr), and the adversary's twins: an owner over ``max_ties`` refuses
with a reason that names no count, a flipped bit in the certificate is caught."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_lung

import statledger
from statledger.proofs.errors import MalformedError
from statledger.verifier.report import STEPS
from statledger.verifier.verify import load_trust, verify_certificate

STEP = 7
MAX_TIME = 1029  # weekly grid 7, 14, ..., 1029: 147 points, every lung time inside
TOL = 1e-12


@pytest.fixture(scope="module")
def pooled() -> pd.DataFrame:
    d = load_lung()[["time", "status", "sex"]].copy()
    d["time"] = d["time"].astype(float)
    d["status"] = d["status"].astype(float)
    d["sex"] = [str(int(v)) for v in d["sex"]]
    return d


@pytest.fixture(scope="module")
def session(pooled: pd.DataFrame) -> Iterator[statledger.Session]:
    sites = {f"site{k + 1}": pooled.iloc[k::3].reset_index(drop=True) for k in range(3)}
    with statledger.local(sites, compute=3, threshold=2) as s:
        yield s


def km(session: statledger.Session, max_ties: int) -> statledger.Result:
    return session.kaplan_meier("time", "status", max_time=MAX_TIME, step=STEP,
                                max_ties=max_ties, group_by=["sex"],
                                categories={"sex": ["1", "2"]}, max_rows=1000,
                                min_cell_size=1)  # the exact table: the owners allow k = 1


def test_weekly_grid_matches_lifelines_and_verifies_with_progress(
        session: statledger.Session, pooled: pd.DataFrame, tmp_path: Path) -> None:
    res = km(session, max_ties=15)
    v = res.to_dict()
    assert v["times"] == [0.0, *[float(t) for t in range(STEP, MAX_TIME + 1, STEP)]]
    binned = np.ceil(pooled["time"].to_numpy() / STEP) * STEP
    for g in v["groups"]:
        m = (pooled["sex"] == g["group"]["sex"]).to_numpy()
        assert g["n"] == int(m.sum())
        kmf = KaplanMeierFitter().fit(binned[m], pooled["status"].to_numpy()[m])
        sf = kmf.survival_function_.iloc[:, 0]
        idx = [g["times"].index(float(t)) for t in sf.index]
        assert np.max(np.abs(np.array(g["survival"])[idx] - sf.to_numpy())) <= TOL
        ci = kmf.confidence_interval_
        assert np.max(np.abs(np.array(g["ci_lower"])[idx] - ci.iloc[:, 0].to_numpy())) <= TOL
        assert g["median"] == kmf.median_survival_time_

    cert = tmp_path / "km.cert"
    res.save(cert)
    trust = tmp_path / "trust.json"
    session.save_trust(trust)
    seen: list[int] = []
    report = verify_certificate(cert.read_bytes(), load_trust(trust), source=str(cert),
                                progress=lambda n, _d: seen.append(n))
    report.raise_for_invalid()
    assert seen == sorted(STEPS) == [s.step for s in report.steps]

    proc = subprocess.run(  # noqa: S603 -- our own CLI
        [sys.executable, "-m", "statledger", "verify", str(cert), "--trust", str(trust),
         "--verbose"], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "km.cert [" in ln]
    assert len(lines) == len(STEPS)
    assert "step 9 ok; checking step 10" in proc.stderr
    assert lines[-1].endswith("step 15 ok")

    # a flipped bit inside the submissions: the certificate no longer verifies, the
    # progress stops before the step that failed
    raw = bytearray(cert.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    bad: list[int] = []
    try:
        rep = verify_certificate(bytes(raw), load_trust(trust),
                                 progress=lambda n, _d: bad.append(n))
    except MalformedError:
        return  # the flip hit the framing: not a certificate at all (step 1)
    assert not rep.valid
    assert rep.step not in bad and all(n < rep.step for n in bad)


def test_owner_over_max_ties_refuses_without_a_count(session: statledger.Session) -> None:
    with pytest.raises(statledger.SiteError, match="max_ties") as exc:
        km(session, max_ties=1)  # lung has weeks with several deaths at one site
    msg = str(exc.value)
    assert "site" in msg
    # the refusal carries no count of the owner's rows (site names carry their own digit)
    assert not any(ch.isdigit() for ch in msg.replace("site1", "").replace("site2", "")
                   .replace("site3", "").replace("max_ties", ""))
