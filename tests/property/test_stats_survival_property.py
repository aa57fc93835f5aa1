"""Property: kaplan_meier counts are additive over sites, in range, and the decoded curve
is a non-increasing step function in [0, 1] with lower <= S <= upper."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

STAT = get("kaplan_meier")
SPEC = QuerySpec.parse({
    "version": 1, "statistic": "kaplan_meier", "columns": ["t", "e"],
    "bounds": {"t": [0, 20], "e": [0, 1]}, "categories": {"g": ["x", "y"]}, "group_by": ["g"],
    "min_cell_size": 1, "max_rows": 40,
    "params": {"time": "t", "event": "e", "times": [1, 2.5, 4, 7, 9, 12]},
})

rows = st.lists(
    st.tuples(st.floats(0.01, 15, allow_nan=False), st.sampled_from([0.0, 1.0]),
              st.sampled_from(["x", "y"]), st.integers(0, 2)),
    min_size=0, max_size=40,
)


def _table(rs: list[tuple[float, float, str, int]]) -> dict[str, np.ndarray]:
    return {
        "t": np.array([r[0] for r in rs], dtype=np.float64),
        "e": np.array([r[1] for r in rs], dtype=np.float64),
        "g": np.array([r[2] for r in rs], dtype=object),
    }


@settings(max_examples=60, deadline=None)
@given(rows=rows)
def test_km_additive_and_monotone(rows: list[tuple[float, float, str, int]]) -> None:
    layout = STAT.layout(SPEC)
    whole = STAT.encode(SPEC, _table(rows))
    layout.check(whole)
    tot = [0] * len(layout)
    for site in range(3):
        v = STAT.encode(SPEC, _table([r for r in rows if r[3] == site]))
        layout.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    assert tot == whole
    res = STAT.decode(SPEC, tot)
    for g in res.values["groups"]:
        if g["suppressed"]:
            continue
        s = np.array(g["survival"])
        assert np.all(np.diff(s) <= 0) and np.all((s >= 0) & (s <= 1))
        lo, hi = np.array(g["ci_lower"]), np.array(g["ci_upper"])
        assert np.all(lo <= s + 1e-12) and np.all(s <= hi + 1e-12)
        assert g["n"] == sum(1 for r in rows if r[2] == g["group"]["g"])
