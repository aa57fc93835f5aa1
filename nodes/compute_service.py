"""The compute node: holds one key share ``x_i``; adds DP noise; decrypts aggregates only.

Routes (``auth`` = signed request from a registered querier)::

    POST /v1/queries/{query_id}/noise    auth  add this node's DP noise share -> {"index"}
    POST /v1/queries/{query_id}/decrypt  auth  decryption shares + batched DLEQ -> {"index"}
    POST /v1/witness/cosign                    cosign a newer consistent checkpoint (ledger)
    GET  /v1/health

Before decrypting, the node re-runs verification steps 5-11 on the log itself (every
submission's and noise share's range and linking proofs, batched; the aggregate recomputed;
at least ``min_providers`` providers and never fewer than two): it never decrypts a single
submission, and never under a key share other than the one it registered.  A malformed
query id answers 400, an unknown one 404.  Its actions are recorded in SQLite, so a
repeated request returns the same log index and a restarted node resumes.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from fastapi import Depends, FastAPI

from statledger.nodes.app import NotFoundError
from statledger.nodes.config import ComputeConfig
from statledger.nodes.follower import LogFollower
from statledger.nodes.keys import load_elgamal_share, load_identity_key
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.ledger_service import witness_from_config, witness_router
from statledger.nodes.peers import ActionLog, create_party_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.errors import MalformedError, PolicyError, VerificationError
from statledger.proofs.group import base_mul
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries, flow
from statledger.protocol.checks import MIN_PROVIDERS_FLOOR, check_query
from statledger.protocol.view import QueryView

__all__ = ["ComputeNode", "create_app", "MIN_PROVIDERS_FLOOR", "query_view"]

log = logging.getLogger("statledger.compute")


_QUERY_ID = re.compile(r"[0-9a-f]{64}")


def query_view(follower: LogFollower, query_id: str) -> QueryView:
    """The log's entries of ``query_id``, each proven included in a witnessed checkpoint
    consistent with this party's history (:class:`statledger.nodes.follower.LogFollower`):
    400 for a malformed id, 404 for an unknown one."""
    if not _QUERY_ID.fullmatch(query_id):
        raise MalformedError("query_id: expected 64 lowercase hex digits (a sha256)")
    if not follower.ledger.query_indices(query_id):
        raise NotFoundError(f"unknown query id {query_id} (no query entry on the log)")
    view = follower.query_view(query_id)
    if view.query is None:
        raise NotFoundError(f"unknown query id {query_id} (no query entry on the log)")
    return view


class ComputeNode:
    """The node's logic (no HTTP): noise shares and decryption shares, recorded in SQLite."""

    def __init__(self, config: ComputeConfig) -> None:
        self.config = config
        self.party_id = config.party_id
        self.identity = load_identity_key(config.identity_key_path)
        self.x = load_elgamal_share(config.elgamal_key_path)
        self.X = base_mul(self.x)
        genesis = pinned_genesis(config)
        self.ledger = LedgerClient(str(config.ledger_url), config.party_id, self.identity,
                                   target=genesis.genesis.ledger.party_id)
        self.follower = LogFollower(self.ledger, genesis, config.state_db_path)
        self.pinned = self.follower.consortium_id
        self.actions = ActionLog(config.state_db_path)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.ledger.close()
        self.follower.close()
        self.actions.close()

    def noise(self, query_id: str) -> int:
        """Sample, encrypt and range-prove this node's DP noise share; log it."""
        with self._lock:
            done = self.actions.done(query_id, "noise")
            if done is not None:
                return done
            view = check_query(query_view(self.follower, query_id), through=8,
                               pinned=self.pinned)
            spec = view.spec
            if spec is None:  # pragma: no cover - check_query sets it
                raise PolicyError("no query")
            for idx, n in view.noise:  # logged before a crash: resume, never add twice
                if n.node == self.party_id:
                    self.actions.record(query_id, "noise", idx)
                    return idx
            plan = flow.noise_plan(spec, len(view.compute_nodes()))
            if plan is None:
                raise PolicyError(f"query {query_id} asks for no DP noise")
            share = plan.sample_share()
            ev = encrypt_vector_with_proof(
                view.setup.collective_point(),  # type: ignore[union-attr]
                share, plan.ranges(), flow.noise_context(query_id, self.party_id))
            entry = entries.sign(
                entries.NoiseEntry(query_id, self.party_id, ev.to_bytes().hex()), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "noise", index)
            log.info("noise share for %s logged at %d", query_id, index)
            return index

    def decrypt(self, query_id: str) -> int:
        """Check steps 5-11 on the log, then publish decryption shares with a batched DLEQ."""
        with self._lock:
            done = self.actions.done(query_id, "decrypt")
            if done is not None:
                return done
            view = query_view(self.follower, query_id)
            for idx, d in view.decryptions:  # logged before a crash: resume
                if d.node == self.party_id:
                    self.actions.record(query_id, "decrypt", idx)
                    return idx
            # Steps 5-11 in full, the submissions' and noise shares' range and linking proofs
            # included (one batched check): the ledger operator may have admitted anything,
            # and a submission that cancels others' (e.g. the negation of another hospital's
            # ciphertexts under a copied proof) would make the "aggregate" one hospital's
            # vector.  Nothing is decrypted until this node has checked it itself.
            try:
                view = check_query(view, through=11, pinned=self.pinned)
            except VerificationError as exc:
                log.warning("refused to decrypt query %s: %s (party: %s)", query_id, exc,
                            exc.party or "-")
                raise
            # (step 11 inside check_query already enforced max(MIN_PROVIDERS_FLOOR,
            # min_providers) distinct providers: the one rule, checked once)
            if self.party_id not in view.setup.compute:  # type: ignore[union-attr]
                raise PolicyError(f"{self.party_id} is not a compute node of this cluster")
            if view.parties[self.party_id].elgamal_point() != self.X:
                # a replaced or restored-wrong key file: shares under it could never verify
                # and would block the query for good once logged
                raise PolicyError(
                    f"{self.party_id}: its key share does not match the key it registered "
                    "on the log; refusing to decrypt (see docs/deployment.md, key rotation)")
            if view.aggregate is None:  # pragma: no cover - step 11 requires it
                raise PolicyError("no aggregate")
            cts = view.aggregate[1].decode_ciphertexts()
            shares, proof = flow.make_decryption(
                self.x, self.X, cts, flow.decryption_context(query_id, self.party_id))
            entry = entries.sign(entries.DecryptionEntry(
                query_id, self.party_id, tuple(s.to_bytes().hex() for s in shares),
                proof.to_bytes().hex()), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "decrypt", index)
            log.info("decryption shares for %s logged at %d", query_id, index)
            return index


def create_app(config: ComputeConfig) -> FastAPI:
    node = ComputeNode(config)
    app, auth = create_party_app(config, node, title="statledger compute node", role="compute")

    @app.post("/v1/queries/{query_id}/noise")
    def post_noise(query_id: str, _party: str = Depends(auth.require("querier"))
                   ) -> dict[str, Any]:
        return {"index": node.noise(query_id), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/decrypt")
    def post_decrypt(query_id: str, _party: str = Depends(auth.require("querier"))
                     ) -> dict[str, Any]:
        return {"index": node.decrypt(query_id), "node": config.party_id}

    if config.witness is not None:
        app.include_router(witness_router(witness_from_config(config)))
    return app

