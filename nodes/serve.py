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
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from statledger.nodes.config import AnyConfig, ComputeConfig, ConfigError, LedgerConfig, load_config
from statledger.proofs.errors import StatledgerError

__all__ = ["build_app", "register_self", "party_entry_builder", "main"]

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
        from statledger.proofs import sigma
        from statledger.proofs.group import base_mul
        from statledger.protocol.flow import keyreg_context

        x = load_elgamal_share(config.elgamal_key_path)
        X = base_mul(x)
        proof = sigma.prove_schnorr(x, X, keyreg_context(config.party_id))
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

    sk = load_identity_key(config.identity_key_path)
    deadline = time.monotonic() + timeout
    with SignedClient(config.ledger_url, config.party_id, sk, retries=0, timeout=30.0) as cl:
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m statledger.nodes.serve", description=__doc__)
    parser.add_argument("--role", required=True,
                        choices=["ledger", "compute", "provider"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--no-register", action="store_true",
                        help="do not post this party's `party` entry to the ledger")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, role=args.role)
    except ConfigError as exc:
        sys.stderr.write(f"statledger: {exc}\n")
        return 2
    level = getattr(logging, config.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr,
                        format=f"%(asctime)s {config.party_id} %(levelname)s %(name)s: %(message)s")
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
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level,
                access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
