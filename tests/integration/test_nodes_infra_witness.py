"""Checkpoint cosigning: the ledger process asks witness endpoints over loopback HTTP.

The ledger runs as a real process; the two witnesses run the same ``witness_router`` the
compute nodes mount, served by uvicorn in threads of the test process (real sockets).
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlparse

import httpx
import pytest
import uvicorn

from statledger.ledger.note import NoteVerifier
from statledger.ledger.witness import WitnessPolicy
from statledger.nodes.app import create_app
from statledger.nodes.auth import Authenticator, NonceStore
from statledger.nodes.config import load_config
from statledger.nodes.http import RemoteError
from statledger.nodes.launcher import Cluster
from statledger.nodes.ledger_service import witness_from_config, witness_router
from statledger.proofs.errors import VerificationError
from statledger.proofs.signatures import VerifyKey
from statledger.protocol import entries


class _Server:
    def __init__(self, app, port):
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="error", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("witness server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _witness_app(cfg, ledger_key_hex):
    w = witness_from_config(cfg)
    app = create_app(title="witness", party_id=cfg.party_id, role="compute")
    ledger_vk = VerifyKey.from_bytes(bytes.fromhex(ledger_key_hex))
    auth = Authenticator(lambda p: ledger_vk if p == "ledger" else None,
                         NonceStore(cfg.data_dir / "state.sqlite"),
                         lambda p: "ledger" if p == "ledger" else None,
                         recipient=cfg.party_id)
    app.include_router(witness_router(w, auth))
    return app, w


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("witness-cluster")
    c = Cluster(base, n_compute=2, queriers=["querier"], startup_timeout=60)
    c.start(only=["ledger"])
    # the ledger writes no party entry: its key is the genesis' ledger member
    ledger_key = c.genesis.genesis.ledger.sig_key
    assert httpx.get(c.url("ledger") + "/v1/consortium").json()["consortium"] == \
        c.genesis.genesis.consortium_id
    servers = {}
    for pid in ("compute-1", "compute-2"):
        cfg = load_config(c.config_path(pid))
        app, w = _witness_app(cfg, ledger_key)
        s = _Server(app, urlparse(c.url(pid)).port)
        s.start()
        servers[pid] = (s, w)
    yield c, servers
    for s, _ in servers.values():
        s.stop()
    c.stop()


def _register_querier(c):
    sk = c.signing_key("querier")
    pe = entries.sign(entries.PartyEntry("querier", "querier", sk.public_key().to_bytes().hex()),
                      sk)
    with c.client("ledger", as_party="querier") as cl:
        return cl.post("/v1/entries", content=pe.to_bytes())["index"]


def _checkpoint(c):
    """Make sure a cosigned checkpoint exists (tests may run alone, e.g. under xdist)."""
    _register_querier(c)
    with c.client("ledger", as_party="querier") as cl:
        cl.post("/v1/checkpoint")
    return httpx.get(c.url("ledger") + "/v1/checkpoint").text


def _policy(c):
    info = httpx.get(c.url("ledger") + "/v1/log").json()
    from statledger.ledger.note import CosignatureVerifier

    keys = [CosignatureVerifier.from_vkey(k) for k in info["witness_keys"].values()]
    return WitnessPolicy(NoteVerifier.from_vkey(info["log_key"]), keys, info["quorum"])


def test_cosigned_checkpoints_grow(setup):
    c, servers = setup
    policy = _policy(c)
    assert policy.quorum == 2
    with c.client("ledger", as_party="querier") as cl:
        _register_querier(c)
        out = cl.post("/v1/checkpoint")
        assert out["cosigners"] == ["compute-1", "compute-2"] and out["quorum_met"]
        policy.verify(out["checkpoint"])
        assert cl.get("/v1/checkpoint") == out["checkpoint"]
        # the log grows; the witnesses need a consistency proof from their old size
        from statledger.protocol.query import QuerySpec

        spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["age"],
                                "bounds": {"age": [0, 120]}})
        qe = entries.sign(entries.QueryEntry.for_spec(spec, "querier"), c.signing_key("querier"))
        cl.post("/v1/entries", content=qe.to_bytes())
        out2 = cl.post("/v1/checkpoint")
        assert out2["size"] == out["size"] + 1
        policy.verify(out2["checkpoint"])
        # same size again: idempotent, still cosigned
        out3 = cl.post("/v1/checkpoint")
        assert out3["size"] == out2["size"]
        policy.verify(out3["checkpoint"])
    for _, w in servers.values():
        assert w.state("statledger.local/log")[0] == out2["size"]


def test_log_signature_alone_fails_quorum(setup):
    c, _ = setup
    note = _checkpoint(c)
    own_only = note.split("\n\n")[0] + "\n\n" + note.split("\n\n")[1].splitlines()[0] + "\n"
    with pytest.raises(VerificationError, match="quorum"):
        _policy(c).verify(own_only)


def test_witness_rejects_bad_requests(setup):
    c, _ = setup
    url = c.url("compute-1") + "/v1/witness/cosign"
    note = _checkpoint(c)
    # unauthenticated: the router was mounted with auth (ledger only)
    r = httpx.post(url, json={"checkpoint": note, "old_size": 0, "proof": []})
    assert r.status_code == 401
    from statledger.nodes.http import SignedClient
    from statledger.nodes.keys import load_identity_key

    sk = load_identity_key(c.layout.ledger.data_dir + "/identity.key")
    with SignedClient(c.url("compute-1"), "ledger", sk, target="compute-1") as cl:
        # stale old_size -> 409 with the witness's size
        with pytest.raises(RemoteError) as info:
            cl.post("/v1/witness/cosign", json={"checkpoint": note, "old_size": 0, "proof": []})
        assert info.value.status == 409 and isinstance(info.value.body["size"], int)
        # tampered note -> 4xx, never 500
        bad = note.replace("\n", "\nx", 1)
        for body in ({"checkpoint": bad, "old_size": 0, "proof": []},
                     {"checkpoint": note, "old_size": -1, "proof": []},
                     {"checkpoint": note, "old_size": "a", "proof": []},
                     {"checkpoint": note, "old_size": 0, "proof": ["zz"]},
                     {"checkpoint": note, "old_size": 0, "proof": [], "extra": 1},
                     {"old_size": 0}):
            with pytest.raises(RemoteError) as info:
                cl.post("/v1/witness/cosign", json=body)
            assert 400 <= info.value.status < 500, (body, info.value)


def test_forged_cosignature_is_blamed_on_its_witness(setup):
    import secrets

    from statledger.ledger.witness import CosignatureSigner

    c, servers = setup
    _checkpoint(c)
    _, w = servers["compute-1"]
    real = w.signer
    w.signer = CosignatureSigner("compute-1", secrets.token_bytes(32))  # not the configured key
    try:
        with c.client("ledger", as_party="querier") as cl:
            with pytest.raises(RemoteError) as info:
                cl.post("/v1/checkpoint")
    finally:
        w.signer = real
    body = info.value.body
    assert info.value.status == 503
    assert body["cosigners"] == ["compute-2"]
    assert "not from this witness's key" in body["failures"]["compute-1"]


def test_missing_witness_503_names_it(setup):
    c, servers = setup
    s, _ = servers["compute-2"]
    s.stop()
    with c.client("ledger", as_party="querier") as cl:
        with pytest.raises(RemoteError) as info:
            cl.post("/v1/checkpoint")
    assert info.value.status == 503
    assert "compute-2" in info.value.reason
    assert info.value.body["cosigners"] == ["compute-1"]
