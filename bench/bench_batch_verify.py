"""Many owners' submissions checked in one batch vs one by one (issue 15, item 3; JSON).

    python bench/bench_batch_verify.py                 # N = 100 owners, median of 3
    python bench/bench_batch_verify.py --owners 20 --reps 1

Workload: ``--owners`` one-submission owners answering a pull-mode mean query (the wire
layout of ``mean`` on one bounded column: the sum, the count and the sum of squares, each with
its aggregated range proof and linking proof).  Measured in this process, CPU seconds
(``time.process_time``: the machine is shared), the range prover's helper process off:

* ``verifier``: verification step 9's check (``find_invalid_vectors``: all proofs, ONE
  multi-scalar multiplication) vs ``verify_encrypted_vector`` on each submission;
* ``ledger``: the ledger's :class:`~statledger.nodes.ledger_service.SubmissionBatcher` with
  every owner's append arriving at once (one worker thread per owner, as uvicorn's thread
  pool runs them), vs the same checks one after the other; ``batch_sizes`` says how the
  group commit split them;
* ``one_bad``: the batched check when one owner's proof is bad (flipped bit): the halving
  that names it, in MSMs and CPU, vs one by one.

Per-submission figures are the totals divided by ``--owners``.  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from typing import Any

from statledger.nodes.ledger_service import SubmissionBatcher
from statledger.proofs import vector as V  # noqa: N812 - the tests' name
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.protocol import calibration, flow
from statledger.protocol.query import QuerySpec
from statledger.settings import overridden

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1}


def _cpu(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def _items(n: int) -> tuple[list[Any], list[str]]:
    _, X = keygen()
    ranges = list(calibration.wire_layout(QuerySpec.parse(SPEC)).ranges)
    qid = "ab" * 32
    items, names = [], []
    for i in range(n):
        owner = f"owner-{i:04d}"
        values = [lo + (i * 7919 + j) % (hi - lo + 1) for j, (lo, hi) in enumerate(ranges)]
        ctx = flow.submission_context(qid, owner)
        items.append((X, V.encrypt_vector_with_proof(X, values, ranges, ctx), ranges, ctx))
        names.append(owner)
    return items, names


def _one_by_one(items: list[Any], names: list[str]) -> None:
    for (X, ev, ranges, ctx), name in zip(items, names, strict=True):
        V.verify_encrypted_vector(X, ev, ranges, ctx, party=name)


def _ledger_batched(items: list[Any], names: list[str]) -> list[int]:
    batcher = SubmissionBatcher()
    errors: list[BaseException] = []
    start = threading.Barrier(len(items))

    def one(i: int) -> None:
        start.wait()
        try:
            batcher.check((*items[i], names[i]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return batcher.batch_sizes


def _flip_one(items: list[Any], k: int) -> list[Any]:
    X, ev, ranges, ctx = items[k]
    data = bytearray(ev.to_bytes())
    for pos in range(len(data) - 40, len(data)):
        data2 = bytearray(data)
        data2[pos] ^= 1
        try:
            bad = V.EncryptedVector.from_bytes(bytes(data2), ranges)
        except MalformedError:
            continue
        out = list(items)
        out[k] = (X, bad, ranges, ctx)
        return out
    raise SystemExit("no decodable flip")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--owners", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    n = args.owners
    with overridden(range_parallel=False):
        items, names = _items(n)
        ranges = items[0][2]
        batched = _cpu(lambda: V.find_invalid_vectors(items, names), args.reps)
        single = _cpu(lambda: _one_by_one(items, names), args.reps)
        sizes: list[int] = []

        def ledger() -> None:
            sizes[:] = _ledger_batched(items, names)

        ledger_batched = _cpu(ledger, args.reps)
        bad_items = _flip_one(items, n // 3)
        msms = []
        real = V._terms_is_identity

        def counting(t: Any) -> bool:
            msms.append(1)
            return real(t)

        V._terms_is_identity = counting  # type: ignore[assignment]
        try:
            found: list[Any] = []

            def one_bad() -> None:
                msms.clear()
                found[:] = V.find_invalid_vectors(bad_items, names)

            one_bad_cpu = _cpu(one_bad, args.reps)
        finally:
            V._terms_is_identity = real  # type: ignore[assignment]
        if [i for i, _ in found] != [n // 3]:
            raise SystemExit(f"the bad proof was not named: {found}")
        try:
            V.verify_encrypted_vectors_batch(bad_items, names)
            raise SystemExit("a batch with a bad proof passed")
        except VerificationError:
            pass

    def per(x: float) -> float:
        return round(1000 * x / n, 3)

    out = {
        "owners": n,
        "entries_per_submission": len(ranges),
        "limbs_per_submission": sum(V.n_limbs(lo, hi) for lo, hi in ranges),
        "timer": "CPU time (time.process_time), one process, shared machine",
        "loadavg": os.getloadavg()[0],
        "verifier": {
            "batched_cpu_s": round(batched, 4), "one_by_one_cpu_s": round(single, 4),
            "batched_ms_per_submission": per(batched),
            "one_by_one_ms_per_submission": per(single),
            "speedup": round(single / batched, 2),
        },
        "ledger": {
            "batched_cpu_s": round(ledger_batched, 4), "one_by_one_cpu_s": round(single, 4),
            "batched_ms_per_submission": per(ledger_batched),
            "one_by_one_ms_per_submission": per(single),
            "speedup": round(single / ledger_batched, 2),
            "batch_sizes": sizes,
        },
        "one_bad": {
            "cpu_s": round(one_bad_cpu, 4), "ms_per_submission": per(one_bad_cpu),
            "msms": len(msms), "named": names[n // 3],
            "vs_one_by_one": round(single / one_bad_cpu, 2),
        },
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
