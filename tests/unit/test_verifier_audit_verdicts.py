"""The audit's per-query verdict (statledger.verifier.audit.check_one_query) on in-process
runs: valid; incomplete when the entries are a valid prefix without a result; invalid when a
result is there but something is missing, when a present entry is wrong, or when the entries
are out of the protocol's order (blamed on the ledger, which enforces that order)."""

from __future__ import annotations

from test_protocol_checks import KEYS, PROVIDERS, _run

from statledger.protocol import entries as E
from statledger.protocol.view import parse_entries
from statledger.verifier.audit import check_one_query


def test_complete_run_is_valid() -> None:
    r = check_one_query("q", _run(PROVIDERS[:2]))
    assert (r["status"], r["valid"], r["step"], r["statistic"]) == ("valid", True, None, "count")


def test_stopped_before_a_result_is_incomplete() -> None:
    for stop, step, reason in (("query", 11, "no aggregate entry"),
                               ("submission", 11, "no aggregate entry"),
                               ("decryption:node-a", 12, "1 of the 2 decryption shares needed;"
                                                         " no decryption shares from node-b"),
                               ("decryption:node-b", 13, "no result entry")):
        r = check_one_query("q", _run(PROVIDERS[:2], stop_after=stop))
        assert (r["status"], r["valid"], r["step"], r["reason"], r["party"]) == (
            "incomplete", False, step, reason, None), (stop, r)


def test_a_result_without_endorsements_is_invalid() -> None:
    r = check_one_query("q", _run(PROVIDERS[:2], stop_after="result"))
    assert (r["status"], r["step"], r["party"]) == ("invalid", 15, "prov-1"), r


def test_a_wrong_entry_in_a_prefix_is_invalid() -> None:
    rows = _run(PROVIDERS[:2], stop_after="submission")
    index, data = rows[-1]
    sub = E.Entry.from_bytes(data)
    assert isinstance(sub, E.SubmissionEntry)
    rows[-1] = (index, E.sign(E.SubmissionEntry(sub.query_id, sub.provider, sub.vector),
                              KEYS["prov-1"]).to_bytes())  # signed by another provider
    r = check_one_query("q", rows)
    assert (r["status"], r["step"], r["party"]) == ("invalid", 9, sub.provider), r


def test_entries_out_of_order_are_not_a_prefix() -> None:
    """An endorsement logged before any result: the checks of the present entries pass up to
    the missing aggregate, but the state machine refuses the order: invalid, not
    incomplete."""
    rows = _run(PROVIDERS[:2], stop_after="submission")
    qid = parse_entries(rows).query_id
    assert qid is not None
    early = E.sign(E.EndorsementEntry(qid, "prov-1", "ab" * 32), KEYS["prov-1"])
    rows.append((len(rows), early.to_bytes()))
    r = check_one_query("q", rows)
    assert (r["status"], r["step"], r["party"]) == ("invalid", 11, "ledger"), r
    assert r["reason"].startswith("not a valid prefix of the protocol: endorsement")
