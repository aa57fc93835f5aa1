"""``statledger node check --config FILE``: is this node set up to run?

Each check gives one verdict line (``ok``, ``warn`` or ``FAIL``) naming what it looked at:

1. the config parses for its role (every path resolved against the config's folder);
2. the trust file it pins is a fully signed consortium genesis;
3. the identity key loads (0600, refused when others can read it) and is the key the
   consortium lists for this party id and role; a compute node's key share loads too;
4. the ledger's log is the consortium's (origin) -- ledger role;
5. a data owner's policy file parses (strictly) and every dataset loads, with every column
   the policy allows present in some dataset;
6. the ledger answers ``/v1/health`` as the consortium's ledger (other roles).

Nothing is changed and nothing is sent but one health request.  No line shows a row, a row
count or a value of the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CheckLine", "check_node"]


@dataclass(frozen=True)
class CheckLine:
    verdict: str  # "ok", "warn" or "FAIL"
    what: str
    detail: str


def check_node(path: Path, *, timeout: float = 5.0,
               say: Callable[[CheckLine], None] | None = None) -> list[CheckLine]:
    """Run the checks of the module docstring on the config at ``path``."""
    from statledger.nodes.config import (
        ComputeConfig,
        ConfigError,
        LedgerConfig,
        ProviderConfig,
        load_config,
    )
    from statledger.proofs.errors import StatledgerError

    lines: list[CheckLine] = []

    def add(verdict: str, what: str, detail: str) -> None:
        line = CheckLine(verdict, what, detail)
        lines.append(line)
        if say is not None:
            say(line)

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        add("FAIL", "config", str(exc))
        return lines
    add("ok", "config", f"{path}: {cfg.role} {cfg.party_id}")

    genesis = None
    try:
        from statledger.nodes.trust import pinned_genesis

        genesis = pinned_genesis(cfg)
        add("ok", "trust", f"pins consortium {genesis.genesis.consortium_id[:16]}... "
                           f"({cfg.trust})")
    except StatledgerError as exc:
        add("FAIL", "trust", str(exc))

    try:
        from statledger.nodes.keys import load_identity_key

        key = load_identity_key(cfg.identity_key_path)
        mine = key.public_key().to_bytes().hex()
        add("ok", "identity key", f"{cfg.identity_key_path} loads (owner-only)")
        if genesis is not None:
            member = next((m for m in genesis.genesis.members
                           if m.party_id == cfg.party_id), None)
            if member is None:
                add("warn", "consortium", f"{cfg.party_id} is not a founding member of the "
                                          "pinned consortium (admitted later, or a wrong "
                                          "trust file)")
            elif member.role != cfg.role:
                add("FAIL", "consortium", f"the consortium lists {cfg.party_id} as "
                                          f"{member.role}, this config says {cfg.role}")
            elif member.sig_key != mine:
                add("FAIL", "consortium", f"the consortium lists another identity key for "
                                          f"{cfg.party_id}: this node's signatures would be "
                                          "refused")
            else:
                add("ok", "consortium", f"{cfg.party_id} is a {cfg.role} member with this key")
    except StatledgerError as exc:
        add("FAIL", "identity key", str(exc))

    if isinstance(cfg, ComputeConfig):
        try:
            from statledger.nodes.keys import load_elgamal_share, read_secret_file

            later = sorted((cfg.data_dir / "transport").glob("epoch-*.key"))
            if not cfg.elgamal_key_path.exists() and later:
                # the first key ceremony's transport key is erased once a resharing replaced
                # it (docs/dkg.md, "Key lifecycle"): the newest epoch's key is the one in use
                for path in later:
                    read_secret_file(path, "transport")
                add("ok", "key share", f"transport keys of {len(later)} resharing epoch(s) "
                                       "load (owner-only); the first one was erased")
            else:
                load_elgamal_share(cfg.elgamal_key_path)
                add("ok", "key share", f"{cfg.elgamal_key_path} loads (owner-only)")
        except StatledgerError as exc:
            add("FAIL", "key share", str(exc))

    if isinstance(cfg, LedgerConfig):
        if genesis is not None:
            if genesis.genesis.origin == cfg.origin:
                add("ok", "log", f"origin {cfg.origin} is the consortium's log")
            else:
                add("FAIL", "log", f"origin {cfg.origin!r} is not the consortium's "
                                   f"({genesis.genesis.origin!r})")
    if isinstance(cfg, ProviderConfig):
        _check_provider(cfg, add)
    if not isinstance(cfg, LedgerConfig):
        _check_ledger(str(cfg.ledger_url), genesis, timeout, add)
    return lines


def _check_provider(cfg: Any, add: Callable[[str, str, str], None]) -> None:
    from statledger.nodes.data import load_dataset
    from statledger.nodes.provider_service import load_policy
    from statledger.proofs.errors import StatledgerError

    policy = None
    if cfg.policy is None:
        add("warn", "policy", "no policy file: every registered querier may ask any "
                              "statistic on any column (docs/deployment.md, \"Policy file\")")
    else:
        try:
            policy = load_policy(Path(cfg.policy))
            add("ok", "policy", f"{cfg.policy} parses")
        except (StatledgerError, OSError) as exc:
            add("FAIL", "policy", f"{cfg.policy}: {exc}")
    if not cfg.datasets:
        add("FAIL", "datasets", "no dataset configured")
    columns: set[str] = set()
    for name, ds in cfg.datasets.items():
        try:
            table = load_dataset(ds)
        except (StatledgerError, OSError) as exc:
            add("FAIL", f"dataset {name}", str(exc))
            continue
        columns.update(table)
        add("ok", f"dataset {name}", f"{ds.path} loads, {len(table)} columns")
    allowed = getattr(policy, "allowed_columns", None)
    if allowed is not None and columns:
        missing = sorted(set(allowed) - columns)
        if missing:
            add("FAIL", "policy columns", "allowed_columns not in any dataset: "
                                          + ", ".join(missing))
        else:
            add("ok", "policy columns", f"all {len(allowed)} allowed columns exist")


def _check_ledger(url: str, genesis: Any, timeout: float,
                  add: Callable[[str, str, str], None]) -> None:
    import httpx

    try:
        r = httpx.get(url.rstrip("/") + "/v1/health", timeout=timeout)
        body = r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        add("FAIL", "ledger", f"{url}: unreachable ({type(exc).__name__})")
        return
    if not isinstance(body, dict) or body.get("role") != "ledger":
        add("FAIL", "ledger", f"{url}: does not answer as a ledger (HTTP {r.status_code})")
        return
    want = genesis.genesis.ledger.party_id if genesis is not None else None
    if want is not None and body.get("party") != want:
        add("FAIL", "ledger", f"{url}: answers as {body.get('party')!r}, the consortium's "
                              f"ledger is {want!r}")
        return
    add("ok", "ledger", f"{url} answers as the consortium's ledger")
