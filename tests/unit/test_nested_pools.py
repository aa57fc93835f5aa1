"""A pool worker never starts a nested process pool (it would hang at the worker's exit).

multiprocessing joins a child's own children *before* concurrent.futures' shutdown hook can
stop them, so a persistent helper pool started inside someone else's pool worker (the
auditor's, say) deadlocks that worker's exit -- CI once stalled for 90 minutes on it.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor


def _probe() -> bool:
    from statledger.proofs import rangeproof

    return rangeproof._parallel()


def _big_msm_then_exit() -> str:
    from statledger.proofs import group
    from statledger.proofs.group import Scalar, base_mul, msm

    pts = [base_mul(Scalar(i + 1)) for i in range(8)]
    ks = [Scalar(i + 3) for i in range(8)]
    with_pool = msm(ks, pts, workers=2)
    return f"{with_pool == msm(ks, pts)} {group._POOL is None}"


def test_range_prover_helper_is_off_inside_a_pool_worker(monkeypatch) -> None:
    monkeypatch.setenv("STATLEDGER_RANGE_PARALLEL", "true")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        assert pool.submit(_probe).result(timeout=120) is False


def test_msm_workers_ignored_inside_a_pool_worker_and_the_worker_exits(monkeypatch) -> None:
    monkeypatch.setenv("STATLEDGER_MSM_PARALLEL_THRESHOLD", "1")
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
    try:
        assert pool.submit(_big_msm_then_exit).result(timeout=120) == "True True"
    finally:
        pool.shutdown(wait=True)  # hangs (and the test times out) if a nested pool was left
