"""statledger.proofs.group.msm: equals the naive sum; zero scalars, identity points, cancellation;
workers."""

from __future__ import annotations

import pytest

from statledger.proofs.errors import MalformedError
from statledger.proofs.group import (
    ORDER,
    G,
    H,
    Point,
    Scalar,
    base_mul,
    generators,
    msm,
    shutdown_workers,
)
from statledger.settings import get_settings


def _naive(ks: list[Scalar], ps: list[Point]) -> Point:
    acc = Point.identity()
    for k, P in zip(ks, ps, strict=True):
        acc = acc + k * P
    return acc


def test_msm_equals_naive() -> None:
    ps = generators(b"test/msm", 20) + [G, H]
    ks = [Scalar.random() for _ in ps]
    assert msm(ks, ps) == _naive(ks, ps)
    # reject twin: changing one scalar changes the result
    ks2 = list(ks)
    ks2[3] = ks2[3] + Scalar(1)
    assert msm(ks2, ps) != msm(ks, ps)


def test_msm_edge_cases() -> None:
    O = Point.identity()
    P = base_mul(Scalar(11))
    assert msm([], []) == O
    assert msm([Scalar(0)], [P]) == O
    assert msm([Scalar(5)], [O]) == O
    assert msm([Scalar(0), Scalar(3), Scalar(2)], [P, O, P]) == Scalar(2) * P
    # exact cancellation: k*P + (n-k)*P == O
    k = Scalar.random()
    assert msm([k, -k], [P, P]) == O
    assert msm([k, k], [P, -P]) == O
    assert msm([Scalar(1), Scalar(1)], [P, P]) == Scalar(2) * P  # doubling inside combine
    assert msm([Scalar(ORDER - 1)], [G]) == -G


def test_msm_input_errors() -> None:
    with pytest.raises(MalformedError):
        msm([Scalar(1)], [])
    with pytest.raises(MalformedError):
        msm([Scalar(1)], [G, G])
    with pytest.raises(TypeError):
        msm([1], [G])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        msm([Scalar(1)], [b"\x02" * 33])  # type: ignore[list-item]


def test_msm_parallel_equals_serial() -> None:
    m = get_settings().msm_parallel_threshold + 37
    ps = generators(b"test/msm/parallel", m)
    ks = [Scalar.random() for _ in range(m)]
    ks[5] = Scalar(0)
    ps = ps[:-1] + [Point.identity()]
    try:
        serial = msm(ks, ps)
        assert msm(ks, ps, workers=2) == serial
        assert msm(ks, ps, workers=3) == serial
        # a cancelling share in a worker still sums correctly
        ks2 = ks[: m // 2] + [-k for k in ks[: m // 2]] + ks[2 * (m // 2) :]
        ps2 = ps[: m // 2] * 2 + ps[2 * (m // 2) :]
        assert msm(ks2, ps2, workers=2) == msm(ks2, ps2)
    finally:
        shutdown_workers()


def test_sum_points_equals_the_naive_sum() -> None:
    from statledger.proofs.group import sum_points

    ps = generators(b"test/sum_points", 9)
    naive = Point.identity()
    for P in ps:
        naive = naive + P
    assert sum_points(ps) == naive
    assert sum_points([*ps, Point.identity()]) == naive  # identity skipped
    assert sum_points([]) == Point.identity()
    assert sum_points([ps[0], -ps[0]]) == Point.identity()  # cancels
    assert sum_points([ps[0], ps[0]]) == Scalar(2) * ps[0]  # doubling
    with pytest.raises(TypeError):
        sum_points([ps[0], b"\x02" * 33])  # type: ignore[list-item]
