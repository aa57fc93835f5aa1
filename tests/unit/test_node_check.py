"""``statledger node init`` (origin, port base, relative paths, 0600 configs, a strict commented
policy.toml) and ``statledger node check`` (one verdict line per check, exit 0/1), with a
reject twin for every check: a key others can read, another party's key, a policy typo, a
policy column no dataset has, a missing dataset, a config that does not parse, a ledger URL
nobody answers, a server that answers as another party.
"""

from __future__ import annotations

import json
import shutil
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statledger.nodes.check import check_node
from statledger.nodes.cli import app
from statledger.nodes.config import LedgerConfig, ProviderConfig, load_config
from statledger.nodes.data import load_table
from statledger.nodes.policy_file import PRIVACY_MARKER, STRICT_BUDGET_RHO
from statledger.nodes.provider_service import load_policy
from statledger.protocol import datasets
from statledger.protocol.consortium import parse_trust_document
from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.query import DEFAULT_MIN_CELL_SIZE

CSV = datasets.path("diabetes", datasets.sites("diabetes")[0]).resolve()


def _cli(*args: str | Path) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise AssertionError(f"uncaught {res.exception!r}\n{res.output}")
    return res.exit_code, res.output


@pytest.fixture()
def dep(tmp_path: Path) -> Path:
    base = tmp_path / "deploy"
    code, out = _cli("node", "init", base, "--compute", "2", "--querier", "q1",
                     "--querier", "q2", "--provider", f"h-a=diabetes:{CSV}",
                     "--origin", "diabetes.example.org/log", "--port-base", "9400")
    assert code == 0, out
    return base


def test_origin_ports_and_relative_paths(dep: Path, tmp_path: Path) -> None:
    ledger = load_config(dep / "ledger" / "config.toml")
    assert isinstance(ledger, LedgerConfig) and ledger.origin == "diabetes.example.org/log"
    assert ledger.port == 9400
    ports = {p: load_config(dep / p / "config.toml").port
             for p in ("compute-1", "compute-2", "h-a")}
    assert ports == {"compute-1": 9401, "compute-2": 9402, "h-a": 9403}
    genesis = parse_trust_document((dep / "trust.json").read_bytes()).genesis
    assert genesis.origin == "diabetes.example.org/log"
    text = (dep / "h-a" / "config.toml").read_text()
    assert str(dep) not in text  # nothing inside the deployment folder is absolute
    assert 'data_dir = "."' in text and 'trust = "../trust.json"' in text
    assert 'policy = "policy.toml"' in text
    assert str(CSV) in text  # a dataset outside the folder keeps its absolute path
    # the folder moves as a whole: every path still resolves, every check but the ledger ok
    moved = tmp_path / "elsewhere"
    shutil.move(str(dep), moved)
    cfg = load_config(moved / "h-a" / "config.toml")
    assert isinstance(cfg, ProviderConfig)
    assert cfg.data_dir.resolve() == (moved / "h-a").resolve()
    assert cfg.trust is not None and cfg.trust.resolve() == (moved / "trust.json").resolve()
    lines = check_node(moved / "h-a" / "config.toml", timeout=0.5)
    assert [ln.what for ln in lines if ln.verdict != "ok"] == ["ledger"]


def test_configs_and_keys_are_owner_only(dep: Path) -> None:
    for pid in ("ledger", "compute-1", "compute-2", "h-a", "q1", "q2"):
        for name in ("config.toml", "identity.key"):
            mode = stat.S_IMODE((dep / pid / name).stat().st_mode)
            assert mode == 0o600, (pid, name, oct(mode))


def test_strict_commented_policy(dep: Path) -> None:
    path = dep / "h-a" / "policy.toml"
    text = path.read_text()
    policy = load_policy(path)
    assert policy.allowed_queriers == ["q1", "q2"]
    assert policy.allowed_columns == sorted(load_table(CSV))
    assert policy.min_cell_size == DEFAULT_MIN_CELL_SIZE
    assert policy.budget_rho == STRICT_BUDGET_RHO and policy.require_dp is False
    assert policy.allowed_statistics is not None and "mean" in policy.allowed_statistics
    assert "model_evaluation" in policy.allowed_statistics  # registered without chain.py
    # exact answers are written out: a budget does not limit them (docs/deployment.md)
    assert policy.exact == "allow" and '\nexact = "allow"\n' in text
    # every field of the model is in the file: set, or commented out under the marker
    below = text.split(PRIVACY_MARKER, 1)[1]
    for name in ProviderPolicy.model_fields:
        assert f"\n{name} = " in text or f"\n# {name} = " in below, name
    assert text.count("\n# ") > 2 * len(ProviderPolicy.model_fields) // 2  # commented
    # re-running init keeps the owner's edits
    path.write_text(text.replace("min_cell_size = 5", "min_cell_size = 11"))
    code, out = _cli("node", "init", dep, "--compute", "2", "--querier", "q1",
                     "--provider", f"h-a=diabetes:{CSV}", "--port-base", "9400")
    assert code == 0, out
    assert load_policy(path).min_cell_size == 11


def test_port_base_out_of_range(tmp_path: Path) -> None:
    code, out = _cli("node", "init", tmp_path / "d", "--compute", "3", "--port-base", "65534")
    assert code == 2 and "port base 65534" in out and "Traceback" not in out


# -- node check ------------------------------------------------------------------------------


def _verdicts(path: Path, timeout: float = 0.5) -> dict[str, str]:
    return {ln.what: ln.verdict for ln in check_node(path, timeout=timeout)}


def test_check_passes_all_but_the_absent_ledger(dep: Path) -> None:
    v = _verdicts(dep / "h-a" / "config.toml")
    assert v == {"config": "ok", "trust": "ok", "identity key": "ok", "consortium": "ok",
                 "policy": "ok", "dataset diabetes": "ok", "policy columns": "ok",
                 "ledger": "FAIL"}
    c = _verdicts(dep / "compute-1" / "config.toml")
    assert c["key share"] == "ok" and c["consortium"] == "ok"
    assert _verdicts(dep / "ledger" / "config.toml") == {
        "config": "ok", "trust": "ok", "identity key": "ok", "consortium": "ok", "log": "ok"}
    code, out = _cli("node", "check", "--config", dep / "ledger" / "config.toml")
    assert code == 0 and "READY" in out
    code, out = _cli("node", "check", "--config", dep / "h-a" / "config.toml",
                     "--timeout", "0.5")
    assert code == 1 and "NOT READY: 1 check(s) failed" in out and "unreachable" in out


def test_check_key_others_can_read(dep: Path) -> None:
    (dep / "h-a" / "identity.key").chmod(0o644)
    assert _verdicts(dep / "h-a" / "config.toml")["identity key"] == "FAIL"


def test_check_key_of_another_party(dep: Path) -> None:
    shutil.copy(dep / "q1" / "identity.key", dep / "h-a" / "identity.key")
    lines = check_node(dep / "h-a" / "config.toml", timeout=0.5)
    bad = [ln for ln in lines if ln.what == "consortium"]
    assert bad[0].verdict == "FAIL" and "another identity key" in bad[0].detail


def test_check_policy_typo_and_unknown_column(dep: Path) -> None:
    path = dep / "h-a" / "policy.toml"
    good = path.read_text()
    path.write_text(good + "\nmin_cel_size = 3\n")
    assert _verdicts(dep / "h-a" / "config.toml")["policy"] == "FAIL"
    path.write_text(good.replace('allowed_columns = ["age"', 'allowed_columns = ["agee"'))
    lines = check_node(dep / "h-a" / "config.toml", timeout=0.5)
    cols = next(ln for ln in lines if ln.what == "policy columns")
    assert cols.verdict == "FAIL" and "agee" in cols.detail


def test_check_missing_dataset_and_bad_config(dep: Path, tmp_path: Path) -> None:
    cfg = dep / "h-a" / "config.toml"
    cfg.write_text(cfg.read_text().replace(str(CSV), str(tmp_path / "gone.csv")))
    assert _verdicts(cfg)["dataset diabetes"] == "FAIL"
    cfg.write_text("party_id = [\n")
    assert _verdicts(cfg) == {"config": "FAIL"}
    code, out = _cli("node", "check", "--config", cfg)
    assert code == 1 and "Traceback" not in out


class _Health(BaseHTTPRequestHandler):
    body: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        data = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def fake_ledger() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("H", (_Health,), {"body": {}})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1], handler
    finally:
        srv.shutdown()
        srv.server_close()


def test_check_ledger_identity(dep: Path, fake_ledger: tuple[int, Any]) -> None:
    port, handler = fake_ledger
    cfg = dep / "h-a" / "config.toml"
    cfg.write_text(cfg.read_text().replace("http://127.0.0.1:9400", f"http://127.0.0.1:{port}"))
    handler.body = {"status": "ok", "party": "ledger", "role": "ledger"}
    assert _verdicts(cfg, 5.0)["ledger"] == "ok"
    handler.body = {"status": "ok", "party": "evil", "role": "ledger"}
    assert _verdicts(cfg, 5.0)["ledger"] == "FAIL"
    handler.body = {"status": "ok", "party": "ledger", "role": "compute"}
    assert _verdicts(cfg, 5.0)["ledger"] == "FAIL"
