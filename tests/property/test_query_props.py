"""Property tests: canonical bytes, strict parsing, fixed point, query ids."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.protocol.canonical import canonical_bytes, parse_json
from statledger.protocol.fixedpoint import fixed_bounds, to_fixed
from statledger.protocol.query import QuerySpec

SETTINGS = settings(max_examples=60, deadline=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not (2**53 <= abs(f) < 1e21 and f == int(f))
    )
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=5), children, max_size=4
        )
    ),
    max_leaves=12,
)


@SETTINGS
@given(json_values)
def test_canonical_is_a_fixed_point_of_parse(v: object) -> None:
    b = canonical_bytes(v)
    again = parse_json(b)
    assert canonical_bytes(again) == b


@SETTINGS
@given(st.dictionaries(st.text(max_size=4), st.integers(-100, 100), max_size=6))
def test_canonical_ignores_insertion_order(d: dict[str, int]) -> None:
    rev = dict(reversed(list(d.items())))
    assert canonical_bytes(d) == canonical_bytes(rev)
    assert parse_json(json.dumps(d, indent=2)) == d


@SETTINGS
@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([1, 16, 1024, 2**16, 10, 1000]),
)
def test_to_fixed_monotone_and_close(a: float, b: float, scale: int) -> None:
    x, y = min(a, b), max(a, b)
    fx, fy = to_fixed(x, scale), to_fixed(y, scale)
    assert fx <= fy
    assert abs(fx / scale - x) <= 0.5 / scale + abs(x) * 1e-15


@SETTINGS
@given(st.floats(-100, 100), st.floats(0.001, 100), st.floats(-1e3, 1e3))
def test_clipped_value_within_fixed_bounds(lo: float, width: float, v: float) -> None:
    hi = lo + width
    c = min(max(v, lo), hi)
    flo, fhi = fixed_bounds(lo, hi, 2**16)
    assert flo <= to_fixed(c, 2**16) <= fhi


@SETTINGS
@given(st.integers(1, 50), st.integers(1, 2**30), st.floats(-1e3, 1e3), st.floats(0.5, 1e3))
def test_query_roundtrip_and_id(k: int, rows: int, lo: float, width: float) -> None:
    obj = {
        "version": 1,
        "statistic": "variance",
        "columns": ["x"],
        "bounds": {"x": [lo, lo + width]},
        "min_cell_size": k,
        "max_rows": rows,
    }
    spec = QuerySpec.parse(obj)
    again = QuerySpec.parse(spec.canonical_bytes())
    assert again == spec
    assert again.digest == spec.digest
    obj2 = dict(obj, min_cell_size=k + 1)
    assert QuerySpec.parse(obj2).digest != spec.digest


@SETTINGS
@given(
    st.integers(min_value=2**53, max_value=2**70)
    | st.integers(max_value=-(2**53), min_value=-(2**70))
)
def test_unsafe_ints_rejected_both_ways(i: int) -> None:
    import pytest

    from statledger.proofs.errors import MalformedError

    with pytest.raises(MalformedError):
        canonical_bytes({"n": i})
    with pytest.raises(MalformedError):
        parse_json(f'{{"n": {i}}}')
