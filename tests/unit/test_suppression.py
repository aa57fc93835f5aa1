"""Suppression before decryption (statledger.protocol.suppression), in process.

The attack of issue 12: a crosstab of mean income by HIV status suppressed the one-person
cell in the decoded output only -- the result entry published its raw sum and the decryption
shares let anyone recompute it.  Here a gated run (a blinded shuffled PET chain on the cell
counts, gate shares of its last ciphertexts, a release decision of one bit per cell,
decryption of the released entries only) is built entry by entry with a real key ceremony,
and the adversaries play against it:

* a reader of the log searches every decoded entry for the suppressed sum: absent, while the
  same search finds it in the old one-phase run (the search can fail);
* no decryption share on the log is ``x_j * C1`` of a withheld ciphertext;
* a querier that forges the release decision (releases the small cell, flips a small bit,
  names a node without gate shares), publishes a withheld total or decrypts before the
  decision is refused at step 12/13 and named; a compute node whose entry covers withheld
  ciphertexts, or whose PET step is forged, missing or repeated, is named at step 12;
* every new entry kind has reject twins (bit flips, truncation, swapped fields, sizes), and
  the state machine refuses the out-of-order events.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from test_entries_helpers import key_ceremony
from test_protocol_checks import KEYS, TRANSPORT, _genesis

from statledger.proofs import sigma
from statledger.proofs.errors import MalformedError, ProtocolError, VerificationError
from statledger.proofs.group import base_mul
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries as E
from statledger.protocol import flow, pet, suppression
from statledger.protocol.checks import MissingEntryError, check_query
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Roster, replay
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries

NODES = ("node-a", "node-b")
PROVIDERS = ("prov-1", "prov-2")
QUERIER = "researcher"
INCOME = 91234.5  # the one HIV-positive patient's income


def _spec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "crosstab", "group_by": ["hiv"],
        "categories": {"hiv": ["neg", "pos", "unk"]}, "bounds": {"income": [0, 200000]},
        "params": {"value": "income"}, "min_cell_size": 5, "max_rows": 100,
        "min_providers": 2,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def _tables() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(12)
    a = {"hiv": np.array(["neg"] * 11 + ["unk"] * 6, dtype=object),
         "income": rng.uniform(20000, 90000, 17)}
    b = {"hiv": np.array(["neg"] * 10 + ["pos"], dtype=object),
         "income": np.concatenate([rng.uniform(20000, 90000, 10), [INCOME]])}
    return [a, b]


def _build(spec: QuerySpec, tables: list[dict[str, np.ndarray]], *,
           gated: bool = True) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    """One honest query's log.  ``gated=False`` plays today's one-phase run (every entry
    decrypted) for the twin that shows the search can find a leaked total."""
    genesis = _genesis()
    g = genesis.genesis
    cid = g.consortium_id
    vk = {p: k.public_key().to_bytes().hex() for p, k in KEYS.items()}
    log: list[E.Entry] = [E.sign(E.GenesisEntry.of(genesis), KEYS["ledger"])]
    for n in NODES:
        X_n = base_mul(TRANSPORT[n])
        pok = sigma.prove_schnorr(TRANSPORT[n], X_n, flow.keyreg_context(cid, n))
        log.append(E.sign(E.PartyEntry(n, "compute", vk[n], X_n.to_bytes().hex(),
                                       pok.to_bytes().hex()), KEYS[n]))
    cer = key_ceremony(cid, {n: TRANSPORT[n] for n in NODES}, len(NODES), KEYS)
    log += cer.entries
    setup = cer.setup(cid)
    log.append(E.sign(setup, KEYS["ledger"]))
    qid = spec.query_id_for(QUERIER)
    stat = get_statistic(spec.statistic)
    ranges = list(stat.layout(spec).ranges)
    log.append(E.sign(E.QueryEntry.for_spec(spec, QUERIER), KEYS[QUERIER]))
    subs, contributions, clear = [], [], [0] * len(ranges)
    for p, table in zip(PROVIDERS, tables, strict=True):
        values = stat.encode(spec, table)
        clear = [a + b for a, b in zip(clear, values, strict=True)]
        ev = encrypt_vector_with_proof(cer.collective, values, ranges,
                                       flow.submission_context(qid, p))
        subs.append(len(log))
        log.append(E.sign(E.SubmissionEntry(qid, p, ev.to_bytes().hex()), KEYS[p]))
        contributions.append(flow.Contribution(ev, tuple(ranges)))
    agg = flow.aggregate(contributions)
    all_ranges = [c.ranges for c in contributions]
    log.append(E.sign(E.AggregateEntry(qid, tuple(subs), (), tuple(
        c.to_bytes().hex() for c in flow.flatten(agg))), KEYS[QUERIER]))
    weights = flow.combination_weights(setup, NODES)
    decision = suppression.everything(len(agg))
    if gated:
        current = suppression.pet_inputs(spec, agg, all_ranges)
        for n in NODES:
            batches = [pet.blind_and_shuffle(cer.collective, cell, pet.pet_context(qid, n, c))
                       for c, cell in enumerate(current)]
            log.append(E.sign(E.PetEntry.of(qid, n, batches), KEYS[n]))
            current = [list(b.shuffled) for b in batches]
        flat = [ct for cell in current for ct in cell]
        k = len(current[0])
        gate_shares = []
        for n in NODES:
            sh, proof = flow.make_decryption(cer.shares[n], cer.verification[n], flat,
                                             suppression.gate_context(qid, n))
            gate_shares.append(sh)
            log.append(E.sign(E.GateEntry(qid, n, tuple(s.to_bytes().hex() for s in sh),
                                          proof.to_bytes().hex()), KEYS[n]))
        small = [pet.is_small(cell, [g[c * k:(c + 1) * k] for g in gate_shares], weights)
                 for c, cell in enumerate(current)]
        decision = suppression.decide(spec, small)
        n_cts = flow.decryption_count(spec, suppression.select(agg, decision.groups()))
        log.append(E.sign(E.ReleaseEntry.of(qid, NODES, small, decision.released, n_cts,
                                            decision.merged), KEYS[QUERIER]))
    released, groups = list(decision.released), decision.groups()
    sub = suppression.select(agg, groups)
    shares_by_node = []
    totals: list[int] = []
    if released:  # every entry withheld: nothing is decrypted, the result says "suppressed"
        for n in NODES:
            sh, proof = flow.make_decryption(cer.shares[n], cer.verification[n],
                                             flow.decryption_targets(spec, sub),
                                             flow.decryption_context(qid, n))
            shares_by_node.append(sh)
            log.append(E.sign(E.DecryptionEntry(qid, n, tuple(s.to_bytes().hex() for s in sh),
                                                proof.to_bytes().hex()), KEYS[n]))
        totals = flow.decrypt_totals(spec, sub, shares_by_node,
                                     suppression.sub_ranges(all_ranges, groups), weights)
    full = suppression.expand(len(agg), released, totals, groups)
    value = (stat.decode_gated(spec, full, decision.small) if gated
             else stat.decode(spec, full))  # a presence result is read off the gate bits
    result = E.sign(E.ResultEntry.for_totals(
        qid, totals, value.to_dict(), NODES if released else ()), KEYS[QUERIER])
    log.append(result)
    for p in PROVIDERS:
        log.append(E.sign(E.EndorsementEntry(qid, p, E.result_digest(result.to_bytes())),
                          KEYS[p]))
    info = {"clear": clear, "agg": agg, "shares": cer.shares, "released": released,
            "groups": groups, "cer": cer, "all_ranges": all_ranges,
            "qid": qid, "setup": setup, "small": small if gated else None}
    return [(i, e.to_bytes()) for i, e in enumerate(log)], info


@functools.cache
def _honest() -> tuple[tuple[tuple[int, bytes], ...], dict[str, Any]]:
    rows, info = _build(_spec(), _tables())
    return tuple(rows), info


def _rows() -> list[tuple[int, bytes]]:
    return list(_honest()[0])


def _entry(rows: list[tuple[int, bytes]], kind: str, **match: Any) -> tuple[int, Any]:
    for i, data in rows:
        e = E.Entry.from_bytes(data)
        if e.KIND == kind and all(getattr(e, k) == v for k, v in match.items()):
            return i, e
    raise KeyError(kind)


def _put(rows: list[tuple[int, bytes]], index: int, entry: E.Entry,
         signer: str) -> list[tuple[int, bytes]]:
    return [(i, E.sign(replace(entry, sig=None), KEYS[signer]).to_bytes() if i == index
             else data) for i, data in rows]


def _fails(rows: list[tuple[int, bytes]], step: int, party: str | None,
           match: str) -> None:
    with pytest.raises(VerificationError, match=match) as ei:
        check_query(parse_entries(rows))
    assert (ei.value.step, ei.value.party) == (f"step {step}", party), ei.value
    assert not isinstance(ei.value, MissingEntryError)


def _numbers(obj: Any) -> set[str]:
    """Every number and every decimal string in a decoded entry, as text."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            out |= _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= _numbers(v)
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, (int, float)):
        out.add(str(int(obj)) if float(obj).is_integer() else repr(obj))
    elif isinstance(obj, str):
        out.add(obj)
    return out


def _search(rows: list[tuple[int, bytes]], needles: set[str]) -> list[tuple[int, str]]:
    """Where any of ``needles`` appears in a decoded entry (its JSON form)."""
    hits = []
    for i, data in rows:
        obj = E.Entry.from_bytes(data).to_json_obj()
        found = _numbers(obj) & needles
        text = json.dumps(obj)
        found |= {n for n in needles if n in text}
        hits += [(i, n) for n in sorted(found)]
    return hits


# -- the honest gated run -----------------------------------------------------------------------


def test_gated_run_passes_every_step_and_suppresses_the_small_cell() -> None:
    rows = _rows()
    details: dict[int, str] = {}
    view = check_query(parse_entries(rows), on_step=details.__setitem__)
    assert list(details) == [6, 8, 9, 10, 11, 12, 13, 14, 15]
    # the one-person cell, and its complement (the total is a margin), are withheld
    # the one-person cell, and its complement (the first other cell of the line), are
    # withheld: counts and sums; the third cell is released
    assert "4 withheld" in details[12] and "4 withheld entries never decrypted" in details[13]
    assert "1 of 3 small" in details[12]
    assert view.decoded is not None
    assert view.decoded["means"][:2] == [[None], [None]] and view.decoded["means"][2][0]
    assert view.decoded["suppressed"] == [[True], [True], [False]]
    assert view.decoded["counts"] == [[None], [None], [6]]
    assert view.totals is not None and view.totals[:4] == [None] * 4


def test_the_suppressed_total_appears_nowhere_on_the_log() -> None:
    rows, info = _honest()
    secret = info["clear"][3]  # sum(income) of the one HIV-positive patient (fixed point)
    scale = _spec().scale
    assert secret == round(INCOME * scale)
    # and the complementary cell's sum, from which the margin would give it away
    needles = {str(secret), repr(INCOME), str(INCOME), str(info["clear"][1])}
    assert _search(list(rows), needles) == []
    # nor the counts: the neighbour's 21 is a number in no entry, and the release carries
    # bits, not counts
    assert info["clear"][0] == 21 and info["clear"][2] == 1
    for _, data in rows:
        assert "21" not in _numbers(E.Entry.from_bytes(data).to_json_obj())
    rel = _entry(list(rows), "release")[1]
    assert rel.small == (0, 1, 0) and rel.released == (4, 5)


def test_the_old_one_phase_run_leaks_it_and_the_search_finds_it() -> None:
    """The twin: today's run (every entry decrypted) publishes the raw sum."""
    rows, info = _build(_spec(), _tables(), gated=False)
    hits = _search(rows, {str(info["clear"][3])})
    assert hits and {E.Entry.from_bytes(rows[i][1]).KIND for i, _ in hits} == {"result"}


def test_no_decryption_share_covers_a_withheld_ciphertext() -> None:
    rows, info = _honest()
    withheld = [j for j in range(len(info["agg"])) if j not in info["released"]]
    assert withheld == [0, 1, 2, 3]
    forbidden = {(n, (info["shares"][n] * ct.C1).to_bytes().hex())
                 for n in NODES for j in withheld for ct in info["agg"][j]}
    for _, data in rows:
        e = E.Entry.from_bytes(data)
        if isinstance(e, (E.DecryptionEntry, E.GateEntry)):
            assert not {(e.node, s) for s in e.shares} & forbidden
            released_limbs = sum(len(info["agg"][j]) for j in info["released"])
            if isinstance(e, E.DecryptionEntry):
                assert len(e.shares) == released_limbs


def test_a_large_cell_is_released_and_equals_the_clear_mean() -> None:
    tables = _tables()
    tables[1]["hiv"][:5] = "pos"  # 6 positive patients: no suppression
    rows, info = _build(_spec(), tables)
    view = check_query(parse_entries(rows))
    assert view.decoded is not None
    assert view.decoded["suppressed"] == [[False], [False], [False]]
    assert info["released"] == [0, 1, 2, 3, 4, 5]
    pos = np.concatenate([tables[1]["income"][:5], tables[1]["income"][10:]])
    assert view.decoded["means"][1][0] == pytest.approx(pos.mean(), rel=1e-6)


# -- the querier forges the decision ------------------------------------------------------------


def test_release_of_a_suppressed_entry_is_rejected_at_step_12() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    n_all = len(flow.flatten(_honest()[1]["agg"]))
    forged = replace(rel, released=(0, 1, 2, 3, 4, 5), ciphertexts=n_all)
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
           "releases other entries than the statistic's rule allows")


def test_a_wrong_ciphertext_count_is_rejected_at_step_12() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    forged = replace(rel, ciphertexts=rel.ciphertexts + 1)
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
           f"counts {rel.ciphertexts + 1} released ciphertexts; its entries have "
           f"{rel.ciphertexts}")


def test_a_lie_about_a_small_bit_is_rejected_at_step_12() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    # "the positive cell is not small": every cell would be released
    forged = replace(rel, small=(0, 0, 0), released=(0, 1, 2, 3, 4, 5),
                     ciphertexts=len(flow.flatten(_honest()[1]["agg"])))
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
           "small-cell bits are not the PET's outcome")
    # and the other way round: "every cell is small" (hides a result it does not like)
    forged = replace(rel, small=(1, 1, 1), released=(), ciphertexts=0)
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER,
           "small-cell bits are not the PET's outcome")


def test_a_release_naming_a_node_without_gate_shares_is_rejected() -> None:
    rows = _rows()
    gi, _ = _entry(rows, "gate", node="node-b")
    rows = [(i, d) for i, d in rows if i != gi]
    _fails(rows, 12, QUERIER, "names node-b, which logged no gate shares")


def test_a_result_publishing_a_withheld_total_is_rejected_at_step_13() -> None:
    rows, info = _honest()
    rows = list(rows)
    index, res = _entry(rows, "result")
    totals = list(res.totals) + [str(info["clear"][3])]
    _fails(_put(rows, index, replace(res, totals=tuple(totals)), QUERIER), 13, QUERIER,
           "not the decryption of the released entries")


def test_a_forged_release_signature_blames_the_querier() -> None:
    rows = _rows()
    index, rel = _entry(rows, "release")
    rows = _put(rows, index, rel, "prov-1")  # signed by someone else
    _fails(rows, 12, QUERIER, "signature")


def test_a_node_that_decrypts_withheld_ciphertexts_is_named() -> None:
    rows, info = _honest()
    rows = list(rows)
    index, d = _entry(rows, "decryption", node="node-b")
    qid, flat = info["qid"], flow.flatten(info["agg"])
    setup = info["setup"]
    Y = setup.verification_points()[setup.compute.index("node-b")]
    sh, proof = flow.make_decryption(info["shares"]["node-b"], Y, flat,
                                     flow.decryption_context(qid, "node-b"))
    bad = replace(d, shares=tuple(s.to_bytes().hex() for s in sh), proof=proof.to_bytes().hex())
    _fails(_put(rows, index, bad, "node-b"), 12, "node-b",
           "covers ciphertexts the release decision withholds")


def test_a_decryption_before_the_release_decision_is_rejected() -> None:
    rows = _rows()
    ri, _ = _entry(rows, "release")
    di, _ = _entry(rows, "decryption", node="node-a")
    order = [r for r in rows if r[0] != di]
    pos = [i for i, (idx, _) in enumerate(order) if idx == ri][0]
    moved = order[:pos] + [(ri, rows[di][1]), (di, rows[ri][1])] + order[pos + 1:]
    moved = sorted(moved, key=lambda r: r[0])
    with pytest.raises(VerificationError) as ei:
        check_query(parse_entries(moved))
    assert ei.value.step == "step 12" and ei.value.party == "node-a"


def test_a_decision_without_gate_shares_is_missing_not_invalid() -> None:
    rows = _rows()
    ri, _ = _entry(rows, "release")
    with pytest.raises(MissingEntryError, match="no release decision yet") as ei:
        check_query(parse_entries(rows[:ri]))
    assert ei.value.step == "step 12"


@pytest.mark.parametrize("kind", ["gate", "pet"])
def test_gate_and_pet_entries_on_a_query_without_gates_are_rejected(kind: str) -> None:
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["income"],
                            "bounds": {"income": [0, 200000]}, "min_cell_size": 1,
                            "max_rows": 100, "min_providers": 2})
    assert not suppression.gated(spec)
    rows, _ = _build(spec, _tables(), gated=False)
    view = check_query(parse_entries(rows))
    assert view.decoded is not None
    gate_rows = _rows()
    _, gate = _entry(gate_rows, kind, node="node-a")
    qid = spec.query_id_for(QUERIER)
    extra = E.sign(replace(gate, query_id=qid, sig=None), KEYS["node-a"])
    ai, _ = _entry(rows, "aggregate")
    shifted = [(i if i <= ai else i + 1, d) for i, d in rows] + [(ai + 1, extra.to_bytes())]
    what = "a gate entry" if kind == "gate" else "a PET entry"
    _fails(sorted(shifted), 12, "node-a", f"{what} for a query without gates")


# -- the decision rule -------------------------------------------------------------------------


def test_decide_releases_unsuppressed_cells_only() -> None:
    spec = _spec()
    assert suppression.gate_entries(spec) == [0, 2, 4]
    # the small cell and its complement: the first other cell of the line, by position
    assert suppression.decide(spec, [False, True, False]).released == (4, 5)
    assert suppression.decide(spec, [True, False, False]).released == (4, 5)
    assert suppression.decide(spec, [False, False, True]).released == (2, 3)
    assert suppression.decide(spec, [False] * 3).released == tuple(range(6))
    assert suppression.decide(spec, [True, True, False]).released == (4, 5)
    assert suppression.decide(spec, [True] * 3).released == ()
    with pytest.raises(MalformedError, match="3 gate entries"):
        suppression.decide(spec, [False])


def test_two_way_complement_by_position() -> None:
    spec = QuerySpec.parse({
        "version": 1, "statistic": "crosstab", "group_by": ["a", "b"],
        "categories": {"a": ["x", "y", "z"], "b": ["u", "v", "w"]}, "min_cell_size": 5,
        "max_rows": 100})
    # cell (1, 1) small: row 1 takes (1, 0), column 1 takes (0, 1), then column 0 and row 0
    # each have two: stable
    small = [False] * 9
    small[4] = True
    rel = suppression.decide(spec, small).released
    assert sorted(set(range(9)) - set(rel)) == [0, 1, 3, 4]
    # no line is left with exactly one suppressed cell
    mask = [[i * 3 + j not in rel for j in range(3)] for i in range(3)]
    assert all(sum(r) != 1 for r in mask)
    assert all(sum(mask[i][j] for i in range(3)) != 1 for j in range(3))


def test_extrema_release_nothing_but_providers_when_small() -> None:
    spec = QuerySpec.parse({"version": 1, "statistic": "max", "columns": ["age"],
                            "bounds": {"age": [0, 10]}, "min_cell_size": 5,
                            "max_rows": 100})
    assert suppression.gate_entries(spec) == [0]
    assert suppression.decide(spec, [True]).released == (1,)  # providers: listed anyway
    assert suppression.decide(spec, [False]).released == tuple(range(13))
    stat = get_statistic("max")
    full = suppression.expand(13, [1], [2])
    res = stat.decode(spec, full).to_dict()
    assert res["value"] is None and res["suppressed"] is True and res["n"] is None
    with pytest.raises(MalformedError, match="withheld"):
        stat.decode(spec, suppression.expand(13, [0, 1], [9, 2]))


def test_expand_and_select_refuse_wrong_sizes() -> None:
    with pytest.raises(MalformedError):
        suppression.expand(3, [0, 1], [5])
    with pytest.raises(MalformedError):
        suppression.expand(2, [0, 2], [5, 6])
    with pytest.raises(MalformedError):
        suppression.select([[1]], [1])  # type: ignore[list-item]


def test_crosstab_decode_refuses_a_withheld_sum_of_a_published_cell() -> None:
    spec = _spec()
    stat = get_statistic("crosstab")
    with pytest.raises(MalformedError, match="withheld"):
        stat.decode(spec, [21, 10, 7, None, 6, 5])
    res = stat.decode(spec, [None, None, None, None, 6, 5]).to_dict()
    assert res["suppressed"] == [[True], [True], [False]] and res["counts"][2] == [6]


def test_gate_and_decryption_contexts_differ() -> None:
    assert suppression.gate_context("q", "n") != flow.decryption_context("q", "n")
    assert suppression.gate_context("q", "n1") != suppression.gate_context("q", "n")


# -- reject twins of the new entry kinds -------------------------------------------------------


def _kinds() -> list[E.Entry]:
    rows = _rows()
    return [_entry(rows, "gate", node="node-a")[1], _entry(rows, "release")[1],
            _entry(rows, "pet", node="node-b")[1]]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_new_kinds_round_trip_and_reject_bit_flips_and_truncation(which: int) -> None:
    e = _kinds()[which]
    data = e.to_bytes()
    assert E.Entry.from_bytes(data) == e
    with pytest.raises(MalformedError):
        E.Entry.from_bytes(data[:-1])
    with pytest.raises(MalformedError):
        E.Entry.from_bytes(data + b"\x00")
    flipped = 0
    for pos in range(0, len(data), max(1, len(data) // 60)):
        bad = bytearray(data)
        bad[pos] ^= 0x01
        try:
            other = E.Entry.from_bytes(bytes(bad))
        except MalformedError:
            flipped += 1
            continue
        assert other != e  # decoded: then it is another entry, whose signature fails
        key = KEYS[e.claimed_author() or QUERIER].public_key()
        with pytest.raises(VerificationError):
            E.verify_signature(other, key)
        flipped += 1
    assert flipped > 0


def test_gate_entry_field_twins() -> None:
    g = _kinds()[0]
    with pytest.raises(MalformedError, match="shares"):
        replace(g, shares=())
    with pytest.raises(MalformedError, match="shares"):
        replace(g, shares=(g.shares[0][:-2],))  # a point one byte short
    with pytest.raises(MalformedError, match="proof"):
        replace(g, proof=g.proof[:-2])
    with pytest.raises(MalformedError):
        replace(g, node=g.query_id, query_id=g.node)  # swapped fields


def test_release_entry_field_twins() -> None:
    r = _kinds()[1]
    with pytest.raises(MalformedError, match="small"):
        replace(r, small=(2, 0, 0))
    with pytest.raises(MalformedError, match="small"):
        replace(r, small=(True, False, False))
    with pytest.raises(MalformedError, match="small"):
        replace(r, small=("1", 0, 0))
    with pytest.raises(MalformedError, match="small"):
        replace(r, small=())
    with pytest.raises(MalformedError, match="released"):
        replace(r, released=(2, 1))
    with pytest.raises(MalformedError, match="released"):
        replace(r, released=(-1, 0))
    assert replace(r, released=(), ciphertexts=0).released == ()  # all withheld: allowed
    with pytest.raises(MalformedError, match="decryptors"):
        replace(r, decryptors=("node-b", "node-a"))
    with pytest.raises(MalformedError, match="ciphertexts"):
        replace(r, ciphertexts=len(r.released) - 1)
    with pytest.raises(MalformedError, match="ciphertexts"):
        replace(r, ciphertexts=-1)
    with pytest.raises(MalformedError, match="ciphertexts"):
        replace(r, ciphertexts=True)
    with pytest.raises(MalformedError):
        replace(r, decryptors=r.small, small=r.decryptors)  # swapped


# -- the state machine (the ledger's append rule) ---------------------------------------------


ROSTER = Roster(NODES, PROVIDERS, (QUERIER,), 2)


def _events() -> list[tuple[int, E.Entry]]:
    rows = _rows()
    qi, _ = _entry(rows, "query")
    return [(i, E.Entry.from_bytes(d)) for i, d in rows if i >= qi]


def _replay(events: list[tuple[int, E.Entry]]) -> Any:
    return replay([e for _, e in events], ROSTER, indices=[i for i, _ in events])


def _at(es: list[tuple[int, E.Entry]], kind: str) -> list[int]:
    return [k for k, (_, e) in enumerate(es) if e.KIND == kind]


def test_statemachine_accepts_the_gated_order() -> None:
    state = _replay(_events())
    assert state.phase.value == "endorsed" and state.released and state.gates_required


def test_statemachine_refuses_decryption_before_the_release() -> None:
    es = _events()
    ri, di = _at(es, "release")[0], _at(es, "decryption")[0]
    with pytest.raises(ProtocolError, match="before the release decision"):
        _replay(es[:ri] + [es[di]])


def test_statemachine_refuses_a_decryption_covering_withheld_ciphertexts() -> None:
    """The log's append rule: a node's decryption entry with shares beyond the released
    ciphertexts (e.g. of the suppressed sum) is refused before it is ever logged."""
    es = _events()
    di = _at(es, "decryption")[0]
    i, d = es[di]
    rows, info = _honest()
    full = flow.flatten(info["agg"])
    setup = info["setup"]
    sh, proof = flow.make_decryption(info["shares"][d.node], setup.verification_point(d.node),
                                     full, flow.decryption_context(info["qid"], d.node))
    bad = E.sign(replace(d, shares=tuple(s.to_bytes().hex() for s in sh),
                         proof=proof.to_bytes().hex(), sig=None), KEYS[d.node])
    with pytest.raises(ProtocolError, match="a share of a withheld ciphertext is refused"):
        _replay(es[:di] + [(i, bad)])


def test_statemachine_refuses_pet_steps_out_of_order() -> None:
    es = _events()
    p, g = _at(es, "pet"), _at(es, "gate")
    with pytest.raises(ProtocolError, match="before the PET chain is complete"):
        _replay(es[:p[1]] + [es[g[0]]])
    with pytest.raises(ProtocolError, match="duplicate PET step"):
        _replay(es[:p[0] + 1] + [es[p[0]]])
    with pytest.raises(ProtocolError, match="after the gate shares"):
        _replay(es[:g[0] + 1] + [es[p[0]]])
    with pytest.raises(ProtocolError, match="before the aggregate"):
        ai = _at(es, "aggregate")[0]
        _replay(es[:ai] + [es[p[0]]])


def test_statemachine_refuses_a_release_before_t_gates_and_late_gates() -> None:
    es = _events()
    g, ri = _at(es, "gate"), _at(es, "release")[0]
    with pytest.raises(ProtocolError, match="logged no gate shares"):
        _replay(es[:g[1]] + [es[ri]])
    with pytest.raises(ProtocolError, match="after the release decision"):
        _replay(es[:ri + 1] + [es[g[0]]])
    with pytest.raises(ProtocolError, match="duplicate release"):
        _replay(es[:ri + 1] + [es[ri]])


# -- a linear regression on 4 rows (issue 12: "n, sum x, sum xy are in the certificate") ------


def _ols_spec() -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": "linear_regression", "columns": ["x", "y"],
        "bounds": {"x": [0, 100], "y": [0, 1000]},
        "params": {"target": "y", "features": ["x"]}, "min_cell_size": 5, "max_rows": 100,
        "min_providers": 2,
    })


def test_a_four_row_regression_releases_nothing() -> None:
    spec = _ols_spec()
    tables = [{"x": np.array([31.0, 47.0]), "y": np.array([412.0, 655.0])},
              {"x": np.array([52.0, 68.0]), "y": np.array([718.0, 903.0])}]
    rows, info = _build(spec, tables)
    # the PET says "n < 5"; nothing is released, so nothing is decrypted: the result names
    # no decrypting node, publishes no total and says "suppressed"; every step verifies
    assert info["released"] == [] and info["small"] == [True]
    details: dict[int, str] = {}
    view = check_query(parse_entries(rows), on_step=details.__setitem__)
    assert "nothing decrypted" in details[12]
    assert view.decoded is not None
    assert view.decoded["coef"] == [None, None] and view.decoded["n"] is None
    assert not parse_entries(rows).decryptions
    # a result that names decrypting nodes, or a decryption entry, is refused
    ri, res = _entry(rows, "result")
    bad = replace(res, decryptors=tuple(NODES), totals=("4",))
    with pytest.raises(VerificationError) as ei:
        check_query(parse_entries(_put(rows, ri, bad, QUERIER)))
    assert ei.value.step == "step 12" and ei.value.party == QUERIER
    # sum x, sum y, sum xy, sum yy (fixed point) appear in no entry (n = 4 is too short a
    # string to search for: the release carries no count, only the bit)
    secrets_ = {str(v) for v in info["clear"][1:] if v not in (0, 4)}
    assert _entry(rows, "release")[1].small == (1,)
    assert secrets_ and _search(rows, secrets_) == []
    # twin: the one-phase run publishes them
    old, _ = _build(spec, tables, gated=False)
    assert _search(old, secrets_)


def test_a_regression_above_min_cell_size_releases_every_entry() -> None:
    spec = _ols_spec()
    assert suppression.decide(spec, [False]).released == tuple(range(len(
        get_statistic(spec.statistic).layout(spec))))
    with pytest.raises(MalformedError, match="withheld"):
        get_statistic(spec.statistic).decode(spec, [5] + [None] * 5)


def test_a_dp_query_has_no_gates_and_suppresses_by_noisy_value() -> None:
    """A DP query is not PET-gated (a noisy count cannot be tested against a threshold; its
    noise is the disclosure control): every entry is decrypted, with noise, and the decoder
    still blanks cells whose noisy count is small (post-processing)."""
    dp = _spec(privacy={"mechanism": "zcdp", "rho": 1.0})
    assert not suppression.gated(dp)
    with pytest.raises(MalformedError, match="0 gate entries"):
        suppression.decide(dp, [False, True, False])
    res = get_statistic("crosstab").decode(dp, [21, 10, 1, 5, 6, 5]).to_dict()
    assert res["suppressed"][1] == [True]



def test_one_phase_statistics_have_no_gates() -> None:
    """Count, the moments and the histogram are gated except at ``min_cell_size`` 1
    (tests/unit/test_suppression_basic.py, tests/unit/test_presence_gates.py)."""
    for obj in ({"statistic": "count", "columns": [], "min_cell_size": 1},
                {"statistic": "mean", "columns": ["x"], "bounds": {"x": [0, 1]},
                 "min_cell_size": 1},
                {"statistic": "histogram", "columns": ["x"], "bounds": {"x": [0, 1]},
                 "params": {"bins": [0, 0.5, 1]}, "min_cell_size": 1}):
        assert not suppression.gated(QuerySpec.parse({"version": 1, **obj}))

def test_a_gate_entry_under_another_key_or_with_extra_shares_names_its_node() -> None:
    rows = _rows()
    index, g = _entry(rows, "gate", node="node-b")
    _fails(_put(rows, index, g, "node-a"), 12, "node-b", "signature")
    more = replace(g, shares=(*g.shares, g.shares[0]))
    _fails(_put(rows, index, more, "node-b"), 12, "node-b", "covers other ciphertexts")
    wrong = replace(g, shares=(g.shares[1], g.shares[0], *g.shares[2:]))  # swapped: DLEQ fails
    _fails(_put(rows, index, wrong, "node-b"), 12, QUERIER,
           "names node-b, whose gate shares are invalid")


def test_an_all_withheld_query_replays_and_its_result_entry_is_strict() -> None:
    """The four-row regression: pet, gate, release (nothing released), a result with no
    totals and no decrypting node, endorsements -- the log's append rule accepts this order
    and refuses a decryption entry or a result that names nodes."""
    spec = _ols_spec()
    tables = [{"x": np.array([31.0, 47.0]), "y": np.array([412.0, 655.0])},
              {"x": np.array([52.0, 68.0]), "y": np.array([718.0, 903.0])}]
    rows, _ = _build(spec, tables)
    qi, _ = _entry(rows, "query")
    es = [(i, E.Entry.from_bytes(d)) for i, d in rows if i >= qi]
    assert _replay(es).phase.value == "endorsed"
    res_at = _at(es, "result")[0]
    _, res = es[res_at]
    with pytest.raises(MalformedError, match="decryptors"):
        replace(res, decryptors=tuple(NODES))  # nodes without totals
    with pytest.raises(MalformedError, match="decryptors"):
        replace(res, totals=("4",))  # totals without nodes
    named = E.sign(replace(res, decryptors=tuple(NODES), totals=("4",), sig=None),
                   KEYS[QUERIER])
    with pytest.raises(ProtocolError, match="withholds every entry"):
        _replay(es[:res_at] + [(es[res_at][0], named)])


# -- the PET chain on the log (step 12, check_pet_chain) ----------------------------------------


def test_a_pet_step_that_skips_the_previous_one_names_its_node() -> None:
    """node-b blinds and shuffles the *candidates* instead of node-a's outputs (so node-a's
    honest step would not count): step 12 names node-b."""
    rows, info = _honest()
    rows = list(rows)
    index, e = _entry(rows, "pet", node="node-b")
    spec = _spec()
    agg = info["agg"]
    ranges = [tuple(get_statistic(spec.statistic).layout(spec).ranges)] * len(PROVIDERS)
    current = suppression.pet_inputs(spec, agg, ranges)
    X = info["setup"].collective_point()
    batches = [pet.blind_and_shuffle(X, cell, pet.pet_context(info["qid"], "node-b", c))
               for c, cell in enumerate(current)]
    forged = E.PetEntry.of(info["qid"], "node-b", batches)
    _fails(_put(rows, index, forged, "node-b"), 12, "node-b", "PET blinding of ciphertext 0")


def test_a_pet_step_with_a_forced_zero_names_its_node() -> None:
    """node-b replaces an output by a fresh encryption of zero ("small!"): its shuffle proof
    fails, step 12 names it."""
    from statledger.proofs.elgamal import encrypt

    rows, info = _honest()
    rows = list(rows)
    index, e = _entry(rows, "pet", node="node-b")
    X = info["setup"].collective_point()
    shuffled = list(e.shuffled)
    shuffled[-1] = encrypt(X, 0).to_bytes().hex()
    _fails(_put(rows, index, replace(e, shuffled=tuple(shuffled)), "node-b"), 12, "node-b",
           "PET shuffle")


def test_a_short_or_repeated_chain() -> None:
    rows = _rows()
    (pa, a), (pb, _) = _entry(rows, "pet", node="node-a"), _entry(rows, "pet", node="node-b")
    gi, _ = _entry(rows, "gate", node="node-a")
    # only node-a's step, then nothing: the chain is incomplete (missing, not invalid)
    with pytest.raises(MissingEntryError, match="1 of the 2 PET steps") as ei:
        check_query(parse_entries(rows[:pb]))
    assert ei.value.step == "step 12"
    # node-a twice: refused, naming node-a
    twice = _put(rows, pb, a, "node-a")
    _fails(twice, 12, "node-a", "two PET entries")
    # a PET step signed by another node is refused
    _fails(_put(rows, pa, a, "node-b"), 12, "node-a", "signature")
    assert gi > pb


def test_a_nodes_memory_of_checked_pet_steps_never_covers_a_changed_entry() -> None:
    """A compute node checks the chain before its step, its gate shares and its decryption;
    steps it verified are remembered by (aggregate, index, digest) -- another entry at the
    same index (a forged step) is verified again and refused."""
    from statledger.protocol.checks import STEPS, StepContext, check_pet_chain, run_steps

    rows, info = _honest()
    rows = list(rows)

    def ctx_of(r: list[tuple[int, bytes]]) -> StepContext:
        ctx = StepContext(parse_entries(r))
        run_steps(ctx, STEPS, through=11)
        return ctx

    known: set[tuple[str, int, str]] = set()
    first = check_pet_chain(ctx_of(rows), complete=True, known=known)
    assert len(known) == 2
    assert check_pet_chain(ctx_of(rows), complete=True, known=known) == first
    index, e = _entry(rows, "pet", node="node-b")
    shuffled = list(e.shuffled)
    shuffled[0], shuffled[1] = shuffled[1], shuffled[0]  # not what the proof proves
    forged = _put(rows, index, replace(e, shuffled=tuple(shuffled)), "node-b")
    with pytest.raises(VerificationError, match="PET shuffle") as ei:
        check_pet_chain(ctx_of(forged), complete=True, known=known)
    assert ei.value.party == "node-b" and len(known) == 2
