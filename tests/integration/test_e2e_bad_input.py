"""Bad input to every running service (ledger, compute node, provider node) of the shared
cluster: malformed JSON, wrong types, oversized bodies, unknown or malformed query ids,
unauthenticated, wrongly signed, wrong-role and replayed requests.  Each answer is a 4xx
with a JSON reason -- never a 500 -- and every process is still alive afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from statledger.nodes.auth import sign_request
from statledger.nodes.config import DEFAULT_MAX_BODY

UNKNOWN_QID = "ab" * 32
SERVICES = ("ledger", "compute-1", "hospital-a")


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as c:
        yield c


def _send(c: Any, http: httpx.Client, target: str, path: str, body: bytes = b"", *,
          as_party: str | None = "querier", method: str = "POST",
          headers: dict[str, str] | None = None) -> httpx.Response:
    """One request, signed as ``as_party`` (``None``: unsigned)."""
    h = {"content-type": "application/json", **(headers or {})}
    if as_party is not None:
        h.update(sign_request(c.signing_key(as_party), as_party, method, path, body,
                              recipient=target))
    return http.request(method, c.url(target) + path, content=body, headers=h)


def _assert_4xx(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    if statuses:
        assert r.status_code in statuses, (r.request.url, r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body["error"], str) and body["error"], body
    return body


# -- the routes that take a query id -------------------------------------------------------
QUERY_ROUTES = [
    ("compute-1", "/v1/queries/{qid}/decrypt"),
    ("compute-1", "/v1/queries/{qid}/noise/commit"),
    ("compute-1", "/v1/queries/{qid}/noise/coin"),
    ("hospital-a", "/v1/queries/{qid}/contribute"),
    ("hospital-a", "/v1/queries/{qid}/endorse"),
]


#: A well-formed commit request body (the noise parameters the querier chose): the unknown
#: query, not the body, is what the node answers about.
COMMIT_BODY = json.dumps({"params": {"n_nodes": 3, "threshold": 3, "entries": 1,
                                     "summands": 34, "summand_bits": 1,
                                     "uniform_bits": 0}}).encode()


@pytest.mark.parametrize(("target", "route"), QUERY_ROUTES)
def test_unknown_query_id_404(e2e_cluster: Any, http: httpx.Client, target: str,
                              route: str) -> None:
    req = COMMIT_BODY if route.endswith("/noise/commit") else b""
    body = _assert_4xx(_send(e2e_cluster, http, target, route.format(qid=UNKNOWN_QID), req),
                       404)
    assert UNKNOWN_QID in body["error"]


@pytest.mark.parametrize("body", [
    b"", b"{not json", b"[]", b"{}", b'{"params": 5}', b'{"params": []}',
    b'{"params": {}, "extra": 1}', b'"params"', b"\xff\xfe\x00", b"1e400",
])
def test_noise_commit_bad_bodies_4xx(e2e_cluster: Any, http: httpx.Client,
                                     body: bytes) -> None:
    _assert_4xx(_send(e2e_cluster, http, "compute-1",
                      f"/v1/queries/{UNKNOWN_QID}/noise/commit", body))


@pytest.mark.parametrize("qid", ["x", "AB" * 32, "ab" * 33, "%2e%2e", "ab%3Fstart=0",
                                 "a" * 5000, "%00", "ab%2F" + "ab" * 30])
@pytest.mark.parametrize(("target", "route"), QUERY_ROUTES)
def test_malformed_query_id_4xx(e2e_cluster: Any, http: httpx.Client, target: str,
                                route: str, qid: str) -> None:
    _assert_4xx(_send(e2e_cluster, http, target, route.format(qid=qid)))


def test_ledger_unknown_query_404(e2e_cluster: Any, http: httpx.Client) -> None:
    r = http.get(e2e_cluster.url("ledger") + f"/v1/queries/{UNKNOWN_QID}/entries")
    assert UNKNOWN_QID in _assert_4xx(r, 404)["error"]


@pytest.mark.parametrize("body", [
    b"{not json", b"[1, 2", b'{"dataset": 5}', b'{"dataset": ["diabetes"]}',
    b'{"dataset": "diabetes", "extra": 1}', b'"diabetes"', b"\xff\xfe\x00", b"[]",
    b'{"dataset": "no-such-dataset"}', b'{"dataset": null, "x": {}}', b"1e400",
])
def test_provider_contribute_bad_bodies_4xx(e2e_cluster: Any, http: httpx.Client,
                                            body: bytes) -> None:
    _assert_4xx(_send(e2e_cluster, http, "hospital-a",
                      f"/v1/queries/{UNKNOWN_QID}/contribute", body))


@pytest.mark.parametrize("body", [
    b"{not json", b'{"checkpoint": 5, "old_size": 0}', b'{"checkpoint": "x", "old_size": -1}',
    b'{"checkpoint": "x", "old_size": "0"}', b'{"checkpoint": "x", "old_size": 0, "z": 1}',
    b'{"checkpoint": "not a note", "old_size": 0, "proof": ["zz"]}',
    b'{"checkpoint": "not a note", "old_size": 0}', b"[]",
])
def test_compute_witness_bad_bodies_4xx(e2e_cluster: Any, http: httpx.Client,
                                        body: bytes) -> None:
    _assert_4xx(_send(e2e_cluster, http, "compute-1", "/v1/witness/cosign", body,
                      as_party=None))


@pytest.mark.parametrize("body", [b"{not json", b'{"v": "1", "kind": "query"}', b"[]",
                                  b'{"v": 1, "kind": "submission", "query_id": 5}'])
def test_ledger_bad_entries_400(e2e_cluster: Any, http: httpx.Client, body: bytes) -> None:
    _assert_4xx(_send(e2e_cluster, http, "ledger", "/v1/entries", body), 400)


@pytest.mark.parametrize("target", SERVICES)
def test_oversized_body_413(e2e_cluster: Any, http: httpx.Client, target: str) -> None:
    path = ("/v1/entries" if target == "ledger" else "/v1/witness/cosign"
            if target == "compute-1" else f"/v1/queries/{UNKNOWN_QID}/contribute")
    body = b" " * (DEFAULT_MAX_BODY + 1)
    r = http.post(e2e_cluster.url(target) + path, content=body,
                  headers={"content-type": "application/json"})
    assert "exceeds the limit" in _assert_4xx(r, 413)["error"]


def _authed_route(target: str) -> str:
    return {"ledger": "/v1/checkpoint", "compute-1": f"/v1/queries/{UNKNOWN_QID}/decrypt",
            "hospital-a": f"/v1/queries/{UNKNOWN_QID}/endorse"}[target]


@pytest.mark.parametrize("target", SERVICES)
def test_unauthenticated_401(e2e_cluster: Any, http: httpx.Client, target: str) -> None:
    _assert_4xx(_send(e2e_cluster, http, target, _authed_route(target), as_party=None), 401)


@pytest.mark.parametrize("target", SERVICES)
def test_wrong_signer_and_unknown_party_401(e2e_cluster: Any, http: httpx.Client,
                                            target: str) -> None:
    path = _authed_route(target)
    h = sign_request(e2e_cluster.signing_key("hospital-b"), "querier", "POST", path, b"",
                     recipient=target)
    _assert_4xx(_send(e2e_cluster, http, target, path, as_party=None, headers=h), 401)
    h = sign_request(e2e_cluster.signing_key("querier"), "mallory", "POST", path, b"",
                     recipient=target)
    _assert_4xx(_send(e2e_cluster, http, target, path, as_party=None, headers=h), 401)
    h = sign_request(e2e_cluster.signing_key("querier"), "querier", "POST", path, b"",
                     recipient=target, now=1_000_000)
    _assert_4xx(_send(e2e_cluster, http, target, path, as_party=None, headers=h), 401)


@pytest.mark.parametrize("target", ["compute-1", "hospital-a"])
def test_wrong_role_403(e2e_cluster: Any, http: httpx.Client, target: str) -> None:
    # a data owner may not ask a compute node to decrypt, nor another owner to contribute
    _assert_4xx(_send(e2e_cluster, http, target, _authed_route(target),
                      as_party="hospital-b"), 403)


@pytest.mark.parametrize("target", SERVICES)
def test_replayed_request_409(e2e_cluster: Any, http: httpx.Client, target: str) -> None:
    path = _authed_route(target)
    h = sign_request(e2e_cluster.signing_key("querier"), "querier", "POST", path, b"",
                     recipient=target)
    first = _send(e2e_cluster, http, target, path, as_party=None, headers=h)
    assert first.status_code != 409
    again = _send(e2e_cluster, http, target, path, as_party=None, headers=h)
    assert "replay" in _assert_4xx(again, 409)["error"]


def test_every_process_still_alive(e2e_cluster: Any, http: httpx.Client) -> None:
    for pid in ("ledger", "compute-1", "compute-2", "compute-3", "hospital-a", "hospital-b",
                "hospital-c", "hospital-d"):
        assert e2e_cluster.alive(pid), pid
        r = http.get(e2e_cluster.url(pid) + "/v1/health")
        assert r.status_code == 200 and r.json()["party"] == pid
    for pid in SERVICES:
        log = open(e2e_cluster.layout.parties[pid].log_path, encoding="utf-8",
                   errors="replace").read()
        assert "internal error" not in log, log[-2000:]
