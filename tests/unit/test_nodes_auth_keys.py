"""Key files (statledger.nodes.keys) and configs (statledger.nodes.config): accept, and reject
twins."""

from __future__ import annotations

import json
import os
import tomllib

import pytest

from statledger.nodes.config import ConfigError, dump_config_toml, load_config, parse_config
from statledger.nodes.keys import (
    KeyFileError,
    KeyPermissionError,
    create_elgamal_share,
    create_identity_key,
    load_elgamal_share,
    load_identity_key,
    load_or_create_identity_key,
    load_or_create_seed,
    read_secret_file,
    write_secret_file,
)
from statledger.proofs.group import ORDER


def test_identity_key_roundtrip_and_mode(tmp_path):
    p = tmp_path / "k" / "identity.key"
    sk = create_identity_key(p)
    assert os.stat(p).st_mode & 0o777 == 0o600
    assert load_identity_key(p).to_bytes() == sk.to_bytes()
    assert load_or_create_identity_key(p).to_bytes() == sk.to_bytes()


def test_never_overwrites(tmp_path):
    p = tmp_path / "identity.key"
    create_identity_key(p)
    with pytest.raises(KeyFileError, match="already exists"):
        create_identity_key(p)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o666, 0o602, 0o620])
def test_refuses_group_or_other_access(tmp_path, mode):
    p = tmp_path / "identity.key"
    create_identity_key(p)
    os.chmod(p, mode)
    with pytest.raises(KeyPermissionError, match="chmod 600"):
        load_identity_key(p)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_accepts_owner_only(tmp_path, mode):
    p = tmp_path / "identity.key"
    create_identity_key(p)
    os.chmod(p, mode)
    load_identity_key(p)


def test_refuses_symlink(tmp_path):
    p = tmp_path / "identity.key"
    create_identity_key(p)
    link = tmp_path / "link.key"
    link.symlink_to(p)
    with pytest.raises(KeyFileError):
        load_identity_key(link)


def _write_raw(p, text):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)


GOOD = {"format": "statledger-key/v1", "kind": "ed25519", "secret": "11" * 32}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        json.dumps({**GOOD, "format": "other/v1"}),
        json.dumps({**GOOD, "kind": "elgamal-share"}),
        json.dumps({**GOOD, "secret": "11" * 31}),
        json.dumps({**GOOD, "secret": "11" * 33}),
        json.dumps({**GOOD, "secret": "AB" * 32}),
        json.dumps({**GOOD, "secret": "zz" * 32}),
        json.dumps({**GOOD, "secret": 5}),
        json.dumps({**GOOD, "extra": 1}),
        json.dumps([GOOD]),
    ],
)
def test_reject_bad_key_files(tmp_path, text):
    p = tmp_path / "identity.key"
    _write_raw(p, text)
    with pytest.raises(KeyFileError):
        load_identity_key(p)


def test_good_handwritten_file(tmp_path):
    p = tmp_path / "identity.key"
    _write_raw(p, json.dumps(GOOD))
    assert load_identity_key(p).to_bytes() == bytes.fromhex("11" * 32)


def test_missing_file(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        load_identity_key(tmp_path / "nope.key")


def test_elgamal_share(tmp_path):
    p = tmp_path / "elgamal.key"
    x = create_elgamal_share(p)
    assert 0 < int(x) < ORDER
    assert int(load_elgamal_share(p)) == int(x)
    with pytest.raises(KeyFileError, match="holds a 'elgamal-share' key, expected 'ed25519'"):
        load_identity_key(p)


@pytest.mark.parametrize("secret", [bytes(32), ORDER.to_bytes(32, "big"),
                                    (ORDER + 5).to_bytes(32, "big"), b"\xff" * 32])
def test_elgamal_share_out_of_range(tmp_path, secret):
    p = tmp_path / "elgamal.key"
    write_secret_file(p, "elgamal-share", secret)
    with pytest.raises(KeyFileError):
        load_elgamal_share(p)


def test_seed_files(tmp_path):
    p = tmp_path / "log.key"
    s = load_or_create_seed(p)
    assert len(s) == 32 and load_or_create_seed(p) == s
    assert read_secret_file(p, "ed25519") == s
    with pytest.raises(KeyFileError):
        write_secret_file(tmp_path / "x.key", "ed25519", b"short")
    with pytest.raises(KeyFileError):
        write_secret_file(tmp_path / "y.key", "rsa", bytes(32))


# -- configs ---------------------------------------------------------------------------------

LEDGER = {"party_id": "ledger", "role": "ledger", "data_dir": "/tmp/l", "origin": "o.example/log",
          "port": 8100, "trust": "/tmp/l/trust.json",
          "witnesses": {"c-1": {"url": "http://127.0.0.1:8101", "key": "x"}},
          "witness_quorum": 1}


def test_config_roundtrip_through_toml(tmp_path):
    cfg = parse_config(LEDGER)
    p = tmp_path / "config.toml"
    p.write_text(dump_config_toml(cfg))
    assert load_config(p) == cfg
    assert load_config(p, role="ledger") == cfg


def test_relative_paths_resolve_against_config_folder(tmp_path):
    p = tmp_path / "sub" / "config.toml"
    p.parent.mkdir()
    p.write_text('party_id = "p"\nrole = "provider"\ndata_dir = "state"\n'
                 'ledger_url = "http://127.0.0.1:1"\npolicy = "policy.toml"\n'
                 '[datasets]\na = "a.csv"\n[datasets.b]\npath = "b.sqlite"\ntable = "t"\n')
    cfg = load_config(p)
    assert cfg.data_dir == tmp_path / "sub" / "state"
    assert cfg.policy == tmp_path / "sub" / "policy.toml"
    assert cfg.datasets["a"].path == tmp_path / "sub" / "a.csv"
    assert cfg.datasets["b"].table == "t"


@pytest.mark.parametrize(
    "change,field",
    [
        ({"bogus": 1}, "bogus"),
        ({"role": "admin"}, "role"),
        ({"party_id": "has space"}, "party_id"),
        ({"party_id": ""}, "party_id"),
        ({"port": 70000}, "port"),
        ({"port": "80"}, "port"),
        ({"origin": ""}, "origin"),
        ({"origin": "statledger/http/v1"}, "origin"),
        ({"origin": "cosignature/v1"}, "origin"),
        ({"origin": "a b"}, "origin"),
        ({"witness_quorum": -1}, "witness_quorum"),
        # the roster is the pinned consortium's (the trust file), never a config table
        ({"roster": {"c-1": {"role": "compute", "sig_key": "ab" * 32}}}, "roster"),
        ({"trust": 5}, "trust"),
        ({"witnesses": {"c-1": {"url": "ftp://x"}}}, "url"),
        ({"witnesses": {"c-1": {"url": "http://x", "extra": 1}}}, "extra"),
        ({"max_body": 10}, "max_body"),
        ({"witness_quorum": 2}, "exceeds the 1 configured witnesses"),
    ],
)
def test_config_reject_twins(change, field):
    with pytest.raises(ConfigError, match=field):
        parse_config({**LEDGER, **change})


def test_config_missing_fields():
    for key in ("party_id", "data_dir", "origin", "role"):
        obj = {k: v for k, v in LEDGER.items() if k != key}
        with pytest.raises(ConfigError):
            parse_config(obj)


def test_config_role_mismatch(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(dump_config_toml(parse_config(LEDGER)))
    with pytest.raises(ConfigError, match="'compute' was asked for"):
        load_config(p, role="compute")
    with pytest.raises(ConfigError, match="unknown role"):
        load_config(p, role="admin")


def test_config_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    p = tmp_path / "bad.toml"
    p.write_text("party_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError):
        load_config(p)


def test_compute_config_requires_ledger_url():
    base = {"party_id": "c-1", "role": "compute", "data_dir": "/tmp/c"}
    with pytest.raises(ConfigError, match="ledger_url"):
        parse_config(base)
    cfg = parse_config({**base, "ledger_url": "http://127.0.0.1:9",
                        "witness": {"origin": "o", "log_key": "k"}})
    assert cfg.elgamal_key_path.name == "elgamal.key"
    assert tomllib.loads(dump_config_toml(cfg))["witness"]["origin"] == "o"
