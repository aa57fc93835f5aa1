"""Review of stop 22's caches and the ledger's concurrent appends, each finding played as
the adversary (or the load) that exposed it.

1. The ledger's side-table connection was shared by its threads without serialising the
   statements: an auth check or a read left a statement open on it while the append's
   worker began its write transaction, the nonce store (same file) having written since,
   and SQLite refused at once ("database is locked", or a garbled error state): an HTTP
   500 under load (1,000 owners appending).  Played with the node's real reads, its real
   nonce store and the append's own write transaction, from many threads at once.
2. ``Entry.from_bytes`` caches decoded entries by their bytes; a kind holding a JSON object
   (a query's spec, a result) handed every caller the SAME dict, so one caller's change
   reached the next caller decoding the same (valid, signed) bytes: a spec or result
   that is not what the log holds, without any check noticing.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from statledger.nodes.config import load_config
from statledger.nodes.launcher import init_cluster
from statledger.nodes.ledger_service import LedgerNode
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries
from statledger.protocol.entries import Entry, QueryEntry, ResultEntry
from statledger.protocol.query import QuerySpec

QID = "ab" * 32


# -- 1. concurrent reads, nonces and the append's write transaction --------------------------

@pytest.fixture()
def node(tmp_path: Path) -> Any:
    layout = init_cluster(tmp_path / "c", n_compute=1, queriers=["querier"])
    config = load_config(layout.parties["ledger"].config_path, role="ledger")
    the_node = LedgerNode(config)  # type: ignore[arg-type]
    yield the_node
    the_node.close()


def _index_like_an_append(n: Any, i: int) -> None:
    """The write transaction ``_append_checked`` runs after each append (under the lock)."""
    with n._lock:
        n._db.execute("BEGIN IMMEDIATE")
        try:
            n._db.execute("INSERT OR REPLACE INTO ledger_meta(key, value) VALUES "
                          "('review-probe', ?)", (str(i),))
            n._db.execute("COMMIT")
        except BaseException:
            n._db.execute("ROLLBACK")
            raise


def test_concurrent_reads_nonces_and_appends_raise_nothing(node: Any) -> None:
    errors: list[BaseException] = []
    stop = time.monotonic() + 3.0
    # a fresh party id per nonce keeps the nonce table's writes going without replays
    party = "owner-" + secrets.token_hex(4)

    def guarded(fn: Any) -> Any:
        def run() -> None:
            i = 0
            while time.monotonic() < stop:
                try:
                    fn(i)
                except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                    errors.append(exc)
                    return
                i += 1
        return run

    def reads(_: int) -> None:  # what the auth dependency and the GET routes read
        assert node.role_of("ledger") == "ledger"
        assert node.querier_of(QID) is None
        assert node.query_entries(QID) == []
        assert node.chain_indices() == [0]  # the genesis
        assert node.parties() == {}  # (no party registered in this bare log)
        assert node.setup_index() is None

    def nonces(i: int) -> None:  # every signed request stores its nonce (the same file)
        node.nonces.check_and_store(party, f"n{i}", int(time.time()))
        time.sleep(0.001)  # (requests arrive; a tight loop would starve SQLite's busy wait)

    threads = [threading.Thread(target=guarded(reads)) for _ in range(4)]
    threads += [threading.Thread(target=guarded(nonces)),
                threading.Thread(target=guarded(lambda i: _index_like_an_append(node, i)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, f"{len(errors)} failure(s), first: {errors[0]!r}"
    # the writes all landed: the last committed value is read back
    row = node._db.execute("SELECT value FROM ledger_meta WHERE key = 'review-probe'").fetchone()
    assert row is not None and int(row[0]) >= 10


def test_side_table_rows_are_read_in_full(node: Any) -> None:
    """A read hands back its rows, not an open statement on the shared connection."""
    rows = node._db.execute("SELECT idx, kind FROM ledger_chain ORDER BY idx")
    assert not isinstance(rows, sqlite3.Cursor)
    assert rows.fetchone() == rows.fetchall()[0]
    assert node._db.execute("SELECT value FROM ledger_meta WHERE key = 'none'").fetchone() is None


# -- 2. the decoded-entry cache hands out no shared mutable state ----------------------------

SPEC = QuerySpec.parse({"version": 1, "statistic": "count", "columns": ["x"],
                        "categories": {"x": ["a", "b"]}, "max_rows": 10, "min_providers": 1,
                        "privacy": {"mechanism": "none"}, "min_cell_size": 1})


def _signed_query() -> bytes:
    key = SigningKey.generate()
    return entries.sign(QueryEntry.for_spec(SPEC, "querier"), key).to_bytes()


def test_mutating_a_decoded_spec_does_not_reach_the_next_decoding() -> None:
    raw = _signed_query()
    first = Entry.from_bytes(raw)
    assert isinstance(first, QueryEntry)
    original = first.query_spec()
    first.spec["max_rows"] = 1  # a careless (or hostile) caller edits its copy
    first.spec["columns"].append("y")
    again = Entry.from_bytes(raw)
    assert isinstance(again, QueryEntry)
    assert again.spec is not first.spec
    assert again.query_spec() == original
    assert again.to_bytes() == raw  # the entry still is what the bytes say


def test_mutating_a_cached_result_does_not_reach_the_next_decoding() -> None:
    key = SigningKey.generate()
    raw = entries.sign(ResultEntry.for_totals(QID, [5, 7], {"n": 12, "rows": [1, 2]},
                                              ["compute-1"]), key).to_bytes()
    a = Entry.from_bytes(raw)
    assert isinstance(a, ResultEntry)
    a.result["n"] = 3
    a.result["rows"][0] = 99
    b = Entry.from_bytes(raw)
    assert isinstance(b, ResultEntry)
    assert b.result == {"n": 12, "rows": [1, 2]}
    assert b.to_bytes() == raw


def test_entries_without_json_objects_are_shared_not_copied() -> None:
    """The cache still saves the decoding: an entry of immutable fields is the cached one."""
    key = SigningKey.generate()
    raw = entries.sign(entries.SubmissionEntry(QID, "owner-1", "00ff"), key).to_bytes()
    assert Entry.from_bytes(raw) is Entry.from_bytes(raw)


def test_a_forged_byte_is_decoded_again_not_served_from_the_cache() -> None:
    raw = _signed_query()
    Entry.from_bytes(raw)
    for forged in (raw[:-1], raw + b"\x00", raw[:-1] + bytes([raw[-1] ^ 1])):
        try:
            got = Entry.from_bytes(forged)
        except Exception as exc:  # noqa: BLE001 - refused is the expected outcome
            assert type(exc).__name__ in ("MalformedError", "VerificationError")
            continue
        # a flipped signature byte still decodes, but it is not the cached entry
        assert got.to_bytes() == forged and got.sig != Entry.from_bytes(raw).sig


# -- 3. an append whose indexing failed leaves no stale side table for the next checks -------

def test_a_second_registration_after_a_failed_indexing_is_refused(
        node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adversary: a compute node whose registration was logged but not indexed (the side
    tables' write failed: a locked database) registers again with other bytes (a fresh
    Schnorr proof); the checks must see the first one, not the stale tables."""
    from statledger.nodes.serve import _default_party_entry
    from statledger.proofs.errors import ProtocolError

    compute = load_config(tmp_path / "c" / "compute-1" / "config.toml", role="compute")
    first, second = _default_party_entry(compute), _default_party_entry(compute)
    assert first != second  # (the proof of possession is randomised)
    real_index = node._index
    failed: list[int] = []

    def index_fails_once(entry: Any, idx: int) -> None:
        if not failed:
            failed.append(idx)
            raise sqlite3.OperationalError("database is locked")
        real_index(entry, idx)

    monkeypatch.setattr(node, "_index", index_fails_once)
    with pytest.raises(sqlite3.OperationalError):
        node.append(first, "compute-1")
    assert node.store.index_of(first) == failed[0]  # logged, not indexed
    with pytest.raises(ProtocolError, match="already registered"):
        node.append(second, "compute-1")
    assert node.store.index_of(second) is None
    assert node.party("compute-1") is not None  # the first one, indexed by the catch-up
    assert node.append(first, "compute-1")[0] == failed[0]  # its retry: the same index
