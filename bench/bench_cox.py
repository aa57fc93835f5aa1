"""Cox regression on lifelines' rossi data over 4 owners, end to end with real processes.

    python bench/bench_cox.py                      # examples/cox_regression.json, 2 compute nodes
    python bench/bench_cox.py --spec FILE --compute 3 --threshold 2

Issue 14's target: the full fit (every Newton round, each its own certified query) <= 60 s
wall on this machine.  The cluster (ledger, compute nodes, 4 providers with the bundled
``rossi_site*.csv``) is started and set up first; its start-up is reported apart.

Measured: the wall time of ``run_rounds`` (all rounds), the rounds, each round's wall time
and its querier phases, each certificate's size, the offline verification of the final
certificate (in process, median of ``--verify-reps``, wall and CPU), the CPU seconds of the
whole system under test (this process and every cluster process, from /proc: the machine is
shared, wall times include waiting for a core), the layout (entries, widest entry in bits)
and the load average.  Prints one JSON object and writes ``bench/results/cox.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_drynx import cpu_tree, load_average  # noqa: E402

RESULTS = HERE / "results"
ROOT = HERE.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "examples" / "cox_regression.json")
    ap.add_argument("--compute", type=int, default=2)
    ap.add_argument("--threshold", type=int, default=None)
    ap.add_argument("--verify-reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "cox.json")
    args = ap.parse_args(argv)

    from statledger.nodes.launcher import Cluster
    from statledger.nodes.querier import Querier, run_rounds
    from statledger.protocol import datasets
    from statledger.protocol.query import QuerySpec
    from statledger.protocol.stats import get
    from statledger.protocol.stats.cox import cox_start
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    spec = QuerySpec.parse(json.loads(args.spec.read_text(encoding="utf-8")))
    lay = get(spec.statistic).layout(cox_start(spec))
    sites = datasets.sites("rossi")
    providers = {f"site-{i + 1}": {"rossi": str(datasets.path("rossi", s))}
                 for i, s in enumerate(sites)}
    out: dict[str, Any] = {
        "benchmark": "cox_regression, rossi over 4 owners",
        "spec": str(args.spec.relative_to(ROOT) if args.spec.is_relative_to(ROOT) else args.spec),
        "compute_nodes": args.compute, "threshold": args.threshold,
        "entries": len(lay), "widest_entry_bits": max(lay.bits()),
        "python": platform.python_version(), "load_before": load_average(),
        "target_full_fit_wall_s": 60.0,
    }
    with tempfile.TemporaryDirectory(prefix="bench-cox-") as tmp:
        t0 = time.perf_counter()
        cluster = Cluster(Path(tmp) / "cluster", n_compute=args.compute,
                          threshold=args.threshold, providers=providers, startup_timeout=180)
        cluster.start_and_set_up()
        out["cluster_start_s"] = round(time.perf_counter() - t0, 3)
        genesis = cluster.genesis  # read before the folder goes
        try:
            layout = cluster.layout
            with Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                         {p.party_id: p.url for p in layout.compute},
                         {p.party_id: p.url for p in layout.providers},
                         trust=cluster.genesis, timeout=600.0) as q:
                round_wall: list[float] = []
                last = [time.perf_counter()]

                def lap(_: Any) -> None:
                    now = time.perf_counter()
                    round_wall.append(round(now - last[0], 3))
                    last[0] = now

                cpu0 = cpu_tree()
                t1 = time.perf_counter()
                last[0] = t1
                outcomes = run_rounds(q, spec, datasets="rossi", on_round=lap)
                out["full_fit_wall_s"] = round(time.perf_counter() - t1, 3)
                out["full_fit_cpu_s"] = round(cpu_tree() - cpu0, 3)
        finally:
            cluster.stop()
    final = outcomes[-1]
    out["rounds"] = len(outcomes)
    out["round_wall_s"] = round_wall
    out["round_phases_s"] = [{k: round(v, 3) for k, v in o.timings.items()} for o in outcomes]
    sizes = [len(o.certificate.to_bytes()) for o in outcomes]
    out["certificate_bytes"] = sizes
    trust = TrustPolicy(genesis, "bench")
    raw = final.certificate.to_bytes()
    walls, cpus = [], []
    for _ in range(args.verify_reps):
        w, c = time.perf_counter(), time.process_time()
        report = verify_certificate(raw, trust)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        if not report.valid:
            raise SystemExit(f"the final certificate does not verify: step {report.step}: "
                             f"{report.reason}")
    out["verify_final_wall_s"] = round(statistics.median(walls), 3)
    out["verify_final_cpu_s"] = round(statistics.median(cpus), 3)
    v = final.result.values
    out["converged"] = v["converged"]
    out["coef"] = v["coef"]
    out["std_err"] = v["std_err"]
    out["load_after"] = load_average()
    out["target_met"] = out["full_fit_wall_s"] <= 60.0
    text = json.dumps(out, indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
