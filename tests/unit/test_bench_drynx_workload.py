"""The Drynx benchmark's workload is what it claims: seeded, in range, and decodes in the clear
to the float64 reference the benchmark compares against."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_drynx as bd  # noqa: E402

from statledger.nodes.data import load_table  # noqa: E402
from statledger.proofs.errors import MalformedError  # noqa: E402
from statledger.proofs.rangeproof import MAX_BITS, RangeLayout  # noqa: E402
from statledger.protocol.query import QuerySpec  # noqa: E402
from statledger.protocol.stats import get  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], np.ndarray,
                                                            np.ndarray]:
    return bd.generate(tmp_path_factory.mktemp("drynx"), 6000, 3)


def _spec(stat: str, scale: int = 1024, max_rows: int = 60_000) -> QuerySpec:
    return QuerySpec.parse(bd.spec_obj(stat, max_rows, scale))


def test_generate_is_seeded(tmp_path: Path, data: tuple[dict[str, str], np.ndarray,
                                                        np.ndarray]) -> None:
    files, z, y = data
    again, z2, y2 = bd.generate(tmp_path, 6000, 3)
    assert np.array_equal(z, z2) and np.array_equal(y, y2)
    assert Path(files["provider-02"]).read_bytes() == Path(again["provider-02"]).read_bytes()
    _, z3, _ = bd.generate(tmp_path / "other", 6000, 3, seed=bd.SEED + 1)
    assert not np.array_equal(z, z3)


def test_rows_within_public_bounds(data: tuple[dict[str, str], np.ndarray,
                                               np.ndarray]) -> None:
    files, z, y = data
    assert z.shape == (6000, bd.N_FEATURES) and len(files) == 3
    assert np.all(np.abs(z) <= 4.0 + 1e-9)
    assert set(np.unique(y).tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("stat", ["logistic_approx", "logistic_irls"])
def test_layout_fits_the_range_proof(stat: str) -> None:
    lay = get(stat).layout(_spec(stat))
    widths = [hi - lo for lo, hi in lay.ranges]
    assert max(w.bit_length() for w in widths) <= min(MAX_BITS, 64)
    # scale 1024 keeps the padded proof at N = 8192 (the reason it is the default)
    assert RangeLayout.from_spans(widths).total_bits <= 8192
    assert RangeLayout.from_spans(
        [hi - lo for lo, hi in get(stat).layout(_spec(stat, scale=4096)).ranges]
    ).total_bits > 8192


def test_encoded_pipeline_matches_plaintext_reference(
    data: tuple[dict[str, str], np.ndarray, np.ndarray]
) -> None:
    files, z, y = data
    ref = bd.plaintext_reference(z, y)
    for stat, key in (("logistic_approx", "approx"), ("logistic_irls", "irls_round0")):
        spec = _spec(stat)
        st = get(stat)
        vecs = [st.encode(spec, load_table(p)) for p in files.values()]
        totals = [sum(col) for col in zip(*vecs, strict=True)]
        coef = st.decode(spec, totals).to_dict()["coef"]
        diff = bd._max_abs_diff(coef, ref[key])
        assert diff is not None and diff < 1e-4, (stat, diff)
        # twin: dropping one provider's rows no longer matches the pooled reference
        part = [sum(col) for col in zip(*vecs[:2], strict=True)]
        coef2 = st.decode(spec, part).to_dict()["coef"]
        diff2 = bd._max_abs_diff(coef2, ref[key])
        assert diff2 is not None and diff2 > 1e-3


def test_max_abs_diff_rejects_missing_coefficients() -> None:
    assert bd._max_abs_diff([None, 1.0], [0.0, 1.0]) is None
    assert bd._max_abs_diff([0.5, 1.0], [0.0, 1.0]) == pytest.approx(0.5)


def test_rows_beyond_max_rows_are_refused(data: tuple[dict[str, str], np.ndarray,
                                                      np.ndarray]) -> None:
    files, _, _ = data
    spec = _spec("logistic_approx", max_rows=100)
    with pytest.raises(MalformedError):
        get("logistic_approx").encode(spec, load_table(files["provider-01"]))


def test_bad_scale_refused() -> None:
    with pytest.raises(MalformedError, match="scale"):
        _spec("logistic_approx", scale=3)


def test_cpu_snapshot_counts_this_process() -> None:
    import os

    before = bd.cpu_tree()
    x = 0
    for i in range(3_000_000):
        x += i * i
    after = bd.cpu_snapshot({"me": os.getpid()})["me"]
    assert after > before
    assert bd.cpu_snapshot({"gone": 2**22 + 12345})["gone"] == 0.0
