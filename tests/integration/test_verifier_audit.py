"""`statledger audit`: resume from a saved position, audit a live ledger node by URL, tell
valid, invalid and incomplete queries apart, and check the witness cosignatures (step 7).

The logs here are copies of the verifier suite's real ledger file; new entries are appended
with the ledger's own key through :class:`LedgerStore` (checkpoints cosigned by the compute
nodes' witness keys, as the running ledger does), and tampering goes straight to the SQLite
file with the append-only triggers dropped, as an attacker with file access would.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from forge import Adversary
from typer.testing import CliRunner

from statledger.ledger.note import Note
from statledger.ledger.store import LedgerStore
from statledger.nodes.cli import app
from statledger.proofs.vector import encrypt_vector_with_proof
from statledger.protocol import entries as E
from statledger.protocol import flow
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.verifier.audit import audit_log


def test_resume_skips_queries_already_valid(verifier_run: Any, tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(verifier_run.ledger_db, db)
    state = tmp_path / "resume.json"
    first = audit_log(str(db), resume=state, workers=1)
    assert first["ok"] and first["queries"]
    assert first["valid"] == len(first["queries"]) and first["invalid"] == first["incomplete"] == 0
    assert not any(q.get("resumed") for q in first["queries"])
    saved = json.loads(state.read_text())
    assert set(saved["valid_queries"]) == {q["query_id"] for q in first["queries"]}
    second = audit_log(str(db), resume=state, workers=1)
    assert second["ok"]
    assert all(q.get("resumed") for q in second["queries"])


def test_resume_does_not_hide_a_broken_tree(verifier_run: Any, tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(verifier_run.ledger_db, db)
    state = tmp_path / "resume.json"
    assert audit_log(str(db), resume=state, workers=1)["ok"]
    con = sqlite3.connect(db)
    names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for n in names:
        con.execute(f'DROP TRIGGER "{n}"')
    idx, data = con.execute("SELECT idx, data FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
    con.execute("UPDATE entries SET data = ? WHERE idx = ?", (bytes(data[:-1]) + b" ", idx))
    con.commit()
    con.close()
    again = audit_log(str(db), resume=state, workers=1)
    assert not again["ok"] and not again["tree_ok"]


def test_audit_live_ledger_by_url(e2e_cluster: Any, e2e_querier: Any) -> None:
    from statledger.protocol.query import QuerySpec

    spec = QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "min_cell_size": 1, "max_rows": 1000})
    e2e_querier.run(spec, datasets="waltons")
    out = audit_log(e2e_cluster.url("ledger"), workers=2)
    assert out["tree_ok"], out["tree_error"]
    mine = [q for q in out["queries"] if q["query_id"] == spec.query_id_for("querier")]
    assert mine and mine[0]["valid"] and mine[0]["status"] == "valid", mine


# -- valid / incomplete / invalid in one log ---------------------------------------------------

WITNESSES = ("compute-1", "compute-2", "compute-3")
PROVIDERS = ("hospital-a", "hospital-b", "hospital-c", "hospital-d")


def _copy(run: Any, tmp_path: Path) -> Path:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(run.ledger_db, db)
    return db


def _rows(db: Path) -> list[tuple[int, bytes]]:
    con = sqlite3.connect(db)
    try:
        return [(int(i), bytes(d)) for i, d in
                con.execute("SELECT idx, data FROM entries ORDER BY idx")]
    finally:
        con.close()


def _append_witnessed(run: Any, db: Path, new: list[E.Entry]) -> None:
    """Append entries as the ledger does, then a checkpoint cosigned by every witness."""
    adv = Adversary(run.base_dir, run.origin)
    store = LedgerStore(db, run.origin, adv.identity("ledger"))
    try:
        store.append_many([(e.KIND, e.to_bytes()) for e in new])
        note = store.sign_checkpoint()
        text = Note.parse(note).text
        cosigs = "".join(adv.witness(w).cosign(text, 1_700_000_000).line() for w in WITNESSES)
        store.add_cosignature(note + cosigs, [adv.witness(w).verifier() for w in WITNESSES])
    finally:
        store.close()


def _refused_query(run: Any, db: Path, contributors: tuple[str, ...]) -> str:
    """A query that stopped before its aggregate: the owners not in ``contributors`` refused.
    Returns its query id."""
    adv = Adversary(run.base_dir, run.origin)
    spec = QuerySpec.parse({"version": 1, "statistic": "mean", "columns": ["bmi"],
                            "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000,
                            "min_cell_size": 11})
    qid = spec.query_id_for("querier")
    setup = [e for e in (E.Entry.from_bytes(d) for _, d in _rows(db))
             if isinstance(e, E.SetupEntry)]
    X = setup[0].collective_point()
    ranges = list(get_statistic(spec.statistic).layout(spec).ranges)
    new: list[E.Entry] = [adv.sign(E.QueryEntry.for_spec(spec, "querier"), "querier")]
    for p in contributors:
        ev = encrypt_vector_with_proof(X, [min(hi, lo + 5) for lo, hi in ranges], ranges,
                                       flow.submission_context(qid, p))
        new.append(adv.sign(E.SubmissionEntry(qid, p, ev.to_bytes().hex()), p))
    _append_witnessed(run, db, new)
    return qid


def _tamper(db: Path, sql: str, args: tuple[Any, ...]) -> None:
    con = sqlite3.connect(db)
    try:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                   ).fetchall():
            con.execute(f'DROP TRIGGER "{name}"')
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def _entry_of(db: Path, kind: str, query_id: str) -> tuple[int, bytes]:
    for idx, data in _rows(db):
        obj = parse_cbor(data)
        if obj["kind"] == kind and obj.get("query_id") == bytes.fromhex(query_id):
            return idx, data
    raise AssertionError(f"no {kind} entry of {query_id}")


def _retotal(data: bytes) -> bytes:
    """The result entry with its first total rewritten (still well formed, signature broken)."""
    obj = parse_cbor(data)
    return cbor_bytes({**obj, "totals": ["1" + obj["totals"][0], *obj["totals"][1:]]})


def _cli_audit(db: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", *extra, str(db)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}\n{result.output}")
    return result.exit_code, result.output


def _by_id(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["query_id"]: q for q in summary["queries"]}


def test_valid_incomplete_and_tampered_queries_in_one_log(verifier_run: Any,
                                                         tmp_path: Path) -> None:
    db = _copy(verifier_run, tmp_path)
    refused = _refused_query(verifier_run, db, ("hospital-a",))
    ids = verifier_run.query_ids
    # a refused query is incomplete, not invalid: nothing invalid -> exit 0
    clean = audit_log(str(db), workers=2)
    assert clean["tree_ok"], clean["tree_error"]
    q = _by_id(clean)[refused]
    assert q["status"] == "incomplete" and q["valid"] is False, q
    assert q["step"] == 11 and q["reason"] == "no aggregate entry" and q["party"] is None
    assert (clean["valid"], clean["invalid"], clean["incomplete"]) == (len(ids), 0, 1)
    assert clean["ok"] is True
    code, out = _cli_audit(db)
    assert code == 0, out
    assert f"{len(ids) + 1} queries: {len(ids)} valid, 0 invalid, 1 incomplete" in out
    assert "incomplete, stopped at step 11: no aggregate entry" in out

    # now one of the valid queries is tampered with: its result's totals rewritten in place
    idx, data = _entry_of(db, "result", ids["crosstab"])
    _tamper(db, "UPDATE entries SET data = ? WHERE idx = ?",
            (_retotal(data), idx))
    code, out = _cli_audit(db, "--json")
    assert code == 1, out
    summary = json.loads(out[out.index("{"):])
    assert summary["ok"] is False and summary["tree_ok"] is False  # the tree shows it too
    assert (summary["valid"], summary["invalid"], summary["incomplete"]) == (len(ids) - 1, 1, 1)
    by_id = _by_id(summary)
    bad = by_id[ids["crosstab"]]
    assert bad["status"] == "invalid" and bad["step"] == 13 and bad["party"] == "querier", bad
    assert "signature" in bad["reason"]
    assert by_id[refused]["status"] == "incomplete"
    for name in ("mean", "mean_other", "dp_sum"):
        assert by_id[ids[name]]["status"] == "valid", by_id[ids[name]]
    code, out = _cli_audit(db)
    assert code == 1
    assert f"{len(ids) + 1} queries: {len(ids) - 1} valid, 1 invalid, 1 incomplete" in out
    assert "FAIL" in out and "step 13" in out and "(blamed: querier)" in out


def test_incomplete_needs_a_valid_prefix(verifier_run: Any, tmp_path: Path) -> None:
    """A query without a result whose present entries are wrong is invalid, not incomplete:
    here the one submission's range proof is for another query."""
    db = _copy(verifier_run, tmp_path)
    refused = _refused_query(verifier_run, db, ("hospital-a", "hospital-b"))
    idx, data = _entry_of(db, "submission", refused)
    sub = E.Entry.from_bytes(data)
    adv = Adversary(verifier_run.base_dir, verifier_run.origin)
    other = _entry_of(db, "submission", verifier_run.query_ids["mean"])[1]
    moved = adv.sign(E.SubmissionEntry(refused, "hospital-a",
                                       E.Entry.from_bytes(other).vector), "hospital-a")
    assert isinstance(sub, E.SubmissionEntry) and sub.provider == "hospital-a"
    _tamper(db, "UPDATE entries SET data = ? WHERE idx = ?", (moved.to_bytes(), idx))
    q = _by_id(audit_log(str(db), workers=1))[refused]
    assert q["status"] == "invalid" and q["step"] == 9 and q["party"] == "hospital-a", q


# -- step 7: the witness cosignatures on the log's checkpoints ---------------------------------


def test_audit_checks_witness_cosignatures(verifier_run: Any, tmp_path: Path) -> None:
    """Cosignatures are not in the tree: a log stripped of them replays fine, but no query
    is witnessed any more (step 7, blamed: the ledger)."""
    db = _copy(verifier_run, tmp_path)
    _tamper(db, "DELETE FROM cosignatures", ())
    out = audit_log(str(db), workers=2)
    assert out["tree_ok"], out["tree_error"]
    assert out["ok"] is False and out["invalid"] == len(out["queries"]) > 0
    for q in out["queries"]:
        assert q["status"] == "invalid" and q["step"] == 7 and q["party"] == "ledger", q
        assert "witness quorum" in q["reason"]


def test_audit_names_a_witness_with_a_bad_cosignature(verifier_run: Any,
                                                      tmp_path: Path) -> None:
    """One stored cosignature with a flipped signature bit (still canonical base64): the
    query its checkpoint witnesses fails step 7 naming that witness; the others pass."""
    db = _copy(verifier_run, tmp_path)
    con = sqlite3.connect(db)
    try:
        cp_id = con.execute("SELECT MAX(id) FROM checkpoints").fetchone()[0]
        cid, line = con.execute("SELECT id, line FROM cosignatures WHERE checkpoint_id = ? "
                                "ORDER BY id LIMIT 1", (cp_id,)).fetchone()
        size = con.execute("SELECT size FROM checkpoints WHERE id = ?", (cp_id,)).fetchone()[0]
    finally:
        con.close()
    prefix, name, blob = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    bad_line = f"{prefix} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    _tamper(db, "UPDATE cosignatures SET line = ? WHERE id = ?", (bad_line, cid))
    out = audit_log(str(db), workers=1)
    assert out["tree_ok"], out["tree_error"]
    rows = _rows(db)
    failed = [q for q in out["queries"] if q["status"] != "valid"]
    assert failed, out["queries"]
    for q in failed:
        assert q["status"] == "invalid" and q["step"] == 7 and q["party"] == name, q
        assert f"invalid cosignature by {name}" in q["reason"]
    # exactly the queries whose entries only the last checkpoint covers
    con = sqlite3.connect(db)
    try:
        sizes = sorted(r[0] for r in con.execute("SELECT size FROM checkpoints"))
    finally:
        con.close()
    earlier = max(s for s in sizes if s < size)
    last_of = {}
    for idx, data in rows:
        qid = parse_cbor(data).get("query_id")
        if qid:
            last_of[qid.hex()] = idx
    assert {q["query_id"] for q in failed} == {q for q, i in last_of.items() if i >= earlier}
