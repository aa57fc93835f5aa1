"""Run one party's service: ``python -m statledger.nodes.serve --role R --config FILE``.

Loads the role's config (:mod:`statledger.nodes.config`), builds its FastAPI app and runs uvicorn on
``host:port`` from the config.  Apps come from:

* ``ledger``   -> :func:`statledger.nodes.ledger_service.create_ledger_app`
* ``compute``  -> ``statledger.nodes.compute_service.create_app(config)``
* ``provider`` -> ``statledger.nodes.provider_service.create_app(config)``

Registration hook: unless ``--no-register`` is given, a non-ledger party posts its own
``party`` entry to the ledger once at startup (in a background thread, retrying while the
ledger is not up yet), through :func:`register_self`.  It is skipped when the ledger already
lists the party with the same identity key, so restarts do not append anything.  The
services themselves need not (and should not) register.

Hostile clients (:class:`ServerLimits`, docs/deployment.md): uvicorn never times out a
request that is still arriving, so every node runs uvicorn's h11 protocol through
:class:`GuardedH11Protocol`, which closes a connection whose request line and headers are not
in after ``header_timeout`` seconds or whose whole request is not in after
``request_timeout`` seconds, and refuses connections beyond ``max_connections`` (503, then
closed); idle keep-alive connections close after ``keep_alive`` seconds; a request it
cannot parse is answered 400 with the JSON error body of every other error.  At startup the
process raises its soft open-file limit to what those connections need.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from statledger.nodes.config import AnyConfig, ComputeConfig, ConfigError, LedgerConfig, load_config
from statledger.nodes.events import EVENTS_LOGGER
from statledger.proofs.errors import StatledgerError

__all__ = [
    "build_app",
    "register_self",
    "party_entry_builder",
    "ServerLimits",
    "GuardedH11Protocol",
    "guarded_protocol",
    "fit_fd_limit",
    "uvicorn_options",
    "main",
]

log = logging.getLogger("statledger.serve")

# The lead (protocol/flow.py, nodes/compute_service.py) may override how the ``party``
# entry bytes are built; by default :func:`_default_party_entry` uses statledger.protocol.entries.
party_entry_builder: Callable[[AnyConfig], bytes] | None = None


def build_app(config: AnyConfig) -> Any:
    """The FastAPI app of ``config.role``."""
    if isinstance(config, LedgerConfig):
        from statledger.nodes.ledger_service import create_ledger_app

        return create_ledger_app(config)
    if config.role in ("compute", "provider"):
        module = importlib.import_module(f"statledger.nodes.{config.role}_service")
        return module.create_app(config)
    raise ConfigError(f"role {config.role!r} has no service to serve")


def _default_party_entry(config: AnyConfig) -> bytes:
    """The canonical bytes of this party's signed ``party`` entry (statledger.protocol.entries)."""
    from statledger.nodes.keys import load_identity_key
    from statledger.protocol import entries

    sk = load_identity_key(config.identity_key_path)
    elgamal_key: str | None = None
    pok: str | None = None
    if isinstance(config, ComputeConfig):
        from statledger.nodes.keys import load_elgamal_share
        from statledger.nodes.trust import pinned_id
        from statledger.proofs import sigma
        from statledger.proofs.group import base_mul
        from statledger.protocol.flow import keyreg_context

        x = load_elgamal_share(config.elgamal_key_path)
        X = base_mul(x)
        proof = sigma.prove_schnorr(x, X, keyreg_context(pinned_id(config), config.party_id))
        elgamal_key = X.to_bytes().hex()
        pok = proof.to_bytes().hex()
    entry = entries.PartyEntry(config.party_id, config.role, sk.public_key().to_bytes().hex(),
                               elgamal_key, pok)
    data: bytes = entries.sign(entry, sk).to_bytes()
    return data


def register_self(config: AnyConfig, *, timeout: float = 60.0) -> int | None:
    """Post this party's ``party`` entry to the ledger; return its log index.

    Skipped (returns the existing index) when the ledger already has the party with the
    same identity key.  Retries while the ledger is unreachable, up to ``timeout`` seconds.
    """
    if isinstance(config, LedgerConfig):
        return None
    from statledger.nodes.http import RemoteError, SignedClient, UnreachableError
    from statledger.nodes.keys import load_identity_key
    from statledger.nodes.trust import pinned_genesis

    sk = load_identity_key(config.identity_key_path)
    ledger_id = pinned_genesis(config).genesis.ledger.party_id
    deadline = time.monotonic() + timeout
    with SignedClient(config.ledger_url, config.party_id, sk, target=ledger_id, retries=0,
                      timeout=30.0) as cl:
        while True:
            try:
                known = cl.get(f"/v1/parties/{config.party_id}")
                if known.get("sig_key") == sk.public_key().to_bytes().hex():
                    return int(known["index"])
                raise StatledgerError(
                    f"the ledger lists {config.party_id} with a different key; refusing to "
                    "register again (see docs/deployment.md, key rotation)"
                )
            except UnreachableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            except RemoteError as exc:
                if exc.status != 404:
                    raise
            builder = party_entry_builder or _default_party_entry
            data = builder(config)
            out = cl.post("/v1/entries", content=data)
            return int(out["index"])


def _register_in_background(config: AnyConfig) -> None:
    def run() -> None:
        try:
            idx = register_self(config)
            log.info("registered %s on the ledger at index %s", config.party_id, idx)
        except Exception:
            log.exception("registration of %s on the ledger failed", config.party_id)

    threading.Thread(target=run, name="statledger-register", daemon=True).start()


#: Set by :mod:`statledger.nodes.launcher` for the processes it spawns: the launcher's pid.
PARENT_ENV = "STATLEDGER_PARENT_PID"


def _exit_with_parent() -> None:
    """A launcher-spawned node exits when its launcher is gone (a crashed test run or demo
    must not leave servers behind: they run in their own session, so no signal reaches them).
    Nodes started by hand (``statledger node serve``) have no such parent and keep running."""
    raw = os.environ.get(PARENT_ENV)
    if not raw or not raw.isdigit():
        return
    parent = int(raw)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                log.warning("launcher %d is gone; exiting", parent)
                os._exit(0)

    threading.Thread(target=watch, name="statledger-parent-watch", daemon=True).start()


# -- hostile clients: request deadlines and a connection cap --------------------------------


@dataclass(frozen=True)
class ServerLimits:
    """What a node tolerates from its clients (the numbers of docs/deployment.md).

    ``header_timeout``: seconds from a connection's opening (or from the first byte of its
    next request) until the request line and headers are in; ``request_timeout``: seconds
    from the same moment until the whole body is in; ``keep_alive``: seconds an idle
    keep-alive connection stays open; ``max_connections``: open connections served at once
    (more are answered 503 and closed; uvicorn's ``limit_concurrency`` is set one above, so
    that as many requests at most run, those of clients that went away included);
    ``fd_reserve``: file descriptors kept for everything else (SQLite, logs, peers).
    """

    header_timeout: float = 10.0
    request_timeout: float = 60.0
    keep_alive: float = 5.0
    max_connections: int = 1000
    fd_reserve: int = 256

    def __post_init__(self) -> None:
        for name in ("header_timeout", "request_timeout", "keep_alive"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive")
        if self.request_timeout < self.header_timeout:
            raise ConfigError("request_timeout must be at least header_timeout")
        if self.max_connections < 1 or self.fd_reserve < 0:
            raise ConfigError("max_connections must be positive and fd_reserve non-negative")

    @property
    def fds_needed(self) -> int:
        """The soft ``RLIMIT_NOFILE`` these limits need."""
        return self.max_connections + self.fd_reserve


_HEADERS, _BODY, _IDLE = "headers", "body", "idle"
_TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                b"content-length: 0\r\n\r\n")
_BUSY_503 = (b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\n"
             b"content-length: 0\r\n\r\n")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on receiving each request and a connection cap.

    Per connection, a request is in one of three phases: ``headers`` (armed at the
    connection's opening, or when the first byte of a next request arrives after the previous
    response: the request line and headers must be in within ``header_timeout``), ``body``
    (the headers are in; the body must be complete ``request_timeout`` after the request
    began) and ``idle`` (the request is in; the app is answering, or the connection waits
    for a next request under uvicorn's keep-alive timeout, which is also started when the
    body of a request answered early has been drained -- uvicorn itself would not).  A
    deadline that passes answers 408 (when nothing was answered yet) and closes the
    connection, which frees its file descriptor and tells the app the client is gone.
    """

    limits: ClassVar[ServerLimits] = ServerLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase = _IDLE
        self._began = 0.0
        self._deadline: asyncio.TimerHandle | None = None
        self._seen_cycle: object | None = None

    # -- deadline bookkeeping --------------------------------------------------------------
    def _arm(self, at: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_at(at, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _begin_request(self) -> None:
        self._phase = _HEADERS
        self._began = self.loop.time()
        self._arm(self._began + self.limits.header_timeout)

    def _sync(self) -> None:
        """Move to the next phase after uvicorn has parsed what arrived."""
        if self.cycle is not None and self.cycle is not self._seen_cycle:
            # the request line and headers of a new request are in
            self._seen_cycle = self.cycle
            if self._phase != _HEADERS:  # parsed from pipelined bytes: it begins now
                self._began = self.loop.time()
            self._phase = _BODY
            self._arm(self._began + self.limits.request_timeout)
        if self._phase == _BODY and self.conn.their_state is not h11.SEND_BODY:
            self._phase = _IDLE  # the whole request is in (or the connection failed)
            self._disarm()
        if (self._phase == _IDLE and self.cycle is not None and self.cycle.response_complete
                and self.timeout_keep_alive_task is None and not self.transport.is_closing()):
            # answered before its body was in, and the body has now been drained: uvicorn
            # cancelled its keep-alive timer on the body's bytes and would not start another
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def _expired(self) -> None:
        self._deadline = None
        if self._phase == _IDLE or self.transport.is_closing():
            return
        log.debug("closing a connection from %s: request not received within %s s",
                  self.client, self.limits.header_timeout if self._phase == _HEADERS
                  else self.limits.request_timeout)
        if self._phase == _HEADERS or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_408)
        if self._phase == _BODY:  # the app sees the client gone; its answer is dropped
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self._phase = _IDLE
        self.transport.close()

    # -- protocol hooks --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            transport.write(_BUSY_503)
            transport.close()
            return
        self._begin_request()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._phase == _IDLE and (self.cycle is None or self.cycle.response_complete):
            self._begin_request()  # the first bytes of a next request
        super().data_received(data)
        self._sync()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._sync()  # a pipelined request may have been parsed from buffered bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._phase = _IDLE
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """A request h11 cannot parse (bad syntax; a request line or headers over its 16 KiB
        limit) is answered 400 like every other error: the JSON error body (nodes/app.py,
        documented in the OpenAPI), not uvicorn's text/plain."""
        body = json.dumps({"error": f"malformed HTTP request: {msg}", "party": None,
                           "node": None}).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode("ascii"))]
        try:
            self.transport.write(self.conn.send(h11.Response(
                status_code=400, headers=headers, reason=b"Bad Request")) or b"")
            self.transport.write(self.conn.send(h11.Data(data=body)) or b"")
            self.transport.write(self.conn.send(h11.EndOfMessage()) or b"")
        except h11.LocalProtocolError:  # too late to answer (a response had begun)
            pass
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass bound to ``limits`` (uvicorn's ``http=``)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def fit_fd_limit(limits: ServerLimits) -> ServerLimits:
    """Raise the soft open-file limit towards ``limits.fds_needed`` (never above the hard
    limit); if it stays short, serve fewer connections, and say so in the log."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return limits
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = limits.fds_needed
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        fitted = max(16, soft - limits.fd_reserve)
        log.warning("open-file limit %d is below the %d that %d connections need; serving at "
                    "most %d connections (raise `ulimit -n`, see docs/deployment.md)",
                    soft, need, limits.max_connections, fitted)
        return replace(limits, max_connections=fitted)
    return limits


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` that apply ``limits``."""
    return {
        "http": guarded_protocol(limits),
        "ws": "none",
        "timeout_keep_alive": limits.keep_alive,
        # uvicorn answers 503 once `len(connections) >= limit_concurrency` or as many
        # requests run (those of clients that went away included): one above the cap, so it
        # never refuses a connection the cap admitted, and at most max_connections requests run
        "limit_concurrency": limits.max_connections + 1,
    }


def _serve_pull(config: AnyConfig, *, register: bool) -> int:
    """``--pull``: the owner as a client of the ledger only (statledger.nodes.owner)."""
    from statledger.nodes.config import ProviderConfig
    from statledger.nodes.owner import PullOwner

    if not isinstance(config, ProviderConfig):
        sys.stderr.write("statledger: --pull is for the provider role only\n")
        return 2
    try:
        if register:
            register_self(config)
        owner = PullOwner.from_config(config)
    except StatledgerError as exc:
        sys.stderr.write(f"statledger: {config.party_id}: cannot start: {exc}\n")
        return 2
    _exit_with_parent()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("%s pulls its queries from %s (no inbound port)", config.party_id,
             config.ledger_url)
    try:
        owner.run(stop)
    finally:
        owner.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statledger.nodes.serve", description=__doc__)
    parser.add_argument("--role", required=True,
                        choices=["ledger", "compute", "provider"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--no-register", action="store_true",
                        help="do not post this party's `party` entry to the ledger")
    parser.add_argument("--pull", action="store_true",
                        help="provider only: open no port; poll the ledger for the queries "
                             "that address this owner (docs/owners.md)")
    defaults = ServerLimits()
    parser.add_argument("--header-timeout", type=float, default=defaults.header_timeout,
                        help="seconds to receive a request's line and headers "
                             "(default %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=defaults.request_timeout,
                        help="seconds to receive a whole request (default %(default)s)")
    parser.add_argument("--keep-alive", type=float, default=defaults.keep_alive,
                        help="seconds an idle keep-alive connection stays open "
                             "(default %(default)s)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help="open connections served at once (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        limits = ServerLimits(header_timeout=args.header_timeout,
                              request_timeout=args.request_timeout,
                              keep_alive=args.keep_alive,
                              max_connections=args.max_connections)
    except ConfigError as exc:
        sys.stderr.write(f"statledger: {exc}\n")
        return 2
    try:
        config = load_config(args.config, role=args.role)
    except ConfigError as exc:
        sys.stderr.write(f"statledger: {exc}\n")
        return 2
    # every file this service creates (sqlite state and its journal, the log, keys) is
    # readable by its owner only: 0600 files, 0700 folders
    os.umask(0o077)
    level = getattr(logging, config.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s {config.party_id} %(levelname)s %(name)s: %(message)s")
    # query events (received, refused + reason, contributed, endorsed) are the owner's audit
    # trail: logged at every log level, one structured line each (docs/deployment.md)
    logging.getLogger(EVENTS_LOGGER).setLevel(min(level, logging.INFO))
    if args.pull:
        return _serve_pull(config, register=not args.no_register)
    import uvicorn

    try:
        app = build_app(config)
    except StatledgerError as exc:
        sys.stderr.write(f"statledger: {config.party_id}: cannot start: {exc}\n")
        return 2
    if not args.no_register and not isinstance(config, LedgerConfig):
        _register_in_background(config)
    _exit_with_parent()
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown); make SIGTERM the same as
    # SIGINT for anything that runs before uvicorn installs its handlers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    limits = fit_fd_limit(limits)
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                **uvicorn_options(limits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
