"""Hostile load against real node processes on 127.0.0.1 (docs/deployment.md, "Hostile
clients"):

* 200 connections that send half a request line and stall (plus stalled bodies and silent
  connections) neither starve ``/v1/health`` nor hold their file descriptors: the server
  answers 408 and closes each within its deadline;
* connections beyond ``--max-connections`` are answered 503 and closed at once;
* a compute node whose ledger is frozen (SIGSTOP) keeps answering its health and witness
  routes while requests from unknown party ids pile up (they get 503 + Retry-After, after
  at most one bounded, asynchronous ledger fetch), and recovers when the ledger resumes;
* a compute node whose ledger is gone answers 503 with Retry-After.

Every socket and process here is bounded in count and time.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from statledger.nodes.auth import sign_request
from statledger.nodes.launcher import Cluster, PartyInfo, init_cluster
from statledger.nodes.serve import PARENT_ENV
from statledger.proofs.signatures import SigningKey

HEADER_TIMEOUT = 2.0
REQUEST_TIMEOUT = 4.0
SLACK = 2.5  # scheduling slack on a loaded 2-core machine
UNKNOWN_QID = "0" * 64

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX only")


@contextmanager
def _serve(party: PartyInfo, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """One node process (``python -m statledger.nodes.serve``) with extra ``flags``."""
    log_path = Path(party.log_path)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "statledger.nodes.serve", "--role", party.role,
             "--config", party.config_path, "--no-register", *flags],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, PARENT_ENV: str(os.getpid())}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError("node exited:\n" + log_path.read_text()[-3000:])
            try:
                if httpx.get(party.url + "/v1/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("node not healthy:\n" + log_path.read_text()[-3000:])
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _addr(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _health_latencies(url: str, n: int = 10) -> list[float]:
    out = []
    with httpx.Client(timeout=5.0) as http:
        for _ in range(n):
            t0 = time.monotonic()
            r = http.get(url + "/v1/health")
            out.append(time.monotonic() - t0)
            assert r.status_code == 200
    return out


def _read_to_eof(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; the monotonic time of the close."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data, time.monotonic()
        data += chunk


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


# -- slow clients ------------------------------------------------------------------------------


def test_stalled_connections_are_cut_and_health_still_answers(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path, n_compute=1, queriers=[])  # only the ledger serves
    led = layout.ledger
    addr = _addr(led.url)
    with _serve(led, "--header-timeout", str(HEADER_TIMEOUT),
                "--request-timeout", str(REQUEST_TIMEOUT)) as proc:
        baseline_fds = _open_fds(proc.pid)
        socks: list[socket.socket] = []
        try:
            t_open = time.monotonic()
            heads, bodies, silent = [], [], []
            for _ in range(200):  # half a request line
                s = socket.create_connection(addr, timeout=5)
                s.sendall(b"GET /v1/hea")
                heads.append(s)
            for _ in range(20):  # headers in, the body stalls
                s = socket.create_connection(addr, timeout=5)
                s.sendall(b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                          b"content-type: application/octet-stream\r\n\r\nabc")
                bodies.append(s)
            for _ in range(20):  # nothing at all
                silent.append(socket.create_connection(addr, timeout=5))
            socks = heads + bodies + silent
            t_opened = time.monotonic()
            assert t_opened - t_open < HEADER_TIMEOUT, "opening the sockets took too long"

            lat = _health_latencies(led.url)
            assert max(lat) < 1.0, lat

            header_closes = []
            for s in heads + silent:
                data, at = _read_to_eof(s, HEADER_TIMEOUT + 10)
                assert data.startswith(b"HTTP/1.1 408"), data[:80]
                header_closes.append(at - t_open)
            body_closes = []
            for s in bodies:
                data, at = _read_to_eof(s, REQUEST_TIMEOUT + 10)
                assert data.startswith(b"HTTP/1.1 408"), data[:80]
                body_closes.append(at - t_open)
            assert HEADER_TIMEOUT - 0.2 <= min(header_closes), header_closes
            assert max(header_closes) <= HEADER_TIMEOUT + (t_opened - t_open) + SLACK
            assert REQUEST_TIMEOUT - 0.2 <= min(body_closes), body_closes
            assert max(body_closes) <= REQUEST_TIMEOUT + (t_opened - t_open) + SLACK
        finally:
            for s in socks:
                s.close()
        assert max(_health_latencies(led.url)) < 1.0
        # the server let go of every stalled socket's file descriptor
        after = _open_fds(proc.pid)
        if baseline_fds is not None and after is not None:
            assert after <= baseline_fds + 5, (baseline_fds, after)
        log = Path(led.log_path).read_text()
        assert "Traceback" not in log and "internal error" not in log, log[-3000:]


def test_idle_connections_close_after_keep_alive(tmp_path: Path) -> None:
    """Kept-alive connections close after ``--keep-alive``, also one whose request was
    answered before its body was in (uvicorn alone would keep that one open for ever)."""
    layout = init_cluster(tmp_path, n_compute=1, queriers=[])  # only the ledger serves
    led = layout.ledger
    addr = _addr(led.url)
    keep_alive = 1.0
    with _serve(led, "--keep-alive", str(keep_alive)):
        plain = socket.create_connection(addr, timeout=5)
        early = socket.create_connection(addr, timeout=5)
        try:
            plain.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            early.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            for s in (plain, early):
                answer = b""
                while not answer.endswith(b"}"):  # the health JSON, headers and body
                    answer += s.recv(4096)
                assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
            t0 = time.monotonic()
            early.sendall(b"abcde")  # the body nobody read
            for s in (plain, early):
                data, at = _read_to_eof(s, keep_alive + 10)
                assert data == b""
                assert at - t0 <= keep_alive + SLACK
        finally:
            plain.close()
            early.close()


def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    layout = init_cluster(tmp_path, n_compute=1, queriers=[])  # only the ledger serves
    led = layout.ledger
    addr = _addr(led.url)
    with _serve(led, "--max-connections", "30"):
        time.sleep(0.3)  # the readiness probe's connection is gone
        socks = [socket.create_connection(addr, timeout=5) for _ in range(40)]
        try:
            time.sleep(1.0)  # well within the 10 s header timeout of the served ones
            readable, _, _ = select.select(socks, [], [], 1.0)
            refused = 0
            for s in readable:
                data = s.recv(4096)
                assert data.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in data, data
                refused += 1
            assert 8 <= refused <= 10, refused
        finally:
            for s in socks:
                s.close()
        time.sleep(0.3)
        assert max(_health_latencies(led.url, 3)) < 1.0


# -- a frozen ledger must not freeze a compute node ---------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("hostile"), n_compute=1, queriers=["querier"],
                startup_timeout=90)
    c.start_and_set_up()
    try:
        yield c
    finally:
        ledger = c.procs.get("ledger")
        if ledger is not None and ledger.poll() is None:
            os.kill(ledger.pid, signal.SIGCONT)
        c.stop()


def _signed_post(url: str, path: str, sk: SigningKey, party: str,
                 timeout: float = 20.0, recipient: str = "compute-1"
                 ) -> tuple[httpx.Response, float]:
    headers = sign_request(sk, party, "POST", path, b"", recipient=recipient)
    t0 = time.monotonic()
    r = httpx.post(url + path, content=b"", headers=headers, timeout=timeout)
    return r, time.monotonic() - t0


def _stranger(url: str) -> tuple[httpx.Response, float]:
    return _signed_post(url, f"/v1/queries/{UNKNOWN_QID}/decrypt", SigningKey.generate(),
                        "x" + secrets.token_hex(6))


def test_frozen_ledger_does_not_freeze_a_compute_node(cluster: Cluster) -> None:
    compute = cluster.url("compute-1")
    # a checkpoint the witness has cosigned, to ask it again while the ledger is frozen
    with cluster.client("ledger", as_party="querier") as cl:
        out = cl.post("/v1/checkpoint")
    cosign_body = {"checkpoint": out["checkpoint"], "old_size": out["size"], "proof": []}
    # the querier is known to the compute node before the freeze
    r, _ = _signed_post(compute, f"/v1/queries/{UNKNOWN_QID}/decrypt",
                        cluster.signing_key("querier"), "querier")
    assert r.status_code == 404, r.text
    r, _ = _stranger(compute)
    assert r.status_code == 401 and "unknown party" in r.json()["error"]

    ledger_pid = cluster.procs["ledger"].pid
    os.kill(ledger_pid, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(max_workers=30) as pool:
            strangers = [pool.submit(_stranger, compute) for _ in range(30)]
            time.sleep(0.3)  # the node is now waiting on the frozen ledger
            lat = _health_latencies(compute, 5)
            t0 = time.monotonic()
            r = httpx.post(compute + "/v1/witness/cosign", json=cosign_body, timeout=10)
            cosign_s = time.monotonic() - t0
            results = [f.result(timeout=30) for f in strangers]
        assert max(lat) < 1.0, lat
        assert cosign_s < 1.0 and r.status_code == 200, (cosign_s, r.text)
        assert r.json()["name"] == "compute-1"
        for resp, elapsed in results:
            assert resp.status_code == 503, resp.text
            assert int(resp.headers["retry-after"]) >= 1
            assert "ledger" in resp.json()["error"]
            assert elapsed < 10.0  # one bounded fetch (3 s), never the ledger's 30-120 s
        # while the failure is fresh, unknown senders are refused at once
        resp, elapsed = _stranger(compute)
        assert resp.status_code == 503 and elapsed < 1.0
    finally:
        os.kill(ledger_pid, signal.SIGCONT)
    # the ledger is back: unknown senders are plain 401 again once the back-off is over
    deadline = time.monotonic() + 20
    while True:
        resp, _ = _stranger(compute)
        if resp.status_code == 401:
            break
        assert resp.status_code == 503 and time.monotonic() < deadline, resp.text
        time.sleep(0.5)
    assert max(_health_latencies(compute, 3)) < 1.0


def test_compute_node_without_its_ledger_answers_503_with_retry_after(
        cluster: Cluster) -> None:
    compute = cluster.url("compute-1")
    sk = cluster.signing_key("querier")
    r, _ = _signed_post(compute, f"/v1/queries/{UNKNOWN_QID}/decrypt", sk, "querier")
    assert r.status_code == 404, r.text  # the querier is known; the ledger answers
    cluster.kill("ledger")
    try:
        r, elapsed = _signed_post(compute, f"/v1/queries/{UNKNOWN_QID}/decrypt", sk,
                                  "querier")
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "unreachable" in r.json()["error"] and cluster.url("ledger") not in r.text
        assert elapsed < 10.0
    finally:
        cluster.start(only=["ledger"])
    r, _ = _signed_post(compute, f"/v1/queries/{UNKNOWN_QID}/decrypt", sk, "querier")
    assert r.status_code == 404, r.text
