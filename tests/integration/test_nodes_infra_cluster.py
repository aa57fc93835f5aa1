"""A cluster with real compute-node processes: self-registration, setup, witness cosigning,
and a compute node killed and restarted."""

from __future__ import annotations

import base64

import httpx
import pytest

from statledger.ledger.note import CosignatureVerifier, NoteVerifier
from statledger.ledger.witness import WitnessPolicy
from statledger.nodes.http import RemoteError
from statledger.nodes.launcher import Cluster
from statledger.proofs.errors import VerificationError
from statledger.protocol.entries import Entry


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"), n_compute=2, queriers=["querier"],
                startup_timeout=90)
    c.start()
    yield c
    c.stop()


def _policy(c):
    info = httpx.get(c.url("ledger") + "/v1/log").json()
    keys = [CosignatureVerifier.from_vkey(k) for k in info["witness_keys"].values()]
    return WitnessPolicy(NoteVerifier.from_vkey(info["log_key"]), keys, info["quorum"])


def test_compute_nodes_registered_themselves(cluster):
    cid = cluster.genesis.genesis.consortium_id
    parties = httpx.get(cluster.url("ledger") + "/v1/parties").json()
    # the ledger's key is in the genesis (entry 0): only the compute nodes registered
    assert set(parties) == {"compute-1", "compute-2"}
    for pid in ("compute-1", "compute-2"):
        assert parties[pid]["role"] == "compute"
        assert parties[pid]["sig_key"] == \
            cluster.signing_key(pid).public_key().to_bytes().hex()
        data = httpx.get(cluster.url("ledger") + "/v1/entries",
                         params={"start": parties[pid]["index"],
                                 "end": parties[pid]["index"] + 1}).json()[0]["data"]
        entry = Entry.from_bytes(base64.b64decode(data))
        # the registered key share comes with its proof of knowledge, bound to the consortium
        entry.verify_pok(cid)
        with pytest.raises(VerificationError):
            entry.verify_pok("ab" * 32)


def test_setup_and_cosigned_checkpoint(cluster):
    with cluster.client("ledger", as_party="compute-1") as cl:
        first = cl.post("/v1/setup")
        assert cl.post("/v1/setup") == first  # written once
        setup = Entry.from_bytes(base64.b64decode(cl.get("/v1/setup")["data"]))
        assert setup.compute == ("compute-1", "compute-2")
        assert setup.consortium == cluster.genesis.genesis.consortium_id
        out = cl.post("/v1/checkpoint")
    assert out["cosigners"] == ["compute-1", "compute-2"]
    _policy(cluster).verify(out["checkpoint"])


def test_killed_witness_then_restart(cluster):
    parties = httpx.get(cluster.url("ledger") + "/v1/parties").json()
    cluster.kill("compute-2")
    with cluster.client("ledger", as_party="compute-1") as cl:
        with pytest.raises(RemoteError) as info:
            cl.post("/v1/checkpoint")
        assert info.value.status == 503 and "compute-2" in info.value.reason
        cluster.restart("compute-2")
        # the restarted node does not register again: same entry index, same log
        assert httpx.get(cluster.url("ledger") + "/v1/parties").json() == parties
        out = cl.post("/v1/checkpoint")
    assert out["cosigners"] == ["compute-1", "compute-2"]
    _policy(cluster).verify(out["checkpoint"])
