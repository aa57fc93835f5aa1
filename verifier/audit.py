"""``statledger audit LOG``: replay a whole log (step A) and check every query (steps 5-15).

LOG is a ledger SQLite file (read here with read-only SQL on its ``entries``, ``checkpoints``
and ``cosignatures`` tables) or a ledger node URL (entries and checkpoint fetched over HTTP);
either way the tree is recomputed here from the entries.  Step 7 (witness cosignatures) is
not run by the audit: the stored cosignatures are read and discarded.  Queries are
checked in parallel worker processes.  ``resume`` names a JSON file recording the queries
already found valid and the log size they were checked at; a rerun skips them.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import leaf_hash, root_from_leaf_hashes
from statledger.ledger.note import NoteVerifier
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.protocol.entries import Entry, PartyEntry
from statledger.verifier.checks import check_query, parse_entries

__all__ = ["audit_log", "check_one_query"]

Progress = Callable[[str], None]


def check_one_query(
    query_id: str, rows: list[tuple[int, bytes]]
) -> dict[str, Any]:
    """Steps 5-15 on one query's entries (roster included).  Runs in a worker process."""
    out: dict[str, Any] = {"query_id": query_id, "valid": True, "step": None,
                           "reason": None, "party": None, "statistic": None}
    try:
        view = parse_entries(rows)
        if view.query is not None:
            out["statistic"] = view.query.spec.get("statistic")
        check_query(view)
    except VerificationError as exc:
        out.update(valid=False, step=exc.step, reason=exc.reason, party=exc.party)
    except StatledgerError as exc:
        out.update(valid=False, step="step 5", reason=str(exc))
    return out


def _load_sqlite(path: Path) -> tuple[str, list[tuple[int, bytes]], list[str]]:
    if not path.is_file():
        raise MalformedError(f"{path}: no such ledger file")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        origin_row = con.execute("SELECT value FROM meta WHERE key='origin'").fetchone()
        rows = con.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
        notes = [r[0] for r in con.execute("SELECT note FROM checkpoints ORDER BY id")]
        cosigs = con.execute(
            "SELECT checkpoint_id, line FROM cosignatures ORDER BY id").fetchall()
        con.close()
    except sqlite3.DatabaseError as exc:
        raise MalformedError(f"{path}: not a statledger ledger database ({exc})") from None
    if origin_row is None:
        raise MalformedError(f"{path}: no origin in the ledger's meta table")
    del cosigs  # witness cosignatures are checked per certificate (step 7)
    return str(origin_row[0]), [(int(i), bytes(d)) for i, d in rows], notes


def _load_url(url: str) -> tuple[str, list[tuple[int, bytes]], list[str]]:
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

    # Step A: the tree and every checkpoint.
    leaves = [leaf_hash(d) for _, d in rows]
    tree_ok, tree_error = True, None
    ledger_key: NoteVerifier | None = None
    parsed: list[tuple[int, Entry | None]] = []
    for i, d in rows:
        try:
            parsed.append((i, Entry.from_bytes(d)))
        except MalformedError:
            parsed.append((i, None))
    for _, e in parsed:
        if isinstance(e, PartyEntry) and e.role == "ledger":
            ledger_key = NoteVerifier(origin, e.verify_key().to_bytes())
            break
    last_size = -1
    try:
        if [i for i, _ in rows] != list(range(len(rows))):
            raise VerificationError("entry indices are not contiguous", step="step A")
        if ledger_key is None:
            raise VerificationError("no ledger party entry: cannot check checkpoints",
                                    step="step A")
        roots: dict[int, bytes] = {}
        for note in notes:
            cp, _ = open_checkpoint(note, ledger_key, origin=origin)
            if cp.size > len(rows):
                raise VerificationError(f"checkpoint of size {cp.size} beyond the log",
                                        step="step A")
            if cp.size < last_size:
                raise VerificationError("checkpoints go backwards", step="step A")
            last_size = cp.size
            if cp.size not in roots:
                roots[cp.size] = root_from_leaf_hashes(leaves[: cp.size])
            if roots[cp.size] != cp.root:
                raise VerificationError(
                    f"checkpoint of size {cp.size}: root does not match the entries",
                    step="step A")
    except StatledgerError as exc:
        tree_ok, tree_error = False, str(exc)
    say(f"tree and checkpoints: {'OK' if tree_ok else tree_error}")

    # Steps 5-15 per query.
    roster: list[tuple[int, bytes]] = []
    by_query: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for (i, d), (_, e) in zip(rows, parsed, strict=True):
        if e is None:
            continue
        if e.KIND in ("party", "setup"):
            roster.append((i, d))
        else:
            qid = getattr(e, "query_id", None)
            if isinstance(qid, str):
                by_query[qid].append((i, d))
    done: dict[str, Any] = {}
    if resume is not None and resume.is_file():
        try:
            done = json.loads(resume.read_text(encoding="utf-8")).get("valid_queries", {})
        except (OSError, json.JSONDecodeError) as exc:
            raise MalformedError(f"resume file {resume}: {exc}") from None
    todo = [q for q in by_query if q not in done]
    results: list[dict[str, Any]] = [
        {"query_id": q, "valid": True, "step": None, "reason": None, "party": None,
         "statistic": done[q], "resumed": True}
        for q in by_query if q in done]
    say(f"checking {len(todo)} queries ({len(results)} already checked) on {workers} "
        "worker(s)")
    jobs = [(q, sorted(roster + by_query[q])) for q in todo]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for n, r in enumerate(pool.map(check_one_query, *zip(*jobs, strict=True)), 1):
                results.append(r)
                say(f"  [{n}/{len(jobs)}] {r['query_id'][:16]} "
                    f"{'ok' if r['valid'] else 'FAIL ' + str(r['reason'])}")
    else:
        for n, (q, rs) in enumerate(jobs, 1):
            r = check_one_query(q, rs)
            results.append(r)
            verdict = "ok" if r["valid"] else f"FAIL {r['reason']}"
            say(f"  [{n}/{len(jobs)}] {q[:16]} {verdict}")
    if resume is not None:
        valid = {r["query_id"]: r["statistic"] for r in results if r["valid"]}
        resume.write_text(json.dumps({"log": log, "size": len(rows), "valid_queries": valid},
                                     indent=1) + "\n", encoding="utf-8")
    n_valid = sum(1 for r in results if r["valid"])
    return {
        "log": log, "origin": origin, "size": len(rows), "checkpoints": len(notes),
        "tree_ok": tree_ok, "tree_error": tree_error, "queries": results, "valid": n_valid,
        "ok": tree_ok and n_valid == len(results), "seconds": time.perf_counter() - t0,
    }
