"""In-process checks of the hostile-load defences of the node scaffolding:

* a chunked body over the limit answers 413 on every kind of route (not FastAPI's 400);
* a peer that cannot be reached answers 503, one that fails 502, both with Retry-After and
  without the peer's address;
* :class:`statledger.nodes.peers.PartyDirectory` fetches the ledger's parties on the event
  loop without blocking it, at most once per interval whatever ids are asked for, and
  answers 503 at once while the ledger is known to be down;
* :class:`statledger.nodes.serve.ServerLimits` and the uvicorn options built from it.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from statledger.nodes.app import RETRY_AFTER, UnavailableError, create_app
from statledger.nodes.auth import NonceStore, sign_request
from statledger.nodes.config import ConfigError
from statledger.nodes.http import RemoteError, UnreachableError
from statledger.nodes.peers import DirectoryAuthenticator, PartyDirectory
from statledger.nodes.serve import (
    GuardedH11Protocol,
    ServerLimits,
    fit_fd_limit,
    guarded_protocol,
    uvicorn_options,
)
from statledger.proofs.signatures import SigningKey

SK_Q = SigningKey.from_bytes(bytes(range(2, 34)))
PARTIES = {"querier": {"role": "querier", "sig_key": SK_Q.public_key().to_bytes().hex(),
                       "index": 1}}
LEDGER = "http://ledger.invalid:1"


class Item(BaseModel):
    name: str


def _chunks(n: int, size: int = 1000) -> Iterator[bytes]:
    yield b'{"name": "'
    for _ in range(n):
        yield b"y" * size


# -- 413 for chunked bodies --------------------------------------------------------------------


@pytest.fixture
def app() -> FastAPI:
    app = create_app(title="t", party_id="node-x", role="compute", max_body=4096)

    @app.post("/v1/item")
    async def item(it: Item) -> dict[str, str]:
        return {"ok": it.name}

    @app.post("/v1/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"len": len(await request.body())}

    @app.get("/v1/raise/{kind}")
    async def raiser(kind: str) -> None:
        errors: dict[str, Exception] = {
            "unreachable": UnreachableError("timed out (ReadTimeout)",
                                            url="http://10.1.2.3:8100/v1/parties"),
            "bad-gateway": RemoteError(500, "internal error",
                                       url="http://10.1.2.3:8100/v1/entries"),
            "refused": RemoteError(409, "query already on the log",
                                   url="http://10.1.2.3:8100/v1/entries"),
            "unavailable": UnavailableError("the ledger is not answering", retry_after=7),
        }
        raise errors[kind]

    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/item", "/v1/raw"])
def test_chunked_body_over_the_limit_413(client: TestClient, path: str) -> None:
    r = client.post(path, content=_chunks(10), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "exceeds the limit of 4096 bytes" in r.json()["error"]
    assert r.json()["node"] == "node-x"


def test_chunked_body_within_the_limit_served(client: TestClient) -> None:
    def small() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"abc"}'

    r = client.post("/v1/item", content=small(), headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json() == {"ok": "abc"}
    r = client.post("/v1/item", content=b'{"name": 5', headers={"content-type": "application/json"})
    assert r.status_code == 400  # a malformed body under the limit stays a 400


def test_declared_length_over_the_limit_413(client: TestClient) -> None:
    r = client.post("/v1/item", content=b"x" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413


# -- 502 / 503 with Retry-After ------------------------------------------------------------


def test_unreachable_peer_503_with_retry_after(client: TestClient) -> None:
    r = client.get("/v1/raise/unreachable")
    assert r.status_code == 503
    assert r.headers["retry-after"] == str(RETRY_AFTER)
    assert "unreachable" in r.json()["error"] and "timed out" in r.json()["error"]
    assert "10.1.2.3" not in r.text  # the peer's address is not told


def test_failing_peer_502_with_retry_after(client: TestClient) -> None:
    r = client.get("/v1/raise/bad-gateway")
    assert r.status_code == 502 and r.headers["retry-after"] == str(RETRY_AFTER)
    assert "10.1.2.3" not in r.text


def test_peer_refusal_stays_400(client: TestClient) -> None:
    r = client.get("/v1/raise/refused")
    assert r.status_code == 400 and "retry-after" not in r.headers


def test_unavailable_503_with_its_retry_after(client: TestClient) -> None:
    r = client.get("/v1/raise/unavailable")
    assert r.status_code == 503 and r.headers["retry-after"] == "7"


# -- PartyDirectory --------------------------------------------------------------------------


class FakeLedger:
    """``GET /v1/parties`` through an httpx mock transport; ``stalled`` never answers."""

    def __init__(self) -> None:
        self.parties: dict[str, Any] = dict(PARTIES)
        self.calls = 0
        self.stalled = False

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert request.url.path == "/v1/parties"
        if self.stalled:
            await asyncio.sleep(3600)
        return httpx.Response(200, json=self.parties)

    def directory(self, **kw: Any) -> PartyDirectory:
        return PartyDirectory(LEDGER, transport=httpx.MockTransport(self.handler), **kw)


def _random_id() -> str:
    return "x" + secrets.token_hex(8)


def test_random_ids_cost_one_fetch_per_interval() -> None:
    ledger = FakeLedger()

    async def run() -> None:
        d = ledger.directory(min_refresh=0.3)
        # 200 concurrent requests from random unknown ids: one fetch between them
        await asyncio.gather(*(d.ensure(_random_id()) for _ in range(200)))
        assert ledger.calls == 1 and d.fetches == 1
        assert d.key_of("querier") is not None and d.role_of("querier") == "querier"
        # a stream of unknown ids for 0.5 s: at most one fetch per 0.3 s interval
        t_end = time.monotonic() + 0.5
        while time.monotonic() < t_end:
            await d.ensure(_random_id())
        assert ledger.calls <= 4
        # a known party never triggers a fetch
        before = ledger.calls
        for _ in range(100):
            await d.ensure("querier")
        assert ledger.calls == before
        # a party registered later is found by the next fetch
        ledger.parties["late"] = {**PARTIES["querier"], "index": 9}
        await d.ensure("late")
        assert d.role_of("late") == "querier"
        await d.aclose()

    asyncio.run(run())


def test_stalled_ledger_does_not_block_the_loop_and_backs_off() -> None:
    ledger = FakeLedger()

    async def run() -> None:
        d = ledger.directory(min_refresh=0.0, timeout=0.3, retry_after=30.0)
        await d.ensure("querier")
        ledger.stalled = True
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        with pytest.raises(UnavailableError, match="not answering") as info:
            await asyncio.gather(*(d.ensure(_random_id()) for _ in range(50)))
        elapsed = time.monotonic() - t0
        assert 0.25 < elapsed < 2.0
        assert ticks >= 10  # the loop ran all along
        assert info.value.retry_after >= 1
        calls = ledger.calls
        # while the failure is fresh: refused at once, no new fetch
        t0 = time.monotonic()
        for _ in range(100):
            with pytest.raises(UnavailableError):
                await d.ensure(_random_id())
        assert time.monotonic() - t0 < 0.5 and ledger.calls == calls
        # the parties known before still authenticate
        await d.ensure("querier")
        assert d.key_of("querier") is not None
        tick.cancel()
        await d.aclose()

    asyncio.run(run())


def test_directory_authenticator_503_for_unknown_sender_while_ledger_down(
        tmp_path: Path) -> None:
    ledger = FakeLedger()
    directory = ledger.directory(min_refresh=0.0, timeout=0.2, retry_after=30.0)
    auth = DirectoryAuthenticator(directory, NonceStore(tmp_path / "nonces.sqlite"),
                                  recipient="node-x")
    app = create_app(title="t", party_id="node-x", role="compute")

    @app.post("/v1/thing")
    async def thing(party: str = Depends(auth.require("querier"))) -> dict[str, str]:
        return {"party": party}

    def post(sk: SigningKey, party: str, recipient: str = "node-x") -> httpx.Response:
        return client.post("/v1/thing", content=b"{}",
                           headers=sign_request(sk, party, "POST", "/v1/thing", b"{}",
                                                recipient=recipient))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert post(SK_Q, "querier").status_code == 200
        # twin: the same request signed for another node is refused
        assert post(SK_Q, "querier", recipient="node-y").status_code == 401
        stranger = SigningKey.generate()
        r = post(stranger, "stranger")
        assert r.status_code == 401 and "unknown party" in r.json()["error"]
        ledger.stalled = True
        r = post(stranger, "stranger-2")
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "ledger" in r.json()["error"] and LEDGER not in r.text
        assert post(SK_Q, "querier").status_code == 200  # known parties are unaffected


# -- server limits -----------------------------------------------------------------------------


def test_server_limits_defaults_match_the_deployment_doc() -> None:
    limits = ServerLimits()
    assert (limits.header_timeout, limits.request_timeout, limits.keep_alive,
            limits.max_connections) == (10.0, 60.0, 5.0, 1000)
    assert limits.fds_needed == 1256
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    for figure in ("10 s", "60 s", "5 s", "1000", "1256"):
        assert figure in doc, figure


@pytest.mark.parametrize("kw", [{"header_timeout": 0}, {"request_timeout": 1.0},
                                {"keep_alive": -1}, {"max_connections": 0}])
def test_server_limits_refuse_nonsense(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ServerLimits(**kw)


def test_uvicorn_options_carry_the_limits() -> None:
    limits = ServerLimits(header_timeout=2, request_timeout=4, keep_alive=3, max_connections=77)
    opts = uvicorn_options(limits)
    assert opts["timeout_keep_alive"] == 3 and opts["limit_concurrency"] == 78
    proto = opts["http"]
    assert issubclass(proto, GuardedH11Protocol) and proto.limits is limits
    assert guarded_protocol(ServerLimits()).limits == ServerLimits()


def test_fit_fd_limit_serves_fewer_connections_than_the_fds_allow() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit")
    fitted = fit_fd_limit(ServerLimits(max_connections=hard + 10_000))
    now_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert fitted.max_connections == max(16, now_soft - fitted.fd_reserve)
    assert fit_fd_limit(ServerLimits(max_connections=16)).max_connections == 16
