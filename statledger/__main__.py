"""``python -m statledger ...``: the same command-line interface as the ``statledger`` script."""

from statledger.nodes.cli import app

if __name__ == "__main__":
    app(prog_name="statledger")
