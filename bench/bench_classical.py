"""ttest, chi2_independence and model_evaluation: the per-owner and per-verifier costs.  JSON.

    python bench/bench_classical.py              # 10,000 rows per owner, 5 repetitions

For each statistic, on generated rows: the layout (``entries`` per owner and
``range_bits_per_owner``, the bits its range proof covers before padding -- what the
encryption and proofs cost scales with), ``encode_cpu_s`` (one owner encoding its rows) and
``decode_cpu_s`` (the exact decoder every verifier re-runs at step 14, its log-gamma cache
emptied each time), medians of CPU time
(``time.process_time``: the machine is shared).  No cluster: the cryptographic costs per
entry and per bit are measured by bench_rangeproof.py / bench_drynx.py.
Prints one JSON object and writes it to ``bench/results/classical.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu(f: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return statistics.median(times)


def _cold(decode: Callable[..., Any], *args: Any) -> Any:
    """A decode as a fresh verifier runs it: the log-gamma cache emptied first."""
    from statledger.protocol.stats.exact import lgamma

    lgamma.cache_clear()
    return decode(*args)


def _specs(rows: int) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    from statledger.protocol.query import QuerySpec
    from statledger.protocol.stats.evaluation import evaluation_spec

    rng = np.random.default_rng(7)
    g = rng.choice(np.array(["a", "b"], dtype=object), rows)
    x = rng.normal(10, 3, rows)
    feats = ["x1", "x2", "x3"]
    X = rng.normal(0, 1, (rows, 3))
    y = X @ np.array([1.0, -0.5, 0.25]) + rng.normal(0, 1, rows)
    yb = (rng.random(rows) < 1 / (1 + np.exp(-(X @ np.array([1.0, -0.5, 0.25]))))).astype(float)
    table = {"g": g, "x": x, "r": rng.choice(np.array(list("ABCD"), dtype=object), rows),
             "c": rng.choice(np.array(list("VWXYZ"), dtype=object), rows),
             **{f: X[:, i] for i, f in enumerate(feats)}, "y": y, "yb": yb}
    b3 = {f: [-5.0, 5.0] for f in feats}
    lin_fit = QuerySpec.parse({"version": 1, "statistic": "linear_regression",
                               "columns": [*feats, "y"], "bounds": {**b3, "y": [-10.0, 10.0]},
                               "params": {"target": "y", "features": feats},
                               "max_rows": rows})
    log_fit = QuerySpec.parse({"version": 1, "statistic": "logistic_irls",
                               "columns": [*feats, "yb"], "bounds": {**b3, "yb": [0.0, 1.0]},
                               "params": {"target": "yb", "features": feats},
                               "max_rows": rows})
    coef = {"coef": [0.1, 1.0, -0.5, 0.25]}
    return {
        "ttest": ({"version": 1, "statistic": "ttest", "columns": ["x"], "group_by": ["g"],
                   "categories": {"g": ["a", "b"]}, "bounds": {"x": [-5.0, 25.0]},
                   "max_rows": rows}, table),
        "chi2_independence 4x5": ({"version": 1, "statistic": "chi2_independence",
                                   "group_by": ["r", "c"],
                                   "categories": {"r": list("ABCD"), "c": list("VWXYZ")},
                                   "max_rows": rows}, table),
        "model_evaluation linear (3 features)": (
            evaluation_spec(lin_fit, "ab" * 32, coef).to_json_obj(), table),
        "model_evaluation logistic (3 features, 100 bins)": (
            evaluation_spec(log_fit, "ab" * 32, coef).to_json_obj(), table),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from statledger.proofs.rangeproof import RangeLayout
    from statledger.protocol import calibration
    from statledger.protocol.query import QuerySpec
    from statledger.protocol.stats import get

    out: dict[str, Any] = {
        "bench": "classical", "rows_per_owner": args.rows, "reps": args.reps,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": list(os.getloadavg())},
        "statistics": {},
    }
    for name, (obj, table) in _specs(args.rows).items():
        spec = QuerySpec.parse(obj)
        st = get(spec.statistic)
        wire = calibration.wire_layout(spec).ranges
        vec = st.encode(spec, table)
        totals = [3 * v for v in vec]  # three owners with the same rows
        out["statistics"][name] = {
            "entries": len(wire),
            "range_bits_per_owner": RangeLayout.from_spans(
                [hi - lo for lo, hi in wire]).total_bits,
            "widest_entry_bits": max((hi - lo).bit_length() for lo, hi in wire),
            "encode_cpu_s": _cpu(lambda s=spec, t=table, st=st: st.encode(s, t), args.reps),
            "decode_cpu_s": _cpu(lambda s=spec, t=totals, st=st: _cold(st.decode, s, t),
                                 args.reps),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    out = run(ap.parse_args())
    text = json.dumps(out, indent=1)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "classical.json").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
