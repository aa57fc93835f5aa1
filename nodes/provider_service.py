"""The data owner's provider node: answers queries under its policy, endorses results.

Routes (``auth`` = signed request from a registered querier)::

    POST /v1/queries/{query_id}/contribute  auth  {"dataset": name?} -> {"index"}
    POST /v1/queries/{query_id}/endorse     auth  -> {"index", "result_digest"}
    GET  /v1/health

``contribute`` reads the query from the log (never from the request), checks the owner's
policy and privacy budget, encodes the local rows, encrypts every value under the collective
key with an aggregated range proof and logs the signed submission.  Rows never leave the
node unencrypted.  ``endorse`` re-runs verification steps 5-14 on the log and checks that the
aggregate includes this owner's submission before signing the result's digest.  The budget
is charged once per query (idempotent), in the same SQLite transaction that records the
contribution, so a restart never double-spends.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import tomllib
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import Body, Depends, FastAPI

from statledger.nodes.app import NotFoundError, UnavailableError
from statledger.nodes.compute_service import query_view
from statledger.nodes.config import ProviderConfig
from statledger.nodes.data import AnyTable, load_dataset
from statledger.nodes.events import query_event
from statledger.nodes.follower import LogFollower
from statledger.nodes.keys import load_identity_key
from statledger.nodes.ledger_client import (
    NODE_APPEND_TIMEOUT,
    NODE_BREAKER,
    NODE_READ_TIMEOUT,
    LedgerClient,
)
from statledger.nodes.peers import QUERY_ROUTE, ActionLog, BoundedLock, create_party_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.errors import MalformedError, PolicyError, StatledgerError
from statledger.proofs.signatures import SigningKey
from statledger.protocol import calibration, entries, flow, history, validity, vertical
from statledger.protocol.checks import STEPS, StepContext, check_query, run_steps
from statledger.protocol.consortium import SignedGenesis
from statledger.protocol.dp import BudgetLedger
from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.view import QueryView

__all__ = ["ProviderNode", "create_app", "preload"]

log = logging.getLogger("statledger.provider")

_BUDGETS = "CREATE TABLE IF NOT EXISTS budgets(dataset TEXT PRIMARY KEY, state TEXT NOT NULL);"


_HISTORY = """CREATE TABLE IF NOT EXISTS exact_history(
  dataset TEXT NOT NULL, query_id TEXT NOT NULL, answered_at REAL NOT NULL, rows BLOB NOT NULL,
  PRIMARY KEY (dataset, query_id));"""


#: seconds a provider process waits for another one (serve and serve --pull over one
#: DATA_DIR) to finish its read-check-record of the history or its budget charge
_TXN_WAIT = 60.0


def _open_history(path: Path) -> sqlite3.Connection:
    """The owner's history of answered exact queries (row sets: protocol/history.py): a
    local file only its owner can read (mode 0600, rollback journal beside it, same mode);
    ``:memory:`` for an owner that keeps no state file (tests, benchmarks)."""
    if str(path) != ":memory:":
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None,
                         timeout=_TXN_WAIT)
    db.executescript(_HISTORY)
    return db


@contextmanager
def _write_txn(db: sqlite3.Connection, what: str) -> Iterator[None]:
    """One SQLite write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any
    error): a read-check-write over ``db`` is atomic across processes of one owner, the
    second waiting (``_TXN_WAIT``) and then seeing the first's write."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        raise UnavailableError(f"{what} is busy (another process of this owner holds it); "
                               "retry") from None
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back on its own (an I/O error)
            db.execute("ROLLBACK")
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.OperationalError:
        # never leave the connection inside the transaction (every later request would
        # be refused as busy, and the write lock would hold up the other process)
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise UnavailableError(f"{what} is busy (another process of this owner holds it); "
                               "retry") from None


def load_policy(path: Any) -> ProviderPolicy:
    if path is None:
        return ProviderPolicy()
    text = path.read_text(encoding="utf-8")
    try:
        obj = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MalformedError(f"policy file {path}: {exc}") from None
    return ProviderPolicy.parse(obj)


class ProviderNode:
    """The provider's logic (no HTTP): shared by the service that answers requests and by
    the owner that pulls queries from the ledger (:mod:`statledger.nodes.owner`)."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._init_owner(config.party_id, load_identity_key(config.identity_key_path),
                         load_policy(config.policy), str(config.ledger_url),
                         pinned_genesis(config), config.state_db_path,
                         config.data_dir / "history.sqlite")

    def _init_owner(self, party_id: str, identity: SigningKey, policy: ProviderPolicy,
                    ledger_url: str, genesis: SignedGenesis, state_db: Path | str,
                    history: Path | str) -> None:
        self.party_id = party_id
        self.identity = identity
        self.policy = policy
        self.ledger = LedgerClient(ledger_url, party_id, self.identity,
                                   target=genesis.genesis.ledger.party_id,
                                   timeout=NODE_READ_TIMEOUT, append_timeout=NODE_APPEND_TIMEOUT,
                                   breaker=NODE_BREAKER)
        self.follower = LogFollower(self.ledger, genesis, Path(state_db))
        self.follower.proven = {}  # each entry read and proven included once
        self.pinned = self.follower.consortium_id
        self._tables: dict[str, AnyTable] = {}
        self.actions = ActionLog(state_db, _BUDGETS)
        self._db = self.actions.db
        # the budget charge's write transaction waits as long as the history's does
        self._db.execute(f"PRAGMA busy_timeout = {int(_TXN_WAIT * 1000)}")
        self._history = _open_history(Path(history))
        #: bucketed clip counts per query, returned to the querier with the submission index
        self.clipped: dict[str, dict[str, str]] = {}
        self._lock = BoundedLock()  # a request waits at most BUSY_WAIT s
        #: the spec of each query being answered, for its outcome's event line
        self._event_specs: dict[str, Any] = {}

    def close(self) -> None:
        self._history.close()
        self.ledger.close()
        self.follower.close()
        self.actions.close()

    def table(self, name: str | None) -> tuple[str, AnyTable]:
        names = list(self.config.datasets)
        if name is None:
            if len(names) != 1:
                raise MalformedError(
                    f"dataset: {self.party_id} holds {len(names)} datasets "
                    f"({', '.join(names)}); name one")
            name = names[0]
        ds = self.config.datasets.get(name)
        if ds is None:
            raise NotFoundError(f"{self.party_id} has no dataset {name!r}")
        if name not in self._tables:
            self._tables[name] = load_dataset(ds)
        return name, self._tables[name]

    def _budget(self, dataset: str) -> BudgetLedger:
        row = self._db.execute("SELECT state FROM budgets WHERE dataset=?",
                               (dataset,)).fetchone()
        if row is not None:
            return BudgetLedger.from_dict(json.loads(row[0]))
        total = self.policy.budget_rho if self.policy.budget_rho is not None else 0
        return BudgetLedger(dataset, total)

    def _charge(self, name: str, query_id: str, rho: Any) -> None:
        """Charge ``rho`` to the dataset's budget (idempotently, per query id) and persist
        it BEFORE anything leaves the node (a crash after this point can over-charge, never
        under-charge), read-charge-write in one write transaction: two processes of this
        owner on one state database never both spend the same remaining budget."""
        with _write_txn(self._db, f"this owner's privacy budget for {name}"):
            budget = self._budget(name)
            budget.charge(query_id, rho)
            self._db.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?)",
                             (name, json.dumps(budget.to_dict())))

    def _answered_times(self, name: str, query_id: str) -> list[float] | None:
        """The times of the dataset's recorded exact answers, or None if ``query_id`` is
        among them (a resumed request: accounted once)."""
        times: list[float] = []
        for q, t in self._history.execute(
                "SELECT query_id, answered_at FROM exact_history WHERE dataset=?", (name,)):
            if q == query_id:
                return None
            if not isinstance(t, int | float):
                raise MalformedError("exact history: a record without its time")
            times.append(float(t))
        return times

    def _record_ids(self, name: str) -> list[tuple[int, str]]:
        return [(int(r), str(q)) for r, q in self._history.execute(
            "SELECT rowid, query_id FROM exact_history WHERE dataset=?", (name,))]

    def _headers(self, name: str) -> list[bytes]:
        """The first bytes of each record (its header), read through a blob handle (SQL
        ``substr`` would load the whole record)."""
        out: list[bytes] = []
        for rowid, _ in self._record_ids(name):
            with self._history.blobopen("exact_history", "rows", rowid, readonly=True) as b:
                out.append(b.read(17))
        return out

    def _recorded_sets(self, name: str) -> Generator[tuple[str, history.RowSets], None, None]:
        """Every recorded set of the dataset, streamed: each record read through an SQLite
        blob handle a bounded piece at a time (``history.stream_sets``), never all at once."""
        for rowid, q in self._record_ids(name):
            with self._history.blobopen("exact_history", "rows", rowid, readonly=True) as b:
                for piece in history.stream_sets(b.read):
                    yield q, piece

    def _unreadable(self, name: str, exc: Exception) -> PolicyError:
        log.error("%s: exact-answer history for dataset %s is unreadable (%s); exact "
                  "answers on it are refused", self.party_id, name, exc)
        return PolicyError(
            f"{self.party_id}: its exact-answer history for dataset {name} is unreadable (a "
            "damaged record), so it refuses exact answers on it until its owner restores the "
            "history file; ask with differential privacy")

    def _check_exact_quota(self, name: str, query_id: str) -> None:
        """The quota alone, recording nothing (owner A of a vertical query, before its
        rows: an early refusal; the answer is accounted before its block)."""
        try:
            times = self._answered_times(name, query_id)
        except (MalformedError, sqlite3.DatabaseError) as exc:
            raise self._unreadable(name, exc) from None
        if times is not None:
            self.policy.check_exact_quota(name, times, time.time())

    def _account_exact(self, name: str, query_id: str, spec: Any,
                       sets: history.RowSets) -> None:
        """The exact-answer rules that need this owner's history: the quota of exact
        answers per period, the per-query cell cap and the history's capacity, and the
        differencing check on ``sets`` (the row sets behind every released cell:
        ``history.released_sets``; a vertical query's joined rows); then record this answer
        (before anything leaves the node).  Read, check and record are one write
        transaction (``_write_txn``): a second process of this owner on the same history
        waits, then sees this answer.  A damaged record refuses the query (fail closed),
        blaming the owner's file, not the querier."""
        with _write_txn(self._history, f"this owner's exact-answer history for {name}"):
            try:
                times = self._answered_times(name, query_id)
                if times is None:
                    return  # already answered (a resumed request): accounted once
                self.policy.check_exact_quota(name, times, time.time())
                if self.policy.differencing_check:
                    stored = sum(history.set_count(h) for h in self._headers(name))
                    history.check_capacity(name, stored, len(sets))
                    k = max(spec.min_cell_size, self.policy.min_cell_size)
                    earlier = self._recorded_sets(name)
                    try:
                        history.check_differencing(name, query_id, sets, earlier, k)
                    finally:
                        earlier.close()  # the open blob handle, before the transaction ends
            except (MalformedError, sqlite3.DatabaseError) as exc:
                raise self._unreadable(name, exc) from None
            self._history.execute("INSERT INTO exact_history VALUES (?, ?, ?, ?)",
                                  (name, query_id, time.time(), sets.to_bytes()))

    def checked_view(self, query_id: str, *, through: int,
                     contributor: str | None = None) -> QueryView:
        """The query read through this owner's follower, verification steps 5 through
        ``through`` passed (owners packed in one process share the check: nodes/owner.py)."""
        return check_query(query_view(self.follower, query_id), through=through,
                           pinned=self.pinned, contributor=contributor)

    def contribute(self, query_id: str, querier: str, dataset: str | None) -> int:
        """Contribute to ``query_id`` (see :meth:`_contribute`); one query event is logged
        for the request (``received``) and one for its outcome (``contributed`` or
        ``refused`` with the reason)."""
        try:
            index = self._contribute(query_id, querier, dataset)
        except StatledgerError as exc:
            query_event("refused", query_id, self._event_specs.pop(query_id, None),
                        querier=querier, dataset=dataset, reason=str(exc))
            raise
        query_event("contributed", query_id, self._event_specs.pop(query_id, None),
                    querier=querier, dataset=dataset, index=index)
        return index

    def _received(self, query_id: str, spec: Any, querier: str, dataset: str | None) -> None:
        self._event_specs[query_id] = spec
        query_event("received", query_id, spec, querier=querier, dataset=dataset)

    def _contribute(self, query_id: str, querier: str, dataset: str | None) -> int:
        with self._lock:
            done = self.actions.done(query_id, "contribute")
            if done is not None:
                return done
            view = self.checked_view(query_id, through=8, contributor=self.party_id)
            spec = view.spec
            if spec is None or view.query is None:  # pragma: no cover - check_query sets them
                raise PolicyError("no query")
            self._received(query_id, spec, querier, dataset)
            if view.query.querier != querier:
                raise PolicyError(f"query {query_id} was posted by {view.query.querier}, "
                                  f"not by {querier}")
            if vertical.is_vertical(spec):
                return self._vertical(query_id, spec, querier, dataset)
            for idx, s in view.submissions:  # logged before a crash: resume, never resubmit
                if s.provider == self.party_id:
                    self.actions.record(query_id, "contribute", idx)
                    return idx
            dataset = self._addressed(query_id, spec, dataset)
            name, table = self.table(dataset)
            self.policy.check(spec, querier, list(table))
            rho = flow.privacy_rho(spec)
            if rho is not None:
                if self.policy.budget_rho is None:
                    raise PolicyError(f"{self.party_id} has no privacy budget configured for "
                                      f"{name} (policy budget_rho)")
                self._charge(name, query_id, rho)
            values, report = calibration.wire_encode(spec, table, self.party_id)
            if rho is None:  # every exact answer is accounted for (docs/deployment.md)
                self._account_exact(name, query_id, spec, history.released_sets(report))
            # bucketed, or withheld for a DP query or a selection below min_cell_size
            self.clipped[query_id] = calibration.clip_report(spec, report)
            # the range-proved vector, and a one-hot proof when the query asks for it
            raw = validity.encrypt_submission(
                spec, view.setup.collective_point(),  # type: ignore[union-attr]
                values, flow.submission_context(query_id, self.party_id))
            entry = entries.sign(
                entries.SubmissionEntry(query_id, self.party_id, raw.hex()),
                self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "contribute", index, name)
            log.info("submission for %s (%s) logged at %d", query_id, name, index)
            return index

    def _pair_secrets(self) -> dict[str, bytes]:
        """The vertical partners of the node config and their pair secrets (hex files)."""
        out: dict[str, bytes] = {}
        partners = getattr(self.config, "vertical_partners", {}) or {}
        for partner, path in partners.items():
            try:
                out[partner] = bytes.fromhex(Path(path).read_text(encoding="utf-8").strip())
            except (OSError, ValueError):
                raise PolicyError(f"{self.party_id}: the pair secret file for vertical partner "
                                  f"{partner!r} is missing or not hex") from None
        return out

    def _vertical(self, query_id: str, spec: Any, querier: str, dataset: str | None) -> int:
        """This owner's next phase of a vertically partitioned query (protocol/vertical.py):
        owner A logs its rows, then -- once owner B's products are on the log -- its block;
        owner B logs its products once A's rows are.  Every entry it builds on is read from
        this node's follower (proven included in a checkpoint the witnesses cosigned) and
        checked first (verification steps 5-9: signatures, order, every proof), so neither
        the ledger nor the partner can feed it entries the log does not hold.  The index of
        this owner's first entry is recorded as its contribution once its last phase is
        logged (A: block, B: products)."""
        ctx = StepContext(query_view(self.follower, query_id), pinned=self.pinned)
        run_steps(ctx, STEPS, through=9)
        plan = vertical.VerticalPlan.of(spec)
        part = plan.part
        if self.party_id not in part.owners:
            raise PolicyError(f"query {query_id} is vertical between {part.a} and {part.b}; "
                              f"{self.party_id} holds none of its columns")
        dataset = self._addressed(query_id, spec, dataset)
        name, table = self.table(dataset)
        if not isinstance(table, dict):
            raise PolicyError(f"{self.party_id}: dataset {name} must be a CSV/Parquet/SQLite "
                              "table for a vertical query")
        self.policy.check(spec, querier, list(table), own_columns=part.columns[self.party_id])
        cfg = vertical.OwnerConfig(self.party_id, self._pair_secrets())
        X = ctx.setup().collective_point()
        logged = ctx.view.vertical
        rows, prods, _ = ctx.vertical_entries
        # the one clip rule (calibration.clip_report): a vertical query's report is withheld
        # (an owner's own selection is not in the differencing history); its columns are
        # this owner's
        self.clipped[query_id] = calibration.clip_report(
            spec, vertical.local_report(spec, table, self.party_id))
        # Exact answers (no DP for vertical queries yet) count against the owner's quota and
        # enter its history with the JOINED rows (vertical.joined_rows), checked and recorded
        # in the phase that gates the release (B: products, A: block; nothing is decrypted
        # without both), before that entry leaves the node.
        exact = flow.privacy_rho(spec) is None
        if self.party_id == part.a:
            if not logged:
                if exact:
                    self._check_exact_quota(name, query_id)
                data = vertical.a_rows(spec, query_id, table, cfg, X).to_bytes()
                return self._log_vertical(entries.VerticalRowsEntry, query_id, data)
            if len(logged) == 1:
                return logged[0][0]  # waiting for owner B's products
            if len(logged) == 3:
                self.actions.record(query_id, "contribute", logged[0][0], name)
                return logged[2][0]
            if rows is None or prods is None:  # pragma: no cover - step 9 decoded them
                raise PolicyError("vertical entries not decoded")
            data = vertical.a_block(spec, query_id, table, cfg, X, rows, prods).to_bytes()
            if exact:
                self._account_exact(name, query_id, spec, history.RowSets.of_masks(
                    vertical.joined_rows(spec, query_id, table, cfg, rows, prods)))
            index = self._log_vertical(entries.VerticalBlockEntry, query_id, data)
            self.actions.record(query_id, "contribute", logged[0][0], name)
            return index
        if not logged or rows is None:
            raise PolicyError(f"query {query_id}: owner {part.a}'s rows are not on the "
                              "witnessed log yet")
        if len(logged) >= 2:
            self.actions.record(query_id, "contribute", logged[1][0], name)
            return logged[1][0]
        data = vertical.b_products(spec, query_id, table, cfg, X, rows).to_bytes()
        if exact:
            self._account_exact(name, query_id, spec, history.RowSets.of_masks(
                vertical.joined_rows(spec, query_id, table, cfg, rows)))
        index = self._log_vertical(entries.VerticalProductsEntry, query_id, data)
        self.actions.record(query_id, "contribute", index, name)
        return index

    def _log_vertical(self, kind: Any, query_id: str, data: bytes) -> int:
        entry = entries.sign(kind(query_id, self.party_id, data.hex()), self.identity)
        index = int(self.ledger.append(entry))
        log.info("%s for %s logged at %d", entry.KIND, query_id, index)
        return index

    def _addressed(self, query_id: str, spec: Any, dataset: str | None) -> str | None:
        """A pull-mode query (docs/owners.md) is answered only by an owner it addresses,
        from the dataset it names, before its deadline; the dataset to answer from."""
        pull = spec.pull
        if pull is None:
            return dataset
        if not pull.addresses(self.party_id):
            raise PolicyError(f"query {query_id} does not address {self.party_id}")
        if dataset is not None and dataset != pull.dataset:
            raise PolicyError(f"query {query_id} asks for dataset {pull.dataset!r}, not "
                              f"{dataset!r}")
        if time.time() > pull.deadline:
            raise PolicyError(f"query {query_id}: its submission deadline has passed")
        return str(pull.dataset)

    def endorse(self, query_id: str) -> tuple[int, str]:
        """Endorse ``query_id``'s result (see :meth:`_endorse`), logging the outcome."""
        try:
            index, digest = self._endorse(query_id)
        except StatledgerError as exc:
            query_event("endorse_refused", query_id, reason=str(exc))
            raise
        query_event("endorsed", query_id, index=index, result_digest=digest)
        return index, digest

    def _endorse(self, query_id: str) -> tuple[int, str]:
        with self._lock:
            done = self.actions.done(query_id, "endorse")
            # Steps 5-14 in full, every owner's range and linking proofs included: an owner
            # signs only a result it has checked itself, whatever the ledger admitted.
            view = self.checked_view(query_id, through=14)
            if view.result is None:  # pragma: no cover - step 14 requires it
                raise PolicyError("no result")
            digest = entries.result_digest(view.result[2])
            if done is not None:
                return done, digest
            mine = self.actions.done(query_id, "contribute")
            if mine is None:
                # The append timed out (or the node crashed) after the ledger logged the
                # submission: the log holds it, signed with this owner's own key (step 5
                # checked the signature), so it is this owner's contribution.
                own = [i for i, s in view.submissions if s.provider == self.party_id]
                if len(own) == 1:
                    mine = own[0]
                    self.actions.record(query_id, "contribute", mine)
            if mine is None or view.aggregate is None or mine not in view.aggregate[1].submissions:
                raise PolicyError(f"{self.party_id} did not contribute to the aggregate of "
                                  f"{query_id}; it endorses only results it took part in")
            entry = entries.sign(
                entries.EndorsementEntry(query_id, self.party_id, digest), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "endorse", index)
            return index, digest


def preload(node: ProviderNode) -> list[str]:
    """Read every configured dataset once, as the node starts (a query then finds its table
    in memory instead of paying the read; a DuckDB dataset is only opened).  A dataset that
    cannot be read is left for the query that names it, which reports why to the querier;
    its name is returned (and logged)."""
    failed: list[str] = []
    for name in node.config.datasets:
        try:
            node.table(name)
        except Exception as exc:  # noqa: BLE001 - reported again, precisely, by the query
            log.warning("dataset %s not loaded at start (%s); the first query that names it "
                        "reads it again", name, type(exc).__name__)
            failed.append(name)
    return failed


def create_app(config: ProviderConfig) -> FastAPI:
    node = ProviderNode(config)
    preload(node)
    app, auth = create_party_app(config, node, title="statledger provider node", role="provider")

    @app.post("/v1/queries/{query_id}/contribute", responses=QUERY_ROUTE)
    def post_contribute(query_id: str,
                        body: dict[str, Any] | None = Body(default=None),  # noqa: B008
                        party: str = Depends(auth.require("querier"))) -> dict[str, Any]:
        dataset = None
        if body:
            if set(body) - {"dataset"}:
                raise MalformedError(f"unexpected fields {sorted(set(body) - {'dataset'})}")
            dataset = body.get("dataset")
            if dataset is not None and not isinstance(dataset, str):
                raise MalformedError("dataset: expected a string")
        index = node.contribute(query_id, party, dataset)
        return {"index": index, "provider": config.party_id,
                "clipped": node.clipped.get(query_id, {})}

    @app.post("/v1/queries/{query_id}/endorse", responses=QUERY_ROUTE)
    def post_endorse(query_id: str, _party: str = Depends(auth.require("querier"))
                     ) -> dict[str, Any]:
        index, digest = node.endorse(query_id)
        return {"index": index, "result_digest": digest, "provider": config.party_id}

    return app
