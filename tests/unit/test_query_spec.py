"""QuerySpec parsing: accept cases and their reject twins; canonical bytes and query id."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol.query import QuerySpec


def base() -> dict[str, Any]:
    return {
        "version": 1,
        "statistic": "mean",
        "columns": ["age"],
        "filters": [{"column": "sex", "op": "==", "value": "F"}],
        "group_by": ["arm"],
        "categories": {"sex": ["F", "M"], "arm": ["A", "B"]},
        "bounds": {"age": [0, 120]},
        "min_cell_size": 3,
    }


def test_accept_full_spec_and_defaults() -> None:
    spec = QuerySpec.parse(base())
    assert spec.statistic == "mean"
    assert spec.bounds["age"] == (0.0, 120.0)
    assert spec.scale == 2**16
    assert spec.max_rows == 2**20
    assert spec.min_providers == 2
    assert spec.privacy.mechanism == "none"
    obj = spec.to_json_obj()
    assert obj["privacy"] == {"mechanism": "none"}
    assert QuerySpec.parse(obj) == spec
    assert QuerySpec.parse(json.dumps(obj)) == spec
    assert QuerySpec.parse(json.dumps(obj).encode()) == spec


def test_default_min_cell_size_is_5() -> None:
    d = base()
    del d["min_cell_size"]
    assert QuerySpec.parse(d).min_cell_size == 5


def test_privacy_variants() -> None:
    for p in (
        {"mechanism": "zcdp", "rho": 0.5},
        {"mechanism": "approx", "epsilon": 1.0, "delta": 1e-6},
        {"mechanism": "approx", "epsilon": 1, "delta": 0},
    ):
        d = base()
        d["privacy"] = p
        assert QuerySpec.parse(d).privacy.mechanism == p["mechanism"]


def _mut(path: list[Any], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(base())
    cur: Any = d
    for p in path[:-1]:
        cur = cur[p]
    if value is _DELETE:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


_DELETE = object()

REJECTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {**base(), "colour": "red"}, "colour"),
    ("unknown nested field", _mut(["filters", 0, "extra"], 1), "filters"),
    ("version 2", _mut(["version"], 2), "version"),
    ("version string", _mut(["version"], "1"), "version"),
    ("missing version", _mut(["version"], _DELETE), "version"),
    ("missing statistic", _mut(["statistic"], _DELETE), "statistic"),
    ("unknown statistic", _mut(["statistic"], "meen"), "unknown statistic 'meen'"),
    ("statistic wrong type", _mut(["statistic"], 3), "statistic"),
    ("columns not list", _mut(["columns"], "age"), "columns"),
    ("missing bounds", _mut(["bounds"], {}), "age"),
    ("bounds reversed", _mut(["bounds", "age"], [120, 0]), "bounds.age"),
    ("bounds equal", _mut(["bounds", "age"], [1, 1]), "bounds.age"),
    ("bounds 3 items", _mut(["bounds", "age"], [0, 1, 2]), "bounds.age"),
    ("bounds string", _mut(["bounds", "age"], ["0", "1"]), "bounds.age"),
    ("bounds too big for scale", _mut(["bounds", "age"], [0, 2.0**40]), "bounds.age"),
    ("min_cell_size 0", _mut(["min_cell_size"], 0), "min_cell_size"),
    ("min_cell_size fraction", _mut(["min_cell_size"], 3.5), "min_cell_size"),
    ("min_cell_size string", _mut(["min_cell_size"], "3"), "min_cell_size"),
    ("min_cell_size bool", _mut(["min_cell_size"], True), "min_cell_size"),
    ("min_providers 0", _mut(["min_providers"], 0), "min_providers"),
    ("max_rows 0", _mut(["max_rows"], 0), "max_rows"),
    ("max_rows huge", _mut(["max_rows"], 2**33), "max_rows"),
    ("scale 3", _mut(["scale"], 3), "scale"),
    ("scale 0", _mut(["scale"], 0), "scale"),
    ("scale 2^33", _mut(["scale"], 2**33), "scale"),
    ("filter undeclared column", _mut(["filters", 0, "column"], "zip"), "filters[0].column"),
    ("filter bad op", _mut(["filters", 0, "op"], "=~"), "filters[0].op"),
    ("filter order op on categorical", _mut(["filters", 0, "op"], "<"), "filters[0].op"),
    ("filter undeclared category", _mut(["filters", 0, "value"], "X"), "filters[0].value"),
    ("filter list without in", _mut(["filters", 0, "value"], ["F"]), "filters[0]"),
    ("group_by undeclared", _mut(["group_by"], ["site"]), "group_by[0]"),
    ("group_by three", _mut(["group_by"], ["arm", "sex", "x"]), "group_by"),
    ("group_by duplicate", _mut(["group_by"], ["arm", "arm"]), "group_by"),
    ("group_by also a column", _mut(["columns"], ["arm"]), "columns"),
    ("empty categories", _mut(["categories", "arm"], []), "categories.arm"),
    ("duplicate category", _mut(["categories", "arm"], ["A", "A"]), "categories.arm"),
    ("numeric and categorical", _mut(["categories", "age"], ["1"]), "categories.age"),
    ("zcdp negative", _mut(["privacy"], {"mechanism": "zcdp", "rho": -1}), "privacy.rho"),
    ("zcdp missing rho", _mut(["privacy"], {"mechanism": "zcdp"}), "privacy.rho"),
    (
        "approx delta 1",
        _mut(["privacy"], {"mechanism": "approx", "epsilon": 1, "delta": 1}),
        "delta",
    ),
    ("unknown mechanism", _mut(["privacy"], {"mechanism": "magic"}), "privacy"),
    ("privacy extra", _mut(["privacy"], {"mechanism": "none", "rho": 1}), "privacy"),
    ("params unknown for mean", _mut(["params"], {"bins": [1, 2]}), "params.bins"),
    ("big int", _mut(["max_rows"], 2**60), "2^53"),
]


@pytest.mark.parametrize("name,obj,match", REJECTS, ids=[r[0] for r in REJECTS])
def test_reject(name: str, obj: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=re.escape(match)):
        QuerySpec.parse(obj)


@pytest.mark.parametrize(
    "text,match",
    [
        ('{"version":1,"version":1,"statistic":"count"}', "duplicate"),
        ('{"version":1,"statistic":"mean","columns":["x"],"bounds":{"x":[0,NaN]}}', "NaN"),
        (
            '{"version":1,"statistic":"mean","columns":["x"],"bounds":{"x":[0,Infinity]}}',
            "Infinity",
        ),
        ('{"version":1,"statistic":"mean","columns":["x"],"bounds":{"x":[0,1e999]}}', "overflow"),
        ('{"version":1,"statistic":"count"', "invalid JSON"),
        ('{"version":1,"statistic":"count"} x', "invalid JSON"),
        ("[1]", "JSON object"),
        ('"count"', "JSON object"),
        ('{"version":1,"statistic":"\\ud800"}', "Unicode"),
    ],
)
def test_reject_json_text(text: str, match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        QuerySpec.parse(text)
    with pytest.raises(MalformedError):
        QuerySpec.parse(text.encode())


def test_reject_bad_utf8_and_python_nan() -> None:
    with pytest.raises(MalformedError, match="UTF-8"):
        QuerySpec.parse(b'{"version":1,"statistic":"count\xff"}')
    d = base()
    d["bounds"] = {"age": [0, float("nan")]}
    with pytest.raises(MalformedError, match="bounds"):
        QuerySpec.parse(d)
    with pytest.raises(MalformedError):
        QuerySpec.parse({1: 2})
    with pytest.raises(MalformedError):
        QuerySpec.parse(None)


def test_canonical_bytes_stable_under_key_order_and_whitespace() -> None:
    d = base()
    text1 = json.dumps(d)
    text2 = json.dumps(dict(reversed(list(d.items()))), indent=3)
    a, b = QuerySpec.parse(text1), QuerySpec.parse(text2)
    assert a.canonical_bytes() == b.canonical_bytes()
    assert a.digest == b.digest
    assert len(a.digest) == 64 and int(a.digest, 16) >= 0
    # explicit defaults hash like implicit ones
    explicit = {**d, "scale": 65536, "max_rows": 2**20, "privacy": {"mechanism": "none"}}
    assert QuerySpec.parse(explicit).digest == a.digest
    # ints and equal floats canonicalize identically
    d2 = copy.deepcopy(d)
    d2["bounds"]["age"] = [0.0, 120.0]
    assert QuerySpec.parse(d2).digest == a.digest
    # sorted keys, no whitespace
    cb = a.canonical_bytes()
    assert b" " not in cb.replace(b'" ', b"")
    assert cb.startswith(b'{"bounds":{"age":[0,120]},"categories":{"arm":["A","B"],"sex"')


def test_canonical_unicode_is_utf8_not_escaped() -> None:
    d = base()
    d["categories"]["sex"] = ["F", "Ménage"]
    spec = QuerySpec.parse(d)
    assert "Ménage".encode() in spec.canonical_bytes()
    assert b"\\u" not in spec.canonical_bytes()


MUTATIONS: list[tuple[list[Any], Any]] = [
    (["statistic"], "sum"),
    (["columns"], ["age2"]),
    (["filters", 0, "value"], "M"),
    (["filters", 0, "op"], "!="),
    (["group_by"], ["sex"]),
    (["categories", "arm"], ["A", "B", "C"]),
    (["categories", "arm"], ["B", "A"]),
    (["bounds", "age"], [0, 121]),
    (["bounds", "age"], [0, 120.5]),
    (["min_cell_size"], 4),
    (["min_providers"], 3),
    (["max_rows"], 1000),
    (["scale"], 1024),
    (["privacy"], {"mechanism": "zcdp", "rho": 0.1}),
]


@pytest.mark.parametrize("path,value", MUTATIONS)
def test_query_id_changes_with_any_field(path: list[Any], value: Any) -> None:
    ref = QuerySpec.parse(base()).digest
    d = _mut(path, value)
    if path == ["columns"]:
        d["bounds"]["age2"] = [0, 1]
    if path == ["group_by"]:
        d["filters"] = []
    assert QuerySpec.parse(d).digest != ref


def test_frozen() -> None:
    spec = QuerySpec.parse(base())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        spec.statistic = "sum"  # type: ignore[misc]


def test_integral_float_is_the_same_json_number() -> None:
    # RFC 8785 writes 3.0 as 3: JSON has one number type, so 3.0 and 3 are one spec.
    d = base()
    d["min_cell_size"] = 3.0
    assert QuerySpec.parse(d).min_cell_size == 3
    assert QuerySpec.parse(d).digest == QuerySpec.parse(base()).digest
