"""protocol/noise.py: verifiable noise shares (accept + reject twins).  docs/noise.md."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from statledger.proofs.elgamal import Ciphertext, decrypt, encrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point, Scalar
from statledger.proofs.rangeproof import RangeLayout
from statledger.proofs.vector import EncryptedVector, _encrypt
from statledger.protocol import noise
from statledger.protocol.noise import (
    CoinShare,
    NoiseCommitment,
    NoiseParams,
    bit_weight,
    check_share,
    coin_base,
    coin_seed,
    commit_noise,
    commitment_context,
    commitments_digest,
    derive_coins,
    derive_share,
    make_coin_share,
    verify_coin_share,
    verify_commitment,
    verify_noise_round,
)

Q = "query-1"
PARAMS = NoiseParams(n_nodes=3, threshold=2, entries=4, summands=3, summand_bits=2, uniform_bits=2)


class Cluster:
    def __init__(self, params: NoiseParams = PARAMS) -> None:
        self.params = params
        self.keys = [keygen() for _ in range(params.n_nodes)]
        self.names = [f"node-{i}" for i in range(params.n_nodes)]
        self.x = Scalar(0)
        X = Point.identity()
        for k, K in self.keys:
            self.x = self.x + k
            X = X + K
        self.X = X
        self.roster = [(n, K) for n, (_, K) in zip(self.names, self.keys, strict=True)]

    def commit(self, bits: list[list[int]] | None = None, query: str = Q) -> list[NoiseCommitment]:
        return [
            commit_noise(self.X, self.params, query, n, bits=None if bits is None else bits[i])
            for i, n in enumerate(self.names)
        ]

    def coins(self, coms: list[NoiseCommitment], query: str = Q) -> list[CoinShare]:
        P = coin_base(query, commitments_digest(self.params, query, coms))
        return [
            make_coin_share(k, K, P, query, n)
            for n, (k, K) in zip(self.names, self.keys, strict=True)
        ]


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture(scope="module")
def round1(cluster: Cluster) -> tuple[list[list[int]], list[NoiseCommitment], list[CoinShare]]:
    bits = [[secrets.randbelow(2) for _ in range(PARAMS.total_bits)] for _ in cluster.names]
    coms = cluster.commit(bits)
    return bits, coms, cluster.coins(coms)


def _expected_u(params: NoiseParams, bits: list[int], coins: list[int], j: int) -> int:
    L = params.bits_per_entry
    return sum(bit_weight(params, k) * (bits[j * L + k] ^ coins[j * L + k]) for k in range(L))


# ------------------------------------------------------------------------------------ accept


def test_accept_round_and_shares_decrypt_to_bits_xor_coins(cluster: Cluster, round1) -> None:
    bits, coms, shares = round1
    derived = verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms, shares)
    P = coin_base(Q, commitments_digest(PARAMS, Q, coms))
    seed = coin_seed(P, [s.D for s in shares])
    # x*P computed with the collective secret equals the combination of the coin shares
    assert seed == coin_seed(P, [cluster.x * P])
    for i, n in enumerate(cluster.names):
        coins = derive_coins(seed, Q, n, PARAMS.total_bits)
        for j in range(PARAMS.entries):
            u = decrypt(cluster.x, derived[n][j], PARAMS.share_max + 1)
            assert u == _expected_u(PARAMS, bits[i], coins, j)
            assert 0 <= u <= PARAMS.share_max
        check_share(n, derived[n], derived[n])


def test_params_arithmetic() -> None:
    p = PARAMS
    assert p.honest == 2 and p.step == 4 and p.bits_per_entry == 2 + 3 * 2
    assert p.share_max == 3 + 4 * 3 * 3
    assert [bit_weight(p, k) for k in range(8)] == [1, 2, 4, 8, 4, 8, 4, 8]
    lo, hi = p.ranges()[0]
    assert (lo, hi) == (-p.offset, p.share_max - p.offset)
    with pytest.raises(MalformedError):
        NoiseParams(3, 4, 1, 1, 1, 0)  # threshold above N
    with pytest.raises(MalformedError):
        NoiseParams(3, 2, 0, 1, 1, 0)


def test_threshold_coin_weights_give_same_seed(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    P = coin_base(Q, commitments_digest(PARAMS, Q, coms))
    assert coin_seed(P, [s.D for s in shares]) == coin_seed(P, [s.D for s in shares], [1, 1, 1])


# ----------------------------------------------------------------------------- reject twins


def test_reject_bit_that_is_two(cluster: Cluster) -> None:
    n = PARAMS.total_bits
    ctx = commitment_context(PARAMS, Q, "node-0")
    layout = RangeLayout.from_spans([1] * n)
    limbs = [[secrets.randbelow(2)] for _ in range(n)]
    ct_values = [list(r) for r in limbs]
    ct_values[5] = [2]  # the ciphertext encrypts 2, the range proof is about a bit
    ev = _encrypt(cluster.X, limbs, tuple((0, 1) for _ in range(n)), layout, ctx, ct_values)
    with pytest.raises(VerificationError, match="node-0") as exc:
        verify_commitment(cluster.X, PARAMS, Q, NoiseCommitment("node-0", ev))
    assert exc.value.party == "node-0" and exc.value.step == "noise-commitment"
    # and the honest twin of the same construction passes
    ev_ok = _encrypt(cluster.X, limbs, tuple((0, 1) for _ in range(n)), layout, ctx)
    verify_commitment(cluster.X, PARAMS, Q, NoiseCommitment("node-0", ev_ok))
    # a node cannot even build a commitment to 2 through the API
    with pytest.raises(MalformedError):
        commit_noise(cluster.X, PARAMS, Q, "node-0", bits=[2] + [0] * (n - 1))


def test_reject_ciphertext_swapped_for_enc_of_two(cluster: Cluster, round1) -> None:
    _, coms, _ = round1
    ev = coms[1].bits
    limbs = list(ev.limbs)
    limbs[3] = (encrypt(cluster.X, 2),)
    bad = NoiseCommitment("node-1", EncryptedVector(tuple(limbs), ev.commitments, ev.proof))
    with pytest.raises(VerificationError, match="node-1"):
        verify_commitment(cluster.X, PARAMS, Q, bad)


def test_reject_proof_copied_from_other_bit(cluster: Cluster, round1) -> None:
    _, coms, _ = round1
    ev = coms[0].bits
    limbs, cs = list(ev.limbs), list(ev.commitments)
    limbs[0], limbs[1] = limbs[1], limbs[0]  # bit 1's ciphertext and proof part at bit 0
    cs[0], cs[1] = cs[1], cs[0]
    if limbs[0] == limbs[1]:  # pragma: no cover - distinct with overwhelming probability
        pytest.skip("identical ciphertexts")
    bad = NoiseCommitment("node-0", EncryptedVector(tuple(limbs), tuple(cs), ev.proof))
    with pytest.raises(VerificationError, match="node-0"):
        verify_commitment(cluster.X, PARAMS, Q, bad)


def test_reject_commitment_copied_from_other_node(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    copied = NoiseCommitment("node-2", coms[0].bits)  # node-2 replays node-0's commitment
    with pytest.raises(VerificationError, match="node-2"):
        verify_commitment(cluster.X, PARAMS, Q, copied)
    with pytest.raises(VerificationError, match="node-2"):
        verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, [coms[0], coms[1], copied],
                           shares)


def test_reject_commitment_copied_from_other_query(cluster: Cluster, round1) -> None:
    _, coms, _ = round1
    with pytest.raises(VerificationError, match="node-0"):
        verify_commitment(cluster.X, PARAMS, "query-2", coms[0])
    other = replace(PARAMS, threshold=3)  # same sizes, other parameters: also bound
    with pytest.raises(VerificationError, match="node-0"):
        verify_commitment(cluster.X, other, Q, coms[0])


def test_reject_commitment_out_of_roster_order(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    with pytest.raises(VerificationError, match="node-1"):
        verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, [coms[1], coms[0], coms[2]],
                           shares)
    with pytest.raises(VerificationError, match="node-2"):
        verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms[:2], shares)


def test_reject_coin_share_on_other_base_or_key(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    P = coin_base(Q, commitments_digest(PARAMS, Q, coms))
    # computed on a base from other data (another query's digest): the DLEQ fails for P
    P_other = coin_base("query-2", commitments_digest(PARAMS, Q, coms))
    k, K = cluster.keys[1]
    bad = make_coin_share(k, K, P_other, Q, "node-1")
    with pytest.raises(VerificationError, match="node-1"):
        verify_coin_share(K, P, bad, Q)
    with pytest.raises(VerificationError, match="node-1"):
        verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms,
                           [shares[0], bad, shares[2]])
    # a node grinding its share: any D other than x_i*P has no valid proof
    forged = CoinShare("node-1", shares[1].D + P, shares[1].proof)
    with pytest.raises(VerificationError, match="node-1"):
        verify_coin_share(K, P, forged, Q)
    # a share proved under another node's name
    stolen = CoinShare("node-1", shares[0].D, shares[0].proof)
    with pytest.raises(VerificationError, match="node-1"):
        verify_coin_share(K, P, stolen, Q)


def test_reject_share_derived_from_other_coins(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    derived = verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms, shares)
    P = coin_base(Q, commitments_digest(PARAMS, Q, coms))
    # coins from other data: a seed without the honest coin shares, or another node's coins
    for seed, who in ((coin_seed(P, [shares[0].D]), "node-0"),
                      (coin_seed(P, [s.D for s in shares]), "node-1")):
        coins = derive_coins(seed, Q, who, PARAMS.total_bits)
        claimed = derive_share(PARAMS, coms[0], coins)
        with pytest.raises(VerificationError, match="node-0"):
            check_share("node-0", claimed, derived["node-0"])


def test_reject_share_that_is_not_the_derived_one(cluster: Cluster, round1) -> None:
    _, coms, shares = round1
    derived = verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms, shares)
    d = derived["node-2"]
    claimed = [d[0] + encrypt(cluster.X, 1), *d[1:]]
    with pytest.raises(VerificationError, match="node-2") as exc:
        check_share("node-2", claimed, d)
    assert exc.value.step == "noise-share"
    rerandomised = [c + encrypt(cluster.X, 0) for c in d]  # same plaintext, other ciphertext
    with pytest.raises(VerificationError, match="node-2"):
        check_share("node-2", rerandomised, d)
    with pytest.raises(VerificationError, match="node-2"):
        check_share("node-2", d[:-1], d)


def test_node_trying_plus_B(cluster: Cluster) -> None:
    """A node that wants +B: (1) all-ones bits are XORed with coins it did not know;
    (2) a share encrypting B is not the derived one; (3) a 'bit' encrypting B is refused."""
    p = PARAMS
    B = p.share_max - p.offset
    ones = [[1] * p.total_bits, *[[secrets.randbelow(2) for _ in range(p.total_bits)]] * 2]
    coms = cluster.commit(ones)
    shares = cluster.coins(coms)
    derived = verify_noise_round(cluster.X, p, Q, cluster.roster, coms, shares)
    values = [decrypt(cluster.x, c, p.share_max + 1) for c in derived["node-0"]]
    assert values != [p.share_max] * p.entries  # probability 2^-32 of a false failure
    plus_b = [encrypt(cluster.X, B + p.offset) for _ in range(p.entries)]
    with pytest.raises(VerificationError, match="node-0"):
        check_share("node-0", plus_b, derived["node-0"])
    evil = list(coms[0].bits.limbs)
    evil[0] = (encrypt(cluster.X, B),)
    bad = NoiseCommitment("node-0", EncryptedVector(tuple(evil), coms[0].bits.commitments,
                                                    coms[0].bits.proof))
    with pytest.raises(VerificationError, match="node-0"):
        verify_commitment(cluster.X, p, Q, bad)


def test_coins_depend_on_every_commitment(cluster: Cluster, round1) -> None:
    _, coms, _ = round1
    d1 = commitments_digest(PARAMS, Q, coms)
    fresh = cluster.commit()
    d2 = commitments_digest(PARAMS, Q, [coms[0], coms[1], fresh[2]])
    assert d1 != d2 and coin_base(Q, d1) != coin_base(Q, d2)
    # a subset (a noise set of fewer nodes) has its own digest; more commitments than nodes,
    # none, or two of one node are refused
    d3 = commitments_digest(PARAMS, Q, coms[:2])
    assert d3 != d1 and coin_base(Q, d3) != coin_base(Q, d1)
    for bad in ([], coms + [fresh[0]], [coms[0], coms[0]]):
        with pytest.raises(MalformedError):
            commitments_digest(PARAMS, Q, bad)


def test_derive_share_shape_checks(round1) -> None:
    _, coms, _ = round1
    with pytest.raises(MalformedError):
        derive_share(PARAMS, coms[0], [0] * (PARAMS.total_bits - 1))
    assert isinstance(derive_share(PARAMS, coms[0], [0] * PARAMS.total_bits)[0], Ciphertext)
    assert noise.DOMAIN.startswith(b"statledger/noise")


def test_limbs_join_to_the_share(cluster: Cluster, round1) -> None:
    from statledger.proofs.elgamal import join_limbs
    from statledger.protocol.noise import derive_share_limbs, limb_bounds

    big = NoiseParams(3, 2, 2, 3, 3, 17)  # u < 2^22: two 16-bit limbs, U straddles them
    bits = [secrets.randbelow(2) for _ in range(big.total_bits)]
    com = commit_noise(cluster.X, big, Q, "node-0", bits=bits)
    coins = derive_coins(b"seed", Q, "node-0", big.total_bits)
    limbs = derive_share_limbs(big, com, coins)
    bounds = limb_bounds(big)
    assert len(bounds) == len(limbs[0]) == 2
    whole = derive_share(big, com, coins)
    for j in range(big.entries):
        vals = [decrypt(cluster.x, c, b + 1) for c, b in zip(limbs[j], bounds, strict=True)]
        u = _expected_u(big, bits, coins, j)
        assert join_limbs(vals, 16) == u
        # the limb ciphertexts recombine homomorphically into the whole-entry ciphertext
        acc = limbs[j][0] + limbs[j][1] * (1 << 16)
        assert acc == whole[j]
    assert bounds[0] == (1 << 16) - 1 and bounds[1] == 1 + 3 * (2 + 4 + 8)


def test_round_in_limbs_matches_whole_entries(cluster: Cluster, round1) -> None:
    from statledger.protocol.noise import verified_coins, verify_noise_round_limbs

    _, coms, shares = round1
    whole = verify_noise_round(cluster.X, PARAMS, Q, cluster.roster, coms, shares, batch=False)
    limbs = verify_noise_round_limbs(cluster.X, PARAMS, Q, cluster.roster, coms, shares)
    coins = verified_coins(cluster.X, PARAMS, Q, cluster.roster, coms, shares)
    for n in cluster.names:
        assert [row[0] for row in limbs[n]] == whole[n]  # share_max < 2^16: one limb
        assert whole[n] == derive_share(PARAMS, coms[cluster.names.index(n)], coins[n])
