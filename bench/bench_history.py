"""The owner's differencing check at the history's cap, through the provider's own path
(protocol/history.py, ``ProviderNode._account_exact``; JSON).

    python bench/bench_history.py                                 # at the cap, 10^4 rows
    python bench/bench_history.py --rows 100000 --reps 1
    python bench/bench_history.py --rows 1000000 --earlier 2000 --reps 1

Workload: a real ``history.sqlite`` holding ``--earlier`` recorded row sets (default: the
cap, ``history.MAX_SETS`` less the new query's sets), written as records of ``--per-query``
sets (at most ``1 + history.MAX_CELLS_PER_QUERY``), each set random, half the rows (the worst
case for compression and for the popcount), and one new exact query of ``--new`` sets over
``--rows`` table rows, none near an earlier set, so the whole history is read and compared
(an answered query; its record is removed again after each repetition).

The check runs in a child process (a fresh interpreter: its peak RSS is the check's, not the
set-up's): ``check_cpu_s`` is the CPU time (``time.process_time``: the machine is shared) of
``_account_exact`` -- read, check and record in one SQLite write transaction, the history
streamed record by record, piece by piece -- median of ``--reps``;
``peak_rss_growth_mib`` is the child's peak resident set (``VmHWM``) during the checks less
its peak before them (imports, the new sets); ``stored_mib`` is the records' size on disk
(zlib).  Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from statledger.protocol import history


def _random_sets(rng: np.random.Generator, m: int, rows: int) -> history.RowSets:
    width = (rows + 7) // 8
    bits = rng.integers(0, 256, (m, width), dtype=np.uint8)
    if rows % 8:
        bits[:, -1] &= np.uint8((0xFF << (8 - rows % 8)) & 0xFF)
    return history.RowSets(bits, rows)


def _fill(path: Path, rows: int, earlier: int, per_query: int) -> int:
    from statledger.nodes.provider_service import _open_history

    rng = np.random.default_rng(1)
    db = _open_history(path)
    left, i = earlier, 0
    db.execute("BEGIN")
    while left > 0:
        m = min(per_query, left)
        db.execute("INSERT INTO exact_history VALUES ('bench', ?, ?, ?)",
                   (f"q{i}", float(i), _random_sets(rng, m, rows).to_bytes()))
        left -= m
        i += 1
    db.execute("COMMIT")
    stored = int(db.execute("SELECT sum(length(rows)) FROM exact_history").fetchone()[0])
    db.close()
    return stored


def _peak_rss_kib() -> int:
    """This process's peak resident set (``VmHWM``: per address space, so it starts afresh
    at exec; ``ru_maxrss`` on Linux keeps the parent's peak across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child(path: str, rows: int, new: int, reps: int) -> None:
    from statledger.nodes.provider_service import ProviderNode, _open_history
    from statledger.protocol.policy import ProviderPolicy
    from statledger.protocol.query import QuerySpec

    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "max_rows": 1000, "min_cell_size": 5})
    node = ProviderNode.__new__(ProviderNode)
    node.party_id = "bench"
    node.policy = ProviderPolicy()
    node._history = _open_history(Path(path))
    sets = _random_sets(np.random.default_rng(2), new, rows)
    base = _peak_rss_kib()
    cpu: list[float] = []
    for _ in range(reps):
        t0 = time.process_time()
        node._account_exact("bench", "new", spec, sets)
        cpu.append(time.process_time() - t0)
        node._history.execute("DELETE FROM exact_history WHERE query_id='new'")
    peak = _peak_rss_kib()
    print(json.dumps({"check_cpu_s": round(statistics.median(cpu), 3),
                      "peak_rss_mib": round(peak / 1024, 1),
                      "peak_rss_growth_mib": round((peak - base) / 1024, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--new", type=int, default=50, help="sets of the new query (1 + cells)")
    ap.add_argument("--earlier", type=int, default=None,
                    help="recorded sets (default: the cap less --new)")
    ap.add_argument("--per-query", type=int, default=1 + history.MAX_CELLS_PER_QUERY)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.rows, a.new, a.reps)
        return
    earlier = history.MAX_SETS - a.new if a.earlier is None else a.earlier
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        path = Path(tmp) / "history.sqlite"
        stored = _fill(path, a.rows, earlier, a.per_query)
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", str(path),
             "--rows", str(a.rows), "--new", str(a.new), "--reps", str(a.reps)],
            check=True, capture_output=True, text=True).stdout
    child = json.loads(out)
    print(json.dumps({"rows": a.rows, "earlier_sets": earlier, "new_sets": a.new,
                      "per_query": a.per_query, "reps": a.reps, "max_sets": history.MAX_SETS,
                      "stored_mib": round(stored / 2**20, 1), **child}))


if __name__ == "__main__":
    main()
