"""Chained iterative fits: round k's public input is round k-1's published result.

Without this rule an IRLS querier sets ``params.beta`` freely every round, and each round
becomes an arbitrary weighted half-space count over the owners' rows (issue 12, finding 5).
So a chained statistic (``logistic_irls``) names, from round 1 on, the query id of the
previous round in ``params.previous``; the rule (step 8, run by every provider before it
answers, by every compute node and by the verifier):

* round 0 has no ``previous``, ``round = 0`` and ``beta`` all zeros;
* round k > 0 names ``previous``; that query's entry is in view, asks the same statistic
  with the same spec except ``params.beta``, ``params.round`` and ``params.previous``, has
  ``round = k - 1``; its result entry is in view, did not converge, and its ``beta_next``
  equals this round's ``beta`` exactly (the same floats, bit for bit).

The previous round's query and result entries travel with the query (the follower fetches
them, the certificate carries them, the audit adds them); their signatures are checked like
the query's own (:mod:`statledger.protocol.checks`, step 8).  The previous result's own
correctness is its own query's business: every owner endorsed it after checking its steps
5-14, and its certificate proves it.

Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from statledger.proofs.errors import MalformedError
from statledger.protocol.entries import Entry, QueryEntry, ResultEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import fail

__all__ = ["CHAINED", "CHAIN_PARAMS", "previous_id", "chain_rows", "own_rows", "check_chain"]

#: statistics whose rounds are chained
CHAINED = frozenset({"logistic_irls"})
#: the params that may change from one round to the next
CHAIN_PARAMS = ("beta", "round", "previous")
_ID = re.compile(r"^[0-9a-f]{64}$")


def previous_id(spec: QuerySpec) -> str | None:
    """The previous round's query id a chained spec names (None for round 0 or unchained).
    MalformedError for a value that is not a query id."""
    if spec.statistic not in CHAINED:
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
    """Of a query's log rows, the ones a chained successor carries: its query entry and its
    result entry (nothing else)."""
    out = []
    for index, data in rows:
        e = _decoded(data)
        if isinstance(e, QueryEntry | ResultEntry) and e.query_id == previous:
            out.append((index, data))
    return out


def own_rows(rows: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """``rows`` without the carried previous round: the query and result entries of a query
    that a query entry among ``rows`` names in ``params.previous``."""
    decoded = [(index, data, _decoded(data)) for index, data in rows]
    named = set()
    for _, _, e in decoded:
        if isinstance(e, QueryEntry):
            prev = e.spec.get("params", {}).get("previous")
            if isinstance(prev, str):
                named.add(prev)
    return [(index, data) for index, data, e in decoded
            if not (isinstance(e, QueryEntry | ResultEntry) and e.query_id in named)]


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
