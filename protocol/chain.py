"""Chained iterative fits: round k's public input is round k-1's published result.

Without this rule an IRLS querier sets ``params.beta`` freely every round, and each round
becomes an arbitrary weighted half-space count over the owners' rows (issue 12, finding 5).
So a chained statistic (``logistic_irls``, ``cox_regression``) names, from round 1 on, the
query id of the previous round in ``params.previous``; the rule (step 8, run by every
provider before it answers, by every compute node and by the verifier):

* round 0 has no ``previous``, ``round = 0`` and ``beta`` all zeros;
* round k > 0 names ``previous``; that query's entry is in view, asks the same statistic
  with the same spec except ``params.beta``, ``params.round`` and ``params.previous``, has
  ``round = k - 1``; its result entry is in view, did not converge, and its ``beta_next``
  equals this round's ``beta`` exactly (the same floats, bit for bit).

The previous round's query and result entries travel with the query (the follower fetches
them, the certificate carries them, the audit adds them); their signatures are checked like
the query's own (:mod:`statledger.protocol.checks`, step 8).

**The previous result must be established** (:func:`check_established`).  The ledger orders
entries but does not re-check a result's numbers, so a result entry alone proves nothing: a
querier could log, for its own round k-1, a result with numbers of its choosing (its
certificate would fail step 14 and no owner would endorse it) and start round k from them.
So the previous query's ``endorsement`` entries travel with the query too, and step 8
counts those logged *before* this query's entry, each signed by a provider admitted at its
index, naming the previous query and signing the digest of the carried result entry (one
per provider; another digest is refused).  The rule: **every owner that contributes to this
query endorsed the previous result** (a provider checking before it contributes counts
itself), and at least ``max(MIN_PROVIDERS_FLOOR, previous min_providers)`` owners did.  An
owner endorses only after steps 5-14 of that query (it re-derived the totals from the
decryption shares and the result from the totals), so an honest owner never answers a round
whose input no honest owner checked: it checked it itself.  This is cheaper than requiring
every owner the previous aggregate lists (that needs the previous submissions, range proofs
and all, in every certificate: twice its size) and no weaker for the owner at risk: a
querier that picks colluding owners for round k-1 satisfies that rule too, while this one
still requires the honest owner's own endorsement.  The price: an owner that did not take
part in (or did not endorse) the previous query cannot answer the next round or evaluate
that model.  The querier waits for every endorsement before it starts the next query (its
``run`` returns only then).

A *model reference* (``model_evaluation``, :data:`REFERENCING`) uses the same carriage:
``params.previous`` names the query id of an earlier fit of another statistic, whose query,
result and endorsement entries travel with the query exactly like a previous round's (the
fit must be established, by the same rule); step 8 then runs the referencing statistic's
own rule on them
(:func:`statledger.protocol.stats.evaluation.check_model_reference`: the fit's published
coefficients, target and features are exactly the spec's).

Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.entries import (
    EndorsementEntry,
    Entry,
    QueryEntry,
    ResultEntry,
    result_digest,
)
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.evaluation import check_model_reference
from statledger.protocol.view import fail

__all__ = ["CHAINED", "CHAIN_PARAMS", "REFERENCING", "previous_id", "chain_rows", "own_rows",
           "check_chain", "check_established"]

#: statistics whose rounds are chained
CHAINED = frozenset({"logistic_irls", "cox_regression"})
#: the params that may change from one round to the next
CHAIN_PARAMS = ("beta", "round", "previous")
#: statistics that reference another query's published result (params.previous), each with
#: the rule its spec must satisfy against that query's spec and result (MalformedError)
REFERENCING: dict[str, Callable[[QuerySpec, QuerySpec, dict[str, Any]], str]] = {
    "model_evaluation": check_model_reference,
}
_ID = re.compile(r"^[0-9a-f]{64}$")


def previous_id(spec: QuerySpec) -> str | None:
    """The previous round's query id a chained spec names (None for round 0 or unchained).
    MalformedError for a value that is not a query id."""
    if spec.statistic not in CHAINED and spec.statistic not in REFERENCING:
        return None
    prev = spec.params.get("previous")
    if prev is None:
        return None
    if not isinstance(prev, str) or not _ID.fullmatch(prev):
        raise MalformedError("params.previous: expected the previous round's query id "
                             "(64 lowercase hex digits)")
    return prev


def _decoded(data: bytes) -> Entry | None:
    try:
        return Entry.from_bytes(data)
    except MalformedError:
        return None


def chain_rows(rows: Sequence[tuple[int, bytes]], previous: str) -> list[tuple[int, bytes]]:
    """Of a query's log rows, the ones a chained successor carries: its query entry, its
    result entry and its endorsements (nothing else)."""
    out = []
    for index, data in rows:
        e = _decoded(data)
        if isinstance(e, QueryEntry | ResultEntry | EndorsementEntry) and e.query_id == previous:
            out.append((index, data))
    return out


def own_rows(rows: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """``rows`` without the carried previous round: the query, result and endorsement
    entries of a query that a query entry among ``rows`` names in ``params.previous``."""
    decoded = [(index, data, _decoded(data)) for index, data in rows]
    named = set()
    for _, _, e in decoded:
        if isinstance(e, QueryEntry):
            prev = e.spec.get("params", {}).get("previous")
            if isinstance(prev, str):
                named.add(prev)
    return [(index, data) for index, data, e in decoded
            if not (isinstance(e, QueryEntry | ResultEntry | EndorsementEntry)
                    and e.query_id in named)]


def _base(spec: QuerySpec) -> dict[str, Any]:
    obj = spec.to_json_obj()
    obj["params"] = {k: v for k, v in obj["params"].items() if k not in CHAIN_PARAMS}
    return obj


def _same_float(a: Any, b: Any) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and a.hex() == b.hex()) or (
        type(a) is int and type(b) is int and a == b)


def check_chain(spec: QuerySpec, querier: str,
                previous_query: tuple[int, QueryEntry] | None,
                previous_result: tuple[int, ResultEntry, bytes] | None) -> str | None:
    """Step 8's chain rule (module docstring); VerificationError (step 8) blaming the
    querier.  Returns a detail line for a chained round, None otherwise."""
    try:
        prev = previous_id(spec)
    except MalformedError as exc:
        raise fail(8, str(exc), querier) from None
    if spec.statistic in REFERENCING:
        return _check_reference(spec, querier, prev, previous_query, previous_result)
    if spec.statistic not in CHAINED:
        if previous_query is not None or previous_result is not None:
            raise fail(8, "entries of another query travel with a query that is not a "
                          "chained round", querier)
        return None
    beta = spec.params.get("beta")
    rnd = spec.params.get("round", 0)
    if prev is None:
        if previous_query is not None or previous_result is not None:
            raise fail(8, "round 0 carries entries of another query", querier)
        if rnd != 0 or (beta is not None and any(b != 0 for b in beta)):
            raise fail(8, "a chained fit starts at round 0 from beta = 0; a later round "
                          "names the previous round's query id in params.previous", querier)
        return None
    if previous_query is None or previous_query[1].query_id != prev:
        raise fail(8, f"the previous round's query {prev[:16]}... is not in view", querier)
    if previous_result is None or previous_result[1].query_id != prev:
        raise fail(8, f"the previous round's result ({prev[:16]}...) is not in view", querier)
    pspec = previous_query[1].query_spec()
    if _base(pspec) != _base(spec):
        raise fail(8, "the previous round asked another query (only params.beta, round and "
                      "previous may change between rounds)", querier)
    if pspec.params.get("round", 0) != rnd - 1:
        raise fail(8, f"round {rnd} follows round {pspec.params.get('round', 0)}", querier)
    published = previous_result[1].result
    nxt = published.get("beta_next")
    if published.get("converged") or not isinstance(nxt, list):
        raise fail(8, "the previous round has no next beta (it converged or failed)", querier)
    if (not isinstance(beta, list) or len(beta) != len(nxt)
            or not all(_same_float(a, b) for a, b in zip(beta, nxt, strict=True))):
        raise fail(8, "params.beta is not the previous round's published beta_next "
                      "(a forged beta)", querier)
    return f"round {rnd}: beta = round {rnd - 1}'s published beta_next ({prev[:16]}...)"


def _check_reference(spec: QuerySpec, querier: str, prev: str | None,
                     previous_query: tuple[int, QueryEntry] | None,
                     previous_result: tuple[int, ResultEntry, bytes] | None) -> str:
    """Step 8 for a statistic of :data:`REFERENCING`: the named query and its result are in
    view and pass the statistic's rule; VerificationError (step 8) blaming the querier."""
    if prev is None:
        raise fail(8, f"{spec.statistic} names the referenced query's id in params.previous",
                   querier)
    if previous_query is None or previous_query[1].query_id != prev:
        raise fail(8, f"the referenced query {prev[:16]}... is not in view", querier)
    if previous_result is None or previous_result[1].query_id != prev:
        raise fail(8, f"the referenced query's result ({prev[:16]}...) is not in view",
                   querier)
    try:
        return REFERENCING[spec.statistic](spec, previous_query[1].query_spec(),
                                           previous_result[1].result)
    except MalformedError as exc:
        raise fail(8, f"params.previous: {exc}", querier) from None


def check_established(querier: str, previous_query: tuple[int, QueryEntry] | None,
                      previous_result: tuple[int, ResultEntry, bytes] | None,
                      endorsements: Sequence[tuple[int, EndorsementEntry]], *,
                      query_index: int | None, contributors: Collection[str],
                      floor: int) -> str | None:
    """Step 8: the previous result a chained round or a model reference rests on is
    established (module docstring).  ``endorsements`` are the carried endorsements of the
    previous query, their signatures already checked by the caller (it holds the roster);
    ``contributors`` the owners that contribute to this query (and the provider about to);
    ``floor`` the least number of providers an aggregate combines.  VerificationError (step
    8) blaming the querier, or the endorser for an endorsement of another result or a second
    one.  Returns a detail line, None when the query carries no previous query."""
    if previous_query is None:
        if endorsements:
            raise fail(8, "endorsements of another query travel with a query that names no "
                          "previous query", querier)
        return None
    prev = previous_query[1].query_id
    if previous_result is None or previous_result[1].query_id != prev:
        raise fail(8, f"the previous query's result ({prev[:16]}...) is not in view", querier)
    if query_index is None:
        raise fail(8, "the query entry has no log index", querier)
    digest = result_digest(previous_result[2])
    seen: set[str] = set()
    counted: set[str] = set()
    for index, en in endorsements:
        if en.query_id != prev:
            raise fail(8, f"endorsement {index} belongs to query {en.query_id}, not to the "
                          "previous one", en.provider)
        if en.provider in seen:
            raise fail(8, f"provider {en.provider} endorsed the previous result twice",
                       en.provider)
        seen.add(en.provider)
        if en.result_digest != digest:
            raise fail(8, f"endorsement {index} of the previous query signs another result",
                       en.provider)
        if index < query_index:  # logged after this query: it does not count
            counted.add(en.provider)
    missing = sorted(set(contributors) - counted)
    if missing:
        raise fail(8, f"provider {missing[0]} contributes to this query but did not endorse "
                      f"the previous result ({prev[:16]}...) before it: that result is not "
                      "established for it", querier)
    need = max(floor, previous_query[1].query_spec().min_providers)
    if len(counted) < need:
        raise fail(8, f"the previous result ({prev[:16]}...) is endorsed by {len(counted)} "
                      f"owner(s) before this query, it needs {need}: not established (too few "
                      "owners checked its numbers)", querier)
    return f"previous result endorsed by {len(counted)} owners"
