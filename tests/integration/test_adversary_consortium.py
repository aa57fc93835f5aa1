"""Adversaries against the consortium, on a real cluster (processes on loopback).

* a member revoked by a quorum-signed membership change (``statledger consortium propose /
  sign-change / submit``) can no longer write to the log; a change short of its admission
  quorum, or signed by members whose role may not sign changes, is refused by the log;
* a data owner that pins another consortium (a look-alike genesis: same party ids, keys the
  operator holds) refuses to encrypt anything for the real log's query;
* a split view: a ledger (with a witness quorum colluding) shows a party a second,
  different checkpoint of a size the party already accepted -- the party refuses;
* after a revocation, a query still runs with the remaining owners and its certificate, which
  carries the membership chain, verifies under the pinned trust file.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from statledger.ledger.checkpoint import Checkpoint
from statledger.ledger.note import Note, NoteSigner
from statledger.ledger.witness import CosignatureSigner
from statledger.nodes.cli import app
from statledger.nodes.config import load_config
from statledger.nodes.follower import LogFollower
from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.keys import load_identity_key
from statledger.nodes.launcher import Cluster, found_consortium
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.provider_service import ProviderNode
from statledger.nodes.querier import Querier
from statledger.proofs.errors import VerificationError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import datasets, entries
from statledger.protocol.consortium import RosterTimeline
from statledger.protocol.query import QuerySpec
from statledger.verifier.verify import TrustPolicy, verify_certificate

pytestmark = pytest.mark.slow

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}
HOSPITALS = ["hospital-a", "hospital-b", "hospital-c"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    sites = datasets.sites("diabetes")
    providers = {pid: {"diabetes": str(datasets.path("diabetes", sites[k]))}
                 for k, pid in enumerate(HOSPITALS)}
    c = Cluster(tmp_path_factory.mktemp("consortium") / "c", n_compute=3, providers=providers,
                queriers=["querier"], startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["consortium", *args])
    return res.exit_code, res.output


def _post_as(cluster: Cluster, party: str, path: str, content: bytes) -> Any:
    with SignedClient(cluster.url("ledger"), party, cluster.signing_key(party),
                      target="ledger", retries=0) as c:
        return c.post(path, content=content)


def test_change_without_its_quorum_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    change = tmp_path / "change.json"
    cfg = str(cluster.config_path("compute-1"))
    code, out = _cli("propose", "--config", cfg, "--out", str(change),
                     "--revoke", "hospital-b")
    assert code == 0, out
    # one compute node of the 2 the admission rule needs
    assert _cli("sign-change", str(change), "--config", cfg)[0] == 0
    code, out = _cli("submit", str(change), "--config", cfg)
    assert code == 1 and "1 of the 2 signatures" in out
    # owners may not sign membership changes: their signatures do not count, they are refused
    code, _ = _cli("sign-change", str(change), "--config",
                   str(cluster.config_path("hospital-a")))
    assert code == 0
    code, out = _cli("submit", str(change), "--config", cfg)
    assert code == 1 and "hospital-a (provider) may not sign membership changes" in out
    with cluster.client("ledger") as c:
        assert c.get("/v1/consortium")["seq"] == 0  # nothing was logged


def test_revoked_member_cannot_write_and_queries_go_on(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    # before: hospital-c is a member (its request passes authentication; the query is unknown)
    fake = entries.sign(entries.EndorsementEntry("ab" * 32, "hospital-c", "cd" * 32),
                        cluster.signing_key("hospital-c"))
    with pytest.raises(RemoteError) as before:
        _post_as(cluster, "hospital-c", "/v1/entries", fake.to_bytes())
    assert before.value.status == 404
    change = tmp_path / "revoke.json"
    assert _cli("propose", "--config", str(cluster.config_path("compute-1")), "--out",
                str(change), "--revoke", "hospital-c")[0] == 0
    for node in ("compute-1", "compute-2"):
        code, out = _cli("sign-change", str(change), "--config",
                         str(cluster.config_path(node)))
        assert code == 0, out
    code, out = _cli("submit", str(change), "--config", str(cluster.config_path("compute-1")))
    assert code == 0 and "logged at index" in out, out
    # after: the revoked key signs nothing the log accepts
    with pytest.raises(RemoteError) as after:
        _post_as(cluster, "hospital-c", "/v1/entries", fake.to_bytes())
    assert after.value.status == 401
    # the query runs with the remaining owners; its certificate carries the chain and
    # verifies under the pinned consortium (and hospital-c cannot contribute)
    layout = cluster.layout
    with Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                 {p.party_id: p.url for p in layout.compute},
                 {p.party_id: p.url for p in layout.providers}, trust=cluster.genesis,
                 timeout=120.0) as q:
        out_q = q.run(QuerySpec.parse(SPEC), datasets="diabetes")
    assert sorted(out_q.contributors) == ["hospital-a", "hospital-b"]
    assert "hospital-c" in out_q.refusals
    trust = TrustPolicy.parse((cluster.base_dir / "trust.json").read_bytes(), "trust.json")
    report = verify_certificate(out_q.certificate.to_bytes(), trust)
    assert report.valid, report.reason
    assert any("1 membership change" in s.detail for s in report.steps if s.step == 6)


def test_owner_pinning_another_consortium_refuses(cluster: Cluster, tmp_path: Path) -> None:
    # the operator founds a look-alike consortium: same ids, the log key it controls
    keys = {pid: SigningKey.generate() for pid in cluster.layout.parties}
    members = [(p.party_id, p.role, keys[p.party_id]) for p in cluster.layout.parties.values()]
    fake_dir = tmp_path / "fake"
    fake_dir.mkdir()
    found_consortium(fake_dir, cluster.layout.origin, members, witness_quorum=2)
    cfg = load_config(cluster.config_path("hospital-a"))
    for d in ("hospital-a", "hospital-a2"):  # fresh state, the owner's own identity key
        (tmp_path / d).mkdir()
        shutil.copy2(cfg.identity_key_path, tmp_path / d / "identity.key")
    fooled = cfg.model_copy(update={"trust": fake_dir / "trust.json",
                                    "data_dir": tmp_path / "hospital-a"})
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 7})
    qid = spec.query_id_for("querier")
    with LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                      target="ledger") as ledger:
        ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                   cluster.signing_key("querier")))
        node = ProviderNode(fooled)
        try:
            with pytest.raises(VerificationError, match="another consortium"):
                node.contribute(qid, "querier", "diabetes")
        finally:
            node.close()
        assert not [i for i in ledger.query_indices(qid)
                    if isinstance(entries.Entry.from_bytes(ledger.entries([i])[0][1]),
                                  entries.SubmissionEntry)]
    # the twin: the same owner pinning the real consortium contributes
    honest = ProviderNode(cfg.model_copy(update={"data_dir": tmp_path / "hospital-a2"}))
    try:
        assert honest.contribute(qid, "querier", "diabetes") > 0
    finally:
        honest.close()


class _SplitLedger(LedgerClient):
    """A ledger client whose server shows this party a forged checkpoint."""

    forged: str | None = None

    def latest_checkpoint(self) -> str | None:
        return self.forged if self.forged is not None else super().latest_checkpoint()

    def checkpoint(self) -> str:
        return self.forged if self.forged is not None else super().checkpoint()


def test_split_view_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    genesis = cluster.genesis
    ledger = _SplitLedger(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                          target="ledger")
    follower = LogFollower(ledger, genesis, tmp_path / "state.sqlite")
    try:
        rows, timeline = follower.entries([0])
        assert isinstance(timeline, RosterTimeline)
        accepted = follower.accepted()
        assert accepted is not None
        size, root = accepted
        # the other history: same size, another root, signed by the log key and cosigned by
        # a colluding quorum of witnesses (this test holds every key)
        forged_cp = Checkpoint(cluster.layout.origin, size, bytes(32 * [7]))
        text = forged_cp.body()
        base = cluster.base_dir
        log_signer = NoteSigner(cluster.layout.origin,
                                load_identity_key(base / "ledger" / "identity.key").to_bytes())
        now = int(time.time())
        sigs = [log_signer.sign(text)] + [
            CosignatureSigner(w, load_identity_key(base / w / "identity.key").to_bytes())
            .cosign(text, now) for w in ("compute-1", "compute-2", "compute-3")]
        ledger.forged = Note(text, tuple(sigs)).to_text()
        with pytest.raises(VerificationError, match="split view"):
            follower.entries([0])
        assert follower.accepted() == (size, root)  # the accepted history is kept
        # a rollback (a smaller log) is refused too
        if size > 1:
            small = Checkpoint(cluster.layout.origin, size - 1, root).body()
            ledger.forged = Note(small, (log_signer.sign(small),) + tuple(
                CosignatureSigner(w, load_identity_key(base / w / "identity.key").to_bytes())
                .cosign(small, now) for w in ("compute-1", "compute-2", "compute-3"))).to_text()
            with pytest.raises(VerificationError, match="rollback"):
                follower.entries([0])
        # and the honest ledger's next checkpoint is accepted (consistency proven)
        ledger.forged = None
        follower.entries([0])
    finally:
        follower.close()
        ledger.close()
