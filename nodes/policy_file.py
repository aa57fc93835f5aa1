"""The commented, strict ``policy.toml`` that ``statledger node init`` writes for each data owner.

Strict means: only what the file lists is answered -- the statistics listed, the columns of
the owner's datasets, the queriers of the deployment, cells of at least
:data:`~statledger.protocol.query.DEFAULT_MIN_CELL_SIZE` rows, at least two owners per query,
a finite zCDP budget, and ``exact = "allow"`` written out with a comment saying that the
budget does not limit exact answers.  Every key is one field of
:class:`~statledger.protocol.policy.ProviderPolicy` (documented field by field in
docs/deployment.md, "Policy file"); the model forbids unknown keys, so a misspelt rule is an
error when the node starts, never a rule silently ignored.

The template is generated from the model's fields: a field this module sets no strict value
for (the privacy fields, for instance) is written commented out with its default and its
description under the marked section, so a new policy field shows up in every new file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.query import DEFAULT_MIN_CELL_SIZE, DEFAULT_MIN_PROVIDERS
from statledger.protocol.stats import REGISTRY

__all__ = ["STRICT_BUDGET_RHO", "policy_template", "dataset_columns"]

#: The zCDP budget per dataset a new policy grants (rho; docs/deployment.md).
STRICT_BUDGET_RHO = 1.0

#: The marker above the fields this module writes commented out (the privacy fields).
PRIVACY_MARKER = "# --- privacy and disclosure fields (docs/deployment.md, \"Policy file\") ---"


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON escapes are TOML escapes
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "model_dump"):
        return _toml(v.model_dump())
    raise TypeError(f"policy template: cannot write {type(v).__name__}")


def dataset_columns(paths: Iterable[str | Path]) -> tuple[list[str], list[str]]:
    """The sorted union of the columns of ``paths`` and the problems met reading them."""
    from statledger.nodes.data import load_table
    from statledger.proofs.errors import StatledgerError

    cols: set[str] = set()
    problems = []
    for p in paths:
        try:
            cols.update(load_table(p))
        except (StatledgerError, OSError) as exc:
            problems.append(f"{p}: {exc}")
    return sorted(cols), problems


def policy_template(party_id: str, queriers: Iterable[str],
                    columns: list[str] | None, problems: Iterable[str] = ()) -> str:
    """A strict, commented ``policy.toml`` for ``party_id``; ``columns`` None leaves
    ``allowed_columns`` empty (nothing answered until the owner lists them)."""
    strict: dict[str, tuple[Any, str]] = {
        "allowed_statistics": (
            sorted(REGISTRY),
            "statistics this node answers; delete the ones you do not want ([] answers none)"),
        "allowed_columns": (
            columns or [],
            "columns a query may touch (filters and groups included): the columns of your "
            "datasets when this file was written; delete the sensitive ones"),
        "allowed_queriers": (
            sorted(queriers),
            "querier party ids this node answers (the consortium's registered queriers)"),
        "min_cell_size": (
            DEFAULT_MIN_CELL_SIZE,
            "refuse a query whose min_cell_size is below this: no released cell, group or "
            "count rests on fewer rows"),
        "min_providers": (
            DEFAULT_MIN_PROVIDERS,
            "refuse a query that may complete with fewer data owners than this"),
        "require_dp": (
            False,
            "true: answer only queries with differential privacy (privacy.mechanism)"),
        "budget_rho": (
            STRICT_BUDGET_RHO,
            "total zCDP budget (rho) per dataset; each DP query is charged once, and the "
            "node refuses once it is spent"),
        "exact": (
            "allow",
            "exact (non-DP) answers spend no rho, so budget_rho does NOT limit them: \"allow\" "
            "answers them without limit (min_cell_size and the differencing history still "
            "apply); \"deny\" or { max = 20, period_days = 30 } (per dataset) limits them"),
    }
    lines = [
        f"# policy.toml -- what the provider node {party_id} answers.",
        "# Written by `statledger node init`; every field is documented in docs/deployment.md",
        "# (\"Policy file\").  Strict: only what is listed here is answered.  Unknown keys are",
        "# an error, so a typo never silently drops a rule.  Restart the node after editing;",
        "# `statledger node check --config config.toml` validates it.",
        "",
    ]
    lines += [f"# note: {p}" for p in problems]
    rest = []
    for name, info in ProviderPolicy.model_fields.items():
        desc = info.description or ""
        if name in strict:
            value, why = strict[name]
            lines += [f"# {why}", f"{name} = {_toml(value)}", ""]
        else:
            rest.append((name, info.default, desc))
    lines.append(PRIVACY_MARKER)
    lines.append("# the defaults, commented out: uncomment a line to set it")
    for name, default, desc in rest:
        lines.append(f"# {name}: {desc}")
        if default is None:
            lines.append(f"# {name} = [...]   (unset by default)")
        else:
            lines.append(f"# {name} = {_toml(default)}")
    return "\n".join(lines) + "\n"
