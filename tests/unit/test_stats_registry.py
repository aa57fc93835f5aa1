"""Importing ``statledger.protocol.stats`` alone registers every statistic.

A statistic whose module is missing from ``_MODULES`` is registered only when some other
import happens to load it: ``model_evaluation`` used to appear only after
``statledger.protocol.chain`` was imported, so a verifier or an owner's policy
(``nodes/policy_file.py`` lists ``REGISTRY`` in every new ``policy.toml``) that never touched
the chain called it unknown.  Each check runs in a fresh interpreter, so nothing this test
session imported earlier can mask a missing module.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from typing import Any

import statledger.protocol.stats as stats_pkg

# Modules of protocol/stats that define no statistic (shared helpers).
_HELPERS = {"base", "exact"}


def _statistic_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(list(stats_pkg.__path__))
                  if m.name not in _HELPERS)


def _fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; its last output line is JSON, returned here."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_statistic_module_is_listed() -> None:
    """Every module of protocol/stats but the helpers is in ``_MODULES`` (the registry)."""
    listed = set(stats_pkg._MODULES)
    modules = set(_statistic_modules())
    assert modules - listed == set(), f"append {sorted(modules - listed)} to _MODULES"
    assert listed - modules == set(), f"_MODULES names missing modules {listed - modules}"


def test_package_import_alone_registers_every_module_statistics() -> None:
    """In a fresh interpreter: the registry after ``import statledger.protocol.stats``, then
    after importing each statistic module by name.  A module whose statistics appear only
    when it is imported explicitly is a module the package does not load."""
    got = _fresh(
        "import importlib, json, sys\n"
        "import statledger.protocol.stats as s\n"
        "alone = sorted(s.REGISTRY)\n"
        "chain_loaded = 'statledger.protocol.chain' in sys.modules\n"
        "late = {}\n"
        f"for m in {_statistic_modules()!r}:\n"
        "    before = set(s.REGISTRY)\n"
        "    importlib.import_module('statledger.protocol.stats.' + m)\n"
        "    late[m] = sorted(set(s.REGISTRY) - before)\n"
        "print(json.dumps({'alone': alone, 'late': late, 'chain': chain_loaded}))\n"
    )
    assert got["chain"] is False  # the registry does not lean on protocol.chain
    assert {m: v for m, v in got["late"].items() if v} == {}
    # every statistic the package registers belongs to one of these modules, and the
    # regression: model_evaluation is among them without protocol.chain
    assert "model_evaluation" in got["alone"]
    ours = {n for n, st in stats_pkg.REGISTRY.items()
            if type(st).__module__.startswith("statledger.protocol.stats.")}
    assert set(got["alone"]) == ours


def test_model_evaluation_known_without_chain() -> None:
    """``get('model_evaluation')`` raised "unknown statistic" unless protocol.chain had been
    imported first; a spec naming it parses with the package alone."""
    got = _fresh(
        "import json, sys\n"
        "import statledger.protocol.stats as s\n"
        "print(json.dumps([s.get('model_evaluation').name,\n"
        "                  'statledger.protocol.chain' in sys.modules]))\n"
    )
    assert got == ["model_evaluation", False]


def test_new_policy_lists_every_statistic() -> None:
    """``statledger node init``'s policy template lists the registry: in a fresh interpreter
    that imports the template alone, every statistic (model_evaluation included) is there."""
    got = _fresh(
        "import json, tomllib\n"
        "from statledger.nodes.policy_file import policy_template\n"
        "text = policy_template('owner-1', ['q1'], ['age'])\n"
        "print(json.dumps(tomllib.loads(text)['allowed_statistics']))\n"
    )
    assert set(got) >= {"model_evaluation", "linear_regression", "vertical_regression"}
    assert set(got) == set(_fresh("import json, statledger.protocol.stats as s\n"
                                  "print(json.dumps(sorted(s.REGISTRY)))\n"))
