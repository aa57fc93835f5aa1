"""Replay: a good log passes; every kind of tampering (with the triggers dropped, as an
attacker with file access would) is caught and the first bad index is reported."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from statledger.ledger.checkpoint import Checkpoint, sign_checkpoint
from statledger.ledger.merkle import leaf_hash, root_from_leaf_hashes
from statledger.ledger.note import NoteSigner
from statledger.ledger.replay import ReplayError, replay, replay_log
from statledger.ledger.store import LedgerStore

ORIGIN = "ledger.example/replay"
SEED = bytes(range(32))
N = 300


def _build(tmp_path: Path) -> LedgerStore:
    s = LedgerStore(tmp_path / "log.db", ORIGIN, SEED)
    s.sign_checkpoint()  # size 0
    datas = [b"e%d" % i for i in range(N)]
    s.append_many([("k", d) for d in datas[:100]])
    s.sign_checkpoint()
    s.append_many([("k", d) for d in datas[100:257]])
    s.sign_checkpoint()
    s.append_many([("k", d) for d in datas[257:]])
    return s


def _tamper(tmp_path: Path, *sql: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    for q, args in sql:
        conn.execute(q, args)
    conn.close()


def test_good_log_replays(tmp_path: Path) -> None:
    s = _build(tmp_path)
    rep = replay(s, block_level=4)
    assert rep.size == N and rep.checkpoints == 3
    assert rep.root == root_from_leaf_hashes([leaf_hash(b"e%d" % i) for i in range(N)])
    assert rep.root == s.root() and rep.entries_per_second > 0
    for level in (1, 3, 10):  # block size must not matter
        assert replay(s, block_level=level, batch=7).root == rep.root


def test_changed_data_is_pinned_to_its_index(tmp_path: Path) -> None:
    s = _build(tmp_path)
    _tamper(tmp_path, ("UPDATE entries SET data = x'00' WHERE idx = 123", ()))
    with pytest.raises(ReplayError, match="replay step 1.*first bad index 123") as ei:
        replay(s)
    assert ei.value.index == 123


def test_consistent_rewrite_is_caught_by_checkpoint(tmp_path: Path) -> None:
    s = _build(tmp_path)
    _tamper(
        tmp_path,
        ("UPDATE entries SET data = x'00', leaf_hash = ? WHERE idx = 150", (leaf_hash(b"\x00"),)),
    )
    with pytest.raises(ReplayError, match="step 3.*\\[100, 257\\)") as ei:
        replay(s)
    assert ei.value.index == 100 and ei.value.checkpoint_size == 257


def test_rewrite_after_last_checkpoint_is_caught_by_stored_nodes(tmp_path: Path) -> None:
    _build(tmp_path)
    _tamper(
        tmp_path,
        ("UPDATE entries SET data = x'00', leaf_hash = ? WHERE idx = 290", (leaf_hash(b"\x00"),)),
    )
    s2 = LedgerStore(tmp_path / "log.db", ORIGIN, SEED)
    with pytest.raises(ReplayError, match="step 5"):
        replay(s2)


def test_deleted_entry(tmp_path: Path) -> None:
    s = _build(tmp_path)
    _tamper(tmp_path, ("DELETE FROM entries WHERE idx = 42", ()))
    with pytest.raises(ReplayError, match="first bad index 42"):
        replay(s)


def test_tampered_node(tmp_path: Path) -> None:
    _build(tmp_path)
    _tamper(
        tmp_path,
        ("UPDATE nodes SET hash = zeroblob(32) WHERE id = (SELECT MIN(id) FROM nodes)", ()),
    )
    s2 = LedgerStore(tmp_path / "log.db", ORIGIN, SEED)
    with pytest.raises(ReplayError, match="step [45]"):
        replay(s2)


def test_forged_checkpoint_signature_and_body(tmp_path: Path) -> None:
    s = _build(tmp_path)
    other = NoteSigner(ORIGIN, bytes(32))
    forged = sign_checkpoint(Checkpoint(ORIGIN, 100, s.root(100)), other)
    _tamper(tmp_path, ("UPDATE checkpoints SET note = ? WHERE size = 100", (forged,)))
    with pytest.raises(ReplayError, match="step 2"):
        replay(s)
    # twin: signature checks can be skipped, then the (correct) roots pass
    replay(s, verify_signatures=False)


def test_checkpoint_body_mismatch_and_beyond_log(tmp_path: Path) -> None:
    s = _build(tmp_path)
    signer = NoteSigner(ORIGIN, SEED)
    wrong = sign_checkpoint(Checkpoint(ORIGIN, 101, s.root(101)), signer)
    _tamper(tmp_path, ("UPDATE checkpoints SET note = ? WHERE size = 100", (wrong,)))
    with pytest.raises(ReplayError, match="step 2.*does not match"):
        replay(s)


def test_checkpoint_beyond_the_log(tmp_path: Path) -> None:
    s = _build(tmp_path)
    signer = NoteSigner(ORIGIN, SEED)
    root = bytes(32)
    note = sign_checkpoint(Checkpoint(ORIGIN, 400, root), signer)
    _tamper(
        tmp_path,
        ("INSERT INTO checkpoints(size, root, note, ts) VALUES (400, ?, ?, 0)", (root, note)),
    )
    with pytest.raises(ReplayError, match="step 3.*400"):
        replay(s)


def test_shrinking_checkpoints(tmp_path: Path) -> None:
    s = _build(tmp_path)
    signer = NoteSigner(ORIGIN, SEED)
    note = sign_checkpoint(Checkpoint(ORIGIN, 50, s.root(50)), signer)
    _tamper(
        tmp_path,
        ("INSERT INTO checkpoints(size, root, note, ts) VALUES (50, ?, ?, 0)", (s.root(50), note)),
    )
    with pytest.raises(ReplayError, match="step 4.*smaller"):
        replay(s)


# -- replay_log: the same steps on entries and checkpoint notes read from anywhere ----------


def _read(s: LedgerStore) -> tuple[list[tuple[int, bytes]], list[str]]:
    rows = [(e.index, e.data) for e in s.iter_entries()]
    return rows, [cp.note for cp in s.checkpoints()]


def test_replay_log_agrees_with_the_store(tmp_path: Path) -> None:
    s = _build(tmp_path)
    rows, notes = _read(s)
    rep = replay_log(ORIGIN, s.log_verifier, rows, notes, batch=7, block_level=3)
    assert (rep.size, rep.root, rep.checkpoints) == (N, s.root(), 3)
    assert rep.root == replay(s).root
    # an empty log with no checkpoint, and a checkpoint of size 0
    assert replay_log(ORIGIN, s.log_verifier, [], []).size == 0
    assert replay_log(ORIGIN, s.log_verifier, [], notes[:1]).checkpoints == 1


def test_replay_log_reject_twins(tmp_path: Path) -> None:
    s = _build(tmp_path)
    rows, notes = _read(s)
    log = s.log_verifier
    # (1) a gap in the indices
    with pytest.raises(ReplayError, match="replay step 1.*first bad index 42") as ei:
        replay_log(ORIGIN, log, rows[:42] + rows[43:], notes)
    assert ei.value.index == 42
    # (2) a checkpoint signed by another key, or for another origin
    forged = sign_checkpoint(Checkpoint(ORIGIN, 100, s.root(100)), NoteSigner(ORIGIN, bytes(32)))
    with pytest.raises(ReplayError, match="replay step 2.*checkpoint 2"):
        replay_log(ORIGIN, log, rows, [notes[0], forged, notes[2]])
    with pytest.raises(ReplayError, match="replay step 2"):
        replay_log("other.example/log", log, rows, notes)
    # (3) one changed entry: pinned between the checkpoints around it
    bad = [(i, b"\x00" if i == 150 else d) for i, d in rows]
    with pytest.raises(ReplayError, match=r"replay step 3.*\[100, 257\)") as ei:
        replay_log(ORIGIN, log, bad, notes)
    assert ei.value.index == 100 and ei.value.checkpoint_size == 257
    # (3) the last entries dropped: a checkpoint beyond the log
    with pytest.raises(ReplayError, match="replay step 3.*size 257 but the log has 200"):
        replay_log(ORIGIN, log, rows[:200], notes)
    # (4) checkpoints out of order
    with pytest.raises(ReplayError, match="replay step 4.*smaller"):
        replay_log(ORIGIN, log, rows, [notes[0], notes[2], notes[1]])
