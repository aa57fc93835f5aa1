"""The demo's cost, its certificates' sizes and verification times, and the audit of its log.

    python bench/bench_demo.py              # ~3-4 minutes on 2 cores
    python bench/bench_demo.py --no-audit   # only the demo subprocess and its certificates

1. ``statledger demo --out DIR`` as a subprocess: wall time (and the CPU seconds of the whole
   process tree), plus the demo's own summary split (startup, per query) from its output.
2. Every certificate it wrote: size, ``verify_certificate`` time in this process (median of
   ``--reps``; the first run reported apart: the repeats reuse its decoded entries and
   verified signatures) and ``statledger verify FILE --trust trust.json`` in a fresh process
   (median of ``--cold-reps``, 5).  Target (issues 6, 16): each cold verify under 1 s.
3. The audit: the demo deletes its cluster (and ledger) on exit, so the same tour
   (``statledger.nodes.demo.TOUR`` through ``statledger.nodes.demo.start_cluster`` /
   ``run_rounds``) is re-run here
   on a kept cluster, and ``statledger.verifier.audit.audit_log`` replays that ledger's SQLite file.
   Target (issue 6): audit at least 10x faster than the demo's wall time.

Prints one JSON object on stdout and writes it to ``bench/results/demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_drynx import cpu_tree, load_average  # noqa: E402

RESULTS = HERE / "results"


def _children_cpu() -> float:
    """CPU seconds of reaped children (the demo subprocess tree once it has exited)."""
    r = os.times()
    return r.children_user + r.children_system


def run_demo_subprocess(out: Path) -> dict[str, Any]:
    la = load_average()
    c0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 -- our own CLI
        [sys.executable, "-m", "statledger", "demo", "--out", str(out)],
        capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"statledger demo exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-2000:]}")
    res: dict[str, Any] = {
        "wall_s": round(wall, 2),
        "cpu_s": round(_children_cpu() - c0, 2),
        "load_average_before": la,
        "load_average_after": load_average(),
    }
    # The demo prints its own timings (startup, per query); keep any "... s" figures found.
    tail = proc.stdout[-3000:]
    res["stdout_tail"] = [ln for ln in tail.splitlines() if re.search(r"\d\s*s\b", ln)][-12:]
    return res


def verify_certificates(cert_dir: Path, reps: int, cold_reps: int = 5
                        ) -> list[dict[str, Any]]:
    from statledger.verifier.verify import verify_certificate

    out = []
    for p in sorted(cert_dir.glob("*.cert")):
        raw = p.read_bytes()
        times, cpus = [], []
        for _ in range(reps + 1):
            c0 = cpu_tree()
            t0 = time.perf_counter()
            report = verify_certificate(raw, source=str(p))
            times.append(time.perf_counter() - t0)
            cpus.append(cpu_tree() - c0)
            if not report.valid:
                raise RuntimeError(f"{p.name}: step {report.step}: {report.reason}")
        # cold: `statledger verify FILE --trust trust.json` in a fresh process, median of
        # `cold_reps` (imports, parsing and every step; no cache survives a process)
        trust = cert_dir.parent / "trust.json"
        argv = [sys.executable, "-m", "statledger", "verify", str(p)]
        if trust.exists():
            argv += ["--trust", str(trust)]
        clis, cli_cpus, cli_error, code = [], [], None, 0
        for _ in range(cold_reps):
            cc0 = _children_cpu()
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True,  # noqa: S603
                                  check=False)
            clis.append(time.perf_counter() - t0)
            cli_cpus.append(_children_cpu() - cc0)
            if proc.returncode != 0:  # recorded, not fatal: the figure is marked invalid
                code = proc.returncode
                cli_error = (proc.stdout[-800:] + proc.stderr[-800:]).strip()
        cli, cli_cpu = statistics.median(clis), statistics.median(cli_cpus)
        out.append({
            "certificate": p.name,
            "bytes": len(raw),
            # in this process: the first run pays lazy imports and fills the caches of
            # decoded entries and verified signatures, which the repeats reuse
            "verify_first_s": round(times[0], 3),
            "verify_first_cpu_s": round(cpus[0], 3),
            "verify_s": round(statistics.median(times[1:]), 3),
            "verify_min_s": round(min(times[1:]), 3),
            "verify_cpu_s": round(statistics.median(cpus[1:]), 3),
            "verify_cli_s": round(cli, 3),
            "verify_cli_min_s": round(min(clis), 3),
            "verify_cli_cpu_s": round(cli_cpu, 3),
            "verify_cli_reps": cold_reps,
            "verify_cli_exit": code,
            "verify_cli_error": cli_error,
            "under_1s": cli < 1.0,
            "cpu_under_1s": cli_cpu < 1.0,
        })
    return out


def run_tour_and_audit(base: Path) -> dict[str, Any]:
    """The demo's tour on a kept cluster, then ``audit_log`` on its ledger file."""
    from statledger.nodes.demo import TOUR, provider_datasets, querier_for, start_cluster
    from statledger.nodes.querier import run_rounds
    from statledger.protocol.query import QuerySpec
    from statledger.verifier.audit import audit_log

    t0 = time.perf_counter()
    cluster = start_cluster(base / "cluster", provider_datasets())
    startup = time.perf_counter() - t0
    per_query: dict[str, float] = {}
    try:
        with querier_for(cluster) as q:
            for item in TOUR:
                tq = time.perf_counter()
                run_rounds(q, QuerySpec.parse(item.spec), datasets=item.dataset)
                per_query[item.name] = round(time.perf_counter() - tq, 2)
    finally:
        cluster.stop()
    tour = time.perf_counter() - t0
    ledger_db = Path(cluster.layout.ledger.data_dir) / "ledger.sqlite"
    la = load_average()
    c0 = cpu_tree()
    t1 = time.perf_counter()
    summary = audit_log(str(ledger_db))
    audit = time.perf_counter() - t1
    audit_cpu = cpu_tree() - c0
    cc0 = _children_cpu()
    t1 = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 -- our own CLI
        [sys.executable, "-m", "statledger", "audit", str(ledger_db)],
        capture_output=True, text=True, check=False)
    audit_cli = time.perf_counter() - t1
    audit_cli_cpu = _children_cpu() - cc0
    return {
        "tour_startup_s": round(startup, 2),
        "tour_queries_s": per_query,
        "tour_wall_s": round(tour, 2),
        "ledger_bytes": ledger_db.stat().st_size,
        "audit_s": round(audit, 3),
        "audit_cpu_s": round(audit_cpu, 2),
        "audit_cli_s": round(audit_cli, 3),
        "audit_cli_exit": proc.returncode,
        "audit_cli_cpu_s": round(audit_cli_cpu, 2),
        "audit_load_average_before": la,
        "audit_summary": _brief(summary),
    }


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    """The audit summary without bulky per-entry detail."""
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if isinstance(v, list) and len(v) > 20:
            out[k] = f"<{len(v)} items>"
        else:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold-reps", type=int, default=5,
                    help="fresh `statledger verify` processes per certificate (median)")
    ap.add_argument("--no-audit", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", default=str(RESULTS / "demo.json"))
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="statledger-bench-demo-", dir=args.dir)
    base = Path(tmp.name)
    res: dict[str, Any] = {"bench": "demo", "python": sys.version.split()[0],
                           "cpus": os.cpu_count(), "machine": platform.machine()}
    res["demo"] = run_demo_subprocess(base / "demo-out")
    certs = verify_certificates(base / "demo-out" / "certificates", args.reps, args.cold_reps)
    res["certificates"] = certs
    res["all_certificates_under_1s"] = all(c["under_1s"] for c in certs)
    res["all_certificates_cpu_under_1s"] = all(c["cpu_under_1s"] for c in certs)
    res["load_average_during_verify"] = load_average()
    res["certificate_bytes_total"] = sum(c["bytes"] for c in certs)
    if not args.no_audit:
        res["audit"] = run_tour_and_audit(base / "tour")
        demo_wall = res["demo"]["wall_s"]
        res["ratios"] = {
            "demo_wall_over_audit": round(demo_wall / res["audit"]["audit_s"], 1),
            "demo_wall_over_audit_cli": round(demo_wall / res["audit"]["audit_cli_s"], 1),
            "tour_wall_over_audit": round(res["audit"]["tour_wall_s"] / res["audit"]["audit_s"],
                                          1),
            "audit_target_met": demo_wall / res["audit"]["audit_s"] >= 10.0,
        }
    text = json.dumps(res, indent=2, sort_keys=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
