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
steps them all in turn).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from statledger.nodes.config import ProviderConfig
from statledger.nodes.data import AnyTable, Table
from statledger.nodes.events import query_event
from statledger.nodes.http import RemoteError
from statledger.nodes.provider_service import ProviderNode
from statledger.proofs.errors import MalformedError, PolicyError, StatledgerError
from statledger.proofs.signatures import SigningKey
from statledger.protocol.consortium import SignedGenesis
from statledger.protocol.policy import ProviderPolicy

__all__ = ["PullOwner", "run_owners"]

log = logging.getLogger("statledger.owner")

#: seconds between two polls of :meth:`PullOwner.run` (and of ``node serve --pull``)
POLL_INTERVAL = 1.0


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
        #: index of the next ``query`` entry to look at
        self.cursor = 0
        #: queries this owner still acts on (contribute, then endorse)
        self.pending: set[str] = set()
        #: why each query this owner stopped following was dropped (its last word on it)
        self.outcome: dict[str, str] = {}

    def datasets(self) -> set[str]:
        return set(self._held) if self._held is not None else set(self.config.datasets)

    def table(self, name: str | None) -> tuple[str, AnyTable]:
        if self._held is None:
            return super().table(name)
        if name is None or name not in self._tables:
            raise PolicyError(f"{self.party_id} holds no dataset {name!r}")
        return name, self._tables[name]

    # -- one poll ----------------------------------------------------------------------------
    def step(self) -> None:
        """One poll of the ledger, acting on every query it finds due: contribute to the
        new ones that address it, endorse the results of those it contributed to.  Errors
        reaching the ledger are logged and retried at the next step."""
        try:
            for qid, index in self.ledger.queries_since(self.cursor):
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
        self.outcome[qid] = why
        log.info("%s: query %s: %s", self.party_id, qid[:12], why)

    def _act(self, qid: str) -> str | None:
        """Act on one query; the reason to stop following it, or None to look again."""
        view = self.follower.query_view(qid)
        if view.query is None:
            return None  # not yet under a witnessed checkpoint
        try:
            spec = view.query.query_spec()
        except MalformedError as exc:
            return f"malformed spec: {exc}"
        pull = spec.pull
        if pull is None:
            return "not a pull-mode query"
        if not pull.addresses(self.party_id) or pull.dataset not in self.datasets():
            return "not addressed to this owner"
        querier = view.query.querier
        mine = self.actions.done(qid, "contribute")
        if mine is None:  # logged before this owner's state was lost: resume from the log
            mine = next((i for i, s in view.submissions if s.provider == self.party_id), None)
            if mine is not None:
                self.actions.record(qid, "contribute", mine)
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


def run_owners(owners: Sequence[PullOwner] | Iterable[PullOwner], *,
               stop: threading.Event | None = None, interval: float = POLL_INTERVAL,
               rounds: int | None = None) -> None:
    """Step every owner in turn (one thread), then sleep ``interval`` seconds; until
    ``stop`` is set, or ``rounds`` rounds when given.  An owner whose step fails
    unexpectedly is logged and stepped again next round: one owner never stops the others."""
    pack = list(owners)
    done = 0
    halt = stop if stop is not None else threading.Event()
    while not halt.is_set() and (rounds is None or done < rounds):
        for owner in pack:
            if halt.is_set():
                break
            try:
                owner.step()
            except Exception:  # noqa: BLE001 - one owner's bug must not stop the pack
                log.exception("%s: step failed", owner.party_id)
        done += 1
        if rounds is None or done < rounds:
            halt.wait(interval)
