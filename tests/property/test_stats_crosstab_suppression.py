"""Property: after suppression no line has exactly one suppressed cell (unless it has no
other cell), every small non-zero cell is suppressed, and the rule is deterministic."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.protocol.stats.base import suppress_cells

grids = st.integers(1, 5).flatmap(
    lambda c: st.lists(st.lists(st.integers(0, 12), min_size=c, max_size=c), min_size=1, max_size=5)
)


@settings(max_examples=200, deadline=None)
@given(grids, st.integers(1, 8))
def test_suppression_invariants(grid: list[list[int]], k: int) -> None:
    m = suppress_cells(grid, k)
    R, C = len(grid), len(grid[0])
    for i in range(R):
        for j in range(C):
            if 0 < grid[i][j] < k:
                assert m[i][j]
    for i in range(R):
        assert sum(m[i]) != 1 or C == 1
    if R > 1:
        for j in range(C):
            assert sum(m[i][j] for i in range(R)) != 1
    assert suppress_cells(grid, k) == m
