"""Benchmark: suppression before decryption, the blinded shuffled PET gate.  Prints JSON.

    python bench/bench_suppression.py                         # k = 5, 10; 10 and 100 cells
    python bench/bench_suppression.py --k 5 --cells 10 --repeat 1

The gate of a crosstab (protocol/suppression.py, protocol/pet.py, docs/notes/pet.md): per
cell ``k = min_cell_size`` candidates ``Enc(n - j)``; ``T = 3`` compute nodes in sequence
each blind (a DLEQ-pair proof per ciphertext) and shuffle (Terelius--Wikstrom proof) them;
then every node publishes decryption shares of the last ``k`` ciphertexts per cell (one
batched DLEQ) and the querier looks for a zero.  Measured, as the median CPU time
(``time.process_time``: the machine is shared) of ``--repeat`` runs, per cell:

* ``pet_step``: one node's step (``pet.blind_and_shuffle``);
* ``check_step``: checking one node's step (``pet.verify_batch``) -- what the next nodes, the
  querier and the verifier do for every step of the chain;
* ``gate_share``: one node's decryption shares of the chain's output (``flow.make_decryption``,
  gate context) and ``check_gate``: checking one node's gate entry;
* ``decide``: combining ``T`` nodes' shares and the identity test (``pet.is_small``).

``per_cell_per_node_ms`` = ``pet_step + T * check_step + gate_share + T * check_gate``: a node's
own work per cell (its step, one check of every step of the chain -- a node remembers the
steps it verified, ``check_pet_chain(known=...)``, so its checks before its step, its gate
shares and its decryption verify each step once --, its gate shares, the ``T`` gate entries it
checks before it decrypts).  ``per_cell_per_node_with_rechecks_ms`` counts ``3T`` step checks:
a node restarted between the phases (its memory is not persisted).  The issue's target is
<= 50 ms per cell per compute node.
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

from statledger.proofs.elgamal import Ciphertext, encrypt  # noqa: E402
from statledger.proofs.group import Scalar, base_mul  # noqa: E402
from statledger.protocol import dkg, flow, pet, suppression  # noqa: E402

TARGET_MS_PER_CELL = 50.0
T = 3
QID = "0" * 64


def _cpu(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), out


def bench(k: int, cells: int, repeat: int) -> dict[str, Any]:
    # T shares of a collective key (Shamir at points 1..T), the key x = sum w_j x_j
    shares = [Scalar.random() for _ in range(T)]
    weights = dkg.lagrange_at_zero(list(range(1, T + 1)))
    x = sum((w * s for w, s in zip(weights, shares, strict=True)), Scalar(0))
    X = base_mul(x)
    counts = [(i * 3) % (2 * k) for i in range(cells)]  # about half below k, zeros included
    inputs = [pet.candidates(encrypt(X, n), k) for n in counts]

    def ctx(node: int, cell: int) -> bytes:
        return pet.pet_context(QID, f"node-{node}", cell)

    # the chain: T steps (the first one timed as "pet_step")
    chain: list[list[pet.PetBatch]] = []
    current = inputs
    step_s = 0.0
    for node in range(T):
        t, batches = _cpu(lambda cur=current, nd=node: [  # type: ignore[misc]
            pet.blind_and_shuffle(X, cell, ctx(nd, c)) for c, cell in enumerate(cur)],
            repeat if node == 0 else 1)
        if node == 0:
            step_s = t
        chain.append(batches)
        current = [list(b.shuffled) for b in batches]

    def check_first() -> None:
        for c, (w, b) in enumerate(zip(inputs, chain[0], strict=True)):
            pet.verify_batch(X, w, b, ctx(0, c), party="node-0", step="bench")

    check_s, _ = _cpu(check_first, repeat)
    final: list[Ciphertext] = [ct for cell in current for ct in cell]
    gctx = suppression.gate_context(QID, "node-0")
    Y = base_mul(shares[0])
    gate_s, made = _cpu(lambda: flow.make_decryption(shares[0], Y, final, gctx), repeat)
    d, proof = made
    check_gate_s, _ = _cpu(lambda: flow.verify_decryption(Y, final, d, proof, gctx,
                                                          party="node-0", step="bench"), repeat)
    all_shares = [[s * ct.C1 for ct in final] for s in shares]

    def decide() -> list[bool]:
        return [pet.is_small(cell, [sh[c * k:(c + 1) * k] for sh in all_shares], weights)
                for c, cell in enumerate(current)]

    decide_s, small = _cpu(decide, repeat)
    if small != [n < k for n in counts]:
        raise SystemExit("bench: the PET bits are not n < k")
    per_cell = {
        "pet_step_ms": round(step_s / cells * 1e3, 4),
        "check_step_ms": round(check_s / cells * 1e3, 4),
        "gate_share_ms": round(gate_s / cells * 1e3, 4),
        "check_gate_ms": round(check_gate_s / cells * 1e3, 4),
        "decide_ms": round(decide_s / cells * 1e3, 4),
    }
    base = per_cell["pet_step_ms"] + per_cell["gate_share_ms"] + T * per_cell["check_gate_ms"]
    node_total = base + T * per_cell["check_step_ms"]
    with_rechecks = base + 3 * T * per_cell["check_step_ms"]
    return {
        "k": k,
        "cells": cells,
        "pet_ciphertexts_per_step": cells * k,
        "small_cells": sum(small),
        "per_cell": per_cell,
        "per_cell_per_node_ms": round(node_total, 4),
        "per_cell_per_node_with_rechecks_ms": round(with_rechecks, 4),
        "per_cell_verifier_ms": round(T * per_cell["check_step_ms"]
                                      + T * per_cell["check_gate_ms"]
                                      + per_cell["decide_ms"], 4),
        "target_ms_per_cell_per_node": TARGET_MS_PER_CELL,
        "target_met": node_total <= TARGET_MS_PER_CELL,
        "target_met_with_rechecks": with_rechecks <= TARGET_MS_PER_CELL,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--cells", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    out = {
        "benchmark": "suppression before decryption: blinded shuffled PET gate",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()},
        "threshold": T,
        "runs": [bench(k, c, args.repeat) for k in args.k for c in args.cells],
        "note": ("only the bit n < k is revealed per cell (an empty cell is small); the counts "
                 "of small cells are never decrypted"),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
