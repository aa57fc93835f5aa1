"""The owner's differencing check over every released cell (protocol/history.py; JSON).

    python bench/bench_history.py                       # 1,000 earlier x 50 new x 10^4 rows
    python bench/bench_history.py --earlier 20000 --new 50 --rows 10000 --reps 1

Workload: ``--earlier`` recorded row sets (random, half the rows each: the worst case for
compression and for the popcount) and one new query of ``--new`` cells over ``--rows`` table
rows, none of them near an earlier set, so the check scans everything (an answered query).
Measured in this process, CPU seconds (``time.process_time``: the machine is shared),
median of ``--reps``:

* ``check_s``: :func:`history.check_differencing` (packed bits, popcount of XOR, in chunks);
* ``decode_s``: reading the stored blobs back (:meth:`RowSets.from_bytes`), as the provider
  does per query; ``stored_bytes``: their zlib size;
* ``at_cap_check_s_estimate``: ``check_s`` scaled linearly to ``history.MAX_SETS`` earlier
  sets (the work is linear in them).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from statledger.protocol import history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--earlier", type=int, default=1_000)
    ap.add_argument("--new", type=int, default=50)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(1)
    per_query = 10
    blobs = [history.RowSets.of_masks(rng.random((per_query, a.rows)) < 0.5).to_bytes()
             for _ in range(max(1, a.earlier // per_query))]
    new = history.RowSets.of_masks(rng.random((a.new, a.rows)) < 0.5)
    checks: list[float] = []
    decodes: list[float] = []
    for _ in range(a.reps):
        t0 = time.process_time()
        earlier = [(f"q{i}", history.RowSets.from_bytes(b)) for i, b in enumerate(blobs)]
        t1 = time.process_time()
        history.check_differencing("bench", "new", new, earlier, 5)
        t2 = time.process_time()
        decodes.append(t1 - t0)
        checks.append(t2 - t1)
    n_earlier = per_query * len(blobs)
    check = statistics.median(checks)
    print(json.dumps({
        "earlier_sets": n_earlier, "new_cells": a.new, "rows": a.rows, "reps": a.reps,
        "check_s": round(check, 4), "decode_s": round(statistics.median(decodes), 4),
        "stored_bytes": sum(len(b) for b in blobs), "max_sets": history.MAX_SETS,
        "at_cap_check_s_estimate": round(check * history.MAX_SETS / n_earlier, 2),
    }))


if __name__ == "__main__":
    main()
