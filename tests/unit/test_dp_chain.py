"""Chained IRLS rounds (protocol/chain.py, step 8): round k's beta is round k-1's published
beta_next; round 0 starts from zero.  Every accept case has reject twins (a forged beta, a
changed spec, a skipped round, a missing or swapped previous entry, a converged previous
round), and the entries travel through parse_entries as the certificate carries them."""

from __future__ import annotations

from typing import Any

import pytest

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import chain, entries
from statledger.protocol.entries import QueryEntry, ResultEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import StatResult
from statledger.protocol.stats.logistic import irls_next_spec, irls_start
from statledger.protocol.view import parse_entries

KEY = SigningKey.generate()
SPEC: dict[str, Any] = {
    "version": 1, "statistic": "logistic_irls", "columns": ["x", "y"],
    "bounds": {"x": [-3.0, 3.0], "y": [0.0, 1.0]},
    "params": {"target": "y", "features": ["x"]}, "max_rows": 1000}
BETA1 = [0.25, -1.5]


def _query(spec: QuerySpec, querier: str = "querier") -> QueryEntry:
    return entries.sign(QueryEntry(spec.query_id_for(querier), spec.to_json_obj(), querier),
                        KEY)


def _result(qid: str, beta_next: list[float] | None, converged: bool = False) -> ResultEntry:
    return entries.sign(ResultEntry.for_totals(
        qid, [1, 2], {"statistic": "logistic_irls", "beta_next": beta_next,
                      "converged": converged}, ["compute-1"]), KEY)


def _rounds() -> tuple[QuerySpec, QuerySpec, QueryEntry, ResultEntry]:
    s0 = irls_start(QuerySpec.parse(SPEC))
    q0 = _query(s0)
    r0 = _result(q0.query_id, BETA1)
    res = StatResult("logistic_irls", {"beta_next": BETA1, "converged": False})
    s1 = irls_next_spec(s0, res, q0.query_id)
    assert s1 is not None
    return s0, s1, q0, r0


def test_honest_chain_passes() -> None:
    s0, s1, q0, r0 = _rounds()
    assert chain.check_chain(s0, "querier", None, None) is None
    assert s1.params["previous"] == q0.query_id and s1.params["beta"] == BETA1
    detail = chain.check_chain(s1, "querier", (3, q0), (9, r0, r0.to_bytes()))
    assert detail is not None and "round 1" in detail
    # through parse_entries, in log order, with the round-1 query's entry after them
    q1 = _query(s1)
    view = parse_entries([(3, q0.to_bytes()), (9, r0.to_bytes()), (12, q1.to_bytes())])
    assert view.query is not None and view.query.query_id == q1.query_id
    assert view.previous_query is not None and view.previous_query[0] == 3
    assert view.previous_result is not None and view.previous_result[0] == 9
    assert view.result is None


def test_forged_beta_is_refused() -> None:
    _, s1, q0, r0 = _rounds()
    for forged in ([0.25, -1.0], [-1.5, 0.25], [0.25000000000000006, -1.5], [0.0, 0.0]):
        obj = s1.to_json_obj()
        obj["params"]["beta"] = forged
        spec = QuerySpec.parse(obj)
        with pytest.raises(VerificationError, match="step 8"):
            chain.check_chain(spec, "querier", (3, q0), (9, r0, r0.to_bytes()))


def test_round_zero_must_start_from_zero() -> None:
    obj = irls_start(QuerySpec.parse(SPEC)).to_json_obj()
    obj["params"]["beta"] = [0.5, 0.0]  # an arbitrary half-space in round 0
    with pytest.raises(VerificationError, match="starts at round 0 from beta = 0"):
        chain.check_chain(QuerySpec.parse(obj), "querier", None, None)
    obj["params"]["beta"] = [0.0, 0.0]
    obj["params"]["round"] = 2  # a later round without its previous one
    with pytest.raises(VerificationError, match="params.previous"):
        chain.check_chain(QuerySpec.parse(obj), "querier", None, None)


def test_reject_twins_of_the_previous_round() -> None:
    s0, s1, q0, r0 = _rounds()
    rb = r0.to_bytes()
    with pytest.raises(VerificationError, match="not in view"):
        chain.check_chain(s1, "querier", None, (9, r0, rb))
    with pytest.raises(VerificationError, match="result .* is not in view"):
        chain.check_chain(s1, "querier", (3, q0), None)
    other = _result("ab" * 32, BETA1)
    with pytest.raises(VerificationError, match="result .* is not in view"):
        chain.check_chain(s1, "querier", (3, q0), (9, other, other.to_bytes()))
    done = _result(q0.query_id, BETA1, converged=True)
    with pytest.raises(VerificationError, match="converged"):
        chain.check_chain(s1, "querier", (3, q0), (9, done, done.to_bytes()))
    # the previous round asked another query (a filter added)
    obj = s0.to_json_obj()
    obj["filters"] = [{"column": "x", "op": ">", "value": 0}]
    q_other = _query(QuerySpec.parse(obj))
    s1_other = irls_next_spec(s0, StatResult("logistic_irls", {"beta_next": BETA1}),
                              q_other.query_id)
    assert s1_other is not None
    r_other = _result(q_other.query_id, BETA1)
    with pytest.raises(VerificationError, match="asked another query"):
        chain.check_chain(s1_other, "querier", (3, q_other), (9, r_other, r_other.to_bytes()))
    # a skipped round: round 2 following round 0
    obj = s1.to_json_obj()
    obj["params"]["round"] = 2
    with pytest.raises(VerificationError, match="round 2 follows round 0"):
        chain.check_chain(QuerySpec.parse(obj), "querier", (3, q0), (9, r0, rb))
    # another statistic carrying foreign entries
    mean = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["x"],
                            "bounds": {"x": [0.0, 1.0]}})
    with pytest.raises(VerificationError, match="not a chained round"):
        chain.check_chain(mean, "querier", (3, q0), None)


def test_parse_refuses_unrelated_second_query() -> None:
    s0, s1, q0, r0 = _rounds()
    stranger = _query(QuerySpec.parse({"version": 1, "statistic": "count"}))
    with pytest.raises(VerificationError, match="two query entries"):
        parse_entries([(3, q0.to_bytes()), (5, stranger.to_bytes())])
    q1 = _query(s1)
    r1 = _result(q1.query_id, [0.3, -1.6])
    view = parse_entries([(3, q0.to_bytes()), (9, r0.to_bytes()), (12, q1.to_bytes()),
                          (20, r1.to_bytes())])
    assert view.result is not None and view.result[0] == 20
    with pytest.raises(VerificationError, match="two result entries"):
        parse_entries([(12, q1.to_bytes()), (20, r1.to_bytes()), (21, r1.to_bytes())])
    # chain_rows keeps only the previous round's query, result and endorsements (step 8:
    # the result must be established; tests/unit/test_chain_endorsed.py); own_rows drops them
    e0 = entries.sign(entries.EndorsementEntry(q0.query_id, "prov-1",
                                               entries.result_digest(r0.to_bytes())), KEY)
    rows = [(3, q0.to_bytes()), (9, r0.to_bytes()), (10, e0.to_bytes()), (12, q1.to_bytes()),
            (20, r1.to_bytes())]
    assert [i for i, _ in chain.chain_rows(rows, q0.query_id)] == [3, 9, 10]
    assert [i for i, _ in chain.own_rows(rows)] == [12, 20]
    assert [i for i, _ in parse_entries(rows).previous_endorsements] == [10]


def test_previous_must_be_a_query_id() -> None:
    obj = irls_start(QuerySpec.parse(SPEC)).to_json_obj()
    for bad in ("xyz", "AB" * 32, 7, "ab" * 31):
        obj["params"]["previous"] = bad
        with pytest.raises(MalformedError, match="params.previous"):
            QuerySpec.parse(obj)
