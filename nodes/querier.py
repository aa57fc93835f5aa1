"""The researcher's client: run a query across the cluster, get a result and a certificate.

``Querier.run(spec)`` drives one query end to end (README, "A tour") over HTTP, every step a
log entry:

1. post the ``query`` entry (signed);
2. ask every provider to contribute (in parallel); refusals are collected with their reasons;
3. if the query asks for DP, the noise round (docs/noise.md): every compute node commits to
   secret bits; once at least ``T`` commitments are logged, every node publishes its coin
   share; the noise shares of the set are then derived from the log by anyone;
4. recompute the aggregate from the logged submissions and the derived noise shares (steps
   6, 8 and 10 on the witnessed log) and post the ``aggregate`` entry;
5. ask every compute node to decrypt (in parallel); verify each node's batched DLEQ proof
   (a wrong share is caught here and the node named);
6. combine the shares, take exact discrete logs, decode, post the ``result`` entry;
7. ask the contributing providers to endorse the result;
8. ask the ledger for a checkpoint cosigned by the witnesses;
9. assemble the certificate (entries + inclusion proofs + checkpoint) and verify it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statledger.nodes.follower import LogFollower
from statledger.nodes.http import RemoteError, SignedClient
from statledger.nodes.ledger_client import LedgerClient
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import (
    MalformedError,
    PolicyError,
    StatledgerError,
    VerificationError,
)
from statledger.proofs.group import Point
from statledger.proofs.signatures import SigningKey
from statledger.protocol import calibration, entries, flow, pet, suppression, validity, vertical
from statledger.protocol.checks import (
    NOISE_STEPS,
    STEPS,
    StepContext,
    check_pet_chain,
    run_steps,
)
from statledger.protocol.consortium import SignedGenesis
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.stats.base import StatResult
from statledger.verifier.certificate import Certificate, build_certificate, left_out
from statledger.verifier.verify import TrustPolicy, verify_certificate

__all__ = ["Querier", "QueryOutcome", "QueryFailed"]

log = logging.getLogger("statledger.querier")

Progress = Callable[[str], None]


class QueryFailed(StatledgerError):  # noqa: N818 - reads as a sentence: raise QueryFailed
    """The query could not complete; the message says at which step and why."""


@dataclass
class QueryOutcome:
    query_id: str
    spec: QuerySpec
    result: StatResult
    certificate: Certificate
    contributors: list[str]
    refusals: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: per provider and column, the bucketed number of values clipped to the bounds
    clipped: dict[str, dict[str, str]] = field(default_factory=dict)


def clip_reports(answers: Mapping[str, Any], spec: QuerySpec,
                 say: Progress) -> dict[str, dict[str, str]]:
    """Each contributing site's bucketed clip report, from its contribution answer, with a
    warning for every site that clipped values, and a line for the sites that withheld their
    counts (:func:`calibration.clip_report`: one line for a DP or a vertical query, one per
    site below ``min_cell_size``).  A hostile site's report is checked
    (:func:`calibration.check_clip_report`), never printed or kept as sent: a malformed one is
    dropped with a warning that says so."""
    clipped: dict[str, dict[str, str]] = {}
    for p, r in sorted(answers.items()):
        if not isinstance(r, dict):
            continue
        try:
            clipped[p] = calibration.check_clip_report(r.get("clipped"), spec, p)
        except MalformedError as exc:
            say(f"warning: {exc}; whether it clipped values is unknown")
    whole_said = False
    whole = calibration.clip_withheld_for(spec)
    for p, cols in clipped.items():
        why = calibration.clip_withheld(cols)
        if why is not None and whole is not None:
            if not whole_said:
                say(f"clip counts withheld ({why})")
                whole_said = True
        elif why is not None:
            say(f"{p}: clip counts withheld ({why})")
        warn = calibration.clip_warning(p, cols)
        if warn is not None:
            say("warning: " + warn)
    return clipped


def _collect(pending: dict[Future[Any], str], timeout: float | None,
             failed: dict[str, str]) -> None:
    """Wait (at most ``timeout`` s) for at least one of the ``pending`` calls to a party; drop
    the finished ones from ``pending`` and note why each one that failed did."""
    done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
    for fut in done:
        pid = pending.pop(fut)
        try:
            fut.result()
        except StatledgerError as exc:
            failed[pid] = str(exc)


class Querier:
    def __init__(
        self,
        party_id: str,
        signing_key: SigningKey,
        ledger_url: str,
        compute: Mapping[str, str],
        providers: Mapping[str, str],
        *,
        trust: SignedGenesis,
        state_db: Path | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.party_id = party_id
        self.key = signing_key
        self.genesis = trust
        self.ledger = LedgerClient(ledger_url, party_id, signing_key,
                                   target=trust.genesis.ledger.party_id, timeout=timeout)
        # the querier's own accepted checkpoint: kept in its state file, or for this
        # process only (an in-memory database) when it has none
        self.follower = LogFollower(self.ledger, trust,
                                    state_db if state_db is not None else Path(":memory:"))
        self.follower.proven = {}  # each entry read and proven included once
        self.trust = TrustPolicy(trust, f"{party_id}'s trust file")
        self.compute = dict(compute)
        self.providers = dict(providers)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(4, len(providers) + len(compute)))

    def close(self) -> None:
        self.ledger.close()
        self.follower.close()
        self._pool.shutdown(wait=False)

    def __enter__(self) -> Querier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, target: str, url: str, path: str, body: Any = None) -> Any:
        with SignedClient(url, self.party_id, self.key, target=target, timeout=self.timeout,
                          retries=2) as c:
            return c.post(path, json=body)

    def _witnessed(self) -> None:
        """A checkpoint of the log as it is now, cosigned by the witnesses, before a fan-out
        whose parties each need one that covers the entry just appended: they then find it
        (``latest_checkpoint``) instead of each asking the ledger for a fresh one at once
        (concurrent asks each start a cosigning round).  Nothing is accepted from it here:
        every party checks the checkpoint it reads itself."""
        try:
            self.ledger.checkpoint()
        except StatledgerError as exc:  # the parties ask for one themselves, as before
            log.info("no cosigned checkpoint before the fan-out: %s", exc)

    def _fan_out(self, targets: Mapping[str, str], path: str,
                 body: Callable[[str], Any] | None = None) -> tuple[dict[str, Any],
                                                                    dict[str, str]]:
        futures = {pid: self._pool.submit(self._call, pid, url, path,
                                          body(pid) if body is not None else None)
                   for pid, url in targets.items()}
        ok: dict[str, Any] = {}
        failed: dict[str, str] = {}
        for pid, fut in futures.items():
            try:
                ok[pid] = fut.result()
            except RemoteError as exc:
                failed[pid] = str(exc)
            except StatledgerError as exc:
                failed[pid] = str(exc)
        return ok, failed

    #: How long the noise commit phase waits for every compute node before it goes on with
    #: the commitments on the log, if there are at least ``T`` (docs/noise.md).
    noise_wait: float = 60.0

    def _noise_round(self, qid: str, spec: QuerySpec, setup: entries.SetupEntry,
                     say: Progress) -> None:
        """The DP noise round (docs/noise.md): ask every compute node to commit to secret
        bits, go on once at least ``T`` commitments are on the log and every node answered
        (or ``noise_wait`` seconds passed), then ask every node for its coin share; at least
        ``T`` coin shares must be logged.  A resumed query whose noise set is already closed
        (a coin share is logged) skips the commit phase.  The noise parameters are this
        querier's calibration (``flow.noise_plan``, once per query), or those of the
        commitments already logged when the query resumes; every node checks them."""
        t = flow.decryption_threshold(setup)
        failed: dict[str, str] = {}

        def logged(kind: str) -> int:
            view = self.follower.query_view(qid)
            rows = view.noise_commits if kind == "commit" else view.noise_coins
            return len({e.node for _, e in rows})

        def why() -> str:
            return "".join(f"; {p}: {r}" for p, r in sorted(failed.items()))

        view = self.follower.query_view(qid)
        if not view.noise_coins:
            say("noise commitments")
            try:
                params = (flow.logged_noise_params(spec, setup, view.noise_commits)
                          or flow.noise_plan(spec, setup))
            except VerificationError as exc:
                raise QueryFailed(f"noise: {exc.reason} ({exc.party})") from None
            if params is None:  # pragma: no cover - the caller checked the query asks for DP
                raise QueryFailed("noise: the query asks for no DP")
            body = {"params": params.to_json_obj()}
            pending = {self._pool.submit(self._call, pid, url,
                                         f"/v1/queries/{qid}/noise/commit", body): pid
                       for pid, url in self.compute.items()}
            deadline = time.monotonic() + self.noise_wait
            while pending:
                left = deadline - time.monotonic()
                if left <= 0 and logged("commit") >= t:
                    break  # the slow nodes' commitments would be ignored or refused
                _collect(pending, left if left > 0 else None, failed)
            n = logged("commit")
            if n < t:
                raise QueryFailed(f"noise: {n} of the {t} noise commitments needed{why()}")
        say("noise coin")
        _, coin_failed = self._fan_out(self.compute, f"/v1/queries/{qid}/noise/coin")
        failed.update(coin_failed)
        n = logged("coin")
        if n < t:
            raise QueryFailed(f"noise: {n} of the {t} coin shares needed{why()}")

    def _threshold_shares(self, qid: str, setup: entries.SetupEntry,
                          flat: Sequence[Ciphertext], phase: str = "decrypt"
                          ) -> tuple[list[str], list[list[Point]]]:
        """Ask every compute node to decrypt; return the first ``T`` nodes (log order) whose
        logged shares verify against their verification keys, and their shares.  Waits at
        most ``self.timeout`` seconds; a node that is down, refuses or logs invalid shares is
        skipped as long as ``T`` others answer (QueryFailed naming them otherwise)."""
        t = flow.decryption_threshold(setup)
        keys = dict(zip(setup.compute, setup.verification_points(), strict=True))
        # phase "gate": shares of the gate ciphertexts only (protocol/suppression.py)
        context = suppression.gate_context if phase == "gate" else flow.decryption_context
        what = "gate" if phase == "gate" else "decryption"
        pending = {self._pool.submit(self._call, pid, url, f"/v1/queries/{qid}/{phase}"): pid
                   for pid, url in self.compute.items()}
        failed: dict[str, str] = {}
        deadline = time.monotonic() + self.timeout
        while True:
            chosen: dict[str, list[Point]] = {}
            logged: list[tuple[int, entries.GateEntry | entries.DecryptionEntry]]
            try:
                qv = self.follower.query_view(qid)
                logged = list(qv.gates if phase == "gate" else qv.decryptions)
                failed.pop("ledger", None)
            except StatledgerError as exc:  # e.g. no checkpoint the witnesses cosigned yet
                logged = []
                failed["ledger"] = str(exc)
            for _, d in sorted(logged, key=lambda r: r[0]):
                if len(chosen) == t or d.node in chosen or d.node not in keys:
                    continue
                try:
                    shares = d.share_points()
                    flow.verify_decryption(keys[d.node], flat, shares, d.decode_proof(),
                                           context(qid, d.node), party=d.node,
                                           step="decryption")
                except (VerificationError, MalformedError) as exc:
                    failed[d.node] = f"invalid {what} shares ({exc})"
                    continue
                chosen[d.node] = list(shares)
            if len(chosen) == t:
                names = sorted(chosen)
                return names, [chosen[n] for n in names]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                why = "; ".join(f"{p}: {r}" for p, r in sorted(failed.items()))
                raise QueryFailed(f"{what}: {len(chosen)} of the {t} valid {what} "
                                  f"shares needed" + (f" ({why})" if why else ""))
            _collect(pending, left, failed)

    def _pet_chain(self, qid: str, setup: entries.SetupEntry,
                   agg: Sequence[Sequence[Ciphertext]],
                   ranges: Sequence[Sequence[tuple[int, int]]]) -> list[list[Ciphertext]]:
        """The blinded shuffled PET chain (protocol/pet.py): ask compute nodes one at a time
        (setup order; a node that is down or refuses is skipped) until ``T`` distinct nodes
        have logged their step, then check the whole chain as step 12 does and return its
        last ciphertexts per gate cell."""
        t = flow.decryption_threshold(setup)
        failed: dict[str, str] = {}
        asked: set[str] = set()
        checks: dict[str, Future[Any]] = {}
        while True:  # the log is read once per pass, not once per node
            done = {e.node for _, e in self.follower.query_view(qid).pets}
            todo = [p for p in setup.compute
                    if p not in done and p not in asked and p in self.compute]
            if len(done) >= t or not todo:
                break
            if not asked:  # every node but the first checks steps 5-11 now, side by side
                checks = {p: self._pool.submit(self._call, p, self.compute[p],
                                               f"/v1/queries/{qid}/check")
                          for p in setup.compute if p in self.compute and p != todo[0]}
            for pid in todo:
                if len(done) >= t:
                    break
                asked.add(pid)
                if pid in checks:  # its answer does not matter: the PET step checks again
                    checks.pop(pid).exception()
                try:
                    self._call(pid, self.compute[pid], f"/v1/queries/{qid}/pet")
                    done.add(pid)  # counted; the next pass reads what the log holds
                except StatledgerError as exc:
                    failed[pid] = str(exc)
        for fut in checks.values():  # a node beyond the chain: done before its gate shares
            fut.exception()
        ctx = StepContext(self.follower.query_view(qid), pinned=self.follower.consortium_id,
                          verify_range_proofs=False)
        try:
            run_steps(ctx, STEPS, through=11)
            return check_pet_chain(ctx, complete=True)
        except VerificationError as exc:
            why = "; ".join(f"{p}: {r}" for p, r in sorted(failed.items()))
            raise QueryFailed(f"pet: {exc.step}: {exc.reason} (party {exc.party or '-'})"
                              + (f"; {why}" if why else "")) from None

    def _release(self, qid: str, spec: QuerySpec, setup: entries.SetupEntry,
                 agg: Sequence[Sequence[Ciphertext]],
                 ranges: Sequence[Sequence[tuple[int, int]]], say: Progress
                 ) -> suppression.Release:
        """Suppression before decryption (protocol/suppression.py): the entries to decrypt.
        Without gates, all.  With gates: the PET chain of ``T`` nodes, then every node's gate
        shares of its last ciphertexts; the first ``T`` valid ones give one bit per gate cell
        ("a plaintext is zero": ``n < min_cell_size``); decide, log the release decision (or
        reuse the one already logged by a resumed run: it must be this decision)."""
        gates = suppression.gate_entries(spec)
        if not gates:
            return suppression.everything(len(agg))
        logged = self.follower.query_view(qid).release
        if logged is not None:
            decision = suppression.decide(spec, logged[1].small_bits())
            if (list(decision.released) != list(logged[1].released)
                    or list(decision.merged) != list(logged[1].merged)):
                raise QueryFailed(f"release: the logged release decision of query {qid} is "
                                  "not the statistic's rule")
            return decision
        say("pet")
        final = self._pet_chain(qid, setup, agg, ranges)
        say("gate")
        flat = [ct for cell in final for ct in cell]
        k = len(final[0])
        names, shares = self._threshold_shares(qid, setup, flat, "gate")
        weights = flow.combination_weights(setup, names)
        small = [pet.is_small(cell, [s[c * k:(c + 1) * k] for s in shares], weights)
                 for c, cell in enumerate(final)]
        decision = suppression.decide(spec, small)
        n_cts = flow.decryption_count(spec, suppression.select(agg, decision.groups()))
        self.ledger.append(entries.sign(entries.ReleaseEntry.of(
            qid, names, small, decision.released, n_cts, decision.merged), self.key))
        return decision

    def run(
        self,
        spec: QuerySpec,
        *,
        datasets: Mapping[str, str] | str | None = None,
        progress: Progress | None = None,
    ) -> QueryOutcome:
        """Run one query end to end; raises :class:`QueryFailed` naming the step and party.

        Re-running a query id that failed part-way resumes it from what the log holds.
        """
        step = ["query"]

        def say(msg: str) -> None:
            step[0] = msg
            if progress is not None:
                progress(msg)

        try:
            return self._run(spec, datasets, say)
        except RemoteError as exc:  # the ledger failed (fan-outs report their own parties)
            raise QueryFailed(f"{step[0]}: ledger: {exc}") from None

    def _run(
        self,
        spec: QuerySpec,
        datasets: Mapping[str, str] | str | None,
        say: Progress,
        retries: int = 5,
    ) -> QueryOutcome:
        import time

        timings: dict[str, float] = {}
        t = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal t
            now = time.perf_counter()
            timings[name] = now - t
            t = now

        qid = spec.query_id_for(self.party_id)
        get_statistic(spec.statistic)  # an unknown statistic fails before anything is logged
        # 1. the query entry
        say("query")
        query = entries.sign(entries.QueryEntry.for_spec(spec, self.party_id), self.key)
        self.ledger.append(query)
        # 2. contributions
        say("contributions")

        def ds_body(pid: str) -> Any:
            if datasets is None:
                return None
            name = datasets if isinstance(datasets, str) else datasets.get(pid)
            return None if name is None else {"dataset": name}

        # Resuming a query whose aggregate is already logged: only the owners it lists are
        # asked again (they answer with their logged submission); a late submission could
        # never be part of the aggregate and would only make it disagree with the log.
        targets = self.providers
        prior = self.follower.query_view(qid)
        if prior.aggregate is not None:
            listed = set(prior.aggregate[1].submissions)
            targets = {p: u for p, u in self.providers.items()
                       if any(i in listed and s.provider == p for i, s in prior.submissions)}
        if vertical.is_vertical(spec):  # the two owners' phases, in order
            ok, refusals = self._vertical_phases(qid, spec, ds_body, say)
        elif spec.pull is not None:  # pull mode: the owners find the query on the log
            ok, refusals = self._await_submissions(qid, spec, say)
        else:
            ok, refusals = self._fan_out(targets, f"/v1/queries/{qid}/contribute", ds_body)
        if len(ok) < spec.min_providers:
            why = "; ".join(f"{p}: {r}" for p, r in sorted(refusals.items()))
            raise QueryFailed(f"contributions: {len(ok)} provider(s) answered, the query needs "
                              f"{spec.min_providers} ({why})")
        clipped = clip_reports(ok, spec, say)
        lap("encrypt+prove")
        # 3. DP noise: commitments, then coin shares (docs/noise.md)
        checked = StepContext(self.follower.query_view(qid),
                              pinned=self.follower.consortium_id)
        run_steps(checked, NOISE_STEPS, through=8)  # steps 6 and 8, as check_query(through=8)
        view = checked.view
        if view.setup is None:  # pragma: no cover - step 6 requires it
            raise QueryFailed("no setup")
        noise_round = flow.privacy_rho(spec) is not None and view.aggregate is None
        if noise_round:
            self._noise_round(qid, spec, view.setup, say)
            lap("noise")
        # 4. the aggregate
        say("aggregate")
        if vertical.is_vertical(spec):
            return self._vertical_release(qid, spec, say, lap, timings, refusals, clipped)
        # steps 6, 8 and 10 (consortium and keys, the query, the noise round and its derived
        # shares) on entries proven in the witnessed log; the submissions' range proofs are
        # checked by every compute node before it decrypts (and by the certificate at the end)
        # After a noise round (or in pull mode, where owners submit on their own) the log
        # has grown: it is read and checked again.  Otherwise nothing was appended since the
        # view checked above: its context goes on with step 10 (steps 6 and 8 held on it).
        again = noise_round or spec.pull is not None
        ctx = (StepContext(self.follower.query_view(qid), pinned=self.follower.consortium_id)
               if again else checked)
        try:
            run_steps(ctx, NOISE_STEPS if again else
                      tuple(s for s in NOISE_STEPS if s.number > 8), through=10)
        except VerificationError as exc:
            raise QueryFailed(f"aggregate: {exc.step}: {exc.reason} (party "
                              f"{exc.party or '-'})") from None
        view = ctx.view
        if ctx.noise is not None and ctx.noise.seed is None:
            raise QueryFailed(f"aggregate: the noise round of query {qid} is incomplete "
                              f"({len(ctx.noise.coins)} of the {ctx.noise.threshold} coin "
                              "shares needed)")
        ranges = tuple(calibration.wire_layout(spec).ranges)
        # A resumed query (same id, e.g. after a compute node crashed) reuses the aggregate
        # already on the log instead of appending a second one.
        logged = view.aggregate[1] if view.aggregate is not None else None
        subs = dict(view.submissions)
        sub_idx = list(logged.submissions) if logged is not None else list(subs)
        # the noise set's derived shares (step 10): publicly recomputable, nobody chose them
        noise_idx = ctx.noise.indices if ctx.noise is not None else []
        if not set(sub_idx) <= set(subs) or (logged is not None
                                             and list(logged.noise) != noise_idx):
            raise QueryFailed(f"aggregate: the logged aggregate of query {qid} lists entries "
                              "that are not its contributions")
        contributions: list[flow.Contribution] = []
        for i in sub_idx:
            contributions.append(flow.Contribution(
                subs[i].decode_vector(ranges, tail=validity.tail_bytes(spec)), ranges))
        for i in noise_idx:
            _, share, share_ranges = ctx.contributions[i]
            contributions.append(flow.Contribution(share, tuple(share_ranges)))
        agg = flow.aggregate(contributions)
        flat = flow.flatten(agg)
        if logged is None:
            agg_entry = entries.sign(entries.AggregateEntry(
                qid, tuple(sub_idx), tuple(noise_idx),
                tuple(c.to_bytes().hex() for c in flat)), self.key)
            try:
                self.ledger.append(agg_entry)
            except RemoteError as exc:
                if spec.pull is None or exc.status != 409 or retries <= 0:
                    raise
                # a pull-mode owner's submission was logged after this view was read: the
                # aggregate must list it; resume the query from the log (idempotent)
                return self._run(spec, datasets, say, retries - 1)
        elif flat != logged.decode_ciphertexts():
            raise QueryFailed(f"aggregate: the logged aggregate of query {qid} is not the sum "
                              "of the contributions it lists")
        lap("aggregate")
        # 5. decryption shares (after the gate phase, if the statistic has gates): ask all N
        # nodes, combine the first T valid ones (log order)
        setup = view.setup
        if setup is None:  # pragma: no cover - step 6 requires it
            raise QueryFailed("no setup")
        all_ranges = [c.ranges for c in contributions]
        decision = self._release(qid, spec, setup, agg, all_ranges, say)
        released, groups = list(decision.released), decision.groups()
        decryptors: list[str] = []
        totals: list[int] = []
        if released:  # else every entry is withheld: nothing is decrypted, the result says so
            say("decryption")
            sub = suppression.select(agg, groups)
            self._witnessed()
            cts = flow.decryption_targets(spec, sub)
            decryptors, shares_by_node = self._threshold_shares(qid, setup, cts)
            totals = flow.decrypt_totals(spec, sub, shares_by_node,
                                         suppression.sub_ranges(all_ranges, groups),
                                         flow.combination_weights(setup, decryptors),
                                         targets=cts)
        lap("decrypt")
        # 6. decode and publish (a withheld entry decodes as None: never decrypted)
        noise = (None if ctx.noise is None else
                 calibration.NoiseInfo(ctx.noise.params, len(ctx.noise.members)))
        result = calibration.decode(
            spec, suppression.expand(len(agg), released, totals,  # type: ignore[arg-type]
                                     groups)
            if len(released) != len(agg) else totals, noise,
            list(decision.small) if suppression.gated(spec) else None)
        result_entry = entries.sign(
            entries.ResultEntry.for_totals(qid, totals, result.to_dict(), decryptors),
            self.key)
        self.ledger.append(result_entry)
        # 7-9. endorsements by the contributing owners, checkpoint, certificate
        contributors = sorted(s.provider for _, s in view.submissions)
        return self._endorse_and_certify(qid, spec, result, contributors, refusals, timings,
                                         clipped, say, lap)

    def _vertical_phases(self, qid: str, spec: QuerySpec, ds_body: Callable[[str], Any],
                         say: Progress) -> tuple[dict[str, Any], dict[str, str]]:
        """A vertically partitioned query (protocol/vertical.py): ask owner A for its rows,
        owner B for its products, owner A for its block, in that order; each owner reads
        what it builds on from its own witnessed view of the log, so the querier carries
        nothing between them.  Any refusal stops the query, naming the owner."""
        part = vertical.VerticalPlan.of(spec).part
        missing = [p for p in part.owners if p not in self.providers]
        if missing:
            raise QueryFailed(f"contributions: vertical owner {missing[0]} is not among this "
                              "querier's providers")
        ok: dict[str, Any] = {}
        for phase, owner in (("rows", part.a), ("products", part.b), ("block", part.a)):
            say(f"vertical {phase} ({owner})")
            try:
                ok[owner] = self._call(owner, self.providers[owner],
                                       f"/v1/queries/{qid}/contribute", ds_body(owner))
            except StatledgerError as exc:
                raise QueryFailed(f"contributions: vertical {phase} by {owner}: {exc}"
                                  ) from None
        return ok, {}

    def _vertical_release(self, qid: str, spec: QuerySpec, say: Progress,
                          lap: Callable[[str], None], timings: dict[str, float],
                          refusals: dict[str, str], clipped: dict[str, dict[str, str]]
                          ) -> QueryOutcome:
        """Steps 4-9 of a vertical query: the aggregate is the release of the three owner
        entries (:func:`statledger.protocol.vertical.release_ciphertexts`, sums over the
        joined rows only); ``T`` nodes decrypt it (each re-checks every owner proof first);
        the result publishes its plaintexts and the decoded fit; the two owners endorse."""
        ctx = StepContext(self.follower.query_view(qid), pinned=self.follower.consortium_id,
                          verify_range_proofs=False)  # every compute node checks the proofs
        try:
            run_steps(ctx, STEPS, through=9)
        except VerificationError as exc:
            raise QueryFailed(f"aggregate: {exc.step}: {exc.reason} (party "
                              f"{exc.party or '-'})") from None
        view = ctx.view
        rows, prods, block = ctx.vertical_entries
        if rows is None or prods is None or block is None:
            raise QueryFailed(f"aggregate: {len(view.vertical)} of the 3 vertical entries of "
                              f"query {qid} are on the log")
        release = vertical.release_ciphertexts(spec, rows, prods, block)
        if release.n < spec.min_cell_size:
            raise QueryFailed("aggregate: fewer joined rows than min_cell_size")
        flat = list(release.ciphertexts)
        if view.aggregate is None:
            self.ledger.append(entries.sign(entries.AggregateEntry(
                qid, tuple(i for i, _ in view.vertical), (),
                tuple(c.to_bytes().hex() for c in flat)), self.key))
        elif view.aggregate[1].decode_ciphertexts() != flat:
            raise QueryFailed(f"aggregate: the logged aggregate of query {qid} is not the "
                              "release of its vertical entries")
        lap("aggregate")
        setup = ctx.setup()
        say("decryption")
        decryptors, shares = self._threshold_shares(qid, setup, flat)
        plain = vertical.decrypt_release(release, shares,
                                         flow.combination_weights(setup, decryptors))
        lap("decrypt")
        # n >= min_cell_size here, so no total is withheld (None)
        totals = vertical.assemble_totals(spec, release.n, plain)
        result = calibration.decode(spec, totals, None)  # type: ignore[arg-type]
        self.ledger.append(entries.sign(
            entries.ResultEntry.for_totals(qid, plain, result.to_dict(), decryptors),
            self.key))
        return self._endorse_and_certify(qid, spec, result, sorted(view.contributors()),
                                         refusals, timings, clipped, say, lap)

    def _endorse_and_certify(self, qid: str, spec: QuerySpec, result: StatResult,
                             contributors: list[str], refusals: dict[str, str],
                             timings: dict[str, float], clipped: dict[str, dict[str, str]],
                             say: Progress, lap: Callable[[str], None]) -> QueryOutcome:
        """Steps 7-9: the contributors' endorsements, a cosigned checkpoint, the
        certificate (verified before it is returned)."""
        say("endorsements")
        if spec.pull is not None:  # the owners endorse on their own (nodes/owner.py)
            self._await_endorsements(qid, contributors)
            lap("sign")
            say("certificate")
            cert = self.certificate(qid)
            report = verify_certificate(cert.to_bytes(), self.trust,
                                        source=f"query {qid[:12]}")
            if not report.valid:
                raise QueryFailed(f"the fresh certificate does not verify: step {report.step}: "
                                  f"{report.reason} (party {report.party})")
            lap("certificate")
            return QueryOutcome(qid, spec, result, cert, contributors, refusals, timings, {})
        unknown = [p for p in contributors if p not in self.providers]
        if unknown:
            raise QueryFailed(f"endorsement: the log holds submissions by {', '.join(unknown)}, "
                              "whom this querier cannot reach (not in its providers)")
        self._witnessed()
        _, failed = self._fan_out({p: self.providers[p] for p in contributors},
                                  f"/v1/queries/{qid}/endorse")
        if failed:
            raise QueryFailed("endorsement: " + "; ".join(f"{p}: {r}" for p, r in
                                                           failed.items()))
        lap("sign")
        # 8-9. cosigned checkpoint and certificate
        say("certificate")
        cert = self.certificate(qid)
        report = verify_certificate(cert.to_bytes(), self.trust, source=f"query {qid[:12]}")
        if not report.valid:
            raise QueryFailed(f"the fresh certificate does not verify: step {report.step}: "
                              f"{report.reason} (party {report.party})")
        lap("certificate")
        return QueryOutcome(qid, spec, result, cert, contributors, refusals, timings, clipped)

    #: seconds between two looks at the log while a pull-mode query waits for its owners
    pull_poll: float = 0.5
    #: how long a pull-mode query waits for its contributors' endorsements (seconds)
    endorse_wait: float = 120.0

    def _await_submissions(self, qid: str, spec: QuerySpec, say: Progress
                           ) -> tuple[dict[str, Any], dict[str, str]]:
        """Pull mode (docs/owners.md): nobody is called; wait until the witnessed log holds
        submissions from the quorum (``max(2, min_providers)`` distinct owners, the rule of
        step 11) or the spec's deadline passes.  Misses raise naming every addressed owner
        that did not submit (for ``owners: "all"``, every admitted owner)."""
        from statledger.protocol.checks import MIN_PROVIDERS_FLOOR

        pull = spec.pull
        if pull is None:  # pragma: no cover - the caller checked
            raise QueryFailed("contributions: not a pull-mode query")
        need = max(MIN_PROVIDERS_FLOOR, spec.min_providers)
        say("waiting for submissions")
        while True:
            left = pull.deadline - time.time()
            # the witnessed log is read (every new entry proven included, a fresh
            # checkpoint) once the ledger's index lists enough entries for the quorum, and
            # at the deadline: the index only says when to look (_log_may_hold)
            # the query entry is listed too: ``need`` submissions are need + 1 entries
            if left <= 0 or self._log_may_hold(qid, need + 1):
                view = self.follower.query_view(qid)
                got = {s.provider for _, s in view.submissions}
                if view.aggregate is not None or len(got) >= need:
                    return {p: {} for p in sorted(got)}, {}
                if left <= 0:
                    break
            time.sleep(min(self.pull_poll, max(left, 0.0)))
        if pull.owners == "all":
            _, timeline = self.follower.entries([])
            addressed = sorted(m.party_id for m in timeline.final.of_role("provider"))
        else:
            addressed = sorted(pull.owners)
        silent = [p for p in addressed if p not in got]
        raise QueryFailed(f"contributions: {len(got)} owner(s) submitted by the deadline, the "
                          f"query needs {need}; no submission from: {', '.join(silent)}")

    def _await_endorsements(self, qid: str, contributors: Sequence[str]) -> None:
        """Pull mode: wait (at most ``endorse_wait`` s) until every contributor's endorsement
        is on the witnessed log; the owners check the result themselves and endorse it."""
        deadline = time.monotonic() + self.endorse_wait
        want = 0  # entries the ledger's index must list before the log is read again
        while True:
            late = time.monotonic() >= deadline
            listed = self._listed(qid)
            if late or listed is None or listed >= want:
                view = self.follower.query_view(qid)
                missing = sorted(set(contributors) - {e.provider for _, e in view.endorsements})
                if not missing:
                    return
                if late:
                    raise QueryFailed(f"endorsement: no endorsement from {', '.join(missing)} "
                                      f"within {self.endorse_wait:g} s")
                # read again once that many more are listed
                want = (listed or 0) + len(missing)
            time.sleep(self.pull_poll)

    def _listed(self, qid: str) -> int | None:
        """How many entries the ledger's index lists for the query: one request, unchecked,
        None when the ledger does not answer.  A hint of *when* a pull-mode wait reads the
        witnessed log, never of *what* is there: every decision rests on the checked read
        (LogFollower).  A ledger that under-reports only delays the querier until the
        deadline, where the log is read regardless (it can deny service anyway); one that
        over-reports, or does not answer, only causes a read."""
        try:
            return len(self.ledger.query_indices(qid))
        except StatledgerError:
            return None

    def _log_may_hold(self, qid: str, entries: int) -> bool:
        """Whether the ledger's index (:meth:`_listed`) lists at least ``entries`` entries
        of the query, or does not answer."""
        listed = self._listed(qid)
        return listed is None or listed >= entries

    def certificate(self, query_id: str, *, compact: bool = True) -> Certificate:
        """A fresh cosigned checkpoint + the consortium chain, the roster and the query's
        entries with their inclusion proofs (the certificate carries the chain it needs).
        ``compact``: without the shares no step combines (``left_out``); else every entry."""
        note = self.ledger.checkpoint()
        from statledger.ledger.checkpoint import Checkpoint
        from statledger.ledger.note import Note, NoteVerifier
        from statledger.protocol.consortium import Roster

        parsed = Note.parse(note)
        cp = Checkpoint.parse(parsed.text)
        indices = self.ledger.roster_indices() + self.ledger.query_indices(query_id)
        view = self.follower.query_view(query_id)  # a chained round: + its previous round's
        if view.previous_query is not None:        # query, result and endorsements
            indices.append(view.previous_query[0])  # (protocol/chain.py)
        if view.previous_result is not None:
            indices.append(view.previous_result[0])
        indices.extend(i for i, _ in view.previous_endorsements)
        if compact:  # the shares no step combines (verifier/certificate.py)
            drop = left_out(view)
            indices = [i for i in indices if i not in drop]
        rows = self.ledger.entries(sorted(set(indices)))
        proofs = self.ledger.inclusion_proofs([i for i, _ in rows], cp.size)
        triples = [(i, data, proofs[i]) for i, data in rows]
        log_key = NoteVerifier(*Roster.from_genesis(self.genesis).log_key()).vkey()
        return build_certificate(cp.origin, log_key, note, triples)


def run_rounds(
    querier: Querier,
    spec: QuerySpec,
    *,
    datasets: Mapping[str, str] | str | None = None,
    progress: Progress | None = None,
    max_rounds: int = 25,
    on_round: Callable[[QueryOutcome], None] | None = None,
) -> list[QueryOutcome]:
    """Run a multi-round statistic (logistic regression by IRLS, Cox regression) to convergence.

    Each round is its own query (public input: the current coefficients) with its own
    certificate.  Single-round statistics return one outcome.  ``on_round`` sees each
    round's outcome as soon as it is certified (it may raise to stop, e.g. when an owner
    refused).
    """
    from statledger.protocol.stats import cox, logistic

    # chained Newton fits (protocol/chain.py): statistic -> (first round, next round)
    chained: dict[str, tuple[Callable[[QuerySpec], QuerySpec], Callable[
        [QuerySpec, StatResult, str], QuerySpec | None]]] = {
        "logistic_irls": (logistic.irls_start, logistic.irls_next_spec),
        "cox_regression": (cox.cox_start, cox.cox_next_spec),
    }
    loop = chained.get(spec.statistic)
    outcomes: list[QueryOutcome] = []
    current: QuerySpec | None = spec if loop is None else loop[0](spec)
    while current is not None:
        out = querier.run(current, datasets=datasets, progress=progress)
        outcomes.append(out)
        if on_round is not None:
            on_round(out)
        if loop is None or len(outcomes) >= max_rounds:
            break
        current = loop[1](current, out.result, out.query_id)
    if loop is not None and current is not None:
        raise PolicyError(f"{spec.statistic}: the Newton rounds did not converge in "
                          f"{max_rounds} rounds")
    return outcomes


def parse_providers(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items:
        pid, _, url = it.partition("=")
        out[pid] = url
    return out
