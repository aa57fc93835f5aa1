"""The DP noise round wired into the log (docs/noise.md, docs/verification.md step 10), in
process: the ``noise_commit`` / ``noise_coin`` entries (strict decoding, reject twins), the
noise set as a function of the log, step 10 (every failure a ``step 10`` error naming the
node), step 11 on the derived shares, the decryption of an aggregate that carries them
(limb bounds, offsets), and the state machine's order rules.

The steps are run on a hand-built :class:`StepContext` (roster and keys set as step 6 would
set them) so that these tests do not depend on the key ceremony: a 2-of-3 Shamir sharing of
the collective key, the verification keys ``Y_j = f(j) G``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from statledger.proofs.elgamal import Ciphertext, decrypt, encrypt
from statledger.proofs.errors import (
    MalformedError,
    PolicyError,
    ProtocolError,
    VerificationError,
)
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.proofs.vector import EncryptedVector, encrypt_vector_with_proof
from statledger.protocol import calibration, flow, noise
from statledger.protocol import entries as E
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.protocol.checks import (
    NOISE_STEPS,
    StepContext,
    step_8_query,
    step_9_submissions,
    step_10_noise,
    step_11_aggregate,
)
from statledger.protocol.consortium import (
    AdmissionRule,
    Genesis,
    Member,
    RosterTimeline,
    SignedGenesis,
)
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Roster, advance, expected_next, replay
from statledger.protocol.view import parse_entries

NODES = ("node-a", "node-b", "node-c")
PROVIDERS = ("prov-1", "prov-2")
T = 2
KEYS = {p: SigningKey.from_bytes(bytes([i + 60]) * 32)
        for i, p in enumerate(("ledger", *NODES, *PROVIDERS, "researcher", "mallory"))}
FOUNDERS = {"ledger": "ledger", **dict.fromkeys(NODES, "compute"),
            **dict.fromkeys(PROVIDERS, "provider"), "researcher": "querier",
            "mallory": "provider"}
# the collective secret x = f(0) and the node shares x_j = f(j), f(z) = A0 + A1 z
A0, A1 = Scalar(0x5EC12E7), Scalar(0xC0FFEE)
SHARES = {n: A0 + A1 * Scalar(i + 1) for i, n in enumerate(NODES)}
VKEYS = {n: base_mul(s) for n, s in SHARES.items()}
X = base_mul(A0)


def _genesis() -> SignedGenesis:
    members = tuple(Member(p, r, KEYS[p].public_key().to_bytes().hex())
                    for p, r in FOUNDERS.items())
    signed = SignedGenesis(Genesis("noise wiring", "statledger.test/noise", members, 1,
                                   AdmissionRule(2, ("compute", "ledger")), T))
    for m in members:
        signed = signed.sign(m.party_id, KEYS[m.party_id])
    return signed


GENESIS = _genesis()
TIMELINE = RosterTimeline.derive(GENESIS, [])
CONSORTIUM = GENESIS.genesis.consortium_id
SETUP = E.sign(E.SetupEntry(CONSORTIUM, NODES, T, X.to_bytes().hex(),
                            tuple(VKEYS[n].to_bytes().hex() for n in NODES)), KEYS["ledger"])


def _spec(dp: bool = True, rho: float = 0.5) -> QuerySpec:
    obj: dict[str, Any] = {"version": 1, "statistic": "count", "columns": [],
                           "min_cell_size": 1, "max_rows": 100}
    if dp:
        obj["privacy"] = {"mechanism": "zcdp", "rho": rho}
    return QuerySpec.parse(obj)


SPEC = _spec()
QID = SPEC.query_id_for("researcher")
_PLAN = flow.noise_plan(SPEC, SETUP)
assert _PLAN is not None
PARAMS: noise.NoiseParams = _PLAN
RANGES = [(0, 100)]
COUNTS = {"prov-1": 40, "prov-2": 60}


def sign(e: E.Entry, who: str) -> Any:
    return E.sign(e, KEYS[who])


def commit_entry(node: str, commitment: str, *,
                 carried: noise.NoiseParams | dict[str, Any] = PARAMS, qid: str = QID,
                 author: str | None = None) -> Any:
    """A ``noise_commit`` entry of ``node`` (signed by ``author``, default the node) with
    these commitment bytes (hex), carrying ``carried`` (params, or any JSON object)."""
    obj = carried.to_json_obj() if isinstance(carried, noise.NoiseParams) else carried
    return sign(E.NoiseCommitEntry(qid, node, commitment, obj), author or node)


def commit(node: str, *, qid: str = QID, params: noise.NoiseParams = PARAMS,
           carried: noise.NoiseParams | dict[str, Any] | None = None,
           bits: list[int] | None = None, author: str | None = None) -> Any:
    """``node``'s commitment made (bits, proof context) with ``params`` for ``qid``, logged
    for :data:`QID` carrying ``carried`` (default: ``params``)."""
    com = noise.commit_noise(X, params, qid, node, bits=bits)
    return commit_entry(node, com.to_bytes().hex(),
                        carried=params if carried is None else carried, author=author)


def coin(node: str, base: Point, *, key_of: str | None = None, qid: str = QID) -> Any:
    k = key_of or node
    share = noise.make_coin_share(SHARES[k], VKEYS[k], base, qid, node)
    return sign(E.NoiseCoinEntry.of(QID, share), node)


def base_of(*commit_entries: Any, params: noise.NoiseParams = PARAMS) -> Point:
    """P of the set made of these commitments (ordered as setup.compute)."""
    by_node = {c.node: c.decode_commitment(params) for c in commit_entries}
    return flow.noise_coin_base(params, QID, [by_node[n] for n in NODES if n in by_node])


@dataclass
class Log:
    """One query's entries after the roster (setup at index 1, query at 2)."""

    items: list[Any]

    def rows(self) -> list[tuple[int, bytes]]:
        head = [sign(E.GenesisEntry.of(GENESIS), "ledger"), SETUP,
                sign(E.QueryEntry.for_spec(self.spec, "researcher"), "researcher")]
        return [(i, e if isinstance(e, bytes) else e.to_bytes())
                for i, e in enumerate(head + self.items)]

    spec: QuerySpec = SPEC

    def index(self, entry: Any) -> int:
        return 3 + self.items.index(entry)


def submissions(qid: str = QID) -> list[Any]:
    out = []
    for p in PROVIDERS:
        ev = encrypt_vector_with_proof(X, [COUNTS[p]], RANGES, flow.submission_context(qid, p))
        out.append(sign(E.SubmissionEntry(qid, p, ev.to_bytes().hex()), p))
    return out


def context(log: Log) -> StepContext:
    """The context after steps 6 (as it would set it) and 8."""
    ctx = StepContext(parse_entries(log.rows()))
    ctx.roster = TIMELINE
    ctx.keys = [VKEYS[n] for n in NODES]
    step_8_query(ctx)
    return ctx


def run_through(log: Log, last: int = 11) -> StepContext:
    ctx = context(log)
    step_9_submissions(ctx)
    step_10_noise(ctx)
    if last >= 11:
        step_11_aggregate(ctx)
    return ctx


def aggregate_entry(log: Log, ctx: StepContext, *,
                    tamper: Callable[[list[Ciphertext]], list[Ciphertext]] | None = None) -> Any:
    """The honest aggregate of the context's submissions and noise set (``tamper`` changes
    its flattened ciphertexts)."""
    subs = [i for i, _ in ctx.view.submissions]
    listed = ctx.noise.indices if ctx.noise is not None else []
    contributions = [flow.Contribution(ctx.contributions[i][1], tuple(ctx.contributions[i][2]))
                     for i in subs + listed]
    flat = flow.flatten(flow.aggregate(contributions))
    if tamper is not None:
        flat = tamper(flat)
    return sign(E.AggregateEntry(QID, tuple(subs), tuple(sorted(listed)),
                                 tuple(c.to_bytes().hex() for c in flat)), "researcher")


@pytest.fixture(scope="module")
def honest() -> dict[str, Any]:
    """An honest round: submissions, commitments a, b, c, coin shares b, c, a; aggregate."""
    subs = submissions()
    commits = {n: commit(n) for n in NODES}
    base = base_of(*commits.values())
    coins = {n: coin(n, base) for n in ("node-b", "node-c", "node-a")}
    items = [*subs, *commits.values(), *coins.values()]
    log = Log(items)
    ctx = run_through(log, last=10)
    agg = aggregate_entry(log, ctx)
    return {"subs": subs, "commits": commits, "coins": coins, "base": base,
            "log": Log([*items, agg]), "agg": agg}


def _step10(log: Log, party: str | None, match: str) -> None:
    with pytest.raises(VerificationError) as info:
        run_through(log, 10)
    assert info.value.step == "step 10", info.value
    assert info.value.party == party, (info.value.party, info.value.reason)
    assert match in info.value.reason, info.value.reason


# -- the honest round ------------------------------------------------------------------------


def test_params_are_calibrated_for_one_honest_node_and_cached() -> None:
    assert PARAMS.n_nodes == len(NODES) and PARAMS.honest == 1
    assert flow.noise_plan(SPEC, SETUP) is PARAMS  # cached: one search per process
    assert flow.noise_plan(_spec(dp=False), SETUP) is None
    bound = noise.privacy_bound(PARAMS, flow.noise_sensitivities(SPEC))
    assert bound.rho <= 0.5 and bound.delta <= noise.DEFAULT_DELTA


def test_honest_round_passes_steps_10_and_11_and_decrypts(honest: dict[str, Any]) -> None:
    log: Log = honest["log"]
    ctx = run_through(log)
    rnd = ctx.noise
    assert rnd is not None and rnd.seed is not None
    assert [n for _, n in rnd.members] == list(NODES)
    assert [s.node for _, s in rnd.coins] == ["node-b", "node-c", "node-a"]
    # the coin is x*P whichever T valid shares are combined
    shares = [s for _, s in rnd.coins]
    assert rnd.base is not None
    assert flow.noise_seed(SETUP, rnd.base, shares[:2]) == flow.noise_seed(
        SETUP, rnd.base, [shares[2], shares[0]]) == noise.coin_seed(rnd.base, [A0 * rnd.base])
    # decrypt the aggregate with T = 2 nodes: true total + the sum of the derived shares
    decryptors = ["node-a", "node-c"]
    by_node = []
    for n in decryptors:
        s, _ = flow.make_decryption(SHARES[n], VKEYS[n],
                                    flow.decryption_targets(ctx.spec(), ctx.aggregate),
                                    flow.decryption_context(QID, n))
        by_node.append(s)
    totals = flow.decrypt_totals(ctx.spec(), ctx.aggregate, by_node, ctx.aggregate_ranges,
                                 flow.combination_weights(SETUP, decryptors))
    noise_total = 0
    for position, (index, _) in enumerate(rnd.members):
        (_, share, ranges) = ctx.contributions[index]
        assert isinstance(share, flow.DerivedShare) and isinstance(ranges[0], flow.NoiseRange)
        u = decrypt(A0, share.limbs[0][0], PARAMS.share_max + 1)
        assert 0 <= u <= PARAMS.share_max
        noise_total += u - flow.noise_offset(PARAMS, position)
    assert totals == [sum(COUNTS.values()) + noise_total]


def test_a_round_in_progress_passes_without_an_aggregate(honest: dict[str, Any]) -> None:
    c = honest["commits"]
    # before the first commitment there are no parameters yet (they travel in the
    # commitments): the round has not started
    ctx = context(Log(honest["subs"]))
    step_9_submissions(ctx)
    assert step_10_noise(ctx) == "noise round not started" and ctx.noise is None
    for items in ([c["node-a"]], list(c.values()),
                  [*c.values(), honest["coins"]["node-b"]]):
        ctx = run_through(Log([*honest["subs"], *items]), 10)
        assert ctx.noise is not None and ctx.noise.seed is None
        assert ctx.noise.params == PARAMS
    # the derived shares are not filled in before the coin exists
    assert all(isinstance(v[1], EncryptedVector) for v in ctx.contributions.values())


def test_the_steps_a_party_runs_before_acting() -> None:
    assert [s.number for s in NOISE_STEPS] == [6, 8, 10]


# -- the noise set is a function of the log ----------------------------------------------------


def test_commitment_after_the_first_coin_is_ignored(honest: dict[str, Any]) -> None:
    c, subs = honest["commits"], honest["subs"]
    base = base_of(c["node-a"], c["node-b"])
    items = [*subs, c["node-a"], c["node-b"], coin("node-a", base), c["node-c"],
             coin("node-b", base)]
    ctx = run_through(Log(items), 10)
    assert ctx.noise is not None and [n for _, n in ctx.noise.members] == ["node-a", "node-b"]
    agg = aggregate_entry(Log(items), ctx)
    run_through(Log([*items, agg]))
    # an aggregate that lists the late commitment is not the noise set's
    late = sign(replace(agg, noise=(5, 6, 8), sig=None), "researcher")
    with pytest.raises(VerificationError, match="noise set's commitments") as info:
        run_through(Log([*items, late]))
    assert info.value.step == "step 11" and info.value.party == "researcher"
    # a coin share for the set that includes the late commitment is another set's
    wrong = coin("node-b", base_of(c["node-a"], c["node-b"], c["node-c"]))
    _step10(Log([*subs, c["node-a"], c["node-b"], coin("node-a", base), c["node-c"], wrong]),
            "node-b", "coin share")


def test_a_set_closed_with_fewer_than_T_commitments_is_rejected(honest: dict[str, Any]) -> None:
    c = honest["commits"]
    early = coin("node-c", base_of(c["node-a"]))
    _step10(Log([*honest["subs"], c["node-a"], early, c["node-b"]]), "node-c",
            "at least 2 are needed")


def test_aggregate_before_the_coin_blames_the_querier(honest: dict[str, Any]) -> None:
    c = honest["commits"]
    items = [*honest["subs"], *c.values(), honest["coins"]["node-b"]]
    agg = sign(E.AggregateEntry(QID, (3, 4), (), honest["agg"].ciphertexts), "researcher")
    _step10(Log([*items, agg]), "researcher", "before the noise round completed")


def test_duplicates_and_strangers_are_rejected(honest: dict[str, Any]) -> None:
    c, coins, subs = honest["commits"], honest["coins"], honest["subs"]
    _step10(Log([*subs, c["node-a"], commit("node-a"), c["node-b"]]), "node-a",
            "two noise commitments")
    _step10(Log([*subs, *c.values(), coins["node-b"], coins["node-b"]]), "node-b",
            "two coin shares")
    stranger = commit_entry("mallory", c["node-a"].commitment)
    _step10(Log([*subs, stranger, *c.values()]), "mallory", "not a compute node")
    forged = replace(c["node-b"], sig=c["node-a"].sig)  # node-a's signature on node-b's entry
    _step10(Log([*subs, c["node-a"], forged]), "node-b", "signature")
    plain_spec = _spec(dp=False)
    plain_qid = plain_spec.query_id_for("researcher")
    on_plain = commit_entry("node-a", c["node-a"].commitment, qid=plain_qid)
    _step10(Log([*submissions(plain_qid), on_plain], spec=plain_spec), "node-a",
            "query without DP")


# -- what a dishonest node can post --------------------------------------------------------------


def test_old_attack_plus_B_is_impossible(honest: dict[str, Any]) -> None:
    """Two colluding nodes wanted +B on every entry.  There is no share entry any more: the
    only noise on the log are bits and coin shares; bits that are not 0/1 fail the proof, and
    bits chosen all-ones are XORed with coins nobody knew at commit time."""
    c, subs = honest["commits"], honest["subs"]
    # (1) a "bit" that encrypts B: the aggregated 0/1 proof fails, the node is named
    good = c["node-b"].decode_commitment(PARAMS)
    rows = list(good.bits.limbs)
    rows[0] = (encrypt(X, PARAMS.share_max),)
    evil = EncryptedVector(tuple(rows), good.bits.commitments, good.bits.proof)
    entry = commit_entry("node-b", evil.to_bytes().hex())
    _step10(Log([*subs, c["node-a"], entry, c["node-c"]]), "node-b", "noise commitment")
    # (2) all-ones bits by two colluders: still valid commitments, but their shares are
    # derived from b XOR c, not chosen (the released share is not share_max)
    ones = [1] * PARAMS.total_bits
    bad_a, bad_b = (commit(n, bits=ones) for n in ("node-a", "node-b"))
    base = base_of(bad_a, bad_b, c["node-c"])
    items = [*subs, bad_a, bad_b, c["node-c"], coin("node-a", base), coin("node-b", base)]
    ctx = run_through(Log(items), 10)
    assert ctx.noise is not None
    for index, _ in ctx.noise.members[:2]:
        u = decrypt(A0, ctx.contributions[index][1].limbs[0][0], PARAMS.share_max + 1)
        assert u != PARAMS.share_max  # probability 2^-34 of a false failure
    # (3) a querier that slips +B into the aggregate is caught at step 11
    plus_b = aggregate_entry(Log(items), ctx, tamper=lambda f: [
        f[0] + encrypt(X, PARAMS.share_max), *f[1:]])
    with pytest.raises(VerificationError, match="not the sum") as info:
        run_through(Log([*items, plus_b]))
    assert info.value.step == "step 11"


@pytest.mark.parametrize("case", ["other node", "other query", "other params", "truncated",
                                  "bit flip"])
def test_commitment_binding(honest: dict[str, Any], case: str) -> None:
    c, subs = honest["commits"], honest["subs"]
    if case == "other node":  # node-a's proof relabelled as node-b's
        bad = commit_entry("node-b", c["node-a"].commitment)
    elif case == "other query":
        bad = commit("node-b", qid="ab" * 32)
    elif case == "other params":  # same bit count, another parameter set in the context
        other = replace(PARAMS, threshold=PARAMS.threshold - 1)
        bad = commit("node-b", params=other, carried=PARAMS)
    elif case == "truncated":
        bad = commit_entry("node-b", c["node-b"].commitment[:-2])
    else:
        h = bytearray.fromhex(c["node-b"].commitment)
        h[200] ^= 0x01
        bad = commit_entry("node-b", h.hex())
    _step10(Log([*subs, c["node-a"], bad, c["node-c"]]), "node-b", "noise commitment")


@pytest.mark.parametrize("case", ["wrong key", "other base", "other query", "proof flip",
                                  "share swapped"])
def test_coin_share_binding(honest: dict[str, Any], case: str) -> None:
    c, subs, base = honest["commits"], honest["subs"], honest["base"]
    good = honest["coins"]["node-b"]
    if case == "wrong key":  # node-b publishes with node-a's key share
        bad = coin("node-b", base, key_of="node-a")
    elif case == "other base":
        bad = coin("node-b", base_of(c["node-a"], c["node-b"]))
    elif case == "other query":
        bad = coin("node-b", base, qid="cd" * 32)
    elif case == "proof flip":
        p = bytearray.fromhex(good.proof)
        p[5] ^= 0x10
        bad = sign(E.NoiseCoinEntry(QID, "node-b", good.coin_share, p.hex()), "node-b")
    else:  # node-c's coin share under node-b's name
        other = honest["coins"]["node-c"]
        bad = sign(E.NoiseCoinEntry(QID, "node-b", other.coin_share, other.proof), "node-b")
    _step10(Log([*subs, *c.values(), bad, honest["coins"]["node-c"]]), "node-b", "coin share")


# -- strict decoding of the two kinds (reject twins) ----------------------------------------------


def _wire(entry: Any) -> dict[str, Any]:
    obj = parse_cbor(entry.to_bytes())
    assert isinstance(obj, dict)
    return obj


def test_entries_round_trip_and_accessors(honest: dict[str, Any]) -> None:
    for e in (honest["commits"]["node-a"], honest["coins"]["node-b"]):
        assert E.Entry.from_bytes(e.to_bytes()) == e
        assert E.Entry.from_json_obj(e.to_json_obj()) == e
        assert e.claimed_author() == e.node
    com = honest["commits"]["node-a"].decode_commitment(PARAMS)
    assert com.node == "node-a" and len(com.ciphertexts()) == PARAMS.total_bits
    # the commitment carries the querier's parameters, strictly decoded
    assert honest["commits"]["node-a"].params == PARAMS.to_json_obj()
    assert honest["commits"]["node-a"].noise_params() == PARAMS
    share = honest["coins"]["node-b"].decode_share()
    assert share.node == "node-b"
    noise.verify_coin_share(VKEYS["node-b"], honest["base"], share, QID)
    with pytest.raises(MalformedError):  # another bit count
        honest["commits"]["node-a"].decode_commitment(replace(PARAMS, summands=PARAMS.summands
                                                              + 1))


@pytest.mark.parametrize("kind", ["noise_commit", "noise_coin"])
def test_reject_twins(honest: dict[str, Any], kind: str) -> None:
    e = honest["commits"]["node-a"] if kind == "noise_commit" else honest["coins"]["node-b"]
    obj = _wire(e)
    E.Entry.from_bytes(cbor_bytes(obj))  # the twin: the untouched map decodes

    def bad(o: dict[str, Any]) -> None:
        with pytest.raises(MalformedError):
            E.Entry.from_bytes(cbor_bytes(o))

    bad({**obj, "extra": 1})
    bad({k: v for k, v in obj.items() if k != "node"})
    bad({**obj, "node": "not a valid id!"})
    bad({**obj, "query_id": obj["query_id"][:31]})
    bad({**obj, "query_id": obj["query_id"].hex()})  # text where bytes are expected
    bad({**obj, "kind": "noise"})  # the retired kind
    if kind == "noise_commit":
        bad({**obj, "commitment": b""})
        bad({**obj, "commitment": obj["commitment"].hex()})
        # the carried parameters: a JSON object, present (its values are checked by
        # NoiseParams.from_json_obj and check_noise_params, at step 10 and on the ledger)
        bad({k: v for k, v in obj.items() if k != "params"})
        bad({**obj, "params": [obj["params"]]})
        bad({**obj, "params": cbor_bytes(obj["params"])})
        bad({**obj, "params": {**obj["params"], "summands": 2**60}})  # beyond 2^53
    else:
        bad({**obj, "coin_share": obj["coin_share"][:32]})
        bad({**obj, "coin_share": bytes(33)})  # the identity is no coin share
        bad({**obj, "coin_share": b"\x02" + b"\xff" * 32})  # not on the curve
        bad({**obj, "proof": obj["proof"][:63]})
        bad({**obj, "proof": obj["proof"] + b"\x00"})
        bad({**obj, "proof": b"\xff" * 64})  # scalars >= n
        bad({**obj, "coin_share": obj["proof"], "proof": obj["coin_share"]})  # swapped
    # truncated entry bytes; a byte flipped in the signature decodes but does not verify
    with pytest.raises(MalformedError):
        E.Entry.from_bytes(e.to_bytes()[:-1])
    sig = bytearray(obj["sig"])
    sig[0] ^= 0x01
    flipped = E.Entry.from_bytes(cbor_bytes({**obj, "sig": bytes(sig)}))
    with pytest.raises(VerificationError):
        E.verify_signature(flipped, KEYS[e.node].public_key(), e.node)


# -- flow helpers ------------------------------------------------------------------------------


def test_noise_ranges_offsets_and_limb_bounds() -> None:
    odd = noise.NoiseParams(3, 3, 2, 5, 3, 4)  # share_max = 15 + 16*5*7, odd
    assert odd.share_max % 2 == 1
    offs = [flow.noise_offset(odd, k) for k in range(5)]
    assert offs == [odd.share_max // 2, odd.share_max // 2 + 1] * 2 + [odd.share_max // 2]
    for k in range(1, 6):  # residual mean 0 (k even) or 1/2 (k odd), never more
        assert 2 * sum(offs[:k]) in (k * odd.share_max, k * odd.share_max - 1)
    r = flow.noise_ranges(odd, 1)
    assert len(r) == 2 and r[0] == (-offs[1], odd.share_max - offs[1])
    assert r[0].limb_max == tuple(noise.limb_bounds(odd))
    assert pickle.loads(pickle.dumps(r[0])).limb_max == r[0].limb_max
    # a limb of a derived share may exceed 2^16 - 1: the bound is the exact one
    wide = noise.NoiseParams(3, 3, 1, 40, 6, 10)
    lb = flow.limb_bounds([[(0, 100)], flow.noise_ranges(wide, 0)])
    assert lb[0][0] == 100 + noise.limb_bounds(wide)[0] > (1 << 16)


def test_noise_set_is_the_commitments_before_the_first_coin(honest: dict[str, Any]) -> None:
    c = honest["commits"]
    cb = honest["coins"]["node-b"]
    commits = [(5, c["node-a"]), (9, c["node-c"]), (6, c["node-b"])]
    assert [i for i, _ in flow.noise_set(commits, [])] == [5, 6, 9]
    assert [i for i, _ in flow.noise_set(commits, [(8, cb), (7, cb)])] == [5, 6]
    assert flow.noise_set(commits, [(4, cb)]) == []


# -- the state machine -----------------------------------------------------------------------------


def test_state_machine_order(honest: dict[str, Any]) -> None:
    roster = Roster(NODES, PROVIDERS, ("researcher",), T)
    c, coins, subs = honest["commits"], honest["coins"], honest["subs"]
    q = sign(E.QueryEntry.for_spec(SPEC, "researcher"), "researcher")
    s = replay([q, *subs, c["node-a"], c["node-b"]], roster)
    nxt = expected_next(s)
    assert ("noise_commit", "node-c") in nxt and ("noise_coin", "node-a") in nxt
    assert ("aggregate", None) not in nxt
    s = advance(s, coins["node-b"])
    assert s.committed == ("node-a", "node-b") and s.coined == ("node-b",)
    assert not any(k == "noise_commit" for k, _ in expected_next(s))
    assert ("aggregate", None) not in expected_next(s)  # 1 of the T = 2 coin shares
    s = advance(s, coins["node-c"])
    assert ("aggregate", None) in expected_next(s)
    for entry, match in ((c["node-c"], "after the first coin share"),
                         (coins["node-b"], "duplicate coin share"),
                         (commit("node-a"), "after the first coin share")):
        with pytest.raises(ProtocolError, match=match):
            advance(s, entry)
    with pytest.raises(ProtocolError, match="before 2 noise commitments"):
        advance(replay([q, *subs, c["node-a"]], roster), coins["node-b"])
    with pytest.raises(ProtocolError, match="duplicate noise commitment"):
        advance(replay([q, c["node-a"]], roster), commit("node-a"))
    agg = honest["agg"]
    with pytest.raises(ProtocolError, match="before the noise round completed"):
        advance(replay([q, *subs, *c.values(), coins["node-b"]], roster), agg)
    # the aggregate lists exactly the set's commitments (indices known)
    rows = [q, *subs, c["node-a"], c["node-b"], coins["node-b"], coins["node-c"]]
    s = replay(rows, roster, indices=list(range(2, 2 + len(rows))))
    wrong = sign(replace(agg, noise=(5, 6, 7), sig=None), "researcher")
    with pytest.raises(ProtocolError, match="noise commitments"):
        advance(s, wrong)
    right = sign(replace(agg, noise=(5, 6), sig=None), "researcher")
    assert advance(s, right).phase.value == "aggregated"
    plain = sign(E.QueryEntry.for_spec(_spec(dp=False), "researcher"), "researcher")
    with pytest.raises(ProtocolError):
        advance(replay([plain], roster), c["node-a"])


# -- the querier's noise parameters, carried by every commitment (docs/noise.md) -------------

#: A round's worth of parameters that are private enough although they are not the
#: querier's calibration (more noise: two more summands): any that pass the one rule do.
STRONGER = replace(PARAMS, summands=PARAMS.summands + 2)
#: Not private enough: one summand (the calibration needs many).
WEAK = replace(PARAMS, summands=1)


def _full_round(params: noise.NoiseParams, order: tuple[str, ...] = NODES) -> list[Any]:
    """Submissions, every node's commitment made and carried with ``params`` (logged in
    ``order``), then T coin shares for their set: valid proofs throughout."""
    commits = {n: commit(n, params=params) for n in order}
    base = base_of(*commits.values(), params=params)
    return [*submissions(), *commits.values(), coin("node-b", base), coin("node-c", base)]


def test_parameters_other_than_the_calibration_but_private_enough_pass() -> None:
    """The accept twin of the tests below: nobody checks the querier's parameters against a
    calibration of its own, only against the rule (shape, limits, privacy)."""
    assert STRONGER != PARAMS
    flow.check_noise_params(SPEC, SETUP, STRONGER)
    ctx = run_through(Log(_full_round(STRONGER)), 10)
    assert ctx.noise is not None and ctx.noise.params == STRONGER
    assert ctx.noise.seed is not None and len(ctx.noise.members) == 3


@pytest.mark.parametrize("order", [NODES, ("node-c", "node-a", "node-b")])
def test_commitments_with_parameters_not_private_enough_fail_step_10(
        order: tuple[str, ...]) -> None:
    """Every node committed (valid 0/1 proofs, valid coin shares) with parameters that do not
    meet the query's rho: step 10 fails naming the node of the first commitment on the log."""
    with pytest.raises(PolicyError, match="not private enough"):
        flow.check_noise_params(SPEC, SETUP, WEAK)
    _step10(Log(_full_round(WEAK, order)), order[0], "not private enough")


@pytest.mark.parametrize(("bad", "match"), [
    (replace(PARAMS, n_nodes=4, threshold=4), "shaped for 4 nodes"),  # another N
    (replace(PARAMS, n_nodes=2, threshold=2), "shaped for 2 nodes"),
    (replace(PARAMS, threshold=T), f"threshold {T}"),  # h = N - T + 1 = 2 assumed honest
    (replace(PARAMS, entries=2), "2 entries"),  # another number of entries
    (replace(PARAMS, summands=flow.MAX_NOISE_BITS_PER_ENTRY + 1), "work limits"),
    (replace(PARAMS, summands=1, summand_bits=17), "work limits"),  # support 2^17 - 1
    (replace(PARAMS, summands=2, summand_bits=16), "work limits"),  # support 2^17 - 2
])
def test_commitments_with_misshaped_or_oversized_parameters_fail_step_10(
        honest: dict[str, Any], bad: noise.NoiseParams, match: str) -> None:
    """Parameters for another N, another number of entries, or beyond the work limits: the
    check refuses them before any proof is looked at (the commitment bytes are the honest
    ones), naming the node whose commitment carries them first."""
    with pytest.raises(MalformedError, match=match):
        flow.check_noise_params(SPEC, SETUP, bad)
    c = honest["commits"]
    items = [*honest["subs"], *(commit_entry(n, c[n].commitment, carried=bad) for n in NODES)]
    _step10(Log(items), "node-a", match)
    # only node-b's carries them: it is the one named (its parameters differ)
    items = [*honest["subs"], c["node-a"], commit_entry("node-b", c["node-b"].commitment,
                                                         carried=bad), c["node-c"]]
    _step10(Log(items), "node-b", "differ")


def test_work_limits_boundary() -> None:
    """The limits themselves: support ``2^16 - 1`` and 4096 bits per entry are checked for
    privacy (and fail it: too little noise), one more is refused as oversized."""
    at_support = replace(PARAMS, summands=1, summand_bits=16)
    assert at_support.summands * ((1 << 16) - 1) == noise.MAX_SUPPORT - 1
    with pytest.raises(PolicyError, match="not private enough"):
        flow.check_noise_params(SPEC, SETUP, at_support)
    at_bits = replace(PARAMS, summands=flow.MAX_NOISE_BITS_PER_ENTRY)
    assert at_bits.bits_per_entry == flow.MAX_NOISE_BITS_PER_ENTRY
    flow.check_noise_params(SPEC, SETUP, at_bits)  # private (lots of noise), within limits
    with pytest.raises(MalformedError, match="work limits"):
        flow.check_noise_params(SPEC, SETUP, replace(at_bits, summands=at_bits.summands + 1))


def test_two_commitments_of_one_query_with_different_parameters_fail_step_10(
        honest: dict[str, Any]) -> None:
    """Each set is acceptable on its own (PARAMS, STRONGER); mixed in one query, the first
    commitment on the log fixes them and the first that differs is named."""
    c, subs = honest["commits"], honest["subs"]
    other_b = commit("node-b", params=STRONGER)
    _step10(Log([*subs, c["node-a"], other_b, c["node-c"]]), "node-b", "differ")
    # the first commitment logged carries STRONGER: now node-a's (PARAMS) is the odd one
    _step10(Log([*subs, other_b, c["node-a"], c["node-c"]]), "node-a", "differ")
    # even after the first coin share (a late commitment is ignored by the noise set, but
    # its parameters are still the query's): named
    base = base_of(c["node-a"], c["node-b"])
    late_c = commit("node-c", params=STRONGER)
    _step10(Log([*subs, c["node-a"], c["node-b"], coin("node-a", base), late_c]), "node-c",
            "differ")
    # the twin: the same parameters carried by every commitment (honest fixture) pass
    run_through(Log([*subs, c["node-a"], c["node-b"], c["node-c"]]), 10)


def test_commitment_carrying_params_it_was_not_made_with_fails_step_10(
        honest: dict[str, Any]) -> None:
    """node-b's bits were committed for PARAMS but its entry carries STRONGER for everyone
    (the parameters pass; the commitment does not decode to their bit count)."""
    c, subs = honest["commits"], honest["subs"]
    items = [*subs, *(commit_entry(n, c[n].commitment, carried=STRONGER) for n in NODES)]
    _step10(Log(items), "node-a", "noise commitment")


@pytest.mark.parametrize("junk", [
    {}, {"summands": 34}, {**PARAMS.to_json_obj(), "extra": 1},
    {**PARAMS.to_json_obj(), "summands": 34.0}, {**PARAMS.to_json_obj(), "entries": True},
])
def test_commitment_carrying_undecodable_params_fails_step_10(
        honest: dict[str, Any], junk: dict[str, Any]) -> None:
    c, subs = honest["commits"], honest["subs"]
    bad_a = commit_entry("node-a", c["node-a"].commitment, carried=junk)
    _step10(Log([*subs, bad_a, c["node-b"], c["node-c"]]), "node-a", "noise params")


_GOOD_OBJ = PARAMS.to_json_obj()


@pytest.mark.parametrize(("obj", "why"), [
    ({k: v for k, v in _GOOD_OBJ.items() if k != "uniform_bits"}, "missing key"),
    ({**_GOOD_OBJ, "delta": 1}, "extra key"),
    ({**_GOOD_OBJ, "summands": True}, "bool"),
    ({**_GOOD_OBJ, "entries": 1.0}, "float"),
    ({**_GOOD_OBJ, "summands": "34"}, "string"),
    ({**_GOOD_OBJ, "summands": -1}, "negative"),
    ({**_GOOD_OBJ, "uniform_bits": -1}, "negative uniform bits"),
    ({**_GOOD_OBJ, "entries": 0}, "zero entries"),
    ({**_GOOD_OBJ, "uniform_bits": 101}, "uniform bits above 100"),
    ({**_GOOD_OBJ, "threshold": _GOOD_OBJ["n_nodes"] + 1}, "threshold above N"),
    ({**_GOOD_OBJ, "summand_bits": 200}, "share beyond 2^120"),
    ({**_GOOD_OBJ, "summands": None}, "null"),
    ([_GOOD_OBJ], "not an object"),
    (None, "not an object"),
])
def test_noise_params_from_json_obj_rejects(obj: Any, why: str) -> None:
    with pytest.raises(MalformedError):
        noise.NoiseParams.from_json_obj(obj)


def test_noise_params_from_json_obj_accepts_its_inverse() -> None:
    import json

    assert noise.NoiseParams.from_json_obj(PARAMS.to_json_obj()) == PARAMS
    assert noise.NoiseParams.from_json_obj(json.loads(json.dumps(PARAMS.to_json_obj()))) \
        == PARAMS
    for p in (STRONGER, WEAK, noise.NoiseParams(1, 1, 7, 3, 5, 0)):
        assert noise.NoiseParams.from_json_obj(p.to_json_obj()) == p


def test_check_noise_params_bounds_its_own_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DP mean over ``age in [0, 120]`` has wire sensitivities of a few hundred quanta
    (calibration.quanta; 7,864,320 integer units before quantization).  The querier's
    calibration picks ``Delta = 2^m`` with at most 64 shifts; a hostile querier (or compute
    node, or log) sending ``uniform_bits = 0`` must be refused within bounded work, not after
    evaluating one Renyi bound per shift up to the sensitivity (on every party: ledger,
    nodes, verifier)."""
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["age"],
                            "bounds": {"age": [0, 120]},
                            "privacy": {"mechanism": "zcdp", "rho": 0.5}})
    sens = flow.noise_sensitivities(spec)
    assert max(sens) > flow.MAX_NOISE_SHIFT  # uniform_bits = 0 is beyond the shift limit
    hostile = noise.NoiseParams(3, 3, len(sens), 34, 1, 0)
    calls = 0
    real = noise.rho_for_shift

    def counted(*args: Any) -> tuple[float, float]:
        nonlocal calls
        calls += 1
        if calls > 10_000:
            raise AssertionError("more than 10,000 shifts evaluated for one check")
        return real(*args)

    monkeypatch.setattr(noise, "rho_for_shift", counted)
    with pytest.raises((MalformedError, PolicyError)):
        flow.check_noise_params(spec, SETUP, hostile)


def test_noise_too_large_for_the_one_number_decryption_is_refused() -> None:
    """A DP entry is decrypted as one number, so the noise shares add to its discrete log.
    The adversary: a querier choosing noise far larger than calibration gives -- private
    enough (the bound only asks for enough), but every decryption would take seconds to
    minutes per entry (2^42 and up) or fail.  Refused at the one rule (compute nodes, the
    ledger, step 10); the calibrated parameters and a large but bounded choice pass."""
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["bmi"],
                            "bounds": {"bmi": [0, 50]},
                            "privacy": {"mechanism": "zcdp", "rho": 1}})
    huge = noise.NoiseParams(n_nodes=len(NODES), threshold=len(NODES), entries=2,
                             summands=152, summand_bits=1, uniform_bits=34)
    assert (len(NODES) * huge.share_max + calibration.dlog_bound(spec)).bit_length() \
        > calibration.MAX_DP_DLOG_BITS
    with pytest.raises(MalformedError, match="discrete log is too slow"):
        flow.check_noise_params(spec, SETUP, huge)
    flow.check_noise_params(spec, SETUP, flow.noise_plan(spec, SETUP))  # the calibration
    bounded = replace(huge, uniform_bits=24)  # much more noise than needed, still decryptable
    flow.check_noise_params(spec, SETUP, bounded)
