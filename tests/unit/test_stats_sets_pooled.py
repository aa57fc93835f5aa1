"""set union / intersection and boolean OR / AND across sites vs Python sets / any / all.

Every answer is checked twice: read off the PET bits alone (``decode_gated``, an exact
query: nothing decrypted, the bit per entry is "the sum is 0") and from the decrypted sums
(``decode``, the path of a DP query); both must agree with the pooled rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

UNIVERSE = ["A", "B", "C", "D", "E"]


def spec(stat: str, **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1,
        "statistic": stat,
        "columns": ["code"] if stat.startswith("set") else ["flag"],
        "categories": {"code": UNIVERSE},
        "bounds": {"flag": [0, 1], "z": [0, 100]},
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def run(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> list[int]:
    st = get(s.statistic)
    lay = st.layout(s)
    tot = [0] * len(lay)
    for t in sites:
        v = st.encode(s, t)
        lay.check(v)
        tot = [a + b for a, b in zip(tot, v, strict=True)]
    return tot


def answer(s: QuerySpec, sites: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """The result from the gate bits (exact path), checked equal to the one from the sums."""
    st = get(s.statistic)
    tot = run(s, sites)
    small = [v == 0 for v in tot]  # the PET with k = 1: "the sum is 0"
    gated = st.decode_gated(s, [None] * len(tot), small).to_dict()
    assert gated == st.decode(s, tot).to_dict()
    return gated


def codes(*xs: str) -> dict[str, np.ndarray]:
    return {"code": np.array(list(xs), dtype=object)}


def test_union_and_intersection() -> None:
    ss = [codes("A", "B", "B", "Z"), codes("B", "C"), codes("B", "A", "E")]
    u = answer(spec("set_union"), ss)
    i = answer(spec("set_intersection"), ss)
    want_u = set().union(*[set(t["code"]) for t in ss]) & set(UNIVERSE)
    want_i = set.intersection(*[set(t["code"]) for t in ss])
    assert set(u["members"]) == want_u and u["members"] == sorted(want_u)
    assert set(i["members"]) == want_i == {"B"}
    # only the set is published: no per-element count, no provider count
    assert "counts" not in u and "providers" not in u and "providers" not in i


def test_empty_site_empties_intersection_not_union() -> None:
    ss = [codes("A"), codes()]
    assert answer(spec("set_union"), ss)["members"] == ["A"]
    s = spec("set_intersection")
    # the empty site lacks every element
    assert get("set_intersection").encode(s, codes()) == [1] * 5
    assert answer(s, ss)["members"] == []
    assert get("set_intersection").decode_gated(s, [None] * 5, [False] * 5).to_dict()[
        "members"] == []


def test_filters_apply_and_undeclared_values_reported() -> None:
    s = spec("set_union", filters=[{"column": "z", "op": ">=", "value": 50}])
    t = {"code": np.array(["A", "B", "Q"], dtype=object), "z": np.array([10.0, 60.0, 70.0])}
    vec, rep = get("set_union").encode_with_report(s, t)
    assert vec == [0, 1, 0, 0, 0]
    assert rep.n_undeclared_category == 1 and rep.n_filtered_out == 1


@pytest.mark.parametrize(
    "site_flags,want_or,want_and",
    [
        ([[0, 0], [0], []], False, False),
        ([[0, 1], [1], []], True, False),
        ([[1, 1], [1], []], True, True),  # empty site is vacuously true for AND
        ([[1], [1, 0.5]], True, True),
        ([[0, 0]], False, False),
    ],
)
def test_bool_or_and(site_flags: list[list[float]], want_or: bool, want_and: bool) -> None:
    ss = [{"flag": np.array(f, dtype=float)} for f in site_flags]
    r_or = answer(spec("bool_or"), ss)
    r_and = answer(spec("bool_and"), ss)
    assert r_or["value"] is want_or
    assert r_and["value"] is want_and
    pooled = np.concatenate([s["flag"] for s in ss])
    assert want_or == bool(np.any(pooled != 0))
    assert want_and == bool(np.all(pooled != 0))


@pytest.mark.parametrize(
    "stat,kw,match",
    [
        ("set_union", {"columns": ["flag"]}, "categories.flag"),
        ("set_union", {"columns": []}, "columns"),
        ("set_intersection", {"group_by": ["code"], "columns": []}, "columns|group_by"),
        ("bool_or", {"columns": ["code"]}, "bounds.code"),
        ("bool_and", {"params": {"x": 1}}, "params.x"),
    ],
)
def test_validation_rejects(stat: str, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        spec(stat, **kw)


def test_layout_sensitivity_and_decode_twins() -> None:
    s = spec("set_union")
    lay = get("set_union").layout(s)
    assert lay.labels == [f"has({e})" for e in UNIVERSE]
    assert get("set_intersection").layout(spec("set_intersection")).labels == [
        f"lacks({e})" for e in UNIVERSE]
    assert set(lay.ranges) == {(0, 1)}
    assert get("set_union").sensitivity(s) == [1] * 5
    assert get("bool_or").sensitivity(spec("bool_or")) == [1]
    assert get("bool_or").layout(spec("bool_or")).labels == ["any_true"]
    assert get("bool_and").layout(spec("bool_and")).labels == ["any_false"]
    with pytest.raises(MalformedError, match="totals"):
        get("set_union").decode(s, [1] * 4)
    with pytest.raises(MalformedError, match="totals"):
        get("bool_or").decode(spec("bool_or"), [1, 1])
    # withheld sums without the gate bits do not decode; bits of the wrong length, or a
    # decrypted sum next to the bits, are refused
    with pytest.raises(MalformedError, match="gate bits"):
        get("set_union").decode(s, [None] * 5)
    with pytest.raises(MalformedError, match="gate bits"):
        get("set_union").decode_gated(s, [None] * 5, [True] * 4)
    with pytest.raises(MalformedError, match="decrypts nothing"):
        get("set_union").decode_gated(s, [1] + [None] * 4, [False] * 5)
    text = get("set_union").decode(s, [1, 0, 0, 0, 2]).summary()
    assert "True" in text and "False" in text
