"""A vertical query is an exact answer at both owners: their quota of exact answers and their
differencing history apply (nodes/provider_service.py ``_vertical``, protocol/vertical.py
``joined_rows``), on real processes.

One cluster (1 ledger, 2 compute nodes, the two owners of examples/vertical, a fresh pair
secret), four queries in order:

1. answered; both owners record the joined rows;
2. owner B's policy allows one exact answer per 30 days: B refuses (before its products
   leave the node), with a message that names the rule and no count;
3. owner A's policy becomes the same quota: A refuses before it encrypts a row;
4. the adversary: owner B (its differencing check off) drops one joined person from its
   table.  Owner A's own selection is unchanged, but the joined rows differ by that one
   person: A refuses its block, so nothing of query 4 is decrypted.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from statledger.nodes.compute_service import query_view
from statledger.nodes.demo import querier_for, start_cluster
from statledger.nodes.follower import LogFollower
from statledger.nodes.ledger_client import LedgerClient
from statledger.protocol.query import QuerySpec

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
A, B = "provider-1", "provider-2"
DS = "vertical"
QUOTA = {"exact": {"max": 1, "period_days": 30}}


def _slice(src: Path, dst: Path, keep: Any) -> list[str]:
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    kept = [r for i, r in enumerate(rows[1:]) if keep(i, r[0])]
    with dst.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        w.writerows(kept)
    return [r[0] for r in kept]


def _spec(min_cell_size: int) -> QuerySpec:
    obj = json.loads((EXAMPLES / "vertical_ols.json").read_text(encoding="utf-8"))
    obj["max_rows"] = 64
    obj["min_cell_size"] = min_cell_size  # another query id per query
    return QuerySpec.parse(obj)


def _policy(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("vexact")
    a_csv, b_csv = work / "a.csv", work / "b.csv"
    a_ids = set(_slice(EXAMPLES / "vertical" / "diabetes_owner_a.csv", a_csv,
                       lambda i, _p: i < 61))
    seen = [0, 0]

    def keep_b(_i: int, pid: str) -> bool:  # 33 ids A holds, 10 it does not
        k = 0 if pid in a_ids else 1
        seen[k] += 1
        return seen[k] <= (33, 10)[k]

    b_ids = _slice(EXAMPLES / "vertical" / "diabetes_owner_b.csv", b_csv, keep_b)
    joined = [p for p in b_ids if p in a_ids]
    assert (len(a_ids), len(joined), len(b_ids)) == (61, 33, 43)
    pair = work / "pair.key"
    pair.write_text(secrets.token_bytes(32).hex(), encoding="utf-8")
    pair.chmod(0o600)
    pol_a = _policy(work / "policy-a.json", {})
    pol_b = _policy(work / "policy-b.json", {**QUOTA, "differencing_check": False})
    cluster = start_cluster(work / "cluster", {A: {DS: str(a_csv)}, B: {DS: str(b_csv)}},
                            n_compute=2, policies={A: pol_a, B: pol_b},
                            vertical_partners={A: {B: pair}, B: {A: pair}})
    try:
        yield {"cluster": cluster, "b_csv": b_csv, "pol_a": pol_a, "pol_b": pol_b,
               "joined": joined, "a_rows": len(a_ids), "b_rows": len(b_ids)}
    finally:
        cluster.stop()


def _no_count(msg: str, setup: dict[str, Any]) -> None:
    """No row count (the joined rows, either table's rows) in a refusal."""
    words = re.sub(r"[0-9a-f]{16,}", " ", msg)  # query ids are hex
    for n in (len(setup["joined"]), setup["a_rows"], setup["b_rows"], 32, 42):
        assert not re.search(rf"\b{n}\b", words), msg


def _kinds(cluster: Any, qid: str, tmp: Path) -> list[str]:
    ledger = LedgerClient(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                          target="ledger")
    view = query_view(LogFollower(ledger, cluster.genesis, tmp.with_suffix(".sqlite")), qid)
    return [e.KIND for _, e in view.vertical] + (["aggregate"] if view.aggregate else [])


def test_vertical_answers_follow_the_exact_rules(setup: dict[str, Any], tmp_path: Path) -> None:
    from statledger.nodes.querier import QueryFailed

    cluster = setup["cluster"]
    with querier_for(cluster) as q:
        out = q.run(_spec(10), datasets=DS)
        assert out.result.values["n"] == len(setup["joined"])

        # 2. B's quota of one exact answer is used up: B refuses, A's rows stay unused
        s2 = _spec(11)
        with pytest.raises(QueryFailed, match=f"vertical products by {B}: .*quota of exact "
                                              "answers is used up") as e:
            q.run(s2, datasets=DS)
        _no_count(str(e.value), setup)
        assert _kinds(cluster, s2.query_id_for("querier"), tmp_path / "2") == ["vertical_rows"]

    # 3. A gets the same quota: it refuses before its rows
    _policy(setup["pol_a"], QUOTA)
    cluster.restart(A)
    s3 = _spec(12)
    with querier_for(cluster) as q, pytest.raises(
            QueryFailed, match=f"vertical rows by {A}: .*quota of exact answers is used up"
    ) as e:
        q.run(s3, datasets=DS)
    _no_count(str(e.value), setup)
    assert _kinds(cluster, s3.query_id_for("querier"), tmp_path / "3") == []

    # 4. B drops one joined person from its table; A's selection is the same as in query 1
    _policy(setup["pol_a"], {})
    _policy(setup["pol_b"], {"differencing_check": False})
    drop = setup["joined"][5]
    with setup["b_csv"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    with setup["b_csv"].open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(r for r in rows if r[0] != drop)
    cluster.restart(A)
    cluster.restart(B)
    s4 = _spec(13)
    with querier_for(cluster) as q, pytest.raises(
            QueryFailed, match=f"vertical block by {A}: .*earlier exact query "
                               f"{out.query_id[:16]}") as e:
        q.run(s4, datasets=DS)
    _no_count(str(e.value), setup)
    assert _kinds(cluster, s4.query_id_for("querier"), tmp_path / "4") == [
        "vertical_rows", "vertical_products"]  # no block: nothing can be decrypted
