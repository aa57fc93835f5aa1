"""A real crash: a subprocess appending batches (and signing checkpoints) is SIGKILLed at
random moments; after each kill the database must replay cleanly, keep every batch it
reported as committed, keep a valid latest checkpoint, and accept new appends."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import verify_consistency
from statledger.ledger.replay import replay
from statledger.ledger.store import LedgerStore

ORIGIN = "ledger.example/crash"
SEED = bytes(range(32))

CHILD = r"""
import sys
from statledger.ledger.store import LedgerStore
path, start = sys.argv[1], int(sys.argv[2])
s = LedgerStore(path, "ledger.example/crash", bytes(range(32)))
b = start
while True:
    items = [("crash", b"batch %d item %d " % (b, i) + bytes(200)) for i in range(1 + b % 37)]
    s.append_many(items)
    if b % 5 == 0:
        s.sign_checkpoint()
    print(b, flush=True)  # batch b is committed
    b += 1
"""


def _run_and_kill(path: Path, start: int, min_batches: int) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = -1
    for _ in range(min_batches):
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "child died"
        last = int(line)
    time.sleep(secrets.randbelow(30) / 1000)  # land somewhere inside a later transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rest = proc.stdout.read().split()
    if rest:
        last = int(rest[-1])
    return last


def _batch(b: int) -> list[bytes]:
    return [b"batch %d item %d " % (b, i) + bytes(200) for i in range(1 + b % 37)]


def test_sigkill_mid_append(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    start = 0
    log: list[bytes] = []  # what the log must hold before each round
    prev_cp = None
    for round_ in range(3):
        last = _run_and_kill(path, start, min_batches=25)
        s = LedgerStore(path, ORIGIN, SEED)
        n = s.size()
        committed = log + [d for b in range(start, last + 1) for d in _batch(b)]
        maybe = committed + _batch(last + 1)  # killed after COMMIT, before the print
        got = [e.data for e in s.entries(0, n)]
        assert got in (committed, maybe), "partial batch or lost committed batch"
        rep = replay(s)
        assert rep.size == n
        note = s.latest_checkpoint()
        assert note is not None
        cp, _ = open_checkpoint(note, s.log_verifier)
        assert cp.size <= n and s.root(cp.size) == cp.root
        if prev_cp is not None:
            assert cp.size >= prev_cp.size
            if 0 < prev_cp.size < cp.size:
                verify_consistency(
                    prev_cp.size,
                    cp.size,
                    prev_cp.root,
                    cp.root,
                    s.consistency_proof(prev_cp.size, cp.size),
                )
        # appending resumes, and a new checkpoint extends the last signed one
        extra = b"resume after crash %d" % round_
        assert s.append("after-crash", extra) == n
        new_cp, _ = open_checkpoint(s.sign_checkpoint(), s.log_verifier)
        assert new_cp.size == n + 1
        if cp.size:
            proof = s.consistency_proof(cp.size)
            verify_consistency(cp.size, n + 1, cp.root, new_cp.root, proof)
        prev_cp = new_cp
        s.close()
        log = got + [extra]
        start = last + 2
    final = LedgerStore(path, ORIGIN, SEED)
    assert replay(final).size == final.size() == len(log)


BIG_CHILD = r"""
import sys
from statledger.ledger.store import LedgerStore
s = LedgerStore(sys.argv[1], "ledger.example/crash", bytes(range(32)))
s.append_many([("small", b"small %d" % i) for i in range(100)])
s.sign_checkpoint()
s._conn.execute("PRAGMA cache_size=50")  # small cache: the transaction spills into the WAL
print("begin", flush=True)
s.append_many([("big", b"big %d " % i + bytes(200)) for i in range(200_000)])
print("done", flush=True)
"""


def test_sigkill_inside_one_large_transaction(tmp_path: Path) -> None:
    """Killed while one 200,000-entry transaction is being written: none of it survives."""
    path = tmp_path / "big.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", BIG_CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "begin"
    wal = path.with_name(path.name + "-wal")
    deadline = time.monotonic() + 60
    # wait until the open transaction has spilled > 2 MB of frames into the WAL
    while wal.stat().st_size < 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout.read() == ""  # it really was killed before the batch committed
    assert wal.stat().st_size >= 2_000_000  # ... while writing it
    s = LedgerStore(path, ORIGIN, SEED)
    assert s.size() == 100
    assert replay(s).size == 100
    cp, _ = open_checkpoint(s.latest_checkpoint() or "", s.log_verifier)
    assert cp.size == 100 and cp.root == s.root()
    assert s.append("after", b"resumed") == 100
    assert s.append_many([("big", b"big 0 " + bytes(200))]) == [101]
    assert replay(s).size == 102
