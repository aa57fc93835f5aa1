"""Adversary: compute nodes that try to choose their DP noise (docs/noise.md), on real
processes.

The old attack: each compute node posted its own noise share, only range-proven in
``[-B, B]``; two colluding nodes each added ``+B`` and a count of 500 became 524 with every
check passing.  Now a node posts only (1) a commitment to secret bits with a 0/1 proof and
(2) a coin share ``x_j * P`` with a DLEQ proof; its noise is *derived* from the log (bits XOR
public coins fixed after every commitment of the set).  What the adversary can still post:

(a) commitments that encrypt something other than bits (``+B``): refused at append by the
    honest ledger naming the node; forced onto the log by a malicious operator, they stop
    every honest node from acting (step 10, naming the node) and every verification fails
    at step 10 naming it;
(c) a coin share whose DLEQ does not verify: refused at append; forced onto the log, step 10
    names its node and the honest nodes publish no coin share;
(d) a commitment after the first coin share: the node itself refuses to make one, the ledger
    refuses it (409); forced onto the log it is ignored -- the query completes over the set
    the first coin share closed and its certificate is valid;
(e) noise parameters that are not private enough (or shaped for another roster, or beyond
    the work limits): the querier chooses them once (``flow.noise_plan``) and hands them to
    every node in the commit request; a node refuses weak ones (4xx naming the problem,
    nothing logged), the honest ledger refuses a commitment that carries them (422 naming
    the node), and forced onto the log they stop the honest nodes and fail step 10 naming
    the node; parameters that pass the rule but are nobody's calibration are used as given;
and an end-to-end DP query (zCDP) completes with a valid certificate, every commitment
carrying exactly the querier's parameters (the figures of the noise round are printed).
(b), the law of the released noise when a node commits to all ones, is checked in process:
tests/property/test_noise_wiring_law.py; the parameter rule itself (shape, work limits,
privacy, one set per query) in tests/unit/test_noise_wiring.py.

One cluster (3 compute nodes, threshold T = 2, two hospitals, one querier) whose ledger is
the real ledger service with one switch: while the file ``admit-noise`` exists in the
cluster directory, its operator skips the noise append rules (5b) and the query state
machine (5c) -- everything else (signatures, roster, submissions' proofs) unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from forge import serve_cluster

from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.launcher import Cluster
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.querier import Querier
from statledger.proofs.elgamal import encrypt
from statledger.proofs.errors import VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.vector import EncryptedVector
from statledger.protocol import datasets, entries, flow, noise
from statledger.protocol.checks import check_query
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import QueryView, parse_entries
from statledger.verifier.verify import TrustPolicy, verify_certificate

pytestmark = pytest.mark.slow

SWITCH = "admit-noise"

#: The ledger operator's code: the real ledger service; while ``admit-noise`` exists in its
#: working directory it admits any noise entry (no 5b proof check) in any order (no 5c).
MALICIOUS_LEDGER = """
import pathlib, sys
from statledger.nodes import ledger_service
L = ledger_service.LedgerNode
real_noise, real_order = L._check_noise, L._check_order
def admit() -> bool:
    return pathlib.Path("admit-noise").exists()
def check_noise(self, entry):
    return None if admit() else real_noise(self, entry)
def check_order(self, entry, qid):
    return None if admit() else real_order(self, entry, qid)
L._check_noise, L._check_order = check_noise, check_order
from statledger.nodes.serve import main
sys.exit(main(["--role", "ledger", "--config", sys.argv[1]]))
"""

NODES = ("compute-1", "compute-2", "compute-3")
HOSPITALS = ("hospital-a", "hospital-b")


def _spec(min_cell_size: int) -> QuerySpec:
    """A DP count (zCDP); ``min_cell_size`` only makes each test's query id its own."""
    return QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "max_rows": 1000, "min_cell_size": min_cell_size,
                            "privacy": {"mechanism": "zcdp", "rho": 0.5}})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("noise-adversary") / "cluster"
    sites = datasets.sites("diabetes")
    providers = {pid: {"diabetes": str(datasets.path("diabetes", sites[k]))}
                 for k, pid in enumerate(HOSPITALS)}
    policy = base.parent / "policy.json"
    policy.write_text('{"budget_rho": 100.0}', encoding="utf-8")
    c = Cluster(base, n_compute=3, threshold=2, providers=providers, queriers=["querier"],
                policies={p: policy for p in providers}, startup_timeout=120)
    yield from serve_cluster(c, MALICIOUS_LEDGER, timeout=300)


@contextmanager
def malicious(c: Cluster) -> Iterator[None]:
    """The operator admits any noise entry while inside."""
    flag = c.base_dir / SWITCH
    flag.write_text("on", encoding="utf-8")
    try:
        yield
    finally:
        flag.unlink()


def _ledger(c: Cluster) -> LedgerClient:
    return LedgerClient(c.url("ledger"), "querier", c.signing_key("querier"), target="ledger")


def _post_as(c: Cluster, party: str, entry: entries.Entry) -> int:
    signed = entries.sign(entry, c.signing_key(party))
    with c.client("ledger", as_party=party) as cl:
        return int(cl.post("/v1/entries", content=signed.to_bytes())["index"])


def _ask(c: Cluster, node: str, qid: str, what: str,
         params: noise.NoiseParams | None = None, *, body: Any = None) -> int:
    """The querier asks ``node`` for its commitment (``commit``, handing it ``params``: the
    body ``{"params": params.to_json_obj()}``, or ``body`` as given: JSON, or raw bytes) or
    its coin share (``coin``, no body)."""
    if what == "commit" and body is None:
        assert params is not None, "a commitment request carries the noise parameters"
        body = {"params": params.to_json_obj()}
    path = f"/v1/queries/{qid}/noise/{what}"
    with SignedClient(c.url(node), "querier", c.signing_key("querier"), target=node,
                      timeout=300) as cl:
        out = (cl.post(path, content=body) if isinstance(body, bytes)
               else cl.post(path, json=body))
        return int(out["index"])


def _post_query(c: Cluster, spec: QuerySpec) -> tuple[str, entries.SetupEntry,
                                                      noise.NoiseParams]:
    with _ledger(c) as ledger:
        ledger.append(entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                                   c.signing_key("querier")))
        qid = spec.query_id_for("querier")
        view = parse_entries(ledger.query_entries(qid))
    setup = view.setup
    if setup is None:  # the ledger serves the roster with the query's entries
        with _ledger(c) as ledger:
            setup = parse_entries(ledger.entries(ledger.roster_indices())).setup
    assert setup is not None
    params = flow.noise_plan(spec, setup)
    assert params is not None
    return qid, setup, params


def _log_view(c: Cluster, qid: str) -> QueryView:
    """What an auditor reads: the roster and every entry of the query."""
    with _ledger(c) as ledger:
        return parse_entries(ledger.entries(ledger.roster_indices()
                                            + ledger.query_indices(qid)))


def _querier(c: Cluster) -> Querier:
    return Querier("querier", c.signing_key("querier"), c.url("ledger"),
                   {n: c.url(n) for n in NODES}, {h: c.url(h) for h in HOSPITALS},
                   trust=c.genesis, timeout=300.0)


def _plus_b(X: Any, params: noise.NoiseParams, qid: str, node: str) -> str:
    """A commitment whose first "bit" encrypts share_max (the node wants +B): an honest
    commitment with that ciphertext swapped in (its proof no longer holds)."""
    com = noise.commit_noise(X, params, qid, node)
    rows = list(com.bits.limbs)
    rows[0] = (encrypt(X, params.share_max),)
    return EncryptedVector(tuple(rows), com.bits.commitments, com.bits.proof).to_bytes().hex()


def _refused(c: Cluster, party: str, entry: entries.Entry, status: int) -> RemoteError:
    with pytest.raises(RemoteError) as ei:
        _post_as(c, party, entry)
    assert ei.value.status == status, ei.value
    assert party in ei.value.reason, ei.value.reason
    return ei.value


def _step_10(view: QueryView, party: str, match: str) -> None:
    with pytest.raises(VerificationError) as ei:
        check_query(view, through=10)
    assert ei.value.step == "step 10", ei.value
    assert ei.value.party == party, (ei.value.party, ei.value.reason)
    assert match in ei.value.reason, ei.value.reason


# -- (a) two colluding nodes try +B --------------------------------------------------------------


def test_colluding_nodes_plus_b(cluster: Cluster) -> None:
    c = cluster
    qid, setup, params = _post_query(c, _spec(3))
    X = setup.collective_point()
    forged = {n: entries.NoiseCommitEntry(qid, n, _plus_b(X, params, qid, n),
                                          params.to_json_obj())
              for n in ("compute-1", "compute-2")}
    # the honest ledger refuses what they can post, naming each
    for n, e in forged.items():
        err = _refused(c, n, e, 422)
        assert err.party == n
    # a malicious operator forces both onto the log
    with malicious(c):
        for n, e in forged.items():
            _post_as(c, n, e)
    _ask(c, "compute-3", qid, "commit", params)  # the honest node commits (steps 6-8)
    # ... and refuses its coin share: step 10, naming the first colluder
    with pytest.raises(RemoteError) as ei:
        _ask(c, "compute-3", qid, "coin")
    assert ei.value.status == 422 and ei.value.party == "compute-1", ei.value
    assert ei.value.step == "step 10", ei.value
    view = _log_view(c, qid)
    assert view.noise_coins == []  # no honest coin share: no coin, no noise, no aggregate
    _step_10(view, "compute-1", "noise commitment")


# -- (c) a coin share with a wrong DLEQ ----------------------------------------------------------


def test_coin_share_with_a_wrong_dleq(cluster: Cluster) -> None:
    c = cluster
    qid, setup, params = _post_query(c, _spec(4))
    for n in NODES:
        _ask(c, n, qid, "commit", params)
    view = _log_view(c, qid)
    members = {e.node: e.decode_commitment(params) for _, e in view.noise_commits}
    base = flow.noise_coin_base(params, qid, [members[n] for n in setup.compute])
    wrong = Scalar(0xBAD)  # not compute-1's key share: the DLEQ against Y_1 fails
    share = noise.make_coin_share(wrong, base_mul(wrong), base, qid, "compute-1")
    forged = entries.NoiseCoinEntry.of(qid, share)
    err = _refused(c, "compute-1", forged, 422)
    assert err.party == "compute-1" and "coin share" in err.reason
    with malicious(c):
        _post_as(c, "compute-1", forged)  # the first coin share of the query
    for n in ("compute-2", "compute-3"):
        with pytest.raises(RemoteError) as ei:
            _ask(c, n, qid, "coin")
        assert ei.value.status == 422 and ei.value.party == "compute-1", ei.value
    view = _log_view(c, qid)
    assert [e.node for _, e in view.noise_coins] == ["compute-1"]
    _step_10(view, "compute-1", "coin share")


# -- (d) a commitment after the first coin share --------------------------------------------------


def test_commitment_after_the_first_coin_is_ignored(cluster: Cluster) -> None:
    c = cluster
    spec = _spec(5)
    qid, setup, params = _post_query(c, spec)
    X = setup.collective_point()
    for n in ("compute-1", "compute-2"):
        _ask(c, n, qid, "commit", params)
    _ask(c, "compute-1", qid, "coin")  # closes the noise set: {compute-1, compute-2}
    # the node refuses to commit now; the ledger refuses a late commitment
    with pytest.raises(RemoteError) as ei:
        _ask(c, "compute-3", qid, "commit", params)
    assert ei.value.status == 403 and "closed" in ei.value.reason
    late = entries.NoiseCommitEntry.of(qid, noise.commit_noise(X, params, qid, "compute-3"),
                                       params)
    err = _refused(c, "compute-3", late, 409)
    assert "closed" in err.reason
    # the operator admits it, and keeps admitting the query's entries after it (its own
    # state machine would refuse the query from now on); the query completes over the set
    # the first coin share closed
    with malicious(c):
        late_index = _post_as(c, "compute-3", late)
        with _querier(c) as q:
            out = q.run(spec, datasets="diabetes")
    view = _log_view(c, qid)
    assert view.aggregate is not None
    first_coin = min(i for i, _ in view.noise_coins)
    assert late_index > first_coin
    assert list(view.aggregate[1].noise) == sorted(
        i for i, e in view.noise_commits if e.node != "compute-3")
    report = verify_certificate(out.certificate.to_bytes(), TrustPolicy(c.genesis, "trust"),
                                source="late commitment")
    assert report.valid, (report.step, report.reason, report.party)
    detail = next(s.detail for s in report.steps if s.step == 10)
    assert "a set of 2 compute nodes" in detail, detail


# -- an end-to-end DP query ----------------------------------------------------------------------


def test_dp_query_end_to_end(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    spec = _spec(6)
    with _querier(cluster) as q:
        t0 = time.perf_counter()
        out = q.run(spec, datasets="diabetes")
        elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = verify_certificate(out.certificate.to_bytes(),
                                TrustPolicy(cluster.genesis, "trust"), source="dp count")
    verify_s = time.perf_counter() - t1
    assert report.valid, (report.step, report.reason, report.party)
    view = _log_view(cluster, out.query_id)
    assert len(view.noise_commits) == 3 and len(view.noise_coins) >= 2
    # the querier calibrated once; every node committed with exactly its parameters
    assert view.setup is not None
    plan = flow.noise_plan(spec, view.setup)
    assert plan is not None
    assert [e.params for _, e in view.noise_commits] == [plan.to_json_obj()] * 3
    assert all(e.noise_params() == plan for _, e in view.noise_commits)
    with capsys.disabled():
        print(f"\n[noise round] query {elapsed:.1f} s (noise phase "
              f"{out.timings.get('noise', 0.0):.1f} s), certificate verified in "
              f"{verify_s:.2f} s; step 10: "
              + next(s.detail for s in report.steps if s.step == 10))


# -- (e) the querier's noise parameters ----------------------------------------------------------


def _commit_nodes(c: Cluster, qid: str) -> list[str]:
    return [e.node for _, e in _log_view(c, qid).noise_commits]


def test_node_refuses_to_commit_with_weak_or_misshaped_params(cluster: Cluster) -> None:
    """The querier (signed as the querier) hands a compute node parameters that fail the
    rule: a 4xx that names the problem, and nothing is logged; the querier's own
    calibration is then accepted, and other parameters than the logged ones are refused."""
    c = cluster
    qid, setup, params = _post_query(c, _spec(7))
    good = params.to_json_obj()
    cases: list[tuple[Any, int, str]] = [
        ({"params": replace(params, summands=1).to_json_obj()}, 403, "not private enough"),
        ({"params": replace(params, n_nodes=4, threshold=4).to_json_obj()}, 400,
         "shaped for 4 nodes"),
        ({"params": replace(params, threshold=2).to_json_obj()}, 400, "threshold 2"),
        ({"params": replace(params, entries=params.entries + 1).to_json_obj()}, 400,
         "entries"),
        ({"params": replace(params, summands=10**6).to_json_obj()}, 400, "work limits"),
        ({"params": replace(params, summands=1, summand_bits=17).to_json_obj()}, 400,
         "work limits"),
        ({"params": {**good, "summands": True}}, 400, "summands"),
        ({"params": {**good, "summands": -3}}, 400, "summands"),
        ({"params": {**good, "delta": 1}}, 400, "keys"),
        ({"params": {k: v for k, v in good.items() if k != "entries"}}, 400, "keys"),
        ({"params": good, "rho": 9}, 400, "params"),
        ({}, 400, "params"),
    ]
    for body, status, match in cases:
        with pytest.raises(RemoteError) as ei:
            _ask(c, "compute-1", qid, "commit", body=body)
        assert ei.value.status == status, (body, ei.value)
        assert match in ei.value.reason, (body, ei.value.reason)
    with pytest.raises(RemoteError) as ei:  # no body at all
        _ask(c, "compute-1", qid, "commit", body=b"")
    assert ei.value.status is not None and 400 <= ei.value.status < 500, ei.value
    assert _commit_nodes(c, qid) == []  # none of them reached the log
    # the twin: the querier's calibration is accepted and carried as handed over
    idx = _ask(c, "compute-1", qid, "commit", params)
    view = _log_view(c, qid)
    assert [(i, e.node) for i, e in view.noise_commits] == [(idx, "compute-1")]
    assert view.noise_commits[0][1].params == good
    # another set of parameters (private enough) than the logged one: refused, not logged
    stronger = replace(params, summands=params.summands + 2)
    flow.check_noise_params(_spec(7), setup, stronger)
    with pytest.raises(RemoteError) as ei:
        _ask(c, "compute-2", qid, "commit", stronger)
    assert ei.value.status == 403 and "other noise parameters" in ei.value.reason, ei.value
    assert _commit_nodes(c, qid) == ["compute-1"]


def test_ledger_refuses_a_commitment_with_weak_params(cluster: Cluster) -> None:
    """A compute node (signed with its own identity key) posts a commitment whose 0/1 proof
    is valid for the parameters it carries, but those parameters are not private enough,
    or shaped for another roster: 422 naming the node, nothing logged.  The honest twin is
    accepted; a second node's commitment with other parameters is refused naming it.
    Forced onto the log by the operator, the weak commitment stops the honest nodes and
    fails step 10 naming its node."""
    c = cluster
    spec = _spec(8)
    qid, setup, params = _post_query(c, spec)
    X = setup.collective_point()

    def entry(node: str, p: noise.NoiseParams, q: str = qid) -> entries.NoiseCommitEntry:
        return entries.NoiseCommitEntry.of(q, noise.commit_noise(X, p, q, node), p)

    weak = replace(params, summands=1)
    err = _refused(c, "compute-1", entry("compute-1", weak), 422)
    assert err.party == "compute-1" and "not private enough" in err.reason, err
    err = _refused(c, "compute-1", entry("compute-1", replace(params, n_nodes=4, threshold=4)),
                   422)
    assert err.party == "compute-1" and "shaped for 4 nodes" in err.reason, err
    assert _commit_nodes(c, qid) == []
    # the twin: the same node's commitment with the querier's parameters is accepted
    _post_as(c, "compute-1", entry("compute-1", params))
    stronger = replace(params, summands=params.summands + 2)  # private enough, but other
    err = _refused(c, "compute-2", entry("compute-2", stronger), 422)
    assert err.party == "compute-2" and "differ" in err.reason, err
    assert _commit_nodes(c, qid) == ["compute-1"]
    # a malicious operator admits a weak first commitment for another query
    spec2 = _spec(9)
    qid2, _, params2 = _post_query(c, spec2)
    with malicious(c):
        _post_as(c, "compute-1", entry("compute-1", replace(params2, summands=1), qid2))
    with pytest.raises(RemoteError) as ei:  # an honest node will not join that round
        _ask(c, "compute-2", qid2, "commit", params2)
    assert ei.value.status == 422 and ei.value.party == "compute-1", ei.value
    assert "not private enough" in ei.value.reason, ei.value.reason
    assert _commit_nodes(c, qid2) == ["compute-1"]
    _step_10(_log_view(c, qid2), "compute-1", "not private enough")


def test_nodes_use_the_params_they_are_handed(cluster: Cluster) -> None:
    """The nodes do not calibrate: handed parameters that pass the rule but are nobody's
    calibration (two more summands than the querier's plan), every node commits with
    exactly those; the querier resumes with the logged parameters and the query completes
    with a valid certificate whose step 10 reports them."""
    c = cluster
    spec = _spec(10)
    qid, setup, params = _post_query(c, spec)
    chosen = replace(params, summands=params.summands + 2)
    flow.check_noise_params(spec, setup, chosen)
    for n in NODES:
        _ask(c, n, qid, "commit", chosen)
    with _querier(c) as q:
        out = q.run(spec, datasets="diabetes")
    view = _log_view(c, qid)
    assert [e.params for _, e in view.noise_commits] == [chosen.to_json_obj()] * 3
    report = verify_certificate(out.certificate.to_bytes(), TrustPolicy(c.genesis, "trust"),
                                source="handed parameters")
    assert report.valid, (report.step, report.reason, report.party)
    detail = next(s.detail for s in report.steps if s.step == 10)
    assert f"s={chosen.summands}," in detail and "a set of 3 compute nodes" in detail, detail
