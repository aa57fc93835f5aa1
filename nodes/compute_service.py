"""The compute node: holds one key share ``x_i``; takes part in the DP noise round; decrypts
aggregates only.

Routes (``auth`` = signed request from a registered querier)::

    POST /v1/queries/{query_id}/noise/commit  auth  body {"params": noise parameters}: check
                                                    them, commit to secret noise bits
                                                    -> {"index"}
    POST /v1/queries/{query_id}/noise/coin    auth  coin share x_j*P + DLEQ -> {"index"}
    POST /v1/queries/{query_id}/decrypt  auth  decryption shares + batched DLEQ -> {"index"}
    POST /v1/witness/cosign                    cosign a newer consistent checkpoint (ledger)
    GET  /v1/health

The noise round (docs/noise.md): a commitment only for a DP query whose noise set is still
open (steps 6 and 8 checked); a coin share only once the noise set on the log has at least
``T`` commitments, all valid (steps 6, 8 and 10), for one set per query, ever.  Before
decrypting, the node re-runs verification steps 5-11 on the log itself (every submission's
range and linking proofs and the noise set's bit proofs, batched; the noise shares derived;
the aggregate recomputed; at least ``min_providers`` providers and never fewer than two):
it never decrypts a single
submission, and never under a key share other than the one it registered.  A malformed
query id answers 400, an unknown one 404.  Its actions are recorded in SQLite, so a
repeated request returns the same log index and a restarted node resumes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from fastapi import Body, Depends, FastAPI

from statledger.nodes.app import NotFoundError
from statledger.nodes.config import ComputeConfig
from statledger.nodes.follower import LogFollower
from statledger.nodes.keys import load_elgamal_share, load_identity_key
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.ledger_service import witness_from_config, witness_router
from statledger.nodes.peers import ActionLog, create_party_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.errors import (
    MalformedError,
    PolicyError,
    StatledgerError,
    VerificationError,
)
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.protocol import ceremony, entries, flow, noise
from statledger.protocol.checks import (
    MIN_PROVIDERS_FLOOR,
    NOISE_STEPS,
    StepContext,
    check_query,
    check_setup,
    run_steps,
)
from statledger.protocol.noise import NoiseParams
from statledger.protocol.view import QueryView, parse_entries

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
    """The node's logic (no HTTP): noise commitments and coin shares, decryption shares,
    recorded in SQLite."""

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
        self._share: tuple[Scalar, Point] | None = None
        self._stop = threading.Event()
        self._ceremony_thread: threading.Thread | None = None
        self._acked_at: float | None = None
        self._checked: set[tuple[int, str]] = set()  # ceremony entries whose signature held

    def close(self) -> None:
        self._stop.set()
        if self._ceremony_thread is not None:
            self._ceremony_thread.join(timeout=5)
        self.ledger.close()
        self.follower.close()
        self.actions.close()

    # -- the key ceremony (docs/dkg.md) ------------------------------------------------------
    def start_ceremony(self, interval: float = 0.25) -> None:
        """Take part in the key ceremony in the background until the setup is on the log:
        each round, read the ceremony's entries (each proven in a witnessed checkpoint) and
        log this node's next message, if any.  Every message is a function of the log and
        this node's key, so a restarted node resumes where the log says."""

        def run() -> None:
            delay = interval
            while not self._stop.is_set():
                try:
                    phase = self.ceremony_step()
                    if phase == "done":
                        return
                    # acted: look again soon; waiting for others: back off up to 1 s
                    delay = (interval if phase.startswith("dkg_")
                             else min(1.0, delay * 1.5))
                except VerificationError as exc:  # misbehaviour on the log: say so loudly
                    log.warning("key ceremony: %s (party: %s)", exc, exc.party or "-")
                    delay = min(2.0, delay * 2)
                except StatledgerError as exc:  # e.g. no witnessed checkpoint yet: retry
                    log.info("key ceremony: %s", exc)
                    delay = min(2.0, delay * 2)
                except Exception:  # a bug must not kill the loop silently: log it, retry
                    log.exception("key ceremony step failed")
                    delay = 2.0
                self._stop.wait(delay)

        self._ceremony_thread = threading.Thread(target=run, name="statledger-dkg",
                                                 daemon=True)
        self._ceremony_thread.start()

    def ceremony_step(self) -> str:
        """One step of this node's part in the ceremony; returns the phase it acted in or
        waits for (``"done"`` once the setup is logged)."""
        with self._lock:
            rows, timeline = self.follower.entries(self.ledger.ceremony_indices())
            view = parse_entries(rows)
            if view.setup is not None:
                return "done"
            roster = timeline.final
            nodes = [m.party_id for m in roster.of_role("compute")]
            if self.party_id not in nodes:
                return "done"  # not a compute node of this consortium: nothing to do
            transport: dict[str, Point] = {}
            for node in nodes:
                p = view.parties.get(node)
                if p is None:
                    return "registration"
                if roster.member(node, "compute").sig_key != p.sig_key:
                    raise VerificationError(f"the party entry of {node} carries a key the "
                                            "consortium did not admit", step="dkg", party=node)
                p.verify_pok(roster.consortium_id, step="dkg")
                transport[node] = p.elgamal_point()
            for i, e in view.dkg:
                if (i, e.digest()) in self._checked:  # the log is append-only and this node
                    continue                           # checks its consistency: same verdict
                author = e.claimed_author() or ""
                entries.verify_signature(e, timeline.at(i).member(author, "compute")
                                         .verify_key(), author, step="dkg")
                self._checked.add((i, e.digest()))
            params = ceremony.params_for(consortium=roster.consortium_id, nodes=nodes,
                                         threshold=roster.decryption_threshold,
                                         epoch=roster.compute_epoch)
            st = ceremony.state_of(params, view.dkg)
            if st.acked and self._acked_at is None:
                self._acked_at = time.monotonic()
            patience_over = (self._acked_at is not None
                             and time.monotonic() - self._acked_at > self.config.dkg_patience)
            act = ceremony.next_message(params, transport, view.dkg, self.party_id, self.x,
                                        reconstruct=patience_over)
            if act is None:
                return "waiting"
            kind, message = act
            cls = entries.KINDS[kind]
            entry = entries.sign(cls(self.party_id, message.hex()),  # type: ignore[call-arg]
                                 self.identity)
            index = self.ledger.append(entry)
            log.info("key ceremony: %s logged at %d", kind, index)
            return kind

    def key_share(self) -> tuple[Scalar, Point]:
        """This node's share ``x_j`` of the collective key and its verification key ``Y_j``,
        derived from the ceremony on the log (checked: step 6) and this node's key."""
        if self._share is not None:
            return self._share
        rows, timeline = self.follower.entries(self.ledger.roster_indices())
        view = parse_entries(rows)
        keys = check_setup(view, pinned=self.pinned)
        setup, setup_index = view.setup, view.setup_index
        if setup is None or setup_index is None or self.party_id not in setup.compute:
            raise PolicyError(f"{self.party_id} is not a compute node of the setup")
        params = ceremony.params_for(setup, timeline.at(setup_index).compute_epoch)
        transport = {n: view.parties[n].elgamal_point() for n in setup.compute}
        x_j = ceremony.key_share(params, transport,
                                 [(i, e) for i, e in view.dkg if i < setup_index],
                                 self.party_id, self.x)
        Y_j = keys[setup.compute.index(self.party_id)]
        if base_mul(x_j) != Y_j:
            raise PolicyError(f"{self.party_id}: the share it derives from the key ceremony "
                              "does not match its verification key; refusing to decrypt")
        self._share = (x_j, Y_j)
        return self._share

    def noise_commit(self, query_id: str, params_obj: object) -> int:
        """Round 1 of the DP noise (docs/noise.md): commit to fresh secret bits (``secrets``),
        encrypted under the collective key with one aggregated 0/1 proof; log it.  The bits
        are never stored: the share is later derived from the ciphertexts by anyone.

        ``params_obj`` are the noise parameters the querier chose: this node checks that they
        meet the query's privacy target with its share alone (``flow.check_noise_params``)
        and equal those of the commitments already logged, and refuses otherwise."""
        with self._lock:
            done = self.actions.done(query_id, "noise_commit")
            if done is not None:
                return done
            view = check_query(query_view(self.follower, query_id), through=8,
                               pinned=self.pinned)
            spec, setup = view.spec, view.setup
            if spec is None or setup is None:  # pragma: no cover - check_query sets them
                raise PolicyError("no query")
            if self.party_id not in setup.compute:
                raise PolicyError(f"{self.party_id} is not a compute node of this cluster")
            for idx, c in view.noise_commits:  # logged before a crash: resume, never twice
                if c.node == self.party_id:
                    self.actions.record(query_id, "noise_commit", idx)
                    return idx
            if flow.privacy_rho(spec) is None:
                raise PolicyError(f"query {query_id} asks for no DP noise")
            params = NoiseParams.from_json_obj(params_obj)
            flow.check_noise_params(spec, setup, params)
            logged = flow.logged_noise_params(spec, setup, view.noise_commits)
            if logged is not None and logged != params:
                raise PolicyError(f"query {query_id}: the noise commitments on the log carry "
                                  "other noise parameters than the ones asked for")
            if view.noise_coins:
                raise PolicyError(f"the noise set of query {query_id} is closed (a coin share "
                                  "is on the log): a commitment now would be ignored")
            com = noise.commit_noise(setup.collective_point(), params, query_id, self.party_id)
            entry = entries.sign(entries.NoiseCommitEntry.of(query_id, com, params),
                                 self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "noise_commit", index)
            log.info("noise commitment for %s logged at %d", query_id, index)
            return index

    def _coin_promise(self, query_id: str) -> tuple[str, str] | None:
        """The coin base ``P`` (hex) this node published its coin share for, and that signed
        entry (hex), if it ever made one for ``query_id``."""
        row = self.actions.db.execute(
            "SELECT detail FROM actions WHERE query_id=? AND action='noise_coin_base'",
            (query_id,)).fetchone()
        if row is None:
            return None
        base, _, data = str(row[0]).partition(":")
        return base, data

    def noise_coin(self, query_id: str) -> int:
        """Round 2 of the DP noise (docs/noise.md): once the noise set ``S`` on the log (the
        commitments before the first coin share, all of them while there is none) has at
        least ``T`` commitments, all valid (steps 6, 8 and 10 on the log), publish
        ``x_j * P`` with a DLEQ proof, ``P`` the coin base of ``S``.  One ``P`` per query,
        ever: the base and the entry are recorded before the entry leaves the node, and a
        later request for another set is refused."""
        with self._lock:
            done = self.actions.done(query_id, "noise_coin")
            if done is not None:
                return done
            view = query_view(self.follower, query_id)
            for idx, c in view.noise_coins:  # logged before a crash: resume
                if c.node == self.party_id:
                    self.actions.record(query_id, "noise_coin", idx)
                    return idx
            ctx = StepContext(view, pinned=self.pinned)
            try:
                run_steps(ctx, NOISE_STEPS, through=10)
            except VerificationError as exc:
                log.warning("refused a coin share for query %s: %s (party: %s)", query_id,
                            exc, exc.party or "-")
                raise
            rnd, setup = ctx.noise, ctx.setup()
            if rnd is None:
                raise PolicyError(f"query {query_id} asks for no DP noise")
            if self.party_id not in setup.compute:
                raise PolicyError(f"{self.party_id} is not a compute node of this cluster")
            if len(rnd.members) < rnd.threshold or rnd.base is None:
                raise PolicyError(f"{len(rnd.members)} noise commitment(s) on the log; at "
                                  f"least {rnd.threshold} are needed before a coin share")
            x_j, Y_j = self.key_share()
            base = rnd.base.to_bytes().hex()
            prior = self._coin_promise(query_id)
            if prior is not None and prior[0] != base:
                raise PolicyError(
                    f"{self.party_id} already published a coin share for another noise set of "
                    f"query {query_id}; it never publishes one for a second set (docs/noise.md)")
            if prior is not None:
                entry = entries.Entry.from_bytes(bytes.fromhex(prior[1]))
            else:
                share = noise.make_coin_share(x_j, Y_j, rnd.base, query_id, self.party_id)
                entry = entries.sign(entries.NoiseCoinEntry.of(query_id, share), self.identity)
                self.actions.record(query_id, "noise_coin_base", -1,
                                    f"{base}:{entry.to_bytes().hex()}")
            index = self.ledger.append(entry)
            self.actions.record(query_id, "noise_coin", index)
            log.info("coin share for %s logged at %d (noise set of %d nodes)", query_id, index,
                     len(rnd.members))
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
                    f"{self.party_id}: its key does not match the key it registered "
                    "on the log; refusing to decrypt (see docs/deployment.md, key rotation)")
            x_j, Y_j = self.key_share()
            if view.aggregate is None:  # pragma: no cover - step 11 requires it
                raise PolicyError("no aggregate")
            cts = view.aggregate[1].decode_ciphertexts()
            shares, proof = flow.make_decryption(
                x_j, Y_j, cts, flow.decryption_context(query_id, self.party_id))
            entry = entries.sign(entries.DecryptionEntry(
                query_id, self.party_id, tuple(s.to_bytes().hex() for s in shares),
                proof.to_bytes().hex()), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "decrypt", index)
            log.info("decryption shares for %s logged at %d", query_id, index)
            return index


def create_app(config: ComputeConfig, *, ceremony_loop: bool = True) -> FastAPI:
    node = ComputeNode(config)
    if ceremony_loop:
        node.start_ceremony()
    app, auth = create_party_app(config, node, title="statledger compute node", role="compute")

    @app.post("/v1/queries/{query_id}/noise/commit")
    def post_noise_commit(query_id: str,
                          body: dict[str, Any] = Body(...),  # noqa: B008
                          _party: str = Depends(auth.require("querier"))) -> dict[str, Any]:
        if set(body) != {"params"}:
            raise MalformedError("body: expected exactly {\"params\": {...}} (the noise "
                                 "parameters the querier chose)")
        return {"index": node.noise_commit(query_id, body["params"]), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/noise/coin")
    def post_noise_coin(query_id: str, _party: str = Depends(auth.require("querier"))
                        ) -> dict[str, Any]:
        return {"index": node.noise_coin(query_id), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/decrypt")
    def post_decrypt(query_id: str, _party: str = Depends(auth.require("querier"))
                     ) -> dict[str, Any]:
        return {"index": node.decrypt(query_id), "node": config.party_id}

    if config.witness is not None:
        app.include_router(witness_router(witness_from_config(config)))
    return app

