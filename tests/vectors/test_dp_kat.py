"""Known-answer sampler outputs for fixed seeds (regression pins of the exact algorithms)."""

from __future__ import annotations

import random

from statledger.protocol import dp


def test_sampler_vectors():
    # fixed seeds (tests only): pins the exact CKS 2020 algorithm and its use of randbelow
    assert dp.sample_vector(12, sigma2=2, randbelow=random.Random(1).randrange) == \
        [-2, 2, 0, 1, 1, 1, 2, 0, 1, 1, 0, -2]
    assert dp.sample_vector(12, laplace_scale="5/2", randbelow=random.Random(1).randrange) == \
        [0, 1, 2, 1, 8, 1, -4, -6, -2, 3, 5, 0]
    # twin: another seed gives other draws
    assert dp.sample_vector(12, sigma2=2, randbelow=random.Random(2).randrange) != \
        [-2, 2, 0, 1, 1, 1, 2, 0, 1, 1, 0, -2]
