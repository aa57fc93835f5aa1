"""The FastAPI scaffolding every statledger service shares.

:func:`create_app` returns a FastAPI app with

* JSON error bodies ``{"error": reason, "party": blamed-or-null, "step": ..., "node": me}``;
* the error tree mapped to statuses: ``MalformedError`` -> 400, ``VerificationError`` -> 422
  (with its ``step`` and ``party``), ``DecryptionError`` -> 422, ``PolicyError`` -> 403,
  ``ProtocolError`` -> 409, :class:`NotFoundError` -> 404, authentication errors -> 401/403/409
  (:mod:`statledger.nodes.auth`), request validation errors -> 400 naming the field, oversized
  bodies -> 413 (declared or chunked); a peer this node needs (the ledger) that cannot be
  reached -> 503, one that answers with a server error -> 502, both with ``Retry-After``
  (:class:`UnavailableError` too); a client that went away before its body was in -> 408,
  not logged as a bug; anything else is a bug: logged with its traceback and answered with
  a bare 500;
* a request-body limit enforced while the body streams in (``Content-Length`` checked first);
* ``GET /v1/health`` -> ``{"status": "ok", "party": ..., "role": ...}``;
* an OpenAPI document that tells the truth (``GET /openapi.json``): every answer a route can
  give is documented with the error body schema (:class:`ErrorBody`), the ones every route
  can give (400: a malformed ``Content-Length`` or parameter, 413: a body over the limit)
  added to each operation, the rest declared by each route through :func:`documented`
  (``responses=``); FastAPI's ``422`` for invalid parameters, which this app answers 400,
  is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from statledger.nodes.auth import AuthError
from statledger.nodes.config import DEFAULT_MAX_BODY
from statledger.nodes.http import RemoteError, UnreachableError
from statledger.proofs.errors import (
    DecryptionError,
    MalformedError,
    PolicyError,
    ProtocolError,
    StatledgerError,
    VerificationError,
)

__all__ = [
    "ErrorBody",
    "SIGNED",
    "documented",
    "NotFoundError",
    "BodyTooLargeError",
    "UnavailableError",
    "RETRY_AFTER",
    "BodyLimitMiddleware",
    "create_app",
    "error_body",
]

log = logging.getLogger("statledger.nodes")


class NotFoundError(StatledgerError):
    """An unknown id (query, entry index, party) -> 404."""


class BodyTooLargeError(StatledgerError):
    """A request body over the service's limit -> 413."""


#: Seconds a client is told to wait (``Retry-After``) when a peer of this node is down.
RETRY_AFTER = 5


class UnavailableError(StatledgerError):
    """This node cannot answer now because something it depends on (the ledger) is not
    answering -> 503 with ``Retry-After``."""

    def __init__(self, reason: str, *, retry_after: int = RETRY_AFTER) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class ErrorBody(BaseModel):
    """Every error answer's JSON body (:func:`error_body`): the reason, the party it blames
    (or null), the node that answers, the verification step when one failed; some answers
    add fields (``fields`` of a 400 for invalid parameters, ``size`` of a witness's 409,
    ``cosigners``/``failures`` of a checkpoint's 503)."""

    model_config = ConfigDict(extra="allow")
    error: str
    party: str | None
    node: str | None
    step: str | None = None


_RETRY_AFTER_HEADER = {"Retry-After": {
    "description": "seconds after which the request may succeed",
    "schema": {"type": "integer", "minimum": 1}}}

_STATUS_TEXT: dict[int, str] = {
    400: "malformed request: a parameter, header or body that does not parse (the reason "
         "names it)",
    401: "unauthenticated: a missing or malformed signature header, an unknown party, a bad "
         "signature or a stale time",
    403: "refused by policy: a role or party that may not do this, a request signed for "
         "another party",
    404: "unknown: no such query, entry, party or checkpoint",
    408: "the request body did not arrive",
    409: "conflict: a replayed nonce, or an entry out of order or already there",
    413: "request body over the node's limit",
    422: "a proof or signature that does not verify (names the step and the party)",
    502: "a peer this node needs (the ledger) answered with a server error",
    503: "this node cannot answer now (its ledger is not answering, or it is busy)",
}


def documented(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that answers ``codes`` (with :class:`ErrorBody`); 502 and
    503 carry ``Retry-After``.  ``descriptions`` (``d409="..."``) say more for one code."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody,
                                 "description": descriptions.get(f"d{code}",
                                                                 _STATUS_TEXT[code])}
        if code in (502, 503):
            entry["headers"] = _RETRY_AFTER_HEADER
        out[code] = entry
    return out


#: The answers of a route that requires a signed request (:mod:`statledger.nodes.auth`).
SIGNED = (401, 403, 409)

#: The answers every route can give (:class:`BodyLimitMiddleware`, parameter validation).
_EVERY_ROUTE = (400, 413)


def _truthful_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI of ``app``, with this app's error answers (see the docstring)."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    comps.setdefault("ErrorBody", ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"))
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            default_422 = responses.get("422", {})
            if "HTTPValidationError" in str(default_422):
                del responses["422"]  # this app answers invalid parameters 400
            for code, answer in responses.items():
                if int(code) >= 400 and "ErrorBody" in str(answer):
                    # errors are JSON whatever the route's media type (GET /v1/checkpoint)
                    answer["content"] = {"application/json": {"schema": ref}}
            for code in _EVERY_ROUTE:
                responses.setdefault(str(code), {
                    "description": _STATUS_TEXT[code],
                    "content": {"application/json": {"schema": ref}}})
    used = str(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if name in comps and name not in used:
            del comps[name]
    return schema


def error_body(reason: str, *, node: str | None, party: str | None = None,
               step: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"error": reason, "party": party, "node": node}
    if step is not None:
        body["step"] = step
    body.update(extra)
    return body


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse bodies over ``max_body`` bytes with 413.

    A declared ``Content-Length`` over the limit is refused before reading anything.  A body
    that streams past the limit (chunked) raises :class:`BodyTooLargeError` inside the app;
    whatever the app makes of it (FastAPI turns a failed body read of a route with a body
    model into a 400), the answer it starts is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_body: int, node: str | None) -> None:
        self.app = app
        self.max_body = max_body
        self.node = node

    def _too_large(self) -> JSONResponse:
        return JSONResponse(
            error_body(f"request body exceeds the limit of {self.max_body} bytes",
                       node=self.node),
            status_code=413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body:
                    reason = (
                        f"request body of {declared} bytes exceeds the limit of "
                        f"{self.max_body} bytes"
                        if declared >= 0
                        else "malformed Content-Length"
                    )
                    status = 413 if declared >= 0 else 400
                    resp = JSONResponse(error_body(reason, node=self.node), status_code=status)
                    await resp(scope, receive, send)
                    return
        seen = 0
        limit = self.max_body
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise BodyTooLargeError(
                        f"request body exceeds the limit of {limit} bytes"
                    )
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if started:  # pragma: no cover - the app started twice
                    return
                started = True
                if exceeded:
                    await self._too_large()(scope, receive, send)
                    return
            elif exceeded and message["type"] == "http.response.body":
                return  # the body of the answer the 413 replaced
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLargeError:
            if started:
                raise
            await self._too_large()(scope, receive, send)


def _loc(loc: Any) -> str:
    parts = [str(x) for x in loc if x not in ("body",)] if isinstance(loc, list | tuple) else []
    return ".".join(parts) or "body"


def create_app(
    *,
    title: str,
    party_id: str | None,
    role: str,
    max_body: int = DEFAULT_MAX_BODY,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app with statledger's error handling, body limit and health endpoint."""
    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.party_id = party_id
    app.state.role = role
    node = party_id

    def reply(status: int, reason: str, **kw: Any) -> JSONResponse:
        return JSONResponse(error_body(reason, node=node, **kw), status_code=status)

    async def on_malformed(_: Request, exc: Exception) -> JSONResponse:
        return reply(400, str(exc))

    async def on_verification(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, VerificationError):
            return reply(422, exc.reason, party=exc.party, step=exc.step)
        return reply(422, str(exc))

    async def on_decryption(_: Request, exc: Exception) -> JSONResponse:
        return reply(422, str(exc))

    async def on_policy(_: Request, exc: Exception) -> JSONResponse:
        return reply(403, str(exc))

    async def on_protocol(_: Request, exc: Exception) -> JSONResponse:
        return reply(409, str(exc))

    async def on_not_found(_: Request, exc: Exception) -> JSONResponse:
        return reply(404, str(exc))

    async def on_too_large(_: Request, exc: Exception) -> JSONResponse:
        return reply(413, str(exc))

    async def on_auth(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, AuthError):
            return reply(exc.status, exc.reason, party=exc.party)
        return reply(401, str(exc))

    async def on_unavailable(_: Request, exc: Exception) -> JSONResponse:
        after = exc.retry_after if isinstance(exc, UnavailableError) else RETRY_AFTER
        return JSONResponse(error_body(str(exc), node=node), status_code=503,
                            headers={"retry-after": str(after)})

    async def on_remote(_: Request, exc: Exception) -> JSONResponse:
        # A peer this node called (the ledger) failed.  Say so without its address.
        after = RETRY_AFTER
        if isinstance(exc, UnreachableError):
            status, reason = 503, f"a peer of this node is unreachable: {exc.reason}"
            after = exc.retry_after or RETRY_AFTER
        elif isinstance(exc, RemoteError) and (exc.status is None or exc.status >= 500):
            status = 502
            reason = f"a peer of this node failed (HTTP {exc.status}): {exc.reason}"
        else:
            return reply(400, str(exc))
        return JSONResponse(error_body(reason, node=node), status_code=status,
                            headers={"retry-after": str(after)})

    async def on_disconnect(request: Request, _: Exception) -> JSONResponse:
        # The client went away (or was cut off by the server's request deadline) before its
        # body was in: nobody reads this answer, and it is not a bug.
        log.debug("client gone before its request body was in: %s %s", request.method,
                  request.url.path)
        return reply(408, "request body not received")

    async def on_other_statledger(_: Request, exc: Exception) -> JSONResponse:
        return reply(400, str(exc))

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        fields = []
        for e in errors:
            fields.append({"field": _loc(e.get("loc", ())), "message": str(e.get("msg", ""))})
        if fields:
            reason = "invalid request: " + "; ".join(f"{f['field']}: {f['message']}"
                                                     for f in fields)
        else:
            reason = "invalid request"
        return reply(400, reason, fields=fields)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, StarletteHTTPException):
            return JSONResponse(
                error_body(str(exc.detail), node=node),
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return reply(500, "internal error")

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return reply(500, "internal error")

    # Specific subclasses before their parents: Starlette looks handlers up along the MRO,
    # so registration order does not matter, but keep it readable.
    app.add_exception_handler(AuthError, on_auth)
    app.add_exception_handler(MalformedError, on_malformed)
    app.add_exception_handler(VerificationError, on_verification)
    app.add_exception_handler(DecryptionError, on_decryption)
    app.add_exception_handler(PolicyError, on_policy)
    app.add_exception_handler(ProtocolError, on_protocol)
    app.add_exception_handler(NotFoundError, on_not_found)
    app.add_exception_handler(BodyTooLargeError, on_too_large)
    app.add_exception_handler(UnavailableError, on_unavailable)
    app.add_exception_handler(RemoteError, on_remote)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
    app.add_exception_handler(StatledgerError, on_other_statledger)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)
    app.add_middleware(BodyLimitMiddleware, max_body=max_body, node=node)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _truthful_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "party": party_id, "role": role}

    return app
