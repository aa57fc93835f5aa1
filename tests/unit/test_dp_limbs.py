"""A DP query decrypts ONE ciphertext per entry, never its 16-bit limbs (docs/privacy.md,
"Limb sums").

The adversary is any reader of the public log.  Every entry is aggregated in 16-bit limbs;
had the compute nodes published one decryption share per limb, anyone would recompute every
limb sum, not only the noised total the DP theorem covers: a noise share has only the limbs
its own range needs, and one row that makes an owner's entry cross a multiple of 2^16 moves
a top limb by exactly 1 -- told apart with certainty.  Now a DP query's decryption covers
``flow.decryption_targets``: each entry's limbs recombined homomorphically into one
ciphertext, so what is decrypted is the noised total and nothing else.  Reject twins: a node
that publishes limb shares (the old format), or any other share count, for a DP query is
refused at append (the state machine) and at step 12, naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from test_noise_wiring import (
    GENESIS,
    KEYS,
    NODES,
    PROVIDERS,
    SETUP,
    SHARES,
    TIMELINE,
    VKEYS,
    T,
    X,
)

from statledger.proofs.elgamal import Ciphertext, encrypt, split_limbs
from statledger.proofs.errors import ProtocolError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.vector import LIMB_BITS, encrypt_vector_with_proof, n_limbs
from statledger.protocol import calibration, flow, noise
from statledger.protocol import entries as E
from statledger.protocol.checks import (
    StepContext,
    step_8_query,
    step_9_submissions,
    step_10_noise,
    step_11_aggregate,
    step_12_decryption,
    step_13_totals,
)
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Roster, replay
from statledger.protocol.view import parse_entries

ZCDP = {"mechanism": "zcdp", "rho": 1}
SPECS = {
    "count": {"version": 1, "statistic": "count", "privacy": ZCDP},
    "mean": {"version": 1, "statistic": "mean", "columns": ["bmi"],
             "bounds": {"bmi": [0, 50]}, "privacy": ZCDP},
}


# -- in process: what a reader of the log can decrypt -------------------------------------------


def _contribution(values: Sequence[int], ranges: Sequence[tuple[int, int]]
                  ) -> flow.Contribution:
    """Real limb ciphertexts of ``values`` (no range proof: decryption is what is tested)."""
    limbs = tuple(tuple(encrypt(X, m) for m in split_limbs(v - lo, LIMB_BITS, n_limbs(lo, hi)))
                  for v, (lo, hi) in zip(values, ranges, strict=True))
    return flow.Contribution(flow.DerivedShare(limbs), tuple(ranges))


def _plaintexts(cts: Sequence[Ciphertext], bound: int) -> list[int]:
    """What anyone computes from the T shares of ``cts``: ``dlog(C2 - x*C1)``."""
    from statledger.proofs.elgamal import discrete_log_many

    x = _secret()
    return discrete_log_many([c.C2 - x * c.C1 for c in cts], bound)


def _secret() -> Scalar:
    # the collective secret of test_noise_wiring's setup: x = f(0), X = x*G
    from test_noise_wiring import A0

    assert base_mul(A0) == X
    return A0


def _local(spec: QuerySpec, n: int) -> list[int]:
    """An owner's local vector with ``n`` selected rows: the count, then (a mean) a sum."""
    return [n, 25 * n][:len(calibration.wire_layout(spec))]


def _neighbours(spec: QuerySpec) -> tuple[int, int]:
    """Row counts ``n - 1, n`` of one owner whose wire count crosses a multiple of 2^16."""
    n = 1
    while calibration.quantize(spec, _local(spec, n))[0] < 1 << LIMB_BITS:
        n += 1
    return n - 1, n


@pytest.mark.parametrize("name", sorted(SPECS))
def test_neighbouring_logs_differ_only_through_the_noised_total(name: str) -> None:
    """Two data sets differing by one row of one owner, across a 2^16 boundary of its wire
    count, with the same noise draw: the DP decryption has exactly one ciphertext per entry,
    each decrypts to the noised total (minus the public shift), and the two logs' decrypted
    values differ exactly by the totals' difference.  Twin (the old format): the limb
    ciphertexts of the same aggregates decrypt to limb sums that differ in a limb beyond
    the noise's limbs -- the hole this closes."""
    spec = QuerySpec.parse(SPECS[name])
    assert flow.decrypts_whole_entries(spec)
    ranges = list(calibration.wire_layout(spec).ranges)
    params = noise.calibrate(tuple(flow.privacy_profile(spec)), flow.privacy_rho(spec), 3, 3,
                             entries=len(ranges))
    z = calibration.simulate_noise(params, 3)  # one draw, shared by both neighbours
    noise_rng = [(-3 * flow.noise_offset(params, 0) - 3, 3 * params.share_max)] * len(ranges)
    other = calibration.quantize(spec, _local(spec, 1000))
    a, b = _neighbours(spec)
    totals = []
    limb_sums = []
    for n in (a, b):
        mine = calibration.quantize(spec, _local(spec, n))
        contribs = [_contribution(mine, ranges), _contribution(other, ranges),
                    _contribution(z, noise_rng)]
        agg = flow.aggregate(contribs)
        targets = flow.decryption_targets(spec, agg)
        assert len(targets) == len(ranges) == flow.decryption_count(spec, agg)
        x = _secret()
        shares = [[x * c.C1 for c in targets]]
        got = flow.decrypt_totals(spec, agg, shares, [c.ranges for c in contribs], [Scalar(1)])
        exact = [m + o + zz for m, o, zz in zip(mine, other, z, strict=True)]
        assert got == exact
        shift = [sum(c.ranges[j][0] for c in contribs) for j in range(len(ranges))]
        assert _plaintexts(targets, 1 << 40) == [g - s for g, s in zip(got, shift, strict=True)]
        totals.append(got)
        limb_sums.append(_plaintexts(flow.flatten(agg), 1 << 20))
    mine_a, mine_b = (calibration.quantize(spec, _local(spec, k)) for k in (a, b))
    assert [tb - ta for ta, tb in zip(*totals, strict=True)] == [
        mb - ma for ma, mb in zip(mine_a, mine_b, strict=True)]
    # the twin: per-limb decryption publishes a limb sum the noise does not reach
    covered = len(noise.limb_bounds(params))
    agg_shape = [n_limbs(lo, hi) for lo, hi in ranges]
    assert agg_shape[0] > covered
    assert limb_sums[0][covered] != limb_sums[1][covered]


def test_exact_queries_still_decrypt_limbs() -> None:
    """The rule is explicit: an exact query's targets are its limb ciphertexts (unchanged)."""
    spec = QuerySpec.parse({"version": 1, "statistic": "count"})
    assert not flow.decrypts_whole_entries(spec)
    ranges = list(calibration.wire_layout(spec).ranges)
    agg = flow.aggregate([_contribution([70000], ranges)])
    assert flow.decryption_targets(spec, agg) == flow.flatten(agg)
    assert flow.decryption_count(spec, agg) == len(flow.flatten(agg)) == 2


def test_recombine_is_the_weighted_sum_of_limbs() -> None:
    limbs = [encrypt(X, 5), encrypt(X, 7), encrypt(X, 3)]
    c = flow.recombine(limbs)
    assert _plaintexts([c], 1 << 40) == [5 + 7 * 2**16 + 3 * 2**32]
    assert flow.recombine(limbs[:1]) == limbs[0]


# -- on the log: the state machine and step 12 refuse limb shares for a DP query ---------------

DP_SPEC = QuerySpec.parse({"version": 1, "statistic": "count", "min_cell_size": 1,
                           "max_rows": 1 << 17, "privacy": {"mechanism": "zcdp", "rho": 1}})
DP_QID = DP_SPEC.query_id_for("researcher")
COUNTS = {"prov-1": 65535, "prov-2": 70000}


def _sign(e: E.Entry, who: str) -> Any:
    return E.sign(e, KEYS[who])


class _Log:
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def entries(self) -> list[Any]:
        return [_sign(E.GenesisEntry.of(GENESIS), "ledger"), SETUP,
                _sign(E.QueryEntry.for_spec(DP_SPEC, "researcher"), "researcher"), *self.items]

    def context(self) -> StepContext:
        ctx = StepContext(parse_entries([(i, e.to_bytes())
                                         for i, e in enumerate(self.entries())]))
        ctx.roster = TIMELINE
        ctx.keys = [VKEYS[n] for n in NODES]
        step_8_query(ctx)
        step_9_submissions(ctx)
        step_10_noise(ctx)
        return ctx


@pytest.fixture(scope="module")
def dp_round() -> dict[str, Any]:
    """An honest DP count round (limbs of the data: 2) through the aggregate."""
    params = flow.noise_plan(DP_SPEC, SETUP)
    assert params is not None
    ranges = list(calibration.wire_layout(DP_SPEC).ranges)
    assert n_limbs(*ranges[0]) == 2
    subs = [_sign(E.SubmissionEntry(DP_QID, p, encrypt_vector_with_proof(
        X, [COUNTS[p]], ranges, flow.submission_context(DP_QID, p)).to_bytes().hex()), p)
        for p in PROVIDERS]
    coms = {n: noise.commit_noise(X, params, DP_QID, n) for n in NODES}
    commits = [_sign(E.NoiseCommitEntry(DP_QID, n, coms[n].to_bytes().hex(),
                                        params.to_json_obj()), n) for n in NODES]
    base = flow.noise_coin_base(params, DP_QID, [coms[n] for n in NODES])
    coins = [_sign(E.NoiseCoinEntry.of(DP_QID, noise.make_coin_share(
        SHARES[n], VKEYS[n], base, DP_QID, n)), n) for n in NODES]
    items = [*subs, *commits, *coins]
    ctx = _Log(items).context()
    assert ctx.noise is not None
    order = [i for i, _ in ctx.view.submissions] + ctx.noise.indices
    agg = flow.aggregate([flow.Contribution(ctx.contributions[i][1],
                                            tuple(ctx.contributions[i][2])) for i in order])
    assert len(agg[0]) >= 2
    agg_entry = _sign(E.AggregateEntry(DP_QID, tuple(i for i, _ in ctx.view.submissions),
                                       tuple(ctx.noise.indices),
                                       tuple(c.to_bytes().hex() for c in flow.flatten(agg))),
                      "researcher")
    return {"items": [*items, agg_entry], "agg": agg}


def _decryption(node: str, cts: Sequence[Ciphertext]) -> Any:
    shares, proof = flow.make_decryption(SHARES[node], VKEYS[node], cts,
                                         flow.decryption_context(DP_QID, node))
    return _sign(E.DecryptionEntry(DP_QID, node, tuple(s.to_bytes().hex() for s in shares),
                                   proof.to_bytes().hex()), node)


def _replay(items: list[Any]) -> None:
    """The ledger's append-time rules over the query's entries (log index 2 onwards)."""
    rows = _Log(items).entries()[2:]
    replay(rows, Roster(NODES, PROVIDERS, ("researcher",), T), indices=range(2, 2 + len(rows)))


def _step12(items: list[Any]) -> StepContext:
    ctx = _Log(items).context()
    step_11_aggregate(ctx)
    step_12_decryption(ctx)
    return ctx


def test_dp_decryption_has_one_share_per_entry_and_decrypts_the_total(
        dp_round: dict[str, Any]) -> None:
    agg = dp_round["agg"]
    targets = flow.decryption_targets(DP_SPEC, agg)
    assert len(targets) == 1 < len(flow.flatten(agg))
    decs = [_decryption(n, targets) for n in NODES[:T]]
    assert all(len(d.shares) == 1 for d in decs)
    items = [*dp_round["items"], *decs]
    _replay(items)  # accepted at append
    ctx = _step12(items)
    assert ctx.released_cts == targets and ctx.decryptors == sorted(NODES[:T])
    totals = flow.decrypt_totals(DP_SPEC, ctx.aggregate, ctx.shares_by_node,
                                 ctx.aggregate_ranges,
                                 flow.combination_weights(SETUP, ctx.decryptors))
    assert ctx.noise is not None
    noise_total = totals[0] - sum(COUNTS.values())
    bound = len(ctx.noise.members) * ctx.noise.params.share_max
    assert abs(noise_total) <= bound
    result = _sign(E.ResultEntry.for_totals(DP_QID, totals, {"statistic": "count"},
                                            ctx.decryptors), "researcher")
    ctx = _step12([*items, result])
    assert "1 totals decrypted" in step_13_totals(ctx)
    # twin: a result publishing other totals is refused
    bad = _sign(E.ResultEntry.for_totals(DP_QID, [totals[0] + 1], {"statistic": "count"},
                                         ctx.decryptors), "researcher")
    ctx = _step12([*items, bad])
    with pytest.raises(VerificationError, match="step 13"):
        step_13_totals(ctx)


def _refused(items: list[Any], node: str, match: str) -> None:
    with pytest.raises(ProtocolError, match=f"node {node}.*{match}"):
        _replay(items)
    with pytest.raises(VerificationError) as info:
        _step12(items)
    assert info.value.step == "step 12" and info.value.party == node, info.value
    assert match in info.value.reason, info.value.reason


def test_limb_shares_for_a_dp_query_are_refused(dp_round: dict[str, Any]) -> None:
    """The old format: one share per limb ciphertext (correct shares with a valid DLEQ proof)
    would publish the limb sums.  Refused at append and at step 12, naming the node."""
    agg = dp_round["agg"]
    good = _decryption("node-a", flow.decryption_targets(DP_SPEC, agg))
    limbs = _decryption("node-b", flow.flatten(agg))
    _refused([*dp_round["items"], good, limbs], "node-b", "one ciphertext per entry")


def test_a_share_count_mismatch_is_refused(dp_round: dict[str, Any]) -> None:
    agg = dp_round["agg"]
    targets = flow.decryption_targets(DP_SPEC, agg)
    twice = _decryption("node-c", [*targets, *targets])  # one share too many
    _refused([*dp_round["items"], twice], "node-c", "2 shares")


def test_shares_of_the_limb_ciphertext_in_place_of_the_entry_are_refused(
        dp_round: dict[str, Any]) -> None:
    """Right count, wrong ciphertext (limb 0 instead of the recombined entry): the DLEQ
    statement is over the recombined ciphertext, so step 12 finds the shares invalid."""
    agg = dp_round["agg"]
    wrong = _decryption("node-a", [agg[0][0]])
    items = [*dp_round["items"], wrong]
    _replay(items)  # the count is right: the append accepts
    with pytest.raises(VerificationError, match="step 12"):
        _step12(items)
