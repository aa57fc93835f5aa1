"""The key lifecycle on a real cluster (docs/dkg.md, "Key lifecycle"): a 2-of-3 key is
refreshed (new shares, same key), re-shared after a compute node is revoked, and re-shared
again to a newly admitted node, each time driven by a quorum-signed membership change and
finished by the nodes themselves; the ledger logs the rekey; the next query verifies under
the pinned consortium.

Adversaries: the revoked node, still running with its old share, is not asked to (and
cannot) take part; the honest nodes erase their replaced transport keys, so a later theft
of their state yields no share of an earlier epoch; a membership change is refused while a
resharing runs."""

from __future__ import annotations

import base64
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.keys import load_or_create_elgamal_share, load_or_create_identity_key
from statledger.nodes.launcher import Cluster, PartyInfo, free_ports
from statledger.nodes.querier import Querier
from statledger.protocol import datasets, entries
from statledger.protocol.entries import Entry, ResultEntry
from statledger.protocol.query import QuerySpec
from statledger.verifier.verify import TrustPolicy, verify_certificate

pytestmark = pytest.mark.slow

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}
HOSPITALS = ["hospital-a", "hospital-b"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    sites = datasets.sites("diabetes")
    providers = {pid: {"diabetes": str(datasets.path("diabetes", sites[k]))}
                 for k, pid in enumerate(HOSPITALS)}
    c = Cluster(tmp_path_factory.mktemp("lifecycle") / "c", n_compute=3, threshold=2,
                witness_quorum=2, providers=providers, queriers=["querier"],
                compute_settings={"key_retire_grace": 0}, startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["consortium", *args])
    return res.exit_code, res.output


def _change(cluster: Cluster, path: Path, *options: str) -> None:
    code, out = _cli("propose", "--config", str(cluster.config_path("compute-1")), "--out",
                     str(path), *options)
    assert code == 0, out
    for node in ("compute-1", "compute-2"):
        code, out = _cli("sign-change", str(path), "--config", str(cluster.config_path(node)))
        assert code == 0, out
    code, out = _cli("submit", str(path), "--config", str(cluster.config_path("compute-1")))
    assert code == 0 and "logged at index" in out, out


def _setups(cluster: Cluster) -> list[int]:
    with cluster.client("ledger") as c:
        return [int(i) for i in c.get("/v1/ceremony")["setups"]]


def _dkg_after_last_setup(cluster: Cluster) -> int:
    with cluster.client("ledger") as c:
        cer = c.get("/v1/ceremony")
    return sum(int(i) > max(cer["setups"]) for i in cer["dkg"])


def test_no_key_entry_without_a_pending_run(cluster: Cluster) -> None:
    """With the key in force matching the roster, the log takes no ``dkg_*`` entry (a node
    cannot start a run of its own), and nobody but the log writes a ``rekey``."""
    key = cluster.signing_key("compute-1")
    tk = entries.sign(entries.DkgTransportEntry("compute-1", "04" * 40), key)
    with pytest.raises(RemoteError) as ei:
        _post_as(cluster, "compute-1", tk.to_bytes())
    assert ei.value.status == 409 and "no key ceremony is pending" in str(ei.value)
    with cluster.client("ledger") as c:
        setup = entries.Entry.from_bytes(base64.b64decode(c.get("/v1/setup")["data"]))
    assert isinstance(setup, entries.SetupEntry)
    forged = entries.sign(entries.RekeyEntry(setup.consortium, setup.compute, setup.threshold,
                                             setup.collective_key, setup.verification_keys),
                          key)
    with pytest.raises(RemoteError) as ei:
        _post_as(cluster, "compute-1", forged.to_bytes())
    assert ei.value.status == 403 and "authored by 'ledger'" in str(ei.value)
    assert len(_setups(cluster)) == 1  # twin: nothing was logged


def _post_as(cluster: Cluster, party: str, content: bytes) -> Any:
    with SignedClient(cluster.url("ledger"), party, cluster.signing_key(party),
                      target="ledger", retries=0) as c:
        return c.post("/v1/entries", content=content)


def _wait(what: str, done, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _query(cluster: Cluster, spec: dict, compute: tuple[str, ...] | None = None
           ) -> tuple[Any, dict[int, str]]:
    layout = cluster.layout
    nodes = {p.party_id: p.url for p in layout.compute
             if compute is None or p.party_id in compute}
    with Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"), nodes,
                 {p.party_id: p.url for p in layout.providers}, trust=cluster.genesis,
                 timeout=120.0) as q:
        out = q.run(QuerySpec.parse(spec), datasets="diabetes")
    trust = TrustPolicy.parse((cluster.base_dir / "trust.json").read_bytes(), "trust.json")
    report = verify_certificate(out.certificate.to_bytes(), trust)
    assert report.valid, report.reason
    return out, {s.step: s.detail for s in report.steps}


def test_refresh_then_revoke_keeps_the_key_and_erases_the_old_transport_keys(
        cluster: Cluster, tmp_path: Path) -> None:
    assert len(_setups(cluster)) == 1
    first, _ = _query(cluster, SPEC)

    # 1. a refresh: the same three nodes, new shares, the same collective key.  compute-3
    # is paused first, so the run stalls at its transport key: meanwhile a second change of
    # the compute nodes is refused (it would change the run under the nodes' feet)
    proc = cluster.procs["compute-3"]
    proc.send_signal(signal.SIGSTOP)
    try:
        _change(cluster, tmp_path / "refresh.json", "--refresh")
        _wait("the resharing to start", lambda: _dkg_after_last_setup(cluster) >= 2, 60)
        code, out = _cli("propose", "--config", str(cluster.config_path("compute-1")),
                         "--out", str(tmp_path / "second.json"), "--refresh")
        assert code == 0, out
        for node in ("compute-1", "compute-2"):
            assert _cli("sign-change", str(tmp_path / "second.json"), "--config",
                        str(cluster.config_path(node)))[0] == 0
        code, out = _cli("submit", str(tmp_path / "second.json"), "--config",
                         str(cluster.config_path("compute-1")))
        assert code != 0 and "resharing is under way" in out, out
    finally:
        proc.send_signal(signal.SIGCONT)
    _wait("the refresh's rekey entry", lambda: len(_setups(cluster)) == 2)
    out, steps = _query(cluster, {**SPEC, "bounds": {"bmi": [15.0, 51.0]}})
    assert "1 resharing(s) re-derived" in steps[6]
    for node in ("compute-1", "compute-2", "compute-3"):
        data = cluster.base_dir / node
        key = data / "transport" / "epoch-1.key"
        assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
        # the first ceremony's transport key is erased (grace 0 in this cluster)
        _wait(f"{node} to erase its first transport key",
              lambda data=data: not (data / "elgamal.key").exists(), 30)

    # 2. a compute node revoked: the two others re-share the key between them
    _change(cluster, tmp_path / "revoke.json", "--revoke", "compute-3")
    _wait("the revocation's rekey entry", lambda: len(_setups(cluster)) == 3)
    out, steps = _query(cluster, {**SPEC, "bounds": {"bmi": [15.0, 52.0]}})
    assert "2 resharing(s) re-derived" in steps[6]
    results = [e for e in (Entry.from_bytes(c.data)
                           for c in out.certificate.entries) if isinstance(e, ResultEntry)]
    assert [sorted(r.decryptors) for r in results] == [["compute-1", "compute-2"]]
    for node in ("compute-1", "compute-2"):
        _wait(f"{node} to erase its epoch-1 transport key",
              lambda node=node: not (cluster.base_dir / node / "transport" / "epoch-1.key")
              .exists(), 30)
    # the revoked node got nothing of the new epoch
    assert not (cluster.base_dir / "compute-3" / "transport" / "epoch-2.key").exists()

    # 3. a new compute node joins: compute-1 and compute-2 re-share to (1, 2, 4)
    _join(cluster, tmp_path, "compute-4")
    _wait("the admission's rekey entry", lambda: len(_setups(cluster)) == 4)
    # the querier asks compute-2 and compute-4 only (compute-1 stays up: it is a witness)
    out, steps = _query(cluster, {**SPEC, "bounds": {"bmi": [15.0, 53.0]}},
                        compute=("compute-2", "compute-4"))
    assert "3 resharing(s) re-derived" in steps[6]
    results = [e for e in (Entry.from_bytes(c.data) for c in out.certificate.entries)
               if isinstance(e, ResultEntry)]
    assert [sorted(r.decryptors) for r in results] == [["compute-2", "compute-4"]]
    # a certificate from before every resharing still verifies (the key never changed)
    trust = TrustPolicy.parse((cluster.base_dir / "trust.json").read_bytes(), "trust.json")
    report = verify_certificate(first.certificate.to_bytes(), trust)
    assert report.valid, report.reason


def _join(cluster: Cluster, tmp_path: Path, node: str) -> None:
    """Create ``node``'s keys and config (like compute-3's, its own port and folder), admit
    it by a membership change it proves possession of, then start it."""
    base = cluster.base_dir
    data = base / node
    key = load_or_create_identity_key(data / "identity.key")
    load_or_create_elgamal_share(data / "elgamal.key")
    port = free_ports(1, "127.0.0.1")[0]
    text = (base / "compute-3" / "config.toml").read_text(encoding="utf-8")
    old_port = cluster.url("compute-3").rsplit(":", 1)[1]
    text = (text.replace('party_id = "compute-3"', f'party_id = "{node}"')
            .replace(f"port = {old_port}", f"port = {port}")
            .replace(str(base / "compute-3"), str(data)))
    cfg = data / "config.toml"
    cfg.write_text(text, encoding="utf-8")
    cfg.chmod(0o600)
    cluster.layout.parties[node] = PartyInfo(node, "compute", str(cfg), str(data),
                                             f"http://127.0.0.1:{port}",
                                             str(base / "logs" / f"{node}.log"))
    change = tmp_path / "admit.json"
    pub = key.public_key().to_bytes().hex()
    code, out = _cli("propose", "--config", str(cluster.config_path("compute-1")), "--out",
                     str(change), "--admit", f"{node}:compute:{pub}")
    assert code == 0, out
    for signer in ("compute-1", "compute-2", node):  # the new node proves possession
        code, out = _cli("sign-change", str(change), "--config", str(cfg if signer == node
                                                                    else cluster.config_path(
                                                                        signer)))
        assert code == 0, out
    code, out = _cli("submit", str(change), "--config", str(cluster.config_path("compute-1")))
    assert code == 0 and "logged at index" in out, out
    cluster.start(only=[node])
