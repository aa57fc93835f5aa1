"""statledger.nodes.app + statledger.nodes.auth inside FastAPI (in-process TestClient): statuses
and JSON reasons."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from statledger.nodes.app import NotFoundError, create_app
from statledger.nodes.auth import (
    HEADER_NONCE,
    Authenticator,
    AuthError,
    NonceStore,
    sign_request,
    verify_request,
)
from statledger.nodes.http import RemoteError, SignedClient, UnreachableError
from statledger.proofs.errors import (
    DecryptionError,
    MalformedError,
    PolicyError,
    ProtocolError,
    VerificationError,
)
from statledger.proofs.signatures import SigningKey

SK_A = SigningKey.from_bytes(bytes(range(32)))
SK_Q = SigningKey.from_bytes(bytes(range(2, 34)))
SK_X = SigningKey.from_bytes(bytes(range(5, 37)))
KEYS = {"prov-1": SK_A.public_key(), "querier": SK_Q.public_key()}
ROLES = {"prov-1": "provider", "querier": "querier"}


class Item(BaseModel):
    name: str
    count: int


def make_app(tmp_path, max_body=4096):
    app = create_app(title="t", party_id="node-x", role="compute", max_body=max_body)
    auth = Authenticator(KEYS.get, NonceStore(tmp_path / "state.sqlite"), ROLES.get,
                         recipient="node-x")

    @app.post("/v1/any")
    async def any_party(request: Request, party: str = Depends(auth.require())):
        body = await request.body()
        return {"party": party, "len": len(body)}

    @app.post("/v1/providers-only")
    async def providers_only(party: str = Depends(auth.require("provider"))):
        return {"party": party}

    @app.get("/v1/q")
    async def q(x: int, party: str = Depends(auth.require())):
        return {"x": x, "party": party}

    @app.post("/v1/item")
    async def item(it: Item):
        return {"ok": it.name}

    @app.get("/v1/raise/{kind}")
    async def raiser(kind: str):
        errs = {
            "malformed": MalformedError("bad bytes"),
            "verification": VerificationError("equation fails", step="step 5", party="c-2"),
            "decryption": DecryptionError("out of bound"),
            "policy": PolicyError("column not allowed"),
            "protocol": ProtocolError("out of order"),
            "notfound": NotFoundError("unknown query q1"),
            "bug": RuntimeError("boom"),
        }
        raise errs[kind]

    return app


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path), raise_server_exceptions=False) as c:
        yield c


def signed_post(client, path, body, sk=SK_A, party="prov-1", **kw):
    kw.setdefault("recipient", "node-x")
    headers = sign_request(sk, party, "POST", path, body, **kw)
    return client.post(path, content=body, headers=headers)


def test_health(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "party": "node-x", "role": "compute"}


def test_signed_request_accepted(client):
    r = signed_post(client, "/v1/any", b"hello")
    assert r.status_code == 200, r.text
    assert r.json() == {"party": "prov-1", "len": 5}


def test_signed_get_with_query(client):
    headers = sign_request(SK_Q, "querier", "GET", "/v1/q?x=7", b"", recipient="node-x")
    r = client.get("/v1/q?x=7", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"x": 7, "party": "querier"}
    headers = sign_request(SK_Q, "querier", "GET", "/v1/q?x=7", b"", recipient="node-x")
    r = client.get("/v1/q?x=8", headers=headers)
    assert r.status_code == 401


def test_unsigned_401(client):
    r = client.post("/v1/any", content=b"x")
    assert r.status_code == 401
    assert "missing header" in r.json()["error"]
    assert r.json()["node"] == "node-x"


def test_unknown_party_401(client):
    r = signed_post(client, "/v1/any", b"x", sk=SK_X, party="mallory")
    assert r.status_code == 401
    assert r.json()["error"] == "unknown party 'mallory'"


def test_wrong_key_401(client):
    r = signed_post(client, "/v1/any", b"x", sk=SK_X, party="prov-1")
    assert r.status_code == 401
    assert r.json()["error"].startswith("bad request signature for a request to 'node-x'")


def test_body_swapped_401(client):
    headers = sign_request(SK_A, "prov-1", "POST", "/v1/any", b"one", recipient="node-x")
    r = client.post("/v1/any", content=b"two", headers=headers)
    assert r.status_code == 401


def test_stale_time_401(client):
    r = signed_post(client, "/v1/any", b"x", now=time.time() - 1000)
    assert r.status_code == 401
    assert "window" in r.json()["error"]


def test_replay_409(client):
    headers = sign_request(SK_A, "prov-1", "POST", "/v1/any", b"x", recipient="node-x")
    assert client.post("/v1/any", content=b"x", headers=headers).status_code == 200
    r = client.post("/v1/any", content=b"x", headers=headers)
    assert r.status_code == 409
    assert "replayed" in r.json()["error"]
    assert r.json()["party"] == "prov-1"


def test_bad_signature_does_not_burn_nonce(client):
    headers = sign_request(SK_A, "prov-1", "POST", "/v1/any", b"x", recipient="node-x")
    bad = dict(headers)
    bad["X-Statledger-Signature"] = "00" * 64
    assert client.post("/v1/any", content=b"x", headers=bad).status_code == 401
    assert client.post("/v1/any", content=b"x", headers=headers).status_code == 200
    assert headers[HEADER_NONCE]


def test_role_403(client):
    headers = sign_request(SK_Q, "querier", "POST", "/v1/providers-only", b"",
                           recipient="node-x")
    r = client.post("/v1/providers-only", content=b"", headers=headers)
    assert r.status_code == 403
    assert "needs role provider" in r.json()["error"]
    assert signed_post(client, "/v1/providers-only", b"").status_code == 200


@pytest.mark.parametrize(
    "kind,status",
    [("malformed", 400), ("verification", 422), ("decryption", 422), ("policy", 403),
     ("protocol", 409), ("notfound", 404), ("bug", 500)],
)
def test_error_mapping(client, kind, status):
    r = client.get(f"/v1/raise/{kind}")
    assert r.status_code == status
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["node"] == "node-x"
    if kind == "verification":
        assert body["step"] == "step 5" and body["party"] == "c-2"
        assert body["error"] == "equation fails"
    if kind == "bug":
        assert body["error"] == "internal error"  # no internals leak


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"[]", b'{"name": "a"}', b'{"name": 1, "count": 2}',
     b'{"name": "a", "count": "many"}', b"\xff\xfe", b'{"name": "a", "count": 1} garbage',
     b"null"],
)
def test_bad_json_is_4xx_with_reason(client, raw):
    r = client.post("/v1/item", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"].startswith("invalid request")


def test_good_json_accepted(client):
    r = client.post("/v1/item", json={"name": "a", "count": 2})
    assert r.status_code == 200 and r.json() == {"ok": "a"}


def test_validation_names_field(client):
    r = client.post("/v1/item", json={"name": "a", "count": "x"})
    assert r.status_code == 400
    assert r.json()["fields"][0]["field"] == "count"


def test_oversized_body_413(client):
    r = signed_post(client, "/v1/any", b"x" * 5000)
    assert r.status_code == 413
    assert "exceeds the limit" in r.json()["error"]
    r = signed_post(client, "/v1/any", b"x" * 4096)
    assert r.status_code == 200


def test_oversized_chunked_body_413(client):
    def gen():
        for _ in range(10):
            yield b"y" * 1000

    r = client.post("/v1/any", content=gen())
    assert r.status_code == 413


def test_unknown_route_404(client):
    r = client.get("/v1/nope")
    assert r.status_code == 404
    assert r.json()["error"] == "Not Found"


def test_wrong_method_405(client):
    r = client.get("/v1/any")
    assert r.status_code == 405
    assert "error" in r.json()


def test_signed_client_roundtrip_and_remote_error(tmp_path):
    app = make_app(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as tc:
        # SignedClient over the TestClient's transport
        sc = SignedClient("http://testserver", "prov-1", SK_A, target="node-x",
                          transport=tc._transport)
        assert sc.post("/v1/any", content=b"abc") == {"party": "prov-1", "len": 3}
        assert sc.request("GET", "/v1/q", params={"x": 3}) == {"x": 3, "party": "prov-1"}
        with pytest.raises(RemoteError) as info:
            sc.get("/v1/raise/verification")
        err = info.value
        assert err.status == 422 and err.reason == "equation fails"
        assert err.step == "step 5" and err.party == "c-2" and err.node == "node-x"
        anon = SignedClient("http://testserver", transport=tc._transport)
        with pytest.raises(RemoteError) as info:
            anon.post("/v1/any", content=b"x")
        assert info.value.status == 401
        assert json.loads(json.dumps(info.value.body))["error"].startswith("missing header")


def test_unreachable_peer_retries_then_typed_error():
    from statledger.nodes.launcher import free_ports

    port = free_ports(1)[0]  # nothing listens there
    cl = SignedClient(f"http://127.0.0.1:{port}", "prov-1", SK_A, target="node-x",
                      retries=2, backoff=0.01)
    with pytest.raises(UnreachableError) as info:
        cl.post("/v1/any", content=b"x")
    assert info.value.status is None and "cannot connect" in info.value.reason
    cl.close()


def test_each_attempt_is_signed_afresh(tmp_path):
    seen = []

    def handler(request):
        seen.append(dict(request.headers))
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})

    cl = SignedClient("http://peer", "prov-1", SK_A, target="node-x", retries=1, backoff=0.0,
                      transport=httpx.MockTransport(handler))
    assert cl.post("/v1/any", content=b"abc") == {"ok": True}
    assert len(seen) == 2
    assert seen[0]["x-statledger-nonce"] != seen[1]["x-statledger-nonce"]
    for h in seen:
        verify_request(h, "POST", "/v1/any", b"abc", KEYS.get, recipient="node-x")
        with pytest.raises(AuthError, match="for a request to 'node-y'"):
            verify_request(h, "POST", "/v1/any", b"abc", KEYS.get, recipient="node-y")


def test_non_json_error_body_is_carried():
    def handler(request):
        return httpx.Response(502, text="bad gateway from proxy")

    cl = SignedClient("http://peer", transport=httpx.MockTransport(handler))
    with pytest.raises(RemoteError) as info:
        cl.get("/x")
    assert info.value.status == 502 and info.value.reason == "bad gateway from proxy"


def _dropping_handler(drops: int):
    """A peer whose first ``drops`` connections are reset before any response (a stale
    pooled connection to a peer that restarted)."""
    seen: list[str] = []

    def handler(request):
        seen.append(request.method)
        if len(seen) <= drops:
            raise httpx.RemoteProtocolError("Connection reset by peer", request=request)
        return httpx.Response(200, json={"ok": True})
    return handler, seen


def test_a_read_on_a_dropped_connection_is_sent_again():
    handler, seen = _dropping_handler(1)
    cl = SignedClient("http://peer", "prov-1", SK_A, target="node-x", retries=2, backoff=0.0,
                      transport=httpx.MockTransport(handler))
    assert cl.get("/v1/setup") == {"ok": True}
    assert seen == ["GET", "GET"]


def test_a_read_that_keeps_dropping_is_reported_after_the_retries():
    handler, seen = _dropping_handler(10)
    cl = SignedClient("http://peer", "prov-1", SK_A, target="node-x", retries=2, backoff=0.0,
                      transport=httpx.MockTransport(handler))
    with pytest.raises(UnreachableError, match="transport error"):
        cl.get("/v1/setup")
    assert len(seen) == 3


def test_a_write_on_a_dropped_connection_is_never_repeated():
    """The peer may have acted before the connection dropped: a write is not sent twice."""
    handler, seen = _dropping_handler(1)
    cl = SignedClient("http://peer", "prov-1", SK_A, target="node-x", retries=2, backoff=0.0,
                      transport=httpx.MockTransport(handler))
    with pytest.raises(UnreachableError, match="transport error"):
        cl.post("/v1/any", content=b"x")
    assert seen == ["POST"]
