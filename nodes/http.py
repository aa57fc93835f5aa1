"""HTTP clients that sign every request with the sender's Ed25519 key
(:mod:`statledger.nodes.auth`).

``SignedClient`` (sync) and ``AsyncSignedClient`` (async) wrap httpx, one client per peer.
They

* sign every request for the peer's party id, ``target`` (required with a key): the
  signature covers it, so only that party accepts the request, and a peer cannot replay it
  to another party;
* sign each attempt afresh (new time and nonce), so a retry is never refused as a replay;
* retry only when the connection could not be made (``ConnectError``/``ConnectTimeout``):
  the request never reached the server, so retrying cannot apply it twice;
* raise :class:`RemoteError` for any non-2xx answer, carrying the remote's JSON ``error``
  reason, ``party``/``step``/``node`` fields and the status; :class:`UnreachableError` when
  the peer cannot be reached or times out.

With ``signing_key=None`` the clients send plain requests (public read endpoints); ``target``
is then optional and unused.
"""

from __future__ import annotations

import asyncio
import json as _json
import time
from typing import TYPE_CHECKING, Any, overload

import httpx

from statledger.nodes.auth import check_party_id, sign_request
from statledger.proofs.errors import StatledgerError

if TYPE_CHECKING:
    from statledger.proofs.signatures import SigningKey

__all__ = ["RemoteError", "UnreachableError", "SignedClient", "AsyncSignedClient"]

DEFAULT_TIMEOUT = 30.0


class RemoteError(StatledgerError):
    """A non-2xx answer from a peer: ``status``, the remote's ``reason`` and its JSON body."""

    def __init__(self, status: int | None, reason: str, *, url: str = "",
                 body: dict[str, Any] | None = None) -> None:
        self.status = status
        self.reason = reason
        self.url = url
        self.body = body or {}
        self.party: str | None = self.body.get("party")
        self.step: str | None = self.body.get("step")
        self.node: str | None = self.body.get("node")
        where = f" from {url}" if url else ""
        # A refusal names the verification step and the party it blames (nodes/app.py).
        blame = ", ".join(f"{k}: {v}" for k, v in (("step", self.step), ("party", self.party))
                          if v)
        detail = f"{reason} ({blame})" if blame else reason
        super().__init__(f"HTTP {status}{where}: {detail}" if status else f"{url}: {detail}")


class UnreachableError(RemoteError):
    """The peer could not be reached (connection refused, DNS, timeout)."""

    def __init__(self, reason: str, *, url: str = "") -> None:
        super().__init__(None, reason, url=url)


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    body: dict[str, Any] = {}
    reason = resp.reason_phrase or "error"
    try:
        parsed = resp.json()
        if isinstance(parsed, dict):
            body = parsed
            if isinstance(parsed.get("error"), str):
                reason = parsed["error"]
    except (ValueError, _json.JSONDecodeError):
        text = resp.text.strip()
        if text:
            reason = text[:500]
    raise RemoteError(resp.status_code, reason, url=str(resp.request.url), body=body)


def _decode(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return resp.json()
    return resp.text


class _Base:
    def __init__(self, base_url: str, party_id: str | None, signing_key: SigningKey | None,
                 *, target: str | None, retries: int = 3, backoff: float = 0.2) -> None:
        if (party_id is None) != (signing_key is None):
            raise ValueError("party_id and signing_key go together")
        if signing_key is not None and target is None:
            raise ValueError("a signed client needs target=: the party id of the peer at "
                             f"{base_url} (requests are signed for that party only)")
        if party_id is not None:
            check_party_id(party_id, "sender")
        if target is not None:
            check_party_id(target, "target")
        self.base_url = base_url.rstrip("/")
        self.party_id = party_id
        self.signing_key = signing_key
        self.target = target
        self.retries = retries
        self.backoff = backoff

    def _sign(self, req: httpx.Request) -> None:
        if self.signing_key is None or self.party_id is None or self.target is None:
            return
        path = req.url.raw_path.decode("ascii")
        headers = sign_request(self.signing_key, self.party_id, req.method, path,
                               req.content, recipient=self.target)
        req.headers.update(headers)


class SignedClient(_Base):
    """A synchronous signed client for one peer: ``base_url``, whose party id is ``target``.

    ``SignedClient(url, party_id, signing_key, target=peer_id)`` signs as ``party_id`` for
    ``peer_id``; ``SignedClient(url)`` sends plain requests."""

    @overload
    def __init__(self, base_url: str, party_id: None = None, signing_key: None = None, *,
                 target: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.2,
                 transport: httpx.BaseTransport | None = None) -> None: ...

    @overload
    def __init__(self, base_url: str, party_id: str, signing_key: SigningKey, *,
                 target: str, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.2, transport: httpx.BaseTransport | None = None) -> None: ...

    def __init__(self, base_url: str, party_id: str | None = None,
                 signing_key: SigningKey | None = None, *, target: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3, backoff: float = 0.2,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, party_id, signing_key, target=target, retries=retries,
                         backoff=backoff)
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                    transport=transport)

    def send(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
             params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """Send one signed request and return the (2xx) response; raise otherwise."""
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            req = self._client.build_request(method, path, json=json, content=content,
                                             params=params, headers=headers)
            self._sign(req)
            try:
                resp = self._client.send(req)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
                    continue
                raise UnreachableError(f"cannot connect ({exc})", url=url) from None
            except httpx.TimeoutException as exc:
                raise UnreachableError(f"timed out ({type(exc).__name__})", url=url) from None
            except httpx.TransportError as exc:
                raise UnreachableError(f"transport error ({exc})", url=url) from None
            _raise_for(resp)
            return resp
        raise UnreachableError("no attempt made", url=url)  # pragma: no cover (retries >= 0)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send and decode the body (JSON -> Python, text -> str, empty -> None)."""
        return _decode(self.send(method, path, **kw))

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None, content: bytes | None = None,
             params: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=json, content=content, params=params)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SignedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSignedClient(_Base):
    """The asyncio twin of :class:`SignedClient` (for use inside FastAPI handlers)."""

    @overload
    def __init__(self, base_url: str, party_id: None = None, signing_key: None = None, *,
                 target: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = 3, backoff: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None: ...

    @overload
    def __init__(self, base_url: str, party_id: str, signing_key: SigningKey, *,
                 target: str, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None: ...

    def __init__(self, base_url: str, party_id: str | None = None,
                 signing_key: SigningKey | None = None, *, target: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3, backoff: float = 0.2,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, party_id, signing_key, target=target, retries=retries,
                         backoff=backoff)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                         transport=transport)

    async def send(self, method: str, path: str, *, json: Any = None,
                   content: bytes | None = None, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            req = self._client.build_request(method, path, json=json, content=content,
                                             params=params, headers=headers)
            self._sign(req)
            try:
                resp = await self._client.send(req)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff * (2**attempt))
                    continue
                raise UnreachableError(f"cannot connect ({exc})", url=url) from None
            except httpx.TimeoutException as exc:
                raise UnreachableError(f"timed out ({type(exc).__name__})", url=url) from None
            except httpx.TransportError as exc:
                raise UnreachableError(f"transport error ({exc})", url=url) from None
            _raise_for(resp)
            return resp
        raise UnreachableError("no attempt made", url=url)  # pragma: no cover

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        return _decode(await self.send(method, path, **kw))

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, *, json: Any = None, content: bytes | None = None,
                   params: dict[str, Any] | None = None) -> Any:
        return await self.request("POST", path, json=json, content=content, params=params)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncSignedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
