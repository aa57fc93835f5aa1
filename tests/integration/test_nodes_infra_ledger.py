"""The ledger node as a real process on loopback: authenticated appends, refusals, restarts."""

from __future__ import annotations

import base64
import json
import time

import cbor2
import httpx
import pytest

from statledger.nodes.auth import sign_request
from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.launcher import Cluster, ClusterError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.protocol.query import QuerySpec

MAX_BODY = 256 * 1024
SPEC = {"version": 1, "statistic": "mean", "columns": ["age"], "bounds": {"age": [0, 120]}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("ledger-cluster")
    # one compute node: a consortium needs one, and its witness cosigns the checkpoints
    c = Cluster(base, n_compute=1, queriers=["querier", "q2", "q3"], max_body=MAX_BODY,
                startup_timeout=60)
    c.start()
    # the compute node runs its key ceremony in the background (deal, ack, key commitment):
    # wait for its three entries, so that nothing lands on the log while a test counts
    # entries (no setup entry: these tests post queries to a log without providers)
    deadline = time.monotonic() + 60
    while len(httpx.get(c.url("ledger") + "/v1/ceremony").json()["dkg"]) < 3:
        if time.monotonic() > deadline:
            raise AssertionError("the key ceremony did not finish in 60 s")
        time.sleep(0.1)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def registered(cluster):
    """querier and q2 registered (q3 stays unregistered: a member without a party entry)."""
    out = {}
    for pid in ("querier", "q2"):
        sk = cluster.signing_key(pid)
        pe = entries.sign(entries.PartyEntry(pid, "querier", sk.public_key().to_bytes().hex()),
                          sk)
        with cluster.client("ledger", as_party=pid) as cl:
            out[pid] = cl.post("/v1/entries", content=pe.to_bytes())["index"]
    return out


@pytest.fixture(scope="module")
def query(cluster, registered):
    sk = cluster.signing_key("querier")
    spec = QuerySpec.parse(SPEC)
    qe = entries.sign(entries.QueryEntry.for_spec(spec, "querier"), sk)
    with cluster.client("ledger", as_party="querier") as cl:
        idx = cl.post("/v1/entries", content=qe.to_bytes())["index"]
    return spec.query_id_for("querier"), idx, qe.to_bytes()


def raw_post(cluster, path, body, *, party="querier", sk=None, headers=None, now=None):
    sk = sk or cluster.signing_key(party)
    h = sign_request(sk, party, "POST", path, body, recipient="ledger", now=now)
    if headers:
        h.update(headers)
    return httpx.post(cluster.url("ledger") + path, content=body, headers=h, timeout=10)


def test_health(cluster):
    r = httpx.get(cluster.url("ledger") + "/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "party": "ledger", "role": "ledger"}


def test_entry_zero_is_the_pinned_genesis(cluster):
    base = cluster.url("ledger")
    pinned = cluster.genesis
    cid = pinned.genesis.consortium_id
    got = httpx.get(base + "/v1/entries", params={"start": 0, "end": 1}).json()
    first = entries.Entry.from_bytes(base64.b64decode(got[0]["data"]))
    assert isinstance(first, entries.GenesisEntry)
    assert first.signed_genesis() == pinned
    first.signed_genesis().verify(cid)  # every founding member signed the pinned genesis
    # the log signed it with the genesis' ledger key
    entries.verify_signature(first, pinned.genesis.ledger.verify_key(), "ledger", step="test")
    assert pinned.genesis.ledger.party_id == "ledger"
    consortium = httpx.get(base + "/v1/consortium").json()
    assert consortium["consortium"] == cid and consortium["chain"] == [0]
    assert httpx.get(base + "/v1/log").json()["consortium"] == cid
    # the ledger's key is in the genesis: it writes no party entry of its own
    parties = httpx.get(base + "/v1/parties").json()
    assert "ledger" not in parties
    assert httpx.get(base + "/v1/parties/ledger").status_code == 404
    assert all(p["index"] > 0 for p in parties.values())


def test_authenticated_append_and_idempotence(cluster, registered, query):
    qid, idx, data = query
    with cluster.client("ledger", as_party="querier") as cl:
        again = cl.post("/v1/entries", content=data)
        assert again["index"] == idx and again["kind"] == "query"
        got = cl.get("/v1/entries", params={"start": idx, "end": idx + 1})
    assert base64.b64decode(got[0]["data"]) == data
    r = httpx.get(cluster.url("ledger") + f"/v1/queries/{qid}/entries")
    assert r.json() == {"query_id": qid, "indices": [idx]}
    p = httpx.get(cluster.url("ledger") + "/v1/parties/querier").json()
    assert p["index"] == registered["querier"] and p["role"] == "querier"


def test_unsigned_401(cluster, query):
    r = httpx.post(cluster.url("ledger") + "/v1/entries", content=query[2])
    assert r.status_code == 401
    assert r.json()["error"].startswith("missing header")


def test_unknown_party_401(cluster):
    sk = SigningKey.generate()
    r = raw_post(cluster, "/v1/entries", b"{}", party="mallory", sk=sk)
    assert r.status_code == 401
    assert r.json()["error"] == "unknown party 'mallory'"


def test_wrong_key_401(cluster):
    r = raw_post(cluster, "/v1/entries", b"{}", party="querier", sk=SigningKey.generate())
    assert r.status_code == 401
    assert r.json()["error"].startswith("bad request signature for a request to 'ledger'")


def test_stale_401(cluster):
    r = raw_post(cluster, "/v1/entries", b"{}", now=time.time() - 3600)
    assert r.status_code == 401 and "window" in r.json()["error"]


def test_replay_409(cluster, query):
    body = query[2]
    h = sign_request(cluster.signing_key("querier"), "querier", "POST", "/v1/entries", body,
                     recipient="ledger")
    url = cluster.url("ledger") + "/v1/entries"
    assert httpx.post(url, content=body, headers=h).status_code == 200
    r = httpx.post(url, content=body, headers=h)
    assert r.status_code == 409 and "replayed" in r.json()["error"]


def test_author_must_be_sender_403(cluster, query):
    r = raw_post(cluster, "/v1/entries", query[2], party="q2")
    assert r.status_code == 403
    assert "authored by 'querier'" in r.json()["error"]


def test_role_may_not_write_kind_403(cluster, query):
    sk = cluster.signing_key("querier")
    sub = entries.sign(entries.SubmissionEntry(query[0], "querier", "00" * 8), sk)
    r = raw_post(cluster, "/v1/entries", sub.to_bytes())
    assert r.status_code == 403
    assert "may not write submission" in r.json()["error"]


def test_member_without_party_entry_may_append(cluster, query):
    # q3 is a founding member (role querier) that never wrote a party entry: it needs none
    sk = cluster.signing_key("q3")
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 7})
    qe = entries.sign(entries.QueryEntry.for_spec(spec, "q3"), sk)
    r = raw_post(cluster, "/v1/entries", qe.to_bytes(), party="q3")
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "query"
    assert "q3" not in httpx.get(cluster.url("ledger") + "/v1/parties").json()
    # ... but its roster role still limits what it may write
    sub = entries.sign(entries.SubmissionEntry(spec.query_id_for("q3"), "q3", "00" * 8), sk)
    r = raw_post(cluster, "/v1/entries", sub.to_bytes(), party="q3")
    assert r.status_code == 403 and "may not write submission" in r.json()["error"]


def test_party_outside_the_consortium_refused(cluster, query):
    mallory = SigningKey.generate()
    key = mallory.public_key().to_bytes().hex()
    pe = entries.sign(entries.PartyEntry("mallory", "querier", key), mallory)
    # signed as itself: the key directory knows only current members
    r = raw_post(cluster, "/v1/entries", pe.to_bytes(), party="mallory", sk=mallory)
    assert r.status_code == 401 and r.json()["error"] == "unknown party 'mallory'"
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 8})
    qe = entries.sign(entries.QueryEntry.for_spec(spec, "mallory"), mallory)
    r = raw_post(cluster, "/v1/entries", qe.to_bytes(), party="mallory", sk=mallory)
    assert r.status_code == 401
    # relayed by a member: refused, and never logged
    size = httpx.get(cluster.url("ledger") + "/v1/log").json()["size"]
    for body in (pe.to_bytes(), qe.to_bytes()):
        r = raw_post(cluster, "/v1/entries", body, party="q3")
        assert r.status_code == 403, r.text
    assert httpx.get(cluster.url("ledger") + "/v1/log").json()["size"] == size
    assert httpx.get(cluster.url("ledger") + "/v1/parties/mallory").status_code == 404


def test_party_entry_not_matching_roster_403(cluster):
    sk = cluster.signing_key("q3")
    pe = entries.sign(entries.PartyEntry("q3", "provider", sk.public_key().to_bytes().hex()), sk)
    r = raw_post(cluster, "/v1/entries", pe.to_bytes(), party="q3")
    assert r.status_code == 403 and "consortium roster" in r.json()["error"]
    # right role, a key other than the one the consortium admitted
    other = SigningKey.generate()
    pe = entries.sign(entries.PartyEntry("q3", "querier", other.public_key().to_bytes().hex()),
                      other)
    r = raw_post(cluster, "/v1/entries", pe.to_bytes(), party="q3")
    assert r.status_code == 403 and "consortium roster" in r.json()["error"]
    assert "q3" not in httpx.get(cluster.url("ledger") + "/v1/parties").json()


def test_bad_entry_signature_422(cluster, query):
    sk = cluster.signing_key("querier")
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 9})
    qe = entries.QueryEntry.for_spec(spec, "querier")
    forged = entries.sign(qe, SigningKey.generate())
    r = raw_post(cluster, "/v1/entries", forged.to_bytes(), sk=sk)
    assert r.status_code == 422
    assert r.json()["party"] == "querier"


def test_unknown_query_404(cluster, registered):
    sk = cluster.signing_key("querier")
    e = entries.sign(entries.ResultEntry.for_totals("ab" * 32, [1, 2], {"x": 1},
                                                    ("compute-1",)), sk)
    r = raw_post(cluster, "/v1/entries", e.to_bytes())
    assert r.status_code == 404 and "unknown query id" in r.json()["error"]
    r = httpx.get(cluster.url("ledger") + f"/v1/queries/{'cd' * 32}/entries")
    assert r.status_code == 404
    r = httpx.get(cluster.url("ledger") + "/v1/parties/nobody")
    assert r.status_code == 404


def _mutations(data: bytes) -> list[bytes]:
    obj = parse_cbor(data)
    return [
        b"",
        b"{",
        b"not json",
        data[:-1],  # truncated
        data + b" ",  # trailing garbage
        data + b"\xa0",
        b" " + data,
        cbor2.dumps(dict(reversed(list(obj.items())))),  # not deterministic
        cbor_bytes({**obj, "extra": 1}),
        cbor_bytes({**obj, "v": 1}),
        cbor_bytes({**obj, "v": 3}),
        cbor_bytes({**obj, "v": "2"}),
        cbor_bytes({**obj, "kind": "nope"}),
        cbor_bytes([obj]),
        json.dumps({k: (v.hex() if isinstance(v, bytes) else v) for k, v in obj.items()}
                   | {"v": 1}, sort_keys=True, separators=(",", ":")).encode(),  # version 1
        b"\xff\xfe\x00",
        bytes([data[0] ^ 1]) + data[1:],
        b"[" * 50_000 + b"]" * 50_000,  # nesting bomb
        b'{"v":' + b"1" * 5000 + b"}",  # huge integer
        b'{"v":1e400}',
        b'{"a":NaN}',
    ]


def test_malformed_entries_400_never_500(cluster, query):
    for body in _mutations(query[2]):
        r = raw_post(cluster, "/v1/entries", body)
        assert r.status_code == 400, (body[:60], r.status_code, r.text)
        assert r.json()["error"]


def test_signature_swapped_is_4xx(cluster, query):
    obj = parse_cbor(query[2])
    obj["sig"] = bytes(64)
    body = cbor_bytes(obj)
    r = raw_post(cluster, "/v1/entries", body)
    assert 400 <= r.status_code < 500


def test_oversized_body_413(cluster):
    r = raw_post(cluster, "/v1/entries", b"x" * (MAX_BODY + 1))
    assert r.status_code == 413 and "exceeds the limit" in r.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/v1/entries?start=-1", "/v1/entries?start=abc", "/v1/entries?start=0&end=999999",
     "/v1/entries?start=3&end=1", "/v1/proofs/inclusion?index=99999",
     "/v1/proofs/inclusion", "/v1/proofs/inclusion?index=x", "/v1/proofs/consistency?size1=99",
     "/v1/proofs/consistency?size1=-2", "/v1/bundles/99999", "/v1/bundles/abc",
     "/v1/nope", "/v1/queries/%00/entries", "/v1/parties/" + "x" * 5000,
     "/v1/entries?start=" + "9" * 30, "/v1/entries?start=0&end=" + "9" * 30,
     "/v1/bundles/" + "9" * 30, "/v1/bundles/-1", "/v1/proofs/inclusion?index=" + "9" * 25,
     "/v1/proofs/consistency?size1=1&size2=" + "9" * 25, "/v1/entries?start=1e3",
     "/v1/setup/x"],
)
def test_bad_reads_are_4xx_with_reason(cluster, query, path):
    r = httpx.get(cluster.url("ledger") + path, timeout=10)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert r.json()["error"]


def test_wrong_method_and_json_types(cluster):
    r = httpx.put(cluster.url("ledger") + "/v1/entries", content=b"{}")
    assert r.status_code == 405
    r = httpx.post(cluster.url("ledger") + "/v1/entries", json={"a": 1})
    assert r.status_code == 401


def test_checkpoint_and_proofs(cluster, query):
    with cluster.client("ledger", as_party="querier") as cl:
        out = cl.post("/v1/checkpoint")
        assert out["quorum_met"] and out["size"] >= 3
        note = cl.get("/v1/checkpoint")
        assert note.startswith("statledger.local/log\n")
        bundle = cl.get(f"/v1/bundles/{query[1]}")
        assert base64.b64decode(bundle["entry"]) == query[2]
        inc = cl.get("/v1/proofs/inclusion", params={"index": query[1], "size": out["size"]})
        assert inc["proof"] == bundle["inclusion"]
        info = cl.get("/v1/log")
        assert info["origin"] == "statledger.local/log" and info["quorum"] == 1
        assert out["cosigners"] == ["compute-1"]
    with pytest.raises(RemoteError) as exc:
        SignedClient(cluster.url("ledger")).post("/v1/checkpoint")
    assert exc.value.status == 401


def test_kill_and_restart_keeps_state(cluster, query):
    base = cluster.url("ledger")
    before_parties = httpx.get(base + "/v1/parties").json()
    before_log = httpx.get(base + "/v1/log").json()
    before_cp = httpx.get(base + "/v1/checkpoint").text
    body = query[2]
    h = sign_request(cluster.signing_key("querier"), "querier", "POST", "/v1/entries", body,
                     recipient="ledger")
    assert httpx.post(base + "/v1/entries", content=body, headers=h).status_code == 200
    cluster.restart("ledger", hard=True)  # SIGKILL, then start again
    assert httpx.get(base + "/v1/parties").json() == before_parties
    after_log = httpx.get(base + "/v1/log").json()
    assert after_log == before_log
    assert httpx.get(base + "/v1/checkpoint").text == before_cp
    # nonces persist: the same signed request is still a replay after the restart
    r = httpx.post(base + "/v1/entries", content=body, headers=h)
    assert r.status_code == 409
    # appends continue where the log stopped
    sk = cluster.signing_key("querier")
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 11})
    qe = entries.sign(entries.QueryEntry.for_spec(spec, "querier"), sk)
    with cluster.client("ledger", as_party="querier") as cl:
        out = cl.post("/v1/entries", content=qe.to_bytes())
    assert out["index"] == before_log["size"]
    got = httpx.get(base + f"/v1/queries/{spec.query_id_for('querier')}/entries").json()
    assert got["indices"] == [out["index"]]


def test_startup_failure_names_party(tmp_path):
    c = Cluster(tmp_path / "bad", n_compute=1, queriers=["querier"], startup_timeout=30)
    cfg = c.config_path("ledger")
    cfg.write_text(cfg.read_text() + '\nbogus = 1\n')
    with pytest.raises(ClusterError, match="ledger exited") as info:
        c.start(only=["ledger"])
    assert "bogus" in str(info.value)
    assert not c.procs


def test_concurrent_appends_get_distinct_indices(cluster, registered):
    from concurrent.futures import ThreadPoolExecutor

    sk = cluster.signing_key("querier")
    bodies = [entries.sign(entries.QueryEntry.for_spec(
        QuerySpec.parse({**SPEC, "min_cell_size": 100 + i}), "querier"), sk).to_bytes()
        for i in range(12)]
    size0 = httpx.get(cluster.url("ledger") + "/v1/log").json()["size"]

    def post(body):
        with cluster.client("ledger", as_party="querier") as cl:
            return cl.post("/v1/entries", content=body)["index"]

    with ThreadPoolExecutor(6) as pool:
        idx = list(pool.map(post, bodies + bodies))  # every body twice, concurrently
    assert idx[:12] == idx[12:]
    assert sorted(idx[:12]) == list(range(size0, size0 + 12))
    assert httpx.get(cluster.url("ledger") + "/v1/log").json()["size"] == size0 + 12
