"""The protocol's step table (statledger.protocol.checks) on a small honest run built in
process: every step passes in order; the step-11 floor of two distinct providers holds even
when the query asks for one; a query that stopped early fails with MissingEntryError at the
step of the first missing entry; the table is the one source of the report's step names and
new steps are added by extending it.

The runs carry a real key ceremony (docs/dkg.md), built by
:func:`test_entries_helpers.key_ceremony`.  The adversaries of steps 6, 12 and 13 under a
``T``-of-``N`` key are at the end of this file."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from test_entries_helpers import key_ceremony, threshold_decryption

from statledger.proofs import sigma
from statledger.proofs.errors import DecryptionError, VerificationError
from statledger.proofs.group import Point, Scalar, base_mul
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
    check_setup,
    run_steps,
    step_13_totals,
)
from statledger.protocol.consortium import AdmissionRule, Genesis, Member, SignedGenesis
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import QueryView, parse_entries

NODES = ("node-a", "node-b")
#: the third compute node of :data:`GENESIS_2OF3` (no member of :data:`GENESIS`)
NODE_C = "node-c"
PROVIDERS = ("prov-1", "prov-2", "prov-3")
KEYS = {p: SigningKey.from_bytes(bytes([i + 40]) * 32)
        for i, p in enumerate(("ledger", *NODES, *PROVIDERS, "researcher", NODE_C))}
#: The secrets of the compute nodes' transport keys: the ElGamal key a node registers (with
#: its proof of knowledge) in its ``party`` entry, to which the key ceremony encrypts its
#: shares.  Not the key shares: those come out of the ceremony (:class:`Ceremony`).
TRANSPORT = {n: Scalar(1000 + i) for i, n in enumerate((*NODES, NODE_C))}
ORIGIN = "statledger.test/checks"
#: The founding members of the consortium of these runs (party id -> role).
FOUNDERS = {"ledger": "ledger", **dict.fromkeys(NODES, "compute"),
            **dict.fromkeys(PROVIDERS, "provider"), "researcher": "querier"}


def _genesis(name: str = "checks consortium", founders: dict[str, str] | None = None,
             keys: dict[str, SigningKey] | None = None,
             threshold: int | None = None) -> SignedGenesis:
    """A consortium of ``founders`` (default :data:`FOUNDERS`) under ``keys`` (default
    :data:`KEYS`), signed by every founding member; witness quorum 1; a membership change
    needs 2 signatures of members whose role is compute or ledger; decryption threshold
    ``threshold`` (default: every compute node)."""
    founders = FOUNDERS if founders is None else founders
    keys = KEYS if keys is None else keys
    members = tuple(Member(p, r, keys[p].public_key().to_bytes().hex())
                    for p, r in founders.items())
    signed = SignedGenesis(Genesis(name, ORIGIN, members, 1,
                                   AdmissionRule(2, ("compute", "ledger")), threshold))
    for m in members:
        signed = signed.sign(m.party_id, keys[m.party_id])
    return signed


GENESIS = _genesis()
CONSORTIUM = GENESIS.genesis.consortium_id
#: Three compute nodes, any two of which decrypt.
GENESIS_2OF3 = _genesis("checks consortium, 2 of 3", {**FOUNDERS, NODE_C: "compute"},
                        threshold=2)


def _spec(min_providers: int) -> QuerySpec:
    return QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "min_cell_size": 1, "max_rows": 100,
                            "min_providers": min_providers})


def _run(providers: tuple[str, ...], min_providers: int = 2,
         stop_after: str | None = None, *, genesis: SignedGenesis = GENESIS,
         decrypting: Sequence[str] | None = None,
         decryptors: Sequence[str] | None = None) -> list[tuple[int, bytes]]:
    """The log entries of one honest query: the consortium's genesis (entry 0, appended by
    the ledger), the compute nodes' transport keys (proofs bound to the consortium), the
    key ceremony (``dkg_*`` entries, signed by the nodes), the setup, query, one submission
    per provider, aggregate, the decryption shares of ``decrypting`` (default: every
    compute node), the result naming ``decryptors`` (default: the first ``T`` of
    ``decrypting``), endorsements (cut after the kind ``stop_after``).  Providers and the
    querier are members by the genesis: they log no ``party`` entry."""
    g = genesis.genesis
    cid = g.consortium_id
    nodes = tuple(sorted(m.party_id for m in g.members if m.role == "compute"))
    vk = {p: k.public_key().to_bytes().hex() for p, k in KEYS.items()}
    log: list[E.Entry] = [E.sign(E.GenesisEntry.of(genesis), KEYS["ledger"])]
    for n in nodes:
        X_n = base_mul(TRANSPORT[n])
        pok = sigma.prove_schnorr(TRANSPORT[n], X_n, flow.keyreg_context(cid, n))
        log.append(E.sign(E.PartyEntry(n, "compute", vk[n], X_n.to_bytes().hex(),
                                       pok.to_bytes().hex()), KEYS[n]))
    cer = key_ceremony(cid, {n: TRANSPORT[n] for n in nodes},
                       g.decryption_threshold or len(nodes), KEYS)
    log += cer.entries
    setup = cer.setup(cid)
    log.append(E.sign(setup, KEYS["ledger"]))
    X = cer.collective
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
    decs, totals, named = threshold_decryption(
        cer, setup, qid, agg, [c.ranges for c in contributions], KEYS,
        nodes if decrypting is None else decrypting, decryptors, spec=spec)
    for d in decs:
        log.append(d)
        cut[f"decryption:{d.claimed_author()}"] = len(log)
    result = E.sign(E.ResultEntry.for_totals(qid, totals, stat.decode(spec, totals).to_dict(),
                                             named), KEYS["researcher"])
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
    ("decryption:node-a", 12, ": 1 of the 2 decryption shares needed; no decryption shares "
                              "from node-b$", "node-b"),
    ("decryption:node-b", 13, "no result entry", "researcher"),
    ("result", 15, "no endorsement from contributing provider prov-1", "prov-1"),
])
def test_missing_entries(stop_after: str, step: int, match: str, party: str) -> None:
    rows = _run(PROVIDERS[:2], stop_after=stop_after)
    with pytest.raises(MissingEntryError, match=match) as ei:
        check_query(parse_entries(rows))
    assert ei.value.step == f"step {step}" and ei.value.party == party
    assert isinstance(ei.value, VerificationError)  # callers that catch it still do


def test_a_bad_present_decryption_is_checked_before_a_missing_one() -> None:
    """Every logged decryption entry is checked before a missing node is reported.  Under a
    T-of-N key an invalid entry does not end the query by itself (docs/verification.md,
    step 12): while there is no result, it is skipped and named in the reason of the
    MissingEntryError; once a result names that node, the query is invalid."""
    rows = _run(PROVIDERS[:2], stop_after="decryption:node-a")
    view = parse_entries(rows)
    index, d = view.decryptions[0]
    wrong = (base_mul(Scalar(7)).to_bytes().hex(), *d.shares[1:])  # a wrong share, re-signed
    view.decryptions = [(index, E.sign(replace(d, shares=wrong), KEYS["node-a"]))]
    with pytest.raises(MissingEntryError, match=r": 0 of the 2 decryption shares needed; no "
                                                r"decryption shares from node-b; invalid: "
                                                r"node-a$") as ei:
        check_query(view)
    assert ei.value.step == "step 12" and ei.value.party == "node-b"
    # the same bad entry in the finished run, whose result names node-a: invalid
    full = _run(PROVIDERS[:2])
    index, d = _entry(full, "decryption", node="node-a")
    _fails(_put(full, index, replace(d, shares=wrong, sig=None), "node-a"), 12, "researcher",
           "the result names node-a, whose decryption shares are invalid")


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


# -- a T-of-N key from the ceremony on the log: adversaries of steps 6, 12 and 13 ----------------
#
# The log operator writes the setup; the querier names the decryptors and publishes the
# totals.  Each reject test changes exactly one entry of an honest run (re-signed by its
# author, so only the check under test can fail) and names the step and the party blamed;
# the honest run is its twin.


def _entry(rows: list[tuple[int, bytes]], kind: str, **match: Any) -> tuple[int, Any]:
    """The first entry of ``kind`` whose fields equal ``match``, with its index."""
    for i, data in rows:
        e = E.Entry.from_bytes(data)
        if e.KIND == kind and all(getattr(e, k) == v for k, v in match.items()):
            return i, e
    raise KeyError(f"no {kind} entry with {match}")


def _put(rows: list[tuple[int, bytes]], index: int, entry: E.Entry,
         signer: str) -> list[tuple[int, bytes]]:
    """``rows`` with the entry at ``index`` replaced by ``entry``, signed by ``signer``."""
    return [(i, E.sign(entry, KEYS[signer]).to_bytes() if i == index else data)
            for i, data in rows]


def _with_setup(rows: list[tuple[int, bytes]], **fields: Any) -> list[tuple[int, bytes]]:
    """The log operator's setup with ``fields`` changed (points given as Points)."""
    index, setup = _entry(rows, "setup")
    hexed = {k: (v.to_bytes().hex() if isinstance(v, Point) else
                 tuple(p.to_bytes().hex() for p in v) if k == "verification_keys" else v)
             for k, v in fields.items()}
    return _put(rows, index, replace(setup, **hexed, sig=None), "ledger")


def _fails(rows: list[tuple[int, bytes]], step: int, party: str | None, match: str,
           **kw: Any) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as ei:
        check_query(parse_entries(rows), **kw)
    assert (ei.value.step, ei.value.party) == (f"step {step}", party), ei.value
    assert not isinstance(ei.value, MissingEntryError), ei.value
    return ei.value


@functools.cache
def _honest_2of3_rows() -> tuple[tuple[int, bytes], ...]:
    return tuple(_run(PROVIDERS[:2], genesis=GENESIS_2OF3))


def _honest_2of3() -> list[tuple[int, bytes]]:
    """The 2-of-3 run in which every node decrypts and the result names node-a and
    node-b (built once; a copy)."""
    return list(_honest_2of3_rows())


def test_the_setup_is_the_ceremonys_outcome(honest: list[tuple[int, bytes]]) -> None:
    """The twin of every step-6 forgery below: the honest setup holds the threshold of the
    consortium and the keys the ceremony on the log gives, and check_setup returns the
    verification keys ``Y_j`` (not the transport keys)."""
    view = parse_entries(honest)
    setup = view.setup
    assert setup is not None and setup.threshold == 2 == len(setup.compute)
    assert [e.KIND for _, e in view.dkg] == ["dkg_deal"] * 2 + ["dkg_ack"] * 2 + ["dkg_key"] * 2
    keys = check_setup(view, pinned=CONSORTIUM)
    assert keys == setup.verification_points()
    assert keys != [base_mul(TRANSPORT[n]) for n in NODES]
    assert setup.collective_point() != flow.collective_key(
        [base_mul(TRANSPORT[n]) for n in NODES])  # not the old n-of-n sum
    details: dict[int, str] = {}
    check_query(parse_entries(_honest_2of3()), through=6, on_step=details.__setitem__)
    assert "key ceremony of 3 compute nodes re-derived (2-of-3, 3 qualified dealers)" in (
        details[6])


@pytest.mark.parametrize("which", ["random", "n-of-n sum", "a verification key",
                                   "another ceremony"])
def test_a_collective_key_not_the_ceremonys_fails_step_6(which: str,
                                                          honest: list[tuple[int, bytes]]
                                                          ) -> None:
    """The log operator writes a collective key of its choice: one it holds, the old
    design's sum of the transport keys, a node's verification key, or the (consistent)
    outcome of another ceremony it ran itself -- with that ceremony's verification keys."""
    _, setup = _entry(honest, "setup")
    fields: dict[str, Any] = {}
    if which == "random":
        fields["collective_key"] = base_mul(Scalar(987654321))
    elif which == "n-of-n sum":
        fields["collective_key"] = flow.collective_key([base_mul(TRANSPORT[n]) for n in NODES])
    elif which == "a verification key":
        fields["collective_key"] = setup.verification_point("node-a")
    else:
        own = key_ceremony(CONSORTIUM, {n: Scalar(77 + i) for i, n in enumerate(NODES)}, 2,
                           KEYS)
        fields["collective_key"] = own.collective
        fields["verification_keys"] = [own.verification[n] for n in NODES]
    assert fields["collective_key"] != setup.collective_point()
    _fails(_with_setup(honest, **fields), 6, "ledger",
           "setup.collective_key is not the key the ceremony on the log produced")


@pytest.mark.parametrize("which", ["random", "swapped", "a transport key"])
def test_a_wrong_verification_key_fails_step_6(which: str,
                                               honest: list[tuple[int, bytes]]) -> None:
    """The collective key is right, but a node's ``Y_j`` is not: a node holding another
    share would pass step 12 with wrong decryption shares."""
    _, setup = _entry(honest, "setup")
    ya, yb = setup.verification_points()
    keys = {"random": [ya, base_mul(Scalar(4242))], "swapped": [yb, ya],
            "a transport key": [ya, base_mul(TRANSPORT["node-b"])]}[which]
    _fails(_with_setup(honest, verification_keys=keys), 6, "ledger",
           "setup.verification_keys are not the ones the ceremony on the log produced")


def test_a_threshold_other_than_the_consortiums_fails_step_6(
        honest: list[tuple[int, bytes]]) -> None:
    """A 1-of-2 key (each node alone decrypts) in a consortium that asked for 2-of-2: a
    setup that merely states T = 1, and a whole ceremony run with T = 1 whose setup is
    consistent with it.  The twin: the same T = 1 ceremony in a consortium whose genesis
    asks for T = 1."""
    _fails(_with_setup(honest, threshold=1), 6, "ledger",
           "the setup says threshold 1, the consortium's is 2")
    one = _genesis("checks consortium, 1 of 2", threshold=1)
    rows_1of2 = _run(PROVIDERS[:2], genesis=one)
    assert _steps_seen(rows_1of2, pinned=one.genesis.consortium_id)[-1] == 15
    # the same consortium as ``honest`` (T = 2), with a T = 1 ceremony and setup
    low = key_ceremony(CONSORTIUM, {n: TRANSPORT[n] for n in NODES}, 1, KEYS)
    first = next(i for i, data in honest if E.Entry.from_bytes(data).KIND == "dkg_deal")
    index, _ = _entry(honest, "setup")
    forged = [*honest[:first], *[(first + k, e.to_bytes()) for k, e in enumerate(low.entries)],
              (index, E.sign(low.setup(CONSORTIUM), KEYS["ledger"]).to_bytes()),
              *honest[index + 1:]]
    assert len(low.entries) == index - first
    _fails(forged, 6, "ledger", "the setup says threshold 1, the consortium's is 2",
           through=6)


@pytest.mark.parametrize("kind", ["dkg_deal", "dkg_ack", "dkg_key"])
def test_a_ceremony_entry_signed_by_another_node_fails_step_6(
        kind: str, honest: list[tuple[int, bytes]]) -> None:
    """node-a's message of the ceremony signed with node-b's identity key (node-b, or the
    log operator holding its key, speaking for node-a); and node-a's message claimed by a
    provider, under the provider's own key."""
    index, e = _entry(honest, kind, node="node-a")
    _fails(_put(honest, index, replace(e, sig=None), "node-b"), 6, "node-a",
           f"{kind} entry: Ed25519 signature does not verify", through=6)
    _fails(_put(honest, index, replace(e, node="prov-1", sig=None), "prov-1"), 6, "prov-1",
           "prov-1 is a provider, not a compute", through=6)


def test_a_setup_before_the_ceremony_finished_fails_step_6(
        honest: list[tuple[int, bytes]]) -> None:
    """Only the ceremony's entries before the setup count: a setup written before the key
    commitments (or before any ceremony entry), or a ceremony missing a node's key
    commitment, does not re-derive."""
    entries = [E.Entry.from_bytes(data) for _, data in honest]
    kinds = [e.KIND for e in entries]
    s = kinds.index("setup")
    keys = [i for i, k in enumerate(kinds) if k == "dkg_key"]
    deals = [i for i, k in enumerate(kinds) if k == "dkg_deal"]
    for at in (keys[0], deals[0]):  # the setup moved before the key commitments / deals
        moved = [*entries[:at], entries[s], *entries[at:s], *entries[s + 1:]]
        with pytest.raises(VerificationError, match="key ceremony") as ei:
            check_query(parse_entries([(i, e.to_bytes()) for i, e in enumerate(moved)]),
                        through=6)
        assert ei.value.step == "step 6"
    dropped = [(i, e.to_bytes()) for i, e in enumerate(entries[:keys[1]] + entries[keys[1] + 1:])]
    with pytest.raises(VerificationError, match="key ceremony: .*key commitment missing") as ei:
        check_query(parse_entries(dropped), through=6)
    assert ei.value.step == "step 6"


@pytest.mark.parametrize("named, match", [
    (("node-a",), "the result names 1 decrypting nodes; the threshold is 2"),
    (("node-a", "node-b", "node-c"), "the result names 3 decrypting nodes; the threshold is 2"),
    (("node-a", "node-x"), "the result names node-x, which logged no decryption shares"),
])
def test_a_result_naming_the_wrong_decryptors_fails_step_12(named: tuple[str, ...],
                                                            match: str) -> None:
    """T - 1 decryptors (fewer than the key needs), T + 1, and a node that logged no
    decryption shares: the querier's result is refused at step 12."""
    rows = _honest_2of3()
    index, res = _entry(rows, "result")
    assert res.decryptors == ("node-a", "node-b")
    _fails(_put(rows, index, replace(res, decryptors=named, sig=None), "researcher"), 12,
           "researcher", match)
    # node-c logged no decryption shares: naming it is refused, naming the others is not
    rows = _run(PROVIDERS[:2], genesis=GENESIS_2OF3, decrypting=("node-b", "node-a"))
    index, res = _entry(rows, "result")
    _fails(_put(rows, index, replace(res, decryptors=("node-a", "node-c"), sig=None),
                "researcher"), 12, "researcher",
           "the result names node-c, which logged no decryption shares")
    assert _steps_seen(rows)[-1] == 15


@pytest.mark.parametrize("how", ["a wrong share", "the transport key"])
def test_a_named_decryptor_with_invalid_shares_fails_step_12(how: str) -> None:
    """node-b, named by the result, logged shares that are not ``x_b * C1``: one share
    changed, or every share made with its transport key (the old n-of-n key share) and
    proven against it.  Step 12 refuses the result: the querier named a node whose shares
    do not verify (any other two of the three would have done)."""
    rows = _honest_2of3()
    index, d = _entry(rows, "decryption", node="node-b")
    if how == "a wrong share":
        bad = replace(d, shares=(base_mul(Scalar(7)).to_bytes().hex(), *d.shares[1:]),
                      sig=None)
    else:
        _, agg = _entry(rows, "aggregate")
        x = TRANSPORT["node-b"]
        shares, proof = flow.make_decryption(x, base_mul(x), agg.decode_ciphertexts(),
                                             flow.decryption_context(d.query_id, "node-b"))
        bad = E.DecryptionEntry(d.query_id, "node-b",
                                tuple(s.to_bytes().hex() for s in shares),
                                proof.to_bytes().hex())
    err = _fails(_put(rows, index, bad, "node-b"), 12, "researcher",
                 "the result names node-b, whose decryption shares are invalid")
    assert "decryption shares: " in err.reason


def test_an_invalid_entry_leaves_a_2_of_3_query_incomplete_until_others_decrypt() -> None:
    """2-of-3, no result yet: node-a's shares are invalid, node-b's valid, node-c has not
    decrypted.  The query can still complete (node-b and node-c), so step 12 reports the
    missing node-c, naming the invalid node-a; once node-c decrypts, a result naming node-b
    and node-c verifies and node-a's shares are never combined."""
    rows = _run(PROVIDERS[:2], genesis=GENESIS_2OF3, decrypting=("node-a", "node-b"),
                stop_after="decryption:node-b")
    index, d = _entry(rows, "decryption", node="node-a")
    broken = replace(d, shares=(base_mul(Scalar(7)).to_bytes().hex(), *d.shares[1:]), sig=None)
    with pytest.raises(MissingEntryError, match=r"1 of the 2 decryption shares needed; no "
                                                r"decryption shares from node-c; invalid: "
                                                r"node-a") as ei:
        check_query(parse_entries(_put(rows, index, broken, "node-a")))
    assert (ei.value.step, ei.value.party) == ("step 12", "node-c")
    full = _run(PROVIDERS[:2], genesis=GENESIS_2OF3, decrypting=("node-a", "node-b", "node-c"),
                decryptors=("node-b", "node-c"))
    index, d = _entry(full, "decryption", node="node-a")
    view = check_query(parse_entries(_put(full, index, broken, "node-a")))
    assert view.totals == check_query(parse_entries(_honest_2of3())).totals


def test_any_t_of_the_n_nodes_decrypt_to_the_same_totals() -> None:
    """2-of-3: every pair of nodes, named by the result, verifies with the same totals --
    whether the third node decrypted too or never did (offline)."""
    totals = []
    for pair in itertools.combinations((*NODES, NODE_C), 2):
        for decrypting in (pair, (*NODES, NODE_C)):
            rows = _run(PROVIDERS[:2], genesis=GENESIS_2OF3, decrypting=decrypting,
                        decryptors=pair)
            view = check_query(parse_entries(rows), pinned=GENESIS_2OF3.genesis.consortium_id)
            assert view.result is not None and view.result[1].decryptors == pair
            totals.append(view.totals)
    assert len(totals) == 6 and all(t == totals[0] for t in totals)


def test_totals_combined_with_the_wrong_weights_fail_step_13() -> None:
    """Step 13 combines the verified shares of the named decryptors with their Lagrange
    weights at 0.  Any other weights -- the old n-of-n sum (all ones), the weights of
    another pair of nodes, the weights of the pair in the wrong order -- do not decrypt the
    aggregate: step 13 fails instead of publishing other totals."""
    rows = _run(PROVIDERS[:2], genesis=GENESIS_2OF3, decrypting=("node-a", "node-c"))
    ctx = StepContext(parse_entries(rows))
    run_steps(ctx, through=12)
    assert ctx.decryptors == ["node-a", "node-c"]
    setup = ctx.setup()
    ranges = ctx.aggregate_ranges
    right = flow.combination_weights(setup, ctx.decryptors)
    honest_totals = flow.decrypt_totals(ctx.spec(), ctx.aggregate, ctx.shares_by_node, ranges,
                                        right)
    wrong = [[Scalar(1), Scalar(1)], flow.combination_weights(setup, ["node-a", "node-b"]),
             list(reversed(right))]
    for weights in wrong:
        assert weights != right
        with pytest.raises(DecryptionError):
            flow.decrypt_totals(ctx.spec(), ctx.aggregate, ctx.shares_by_node, ranges, weights)
    # through the step: the shares of node-a and node-c under the weights of node-a and
    # node-b (the decryptors the step combines do not match the shares it holds)
    ctx.decryptors = ["node-a", "node-b"]
    with pytest.raises(VerificationError, match="does not decrypt within its bounds") as ei:
        step_13_totals(ctx)
    assert ei.value.step == "step 13"
    ctx.decryptors = ["node-a", "node-c"]  # the twin
    step_13_totals(ctx)
    assert ctx.view.totals == honest_totals
