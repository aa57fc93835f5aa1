"""Issue 12: count / sum / mean / variance / std are gated by the blinded "n < k" PET.

A mean over one person's row used to be decrypted in one phase: the result entry and the
decryption shares on the log gave anyone that person's value.  Now the cell count ``n`` is
the gate (protocol/stats/basic.py): a small selection (an empty one included) is never
decrypted -- no share of its count or sums, no total in the result -- and a selection of at
least ``min_cell_size`` rows decrypts as before.  The logs are built by
tests/unit/test_suppression.py's honest builder; every check is the verifier's own
(:func:`statledger.protocol.checks.check_query`).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from test_protocol_checks import KEYS
from test_suppression import (
    INCOME,
    NODES,
    QUERIER,
    _build,
    _entry,
    _fails,
    _put,
    _search,
    _tables,
)

from statledger.proofs.errors import MalformedError, ProtocolError
from statledger.protocol import entries as E
from statledger.protocol import flow, suppression
from statledger.protocol.checks import MissingEntryError, check_query
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Roster, replay
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries

CATS = {"hiv": ["neg", "pos", "unk", "none"]}


def _spec(statistic: str = "mean", who: str | None = "pos", **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": statistic,
        "columns": [] if statistic == "count" else ["income"],
        "categories": CATS, "bounds": {"income": [0, 200000]},
        "min_cell_size": 5, "max_rows": 100, "min_providers": 2,
    }
    if who is not None:
        obj["filters"] = [{"column": "hiv", "op": "==", "value": who}]
    obj.update(kw)
    return QuerySpec.parse(obj)


@functools.cache
def _one_person() -> tuple[tuple[tuple[int, bytes], ...], dict[str, Any]]:
    rows, info = _build(_spec(), _tables())
    return tuple(rows), info


def _rows() -> list[tuple[int, bytes]]:
    return list(_one_person()[0])


def _kinds(rows: list[tuple[int, bytes]]) -> list[str]:
    return [E.Entry.from_bytes(d).KIND for _, d in rows]


# -- the honest runs ---------------------------------------------------------------------------


def test_a_mean_over_one_person_releases_nothing_and_passes_every_step() -> None:
    rows, info = _one_person()
    details: dict[int, str] = {}
    view = check_query(parse_entries(list(rows)), on_step=details.__setitem__)
    assert "1 of 1 small" in details[12]
    assert info["clear"] == [1, round(INCOME * _spec().scale)]
    assert info["small"] == [True] and info["released"] == []
    assert view.decoded is not None
    assert view.decoded["n"] is None and view.decoded["value"] is None
    assert view.decoded["cells"][0]["suppressed"] is True
    assert view.totals == [None, None]
    kinds = _kinds(list(rows))
    assert "decryption" not in kinds  # nothing decrypted: no node's share of n or of the sum
    _, res = _entry(list(rows), "result")
    assert res.totals == () and res.decryptors == ()


def test_the_one_persons_income_appears_nowhere_on_the_log() -> None:
    rows, info = _one_person()
    secret = info["clear"][1]
    needles = {str(secret), repr(INCOME), str(INCOME), str(secret / _spec().scale)}
    assert _search(list(rows), needles) == []


def test_the_old_one_phase_run_publishes_the_income() -> None:
    """The twin: the same query decrypted in one phase (the code before the gate) puts the
    person's income in the result, so the search above can find it."""
    rows, info = _build(_spec(), _tables(), gated=False)
    hits = _search(rows, {str(info["clear"][1])})
    assert hits and {E.Entry.from_bytes(rows[i][1]).KIND for i, _ in hits} == {"result"}
    # and the verifier refuses that log for a gated query: the PET chain is missing
    with pytest.raises((MissingEntryError, ProtocolError)):
        check_query(parse_entries(rows))


@pytest.mark.parametrize("statistic", ["count", "sum", "variance", "std"])
def test_every_basic_statistic_of_one_person_is_withheld(statistic: str) -> None:
    spec = _spec(statistic)
    rows, info = _build(spec, _tables())
    view = check_query(parse_entries(rows))
    assert info["released"] == [] and "decryption" not in _kinds(rows)
    assert view.decoded is not None and view.decoded["value"] is None
    assert view.decoded["n"] is None
    if statistic != "count":
        assert _search(rows, {str(info["clear"][1])}) == []


def test_an_empty_selection_is_small_too() -> None:
    rows, info = _build(_spec(who="none"), _tables())
    view = check_query(parse_entries(rows))
    assert info["clear"] == [0, 0] and info["small"] == [True] and info["released"] == []
    assert view.decoded is not None and view.decoded["n"] is None


def test_a_selection_of_at_least_k_decrypts_as_before() -> None:
    tables = _tables()
    rows, info = _build(_spec("variance", who="neg"), tables)
    view = check_query(parse_entries(rows))
    assert info["small"] == [False] and info["released"] == [0, 1, 2]
    assert view.totals == info["clear"]
    neg = np.concatenate([t["income"][t["hiv"] == "neg"] for t in tables])
    assert view.decoded is not None and view.decoded["n"] == len(neg) == 21
    assert view.decoded["value"] == pytest.approx(np.var(neg, ddof=1), rel=1e-6)


def test_a_group_by_mean_withholds_the_small_cell_and_its_complement() -> None:
    tables = _tables()
    spec = _spec(who=None, group_by=["hiv"], categories={"hiv": ["neg", "pos", "unk"]})
    rows, info = _build(spec, tables)
    view = check_query(parse_entries(rows))
    # pos (1 row) is small; the first other cell of the line (neg) is its complement
    assert info["small"] == [False, True, False] and info["released"] == [4, 5]
    assert view.decoded is not None
    cells = view.decoded["cells"]
    assert [c["suppressed"] for c in cells] == [True, True, False]
    assert [c["n"] for c in cells] == [None, None, 6]
    unk = np.concatenate([t["income"][t["hiv"] == "unk"] for t in tables])
    assert cells[2]["value"] == pytest.approx(unk.mean(), rel=1e-6)
    assert _search(rows, {str(info["clear"][1]), str(info["clear"][3])}) == []


# -- the querier or a node cheats: step 12 / 13 and the append rule ---------------------------


def test_a_lie_that_the_one_person_selection_is_large_is_rejected_at_step_12() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    n_all = len(flow.flatten(_one_person()[1]["agg"]))
    forged = replace(rel, small=(0,), released=(0, 1), ciphertexts=n_all)
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
           "small-cell bits are not the PET's outcome")


def test_releasing_the_withheld_entries_with_the_true_bit_is_rejected_at_step_12() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    n_all = len(flow.flatten(_one_person()[1]["agg"]))
    for released in ((0, 1), (1,)):  # everything; the sum alone
        n_cts = len(flow.flatten([_one_person()[1]["agg"][j] for j in released]))
        forged = replace(rel, released=released, ciphertexts=n_cts)
        _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
               "releases other entries than the statistic's rule allows")
    assert n_all > 0


def test_a_result_publishing_the_withheld_sum_is_rejected_at_step_12() -> None:
    rows, info = _one_person()
    index, res = _entry(list(rows), "result")
    forged = replace(res, totals=(str(info["clear"][0]), str(info["clear"][1])),
                     decryptors=tuple(sorted(NODES)))
    _fails(_put(list(rows), index, forged, QUERIER), 12, QUERIER,
           "the release decision withholds every entry")


def test_the_append_rule_refuses_a_decryption_of_the_withheld_entries() -> None:
    rows, info = _one_person()
    events = [(i, E.Entry.from_bytes(d)) for i, d in rows]
    qi = next(k for k, (_, e) in enumerate(events) if e.KIND == "query")
    ri = next(k for k, (_, e) in enumerate(events) if e.KIND == "release")
    node = NODES[0]
    setup = info["setup"]
    sh, proof = flow.make_decryption(info["shares"][node], setup.verification_point(node),
                                     flow.flatten(info["agg"]),
                                     flow.decryption_context(info["qid"], node))
    dec = E.sign(E.DecryptionEntry(info["qid"], node, tuple(s.to_bytes().hex() for s in sh),
                                   proof.to_bytes().hex()), KEYS[node])
    es = events[qi:ri + 1] + [(events[ri][0] + 1, dec)]
    roster = Roster(NODES, ("prov-1", "prov-2"), (QUERIER,), 2)
    with pytest.raises(ProtocolError, match="withheld ciphertext"):
        replay([e for _, e in es], roster, indices=[i for i, _ in es])


# -- the rule itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["count", "sum", "mean", "variance", "std"])
def test_gates_are_every_cells_n_except_at_k_1_and_under_dp(statistic: str) -> None:
    width = {"count": 1, "sum": 2, "mean": 2, "variance": 3, "std": 3}[statistic]
    assert suppression.gate_entries(_spec(statistic)) == [0]
    two = _spec(statistic, who=None, group_by=["hiv"])
    assert suppression.gate_entries(two) == [0, width, 2 * width, 3 * width]
    assert suppression.decide(two, [False] * 4).released == tuple(range(4 * width))
    assert not suppression.gated(_spec(statistic, min_cell_size=1))
    assert not suppression.gated(_spec(statistic, privacy={"mechanism": "zcdp", "rho": 1.0}))
    with pytest.raises(MalformedError, match="gate bits"):
        get_statistic(statistic).release(_spec(statistic), [True, False])


def test_two_way_mean_complements_by_position() -> None:
    spec = _spec(who=None, group_by=["hiv", "sex"],
                 categories={"hiv": ["neg", "pos"], "sex": ["f", "m", "x"]})
    # (neg, m) small: (neg, f) completes its row; columns f and m then need (pos, f), (pos, m)
    rel = suppression.decide(spec, [False, True, False, False, False, False])
    kept = {j // 2 for j in rel.released}
    assert kept == {2, 5}


def test_decode_refuses_withheld_entries_where_nothing_may_be_withheld() -> None:
    mean = get_statistic("mean")
    with pytest.raises(MalformedError, match="withheld entries for a query without gates"):
        mean.decode(_spec(min_cell_size=1), [None, None])
    with pytest.raises(MalformedError, match="withheld entries for a query without gates"):
        mean.decode(_spec(privacy={"mechanism": "zcdp", "rho": 1.0}), [None, None])
    with pytest.raises(MalformedError, match="an entry of a published cell is withheld"):
        mean.decode(_spec(), [7, None])  # a present n with a missing sum
    group = _spec(who=None, group_by=["hiv"], categories={"hiv": ["neg", "pos"]})
    with pytest.raises(MalformedError, match="an entry of a published cell is withheld"):
        mean.decode(group, [None, None, 9, None])
    # the honest shapes: all withheld, or all present (exact n >= k, or a DP value)
    assert mean.decode(_spec(), [None, None]).values["n"] is None
    assert mean.decode(_spec(), [8, 8 * _spec().scale]).values["value"] == 1.0
    dp = mean.decode(_spec(privacy={"mechanism": "zcdp", "rho": 1.0}), [3, 3]).values
    assert dp["n"] is None  # a noisy small n is still blanked (post-processing)


def test_a_dp_mean_decodes_as_before() -> None:
    spec = _spec(privacy={"mechanism": "zcdp", "rho": 1.0})
    res = get_statistic("mean").decode(spec, [200, 200 * 3 * spec.scale]).values
    assert res["n"] == 200 and res["value"] == 3.0
