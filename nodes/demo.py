"""``statledger demo``: a local cluster of real processes and a tour of five statistics.

1 ledger, 3 compute nodes (also witnesses), 4 data owners -- each holding one site of the
bundled datasets -- and a querier.  Every query's certificate is written under
``OUT/certificates/`` and verified again offline at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statledger.nodes.launcher import Cluster, majority_quorum
from statledger.nodes.querier import Querier, QueryOutcome, run_rounds
from statledger.protocol import datasets
from statledger.protocol.query import QuerySpec

__all__ = ["TOUR", "TourItem", "start_cluster", "run_demo"]

PROVIDERS = ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
DATASETS = ["diabetes", "breast_cancer", "waltons", "rossi"]


@dataclass(frozen=True)
class TourItem:
    name: str
    dataset: str
    spec: dict[str, Any]


TOUR: list[TourItem] = [
    TourItem("mean", "diabetes", {
        "version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000,
    }),
    TourItem("linear_regression", "diabetes", {
        "version": 1, "statistic": "linear_regression",
        "columns": ["bmi", "bp", "s5", "target"],
        "bounds": {"bmi": [15.0, 50.0], "bp": [60.0, 140.0], "s5": [3.0, 6.5],
                   "target": [25.0, 350.0]},
        "params": {"target": "target", "features": ["bmi", "bp", "s5"]},
        "scale": 10000, "max_rows": 1000,
    }),
    TourItem("logistic_regression", "breast_cancer", {
        "version": 1, "statistic": "logistic_irls",
        "columns": ["mean_radius", "mean_texture", "mean_smoothness", "benign"],
        "bounds": {"mean_radius": [5.0, 30.0], "mean_texture": [9.0, 40.0],
                   "mean_smoothness": [0.05, 0.17], "benign": [0.0, 1.0]},
        "params": {"target": "benign",
                   "features": ["mean_radius", "mean_texture", "mean_smoothness"],
                   "standardize": {"mean_radius": [14.0, 3.5], "mean_texture": [19.0, 4.3],
                                   "mean_smoothness": [0.096, 0.014]}},
        "max_rows": 1000,
    }),
    TourItem("kaplan_meier", "waltons", {
        "version": 1, "statistic": "kaplan_meier", "columns": ["time", "event"],
        "bounds": {"time": [0.0, 80.0], "event": [0.0, 1.0]},
        "group_by": ["group"], "categories": {"group": ["control", "miR-137"]},
        "params": {"time": "time", "event": "event", "max_time": 75, "max_ties": 15},
        "max_rows": 1000,
    }),
    TourItem("crosstab", "waltons", {
        "version": 1, "statistic": "crosstab", "group_by": ["group"],
        "categories": {"group": ["control", "miR-137"]},
        "bounds": {"time": [0.0, 80.0]}, "params": {"value": "time"}, "min_cell_size": 5,
        "max_rows": 1000,
    }),
    # differentially private (zCDP rho = 1, each hospital's budget DEMO_BUDGET_RHO): the
    # result prints every number with its 95 % noise interval (docs/privacy.md)
    TourItem("dp_mean", "diabetes", {
        "version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "privacy": {"mechanism": "zcdp", "rho": 1.0},
        "max_rows": 1000,
    }),
]

#: the zCDP budget per dataset of every demo hospital (policy budget_rho)
DEMO_BUDGET_RHO = 2.0


def provider_datasets() -> dict[str, dict[str, str]]:
    """Each hospital holds site k of every bundled dataset."""
    out: dict[str, dict[str, str]] = {}
    for k, pid in enumerate(PROVIDERS, start=1):
        out[pid] = {name: str(datasets.path(name, datasets.sites(name)[k - 1]))
                    for name in DATASETS}
    return out


def start_cluster(base: Path, providers: dict[str, dict[str, str]],
                  n_compute: int = 3, threshold: int | None = None,
                  policies: Mapping[str, str | Path] | None = None,
                  pull: Iterable[str] = (),
                  vertical_partners: Mapping[str, Mapping[str, str | Path]] | None = None
                  ) -> Cluster:
    """Start a local cluster; the compute nodes run their key ceremony (``threshold``-of-
    ``n_compute``, default all of them) and the setup entry is written once it is done.
    The providers in ``pull`` run as owners that pull (docs/owners.md).
    ``vertical_partners``: per provider, its vertical partners' pair secret files."""
    # a majority witness quorum (as `statledger node init` sets): with all nodes as the
    # quorum, one node down would block every checkpoint and the T-of-N key would not help
    cluster = Cluster(base, n_compute=n_compute, providers=providers, queriers=["querier"],
                      threshold=threshold, witness_quorum=majority_quorum(n_compute),
                      policies=dict(policies or {}), pull=pull,
                      vertical_partners=vertical_partners)
    return cluster.start_and_set_up()


def register_queriers(cluster: Cluster) -> None:
    """Queriers serve nothing, so they post their own ``party`` entry (self-signed)."""
    cluster.register_queriers()


def querier_for(cluster: Cluster) -> Querier:
    layout = cluster.layout
    return Querier(
        "querier", cluster.signing_key("querier"), cluster.url("ledger"),
        {p.party_id: p.url for p in layout.compute},
        {p.party_id: p.url for p in layout.providers},
        trust=cluster.genesis, state_db=Path(layout.parties["querier"].data_dir) / "state.sqlite",
    )


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its reaped children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def keep_ledger(src: Path, dst: Path) -> Path:
    """A consistent copy of a stopped ledger's SQLite log (its write-ahead log folded in),
    written 0600 like every state file."""
    dst.unlink(missing_ok=True)
    dst.touch(mode=0o600)
    a = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    b = sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def run_demo(out: Path | None, say: Callable[[str], None],
             step: Callable[[str], None] | None = None, *, n_compute: int = 3,
             threshold: int | None = None, keep: bool = False) -> dict[str, Any]:
    """Run the tour on ``n_compute`` nodes with a ``threshold``-of-``n_compute`` key;
    ``threshold=None`` is 2-of-``n_compute`` (1-of-1 for one node); returns a summary
    (timings, certificate sizes, verification).  ``keep`` copies the ledger's log to
    ``OUT/ledger.sqlite`` (``summary["ledger"]``) for ``statledger audit``."""
    if threshold is None:
        threshold = min(2, n_compute)
    from statledger.verifier.certificate import SUFFIX as CERT_SUFFIX
    from statledger.verifier.verify import load_trust, verify_certificate_file

    t0 = time.perf_counter()
    cpu0 = _cpu_seconds()
    load0 = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="statledger-demo-"))
    out_dir = Path(out) if out is not None else work / "out"
    cert_dir = out_dir / "certificates"
    cert_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"queries": []}
    policy = work / "policy.json"
    policy.write_text(json.dumps({"budget_rho": DEMO_BUDGET_RHO}), encoding="utf-8")
    cluster = start_cluster(work / "cluster", provider_datasets(), n_compute=n_compute,
                            threshold=threshold, policies=dict.fromkeys(PROVIDERS, policy))
    summary["threshold"] = f"{threshold or n_compute}-of-{n_compute}"
    summary["startup_s"] = round(time.perf_counter() - t0, 2)
    say(f"cluster up in {summary['startup_s']:.1f} s: the {n_compute} compute nodes ran their "
        f"key ceremony on the log; any {threshold or n_compute} of them decrypt, fewer learn "
        "nothing")
    say("")
    try:
        with querier_for(cluster) as q:
            for item in TOUR:
                if step is not None:
                    step(item.name)
                spec = QuerySpec.parse(item.spec)
                tq = time.perf_counter()
                outcomes: list[QueryOutcome] = run_rounds(q, spec, datasets=item.dataset)
                final = outcomes[-1]
                paths = []
                for i, o in enumerate(outcomes, start=1):
                    suffix = f"-round{i}" if len(outcomes) > 1 else ""
                    p = cert_dir / f"{item.name}{suffix}{CERT_SUFFIX}"
                    p.write_bytes(o.certificate.to_bytes())
                    paths.append(p)
                say(f"\n== {item.name} ({item.dataset}, {len(final.contributors)} owners"
                    + (f", {len(outcomes)} IRLS rounds" if len(outcomes) > 1 else "") + ")")
                say(final.result.summary())
                summary["queries"].append({
                    "name": item.name, "query_id": final.query_id,
                    "rounds": len(outcomes), "seconds": round(time.perf_counter() - tq, 2),
                    "certificates": [str(p) for p in paths],
                    "certificate_bytes": [p.stat().st_size for p in paths],
                })
    finally:
        cluster.stop()
    # the consortium's trust file, next to the certificates: what a reviewer pins
    trust_path = out_dir / "trust.json"
    shutil.copyfile(work / "cluster" / "trust.json", trust_path)
    trust = load_trust(trust_path)
    # offline verification of every certificate written, under the pinned consortium
    tv = time.perf_counter()
    verified = 0
    for p in sorted(cert_dir.glob(f"*{CERT_SUFFIX}")):
        report = verify_certificate_file(p, trust)
        if not report.valid:
            raise RuntimeError(f"{p.name}: step {report.step}: {report.reason}")
        verified += 1
    summary["verified"] = verified
    summary["trust"] = str(trust_path)
    summary["verify_s"] = round(time.perf_counter() - tv, 2)
    summary["total_s"] = round(time.perf_counter() - t0, 2)
    # CPU seconds of this process and of the stopped (reaped) cluster: on a shared machine
    # the wall time waits for a CPU, the CPU seconds do not (docs/performance.md)
    summary["cpu_s"] = round(_cpu_seconds() - cpu0, 1)
    summary["load_average"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    summary["out"] = str(out_dir)
    if keep:
        summary["ledger"] = str(keep_ledger(work / "cluster" / "ledger" / "ledger.sqlite",
                                            out_dir / "ledger.sqlite"))
    shutil.rmtree(work / "cluster", ignore_errors=True)
    return summary
