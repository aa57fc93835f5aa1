"""A bounded schemathesis run against each real running service (ledger, compute, provider).

One small cluster (1 ledger, 1 compute node, 1 provider, the querier registered, the key
ceremony done); for each service, ``st run`` on its own ``/openapi.json`` with deterministic
generation (derandomized: no seed is drawn) and a bounded number of examples per operation,
so the run is the same on every machine and stays under half a minute per service.  The
checks: no 5xx (``not_a_server_error``), every status code documented, every content type
and body (``ErrorBody`` for errors) and header as documented.  Each service is fuzzed twice:
unsigned (the signed routes must answer 400/401 as documented, never 5xx, whatever is sent)
and signed as the registered querier (``st_sign_hook.py``), so the fuzzed bodies, query ids
and parameters reach the handlers, the ledger's append checks and the nodes' ledger reads.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statledger.nodes.config import load_config
from statledger.nodes.demo import provider_datasets
from statledger.nodes.launcher import Cluster

ST = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance",
    "response_schema_conformance", "response_headers_conformance",
])
MAX_EXAMPLES = 30
HOOKS_DIR = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(ST is None, reason="schemathesis (the test extra) not installed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    datasets = provider_datasets()
    first = sorted(datasets)[0]
    c = Cluster(tmp_path_factory.mktemp("schemathesis"), n_compute=1,
                providers={first: datasets[first]}, queriers=["querier"],
                startup_timeout=90)
    c.start_and_set_up()
    try:
        with c.client("ledger", as_party="querier") as cl:
            cl.post("/v1/checkpoint")  # GET /v1/checkpoint and the bundles have one to serve
        yield c
    finally:
        c.stop()


def _signed_requests(cluster: Cluster, pid: str) -> int:
    """Requests signed by the querier that ``pid`` authenticated (its nonce store)."""
    path = load_config(cluster.layout.parties[pid].config_path).state_db_path
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT COUNT(*) FROM http_nonces WHERE party = 'querier'").fetchone()
    finally:
        db.close()
    return int(row[0])


def _party(cluster: Cluster, role: str) -> str:
    return next(p.party_id for p in cluster.layout.parties.values() if p.role == role)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("role", ["ledger", "compute", "provider"])
def test_schemathesis_finds_nothing(cluster: Cluster, role: str, signed: bool,
                                    tmp_path: Path) -> None:
    assert ST is not None
    pid = _party(cluster, role)
    url = cluster.url(pid)
    report = tmp_path / "report.json"
    env = dict(os.environ)
    if signed:
        env.update(
            SCHEMATHESIS_HOOKS="st_sign_hook",
            PYTHONPATH=os.pathsep.join([str(HOOKS_DIR), env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep),
            STATLEDGER_ST_KEY=str(Path(cluster.layout.parties["querier"].data_dir)
                                  / "identity.key"),
            STATLEDGER_ST_PARTY="querier", STATLEDGER_ST_TARGET=pid)
    before = _signed_requests(cluster, pid)
    proc = subprocess.run(  # noqa: S603 -- schemathesis's own CLI, fixed argv
        [ST, "run", f"{url}/openapi.json", "--checks", CHECKS,
         "--generation-deterministic", "--max-examples", str(MAX_EXAMPLES),
         "--phases", "examples,coverage,fuzzing", "--workers", "1",
         "--request-timeout", "30", "--no-color",
         "--report", "json", "--report-json-path", str(report), "--warnings", "off"],
        capture_output=True, text=True, timeout=240, cwd=str(tmp_path), env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    # it tested every operation, each many times (a run that tested nothing passes too)
    schema_ops = sum(len(ops) for ops in httpx.get(f"{url}/openapi.json").json()["paths"]
                     .values())
    tested = re.search(r"Tested: (\d+)", out)
    generated = re.search(r"(\d+) generated", out)
    assert tested is not None and int(tested.group(1)) == schema_ops, out[-3000:]
    assert generated is not None and int(generated.group(1)) >= 10 * schema_ops, out[-3000:]
    if signed:  # the signatures held: the service recorded the querier's nonces
        assert _signed_requests(cluster, pid) - before >= 10, out[-3000:]
    log = Path(cluster.layout.parties[pid].log_path).read_text()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
