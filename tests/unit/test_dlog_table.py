"""Baby-step giant-step discrete log: exact or DecryptionError, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from statledger.proofs import dlog
from statledger.proofs.dlog import DlogTable, load_or_build
from statledger.proofs.errors import DecryptionError, MalformedError
from statledger.proofs.group import G, Point, Scalar, base_mul
from statledger.settings import reset_settings

SMALL = 1 << 12  # T: one lookup covers -4096..4096; S = 8193


def _pt(m: int) -> Point:
    return base_mul(Scalar.reduce(m))


@pytest.fixture(scope="module")
def table() -> DlogTable:
    return DlogTable.build(SMALL)


def test_table_entries_match_direct_computation(table: DlogTable) -> None:
    by_j = dlog._prefixes([_pt(j).to_affine()[0] for j in range(1, SMALL + 1)])  # type: ignore[index]
    assert np.array_equal(np.sort(by_j), table.keys)
    order = table.idx.astype(np.int64) - 1
    assert np.array_equal(by_j[order], table.keys)
    assert sorted(table.idx.tolist()) == list(range(1, SMALL + 1))


@pytest.mark.parametrize("size", [1, 2, 7, 2048, 2049, 4097, 4098, 10000])
def test_odd_table_sizes(size: int) -> None:
    t = DlogTable.build(size)
    for m in {0, 1, -1, size, -size, size + 1, -size - 1, 3 * size + 2, -(5 * size) - 3}:
        assert t.solve(_pt(m), 6 * size + 10) == m


@pytest.mark.parametrize(
    "m",
    [0, 1, -1, 2, -2, SMALL, -SMALL, SMALL + 1, -SMALL - 1, 8193, -8193, 8194, 2 * 8193,
     -(2 * 8193), 123456, -123456, 999_999, -999_999],
)
def test_exact_values(table: DlogTable, m: int) -> None:
    assert table.solve(_pt(m), 1_000_000) == m


@pytest.mark.parametrize("bound", [0, 1, 5, SMALL, SMALL + 1, 8193, 50_000, 1_000_003])
def test_exact_at_plus_minus_bound_and_rejects_just_past(table: DlogTable, bound: int) -> None:
    assert table.solve(_pt(bound), bound) == bound
    assert table.solve(_pt(-bound), bound) == -bound
    with pytest.raises(DecryptionError):
        table.solve(_pt(bound + 1), bound)
    with pytest.raises(DecryptionError):
        table.solve(_pt(-bound - 1), bound)


def test_far_values_raise_never_wrong(table: DlogTable) -> None:
    for M in (_pt(2**40), _pt(-(2**40)), _pt(Scalar.random().__int__()), G + G + G + _pt(10**7)):
        with pytest.raises(DecryptionError):
            table.solve(M, 100_000)


def test_solve_many_mixed(table: DlogTable) -> None:
    ms = [0, 5, -5, 70_000, -70_000, 99_999, 12, SMALL]
    assert table.solve_many([_pt(m) for m in ms], 100_000) == ms
    with pytest.raises(DecryptionError, match="1 of 3"):
        table.solve_many([_pt(1), _pt(2**50), _pt(-3)], 100_000)
    with pytest.raises(DecryptionError, match="outside the bound"):
        table.solve_many([_pt(1), _pt(100_001), _pt(-3)], 100_000)
    assert table.solve_many([], 10) == []


def test_bad_bounds_and_types(table: DlogTable) -> None:
    with pytest.raises(MalformedError):
        table.solve(_pt(1), -1)
    with pytest.raises(MalformedError):
        table.solve(_pt(1), True)  # type: ignore[arg-type]
    with pytest.raises(DecryptionError, match="bigger table"):
        table.solve(_pt(1), 2**64)
    with pytest.raises(TypeError):
        table.solve(1, 10)  # type: ignore[arg-type]


def test_prefix_collision_is_resolved_by_recomputation() -> None:
    """A table whose key for j=5 is replaced by the key of x(9G): a lookup hit on 9G's
    prefix then points at j=5, which fails the m*G check; the search must not return 5."""
    t = DlogTable.build(16)
    keys = t.keys.copy()
    idx = t.idx.copy()
    k9 = dlog._prefixes([_pt(9).to_affine()[0]])[0]  # type: ignore[index]
    pos5 = int(np.nonzero(idx == 5)[0][0])
    keys[pos5] = k9
    order = np.argsort(keys, kind="stable")
    bad = DlogTable(16, keys[order], idx[order])
    assert bad.solve(_pt(9), 16) == 9  # both entries sharing the prefix are tried
    with pytest.raises(DecryptionError):
        bad.solve(_pt(5), 16)  # j=5's true key is gone: not found, never wrong


# -- the disk cache ---------------------------------------------------------------------------


def test_cache_roundtrip_and_reuse(tmp_path) -> None:  # type: ignore[no-untyped-def]
    t1 = load_or_build(1000, tmp_path)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["dlog-v1-T1000.bin"]
    data = files[0].read_bytes()
    assert len(data) == dlog._HEADER.size + 12 * 1000
    t2 = load_or_build(1000, tmp_path)
    assert np.array_equal(t1.keys, t2.keys) and np.array_equal(t1.idx, t2.idx)
    assert files[0].read_bytes() == data
    assert t2.solve(_pt(-777), 1000) == -777


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda d: d[:-1],  # truncated
        lambda d: d + b"\x00",  # trailing garbage
        lambda d: b"X" + d[1:],  # bad magic
        lambda d: d[:16] + b"\x00\x00\x00\x02" + d[20:],  # other format version
        lambda d: d[:-5] + bytes([d[-5] ^ 1]) + d[-4:],  # body bit flip -> checksum
        lambda d: b"",
    ],
)
def test_corrupt_cache_is_rejected_and_rebuilt(tmp_path, corrupt) -> None:  # type: ignore[no-untyped-def]
    load_or_build(1000, tmp_path)
    path = tmp_path / "dlog-v1-T1000.bin"
    good = path.read_bytes()
    bad = corrupt(good)
    with pytest.raises(MalformedError):
        DlogTable.from_bytes(bad, 1000)
    path.write_bytes(bad)
    t = load_or_build(1000, tmp_path)
    assert t.solve(_pt(1000), 1000) == 1000
    assert path.read_bytes() == good  # rebuilt and rewritten atomically
    assert [f.name for f in tmp_path.iterdir()] == ["dlog-v1-T1000.bin"]  # no temp files


def test_checksum_consistent_but_wrong_table_fails_spot_check() -> None:
    t = DlogTable.build(64)
    wrong = DlogTable(64, t.keys, np.roll(t.idx, 1))  # every j is wrong
    with pytest.raises(MalformedError, match="spot check"):
        DlogTable.from_bytes(wrong.to_bytes(), 64)
    unsorted = DlogTable(64, t.keys[::-1].copy(), t.idx[::-1].copy())
    with pytest.raises(MalformedError, match="sorted"):
        DlogTable.from_bytes(unsorted.to_bytes(), 64)
    with pytest.raises(MalformedError, match="wrong size"):
        DlogTable.from_bytes(t.to_bytes(), 65)


def test_unwritable_cache_dir_still_works(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_bytes(b"not a directory")
    t = load_or_build(100, blocker / "sub")
    assert t.solve(_pt(-100), 100) == -100


def test_get_table_uses_env_cache_and_memory(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STATLEDGER_CACHE", str(tmp_path))
    monkeypatch.setattr(dlog, "_TABLES", {})
    t = dlog.get_table(3000)
    assert (tmp_path / "dlog-v1-T3000.bin").exists()
    assert dlog.get_table(3000) is t
    assert dlog.discrete_log(_pt(-2999), 5000, table_size=3000) == -2999
    assert dlog.discrete_log_many([_pt(4), _pt(-4999)], 5000, table_size=3000) == [4, -4999]
    monkeypatch.delenv("STATLEDGER_CACHE")
    reset_settings()
    assert str(dlog.cache_dir()).endswith(".cache/statledger")


def test_parallel_build_equals_serial() -> None:
    size = 4 * 4097 * 2 + 100
    a = dlog._build_keys(size, 1)
    b = dlog._build_keys(size, 2)
    assert np.array_equal(a, b)


def test_pure_python_backend_matches(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The int fallback (no gmpy2) builds the same table and finds the same logs."""
    from statledger.proofs.group import FIELD

    with_backend = DlogTable.build(3000)
    monkeypatch.setattr(dlog, "_gmpy", None)
    monkeypatch.setattr(dlog, "_fe", int)
    monkeypatch.setattr(dlog, "_P", FIELD)
    plain = DlogTable.build(3000)
    assert np.array_equal(with_backend.keys, plain.keys)
    assert np.array_equal(with_backend.idx, plain.idx)
    ms = [0, 1, -3000, 3001, -(2**20) + 5, 2**21]
    assert plain.solve_many([_pt(m) for m in ms], 2**21) == ms
    with pytest.raises(DecryptionError):
        plain.solve(_pt(2**21 + 1), 2**21)
