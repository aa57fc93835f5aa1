"""Small real public datasets bundled with statledger, each split into 4 "sites".

The files are plain CSV inside this package (``<name>_site<k>.csv``), read through
:mod:`importlib.resources`, so they work from a source tree, an editable install and a wheel.
Source, citation, licence and the split rule of every dataset are in ``README.md`` next to
this module.

``load(name)`` returns the pooled table (sites concatenated in site order),
``load(name, site="site2")`` one site.  Numeric columns come back as ``float64`` arrays,
categorical columns (declared below, e.g. waltons' ``group``) as arrays of ``str`` objects --
exactly the ``table`` shape that :meth:`statledger.protocol.stats.base.Statistic.encode` takes.
"""

from __future__ import annotations

import csv
import io
from importlib import resources
from importlib.resources.abc import Traversable

import numpy as np

from statledger.proofs.errors import MalformedError

__all__ = ["NAMES", "load", "sites", "path", "categorical_columns"]

#: Bundled datasets, in a fixed order.
NAMES: tuple[str, ...] = ("diabetes", "breast_cancer", "waltons", "rossi")

_N_SITES = 4

#: Columns read as categories (``str``); every other column is numeric (``float64``).
_CATEGORICAL: dict[str, frozenset[str]] = {
    "diabetes": frozenset(),
    "breast_cancer": frozenset(),
    "waltons": frozenset({"group"}),
    "rossi": frozenset(),
}


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise MalformedError(f"unknown dataset {name!r}; bundled: {', '.join(NAMES)}")


def sites(name: str) -> list[str]:
    """Site names of dataset ``name``: ``["site1", "site2", "site3", "site4"]``."""
    _check_name(name)
    return [f"site{k}" for k in range(1, _N_SITES + 1)]


def categorical_columns(name: str) -> frozenset[str]:
    """Columns of ``name`` that are categorical (returned as ``str`` objects)."""
    _check_name(name)
    return _CATEGORICAL[name]


def path(name: str, site: str) -> Traversable:
    """The packaged CSV file of one site (an :mod:`importlib.resources` traversable).

    Use ``resources.as_file(path(...))`` when a real filesystem path is needed.
    """
    if site not in sites(name):
        raise MalformedError(f"unknown site {site!r} of dataset {name!r}")
    return resources.files(__name__).joinpath(f"{name}_{site}.csv")


def _read_site(name: str, site: str) -> tuple[list[str], list[list[str]]]:
    text = path(name, site).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise MalformedError(f"{name}/{site}: empty file")
    header, body = rows[0], rows[1:]
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise MalformedError(f"{name}/{site}: row {i + 1} has {len(r)} fields")
    return header, body


def load(name: str, site: str | None = None) -> dict[str, np.ndarray]:
    """Load dataset ``name`` (one ``site``, or all sites pooled when ``site`` is None).

    Returns ``{column: array}`` in file column order; numeric columns are ``float64``,
    categorical columns ``object`` arrays of ``str``.
    """
    wanted = sites(name) if site is None else [site]
    header: list[str] | None = None
    body: list[list[str]] = []
    for s in wanted:
        h, b = _read_site(name, s)
        if header is None:
            header = h
        elif h != header:
            raise MalformedError(f"{name}/{s}: header differs from the first site")
        body.extend(b)
    if header is None:  # pragma: no cover - sites() is never empty
        raise MalformedError(f"{name}: no sites")
    cats = _CATEGORICAL[name]
    out: dict[str, np.ndarray] = {}
    for j, col in enumerate(header):
        values = [r[j] for r in body]
        if col in cats:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            out[col] = arr
        else:
            out[col] = np.array([float(v) for v in values], dtype=np.float64)
    return out
