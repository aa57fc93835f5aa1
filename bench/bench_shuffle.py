"""Benchmark: the verifiable shuffle (proofs/shuffle.py, Terelius--Wikstrom).  Prints JSON.

    python bench/bench_shuffle.py                      # N = 100, 1,000, 10,000; 3 runs each
    python bench/bench_shuffle.py --sizes 100 1000     # skip 10,000
    python bench/bench_shuffle.py --repeat 1
    python bench/bench_shuffle.py --sizes --pet-k 5 --pet-cells 1 10 150 300   # the PET only

For each N: the cold cost of the N commitment generators (hash-to-curve, cached afterwards),
the re-encryption, ``prove_shuffle``, ``verify_shuffle`` and the proof's decoding, each as the
median wall time and the median CPU time (``time.process_time``) of ``--repeat`` runs, with
the number of scalar multiplications (``shuffle_costs``) and the floor they imply ("base" =
fixed-base k*G ~15 us, "var" = variable-base ~26 us on this machine).  CPU time is reported
next to wall time because the machine is shared: under load, wall time measures the
neighbours too.  Yardstick: Drynx (Froelicher et al., 2020) reports 82 s to shuffle (with
proof) a list of 10,000 noise values.

``pet``: the blinded shuffled PET's gate cells (protocol/pet.py), ``k`` candidates per cell:
one node's step per cell (``blind_and_shuffle``: ``k`` DLEQ-pair proofs and one shuffle
proof), its proof bytes, and verifying ``cells`` cells one proof at a time (each proof by its
own verifier: ``sigma.verify_dleq_pair``, ``verify_shuffle``) against all of them batched
(``pet.verify_cells``: one random linear combination, one msm of ``terms`` points), CPU per
cell.  The demo's Kaplan--Meier certificate checks 150 cells x 2 steps of k = 5.
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

from statledger.proofs import batch, sigma  # noqa: E402
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


def bench_pet(k: int, cells: int, repeat: int) -> dict[str, Any]:
    from statledger.protocol import pet

    _x, X = keygen()
    qid = "ab" * 32
    counts = [(7 * c) % (3 * k) for c in range(cells)]
    inputs = [pet.candidates(encrypt(X, n), k) for n in counts]
    ctxs = [pet.pet_context(qid, "node-1", c) for c in range(cells)]
    c0 = time.process_time()
    batches = [pet.blind_and_shuffle(X, w, ctx) for w, ctx in zip(inputs, ctxs, strict=True)]
    prove_cpu = time.process_time() - c0
    checks = [pet.PetCheck(w, b, ctx, "node-1", f"cell {c}")
              for c, (w, b, ctx) in enumerate(zip(inputs, batches, ctxs, strict=True))]

    def one_by_one() -> None:
        for ch in checks:
            b = ch.batch
            for w, d, p in zip(ch.inputs, b.blinded, b.blind_proofs, strict=True):
                sigma.verify_dleq_pair(w.C1, w.C2, d.C1, d.C2, p, ch.context)
            verify_shuffle(X, list(b.blinded), list(b.shuffled), b.shuffle_proof, ch.context)

    terms: list[int] = []
    holds = batch.holds

    def counting(eqs: Any) -> bool:
        eqs = list(eqs)
        terms.append(len({id(P) for eq in eqs for _, P in eq}))
        return holds(eqs)

    single, _ = timed(one_by_one, repeat)
    batch.holds = counting  # type: ignore[assignment]
    try:
        pet.verify_cells(X, checks, step="bench")
    finally:
        batch.holds = holds  # type: ignore[assignment]
    batched, _ = timed(lambda: pet.verify_cells(X, checks, step="bench"), repeat)
    b0 = batches[0]
    return {
        "k": k,
        "cells": cells,
        "prove_cpu_ms_per_cell": round(prove_cpu / cells * 1000, 3),
        "proof_bytes_per_cell": (sum(len(p.to_bytes()) for p in b0.blind_proofs)
                                 + len(b0.shuffle_proof.to_bytes())),
        "dleq_pair_proof_bytes": len(b0.blind_proofs[0].to_bytes()),
        "shuffle_proof_bytes": len(b0.shuffle_proof.to_bytes()),
        "verify_one_by_one_cpu_ms_per_cell": round(single["cpu_s"] / cells * 1000, 3),
        "verify_batched_cpu_ms_per_cell": round(batched["cpu_s"] / cells * 1000, 3),
        "verify_batched_cpu_s": batched["cpu_s"],
        "verify_batched_wall_s": batched["wall_s"],
        "msm_terms": terms[0] if terms else None,
        "speedup": round(single["cpu_s"] / batched["cpu_s"], 2) if batched["cpu_s"] else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pet-k", type=int, nargs="*", default=[5, 10],
                    help="PET candidates per cell (none: skip the PET section)")
    ap.add_argument("--pet-cells", type=int, nargs="+", default=[1, 10, 150, 300])
    args = ap.parse_args()
    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_start": os.getloadavg()},
        "floor_us": {"base_mult": BASE_US, "var_mult": VAR_US},
        "yardstick": {"drynx_shuffle_10k_values_s": DRYNX_10K_S},
        "sizes": [bench_size(n, args.repeat) for n in args.sizes],
        "pet": [bench_pet(k, cells, args.repeat) for k in args.pet_k for cells in args.pet_cells],
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
