"""Owners that pull: a data owner as a client of the ledger only, no inbound port.

A hospital behind a firewall, or a thousand small clinics, cannot each open a port for the
querier to call.  A :class:`PullOwner` instead polls the ledger (docs/owners.md):

1. it lists the queries logged since its last poll (``GET /v1/queries?since=``: a hint; the
   ledger can hide a query from it -- a denial of service it can commit anyway -- but it
   cannot make it answer one that is not on the witnessed log);
2. it reads each one through its :class:`~statledger.nodes.follower.LogFollower` (every entry
   proven included in a checkpoint its witnesses cosigned, consistent with what it accepted
   before, the consortium chain replayed from its pinned genesis) and keeps only pull-mode
   queries (``spec.pull``) that address it, for a dataset it holds;
3. it contributes through the very code the provider service runs
   (:meth:`statledger.nodes.provider_service.ProviderNode.contribute`: verification steps
   5-8, its policy, its privacy budget charged before anything leaves, the exact-answer
   rules, encryption with range proofs, a signed submission appended to the ledger) --
   before the query's deadline and only while the query has no aggregate;
4. once the result is logged it endorses it through the same code as the endorse route
   (steps 5-14 re-checked, its own submission in the aggregate), so endorsement never
   depends on the querier reaching it.

A submission the ledger refuses because the aggregate came first (the query had its quorum)
is not counted; the owner logs why (a ``late`` query event) and forgets the query.
:func:`run_owners` packs many lightweight owners into one process (benchmarks: one thread
steps them in turn, or ``workers`` threads).  The owners of one pack share one
:class:`SharedLog`: one follower (the witnessed checkpoint, the inclusion proofs, each entry
read and proven once), one list of queries and one cache of checked views, so a query's
log -- every owner's submission proofs included -- is checked once per process, not once
per owner.  Sound because every
owner of a pack is the same operator's software on the same machine: a check one of them
ran is a check each of them ran.  Nothing is shared across processes, and a check that
failed is never cached as passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from statledger.nodes.app import NotFoundError
from statledger.nodes.config import ProviderConfig
from statledger.nodes.data import AnyTable, Table
from statledger.nodes.events import query_event
from statledger.nodes.follower import LogFollower
from statledger.nodes.http import RemoteError
from statledger.nodes.provider_service import ProviderNode
from statledger.proofs.errors import MalformedError, PolicyError, StatledgerError
from statledger.proofs.signatures import SigningKey
from statledger.protocol.checks import check_query
from statledger.protocol.consortium import SignedGenesis
from statledger.protocol.entries import QueryEntry
from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import QueryView

__all__ = ["PullOwner", "SharedLog", "run_owners", "share"]

log = logging.getLogger("statledger.owner")

#: seconds between two polls of :meth:`PullOwner.run` (and of ``node serve --pull``)
POLL_INTERVAL = 1.0


Rows = list[tuple[int, bytes]]


class SharedLog:
    """The checked reads of one process's owners (see the module docstring), through one
    :class:`~statledger.nodes.follower.LogFollower` whose proven entries are kept.

    Reads are refreshed once per round (:meth:`new_round`; :func:`run_owners` starts one
    before each sweep of its pack): the queries logged, and each query's entries -- only
    those not proven yet are fetched and proven.  :meth:`checked` runs verification steps
    5 through ``through`` on the part of a query's log an action rests on, and keeps the
    view that passed, keyed by the log indices it was built from: contributing rests on
    the roster and the query entry (steps 5-8), endorsing on the log up to the result
    (steps 5-14, every submission's range and one-hot proofs with one batched check).
    Every owner of the pack acting on the same part gets the same checked view; a failure
    raises for each caller and is kept for the round only, never as a pass.

    Counters (tests read them, never timings): :attr:`check_runs` counts the runs of the
    steps by (query id, through); :attr:`proof_checks` counts, per submission's log index,
    how many runs checked its proofs.
    """

    def __init__(self, follower: LogFollower) -> None:
        self.follower = follower
        if follower.proven is None:
            follower.proven = {}
        self.ledger = follower.ledger
        self.pinned = follower.consortium_id
        self._lock = threading.RLock()
        self._round = 0
        self._queries: list[tuple[str, int]] = []
        self._cursor = 0
        self._listed = -1  # round of the last listing
        self._list_error: StatledgerError | None = None  # ... and its failure, if it failed
        #: this round's rows and views per query (a failure: the error, for this round)
        self._rows: dict[str, Rows | BaseException] = {}
        self._views: dict[str, QueryView] = {}
        self._own: dict[str, set[int]] = {}
        #: each query's last view and the indices it was built from (parsed again only when
        #: the log grew: polling a quiet query costs no decoding)
        self._last_view: dict[str, tuple[tuple[int, ...], QueryView]] = {}
        #: views that passed the steps: (query id, through, contributor, indices) -> view
        self._checked: dict[tuple[str, int, str | None, tuple[int, ...]], QueryView] = {}
        self._specs: dict[str, QuerySpec] = {}
        #: this round's checks that failed (kept for the round only, never as passed)
        self._failed: dict[tuple[str, int, str | None, tuple[int, ...]], StatledgerError] = {}
        self.check_runs: Counter[tuple[str, int]] = Counter()
        self.proof_checks: Counter[int] = Counter()

    def new_round(self) -> None:
        """Forget this round's reads (the next ones go to the ledger again)."""
        with self._lock:
            self._round += 1
            self._rows.clear()
            self._views.clear()
            self._own.clear()
            self._failed.clear()

    def queries_since(self, cursor: int) -> list[tuple[str, int]]:
        """(query id, index) of the queries logged at index >= ``cursor`` (the ledger's
        hint, listed once per round for the whole pack)."""
        with self._lock:
            if self._listed != self._round:
                self._listed = self._round
                self._list_error = None
                try:
                    listed = self.ledger.queries_since(self._cursor)
                except StatledgerError as exc:
                    # one wait per round, not one per owner: a ledger that does not answer
                    # would otherwise stall the pack for (owners x timeout) every round
                    self._list_error = exc
                    raise
                for qid, index in listed:
                    if index >= self._cursor:
                        self._queries.append((qid, index))
                        self._cursor = index + 1
            if self._list_error is not None:
                raise self._list_error
            return [(q, i) for q, i in self._queries if i >= cursor]

    def rows(self, query_id: str) -> Rows:
        """The roster's and the query's entries, each proven included (this round's)."""
        with self._lock:
            got = self._rows.get(query_id)
            if isinstance(got, BaseException):
                raise got
            if got is not None:
                return got
            try:
                roster, chain, own = self.ledger.view_indices(query_id)  # one request
                rows, _ = self.follower.entries(roster + own, chain=chain)
            except StatledgerError as exc:
                self._rows[query_id] = exc
                raise
            self._rows[query_id] = rows
            self._own[query_id] = set(own)
            return rows

    def query_view(self, query_id: str) -> QueryView:
        """The query's view this round (entries proven included; steps 6- not run)."""
        with self._lock:
            view = self._views.get(query_id)
            if view is None:
                rows = self.rows(query_id)
                key = tuple(i for i, _ in rows)
                last = self._last_view.get(query_id)
                # the same proven entries: reuse (a chained round's previous round is read
                # again every time)
                if last is not None and last[0] == key and last[1].previous_query is None:
                    view = last[1]
                else:
                    view = self.follower.view_of(rows)
                    self._last_view[query_id] = (key, view)
                self._views[query_id] = view
            return view

    def spec(self, query: QueryEntry) -> QuerySpec:
        """The spec of a query entry, parsed once per process (a query id names one spec:
        it is the hash of the spec and the querier, checked when the entry is decoded)."""
        with self._lock:
            spec = self._specs.get(query.query_id)
            if spec is None:
                spec = self._specs[query.query_id] = query.query_spec()
            return spec

    def checked(self, query_id: str, *, through: int,
                contributor: str | None = None) -> QueryView:
        """The part of the query's log an action rests on, steps 5 through ``through``
        passed (see the class docstring)."""
        with self._lock:
            full = self.query_view(query_id)
            if full.query is None or full.query_index is None:
                raise NotFoundError(f"unknown query id {query_id} (no query entry on the log)")
            cut = full.query_index
            if through > 8:
                # the log up to the result (the endorsements after it are step 15's)
                cut = full.result[0] if full.result is not None else max(
                    i for i, _ in self.rows(query_id))
            own = self._own[query_id]  # the query's own entries (the rest: its roster)
            rows = [(i, b) for i, b in self.rows(query_id) if i <= cut or i not in own]
            chained = full.previous_query is not None
            key = (query_id, through, contributor if chained else None,
                   tuple(i for i, _ in rows))
            view = None if chained else self._checked.get(key)
            if view is not None:
                return view
            failed = self._failed.get(key)
            if failed is not None:  # failed this round: the same refusal, not a re-run
                raise failed
            view = self.follower.view_of(rows)
            self.check_runs[(query_id, through)] += 1
            if through >= 9:
                self.proof_checks.update(i for i, _ in view.submissions)
            try:
                check_query(view, through=through, pinned=self.pinned,
                            contributor=contributor)
            except StatledgerError as exc:
                if not chained:
                    self._failed[key] = exc
                raise
            if not chained:  # a chained round's previous log is read afresh every time
                self._checked[key] = view
            return view


def share(owners: Sequence[PullOwner]) -> SharedLog | None:
    """Make ``owners`` (one process's pack) share one :class:`SharedLog`, through the first
    owner's follower (its accepted checkpoint is the pack's); None for an empty pack."""
    if not owners:
        return None
    first = owners[0].shared
    if all(o.shared is first for o in owners):
        return first
    pack = SharedLog(owners[0].follower)
    for o in owners:
        o.shared = pack
    return pack


class PullOwner(ProviderNode):
    """One data owner that pulls its queries from the ledger (see the module docstring).

    Lightweight form: ``PullOwner(ledger_url, party_id, key, tables, policy, trust)`` with
    the tables in memory and, without ``state_dir``, its state (accepted checkpoint, budget,
    actions, exact-answer history) in memory too.  From a provider config (the files the
    provider service uses): :meth:`from_config`.
    """

    def __init__(self, ledger_url: str, party_id: str, key: SigningKey,
                 tables: Mapping[str, Table], policy: ProviderPolicy | None,
                 trust: SignedGenesis, *, state_dir: Path | None = None) -> None:
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        state: Path | str = ":memory:" if state_dir is None else state_dir / "state.sqlite"
        history: Path | str = (":memory:" if state_dir is None
                               else state_dir / "history.sqlite")
        self._init_owner(party_id, key, policy if policy is not None else ProviderPolicy(),
                         ledger_url, trust, state, history)
        self._tables = dict(tables)
        self._held: set[str] | None = set(self._tables)
        self._init_pull()

    @classmethod
    def from_config(cls, config: ProviderConfig) -> PullOwner:
        """The owner of a provider config (its datasets, policy, keys and state files)."""
        owner = cls.__new__(cls)
        ProviderNode.__init__(owner, config)
        owner._held = None
        owner._init_pull()
        return owner

    def _init_pull(self) -> None:
        #: this owner's checked reads, shared with its pack (:func:`share`)
        self.shared = SharedLog(self.follower)
        #: index of the next ``query`` entry to look at
        self.cursor = 0
        #: queries this owner still acts on (contribute, then endorse)
        self.pending: set[str] = set()
        #: why each query this owner stopped following was dropped (its last word on it)
        self.outcome: dict[str, str] = {}
        #: the log index of this owner's submission to each pending query, once its action
        #: log holds it (a recorded action never changes: not asked again at every poll)
        self._contributed: dict[str, int] = {}

    def datasets(self) -> set[str]:
        return set(self._held) if self._held is not None else set(self.config.datasets)

    def table(self, name: str | None) -> tuple[str, AnyTable]:
        if self._held is None:
            return super().table(name)
        if name is None or name not in self._tables:
            raise PolicyError(f"{self.party_id} holds no dataset {name!r}")
        return name, self._tables[name]

    def checked_view(self, query_id: str, *, through: int,
                     contributor: str | None = None) -> QueryView:
        """Steps 5 through ``through``, run once for the whole pack (:class:`SharedLog`)."""
        return self.shared.checked(query_id, through=through, contributor=contributor)

    # -- one poll ----------------------------------------------------------------------------
    def step(self, *, fresh: bool = True) -> None:
        """One poll of the ledger, acting on every query it finds due: contribute to the
        new ones that address it, endorse the results of those it contributed to.  Errors
        reaching the ledger are logged and retried at the next step.  ``fresh=False``: read
        what the pack read this round (:func:`run_owners` starts the round)."""
        if fresh:
            self.shared.new_round()
        try:
            for qid, index in self.shared.queries_since(self.cursor):
                self.pending.add(qid)
                self.cursor = max(self.cursor, index + 1)
        except StatledgerError as exc:
            log.warning("%s: cannot list the ledger's queries: %s", self.party_id, exc)
            return
        for qid in sorted(self.pending):
            try:
                verdict = self._act(qid)
            except RemoteError as exc:
                if exc.status in (None, 429) or (exc.status or 0) >= 500:
                    log.warning("%s: query %s: ledger unavailable, retrying: %s",
                                self.party_id, qid[:12], exc)
                    continue
                verdict = f"refused by the ledger: {exc}"
            except StatledgerError as exc:
                verdict = f"refused: {exc}"
            if verdict is not None:
                self._drop(qid, verdict)

    def _drop(self, qid: str, why: str) -> None:
        self.pending.discard(qid)
        self._contributed.pop(qid, None)
        self.outcome[qid] = why
        log.info("%s: query %s: %s", self.party_id, qid[:12], why)

    def _act(self, qid: str) -> str | None:
        """Act on one query; the reason to stop following it, or None to look again."""
        view = self.shared.query_view(qid)
        if view.query is None:
            return None  # not yet under a witnessed checkpoint
        try:
            spec = self.shared.spec(view.query)
        except MalformedError as exc:
            return f"malformed spec: {exc}"
        pull = spec.pull
        if pull is None:
            return "not a pull-mode query"
        if not pull.addresses(self.party_id) or pull.dataset not in self.datasets():
            return "not addressed to this owner"
        querier = view.query.querier
        mine = self._contributed.get(qid)
        if mine is None:
            mine = self.actions.done(qid, "contribute")
        if mine is None:  # logged before this owner's state was lost: resume from the log
            mine = next((i for i, s in view.submissions if s.provider == self.party_id), None)
            if mine is not None:
                self.actions.record(qid, "contribute", mine)
        if mine is not None:
            self._contributed[qid] = mine
        if mine is None:
            if view.aggregate is not None:
                query_event("late", qid, spec, querier=querier,
                            reason="the query was aggregated before this owner submitted")
                return "not counted: the query was aggregated before this owner submitted"
            if time.time() > pull.deadline:
                query_event("late", qid, spec, querier=querier,
                            reason="the submission deadline has passed")
                return "not counted: the submission deadline has passed"
            try:
                self.contribute(qid, querier, pull.dataset)
            except RemoteError as exc:
                if exc.status == 409 and "after the aggregate" in str(exc):
                    query_event("late", qid, spec, querier=querier,
                                reason="the query was aggregated before this submission")
                    return ("not counted: the query was aggregated before this submission "
                            "was logged")
                raise
            return None
        if view.aggregate is not None and mine not in view.aggregate[1].submissions:
            return "not counted: the aggregate does not list this owner's submission"
        if view.result is None:
            return None
        endorsed = next((i for i, e in view.endorsements if e.provider == self.party_id), None)
        if endorsed is not None:
            self.actions.record(qid, "endorse", endorsed)
        elif self.actions.done(qid, "endorse") is None:
            self.endorse(qid)
        return "endorsed"

    # -- loops -------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None,
            interval: float = POLL_INTERVAL) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set."""
        run_owners([self], stop=stop, interval=interval)


def _step(owner: PullOwner, halt: threading.Event) -> None:
    if halt.is_set():
        return
    try:
        owner.step(fresh=False)
    except Exception:  # noqa: BLE001 - one owner's bug must not stop the pack
        log.exception("%s: step failed", owner.party_id)


def run_owners(owners: Sequence[PullOwner] | Iterable[PullOwner], *,
               stop: threading.Event | None = None, interval: float = POLL_INTERVAL,
               rounds: int | None = None, workers: int = 1) -> None:
    """Step every owner once per round, then sleep ``interval`` seconds; until ``stop`` is
    set, or ``rounds`` rounds when given.  The owners share one :class:`SharedLog`
    (:func:`share`), read afresh once per round.  An owner whose step fails unexpectedly is
    logged and stepped again next round: one owner never stops the others.

    ``workers``: how many owners of the pack step at once (threads; 1: in turn).  Each
    owner is stepped by one thread at a time and keeps its own state; what they share is
    the :class:`SharedLog`, which is locked.  With several, one owner encrypts while
    another's submission waits for the ledger's checks, and the ledger checks the
    submissions that arrive together in one batch (nodes/ledger_service.py); measured on a
    loaded 2-core machine, it costs more CPU than it saves (docs/performance.md)."""
    from concurrent.futures import ThreadPoolExecutor

    if workers < 1:
        raise ValueError("workers: at least 1")
    pack = list(owners)
    shared = share(pack)
    done = 0
    halt = stop if stop is not None else threading.Event()
    pool = (ThreadPoolExecutor(max_workers=workers, thread_name_prefix="owner")
            if workers > 1 else None)
    try:
        while not halt.is_set() and (rounds is None or done < rounds):
            if shared is not None:
                shared.new_round()
            if pool is None:
                for owner in pack:
                    _step(owner, halt)
            else:  # the round ends when every owner's step did
                for future in [pool.submit(_step, owner, halt) for owner in pack]:
                    future.result()
            done += 1
            if rounds is None or done < rounds:
                halt.wait(interval)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
