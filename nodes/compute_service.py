"""The compute node: holds one key share ``x_i``; takes part in the DP noise round; decrypts
aggregates only.

Routes (``auth`` = signed request from a registered querier)::

    POST /v1/queries/{query_id}/noise/commit  auth  body {"params": noise parameters}: check
                                                    them, commit to secret noise bits
                                                    -> {"index"}
    POST /v1/queries/{query_id}/noise/coin    auth  coin share x_j*P + DLEQ -> {"index"}
    POST /v1/queries/{query_id}/pet      auth  one blinded shuffled PET step of every gate
                                               cell (suppression before decryption) -> {"index"}
    POST /v1/queries/{query_id}/gate     auth  shares of the last PET step's ciphertexts only
                                               + batched DLEQ -> {"index"}
    POST /v1/queries/{query_id}/decrypt  auth  decryption shares + batched DLEQ -> {"index"}
    POST /v1/queries/{query_id}/check    auth  steps 5-11 on the log now (the range proofs
                                               of the aggregate's submissions), logs nothing
                                               -> {"checked": true}
    POST /v1/witness/cosign                    cosign a newer consistent checkpoint (ledger)
    GET  /v1/health

The noise round (docs/noise.md): a commitment only for a DP query whose noise set is still
open (steps 6 and 8 checked); a coin share only once the noise set on the log has at least
``T`` commitments, all valid (steps 6, 8 and 10), for one set per query, ever.  Before
decrypting, the node re-runs verification steps 5-11 on the log itself (every submission's
range and linking proofs and the noise set's bit proofs, batched; the noise shares derived;
the aggregate recomputed; at least ``min_providers`` providers and never fewer than two):
it never decrypts a single
submission, and never under a key share other than the one it registered.  For a statistic
with gate entries (protocol/suppression.py) it first adds its blinded shuffled PET step (once,
after checking the earlier ones), then shares only the complete chain's last ciphertexts, and
then decrypts only the entries the logged release decision releases -- after re-deriving that
decision itself (``checks.check_release``): a suppressed entry gets no share, whatever the
querier asks.  A malformed
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
from statledger.nodes.http import RemoteError
from statledger.nodes.keys import (
    load_elgamal_share,
    load_identity_key,
    read_secret_file,
    write_secret_file,
)
from statledger.nodes.ledger_client import (
    NODE_APPEND_TIMEOUT,
    NODE_BREAKER,
    NODE_READ_TIMEOUT,
    LedgerClient,
)
from statledger.nodes.ledger_service import witness_from_config, witness_router
from statledger.nodes.peers import QUERY_ROUTE, ActionLog, BoundedLock, create_party_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import (
    MalformedError,
    PolicyError,
    StatledgerError,
    VerificationError,
)
from statledger.proofs.group import Point, Scalar, base_mul
from statledger.protocol import ceremony, entries, flow, noise, pet, suppression
from statledger.protocol.checks import (
    MIN_PROVIDERS_FLOOR,
    NOISE_STEPS,
    STEPS,
    StepContext,
    check_pet_chain,
    check_query,
    check_release,
    key_chain,
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
    # one request for the indices: the same list decides "unknown" and is read
    try:
        roster, chain, own = follower.ledger.view_indices(query_id)
    except RemoteError as exc:
        if exc.status != 404:  # 404: no setup yet, so no query either
            raise
        own = []
    if not own:
        raise NotFoundError(f"unknown query id {query_id} (no query entry on the log)")
    rows, _ = follower.entries(roster + own, chain=chain)
    view = follower.view_of(rows)
    if view.query is None:
        raise NotFoundError(f"unknown query id {query_id} (no query entry on the log)")
    return view


def _proofs_key(view: QueryView) -> tuple[int, str, int | None, str | None] | None:
    """What a node's memory of verified range proofs is keyed by: the aggregate (log index,
    digest) and the setup or rekey entry in force for the query (index, digest).  ``None``
    before the aggregate is logged."""
    if view.aggregate is None:
        return None
    index, agg = view.aggregate
    setup = None if view.setup is None else view.setup.digest()
    return (index, agg.digest(), view.setup_index, setup)


class ComputeNode:
    """The node's logic (no HTTP): noise commitments and coin shares, decryption shares,
    recorded in SQLite."""

    def __init__(self, config: ComputeConfig) -> None:
        self.config = config
        self.party_id = config.party_id
        self.identity = load_identity_key(config.identity_key_path)
        # the transport key of the first key ceremony (registered in the party entry); gone
        # once a resharing replaced it and the grace period ran out (docs/dkg.md)
        self.x: Scalar | None = (load_elgamal_share(config.elgamal_key_path)
                                 if config.elgamal_key_path.exists() else None)
        self.X: Point | None = None if self.x is None else base_mul(self.x)
        genesis = pinned_genesis(config)
        self.ledger = LedgerClient(str(config.ledger_url), config.party_id, self.identity,
                                   target=genesis.genesis.ledger.party_id,
                                   timeout=NODE_READ_TIMEOUT, append_timeout=NODE_APPEND_TIMEOUT,
                                   breaker=NODE_BREAKER)
        self.follower = LogFollower(self.ledger, genesis, config.state_db_path)
        self.follower.proven = {}  # each entry read and proven included once
        self.pinned = self.follower.consortium_id
        self.actions = ActionLog(config.state_db_path)
        self._lock = BoundedLock()  # a request waits at most BUSY_WAIT s
        self._shares: dict[int, tuple[Scalar, Point]] = {}  # by setup / rekey index
        self._retire: dict[int, float] = {}  # key epoch -> when its transport key is erased
        self._seen: list[int] | None = None  # ceremony indices at the last idle look
        self._run: bytes | None = None  # the context of the run this node takes part in
        self._stop = threading.Event()
        self._ceremony_thread: threading.Thread | None = None
        self._acked_at: float | None = None
        self._checked: set[tuple[int, str]] = set()  # ceremony entries whose signature held
        #: PET steps (their inputs, log index, digest) whose proofs this node verified
        self._pets_checked: set[tuple[str, int, str]] = set()
        #: aggregates whose submissions' range proofs this node verified, keyed by the
        #: aggregate's (log index, digest) AND the setup or rekey entry in force (its index
        #: and digest): the proofs are about ciphertexts under that entry's key, so a view
        #: that puts another key in force (a ledger hiding or showing a rekey) is checked
        #: afresh (:func:`_proofs_key`)
        self._proofs_checked: set[tuple[int, str, int | None, str | None]] = set()

    def close(self) -> None:
        self._stop.set()
        if self._ceremony_thread is not None:
            self._ceremony_thread.join(timeout=5)
        self.ledger.close()
        self.follower.close()
        self.actions.close()

    # -- the key ceremony and its lifecycle (docs/dkg.md) -----------------------------------
    def start_ceremony(self, interval: float = 0.25, idle: float = 2.0) -> None:
        """Take part in the key ceremony, and in every later resharing, in the background:
        each round, read the ceremony's entries (each proven in a witnessed checkpoint) and
        log this node's next message, if any; with nothing pending, look again every
        ``idle`` seconds (a membership change that touches the compute nodes starts a
        resharing) and erase retired transport keys when their grace period is over.  Every
        message is a function of the log and this node's keys, so a restarted node resumes
        where the log says."""

        def run() -> None:
            delay = interval
            while not self._stop.is_set():
                try:
                    phase = self.ceremony_step()
                    # acted: look again soon; waiting for others: back off up to 1 s;
                    # nothing pending: the idle pace
                    delay = (idle if phase == "done" else interval if phase.startswith("dkg_")
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

    def _registered(self, view: QueryView, timeline: Any, nodes: Any) -> dict[str, Point]:
        """The registered transport keys of ``nodes`` (their party entries: the key the
        consortium admitted at their index, the proof of knowledge bound to it)."""
        out: dict[str, Point] = {}
        for node in nodes:
            p = view.parties.get(node)
            if p is None:
                raise StatledgerError(f"{node} has not registered yet")
            member = timeline.at(view.party_index[node]).member(node, "compute", step="dkg")
            if member.sig_key != p.sig_key:
                raise VerificationError(f"the party entry of {node} carries a key the "
                                        "consortium did not admit", step="dkg", party=node)
            p.verify_pok(timeline.consortium_id, step="dkg")
            out[node] = p.elgamal_point()
        return out

    def ceremony_step(self) -> str:
        """One step of this node's part in the key ceremony or a resharing; returns the
        phase it acted in or waits for (``"done"`` while no run is pending).  The idle look
        (a few index lists from the ledger) runs outside the action lock, so a slow or frozen
        ledger never makes it hold up a query request."""
        indices = self.ledger.ceremony_indices()
        if indices == self._seen:  # nothing new on the log since the last idle look
            if any(due <= time.monotonic() for due in self._retire.values()):
                with self._lock:
                    self._erase_due()
            return "done"
        with self._lock:
            rows, timeline = self.follower.entries(indices)
            view = parse_entries(rows)
            for i, e in view.dkg:
                if (i, e.digest()) in self._checked:  # the log is append-only and this node
                    continue                           # checks its consistency: same verdict
                author = e.claimed_author() or ""
                entries.verify_signature(e, timeline.at(i).member(author, "compute")
                                         .verify_key(), author, step="dkg")
                self._checked.add((i, e.digest()))
            chain: list[ceremony.KeyEpoch] = []
            if view.setups:
                first = view.setups[0][1]
                chain = ceremony.check_key_chain(
                    view.setups, view.dkg, timeline,
                    self._registered(view, timeline, first.compute))
            pending = ceremony.pending_run(view.setups, timeline)
            if pending is None:
                self._schedule_retirement(chain, view)
                self._erase_due()
                self._seen = indices
                return "done"
            self._seen = None
            params, after = pending
            me = self.party_id
            if me not in params.nodes and me not in params.dealers:
                self._seen = indices
                return "done"  # not a compute node of this run: nothing to do
            run = ceremony.run_rows(view.dkg, after, None)
            if self._run != params.context():
                self._run, self._acked_at = params.context(), None
            if params.prior is None:
                if self.x is None:
                    raise PolicyError(f"{me} has no transport key for the key ceremony")
                try:
                    transport = self._registered(view, timeline, params.nodes)
                except StatledgerError as exc:
                    if isinstance(exc, VerificationError):
                        raise
                    return "registration"
                st = ceremony.state_of(params, run)
                if st.acked and self._acked_at is None:
                    self._acked_at = time.monotonic()
                patience_over = (self._acked_at is not None and time.monotonic()
                                 - self._acked_at > self.config.dkg_patience)
                act = ceremony.next_message(params, transport, run, me, self.x,
                                            reconstruct=patience_over)
            else:
                x_new = self._transport_secret(params.epoch, create=True) \
                    if me in params.nodes else None
                prior = (self._share_of(chain, len(chain) - 1, view)[0]
                         if me in params.dealers else None)
                act = ceremony.next_message(params, {}, run, me, x_new, prior_share=prior)
            if act is None:
                return "waiting"
            kind, message = act
            cls = entries.KINDS[kind]
            entry = entries.sign(cls(me, message.hex()),  # type: ignore[call-arg]
                                 self.identity)
            index = self.ledger.append(entry)
            log.info("key ceremony (epoch %d): %s logged at %d", params.epoch, kind, index)
            return kind

    # -- transport keys of the resharings: created, kept 0600, erased --------------------
    def _transport_path(self, epoch: int) -> Any:
        return self.config.data_dir / "transport" / f"epoch-{epoch}.key"

    def _transport_secret(self, epoch: int, *, create: bool = False) -> Scalar | None:
        """This node's transport secret for the resharing of compute ``epoch``: fresh from
        ``secrets`` the first time (written 0600 before its public key is logged), read back
        after a restart, None once erased."""
        path = self._transport_path(epoch)
        if path.exists():
            x = Scalar.from_bytes(read_secret_file(path, "transport"))
            if int(x) == 0:
                raise PolicyError(f"transport key file {path}: zero")
            return x
        if not create:
            return None
        x = Scalar.random()
        while int(x) == 0:
            x = Scalar.random()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(path, "transport", x.to_bytes())
        return x

    def _schedule_retirement(self, chain: list[ceremony.KeyEpoch], view: QueryView) -> None:
        """Once a rekey is on the log and this node's share of it checks out (or the node is
        no longer a compute node of the key), every earlier epoch's transport key is erased
        after ``key_retire_grace`` seconds (queries started under it can finish)."""
        if len(chain) < 2:
            return
        last = chain[-1]
        if self.party_id in last.params.nodes:
            self._share_of(chain, len(chain) - 1, view)  # raises if it does not check out
        due = time.monotonic() + self.config.key_retire_grace
        for ep in chain[:-1]:
            self._retire.setdefault(ep.params.epoch if ep.params.prior is not None else -1,
                                    due)

    def _erase_due(self) -> None:
        now = time.monotonic()
        for epoch, due in sorted(self._retire.items()):
            if due > now:
                continue
            if epoch == -1:  # the first ceremony's transport key: the registered one
                path = self.config.elgamal_key_path
                self.x = self.X = None
            else:
                path = self._transport_path(epoch)
            if path.exists():
                path.unlink()
                log.info("key lifecycle: erased the transport key of %s",
                         "the first key ceremony" if epoch == -1 else f"epoch {epoch}")
            del self._retire[epoch]
            self._shares.clear()  # the retired shares go too; the current one is re-derived

    def _share_of(self, chain: list[ceremony.KeyEpoch], k: int, view: QueryView
                  ) -> tuple[Scalar, Point]:
        """This node's share of key epoch ``chain[k]`` (from that run on the log and its
        transport key of that epoch) and its verification key."""
        ep = chain[k]
        cached = self._shares.get(ep.index)
        if cached is not None:
            return cached
        me = self.party_id
        if me not in ep.params.nodes:
            raise PolicyError(f"{me} is not a compute node of the key in force (entry "
                              f"{ep.index})")
        fresh = ep.params.prior is None
        secret = self.x if fresh else self._transport_secret(ep.params.epoch)
        if secret is None:
            raise PolicyError(f"{me} erased its key share of the key epoch at entry "
                              f"{ep.index} after the resharing that replaced it (docs/dkg.md, "
                              "key lifecycle): a query under that key cannot be decrypted")
        run = ceremony.run_rows(view.dkg, chain[k - 1].index if k else -1, ep.index)
        registered = ({n: view.parties[n].elgamal_point() for n in ep.params.nodes}
                      if fresh else {})
        x_j = ceremony.key_share(ep.params, registered, run, me, secret)
        Y_j = ep.result.verification_keys[me]
        if base_mul(x_j) != Y_j:
            raise PolicyError(f"{me}: the share it derives from the key ceremony does not "
                              "match its verification key; refusing to decrypt")
        self._shares[ep.index] = (x_j, Y_j)
        return x_j, Y_j

    def key_share(self, view: QueryView | None = None) -> tuple[Scalar, Point]:
        """This node's share ``x_j`` of the collective key and its verification key ``Y_j``
        for the key in force for ``view``'s query (the last setup or rekey if None), derived
        from the runs on the log (checked: step 6) and this node's transport key of that
        epoch."""
        index = view.setup_index if view is not None else None
        if index is not None and index in self._shares:
            return self._shares[index]
        rows, _ = self.follower.entries(self.ledger.roster_indices())
        full = parse_entries(rows)
        chain = key_chain(full, pinned=self.pinned)
        if index is None:
            k = len(chain) - 1
        else:
            found = [k for k, ep in enumerate(chain) if ep.index == index]
            if not found:
                raise PolicyError(f"no key epoch at entry {index} on the log")
            k = found[0]
        return self._share_of(chain, k, full)

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
            resumed = self._resume(query_id, "noise_commit", view.noise_commits)
            if resumed is not None:
                return resumed
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

    def _resume(self, query_id: str, action: str, logged: Any) -> int | None:
        """This node's entry for ``action`` if the log already holds it (logged before a
        crash): recorded and returned, so nothing is ever made twice."""
        for idx, e in logged:
            if e.node == self.party_id:
                self.actions.record(query_id, action, idx)
                return int(idx)
        return None

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
            resumed = self._resume(query_id, "noise_coin", view.noise_coins)
            if resumed is not None:
                return resumed
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
            x_j, Y_j = self.key_share(ctx.view)
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

    def _checked_through_11(self, query_id: str, what: str,
                            view: QueryView | None = None) -> StepContext:
        """Steps 5-11 on the log, in full (range proofs included), or the refusal; on
        ``view`` when the caller has just read it (the one read of the log per request).
        A query with gates comes here three times (PET step, gate shares, decryption):
        after the first, the range proofs of the same aggregate's submissions -- the same
        log entries, proven included in a consistent log -- are not re-verified;
        everything else is."""
        if view is None:
            view = query_view(self.follower, query_id)
        key = _proofs_key(view)
        seen = key is not None and key in self._proofs_checked
        ctx = StepContext(view, pinned=self.pinned, verify_range_proofs=not seen)
        try:
            run_steps(ctx, STEPS, through=11)
        except VerificationError as exc:
            log.warning("refused %s query %s: %s (party: %s)", what, query_id, exc,
                        exc.party or "-")
            raise
        setup = ctx.setup()
        if self.party_id not in setup.compute:
            raise PolicyError(f"{self.party_id} is not a compute node of this cluster")
        if (self.X is not None and setup.KIND == "setup"
                and ctx.view.parties[self.party_id].elgamal_point() != self.X):
            raise PolicyError(
                f"{self.party_id}: its key does not match the key it registered "
                "on the log; refusing to decrypt (see docs/deployment.md, key rotation)")
        if key is not None:
            self._proofs_checked.add(key)
        return ctx

    def check(self, query_id: str) -> None:
        """Steps 5-11 on the log, in full, once the aggregate is logged; nothing is logged.
        The querier asks every compute node at once before the PET chain, whose steps run
        one node after the other: each node's costly check (the submissions' range proofs)
        then runs beside the others' instead of inside the chain.  The PET step, the gate
        shares and the decryption that follow still run steps 5-11 on the log; only the
        range proofs of this same aggregate (log index and digest) are not verified again."""
        with self._lock:
            view = query_view(self.follower, query_id)
            if view.aggregate is None:
                raise PolicyError(f"query {query_id} has no aggregate on the log yet")
            if _proofs_key(view) not in self._proofs_checked:
                self._checked_through_11(query_id, "to check", view)

    def _gated_context(self, query_id: str, what: str, view: QueryView) -> StepContext:
        """Steps 5-11 on ``view``, then the query must have gates and no release decision
        yet."""
        ctx = self._checked_through_11(query_id, what, view)
        if not suppression.gate_entries(ctx.spec()):
            raise PolicyError(f"query {query_id} has no gate entries: it is decrypted in "
                              "one phase")
        if ctx.view.release is not None:
            raise PolicyError(f"the release decision of query {query_id} is logged: "
                              f"{what.split()[0]} now would be ignored")
        return ctx

    def _pet_ready(self, query_id: str, action: str, what: str, *, complete: bool
                   ) -> int | tuple[StepContext, list[list[Ciphertext]]]:
        """The start the PET and gate actions share: this node's logged entry if it already
        acted (the index), else steps 5-11 and the PET chain on the log checked (complete
        or not) -- the context and the chain's last ciphertexts."""
        done = self.actions.done(query_id, action)
        if done is not None:
            return done
        view = query_view(self.follower, query_id)
        resumed = self._resume(query_id, action, view.pets if action == "pet" else view.gates)
        if resumed is not None:
            return resumed
        ctx = self._gated_context(query_id, what, view)
        try:
            chain = check_pet_chain(ctx, complete=complete, known=self._pets_checked)
        except VerificationError as exc:
            log.warning("refused %s query %s: %s (party: %s)", what, query_id, exc,
                        exc.party or "-")
            raise
        return ctx, chain

    def pet(self, query_id: str) -> int:
        """Suppression before decryption, the PET chain (protocol/pet.py): check steps 5-11
        and every earlier PET step on the log (``check_pet_chain``), then blind (a secret
        non-zero scalar per ciphertext) and shuffle the last step's outputs of every gate
        cell, with proofs, and log it.  Refused once this node is in the chain, once the
        chain has ``T`` steps, or once gate shares are logged."""
        with self._lock:
            ready = self._pet_ready(query_id, "pet", "a PET step for", complete=False)
            if isinstance(ready, int):
                return ready
            ctx, current = ready
            setup = ctx.setup()
            if len(ctx.view.pets) >= flow.decryption_threshold(setup) or ctx.view.gates:
                raise PolicyError(f"the PET chain of query {query_id} is complete")
            X = setup.collective_point()
            batches = [pet.blind_and_shuffle(X, cell, pet.pet_context(query_id, self.party_id, c))
                       for c, cell in enumerate(current)]
            entry = entries.sign(entries.PetEntry.of(query_id, self.party_id, batches),
                                 self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "pet", index)
            log.info("PET step for %s logged at %d", query_id, index)
            return index

    def gate(self, query_id: str) -> int:
        """Suppression before decryption, phase 2: check steps 5-11 and the complete PET
        chain on the log, then publish decryption shares of the chain's last ciphertexts only
        (batched DLEQ, gate context).  Refused for a query without gates and once the release
        decision is logged."""
        with self._lock:
            ready = self._pet_ready(query_id, "gate", "gate shares for", complete=True)
            if isinstance(ready, int):
                return ready
            ctx, final = ready
            x_j, Y_j = self.key_share(ctx.view)
            cts = [ct for cell in final for ct in cell]
            shares, proof = flow.make_decryption(
                x_j, Y_j, cts, suppression.gate_context(query_id, self.party_id))
            entry = entries.sign(entries.GateEntry(
                query_id, self.party_id, tuple(s.to_bytes().hex() for s in shares),
                proof.to_bytes().hex()), self.identity)
            index = self.ledger.append(entry)
            self.actions.record(query_id, "gate", index)
            log.info("gate shares for %s logged at %d", query_id, index)
            return index

    def decrypt(self, query_id: str) -> int:
        """Check steps 5-11 on the log, then publish decryption shares with a batched DLEQ."""
        with self._lock:
            done = self.actions.done(query_id, "decrypt")
            if done is not None:
                return done
            view = query_view(self.follower, query_id)
            resumed = self._resume(query_id, "decrypt", view.decryptions)
            if resumed is not None:
                return resumed
            # Steps 5-11 in full, the submissions' and noise shares' range and linking proofs
            # included (one batched check): the ledger operator may have admitted anything,
            # and a submission that cancels others' (e.g. the negation of another hospital's
            # ciphertexts under a copied proof) would make the "aggregate" one hospital's
            # vector.  Nothing is decrypted until this node has checked it itself.  (Step 11
            # enforces max(MIN_PROVIDERS_FLOOR, min_providers) distinct providers; a replaced
            # key file is refused: shares under it could never verify.)
            ctx = self._checked_through_11(query_id, "to decrypt", view)
            x_j, Y_j = self.key_share(ctx.view)
            # suppression before decryption: the release decision re-derived here (step 12's
            # rule); only the released entries' ciphertexts get shares
            try:
                check_release(ctx, known_pets=self._pets_checked)
            except VerificationError as exc:
                log.warning("refused to decrypt query %s: %s (party: %s)", query_id, exc,
                            exc.party or "-")
                raise
            cts = ctx.released_cts
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

    @app.post("/v1/queries/{query_id}/noise/commit", responses=QUERY_ROUTE)
    def post_noise_commit(query_id: str,
                          body: dict[str, Any] = Body(...),  # noqa: B008
                          _party: str = Depends(auth.require("querier"))) -> dict[str, Any]:
        if set(body) != {"params"}:
            raise MalformedError("body: expected exactly {\"params\": {...}} (the noise "
                                 "parameters the querier chose)")
        return {"index": node.noise_commit(query_id, body["params"]), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/noise/coin", responses=QUERY_ROUTE)
    def post_noise_coin(query_id: str, _party: str = Depends(auth.require("querier"))
                        ) -> dict[str, Any]:
        return {"index": node.noise_coin(query_id), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/pet", responses=QUERY_ROUTE)
    def post_pet(query_id: str, _party: str = Depends(auth.require("querier"))
                 ) -> dict[str, Any]:
        return {"index": node.pet(query_id), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/gate", responses=QUERY_ROUTE)
    def post_gate(query_id: str, _party: str = Depends(auth.require("querier"))
                  ) -> dict[str, Any]:
        return {"index": node.gate(query_id), "node": config.party_id}

    @app.post("/v1/queries/{query_id}/check", responses=QUERY_ROUTE)
    def post_check(query_id: str, _party: str = Depends(auth.require("querier"))
                   ) -> dict[str, Any]:
        node.check(query_id)
        return {"checked": True, "node": config.party_id}

    @app.post("/v1/queries/{query_id}/decrypt", responses=QUERY_ROUTE)
    def post_decrypt(query_id: str, _party: str = Depends(auth.require("querier"))
                     ) -> dict[str, Any]:
        return {"index": node.decrypt(query_id), "node": config.party_id}

    if config.witness is not None:
        app.include_router(witness_router(witness_from_config(config)))
    return app

