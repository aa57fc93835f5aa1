"""HTTP clients that sign every request with the sender's Ed25519 key
(:mod:`statledger.nodes.auth`).

``SignedClient`` (sync) and ``AsyncSignedClient`` (async) wrap httpx, one client per peer.
They

* sign every request for the peer's party id, ``target`` (required with a key): the
  signature covers it, so only that party accepts the request, and a peer cannot replay it
  to another party;
* sign each attempt afresh (new time and nonce), so a retry is never refused as a replay;
* retry only when the connection could not be made (``ConnectError``/``ConnectTimeout``):
  the request never reached the server, so retrying cannot apply it twice; with
  ``busy_wait`` (sync client, default 30 s) also answers ``503`` carrying ``Retry-After``
  (the peer did nothing: it was busy, or its own ledger was down), sleeping what it asks
  (at most 5 s), for at most ``busy_wait`` seconds in all;
* bound every request: ``timeout`` per client, overridable per request; with ``breaker``
  seconds, a peer that timed out (connecting or answering) is not asked again for that long
  (every request meanwhile fails at once with :class:`UnreachableError`), so the callers
  of a frozen peer are answered in one timeout, not one timeout each;
* raise :class:`RemoteError` for any non-2xx answer, carrying the remote's JSON ``error``
  reason, ``party``/``step``/``node`` fields and the status; :class:`UnreachableError` when
  the peer cannot be reached or times out.

With ``signing_key=None`` the clients send plain requests (public read endpoints); ``target``
is then optional and unused.
"""

from __future__ import annotations

import asyncio
import functools
import json as _json
import ssl
import time
from typing import TYPE_CHECKING, Any, overload

import httpx

from statledger.nodes.auth import check_party_id, sign_request
from statledger.proofs.errors import StatledgerError

if TYPE_CHECKING:
    from statledger.proofs.signatures import SigningKey

__all__ = ["RemoteError", "UnreachableError", "SignedClient", "AsyncSignedClient"]

DEFAULT_TIMEOUT = 30.0
#: Seconds a sync client keeps retrying a peer's ``503`` + ``Retry-After`` (it did nothing).
DEFAULT_BUSY_WAIT = 30.0


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
    """The peer could not be reached (connection refused, DNS, timeout).  ``retry_after``:
    seconds after which asking again makes sense, when the client knows (its breaker)."""

    def __init__(self, reason: str, *, url: str = "", retry_after: int | None = None) -> None:
        super().__init__(None, reason, url=url)
        self.retry_after = retry_after


#: The longest ``Retry-After`` a client sleeps before retrying a 503 (a peer may ask more).
MAX_BUSY_SLEEP = 5.0


def _resendable(method: str) -> bool:
    """A connection that dropped mid-request (reset, closed before the response) is sent
    again only for a read: the peer may have acted on a write before it dropped, and a
    write is never repeated behind the caller's back.  A stale pooled connection to a
    peer that restarted is the usual cause; the resend then reconnects or reports
    "cannot connect"."""
    return method.upper() in ("GET", "HEAD")


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds to wait before retrying a ``503`` with a ``Retry-After`` (delta seconds)."""
    if resp.status_code != 503:
        return None
    raw = resp.headers.get("retry-after", "")
    if not raw.isdigit():
        return None
    return min(float(raw), MAX_BUSY_SLEEP)


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


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, shared by every client: httpx otherwise builds one (and
    loads the CA bundle, ~18 ms of CPU) for each client, i.e. for every call to a peer."""
    return httpx.create_ssl_context()


class _Base:
    def __init__(self, base_url: str, party_id: str | None, signing_key: SigningKey | None,
                 *, target: str | None, retries: int = 3, backoff: float = 0.2,
                 breaker: float = 0.0, busy_wait: float = DEFAULT_BUSY_WAIT) -> None:
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
        self.breaker = breaker
        self.busy_wait = busy_wait
        self._down_until = 0.0
        self._down_reason = ""

    def _check_breaker(self, url: str) -> None:
        """Fail at once while the peer is known not to answer (``breaker`` seconds)."""
        if self.breaker <= 0:
            return
        left = self._down_until - time.monotonic()
        if left > 0:
            raise UnreachableError(
                f"not answering ({self._down_reason}); not asked again for {left:.0f} s",
                url=url, retry_after=max(1, round(left)))

    def _trip(self, exc: UnreachableError) -> UnreachableError:
        if self.breaker > 0:
            self._down_until = time.monotonic() + self.breaker
            self._down_reason = exc.reason
            exc.retry_after = max(1, round(self.breaker))
        return exc

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
                 retries: int = 3, backoff: float = 0.2, breaker: float = 0.0,
                 busy_wait: float = DEFAULT_BUSY_WAIT,
                 transport: httpx.BaseTransport | None = None) -> None: ...

    @overload
    def __init__(self, base_url: str, party_id: str, signing_key: SigningKey, *,
                 target: str, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.2, breaker: float = 0.0, busy_wait: float = DEFAULT_BUSY_WAIT,
                 transport: httpx.BaseTransport | None = None) -> None: ...

    def __init__(self, base_url: str, party_id: str | None = None,
                 signing_key: SigningKey | None = None, *, target: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3, backoff: float = 0.2,
                 breaker: float = 0.0, busy_wait: float = DEFAULT_BUSY_WAIT,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, party_id, signing_key, target=target, retries=retries,
                         backoff=backoff, breaker=breaker, busy_wait=busy_wait)
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                    transport=transport, verify=_tls_context())

    def send(self, method: str, path: str, *, json: Any = None, content: bytes | None = None,
             params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
             timeout: float | None = None) -> httpx.Response:
        """Send one signed request and return the (2xx) response; raise otherwise.
        ``timeout`` overrides the client's for this request."""
        url = self.base_url + path
        self._check_breaker(url)
        busy_until = time.monotonic() + self.busy_wait
        attempt = 0
        while True:
            req = self._client.build_request(
                method, path, json=json, content=content, params=params, headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
            self._sign(req)
            try:
                resp = self._client.send(req)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
                    attempt += 1
                    continue
                err = UnreachableError(f"cannot connect ({exc})", url=url)
                # a refused connection fails fast anyway: only a timeout trips the breaker
                raise (self._trip(err) if isinstance(exc, httpx.ConnectTimeout) else
                       err) from None
            except httpx.TimeoutException as exc:
                raise self._trip(UnreachableError(f"timed out ({type(exc).__name__})",
                                                  url=url)) from None
            except httpx.TransportError as exc:
                if _resendable(method) and attempt < self.retries:
                    time.sleep(self.backoff * (2**attempt))
                    attempt += 1
                    continue
                raise UnreachableError(f"transport error ({exc})", url=url) from None
            wait = _retry_after(resp)
            if wait is not None and time.monotonic() + wait < busy_until:
                time.sleep(wait)  # the peer did nothing (busy, or its ledger is down)
                continue
            _raise_for(resp)
            return resp

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send and decode the body (JSON -> Python, text -> str, empty -> None)."""
        return _decode(self.send(method, path, **kw))

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, *, json: Any = None, content: bytes | None = None,
             params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.request("POST", path, json=json, content=content, params=params,
                            timeout=timeout)

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
                 retries: int = 3, backoff: float = 0.2, breaker: float = 0.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None: ...

    @overload
    def __init__(self, base_url: str, party_id: str, signing_key: SigningKey, *,
                 target: str, timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 backoff: float = 0.2, breaker: float = 0.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None: ...

    def __init__(self, base_url: str, party_id: str | None = None,
                 signing_key: SigningKey | None = None, *, target: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3, backoff: float = 0.2,
                 breaker: float = 0.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, party_id, signing_key, target=target, retries=retries,
                         backoff=backoff, breaker=breaker)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                         transport=transport, verify=_tls_context())

    async def send(self, method: str, path: str, *, json: Any = None,
                   content: bytes | None = None, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None,
                   timeout: float | None = None) -> httpx.Response:
        url = self.base_url + path
        self._check_breaker(url)
        for attempt in range(self.retries + 1):
            req = self._client.build_request(
                method, path, json=json, content=content, params=params, headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
            self._sign(req)
            try:
                resp = await self._client.send(req)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self.retries:
                    await asyncio.sleep(self.backoff * (2**attempt))
                    continue
                err = UnreachableError(f"cannot connect ({exc})", url=url)
                # a refused connection fails fast anyway: only a timeout trips the breaker
                raise (self._trip(err) if isinstance(exc, httpx.ConnectTimeout) else
                       err) from None
            except httpx.TimeoutException as exc:
                raise self._trip(UnreachableError(f"timed out ({type(exc).__name__})",
                                                  url=url)) from None
            except httpx.TransportError as exc:
                if _resendable(method) and attempt < self.retries:
                    await asyncio.sleep(self.backoff * (2**attempt))
                    continue
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
