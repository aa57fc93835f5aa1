"""Every CLI command is documented in the README and answers --help."""

from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from statledger.nodes.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, ...]]:
    root = get_command(app)
    out: list[tuple[str, ...]] = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        sub = getattr(cmd, "commands", None)
        if sub:
            out.extend((name, s) for s in sub)
        else:
            out.append((name,))
    return out


def test_cli_has_the_issue_commands() -> None:
    names = {" ".join(c) for c in _commands()}
    assert {"demo", "run", "query", "verify", "audit", "node init", "node serve"} <= names


@pytest.mark.parametrize("cmd", _commands(), ids=lambda c: " ".join(c))
def test_command_documented_in_readme(cmd: tuple[str, ...]) -> None:
    assert f"statledger {' '.join(cmd)}" in README, f"README does not document {cmd}"


@pytest.mark.parametrize("cmd", _commands(), ids=lambda c: " ".join(c))
def test_command_help(cmd: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_command_fails() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code != 0


def test_example_specs_parse() -> None:
    from statledger.protocol.query import QuerySpec

    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
    assert examples
    for p in examples:
        QuerySpec.parse(p.read_bytes())
