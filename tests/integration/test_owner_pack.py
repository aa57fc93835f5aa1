"""Issue 15: many pull owners packed into one process share one checked read of the log
(nodes/owner.py, ``SharedLog``), against a real ledger and compute nodes on loopback.

What it proves: a query's log -- the roster and query entry an owner contributes on, the
log up to the result it endorses, every owner's range and one-hot proofs -- is checked ONCE
per process, not once per owner (counted by the pack's counters, not timed); the answers
are the exact marginals.

Adversary played: the ledger (or the network path to it) serves the pack forged bytes for
the owners' submissions.  The shared follower refuses them (no inclusion proof), every
owner of the pack refuses the query, nothing forged is kept as proven, and no check is
cached as passed: once honest bytes are served, the check runs afresh and passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pack import FirstRun, Pack

from statledger.nodes.follower import LogFollower
from statledger.nodes.ledger_client import LedgerClient

PACK = Pack(owners=tuple(f"pack-{i}" for i in range(5)), sizes=(3, 2, 2),
            columns=("a", "b", "c"),
            rows=((0, 1, 0), (2, 0, 1), (1, 1, 1), (2, 1, 0), (0, 0, 1)))
OWNERS = PACK.owners
_spec, _owners, _exact = PACK.spec, PACK.pull_owners, PACK.exact


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    yield from PACK.cluster(tmp_path_factory.mktemp("pack"))


@pytest.fixture(scope="module")
def first(cluster: Any) -> FirstRun:
    return PACK.first_run(cluster, interval=0.3)


def test_a_pack_checks_each_submission_once(first: FirstRun) -> None:
    out, view, owners = first.out, first.view, first.owners
    qid = out.query_id
    assert out.contributors == sorted(OWNERS)
    assert out.result.to_dict()["answers"] == _exact(first.spec)
    pack = owners[0].shared
    assert all(o.shared is pack for o in owners)
    assert {o.outcome[qid] for o in owners} == {"endorsed"}
    # steps 5-8 once for the five contributions, steps 5-14 once for the five endorsements
    assert pack.check_runs[(qid, 8)] == 1
    assert pack.check_runs[(qid, 14)] == 1
    assert view.aggregate is not None
    subs = {i for i, _ in view.submissions}
    assert len(subs) == len(OWNERS) and set(view.aggregate[1].submissions) == subs
    assert dict(pack.proof_checks) == dict.fromkeys(subs, 1)
    # every entry the pack used was read and proven once, by the one follower
    follower = pack.follower
    assert follower.proven is not None and subs <= set(follower.proven)


def test_forged_submissions_refused_for_every_owner_of_the_pack(cluster: Any,
                                                                first: FirstRun) -> None:
    from statledger.nodes.owner import run_owners

    qid = first.out.query_id
    honest, forging, subs, pack = PACK.forged_pack(cluster, qid, 2)
    owners = _owners(cluster)
    for o in owners:
        o.shared = pack
    run_owners(owners, rounds=1, interval=0.0)
    for o in owners:
        assert o.outcome[qid].startswith("refused"), (o.party_id, o.outcome[qid])
        assert f"entry {subs[2]} is not in the witnessed log" in o.outcome[qid]
    # nothing forged kept as proven, no check run (let alone cached as passed)
    assert pack.follower.proven is not None and subs[2] not in pack.follower.proven
    assert pack.check_runs[(qid, 14)] == 0 and not pack.proof_checks
    # the path turns honest: the same pack's next round reads, proves and checks afresh
    pack.follower.ledger = pack.ledger = honest
    pack.new_round()
    view = pack.checked(qid, through=14)
    assert view.result is not None
    assert pack.check_runs[(qid, 14)] == 1
    assert dict(pack.proof_checks) == dict.fromkeys(subs, 1)
    assert pack.follower.proven[subs[2]] == dict(honest.entries([subs[2]]))[subs[2]]
    for o in owners:
        o.close()
    forging.close()
    honest.close()


class CountingLedger(LedgerClient):
    """A client of a ledger address where nothing answers, counting the listings asked."""

    listings = 0

    def queries_since(self, since: int) -> list[tuple[str, int]]:
        self.listings += 1
        return super().queries_since(since)


def test_a_silent_ledger_costs_the_pack_one_wait_per_round(cluster: Any) -> None:
    """The ledger does not answer: the pack asks once per round, not once per owner (with
    a read timeout, once per owner was a stall of owners x timeout every round)."""
    import socket

    from statledger.nodes.owner import SharedLog, run_owners

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    silent = CountingLedger(f"http://127.0.0.1:{port}", OWNERS[0],
                            cluster.signing_key(OWNERS[0]),
                            target=cluster.genesis.genesis.ledger.party_id, timeout=2.0)
    pack = SharedLog(LogFollower(silent, cluster.genesis, Path(":memory:")))
    owners = _owners(cluster)
    for o in owners:
        o.shared = pack
    run_owners(owners, rounds=2, interval=0.0)
    assert silent.listings == 2
    assert all(not o.pending and not o.outcome for o in owners)
    for o in owners:
        o.close()
    silent.close()


def test_a_failed_check_is_kept_for_the_round_only_never_as_passed(cluster: Any) -> None:
    """A query with no result yet: endorsing's steps 5-14 fail (no aggregate); every owner
    asking in the same round gets that refusal from one run; the next round runs again."""
    import time

    from statledger.nodes.owner import SharedLog
    from statledger.proofs.errors import VerificationError
    from statledger.protocol import entries

    spec = _spec(time.time() + 30)
    entry = entries.sign(entries.QueryEntry.for_spec(spec, "querier"),
                         cluster.signing_key("querier"))
    target = cluster.genesis.genesis.ledger.party_id
    with LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                      target=target, timeout=60.0) as led:
        led.append(entry)
    honest = LedgerClient(cluster.url("ledger"), OWNERS[0], cluster.signing_key(OWNERS[0]),
                          target=target, timeout=60.0)
    pack = SharedLog(LogFollower(honest, cluster.genesis, Path(":memory:")))
    qid = entry.query_id
    for _ in OWNERS:
        with pytest.raises(VerificationError, match="no aggregate"):
            pack.checked(qid, through=14)
    assert pack.check_runs[(qid, 14)] == 1
    assert pack.checked(qid, through=8).query is not None  # the query itself is fine
    pack.new_round()
    with pytest.raises(VerificationError, match="no aggregate"):
        pack.checked(qid, through=14)
    assert pack.check_runs[(qid, 14)] == 2
    honest.close()
