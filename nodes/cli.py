"""The ``statledger`` command line (typer).  Every command is documented in README.md."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from statledger.nodes.consortium_cli import app as consortium_app
from statledger.proofs.errors import MalformedError, StatledgerError

T = TypeVar("T")

app = typer.Typer(help="statledger: a verifiable statistics ledger.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
node_app = typer.Typer(help="Run and configure the parties of a real deployment.",
                       no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(consortium_app, name="consortium")


@app.callback()
def main() -> None:
    """statledger: a verifiable statistics ledger."""


def _fail(msg: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _read_or_fail(label: str, read: Callable[[], T]) -> T:
    """``read()``, or exit 2 naming ``label`` and the fault (an unreadable file, or a
    malformed one: the parsers' messages name the fault, never a cell's value)."""
    try:
        return read()
    except OSError as exc:
        _fail(f"{label}: {exc.strerror}", 2)
    except StatledgerError as exc:
        _fail(f"{label}: {exc}", 2)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option(help="folder for certificates and summary")] = None,
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: 2, or 1 with one node)", show_default=False)] = None,
    keep: Annotated[bool, typer.Option(
        "--keep", help="keep the ledger's log as OUT/ledger.sqlite, to audit it")] = False,
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
            summary = run_demo(out, lines.append, step, n_compute=compute, threshold=threshold,
                               keep=keep)
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
               f"{summary['verify_s']:.2f} s; demo wall time {summary['total_s']:.1f} s "
               f"({summary['cpu_s']:.1f} CPU s in all processes; load average "
               f"{summary['load_average'][0]:.1f} at the start)")
    typer.echo(f"certificates: {summary['out']}/certificates/ (verified under the consortium's "
               f"trust file {summary['trust']}: statledger verify CERT --trust that file)")
    typer.echo(f"see one: statledger show {summary['out']}/certificates/kaplan_meier.cert "
               f"--trust {summary['trust']} --html km.html")
    if keep:
        typer.echo(f"ledger kept: {summary['ledger']}; audit the whole log: "
                   f"statledger audit {summary['ledger']}")
    Path(summary["out"], "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def _check_threshold(compute: int, threshold: int | None) -> None:
    if compute < 1:
        _fail("--compute: at least one compute node", 2)
    if threshold is not None and not 1 <= threshold <= compute:
        _fail(f"--threshold: expected 1 to {compute} (the compute nodes)", 2)


def _vertical_owners(spec: Any, n_files: int) -> list[str] | None:
    """For a vertically partitioned spec: the owner of each data file (in order); the local
    owners are ``provider-1`` and ``provider-2``, so the spec's ``params.partition.owners``
    must name them.  None for any other spec."""
    from statledger.protocol import vertical

    if not vertical.is_vertical(spec):
        return None
    part = vertical.VerticalPlan.of(spec).part
    local = ["provider-1", "provider-2"]
    if n_files != 2:
        _fail("a vertically partitioned query takes exactly two data files (--data A B), one "
              "per owner of params.partition.owners", 2)
    if sorted(part.owners) != local:
        _fail("params.partition.owners: the local cluster's owners are provider-1 and "
              "provider-2 (the first and second data file)", 2)
    return local


def _pair_secret(tmp: Path, owners: list[str]) -> dict[str, dict[str, Path]]:
    """A fresh pair secret for the two local vertical owners (this run only, mode 0600,
    never on the log): each owner's node config names the other as its partner."""
    from statledger.nodes.keys import write_pair_secret

    path = tmp / "vertical-pair.key"
    write_pair_secret([path])
    a, b = owners
    return {a: {b: path}, b: {a: path}}


@app.command()
def run(
    query: Annotated[Path, typer.Argument(help="query spec (JSON)")],
    data: Annotated[list[Path], typer.Option(
        "--data", help="one CSV (or Parquet) file per provider: --data A.csv B.csv or "
                       "--data A.csv --data B.csv")],
    more: Annotated[list[Path] | None, typer.Argument(
        help="more data files (the ones listed after --data A.csv)", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        help="write the certificate here (IRLS: also one OUT-roundK file per round; "
             "--evaluate: the evaluation's, the fit's in OUT-fit)")] = None,
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    threshold: Annotated[int | None, typer.Option(
        help="decryption threshold T: any T compute nodes decrypt, fewer learn nothing "
             "(default: all of them)", show_default=False)] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="go on without the files that cannot answer (named in a "
                                "warning) as long as the query's min_providers remain")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="print one JSON object (result, sites, dropped, certificates)")] = False,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="zCDP budget rho of each local owner (policy budget_rho); needed "
                         "for a query with privacy.mechanism zcdp or approx",
        show_default=False)] = None,
    evaluate: Annotated[bool, typer.Option(
        "--evaluate", help="after a linear or logistic regression, evaluate the published "
                           "model on the same owners (model_evaluation: R^2/RMSE/MAE or "
                           "log-loss/accuracy/.../ROC AUC); its own certificate")] = False,
) -> None:
    """Run one query on an ephemeral local cluster with one provider per data file.  Every
    file is checked before the cluster starts; exit 2 naming the file and the reason if one
    cannot answer (unless --allow-partial), 1 if the query fails."""
    data = [*data, *(more or [])]
    from statledger.nodes.data import (
        check_distinct,
        check_for_query,
        check_vertical_owner,
        load_table,
    )
    from statledger.nodes.demo import querier_for, start_cluster
    from statledger.nodes.querier import QueryOutcome, run_rounds
    from statledger.protocol.calibration import budget_split_line, is_dp
    from statledger.protocol.query import QuerySpec

    spec = _read_or_fail(str(query), lambda: QuerySpec.parse(query.read_bytes()))
    for d in data:
        if not d.is_file():
            _fail(f"{d}: no such file", 2)
    _check_threshold(compute, threshold)
    _check_evaluate(evaluate, spec.statistic)
    if budget is not None and not (budget > 0 and budget <= 1e6):
        _fail("--budget: expected a rho in (0, 1e6]", 2)
    if spec.privacy.mechanism != "none" and budget is None:
        _fail(f"{query}: the query asks for differential privacy; give each owner a budget "
              "with --budget RHO (see `statledger plan` for what it costs)", 2)
    # every check below runs before any process starts, and names the file
    files = {str(d): d for d in data}
    if len(files) < len(data):
        dup = next(str(d) for i, d in enumerate(data) if str(d) in map(str, data[:i]))
        _fail(f"{dup}: listed twice; its rows would be counted twice", 2)
    tables: dict[str, Any] = {}
    dropped: dict[str, str] = {}
    owner_cols = _vertical_owners(spec, len(files))  # a vertical query: one file per owner
    for pos, (name, d) in enumerate(files.items()):
        try:
            tables[name] = load_table(d)
            if owner_cols is not None:
                check_vertical_owner(tables[name], spec, owner_cols[pos], name)
            else:
                check_for_query(tables[name], spec, name)
        except StatledgerError as exc:
            dropped[name] = str(exc).removeprefix(f"{name}: ")
    try:
        check_distinct(files, tables)
    except MalformedError as exc:
        _fail(str(exc), 2)
    if dropped and owner_cols is not None:  # both owners' columns are needed
        _fail("; ".join(f"{n}: {r}" for n, r in dropped.items()), 2)
    if dropped and not allow_partial:
        _fail("; ".join(f"{n}: {r}" for n, r in dropped.items())
              + " (fix the file, or --allow-partial to run without it)", 2)
    kept = [n for n in files if n not in dropped]
    for n, r in dropped.items():
        typer.secho(f"WARNING: {n} is left out of the query: {r}", fg=typer.colors.YELLOW,
                    bold=True, err=True)
    if len(kept) < spec.min_providers:
        _fail(f"{len(kept)} data file(s) can answer, the query needs at least "
              f"{spec.min_providers} providers (min_providers)", 2)
    site_of = {f"provider-{i}": n for i, n in enumerate(kept, 1)}
    # a pull-mode spec (docs/owners.md): the owners pull it, holding the dataset it names
    ds_name = spec.pull.dataset if spec.pull is not None else "data"
    providers = {pid: {ds_name: str(files[n].resolve())} for pid, n in site_of.items()}

    def check_round(o: QueryOutcome) -> None:
        # an owner that refused at run time: the result would silently cover fewer sites
        missing = {site_of[p]: o.refusals.get(p, "no submission")
                   for p in site_of if p not in o.contributors}
        if missing and not allow_partial:
            raise QueryFailed("; ".join(f"{n}: {r}" for n, r in missing.items())
                              + " (--allow-partial to accept a result without it)")
        for n, r in missing.items():
            if n not in dropped:
                dropped[n] = r
                typer.secho(f"WARNING: {n} did not contribute: {r}", fg=typer.colors.YELLOW,
                            bold=True, err=True)

    from statledger.nodes.querier import QueryFailed

    with tempfile.TemporaryDirectory(prefix="statledger-run-") as tmp:
        policies: dict[str, Path] = {}
        if budget is not None:
            pol = Path(tmp) / "policy.json"
            pol.write_text(json.dumps({"budget_rho": budget}), encoding="utf-8")
            policies = dict.fromkeys(providers, pol)
        pairs = _pair_secret(Path(tmp), list(providers)) if owner_cols is not None else None
        cluster = start_cluster(Path(tmp), providers, n_compute=compute,
                                threshold=threshold, policies=policies,
                                pull=list(providers) if spec.pull is not None else (),
                                vertical_partners=pairs)
        try:
            with querier_for(cluster) as q:
                outcomes = run_rounds(q, spec, datasets=ds_name, on_round=check_round,
                                      progress=lambda m: typer.echo(f"  {m}...", err=True))
                if evaluate:
                    outcomes += _evaluate_fit(q, outcomes[-1], ds_name, check_round)
        except StatledgerError as exc:
            _fail(str(exc))
            return
        finally:
            cluster.stop()
    final = outcomes[-1]
    certs: list[str] = []
    if out is not None:
        rounds = outcomes[:-1] if evaluate else outcomes  # --evaluate: OUT-fit[-roundK]
        tag = "-fit" if evaluate else ""
        if len(rounds) > 1 or evaluate:  # IRLS: every round is its own query and certificate
            for i, o in enumerate(rounds, 1):
                p = out.with_name(f"{out.stem}{tag}" + (f"-round{i}" if len(rounds) > 1
                                                        else "") + out.suffix)
                p.write_bytes(o.certificate.to_bytes())
                certs.append(str(p))
        out.write_bytes(final.certificate.to_bytes())
        certs.append(str(out))
    if as_json:
        typer.echo(json.dumps({
            "statistic": spec.statistic, "rounds": len(outcomes),
            "query_ids": [o.query_id for o in outcomes], "result": final.result.to_dict(),
            "sites": sorted(site_of[p] for p in final.contributors if p in site_of),
            "dropped": dropped, "certificates": certs,
            # per site and column, the bucket each site reported (never a count), or
            # its withheld form (DP query; fewer selected rows than min_cell_size)
            "clipped": {site_of[p]: b for p, b in sorted(final.clipped.items())
                        if p in site_of}}, indent=1))
        return
    if evaluate:
        typer.echo(outcomes[-2].result.summary() + "\n")
    typer.echo(final.result.summary())
    if is_dp(final.spec):  # the split plan states, recomputed from the spec (never logged)
        typer.echo(budget_split_line(final.spec))
    if dropped:
        typer.secho(f"WARNING: this result leaves out {', '.join(dropped)}",
                    fg=typer.colors.YELLOW, bold=True, err=True)
    for c in certs[:-1]:
        typer.echo(f"certificate of {'the fit, ' if evaluate else ''}round "
                   f"{certs.index(c) + 1}: {c}")
    if out is not None:
        typer.echo(f"certificate: {out}")


@app.command()
def plan(
    query: Annotated[Path, typer.Argument(help="query spec (JSON) with privacy zcdp/approx")],
    compute: Annotated[int, typer.Option(help="number of compute nodes")] = 3,
    rows: Annotated[int | None, typer.Option(
        help="the owners' expected total rows the errors are computed for (default: the "
             "sample's rows, or 1000 synthetic rows spread over the bounds)")] = None,
    sample: Annotated[Path | None, typer.Option(
        help="a table you hold with the query's columns (CSV or Parquet: public pilot data, "
             "a synthetic copy, a site's public extract): plan on its design, reweighted to "
             "--rows, instead of rows spread uniformly over the bounds")] = None,
    runs: Annotated[int, typer.Option(
        help="simulated releases (noise drawn from its exact law, seeded) for the measured "
             "spread of every number; 0: first-order sd only")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Print what a DP query would cost (rho, epsilon/delta) and the expected noise error of
    each released number, without running, spending or contacting anything."""
    from statledger.nodes.data import load_table
    from statledger.protocol.calibration import Z95, budget_split_line
    from statledger.protocol.calibration import plan as dp_plan
    from statledger.protocol.query import QuerySpec

    if compute < 1:
        _fail("--compute: at least one compute node", 2)
    if rows is not None and rows < 1:
        _fail("--rows: at least one row", 2)
    if runs < 0:
        _fail("--runs: zero or more", 2)
    spec = _read_or_fail(str(query), lambda: QuerySpec.parse(query.read_bytes()))
    table = None
    if sample is not None:  # load_table's messages name the file and the fault, never a cell
        table = _read_or_fail(f"--sample {sample}", lambda: load_table(sample))
    try:
        p = dp_plan(spec, compute, rows if rows is not None or table is not None else 1000,
                    sample=table, runs=runs)
    except StatledgerError as exc:
        msg = str(exc)
        if msg.startswith("sample: "):  # a fault of the sample (never one of its values)
            _fail(f"--sample {sample}: {msg.removeprefix('sample: ')}", 2)
        _fail(f"{query}: {msg}", 2)
        return
    if as_json:
        typer.echo(json.dumps(p, indent=1))
        return
    typer.echo(f"{p['statistic']}: costs rho = {p['rho']:g} of each owner's budget "
               f"(zCDP; = ({p['epsilon']:.3g}, {p['delta']:.2g})-DP), noise from "
               f"{p['compute_nodes']} compute nodes")
    typer.echo(budget_split_line(spec))
    if p["design"] == "sample":
        typer.echo(f"expected noise on the design of {sample}, reweighted to {p['rows']} rows:")
        clipped = [f"{c} ({b})" for c, b in p["sample_clipped"].items() if b != "0"]
        if clipped:
            typer.echo(f"  (the sample has values outside the bounds, clipped as the owners' "
                       f"would be: {', '.join(clipped)})")
    else:
        typer.echo(f"expected noise on {p['rows']} synthetic rows spread over the bounds:")
    if p["design_caveat"]:
        typer.secho(f"  CAUTION: these {p['statistic']} figures are {p['design_caveat']}",
                    fg=typer.colors.YELLOW, bold=True)
    head = "sample" if p["design"] == "sample" else "synthetic"
    sim = p["simulated"]
    typer.echo(f"  {'number':<24} {head:>14} {'noise sd':>12} {'95% ±':>12}"
               + (f" {'sim. 95% err':>13}" if sim else ""))

    def num(x: float | None) -> float:
        return float("nan") if x is None else x

    for path, sd in p["value_sd"].items():
        line = (f"  {path:<24} {num(p['values'].get(path)):>14.6g} {sd:>12.4g} "
                f"{Z95 * sd:>12.4g}")
        if sim:
            s = sim.get(path, {})
            line += f" {num(s.get('p95_abs_error')):>13.4g}"
            if s.get("undefined"):
                line += f"  (undefined in {100 * s['undefined']:.3g}% of runs)"
        typer.echo(line)
    typer.echo("noise sd: first order, as a release reports it; 95% ±: 1.96 sd" + (
        f"; sim. 95% err: the error {p['simulated_runs']} simulated releases stay within "
        "95% of the time (--json: their robust sd too)" if sim else ""))


@app.command()
def query(
    spec_file: Annotated[Path, typer.Argument(help="query spec (JSON)")],
    config: Annotated[Path, typer.Option(help="the querier's config.toml, as written by "
                                              "`statledger node init`")],
    dataset: Annotated[str | None, typer.Option(help="dataset name at the providers")] = None,
    out: Annotated[Path | None, typer.Option(help="write the certificate here")] = None,
    evaluate: Annotated[bool, typer.Option(
        "--evaluate", help="after a linear or logistic regression, evaluate the published "
                           "model (model_evaluation; OUT gets the evaluation's certificate, "
                           "OUT-fit the fit's)")] = False,
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
    _check_evaluate(evaluate, spec.statistic)
    try:
        with q:
            outcomes = run_rounds(q, spec, datasets=dataset,
                                  progress=lambda m: typer.echo(f"  {m}...", err=True))
            if evaluate:
                fit = outcomes[-1]
                outcomes += _evaluate_fit(q, fit, dataset, None)
                typer.echo(fit.result.summary() + "\n")
                if out is not None:
                    p = out.with_name(f"{out.stem}-fit{out.suffix}")
                    p.write_bytes(fit.certificate.to_bytes())
                    typer.echo(f"certificate of the fit: {p}")
    except StatledgerError as exc:
        _fail(str(exc))
        return
    typer.echo(outcomes[-1].result.summary())
    if out is not None:
        out.write_bytes(outcomes[-1].certificate.to_bytes())
        typer.echo(f"certificate: {out}")


def _check_evaluate(evaluate: bool, statistic: str) -> None:
    from statledger.protocol.stats.evaluation import MODELS

    if evaluate and statistic not in MODELS:
        _fail(f"--evaluate: {statistic!r} publishes no model (one of {', '.join(MODELS)})", 2)


def _evaluate_fit(q: Any, fit: Any, datasets: str | None, on_round: Any) -> list[Any]:
    """``--evaluate``: the model_evaluation of the model ``fit`` published, on the same
    owners (its spec names the fit's query id; protocol/stats/evaluation.py)."""
    from statledger.protocol.stats.evaluation import evaluation_spec

    spec = evaluation_spec(fit.spec, fit.query_id, fit.result.to_dict())
    typer.echo(f"  evaluating the published model of query {fit.query_id[:16]}...", err=True)
    out = q.run(spec, datasets=datasets,
                progress=lambda m: typer.echo(f"  {m}...", err=True))
    if on_round is not None:
        on_round(out)
    return [out]


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
    show: Annotated[bool, typer.Option(
        "--show", help="also print the certified query in words and the result table")
                    ] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="list every numbered verification step, and print progress "
                                "on stderr as each step passes")] = False,
) -> None:
    """Verify certificates offline: one plain-language verdict per file (every numbered step
    with --verbose).  Progress goes to stderr: with --verbose, or on a terminal once a file
    takes over a second.  Exit 0: all valid; 1: some invalid; 2: not a certificate."""
    from statledger.verifier.certificate import SUFFIX as CERT_SUFFIX
    from statledger.verifier.show import inspect, render_text, terminal_safe, verdict
    from statledger.verifier.verify import load_trust

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
            shown = inspect(_read_cert(f), policy, source=str(f),
                            progress=_verify_progress(f, always=verbose))
        except MalformedError as exc:
            code = max(code, 2)
            if as_json:
                typer.echo(json.dumps({"file": str(f), "valid": False, "step": 1,
                                       "reason": f"not a certificate: {exc}", "party": None,
                                       "steps": []}))
            else:
                typer.secho(f"{f}: NOT A CERTIFICATE: {exc}", fg=typer.colors.RED)
            continue
        report = shown.report
        if not report.valid:
            code = max(code, 1)
        if as_json:
            obj = report.to_json_obj()
            obj["verdict"] = verdict(shown)
            if show:
                obj["show"] = render_text(shown, verbose=verbose)
            typer.echo(json.dumps(obj))
            continue
        status = "VALID" if report.valid else "INVALID"
        color = typer.colors.GREEN if report.valid else typer.colors.RED
        typer.secho(f"{f}: {status}", fg=color, bold=True)
        typer.echo(terminal_safe(f"  {verdict(shown)}"))
        typer.echo(terminal_safe(f"  trust: {report.trust}"))
        if verbose:
            for s in report.steps:
                mark = "ok " if s.ok else "FAIL"
                typer.echo(terminal_safe(f"  ({s.step:>2}) {mark} {s.title}: {s.detail}"))
        if not report.valid:
            typer.echo(terminal_safe(f"  -> step {report.step} failed: {report.reason}"
                                     + (f" (blamed: {report.party})" if report.party else "")))
        if show:
            typer.echo("")
            typer.echo(render_text(shown, verbose=verbose))
    raise typer.Exit(code)


def _verify_progress(path: Path, *, always: bool) -> Any:
    """A verifier progress hook that prints each passed step and the next one on stderr:
    always (--verbose), or on a terminal once the file has taken a second."""
    import time

    from statledger.verifier.report import STEPS

    t0 = time.perf_counter()
    tty = sys.stderr.isatty()

    def hook(step: int, _detail: str) -> None:
        elapsed = time.perf_counter() - t0
        if not (always or (tty and elapsed >= 1.0)):
            return
        nxt = min((n for n in STEPS if n > step), default=None)
        typer.echo(f"{path.name} [{elapsed:6.2f} s] step {step} ok"
                   + (f"; checking step {nxt} ({STEPS[nxt]})..." if nxt is not None else ""),
                   err=True)

    return hook


def _read_cert(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MalformedError(f"{path}: cannot read: {exc.strerror}") from None


@app.command("show")
def show_cmd(
    cert: Annotated[Path, typer.Argument(help="a certificate file")],
    html: Annotated[Path | None, typer.Option(
        "--html", help="write one self-contained HTML page here (no network, no script)")
                    ] = None,
    trust: Annotated[Path | None, typer.Option(
        help="the consortium's trust file (statledger consortium export-trust)")] = None,
) -> None:
    """Show what a certificate certifies (verified first): the query in words, the result
    table and, with --html, a page with the plot, the parties and every step's verdict.
    Exit 0: valid; 1: invalid (the page says why and shows no result); 2: not a
    certificate."""
    from statledger.verifier.show import inspect, render_html, render_text, verdict
    from statledger.verifier.verify import load_trust

    try:
        policy = load_trust(trust) if trust is not None else None
    except MalformedError as exc:
        _fail(str(exc), 2)
        return
    try:
        shown = inspect(_read_cert(cert), policy, source=str(cert))
    except MalformedError as exc:
        _fail(f"{cert}: NOT A CERTIFICATE: {exc}", 2)
        return
    typer.echo(verdict(shown))
    typer.echo(render_text(shown))
    if html is not None:
        try:
            html.write_text(render_html(shown), encoding="utf-8")
        except OSError as exc:
            _fail(f"{html}: cannot write: {exc.strerror}", 2)
        typer.echo(f"page: {html}")
    raise typer.Exit(0 if shown.report.valid else 1)


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
    pull: Annotated[bool, typer.Option(
        "--pull", help="provider only: open no port, poll the ledger for the queries that "
                       "address this owner (docs/owners.md)")] = False,
) -> None:
    """Serve one party (blocks until stopped)."""
    from statledger.nodes.serve import main as serve_main

    sys.exit(serve_main(["--role", role, "--config", str(config)] + (["--pull"] if pull else [])))


@node_app.command("check")
def node_check(
    config: Annotated[Path, typer.Option(help="the party's config (TOML)")],
    timeout: Annotated[float, typer.Option(help="seconds to wait for the ledger")] = 5.0,
) -> None:
    """Validate a node's set-up: config, trust file, keys against the consortium, policy and
    data files, the ledger.  One verdict line each; exit 0: ready, 1: a check failed."""
    from statledger.nodes.check import CheckLine, check_node

    def say(line: CheckLine) -> None:
        color = {"ok": typer.colors.GREEN, "warn": typer.colors.YELLOW}.get(
            line.verdict, typer.colors.RED)
        typer.secho(f"{line.verdict:<4}", fg=color, nl=False)
        typer.echo(f" {line.what}: {line.detail}")

    lines = check_node(config, timeout=timeout, say=say)
    failed = [ln for ln in lines if ln.verdict == "FAIL"]
    warned = [ln for ln in lines if ln.verdict == "warn"]
    if failed:
        typer.secho(f"NOT READY: {len(failed)} check(s) failed", fg=typer.colors.RED, bold=True)
        raise typer.Exit(1)
    typer.secho("READY" + (f" ({len(warned)} warning(s))" if warned else ""),
                fg=typer.colors.GREEN, bold=True)


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
    origin: Annotated[str, typer.Option(
        help="the log's name (C2SP origin), e.g. diabetes-network.example.org/log")
                      ] = "statledger.local/log",
    port_base: Annotated[int, typer.Option(
        help="ports in order from here: the ledger, compute-1..N, then the providers")
                         ] = 8100,
    vertical: Annotated[list[str], typer.Option(
        help="A:B, two providers that answer vertically partitioned queries together: a "
             "fresh pair secret (0600) in each one's folder and in its config (repeatable)")
                        ] = [],  # noqa: B006
) -> None:
    """Create keys (0600), TOML configs (0600, paths relative to each config's folder) and a
    strict, commented policy.toml per data owner for every party of a deployment."""
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
    pairs: list[tuple[str, str]] = []
    for item in vertical:
        a, _, b = item.partition(":")
        if not a or not b or a == b or ":" in b:
            _fail(f"--vertical {item!r}: expected A:B, two different provider ids", 2)
        for pid in (a, b):
            if pid not in providers:
                _fail(f"--vertical {item!r}: {pid!r} is not a --provider", 2)
        if (a, b) in pairs or (b, a) in pairs:
            _fail(f"--vertical {item!r}: the pair is given twice", 2)
        pairs.append((a, b))
    try:
        partners = _init_pair_secrets(base_dir, pairs)
        layout = init_cluster(base_dir, n_compute=compute, providers=providers,
                              queriers=querier, host=host, witness_quorum=quorum,
                              threshold=threshold, origin=origin, port_base=port_base,
                              relative_paths=True, policy_templates=True,
                              vertical_partners=partners)
    except StatledgerError as exc:
        _fail(str(exc), 2)
        return
    for p in layout.parties.values():
        typer.echo(f"{p.party_id:<14} {p.role:<9} {p.url or '-':<26} {p.config_path}")
    typer.echo(f"witness quorum: {quorum} of {compute} compute nodes")
    typer.echo(f"decryption threshold: {threshold or compute} of {compute} compute nodes")
    for a, b in pairs:
        typer.echo(f"vertical partners: {a} and {b} (pair secret: {partners[a][b].name})")


def _init_pair_secrets(base: Path, pairs: list[tuple[str, str]]
                       ) -> dict[str, dict[str, Path]]:
    """Per pair ``(A, B)``: ``BASE/A/vertical-B.key`` and ``BASE/B/vertical-A.key``, the same
    fresh 32-byte secret in hex, mode 0600.  Re-running init keeps an existing pair secret
    (as it keeps keys); two existing files that differ are refused."""
    from statledger.nodes.keys import write_pair_secret

    out: dict[str, dict[str, Path]] = {}
    for a, b in pairs:
        pa = base.resolve() / a / f"vertical-{b}.key"
        pb = base.resolve() / b / f"vertical-{a}.key"
        old = {p.read_text(encoding="utf-8").strip() for p in (pa, pb) if p.is_file()}
        if len(old) > 1:
            raise MalformedError(f"vertical: {pa} and {pb} hold different pair secrets; "
                                 "remove one (both owners must hold the same secret)")
        try:
            kept = bytes.fromhex(old.pop()) if old else None
            if kept is not None and len(kept) < 16:
                raise ValueError
        except ValueError:
            raise MalformedError(f"vertical: the existing pair secret of {a} and {b} is not "
                                 "hex of at least 16 bytes; remove its files") from None
        write_pair_secret([pa, pb], kept)
        out.setdefault(a, {})[b] = pa
        out.setdefault(b, {})[a] = pb
    return out


if __name__ == "__main__":
    app()
