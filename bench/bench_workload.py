"""Workload queries from many one-record owners (issue 15): all 2-way marginals of 6 attributes.

    python bench/bench_workload.py                       # crypto, 100 and 1000 owners
    python bench/bench_workload.py --mode cluster --owners 100 --procs 2
    python bench/bench_workload.py --mode both --owners 100

Data: ``n`` synthetic one-record owners (seeded), attributes ``x0..x5`` with domains of
4, 5, 5, 6, 6, 8 categories (28,800 cells); the workload is every 2-way marginal (15
marginals, 477 cells), DP at ``rho`` (zCDP, default 1), strategy ``marginals`` (the
optimised ``hdmm`` strategy is compared by its stated error).

``--mode crypto`` (in process, real proofs): per owner, the CPU of encoding, encryption,
the range proofs and the one-hot proof (:mod:`statledger.protocol.validity`) and the
submission's bytes; the batched verification of all submissions (range proofs: one MSM;
one-hot proofs: one MSM) as a compute node, the ledger and the verifier each run it; the
aggregate, its decryption (one key, in process), the noise of ``N_COMPUTE`` nodes drawn from
its exact law (``calibration.simulate_noise``) and the least-squares decode; the RMSE of the
answers against the true marginals next to the stated one and to central-model noise at the
same rho (a trusted curator adding Gaussian noise to the 15 marginals directly: one record
moves one cell of each, L2 sensitivity sqrt(15), sd sqrt(15 / (2 rho))).

``--mode cluster`` (real processes on loopback): a ledger and ``N_COMPUTE`` compute nodes
(``nodes/launcher.py``), the owners as pull-mode clients (``nodes/owner.py``, no inbound
port) packed into ``--procs`` processes (``--workers`` owners of each stepping at once), the
querier waiting for the quorum of all ``n``
submissions, then decryption, result, the owners' endorsements and the certificate, which is
verified offline.  Reports the wall time, the owners' CPU per owner, the certificate's size
and its offline verification time.

Prints one JSON object and writes it to ``bench/results/workload.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from statledger.proofs.elgamal import decrypt, keygen
from statledger.proofs.vector import aggregate, decode_totals, verify_encrypted_vectors_batch
from statledger.protocol import calibration, flow, noise, validity
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get
from statledger.protocol.stats import workload as wl

HERE = Path(__file__).resolve().parent
SIZES = (4, 5, 5, 6, 6, 8)
COLUMNS = [f"x{i}" for i in range(len(SIZES))]
N_COMPUTE = 3
SEED = 20261203
DATASET = "clinic"
QID = "ab" * 32

#: Distributed HDMM (Census SF1 workload, 20 cores), from issue 15
SEED_TABLE = {100: {"semi_honest_s": 2.8, "malicious_s": 2.9, "client_cpu_ms": 140},
              1000: {"semi_honest_s": 4.4, "malicious_s": 8.2, "client_cpu_ms": 660},
              3000: {"semi_honest_s": 8.3, "malicious_s": 41.8, "client_cpu_ms": 2400}}


def records(n: int, seed: int = SEED) -> np.ndarray:
    """``n`` seeded records, correlated through one latent factor (marginals not flat)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    out = np.empty((n, len(SIZES)), dtype=np.int64)
    for i, k in enumerate(SIZES):
        u = 0.6 * z + 0.8 * rng.standard_normal(n)
        cuts = np.quantile(rng.standard_normal(4000) * 1.0, np.linspace(0, 1, k + 1)[1:-1])
        out[:, i] = np.searchsorted(cuts, u)
    return out


def spec_obj(rho: float | None, strategy: str = "marginals", *, pull: dict[str, Any] | None
             = None, min_providers: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "version": 1, "statistic": "workload", "columns": COLUMNS,
        "categories": {c: [str(v) for v in range(k)] for c, k in zip(COLUMNS, SIZES,
                                                                    strict=True)},
        "params": {"marginals": 2, "strategy": strategy}, "max_rows": 1,
        "min_providers": min_providers,
        "privacy": ({"mechanism": "zcdp", "rho": rho} if rho is not None
                    else {"mechanism": "none"}),
    }
    if rho is None:
        obj["min_cell_size"] = 1
    if pull is not None:
        obj["pull"] = pull
    return obj


def table_of(row: np.ndarray) -> dict[str, np.ndarray]:
    return {c: np.asarray([str(int(v))], dtype=object) for c, v in zip(COLUMNS, row,
                                                                      strict=True)}


def true_answers(recs: np.ndarray) -> np.ndarray:
    spec = QuerySpec.parse(spec_obj(None))
    st = get("workload")
    totals = np.zeros(len(st.layout(spec)), dtype=np.int64)
    for row in recs:
        totals += np.asarray(st.encode(spec, table_of(row)))
    return np.asarray(st.decode(spec, totals.tolist()).to_dict()["answers"])


def noise_params(spec: QuerySpec, rho: float) -> noise.NoiseParams:
    """What the querier calibrates (flow.noise_plan) for ``N_COMPUTE`` nodes."""
    return noise.calibrate(flow.privacy_profile(spec), Fraction(rho).limit_denominator(10**6),
                           N_COMPUTE, N_COMPUTE, entries=len(flow.noise_sensitivities(spec)))


def stated_rmse(spec: QuerySpec, rho: float) -> float:
    """RMSE the decoder states (root mean of the answers' noise variances)."""
    params = noise_params(spec, rho)
    sd = get("workload").value_sd(spec, math.sqrt(float(N_COMPUTE * params.share_variance)))
    assert sd is not None
    return math.sqrt(sum(v * v for v in sd.values()) / len(sd))


def central_rmse(rho: float) -> float:
    n_marg = math.comb(len(SIZES), 2)
    return math.sqrt(n_marg / (2 * rho))


def crypto(n: int, rho: float) -> dict[str, Any]:
    spec = QuerySpec.parse(spec_obj(rho))
    recs = records(n)
    x, X = keygen()
    ranges = list(calibration.wire_layout(spec).ranges)
    cpu: list[float] = []
    raws: list[bytes] = []
    for i, row in enumerate(recs):
        t0 = time.process_time()
        wire, _ = calibration.wire_encode(spec, table_of(row))
        raws.append(validity.encrypt_submission(
            spec, X, wire, flow.submission_context(QID, f"owner-{i:04d}")))
        cpu.append(time.process_time() - t0)
    from statledger.protocol.entries import SubmissionEntry

    t0 = time.process_time()
    items = []
    parsed = []
    for i, raw in enumerate(raws):
        party = f"owner-{i:04d}"
        ev, proof = validity.decode_submission(spec, SubmissionEntry(QID, party, raw.hex()),
                                               ranges)
        parsed.append(ev)
        items.append((party, ev, proof, flow.submission_context(QID, party)))
    t_decode = time.process_time() - t0
    t0 = time.process_time()
    verify_encrypted_vectors_batch([(X, ev, ranges, c) for _, ev, _, c in items],
                                   [p for p, _, _, _ in items])
    t_range = time.process_time() - t0
    t0 = time.process_time()
    validity.verify_onehot_submissions(spec, X, items)
    t_onehot = time.process_time() - t0
    t0 = time.process_time()
    agg = aggregate(parsed)
    limb_sums = [[decrypt(x, c, n * (1 << 16)) for c in row] for row in agg]
    wire_totals = decode_totals(limb_sums, ranges, n)
    t_agg = time.process_time() - t0
    params = noise_params(spec, rho)
    noisy = [v + e for v, e in zip(wire_totals, calibration.simulate_noise(params, N_COMPUTE),
                                   strict=True)]
    t0 = time.process_time()
    res = calibration.decode(spec, noisy, calibration.NoiseInfo(params, N_COMPUTE)).to_dict()
    t_decode_ls = time.process_time() - t0
    truth = true_answers(recs)
    err = np.asarray(res["answers"]) - truth
    return {
        "owners": n,
        "cells": len(ranges),
        "per_owner_cpu_s": {"mean": float(np.mean(cpu)), "max": float(np.max(cpu))},
        "bytes_per_owner": len(raws[0]),
        "onehot_proof_bytes": validity.tail_bytes(spec),
        "verify_cpu_s": {"decode": t_decode, "range_proofs_batched": t_range,
                         "onehot_batched": t_onehot, "total": t_decode + t_range + t_onehot},
        "aggregate_and_decrypt_cpu_s": t_agg,
        "least_squares_decode_cpu_s": t_decode_ls,
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "stated_rmse": stated_rmse(spec, rho),
        "central_rmse": central_rmse(rho),
    }


def strategy_errors(rho: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in ("marginals", "hdmm"):
        spec = QuerySpec.parse(spec_obj(rho, strategy))
        p = wl.plan(spec)
        out[strategy] = {"blocks": len(p.blocks), "cells": p.block_offsets()[-1],
                         "weights": sorted(set(p.weights)),
                         "stated_rmse": stated_rmse(spec, rho)}
    out["identity"] = (f"not available: the full domain has {math.prod(SIZES)} cells "
                       f"(> {wl.MAX_IDENTITY_CELLS})")
    out["central_rmse"] = central_rmse(rho)
    return out


# ---------------------------------------------------------------------------- cluster mode
def _owner_proc(configs: list[str], stop_file: str, out_file: str, workers: int = 1) -> None:
    profile = os.environ.get("BENCH_WORKLOAD_PROFILE")  # a directory: cProfile each process
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            _owners(configs, stop_file, out_file, workers)
        finally:
            prof.disable()
            prof.dump_stats(str(Path(profile) / (Path(out_file).stem + ".pstats")))
        return
    _owners(configs, stop_file, out_file, workers)


def _owners(configs: list[str], stop_file: str, out_file: str, workers: int = 1) -> None:
    from statledger.nodes.config import load_config
    from statledger.nodes.owner import PullOwner, run_owners

    # owners are members by the consortium's genesis: no `party` entry to log (a thousand
    # registrations would only race the witnesses' cosigning)
    owners = [PullOwner.from_config(load_config(path))  # type: ignore[arg-type]
              for path in configs]
    t0 = time.process_time()
    stop = mp.Event()
    while not os.path.exists(stop_file):
        run_owners(owners, stop=stop, interval=0.0, rounds=1, workers=workers)
        time.sleep(0.5)
    cpu = time.process_time() - t0
    Path(out_file).write_text(json.dumps({"owners": len(owners), "cpu_s": cpu}))


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live child process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster(n: int, rho: float | None, procs: int, work: Path, workers: int = 1
            ) -> dict[str, Any]:
    from statledger.nodes.launcher import Cluster
    from statledger.nodes.querier import Querier
    from statledger.verifier.verify import verify_certificate

    recs = records(n)
    owners = [f"owner-{i:04d}" for i in range(n)]
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    providers = {}
    for pid, row in zip(owners, recs, strict=True):
        path = data / f"{pid}.csv"
        path.write_text(",".join(COLUMNS) + "\n" + ",".join(str(int(v)) for v in row) + "\n")
        providers[pid] = {DATASET: str(path)}
    policy = work / "policy.json"
    policy.write_text(json.dumps({"budget_rho": 100.0, "min_providers": 1}))
    t_setup = time.monotonic()
    c = Cluster(work / "cluster", n_compute=N_COMPUTE, providers=providers, pull=owners,
                policies=dict.fromkeys(owners, str(policy)), startup_timeout=600)
    out: dict[str, Any] = {"owners": n, "procs": procs, "workers_per_proc": workers}
    try:
        c.start(only=["ledger"] + [p.party_id for p in c.layout.compute])
        c.register_queriers()
        with c.client("ledger", as_party=c.layout.queriers[0].party_id) as cl:
            cl.post("/v1/setup")
        out["setup_wall_s"] = time.monotonic() - t_setup
        stop_file = str(work / "stop")
        shares = [owners[i::procs] for i in range(procs)]
        ps = [mp.Process(target=_owner_proc, args=(
            [str(c.config_path(p)) for p in share], stop_file, str(work / f"owners-{k}.json"),
            workers))
            for k, share in enumerate(shares)]
        for p in ps:
            p.start()
        spec = QuerySpec.parse(spec_obj(rho, pull={"dataset": DATASET, "owners": "all",
                                                   "deadline": int(time.time() + 3600)},
                                        min_providers=n))
        q = Querier("querier", c.signing_key("querier"), c.url("ledger"),
                    {p.party_id: p.url for p in c.layout.compute}, {}, trust=c.genesis,
                    timeout=3600.0)
        q.pull_poll = 1.0
        q.endorse_wait = 3600.0
        q.follower.proven = {}  # each entry read and proven once (nodes/follower.py)
        t0 = time.monotonic()
        cpu0 = time.process_time()
        with q:
            result = q.run(spec)
        out["total_wall_s"] = time.monotonic() - t0
        out["querier_cpu_s"] = time.process_time() - cpu0
        out["phases_wall_s"] = dict(result.timings)
        Path(stop_file).write_text("stop")
        for p in ps:
            p.join(timeout=600)
        owner_cpu = [json.loads((work / f"owners-{k}.json").read_text())
                     for k in range(procs)]
        out["per_owner_cpu_s"] = sum(o["cpu_s"] for o in owner_cpu) / n
        out["cluster_cpu_s"] = {pid: _proc_cpu(proc.pid) for pid, proc in c.procs.items()}
        cert = result.certificate.to_bytes()
        out["certificate_bytes"] = len(cert)
        t1 = time.process_time()
        report = verify_certificate(cert, q.trust)
        out["certificate_verify_cpu_s"] = time.process_time() - t1
        out["certificate_ok"] = bool(getattr(report, "ok", True))
        truth = true_answers(recs)
        err = np.asarray(result.result.to_dict()["answers"]) - truth
        out["rmse"] = float(np.sqrt(np.mean(err ** 2)))
        out["central_rmse"] = central_rmse(rho) if rho is not None else 0.0
    finally:
        Path(work / "stop").write_text("stop")
        c.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--owners", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--rho", type=float, default=1.0)
    ap.add_argument("--mode", choices=("crypto", "cluster", "both"), default="crypto")
    ap.add_argument("--procs", type=int, default=2, help="owner processes (cluster mode)")
    ap.add_argument("--workers", type=int, default=1,
                    help="owners stepping at once in each owner process (cluster mode; "
                         "run_owners(workers=)); 1: in turn")
    ap.add_argument("--no-dp", action="store_true",
                    help="cluster mode without DP (the verifiable noise measured apart: "
                         "bench_noise.py)")
    ap.add_argument("--out", default=str(HERE / "results" / "workload.json"))
    args = ap.parse_args(argv)
    report: dict[str, Any] = {
        "workload": "all 2-way marginals of 6 attributes",
        "domain_sizes": list(SIZES), "rho": args.rho, "compute_nodes": N_COMPUTE,
        "cluster_dp": not args.no_dp,
        "strategies": strategy_errors(args.rho),
        "distributed_hdmm_seed_table": SEED_TABLE,
    }
    if args.mode in ("crypto", "both"):
        report["crypto"] = [crypto(n, args.rho) for n in args.owners]
    if args.mode in ("cluster", "both"):
        runs = []
        for n in args.owners:
            with tempfile.TemporaryDirectory(prefix="bench-workload-") as tmp:
                runs.append(cluster(n, None if args.no_dp else args.rho, args.procs,
                                    Path(tmp), args.workers))
        report["cluster"] = runs
    text = json.dumps(report, indent=1)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
