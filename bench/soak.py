"""Soak benchmark: concurrent queries on a real cluster while random roles are SIGKILLed and
restarted, then ``statledger audit`` of the ledger (one JSON object on stdout).

Usage::

    python bench/soak.py                      # 120 s, 3 concurrent queriers, seed 1
    python bench/soak.py --seconds 300 --concurrency 4 --kill-every 10 --seed 7
    python bench/soak.py --seconds 30 --no-kills   # the same load without crashes

What it does:

1. starts a cluster as the demo does (``statledger.nodes.demo.start_cluster``): a ledger,
   ``--compute`` compute nodes (a ``--threshold``-of-N key, default 2, and a majority
   witness quorum), the four bundled
   hospitals (diabetes sites) with a privacy budget, one querier;
2. for ``--seconds``, ``--concurrency`` threads each run queries one after the other: every
   query is a new spec (``max_rows`` varies, so a new query id), alternately a plain
   ``mean`` and a DP ``sum`` (zCDP, ``--rho``), so owners charge their budgets; a query that
   fails is resumed (the same spec: the same query id, the log says where it stopped) up to
   ``--resume-attempts`` times, after a short pause;
3. meanwhile a chaos thread SIGKILLs a random party of a random role (compute, provider,
   ledger) every ``--kill-every`` seconds on average (uniform in [0.5x, 1.5x]) and restarts
   it after 0.5-3 s (``--seed`` fixes the schedule, not the machine's timing);
4. at the deadline no new query starts; the kills stop; queries in flight get ``--grace``
   seconds to finish or resume with every party up;
5. ``statledger audit <ledger URL> --json`` replays the whole log;
6. checks: every completed query is ``valid`` in the audit (nothing lost), no query is
   ``invalid``, the tree and checkpoints are OK; each owner's persisted budget charged each
   DP query it submitted to exactly once at the query's ``rho`` (``double_charged`` and
   ``wrong_amount`` must be empty; ``under_charged``: a submission on the log without a
   charge, must be empty; ``charged_without_submission``: a crash between the charge and
   the append, allowed: an owner over-charges, never under-charges).

Output keys: ``queries`` (started, completed, completed_first_try, resumed, failed,
incomplete_at_end), ``failures`` (each failed query with the reason of every attempt),
``resumed_queries`` (each query that completed after failed attempts, with their reasons),
``attempt_failure_reasons`` (counts of the first words of every failed attempt's reason),
``kills``, ``audit``, ``lost``, ``budgets``, ``ok``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _spec(k: int, rho: float) -> Any:
    from statledger.protocol.query import QuerySpec

    obj: dict[str, Any] = {"version": 1, "columns": ["bmi"], "bounds": {"bmi": [15.0, 50.0]},
                           "max_rows": 1000 + k}
    if k % 2:
        obj.update(statistic="sum", privacy={"mechanism": "zcdp", "rho": rho})
    else:
        obj.update(statistic="mean")
    return QuerySpec.parse(obj)


class Soak:
    def __init__(self, args: argparse.Namespace, base: Path) -> None:
        self.args = args
        self.base = base
        self.rng = random.Random(args.seed)  # the kill schedule (not security)
        self.lock = threading.Lock()
        self.counter = 0
        self.deadline = 0.0
        self.stop_kills = threading.Event()
        self.records: list[dict[str, Any]] = []
        self.kills: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.cluster: Any = None

    # -- the cluster -------------------------------------------------------------------------
    def start(self) -> None:
        from statledger.nodes.demo import provider_datasets, start_cluster

        policy = self.base / "policy.json"
        policy.write_text(json.dumps({"budget_rho": 1000.0}), encoding="utf-8")
        providers = {pid: {"diabetes": ds["diabetes"]}
                     for pid, ds in provider_datasets().items()}
        self.cluster = start_cluster(self.base / "cluster", providers,
                                     n_compute=self.args.compute,
                                     threshold=self.args.threshold or None,
                                     policies={pid: policy for pid in providers})

    def querier(self) -> Any:
        from statledger.nodes.querier import Querier

        c = self.cluster
        layout = c.layout
        return Querier("querier", c.signing_key("querier"), c.url("ledger"),
                       {p.party_id: p.url for p in layout.compute},
                       {p.party_id: p.url for p in layout.providers}, trust=c.genesis,
                       timeout=120.0)

    # -- load --------------------------------------------------------------------------------
    def _next_spec(self) -> tuple[int, Any]:
        with self.lock:
            self.counter += 1
            return self.counter, _spec(self.counter, self.args.rho)

    def worker(self) -> None:
        from statledger.protocol import flow

        q = self.querier()
        try:
            while time.monotonic() < self.deadline:
                k, spec = self._next_spec()
                rho = flow.privacy_rho(spec)
                rec: dict[str, Any] = {"k": k, "query_id": spec.query_id_for("querier"),
                                       "dp": rho is not None, "rho": str(rho),
                                       "attempts": [], "status": "failed"}
                with self.lock:
                    self.records.append(rec)
                for attempt in range(self.args.resume_attempts + 1):
                    t0 = time.monotonic()
                    try:
                        out = q.run(spec, datasets="diabetes")
                    except Exception as exc:  # a failed attempt: record it, resume
                        rec["attempts"].append(
                            {"s": round(time.monotonic() - t0, 2),
                             "error": f"{type(exc).__name__}: {exc}"[:400]})
                        if attempt == self.args.resume_attempts:
                            break
                        if (time.monotonic() > self.deadline + self.args.grace):
                            rec["status"] = "incomplete_at_end"
                            break
                        time.sleep(self.args.resume_pause)
                        continue
                    rec["attempts"].append({"s": round(time.monotonic() - t0, 2)})
                    rec["status"] = "completed"
                    rec["contributors"] = out.contributors
                    break
        finally:
            q.close()

    # -- chaos -------------------------------------------------------------------------------
    def chaos(self) -> None:
        c = self.cluster
        roles = {"compute": [p.party_id for p in c.layout.compute],
                 "provider": [p.party_id for p in c.layout.providers],
                 "ledger": ["ledger"]}
        t_start = time.monotonic()
        while not self.stop_kills.is_set():
            wait = self.args.kill_every * self.rng.uniform(0.5, 1.5)
            if self.stop_kills.wait(wait):
                return
            role = self.rng.choice(sorted(roles))
            pid = self.rng.choice(roles[role])
            down = self.rng.uniform(0.5, 3.0)
            at = round(time.monotonic() - t_start, 1)
            c.kill(pid)
            time.sleep(down)
            t0 = time.monotonic()
            try:
                c.start(only=[pid])
            except Exception as exc:  # the cluster could not restart it: the soak stops
                self.errors.append(f"restart of {pid} failed: {exc}")
                self.stop_kills.set()
                return
            self.kills.append({"t": at, "role": role, "party": pid, "down_s": round(down, 2),
                               "restart_s": round(time.monotonic() - t0, 2)})

    # -- after -------------------------------------------------------------------------------
    def audit(self) -> dict[str, Any]:
        proc = subprocess.run(  # noqa: S603 -- our own interpreter and CLI
            [sys.executable, "-m", "statledger", "audit", self.cluster.url("ledger"),
             "--json"], capture_output=True, text=True, timeout=1800, cwd=str(ROOT))
        try:
            out: dict[str, Any] = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return {"exit_code": proc.returncode, "error": (proc.stdout + proc.stderr)[-2000:]}
        out["exit_code"] = proc.returncode
        return out

    def budgets(self) -> dict[str, Any]:
        """Each owner's persisted budget against the DP submissions on the log."""
        import sqlite3

        from statledger.nodes.config import load_config
        from statledger.nodes.ledger_client import LedgerClient
        from statledger.protocol.view import parse_entries

        c = self.cluster
        dp = {r["query_id"]: Fraction(r["rho"]) for r in self.records if r["dp"]}
        submitted: dict[str, set[str]] = {p.party_id: set() for p in c.layout.providers}
        with LedgerClient(c.url("ledger"), "querier", c.signing_key("querier"),
                          target="ledger") as led:
            for qid in sorted(dp):
                idx = led.query_indices(qid)
                if not idx:
                    continue
                view = parse_entries(led.entries(idx))
                for _, s in view.submissions:
                    submitted.setdefault(s.provider, set()).add(qid)
        out: dict[str, Any] = {}
        for p in c.layout.providers:
            cfg = load_config(p.config_path)
            db = sqlite3.connect(f"file:{cfg.state_db_path}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT state FROM budgets WHERE dataset='diabetes'").fetchone()
            finally:
                db.close()
            charges = {} if row is None else json.loads(row[0])["charges"]
            amounts = {q: Fraction(v) for q, v in charges.items()}
            mine = submitted.get(p.party_id, set())
            out[p.party_id] = {
                "charged_queries": len(amounts),
                "submitted_dp_queries": len(mine),
                "spent_rho": str(sum(amounts.values(), Fraction(0))),
                "expected_rho": str(sum((dp.get(q, Fraction(0)) for q in amounts),
                                        Fraction(0))),
                "double_charged": sorted(q for q, a in amounts.items()
                                         if q in dp and a > dp[q]),
                "wrong_amount": sorted(q for q, a in amounts.items() if a != dp.get(q)),
                "under_charged": sorted(mine - set(amounts)),
                "charged_without_submission": sorted(set(amounts) - mine),
            }
        return out

    def run(self) -> dict[str, Any]:
        a = self.args
        t0 = time.monotonic()
        self.start()
        startup = time.monotonic() - t0
        self.deadline = time.monotonic() + a.seconds
        workers = [threading.Thread(target=self.worker, name=f"soak-{i}", daemon=True)
                   for i in range(a.concurrency)]
        chaos = threading.Thread(target=self.chaos, name="soak-chaos", daemon=True)
        for w in workers:
            w.start()
        if not a.no_kills:
            chaos.start()
        time.sleep(max(0.0, self.deadline - time.monotonic()))
        self.stop_kills.set()
        if chaos.is_alive():
            chaos.join(timeout=120)
        for w in workers:
            w.join(timeout=a.grace + 600)
        ran = time.monotonic() - self.deadline + a.seconds
        audit = self.audit()
        budgets = self.budgets()
        statuses = {r["query_id"]: r["status"] for r in self.records}
        audit_status = {q["query_id"]: q["status"] for q in audit.get("queries", [])}
        completed = [r for r in self.records if r["status"] == "completed"]
        lost = sorted(q for q, s in statuses.items()
                      if s == "completed" and audit_status.get(q) != "valid")
        reasons: Counter[str] = Counter()
        for r in self.records:
            for at in r["attempts"]:
                if "error" in at:
                    reasons[" ".join(at["error"].split()[:6])] += 1
        invalid = [q for q in audit.get("queries", []) if q["status"] == "invalid"]
        budget_bad = any(b["double_charged"] or b["wrong_amount"] or b["under_charged"]
                         for b in budgets.values())
        result: dict[str, Any] = {
            "python": sys.version.split()[0],
            "load_average_1min": os.getloadavg()[0],
            "params": {"seconds": a.seconds, "concurrency": a.concurrency,
                       "kill_every_s": None if a.no_kills else a.kill_every, "seed": a.seed,
                       "compute": a.compute, "threshold": a.threshold or a.compute,
                       "providers": 4, "rho": a.rho,
                       "resume_attempts": a.resume_attempts, "grace_s": a.grace},
            "startup_s": round(startup, 1),
            "ran_s": round(ran, 1),
            "queries": {
                "started": len(self.records),
                "completed": len(completed),
                "completed_first_try": sum(1 for r in completed if len(r["attempts"]) == 1),
                "resumed": sum(1 for r in completed if len(r["attempts"]) > 1),
                "failed": sum(1 for r in self.records if r["status"] == "failed"),
                "incomplete_at_end": sum(1 for r in self.records
                                         if r["status"] == "incomplete_at_end"),
                "dp": sum(1 for r in self.records if r["dp"]),
            },
            "failures": [{"query_id": r["query_id"][:16], "attempts": r["attempts"]}
                         for r in self.records if r["status"] != "completed"],
            "resumed_queries": [{"query_id": r["query_id"][:16], "attempts": r["attempts"]}
                                for r in completed if len(r["attempts"]) > 1],
            "attempt_failure_reasons": dict(reasons.most_common()),
            "kills": self.kills,
            "kills_by_role": dict(Counter(k["role"] for k in self.kills)),
            "chaos_errors": self.errors,
            "audit": {k: audit.get(k) for k in ("exit_code", "size", "checkpoints", "tree_ok",
                                                "tree_error", "valid", "invalid",
                                                "incomplete", "seconds", "error")},
            "audit_invalid": invalid,
            "lost": lost,
            "budgets": budgets,
        }
        result["ok"] = bool(audit.get("tree_ok")) and not invalid and not lost \
            and not budget_bad and not self.errors and audit.get("exit_code") == 0
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="load duration")
    ap.add_argument("--concurrency", type=int, default=3, help="queries in flight")
    ap.add_argument("--kill-every", type=float, default=12.0,
                    help="mean seconds between SIGKILLs")
    ap.add_argument("--no-kills", action="store_true", help="the load without crashes")
    ap.add_argument("--seed", type=int, default=1, help="the kill schedule's seed")
    ap.add_argument("--compute", type=int, default=3, help="compute nodes")
    ap.add_argument("--threshold", type=int, default=2,
                    help="decryption threshold T (0: all compute nodes)")
    ap.add_argument("--rho", type=float, default=0.01, help="zCDP rho of each DP query")
    ap.add_argument("--resume-attempts", type=int, default=6)
    ap.add_argument("--resume-pause", type=float, default=2.0)
    ap.add_argument("--grace", type=float, default=120.0,
                    help="seconds after the deadline for queries in flight")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--keep", type=Path, default=None,
                    help="keep the cluster's folder here (default: a temporary one)")
    args = ap.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        base_ctx: Any = None
        base = args.keep
    else:
        base_ctx = tempfile.TemporaryDirectory(prefix="statledger-soak-")
        base = Path(base_ctx.name)
    soak = Soak(args, base)
    try:
        result = soak.run()
    finally:
        if soak.cluster is not None:
            soak.cluster.stop()
        if base_ctx is not None:
            base_ctx.cleanup()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
