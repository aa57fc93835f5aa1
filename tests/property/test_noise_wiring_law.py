"""(b) of the noise adversary (tests/integration/test_adversary_noise.py), in process: through
the wired path -- a noise set, a 2-of-3 threshold coin combined from the first T coin shares
with Lagrange weights, each share derived by ``flow.derive_noise_share`` -- a node that
commits to all-ones bits still releases noise with the stated law; the same chi-square test
rejects the law it would get if it could use its bits as they are (the reject twin)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from statledger.proofs.elgamal import decrypt
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import flow
from statledger.protocol.entries import SetupEntry
from statledger.protocol.noise import NoiseParams, commit_noise, make_coin_share

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_noise_distribution import ALPHA, _chi2_p, _share_pmf  # noqa: E402

NODES = ("node-a", "node-b", "node-c")
A0, A1 = Scalar(987654321), Scalar(123456789)  # f(z) = A0 + A1 z, x_j = f(j)
SHARES = {n: A0 + A1 * Scalar(i + 1) for i, n in enumerate(NODES)}
X = base_mul(A0)
SETUP = SetupEntry("c0" * 32, NODES, 2, X.to_bytes().hex(),
                   tuple(base_mul(SHARES[n]).to_bytes().hex() for n in NODES))


@pytest.mark.slow
def test_wired_round_keeps_the_law_with_an_all_ones_node() -> None:
    p = NoiseParams(n_nodes=3, threshold=3, entries=700, summands=2, summand_bits=1,
                    uniform_bits=1)
    totals: list[int] = []
    chosen: list[int] = []  # node-a's bits used as they are: u = share_max
    for rnd in range(3):
        qid = f"{rnd:064x}"
        coms = [commit_noise(X, p, qid, n, bits=[1] * p.total_bits if n == "node-a" else None)
                for n in NODES]
        base = flow.noise_coin_base(p, qid, coms)
        # the first T = 2 coin shares in log order: node-c, then node-a
        shares = [make_coin_share(SHARES[n], base_mul(SHARES[n]), base, qid, n)
                  for n in ("node-c", "node-a")]
        seed = flow.noise_seed(SETUP, base, shares)
        us: dict[str, list[int]] = {}
        for position, com in enumerate(coms):
            share = flow.derive_noise_share(p, qid, com, seed, position)
            us[com.node] = [decrypt(A0, row[0], p.share_max + 1) for row in share.vector.limbs]
        for j in range(p.entries):
            totals.append(sum(us[n][j] for n in NODES))
            chosen.append(p.share_max + us["node-b"][j] + us["node-c"][j])
    one = _share_pmf(p)
    law = np.convolve(np.convolve(one, one), one)
    assert _chi2_p(totals, law) > ALPHA
    assert _chi2_p(chosen, law) < ALPHA
