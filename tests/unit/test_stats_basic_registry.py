"""Registry, Layout and StatResult basics."""

from __future__ import annotations

import json

import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.stats import REGISTRY, Layout, StatResult, get, register
from statledger.protocol.stats.basic import Mean
from statledger.protocol.stats.moments import Covariance

MINE = {
    "count", "sum", "mean", "variance", "std", "covariance", "correlation", "cosine",
    "histogram", "crosstab", "min", "max", "set_union", "set_intersection", "bool_or",
    "bool_and",
}  # fmt: skip


def test_registry_has_every_simple_statistic() -> None:
    assert MINE <= set(REGISTRY)
    for name in MINE:
        assert get(name).name == name


@pytest.mark.parametrize("bad", ["meen", "", "MEAN", None, 3])
def test_unknown_statistic(bad: object) -> None:
    with pytest.raises(MalformedError, match="unknown statistic"):
        get(bad)  # type: ignore[arg-type]


def test_register_idempotent_but_no_hijack() -> None:
    register(Mean())  # same type again: fine
    assert isinstance(get("mean"), Mean)

    class Fake(Covariance):
        name = "mean"

    with pytest.raises(MalformedError, match="registered twice"):
        register(Fake())
    assert isinstance(get("mean"), Mean)


def test_layout_checks() -> None:
    lay = Layout(["a", "b"], [(0, 3), (-2, 2)])
    lay.check([3, -2])
    assert lay.bits() == [2, 3] and len(lay) == 2
    for bad, match in [
        ([4, 0], "outside"),
        ([0, -3], "outside"),
        ([0], "entries"),
        ([0, 0, 0], "entries"),
        ([0, 1.0], "not an int"),
        ([True, 0], "not an int"),
    ]:
        with pytest.raises(MalformedError, match=match):
            lay.check(bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        Layout(["a"], [(1, 0)])
    with pytest.raises(MalformedError):
        Layout(["a", "b"], [(0, 1)])
    with pytest.raises(MalformedError):
        Layout(["a"], [(0, 1.5)])  # type: ignore[list-item]


def test_stat_result_json_safe() -> None:
    import numpy as np

    r = StatResult(
        "x",
        {"a": None, "b": np.int64(3), "c": (1.5, np.float64(2.0)), "d": {"e": None}},
        header=["k", "v"],
        rows=[["a", float("nan")], ["b", 2.5]],  # the human table may show '.' for NaN
        notes=["n1"],
    )
    d = r.to_dict()
    assert d == {
        "statistic": "x",
        "a": None,
        "b": 3,
        "c": [1.5, 2.0],
        "d": {"e": None},
        "notes": ["n1"],
    }
    assert type(d["b"]) is int and type(d["c"][1]) is float
    json.dumps(d, allow_nan=False)
    text = r.summary()
    assert "2.5" in text and "n1" in text
    with pytest.raises(MalformedError):
        StatResult("x", {"a": object()}).to_dict()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_stat_result_never_publishes_nan_or_inf(bad: float) -> None:
    """A decoder publishes an explicit None (with a note), never NaN or inf: a non-finite
    value in a result is a bug, refused loudly rather than turned into None silently."""
    import numpy as np

    for value in (bad, np.float64(bad), [1.0, bad], {"k": (bad,)}):
        with pytest.raises(MalformedError, match="not finite"):
            StatResult("x", {"a": value}).to_dict()


@pytest.mark.parametrize("name,suggested", [
    ("logistic_regression", "did you mean logistic_approx or logistic_irls?"),
    ("meen", "did you mean mean?"),
    ("kaplan", "did you mean kaplan_meier?"),
    ("linear", "did you mean linear_regression?"),
])
def test_unknown_statistic_suggests_the_likely_names(name: str, suggested: str) -> None:
    with pytest.raises(MalformedError) as exc:
        get(name)
    assert suggested in str(exc.value) and f"{name!r}" in str(exc.value)


@pytest.mark.parametrize("name", ["xyz", "", 3, None])
def test_unknown_statistic_without_a_likely_name_suggests_nothing(name: object) -> None:
    with pytest.raises(MalformedError) as exc:
        get(name)  # type: ignore[arg-type]
    assert "did you mean" not in str(exc.value) and "known: " in str(exc.value)
