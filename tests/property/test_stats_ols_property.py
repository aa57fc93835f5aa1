"""Property: linear_regression and logistic encodings are additive over any split of the
rows into sites, and every site's vector lies inside the declared layout ranges."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

BOUNDS = {"a": [-3.0, 5.0], "b": [0.0, 2.5], "y": [0.0, 1.0]}

rows = st.lists(
    st.tuples(
        st.floats(-10, 10, allow_nan=False), st.floats(-1, 4, allow_nan=False),
        st.sampled_from([0.0, 1.0]), st.integers(0, 3),
    ),
    min_size=0, max_size=30,
)


def _spec(statistic: str, scale: int) -> QuerySpec:
    params: dict[str, Any] = {"target": "y", "features": ["a", "b"]}
    if statistic == "logistic_irls":
        params["beta"] = [0.3, -1.2, 2.0]
    return QuerySpec.parse({
        "version": 1, "statistic": statistic, "columns": ["a", "b", "y"], "bounds": BOUNDS,
        "scale": scale, "max_rows": 30, "params": params,
    })


@settings(max_examples=40, deadline=None)
@given(rows=rows, statistic=st.sampled_from(["linear_regression", "logistic_irls",
                                             "logistic_approx"]),
       scale=st.sampled_from([2**8, 2**16, 10**3]))
def test_additive_and_in_range(rows: list[tuple[float, float, float, int]], statistic: str,
                               scale: int) -> None:
    spec = _spec(statistic, scale)
    stat = get(statistic)
    layout = stat.layout(spec)

    def table(rs: list[tuple[float, float, float, int]]) -> dict[str, np.ndarray]:
        return {c: np.array([r[i] for r in rs], dtype=np.float64)
                for i, c in enumerate(["a", "b", "y"])}

    whole = stat.encode(spec, table(rows))
    layout.check(whole)
    tot = [0] * len(layout)
    for site in range(4):
        v = stat.encode(spec, table([r for r in rows if r[3] == site]))
        layout.check(v)
        tot = [x + y for x, y in zip(tot, v, strict=True)]
    assert tot == whole
    res = stat.decode(spec, tot)
    assert res.to_dict()["statistic"] == statistic
