"""Issue 15, item 2, on real processes: data owners that pull (docs/owners.md).

Four clinics run ``statledger node serve --role provider --pull``: no port of theirs is
open; each polls the ledger, contributes to the pull-mode queries that address it and
endorses their results.  The querier calls no owner.

Adversaries played: an owner that never submits (it must not block a query that has its
quorum, and a query without its quorum fails at the deadline naming it); an owner that
submits twice or replays its submission into another query; a party the consortium never
admitted, and an admitted owner the query does not address, trying to submit.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest

from statledger.nodes.http import RemoteError
from statledger.nodes.ledger_client import LedgerClient
from statledger.proofs.signatures import SigningKey
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import calibration, datasets, entries, flow
from statledger.protocol.query import QuerySpec

OWNERS = ("clinic-a", "clinic-b", "clinic-c", "clinic-d")
MEAN: dict[str, Any] = {"version": 1, "statistic": "mean", "columns": ["bmi"],
                        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000}
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from statledger.nodes.launcher import Cluster

    work = tmp_path_factory.mktemp("pull")
    sites = datasets.sites("diabetes")
    providers = {p: {"diabetes": str(datasets.path("diabetes", sites[i]))}
                 for i, p in enumerate(OWNERS)}
    c = Cluster(work / "cluster", n_compute=2, providers=providers, pull=OWNERS,
                startup_timeout=120)
    c.start_and_set_up()
    try:
        yield c
    finally:
        c.stop()


def _querier(cluster: Any) -> Any:
    from statledger.nodes.querier import Querier

    q = Querier("querier", cluster.signing_key("querier"), cluster.url("ledger"),
                {p.party_id: p.url for p in cluster.layout.compute}, {},  # no owner URL
                trust=cluster.genesis, timeout=120.0)
    q.pull_poll = 0.3
    return q


def _spec(owners: Any, min_providers: int, wait: float, **extra: Any) -> QuerySpec:
    return QuerySpec.parse({**MEAN, **extra, "min_providers": min_providers,
                            "pull": {"dataset": "diabetes", "owners": owners,
                                     "deadline": int(time.time() + wait)}})


def _bmi(owners: tuple[str, ...]) -> np.ndarray:
    sites = datasets.sites("diabetes")
    return np.concatenate([datasets.load("diabetes", site=sites[OWNERS.index(p)])["bmi"]
                           for p in owners])


def _port_closed(cluster: Any, pid: str) -> bool:
    """Nothing listens on the port the owner's config names."""
    url = urlsplit(cluster.url(pid))
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((url.hostname, url.port)) != 0


@dataclasses.dataclass
class Scenario:
    """The three queries the later tests attack, run once per cluster (so a test that needs
    them runs them, whichever worker it lands on): every owner; a quorum without the silent
    clinic-d; a quorum missed because of it."""

    all: Any
    quorum: Any
    missed: str
    missed_error: str
    missed_seconds: float


@pytest.fixture(scope="module")
def scenario(cluster: Any) -> Scenario:
    from statledger.nodes.querier import QueryFailed

    for pid in OWNERS:
        assert cluster.alive(pid) and _port_closed(cluster, pid), pid
    with _querier(cluster) as q:
        everyone = q.run(_spec("all", 4, 120))
    cluster.terminate("clinic-d")
    with _querier(cluster) as q:
        quorum = q.run(_spec(list(OWNERS), 3, 120, min_cell_size=4))
    spec = _spec(["clinic-a", "clinic-b", "clinic-d"], 3, 12, min_cell_size=3)
    t0 = time.monotonic()
    with _querier(cluster) as q, pytest.raises(QueryFailed) as err:
        q.run(spec)
    return Scenario(everyone, quorum, spec.query_id_for("querier"), str(err.value),
                    time.monotonic() - t0)


def test_pull_owners_complete_a_query_end_to_end(cluster: Any, scenario: Scenario) -> None:
    out = scenario.all
    assert out.contributors == list(OWNERS)
    bmi = np.clip(_bmi(OWNERS), 15, 50)
    res = out.result.to_dict()
    assert res["n"] == len(bmi)
    assert res["value"] == pytest.approx(float(bmi.mean()), abs=1e-3)
    # the aggregate lists who contributed, and every one of them endorsed the result
    with _querier(cluster) as q:
        view = q.follower.query_view(out.query_id)
    assert view.aggregate is not None
    listed = {s.provider for i, s in view.submissions if i in view.aggregate[1].submissions}
    assert listed == set(OWNERS)
    assert {e.provider for _, e in view.endorsements} == set(OWNERS)


def test_silent_owner_does_not_block_a_query_with_its_quorum(scenario: Scenario) -> None:
    out = scenario.quorum
    assert out.contributors == ["clinic-a", "clinic-b", "clinic-c"]
    assert out.result.to_dict()["n"] == len(_bmi(("clinic-a", "clinic-b", "clinic-c")))


def test_missed_quorum_fails_at_the_deadline_naming_the_silent_owner(scenario: Scenario
                                                                     ) -> None:
    assert re.search(r"2 owner\(s\) submitted by the deadline, the query needs 3; "
                     r"no submission from: clinic-d$", scenario.missed_error), \
        scenario.missed_error
    assert scenario.missed_seconds < 60


def _submission(cluster: Any, qid: str, owner: str, key: SigningKey | None = None
                ) -> entries.SubmissionEntry:
    """A well-formed submission by ``owner`` to ``qid`` (every value at its lower bound)."""
    with _querier(cluster) as q:
        view = q.follower.query_view(qid)
    assert view.query is not None and view.setup is not None
    ranges = list(calibration.wire_layout(view.query.query_spec()).ranges)
    ev = encrypt_vector_with_proof(view.setup.collective_point(), [lo for lo, _ in ranges],
                                   ranges, flow.submission_context(qid, owner))
    return entries.sign(entries.SubmissionEntry(qid, owner, ev.to_bytes().hex()),
                        key if key is not None else cluster.signing_key(owner))


def _ledger(cluster: Any, as_party: str, key: SigningKey | None = None) -> LedgerClient:
    return LedgerClient(cluster.url("ledger"), as_party,
                        key if key is not None else cluster.signing_key(as_party),
                        target="ledger", timeout=60.0)


def test_duplicate_and_replayed_submissions_refused(cluster: Any, scenario: Scenario) -> None:
    qid = scenario.missed  # clinic-a and clinic-b submitted, no aggregate
    with _ledger(cluster, "clinic-a") as led:
        before = led.query_indices(qid)
        logged = [(i, e) for i, e in
                  ((i, entries.Entry.from_bytes(b)) for i, b in led.entries(before))
                  if isinstance(e, entries.SubmissionEntry) and e.provider == "clinic-a"]
        assert len(logged) == 1
        index, mine = logged[0]
        # the very same bytes again: the log keeps one copy
        assert led.append(mine) == index
        # a second, different submission by the same owner
        with pytest.raises(RemoteError, match="duplicate submission") as err:
            led.append(_submission(cluster, qid, "clinic-a"))
        assert err.value.status == 409
        # its submission moved into another query: the signature covers the query id
        moved = dataclasses.replace(mine, query_id=scenario.quorum.query_id)
        with pytest.raises(RemoteError) as err:
            led.append(moved)
        assert err.value.status in (403, 409, 422)
        assert led.query_indices(qid) == before
    # a late one: the quorum query is aggregated, clinic-d's submission is refused
    with _ledger(cluster, "clinic-d") as led, pytest.raises(RemoteError,
                                                            match="after the aggregate"):
        led.append(_submission(cluster, scenario.quorum.query_id, "clinic-d"))


def test_fake_and_unaddressed_owners_refused(cluster: Any, scenario: Scenario) -> None:
    qid = scenario.missed
    # never admitted: its key is in no roster
    fake = SigningKey.generate()
    with _ledger(cluster, "clinic-z", fake) as led, pytest.raises(RemoteError) as err:
        led.append(_submission(cluster, qid, "clinic-z", fake))
    assert err.value.status in (401, 403)
    # admitted, but the query addresses clinic-a, -b and -d only
    with _ledger(cluster, "clinic-c") as led, pytest.raises(
            RemoteError, match="clinic-c, whom the pull query does not address"):
        led.append(_submission(cluster, qid, "clinic-c"))


def test_late_owner_is_told_why_it_was_not_counted(cluster: Any, scenario: Scenario) -> None:
    """clinic-d comes back: the quorum query was aggregated without it; it logs why."""
    cluster._spawn("clinic-d")
    log_path = Path(cluster.layout.parties["clinic-d"].log_path)
    deadline = time.monotonic() + 60
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        lines = [json.loads(line.split("statledger.events: ", 1)[1])
                 for line in log_path.read_text(encoding="utf-8").splitlines()
                 if "statledger.events: " in line]
        if {e["query"] for e in lines if e["event"] == "late"} >= {
                scenario.quorum.query_id, scenario.missed}:
            break
        time.sleep(0.5)
    late = {e["query"]: e["reason"] for e in lines if e["event"] == "late"}
    quorum, missed = scenario.quorum.query_id, scenario.missed
    assert late.get(quorum) == "the query was aggregated before this owner submitted"
    assert late.get(missed) == "the submission deadline has passed"
    assert not any(e["event"] == "contributed" and e["query"] in (quorum, missed)
                   for e in lines)


def test_lightweight_owner_in_process(cluster: Any, scenario: Scenario) -> None:
    """The API a benchmark packs many owners with: clinic-c's process stops and an
    in-process PullOwner (tables and state in memory) answers for it, stepped by run_owners;
    it resumes from the log what the process did (no second submission or endorsement)."""
    import threading

    from statledger.nodes.data import load_table
    from statledger.nodes.owner import PullOwner, run_owners

    cluster.terminate("clinic-c")
    site = datasets.sites("diabetes")[OWNERS.index("clinic-c")]
    owner = PullOwner(cluster.url("ledger"), "clinic-c", cluster.signing_key("clinic-c"),
                      {"diabetes": load_table(datasets.path("diabetes", site))}, None,
                      cluster.genesis)
    stop = threading.Event()
    runner = threading.Thread(target=run_owners, args=([owner],),
                              kwargs={"stop": stop, "interval": 0.3})
    runner.start()
    try:
        spec = _spec(["clinic-a", "clinic-b", "clinic-c"], 3, 120, min_cell_size=2)
        with _querier(cluster) as q:
            out = q.run(spec)
        assert out.contributors == ["clinic-a", "clinic-b", "clinic-c"]
    finally:
        stop.set()
        runner.join(30)
        owner.close()
    assert owner.outcome[out.query_id] == "endorsed"
    assert owner.outcome[scenario.all.query_id] == "endorsed"  # found its process's endorsement
    assert owner.outcome[scenario.missed].startswith("not addressed")
