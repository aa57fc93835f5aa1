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
import threading
import tomllib
from typing import Any

from fastapi import Body, Depends, FastAPI

from statledger.nodes.app import NotFoundError
from statledger.nodes.compute_service import query_view
from statledger.nodes.config import ProviderConfig
from statledger.nodes.data import Table, load_table
from statledger.nodes.follower import LogFollower
from statledger.nodes.keys import load_identity_key
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.peers import ActionLog, create_party_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.errors import MalformedError, PolicyError
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries, flow
from statledger.protocol.checks import check_query
from statledger.protocol.dp import BudgetLedger
from statledger.protocol.policy import ProviderPolicy
from statledger.protocol.stats import get as get_statistic

__all__ = ["ProviderNode", "create_app"]

log = logging.getLogger("statledger.provider")

_BUDGETS = "CREATE TABLE IF NOT EXISTS budgets(dataset TEXT PRIMARY KEY, state TEXT NOT NULL);"


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
    """The provider's logic (no HTTP)."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.party_id = config.party_id
        self.identity = load_identity_key(config.identity_key_path)
        self.policy = load_policy(config.policy)
        genesis = pinned_genesis(config)
        self.ledger = LedgerClient(str(config.ledger_url), config.party_id, self.identity,
                                   target=genesis.genesis.ledger.party_id)
        self.follower = LogFollower(self.ledger, genesis, config.state_db_path)
        self.pinned = self.follower.consortium_id
        self._tables: dict[str, Table] = {}
        self.actions = ActionLog(config.state_db_path, _BUDGETS)
        self._db = self.actions.db
        self._lock = threading.Lock()

    def close(self) -> None:
        self.ledger.close()
        self.follower.close()
        self.actions.close()

    def table(self, name: str | None) -> tuple[str, Table]:
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
            self._tables[name] = load_table(ds.path, ds.format, ds.table)
        return name, self._tables[name]

    def _budget(self, dataset: str) -> BudgetLedger:
        row = self._db.execute("SELECT state FROM budgets WHERE dataset=?",
                               (dataset,)).fetchone()
        if row is not None:
            return BudgetLedger.from_dict(json.loads(row[0]))
        total = self.policy.budget_rho if self.policy.budget_rho is not None else 0
        return BudgetLedger(dataset, total)

    def contribute(self, query_id: str, querier: str, dataset: str | None) -> int:
        with self._lock:
            done = self.actions.done(query_id, "contribute")
            if done is not None:
                return done
            view = check_query(query_view(self.follower, query_id), through=8,
                               pinned=self.pinned)
            spec = view.spec
            if spec is None or view.query is None:  # pragma: no cover - check_query sets them
                raise PolicyError("no query")
            if view.query.querier != querier:
                raise PolicyError(f"query {query_id} was posted by {view.query.querier}, "
                                  f"not by {querier}")
            for idx, s in view.submissions:  # logged before a crash: resume, never resubmit
                if s.provider == self.party_id:
                    self.actions.record(query_id, "contribute", idx)
                    return idx
            name, table = self.table(dataset)
            self.policy.check(spec, querier, list(table))
            rho = flow.privacy_rho(spec)
            if rho is not None:
                if self.policy.budget_rho is None:
                    raise PolicyError(f"{self.party_id} has no privacy budget configured for "
                                      f"{name} (policy budget_rho)")
                # Charge (idempotently, per query id) and persist BEFORE anything leaves the
                # node: a crash after this point can over-charge, never under-charge.
                budget = self._budget(name)
                budget.charge(query_id, rho)
                self._db.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?)",
                                 (name, json.dumps(budget.to_dict())))
            stat = get_statistic(spec.statistic)
            values = stat.encode(spec, table)
            ranges = stat.layout(spec).ranges
            ev = encrypt_vector_with_proof(
                view.setup.collective_point(),  # type: ignore[union-attr]
                values, list(ranges), flow.submission_context(query_id, self.party_id))
            entry = entries.sign(
                entries.SubmissionEntry(query_id, self.party_id, ev.to_bytes().hex()),
                self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "contribute", index, name)
            log.info("submission for %s (%s) logged at %d", query_id, name, index)
            return index

    def endorse(self, query_id: str) -> tuple[int, str]:
        with self._lock:
            done = self.actions.done(query_id, "endorse")
            # Steps 5-14 in full, every owner's range and linking proofs included: an owner
            # signs only a result it has checked itself, whatever the ledger admitted.
            view = check_query(query_view(self.follower, query_id), through=14,
                               pinned=self.pinned)
            if view.result is None:  # pragma: no cover - step 14 requires it
                raise PolicyError("no result")
            digest = entries.result_digest(view.result[2])
            if done is not None:
                return done, digest
            mine = self.actions.done(query_id, "contribute")
            if mine is None or view.aggregate is None or mine not in view.aggregate[1].submissions:
                raise PolicyError(f"{self.party_id} did not contribute to the aggregate of "
                                  f"{query_id}; it endorses only results it took part in")
            entry = entries.sign(
                entries.EndorsementEntry(query_id, self.party_id, digest), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "endorse", index)
            return index, digest


def create_app(config: ProviderConfig) -> FastAPI:
    node = ProviderNode(config)
    app, auth = create_party_app(config, node, title="statledger provider node", role="provider")

    @app.post("/v1/queries/{query_id}/contribute")
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
        return {"index": node.contribute(query_id, party, dataset), "provider": config.party_id}

    @app.post("/v1/queries/{query_id}/endorse")
    def post_endorse(query_id: str, _party: str = Depends(auth.require("querier"))
                     ) -> dict[str, Any]:
        index, digest = node.endorse(query_id)
        return {"index": index, "result_digest": digest, "provider": config.party_id}

    return app
