"""``statledger consortium ...``: write, sign, show and export the consortium's genesis.

The genesis lists every founding party of a deployment written by ``statledger node init``
(its ``cluster.json``): the log (the ledger's identity key, the origin), the compute nodes,
the data owners and the queriers, with the witness quorum and the admission rule.  Every
founding member signs it with its own identity key (``consortium sign``, run by each party
on its own host); ``consortium export-trust`` then writes the file a reviewer or a journal
pins with ``statledger verify --trust`` (docs/consortium.md).  The cryptography and the
rules are in :mod:`statledger.protocol.consortium`; this module only reads and writes files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from statledger.proofs.errors import StatledgerError

if TYPE_CHECKING:  # pragma: no cover
    from statledger.protocol.consortium import SignedGenesis

app = typer.Typer(help="Found the consortium: the pinned genesis every party and reviewer "
                       "checks against.", no_args_is_help=True)

GENESIS_FILE = "consortium.json"
T = TypeVar("T")


def _fail(msg: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _read(path: Path, parse: Callable[[bytes], T], what: str) -> T:
    """``parse(bytes of path)``, or exit 2 naming the file and what it should have been."""
    try:
        return parse(path.read_bytes())
    except OSError as exc:
        _fail(f"{path}: cannot read ({exc.strerror})", 2)
    except StatledgerError as exc:
        _fail(f"{path}: not {what}: {exc}", 2)


def _load(path: Path) -> SignedGenesis:
    from statledger.protocol.consortium import SignedGenesis

    return _read(path, SignedGenesis.from_bytes, "a consortium genesis")


def _save(path: Path, document: Any) -> None:
    """Write a genesis or a membership change (its readable JSON form)."""
    from statledger.nodes.launcher import write_json

    write_json(path, document.to_json_obj())


def _written_threshold(path: Path) -> int | None:
    """The decryption threshold of an existing genesis file, if it can be read."""
    from statledger.protocol.consortium import SignedGenesis

    try:
        t: int | None = SignedGenesis.from_bytes(path.read_bytes()).genesis.decryption_threshold
    except (OSError, StatledgerError):
        return None
    return t


@app.command("init")
def init(
    base_dir: Annotated[Path, typer.Argument(help="the folder written by `statledger node init`")],
    name: Annotated[str, typer.Option(help="the consortium's name")] = "statledger consortium",
    admission_quorum: Annotated[int | None, typer.Option(
        help="signatures a membership change needs (default: a majority of the admission "
             "roles' founding members)", show_default=False)] = None,
    admission_roles: Annotated[str, typer.Option(
        help="roles whose members may sign membership changes (comma-separated)")] = "compute",
    out: Annotated[Path | None, typer.Option(help="genesis file (default DIR/consortium.json)",
                                             show_default=False)] = None,
    sign_all: Annotated[bool, typer.Option(
        "--sign-all", help="sign with every party's key found under DIR (one-machine "
                           "deployments and demos; in production each party signs on its own "
                           "host with `consortium sign`)")] = False,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: the one `node init` wrote in DIR/consortium.json, else all compute "
             "nodes)", show_default=False)] = None,
) -> None:
    """Write the genesis of a deployment from the configs and keys of `statledger node init`
    (which already wrote one, signed by every party: run this to found it with another name
    or admission rule, before the ledger's first start)."""
    from statledger.nodes.config import ConfigError, LedgerConfig, load_config
    from statledger.nodes.keys import load_identity_key
    from statledger.nodes.launcher import ClusterError, found_consortium, load_layout

    try:
        layout = load_layout(base_dir)
        ledger_cfg = load_config(layout.ledger.config_path, role="ledger")
    except (ClusterError, ConfigError) as exc:
        _fail(str(exc), 2)
    if not isinstance(ledger_cfg, LedgerConfig):  # pragma: no cover - role="ledger" ensures it
        _fail("the ledger's config is not a ledger config", 2)
    members = []
    for p in layout.parties.values():
        try:
            key = load_identity_key(Path(p.data_dir) / "identity.key")
        except StatledgerError as exc:
            _fail(f"{p.party_id}: {exc}", 2)
        members.append((p.party_id, p.role, key))
    roles = tuple(sorted({r.strip() for r in admission_roles.split(",") if r.strip()}))
    n_compute = sum(role == "compute" for _, role, _ in members)
    witness_quorum = ledger_cfg.witness_quorum or (n_compute // 2 + 1)
    path = out if out is not None else Path(base_dir) / GENESIS_FILE
    if threshold is None:
        threshold = _written_threshold(Path(base_dir) / GENESIS_FILE)
    if threshold is not None and not 1 <= threshold <= n_compute:
        _fail(f"--threshold: expected 1 to {n_compute} (the compute nodes)", 2)
    try:
        signed = found_consortium(base_dir, layout.origin, members,
                                  witness_quorum=witness_quorum, threshold=threshold,
                                  admission_quorum=admission_quorum, admission_roles=roles,
                                  name=name, sign=sign_all, genesis_out=path)
    except StatledgerError as exc:
        _fail(str(exc), 2)
    genesis = signed.genesis
    typer.echo(f"consortium {genesis.consortium_id}")
    typer.echo(f"genesis written to {path}: {len(genesis.members)} founding members, witness "
               f"quorum {witness_quorum}, decryption threshold {genesis.decryption_threshold} "
               f"of {n_compute}, admission {genesis.admission.quorum} of "
               f"{sum(m.role in roles for m in genesis.members)} ({', '.join(roles)})")
    missing = signed.missing()
    if missing:
        typer.echo(f"to sign ({len(missing)}): {', '.join(missing)}  "
                   "(each: statledger consortium sign FILE --config PARTY/config.toml)")
    else:
        typer.echo(f"trust file written to {Path(base_dir) / 'trust.json'}")


@app.command("sign")
def sign(
    genesis_file: Annotated[Path, typer.Argument(help="the genesis (consortium.json)")],
    config: Annotated[Path, typer.Option(help="this party's config.toml (its identity key)")],
) -> None:
    """Sign the genesis as one founding member (with that party's own identity key)."""
    from statledger.nodes.config import ConfigError, load_config
    from statledger.nodes.keys import load_identity_key

    signed = _load(genesis_file)
    try:
        cfg = load_config(config)
        key = load_identity_key(cfg.identity_key_path)
        signed = signed.sign(cfg.party_id, key)
    except (ConfigError, StatledgerError) as exc:
        _fail(str(exc), 2)
    _save(genesis_file, signed)
    missing = signed.missing()
    typer.echo(f"{cfg.party_id} signed consortium {signed.genesis.consortium_id}; "
               + (f"still to sign: {', '.join(missing)}" if missing else "every member signed"))


@app.command("show")
def show(
    genesis_file: Annotated[Path, typer.Argument(help="the genesis, or a trust file")],
) -> None:
    """Print the consortium id, its members and who has signed."""
    from statledger.protocol.consortium import SignedGenesis

    try:
        obj = json.loads(genesis_file.read_text(encoding="utf-8"))
        if isinstance(obj, dict) and "format" in obj:
            obj = obj.get("genesis")
        signed = SignedGenesis.from_json_obj(obj)
    except (OSError, ValueError, StatledgerError) as exc:
        _fail(f"{genesis_file}: not a consortium genesis: {exc}", 2)
    g = signed.genesis
    typer.echo(f"consortium {g.consortium_id}")
    typer.echo(f"name: {g.name}\nlog origin: {g.origin}\nwitness quorum: {g.witness_quorum}\n"
               f"decryption threshold: {g.decryption_threshold}\n"
               f"admission: {g.admission.quorum} signatures of "
               f"{', '.join(g.admission.roles)} members")
    for m in g.members:
        mark = "signed" if m.party_id in signed.signatures else "NOT SIGNED"
        typer.echo(f"  {m.party_id:<16} {m.role:<9} {m.sig_key[:16]}...  {mark}")
    try:
        signed.verify()
    except StatledgerError as exc:
        typer.echo(f"not complete: {exc}")
        raise typer.Exit(1) from None
    typer.echo("every founding member signed; the genesis is valid")


@app.command("export-trust")
def export_trust(
    genesis_file: Annotated[Path, typer.Argument(help="the fully signed genesis")],
    out: Annotated[Path, typer.Option(help="the trust file to write")],
) -> None:
    """Write the trust file a reviewer pins with `statledger verify --trust`."""
    from statledger.protocol.consortium import trust_document

    signed = _load(genesis_file)
    try:
        doc = trust_document(signed)
    except StatledgerError as exc:
        _fail(f"the genesis is not complete: {exc}")
    from statledger.nodes.launcher import write_json

    write_json(out, doc)
    typer.echo(f"trust file for consortium {doc['consortium']} written to {out}")


# -- membership changes ---------------------------------------------------------------------

def _party_context(config: Path) -> tuple[Any, Any, Any]:
    """(config, identity key, pinned SignedGenesis) of the party whose config this is."""
    from statledger.nodes.config import ConfigError, load_config
    from statledger.nodes.keys import load_identity_key
    from statledger.nodes.trust import pinned_genesis

    try:
        cfg = load_config(config)
        return cfg, load_identity_key(cfg.identity_key_path), pinned_genesis(cfg)
    except (ConfigError, StatledgerError) as exc:
        _fail(str(exc), 2)


def _ledger_client(cfg: Any, key: Any, genesis: Any) -> Any:
    from statledger.nodes.http import SignedClient

    url = getattr(cfg, "ledger_url", None) or cfg.base_url
    return SignedClient(str(url), cfg.party_id, key, target=genesis.genesis.ledger.party_id)


def _load_change(path: Path) -> Any:
    from statledger.protocol.consortium import MembershipChange

    return _read(path, MembershipChange.from_bytes, "a membership change")


@app.command("propose")
def propose(
    config: Annotated[Path, typer.Option(help="the proposing member's config.toml")],
    out: Annotated[Path, typer.Option(help="the change file to write")],
    admit: Annotated[list[str] | None, typer.Option(
        help="ID:ROLE:KEY (Ed25519 public key, 64 hex) of a party to admit; repeatable")] = None,
    revoke: Annotated[list[str] | None, typer.Option(help="party id to revoke; repeatable")
                      ] = None,
    rotate: Annotated[list[str] | None, typer.Option(
        help="ID:KEY: a member's new identity key; repeatable")] = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="re-share the collective key among the compute nodes (new key "
        "shares, same key; docs/dkg.md)")] = False,
) -> None:
    """Write an unsigned membership change extending the log's current chain.  A change that
    admits, revokes or rotates a compute node, or asks for a refresh, makes the compute nodes
    re-share the collective key once it is logged (docs/dkg.md, "Key lifecycle")."""
    from statledger.nodes.http import RemoteError
    from statledger.protocol.consortium import Member, MembershipChange

    cfg, key, genesis = _party_context(config)
    try:
        members = []
        for item in admit or []:
            pid, role, pub = (item.split(":") + ["", ""])[:3]
            members.append(Member(pid, role, pub))
        rotations = []
        for item in rotate or []:
            pid, _, pub = item.partition(":")
            rotations.append((pid, pub))
        with _ledger_client(cfg, key, genesis) as ledger:
            state = ledger.get("/v1/consortium")
        if state.get("consortium") != genesis.genesis.consortium_id:
            _fail("the ledger serves another consortium than the one this party pins")
        change = MembershipChange(genesis.genesis.consortium_id, int(state["seq"]) + 1,
                                  str(state["head"]), tuple(members), tuple(revoke or ()),
                                  tuple(rotations), refresh=refresh)
    except RemoteError as exc:
        _fail(f"ledger: {exc}")
    except StatledgerError as exc:
        _fail(str(exc), 2)
    _save(out, change)
    typer.echo(f"membership change {change.seq} written to {out}; it needs "
               f"{genesis.genesis.admission.quorum} signatures of "
               f"{', '.join(genesis.genesis.admission.roles)} members (the rule may have "
               "changed since the genesis) and a proof of possession by every new key")


@app.command("sign-change")
def sign_change(
    change_file: Annotated[Path, typer.Argument(help="the change file (from propose)")],
    config: Annotated[Path, typer.Option(help="this party's config.toml")],
) -> None:
    """Sign a change: as a member of the admission quorum, and/or prove possession of the
    key the change admits or rotates in for this party."""
    change = _load_change(change_file)
    cfg, key, _genesis = _party_context(config)
    pub = key.public_key().to_bytes().hex()
    new_keys = {m.party_id: m.sig_key for m in change.admit} | dict(change.rotate)
    did = []
    if new_keys.get(cfg.party_id) == pub:
        change = change.prove_possession(cfg.party_id, key)
        did.append("proved possession of its new key")
    elif cfg.party_id not in {m.party_id for m in change.admit}:
        # a current member's signature (the roster decides whether it counts)
        change = change.sign(cfg.party_id, key)
        did.append("signed as a member")
    if not did:
        _fail(f"{cfg.party_id} has nothing to sign in this change", 2)
    _save(change_file, change)
    typer.echo(f"{cfg.party_id} {' and '.join(did)} (change {change.seq}: "
               f"{len(change.signatures)} signature(s))")


@app.command("submit")
def submit(
    change_file: Annotated[Path, typer.Argument(help="the signed change file")],
    config: Annotated[Path, typer.Option(help="a member's config.toml (sends it to the log)")],
) -> None:
    """Send a signed change to the log, which checks it against the roster and logs it."""
    from statledger.nodes.http import RemoteError

    change = _load_change(change_file)
    cfg, key, genesis = _party_context(config)
    try:
        with _ledger_client(cfg, key, genesis) as ledger:
            out = ledger.post("/v1/membership", content=change.to_bytes())
    except RemoteError as exc:
        _fail(f"the log refused the change: {exc}")
    typer.echo(f"membership change {out['seq']} logged at index {out['index']}")
