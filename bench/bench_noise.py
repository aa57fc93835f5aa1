"""Benchmark of verifiable distributed noise (protocol/noise.py, docs/noise.md); prints JSON.

Target case of the issue: a 100-entry result, ideal sigma = 10^3 integer units, rho = 1
(L2: sensitivity t = 141 per entry, sum t^2 / (2 rho) = 994,050), N = 3 nodes, T = 2.
Wall times are noisy on a shared machine; the ``*_cpu_s`` fields are this process's CPU
time (run with STATLEDGER_RANGE_PARALLEL=false so that no helper process does part of it).
"produce" = one node's round-1 commitment (bits, ElGamal, aggregated bit proof) + its
coin share; "verify" = everything a verifier does for the round (every node's bit proofs,
batched; the coin DLEQs; the derived shares of all N nodes).

    python bench/bench_noise.py [--entries 100] [--sensitivity 141] [--rho 1]
        [--max-inflation 1.5 3.0] [--bits-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from statledger.proofs.elgamal import encrypt, keygen
from statledger.proofs.group import Point
from statledger.proofs.sigma import prove_zero_one, verify_zero_one
from statledger.protocol.noise import (
    calibrate,
    coin_base,
    commit_noise,
    commitments_digest,
    make_coin_share,
    privacy_bound,
    verify_noise_round,
)


def zero_one_per_bit(samples: int = 200) -> dict[str, float]:
    x, X = keygen()
    from statledger.proofs.group import Scalar

    r = Scalar.random()
    ct = encrypt(X, 1, r)
    t0 = time.perf_counter()
    proofs = [prove_zero_one(X, ct, 1, r, b"bench") for _ in range(samples)]
    t1 = time.perf_counter()
    for p in proofs:
        verify_zero_one(X, ct, p, b"bench")
    t2 = time.perf_counter()
    return {"prove_ms": 1e3 * (t1 - t0) / samples, "verify_ms": 1e3 * (t2 - t1) / samples}


def run_case(entries: int, t: int, rho: float, n: int, thr: int, infl: float,
             bits_only: bool) -> dict[str, object]:
    sens = [t] * entries
    t0 = time.perf_counter()
    params = calibrate(sens, rho, n, thr, max_inflation=infl)
    t_cal = time.perf_counter() - t0
    bound = privacy_bound(params, sens)
    ideal = sum(x * x for x in sens) / (2 * rho)
    out: dict[str, object] = {
        "entries": entries, "sensitivity": t, "rho_target": rho, "N": n, "T": thr,
        "max_inflation": infl, "params": params.to_json_obj(),
        "bits_per_entry_per_node": params.bits_per_entry,
        "bits_per_node": params.total_bits,
        "rho_bound": bound.rho, "delta_bound": bound.delta,
        "honest_sigma": float(params.honest_variance) ** 0.5,
        "released_sigma": float(params.total_variance) ** 0.5,
        "ideal_sigma": ideal**0.5,
        "variance_inflation_honest": float(params.honest_variance) / ideal,
        "calibrate_s": t_cal,
    }
    if bits_only:
        return out
    keys = [keygen() for _ in range(n)]
    names = [f"node-{i}" for i in range(n)]
    X = Point.identity()
    for _, K in keys:
        X = X + K
    q = "bench-query"
    coms = []
    t_commit = []
    cpu_commit = []
    for name in names:
        t0, c0 = time.perf_counter(), time.process_time()
        coms.append(commit_noise(X, params, q, name))
        t_commit.append(time.perf_counter() - t0)
        cpu_commit.append(time.process_time() - c0)
    t0 = time.perf_counter()
    P = coin_base(q, commitments_digest(params, q, coms))
    shares = [make_coin_share(k, K, P, q, nm) for nm, (k, K) in zip(names, keys, strict=True)]
    t_coin = (time.perf_counter() - t0) / n
    roster = [(nm, K) for nm, (_, K) in zip(names, keys, strict=True)]
    t0, c0 = time.perf_counter(), time.process_time()
    verify_noise_round(X, params, q, roster, coms, shares)
    t_verify = time.perf_counter() - t0
    cpu_verify = time.process_time() - c0
    t0 = time.perf_counter()
    verify_noise_round(X, params, q, roster, coms, shares, batch=False)
    t_verify_seq = time.perf_counter() - t0
    out.update({
        "produce_per_node_s": max(t_commit) + t_coin,
        "commit_per_node_s": t_commit,
        "commit_per_node_cpu_s": cpu_commit,
        "verify_round_batched_cpu_s": cpu_verify,
        "coin_share_per_node_s": t_coin,
        "verify_round_batched_s": t_verify,
        "verify_round_sequential_s": t_verify_seq,
        "commitment_bytes_per_node": len(coms[0].to_bytes()),
        "coin_share_bytes": 33 + 64,
    })
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--sensitivity", type=int, default=141)
    ap.add_argument("--rho", type=float, default=1.0)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--threshold", type=int, default=2)
    ap.add_argument("--max-inflation", type=float, nargs="+", default=[1.5, 3.0])
    ap.add_argument("--bits-only", action="store_true")
    a = ap.parse_args()
    res = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()[0]},
        "zero_one_per_bit": zero_one_per_bit(),
        "cases": [run_case(a.entries, a.sensitivity, a.rho, a.nodes, a.threshold, infl,
                           a.bits_only) for infl in a.max_inflation],
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
