"""Benchmark: what the PET gate adds to one IRLS round and to a presence query, end to end.

    python bench/bench_gated_rounds.py              # ~2 minutes on 2 cores
    python bench/bench_gated_rounds.py --repeat 1

Starts the demo's local cluster (real processes on loopback: 1 ledger, 3 compute nodes with
a 3-of-3 key, 4 hospitals holding the bundled sites; ``statledger.nodes.demo.start_cluster``)
and runs, ``--repeat`` times each (distinct query ids through ``max_rows``):

* the demo's ``logistic_irls`` round 0 (breast_cancer, 3 features) **gated**
  (``min_cell_size = 5``: one PET cell of ``k = 5`` candidates, ``T = 3`` chain steps, the
  gate shares and the release entry before the decryption) and **ungated**
  (``min_cell_size = 1``: one decryption phase, as before issue 12's gates);
* ``set_union`` of ``sex`` over three elements (diabetes): ``k = 1`` per element, nothing
  decrypted.

Reported per query: the querier's wall time of the whole run and of its ``decrypt`` lap (the
PET chain, the gate shares, the release decision and the decryption, when gated), and the
median difference gated - ungated, i.e. what gating adds to each of the demo's 9 IRLS rounds.
Wall time on a shared machine: the load average is printed alongside.  Prints one JSON object
and writes it to ``bench/results/gated_rounds.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from statledger.nodes.demo import TOUR, provider_datasets, querier_for, start_cluster  # noqa: E402
from statledger.protocol.query import QuerySpec  # noqa: E402

RESULTS = HERE / "results"
IRLS_ROUNDS_IN_DEMO = 9


def _irls(min_cell_size: int, max_rows: int) -> QuerySpec:
    item = next(t for t in TOUR if t.spec["statistic"] == "logistic_irls")
    return QuerySpec.parse({**item.spec, "min_cell_size": min_cell_size, "max_rows": max_rows})


def _union(max_rows: int) -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": "set_union", "columns": ["sex"],
        "categories": {"sex": ["1", "2", "3"]}, "max_rows": max_rows})


def _run(q: Any, spec: QuerySpec, dataset: str) -> dict[str, float]:
    t0 = time.perf_counter()
    out = q.run(spec, datasets=dataset)
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 3), "decrypt_lap_s": round(out.timings.get("decrypt", 0.0), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"irls_gated": [], "irls_ungated": [],
                                               "set_union": []}
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp) / "cluster", provider_datasets())
        try:
            with querier_for(cluster) as q:
                for i in range(args.repeat):
                    rows = 1000 + i
                    runs["irls_ungated"].append(_run(q, _irls(1, rows), "breast_cancer"))
                    runs["irls_gated"].append(_run(q, _irls(5, rows), "breast_cancer"))
                    runs["set_union"].append(_run(q, _union(rows), "diabetes"))
        finally:
            cluster.stop()

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[name]), 3)

    added = round(med("irls_gated", "decrypt_lap_s") - med("irls_ungated", "decrypt_lap_s"), 3)
    added_wall = round(med("irls_gated", "wall_s") - med("irls_ungated", "wall_s"), 3)
    report: dict[str, Any] = {
        "bench": "gated_rounds",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": list(os.getloadavg())},
        "compute_nodes": 3, "threshold": 3, "repeat": args.repeat,
        "runs": runs,
        "median": {name: {"wall_s": med(name, "wall_s"),
                          "decrypt_lap_s": med(name, "decrypt_lap_s")} for name in runs},
        "irls_gate_adds_per_round_s": {"decrypt_lap": added, "wall": added_wall},
        "irls_gate_adds_to_demo_s": round(IRLS_ROUNDS_IN_DEMO * added_wall, 2),
        "note": "wall time (the PET chain is T sequential HTTP round trips and log appends); "
                "CPU per cell per node: bench/bench_suppression.py",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gated_rounds.json").write_text(json.dumps(report, indent=2) + "\n",
                                               encoding="utf-8")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
