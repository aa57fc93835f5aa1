"""The statistics: one module per statistic, each registering itself in :data:`REGISTRY`.

To add a statistic module, append its name to ``_MODULES`` (one line); the module calls
``register(MyStatistic())`` at import time.
"""

from __future__ import annotations

from importlib import import_module

from statledger.protocol.stats.base import (
    REGISTRY,
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    get,
    register,
)

__all__ = ["REGISTRY", "Layout", "LocalReport", "Statistic", "StatResult", "get", "register"]

_MODULES: tuple[str, ...] = (
    "basic",
    "moments",
    "histogram",
    "crosstab",
    "extrema",
    "sets",
    "ols",
    "survival",
    "logistic",
    "evaluation",
    "cox",
    "classical",
    "workload",
    "vertical",
)

for _name in _MODULES:
    import_module(f"statledger.protocol.stats.{_name}")
