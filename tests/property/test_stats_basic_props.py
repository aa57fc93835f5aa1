"""Properties of every simple statistic: encodings stay inside the declared layout (also at
and beyond the bounds), encoding is additive over a split of the rows, and removing one row
changes each entry by at most its declared sensitivity."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

BASE: dict[str, Any] = {
    "version": 1,
    "bounds": {"x": [-50, 50], "y": [0, 10]},
    "categories": {"g": ["a", "b"], "c": ["p", "q", "r"]},
    "min_cell_size": 1,
    "max_rows": 40,
    "scale": 1024,
}
SPECS: list[dict[str, Any]] = [
    {"statistic": "count", "group_by": ["g"]},
    {"statistic": "sum", "columns": ["x"], "group_by": ["g"]},
    {"statistic": "mean", "columns": ["x"]},
    {"statistic": "variance", "columns": ["x"], "group_by": ["g"]},
    {"statistic": "std", "columns": ["y"]},
    {"statistic": "covariance", "columns": ["x", "y"], "group_by": ["g"]},
    {"statistic": "correlation", "columns": ["x", "y"]},
    {"statistic": "cosine", "columns": ["x", "y"]},
    {"statistic": "histogram", "columns": ["x"], "params": {"bins": [-50, -10, 0, 10, 50]}},
    {"statistic": "crosstab", "group_by": ["g", "c"], "params": {"value": "y"}},
    {"statistic": "max", "columns": ["x"]},
    {"statistic": "min", "columns": ["x"], "params": {"domain": [-5, 5]}},
    {"statistic": "set_union", "columns": ["c"]},
    {"statistic": "set_intersection", "columns": ["c"]},
    {"statistic": "bool_or", "columns": ["y"]},
    {"statistic": "bool_and", "columns": ["y"]},
]

values = st.one_of(
    st.floats(-200, 200, allow_nan=False),
    st.sampled_from([-50.0, 50.0, 0.0, 10.0, -50.000001, 50.000001]),
)
rows = st.lists(
    st.tuples(values, values, st.sampled_from(["a", "b"]), st.sampled_from(["p", "q", "r"])),
    min_size=0,
    max_size=40,
)


def table(rs: list[tuple[float, float, str, str]]) -> dict[str, np.ndarray]:
    return {
        "x": np.array([r[0] for r in rs], dtype=np.float64),
        "y": np.array([r[1] for r in rs], dtype=np.float64),
        "g": np.array([r[2] for r in rs], dtype=object),
        "c": np.array([r[3] for r in rs], dtype=object),
    }


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SPECS), rows, st.integers(0, 40))
def test_layout_additivity_sensitivity(extra: dict[str, Any], rs: list[Any], cut: int) -> None:
    spec = QuerySpec.parse({**BASE, **extra})
    stat = get(spec.statistic)
    layout = stat.layout(spec)
    full = stat.encode(spec, table(rs))
    layout.check(full)
    a, b = stat.encode(spec, table(rs[:cut])), stat.encode(spec, table(rs[cut:]))
    layout.check(a)
    layout.check(b)
    if spec.statistic not in ("max", "min", "set_union", "set_intersection", "bool_or", "bool_and"):
        assert [x + y for x, y in zip(a, b, strict=True)] == full  # sums are additive
    if rs:
        sens = stat.sensitivity(spec)
        fewer = stat.encode(spec, table(rs[1:]))
        assert all(abs(x - y) <= s for x, y, s in zip(full, fewer, sens, strict=True))
    stat.decode(spec, full).to_dict()
    assert stat.encode(spec, table(rs)) == full  # deterministic
