"""A valid, signed event sequence of one query (shared by the state-machine tests; no tests)."""

from __future__ import annotations

from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E
from statledger.protocol.calibration import wire_layout
from statledger.protocol.consortium import AdmissionRule, Genesis, Member, SignedGenesis
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Roster

KEYS = {n: SigningKey.from_bytes(bytes([i + 40]) * 32) for i, n in enumerate(
    ["node-a", "node-b", "prov-1", "prov-2", "prov-3", "prov-4", "researcher", "ledger"])}
COMPUTE = ("node-a", "node-b")
PROVIDERS = ("prov-1", "prov-2", "prov-3")
ROSTER = Roster(COMPUTE, PROVIDERS + ("prov-4",), ("researcher",))


#: The consortium of ``ROSTER`` (prov-4 is not a founder: a membership change admits it).
FOUNDERS = {"ledger": "ledger", **dict.fromkeys(COMPUTE, "compute"),
            **dict.fromkeys(PROVIDERS, "provider"), "researcher": "querier"}


def vk(who: str) -> str:
    return KEYS[who].public_key().to_bytes().hex()


def signed_genesis() -> SignedGenesis:
    """The founders' consortium, signed by all; changes need both compute nodes."""
    members = tuple(Member(p, r, vk(p)) for p, r in FOUNDERS.items())
    signed = SignedGenesis(Genesis("state machine consortium", "statledger.test/sm", members,
                                   1, AdmissionRule(2, ("compute",))))
    for p in FOUNDERS:
        signed = signed.sign(p, KEYS[p])
    return signed


#: The noise parameters every noise commitment carries (the state machine does not check
#: them: ``flow.check_noise_params`` does, at step 10 and on the ledger).
NOISE_PARAMS = {"n_nodes": 2, "threshold": 2, "entries": 2, "summands": 34, "summand_bits": 1,
                "uniform_bits": 0}


def _pt(k: int) -> str:
    return base_mul(Scalar(k)).to_bytes().hex()


def make_spec(dp: bool, min_providers: int = 2) -> QuerySpec:
    obj = {"version": 1, "statistic": "mean", "columns": ["age"], "bounds": {"age": [0, 120]},
           "min_providers": min_providers}
    if dp:
        obj["privacy"] = {"mechanism": "zcdp", "rho": 0.5}
    else:
        obj["min_cell_size"] = 1  # no PET gates: these logs test the phases, not suppression
    return QuerySpec.parse(obj)


def sign(e: E.Entry, who: str) -> E.Entry:
    return E.sign(e, KEYS[who])


def events(dp: bool = True, providers: tuple[str, ...] = PROVIDERS,
           min_providers: int = 2) -> dict[str, E.Entry]:
    """Named events; aggregate lists indices as in the canonical order of ``order()``."""
    spec = make_spec(dp, min_providers)
    q = spec.query_id_for("researcher")
    ev: dict[str, E.Entry] = {"query": sign(E.QueryEntry.for_spec(spec, "researcher"),
                                            "researcher")}
    for p in providers:
        ev[f"sub:{p}"] = sign(E.SubmissionEntry(q, p, "00" + p.encode().hex()), p)
    if dp:
        for n in COMPUTE:
            ev[f"commit:{n}"] = sign(E.NoiseCommitEntry(q, n, "11" + n.encode().hex(),
                                                          NOISE_PARAMS), n)
        for k, n in enumerate(COMPUTE):
            ev[f"coin:{n}"] = sign(E.NoiseCoinEntry(q, n, _pt(20 + k), "cd" * 64), n)
    n_sub = len(providers)
    n_noise = len(COMPUTE) if dp else 0  # the aggregate lists the commitments
    ev["aggregate"] = sign(E.AggregateEntry(
        q, tuple(range(1, 1 + n_sub)), tuple(range(1 + n_sub, 1 + n_sub + n_noise)),
        (_pt(2) + _pt(3),)), "researcher")
    # a DP query's decryption has one share per entry (flow.decryption_targets), an exact
    # one a share per aggregate ciphertext (here: 1)
    n_shares = len(wire_layout(spec)) if dp else 1
    for i, n in enumerate(COMPUTE):
        ev[f"dec:{n}"] = sign(E.DecryptionEntry(q, n, (_pt(10 + i),) * n_shares, "cd" * 64), n)
    res = sign(E.ResultEntry.for_totals(q, [1, 2], {"mean": 0.5}, COMPUTE), "researcher")
    ev["result"] = res
    assert isinstance(res, E.ResultEntry)
    for p in providers:
        ev[f"end:{p}"] = sign(E.EndorsementEntry(q, p, E.result_digest(res)), p)
    return ev


def order(ev: dict[str, E.Entry]) -> list[str]:
    """The canonical valid order (dict insertion order)."""
    return list(ev)


#: The documented partial order (docs/entries.md): query first; submissions, commitments
#: and coin shares before the aggregate; every commitment before every coin share (the first
#: coin share closes the noise set); then aggregate < dec < result < end.
_BEFORE = {("sub", "aggregate"), ("commit", "coin"), ("coin", "aggregate"),
           ("aggregate", "dec"), ("dec", "result"), ("result", "end")}


def _closure() -> set[tuple[str, str]]:
    kinds = ["query", "sub", "commit", "coin", "aggregate", "dec", "result", "end"]
    rel = set(_BEFORE) | {("query", k) for k in kinds if k != "query"}
    while True:
        more = {(a, d) for a, b in rel for c, d in rel if b == c} - rel
        if not more:
            return rel
        rel |= more


_MUST_PRECEDE = _closure()


def respects_partial_order(names: list[str]) -> bool:
    """Whether ``names`` is a linear extension of the documented partial order."""
    kinds = [n.split(":")[0] for n in names]
    if kinds.count("query") != 1 or kinds[0] != "query":
        return False
    return not any((kinds[j], kinds[i]) in _MUST_PRECEDE
                   for i in range(len(kinds)) for j in range(i + 1, len(kinds)))
