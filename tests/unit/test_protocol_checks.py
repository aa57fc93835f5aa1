"""The protocol's step table (statledger.protocol.checks) on a small honest run built in
process: every step passes in order; the step-11 floor of two distinct providers holds even
when the query asks for one; a query that stopped early fails with MissingEntryError at the
step of the first missing entry; the table is the one source of the report's step names and
new steps are added by extending it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statledger.proofs import sigma
from statledger.proofs.errors import VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries as E
from statledger.protocol import flow
from statledger.protocol.checks import (
    MIN_PROVIDERS_FLOOR,
    STEP_NAMES,
    STEPS,
    MissingEntryError,
    Step,
    StepContext,
    check_min_providers,
    check_query,
)
from statledger.protocol.consortium import AdmissionRule, Genesis, Member, SignedGenesis
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import QueryView, parse_entries

NODES = ("node-a", "node-b")
PROVIDERS = ("prov-1", "prov-2", "prov-3")
KEYS = {p: SigningKey.from_bytes(bytes([i + 40]) * 32)
        for i, p in enumerate(("ledger", *NODES, *PROVIDERS, "researcher"))}
SHARES = {n: Scalar(1000 + i) for i, n in enumerate(NODES)}
ORIGIN = "statledger.test/checks"
#: The founding members of the consortium of these runs (party id -> role).
FOUNDERS = {"ledger": "ledger", **dict.fromkeys(NODES, "compute"),
            **dict.fromkeys(PROVIDERS, "provider"), "researcher": "querier"}


def _genesis(name: str = "checks consortium", founders: dict[str, str] | None = None,
             keys: dict[str, SigningKey] | None = None) -> SignedGenesis:
    """A consortium of ``founders`` (default :data:`FOUNDERS`) under ``keys`` (default
    :data:`KEYS`), signed by every founding member; witness quorum 1; a membership change
    needs 2 signatures of members whose role is compute or ledger."""
    founders = FOUNDERS if founders is None else founders
    keys = KEYS if keys is None else keys
    members = tuple(Member(p, r, keys[p].public_key().to_bytes().hex())
                    for p, r in founders.items())
    signed = SignedGenesis(Genesis(name, ORIGIN, members, 1,
                                   AdmissionRule(2, ("compute", "ledger"))))
    for m in members:
        signed = signed.sign(m.party_id, keys[m.party_id])
    return signed


GENESIS = _genesis()
CONSORTIUM = GENESIS.genesis.consortium_id


def _spec(min_providers: int) -> QuerySpec:
    return QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "min_cell_size": 1, "max_rows": 100,
                            "min_providers": min_providers})


def _run(providers: tuple[str, ...], min_providers: int = 2,
         stop_after: str | None = None) -> list[tuple[int, bytes]]:
    """The log entries of one honest query: the consortium's genesis (entry 0, appended by
    the ledger), the compute nodes' key shares (proofs bound to the consortium), the setup,
    query, one submission per provider, aggregate, decryptions, result, endorsements (cut
    after the kind ``stop_after``).  Providers and the querier are members by the genesis:
    they log no ``party`` entry."""
    vk = {p: k.public_key().to_bytes().hex() for p, k in KEYS.items()}
    log: list[E.Entry] = [E.sign(E.GenesisEntry.of(GENESIS), KEYS["ledger"])]
    for n in NODES:
        X_n = base_mul(SHARES[n])
        pok = sigma.prove_schnorr(SHARES[n], X_n, flow.keyreg_context(CONSORTIUM, n))
        log.append(E.sign(E.PartyEntry(n, "compute", vk[n], X_n.to_bytes().hex(),
                                       pok.to_bytes().hex()), KEYS[n]))
    X = flow.collective_key([base_mul(SHARES[n]) for n in NODES])
    log.append(E.sign(E.SetupEntry(CONSORTIUM, NODES, X.to_bytes().hex()), KEYS["ledger"]))
    spec = _spec(min_providers)
    qid = spec.query_id_for("researcher")
    stat = get_statistic(spec.statistic)
    ranges = list(stat.layout(spec).ranges)
    log.append(E.sign(E.QueryEntry.for_spec(spec, "researcher"), KEYS["researcher"]))
    cut = {"query": len(log)}
    contributions = []
    subs = []
    for k, p in enumerate(providers):
        values = [min(hi, lo + 3 + k) for lo, hi in ranges]
        ev = encrypt_vector_with_proof(X, values, ranges, flow.submission_context(qid, p))
        subs.append(len(log))
        log.append(E.sign(E.SubmissionEntry(qid, p, ev.to_bytes().hex()), KEYS[p]))
        contributions.append(flow.Contribution(ev, tuple(ranges)))
    cut["submission"] = len(log)
    agg = flow.aggregate(contributions)
    flat = flow.flatten(agg)
    log.append(E.sign(E.AggregateEntry(qid, tuple(subs), (),
                                       tuple(c.to_bytes().hex() for c in flat)),
                      KEYS["researcher"]))
    cut["aggregate"] = len(log)
    shares_by_node = []
    for n in NODES:
        shares, proof = flow.make_decryption(SHARES[n], base_mul(SHARES[n]), flat,
                                             flow.decryption_context(qid, n))
        shares_by_node.append(shares)
        log.append(E.sign(E.DecryptionEntry(qid, n, tuple(s.to_bytes().hex() for s in shares),
                                            proof.to_bytes().hex()), KEYS[n]))
        cut[f"decryption:{n}"] = len(log)
    totals = flow.decrypt_totals(agg, shares_by_node, [c.ranges for c in contributions])
    result = E.sign(E.ResultEntry.for_totals(qid, totals, stat.decode(spec, totals).to_dict()),
                    KEYS["researcher"])
    log.append(result)
    cut["result"] = len(log)
    for p in providers:
        log.append(E.sign(E.EndorsementEntry(qid, p, E.result_digest(result.to_bytes())),
                          KEYS[p]))
    cut["endorsement"] = len(log)
    if stop_after is not None:
        log = log[:cut[stop_after]]
    return [(i, e.to_bytes()) for i, e in enumerate(log)]


@pytest.fixture(scope="module")
def honest() -> list[tuple[int, bytes]]:
    return _run(PROVIDERS[:2])


def _steps_seen(rows: list[tuple[int, bytes]], **kw: Any) -> list[int]:
    seen: list[int] = []
    check_query(parse_entries(rows), on_step=lambda n, _d: seen.append(n), **kw)
    return seen


def test_honest_run_passes_every_step_in_table_order(honest: list[tuple[int, bytes]]) -> None:
    assert _steps_seen(honest) == [6, 8, 9, 10, 11, 12, 13, 14, 15]
    assert _steps_seen(honest, through=11) == [6, 8, 9, 10, 11]
    view = check_query(parse_entries(honest))
    assert view.spec is not None and view.totals is not None and view.decoded is not None


# -- step 11: at least two distinct providers AND the query's min_providers -------------------


def test_one_provider_with_min_providers_1_is_rejected_at_step_11() -> None:
    rows = _run(PROVIDERS[:1], min_providers=1)
    with pytest.raises(VerificationError, match="1 providers, the query needs at least 2 "
                                                r"\(its min_providers 1 is below the floor"
                       ) as ei:
        check_query(parse_entries(rows))
    assert ei.value.step == "step 11" and ei.value.party == "researcher"
    assert not isinstance(ei.value, MissingEntryError)


def test_two_providers_with_min_providers_1_pass() -> None:
    """The twin: the same query with a second provider is valid."""
    assert _steps_seen(_run(PROVIDERS[:2], min_providers=1))[-1] == 15


def test_min_providers_above_the_floor_is_enforced() -> None:
    rows = _run(PROVIDERS[:2], min_providers=3)
    with pytest.raises(VerificationError, match=r"2 providers, the query needs at least 3$"):
        check_query(parse_entries(rows))


def test_check_min_providers_counts_distinct_providers(honest: list[tuple[int, bytes]]) -> None:
    """The rule alone (what a compute node calls before it decrypts): a provider counted
    twice is one provider."""
    assert MIN_PROVIDERS_FLOOR == 2
    view = check_query(parse_entries(honest), through=8)
    check_min_providers(view)
    index, first = view.submissions[0]
    twice = replace(view, submissions=[(index, first), (index + 100, first)])
    with pytest.raises(VerificationError, match="1 providers, the query needs at least 2") as ei:
        check_min_providers(twice)
    assert ei.value.step == "step 11"
    with pytest.raises(VerificationError, match="step 11"):
        check_min_providers(QueryView())  # no checked query: refused, never passed


# -- a query that stopped early: MissingEntryError at the first missing entry's step ----------


@pytest.mark.parametrize("stop_after,step,match,party", [
    ("submission", 11, "no aggregate entry", "researcher"),
    ("decryption:node-a", 12, "no decryption shares from node-b", "node-b"),
    ("decryption:node-b", 13, "no result entry", "researcher"),
    ("result", 15, "no endorsement from contributing provider prov-1", "prov-1"),
])
def test_missing_entries(stop_after: str, step: int, match: str, party: str) -> None:
    rows = _run(PROVIDERS[:2], stop_after=stop_after)
    with pytest.raises(MissingEntryError, match=match) as ei:
        check_query(parse_entries(rows))
    assert ei.value.step == f"step {step}" and ei.value.party == party
    assert isinstance(ei.value, VerificationError)  # callers that catch it still do


def test_a_bad_present_decryption_wins_over_a_missing_one() -> None:
    """Every logged decryption entry is checked before a missing node is reported."""
    rows = _run(PROVIDERS[:2], stop_after="decryption:node-a")
    view = parse_entries(rows)
    index, d = view.decryptions[0]
    wrong = (base_mul(Scalar(7)).to_bytes().hex(), *d.shares[1:])  # a wrong share, re-signed
    view.decryptions = [(index, E.sign(replace(d, shares=wrong), KEYS["node-a"]))]
    with pytest.raises(VerificationError, match="decryption shares") as ei:
        check_query(view)
    assert not isinstance(ei.value, MissingEntryError)
    assert ei.value.step == "step 12" and ei.value.party == "node-a"


# -- the table -------------------------------------------------------------------------------


def test_the_table_is_the_one_source_of_step_names() -> None:
    from statledger.verifier.report import STEPS as REPORT_STEPS

    assert [s.number for s in STEPS] == [6, 8, 9, 10, 11, 12, 13, 14, 15]
    for s in STEPS:
        assert s.run.__name__.startswith(f"step_{s.number}_")
        assert REPORT_STEPS[s.number] == s.name == STEP_NAMES[s.number]
    assert sorted(REPORT_STEPS) == list(range(1, 16))
    assert REPORT_STEPS[5] == STEP_NAMES[5]


def test_a_new_step_is_added_by_extending_the_table(honest: list[tuple[int, bytes]]) -> None:
    def step_16_audit_note(ctx: StepContext) -> str:
        return f"{len(ctx.view.endorsements)} endorsements seen"

    details: dict[int, str] = {}
    check_query(parse_entries(honest), steps=(*STEPS, Step(16, "note", step_16_audit_note)),
                through=16, on_step=details.__setitem__)
    assert list(details) == [6, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    assert details[16] == "2 endorsements seen"
