"""The OpenAPI of each service (ledger, compute, provider) against its routes, in process.

* Static: every route is an operation with a 2xx answer; every operation documents 400 and
  413 (the body limit and parameter checks apply to every route); a route that requires a
  signed request documents 401/403/409; a compute or provider query route documents 502
  and 503 (its ledger) with ``Retry-After``; every error answer is JSON with the
  ``ErrorBody`` schema; FastAPI's 422 "Validation Error" (this app answers 400) is gone;
  ``POST /v1/entries`` declares its binary CBOR body; ``GET /v1/checkpoint`` returns
  text/plain.  A route added without its answers makes the checker fail (reject twins).
* Dynamic: requests that produce 400, 401, 404 and 413 on the real apps answer only
  statuses their operation documents, with a body that has ErrorBody's fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from statledger.nodes import compute_service, provider_service
from statledger.nodes.app import SIGNED, create_app, documented
from statledger.nodes.auth import Authenticator, NonceStore, sign_request
from statledger.nodes.config import load_config
from statledger.nodes.demo import provider_datasets
from statledger.nodes.launcher import init_cluster
from statledger.nodes.ledger_service import create_ledger_app
from statledger.proofs.signatures import SigningKey

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FastAPI]]:
    tmp = tmp_path_factory.mktemp("openapi")
    datasets = provider_datasets()
    first = sorted(datasets)[0]
    layout = init_cluster(tmp, n_compute=1, providers={first: datasets[first]},
                          queriers=["querier"])
    yield {
        "ledger": create_ledger_app(load_config(layout.ledger.config_path, role="ledger")),
        "compute": compute_service.create_app(
            load_config(layout.compute[0].config_path, role="compute"), ceremony_loop=False),
        "provider": provider_service.create_app(
            load_config(layout.providers[0].config_path, role="provider")),
    }


def _signed(route: APIRoute) -> bool:
    """Whether the route depends on :meth:`Authenticator.require` (a signed request)."""
    todo = [route.dependant]
    while todo:
        dep = todo.pop()
        call = getattr(dep, "call", None)
        if call is not None and "Authenticator.require" in getattr(call, "__qualname__", ""):
            return True
        todo.extend(dep.dependencies)
    return False


def problems(app: FastAPI, *, party_node: bool) -> list[str]:
    """What the app's OpenAPI leaves out or gets wrong about its routes (empty: none)."""
    schema = app.openapi()
    out: list[str] = []
    if "ErrorBody" not in schema.get("components", {}).get("schemas", {}):
        out.append("no ErrorBody schema")
    if "HTTPValidationError" in str(schema):
        out.append("FastAPI's 422 Validation Error is documented (this app answers 400)")
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            name = f"{method} {route.path}"
            op = schema["paths"].get(route.path, {}).get(method.lower())
            if op is None:
                out.append(f"{name}: not in the OpenAPI")
                continue
            responses: dict[str, Any] = op.get("responses", {})
            if not any(c.startswith("2") for c in responses):
                out.append(f"{name}: no 2xx answer")
            want = {"400", "413"}
            if _signed(route):
                want |= {str(c) for c in SIGNED}
                if party_node:
                    want |= {"502", "503"}
            for code in sorted(want - set(responses)):
                out.append(f"{name}: {code} not documented")
            for code, answer in responses.items():
                if int(code) < 400:
                    continue
                content = answer.get("content", {})
                if content != {"application/json": {"schema": ERROR_REF}}:
                    out.append(f"{name}: {code} is not JSON ErrorBody ({content})")
                if code in ("502", "503") and "Retry-After" not in answer.get("headers", {}):
                    out.append(f"{name}: {code} does not declare Retry-After")
    return out


def test_every_route_documents_its_answers(apps: dict[str, FastAPI]) -> None:
    for name, app in apps.items():
        assert problems(app, party_node=name != "ledger") == [], name


def test_every_service_has_its_routes(apps: dict[str, FastAPI]) -> None:
    paths = {n: set(a.openapi()["paths"]) for n, a in apps.items()}
    assert {"/v1/entries", "/v1/checkpoint", "/v1/membership", "/v1/setup",
            "/v1/bundles/{index}", "/v1/health"} <= paths["ledger"]
    assert {"/v1/queries/{query_id}/decrypt", "/v1/queries/{query_id}/noise/commit",
            "/v1/queries/{query_id}/noise/coin", "/v1/witness/cosign"} <= paths["compute"]
    assert {"/v1/queries/{query_id}/contribute",
            "/v1/queries/{query_id}/endorse"} <= paths["provider"]


def test_request_bodies_and_content_types(apps: dict[str, FastAPI]) -> None:
    led = apps["ledger"].openapi()["paths"]
    body = led["/v1/entries"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/cbor"]["schema"] == {"type": "string",
                                                             "format": "binary"}
    assert "application/json" not in body["content"]
    assert led["/v1/membership"]["post"]["requestBody"]["required"] is True
    cp = led["/v1/checkpoint"]["get"]["responses"]
    assert list(cp["200"]["content"]) == ["text/plain"]
    assert cp["404"]["content"] == {"application/json": {"schema": ERROR_REF}}
    assert list(led["/v1/entries"]["get"]["responses"]["200"]["content"]) == ["application/json"]
    commit = apps["compute"].openapi()["paths"]["/v1/queries/{query_id}/noise/commit"]["post"]
    assert commit["requestBody"]["required"] is True
    cosign = apps["compute"].openapi()["paths"]["/v1/witness/cosign"]["post"]
    assert {"409", "422"} <= set(cosign["responses"])


# -- the checker can fail (reject twins) ------------------------------------------------------


def _toy(tmp_path: Path, responses: dict[int | str, dict[str, Any]] | None) -> FastAPI:
    app = create_app(title="t", party_id="node-x", role="compute")
    auth = Authenticator(lambda _p: None, NonceStore(tmp_path / "n.sqlite"), lambda _p: None,
                         recipient="node-x")

    @app.post("/v1/thing", responses=responses or {})
    async def thing(_party: str = Depends(auth.require())) -> dict[str, Any]:
        return {}

    return app


def test_checker_flags_an_undocumented_signed_route(tmp_path: Path) -> None:
    bad = problems(_toy(tmp_path, None), party_node=False)
    assert {"POST /v1/thing: 401 not documented", "POST /v1/thing: 403 not documented",
            "POST /v1/thing: 409 not documented"} <= set(bad)
    assert problems(_toy(tmp_path, documented(*SIGNED)), party_node=False) == []
    # a party node's signed route must also say what happens when its ledger is down
    assert "POST /v1/thing: 503 not documented" in problems(
        _toy(tmp_path, documented(*SIGNED)), party_node=True)
    assert problems(_toy(tmp_path, documented(*SIGNED, 502, 503)), party_node=True) == []


def test_checker_flags_a_non_json_error(tmp_path: Path) -> None:
    wrong = {404: {"description": "x", "content": {"text/plain": {"schema": {"type": "string"}}}}}
    app = _toy(tmp_path, {**documented(*SIGNED), **wrong})
    assert any("404 is not JSON ErrorBody" in p for p in problems(app, party_node=False))


# -- what the apps answer is what they document -----------------------------------------------

PROBES: list[tuple[str, str, str, dict[str, str], bytes]] = [
    # (service, method, path, headers, body)
    ("ledger", "POST", "/v1/entries", {}, b"\xa0"),                       # unsigned: 401
    ("ledger", "GET", "/v1/parties/nobody", {}, b""),                     # 404
    ("ledger", "GET", "/v1/entries?start=-1", {}, b""),                   # 400
    ("ledger", "GET", "/v1/proofs/inclusion?index=x", {}, b""),           # 400
    ("ledger", "GET", "/v1/bundles/999999", {}, b""),
    ("ledger", "GET", "/v1/setup", {}, b""),                              # 404
    ("ledger", "POST", "/v1/checkpoint", {"x-statledger-party": "a b"}, b""),
    ("ledger", "POST", "/v1/membership", {}, b"{}"),
    ("ledger", "GET", "/v1/health", {"content-type": "application/json"}, b"x" * (17 << 20)),
    ("compute", "POST", "/v1/queries/zz/decrypt", {}, b""),
    ("compute", "POST", "/v1/witness/cosign", {"content-type": "application/json"}, b"{}"),
    ("compute", "POST", "/v1/witness/cosign", {"content-type": "application/json"},
     b'{"checkpoint": "x", "old_size": -1}'),
    ("provider", "POST", "/v1/queries/zz/contribute", {}, b""),
    ("provider", "POST", "/v1/queries/zz/endorse", {}, b"x" * (17 << 20)),
]


@pytest.mark.parametrize(("service", "method", "path", "headers", "body"), PROBES,
                         ids=[f"{s}-{m}-{p}" for s, m, p, _, _ in PROBES])
def test_answers_are_documented(apps: dict[str, FastAPI], service: str, method: str,
                                path: str, headers: dict[str, str], body: bytes) -> None:
    app = apps[service]
    # no lifespan (no `with`): the apps stay open for the next probe
    client = TestClient(app, raise_server_exceptions=False)
    r = client.request(method, path, headers=headers, content=body or None)
    bare = path.split("?")[0]
    schema = app.openapi()["paths"]
    template = next(p for p in schema if _matches(p, bare))
    documented_codes = set(schema[template][method.lower()]["responses"])
    assert str(r.status_code) in documented_codes, (r.status_code, r.text)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        err = r.json()
        assert isinstance(err["error"], str) and err["error"]
        assert "party" in err and "node" in err


def _matches(template: str, path: str) -> bool:
    a, b = template.strip("/").split("/"), path.strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b,
                                                                               strict=True))


def test_a_party_node_without_its_ledger_answers_a_documented_503(
        apps: dict[str, FastAPI]) -> None:
    """No ledger runs here: the compute node cannot look the sender up -> 503 + Retry-After,
    as documented."""
    path = "/v1/queries/" + "0" * 64 + "/decrypt"
    headers = sign_request(SigningKey.generate(), "querier", "POST", path, b"",
                           recipient="compute-1")
    r = TestClient(apps["compute"], raise_server_exceptions=False).post(
        path, headers=headers, content=b"")
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    op = apps["compute"].openapi()["paths"]["/v1/queries/{query_id}/decrypt"]["post"]
    assert "Retry-After" in op["responses"]["503"]["headers"]
