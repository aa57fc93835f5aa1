"""``statledger audit LOG``: replay a whole log (step A) and check every query (steps 5-15).

LOG is a ledger SQLite file (read here with read-only SQL on its ``entries``, ``checkpoints``
and ``cosignatures`` tables) or a ledger node URL (every entry, and the latest checkpoint with
its cosignatures, over HTTP).

* Step A: :func:`statledger.ledger.replay.replay_log` recomputes the tree from the entries and
  checks every checkpoint against it (log signature, root at its size, sizes never shrink).
* Step 7: every checkpoint's witness cosignatures are checked with the verifier's step 7
  (:func:`statledger.verifier.checks.check_witness_quorum`, the one quorum rule): the
  witnesses are the compute members of the consortium roster (the genesis, entry 0, and its
  membership changes), the quorum the roster's ``witness_quorum``.
  A query passes step 7 with the first checkpoint that covers all its entries (and the
  roster) and carries the quorum.
* Steps 5, 6 and 8-15 (:func:`statledger.protocol.checks.check_query`) run per query, in
  parallel worker processes.

Each query ends ``valid``, ``invalid`` (the first failing step, by number, and the party
blamed) or ``incomplete``: it stopped before a result (providers refused, a node did not
decrypt, ...) -- its entries are a valid prefix of the protocol (every entry present passes
its checks, and :func:`statledger.protocol.statemachine.replay` accepts their order) but
there is no result entry.  A query with a result that lacks something (an endorsement, a
witnessed checkpoint covering it) is invalid.  ``resume`` names a JSON file recording the
queries already found valid and the log size they were checked at; a rerun skips them
(incomplete queries are checked again: they may have completed since).
"""

from __future__ import annotations

import base64
import bisect
import json
import multiprocessing
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.note import CosignatureVerifier, Note, NoteVerifier, QuorumError
from statledger.ledger.replay import replay_log
from statledger.proofs.errors import (
    MalformedError,
    StatledgerError,
    VerificationError,
)
from statledger.protocol import chain, statemachine
from statledger.protocol.checks import STEPS, MissingEntryError, check_query
from statledger.protocol.consortium import Roster, RosterTimeline
from statledger.protocol.entries import (
    DKG_KINDS,
    Entry,
    GenesisEntry,
    MembershipEntry,
    PartyEntry,
    QueryEntry,
    SetupEntry,
)
from statledger.protocol.view import QueryView, key_in_force, parse_entries
from statledger.verifier.checks import (
    WITNESS_STEP,
    check_witness_quorum,
    roster_log_key,
    roster_witnesses,
)

__all__ = ["VALID", "INVALID", "INCOMPLETE", "audit_log", "check_one_query"]

Progress = Callable[[str], None]

VALID, INVALID, INCOMPLETE = "valid", "invalid", "incomplete"

#: (verdict, detail or reason, party) of step 7: "ok", "invalid" (a bad cosignature),
#: "short" (one checkpoint below the quorum) or "missing" (no covering checkpoint has it)
Step7 = tuple[str, str, str | None]


def _step_number(step: str | None, default: int) -> int:
    if step and step.startswith("step "):
        try:
            return int(step.split()[1])
        except ValueError:
            return default
    return default


def _outcome(query_id: str, status: str, step: int | None = None, reason: str | None = None,
             party: str | None = None) -> dict[str, Any]:
    return {"query_id": query_id, "status": status, "valid": status == VALID, "step": step,
            "reason": reason, "party": party, "statistic": None}


def _check_prefix(rows: Sequence[tuple[int, bytes]]) -> None:
    """The query's entries, in log order, are a valid prefix of the protocol (the query state
    machine accepts them); :class:`ProtocolError` otherwise."""
    roster: list[Entry] = []
    events: list[Entry] = []
    indices: list[int] = []
    setups: list[tuple[int, SetupEntry]] = []
    for index, data in sorted(rows):
        e = Entry.from_bytes(data)
        if isinstance(e, SetupEntry):
            setups.append((index, e))
        elif (isinstance(e, PartyEntry | GenesisEntry | MembershipEntry)
                or e.KIND in DKG_KINDS):  # the consortium and its key ceremony
            roster.append(e)
        else:
            events.append(e)
            indices.append(index)
    query_at = next((i for i, e in zip(indices, events, strict=True) if e.KIND == "query"),
                    None)
    in_force = key_in_force(setups, query_at)  # the key the query uses (step 6's rule)
    if in_force is not None:
        roster.append(in_force[1])
    statemachine.replay(events, statemachine.Roster.from_entries(roster), indices=indices)


def _carried(by_query: dict[str, list[tuple[int, bytes]]], query_id: str
             ) -> list[tuple[int, bytes]]:
    """A chained round's previous query, result and endorsement entries
    (protocol/chain.py), as its certificate carries them."""
    for _, data in by_query[query_id]:
        try:
            e = Entry.from_bytes(data)
            if isinstance(e, QueryEntry):
                prev = chain.previous_id(e.query_spec())
                return chain.chain_rows(by_query.get(prev, []), prev) if prev else []
        except StatledgerError:
            return []
    return []


def check_one_query(query_id: str, rows: list[tuple[int, bytes]]) -> dict[str, Any]:
    """Steps 5, 6 and 8-15 on one query's entries (roster included), with its verdict:
    ``valid``, ``invalid`` or ``incomplete`` (step 7 is merged in by :func:`audit_log`).
    Runs in a worker process."""
    passed: list[int] = []
    view: QueryView | None = None
    try:
        view = parse_entries(rows)
        passed.append(5)
        check_query(view, on_step=lambda n, _detail: passed.append(n))
    except MissingEntryError as exc:
        step = _step_number(exc.step, 5)
        if view is None or view.result is not None:
            out = _outcome(query_id, INVALID, step, exc.reason, exc.party)
        else:
            try:
                _check_prefix(chain.own_rows(rows))
            except StatledgerError as perr:
                # the ledger enforces this order at every append: it admitted the entries
                blame = "ledger"
                out = _outcome(query_id, INVALID, step,
                               f"not a valid prefix of the protocol: {perr}", blame)
            else:
                out = _outcome(query_id, INCOMPLETE, step, exc.reason)
    except VerificationError as exc:
        out = _outcome(query_id, INVALID, _step_number(exc.step, _next_step(passed)),
                       exc.reason, exc.party)
    except StatledgerError as exc:  # malformed content deep inside an authenticated entry
        out = _outcome(query_id, INVALID, _next_step(passed), str(exc))
    else:
        out = _outcome(query_id, VALID)
    if view is not None and view.query is not None:
        out["statistic"] = view.query.spec.get("statistic")
    return out


def _next_step(passed: list[int]) -> int:
    """The step that was running when the last passed step is ``passed[-1]``."""
    if not passed:
        return 5
    later = [s.number for s in STEPS if s.number > passed[-1]]
    return later[0] if later else passed[-1]


# -- reading the log ----------------------------------------------------------------------------


def _load_sqlite(path: Path) -> tuple[str, list[tuple[int, bytes]], list[str]]:
    """Origin, entries and every checkpoint note with its stored cosignature lines."""
    if not path.is_file():
        raise MalformedError(f"{path}: no such ledger file")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        origin_row = con.execute("SELECT value FROM meta WHERE key='origin'").fetchone()
        rows = con.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
        cps = con.execute("SELECT id, note FROM checkpoints ORDER BY id").fetchall()
        cosigs = con.execute(
            "SELECT checkpoint_id, line FROM cosignatures ORDER BY id").fetchall()
        con.close()
    except sqlite3.DatabaseError as exc:
        raise MalformedError(f"{path}: not a statledger ledger database ({exc})") from None
    if origin_row is None:
        raise MalformedError(f"{path}: no origin in the ledger's meta table")
    lines: dict[int, list[str]] = defaultdict(list)
    for cp_id, line in cosigs:
        lines[int(cp_id)].append(str(line))
    notes = [str(note) + "".join(lines[int(cp_id)]) for cp_id, note in cps]
    return str(origin_row[0]), [(int(i), bytes(d)) for i, d in rows], notes


def _load_url(url: str) -> tuple[str, list[tuple[int, bytes]], list[str]]:
    """Origin, entries and the latest checkpoint (with its cosignatures) of a ledger node."""
    import httpx

    with httpx.Client(base_url=url.rstrip("/"), timeout=60.0) as http:
        try:
            info = http.get("/v1/log").json()
            size = int(info["size"])
            rows: list[tuple[int, bytes]] = []
            while len(rows) < size:
                page = http.get("/v1/entries", params={"start": len(rows),
                                                       "end": min(size, len(rows) + 1000)})
                page.raise_for_status()
                for r in page.json():
                    rows.append((int(r["index"]), base64.b64decode(r["data"], validate=True)))
            cp = http.get("/v1/checkpoint")
            notes = [cp.text] if cp.status_code == 200 else []
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise MalformedError(f"{url}: cannot read the log ({exc})") from None
    return str(info["origin"]), rows, notes


# -- step 7 over the log's checkpoints -----------------------------------------------------------


class _Witnessing:
    """Step 7 for the whole log: each checkpoint's cosignatures checked once (lazily)."""

    def __init__(self, checkpoints: list[tuple[int, Note]],
                 witnesses: list[CosignatureVerifier], quorum: int) -> None:
        self.checkpoints = sorted(checkpoints, key=lambda c: c[0])
        self.sizes = [size for size, _ in self.checkpoints]
        self.witnesses = witnesses
        self.quorum = quorum
        self._verdicts: dict[int, Step7] = {}

    def _verdict(self, k: int) -> Step7:
        if k not in self._verdicts:
            size, note = self.checkpoints[k]
            try:
                detail = check_witness_quorum(note, self.witnesses, self.quorum)
                self._verdicts[k] = ("ok", f"checkpoint of size {size}: {detail}", None)
            except QuorumError as exc:
                self._verdicts[k] = ("short", f"checkpoint of size {size}: {exc.reason}",
                                     exc.party)
            except VerificationError as exc:
                self._verdicts[k] = ("invalid", f"checkpoint of size {size}: {exc.reason}",
                                     exc.party)
        return self._verdicts[k]

    def for_entries(self, last_index: int) -> Step7:
        """Step 7 for entries up to ``last_index``: the first covering checkpoint with the
        quorum passes; a bad cosignature on a covering checkpoint before it fails; no
        covering checkpoint with the quorum is "missing" (not witnessed yet)."""
        first = bisect.bisect_right(self.sizes, last_index)
        short: Step7 | None = None
        for k in range(first, len(self.checkpoints)):
            verdict = self._verdict(k)
            if verdict[0] in ("ok", "invalid"):
                return verdict
            short = verdict
        if short is not None:
            return ("missing", f"no checkpoint covering entry {last_index} carries the "
                               f"witness quorum (the latest: {short[1]})", short[2])
        largest = self.sizes[-1] if self.sizes else 0
        return ("missing", f"entry {last_index} is not covered by a signed checkpoint "
                           f"(the log's largest is of size {largest})", "ledger")


def _witnessing(origin: str, ledger_key: NoteVerifier | None, notes: list[str],
                roster: list[tuple[int, bytes]]) -> _Witnessing | None:
    """Step 7's inputs from the roster (None when the roster cannot name the witnesses: every
    query then fails step 5 or 6 anyway)."""
    try:
        view = parse_entries(roster)
        if view.genesis is None or ledger_key is None:
            return None
        final = RosterTimeline.derive(view.genesis.signed_genesis(),
                                      [(i, m.change()) for i, m in view.memberships]).final
        witnesses = roster_witnesses(final)
        quorum = final.witness_quorum
    except StatledgerError:
        return None
    checkpoints: list[tuple[int, Note]] = []
    for text in notes:
        try:
            cp, note = open_checkpoint(text, ledger_key, origin=origin)
        except StatledgerError:  # reported by step A
            continue
        checkpoints.append((cp.size, note))
    return _Witnessing(checkpoints, witnesses, quorum)


def _merge_step_7(r: dict[str, Any], w7: Step7 | None) -> dict[str, Any]:
    """Combine a query's steps 5-6, 8-15 with its step 7: the lowest failing step wins; a
    query not covered by a checkpoint yet stays incomplete if it has no result, else it is
    invalid."""
    seven = WITNESS_STEP[0]
    if r["status"] == INVALID and (r["step"] or 0) < seven:
        return r
    if w7 is None:
        if r["status"] == INVALID:
            return r
        return {**r, "status": INVALID, "valid": False, "step": seven,
                "reason": "the roster names no witnesses", "party": None}
    verdict, reason, party = w7
    if verdict == "invalid" or (verdict == "missing" and r["status"] == VALID):
        return {**r, "status": INVALID, "valid": False, "step": seven, "reason": reason,
                "party": party}
    return r


# -- the audit ------------------------------------------------------------------------------------


def audit_log(
    log: str,
    *,
    resume: Path | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if log.startswith(("http://", "https://")):
        origin, rows, notes = _load_url(log)
    else:
        origin, rows, notes = _load_sqlite(Path(log))
    say(f"read {len(rows)} entries and {len(notes)} checkpoints of {origin}")

    parsed: list[tuple[int, Entry | None]] = []
    for i, d in rows:
        try:
            parsed.append((i, Entry.from_bytes(d)))
        except MalformedError:
            parsed.append((i, None))
    ledger_key: NoteVerifier | None = None
    genesis = parsed[0][1] if parsed and parsed[0][0] == 0 else None
    genesis_error: str | None = None
    if isinstance(genesis, GenesisEntry):
        try:
            ledger_key = roster_log_key(Roster.from_genesis(genesis.signed_genesis()))
        except StatledgerError as exc:
            genesis_error = f"the genesis (entry 0) is not valid: {exc}"

    # Step A: the tree and every checkpoint (statledger.ledger.replay).
    tree_ok, tree_error = True, None
    try:
        if ledger_key is None:
            raise VerificationError(genesis_error or "no genesis entry (entry 0): cannot "
                                    "check checkpoints", step="step A")
        replay_log(origin, ledger_key, rows, notes)
    except StatledgerError as exc:
        tree_ok, tree_error = False, str(exc)
    say(f"tree and checkpoints: {'OK' if tree_ok else tree_error}")

    # Steps 5-15 per query.
    roster: list[tuple[int, bytes]] = []
    by_query: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for (i, d), (_, e) in zip(rows, parsed, strict=True):
        if e is None:
            continue
        if e.KIND in ("genesis", "membership", "party", "setup", *DKG_KINDS):
            roster.append((i, d))
        else:
            qid = getattr(e, "query_id", None)
            if isinstance(qid, str):
                by_query[qid].append((i, d))
    witnessing = _witnessing(origin, ledger_key, notes, roster)
    done: dict[str, Any] = {}
    if resume is not None and resume.is_file():
        try:
            done = json.loads(resume.read_text(encoding="utf-8")).get("valid_queries", {})
        except (OSError, json.JSONDecodeError) as exc:
            raise MalformedError(f"resume file {resume}: {exc}") from None
    todo = [q for q in by_query if q not in done]
    results: list[dict[str, Any]] = [
        {**_outcome(q, VALID), "statistic": done[q], "resumed": True}
        for q in by_query if q in done]
    say(f"checking {len(todo)} queries ({len(results)} already checked) on {workers} "
        "worker(s)")
    jobs = [(q, sorted(roster + by_query[q] + _carried(by_query, q))) for q in todo]
    last_index = {q: max(i for i, _ in rs) for q, rs in jobs}

    def finish(n: int, r: dict[str, Any]) -> None:
        w7 = None if witnessing is None else witnessing.for_entries(last_index[r["query_id"]])
        r = _merge_step_7(r, w7)
        results.append(r)
        verdict = {VALID: "ok", INCOMPLETE: "incomplete at step {step}: {reason}",
                   INVALID: "FAIL step {step}: {reason}"}[r["status"]].format(**r)
        say(f"  [{n}/{len(jobs)}] {r['query_id'][:16]} {verdict}")

    if workers > 1 and len(jobs) > 1:
        # "spawn": a forked child of a threaded process (an HTTP client, a server, a test
        # harness) can inherit a lock held by another thread and hang for ever
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            for n, r in enumerate(pool.map(check_one_query, *zip(*jobs, strict=True)), 1):
                finish(n, r)
    else:
        for n, (q, rs) in enumerate(jobs, 1):
            finish(n, check_one_query(q, rs))
    if resume is not None:
        valid = {r["query_id"]: r["statistic"] for r in results if r["status"] == VALID}
        resume.write_text(json.dumps({"log": log, "size": len(rows), "valid_queries": valid},
                                     indent=1) + "\n", encoding="utf-8")
    counts = {s: sum(1 for r in results if r["status"] == s)
              for s in (VALID, INVALID, INCOMPLETE)}
    return {
        "log": log, "origin": origin, "size": len(rows), "checkpoints": len(notes),
        "tree_ok": tree_ok, "tree_error": tree_error, "queries": results, **counts,
        "ok": tree_ok and counts[INVALID] == 0, "seconds": time.perf_counter() - t0,
    }
