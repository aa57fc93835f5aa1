"""The rows a vertical query's release covers, as each owner records them in its history of
exact answers (protocol/vertical.py ``joined_rows``, protocol/history.py).

Adversary: a partner (or its data changing between two queries) that drops one person from
the join.  Owner A's own selection is the same for both queries, so a history keyed on it
sees nothing; the released sums over the joined rows differ by that one person, so their
difference is that person's values in A's columns.  A records the JOINED rows and the
differencing check refuses the second query."""

from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from statledger.nodes.data import load_table
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import PolicyError
from statledger.protocol import history
from statledger.protocol import vertical as V
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import select_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
A, B = "provider-1", "provider-2"
MAX_ROWS = 48
PAIR = secrets.token_bytes(32)
CFG_A, CFG_B = V.OwnerConfig(A, {B: PAIR}), V.OwnerConfig(B, {A: PAIR})


def _spec() -> QuerySpec:
    obj = json.loads((EXAMPLES / "vertical_ols.json").read_text(encoding="utf-8"))
    obj["max_rows"] = MAX_ROWS
    return QuerySpec.parse(obj)


def _write(src: Path, dst: Path, keep: list[str]) -> Path:
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    by_id = {r[0]: r for r in rows[1:]}
    with dst.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        w.writerows(by_id[p] for p in keep)
    return dst


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("vhist")
    with (EXAMPLES / "vertical" / "diabetes_owner_a.csv").open(encoding="utf-8") as fh:
        a_ids = [r["pid"] for r in csv.DictReader(fh)][:40]
    with (EXAMPLES / "vertical" / "diabetes_owner_b.csv").open(encoding="utf-8") as fh:
        b_all = [r["pid"] for r in csv.DictReader(fh)]
    shared = [p for p in b_all if p in set(a_ids)][:30]
    extra = [p for p in b_all if p not in set(a_ids)][:8]  # ids only B holds
    b1 = shared + extra
    b2 = [p for p in b1 if p != shared[7]]  # the same people but one
    return {
        "a": load_table(_write(EXAMPLES / "vertical" / "diabetes_owner_a.csv",
                               work / "a.csv", a_ids)),
        "b1": load_table(_write(EXAMPLES / "vertical" / "diabetes_owner_b.csv",
                                work / "b1.csv", b1)),
        "b2": load_table(_write(EXAMPLES / "vertical" / "diabetes_owner_b.csv",
                                work / "b2.csv", b2)),
        "a_ids": a_ids, "shared": shared, "b1_ids": b1,
    }


def _run(spec: QuerySpec, qid: str, ta: Any, tb: Any
         ) -> tuple[V.VerticalRows, V.VerticalProducts]:
    _, X = keygen()
    rows = V.a_rows(spec, qid, ta, CFG_A, X)
    return rows, V.b_products(spec, qid, tb, CFG_B, X, rows)


def test_joined_rows_are_the_intersection_at_each_owner(tables: dict[str, Any]) -> None:
    spec, qid = _spec(), "1" * 64
    rows, prods = _run(spec, qid, tables["a"], tables["b1"])
    shared = set(tables["shared"])
    a_ids, b_ids = tables["a_ids"], tables["b1_ids"]
    want_a = np.array([p in shared for p in a_ids])
    want_b = np.array([p in shared for p in b_ids])
    got_a = V.joined_rows(spec, qid, tables["a"], CFG_A, rows, prods)
    got_b = V.joined_rows(spec, qid, tables["b1"], CFG_B, rows)
    assert got_a.dtype == bool and got_a.shape == (len(a_ids),)
    assert np.array_equal(got_a, want_a) and np.array_equal(got_b, want_b)
    assert int(got_a.sum()) == int(got_b.sum()) == len(V.mask_rows(prods.mask, MAX_ROWS))
    # without B's mask, owner A's view is every row it encrypted (its own selection)
    assert V.joined_rows(spec, qid, tables["a"], CFG_A, rows).all()
    # the history round-trips it exactly
    assert np.array_equal(history.unpack_rows(history.pack_rows(got_a)), got_a)


def test_a_partner_dropping_one_person_is_caught_on_the_joined_rows(
        tables: dict[str, Any]) -> None:
    spec = _spec()
    q1, q2 = "2" * 64, "3" * 64
    r1, p1 = _run(spec, q1, tables["a"], tables["b1"])
    r2, p2 = _run(spec, q2, tables["a"], tables["b2"])
    j1 = V.joined_rows(spec, q1, tables["a"], CFG_A, r1, p1)
    j2 = V.joined_rows(spec, q2, tables["a"], CFG_A, r2, p2)
    assert history.symmetric_difference(j1, j2) == 1
    k = spec.min_cell_size
    with pytest.raises(PolicyError, match="differ from those of the earlier exact query") as e:
        history.check_differencing("a", q2, j2, [(q1, j1)], k)
    assert "1 " not in str(e.value) and str(int(j2.sum())) not in str(e.value)  # no count
    # the old record (A's own selection) is the same for both queries: it saw nothing
    sel = select_rows(spec, tables["a"], numeric=["age", "bmi", "bp"]
                      ).report.selected
    assert sel is not None
    history.check_differencing("a", q2, sel, [(q1, sel)], k)
    # owner B's joined rows differ by the same person (its own row left its table)
    b2 = V.joined_rows(spec, q2, tables["b2"], CFG_B, r2)
    assert int(b2.sum()) == int(j2.sum())


def test_joined_rows_needs_the_pair_secret(tables: dict[str, Any]) -> None:
    spec, qid = _spec(), "4" * 64
    rows, prods = _run(spec, qid, tables["a"], tables["b1"])
    with pytest.raises(PolicyError, match="do not allow cross-products"):
        V.joined_rows(spec, qid, tables["a"], V.OwnerConfig(A, {}), rows,
                      prods)
    # another pair secret matches no tag: nothing joined (B would refuse its support rule)
    other = V.OwnerConfig(B, {A: secrets.token_bytes(32)})
    assert not V.joined_rows(spec, qid, tables["b1"], other, rows).any()
