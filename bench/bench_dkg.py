"""Benchmark of the distributed key generation (protocol/dkg.py, docs/dkg.md); prints JSON.

Per case (N nodes, threshold T) the CPU seconds (``time.process_time``, this process only;
every node is simulated in this one process, one after the other) of:

* ``deal``: all N nodes' :func:`deal`;
* ``open``: all N nodes opening all N deals (N^2 :func:`open_share`);
* ``key_commit``: all N nodes' :func:`key_commit`;
* ``derive``: one verifier's :func:`derive` over the whole transcript;
* ``total``: the sum of those four (the whole DKG as the brief counts it);
* ``node_secret``: all N nodes' :func:`node_secret` (re-opens the node's own shares; a node
  that kept them from ``open`` only adds them up);
* ``abort_path``: one QUAL dealer withholds its key commitment; T nodes disclose
  (:func:`disclose`) and one verifier derives with reconstruction.

* ``reshare_s``: a refresh of the N-node key among the same N nodes, every message built
  through :mod:`statledger.protocol.ceremony` as the nodes build them (N transport keys, N
  deals of the previous shares, N acks, N key commitments), then one verifier's derivation
  and every node's new share (``reshare_total_s``: all of it), and ``reshare_derive_s``, the
  derivation alone.

Each figure is the median of ``--repeat`` runs.  ``combine`` compares decrypting with T
shares (Lagrange coefficients + one msm) to the n-of-n plain sum of N shares (one
libsecp256k1 combine), per call in microseconds.

    python bench/bench_dkg.py [--repeat 5] [--cases 5:3 3:2 7:4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

from statledger.proofs.elgamal import encrypt, keygen
from statledger.proofs.group import Point, Scalar, sum_points
from statledger.protocol import ceremony
from statledger.protocol.dkg import (
    DkgParams,
    Prior,
    combine,
    deal,
    derive,
    disclose,
    key_commit,
    lagrange_at_zero,
    node_secret,
    open_share,
)

R = TypeVar("R")
CONSORTIUM = "ab" * 32


def _cpu(fn: Callable[[], R]) -> tuple[float, R]:
    c0 = time.process_time()
    out = fn()
    return time.process_time() - c0, out


def one_run(n: int, t: int) -> dict[str, float | int]:
    nodes = tuple(f"node-{i:02d}" for i in range(n))
    params = DkgParams(CONSORTIUM, 0, nodes, t)
    keys = {node: keygen() for node in nodes}
    X = {node: k[1] for node, k in keys.items()}

    t_deal, dealt = _cpu(lambda: [deal(params, node, X) for node in nodes])
    deals = [d for d, _ in dealt]
    t_open, _ = _cpu(lambda: [open_share(params, d, node, keys[node][0])
                              for node in nodes for d in deals])
    t_kc, kcs = _cpu(lambda: [key_commit(params, d, s) for d, s in dealt])
    t_derive, res = _cpu(lambda: derive(params, X, deals, [], kcs, []))
    t_secret, _ = _cpu(lambda: [node_secret(params, res, node, keys[node][0], deals)
                                for node in nodes])

    # abort path: nodes[0] withholds its key commitment, T nodes disclose its shares
    def abort() -> Point:
        discs = [disclose(params, deals[0], node, keys[node][0], X[node])
                 for node in nodes[1 : t + 1]]
        r2 = derive(params, X, deals, [], kcs[1:], discs)
        return r2.collective_key

    t_abort, Y2 = _cpu(abort)
    if Y2 != res.collective_key:
        raise RuntimeError("reconstructed key differs")

    # a refresh: the same nodes re-share the key under fresh transport keys
    shares = {node: node_secret(params, res, node, keys[node][0], deals) for node in nodes}
    prior = Prior(nodes, t, tuple(res.verification_keys[n] for n in nodes),
                  res.collective_key, nodes)
    rparams = DkgParams(CONSORTIUM, 1, nodes, t, prior)
    fresh = {node: keygen()[0] for node in nodes}

    def reshare() -> list[tuple[int, Any]]:
        from statledger.protocol.entries import KINDS
        msgs = ceremony.simulate(rparams, fresh, shares)
        return [(i, KINDS[k](n, m.hex())) for i, (k, n, m) in enumerate(msgs)]

    t_msgs, rows = _cpu(reshare)
    ceremony._DERIVED.clear()  # measure the derivation, not the per-process memo
    t_rderive, rres = _cpu(lambda: ceremony.derive_from_log(rparams, {}, rows))
    t_rshares, _ = _cpu(lambda: [ceremony.key_share(rparams, {}, rows, n, fresh[n])
                                 for n in nodes])
    if rres.collective_key != res.collective_key:
        raise RuntimeError("the refresh changed the key")
    return {
        "reshare_total_s": t_msgs + t_rderive + t_rshares, "reshare_derive_s": t_rderive,
        "deal_s": t_deal, "open_s": t_open, "key_commit_s": t_kc, "derive_s": t_derive,
        "total_s": t_deal + t_open + t_kc + t_derive,
        "node_secret_s": t_secret, "abort_path_s": t_abort,
        "deal_bytes": len(deals[0].to_bytes()), "key_commit_bytes": len(kcs[0].to_bytes()),
        "disclosure_bytes": len(disclose(params, deals[0], nodes[1], keys[nodes[1]][0],
                                         X[nodes[1]]).to_bytes()),
    }


def combine_cost(n: int, t: int, samples: int) -> dict[str, float]:
    xs = [Scalar.random() for _ in range(n)]
    ct = encrypt(keygen()[1], 1)
    D = [x * ct.C1 for x in xs]
    pts = list(range(1, t + 1))
    c0 = time.process_time()
    for _ in range(samples):
        combine(pts, D[:t])
    c1 = time.process_time()
    for _ in range(samples):
        sum_points(D)
    c2 = time.process_time()
    for _ in range(samples):
        lagrange_at_zero(pts)
    c3 = time.process_time()
    return {
        "threshold_combine_T_us": 1e6 * (c1 - c0) / samples,
        "lagrange_coefficients_T_us": 1e6 * (c3 - c2) / samples,
        "n_of_n_sum_N_us": 1e6 * (c2 - c1) / samples,
    }


def run_case(n: int, t: int, repeat: int) -> dict[str, object]:
    runs = [one_run(n, t) for _ in range(repeat)]
    med = {k: statistics.median(float(r[k]) for r in runs) for k in runs[0]}
    out: dict[str, object] = {"N": n, "T": t, "repeat": repeat}
    out.update({k: (int(v) if k.endswith("_bytes") else round(v, 5)) for k, v in med.items()})
    out["combine"] = {k: round(v, 2) for k, v in combine_cost(n, t, 2000).items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=["5:3", "3:2", "7:4"])
    a = ap.parse_args()
    cases = [tuple(int(v) for v in c.split(":")) for c in a.cases]
    wall0 = time.perf_counter()
    res: dict[str, object] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg()[0]},
        "cases": [run_case(n, t, a.repeat) for n, t in cases],
    }
    res["wall_s"] = round(time.perf_counter() - wall0, 2)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
