"""The ``statledger`` command line (typer).  Every command is documented in README.md."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from statledger.nodes.consortium_cli import app as consortium_app
from statledger.proofs.errors import MalformedError, StatledgerError

app = typer.Typer(help="statledger: a verifiable statistics ledger.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
node_app = typer.Typer(help="Run and configure the parties of a real deployment.",
                       no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(consortium_app, name="consortium")


@app.callback()
def main() -> None:
    """statledger: a verifiable statistics ledger."""


def _fail(msg: str, code: int = 1) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="folder for certificates and summary")] = None,
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: 2, or 1 with one node)", show_default=False)] = None,
) -> None:
    """Start a local cluster (1 ledger, 3 compute nodes with a 2-of-3 key from a key
    ceremony on the log, 4 data owners), run a tour of statistics, print the results, write
    and verify one certificate per query."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from statledger.nodes.demo import TOUR, run_demo

    lines: list[str] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  transient=False) as progress:
        task = progress.add_task("starting the cluster", total=len(TOUR) + 1)

        def step(name: str) -> None:
            progress.update(task, advance=1, description=f"query: {name}")

        try:
            _check_threshold(compute, threshold)
            summary = run_demo(out, lines.append, step, n_compute=compute, threshold=threshold)
        except StatledgerError as exc:
            progress.stop()
            _fail(str(exc))
            return
        progress.update(task, advance=1, description="done")
    for line in lines:
        typer.echo(line)
    typer.echo("")
    for q in summary["queries"]:
        typer.echo(f"{q['name']:<22} {q['seconds']:>7.2f} s  {q['rounds']} round(s)  "
                   f"certificate {max(q['certificate_bytes']) / 1024:.0f} KiB")
    typer.echo(f"\n{summary['verified']} certificates verified offline in "
               f"{summary['verify_s']:.2f} s; demo wall time {summary['total_s']:.1f} s")
    typer.echo(f"certificates: {summary['out']}/certificates/ (verified under the consortium's "
               f"trust file {summary['trust']}: statledger verify CERT --trust that file)")
    Path(summary["out"], "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def _check_threshold(compute: int, threshold: int | None) -> None:
    if compute < 1:
        _fail("--compute: at least one compute node", 2)
    if threshold is not None and not 1 <= threshold <= compute:
        _fail(f"--threshold: expected 1 to {compute} (the compute nodes)", 2)


@app.command()
def run(
    query: Annotated[Path, typer.Argument(help="query spec (JSON)")],
    data: Annotated[list[Path], typer.Option(
        "--data", help="one CSV per provider: --data A.csv B.csv or --data A.csv --data B.csv")],
    more: Annotated[list[Path] | None, typer.Argument(
        help="more CSV files (the ones listed after --data A.csv)", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(help="write the certificate here")] = None,
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: all of them)", show_default=False)] = None,
) -> None:
    """Run one query on an ephemeral local cluster with one provider per CSV file."""
    data = [*data, *(more or [])]
    from statledger.nodes.demo import querier_for, start_cluster
    from statledger.nodes.querier import run_rounds
    from statledger.protocol.query import QuerySpec

    try:
        spec = QuerySpec.parse(query.read_bytes())
    except OSError as exc:
        _fail(f"{query}: {exc.strerror}", 2)
    except MalformedError as exc:
        _fail(f"{query}: {exc}", 2)
    for d in data:
        if not d.is_file():
            _fail(f"{d}: no such file", 2)
    _check_threshold(compute, threshold)
    providers = {f"provider-{i}": {"data": str(d.resolve())} for i, d in enumerate(data, 1)}
    with tempfile.TemporaryDirectory(prefix="statledger-run-") as tmp:
        cluster = start_cluster(Path(tmp), providers, n_compute=compute, threshold=threshold)
        try:
            with querier_for(cluster) as q:
                outcomes = run_rounds(q, spec, datasets="data",
                                      progress=lambda m: typer.echo(f"  {m}...", err=True))
        except StatledgerError as exc:
            _fail(str(exc))
            return
        finally:
            cluster.stop()
    typer.echo(outcomes[-1].result.summary())
    if out is not None:
        out.write_bytes(outcomes[-1].certificate.to_bytes())
        typer.echo(f"certificate: {out}")


@app.command()
def query(
    spec_file: Annotated[Path, typer.Argument(help="query spec (JSON)")],
    config: Annotated[Path, typer.Option(help="the querier's config.toml, as written by "
                                              "`statledger node init`")],
    dataset: Annotated[str | None, typer.Option(help="dataset name at the providers")] = None,
    out: Annotated[Path | None, typer.Option(help="write the certificate here")] = None,
) -> None:
    """Run a query against a running cluster (registers the querier and writes the cluster's
    setup entry on first use)."""
    from statledger.nodes.querier import run_rounds
    from statledger.protocol.query import QuerySpec

    try:
        spec = QuerySpec.parse(spec_file.read_bytes())
        q = querier_from_config(config)
    except OSError as exc:
        _fail(f"{exc}", 2)
        return
    except StatledgerError as exc:
        _fail(str(exc), 2)
        return
    try:
        with q:
            outcomes = run_rounds(q, spec, datasets=dataset,
                                  progress=lambda m: typer.echo(f"  {m}...", err=True))
    except StatledgerError as exc:
        _fail(str(exc))
        return
    typer.echo(outcomes[-1].result.summary())
    if out is not None:
        out.write_bytes(outcomes[-1].certificate.to_bytes())
        typer.echo(f"certificate: {out}")


#: seconds the ledger waits for the key ceremony before answering POST /v1/setup
SETUP_WAIT = 120.0


def querier_from_config(path: Path) -> Any:
    """A :class:`~statledger.nodes.querier.Querier` from a querier config: its peers are split into
    compute nodes and providers by their registered roles on the ledger."""
    from statledger.nodes.config import QuerierConfig, load_config
    from statledger.nodes.http import RemoteError, SignedClient
    from statledger.nodes.keys import load_identity_key
    from statledger.nodes.querier import Querier
    from statledger.nodes.serve import register_self

    cfg = load_config(path, role="querier")
    if not isinstance(cfg, QuerierConfig):  # load_config(role="querier") refuses other roles
        raise TypeError(f"{path}: not a querier config")
    from statledger.nodes.trust import pinned_genesis

    key = load_identity_key(cfg.identity_key_path)
    genesis = pinned_genesis(cfg)
    register_self(cfg, timeout=10.0)
    # the ledger answers POST /v1/setup once the nodes' key ceremony is over (it waits up to
    # SETUP_WAIT seconds for them), so this client waits a little longer than that
    with SignedClient(str(cfg.ledger_url), cfg.party_id, key,
                      target=genesis.genesis.ledger.party_id,
                      timeout=SETUP_WAIT + 30.0) as ledger:
        try:
            ledger.get("/v1/setup")
        except RemoteError as exc:
            if exc.status != 404:
                raise
            ledger.post("/v1/setup")
        roles = {p: v["role"] for p, v in ledger.get("/v1/parties").items()}
    peers = {p: str(u) for p, u in cfg.peers.items()}
    compute = {p: u for p, u in peers.items() if roles.get(p) == "compute"}
    providers = {p: u for p, u in peers.items() if roles.get(p) == "provider"}
    return Querier(cfg.party_id, key, str(cfg.ledger_url), compute, providers, trust=genesis,
                   state_db=cfg.state_db_path)


@app.command()
def verify(
    paths: Annotated[list[Path], typer.Argument(help="certificate files or folders")],
    trust: Annotated[Path | None, typer.Option(
        help="the consortium's trust file (statledger consortium export-trust): pins the "
             "consortium whose log, witnesses and members the certificate must come "
             "from")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per file")] = False,
) -> None:
    """Verify certificates offline.  Exit 0: all valid; 1: some invalid; 2: not a
    certificate."""
    from statledger.verifier.certificate import SUFFIX as CERT_SUFFIX
    from statledger.verifier.verify import load_trust, verify_certificate_file

    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob(f"*{CERT_SUFFIX}")))
        else:
            files.append(p)
    if not files:
        _fail("no certificate files given", 2)
    try:
        policy = load_trust(trust) if trust is not None else None
    except MalformedError as exc:
        _fail(str(exc), 2)
        return
    code = 0
    for f in files:
        try:
            report = verify_certificate_file(f, policy)
        except MalformedError as exc:
            code = max(code, 2)
            if as_json:
                typer.echo(json.dumps({"file": str(f), "valid": False, "step": 1,
                                       "reason": f"not a certificate: {exc}", "party": None,
                                       "steps": []}))
            else:
                typer.secho(f"{f}: NOT A CERTIFICATE: {exc}", fg=typer.colors.RED)
            continue
        if not report.valid:
            code = max(code, 1)
        if as_json:
            typer.echo(json.dumps(report.to_json_obj()))
            continue
        status = "VALID" if report.valid else "INVALID"
        color = typer.colors.GREEN if report.valid else typer.colors.RED
        typer.secho(f"{f}: {status}", fg=color, bold=True)
        typer.echo(f"  trust: {report.trust}")
        for s in report.steps:
            mark = "ok " if s.ok else "FAIL"
            typer.echo(f"  ({s.step:>2}) {mark} {s.title}: {s.detail}")
        if not report.valid:
            typer.echo(f"  -> step {report.step} failed: {report.reason}"
                       + (f" (blamed: {report.party})" if report.party else ""))
    raise typer.Exit(code)


@app.command()
def audit(
    log: Annotated[str, typer.Argument(help="ledger SQLite file or ledger node URL")],
    resume: Annotated[Path | None, typer.Option(help="save/resume position in this file")
                      ] = None,
    workers: Annotated[int, typer.Option(help="processes for per-query checks")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="JSON summary")] = False,
) -> None:
    """Replay a whole log: the tree, every checkpoint and its witness cosignatures, every
    query's checks.  Each query is valid, invalid (step, party) or incomplete (stopped before
    a result).  Exit 0: nothing invalid; 1: a broken tree or an invalid query; 2: not a
    log."""
    from statledger.verifier.audit import audit_log

    try:
        summary = audit_log(log, resume=resume, workers=workers,
                            progress=None if as_json else lambda m: typer.echo(m, err=True))
    except MalformedError as exc:
        _fail(str(exc), 2)
        return
    if as_json:
        typer.echo(json.dumps(summary, indent=1))
    else:
        typer.echo(f"log {summary['origin']}: {summary['size']} entries, "
                   f"{summary['checkpoints']} checkpoints, tree and checkpoints "
                   f"{'OK' if summary['tree_ok'] else 'BROKEN: ' + str(summary['tree_error'])}")
        marks = {"valid": "ok  ", "invalid": "FAIL", "incomplete": "... "}
        for q in summary["queries"]:
            line = f"  {marks[q['status']]} {q['query_id'][:16]} {q['statistic'] or '?':<20} "
            if q["status"] == "invalid":
                line += f"step {q['step']}: {q['reason']} (blamed: {q['party']})"
            elif q["status"] == "incomplete":
                line += f"incomplete, stopped at step {q['step']}: {q['reason']}"
            typer.echo(line.rstrip())
        typer.echo(f"{len(summary['queries'])} queries: {summary['valid']} valid, "
                   f"{summary['invalid']} invalid, {summary['incomplete']} incomplete "
                   f"({summary['seconds']:.2f} s)")
    raise typer.Exit(0 if summary["ok"] else 1)


@node_app.command("serve")
def node_serve(
    role: Annotated[str, typer.Option(help="ledger, compute or provider")],
    config: Annotated[Path, typer.Option(help="the party's config (TOML)")],
) -> None:
    """Serve one party (blocks until stopped)."""
    from statledger.nodes.serve import main as serve_main

    sys.exit(serve_main(["--role", role, "--config", str(config)]))


@node_app.command("init")
def node_init(
    base_dir: Annotated[Path, typer.Argument(help="folder for keys and configs")],
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    provider: Annotated[list[str], typer.Option(
        help="provider as ID=NAME:PATH[,NAME:PATH...] (repeatable)")] = [],  # noqa: B006
    querier: Annotated[list[str], typer.Option(help="querier id (repeatable)")
                       ] = ["querier"],  # noqa: B006
    host: Annotated[str, typer.Option(help="address the services bind")] = "127.0.0.1",
    witness_quorum: Annotated[int | None, typer.Option(
        help="cosignatures a checkpoint needs (default: a majority of the compute nodes, "
             "floor(N/2)+1; see docs/deployment.md for what a smaller quorum costs)",
        show_default=False)] = None,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: all of them)", show_default=False)] = None,
) -> None:
    """Create keys (0600) and TOML configs for every party of a deployment."""
    from statledger.nodes.launcher import init_cluster, majority_quorum

    _check_threshold(compute, threshold)
    quorum = majority_quorum(compute) if witness_quorum is None else witness_quorum
    if not 1 <= quorum <= compute:
        _fail(f"--witness-quorum: expected 1 to {compute} (the compute nodes)", 2)

    providers: dict[str, dict[str, Any]] = {}
    for spec in provider:
        pid, _, rest = spec.partition("=")
        if not pid or not rest:
            _fail(f"--provider {spec!r}: expected ID=NAME:PATH", 2)
        ds: dict[str, Any] = {}
        for item in rest.split(","):
            name, _, path = item.partition(":")
            if not name or not path:
                _fail(f"--provider {spec!r}: expected NAME:PATH", 2)
            ds[name] = str(Path(path).resolve())
        providers[pid] = ds
    layout = init_cluster(base_dir, n_compute=compute, providers=providers,
                          queriers=querier, host=host, witness_quorum=quorum,
                          threshold=threshold)
    for p in layout.parties.values():
        typer.echo(f"{p.party_id:<14} {p.role:<9} {p.url or '-':<26} {p.config_path}")
    typer.echo(f"witness quorum: {quorum} of {compute} compute nodes")
    typer.echo(f"decryption threshold: {threshold or compute} of {compute} compute nodes")


if __name__ == "__main__":
    app()
