"""Adversary: a party replays a signed request it received to another party.

Real processes (the session's e2e cluster).  Signed requests name their recipient
(``statledger/http/v2``, nodes/auth.py): a request the querier signed for compute-1 — captured
on the wire while the querier runs a real query, or built with the same signing function —
is refused by compute-2 with 401 naming the wrong recipient, although compute-2 has never
seen its nonce, and refused by compute-1 itself as a replay (409).  The same holds between
data owners.  Twins: the identical request signed for compute-2 is accepted there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from statledger.nodes.auth import HEADER_PARTY, sign_request
from statledger.protocol.query import QuerySpec

# A query of its own (min_cell_size makes its id differ from the other e2e tests' queries).
SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"], "bounds": {"bmi": [15.0, 50.0]},
        "max_rows": 1000, "min_cell_size": 13}  # a spec no other e2e test asks


@dataclass
class Captured:
    """One request as the querier sent it, and the status its recipient answered."""

    url: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Run:
    query_id: str
    wire: list[Captured]

    def sent_to(self, base_url: str, suffix: str) -> Captured:
        """The last request the querier sent to ``base_url`` whose path ends in ``suffix``."""
        hits = [c for c in self.wire if c.url.startswith(base_url + "/")
                and c.path.endswith(suffix)]
        assert hits, f"the querier sent no {suffix} request to {base_url}"
        return hits[-1]


@pytest.fixture(scope="module")
def run(e2e_querier: Any) -> Iterator[Run]:
    """Run one real query while recording every request the querier's HTTP clients send."""
    wire: list[Captured] = []
    real_send = httpx.Client.send

    def recording_send(self: httpx.Client, request: httpx.Request, **kw: Any) -> httpx.Response:
        resp = real_send(self, request, **kw)
        wire.append(Captured(str(request.url), request.method,
                             request.url.raw_path.decode("ascii"), dict(request.headers),
                             request.content, resp.status_code))
        return resp

    spec = QuerySpec.parse(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.Client, "send", recording_send)
        e2e_querier.run(spec, datasets="diabetes")
    yield Run(spec.query_id_for("querier"), wire)


def _replay(url: str, c: Captured) -> httpx.Response:
    """Send ``c``'s exact method, path, headers and body to the service at ``url``."""
    headers = {k: v for k, v in c.headers.items() if k.lower() not in ("host", "content-length")}
    return httpx.request(c.method, url + c.path, content=c.body, headers=headers, timeout=60)


def _assert_wrong_recipient(r: httpx.Response, node: str) -> None:
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error"].startswith(f"bad request signature for a request to {node!r}"), body
    assert body["party"] == "querier" and body["node"] == node


def test_captured_decrypt_request_is_refused_by_another_compute_node(
        e2e_cluster: Any, run: Run) -> None:
    c = run.sent_to(e2e_cluster.url("compute-1"), f"/v1/queries/{run.query_id}/decrypt")
    assert c.status == 200 and c.headers[HEADER_PARTY.lower()] == "querier"
    for other in ("compute-2", "compute-3"):
        _assert_wrong_recipient(_replay(e2e_cluster.url(other), c), other)
    # at its recipient the captured request is a replay
    r = _replay(e2e_cluster.url("compute-1"), c)
    assert r.status_code == 409 and "replayed" in r.json()["error"], r.text


def test_captured_contribute_request_is_refused_by_another_data_owner(
        e2e_cluster: Any, run: Run) -> None:
    c = run.sent_to(e2e_cluster.url("hospital-a"), f"/v1/queries/{run.query_id}/contribute")
    assert c.status == 200
    _assert_wrong_recipient(_replay(e2e_cluster.url("hospital-b"), c), "hospital-b")
    r = _replay(e2e_cluster.url("hospital-a"), c)
    assert r.status_code == 409 and "replayed" in r.json()["error"], r.text


@pytest.mark.parametrize("first,other,action", [
    ("compute-1", "compute-2", "decrypt"),
    ("hospital-a", "hospital-c", "contribute"),
])
def test_signed_request_accepted_once_by_its_recipient_only(
        e2e_cluster: Any, run: Run, first: str, other: str, action: str) -> None:
    path = f"/v1/queries/{run.query_id}/{action}"
    body = b""
    sk = e2e_cluster.signing_key("querier")
    h = sign_request(sk, "querier", "POST", path, body, recipient=first)
    # accepted by its recipient (the query is done: the node answers with its log index)
    r = httpx.post(e2e_cluster.url(first) + path, content=body, headers=h, timeout=60)
    assert r.status_code == 200, r.text
    # the exact headers and body, replayed to another party of the same role
    r = httpx.post(e2e_cluster.url(other) + path, content=body, headers=h, timeout=60)
    _assert_wrong_recipient(r, other)
    # and again to its recipient: a replay
    r = httpx.post(e2e_cluster.url(first) + path, content=body, headers=h, timeout=60)
    assert r.status_code == 409 and "replayed" in r.json()["error"], r.text
    # twin: the same request signed for the other party is accepted there
    h2 = sign_request(sk, "querier", "POST", path, body, recipient=other)
    r = httpx.post(e2e_cluster.url(other) + path, content=body, headers=h2, timeout=60)
    assert r.status_code == 200, r.text


def test_request_signed_for_the_ledger_is_refused_by_a_compute_node(
        e2e_cluster: Any, run: Run) -> None:
    path = f"/v1/queries/{run.query_id}/decrypt"
    h = sign_request(e2e_cluster.signing_key("querier"), "querier", "POST", path, b"",
                     recipient="ledger")
    r = httpx.post(e2e_cluster.url("compute-1") + path, content=b"", headers=h, timeout=60)
    _assert_wrong_recipient(r, "compute-1")
