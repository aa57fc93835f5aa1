"""Workload queries (matrix mechanism): exact answers without DP, least squares and standard
errors cross-checked against numpy.linalg on the full domain, DP errors within the stated
standard errors, spec reject twins, and one-record owners' validity proofs (one-hot blocks)
with their malicious twins."""

from __future__ import annotations

import dataclasses
import itertools
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps

from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.onehot import PROOF_BYTES, prove_onehot
from statledger.proofs.rangeproof import RangeLayout
from statledger.proofs.vector import (
    _encrypt,
    encrypt_vector_with_openings,
    verify_encrypted_vector,
)
from statledger.protocol import calibration, flow, noise, validity
from statledger.protocol.entries import SubmissionEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats import workload as wl

CATS = {"a": ["0", "1", "2"], "b": ["x", "y"], "c": ["p", "q", "r", "s"]}
ROOT = Path(__file__).resolve().parents[2]


def _spec(params: dict[str, Any], **extra: Any) -> QuerySpec:
    obj: dict[str, Any] = {"version": 1, "statistic": "workload", "columns": list(CATS),
                           "categories": CATS, "min_cell_size": 1, "params": params}
    obj.update(extra)
    return QuerySpec.parse(obj)


def _table(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.choice(np.asarray(v, dtype=object), n) for k, v in CATS.items()}


def _index(tab: dict[str, np.ndarray]) -> np.ndarray:
    return np.stack([np.asarray([CATS[c].index(v) for v in tab[c]]) for c in CATS], axis=1)


def _histogram(tab: dict[str, np.ndarray]) -> np.ndarray:
    """The full-domain histogram by numpy (independent of the module)."""
    h = np.zeros(tuple(len(v) for v in CATS.values()), dtype=np.int64)
    np.add.at(h, tuple(_index(tab).T), 1)
    return h


def _marginal(h: np.ndarray, support: tuple[int, ...]) -> np.ndarray:
    drop = tuple(i for i in range(h.ndim) if i not in support)
    return np.asarray(h.sum(axis=drop)).reshape(-1)


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("strategy", wl.STRATEGIES)
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_no_dp_answers_are_the_exact_marginals(strategy: str, k: int) -> None:
    spec = _spec({"marginals": k, "strategy": strategy})
    st = get("workload")
    parts = [_table(n, seed) for n, seed in ((40, 1), (7, 2), (1, 3))]
    totals = np.sum([st.encode(spec, t) for t in parts], axis=0).tolist()
    res = st.decode(spec, totals).to_dict()
    h = sum(_histogram(t) for t in parts)
    want = np.concatenate([_marginal(h, s) for s in itertools.combinations(range(3), k)])
    assert res["answers"] == [float(v) for v in want]
    assert len(res["queries"]) == len(want)


def test_explicit_queries_exact() -> None:
    queries = [
        {"name": "a in {0,1} and b=y", "where": {"a": ["0", "1"], "b": ["y"]}},
        {"where": {"c": ["s"]}},
        {"name": "diff", "terms": [{"coef": 2, "where": {"a": ["2"]}},
                                   {"coef": -1, "where": {"b": ["x"], "c": ["p", "q"]}}]},
    ]
    tab = _table(60, 5)
    idx = _index(tab)
    a, b, c = idx[:, 0], idx[:, 1], idx[:, 2]
    want = [np.sum((a <= 1) & (b == 1)), np.sum(c == 3),
            2 * np.sum(a == 2) - np.sum((b == 0) & (c <= 1))]
    for strategy in wl.STRATEGIES:
        spec = _spec({"queries": queries, "strategy": strategy})
        res = get("workload").decode(spec, get("workload").encode(spec, tab)).to_dict()
        assert res["answers"] == [float(v) for v in want]
        assert res["queries"] == ["a in {0,1} and b=y", "q1", "diff"]


def test_layout_is_blocks_of_marginals_not_the_full_domain() -> None:
    spec = _spec({"marginals": 2})
    p = wl.plan(spec)
    assert p.blocks == ((0, 1), (0, 2), (1, 2))
    assert len(get("workload").layout(spec)) == 3 * 2 + 3 * 4 + 2 * 4
    assert get("workload").layout(spec).labels[:2] == ["n[a=0,b=x]", "n[a=0,b=y]"]
    assert wl.plan(_spec({"marginals": 2, "strategy": "identity"})).blocks == ((0, 1, 2),)


# ---------------------------------------------------------------------------- least squares
def _strategy_matrix(p: wl.WorkloadPlan, weights: list[int]) -> np.ndarray:
    dom = list(itertools.product(*(range(n) for n in p.sizes)))
    rows = []
    for s, w in zip(p.blocks, weights, strict=True):
        for cell in itertools.product(*(range(p.sizes[i]) for i in s)):
            rows.append([w * float(all(x[i] == cell[k] for k, i in enumerate(s))) for x in dom])
    return np.asarray(rows)


def _query_matrix(p: wl.WorkloadPlan) -> np.ndarray:
    dom = list(itertools.product(*(range(n) for n in p.sizes)))
    out = []
    for q in p.queries:
        cells = list(itertools.product(*(range(p.sizes[i]) for i in q.support)))
        coef = dict(zip(cells, q.coef, strict=True))
        out.append([float(coef[tuple(x[i] for i in q.support)]) for x in dom])
    return np.asarray(out)


@pytest.mark.parametrize("params", [
    {"marginals": 2, "strategy": "marginals"},
    {"marginals": 2, "strategy": "hdmm"},
    {"marginals": 1, "strategy": "identity"},
    {"queries": [{"where": {"a": ["0"], "c": ["q", "r"]}}, {"where": {"b": ["y"]}}],
     "strategy": "hdmm"},
])
def test_least_squares_and_variances_match_numpy(params: dict[str, Any]) -> None:
    p = wl.plan(_spec(params))
    weights = [1 + (j % 3) for j in range(len(p.blocks))]  # unequal weights on purpose
    rng = np.random.default_rng(11)
    y = rng.integers(-50, 400, p.block_offsets()[-1]).tolist()
    got = [float(v) for v in wl.reconstruct(p, y, weights)]
    A, W = _strategy_matrix(p, weights), _query_matrix(p)
    x_hat = np.linalg.lstsq(A, np.asarray(y, dtype=float), rcond=None)[0]
    np.testing.assert_allclose(got, W @ x_hat, rtol=1e-9, atol=1e-7)
    cov = W @ np.linalg.pinv(A.T @ A) @ W.T
    var = [float(v) for v in wl.unit_variances(p, weights)]
    np.testing.assert_allclose(var, np.diag(cov), rtol=1e-9)


def test_hdmm_beats_or_ties_marginals() -> None:
    """Total workload variance (budget-normalised: sum_S w_S^2 times the unit variances, the
    accounting of the distributed noise) of the optimised strategy is no worse."""
    def total(params: dict[str, Any]) -> Fraction:
        p = wl.plan(_spec(params))
        cost = sum(w * w for w in p.weights)  # one cell per block moves with a row
        return cost * sum(wl.unit_variances(p, list(p.weights)))

    for k in (1, 2):
        assert total({"marginals": k, "strategy": "hdmm"}) <= total({"marginals": k})
    assert total({"marginals": 2, "strategy": "hdmm"}) < total({"marginals": 2})


def test_decode_is_deterministic_and_exact_types() -> None:
    spec = _spec({"marginals": 2, "strategy": "hdmm"},
                 privacy={"mechanism": "zcdp", "rho": 0.5})
    n = len(calibration.wire_layout(spec))
    y = [(7 * i) % 23 - 3 for i in range(n)]
    a = get("workload").decode(spec, y).to_dict()
    b = get("workload").decode(spec, list(y)).to_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    with pytest.raises(MalformedError, match="totals"):
        get("workload").decode(spec, y[:-1])
    with pytest.raises(MalformedError, match="totals"):
        get("workload").decode(spec, y[:-1] + [1.5])  # type: ignore[list-item]


# ---------------------------------------------------------------------------- DP
def test_dp_weights_reach_the_wire_and_the_noise() -> None:
    spec = _spec({"marginals": 2, "strategy": "hdmm"},
                 privacy={"mechanism": "zcdp", "rho": 0.5})
    p = wl.plan(spec)
    assert calibration.weights(spec) == p.entry_weights()
    assert flow.noise_sensitivities(spec) == p.entry_weights()  # one row moves a cell by w_S
    assert calibration.wire_layout(spec).ranges[0] == (0, p.weights[0] * spec.max_rows)
    # without DP every weight is 1 and the wire is the counts
    assert set(calibration.weights(_spec({"marginals": 2, "strategy": "hdmm"}))) == {1}


def test_dp_errors_within_the_stated_standard_error() -> None:
    """For three fixed answers, R independent runs: the standardised errors z = (answer -
    truth) / value_sd have mean 0 and variance 1.  Each of the six checks is two-sided at
    1e-4 (chi-square with R degrees of freedom for sum z^2, normal for the mean): a false
    failure rate below 1e-3 in total."""
    spec = _spec({"marginals": 2, "strategy": "hdmm"},
                 privacy={"mechanism": "zcdp", "rho": 0.5})
    n_nodes = 3
    params = noise.calibrate(flow.privacy_profile(spec), Fraction(1, 2), n_nodes, n_nodes,
                             entries=len(flow.noise_sensitivities(spec)))
    info = calibration.NoiseInfo(params, n_nodes)
    tab = _table(120, 9)
    wire, _ = calibration.wire_encode(spec, tab)
    truth = np.asarray(get("workload").decode(
        _spec({"marginals": 2, "strategy": "hdmm"}), get("workload").encode(
            _spec({"marginals": 2, "strategy": "hdmm"}), tab)).to_dict()["answers"])
    picks = [0, 7, 25]
    R = 240
    z = np.zeros((R, len(picks)))
    for r in range(R):
        noisy = [v + e for v, e in zip(wire, calibration.simulate_noise(params, n_nodes),
                                       strict=True)]
        res = calibration.decode(spec, noisy, info).to_dict()
        sd = res["dp"]["value_sd"]
        for j, i in enumerate(picks):
            z[r, j] = (res["answers"][i] - truth[i]) / sd[f"answers[{i}]"]
    lo, hi = sps.chi2.ppf(0.5e-4, R), sps.chi2.isf(0.5e-4, R)
    zq = sps.norm.isf(0.5e-4)
    for j in range(len(picks)):
        ss = float(np.sum(z[:, j] ** 2))
        assert lo < ss < hi, (j, ss, lo, hi)
        assert abs(float(np.mean(z[:, j]))) * np.sqrt(R) < zq


# ---------------------------------------------------------------------------- reject twins
@pytest.mark.parametrize("params, extra, match", [
    ({"marginals": 2, "strategy": "best"}, {}, "params.strategy"),
    ({"marginals": 2, "queries": [{"where": {"a": ["0"]}}]}, {}, "exactly one"),
    ({}, {}, "exactly one"),
    ({"marginals": 4}, {}, "params.marginals"),
    ({"marginals": True}, {}, "params.marginals"),
    ({"marginals": 2, "weights": [1]}, {}, "params.weights"),
    ({"queries": []}, {}, "params.queries"),
    ({"queries": [{"where": {"a": ["9"]}}]}, {}, r"params.queries\[0\].where.a\[0\]"),
    ({"queries": [{"where": {"d": ["0"]}}]}, {}, r"where.d"),
    ({"queries": [{"where": {"a": ["0", "0"]}}]}, {}, "duplicate"),
    ({"queries": [{"where": {"a": ["0"]}, "terms": []}]}, {}, "exactly one"),
    ({"queries": [{"terms": [{"coef": 0, "where": {"a": ["0"]}}]}]}, {}, "coef"),
    ({"queries": [{"terms": [{"coef": 1.5, "where": {"a": ["0"]}}]}]}, {}, "coef"),
    ({"queries": [{"where": {"a": ["0"]}, "extra": 1}]}, {}, "unknown field"),
    ({"marginals": 2}, {"min_cell_size": 5}, "min_cell_size"),
    ({"marginals": 2}, {"group_by": ["a"], "columns": ["b", "c"]}, "group_by"),
])
def test_spec_reject_twins(params: dict[str, Any], extra: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedError, match=match):
        _spec(params, **extra)


def test_work_bounds_refuse_huge_specs_before_building_anything() -> None:
    cats = {f"c{i}": [str(k) for k in range(4)] for i in range(9)}
    base = {"version": 1, "statistic": "workload", "columns": list(cats), "categories": cats,
            "min_cell_size": 1}
    wide = {"where": {c: ["0"] for c in cats}}  # a marginal of 4^9 cells
    with pytest.raises(MalformedError, match="more than 4096 cells"):
        QuerySpec.parse({**base, "params": {"queries": [wide]}})
    many = [{"where": {"c0": ["0"], "c1": ["1"], "c2": ["2"], "c3": ["3"], "c4": ["0"],
                       "c5": ["1"]}}] * 200  # 200 x 2^6 x 4096
    with pytest.raises(MalformedError, match="too large"):
        QuerySpec.parse({**base, "params": {"queries": many}})
    six = [{"where": {f"c{i}": ["0"] for i in cols}}
           for cols in ((0, 1, 2, 3, 4, 5), (3, 4, 5, 6, 7, 8), (0, 1, 2, 6, 7, 8))]
    with pytest.raises(MalformedError, match="hdmm"):  # ~170 marginals below them
        QuerySpec.parse({**base, "params": {"queries": six, "strategy": "hdmm"}})
    QuerySpec.parse({**base, "params": {"queries": six}})


def test_identity_refused_on_large_domains() -> None:
    cats = {f"c{i}": [str(k) for k in range(8)] for i in range(5)}  # 32768 cells
    obj = {"version": 1, "statistic": "workload", "columns": list(cats), "categories": cats,
           "min_cell_size": 1, "params": {"marginals": 1, "strategy": "identity"}}
    with pytest.raises(MalformedError, match="identity"):
        QuerySpec.parse(obj)
    obj["params"] = {"marginals": 1}
    QuerySpec.parse(obj)  # the marginals themselves are fine


def test_example_spec_parses_and_runs_on_a_bundled_dataset() -> None:
    from statledger.nodes.data import load_table

    spec = QuerySpec.parse((ROOT / "examples" / "workload.json").read_text())
    p = wl.plan(spec)
    assert len(p.columns) == 4 and spec.params["marginals"] == 2
    table = load_table(str(ROOT / "protocol" / "datasets" / "rossi_site1.csv"))
    vec = get("workload").encode(spec, table)
    assert len(vec) == len(get("workload").layout(spec)) and sum(vec) > 0


# ---------------------------------------------------------------------------- validity proofs
ONE_REC = {"marginals": 2, "strategy": "marginals"}


@pytest.fixture(scope="module")
def key() -> Any:
    return keygen()[1]


def _sub(raw: bytes, party: str = "owner-1") -> SubmissionEntry:
    return SubmissionEntry("ab" * 32, party, raw.hex())


def _one_record(seed: int) -> dict[str, np.ndarray]:
    return _table(1, seed)


@pytest.mark.parametrize("strategy", ["marginals", "hdmm"])
@pytest.mark.parametrize("dp", [False, True])
def test_one_record_owner_submission_roundtrip(key: Any, strategy: str, dp: bool) -> None:
    extra: dict[str, Any] = {"max_rows": 1}
    if dp:
        extra["privacy"] = {"mechanism": "zcdp", "rho": 0.5}
    spec = _spec({"marginals": 2, "strategy": strategy}, **extra)
    assert validity.tail_bytes(spec) == PROOF_BYTES
    items = []
    for i in range(4):
        tab = _one_record(i)
        if i == 3:  # a filtered-out (or missing) record: every block is zero
            tab = {k: np.asarray([None], dtype=object) for k in CATS}
        wire, _ = calibration.wire_encode(spec, tab)
        ctx = flow.submission_context("q", f"owner-{i}")
        raw = validity.encrypt_submission(spec, key, wire, ctx)
        ev, proof = validity.decode_submission(spec, _sub(raw), calibration.wire_layout(
            spec).ranges)
        assert proof is not None
        items.append((f"owner-{i}", ev, proof, ctx))
    validity.verify_onehot_submissions(spec, key, items)
    # a many-record query asks for no one-hot proof, and refuses one
    many = _spec(ONE_REC, max_rows=10)
    assert validity.tail_bytes(many) == 0
    wire, _ = calibration.wire_encode(many, _table(5, 1))
    raw = validity.encrypt_submission(many, key, wire, b"ctx")
    validity.decode_submission(many, _sub(raw), calibration.wire_layout(many).ranges)
    with pytest.raises(MalformedError):
        validity.decode_submission(many, _sub(raw + b"\x00" * PROOF_BYTES),
                                   calibration.wire_layout(many).ranges)


def _forge(spec: QuerySpec, key: Any, values: list[int], beta: int, party: str,
           qid: str = "q") -> tuple[str, Any, Any, bytes]:
    """A malicious one-record owner: honest range proofs of its own (bad) cells and a
    one-hot proof attempt for them."""
    layout = validity.onehot_layout(spec)
    assert layout is not None
    sizes, scales = layout
    ctx = flow.submission_context(qid, party)
    ranges = calibration.wire_layout(spec).ranges
    ev, rands = encrypt_vector_with_openings(key, values, ranges, ctx)
    blocks, rs, pos = [], [], 0
    for n in sizes:
        blocks.append([row[0] for row in ev.limbs[pos:pos + n]])
        rs.append([r[0] for r in rands[pos:pos + n]])
        pos += n
    raw = ev.to_bytes() + prove_onehot(key, blocks, scales, beta, rs, ctx).to_bytes()
    ev2, proof = validity.decode_submission(spec, _sub(raw, party), ranges)
    return party, ev2, proof, ctx


def test_malicious_histograms_rejected_and_named(key: Any) -> None:
    spec = _spec(ONE_REC, max_rows=1)
    p = wl.plan(spec)
    offs = p.block_offsets()
    honest, _ = calibration.wire_encode(spec, _one_record(4))
    good = [_forge(spec, key, list(honest), 1, f"owner-{i}") for i in range(3)]
    validity.verify_onehot_submissions(spec, key, good)
    # two ones in one block (each cell in range; the block counts 2)
    two = list(honest)
    two[offs[1] + (two[offs[1]:offs[2]].index(0))] = 1
    with pytest.raises(VerificationError, match="party owner-two"):
        validity.verify_onehot_submissions(
            spec, key, good + [_forge(spec, key, two, 1, "owner-two")])
    # the record counted in one block only
    partial = [0] * len(honest)
    partial[offs[2]] = 1
    with pytest.raises(VerificationError, match="party owner-partial"):
        validity.verify_onehot_submissions(
            spec, key, [_forge(spec, key, partial, 1, "owner-partial")] + good)
    # a count of 2, a negative count: the owner cannot range-prove them at all ...
    for bad in (2, -1):
        vals = list(honest)
        vals[0] = bad
        with pytest.raises(MalformedError, match="outside its range"):
            encrypt_vector_with_openings(key, vals, calibration.wire_layout(spec).ranges,
                                         b"ctx")
    # ... and a ciphertext of 2 under a range proof of a bit fails the range proof
    ranges = tuple(calibration.wire_layout(spec).ranges)
    limbs = [[v] for v in honest]
    cts = [list(r) for r in limbs]
    cts[0] = [2]
    ev = _encrypt(key, limbs, ranges, RangeLayout.from_spans([1] * len(ranges)), b"ctx", cts)
    with pytest.raises(VerificationError, match="owner-2"):
        verify_encrypted_vector(key, ev, ranges, b"ctx", party="owner-2")
    # a missing proof, a truncated one, a wrong-size block
    ev0 = good[0][1]
    with pytest.raises(VerificationError, match="lacks"):
        validity.verify_onehot_submissions(spec, key, [("owner-x", ev0, None, b"c")])
    raw = bytes.fromhex(_sub(ev0.to_bytes()).vector)
    with pytest.raises(MalformedError, match="bytes"):
        validity.decode_submission(spec, _sub(raw), ranges)
    with pytest.raises(MalformedError, match="bytes"):
        validity.decode_submission(spec, _sub(raw + b"\x01" * (PROOF_BYTES - 1)), ranges)
    shrunk = dataclasses.replace(ev0, limbs=ev0.limbs[:-1])
    with pytest.raises(VerificationError, match="owner-x"):
        validity.verify_onehot_submissions(spec, key, [("owner-x", shrunk, good[0][2],
                                                        good[0][3])])
    # a proof bound to another owner's context
    with pytest.raises(VerificationError, match="owner-thief"):
        validity.verify_onehot_submissions(
            spec, key, [("owner-thief", good[0][1], good[0][2], flow.submission_context(
                "q", "owner-thief"))])


# ---------------------------------------------------------------------------- step 9 wiring
def _log_with_submissions(subs: dict[str, Any]) -> list[tuple[int, bytes]]:
    """A log up to the submissions of a one-record workload query (the consortium, key
    ceremony and setup of tests/unit/test_protocol_checks.py); ``subs`` maps a provider to a
    function ``(spec, X, qid, provider) -> submission bytes``."""
    import test_protocol_checks as tc

    from statledger.proofs import sigma
    from statledger.proofs.group import base_mul
    from statledger.protocol import entries as E

    g = tc.GENESIS.genesis
    cid = g.consortium_id
    nodes = tuple(sorted(m.party_id for m in g.members if m.role == "compute"))
    vk = {p: k.public_key().to_bytes().hex() for p, k in tc.KEYS.items()}
    log: list[Any] = [E.sign(E.GenesisEntry.of(tc.GENESIS), tc.KEYS["ledger"])]
    for n in nodes:
        X_n = base_mul(tc.TRANSPORT[n])
        pok = sigma.prove_schnorr(tc.TRANSPORT[n], X_n, flow.keyreg_context(cid, n))
        log.append(E.sign(E.PartyEntry(n, "compute", vk[n], X_n.to_bytes().hex(),
                                       pok.to_bytes().hex()), tc.KEYS[n]))
    cer = tc.key_ceremony(cid, {n: tc.TRANSPORT[n] for n in nodes},
                          g.decryption_threshold or len(nodes), tc.KEYS)
    log += cer.entries
    log.append(E.sign(cer.setup(cid), tc.KEYS["ledger"]))
    spec = _spec(ONE_REC, max_rows=1, min_providers=2)
    qid = spec.query_id_for("researcher")
    log.append(E.sign(E.QueryEntry.for_spec(spec, "researcher"), tc.KEYS["researcher"]))
    for p, make in subs.items():
        raw = make(spec, cer.collective, qid, p)
        log.append(E.sign(E.SubmissionEntry(qid, p, raw.hex()), tc.KEYS[p]))
    return [(i, e.to_bytes()) for i, e in enumerate(log)]


def _honest_sub(seed: int) -> Any:
    def make(spec: QuerySpec, X: Any, qid: str, p: str) -> bytes:
        wire, _ = calibration.wire_encode(spec, _one_record(seed))
        return validity.encrypt_submission(spec, X, wire, flow.submission_context(qid, p))
    return make


def _two_ones(spec: QuerySpec, X: Any, qid: str, p: str) -> bytes:
    wire, _ = calibration.wire_encode(spec, _one_record(3))
    offs = wl.plan(spec).block_offsets()
    wire[offs[0] + wire[offs[0]:offs[1]].index(0)] = 1
    _, ev, proof, _ = _forge(spec, X, wire, 1, p, qid)
    return bytes(ev.to_bytes() + proof.to_bytes())


def _no_proof(spec: QuerySpec, X: Any, qid: str, p: str) -> bytes:
    return _honest_sub(1)(spec, X, qid, p)[:-PROOF_BYTES]


@pytest.mark.parametrize("bad, match", [(_two_ones, "one-hot proof"), (_no_proof, "bytes")])
def test_step_9_refuses_a_malicious_one_record_owner(bad: Any, match: str) -> None:
    from statledger.protocol.checks import MissingEntryError, check_query
    from statledger.protocol.view import parse_entries

    # honest owners: step 9 passes, the run stops at the missing aggregate
    rows = _log_with_submissions({"prov-1": _honest_sub(1), "prov-2": _honest_sub(2)})
    with pytest.raises(MissingEntryError):
        check_query(parse_entries(rows))
    rows = _log_with_submissions({"prov-1": _honest_sub(1), "prov-2": bad})
    with pytest.raises(VerificationError, match=match) as ei:
        check_query(parse_entries(rows))
    assert (ei.value.step, ei.value.party) == ("step 9", "prov-2")
