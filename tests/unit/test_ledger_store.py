"""LedgerStore: proofs equal the pure functions, append-only triggers, idempotence, batch
atomicity, checkpoint discipline, cosignature storage, bundles."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from statledger.ledger.bundle import verify_bundle
from statledger.ledger.checkpoint import Checkpoint, open_checkpoint
from statledger.ledger.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from statledger.ledger.note import Note, NoteSigner
from statledger.ledger.store import InconsistentCheckpointError, LedgerStore, node_key
from statledger.ledger.witness import Witness, WitnessPolicy
from statledger.proofs.errors import MalformedError, PolicyError, ProtocolError, VerificationError

ORIGIN = "ledger.example/test"
SEED = bytes(range(32))


def _store(tmp_path: Path, name: str = "log.db", **kw: object) -> LedgerStore:
    return LedgerStore(tmp_path / name, ORIGIN, SEED, **kw)  # type: ignore[arg-type]


def _data(i: int) -> bytes:
    return b"entry-%d" % i


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_roots_and_proofs_match_pure_functions(tmp_path: Path, stride: int) -> None:
    s = _store(tmp_path, stride=stride)
    leaves: list[bytes] = []
    assert s.size() == 0 and s.root() == EMPTY_ROOT
    for n in range(1, 71):
        s.append("k", _data(n - 1))
        leaves.append(leaf_hash(_data(n - 1)))
        assert s.root() == root_from_leaf_hashes(leaves)
    for n in range(1, 71):
        assert s.root(n) == root_from_leaf_hashes(leaves[:n])
        for i in range(n):
            p = s.inclusion_proof(i, n)
            assert p == inclusion_proof(i, leaves[:n])
        for m in range(1, n + 1):
            assert s.consistency_proof(m, n) == consistency_proof(m, leaves[:n])
    verify_inclusion(5, 70, s.leaf_hash(5), s.inclusion_proof(5), s.root())
    verify_consistency(33, 70, s.root(33), s.root(), s.consistency_proof(33))


def test_node_keys_increase_in_insertion_order(tmp_path: Path) -> None:
    s = _store(tmp_path, stride=1)
    s.append_many([("k", _data(i)) for i in range(64)])
    ids = [r[0] for r in s._conn.execute("SELECT id FROM nodes ORDER BY rowid")]
    assert ids == sorted(ids) and len(ids) == 63
    assert node_key(6, 0) == (63 << 6) | 6


def test_out_of_range_reads(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.append_many([("k", _data(i)) for i in range(10)])
    with pytest.raises(MalformedError):
        s.root(11)
    with pytest.raises(MalformedError):
        s.inclusion_proof(3, 11)
    with pytest.raises(VerificationError):
        s.inclusion_proof(10, 10)
    with pytest.raises(VerificationError):
        s.consistency_proof(0, 5)
    with pytest.raises(MalformedError):
        s.entry(10)
    with pytest.raises(MalformedError):
        s.entry(-1)
    assert s.entries(8, 20)[-1].index == 9


def test_idempotent_append(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.append_many([("k", b"a"), ("k", b"b"), ("k", b"a")]) == [0, 1, 0]
    assert s.append("k", b"b") == 1
    assert s.append("k", b"c") == 2
    assert s.size() == 3
    assert s.index_of(b"c") == 2 and s.index_of(b"zzz") is None
    with pytest.raises(ProtocolError, match="kind 'k'"):
        s.append("other", b"a")
    assert s.size() == 3


@pytest.mark.parametrize(
    "bad",
    [("", b"x"), ("k", "text"), (3, b"x"), ("k\n", b"x"), ("k" * 65, b"x"), ("k", None)],
)
def test_batch_atomicity_on_bad_item(tmp_path: Path, bad: tuple[object, object]) -> None:
    s = _store(tmp_path)
    s.append("k", b"first")
    with pytest.raises(MalformedError):
        s.append_many([("k", b"x1"), ("k", b"x2"), bad])  # type: ignore[list-item]
    assert s.size() == 1


def test_batch_atomicity_on_database_error(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.append_many([("k", _data(i)) for i in range(5)])
    root = s.root()
    # a concurrent writer (raw SQL) inserts a node id the batch will also write
    raw = sqlite3.connect(tmp_path / "log.db")
    raw.execute("INSERT INTO nodes(id, hash) VALUES (?, ?)", (node_key(3, 0), b"x" * 32))
    raw.commit()
    raw.close()
    with pytest.raises(sqlite3.IntegrityError):
        s.append_many([("k", _data(i)) for i in range(5, 12)])
    assert s.size() == 5 and s.root() == root
    assert s.entries(0, 100)[-1].index == 4


def _raw(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "log.db", isolation_level=None)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE entries SET data = x'00' WHERE idx = 1",
        "UPDATE entries SET kind = 'z'",
        "DELETE FROM entries WHERE idx = 2",
        "DELETE FROM entries",
        "UPDATE nodes SET hash = zeroblob(32)",
        "DELETE FROM nodes",
        "UPDATE checkpoints SET size = 1",
        "DELETE FROM checkpoints",
        "UPDATE meta SET value = 'x'",
        "DELETE FROM dedup",
        "UPDATE dedup SET idx = 3",
        "DELETE FROM dedup_mark",
        "UPDATE dedup_mark SET upto = 0",
        "DELETE FROM meta",
        "INSERT INTO entries(idx, kind, data, leaf_hash, ts) VALUES (12, 'k', x'00', zeroblob(32), 0)",  # noqa: E501
        "INSERT INTO entries(idx, kind, data, leaf_hash, ts) VALUES (3, 'k', x'00', zeroblob(32), 0)",  # noqa: E501
        "INSERT INTO entries(idx, kind, data, leaf_hash, ts) VALUES (10, 'k', x'00', zeroblob(31), 0)",  # noqa: E501
    ],
)
def test_database_refuses_rewrites(tmp_path: Path, sql: str) -> None:
    s = _store(tmp_path, dedup_flush=4)
    s.append_many([("k", _data(i)) for i in range(10)])  # 10 leaves: one stored level-3 node
    s.sign_checkpoint()
    before = (s.root(), s.size())
    conn = _raw(tmp_path)
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute(sql)
    conn.close()
    assert (s.root(), s.size()) == before


def test_a_correct_raw_insert_is_still_allowed(tmp_path: Path) -> None:
    # twin of the refusal tests: the triggers do not block a well-formed next entry
    s = _store(tmp_path)
    s.append("k", b"a")
    conn = _raw(tmp_path)
    conn.execute(
        "INSERT INTO entries(idx, kind, data, leaf_hash, ts) VALUES (1, 'k', x'62', ?, 0)",
        (leaf_hash(b"b"),),
    )
    conn.close()
    assert s.size() == 2 and s.root() == root_from_leaf_hashes([leaf_hash(b"a"), leaf_hash(b"b")])


def test_two_handles_share_state(tmp_path: Path) -> None:
    a = _store(tmp_path)
    b = _store(tmp_path)
    a.append_many([("k", _data(i)) for i in range(9)])
    assert b.append("k", _data(100)) == 9
    assert a.size() == 10 and a.root() == b.root()
    assert a.append("k", _data(101)) == 10


def test_reopen_with_wrong_origin_or_key(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.append("k", b"a")
    s.close()
    with pytest.raises(ProtocolError, match="origin"):
        LedgerStore(tmp_path / "log.db", "other.example/log", SEED)
    with pytest.raises(MalformedError):
        LedgerStore(tmp_path / "log.db", ORIGIN, NoteSigner("other.example/log", SEED))
    ro = LedgerStore(tmp_path / "log.db", ORIGIN, None, log_key=NoteSigner(ORIGIN, SEED).verifier())
    assert ro.size() == 1
    with pytest.raises(PolicyError):
        ro.sign_checkpoint()


def test_checkpoints(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.latest_checkpoint() is None
    empty = s.sign_checkpoint()
    cp, _ = open_checkpoint(empty, s.log_verifier)
    assert (cp.size, cp.root) == (0, EMPTY_ROOT)
    s.append_many([("k", _data(i)) for i in range(13)])
    note = s.sign_checkpoint()
    cp, _ = open_checkpoint(note, s.log_verifier)
    assert cp == Checkpoint(ORIGIN, 13, s.root())
    assert s.sign_checkpoint() == note  # same size: same checkpoint, not a new row
    assert len(s.checkpoints()) == 2
    assert s.latest_checkpoint() == note


def test_refuses_to_sign_inconsistent_checkpoint(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.append_many([("k", _data(i)) for i in range(10)])
    s.sign_checkpoint()
    # forge a checkpoint row claiming a different history at size 8 (raw insert is allowed:
    # the table is append-only, not content-checked)
    conn = _raw(tmp_path)
    bad_root = bytes(32)
    conn.execute("INSERT INTO checkpoints(size, root, note, ts) VALUES (8, ?, 'x', 0)", (bad_root,))
    conn.close()
    s.append("k", b"more")
    with pytest.raises(InconsistentCheckpointError, match="does not extend"):
        s.sign_checkpoint()
    conn = _raw(tmp_path)
    conn.execute(
        "INSERT INTO checkpoints(size, root, note, ts) VALUES (11, ?, 'x', 0)", (bad_root,)
    )
    conn.close()
    with pytest.raises(InconsistentCheckpointError, match="differs"):
        s.sign_checkpoint()
    conn = _raw(tmp_path)
    conn.execute(
        "INSERT INTO checkpoints(size, root, note, ts) VALUES (99, ?, 'x', 0)", (bad_root,)
    )
    conn.close()
    with pytest.raises(InconsistentCheckpointError, match="shrank"):
        s.sign_checkpoint()


def test_cosignatures_and_bundle(tmp_path: Path) -> None:
    s = _store(tmp_path)
    w1 = Witness(tmp_path / "w1.db", "w1.example", bytes([1]) * 32, [s.log_verifier])
    w2 = Witness(tmp_path / "w2.db", "w2.example", bytes([2]) * 32, [s.log_verifier])
    w3 = Witness(tmp_path / "w3.db", "w3.example", bytes([3]) * 32, [s.log_verifier])
    s.witnesses = (w1.verifier(), w2.verifier())
    s.append_many([("k", _data(i)) for i in range(21)])
    with pytest.raises(ProtocolError, match="not covered"):
        s.bundle(0)
    note = s.sign_checkpoint()
    with pytest.raises(ProtocolError, match="not covered"):
        s.bundle(21)
    c1, c2, c3 = (w.cosign(note, [], 0, timestamp=1_700_000_000) for w in (w1, w2, w3))
    assert s.add_cosignature(note + c1.line() + c3.line()) == 1  # w3 unknown: ignored
    assert s.add_cosignature(note + c1.line() + c2.line()) == 1  # c1 already stored
    latest = s.latest_checkpoint()
    assert latest == note + c1.line() + c2.line()
    bad = Note.parse(note + c2.line())
    forged = bad.signatures[1].__class__(c2.name, c2.key_id, c2.sig[:8] + bytes(64))
    with pytest.raises(VerificationError):
        s.add_cosignature(note + forged.line())
    with pytest.raises(VerificationError):
        s.add_cosignature(note.replace("21\n", "22\n", 1) + c1.line())
    policy = WitnessPolicy(s.log_verifier, [w1.verifier(), w2.verifier()], 2)
    for i in (0, 7, 20):
        verify_bundle(s.bundle(i), policy)
    # a checkpoint signed by this key but never stored is refused
    other = LedgerStore(tmp_path / "other.db", ORIGIN, SEED)
    other.append("k", b"x")
    with pytest.raises(ProtocolError, match="not signed by this log"):
        s.add_cosignature(other.sign_checkpoint())


def test_idempotence_across_dedup_flushes_and_reopen(tmp_path: Path) -> None:
    s = _store(tmp_path, dedup_flush=10)
    first = s.append_many([("k", _data(i)) for i in range(12)])
    first += [s.append("k", _data(i)) for i in range(12, 25)]
    assert first == list(range(25))
    marks = [r[0] for r in s._conn.execute("SELECT upto FROM dedup_mark ORDER BY upto")]
    assert marks == [12, 22]  # flushed at batch ends; 3 entries still pending in memory
    assert s._conn.execute("SELECT COUNT(*) FROM dedup").fetchone()[0] == 22
    # old (flushed), pending and in-batch duplicates all map to their first index
    assert s.append_many([("k", _data(3)), ("k", _data(22)), ("k", b"new"), ("k", b"new")]) == [
        3,
        22,
        25,
        25,
    ]
    with pytest.raises(ProtocolError):
        s.append("other-kind", _data(3))
    s.close()
    r = _store(tmp_path, dedup_flush=10)
    for i in (0, 9, 10, 19, 20, 24):
        assert r.append("k", _data(i)) == i
        assert r.index_of(_data(i)) == i
    assert r.append("k", b"newer") == 26 and r.size() == 27


def test_dedup_survives_prefix_collision(tmp_path: Path) -> None:
    # two different leaf hashes with the same 8-byte prefix must not be confused
    s = _store(tmp_path, dedup_flush=2)
    s.append_many([("k", b"a"), ("k", b"b")])  # flushed to the dedup table
    h = leaf_hash(b"a")
    conn = _raw(tmp_path)
    conn.execute(
        "INSERT INTO dedup(prefix, idx) VALUES (?, 1)", (int.from_bytes(h[:8], "big", signed=True),)
    )
    conn.close()
    assert s.index_of(b"a") == 0 and s.append("k", b"a") == 0
    assert s.append("k", b"c") == 2


def test_other_handle_sees_pending_entries(tmp_path: Path) -> None:
    a = _store(tmp_path, dedup_flush=1000)
    b = _store(tmp_path, dedup_flush=1000)
    a.append_many([("k", _data(i)) for i in range(5)])
    assert b.append("k", _data(4)) == 4  # b learns a's pending entries on its next write
    assert b.append("k", _data(5)) == 5
    assert a.append("k", _data(5)) == 5
