"""statledger.proofs.msm: the bucket MSM against group.msm at every window, adversarial
inputs (cancelling points, zero and n-1 scalars), the window table and the fold."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from statledger.proofs import msm as M
from statledger.proofs.group import ORDER, G, H, Point, Scalar, base_mul, msm


def _rows(points: list[Point]) -> np.ndarray:
    return M.raw_matrix(np.array([M.addr(M.pk_of(P)) for P in points], dtype=np.uint64))


@pytest.mark.parametrize("window", [0, 4, 5, 8, 9, 10])
def test_bucket_msm_matches_group_msm_at_every_window(monkeypatch, window) -> None:
    monkeypatch.setattr(M, "window_bits", lambda n: window)
    pts = [base_mul(Scalar.random()) for _ in range(40)]
    ks = [secrets.randbelow(ORDER) for _ in range(40)]
    ks[:4] = [0, 1, ORDER - 1, 2**255 % ORDER]
    want = msm([Scalar(k) for k in ks], pts)
    assert M.to_point(M.msm_matrix(_rows(pts), ks)) == want
    assert M.points_msm(ks, pts) == want
    # one scalar changed: another point
    ks[7] = (ks[7] + 1) % ORDER
    assert M.points_msm(ks, pts) != want


@pytest.mark.parametrize("window", [0, 4, 8])
def test_cancelling_terms_give_the_identity_not_an_error(monkeypatch, window) -> None:
    monkeypatch.setattr(M, "window_bits", lambda n: window)
    P = base_mul(Scalar.random())
    k = secrets.randbelow(ORDER - 1) + 1
    # k P + (n - k) P, and P + (-P) in one bucket: sums that hit the identity midway
    assert M.msm_matrix(_rows([P, P]), [k, ORDER - k]) is None
    assert M.msm_matrix(_rows([P, -P, G]), [5, 5, 0]) is None
    assert M.to_point(M.msm_matrix(_rows([P, -P, G]), [5, 5, 3])) == base_mul(Scalar(3))
    assert M.points_msm([], []) == Point.identity()
    assert M.points_msm([2, 3], [Point.identity(), H]) == H * Scalar(3)


def test_window_table() -> None:
    sizes = [1, 10, 383, 384, 1000, 5000, 8192, 16384, 40000, 100000]
    ws = [M.window_bits(n) for n in sizes]
    assert ws[:3] == [0, 0, 0] and ws[3] == 4
    assert ws == sorted(ws) and max(ws) <= 10  # digits stay in uint16
    assert M.window_bits(8192) == 8


def test_fold_raw_matches_points() -> None:
    lo = [base_mul(Scalar.random()) for _ in range(5)]
    hi = [base_mul(Scalar.random()) for _ in range(5)]
    e = secrets.randbelow(ORDER - 1) + 1
    out = M.rows(M.fold_raw(_rows(lo).tobytes(), _rows(hi).tobytes(), e))
    got = [M.to_point(M.msm_matrix(out[i : i + 1], [1])) for i in range(5)]
    assert got == [a + b * Scalar(e) for a, b in zip(lo, hi, strict=True)]
    assert got != [a + b * Scalar(e + 1) for a, b in zip(lo, hi, strict=True)]
