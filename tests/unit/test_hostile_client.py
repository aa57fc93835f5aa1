"""Bounded waits on a node's side (nodes/http.py, nodes/peers.py): a peer that accepts and
never answers, a peer that answers 503 + Retry-After, a request stuck behind another.

The silent peer is a real listening socket that never reads; the busy peer a real
statledger app (in process, through its ASGI transport).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from statledger.nodes.app import UnavailableError, create_app, error_body
from statledger.nodes.http import RemoteError, SignedClient, UnreachableError
from statledger.nodes.peers import BoundedLock


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """A TCP server that accepts connections (the kernel's backlog) and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()


def test_a_silent_peer_costs_one_timeout_then_the_breaker_answers(silent_peer: str) -> None:
    with SignedClient(silent_peer, timeout=0.5, breaker=1.5, retries=0) as c:
        t0 = time.monotonic()
        with pytest.raises(UnreachableError) as first:
            c.get("/v1/log")
        assert 0.4 <= time.monotonic() - t0 < 3.0
        assert "timed out" in first.value.reason and first.value.retry_after == 2
        t0 = time.monotonic()
        with pytest.raises(UnreachableError) as second:
            c.get("/v1/parties")
        assert time.monotonic() - t0 < 0.1  # not asked again
        assert "not answering" in second.value.reason and second.value.retry_after >= 1
        time.sleep(1.6)  # the breaker is over: asked again (and times out again)
        t0 = time.monotonic()
        with pytest.raises(UnreachableError):
            c.get("/v1/log")
        assert time.monotonic() - t0 >= 0.4


def test_without_a_breaker_every_call_waits(silent_peer: str) -> None:
    with SignedClient(silent_peer, timeout=0.3, retries=0) as c:
        for _ in range(2):
            t0 = time.monotonic()
            with pytest.raises(UnreachableError):
                c.get("/v1/log")
            assert time.monotonic() - t0 >= 0.25


def test_a_per_request_timeout_overrides_the_clients(silent_peer: str) -> None:
    with SignedClient(silent_peer, timeout=30.0, retries=0) as c:
        t0 = time.monotonic()
        with pytest.raises(UnreachableError):
            c.post("/v1/entries", content=b"x", timeout=0.3)
        assert time.monotonic() - t0 < 5.0


def _busy_app(refusals: int, retry_after: int | None) -> tuple[TestClient, list[int]]:
    app = create_app(title="t", party_id="node-x", role="compute")
    calls: list[int] = []

    @app.post("/v1/act")
    async def act() -> Any:
        calls.append(1)
        if len(calls) <= refusals:
            if retry_after is None:  # a 503 that says nothing about retrying (a checkpoint
                return JSONResponse(  # whose witness quorum was not met)
                    error_body("quorum not met", node="node-x"), status_code=503)
            raise UnavailableError("busy", retry_after=retry_after)
        return {"n": len(calls)}

    return TestClient(app, raise_server_exceptions=False), calls


def test_a_503_with_retry_after_is_retried_within_busy_wait() -> None:
    tc, calls = _busy_app(refusals=1, retry_after=1)
    with SignedClient("http://testserver", transport=tc._transport, busy_wait=10) as c:
        t0 = time.monotonic()
        assert c.post("/v1/act") == {"n": 2}
        assert time.monotonic() - t0 >= 0.9  # it waited what the peer asked
    assert len(calls) == 2


def test_a_503_is_not_retried_past_busy_wait_nor_without_retry_after() -> None:
    tc, calls = _busy_app(refusals=5, retry_after=1)
    with SignedClient("http://testserver", transport=tc._transport, busy_wait=0) as c:
        with pytest.raises(RemoteError) as exc:
            c.post("/v1/act")
    assert exc.value.status == 503 and len(calls) == 1
    tc, calls = _busy_app(refusals=5, retry_after=None)
    with SignedClient("http://testserver", transport=tc._transport, busy_wait=10) as c:
        with pytest.raises(RemoteError) as exc:
            c.post("/v1/act")
    assert exc.value.status == 503 and len(calls) == 1


def test_bounded_lock_answers_busy_instead_of_waiting() -> None:
    lock = BoundedLock(wait=0.3)
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(5)
        t0 = time.monotonic()
        with pytest.raises(UnavailableError) as exc:
            with lock:
                pass
        assert 0.25 <= time.monotonic() - t0 < 2.0
        assert exc.value.retry_after >= 1 and "busy" in str(exc.value)
    finally:
        release.set()
        t.join(5)
    with lock:  # free again
        pass



def test_a_refused_connection_does_not_trip_the_breaker() -> None:
    """A peer that is down (restarting) refuses at once: it is asked again next time."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with SignedClient(f"http://127.0.0.1:{port}", timeout=2.0, breaker=60.0, retries=0) as c:
        for _ in range(2):
            with pytest.raises(UnreachableError) as exc:
                c.get("/v1/log")
            assert "cannot connect" in exc.value.reason and exc.value.retry_after is None
