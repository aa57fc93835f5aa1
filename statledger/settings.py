"""The one settings object: every knob that is not part of a party's configuration file.

Each field is read from the environment variable ``STATLEDGER_<FIELD>`` (upper case) when the
settings are first asked for, and can be overridden in code with :func:`configure` (e.g. a
benchmark forcing the prover onto one process) or :func:`overridden` (a ``with`` block);
:func:`reset_settings` makes the next use read the environment again.
Values are validated: a malformed variable raises a ``pydantic.ValidationError`` naming it.
(The environment is read here, by pydantic's own coercion of strings, rather than through
pydantic-settings: that package costs ~0.1 s of import on every cold command, a tenth of a
cold ``statledger verify``.)

* ``STATLEDGER_CACHE`` (default ``~/.cache/statledger``): folder of the discrete-log tables
  and of the range-proof generators.
* ``STATLEDGER_DLOG_TABLE_BITS`` (20): the default discrete-log table has 2^bits entries.
* ``STATLEDGER_DLOG_BUILD_WORKERS`` (auto): processes that build a table (auto: every core
  for tables of 2^22 entries or more, else one).
* ``STATLEDGER_RANGE_PARALLEL`` (auto): the range prover's helper process; ``true`` /
  ``false`` force it on / off, auto turns it on when a core is idle.
* ``STATLEDGER_RANGE_FOLD_THRESHOLD`` (512): inner-product folds of at least this many pairs
  use the helper.
* ``STATLEDGER_RANGE_MSM_THRESHOLD`` (2048): range-proof MSMs of at least this many terms use
  the helper.
* ``STATLEDGER_MSM_PARALLEL_THRESHOLD`` (2000): ``msm(..., workers>1)`` splits MSMs of at
  least this many terms across processes.

This module imports nothing of statledger's own, so the lowest layer (``statledger.proofs``)
may read it without breaking the one-way import rule.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Settings", "configure", "get_settings", "overridden", "reset_settings"]


def _default_cache() -> Path:
    return Path.home() / ".cache" / "statledger"


ENV_PREFIX = "STATLEDGER_"


class Settings(BaseModel):
    """Process-wide knobs (see the module docstring for the variables)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cache: Path = Field(default_factory=_default_cache)
    dlog_table_bits: int = Field(default=20, ge=8, le=30)
    dlog_build_workers: int | None = Field(default=None, ge=1, le=256)
    range_parallel: bool | None = None
    range_fold_threshold: int = Field(default=512, ge=1)
    range_msm_threshold: int = Field(default=2048, ge=1)
    msm_parallel_threshold: int = Field(default=2000, ge=1)


_current: Settings | None = None


def get_settings() -> Settings:
    """The settings in force (read from the environment on first use)."""
    global _current
    if _current is None:
        _current = Settings.model_validate(_from_environment())
    return _current


def _from_environment() -> dict[str, str]:
    """``STATLEDGER_<FIELD>`` variables that are set, by field name (validated, and coerced
    from their strings, by :class:`Settings`)."""
    return {name: os.environ[ENV_PREFIX + name.upper()] for name in Settings.model_fields
            if ENV_PREFIX + name.upper() in os.environ}


def configure(base: Settings | None = None, /, **overrides: Any) -> Settings:
    """Put new settings in force: ``base`` (default: those in force) with ``overrides``.

    ``saved = get_settings(); configure(range_parallel=False); ...; configure(saved)``.
    """
    global _current
    start = get_settings() if base is None else base
    _current = Settings(**{**start.model_dump(), **overrides}) if overrides else start
    return _current


def reset_settings() -> None:
    """Forget the settings in force; the next :func:`get_settings` re-reads the environment."""
    global _current
    _current = None


@contextmanager
def overridden(**overrides: Any) -> Iterator[Settings]:
    """``with overridden(range_parallel=False): ...`` -- restored on exit."""
    global _current
    saved = _current
    try:
        yield configure(**overrides)
    finally:
        _current = saved
