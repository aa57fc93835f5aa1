"""What a data owner sees of its node on a real cluster (issue 13): one structured event line
per query event in the node's log at the default log level (received, refused with the
reason, contributed, endorsed; querier, columns, rho), no HTTP access-log noise; every state
file owner-only (0600); ``statledger node check`` says READY for a running provider.

The adversary here is whoever else shares the machine (state files readable by others), and
an owner who cannot see what its node answered (an empty log after a refusal).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.nodes.demo import querier_for
from statledger.nodes.launcher import Cluster
from statledger.proofs.errors import StatledgerError
from statledger.protocol import datasets
from statledger.protocol.query import QuerySpec

SITES = datasets.sites("diabetes")
MEAN_BMI = {"version": 1, "statistic": "mean", "columns": ["bmi"],
            "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}
MEAN_BP = {"version": 1, "statistic": "mean", "columns": ["bp"],
           "bounds": {"bp": [60.0, 140.0]}, "max_rows": 1000}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """1 ledger, 1 compute node, 2 owners at the default log level; owner-b allows only bmi."""
    work = tmp_path_factory.mktemp("owner")
    strict = work / "policy-b.toml"
    strict.write_text('allowed_columns = ["bmi"]\nbudget_rho = 1.0\n', encoding="utf-8")
    providers = {"owner-a": {"diabetes": str(datasets.path("diabetes", SITES[0]))},
                 "owner-b": {"diabetes": str(datasets.path("diabetes", SITES[1]))}}
    c = Cluster(work / "cluster", n_compute=1, providers=providers, queriers=["querier"],
                policies={"owner-b": strict}, startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def queried(cluster: Cluster) -> dict[str, Any]:
    """One answered query (bmi) and one that owner-b refuses (bp)."""
    out: dict[str, Any] = {}
    with querier_for(cluster) as q:
        ok = q.run(QuerySpec.parse(MEAN_BMI), datasets="diabetes")
        out["ok"] = ok.query_id
        with pytest.raises(StatledgerError):
            q.run(QuerySpec.parse(MEAN_BP), datasets="diabetes")
    out["refused"] = QuerySpec.parse(MEAN_BP).query_id_for("querier")
    return out


def _events(cluster: Cluster, party: str) -> list[dict[str, Any]]:
    text = Path(cluster.layout.parties[party].log_path).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        if " statledger.events: " in line:
            out.append(json.loads(line.split(" statledger.events: ", 1)[1]))
    return out


def test_event_lines_at_the_default_level(cluster: Cluster, queried: dict[str, Any]) -> None:
    assert cluster.config_path("owner-a").read_text().count('log_level = "warning"') == 1
    for owner in ("owner-a", "owner-b"):
        ev = [e for e in _events(cluster, owner) if e["query"] == queried["ok"]]
        assert [e["event"] for e in ev] == ["received", "contributed", "endorsed"], ev
        assert ev[0]["querier"] == "querier" and ev[0]["columns"] == ["bmi"]
        assert ev[0]["statistic"] == "mean" and ev[0]["rho"] is None
        assert isinstance(ev[1]["index"], int) and ev[1]["dataset"] == "diabetes"
    refused = [e for e in _events(cluster, "owner-b") if e["query"] == queried["refused"]]
    assert [e["event"] for e in refused] == ["received", "refused"], refused
    assert refused[1]["reason"] == "column 'bp' is not in allowed_columns"
    assert refused[1]["columns"] == ["bp"] and refused[1]["querier"] == "querier"
    # the owner that allowed bp contributed (a query refused elsewhere still shows here)
    a = [e["event"] for e in _events(cluster, "owner-a") if e["query"] == queried["refused"]]
    assert a[:2] == ["received", "contributed"], a


def test_no_http_noise_and_no_data_in_the_log(cluster: Cluster,
                                              queried: dict[str, Any]) -> None:
    for party in cluster.layout.parties.values():
        if not party.serves:
            continue
        text = Path(party.log_path).read_text(encoding="utf-8")
        assert "HTTP/1.1" not in text and '"POST /v1' not in text, party.party_id
    # no row, value or count of the data in an owner's lines
    for owner in ("owner-a", "owner-b"):
        for e in _events(cluster, owner):
            assert set(e) <= {"event", "query", "statistic", "columns", "rho", "querier",
                              "dataset", "index", "reason", "result_digest"}, e


def test_state_files_are_owner_only(cluster: Cluster, queried: dict[str, Any]) -> None:
    seen = 0
    for party in cluster.layout.parties.values():
        for f in Path(party.data_dir).iterdir():
            if f.suffix in (".key", ".toml") or ".sqlite" in f.name:
                mode = stat.S_IMODE(f.stat().st_mode)
                assert mode & 0o077 == 0, (party.party_id, f.name, oct(mode))
                seen += 1
    names = {f.name for p in cluster.layout.parties.values() for f in Path(p.data_dir).iterdir()}
    assert {"ledger.sqlite", "state.sqlite", "identity.key", "config.toml"} <= names
    assert seen >= 12


def test_node_check_ready_on_a_running_provider(cluster: Cluster) -> None:
    res = CliRunner().invoke(app, ["node", "check", "--config",
                                   str(cluster.config_path("owner-b"))])
    assert res.exit_code == 0, res.output
    assert "answers as the consortium's ledger" in res.output and "READY" in res.output
    assert "FAIL" not in res.output


def test_audit_reports_a_refused_query_apart_from_invalid(cluster: Cluster,
                                                         queried: dict[str, Any]) -> None:
    """A query an owner refused is incomplete, not invalid: the audit of the deployment's
    log exits 0 and says so (it used to count refusals as failures)."""
    res = CliRunner().invoke(app, ["audit", cluster.url("ledger"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    status = {q["query_id"]: q["status"] for q in summary["queries"]}
    assert status[queried["ok"]] == "valid"
    assert status[queried["refused"]] == "incomplete"
    assert summary["invalid"] == 0 and summary["incomplete"] >= 1 and summary["ok"] is True
