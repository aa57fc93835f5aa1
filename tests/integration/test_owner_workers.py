"""Issue 15: a pack of pull owners stepped by several threads at once
(``run_owners(workers=)``, nodes/owner.py), against a real ledger and compute nodes.

What it proves: with owners contributing and endorsing concurrently, the pack still checks
a query's log once per process (steps 5-8 once, steps 5-14 and every submission's proofs
once: counters, not timings), every owner acts exactly once, and the answers are the exact
marginals.

Adversary played: the ledger serves the threaded pack forged bytes for one submission.
Every owner refuses the query, whichever thread stepped it; nothing forged is kept as
proven and no check is cached as passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pack import FirstRun, Pack

from statledger.nodes.ledger_client import LedgerClient

PACK = Pack(owners=tuple(f"crew-{i}" for i in range(6)), sizes=(3, 2),
            columns=("a", "b"),
            rows=((0, 1), (2, 0), (1, 1), (2, 1), (0, 0), (1, 0)))
OWNERS = PACK.owners
WORKERS = 3
_spec, _owners, _exact = PACK.spec, PACK.pull_owners, PACK.exact


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from PACK.cluster(tmp_path_factory.mktemp("workers"))


def test_workers_must_be_positive() -> None:
    from statledger.nodes.owner import run_owners

    with pytest.raises(ValueError, match="workers"):
        run_owners([], rounds=1, workers=0)


@pytest.fixture(scope="module")
def first(cluster: Any) -> FirstRun:
    return PACK.first_run(cluster, interval=0.2, workers=WORKERS)


def test_a_threaded_pack_still_checks_each_submission_once(first: FirstRun) -> None:
    out, view, owners = first.out, first.view, first.owners
    qid = out.query_id
    assert out.contributors == sorted(OWNERS)
    assert out.result.to_dict()["answers"] == _exact(first.spec)
    pack = owners[0].shared
    assert {o.outcome[qid] for o in owners} == {"endorsed"}
    assert pack.check_runs[(qid, 8)] == 1
    assert pack.check_runs[(qid, 14)] == 1
    subs = {i for i, _ in view.submissions}
    assert len(subs) == len(OWNERS)
    assert dict(pack.proof_checks) == dict.fromkeys(subs, 1)
    # one submission and one endorsement per owner on the log
    assert sorted(s.provider for _, s in view.submissions) == sorted(OWNERS)
    assert sorted(e.provider for _, e in view.endorsements) == sorted(OWNERS)


def test_a_threaded_pack_refuses_forged_submissions_for_every_owner(cluster: Any,
                                                                    first: FirstRun) -> None:
    from statledger.nodes.owner import run_owners

    qid = first.out.query_id
    honest, forging, subs, pack = PACK.forged_pack(cluster, qid, 1)
    owners = _owners(cluster)
    for o in owners:
        o.shared = pack
    run_owners(owners, rounds=1, interval=0.0, workers=WORKERS)
    for o in owners:
        assert o.outcome[qid].startswith("refused"), (o.party_id, o.outcome[qid])
        assert f"entry {subs[1]} is not in the witnessed log" in o.outcome[qid]
    assert pack.follower.proven is not None and subs[1] not in pack.follower.proven
    assert pack.check_runs[(qid, 14)] == 0 and not pack.proof_checks
    # the twin: honest bytes; the same pack, asked from every thread at once, checks once
    pack.follower.ledger = pack.ledger = honest
    pack.new_round()
    views: list[Any] = []
    threads = [threading.Thread(target=lambda: views.append(pack.checked(qid, through=14)))
               for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(views) == WORKERS and all(v is views[0] for v in views)
    assert views[0].result is not None
    assert pack.check_runs[(qid, 14)] == 1
    assert dict(pack.proof_checks) == dict.fromkeys(subs, 1)
    for o in owners:
        o.close()
    forging.close()
    honest.close()


class SilentIndex(LedgerClient):
    """A ledger that under-reports a query's index to the querier (its hint of when to read
    the log): it lists nothing until ``until`` (time.time())."""

    until = 0.0

    def query_indices(self, query_id: str) -> list[int]:
        return [] if time.time() < self.until else super().query_indices(query_id)


def test_a_querier_fooled_about_the_index_is_only_delayed(cluster: Any) -> None:
    """The querier reads the witnessed log when the ledger's index lists enough entries, or
    at the deadline: a ledger that hides the index delays the query to its deadline (a
    denial of service it can commit anyway); the quorum is still found on the checked log
    and the query completes, endorsements included."""
    wait = 20.0
    spec = _spec(time.time() + wait)
    with PACK.stepping(cluster, interval=0.2) as owners, \
            PACK.querier(cluster, endorse_wait=15.0) as q:
        q.ledger.__class__ = SilentIndex  # the hint lies; the checked reads do not
        q.ledger.until = spec.pull.deadline if spec.pull is not None else 0.0
        t0 = time.time()
        out = q.run(spec)
        took = time.time() - t0
    assert out.contributors == sorted(OWNERS)
    assert out.result.to_dict()["answers"] == _exact(spec)
    assert took >= wait - 2.0  # it waited for the deadline: the hint said nothing was there
    for o in owners:
        o.close()
