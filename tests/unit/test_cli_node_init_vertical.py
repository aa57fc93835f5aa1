"""``statledger node init --vertical A:B``: one fresh pair secret per pair, written 0600 into
both owners' folders, named in both owners' configs (``vertical_partners``) and read by the
provider node as the protocol's pair secret; bad pairs are refused before anything is
written; re-running init keeps the secret."""

from __future__ import annotations

import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.nodes.config import ProviderConfig, load_config
from statledger.nodes.provider_service import ProviderNode
from statledger.proofs.errors import PolicyError
from statledger.protocol import vertical as V

A, B, C = "hosp-a", "hosp-b", "hosp-c"


def _init(base: Path, data: Path, *args: str) -> tuple[int, str]:
    provs = [x for p in (A, B, C) for x in ("--provider", f"{p}=main:{data}")]
    res = CliRunner().invoke(app, ["node", "init", str(base), "--compute", "1",
                                   "--querier", "q", *provs, *args])
    return res.exit_code, res.output


@pytest.fixture
def data(tmp_path: Path) -> Path:
    p = tmp_path / "t.csv"
    p.write_text("pid,x\np1,1\n", encoding="utf-8")
    return p


def _cfg(base: Path, pid: str) -> ProviderConfig:
    cfg = load_config(base / pid / "config.toml", role="provider")
    assert isinstance(cfg, ProviderConfig)
    return cfg


def _secret(path: Path) -> bytes:
    return bytes.fromhex(path.read_text(encoding="utf-8").strip())


def test_node_init_writes_a_pair_secret_for_each_pair(tmp_path: Path, data: Path) -> None:
    base = tmp_path / "dep"
    code, out = _init(base, data, "--vertical", f"{A}:{B}")
    assert code == 0, out
    assert f"vertical partners: {A} and {B}" in out
    ca, cb, cc = _cfg(base, A), _cfg(base, B), _cfg(base, C)
    assert set(ca.vertical_partners) == {B} and set(cb.vertical_partners) == {A}
    assert cc.vertical_partners == {}
    pa, pb = ca.vertical_partners[B], cb.vertical_partners[A]
    assert pa == (base / A / f"vertical-{B}.key").resolve()
    assert pb == (base / B / f"vertical-{A}.key").resolve()
    for p in (pa, pb):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert _secret(pa) == _secret(pb) and len(_secret(pa)) == 32
    # the config names it relative to the owner's folder (the deployment can move)
    assert f'{B} = "vertical-{B}.key"' in (base / A / "config.toml").read_text()
    # the provider node reads it from its config as the protocol's pair secret
    sa, sb = _node_secrets(ca), _node_secrets(cb)
    assert sa == {B: _secret(pa)} and sb == {A: _secret(pa)}
    spec = _vspec()
    plan = V.VerticalPlan.of(spec)
    assert V.OwnerConfig(A, sa).secret_for(spec, plan.part) == V.OwnerConfig(
        B, sb).secret_for(spec, plan.part)

    # a second deployment gets another secret
    code, out = _init(tmp_path / "other", data, "--vertical", f"{A}:{B}")
    assert code == 0, out
    assert _secret(tmp_path / "other" / A / f"vertical-{B}.key") != _secret(pa)


def test_node_init_keeps_the_pair_secret_on_re_init(tmp_path: Path, data: Path) -> None:
    base = tmp_path / "dep"
    assert _init(base, data, "--vertical", f"{A}:{B}")[0] == 0
    before = _secret(base / A / f"vertical-{B}.key")
    code, out = _init(base, data, "--vertical", f"{B}:{A}", "--vertical", f"{A}:{C}")
    assert code == 0, out
    assert _secret(base / A / f"vertical-{B}.key") == before == _secret(
        base / B / f"vertical-{A}.key")
    assert set(_cfg(base, A).vertical_partners) == {B, C}
    assert _secret(base / C / f"vertical-{A}.key") != before
    # two existing files that differ: refused (the owners would never match a tag)
    (base / B / f"vertical-{A}.key").write_text("00" * 32, encoding="utf-8")
    code, out = _init(base, data, "--vertical", f"{A}:{B}")
    assert code == 2 and "different pair secrets" in out
    # an existing secret that is not hex, or too short: refused, never kept
    for bad in ("zz" * 32, "00" * 15):
        for who, other in ((A, B), (B, A)):
            (base / who / f"vertical-{other}.key").write_text(bad, encoding="utf-8")
        code, out = _init(base, data, "--vertical", f"{A}:{B}")
        assert code == 2 and "not hex of at least 16 bytes" in out


@pytest.mark.parametrize(("arg", "why"), [
    (f"{A}", "expected A:B"), (f"{A}:", "expected A:B"), (f":{B}", "expected A:B"),
    (f"{A}:{A}", "expected A:B"), (f"{A}:{B}:{C}", "expected A:B"),
    (f"{A}:nobody", "'nobody' is not a --provider"), (f"q:{A}", "'q' is not a --provider"),
])
def test_node_init_refuses_bad_pairs(tmp_path: Path, data: Path, arg: str, why: str) -> None:
    base = tmp_path / "dep"
    code, out = _init(base, data, "--vertical", arg)
    assert code == 2 and why in out, out
    assert not base.exists()


def test_node_init_refuses_a_pair_given_twice(tmp_path: Path, data: Path) -> None:
    code, out = _init(tmp_path / "dep", data, "--vertical", f"{A}:{B}", "--vertical",
                      f"{B}:{A}")
    assert code == 2 and "given twice" in out


def test_without_vertical_no_partner_and_the_node_refuses(tmp_path: Path, data: Path) -> None:
    base = tmp_path / "dep"
    assert _init(base, data)[0] == 0
    assert _cfg(base, A).vertical_partners == {}
    assert not list((base / A).glob("vertical-*.key"))
    spec = _vspec()
    with pytest.raises(PolicyError, match="do not allow cross-products"):
        V.OwnerConfig(A, _node_secrets(_cfg(base, A))).secret_for(
            spec, V.VerticalPlan.of(spec).part)


def _node_secrets(cfg: ProviderConfig) -> dict[str, bytes]:
    """What the provider node of ``cfg`` reads (its ``_pair_secrets``, no server needed)."""
    return ProviderNode._pair_secrets(SimpleNamespace(config=cfg, party_id=cfg.party_id))  # type: ignore[arg-type]


def _vspec() -> V.QuerySpec:
    import json

    ex = Path(__file__).resolve().parents[2] / "examples" / "vertical_ols.json"
    obj = json.loads(ex.read_text(encoding="utf-8"))
    part = obj["params"]["partition"]
    cols = part["columns"]
    part["columns"] = {A: cols[part["owners"][0]], B: cols[part["owners"][1]]}
    part["owners"] = [A, B]
    obj["max_rows"] = 16
    return V.QuerySpec.parse(obj)
