"""The workload benchmark is what it claims: seeded one-record owners over the stated domain,
all 2-way marginals (~500 cells), the true answers by an independent count, a valid spec for
every strategy and a one-hot proof in every submission (the bench is not run in CI)."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_workload as bw  # noqa: E402

from statledger.protocol import calibration, validity  # noqa: E402
from statledger.protocol.query import QuerySpec  # noqa: E402
from statledger.protocol.stats import workload as wl  # noqa: E402


def test_records_seeded_and_in_domain() -> None:
    a, b = bw.records(300), bw.records(300)
    assert np.array_equal(a, b) and not np.array_equal(a, bw.records(300, seed=bw.SEED + 1))
    assert a.shape == (300, len(bw.SIZES))
    for i, k in enumerate(bw.SIZES):
        assert set(np.unique(a[:, i]).tolist()) <= set(range(k))
        assert len(np.unique(a[:, i])) > 1


def test_workload_shape_and_true_answers() -> None:
    recs = bw.records(40)
    spec = QuerySpec.parse(bw.spec_obj(1.0))
    p = wl.plan(spec)
    assert p.block_offsets()[-1] == 477 and len(p.blocks) == math.comb(6, 2)
    assert validity.tail_bytes(spec) > 0  # one-record owners prove one-hot blocks
    want = []
    for i, j in itertools.combinations(range(len(bw.SIZES)), 2):
        t = np.zeros((bw.SIZES[i], bw.SIZES[j]), dtype=np.int64)
        np.add.at(t, (recs[:, i], recs[:, j]), 1)
        want.extend(t.reshape(-1).tolist())
    assert bw.true_answers(recs).tolist() == [float(v) for v in want]
    for strategy in ("marginals", "hdmm"):
        QuerySpec.parse(bw.spec_obj(1.0, strategy))
    assert len(calibration.wire_encode(spec, bw.table_of(recs[0]))[0]) == 477


def test_error_figures_are_consistent() -> None:
    errs = bw.strategy_errors(1.0)
    assert errs["central_rmse"] == math.sqrt(15 / 2)
    assert errs["hdmm"]["stated_rmse"] <= errs["marginals"]["stated_rmse"]
    assert errs["marginals"]["stated_rmse"] > errs["central_rmse"]
    assert "not available" in errs["identity"]


def test_crypto_run_small() -> None:
    out = bw.crypto(3, 1.0)
    assert out["owners"] == 3 and out["cells"] == 477
    assert out["bytes_per_owner"] > out["onehot_proof_bytes"] > 0
    assert out["rmse"] > 0 and out["stated_rmse"] > 0
