"""The differencing defence covers every released cell (protocol/history.py, issue 12).

Adversary: a querier -- or several colluding ones, the history is per dataset across all
queriers -- who asks two exact queries over the SAME selected rows whose cells differ by one
row: ``group_by`` two near-identical categorical columns, histogram bins ``[0, 30)`` then
``[0, 31)``, Kaplan-Meier grids one day apart.  Both pass a check on the overall selection
alone; subtracting the released cells gives that one row.  Every case runs the owner's real
code path: ``calibration.wire_encode`` (what the provider encrypts and its local report),
``history.released_sets`` and ``history.check_differencing`` (what
``ProviderNode._account_exact`` calls), and shows the old check (selection only) missed it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from statledger.proofs.errors import MalformedError, PolicyError
from statledger.protocol import calibration, history
from statledger.protocol.datasets import load
from statledger.protocol.query import QuerySpec

K = 5
BOUNDS = {"bmi": [15.0, 50.0], "age": [0.0, 120.0]}


def _table(flip: int = 1) -> dict[str, Any]:
    """diabetes with ``g1`` = sex as a category and ``g2`` = the same but ``flip`` rows."""
    t = dict(load("diabetes"))
    g1 = np.array(["F" if s == 1.0 else "M" for s in t["sex"]], dtype=object)
    g2 = g1.copy()
    for i in range(flip):
        g2[i] = "M" if g1[i] == "F" else "F"
    t["g1"], t["g2"] = g1, g2
    return t


def _spec(**kw: Any) -> QuerySpec:
    base: dict[str, Any] = {"version": 1, "statistic": "sum", "columns": ["bmi"],
                            "bounds": BOUNDS, "max_rows": 1000, "min_cell_size": K}
    base.update(kw)
    return QuerySpec.parse(base)


def _sets(spec: QuerySpec, table: Any) -> tuple[history.RowSets, history.RowSets]:
    """The sets the owner records now, and the overall selection alone (the old record)."""
    _, report = calibration.wire_encode(spec, table)
    assert report.selected is not None
    return history.released_sets(report), history.RowSets.of_masks(report.selected)


def _no_count(msg: str, *counts: int) -> None:
    for n in counts:
        assert not re.search(rf"\b{n}\b", msg), msg


def _grouped(col: str, stat: str = "sum") -> QuerySpec:
    return _spec(statistic=stat, group_by=[col], categories={col: ["F", "M"]},
                 **({"columns": []} if stat == "count" else {}))


@pytest.mark.parametrize("stat", ["sum", "mean", "count", "variance"])
def test_group_by_cells_one_row_apart_are_refused(stat: str) -> None:
    t = _table(flip=1)
    new1, old1 = _sets(_grouped("g1", stat), t)
    new2, old2 = _sets(_grouped("g2", stat), t)
    assert len(new1) == len(new2) == 3  # the selection, then cells F and M
    # the hole: the overall selections are the same rows, the old check answered both
    history.check_differencing("diabetes", "q2", old2, [("q1", old1)], K)
    with pytest.raises(PolicyError, match="dataset diabetes: .*differ from those of the "
                       "earlier exact query q1") as info:
        history.check_differencing("diabetes", "q2", new2, [("q1", new1)], K)
    _no_count(str(info.value), 1, 2, int((t["g1"] == "F").sum()), len(t["age"]))
    # colluders: the earlier answer was another querier's; the history is per dataset
    with pytest.raises(PolicyError, match="earlier exact query q1"):
        history.check_differencing("diabetes", "q3", new2, [("q0", old1), ("q1", new1)], K)


def test_group_by_twins_are_answered() -> None:
    t = _table(flip=1)
    new1, _ = _sets(_grouped("g1"), t)
    same, _ = _sets(_grouped("g1"), t)
    history.check_differencing("diabetes", "q2", same, [("q1", new1)], K)  # identical
    far = _table(flip=K)  # cells differ by K rows each: at the threshold, answered
    new_far, _ = _sets(_grouped("g2"), far)
    history.check_differencing("diabetes", "q2", new_far, [("q1", new1)], K)
    with pytest.raises(PolicyError):  # a larger min_cell_size catches K
        history.check_differencing("diabetes", "q2", new_far, [("q1", new1)], K + 1)
    # the new query's own cells are not compared with each other (disjoint by design)
    history.check_differencing("diabetes", "q1", new1, [], K)
    history.check_differencing("diabetes", "q1", new_far, [("q1", new1)], K)  # same id


def test_crosstab_cells_one_row_apart_are_refused() -> None:
    t = _table(flip=1)
    t["arm"] = np.array(["a" if a < 50 else "b" for a in t["age"]], dtype=object)
    cats = {"g1": ["F", "M"], "g2": ["F", "M"], "arm": ["a", "b"]}

    def ct(col: str) -> QuerySpec:
        return _spec(statistic="crosstab", columns=[], group_by=[col, "arm"],
                     categories={col: cats[col], "arm": cats["arm"]},
                     params={"value": "bmi"})
    new1, old1 = _sets(ct("g1"), t)
    new2, old2 = _sets(ct("g2"), t)
    assert len(new1) == 5
    history.check_differencing("diabetes", "q2", old2, [("q1", old1)], K)
    with pytest.raises(PolicyError, match="differencing attack"):
        history.check_differencing("diabetes", "q2", new2, [("q1", new1)], K)
    history.check_differencing("diabetes", "q3", _sets(ct("g1"), t)[0], [("q1", new1)], K)


def _hist(edges: list[float]) -> QuerySpec:
    return _spec(statistic="histogram", columns=["age"], params={"bins": edges})


def test_histogram_bins_0_30_then_0_31_are_refused() -> None:
    t = load("diabetes")
    age = np.asarray(t["age"])
    at30 = int(np.count_nonzero((age >= 30) & (age < 31)))
    assert 0 < at30 < K  # whoever is 30: in [30, 120] first, in [0, 31) next
    new1, old1 = _sets(_hist([0.0, 30.0, 120.0]), t)
    new2, old2 = _sets(_hist([0.0, 31.0, 120.0]), t)
    assert len(new1) == 3
    history.check_differencing("diabetes", "q2", old2, [("q1", old1)], K)  # the hole
    with pytest.raises(PolicyError) as info:
        history.check_differencing("diabetes", "q2", new2, [("q1", new1)], K)
    _no_count(str(info.value), at30, int(np.count_nonzero(age < 30)))
    # twins: the same bins again; bins that move many rows
    history.check_differencing("diabetes", "q3", _sets(_hist([0.0, 30.0, 120.0]), t)[0],
                               [("q1", new1)], K)
    history.check_differencing("diabetes", "q4", _sets(_hist([0.0, 45.0, 120.0]), t)[0],
                               [("q1", new1)], K)


def test_histogram_bin_against_an_earlier_filtered_selection() -> None:
    """A cell of one statistic against the selection of another: ``sum(bmi) where age >=
    30`` then a histogram whose bin ``[31, 120]`` misses only the 30-year-olds."""
    t = load("diabetes")
    first, _ = _sets(_spec(filters=[{"column": "age", "op": ">=", "value": 30}]), t)
    second, _ = _sets(_hist([0.0, 31.0, 120.0]), t)
    with pytest.raises(PolicyError):
        history.check_differencing("diabetes", "q2", second, [("q1", first)], K)


def _km_table() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    n = 60
    time_ = rng.integers(1, 40, n).astype(np.float64)
    time_[time_ == 11.0] = 12.0  # nobody at 11 ...
    time_[0] = 11.0  # ... but one person
    event = (rng.random(n) < 0.7).astype(np.float64)
    return {"time": time_, "event": event}


def _km(times: list[float]) -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": "kaplan_meier", "columns": ["time", "event"],
        "bounds": {"time": [0.0, 40.0], "event": [0.0, 1.0]}, "max_rows": 1000,
        "min_cell_size": K, "params": {"time": "time", "event": "event", "times": times,
                                       "max_ties": 60}})


def test_kaplan_meier_grids_one_day_apart_are_refused() -> None:
    t = _km_table()
    new1, old1 = _sets(_km([10.0, 20.0, 30.0]), t)
    new2, old2 = _sets(_km([11.0, 20.0, 30.0]), t)
    assert len(new1) == 1 + 1 + 2 * 3  # selection; after the grid; events, censorings
    history.check_differencing("d", "q2", old2, [("q1", old1)], K)
    with pytest.raises(PolicyError):
        history.check_differencing("d", "q2", new2, [("q1", new1)], K)
    history.check_differencing("d", "q3", _sets(_km([10.0, 20.0, 30.0]), t)[0],
                               [("q1", new1)], K)


def test_a_repeat_with_small_cells_is_refused() -> None:
    """The same Kaplan-Meier query twice (a different min_cell_size: another query id): its
    one- and two-row cells differ from the earlier query's OTHER cells by fewer than k rows.
    There is no repeat exemption (a recorded set may never have been released: the next
    test), so the second asking is refused; the same query id (a resumed request) is not."""
    t = _km_table()
    k2 = 2 * K
    s1 = _sets(_km([10.0, 20.0, 30.0]), t)[0]
    again = _sets(QuerySpec.parse({**_km([10.0, 20.0, 30.0]).to_json_obj(),
                                   "min_cell_size": k2}), t)[0]
    assert np.array_equal(again.bits, s1.bits)
    d = np.bitwise_count(s1.bits[:, None, :] ^ s1.bits[None, :, :]).sum(axis=2)
    assert ((d > 0) & (d < k2)).any()
    with pytest.raises(PolicyError, match="earlier exact query q1"):
        history.check_differencing("d", "q2", again, [("q1", s1)], k2)
    history.check_differencing("d", "q1", again, [("q1", s1)], k2)  # the same id: resumed


def _one_row_cell() -> tuple[dict[str, Any], QuerySpec, QuerySpec]:
    """diabetes with ``g`` = "A" for every row but row 17 ("B"); ``sum(bmi) group_by g``
    and the plain ``sum(bmi)``."""
    t = dict(load("diabetes"))
    g = np.array(["A"] * len(t["bmi"]), dtype=object)
    g[17] = "B"
    t["g"] = g
    return t, _spec(group_by=["g"], categories={"g": ["A", "B"]}), _spec()


def test_a_set_equal_to_an_unreleased_recorded_set_is_compared() -> None:
    """The repeat exemption's counterexample (adversary: a querier).  Q1 = ``sum(bmi)
    group_by g`` with cell B one row: the gate withholds B, releases A.  Q2 = the plain
    ``sum(bmi)``: its only set equals Q1's recorded SELECTION (never itself released), so
    the old rule compared it with nothing and answered; Q2 - Q1.A is row 17's bmi.  Now Q2
    is refused, in either order."""
    t, q1, q2 = _one_row_cell()
    s1, s2 = _sets(q1, t)[0], _sets(q2, t)[0]
    assert np.array_equal(s2.bits[0], s1.bits[0])  # the premise: Q2's set is recorded
    with pytest.raises(PolicyError, match="earlier exact query q1") as info:
        history.check_differencing("diabetes", "q2", s2, [("q1", s1)], K)
    _no_count(str(info.value), 1, len(t["bmi"]) - 1, len(t["bmi"]))
    with pytest.raises(PolicyError, match="earlier exact query q2"):  # Q2 first, then Q1
        history.check_differencing("diabetes", "q1", s1, [("q2", s2)], K)


def test_cells_match_the_encoded_counts() -> None:
    """The recorded cells are exactly the rows behind each released count (a histogram's
    bins, a crosstab's cells): the report and the vector agree."""
    t = _table()
    spec = _spec(statistic="histogram", columns=["age"], group_by=["g1"],
                 categories={"g1": ["F", "M"]}, params={"bins": [0.0, 30.0, 60.0, 120.0]})
    values, report = calibration.wire_encode(spec, t)
    sets = history.released_sets(report)
    counts = np.bitwise_count(sets.bits).sum(axis=1)
    assert [int(c) for c in counts[1:]] == values
    assert int(counts[0]) == len(t["age"])


def test_empty_cells_are_legal_sets() -> None:
    n = 20
    sel = np.ones(n, dtype=bool)
    empty = history.RowSets.of_cells(sel, np.zeros(n, dtype=np.int64), 2)  # cell 1 empty
    assert int(np.bitwise_count(empty.bits[2]).sum()) == 0
    history.check_differencing("d", "q2", empty, [("q1", empty)], K)  # two empties: 0
    one = np.zeros(n, dtype=np.int64)
    one[3] = 1  # one row moves into the empty cell: it and the earlier empty differ by 1
    with pytest.raises(PolicyError):
        history.check_differencing("d", "q2", history.RowSets.of_cells(sel, one, 2),
                                   [("q1", empty)], K)


def test_row_sets_encoding_and_reject_twins() -> None:
    rng = np.random.default_rng(3)
    for n, m in ((0, 1), (1, 3), (9, 2), (442, 7)):
        masks = rng.random((m, n)) < 0.5
        rs = history.RowSets.of_masks(masks)
        back = history.RowSets.from_bytes(rs.to_bytes())
        assert back.n == n and np.array_equal(back.bits, rs.bits)
        assert np.array_equal(np.unpackbits(back.bits, axis=1, count=n), masks)
        assert history.set_count(rs.to_bytes()) == m
    # a history written before cells (one set) still reads, as one set
    old = history.pack_rows(np.array([True, False, True]))
    assert len(history.RowSets.from_bytes(old)) == 1 and history.set_count(old) == 1
    blob = history.RowSets.of_masks(rng.random((3, 13)) < 0.5).to_bytes()
    import zlib
    padded = blob[:5] + blob[5:13] + blob[13:17] + zlib.compress(b"\x00\x01" * 3)
    for bad in (blob[:-1], blob + b"\0", b"X" + blob[1:], blob[:16], b"",
                blob[:5] + (17).to_bytes(8, "big") + blob[13:],
                blob[:13] + (4).to_bytes(4, "big") + blob[17:],
                blob[:5] + (1 << 40).to_bytes(8, "big") + blob[13:], padded):
        with pytest.raises(MalformedError):
            history.RowSets.from_bytes(bad)
    sel = np.array([True, True, False])
    for cells, k in ((np.array([0, 0, 0]), 1), (np.array([0, 2, -1]), 2),
                     (np.array([0, -1]), 1), (np.array([0, -2, -1]), 1)):
        with pytest.raises(MalformedError):  # a cell outside the selection or the range
            history.RowSets.of_cells(sel, cells, k)


def test_a_full_history_refuses_without_pruning() -> None:
    history.check_capacity("diabetes", history.MAX_SETS - 3, 3)
    with pytest.raises(PolicyError, match="dataset diabetes: .*history of exact answers is "
                       "full.*differential privacy") as info:
        history.check_capacity("diabetes", history.MAX_SETS - 2, 3)
    assert not re.search(r"\d", str(info.value))


def test_check_cost_is_bounded() -> None:
    """Not a timing test (bench/bench_history.py measures): the check of 50 cells against
    2,000 earlier sets over 10^4 rows finds the one near set, wherever it sits."""
    rng = np.random.default_rng(5)
    n = 10_000
    earlier = history.RowSets.of_masks(rng.random((2_000, n)) < 0.5)
    new_masks = rng.random((50, n)) < 0.5
    new_masks[37] = np.unpackbits(earlier.bits[1_999], count=n).astype(bool)
    new_masks[37][17] ^= True
    with pytest.raises(PolicyError, match="q-late"):
        history.check_differencing(
            "d", "q", history.RowSets.of_masks(new_masks),
            [("q-early", history.RowSets(earlier.bits[:1_000], n)),
             ("q-late", history.RowSets(earlier.bits[1_000:], n))], K)


def _owner(path: Any) -> Any:
    """The provider's own accounting (``ProviderNode._account_exact``: what ``contribute``
    calls for an exact answer) over a real history file, without a ledger."""
    from statledger.nodes import provider_service as ps
    from statledger.protocol.policy import ProviderPolicy

    node = ps.ProviderNode.__new__(ps.ProviderNode)
    node.party_id = "provider-1"
    node.policy = ProviderPolicy()
    node._history = ps._open_history(path)  # noqa: SLF001 - the node's own history file
    return node


def test_the_provider_refuses_the_pair_and_remembers_after_a_restart(tmp_path: Any) -> None:
    t = _table(flip=1)
    s1, s2 = _grouped("g1"), _grouped("g2")
    node = _owner(tmp_path / "history.sqlite")
    node._account_exact("diabetes", "q1", s1, _sets(s1, t)[0])  # noqa: SLF001
    with pytest.raises(PolicyError, match="dataset diabetes: .*earlier exact query q1"):
        node._account_exact("diabetes", "q2", s2, _sets(s2, t)[0])  # noqa: SLF001
    node._account_exact("diabetes", "q1", s2, _sets(s2, t)[0])  # noqa: SLF001 - resumed: once
    node._account_exact("breast_cancer", "q2", s2, _sets(s2, t)[0])  # noqa: SLF001 - per dataset
    node._history.close()  # noqa: SLF001
    node = _owner(tmp_path / "history.sqlite")  # a restart reads the same file
    with pytest.raises(PolicyError, match="earlier exact query q1"):
        node._account_exact("diabetes", "q3", s2, _sets(s2, t)[0])  # noqa: SLF001
    node._account_exact("diabetes", "q4", s1, _sets(s1, t)[0])  # noqa: SLF001 - identical
    # a history written before cells (one selection per query) is read and compared
    sel = _sets(_spec(filters=[{"column": "age", "op": ">=", "value": 30}]), t)[1]
    node._history.execute(  # noqa: SLF001
        "INSERT INTO exact_history VALUES (?, ?, ?, ?)",
        ("diabetes", "q-old", 0.0, history.pack_rows(np.unpackbits(sel.bits[0], count=sel.n)
                                                      .astype(bool))))
    with pytest.raises(PolicyError, match="earlier exact query q-old"):
        node._account_exact("diabetes", "q5", _hist([0.0, 31.0, 120.0]),  # noqa: SLF001
                            _sets(_hist([0.0, 31.0, 120.0]), t)[0])
    node._history.close()  # noqa: SLF001


def test_the_provider_refuses_the_repeat_exemption_pair(tmp_path: Any) -> None:
    """/tmp/r2/repeat_exemption.py through the owner's own accounting: Q1 answered, Q2
    refused (the old code answered both); a resumed Q1 is still accepted once."""
    t, q1, q2 = _one_row_cell()
    node = _owner(tmp_path / "history.sqlite")
    node._account_exact("diabetes", "q1", q1, _sets(q1, t)[0])  # noqa: SLF001
    with pytest.raises(PolicyError, match="earlier exact query q1"):
        node._account_exact("diabetes", "q2", q2, _sets(q2, t)[0])  # noqa: SLF001
    node._account_exact("diabetes", "q1", q1, _sets(q1, t)[0])  # noqa: SLF001 - resumed
    node._history.close()  # noqa: SLF001


def test_the_provider_refuses_when_its_history_is_full(tmp_path: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "MAX_SETS", 6)
    t = _table(flip=0)
    node = _owner(tmp_path / "history.sqlite")
    spec = _grouped("g1")
    node._account_exact("diabetes", "q1", spec, _sets(spec, t)[0])  # noqa: SLF001 - 3 sets
    node._account_exact("diabetes", "q2", spec, _sets(spec, t)[0])  # noqa: SLF001 - 6 sets
    with pytest.raises(PolicyError, match="history of exact answers is full"):
        node._account_exact("diabetes", "q3", spec, _sets(spec, t)[0])  # noqa: SLF001
    node._account_exact("diabetes", "q2", spec, _sets(spec, t)[0])  # noqa: SLF001 - resumed
    node._history.close()  # noqa: SLF001


def test_one_query_with_too_many_cells_is_refused(tmp_path: Any) -> None:
    """/tmp/r2/history_fill.py's opening move (adversary: one querier who would fill the
    never-pruned history with a 1024 x 16-cell histogram and lock every exact answer out):
    more than MAX_CELLS_PER_QUERY cells is refused, from the spec's cell count alone (no
    row count in the message); at the cap it is answered."""
    cap = history.MAX_CELLS_PER_QUERY
    with pytest.raises(PolicyError, match="dataset d: too many released cells for an exact "
                       "answer.*differential privacy") as info:
        history.check_capacity("d", 0, 1 + cap + 1)
    assert str(cap) in str(info.value)
    history.check_capacity("d", 0, 1 + cap)
    t = dict(load("diabetes"))
    n = len(t["age"])
    t["g"] = np.array([f"c{i % 16}" for i in range(n)], dtype=object)
    big = _spec(statistic="histogram", columns=["age"], group_by=["g"],
                categories={"g": [f"c{i}" for i in range(16)]},
                params={"bins": [float(x) for x in np.linspace(0.0, 121.0, 1025)]})
    sets = _sets(big, t)[0]
    assert len(sets) == 1 + 16 * 1024
    node = _owner(tmp_path / "history.sqlite")
    with pytest.raises(PolicyError, match="too many released cells") as info:
        node._account_exact("diabetes", "h1", big, sets)  # noqa: SLF001
    _no_count(str(info.value), n, len(sets))
    # nothing recorded: a plain query after it is answered
    plain = _spec()
    node._account_exact("diabetes", "q1", plain, _sets(plain, t)[0])  # noqa: SLF001
    assert node._history.execute("SELECT count(*) FROM exact_history").fetchone()[0] == 1  # noqa: SLF001
    node._history.close()  # noqa: SLF001


def _record(node: Any, blob: bytes, qid: str = "old") -> None:
    node._history.execute(  # noqa: SLF001
        "INSERT INTO exact_history VALUES ('diabetes', ?, 0, ?)", (qid, blob))


@pytest.mark.parametrize("case", ["truncated", "count+1", "count 0", "rows 0, no set",
                                  "garbage", "empty", "huge count", "trailing", "padding",
                                  "time not a number"])
def test_a_damaged_history_refuses_and_blames_the_owner(tmp_path: Any, case: str,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """/tmp/r2/history_corrupt.py: a damaged or forged record in history.sqlite (adversary:
    a fault or whoever wrote the file) never lets a query through unchecked and never
    blames the querier: a PolicyError (HTTP 403) naming the owner and the dataset, logged;
    the query is not recorded.  A sound record next to it: answered."""
    import zlib
    good = history.RowSets.of_masks(np.ones((3, 100), bool)).to_bytes()
    blobs = {"truncated": good[:-3], "count+1": good[:13] + (4).to_bytes(4, "big") + good[17:],
             "count 0": good[:13] + (0).to_bytes(4, "big") + good[17:],
             "rows 0, no set": b"SLRS2" + bytes(12) + zlib.compress(b""),
             "garbage": b"xx", "empty": b"",
             "huge count": good[:13] + (2**32 - 1).to_bytes(4, "big") + good[17:],
             "trailing": good + b"\0",
             "padding": good[:17] + zlib.compress(b"\xff" * 13 * 3),
             "time not a number": good}
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "max_rows": 1000, "min_cell_size": 5})
    new = history.RowSets.of_masks(np.ones(100, bool))
    node = _owner(tmp_path / "history.sqlite")
    if case == "time not a number":
        node._history.execute(  # noqa: SLF001
            "INSERT INTO exact_history VALUES ('diabetes', 'old', 'soon', ?)", (good,))
    else:
        _record(node, blobs[case])
    with caplog.at_level("ERROR", logger="statledger.provider"), pytest.raises(
            PolicyError, match="provider-1: its exact-answer history for dataset diabetes "
            "is unreadable.*differential privacy"):
        node._account_exact("diabetes", "new", spec, new)  # noqa: SLF001
    assert "unreadable" in caplog.text
    rows = node._history.execute("SELECT query_id FROM exact_history").fetchall()  # noqa: SLF001
    assert rows == [("old",)]
    # the twin: the sound record (far from the new set) lets the query through
    node._history.execute("DELETE FROM exact_history")  # noqa: SLF001
    _record(node, history.RowSets.of_masks(np.zeros((3, 100), bool)).to_bytes())
    node._account_exact("diabetes", "new", spec, new)  # noqa: SLF001
    node._history.close()  # noqa: SLF001


def test_stream_sets_pieces_equal_the_record_and_reject_twins() -> None:
    """The streamed reader (bounded pieces) yields exactly the record, in either format,
    for every piece size; damage raises MalformedError however it is cut."""
    import io
    import zlib
    rng = np.random.default_rng(9)
    for n, m in ((0, 3), (1, 1), (13, 7), (1000, 40)):
        rs = history.RowSets.of_masks(rng.random((m, n)) < 0.5)
        blob = rs.to_bytes()
        for piece in (1, 5, 64, 1 << 20):
            parts = list(history.stream_sets(io.BytesIO(blob).read, piece))
            assert sum(len(p) for p in parts) == m
            if n:
                assert max(len(p) for p in parts) <= max(1, piece // ((n + 7) // 8))
            assert np.array_equal(np.concatenate([p.bits for p in parts]), rs.bits)
    legacy = history.pack_rows(np.array([True, False, True, True]))
    (one,) = history.stream_sets(io.BytesIO(legacy).read)
    assert np.array_equal(np.unpackbits(one.bits[0], count=4), [1, 0, 1, 1])
    blob = history.RowSets.of_masks(rng.random((5, 30)) < 0.5).to_bytes()
    bad = [blob[:-1], blob + b"\0", b"X" + blob[1:], blob[:16], b"", blob[:17],
           blob[:13] + (6).to_bytes(4, "big") + blob[17:],
           blob[:13] + (0).to_bytes(4, "big") + blob[17:],
           blob[:17] + zlib.compress(bytes(19)), blob[:17] + b"not zlib at all",
           blob[:17] + zlib.compress(b"\xff" * 20)]
    for b in bad:
        for piece in (4, 1 << 20):
            with pytest.raises(MalformedError):
                list(history.stream_sets(io.BytesIO(b).read, piece))
        with pytest.raises(MalformedError):
            history.RowSets.from_bytes(b)


def test_the_check_is_streamed_and_stops_at_the_first_near_set() -> None:
    """check_differencing consumes ``earlier`` lazily (a record in several pieces) and
    stops at the first near piece: the pieces after it are never produced (the provider
    never holds the whole history)."""
    rng = np.random.default_rng(4)
    n = 200
    base = rng.random(n) < 0.5
    near = base.copy()
    near[3] ^= True
    produced: list[int] = []

    def earlier() -> Any:
        for i in range(10):
            produced.append(i)
            yield f"q{i}", history.RowSets.of_masks(near if i == 4 else ~base)
    with pytest.raises(PolicyError, match="earlier exact query q4"):
        history.check_differencing("d", "new", history.RowSets.of_masks(base), earlier(), K)
    assert produced == [0, 1, 2, 3, 4]


def test_two_processes_on_one_history_cannot_both_answer(tmp_path: Any,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """/tmp/r2/history_race.py (adversary: a querier who sends two exact queries one row
    apart at once to `serve` and `serve --pull` of one owner: two ProviderNode objects, two
    connections to one history.sqlite, no shared in-process lock).  The first holds the
    write transaction while it checks; the second waits, then sees the first's record and
    is refused.  The old code (read, check, then INSERT in autocommit) answered both."""
    import threading
    import time as _time
    path = tmp_path / "history.sqlite"
    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "max_rows": 1000, "min_cell_size": K})
    a = np.ones(100, dtype=bool)
    b = a.copy()
    b[7] = False
    inside = threading.Event()
    real = history.check_differencing
    first = threading.Lock()

    def slow(*args: Any, **kw: Any) -> None:
        if first.acquire(blocking=False):  # the first caller: let the other one try now
            inside.set()
            _time.sleep(0.5)
        real(*args, **kw)
    monkeypatch.setattr(history, "check_differencing", slow)
    out: dict[str, str] = {}

    def ask(qid: str, mask: np.ndarray) -> None:
        node = _owner(path)
        try:
            node._account_exact("d", qid, spec, history.RowSets.of_masks(mask))  # noqa: SLF001
            out[qid] = "answered"
        except PolicyError as exc:
            out[qid] = f"refused: {exc}"
        finally:
            node._history.close()  # noqa: SLF001
    ta = threading.Thread(target=ask, args=("qA", a))
    ta.start()
    assert inside.wait(10)
    tb = threading.Thread(target=ask, args=("qB", b))
    tb.start()
    ta.join()
    tb.join()
    assert out["qA"] == "answered"
    assert out["qB"].startswith("refused") and "earlier exact query qA" in out["qB"], out


def test_two_processes_cannot_both_spend_one_budget(tmp_path: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget charge is read-charge-write too (ProviderNode._charge): two nodes of one
    owner on one state database, racing two DP queries that fit the budget only one at a
    time; the second waits for the first's write and is refused (without the transaction
    both read the unspent budget and both were charged, the last write losing the first)."""
    import threading
    import time as _time
    from fractions import Fraction

    from statledger.nodes import provider_service as ps
    from statledger.nodes.peers import ActionLog
    from statledger.protocol.dp import BudgetLedger
    from statledger.protocol.policy import ProviderPolicy

    state = tmp_path / "state.sqlite"
    real = BudgetLedger.charge
    first = threading.Lock()
    inside = threading.Event()

    def slow(self: Any, qid: str, rho: Any) -> Any:
        if first.acquire(blocking=False):
            inside.set()
            _time.sleep(0.5)
        return real(self, qid, rho)
    monkeypatch.setattr(BudgetLedger, "charge", slow)
    out: dict[str, str] = {}

    def ask(qid: str) -> None:
        node = ps.ProviderNode.__new__(ps.ProviderNode)
        node.party_id = "provider-1"
        node.policy = ProviderPolicy.parse({"budget_rho": 1.0})
        node.actions = ActionLog(state, ps._BUDGETS)  # noqa: SLF001
        node._db = node.actions.db  # noqa: SLF001
        try:
            node._charge("diabetes", qid, Fraction(3, 5))  # noqa: SLF001
            out[qid] = "charged"
        except PolicyError as exc:
            out[qid] = f"refused: {exc}"
        finally:
            node.actions.close()
    ta = threading.Thread(target=ask, args=("qA",))
    ta.start()
    assert inside.wait(10)
    tb = threading.Thread(target=ask, args=("qB",))
    tb.start()
    ta.join()
    tb.join()
    assert out["qA"] == "charged" and out["qB"].startswith("refused"), out
    db = ActionLog(state, ps._BUDGETS)  # noqa: SLF001
    (row,) = db.db.execute("SELECT state FROM budgets").fetchall()
    db.close()
    import json
    assert set(json.loads(row[0])["charges"]) == {"qA"}


def test_a_failed_commit_leaves_no_transaction_open(tmp_path: Any) -> None:
    """A reader of the owner's other process holds the history when the record commits: the
    write is refused as busy (retry) and the connection is not left inside the transaction
    (before, every later request was refused until restart, and the write lock held up the
    other process).  The twin: once the reader is gone, the next write commits."""
    import sqlite3

    from statledger.nodes import provider_service as P
    from statledger.nodes.app import UnavailableError

    path = tmp_path / "history.sqlite"
    h = P._open_history(path)
    h.execute("PRAGMA busy_timeout = 200")  # 60 s in production
    reader = sqlite3.connect(str(path), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM exact_history").fetchall()  # holds a shared lock
    row = ("ds", "q1", 1.0, b"x")
    with pytest.raises(UnavailableError, match="busy"), P._write_txn(h, "the history"):
        h.execute("INSERT INTO exact_history VALUES (?, ?, ?, ?)", row)
    assert not h.in_transaction
    reader.execute("COMMIT")
    with P._write_txn(h, "the history"):
        h.execute("INSERT INTO exact_history VALUES (?, ?, ?, ?)", row)
    assert h.execute("SELECT COUNT(*) FROM exact_history").fetchone()[0] == 1
    reader.close()
    h.close()
