"""The ``statledger`` command line (typer)."""

from __future__ import annotations

import typer

app = typer.Typer(help="statledger: a verifiable statistics ledger.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """statledger: a verifiable statistics ledger."""


@app.command()
def demo() -> None:
    """Start a local cluster, run a tour of queries and verify their certificates."""
    typer.echo("statledger demo: the cluster is not built yet.")


if __name__ == "__main__":
    app()
