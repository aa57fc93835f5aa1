"""init_cluster layouts and the serve entry point (processes started for real)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from statledger.ledger.note import CosignatureVerifier, NoteSigner, NoteVerifier
from statledger.nodes.config import (
    ComputeConfig,
    LedgerConfig,
    ProviderConfig,
    QuerierConfig,
    load_config,
)
from statledger.nodes.keys import load_identity_key, read_secret_file
from statledger.nodes.launcher import ClusterError, free_ports, init_cluster, load_layout
from statledger.nodes.trust import pinned_genesis, pinned_id
from statledger.protocol.consortium import SignedGenesis, parse_trust_document


@pytest.fixture
def layout(tmp_path):
    data = tmp_path / "a.csv"
    data.write_text("age\n1\n")
    return init_cluster(tmp_path / "c", n_compute=3,
                        providers={"site-a": {"trial": str(data)},
                                   "site-b": {"t": {"path": str(data), "format": "csv"}}},
                        queriers=["querier"])


def test_layout_roles_and_configs(layout):
    assert [p.party_id for p in layout.compute] == ["compute-1", "compute-2", "compute-3"]
    assert {p.party_id for p in layout.providers} == {"site-a", "site-b"}
    kinds = {"ledger": LedgerConfig, "compute": ComputeConfig, "provider": ProviderConfig,
             "querier": QuerierConfig}
    for p in layout.parties.values():
        cfg = load_config(p.config_path, role=p.role)
        assert isinstance(cfg, kinds[p.role])
        assert cfg.party_id == p.party_id
        if p.role != "querier":
            assert p.url == cfg.base_url
    ports = [load_config(p.config_path).port for p in layout.parties.values()
             if p.role != "querier"]
    assert len(set(ports)) == len(ports)


def _genesis(layout):
    with open(os.path.join(layout.base_dir, "trust.json"), "rb") as f:
        return parse_trust_document(f.read())


def test_consortium_keys_and_witnesses(layout):
    signed = _genesis(layout)
    signed.verify()  # every founding member signed it
    genesis = signed.genesis
    members = {m.party_id: m for m in genesis.members}
    assert set(members) == set(layout.parties)
    assert set(signed.signatures) == set(layout.parties)
    for pid, member in members.items():
        sk = load_identity_key(os.path.join(layout.parties[pid].data_dir, "identity.key"))
        assert member.sig_key == sk.public_key().to_bytes().hex()
        assert member.role == layout.parties[pid].role
    assert genesis.ledger.party_id == "ledger" and genesis.origin == "statledger.local/log"
    assert genesis.witness_quorum == 3
    assert genesis.admission.roles == ("compute",) and genesis.admission.quorum == 2
    # consortium.json is the same signed genesis; every party pins it through `trust`
    with open(os.path.join(layout.base_dir, "consortium.json"), "rb") as f:
        assert SignedGenesis.from_bytes(f.read()) == signed
    for p in layout.parties.values():
        cfg = load_config(p.config_path)
        assert os.path.samefile(cfg.trust, os.path.join(layout.base_dir, "trust.json"))
        assert pinned_id(cfg) == genesis.consortium_id
        assert pinned_genesis(cfg) == signed
    ledger = load_config(layout.ledger.config_path)
    assert not hasattr(ledger, "roster")
    assert ledger.witness_quorum == 3
    log_seed = read_secret_file(ledger.identity_key_path, "ed25519")  # the log key
    log_vkey = NoteSigner(ledger.origin, log_seed).vkey()
    for c in layout.compute:
        cfg = load_config(c.config_path)
        assert cfg.witness.log_key == log_vkey
        NoteVerifier.from_vkey(cfg.witness.log_key)
        w = CosignatureVerifier.from_vkey(ledger.witnesses[c.party_id].key)
        assert w.name == c.party_id
        assert ledger.witnesses[c.party_id].url == c.url
        assert c.party_id not in cfg.peers and len(cfg.peers) == 2


def test_key_files_are_private(layout):
    n = 0
    for p in layout.parties.values():
        for name in os.listdir(p.data_dir):
            if name.endswith(".key"):
                assert os.stat(os.path.join(p.data_dir, name)).st_mode & 0o777 == 0o600
                n += 1
    assert n == 1 + 3 * 2 + 2 + 1  # ledger, compute identity + elgamal, 2 providers, querier


def test_reinit_keeps_keys_and_layout_reloads(layout, tmp_path):
    before = _genesis(layout)
    again = init_cluster(layout.base_dir, n_compute=3,
                         providers={"site-a": {}, "site-b": {}}, queriers=["querier"])
    # same keys, same parties: the same consortium
    assert _genesis(again) == before
    assert pinned_id(load_config(again.ledger.config_path)) == before.genesis.consortium_id
    assert load_layout(layout.base_dir).parties.keys() == again.parties.keys()
    with pytest.raises(ClusterError):
        load_layout(tmp_path / "nowhere")
    with pytest.raises(ClusterError, match="distinct"):
        init_cluster(tmp_path / "d", n_compute=1, queriers=["compute-1"])


def test_a_consortium_needs_a_compute_node(tmp_path):
    with pytest.raises(ClusterError, match="at least one compute node"):
        init_cluster(tmp_path / "e", n_compute=0, queriers=["querier"])
    assert not (tmp_path / "e" / "consortium.json").exists()
    assert not (tmp_path / "e" / "trust.json").exists()
    one = init_cluster(tmp_path / "f", n_compute=1, queriers=["querier"])
    g = _genesis(one).genesis
    assert [m.party_id for m in g.members if m.role == "compute"] == ["compute-1"]
    assert g.witness_quorum == 1


def test_free_ports_distinct():
    ports = free_ports(8)
    assert len(set(ports)) == 8 and all(1024 <= p < 65536 for p in ports)


def _serve(capsys, *args):
    """``python -m statledger.nodes.serve`` failure paths, run in-process (they exit before
    uvicorn)."""
    from statledger.nodes.serve import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


def test_serve_refuses_bad_config(layout, tmp_path, capsys):
    code, err = _serve(capsys, "--role", "compute", "--config", layout.ledger.config_path)
    assert code == 2 and "'compute' was asked for" in err
    code, err = _serve(capsys, "--role", "ledger", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "cannot read" in err
    code, err = _serve(capsys, "--role", "admin", "--config", layout.ledger.config_path)
    assert code == 2 and "invalid choice" in err


def test_serve_refuses_readable_key(layout, capsys):
    key = os.path.join(layout.ledger.data_dir, "identity.key")
    os.chmod(key, 0o644)
    code, err = _serve(capsys, "--role", "ledger", "--config", layout.ledger.config_path)
    assert code == 2
    assert "chmod 600" in err and "identity.key" in err


def test_serve_as_a_process_reports_config_errors(layout):
    r = subprocess.run([sys.executable, "-m", "statledger.nodes.serve", "--role", "provider",
                        "--config", layout.ledger.config_path],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "'provider' was asked for" in r.stderr
