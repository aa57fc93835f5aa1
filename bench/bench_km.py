"""Kaplan-Meier at real resolution: lifelines' lung data on a daily grid, 3 sites.  JSON.

    python bench/bench_km.py                         # daily grid 1..1022, 3 sites, 1 run
    python bench/bench_km.py --max-ties 7 --cold 5   # per-point bound 7 (3-bit entries)
    python bench/bench_km.py --legacy                # the spec without max_ties (as before)

lifelines' ``load_lung`` (228 rows, times 5..1022 days, 186 distinct) is split into three
sites (rows ``i mod 3``), grouped by ``sex``; the query is ``kaplan_meier`` on the unit grid
``1..1022`` (``params.max_time``).  A local cluster (3 compute nodes, threshold 2, one owner
per site) runs it through the Python API (``statledger.local``).  Measured:

* ``result_wall_s``: ``Session.query`` from the spec to the certified result, with every
  phase's wall time (the querier's progress messages, timestamped), and
  ``result_cluster_cpu_s``: the CPU seconds of every process (this one, the cluster's nodes
  and their worker pools) meanwhile -- load-independent, where the wall time is not;
* ``entries`` / ``range_bits_per_owner``: the layout (per owner: encrypted entries, bits
  its range proof covers before padding);
* ``certificate_bytes``: the certificate file's size;
* ``verify_wall_s`` / ``verify_cpu_s``: ``verify_certificate`` in this process (median of
  ``--reps``), with the wall time of each numbered step (the verifier's progress hook);
* ``cold_verify_wall_s``: ``statledger verify FILE --trust TRUST`` in a fresh process
  (median of ``--cold``), the discrete-log table already cached;
* ``matches_lifelines``: the certified curves equal lifelines' on the pooled rows (1e-12).

Targets (issue 16): result <= 15 s, certificate <= 1.5 MB, verify <= 2 s, cold verify <= 1 s.
Prints one JSON object and writes it to ``bench/results/km.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from bench_drynx import cpu_snapshot, cpu_tree  # noqa: E402

TARGETS = {"result_wall_s": 15.0, "certificate_bytes": 1_500_000, "verify_wall_s": 2.0,
           "cold_verify_wall_s": 1.0}


def lung_sites(n_sites: int) -> tuple[Any, dict[str, Any]]:
    from lifelines.datasets import load_lung

    d = load_lung()[["time", "status", "sex"]].copy()
    d["time"] = d["time"].astype(float)
    d["status"] = d["status"].astype(float)
    d["sex"] = [str(int(v)) for v in d["sex"]]
    return d, {f"site{k + 1}": d.iloc[k::n_sites].reset_index(drop=True)
               for k in range(n_sites)}


def km_spec(max_time: int, max_ties: int | None, max_rows: int) -> dict[str, Any]:
    params: dict[str, Any] = {"time": "time", "event": "status", "max_time": max_time}
    if max_ties is not None:
        params["max_ties"] = max_ties
    return {"version": 1, "statistic": "kaplan_meier", "columns": ["time", "status"],
            "bounds": {"time": [0, max_time], "status": [0, 1]},
            "group_by": ["sex"], "categories": {"sex": ["1", "2"]},
            "params": params, "max_rows": max_rows,
            # the exact (lifelines-identical) table; min_cell_size >= 2 coarsens the grid
            # before decryption (bench/bench_km_coarsen.py)
            "min_cell_size": 1}


def matches_lifelines(values: dict[str, Any], pooled: Any) -> bool:
    from lifelines import KaplanMeierFitter

    for g in values["groups"]:
        m = pooled["sex"] == g["group"]["sex"]
        kmf = KaplanMeierFitter().fit(pooled["time"][m], pooled["status"][m])
        sf = kmf.survival_function_.iloc[:, 0]
        ci = kmf.confidence_interval_
        idx = [g["times"].index(float(t)) for t in sf.index]
        for ours, theirs in ((g["survival"], sf), (g["ci_lower"], ci.iloc[:, 0]),
                             (g["ci_upper"], ci.iloc[:, 1])):
            if np.max(np.abs(np.array(ours)[idx] - theirs.to_numpy())) > 1e-12:
                return False
    return True


def owner_figures(spec_obj: dict[str, Any], table: Any) -> dict[str, Any]:
    """One owner, in this process (CPU seconds): encode, encrypt + range-prove the vector,
    and one verification of that proof -- what every submission costs its owner and each
    party that checks it, without a cluster."""
    from statledger.proofs.group import Scalar, base_mul
    from statledger.proofs.vector import encrypt_vector_with_proof, verify_encrypted_vector
    from statledger.protocol import calibration
    from statledger.protocol.query import QuerySpec

    spec = QuerySpec.parse(spec_obj)
    tab = {c: table[c].to_numpy() for c in ("time", "status")}
    tab["sex"] = table["sex"].to_numpy(dtype=object)
    X = base_mul(Scalar.random())
    ranges = list(calibration.wire_layout(spec).ranges)
    c0 = time.process_time()
    values, _ = calibration.wire_encode(spec, tab, "site1")
    c1 = time.process_time()
    ev = encrypt_vector_with_proof(X, values, ranges, b"bench-km")
    c2 = time.process_time()
    verify_encrypted_vector(X, ev, ranges, b"bench-km")
    c3 = time.process_time()
    return {"encode_cpu_s": round(c1 - c0, 3), "prove_cpu_s": round(c2 - c1, 3),
            "verify_one_cpu_s": round(c3 - c2, 3), "submission_bytes": len(ev.to_bytes())}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import statledger
    from statledger.verifier.verify import load_trust, verify_certificate

    pooled, sites = lung_sites(args.sites)
    spec = km_spec(args.max_time, None if args.legacy else args.max_ties, args.max_rows)
    out: dict[str, Any] = {
        "bench": "kaplan_meier", "dataset": "lifelines load_lung", "sites": args.sites,
        "rows": len(pooled), "grid_points": args.max_time, "groups": 2,
        "max_ties": spec["params"].get("max_ties"), "max_rows": args.max_rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": list(os.getloadavg())},
        "targets": TARGETS,
    }
    from statledger.proofs.rangeproof import RangeLayout
    from statledger.protocol import calibration
    from statledger.protocol.query import QuerySpec

    wire = calibration.wire_layout(QuerySpec.parse(spec)).ranges
    out["entries"] = len(wire)
    out["range_bits_per_owner"] = RangeLayout.from_spans([hi - lo for lo, hi in
                                                          wire]).total_bits
    out["one_owner"] = owner_figures(spec, sites["site1"])
    if args.no_cluster:
        return out
    with tempfile.TemporaryDirectory(prefix="bench-km-") as tmp, \
            statledger.local(sites, compute=3, threshold=2) as session:
        stamps: list[tuple[float, str, dict[str, float]]] = []
        roots = {"querier": os.getpid(),
                 **{pid: p.pid for pid, p in session._cluster.procs.items()}}
        t0 = time.perf_counter()
        c0, k0 = time.process_time(), cpu_tree()
        cpu0 = cpu_snapshot(roots)
        result = session.query(spec, progress=lambda m: stamps.append(
            (time.perf_counter(), m, cpu_snapshot(roots))))
        cpu1 = cpu_snapshot(roots)
        out["result_wall_s"] = round(time.perf_counter() - t0, 3)
        out["result_querier_cpu_s"] = round(time.process_time() - c0, 3)
        out["result_cluster_cpu_s"] = round(cpu_tree() - k0, 3)
        prev, prev_cpu = t0, cpu0

        def busiest(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
            d = {k: round(b[k] - a.get(k, 0.0), 2) for k in b}
            return dict(sorted(((k, v) for k, v in d.items() if v >= 0.05),
                               key=lambda kv: -kv[1]))

        phases = []
        for t, msg, cpu in stamps:
            phases.append({"until": msg[:80], "wall_s": round(t - prev, 3),
                           "cpu_s": busiest(prev_cpu, cpu)})
            prev, prev_cpu = t, cpu
        phases.append({"until": "certified result", "wall_s": round(
            t0 + out["result_wall_s"] - prev, 3), "cpu_s": busiest(prev_cpu, cpu1)})
        out["result_phases"] = phases
        out["result_cpu_by_party_s"] = busiest(cpu0, cpu1)
        out["matches_lifelines"] = matches_lifelines(result.to_dict(), pooled)

        cert = Path(tmp) / "km.cert"
        result.save(cert)
        trust_file = Path(tmp) / "trust.json"
        session.save_trust(trust_file)
        raw = cert.read_bytes()
        out["certificate_bytes"] = len(raw)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / "km.cert").write_bytes(raw)
            (args.keep / "trust.json").write_bytes(trust_file.read_bytes())
        trust = load_trust(trust_file)

        walls, cpus, step_walls, step_cpus = [], [], [], []
        for _ in range(args.reps):
            steps: dict[int, float] = {}
            steps_cpu: dict[int, float] = {}
            last = [time.perf_counter(), time.process_time()]

            def hook(n: int, _detail: str, steps: dict[int, float] = steps,
                     steps_cpu: dict[int, float] = steps_cpu, last: list[float] = last) -> None:
                now, cpu = time.perf_counter(), time.process_time()
                steps[n] = round(now - last[0], 4)
                steps_cpu[n] = round(cpu - last[1], 4)
                last[0], last[1] = now, cpu

            w0, p0 = time.perf_counter(), time.process_time()
            report = verify_certificate(raw, trust, source=str(cert), progress=hook)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - p0)
            if not report.valid:
                raise RuntimeError(f"certificate invalid: step {report.step}: {report.reason}")
            step_walls.append(steps)
            step_cpus.append(steps_cpu)
        out["verify_wall_s"] = round(statistics.median(walls), 3)
        out["verify_cpu_s"] = round(statistics.median(cpus), 3)
        mid = walls.index(sorted(walls)[len(walls) // 2])
        out["verify_steps_wall_s"] = step_walls[mid]
        out["verify_steps_cpu_s"] = step_cpus[mid]

        cold, cold_cpu = [], []
        for _ in range(args.cold):
            r0 = os.times()
            w0 = time.perf_counter()
            proc = subprocess.run(  # noqa: S603 -- our own CLI
                [sys.executable, "-m", "statledger", "verify", str(cert), "--trust",
                 str(trust_file)], capture_output=True, text=True, check=False)
            cold.append(time.perf_counter() - w0)
            r1 = os.times()
            cold_cpu.append(r1.children_user + r1.children_system
                            - r0.children_user - r0.children_system)
            if proc.returncode != 0:
                raise RuntimeError(f"statledger verify exited {proc.returncode}: "
                                   f"{proc.stdout[-500:]} {proc.stderr[-500:]}")
        out["cold_verify_wall_s"] = round(statistics.median(cold), 3)
        out["cold_verify_runs_s"] = [round(c, 3) for c in cold]
        out["cold_verify_cpu_s"] = round(statistics.median(cold_cpu), 3)
    out["machine"]["load_average_end"] = list(os.getloadavg())
    out["met"] = {k: out[k] <= v for k, v in TARGETS.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--max-time", type=int, default=1022)
    ap.add_argument("--max-ties", type=int, default=7)
    ap.add_argument("--max-rows", type=int, default=1000)
    ap.add_argument("--legacy", action="store_true", help="no params.max_ties")
    ap.add_argument("--no-cluster", action="store_true",
                    help="only the one-owner figures, in this process")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS / "km.json")
    ap.add_argument("--keep", type=Path, default=None,
                    help="copy the certificate and the trust file into this folder")
    args = ap.parse_args()
    res = run(args)
    text = json.dumps(res, indent=1)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
