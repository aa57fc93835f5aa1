"""The bundled-dataset loader: shapes, types, sites, pooled = concatenation, strict names."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError
from statledger.protocol import datasets

EXPECTED = {
    "diabetes": (442, 11),
    "breast_cancer": (569, 31),
    "waltons": (163, 3),
    "rossi": (432, 9),
}


@pytest.mark.parametrize("name", datasets.NAMES)
def test_pooled_shape_and_types(name: str) -> None:
    t = datasets.load(name)
    n, k = EXPECTED[name]
    assert len(t) == k
    for col, arr in t.items():
        assert arr.shape == (n,)
        if col in datasets.categorical_columns(name):
            assert arr.dtype == object
            assert all(isinstance(v, str) for v in arr)
        else:
            assert arr.dtype == np.float64
            assert np.all(np.isfinite(arr))


@pytest.mark.parametrize("name", datasets.NAMES)
def test_sites_concatenate_to_pooled(name: str) -> None:
    assert datasets.sites(name) == ["site1", "site2", "site3", "site4"]
    parts = [datasets.load(name, s) for s in datasets.sites(name)]
    pooled = datasets.load(name)
    for col in pooled:
        joined = np.concatenate([p[col] for p in parts])
        assert joined.tolist() == pooled[col].tolist()
    sizes = [len(next(iter(p.values()))) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert all(s > 0 for s in sizes)


def test_path_is_packaged_resource() -> None:
    p = datasets.path("waltons", "site2")
    assert p.is_file()
    with resources.as_file(p) as real:
        assert real.name == "waltons_site2.csv"
        assert real.read_text(encoding="utf-8").startswith("time,event,group\n")


def test_known_values() -> None:
    w = datasets.load("waltons")
    assert sorted(set(w["group"].tolist())) == ["control", "miR-137"]
    assert set(w["event"].tolist()) <= {0.0, 1.0}
    bc = datasets.load("breast_cancer")
    assert int(bc["benign"].sum()) == 357  # UCI: 212 malignant, 357 benign
    r = datasets.load("rossi")
    assert int(r["arrest"].sum()) == 114
    d = datasets.load("diabetes")
    assert d["target"].min() == 25.0 and d["target"].max() == 346.0


@pytest.mark.parametrize(
    ("name", "site"),
    [("nope", None), ("Diabetes", None), ("diabetes", "site0"), ("diabetes", "site5"),
     ("diabetes", "site1 "), ("diabetes", "")],
)
def test_unknown_names_rejected(name: str, site: str | None) -> None:
    with pytest.raises(MalformedError):
        datasets.load(name, site)


def test_unknown_site_path_rejected() -> None:
    with pytest.raises(MalformedError):
        datasets.path("rossi", "site9")
    with pytest.raises(MalformedError):
        datasets.sites("iris")
