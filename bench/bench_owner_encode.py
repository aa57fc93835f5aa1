"""One data owner's local encoding of an OLS query over a large Parquet file: the DuckDB
engine (out of core, every core) against the in-memory path (JSON output).

    python bench/bench_owner_encode.py                   # 10^7 rows x 12 columns (~2-4 min)
    python bench/bench_owner_encode.py --rows 1000000    # a smaller run

The file (generated into a temporary folder, fixed seed, row groups of 10^6 rows): 11
features ``x01..x11 ~ Normal`` and a target ``y`` linear in them plus noise, 5 % of the cells
of ``x01`` missing (NaN).  The query: ``linear_regression`` of ``y`` on the 11 features
(91 entries: ``n``, 12 sums, 78 cross products), scale 2^16.

Each engine runs in a fresh child process (``--child``), which reports its wall time, its
CPU seconds (``resource.getrusage``: user + system of the process, every DuckDB thread
included) and its peak memory (``ru_maxrss``, and ``VmHWM`` of ``/proc/self/status``; the
file is generated in another child so that this process stays small, as a child's
``ru_maxrss`` starts from its parent's size at the fork).  What is timed is what a
provider node does for a query: open the dataset, then ``calibration.wire_encode`` (the
vector, the local report and the selected-rows mask).

The in-memory path (``load_table`` + the statistic's ``encode``) holds every cell as a Python
object while loading; at 10^7 x 12 it needs tens of GB, so it is measured on the first
``--pandas-rows`` rows (default 10^6, its own file) and its figures are also given scaled
linearly to the full size (marked ``extrapolated``).  Both engines' vectors are compared on
that smaller file (``vectors_equal``).

Targets (issue 16): DuckDB encode <= 15 s wall and <= 1 GiB peak memory at 10^7 x 12.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = [f"x{i:02d}" for i in range(1, 12)]
SEED = 165
TARGET_WALL_S = 15.0
TARGET_RSS_BYTES = 1 << 30


def spec_obj(scale: int = 2**16, max_rows: int = 2**26) -> dict[str, Any]:
    bounds = {f: [-6.0, 6.0] for f in FEATURES}
    bounds["y"] = [-40.0, 40.0]
    return {"version": 1, "statistic": "linear_regression", "columns": [*FEATURES, "y"],
            "bounds": bounds, "params": {"target": "y", "features": FEATURES},
            "scale": scale, "max_rows": max_rows}


def generate(path: Path, rows: int, chunk: int = 1_000_000) -> float:
    """Write the Parquet file in row groups; return the seconds it took."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    beta = np.linspace(-1.0, 1.0, len(FEATURES))
    schema = pa.schema([(c, pa.float64()) for c in [*FEATURES, "y"]])
    with pq.ParquetWriter(path, schema) as w:
        done = 0
        while done < rows:
            m = min(chunk, rows - done)
            x = rng.normal(0.0, 1.5, (m, len(FEATURES)))
            y = 0.5 + x @ beta + rng.normal(0.0, 2.0, m)
            x[rng.random(m) < 0.05, 0] = np.nan
            cols = [pa.array(x[:, j]) for j in range(len(FEATURES))] + [pa.array(y)]
            w.write_table(pa.table(cols, schema=schema))
            done += m
    return time.perf_counter() - t0


def child(engine: str, path: str) -> dict[str, Any]:
    """Open + encode in this (fresh) process; wall, CPU and peak memory."""
    from statledger.nodes.data import load_table
    from statledger.protocol import calibration
    from statledger.protocol.query import QuerySpec

    spec = QuerySpec.parse(spec_obj())
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    table = load_table(path, engine=engine)
    t1 = time.perf_counter()
    values, report = calibration.wire_encode(spec, table, "bench")
    t2 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    hwm = 0
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return {"engine": engine, "peak_hwm_bytes": hwm, "open_s": round(t1 - t0, 3),
            "encode_s": round(t2 - t1, 3), "wall_s": round(t2 - t0, 3),
            "cpu_s": round((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), 3),
            "peak_rss_bytes": r1.ru_maxrss * 1024, "n_selected": report.n_selected,
            "entries": len(values), "vector": [str(v) for v in values]}


def _generate_in_child(path: Path, rows: int) -> float:
    """Generate in a child, so that this process stays small: a child's ``ru_maxrss`` starts
    from its parent's size at the fork (Linux keeps it across exec)."""
    proc = subprocess.run(  # noqa: S603 - this script
        [sys.executable, __file__, "--gen", str(path), str(rows)],
        capture_output=True, text=True, check=True)
    return float(proc.stdout)


def _run_child(engine: str, path: Path) -> dict[str, Any]:
    proc = subprocess.run(  # noqa: S603 - this script
        [sys.executable, __file__, "--child", engine, str(path)],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"engine": engine, "error": proc.stderr[-2000:]}
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--pandas-rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                          / "owner_encode.json"))
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--gen", nargs=2, metavar=("PATH", "ROWS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.gen:
        sys.stdout.write(f"{generate(Path(args.gen[0]), int(args.gen[1])):.3f}\n")
        return 0
    if args.child:
        sys.stdout.write(json.dumps(child(*args.child)) + "\n")
        return 0

    res: dict[str, Any] = {"bench": "owner_encode", "python": sys.version.split()[0],
                           "cpus": os.cpu_count(), "machine": platform.machine(),
                           "rows": args.rows, "columns": len(FEATURES) + 1,
                           "pandas_rows": args.pandas_rows, "statistic": "linear_regression",
                           "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="statledger-owner-", dir=args.dir) as d:
        big, small = Path(d) / "big.parquet", Path(d) / "small.parquet"
        res["generate_s"] = round(_generate_in_child(big, args.rows), 2)
        res["file_bytes"] = big.stat().st_size
        _generate_in_child(small, min(args.pandas_rows, args.rows))
        duck = _run_child("duckdb", big)
        duck_small = _run_child("duckdb", small)
        mem_small = _run_child("pandas", small)
    ratio = args.rows / min(args.pandas_rows, args.rows)
    res["duckdb"] = {k: v for k, v in duck.items() if k != "vector"}
    res["duckdb_small"] = {k: v for k, v in duck_small.items() if k != "vector"}
    res["pandas_small"] = {k: v for k, v in mem_small.items() if k != "vector"}
    res["vectors_equal"] = duck_small.get("vector") == mem_small.get("vector")
    if "wall_s" in mem_small:
        res["pandas_extrapolated"] = {
            "wall_s": round(mem_small["wall_s"] * ratio, 1),
            "cpu_s": round(mem_small["cpu_s"] * ratio, 1),
            "peak_rss_bytes": int(mem_small["peak_rss_bytes"] * ratio),
            "peak_hwm_bytes": int(mem_small["peak_hwm_bytes"] * ratio),
            "note": f"the {args.pandas_rows}-row figures times {ratio:g} (linear)"}
    if "wall_s" in duck:
        res["targets"] = {
            "wall_s": TARGET_WALL_S, "peak_rss_bytes": TARGET_RSS_BYTES,
            "wall_met": duck["wall_s"] <= TARGET_WALL_S,
            "cpu_met": duck["cpu_s"] <= TARGET_WALL_S * (os.cpu_count() or 1),
            "memory_met": max(duck["peak_rss_bytes"], duck["peak_hwm_bytes"])
            <= TARGET_RSS_BYTES}
    res["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(res, indent=2, sort_keys=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
