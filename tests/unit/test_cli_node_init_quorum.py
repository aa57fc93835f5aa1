"""``statledger node init``: the witness quorum defaults to a majority of the compute nodes
(one node down no longer blocks every checkpoint), ``--witness-quorum`` sets it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.nodes.config import LedgerConfig, load_config
from statledger.nodes.launcher import majority_quorum


def _init(base: Path, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["node", "init", str(base), "--querier", "q", *args])
    return res.exit_code, res.output


@pytest.mark.parametrize(("n", "quorum"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (5, 3),
                                           (6, 4), (7, 4)])
def test_majority(n: int, quorum: int) -> None:
    assert majority_quorum(n) == quorum


@pytest.mark.parametrize(("n", "quorum"), [(1, 1), (3, 2), (5, 3)])
def test_node_init_defaults_to_a_majority(tmp_path: Path, n: int, quorum: int) -> None:
    code, out = _init(tmp_path, "--compute", str(n))
    assert code == 0, out
    ledger = load_config(tmp_path / "ledger" / "config.toml", role="ledger")
    assert isinstance(ledger, LedgerConfig)
    assert ledger.witness_quorum == quorum and len(ledger.witnesses) == n
    assert f"witness quorum: {quorum} of {n}" in out


def test_node_init_quorum_option(tmp_path: Path) -> None:
    code, out = _init(tmp_path, "--compute", "3", "--witness-quorum", "3")
    assert code == 0, out
    ledger = load_config(tmp_path / "ledger" / "config.toml", role="ledger")
    assert isinstance(ledger, LedgerConfig) and ledger.witness_quorum == 3


@pytest.mark.parametrize("bad", ["0", "4", "-1"])
def test_node_init_refuses_a_quorum_out_of_range(tmp_path: Path, bad: str) -> None:
    code, out = _init(tmp_path, "--compute", "3", "--witness-quorum", bad)
    assert code == 2 and "--witness-quorum" in out
    assert not (tmp_path / "ledger" / "config.toml").exists()
