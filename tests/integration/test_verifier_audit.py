"""`statledger audit`: resume from a saved position, and audit a live ledger node by URL."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from statledger.verifier.audit import audit_log


def test_resume_skips_queries_already_valid(verifier_run: Any, tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(verifier_run.ledger_db, db)
    state = tmp_path / "resume.json"
    first = audit_log(str(db), resume=state, workers=1)
    assert first["ok"] and first["queries"]
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
    mine = [q for q in out["queries"] if q["query_id"] == spec.query_id]
    assert mine and mine[0]["valid"], mine
