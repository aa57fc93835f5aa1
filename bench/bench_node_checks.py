"""What a compute node pays to check every submission itself before decrypting (JSON output).

    python bench/bench_node_checks.py            # 12 providers, median of 3
    python bench/bench_node_checks.py --reps 1 --providers 4
    python bench/bench_node_checks.py --before /tmp/rangeproof_old.py   # A/B, same load

Workload: Drynx's headline query (logistic regression, 12 features, the spec of
bench/bench_drynx.py, 600,000 records over 12 providers, so 50,000 rows each): one
submission per provider, each with its aggregated range proof and linking proof.  Before a
compute node produces any decryption share it verifies all of them in ONE batched
multi-scalar multiplication (``statledger.proofs.vector.verify_encrypted_vectors_batch``,
what verification step 9 runs), then recomputes the aggregate.  Measured in this process, on
one core (the range prover's helper process off), CPU seconds:

* ``batch_verify_cpu_s``: the batched check of all submissions;
* ``aggregate_cpu_s``: the limb-wise sum of the ciphertexts;
* ``ms_per_value``: batch_verify_cpu_s / (providers x entries), target <= 0.3 ms;
* ``single_verify_cpu_s``: the same proofs verified one by one (what the batch saves);
* ``msm_terms``: terms of the batched multi-scalar multiplication (generator vectors
  merged across proofs, each point once);
* with ``--before PATH``: the same batch checked with another copy of
  ``proofs/rangeproof.py`` (e.g. the version before a change) plugged into
  ``statledger.proofs.vector``, alternated with the current one, and the ratio.

CPU time (``time.process_time``) because the machine is shared; other processes' load still
slows a run (caches, frequency), so compare figures measured back to back (``--before``).

Prints one JSON object and writes it to ``bench/results/node_checks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_drynx import spec_obj  # noqa: E402

from statledger.settings import overridden  # noqa: E402

TARGET_MS_PER_VALUE = 0.3


def _cpu(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--providers", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--before", default=None, help="old rangeproof.py to compare against")
    args = ap.parse_args(argv)

    from statledger.proofs.elgamal import keygen
    from statledger.proofs.vector import (
        aggregate,
        encrypt_vector_with_proof,
        verify_encrypted_vector,
        verify_encrypted_vectors_batch,
    )
    from statledger.protocol import flow
    from statledger.protocol.query import QuerySpec
    from statledger.protocol.stats import get

    spec = QuerySpec.parse(spec_obj("logistic_approx", 50_000, 1 << 10, 2))
    ranges = list(get(spec.statistic).layout(spec).ranges)
    _, X = keygen()
    items = []
    parties = [f"provider-{i + 1}" for i in range(args.providers)]
    with overridden(range_parallel=False):
        for p in parties:
            values = [lo + secrets.randbelow(hi - lo + 1) for lo, hi in ranges]
            ctx = flow.submission_context(spec.query_id_for("querier"), p)
            items.append((X, encrypt_vector_with_proof(X, values, ranges, ctx), ranges, ctx))
        from bench_rangeproof import _use_module

        from statledger.proofs import rangeproof as rp

        rp.reset_counters()
        verify_encrypted_vectors_batch(items, parties)
        msm_terms = rp.counters()["msm_terms"]
        before = None
        if args.before is not None:
            times: dict[str, list[float]] = {"before": [], "after": []}
            for _ in range(args.reps):
                for label, path in (("before", args.before), ("after", None)):
                    _use_module(path)
                    try:
                        times[label].append(
                            _cpu(lambda: verify_encrypted_vectors_batch(items, parties), 1)
                        )
                    finally:
                        _use_module(None)
            before = statistics.median(times["before"])
            batch = statistics.median(times["after"])
        else:
            batch = _cpu(lambda: verify_encrypted_vectors_batch(items, parties), args.reps)
        agg = _cpu(lambda: aggregate([ev for _, ev, _, _ in items]), args.reps)

        def singles() -> None:
            for (X_, ev, r, c), p in zip(items, parties, strict=True):
                verify_encrypted_vector(X_, ev, r, c, party=p)

        single = _cpu(singles, 1)
    values = args.providers * len(ranges)
    out = {
        "workload": "Drynx headline: logistic_approx, 12 features, max_rows 50,000, scale 2^10",
        "providers": args.providers,
        "entries_per_submission": len(ranges),
        "values": values,
        "batch_verify_cpu_s": batch,
        "aggregate_cpu_s": agg,
        "added_cpu_s_per_node_per_query": batch + agg,
        "ms_per_value": 1000 * batch / values,
        "target_ms_per_value": TARGET_MS_PER_VALUE,
        "met": 1000 * batch / values <= TARGET_MS_PER_VALUE,
        "single_verify_cpu_s": single,
        "batch_speedup": single / batch if batch else None,
        "msm_terms": msm_terms,
        "timer": "CPU time (time.process_time), one process, shared machine",
        "loadavg_end": os.getloadavg(),
    }
    if before is not None:
        out["before_batch_verify_cpu_s"] = before
        out["before_ms_per_value"] = 1000 * before / values
        out["speedup_vs_before"] = before / batch
    text = json.dumps(out, indent=1)
    print(text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "node_checks.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
