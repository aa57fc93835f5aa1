"""A pack of one-record pull owners against a real ledger and compute nodes: the data, the
workload spec, the cluster and the exact answers, shared by the pack tests
(test_owner_pack.py, test_owner_workers.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from statledger.protocol.entries import Entry, SubmissionEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic


@dataclass(frozen=True)
class FirstRun:
    """A query the pack answered: its spec, the querier's outcome, the querier's checked view
    of it and the (closed) owners that answered."""

    spec: QuerySpec
    out: Any
    view: Any
    owners: list[Any]


@dataclass(frozen=True)
class Pack:
    """``owners[i]`` holds the one record ``rows[i]`` over ``columns`` (category sizes
    ``sizes``) in dataset ``dataset``."""

    owners: tuple[str, ...]
    sizes: tuple[int, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[int, ...], ...]
    dataset: str = "clinic"

    def table(self, row: tuple[int, ...]) -> dict[str, np.ndarray]:
        return {c: np.asarray([str(v)], dtype=object)
                for c, v in zip(self.columns, row, strict=True)}

    def spec(self, deadline: float) -> QuerySpec:
        """All 2-way marginals, exact, every admitted owner, by ``deadline``."""
        return QuerySpec.parse({
            "version": 1, "statistic": "workload", "columns": list(self.columns),
            "categories": {c: [str(v) for v in range(k)]
                           for c, k in zip(self.columns, self.sizes, strict=True)},
            "params": {"marginals": 2, "strategy": "marginals"}, "max_rows": 1,
            "min_providers": len(self.owners), "privacy": {"mechanism": "none"},
            "min_cell_size": 1,
            "pull": {"dataset": self.dataset, "owners": "all", "deadline": int(deadline)}})

    def cluster(self, work: Path) -> Iterator[Any]:
        """A ledger and 2 compute nodes (real processes); the owners are members by the
        genesis and run in the test's process (not started).  Stopped on exit."""
        from statledger.nodes.launcher import Cluster

        data = work / "data"
        data.mkdir()
        providers = {}
        for pid, row in zip(self.owners, self.rows, strict=True):
            path = data / f"{pid}.csv"
            path.write_text(",".join(self.columns) + "\n" + ",".join(map(str, row)) + "\n")
            providers[pid] = {self.dataset: str(path)}
        c = Cluster(work / "cluster", n_compute=2, providers=providers, pull=self.owners,
                    startup_timeout=120)
        c.start(only=["ledger"] + [p.party_id for p in c.layout.compute])
        try:
            c.register_queriers()
            with c.client("ledger", as_party=c.layout.queriers[0].party_id) as cl:
                cl.post("/v1/setup")
            yield c
        finally:
            c.stop()

    def pull_owners(self, cluster: Any) -> list[Any]:
        from statledger.nodes.owner import PullOwner

        return [PullOwner(cluster.url("ledger"), pid, cluster.signing_key(pid),
                          {self.dataset: self.table(row)}, None, cluster.genesis)
                for pid, row in zip(self.owners, self.rows, strict=True)]

    def exact(self, spec: QuerySpec) -> list[Any]:
        """The exact marginals, from the statistic's own encode and decode in process."""
        st = get_statistic("workload")
        totals = np.zeros(len(st.layout(spec)), dtype=np.int64)
        for row in self.rows:
            totals += np.asarray(st.encode(spec, self.table(row)))
        return list(st.decode(spec, totals.tolist()).to_dict()["answers"])

    @contextmanager
    def stepping(self, cluster: Any, **run: Any) -> Iterator[list[Any]]:
        """The pack's owners stepped by ``run_owners(owners, stop=..., **run)`` in a
        background thread while the block runs; stopped and joined after it (a runner
        still alive fails the test)."""
        from statledger.nodes.owner import run_owners

        owners = self.pull_owners(cluster)
        stop = threading.Event()
        runner = threading.Thread(target=run_owners, args=(owners,),
                                  kwargs={"stop": stop, **run})
        runner.start()
        try:
            yield owners
        finally:
            stop.set()
            runner.join(60)
        if runner.is_alive():
            raise RuntimeError("the owners' runner did not stop")

    def first_run(self, cluster: Any, **run: Any) -> FirstRun:
        """A query answered by the pack's owners stepped with ``run`` (see ``stepping``): a
        module's fixture runs it once per cluster, so the later tests that attack it run it
        themselves on whichever worker they land (nothing passes between tests)."""
        import time

        spec = self.spec(time.time() + 120)
        with self.stepping(cluster, **run) as owners, self.querier(cluster) as q:
            out = q.run(spec)
            view = q.follower.query_view(out.query_id)
        for o in owners:
            o.close()
        return FirstRun(spec, out, view, owners)

    def querier(self, cluster: Any, **attrs: Any) -> Any:
        """The cluster's querier for pull-mode queries (polling every 0.3 s; ``attrs``
        set on it)."""
        from statledger.nodes.querier import Querier

        q = Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                    {p.party_id: p.url for p in cluster.layout.compute}, {},
                    trust=cluster.genesis, timeout=120.0)
        q.pull_poll = 0.3
        for name, value in attrs.items():
            setattr(q, name, value)
        return q

    def forged_pack(self, cluster: Any, qid: str, forge: int) -> tuple[Any, Any, list[int],
                                                                        Any]:
        """A shared log for the pack read through a ledger that forges the bytes of the
        query's ``forge``-th submission: ``(honest client, forging client, submission
        indices, SharedLog)``; the caller closes both clients."""
        from forge import ForgingLedger

        from statledger.nodes.follower import LogFollower
        from statledger.nodes.ledger_client import LedgerClient
        from statledger.nodes.owner import SharedLog

        owner = self.owners[0]
        kw: dict[str, Any] = {"target": cluster.genesis.genesis.ledger.party_id,
                              "timeout": 60.0}
        honest = LedgerClient(cluster.url("ledger"), owner, cluster.signing_key(owner), **kw)
        subs = [i for i, data in honest.entries(honest.query_indices(qid))
                if isinstance(Entry.from_bytes(data), SubmissionEntry)]
        if len(subs) != len(self.owners):
            raise AssertionError(f"{len(subs)} submissions for {len(self.owners)} owners")
        forging = ForgingLedger(cluster.url("ledger"), owner, cluster.signing_key(owner), **kw)
        forging.forge = {subs[forge]}
        pack = SharedLog(LogFollower(forging, cluster.genesis, Path(":memory:")))
        return honest, forging, subs, pack
