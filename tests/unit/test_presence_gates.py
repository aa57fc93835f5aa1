"""Presence by PET (sets, booleans) and the gated histogram, covariance and logistic fits.

Issue 12, item 1 (rest).  Before: a set union decrypted every per-element provider count
(the decryption shares on the log let anyone recompute how many sites hold ``e``); a
histogram, a covariance matrix and a logistic fit decrypted in one phase, so a bin of one
row or a 3-row covariance was public.  Here real gated runs are built entry by entry (the
key ceremony, range-proven submissions, the PET chain, gate shares, the release entry,
decryption of the released entries only: :func:`test_suppression._build`) and checked with
:func:`statledger.protocol.checks.check_query`; the adversaries play against them:

* a reader of the log: no decryption entry exists for a presence query, and the result
  entry carries no total; a withheld covariance cell's sums appear in no entry (twin: the
  one-phase run publishes them, so the search can find them);
* a querier forging the release (a flipped presence bit, an element released, a decryption
  of a presence query, a result naming other members) is refused and named at step 12/14;
* a compute node forcing ``Enc(0)`` into the ``k = 1`` PET ("absent!") is named at step 12.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from test_suppression import (
    NODES,
    QUERIER,
    _build,
    _entry,
    _fails,
    _put,
    _search,
)

from statledger.proofs.elgamal import encrypt
from statledger.proofs.errors import MalformedError
from statledger.protocol import entries as E
from statledger.protocol import flow, suppression
from statledger.protocol.checks import check_query
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.logistic import irls_next_spec
from statledger.protocol.view import parse_entries

UNIVERSE = ["A", "B", "C", "D"]


def _set_spec(stat: str = "set_union", **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": stat,
        "columns": ["code"] if stat.startswith("set") else ["flag"],
        "categories": {"code": UNIVERSE}, "bounds": {"flag": [0, 1], "age": [0, 120]},
        "min_cell_size": 5, "max_rows": 100, "min_providers": 2,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def _codes(*xs: str) -> dict[str, np.ndarray]:
    return {"code": np.array(list(xs), dtype=object),
            "flag": np.array([1.0] * len(xs)), "age": np.array([40.0] * len(xs))}


#: A is held by both sites, B by one, C and D by none
SITES = [_codes("A", "A", "B"), _codes("A", "Z")]


@functools.cache
def _union() -> tuple[tuple[tuple[int, bytes], ...], dict[str, Any]]:
    rows, info = _build(_set_spec(), SITES)
    return tuple(rows), info


def _check(rows: Any) -> tuple[dict[str, Any], dict[int, str]]:
    details: dict[int, str] = {}
    view = check_query(parse_entries(list(rows)), on_step=details.__setitem__)
    assert view.decoded is not None
    return view.decoded, details


# -- sets: the gate k, the encodings ---------------------------------------------------------


def test_presence_gates_use_k_1_whatever_min_cell_size() -> None:
    for stat in ("set_union", "set_intersection", "bool_or", "bool_and"):
        for mcs in (1, 5, 50):
            spec = _set_spec(stat, min_cell_size=mcs)
            st = get_statistic(stat)
            assert st.gate_k(spec) == 1
            assert suppression.gate_entries(spec) == list(range(len(st.layout(spec))))
            # nothing is ever decrypted, whatever the bits
            for bits in ([True] * len(st.layout(spec)), [False] * len(st.layout(spec))):
                assert suppression.decide(spec, bits).released == ()
    # the statistics with counts keep k = min_cell_size
    hist = QuerySpec.parse({"version": 1, "statistic": "histogram", "columns": ["x"],
                            "bounds": {"x": [0, 1]}, "params": {"bins": [0, 0.5, 1]},
                            "min_cell_size": 7})
    assert get_statistic("histogram").gate_k(hist) == 7


def test_pet_inputs_have_one_candidate_per_element() -> None:
    rows, info = _union()
    spec = _set_spec()
    cands = suppression.pet_inputs(spec, info["agg"], info["all_ranges"])
    assert [len(c) for c in cands] == [1] * len(UNIVERSE)
    _, pet_entry = _entry(list(rows), "pet", node=NODES[0])
    assert pet_entry.cells == len(UNIVERSE) and len(pet_entry.blinded) == len(UNIVERSE)


def test_encodings_has_lacks_any_true_any_false() -> None:
    u, i = get_statistic("set_union"), get_statistic("set_intersection")
    assert u.encode(_set_spec(), _codes("A", "C", "C")) == [1, 0, 1, 0]
    assert i.encode(_set_spec("set_intersection"), _codes("A", "C")) == [0, 1, 0, 1]
    # a provider with no selected rows lacks every element (and has none)
    none = _set_spec("set_intersection", filters=[{"column": "age", "op": ">", "value": 99}])
    assert i.encode(none, _codes("A", "B")) == [1, 1, 1, 1]
    flags = {"flag": np.array([1.0, 0.0, 2.0])}
    assert get_statistic("bool_or").encode(_set_spec("bool_or"), flags) == [1]
    assert get_statistic("bool_and").encode(_set_spec("bool_and"), flags) == [1]
    ones = {"flag": np.array([1.0, 3.0])}
    assert get_statistic("bool_and").encode(_set_spec("bool_and"), ones) == [0]
    empty = {"flag": np.array([], dtype=float)}
    assert get_statistic("bool_or").encode(_set_spec("bool_or"), empty) == [0]
    assert get_statistic("bool_and").encode(_set_spec("bool_and"), empty) == [0]


# -- sets: the honest gated run ----------------------------------------------------------------


def test_a_union_decrypts_nothing_and_verifies() -> None:
    rows, info = _union()
    decoded, details = _check(rows)
    assert decoded["members"] == ["A", "B"]
    assert "providers" not in decoded and "counts" not in decoded
    assert "nothing decrypted" in details[12]
    view = parse_entries(list(rows))
    assert view.decryptions == []
    _, res = _entry(list(rows), "result")
    assert res.totals_int() == [] and res.decryptors == ()
    _, rel = _entry(list(rows), "release")
    assert rel.small_bits() == [False, False, True, True] and rel.released == ()
    # the per-element provider counts (A: 2, B: 1) were never decrypted; the one-phase twin
    # publishes them in its result entry
    assert info["clear"] == [2, 1, 0, 0]
    old, _ = _build(_set_spec(), SITES, gated=False)
    _, old_res = _entry(old, "result")
    assert old_res.totals_int() == [2, 1, 0, 0]
    assert parse_entries(old).decryptions


@pytest.mark.parametrize("stat,sites,want", [
    ("set_intersection", [_codes("A", "B"), _codes("B", "A", "C")], ["A", "B"]),
    # a provider with no selected row lacks everything: the intersection is empty
    ("set_intersection", [_codes("A", "B"), _codes()], []),
    ("bool_or", [{"flag": np.array([0.0, 0.0])}, {"flag": np.array([0.0, 1.0])}], True),
    ("bool_or", [{"flag": np.array([0.0])}, {"flag": np.array([], dtype=float)}], False),
    ("bool_and", [{"flag": np.array([1.0])}, {"flag": np.array([], dtype=float)}], True),
    ("bool_and", [{"flag": np.array([1.0, 0.0])}, {"flag": np.array([1.0])}], False),
])
def test_gated_presence_runs_match_python(stat: str, sites: list[dict[str, np.ndarray]],
                                          want: Any) -> None:
    rows, _ = _build(_set_spec(stat), sites)
    decoded, details = _check(rows)
    got = decoded["members"] if stat.startswith("set") else decoded["value"]
    assert got == want
    if stat == "set_intersection":
        pooled = [set(s["code"].tolist()) for s in sites]
        assert set(got) == set.intersection(*pooled) & set(UNIVERSE)
    else:
        flags = np.concatenate([s["flag"] for s in sites])
        assert got == (bool(np.any(flags != 0)) if stat == "bool_or"
                       else bool(np.all(flags != 0)))
    assert "nothing decrypted" in details[12]


def test_a_reader_of_the_log_learns_zero_or_not_and_nothing_else() -> None:
    """What anyone can compute from the log: combine the gate shares of the chain's last
    ciphertexts.  An absent element (count 0) gives the identity; a present one gives a
    blinded point -- not ``count * G`` for A (held by 2 sites) or B (by 1), and not the same
    for both, so the count cannot be read off it."""
    from statledger.proofs.group import G, Scalar, msm

    rows, info = _union()
    view = parse_entries(list(rows))
    final = view.pets[-1][1].batches()
    gates = {g.node: g.share_points() for _, g in view.gates}
    names = sorted(gates)
    weights = flow.combination_weights(info["setup"], names)
    points = []
    for cell, batch in enumerate(final):
        (ct,) = batch.shuffled  # k = 1: one ciphertext per element
        points.append(ct.C2 - msm(list(weights), [gates[n][cell] for n in names]))
    assert [p.is_identity() for p in points] == [False, False, True, True]
    small = [G * Scalar.reduce(v) for v in (1, 2, 3)]
    assert all(points[i] != q for i in (0, 1) for q in small)
    assert points[0] != points[1]


# -- sets: the adversaries ---------------------------------------------------------------------


def test_a_flipped_presence_bit_is_refused() -> None:
    rows = list(_union()[0])
    index, rel = _entry(rows, "release")
    # "C is present" (a querier inventing an element) and "B is absent" (hiding one)
    for small in ((0, 0, 0, 1), (0, 1, 1, 1)):
        _fails(_put(rows, index, replace(rel, small=small), QUERIER), 12, QUERIER,
               "small-cell bits are not the PET's outcome")


def test_a_released_element_is_refused() -> None:
    rows, info = _union()
    rows = list(rows)
    index, rel = _entry(rows, "release")
    one = len(flow.flatten(suppression.select(info["agg"], [0])))
    _fails(_put(rows, index, replace(rel, released=(0,), ciphertexts=one), QUERIER), 12,
           QUERIER, "releases other entries than the statistic's rule allows")


def test_a_result_naming_other_members_is_refused_at_step_14() -> None:
    rows = list(_union()[0])
    index, res = _entry(rows, "result")
    forged = dict(res.result)
    forged["members"] = ["A"]
    _fails(_put(rows, index, replace(res, result=forged), QUERIER), 14, QUERIER,
           "differs from decode")


def test_a_result_with_totals_or_decryptors_is_refused() -> None:
    rows = list(_union()[0])
    index, res = _entry(rows, "result")
    # the counts, published: the entry itself refuses totals without decrypting nodes, and
    # with them step 12 refuses the result (nothing was released)
    with pytest.raises(MalformedError, match="totals without decrypting nodes"):
        replace(res, totals=("2", "1", "0", "0"))
    forged = replace(res, totals=("2", "1", "0", "0"), decryptors=NODES)
    _fails(_put(rows, index, forged, QUERIER), 12, QUERIER, "withholds every entry")


def test_a_node_forcing_a_zero_into_the_k1_pet_is_named() -> None:
    """node-b replaces B's (only) ciphertext by a fresh Enc(0): "B is absent".  Its shuffle
    proof fails and step 12 names node-b; its blinding of Enc(0) alone would prove nothing
    either (the blinding proof binds to the previous output)."""
    rows, info = _union()
    rows = list(rows)
    index, e = _entry(rows, "pet", node="node-b")
    X = info["setup"].collective_point()
    shuffled = list(e.shuffled)
    shuffled[1] = encrypt(X, 0).to_bytes().hex()
    _fails(_put(rows, index, replace(e, shuffled=tuple(shuffled)), "node-b"), 12, "node-b",
           "PET shuffle")
    blinded = list(e.blinded)
    blinded[1] = encrypt(X, 0).to_bytes().hex()
    _fails(_put(rows, index, replace(e, blinded=tuple(blinded)), "node-b"), 12, "node-b",
           "PET blinding of ciphertext 0")


def test_a_pet_step_at_min_cell_size_instead_of_k_1_is_refused() -> None:
    """A node that tests ``n < min_cell_size`` (5 candidates per element: "is anyone's
    count below 5?") instead of the statistic's ``k = 1`` is named at step 12: every check
    of the chain takes ``k`` from :func:`suppression.pet_inputs`."""
    from statledger.protocol import pet

    rows, info = _union()
    rows = list(rows)
    index, e = _entry(rows, "pet", node=NODES[0])
    X = info["setup"].collective_point()
    wide = [pet.candidates(cell[0], 5) for cell in
            suppression.pet_inputs(_set_spec(), info["agg"], info["all_ranges"])]
    batches = [pet.blind_and_shuffle(X, cell, pet.pet_context(info["qid"], NODES[0], c))
               for c, cell in enumerate(wide)]
    forged = E.PetEntry.of(info["qid"], NODES[0], batches)
    _fails(_put(rows, index, forged, NODES[0]), 12, NODES[0], "cells of 1")


def test_a_dp_set_query_is_ungated_and_reads_noisy_sums() -> None:
    dp = _set_spec(privacy={"mechanism": "zcdp", "rho": 1.0})
    assert not suppression.gated(dp)
    st = get_statistic("set_union")
    assert st.decode(dp, [3, 0, 1, 0]).to_dict()["members"] == ["A", "C"]
    with pytest.raises(MalformedError, match="gate bits"):
        st.decode(dp, [None, 0, 1, 0])


# -- histogram ---------------------------------------------------------------------------------


def _hist_spec(**kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "histogram", "columns": ["age"],
        "bounds": {"age": [0, 100]}, "params": {"bins": [0, 25, 50, 75, 100]},
        "min_cell_size": 3, "max_rows": 100, "min_providers": 2,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def test_histogram_release_rule() -> None:
    spec = _hist_spec()
    assert suppression.gate_entries(spec) == [0, 1, 2, 3]
    # one small bin: its complement is the first released bin of the line (the total n is
    # derivable elsewhere, so one withheld bin would be n minus the others)
    assert suppression.decide(spec, [False, False, True, False]).released == (1, 3)
    assert suppression.decide(spec, [True, False, False, False]).released == (2, 3)
    # two small bins protect each other
    assert suppression.decide(spec, [True, False, True, False]).released == (1, 3)
    assert suppression.decide(spec, [False] * 4).released == (0, 1, 2, 3)
    # with a group_by: rows = groups, columns = bins; the lines are both
    g = _hist_spec(group_by=["sex"], categories={"sex": ["F", "M"]})
    rel = suppression.decide(g, [False, True, False, False] + [False] * 4).released
    withheld = sorted(set(range(8)) - set(rel))
    assert withheld == [0, 1, 4, 5]
    mask = [[i * 4 + j in withheld for j in range(4)] for i in range(2)]
    assert all(sum(r) != 1 for r in mask)
    assert all(sum(mask[i][j] for i in range(2)) != 1 for j in range(4))
    # min_cell_size 1 and DP: no gates
    assert not suppression.gated(_hist_spec(min_cell_size=1))
    assert not suppression.gated(_hist_spec(privacy={"mechanism": "zcdp", "rho": 1.0}))


def test_histogram_decode_of_withheld_bins_and_its_twins() -> None:
    spec = _hist_spec()
    st = get_statistic("histogram")
    res = st.decode(spec, [None, 4, None, 5]).to_dict()
    assert res["counts"] == [None, 4, None, 5] and res["total_published"] == 9
    # one withheld bin alone is not a release of the rule; neither is a DP or ungated query
    # with withheld bins
    with pytest.raises(MalformedError, match="release decision"):
        st.decode(spec, [None, 4, 6, 5])
    with pytest.raises(MalformedError, match="without gates"):
        st.decode(_hist_spec(min_cell_size=1), [None, 4, None, 5])


def test_a_one_row_bin_is_never_decrypted() -> None:
    rng = np.random.default_rng(3)
    a = {"age": np.concatenate([rng.uniform(30, 45, 6), [80.0]])}  # one row in [75, 100]
    b = {"age": rng.uniform(5, 45, 8)}
    spec = _hist_spec()
    rows, info = _build(spec, [a, b])
    decoded, details = _check(rows)
    clear = info["clear"]
    assert clear[3] == 1
    assert decoded["counts"][3] is None
    # the complement (first released bin of the line) is withheld too
    assert sum(c is None for c in decoded["counts"]) >= 2
    assert decoded["counts"] == [None if i not in info["released"] else clear[i]
                                 for i in range(4)]
    assert np.histogram(np.concatenate([a["age"], b["age"]]),
                        bins=[0, 25, 50, 75, 100])[0].tolist() == clear
    assert 3 not in info["released"]
    # no decryption share covers the bin: every decryption entry has exactly one share per
    # released ciphertext
    view = parse_entries(list(rows))
    n_cts = len(flow.flatten(suppression.select(info["agg"], info["released"])))
    assert view.decryptions and all(len(d.shares) == n_cts for _, d in view.decryptions)
    # a querier releasing the one-row bin is refused
    index, rel = _entry(list(rows), "release")
    every = len(flow.flatten(info["agg"]))
    _fails(_put(list(rows), index, replace(rel, released=(0, 1, 2, 3), ciphertexts=every),
                QUERIER), 12, QUERIER, "releases other entries")


# -- covariance / correlation / cosine ---------------------------------------------------------


def _cov_spec(stat: str = "covariance", **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": stat, "columns": ["x", "y"],
        "bounds": {"x": [0, 1000], "y": [0, 1000]}, "group_by": ["g"],
        "categories": {"g": ["big", "tiny", "other"]},
        "min_cell_size": 5, "max_rows": 100, "min_providers": 2,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


def test_a_three_row_covariance_cell_is_never_decrypted() -> None:
    rng = np.random.default_rng(5)
    tiny = np.array([123.456, 654.321, 777.125])
    a = {"g": np.array(["big"] * 8 + ["tiny"] * 2 + ["other"] * 6, dtype=object),
         "x": np.concatenate([rng.uniform(0, 900, 8), tiny[:2], rng.uniform(0, 900, 6)]),
         "y": np.concatenate([rng.uniform(0, 900, 8), [11.5, 22.25], rng.uniform(0, 900, 6)])}
    b = {"g": np.array(["big"] * 4 + ["tiny"], dtype=object),
         "x": np.concatenate([rng.uniform(0, 900, 4), tiny[2:]]),
         "y": np.concatenate([rng.uniform(0, 900, 4), [33.125]])}
    spec = _cov_spec()
    st = get_statistic("covariance")
    rows, info = _build(spec, [a, b])
    decoded, details = _check(rows)
    w = 1 + 2 + 3
    assert decoded["cells"][1]["matrix"] is None and decoded["cells"][1]["n"] is None
    # one group_by column: the groups form one line, so the tiny cell's complement (the
    # first released cell, "big") is withheld too; "other" is released and equals numpy
    assert decoded["cells"][0]["suppressed"] and not decoded["cells"][2]["suppressed"]
    other = a["g"] == "other"
    want = np.cov(np.vstack([a["x"][other], a["y"][other]]), ddof=1)
    assert np.allclose(np.array(decoded["cells"][2]["matrix"]), want, rtol=1e-6, atol=1e-3)
    # the tiny cell's sums and cross-products (fixed point) appear in no entry
    secrets_ = {str(v) for v in info["clear"][w : 2 * w] if v > 1000}
    assert len(secrets_) == 5 and _search(list(rows), secrets_) == []
    old, _ = _build(spec, [a, b], gated=False)
    assert _search(old, secrets_)
    # a querier that frees the tiny cell, or calls it large, is refused at step 12
    index, rel = _entry(list(rows), "release")
    every = len(flow.flatten(info["agg"]))
    _fails(_put(list(rows), index, replace(rel, released=tuple(range(3 * w)),
                                          ciphertexts=every), QUERIER), 12, QUERIER,
           "releases other entries")
    _fails(_put(list(rows), index, replace(rel, small=(0, 0, 0), released=tuple(range(3 * w)),
                                          ciphertexts=every), QUERIER), 12, QUERIER,
           "small-cell bits are not the PET's outcome")
    # decode twins: a partly withheld cell, or a withheld pattern not from the rule
    t = [5] * (3 * w)
    with pytest.raises(MalformedError, match="partly withheld"):
        st.decode(spec, [None] + t[1:])
    with pytest.raises(MalformedError, match="release decision"):
        st.decode(spec, t[:w] + [None] * w + t[2 * w:])
    assert st.decode(spec, [None] * (2 * w) + t[2 * w:]).to_dict()["cells"][2]["n"] == 5


@pytest.mark.parametrize("stat", ["covariance", "correlation", "cosine"])
def test_matrix_statistics_gate_every_cell_n(stat: str) -> None:
    cols = ["x", "y"]
    spec = _cov_spec(stat, columns=cols)
    width = len(get_statistic(stat).layout(spec)) // 3
    assert suppression.gate_entries(spec) == [0, width, 2 * width]
    assert suppression.decide(spec, [False, False, True]).released == tuple(range(width, 2 *
                                                                                  width))
    assert suppression.decide(spec, [False] * 3).released == tuple(range(3 * width))
    assert not suppression.gated(_cov_spec(stat, min_cell_size=1))
    one = _cov_spec(stat, group_by=[], categories={})
    assert suppression.decide(one, [True]).released == ()


# -- logistic ----------------------------------------------------------------------------------


def _logit_spec(stat: str = "logistic_irls", **kw: Any) -> QuerySpec:
    obj: dict[str, Any] = {
        "version": 1, "statistic": stat, "columns": ["x", "y"],
        "bounds": {"x": [0, 10], "y": [0, 1]},
        "params": {"target": "y", "features": ["x"]},
        "min_cell_size": 5, "max_rows": 100, "min_providers": 2,
    }
    obj.update(kw)
    return QuerySpec.parse(obj)


@pytest.mark.parametrize("stat", ["logistic_irls", "logistic_approx"])
def test_a_small_logistic_fit_decrypts_nothing(stat: str) -> None:
    spec = _logit_spec(stat)
    width = len(get_statistic(stat).layout(spec))
    assert suppression.gate_entries(spec) == [0]
    assert suppression.decide(spec, [True]).released == ()
    assert suppression.decide(spec, [False]).released == tuple(range(width))
    a = {"x": np.array([1.0, 7.0]), "y": np.array([0.0, 1.0])}
    b = {"x": np.array([3.5]), "y": np.array([1.0])}
    rows, _ = _build(spec, [a, b])
    decoded, details = _check(rows)
    assert "nothing decrypted" in details[12]
    assert decoded["n"] is None and decoded["coef"] == [None, None]
    assert parse_entries(list(rows)).decryptions == []
    # "n is large": refused at step 12 (the PET found a zero)
    index, rel = _entry(list(rows), "release")
    aggregate = parse_entries(list(rows)).aggregate
    assert aggregate is not None
    every = len(aggregate[1].decode_ciphertexts())  # every limb of every entry
    _fails(_put(list(rows), index, replace(rel, small=(0,), released=tuple(range(width)),
                                          ciphertexts=every), QUERIER), 12, QUERIER,
           "small-cell bits are not the PET's outcome")
    # twins: a partly released fit does not decode; DP and min_cell_size 1 have no gate
    st = get_statistic(stat)
    with pytest.raises(MalformedError, match="withheld"):
        st.decode(spec, [9] + [None] * (width - 1))
    assert not suppression.gated(_logit_spec(stat, min_cell_size=1))
    assert not suppression.gated(_logit_spec(stat, privacy={"mechanism": "zcdp",
                                                            "rho": 1.0}))


def test_a_suppressed_irls_round_has_no_successor() -> None:
    """Every round is gated (a round-1 querier may ask fewer owners than round 0 saw); a
    withheld round publishes no beta_next, so no round can follow it (protocol/chain.py)."""
    spec = _logit_spec()
    st = get_statistic("logistic_irls")
    res = st.decode(spec, [None] * len(st.layout(spec)))
    assert res.values["beta_next"] is None and res.values["log_likelihood"] is None
    assert irls_next_spec(spec, res) is None
    later = _logit_spec(params={"target": "y", "features": ["x"], "beta": [0.5, 0.1],
                                "round": 1, "previous": "ab" * 32})
    assert suppression.gate_entries(later) == [0]


def test_a_large_logistic_round_releases_everything_and_decodes() -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 10, 30)
    y = (x + rng.normal(0, 2, 30) > 5).astype(float)
    spec = _logit_spec()
    rows, info = _build(spec, [{"x": x[:18], "y": y[:18]}, {"x": x[18:], "y": y[18:]}])
    decoded, details = _check(rows)
    assert decoded["n"] == 30 and all(c is not None for c in decoded["coef"])
    assert "0 of 1 small" in details[12]
    assert info["released"] == list(range(len(get_statistic(spec.statistic).layout(spec))))


def test_release_entry_of_a_presence_query_round_trips_and_rejects_bit_flips() -> None:
    rows = list(_union()[0])
    _, rel = _entry(rows, "release")
    data = rel.to_bytes()
    assert E.Entry.from_bytes(data) == rel
    for cut in (1, len(data) // 2):
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(data[:-cut])
