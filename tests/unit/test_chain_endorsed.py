"""A chained round and a model reference rest on an *established* previous result
(protocol/chain.py, ``check_established``; step 8 of docs/verification.md).

The adversary is the querier (with, at most, owners that did not contribute): it logs, for
its own previous query, a result entry with numbers of its choice -- signed by itself, so
the old rule (query and result entries in view, ``beta_next`` equal) accepted it -- and
starts the next round or an evaluation from them.  These logs are built by hand on a real
consortium (genesis, key ceremony, setup: tests/unit/test_protocol_checks.py) and go through
``parse_entries`` and the numbered steps 6 and 8 exactly as a provider, a compute node, the
querier and the verifier run them.  Every accept case has reject twins: no endorsement, one
missing, one by a non-contributor, one logged after the query, one of another result, a
forged signature, a non-provider's, a duplicate.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_protocol_checks import KEYS, PROVIDERS, _run
from test_stats_evaluation import _diabetes, _fit, ols_spec

from statledger.proofs.errors import VerificationError
from statledger.protocol import chain
from statledger.protocol import entries as E
from statledger.protocol.checks import check_query
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import StatResult
from statledger.protocol.stats.evaluation import evaluation_spec
from statledger.protocol.stats.logistic import irls_next_spec, irls_start
from statledger.protocol.view import QueryView, parse_entries

QUERIER = "researcher"
P1, P2, P3 = PROVIDERS
SPEC: dict[str, Any] = {
    "version": 1, "statistic": "logistic_irls", "columns": ["x", "y"],
    "bounds": {"x": [-3.0, 3.0], "y": [0.0, 1.0]},
    "params": {"target": "y", "features": ["x"]}, "max_rows": 1000}
BETA1 = [0.25, -1.5]

Rows = list[tuple[int, bytes]]


@pytest.fixture(scope="module")
def roster() -> Rows:
    """Genesis, the compute nodes' party entries, the key ceremony and the setup: every
    entry of an honest run before its query."""
    rows = _run(PROVIDERS[:2])
    first_query = next(i for i, data in rows if isinstance(E.Entry.from_bytes(data),
                                                            E.QueryEntry))
    return rows[:first_query]


def _query(spec: QuerySpec, querier: str = QUERIER) -> E.QueryEntry:
    return E.sign(E.QueryEntry.for_spec(spec, querier), KEYS[querier])


def _result(qid: str, result: dict[str, Any]) -> E.ResultEntry:
    return E.sign(E.ResultEntry.for_totals(qid, [1, 2], result, ["node-a"]), KEYS[QUERIER])


def _endorse(result: E.ResultEntry, provider: str, signer: str | None = None,
             digest: str | None = None) -> E.EndorsementEntry:
    return E.sign(E.EndorsementEntry(result.query_id, provider,
                                     digest or E.result_digest(result.to_bytes())),
                  KEYS[signer or provider])


def _submission(qid: str, provider: str) -> E.SubmissionEntry:
    # step 8 reads only who contributes; the vector is step 9's business
    return E.sign(E.SubmissionEntry(qid, provider, "00"), KEYS[provider])


def _irls() -> tuple[E.QueryEntry, E.ResultEntry, E.QueryEntry]:
    """Round 0 (beta = 0), its published result (beta_next = BETA1) and round 1."""
    s0 = irls_start(QuerySpec.parse(SPEC))
    q0 = _query(s0)
    r0 = _result(q0.query_id, {"statistic": "logistic_irls", "beta_next": BETA1,
                               "converged": False})
    s1 = irls_next_spec(s0, StatResult("logistic_irls", {"beta_next": BETA1,
                                                         "converged": False}), q0.query_id)
    assert s1 is not None
    return q0, r0, _query(s1)


def _log(roster: Rows, previous: list[E.Entry], after: list[E.Entry], query: E.QueryEntry,
         contributors: tuple[str, ...] = ()) -> Rows:
    """``roster``, the previous query's entries, the query, ``after`` (entries of the
    previous query logged after this one) and a submission per contributor."""
    log: list[E.Entry] = [*previous, query, *after,
                          *(_submission(query.query_id, p) for p in contributors)]
    start = len(roster)
    return [*roster, *((start + k, e.to_bytes()) for k, e in enumerate(log))]


def _check(rows: Rows, contributor: str | None = None) -> QueryView:
    return check_query(parse_entries(rows), through=8, contributor=contributor)


def _refused(rows: Rows, match: str, party: str, contributor: str | None = None) -> None:
    with pytest.raises(VerificationError, match=match) as info:
        _check(rows, contributor)
    assert info.value.step == "step 8" and info.value.party == party


# -------------------------------------------------------------------------- chained rounds
def test_an_endorsed_previous_round_is_accepted(roster: Rows) -> None:
    q0, r0, q1 = _irls()
    prev: list[E.Entry] = [q0, r0, _endorse(r0, P1), _endorse(r0, P2)]
    seen: dict[int, str] = {}
    rows = _log(roster, prev, [], q1, (P1, P2))
    check_query(parse_entries(rows), through=8, on_step=seen.__setitem__)
    assert "round 1" in seen[8] and "endorsed by 2 owners" in seen[8]
    # the same log before anyone submitted: the querier's, a compute node's view; and a
    # provider that endorsed round 0 checking before it contributes
    _check(_log(roster, prev, [], q1))
    _check(_log(roster, prev, [], q1), contributor=P1)
    _check(_log(roster, prev, [], q1, (P1,)), contributor=P2)
    # an endorsement by a third provider is harmless
    _check(_log(roster, [*prev, _endorse(r0, P3)], [], q1, (P1, P2)))


def test_a_forged_previous_result_without_endorsements_is_refused(roster: Rows) -> None:
    q0, _, q1 = _irls()
    # the querier's own round-0 "result": beta_next of its choosing, signed by itself
    forged = _result(q0.query_id, {"statistic": "logistic_irls", "beta_next": BETA1,
                                   "converged": False})
    for contributors in ((), (P1, P2)):
        rows = _log(roster, [q0, forged], [], q1, contributors)
        if contributors:
            _refused(rows, f"provider {P1} contributes .* did not endorse", QUERIER)
        else:
            _refused(rows, "endorsed by 0 owner.*needs 2: not established", QUERIER)
    _refused(_log(roster, [q0, forged], [], q1), f"provider {P2} contributes", QUERIER,
             contributor=P2)


def test_one_missing_endorsement_is_refused(roster: Rows) -> None:
    q0, r0, q1 = _irls()
    rows = _log(roster, [q0, r0, _endorse(r0, P1)], [], q1, (P1, P2))
    _refused(rows, f"provider {P2} contributes to this query but did not endorse", QUERIER)
    # before anyone submitted: one endorsement is below the floor of two owners
    _refused(_log(roster, [q0, r0, _endorse(r0, P1)], [], q1), "endorsed by 1 owner",
             QUERIER)
    # a provider that did not endorse round 0 refuses to answer round 1 (it checks itself)
    prev: list[E.Entry] = [q0, r0, _endorse(r0, P1), _endorse(r0, P2)]
    _refused(_log(roster, prev, [], q1), f"provider {P3} contributes", QUERIER,
             contributor=P3)


def test_an_endorsement_by_a_non_contributor_does_not_count(roster: Rows) -> None:
    q0, r0, q1 = _irls()
    prev: list[E.Entry] = [q0, r0, _endorse(r0, P1), _endorse(r0, P3)]
    _refused(_log(roster, prev, [], q1, (P1, P2)), f"provider {P2} contributes", QUERIER)


def test_an_endorsement_logged_after_the_query_does_not_count(roster: Rows) -> None:
    q0, r0, q1 = _irls()
    rows = _log(roster, [q0, r0, _endorse(r0, P1)], [_endorse(r0, P2)], q1, (P1, P2))
    _refused(rows, f"provider {P2} contributes .* before it", QUERIER)


def test_bad_endorsements_are_refused_naming_their_author(roster: Rows) -> None:
    q0, r0, q1 = _irls()
    other = _result(q0.query_id, {"statistic": "logistic_irls", "beta_next": [0.0, 0.0],
                                  "converged": False})
    good = E.result_digest(r0.to_bytes())
    flipped = f"{int(good[0], 16) ^ 1:x}{good[1:]}"
    cases: list[tuple[E.Entry, str, str]] = [
        # an endorsement of another result (a bit flip of the digest, another result)
        (_endorse(r0, P2, digest=flipped), "signs another result", P2),
        (_endorse(other, P2), "signs another result", P2),
        # signed by another provider's key, or by the querier posing as an owner
        (_endorse(r0, P2, signer=P1), "endorsement entry: Ed25519 signature does not verify",
         P2),
        (_endorse(r0, QUERIER), f"{QUERIER} is a querier, not a provider", QUERIER),
        # a provider's second endorsement
        (_endorse(r0, P1), "endorsed the previous result twice", P1),
    ]
    for bad, match, party in cases:
        rows = _log(roster, [q0, r0, _endorse(r0, P1), bad], [], q1, (P1, P2))
        _refused(rows, match, party)


def test_round_0_carries_no_endorsements(roster: Rows) -> None:
    q0, r0, _ = _irls()
    # an endorsement of round 0's result travelling with round 0 itself is its own (step 15)
    view = parse_entries(_log(roster, [], [r0, _endorse(r0, P1)], q0))
    assert view.previous_endorsements == [] and len(view.endorsements) == 1
    with pytest.raises(VerificationError, match="endorsements of another query"):
        chain.check_established(QUERIER, None, None, [(5, _endorse(r0, P1))],
                                query_index=9, contributors=(), floor=2)


def test_endorsements_travel_with_the_chain() -> None:
    q0, r0, q1 = _irls()
    e1, e2 = _endorse(r0, P1), _endorse(r0, P2)
    r1 = _result(q1.query_id, {"statistic": "logistic_irls", "beta_next": [0.3, -1.6],
                               "converged": False})
    e1_own = _endorse(r1, P1)
    rows = [(3, q0.to_bytes()), (9, r0.to_bytes()), (10, e1.to_bytes()), (11, e2.to_bytes()),
            (12, q1.to_bytes()), (20, r1.to_bytes()), (21, e1_own.to_bytes())]
    assert [i for i, _ in chain.chain_rows(rows, q0.query_id)] == [3, 9, 10, 11]
    assert [i for i, _ in chain.own_rows(rows)] == [12, 20, 21]
    view = parse_entries(rows)
    assert [i for i, _ in view.previous_endorsements] == [10, 11]
    assert [i for i, _ in view.endorsements] == [21]


# ------------------------------------------------------------------------ model references
def _evaluation() -> tuple[E.QueryEntry, E.ResultEntry, E.QueryEntry]:
    fit_spec = ols_spec()
    q0 = _query(fit_spec)
    r0 = _result(q0.query_id, _fit(fit_spec, _diabetes()))
    back = E.Entry.from_bytes(r0.to_bytes())
    assert isinstance(back, E.ResultEntry)
    return q0, r0, _query(evaluation_spec(fit_spec, q0.query_id, dict(back.result)))


def test_an_evaluation_rests_on_an_endorsed_fit(roster: Rows) -> None:
    q0, r0, q1 = _evaluation()
    seen: dict[int, str] = {}
    rows = _log(roster, [q0, r0, _endorse(r0, P1), _endorse(r0, P2)], [], q1, (P1, P2))
    check_query(parse_entries(rows), through=8, on_step=seen.__setitem__)
    assert "published coef" in seen[8] and "endorsed by 2 owners" in seen[8]
    # the querier's own fit result, endorsed by nobody, or by one of the two evaluators
    _refused(_log(roster, [q0, r0], [], q1), "endorsed by 0 owner", QUERIER)
    _refused(_log(roster, [q0, r0, _endorse(r0, P1)], [], q1, (P1, P2)),
             f"provider {P2} contributes", QUERIER)
    # an owner that did not endorse the fit does not evaluate it
    _refused(_log(roster, [q0, r0, _endorse(r0, P1), _endorse(r0, P2)], [], q1),
             f"provider {P3} contributes", QUERIER, contributor=P3)
