"""protocol/dkg.py: GJKR-style DKG on a public log (accept tests + reject twins).  docs/dkg.md."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest

from statledger.proofs.dlog import discrete_log
from statledger.proofs.elgamal import encode_message, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import FIELD, ORDER, G, Point, Scalar, base_mul
from statledger.proofs.group import H as RANGE_H
from statledger.proofs.sigma import DLEQProof, prove_dleq
from statledger.protocol import dkg
from statledger.protocol.dkg import (
    Deal,
    DealSecret,
    Disclosure,
    DkgIncomplete,
    DkgParams,
    DkgResult,
    EncryptedShare,
    KeyCommit,
    KeyCommitProof,
    ShareProof,
    combine,
    deal,
    derive,
    disclose,
    disclosed_share,
    key_commit,
    lagrange_at_zero,
    node_secret,
    open_share,
    pedersen_h,
    qualified_dealers,
    verify_deal,
    verify_key_commit,
)

CONSORTIUM = "c0" * 32
NODES = ("node-a", "node-b", "node-c", "node-d", "node-e")
PARAMS = DkgParams(CONSORTIUM, 7, NODES, 3)


# --------------------------------------------------------------------------------------------
# Independent reference arithmetic (plain ints and fractions mod n)
# --------------------------------------------------------------------------------------------


def poly_at(coeffs: tuple[Scalar, ...], j: int) -> int:
    total = 0
    for k, c in enumerate(coeffs):
        total += int(c) * j**k
    return total % ORDER


def frac_mod(f: Fraction) -> int:
    return f.numerator * pow(f.denominator, -1, ORDER) % ORDER


def lagrange_reference(points: list[int]) -> list[int]:
    out = []
    for j in points:
        f = Fraction(1)
        for m in points:
            if m != j:
                f *= Fraction(m, m - j)
        out.append(frac_mod(f))
    return out


# --------------------------------------------------------------------------------------------
# A cluster of nodes running the DKG
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    params: DkgParams
    x: dict[str, Scalar]
    X: dict[str, Point]
    deals: list[Deal]
    secrets: dict[str, DealSecret]
    kcs: list[KeyCommit]

    def deal_of(self, dealer: str) -> Deal:
        return next(d for d in self.deals if d.dealer == dealer)

    def kc_of(self, dealer: str) -> KeyCommit:
        return next(k for k in self.kcs if k.dealer == dealer)

    def disclosure(self, dealer: str, recipient: str) -> Disclosure:
        return disclose(self.params, self.deal_of(dealer), recipient, self.x[recipient],
                        self.X[recipient])

    def derive(self, complaints: list[Disclosure] | None = None,
               kcs: list[KeyCommit] | None = None,
               disclosures: list[Disclosure] | None = None,
               deals: list[Deal] | None = None) -> DkgResult:
        return derive(self.params, self.X, self.deals if deals is None else deals,
                      complaints or [], self.kcs if kcs is None else kcs, disclosures or [])

    def secrets_of(self, result: DkgResult) -> dict[str, Scalar]:
        return {n: node_secret(self.params, result, n, self.x[n], self.deals)
                for n in self.params.nodes}

    def expected_key(self, qual: tuple[str, ...]) -> int:
        return sum(int(self.secrets[i].a[0]) for i in qual) % ORDER


def make_run(params: DkgParams = PARAMS) -> Run:
    keys = {n: keygen() for n in params.nodes}
    x = {n: k for n, (k, _) in keys.items()}
    X = {n: K for n, (_, K) in keys.items()}
    deals, secs = [], {}
    for n in params.nodes:
        d, s = deal(params, n, X)
        deals.append(d)
        secs[n] = s
    kcs = [key_commit(params, d, secs[d.dealer]) for d in deals]
    return Run(params, x, X, deals, secs, kcs)


@pytest.fixture(scope="module")
def run() -> Run:
    return make_run()


@pytest.fixture(scope="module")
def honest(run: Run) -> DkgResult:
    return run.derive()


def forge_share(params: DkgParams, dealer: str, recipient: str, X: Point, plain: bytes,
                R: Point | None = None, r: Scalar | None = None) -> EncryptedShare:
    """A share with a *valid* proof of knowledge of r but any plaintext (a cheating dealer)."""
    r = Scalar.random() if r is None else r
    R = base_mul(r) if R is None else R
    ctx = params.context()
    ct = dkg._xor(plain, dkg._pad(ctx, dealer, recipient, R, r * X))
    t = dkg._share_transcript(ctx, dealer, recipient, X, R, ct)
    k = Scalar.random()
    t.append_point(b"U", base_mul(k))
    c = t.challenge_scalar(b"c")
    return EncryptedShare(R, ct, ShareProof(c, k + c * r))


def with_share(d: Deal, j: int, share: EncryptedShare) -> Deal:
    shares = list(d.shares)
    shares[j - 1] = share
    return replace(d, shares=tuple(shares))


def check_key(run: Run, result: DkgResult) -> dict[str, Scalar]:
    """Y is the sum of the QUAL a_i0 G; every Y_j = x_j G; any T shares give x with xG = Y."""
    params = run.params
    assert result.collective_key == base_mul(Scalar(run.expected_key(result.qual)))
    xs = run.secrets_of(result)
    for n in params.nodes:
        assert base_mul(xs[n]) == result.verification_keys[n]
        j = params.point_of(n)
        assert int(xs[n]) == sum(poly_at(run.secrets[i].a, j) for i in result.qual) % ORDER
    return xs


# --------------------------------------------------------------------------------------------
# Parameters and generators
# --------------------------------------------------------------------------------------------


def test_params_accept_and_context_binds_every_field() -> None:
    assert PARAMS.point_of("node-a") == 1 and PARAMS.point_of("node-e") == 5
    variants = [
        DkgParams("c1" * 32, 7, NODES, 3),
        DkgParams(CONSORTIUM, 8, NODES, 3),
        DkgParams(CONSORTIUM, 7, NODES[:4], 3),
        DkgParams(CONSORTIUM, 7, NODES, 2),
        DkgParams(CONSORTIUM, 7, ("node-a", "node-b", "node-c", "node-d", "node-f"), 3),
    ]
    contexts = {p.context() for p in [PARAMS, *variants]}
    assert len(contexts) == len(variants) + 1
    # length prefixes: ("a", "bc") and ("ab", "c") do not collide
    assert DkgParams(CONSORTIUM, 0, ("a", "bc"), 1).context() != \
        DkgParams(CONSORTIUM, 0, ("ab", "c"), 1).context()


@pytest.mark.parametrize("kwargs", [
    {"consortium": "C0" * 32}, {"consortium": "c0" * 31}, {"consortium": 5},
    {"epoch": -1}, {"epoch": True}, {"epoch": 2**64},
    {"nodes": ("node-b", "node-a")}, {"nodes": ("node-a", "node-a")}, {"nodes": ()},
    {"nodes": ["node-a"]}, {"nodes": ("bad id",)},
    {"threshold": 0}, {"threshold": 6}, {"threshold": True},
])
def test_params_reject(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"consortium": CONSORTIUM, "epoch": 7, "nodes": NODES,
                               "threshold": 3}
    base.update(kwargs)
    with pytest.raises(MalformedError):
        DkgParams(**base)  # type: ignore[arg-type]


def test_point_of_unknown_node() -> None:
    with pytest.raises(MalformedError):
        PARAMS.point_of("node-z")


def test_pedersen_h_is_an_independent_cached_generator() -> None:
    H = pedersen_h()
    assert H is pedersen_h()
    assert not H.is_identity() and H != G and H != RANGE_H
    from statledger.proofs.group import GENERATOR_DST, hash_to_curve
    assert H == hash_to_curve(b"statledger/dkg/v1/pedersen-H", GENERATOR_DST)


# --------------------------------------------------------------------------------------------
# Lagrange and polynomial arithmetic against independent computations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("points", [[1], [1, 2], [1, 3, 5], [2, 4, 5], [5, 1, 3, 2],
                                    [7, 100, 2**200, ORDER - 1]])
def test_lagrange_matches_fractions(points: list[int]) -> None:
    assert [int(v) for v in lagrange_at_zero(points)] == lagrange_reference(points)


def test_lagrange_interpolates_random_polynomial_and_rejects_too_few_points() -> None:
    rng = random.Random(5)
    coeffs = [rng.randrange(ORDER) for _ in range(4)]

    def f(z: int) -> int:
        total = 0
        for k, c in enumerate(coeffs):
            total += c * z**k
        return total % ORDER

    for pts in itertools.combinations(range(1, 8), 4):
        lam = lagrange_at_zero(list(pts))
        assert sum(int(v) * f(p) for v, p in zip(lam, pts, strict=True)) % ORDER == coeffs[0]
    lam = lagrange_at_zero([1, 2, 3])  # degree 3 needs 4 points
    assert sum(int(v) * f(p) for v, p in zip(lam, [1, 2, 3], strict=True)) % ORDER != coeffs[0]


@pytest.mark.parametrize("points", [[], [1, 1], [0, 1], [ORDER], [-1, 2], [True, 2], [1.0]])
def test_lagrange_rejects(points: list[object]) -> None:
    with pytest.raises(MalformedError):
        lagrange_at_zero(points)  # type: ignore[arg-type]


def test_interpolate_recovers_coefficients() -> None:
    rng = random.Random(9)
    coeffs = [rng.randrange(ORDER) for _ in range(5)]
    xs = [3, 1, 9, 4, 7]
    ys = [sum(c * x**k for k, c in enumerate(coeffs)) % ORDER for x in xs]
    assert dkg._interpolate(xs, ys) == coeffs
    assert dkg._interpolate(xs[:4], ys[:4]) != coeffs[:4]


def test_combine_rejects_mismatched_lengths() -> None:
    with pytest.raises(MalformedError):
        combine([1, 2], [G])


def test_shares_are_polynomial_values_and_py_ecc_agrees(run: Run) -> None:
    d = run.deal_of("node-c")
    sec = run.secrets["node-c"]
    for n in NODES:
        s, s2 = open_share(PARAMS, d, n, run.x[n])
        j = PARAMS.point_of(n)
        assert int(s) == poly_at(sec.a, j) and int(s2) == poly_at(sec.b, j)
    # one point against an independent implementation of secp256k1
    from py_ecc.secp256k1 import secp256k1 as ref

    s, _ = open_share(PARAMS, d, "node-b", run.x["node-b"])
    assert base_mul(s).to_affine() == ref.multiply(ref.G, int(s))


# --------------------------------------------------------------------------------------------
# Honest run
# --------------------------------------------------------------------------------------------


def test_honest_dkg_n5_t3(run: Run, honest: DkgResult) -> None:
    assert honest.qual == NODES
    assert honest.disqualified == {} and honest.ignored == {} and honest.reconstructed == ()
    assert qualified_dealers(PARAMS, run.X, run.deals, []) == NODES
    xs = check_key(run, honest)
    x_expected = run.expected_key(NODES)
    for subset in itertools.combinations(NODES, 3):
        pts = [PARAMS.point_of(n) for n in subset]
        lam = lagrange_at_zero(pts)
        x = sum((v * xs[n] for v, n in zip(lam, subset, strict=True)), Scalar(0))
        assert int(x) == x_expected
        assert base_mul(x) == honest.collective_key
        assert combine(pts, [honest.verification_keys[n] for n in subset]) == \
            honest.collective_key
    for pair in itertools.combinations(NODES, 2):  # T - 1 shares do not give x
        pts = [PARAMS.point_of(n) for n in pair]
        x = sum((v * xs[n] for v, n in zip(lagrange_at_zero(pts), pair, strict=True)),
                Scalar(0))
        assert int(x) != x_expected
        assert combine(pts, [honest.verification_keys[n] for n in pair]) != \
            honest.collective_key


def test_derive_is_order_independent(run: Run, honest: DkgResult) -> None:
    comp = [run.disclosure("node-a", "node-b")]  # a false complaint
    rng = random.Random(1)
    deals, kcs = list(run.deals), list(run.kcs)
    base = run.derive(complaints=comp)
    for _ in range(3):
        rng.shuffle(deals)
        rng.shuffle(kcs)
        assert run.derive(complaints=comp, deals=deals, kcs=kcs) == base


def test_node_secret_rejects_other_deals(run: Run, honest: DkgResult) -> None:
    other = make_run()
    with pytest.raises(VerificationError):
        node_secret(PARAMS, honest, "node-a", run.x["node-a"], other.deals)
    with pytest.raises(MalformedError):
        node_secret(PARAMS, honest, "node-a", run.x["node-a"], run.deals[:2])
    # a wrong transport key cannot open the shares
    with pytest.raises(VerificationError):
        node_secret(PARAMS, honest, "node-a", run.x["node-b"], run.deals)
    # a result that does not belong to these deals: x_j G != Y_j
    with pytest.raises(VerificationError, match="verification key") as ei:
        node_secret(PARAMS, replace(honest, qual=NODES[:4]), "node-a", run.x["node-a"],
                    run.deals)
    assert ei.value.party == "node-a"


@pytest.mark.parametrize("n,t", [(1, 1), (3, 2), (4, 4)])
def test_other_sizes(n: int, t: int) -> None:
    params = DkgParams(CONSORTIUM, 0, NODES[:n], t)
    r = make_run(params)
    res = r.derive()
    check_key(r, res)


# --------------------------------------------------------------------------------------------
# Threshold ElGamal decryption end to end
# --------------------------------------------------------------------------------------------


def test_threshold_decryption_with_any_t_shares(run: Run, honest: DkgResult) -> None:
    xs = run.secrets_of(honest)
    m = 4242
    ct = encrypt(honest.collective_key, m)
    D = {n: xs[n] * ct.C1 for n in NODES}
    for subset in itertools.combinations(NODES, 3):
        pts = [PARAMS.point_of(n) for n in subset]
        M = ct.C2 - combine(pts, [D[n] for n in subset])
        assert M == encode_message(m)
        assert discrete_log(M, 10_000, table_size=4096) == m
    # all N shares (Lagrange over 5 points) work too; T - 1 do not
    M_all = ct.C2 - combine([1, 2, 3, 4, 5], [D[n] for n in NODES])
    assert M_all == encode_message(m)
    for pair in itertools.combinations(NODES, 2):
        pts = [PARAMS.point_of(n) for n in pair]
        assert ct.C2 - combine(pts, [D[n] for n in pair]) != encode_message(m)
    # the n-of-n plain sum of shares is *not* the threshold key's decryption
    total = D["node-a"]
    for n in NODES[1:]:
        total = total + D[n]
    assert ct.C2 - total != encode_message(m)


# --------------------------------------------------------------------------------------------
# Cheating dealers, complaints
# --------------------------------------------------------------------------------------------


def bad_share_deal(run: Run, dealer: str, victim: str, plain: bytes | None = None) -> Deal:
    d = run.deal_of(dealer)
    j = PARAMS.point_of(victim)
    sec = run.secrets[dealer]
    if plain is None:  # s + 1: a wrong but canonical share
        plain = Scalar((poly_at(sec.a, j) + 1) % ORDER).to_bytes() + \
            Scalar(poly_at(sec.b, j)).to_bytes()
    return with_share(d, j, forge_share(PARAMS, dealer, victim, run.X[victim], plain))


def replaced_deal(run: Run, d: Deal) -> list[Deal]:
    return [d if x.dealer == d.dealer else x for x in run.deals]


@pytest.mark.parametrize("plain", [None, ORDER.to_bytes(32, "big") + bytes(32),
                                   bytes(32) + (2**256 - 1).to_bytes(32, "big")])
def test_bad_share_justified_complaint_disqualifies(run: Run, plain: bytes | None) -> None:
    bad = bad_share_deal(run, "node-b", "node-d", plain)
    verify_deal(PARAMS, bad, run.X)  # publicly it looks fine: the proofs are valid
    for n in NODES:
        if n == "node-d":
            with pytest.raises(VerificationError, match="party node-b") as ei:
                open_share(PARAMS, bad, n, run.x[n])
            assert ei.value.step == "dkg" and ei.value.party == "node-b"
        else:
            open_share(PARAMS, bad, n, run.x[n])
    complaint = disclose(PARAMS, bad, "node-d", run.x["node-d"], run.X["node-d"])
    assert disclosed_share(PARAMS, bad, complaint, run.X["node-d"]) is None
    deals = replaced_deal(run, bad)
    res = run.derive(complaints=[complaint], deals=deals)
    assert "node-b" not in res.qual and res.qual == ("node-a", "node-c", "node-d", "node-e")
    assert "justified complaint by node-d" in res.disqualified["node-b"]
    r2 = replace(run, deals=deals)
    check_key(r2, res)
    assert res.collective_key != run.derive().collective_key


def test_bad_share_without_complaint_leaves_victim_stuck(run: Run) -> None:
    """Twin: with no complaint the dealer stays in QUAL and the victim cannot get its share."""
    bad = bad_share_deal(run, "node-b", "node-d")
    deals = replaced_deal(run, bad)
    res = run.derive(deals=deals)
    assert "node-b" in res.qual
    with pytest.raises(VerificationError, match="party node-b"):
        node_secret(PARAMS, res, "node-d", run.x["node-d"], deals)
    node_secret(PARAMS, res, "node-a", run.x["node-a"], deals)


def test_bad_commitment_is_caught_by_every_recipient(run: Run) -> None:
    d = run.deal_of("node-c")
    C = list(d.commitments)
    u = Scalar.random()
    C[1] = base_mul(u)
    bad = replace(d, commitments=tuple(C))
    for n in NODES:
        with pytest.raises(VerificationError, match="Pedersen"):
            open_share(PARAMS, bad, n, run.x[n])
    deals = replaced_deal(run, bad)
    complaint = disclose(PARAMS, bad, "node-a", run.x["node-a"], run.X["node-a"])
    res = run.derive(complaints=[complaint], deals=deals)
    assert res.qual == ("node-a", "node-b", "node-d", "node-e")
    assert "node-c" in res.disqualified
    check_key(replace(run, deals=deals), res)
    # twin: no complaint -> node-c stays (it can even prove its A_k: it knows C_1 = uG) and
    # every node is stuck
    sec = run.secrets["node-c"]
    kc = key_commit(PARAMS, bad, DealSecret((sec.a[0], u, sec.a[2]),
                                            (sec.b[0], Scalar(0), sec.b[2])))
    verify_key_commit(PARAMS, bad, kc)
    kcs = [kc if k.dealer == "node-c" else k for k in run.kcs]
    res2 = run.derive(deals=deals, kcs=kcs)
    assert "node-c" in res2.qual
    with pytest.raises(VerificationError, match="party node-c"):
        node_secret(PARAMS, res2, "node-a", run.x["node-a"], deals)


def test_false_complaint_is_ignored(run: Run, honest: DkgResult) -> None:
    complaint = run.disclosure("node-a", "node-e")  # node-e lies about node-a's good share
    res = run.derive(complaints=[complaint])
    assert res.qual == NODES and res.disqualified == {}
    assert "false complaint about node-a" in res.ignored["node-e"]
    assert res.collective_key == honest.collective_key
    assert res.verification_keys == honest.verification_keys


def test_complaint_with_bad_dleq_is_ignored(run: Run) -> None:
    bad = bad_share_deal(run, "node-b", "node-d")
    deals = replaced_deal(run, bad)
    good = disclose(PARAMS, bad, "node-d", run.x["node-d"], run.X["node-d"])
    forged = [
        replace(good, proof=DLEQProof(good.proof.c, good.proof.s + Scalar(1))),
        replace(good, K=good.K + G),
        replace(good, proof=DLEQProof(Scalar.random(), Scalar.random())),
    ]
    for c in forged:
        with pytest.raises(VerificationError, match="party node-d"):
            disclosed_share(PARAMS, bad, c, run.X["node-d"])
        res = run.derive(complaints=[c], deals=deals)
        assert "node-b" in res.qual
        assert "ignored" in res.ignored["node-d"]
    # twin: the genuine complaint disqualifies
    assert "node-b" not in run.derive(complaints=[good], deals=deals).qual
    # someone else cannot complain in node-d's name (the proof is against X_d)
    other = disclose(PARAMS, bad, "node-a", run.x["node-a"], run.X["node-a"])
    impostor = replace(other, recipient="node-d")
    assert "node-b" in run.derive(complaints=[impostor], deals=deals).qual


def test_complaints_that_cannot_count_are_ignored(run: Run) -> None:
    c = run.disclosure("node-a", "node-b")
    by_outsider = replace(c, recipient="outsider")
    no_deal = replace(c, dealer="node-e")
    deals = [d for d in run.deals if d.dealer != "node-e"]
    kcs = [k for k in run.kcs if k.dealer != "node-e"]
    res = run.derive(complaints=[by_outsider, no_deal], deals=deals, kcs=kcs)
    assert res.qual == NODES[:4]
    assert "not a node" in res.ignored["outsider"]
    assert "no deal" in res.ignored["node-b"]


def test_duplicate_and_extra_complaints_are_harmless(run: Run) -> None:
    bad = bad_share_deal(run, "node-b", "node-d")
    deals = replaced_deal(run, bad)
    good = disclose(PARAMS, bad, "node-d", run.x["node-d"], run.X["node-d"])
    res = run.derive(complaints=[good, good, run.disclosure("node-a", "node-c")], deals=deals)
    assert "node-b" not in res.qual and "node-a" in res.qual


# --------------------------------------------------------------------------------------------
# Share-randomness proof: no Diffie--Hellman oracle through complaints
# --------------------------------------------------------------------------------------------


def test_copied_R_is_refused_not_disclosed(run: Run) -> None:
    """A dealer reusing node-a's R for node-d (to learn x_d * R_ad from a complaint) cannot
    give a valid proof: node-d refuses to disclose and derive disqualifies the dealer."""
    victim = "node-d"
    j = PARAMS.point_of(victim)
    R_honest = run.deal_of("node-a").shares[j - 1].R
    d = run.deal_of("node-b")
    for R in (R_honest, R_honest + G, Scalar(3) * R_honest):
        proof_from_honest = run.deal_of("node-a").shares[j - 1].proof
        for share in (EncryptedShare(R, bytes(64), proof_from_honest),
                      EncryptedShare(R, bytes(64), ShareProof(Scalar.random(), Scalar.random()))):
            bad = with_share(d, j, share)
            with pytest.raises(VerificationError, match="share randomness"):
                open_share(PARAMS, bad, victim, run.x[victim])
            with pytest.raises(VerificationError, match="not disclosing"):
                disclose(PARAMS, bad, victim, run.x[victim], run.X[victim])
            with pytest.raises(VerificationError, match="party node-b"):
                verify_deal(PARAMS, bad, run.X)
            res = run.derive(deals=replaced_deal(run, bad))
            assert "node-b" not in res.qual
            assert "share randomness for node-d" in res.disqualified["node-b"]
    verify_deal(PARAMS, d, run.X)  # twin: the genuine deal passes


def test_identity_R_is_rejected(run: Run) -> None:
    d = run.deal_of("node-b")
    bad = with_share(d, 1, EncryptedShare(Point.identity(), bytes(64),
                                          ShareProof(Scalar(1), Scalar(1))))
    with pytest.raises(VerificationError):
        verify_deal(PARAMS, bad, run.X)
    with pytest.raises(VerificationError):
        disclose(PARAMS, bad, "node-a", run.x["node-a"], run.X["node-a"])


# --------------------------------------------------------------------------------------------
# Rules 1 and 3
# --------------------------------------------------------------------------------------------


def test_second_deal_and_non_node_deal_raise(run: Run) -> None:
    again, _ = deal(PARAMS, "node-c", run.X)
    with pytest.raises(VerificationError, match="second deal") as ei:
        run.derive(deals=[*run.deals, again])
    assert ei.value.party == "node-c" and ei.value.step == "dkg"
    other = DkgParams(CONSORTIUM, 7, (*NODES, "node-z"), 3)
    X = dict(run.X)
    X["node-z"] = keygen()[1]
    outsider, _ = deal(other, "node-z", X)
    with pytest.raises(VerificationError, match="not a node") as ei:
        run.derive(deals=[*run.deals, outsider])
    assert ei.value.party == "node-z"


def test_wrong_counts_raise(run: Run) -> None:
    d = run.deal_of("node-a")
    for bad in (replace(d, commitments=d.commitments[:2]),
                replace(d, commitments=(*d.commitments, G)),
                replace(d, shares=d.shares[:4]),
                replace(d, shares=(*d.shares, d.shares[0]))):
        with pytest.raises(VerificationError, match="rule 1") as ei:
            run.derive(deals=replaced_deal(run, bad))
        assert ei.value.party == "node-a"
        with pytest.raises(VerificationError, match="rule 1"):
            open_share(PARAMS, bad, "node-b", run.x["node-b"])


def test_missing_deal_is_left_out(run: Run) -> None:
    deals = [d for d in run.deals if d.dealer != "node-b"]
    res = run.derive(deals=deals)
    assert res.qual == ("node-a", "node-c", "node-d", "node-e")
    assert "key commitment of a dealer not in QUAL" in res.ignored["node-b"]
    check_key(replace(run, deals=deals), res)


def test_fewer_than_t_qualified_raises(run: Run) -> None:
    with pytest.raises(VerificationError, match="fewer than T qualified dealers") as ei:
        run.derive(deals=run.deals[:2])
    assert ei.value.step == "dkg"
    with pytest.raises(VerificationError, match="fewer than T qualified dealers"):
        qualified_dealers(PARAMS, run.X, run.deals[:2], [])
    # twin: exactly T deals is enough
    res = run.derive(deals=run.deals[:3])
    assert res.qual == NODES[:3]
    check_key(replace(run, deals=run.deals[:3]), res)
    # 4 deals, 2 of them disqualified -> 2 < T
    bad1 = bad_share_deal(run, "node-a", "node-d")
    bad2 = bad_share_deal(run, "node-b", "node-d")
    comps = [disclose(PARAMS, b, "node-d", run.x["node-d"], run.X["node-d"])
             for b in (bad1, bad2)]
    with pytest.raises(VerificationError, match="fewer than T qualified dealers"):
        run.derive(complaints=comps, deals=[bad1, bad2, *run.deals[2:4]])


# --------------------------------------------------------------------------------------------
# Phase 2: withheld or invalid key commitments are reconstructed, never dropped
# --------------------------------------------------------------------------------------------


def test_withheld_key_commit_is_reconstructed(run: Run, honest: DkgResult) -> None:
    kcs = [k for k in run.kcs if k.dealer != "node-c"]
    discs = [run.disclosure("node-c", n) for n in ("node-a", "node-d", "node-e")]
    res = run.derive(kcs=kcs, disclosures=discs)
    assert res.reconstructed == ("node-c",) and res.qual == NODES
    assert res.collective_key == honest.collective_key
    assert res.verification_keys == honest.verification_keys
    check_key(run, res)
    # more than T disclosures: same answer
    more = [run.disclosure("node-c", n) for n in NODES]
    assert run.derive(kcs=kcs, disclosures=more).collective_key == honest.collective_key


def test_withheld_key_commit_with_t_minus_1_disclosures_is_incomplete(run: Run) -> None:
    kcs = [k for k in run.kcs if k.dealer != "node-c"]
    discs = [run.disclosure("node-c", n) for n in ("node-a", "node-d")]
    with pytest.raises(DkgIncomplete, match="rule 4") as ei:
        run.derive(kcs=kcs, disclosures=discs)
    assert ei.value.party == "node-c" and ei.value.step == "dkg"
    assert isinstance(ei.value, VerificationError)
    # duplicates do not count twice
    with pytest.raises(DkgIncomplete):
        run.derive(kcs=kcs, disclosures=discs + discs)
    # a disclosure with a bad proof does not count
    forged = replace(run.disclosure("node-c", "node-b"), K=G)
    with pytest.raises(DkgIncomplete):
        run.derive(kcs=kcs, disclosures=[*discs, forged])
    # a good share revealed by a (false) phase-1 complaint counts
    comp = run.disclosure("node-c", "node-b")
    res = run.derive(complaints=[comp], kcs=kcs, disclosures=discs)
    assert res.reconstructed == ("node-c",)
    assert res.collective_key == run.derive().collective_key


@pytest.mark.parametrize("how", ["A0-replaced", "c-flipped", "z-flipped", "zb-flipped",
                                 "other-secret", "short"])
def test_invalid_key_commit_is_treated_as_missing(run: Run, honest: DkgResult, how: str) -> None:
    kc = run.kc_of("node-c")
    d = run.deal_of("node-c")
    T = PARAMS.threshold
    if how == "A0-replaced":  # another A_0 with a made-up proof
        bad = replace(kc, A=(base_mul(Scalar.random()), *kc.A[1:]),
                      proof=KeyCommitProof(Scalar.random(),
                                           tuple(Scalar.random() for _ in range(T)),
                                           tuple(Scalar.random() for _ in range(T))))
    elif how == "c-flipped":
        bad = replace(kc, proof=replace(kc.proof, c=Scalar(int(kc.proof.c) ^ 1)))
    elif how == "z-flipped":
        z = list(kc.proof.z)
        z[2] = Scalar(int(z[2]) ^ (1 << 100))
        bad = replace(kc, proof=replace(kc.proof, z=tuple(z)))
    elif how == "zb-flipped":
        zb = list(kc.proof.z_b)
        zb[0] = zb[0] + Scalar(1)
        bad = replace(kc, proof=replace(kc.proof, z_b=tuple(zb)))
    elif how == "other-secret":  # a self-consistent proof about a polynomial not in C
        _, other = deal(PARAMS, "node-c", run.X)
        bad = key_commit(PARAMS, d, other)
    else:
        bad = KeyCommit("node-c", kc.A[:2], KeyCommitProof(kc.proof.c, kc.proof.z[:2],
                                                           kc.proof.z_b[:2]))
    with pytest.raises(VerificationError, match="party node-c"):
        verify_key_commit(PARAMS, d, bad)
    kcs = [bad if k.dealer == "node-c" else k for k in run.kcs]
    discs = [run.disclosure("node-c", n) for n in ("node-b", "node-d", "node-e")]
    res = run.derive(kcs=kcs, disclosures=discs)
    assert res.reconstructed == ("node-c",)
    assert "key commitment rejected" in res.ignored["node-c"]
    assert res.collective_key == honest.collective_key
    with pytest.raises(DkgIncomplete, match="party node-c"):
        run.derive(kcs=kcs, disclosures=discs[:2])
    # twin: the genuine commitment next to the bad one is used
    res2 = run.derive(kcs=[*kcs, kc])
    assert res2.reconstructed == () and res2.collective_key == honest.collective_key


def test_unneeded_and_bad_phase2_disclosures_are_recorded(run: Run, honest: DkgResult) -> None:
    res = run.derive(disclosures=[run.disclosure("node-a", "node-b")])
    assert res.collective_key == honest.collective_key
    assert "not needed" in res.ignored["node-b"]
    # a bad share of a QUAL dealer that nobody complained about is not used
    bad = bad_share_deal(run, "node-b", "node-d")
    deals = replaced_deal(run, bad)
    kcs = [k for k in run.kcs if k.dealer != "node-b"]
    d_bad = disclose(PARAMS, bad, "node-d", run.x["node-d"], run.X["node-d"])
    others = [disclose(PARAMS, bad, n, run.x[n], run.X[n]) for n in ("node-a", "node-c")]
    with pytest.raises(DkgIncomplete):
        run.derive(deals=deals, kcs=kcs, disclosures=[d_bad, *others])
    extra = disclose(PARAMS, bad, "node-e", run.x["node-e"], run.X["node-e"])
    res = run.derive(deals=deals, kcs=kcs, disclosures=[d_bad, *others, extra])
    assert "not complained about" in res.ignored["node-d"]
    assert res.reconstructed == ("node-b",)


def test_key_commit_proof_moved_to_another_dealer_fails(run: Run) -> None:
    kc = run.kc_of("node-a")
    moved = replace(kc, dealer="node-b")
    with pytest.raises(VerificationError, match="party node-b"):
        verify_key_commit(PARAMS, run.deal_of("node-b"), moved)
    with pytest.raises(VerificationError, match="party node-b"):
        verify_key_commit(PARAMS, run.deal_of("node-a"), moved)
    verify_key_commit(PARAMS, run.deal_of("node-a"), kc)  # twin
    # even against a deal with the very same commitments under node-b's name (a copied
    # deal), the proof is bound to its dealer
    copied = replace(run.deal_of("node-a"), dealer="node-b")
    with pytest.raises(VerificationError, match="party node-b"):
        verify_key_commit(PARAMS, copied, moved)


def test_share_pad_binds_the_parameters(run: Run) -> None:
    """Defence in depth under the randomness proof: the key stream itself depends on the
    parameters, so a share decrypted under other parameters is garbage."""
    d = run.deal_of("node-a")
    j = PARAMS.point_of("node-b")
    K = run.x["node-b"] * d.shares[j - 1].R
    assert not isinstance(dkg._decrypt_check(PARAMS, d, j, K), str)
    for other in (DkgParams("c1" * 32, 7, NODES, 3), DkgParams(CONSORTIUM, 8, NODES, 3)):
        assert isinstance(dkg._decrypt_check(other, d, j, K), str)
    assert isinstance(dkg._decrypt_check(PARAMS, d, j, K + G), str)


# --------------------------------------------------------------------------------------------
# Context binding: a message replayed under other parameters fails
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("other", [
    DkgParams("c1" * 32, 7, NODES, 3),
    DkgParams(CONSORTIUM, 8, NODES, 3),
])
def test_replay_under_other_params_fails(run: Run, other: DkgParams) -> None:
    d = run.deal_of("node-a")
    assert Deal.from_bytes(d.to_bytes(), other) == d  # same shape: decodes...
    with pytest.raises(VerificationError, match="party node-a"):  # ...but does not verify
        verify_deal(other, d, run.X)
    with pytest.raises(VerificationError, match="party node-a"):
        open_share(other, d, "node-b", run.x["node-b"])
    with pytest.raises(VerificationError, match="party node-a"):
        verify_key_commit(other, d, run.kc_of("node-a"))
    # a disclosure proof made for PARAMS does not verify under other params
    d_o, _ = deal(other, "node-a", run.X)
    R = d_o.shares[1].R
    x_b, X_b = run.x["node-b"], run.X["node-b"]
    K = x_b * R
    for ctx_params, ok in ((PARAMS, False), (other, True)):
        proof = prove_dleq(x_b, X_b, R, K,
                           dkg._disclosure_context(ctx_params.context(), "node-a", "node-b"))
        disc = Disclosure("node-a", "node-b", K, proof)
        if ok:
            assert disclosed_share(other, d_o, disc, X_b) is not None
        else:
            with pytest.raises(VerificationError, match="party node-b"):
                disclosed_share(other, d_o, disc, X_b)
    # the replayed deal is disqualified in a run under other params
    others = [deal(other, n, run.X) for n in NODES[1:]]
    kcs = [key_commit(other, od, sec) for od, sec in others]
    res = derive(other, run.X, [d, *(od for od, _ in others)], [], kcs, [])
    assert "node-a" in res.disqualified and res.qual == NODES[1:]
    assert qualified_dealers(other, run.X, [d, *(od for od, _ in others)], []) == NODES[1:]


def test_replay_under_other_threshold_fails(run: Run) -> None:
    other = DkgParams(CONSORTIUM, 7, NODES, 2)
    d = run.deal_of("node-a")
    with pytest.raises(MalformedError, match="commitments"):
        Deal.from_bytes(d.to_bytes(), other)
    with pytest.raises(VerificationError, match="rule 1"):
        open_share(other, d, "node-b", run.x["node-b"])
    with pytest.raises(MalformedError):
        KeyCommit.from_bytes(run.kc_of("node-a").to_bytes(), other)


# --------------------------------------------------------------------------------------------
# Seeded dealing (a restarted dealer re-creates its deal)
# --------------------------------------------------------------------------------------------


def test_seeded_deal_is_deterministic(run: Run) -> None:
    seed = bytes(range(32))
    d1, s1 = deal(PARAMS, "node-a", run.X, seed=seed)
    d2, s2 = deal(PARAMS, "node-a", run.X, seed=seed)
    assert d1.to_bytes() == d2.to_bytes() and s1 == s2
    assert deal(PARAMS, "node-a", run.X, seed=seed[::-1])[0] != d1
    assert deal(PARAMS, "node-b", run.X, seed=seed)[0].commitments != d1.commitments
    other = DkgParams(CONSORTIUM, 8, NODES, 3)
    assert deal(other, "node-a", run.X, seed=seed)[1] != s1
    verify_deal(PARAMS, d1, run.X)
    assert deal(PARAMS, "node-a", run.X)[0] != deal(PARAMS, "node-a", run.X)[0]
    for bad in (bytes(31), "x" * 32):
        with pytest.raises(MalformedError):
            deal(PARAMS, "node-a", run.X, seed=bad)  # type: ignore[arg-type]


def test_deal_rejects_bad_inputs(run: Run) -> None:
    with pytest.raises(MalformedError):
        deal(PARAMS, "node-z", run.X)
    X = dict(run.X)
    del X["node-c"]
    with pytest.raises(MalformedError):
        deal(PARAMS, "node-a", X)
    X["node-c"] = Point.identity()
    with pytest.raises(MalformedError):
        deal(PARAMS, "node-a", X)
    with pytest.raises(MalformedError):
        derive(PARAMS, X, run.deals, [], run.kcs, [])
    with pytest.raises(MalformedError):
        disclose(PARAMS, run.deal_of("node-a"), "node-b", run.x["node-b"], run.X["node-c"])


def test_deal_secret_repr_hides_coefficients(run: Run) -> None:
    sec = run.secrets["node-a"]
    assert f"{int(sec.a[0]):064x}" not in repr(sec)


# --------------------------------------------------------------------------------------------
# Strict encodings: round trips and mechanical reject twins
# --------------------------------------------------------------------------------------------


def _roundtrip_cases(run: Run) -> list[tuple[str, bytes]]:
    return [("deal", run.deal_of("node-b").to_bytes()),
            ("disclosure", run.disclosure("node-b", "node-c").to_bytes()),
            ("key_commit", run.kc_of("node-b").to_bytes())]


def _decode(kind: str, data: bytes) -> object:
    if kind == "deal":
        return Deal.from_bytes(data, PARAMS)
    if kind == "disclosure":
        return Disclosure.from_bytes(data)
    return KeyCommit.from_bytes(data, PARAMS)


def _rejected(run: Run, kind: str, data: bytes) -> bool:
    """Decoding fails, or the decoded object fails the check it is subject to."""
    try:
        obj = _decode(kind, data)
    except MalformedError:
        return True
    try:
        if isinstance(obj, Deal):
            verify_deal(PARAMS, obj, run.X)
            for n in NODES:
                open_share(PARAMS, obj, n, run.x[n])
        elif isinstance(obj, Disclosure):
            if obj.recipient not in NODES or obj.dealer not in NODES:
                return True
            if disclosed_share(PARAMS, run.deal_of(obj.dealer), obj,
                               run.X[obj.recipient]) is None:
                return True
        else:
            assert isinstance(obj, KeyCommit)
            if obj.dealer not in NODES:
                return True
            verify_key_commit(PARAMS, run.deal_of(obj.dealer), obj)
    except VerificationError:
        return True
    return False


def test_roundtrip(run: Run) -> None:
    for kind, data in _roundtrip_cases(run):
        obj = _decode(kind, data)
        assert obj.to_bytes() == data  # type: ignore[attr-defined]
        assert not _rejected(run, kind, data)
    assert len(run.deal_of("node-b").to_bytes()) == 1 + 7 + 2 + 3 * 33 + 2 + 5 * 161
    assert len(run.disclosure("node-b", "node-c").to_bytes()) == 1 + 7 + 7 + 33 + 64
    assert len(run.kc_of("node-b").to_bytes()) == 1 + 7 + 2 + 3 * 33 + 32 * 7


def test_every_bit_flip_is_rejected(run: Run) -> None:
    for kind, data in _roundtrip_cases(run):
        for i in range(len(data)):
            flipped = bytearray(data)
            flipped[i] ^= 1 << (i % 8)
            assert _rejected(run, kind, bytes(flipped)), (kind, i)


def test_truncation_garbage_and_wrong_type_are_malformed(run: Run) -> None:
    for kind, data in _roundtrip_cases(run):
        for n in range(len(data)):
            with pytest.raises(MalformedError):
                _decode(kind, data[:n])
        for junk in (data + b"\x00", data + data, b"\x00" + data, data[:1] + b"\x00" + data[1:]):
            with pytest.raises(MalformedError):
                _decode(kind, junk)
    with pytest.raises(MalformedError):
        Deal.from_bytes("not bytes", PARAMS)  # type: ignore[arg-type]
    d = run.deal_of("node-b").to_bytes()
    with pytest.raises(MalformedError, match="tag"):
        Disclosure.from_bytes(d)
    with pytest.raises(MalformedError, match="tag"):
        KeyCommit.from_bytes(d)


def _off_curve() -> bytes:
    x = 5
    while True:
        try:
            Point.from_bytes(b"\x02" + x.to_bytes(32, "big"))
        except MalformedError:
            return b"\x02" + x.to_bytes(32, "big")
        x += 1


def test_off_curve_points_and_large_scalars_are_malformed(run: Run) -> None:
    off = _off_curve()
    big_x = b"\x02" + FIELD.to_bytes(32, "big")
    n_bytes = ORDER.to_bytes(32, "big")
    d = run.deal_of("node-b").to_bytes()
    c0 = 1 + 7 + 2  # first commitment
    share0 = c0 + 3 * 33 + 2  # first share: R || ct || c || s
    disc = run.disclosure("node-b", "node-c").to_bytes()
    kc = run.kc_of("node-b").to_bytes()
    a0 = 1 + 7 + 2
    cases = [
        ("deal", d, c0, off), ("deal", d, c0, big_x), ("deal", d, c0, b"\x04" + bytes(32)),
        ("deal", d, share0, off), ("deal", d, share0 + 33 + 64, n_bytes),
        ("deal", d, share0 + 33 + 64 + 32, n_bytes),
        ("disclosure", disc, 15, off), ("disclosure", disc, 15 + 33, n_bytes),
        ("disclosure", disc, 15 + 33 + 32, n_bytes),
        ("key_commit", kc, a0, off), ("key_commit", kc, a0 + 99, n_bytes),
        ("key_commit", kc, len(kc) - 32, b"\xff" * 32),
    ]
    for kind, data, at, repl in cases:
        bad = data[:at] + repl + data[at + len(repl):]
        assert len(bad) == len(data)
        with pytest.raises(MalformedError):
            _decode(kind, bad)


def test_wrong_counts_in_encoding_are_malformed(run: Run) -> None:
    d = run.deal_of("node-b").to_bytes()
    t_at = 1 + 7
    n_at = t_at + 2 + 3 * 33
    for at, v in ((t_at, 2), (t_at, 4), (t_at, 0), (n_at, 4), (n_at, 6)):
        bad = d[:at] + v.to_bytes(2, "big") + d[at + 2:]
        with pytest.raises(MalformedError):
            Deal.from_bytes(bad, PARAMS)
    kc = run.kc_of("node-b").to_bytes()
    for v in (0, 2, 4):
        bad = kc[:t_at] + v.to_bytes(2, "big") + kc[t_at + 2:]
        with pytest.raises(MalformedError):
            KeyCommit.from_bytes(bad)
    # structurally consistent but with another T: only the params-aware decoder refuses
    small = KeyCommit("node-b", (G, G), KeyCommitProof(Scalar(1), (Scalar(1),) * 2,
                                                       (Scalar(1),) * 2))
    assert KeyCommit.from_bytes(small.to_bytes()) == small
    with pytest.raises(MalformedError):
        KeyCommit.from_bytes(small.to_bytes(), PARAMS)
    # dealer id that is not a party id
    bad_id = bytes((1,)) + b"\x03" + b"bad id" + d[7:]
    with pytest.raises(MalformedError):
        Deal.from_bytes(bad_id, PARAMS)


def test_constructors_check_types_and_sizes(run: Run) -> None:
    s = run.deal_of("node-a").shares[0]
    with pytest.raises(MalformedError):
        EncryptedShare(s.R, s.ct[:63], s.proof)
    with pytest.raises(TypeError):
        EncryptedShare(s.R, s.ct, s.proof.to_bytes())  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        Deal("bad id", run.deal_of("node-a").commitments, run.deal_of("node-a").shares)
    with pytest.raises(MalformedError):
        Deal("node-a", (), run.deal_of("node-a").shares)
    kc = run.kc_of("node-a")
    with pytest.raises(MalformedError):
        KeyCommit("node-a", kc.A[:2], kc.proof)
    with pytest.raises(MalformedError):
        DealSecret((Scalar(1),), ())
