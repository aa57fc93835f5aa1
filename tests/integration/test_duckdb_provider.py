"""A provider node serving its datasets with ``engine = "duckdb"`` (a Parquet file and an
SQLite table) in a real cluster: the published linear regression and histogram equal the
decode of the in-memory encoders' pooled vectors, and the certificate verifies."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from statledger.nodes.data import load_table
from statledger.protocol import calibration
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

OLS = {"version": 1, "statistic": "linear_regression", "columns": ["a", "b", "y"],
       "bounds": {"a": [-4.0, 4.0], "b": [0.0, 10.0], "y": [-20.0, 20.0]},
       "params": {"target": "y", "features": ["a", "b"]}, "max_rows": 5000}
HIST = {"version": 1, "statistic": "histogram", "columns": ["b"],
        "bounds": {"b": [0.0, 10.0], "a": [-4.0, 4.0]},
        "params": {"bins": [0.0, 2.5, 5.0, 7.5, 10.0]}, "max_rows": 5000,
        "filters": [{"column": "a", "op": ">", "value": -1.0}]}


def _cols(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1.5, n)
    b = rng.uniform(-1, 11, n)
    y = 1.0 + 2.0 * a - 0.5 * b + rng.normal(0, 1, n)
    a[::11] = np.nan
    return {"a": a, "b": b, "y": y}


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    d = tmp_path_factory.mktemp("duck-sites")
    pq.write_table(pa.table(_cols(1, 900)), d / "a.parquet")
    con = sqlite3.connect(d / "b.sqlite")
    con.execute("CREATE TABLE rows (a, b, y)")
    c = _cols(2, 700)
    con.executemany("INSERT INTO rows VALUES (?, ?, ?)",
                    [[None if np.isnan(v) else float(v) for v in r]
                     for r in zip(c["a"], c["b"], c["y"], strict=True)])
    con.commit()
    con.close()
    return {"site-a": {"path": str(d / "a.parquet"), "engine": "duckdb"},
            "site-b": {"path": str(d / "b.sqlite"), "table": "rows", "engine": "duckdb"}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            sites: dict[str, dict[str, Any]]) -> Iterator[Any]:
    from statledger.nodes.demo import start_cluster

    c = start_cluster(tmp_path_factory.mktemp("duck-cluster"),
                      {p: {"warehouse": d} for p, d in sites.items()}, n_compute=2)
    try:
        yield c
    finally:
        c.stop()


def _expected(spec: QuerySpec, sites: dict[str, dict[str, Any]]) -> dict[str, Any]:
    total: list[int] | None = None
    for d in sites.values():
        v, _ = calibration.wire_encode(spec, load_table(d["path"], table=d.get("table")))
        total = v if total is None else [x + y for x, y in zip(total, v, strict=True)]
    assert total is not None
    return get(spec.statistic).decode(spec, total).to_dict()


@pytest.mark.parametrize("obj", [OLS, HIST], ids=["ols", "histogram"])
def test_duckdb_sites_answer_exactly(cluster: Any, sites: dict[str, dict[str, Any]],
                                     obj: dict[str, Any]) -> None:
    from statledger.nodes.demo import querier_for
    from statledger.verifier.verify import verify_certificate

    spec = QuerySpec.parse(obj)
    with querier_for(cluster) as q:
        out = q.run(spec)
    assert out.result.to_dict() == _expected(spec, sites)
    report = verify_certificate(out.certificate.to_bytes())
    assert report.valid, report.reason
