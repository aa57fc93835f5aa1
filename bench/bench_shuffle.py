"""Benchmark: the verifiable shuffle (proofs/shuffle.py, Terelius--Wikstrom).  Prints JSON.

    python bench/bench_shuffle.py                      # N = 100, 1,000, 10,000; 3 runs each
    python bench/bench_shuffle.py --sizes 100 1000     # skip 10,000
    python bench/bench_shuffle.py --repeat 1

For each N: the cold cost of the N commitment generators (hash-to-curve, cached afterwards),
the re-encryption, ``prove_shuffle``, ``verify_shuffle`` and the proof's decoding, each as the
median wall time and the median CPU time (``time.process_time``) of ``--repeat`` runs, with
the number of scalar multiplications (``shuffle_costs``) and the floor they imply ("base" =
fixed-base k*G ~15 us, "var" = variable-base ~26 us on this machine).  CPU time is reported
next to wall time because the machine is shared: under load, wall time measures the
neighbours too.  Yardstick: Drynx (Froelicher et al., 2020) reports 82 s to shuffle (with
proof) a list of 10,000 noise values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from statledger.proofs.elgamal import encrypt, keygen, rerandomize  # noqa: E402
from statledger.proofs.group import Scalar  # noqa: E402
from statledger.proofs.shuffle import (  # noqa: E402
    ShuffleProof,
    _random_permutation,
    prove_shuffle,
    shuffle_costs,
    shuffle_generators,
    verify_shuffle,
)

BASE_US = 15.0
VAR_US = 26.0
DRYNX_10K_S = 82.0


def floor_s(mults: dict[str, int]) -> float:
    return round((mults["base"] * BASE_US + mults["var"] * VAR_US) / 1e6, 3)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    """Median wall and CPU seconds over ``repeat`` runs, and the last result."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall_s": round(statistics.median(walls), 4),
            "cpu_s": round(statistics.median(cpus), 4)}, result


def bench_size(n: int, repeat: int) -> dict[str, Any]:
    _x, X = keygen()
    ctx = b"bench/shuffle|query-0001|compute-1"
    inputs = [encrypt(X, (i % 201) - 100) for i in range(n)]
    costs = shuffle_costs(n)
    gens, _ = timed(lambda: shuffle_generators(n), 1)  # cold on the first N of this size
    perm = _random_permutation(n)
    rs = [Scalar.random() for _ in range(n)]

    def reencrypt() -> list[Any]:
        return [rerandomize(X, inputs[perm[i]], rs[i]) for i in range(n)]

    reenc, outputs = timed(reencrypt, repeat)
    prove, proof = timed(lambda: prove_shuffle(X, inputs, outputs, perm, rs, ctx), repeat)
    verify, _ = timed(lambda: verify_shuffle(X, inputs, outputs, proof, ctx), repeat)
    data = proof.to_bytes()
    decode, _ = timed(lambda: ShuffleProof.from_bytes(data, n), repeat)
    shuffle_total = {k: round(reenc[k] + prove[k], 4) for k in reenc}
    return {
        "n": n,
        "generators_cold": gens,
        "reencrypt": {**reenc, "mults": costs["reencrypt"],
                      "floor_s": floor_s(costs["reencrypt"])},
        "prove": {**prove, "mults": costs["prove"], "floor_s": floor_s(costs["prove"]),
                  "per_element_ms": round(prove["cpu_s"] / n * 1000, 4)},
        "verify": {**verify, "mults": costs["verify"], "floor_s": floor_s(costs["verify"]),
                   "per_element_ms": round(verify["cpu_s"] / n * 1000, 4)},
        "decode_proof": decode,
        "shuffle_plus_prove": shuffle_total,
        "proof_bytes": len(data),
        "proof_bytes_per_element": round(len(data) / n, 2),
        "drynx_10k_s_scaled": round(DRYNX_10K_S * n / 10_000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_start": os.getloadavg()},
        "floor_us": {"base_mult": BASE_US, "var_mult": VAR_US},
        "yardstick": {"drynx_shuffle_10k_values_s": DRYNX_10K_S},
        "sizes": [bench_size(n, args.repeat) for n in args.sizes],
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
