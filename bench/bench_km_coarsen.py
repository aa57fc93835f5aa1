"""Benchmark: Kaplan-Meier coarsened before decryption (release groups).  Prints JSON.

    python bench/bench_km_coarsen.py                 # the demo's KM (waltons, 2 x 75 points)
    python bench/bench_km_coarsen.py --repeat 1

An exact ``kaplan_meier`` with ``min_cell_size = k >= 2`` gates every (group, grid point)
events count with the PET (its per-cell cost: ``bench/bench_suppression.py``), then decrypts
release groups: the members' ciphertexts added limb by limb, one decryption per group.  On
the pooled encodings of the bundled waltons sites (the demo's spec, ``k = 5``; encrypted here
entry by entry under a 3-share key, no range proofs: they are not this bench's subject),
measured as the median CPU time (``time.process_time``: the machine is shared) of
``--repeat`` runs:

* ``decide_ms``: ``suppression.decide`` on the PET bits (the rule every node and the verifier
  run: ``Statistic.release_groups`` + the generic checks);
* ``sum_ms``: the group sums (``suppression.select``: limb-wise ciphertext additions);
* ``shares_ms`` / ``shares_all_ms``: one node's decryption shares (batched DLEQ) of the group
  sums, and of every entry (what the exact table, ``min_cell_size = 1``, decrypts);
* ``decrypt_ms``: combining ``T`` nodes' shares, discrete logs, limbs (``flow.decrypt_totals``
  with ``suppression.sub_ranges``), checked equal to the clear sums.

Also the counts that set the PET's cost: ``gates`` (cells tested) and the ciphertexts
decrypted with and without coarsening.  Writes ``bench/results/km_coarsen.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_suppression import _cpu  # noqa: E402

from statledger.proofs.elgamal import encrypt, split_limbs  # noqa: E402
from statledger.proofs.group import Scalar, base_mul  # noqa: E402
from statledger.proofs.vector import LIMB_BITS, n_limbs  # noqa: E402
from statledger.protocol import datasets, dkg, flow, suppression  # noqa: E402
from statledger.protocol.query import QuerySpec  # noqa: E402
from statledger.protocol.stats import get as get_statistic  # noqa: E402

T = 3
QID = "0" * 64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from statledger.nodes.demo import TOUR

    spec = QuerySpec.parse(next(t for t in TOUR if t.name == "kaplan_meier").spec)
    km = get_statistic("kaplan_meier")
    layout = km.layout(spec)
    sites = datasets.sites("waltons")
    encoded = [km.encode(spec, datasets.load("waltons", s)) for s in sites]
    clear = [sum(col) for col in zip(*encoded, strict=True)]
    shares = [Scalar.random() for _ in range(T)]
    weights = dkg.lagrange_at_zero(list(range(1, T + 1)))
    x = sum((w * s for w, s in zip(weights, shares, strict=True)), Scalar(0))
    X = base_mul(x)
    # the aggregate: per entry, the sum over sites of each site's limb encryptions
    agg = []
    for j, (lo, hi) in enumerate(layout.ranges):
        limbs = None
        for vec in encoded:
            cts = [encrypt(X, v) for v in split_limbs(vec[j] - lo, LIMB_BITS, n_limbs(lo, hi))]
            limbs = cts if limbs is None else [a + b for a, b in zip(limbs, cts, strict=True)]
        agg.append(limbs)
    ranges = [list(layout.ranges) for _ in sites]
    gates = suppression.gate_entries(spec)
    small = [clear[g] < spec.min_cell_size for g in gates]

    decide_s, decision = _cpu(lambda: suppression.decide(spec, small), args.repeat)
    groups = decision.groups()
    sum_s, sums = _cpu(lambda: suppression.select(agg, groups), args.repeat)
    flat, flat_all = flow.decryption_targets(spec, sums), flow.decryption_targets(spec, agg)
    ys = [base_mul(s) for s in shares]
    share_s, _ = _cpu(lambda: flow.make_decryption(
        shares[0], ys[0], flat, flow.decryption_context(QID, "node-0")), args.repeat)
    share_all_s, _ = _cpu(lambda: flow.make_decryption(
        shares[0], ys[0], flat_all, flow.decryption_context(QID, "node-0")), args.repeat)
    node_shares = [[s * ct.C1 for ct in flat] for s in shares]
    dec_s, totals = _cpu(lambda: flow.decrypt_totals(
        spec, sums, node_shares, suppression.sub_ranges(ranges, groups), weights),
        args.repeat)
    if totals != [sum(clear[j] for j in g) for g in groups]:
        raise SystemExit("bench: the group sums do not decrypt to the clear sums")
    out = {
        "bench": "km_coarsen",
        "spec": "demo kaplan_meier (waltons, 2 groups x 75 points, min_cell_size 5)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_start": list(os.getloadavg())},
        "entries": len(layout),
        "gates": len(gates),
        "small_gates": sum(small),
        "release_groups": len(groups),
        "merged_groups": len(decision.merged),
        "ciphertexts_decrypted": len(flat),
        "ciphertexts_decrypted_exact_table": len(flat_all),
        "decide_ms": round(decide_s * 1e3, 3),
        "sum_ms": round(sum_s * 1e3, 3),
        "shares_ms": round(share_s * 1e3, 3),
        "shares_all_ms": round(share_all_s * 1e3, 3),
        "decrypt_ms": round(dec_s * 1e3, 3),
        "pet_cost_note": "the PET adds, per gate and compute node, bench_suppression's "
                         "per_cell_per_node_ms at k = min_cell_size",
    }
    text = json.dumps(out, indent=1)
    print(text)
    dest = Path(__file__).resolve().parent / "results" / "km_coarsen.json"
    dest.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
