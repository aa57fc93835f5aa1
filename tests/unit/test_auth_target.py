"""Request signatures name their recipient (statledger/http/v2): a request signed for one
party is refused by every other party, with reject twins for the payload."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.nodes import auth
from statledger.nodes.app import create_app
from statledger.nodes.auth import (
    HEADER_NONCE,
    HEADER_PARTY,
    HEADER_SIGNATURE,
    HEADER_TIME,
    Authenticator,
    AuthError,
    NonceStore,
    sign_request,
    signing_payload,
    verify_request,
)
from statledger.nodes.http import AsyncSignedClient, RemoteError, SignedClient
from statledger.proofs.errors import MalformedError
from statledger.proofs.signatures import SigningKey

NOW = 1_700_000_000
SK_Q = SigningKey.from_bytes(bytes(range(2, 34)))
SK_M = SigningKey.from_bytes(bytes(range(9, 41)))
KEYS = {"querier": SK_Q.public_key(), "mallory": SK_M.public_key()}
BODY = b'{"dataset": "diabetes"}'
PATH = "/v1/queries/ab12/decrypt"


def lookup(pid: str):
    return KEYS.get(pid)


def signed(recipient: str = "compute-1", **kw) -> dict[str, str]:
    args = {"now": NOW, "nonce": "5a" * 16}
    args.update(kw)
    return sign_request(SK_Q, "querier", "POST", PATH, BODY, recipient=recipient, **args)


def check(headers: dict[str, str], recipient: str = "compute-1", *, body: bytes = BODY,
          keys=lookup) -> tuple[str, str, int]:
    return verify_request(headers, "POST", PATH, body, keys, recipient=recipient, now=NOW)


def test_domain_is_v2():
    assert auth.DOMAIN == b"statledger/http/v2\n"


def test_payload_layout_is_pinned():
    p = signing_payload("POST", "/a?b=c", b"xyz", "12", "ab" * 16, sender="querier",
                        recipient="compute-1")
    expected = (
        b"statledger/http/v2\nquerier\ncompute-1\nPOST\n/a?b=c\n"
        + hashlib.sha256(b"xyz").hexdigest().encode()
        + b"\n12\n"
        + b"ab" * 16
    )
    assert p == expected


def test_accepted_by_its_recipient():
    assert check(signed()) == ("querier", "5a" * 16, NOW)


@pytest.mark.parametrize("other", ["compute-2", "compute-10", "compute-", "Compute-1",
                                   "compute-1.", "ledger", "querier", "hospital-a"])
def test_target_swapped_rejected_naming_the_recipient(other):
    h = signed("compute-1")
    with pytest.raises(AuthError) as info:
        check(h, recipient=other)
    assert info.value.status == 401 and info.value.party == "querier"
    assert info.value.reason.startswith(f"bad request signature for a request to {other!r}")
    check(h)  # twin: the recipient it was signed for


def test_sender_is_signed_too():
    """The same key registered under two ids: a request by one cannot pass as the other's
    (whose nonces are tracked separately)."""
    shared = {"querier": SK_Q.public_key(), "querier-2": SK_Q.public_key()}
    h = signed()
    check(h, keys=shared.get)
    h[HEADER_PARTY] = "querier-2"
    with pytest.raises(AuthError, match="bad request signature"):
        check(h, keys=shared.get)


@pytest.mark.parametrize("bad", ["", " ", "compute 1", "compute-1\n", "-compute", "a" * 65,
                                 "compute/1", "c\u00f6mpute"])
def test_empty_or_malformed_target_refused_everywhere(bad):
    with pytest.raises(MalformedError, match="recipient"):
        sign_request(SK_Q, "querier", "POST", PATH, BODY, recipient=bad)
    with pytest.raises(MalformedError, match="recipient"):
        signing_payload("POST", PATH, BODY, "1", "00" * 16, sender="querier", recipient=bad)
    with pytest.raises(MalformedError, match="recipient"):
        verify_request(signed(), "POST", PATH, BODY, lookup, recipient=bad, now=NOW)
    with pytest.raises(MalformedError, match="recipient"):
        Authenticator(lookup, NonceStore(":memory:"), recipient=bad)
    with pytest.raises(MalformedError, match="target"):
        SignedClient("http://peer", "querier", SK_Q, target=bad)


def test_signed_client_needs_a_target():
    with pytest.raises(ValueError, match="target="):
        SignedClient("http://peer", "querier", SK_Q, target=None)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="target="):
        AsyncSignedClient("http://peer", "querier", SK_Q)  # type: ignore[call-overload]
    SignedClient("http://peer").close()  # an unsigned client needs none


def _flip(hexsig: str, bit: int) -> str:
    raw = bytearray(bytes.fromhex(hexsig))
    raw[bit // 8] ^= 1 << (bit % 8)
    return raw.hex()


@pytest.mark.parametrize("bit", [0, 7, 8, 255, 256, 300, 504, 511])
def test_signature_bit_flip_rejected(bit):
    h = signed()
    h[HEADER_SIGNATURE] = _flip(h[HEADER_SIGNATURE], bit)
    with pytest.raises(AuthError, match="bad request signature") as info:
        check(h)
    assert info.value.status == 401


def _v1_payload(ts: str, nonce: str) -> bytes:
    return b"\n".join([b"statledger/http/v1", b"POST", PATH.encode(),
                       hashlib.sha256(BODY).hexdigest().encode(), ts.encode(), nonce.encode()])


@pytest.mark.parametrize(
    "payload",
    [
        # the old v1 format (no sender, no recipient): a v1 client is refused
        lambda ts, n: _v1_payload(ts, n),
        # the v2 fields under another domain
        lambda ts, n: signing_payload("POST", PATH, BODY, ts, n, sender="querier",
                                      recipient="compute-1").replace(b"http/v2", b"http/v3", 1),
        lambda ts, n: signing_payload("POST", PATH, BODY, ts, n, sender="querier",
                                      recipient="compute-1").replace(b"http/v2", b"entry/v2", 1),
        # no domain line at all
        lambda ts, n: signing_payload("POST", PATH, BODY, ts, n, sender="querier",
                                      recipient="compute-1").split(b"\n", 1)[1],
        # the recipient line dropped (a v1-style request with a sender)
        lambda ts, n: signing_payload("POST", PATH, BODY, ts, n, sender="querier",
                                      recipient="compute-1").replace(b"compute-1\n", b"", 1),
    ],
    ids=["v1", "v3-domain", "entry-domain", "no-domain", "no-recipient"],
)
def test_wrong_domain_or_layout_rejected(payload):
    ts, nonce = str(NOW), "5a" * 16
    h = {HEADER_PARTY: "querier", HEADER_TIME: ts, HEADER_NONCE: nonce,
         HEADER_SIGNATURE: SK_Q.sign(payload(ts, nonce)).hex()}
    with pytest.raises(AuthError, match="bad request signature"):
        check(h)
    # twin: the same fields signed over the v2 payload
    h[HEADER_SIGNATURE] = SK_Q.sign(signing_payload(
        "POST", PATH, BODY, ts, nonce, sender="querier", recipient="compute-1")).hex()
    check(h)


_PIDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=50, deadline=None)
@given(a=_PIDS, b=_PIDS)
def test_property_only_the_named_recipient_accepts(a, b):
    h = sign_request(SK_Q, "querier", "POST", PATH, BODY, recipient=a, now=NOW)
    verify_request(h, "POST", PATH, BODY, lookup, recipient=a, now=NOW)
    if a != b:
        with pytest.raises(AuthError):
            verify_request(h, "POST", PATH, BODY, lookup, recipient=b, now=NOW)


# -- in-process services: replay to another node ----------------------------------------------


def _node(tmp_path: Path, party_id: str) -> FastAPI:
    app = create_app(title=party_id, party_id=party_id, role="compute")
    auth_ = Authenticator(lookup, NonceStore(tmp_path / f"{party_id}.sqlite"),
                          {"querier": "querier"}.get, recipient=party_id)

    @app.post("/v1/queries/{qid}/decrypt")
    async def decrypt(qid: str, party: str = Depends(auth_.require("querier"))):
        return {"node": party_id, "party": party, "qid": qid}

    return app


def test_request_replayed_to_another_node_is_refused(tmp_path):
    with TestClient(_node(tmp_path, "compute-1"), raise_server_exceptions=False) as c1, \
            TestClient(_node(tmp_path, "compute-2"), raise_server_exceptions=False) as c2:
        h = sign_request(SK_Q, "querier", "POST", PATH, BODY, recipient="compute-1")
        r = c1.post(PATH, content=BODY, headers=h)
        assert r.status_code == 200, r.text
        # compute-2 never saw this nonce: only the recipient in the signature stops it
        r = c2.post(PATH, content=BODY, headers=h)
        assert r.status_code == 401, r.text
        assert "for a request to 'compute-2'" in r.json()["error"]
        assert r.json()["party"] == "querier" and r.json()["node"] == "compute-2"
        r = c1.post(PATH, content=BODY, headers=h)
        assert r.status_code == 409 and "replayed" in r.json()["error"]
        # twin: a request signed for compute-2 is accepted there
        h2 = sign_request(SK_Q, "querier", "POST", PATH, BODY, recipient="compute-2")
        assert c2.post(PATH, content=BODY, headers=h2).status_code == 200


def test_signed_clients_sign_for_their_target(tmp_path):
    with TestClient(_node(tmp_path, "compute-1"), raise_server_exceptions=False) as c1:
        good = SignedClient("http://testserver", "querier", SK_Q, target="compute-1",
                            transport=c1._transport)
        assert good.post(PATH, content=BODY)["node"] == "compute-1"
        wrong = SignedClient("http://testserver", "querier", SK_Q, target="compute-2",
                             transport=c1._transport)
        with pytest.raises(RemoteError, match="for a request to 'compute-1'") as info:
            wrong.post(PATH, content=BODY)
        assert info.value.status == 401 and info.value.node == "compute-1"


def test_async_client_signs_for_its_target():
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async def run() -> None:
        async with AsyncSignedClient("http://peer", "querier", SK_Q, target="ledger",
                                     transport=httpx.MockTransport(handler)) as cl:
            assert await cl.post("/v1/entries", content=b"abc") == {"ok": True}

    asyncio.run(run())
    (req,) = seen
    headers = dict(req.headers)
    verify_request(headers, "POST", "/v1/entries", b"abc", lookup, recipient="ledger")
    with pytest.raises(AuthError, match="for a request to 'compute-1'"):
        verify_request(headers, "POST", "/v1/entries", b"abc", lookup, recipient="compute-1")
