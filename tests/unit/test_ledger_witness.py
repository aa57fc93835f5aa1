"""Witness cosigning (tlog-cosignature/v1), fork/rollback refusal, compare-and-swap state,
and k-of-n witness policies."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from pathlib import Path

import pytest
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

from statledger.ledger.checkpoint import Checkpoint, sign_checkpoint
from statledger.ledger.merkle import consistency_proof, leaf_hash, root_from_leaf_hashes
from statledger.ledger.note import (
    COSIGNATURE_MAX_SKEW,
    CosignatureVerifier,
    Note,
    NoteSigner,
    Signature,
)
from statledger.ledger.witness import (
    CosignatureSigner,
    ForkError,
    UnknownLogError,
    Witness,
    WitnessConflictError,
    WitnessPolicy,
)
from statledger.proofs.errors import MalformedError, PolicyError, VerificationError

ORIGIN = "log.example/w"
LOG = NoteSigner(ORIGIN, bytes(range(32)))
LEAVES = [leaf_hash(b"%d" % i) for i in range(40)]
FORK = [leaf_hash(b"fork %d" % i) for i in range(40)]


def cp_note(n: int, leaves: list[bytes] = LEAVES, signer: NoteSigner = LOG) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, n, root_from_leaf_hashes(leaves[:n])), signer)


def witness(tmp_path: Path, name: str = "w1.example", seed: int = 7) -> Witness:
    return Witness(tmp_path / f"{name}.db", name, bytes([seed]) * 32, [LOG.verifier()])


def test_cosignature_format_is_c2sp_v1(tmp_path: Path) -> None:
    w = witness(tmp_path)
    note = cp_note(5)
    sig = w.cosign(note, [], 0, timestamp=1679315147)
    pub = w.signer.public_key
    assert sig.key_id == hashlib.sha256(b"w1.example\n\x04" + pub).digest()[:4]
    assert sig.sig[:8] == struct.pack(">Q", 1679315147) and len(sig.sig) == 72
    msg = b"cosignature/v1\ntime 1679315147\n" + Note.parse(note).text.encode()
    eddsa.new(eddsa.import_public_key(pub), "rfc8032").verify(msg, sig.sig[8:])
    vkey = w.verifier().vkey()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert CosignatureVerifier.from_vkey(vkey) == w.verifier()
    line = sig.line()
    assert line.startswith("\u2014 w1.example ") and line.endswith("\n")
    # independent check of the signing key derivation
    assert (
        ECC.construct(curve="Ed25519", seed=bytes([7]) * 32).public_key().export_key(format="raw")
        == pub
    )


def test_witness_advances_and_refuses_forks(tmp_path: Path) -> None:
    w = witness(tmp_path)
    w.cosign(cp_note(4), [], 0)
    assert w.state(ORIGIN) == (4, root_from_leaf_hashes(LEAVES[:4]))
    w.cosign(cp_note(10), consistency_proof(4, LEAVES[:10]), 4)
    # same size again: fine
    w.cosign(cp_note(10), [], 10)
    # fork: a different tree of size 12 whose first 10 leaves differ
    forked = LEAVES[:3] + FORK[3:]
    with pytest.raises(ForkError):
        w.cosign(cp_note(12, forked), consistency_proof(10, forked[:12]), 10)
    # fork at the same size
    with pytest.raises(ForkError):
        w.cosign(cp_note(10, forked), [], 10)
    # the honest proof but for a forked checkpoint
    with pytest.raises(ForkError):
        w.cosign(cp_note(12, forked), consistency_proof(10, LEAVES[:12]), 10)
    # a bad proof (bit flip) for the honest next checkpoint
    p = consistency_proof(10, LEAVES[:12])
    p[0] = bytes([p[0][0] ^ 1]) + p[0][1:]
    with pytest.raises(ForkError):
        w.cosign(cp_note(12), p, 10)
    assert w.state(ORIGIN)[0] == 10
    # rollback: smaller checkpoint, with the (claimed) right old size
    with pytest.raises(ForkError, match="rollback"):
        w.cosign(cp_note(6), [], 10)
    # stale old_size: conflict names the witness's size
    with pytest.raises(WitnessConflictError) as ei:
        w.cosign(cp_note(12), consistency_proof(4, LEAVES[:12]), 4)
    assert ei.value.size == 10
    # twin: the correct request succeeds after all that
    w.cosign(cp_note(12), consistency_proof(10, LEAVES[:12]), 10)
    assert w.state(ORIGIN)[0] == 12


def test_first_checkpoint_needs_empty_proof_and_old_size_zero(tmp_path: Path) -> None:
    w = witness(tmp_path)
    with pytest.raises(ForkError):
        w.cosign(cp_note(4), [LEAVES[0]], 0)
    with pytest.raises(WitnessConflictError):
        w.cosign(cp_note(4), [], 2)
    w.cosign(cp_note(4), [], 0)


def test_witness_rejects_bad_log_signatures(tmp_path: Path) -> None:
    w = witness(tmp_path)
    with pytest.raises(VerificationError):
        w.cosign(cp_note(4, signer=NoteSigner(ORIGIN, bytes(32))), [], 0)
    other = NoteSigner("other.example/log", bytes(range(32)))
    note = sign_checkpoint(Checkpoint("other.example/log", 1, LEAVES[0]), other)
    with pytest.raises(UnknownLogError):
        w.cosign(note, [], 0)
    with pytest.raises(MalformedError):
        w.cosign(cp_note(4) + "junk", [], 0)
    with pytest.raises(MalformedError):
        w.cosign(cp_note(4), [], -1)
    assert w.state(ORIGIN)[0] == 0


def test_compare_and_swap_between_two_handles(tmp_path: Path) -> None:
    a = witness(tmp_path)
    b = witness(tmp_path)  # same database, e.g. a second worker process
    a.cosign(cp_note(4), [], 0)
    b_stale = b.state(ORIGIN)
    assert b_stale[0] == 4
    a.cosign(cp_note(8), consistency_proof(4, LEAVES[:8]), 4)
    # b decided from size 4; its CAS must fail rather than overwrite 8 with 6
    with pytest.raises(WitnessConflictError):
        b._cas(ORIGIN, 4, b_stale[1], 6, root_from_leaf_hashes(LEAVES[:6]), 0)
    assert a.state(ORIGIN) == (8, root_from_leaf_hashes(LEAVES[:8]))
    # the database itself refuses a shrinking update
    import sqlite3

    conn = sqlite3.connect(tmp_path / "w1.example.db")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("UPDATE witness_state SET size = 1")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM witness_state")
    conn.close()


def _cosigned(n: int, witnesses: list[CosignatureSigner], ts: int = 1_700_000_000) -> str:
    note = cp_note(n)
    text = Note.parse(note).text
    return note + "".join(w.cosign(text, ts).line() for w in witnesses)


W = [CosignatureSigner(f"w{i}.example", bytes([i + 1]) * 32) for i in range(4)]


def test_policy_k_of_n() -> None:
    keys = [w.verifier() for w in W[:3]]
    note2 = _cosigned(5, W[:2])
    WitnessPolicy(LOG.verifier(), keys, 2).verify(note2)
    with pytest.raises(
        VerificationError, match="found 2 valid cosignatures of 3 witnesses, quorum is 3"
    ):
        WitnessPolicy(LOG.verifier(), keys, 3).verify(note2)
    # a cosignature from a witness outside the policy does not count
    note_other = _cosigned(5, [W[0], W[3]])
    with pytest.raises(VerificationError, match="found 1 valid"):
        WitnessPolicy(LOG.verifier(), keys, 2).verify(note_other)
    assert WitnessPolicy(LOG.verifier(), keys, 2).open(note2).size == 5


def test_policy_rejects_bad_cosignature_and_log_signature() -> None:
    keys = [w.verifier() for w in W[:3]]
    note = cp_note(5)
    text = Note.parse(note).text
    good = W[0].cosign(text, 1_700_000_000)
    wrong_time = Signature(good.name, good.key_id, struct.pack(">Q", 1_700_000_001) + good.sig[8:])
    with pytest.raises(VerificationError):
        WitnessPolicy(LOG.verifier(), keys, 1).verify(note + wrong_time.line())
    future = Signature(good.name, good.key_id, b"\xff" * 8 + good.sig[8:])
    with pytest.raises(VerificationError, match="2\\^63"):
        WitnessPolicy(LOG.verifier(), keys, 1).verify(note + future.line())
    other_cp = W[0].cosign(Note.parse(cp_note(6)).text, 1_700_000_000)
    with pytest.raises(VerificationError):
        WitnessPolicy(LOG.verifier(), keys, 1).verify(note + other_cp.line())
    # only witness cosignatures, no log signature
    only_w = Note(text, (good,)).to_text()
    with pytest.raises(VerificationError, match="known key"):
        WitnessPolicy(LOG.verifier(), keys, 1).verify(only_w)
    # a note-type (0x01) signature by the witness key does not count as a cosignature
    as_note = NoteSigner("w0.example", bytes([1]) * 32).sign(text)
    with pytest.raises(VerificationError, match="found 0 valid"):
        WitnessPolicy(LOG.verifier(), keys, 1).verify(note + as_note.line())
    # duplicate cosignature line from the same witness is malformed, not counted twice
    with pytest.raises(MalformedError, match="duplicate"):
        WitnessPolicy(LOG.verifier(), keys, 2).verify(note + good.line() + good.line())


def test_policy_construction_checks() -> None:
    keys = [w.verifier() for w in W[:2]]
    with pytest.raises(MalformedError):
        WitnessPolicy(LOG.verifier(), keys, 3)
    with pytest.raises(MalformedError):
        WitnessPolicy(LOG.verifier(), keys, -1)
    # a quorum of 0 would accept a checkpoint no witness cosigned: refused, named
    with pytest.raises(MalformedError, match="quorum must be an integer >= 1, got 0"):
        WitnessPolicy(LOG.verifier(), keys, 0)
    with pytest.raises(MalformedError, match="quorum"):
        WitnessPolicy(LOG.verifier(), [], 0)
    with pytest.raises(MalformedError, match="quorum"):
        WitnessPolicy(LOG.verifier(), keys, True)  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        WitnessPolicy(LOG.verifier(), [keys[0], keys[0]], 1)
    with pytest.raises(MalformedError):
        WitnessPolicy(LOG.verifier(), [LOG.verifier()], 1)  # type: ignore[list-item]


# -- cosignature timestamps -------------------------------------------------------------------


def test_witness_dates_cosignatures_with_its_own_clock(tmp_path: Path) -> None:
    w = witness(tmp_path)
    before = int(time.time())
    sig = w.cosign(cp_note(4), [], 0)
    after = int(time.time())
    assert before <= CosignatureVerifier.timestamp(sig.sig) <= after


def test_witness_refuses_a_chosen_timestamp_beyond_the_skew(tmp_path: Path) -> None:
    w = witness(tmp_path)
    future = int(time.time()) + COSIGNATURE_MAX_SKEW + 60
    with pytest.raises(PolicyError, match="witness w1.example refuses to cosign: "
                                          "cosignature by w1.example is dated"):
        w.cosign(cp_note(4), [], 0, timestamp=future)
    assert w.state(ORIGIN)[0] == 0  # refused before any state change
    with pytest.raises(MalformedError, match="timestamp must be an int"):
        w.cosign(cp_note(4), [], 0, timestamp=True)
    # twins: up to the skew ahead, and any past time, are signed
    w.cosign(cp_note(4), [], 0, timestamp=int(time.time()) + COSIGNATURE_MAX_SKEW)
    w.cosign(cp_note(5), consistency_proof(4, LEAVES[:5]), 4, timestamp=1_600_000_000)
    assert w.state(ORIGIN)[0] == 5


def test_policy_refuses_a_future_cosignature_naming_the_witness() -> None:
    keys = [w.verifier() for w in W[:3]]
    now = int(time.time())
    note = cp_note(5)
    text = Note.parse(note).text
    ok = [W[0].cosign(text, now), W[2].cosign(text, now - 3600)]
    ahead = W[1].cosign(text, now + COSIGNATURE_MAX_SKEW + 300)
    policy = WitnessPolicy(LOG.verifier(), keys, 2)
    policy.verify(note + "".join(s.line() for s in ok))
    with pytest.raises(VerificationError, match="invalid cosignature by w1.example") as ei:
        policy.verify(note + ok[0].line() + ahead.line() + ok[1].line())
    assert ei.value.party == "w1.example"
    # the reference clock is a parameter: checked later, the same cosignature is fine
    policy.verify(note + ok[0].line() + ahead.line(), now=now + COSIGNATURE_MAX_SKEW + 300)
    with pytest.raises(VerificationError, match="w1.example"):
        policy.open(note + ok[0].line() + ahead.line(), now=now)
    # exactly at the skew: accepted
    at = W[1].cosign(text, now + COSIGNATURE_MAX_SKEW)
    assert policy.open(note + ok[0].line() + at.line(), now=now).size == 5


def test_store_refuses_a_future_cosignature(tmp_path: Path) -> None:
    from statledger.ledger.store import LedgerStore

    s = LedgerStore(tmp_path / "log.db", ORIGIN, bytes(range(32)))
    ws = [Witness(tmp_path / f"w{i}.db", f"w{i}.example", bytes([i + 1]) * 32,
                  [s.log_verifier]) for i in range(2)]
    s.witnesses = tuple(w.verifier() for w in ws)
    s.append("k", b"x")
    note = s.sign_checkpoint()
    text = Note.parse(note).text
    ahead = ws[1].signer.cosign(text, int(time.time()) + COSIGNATURE_MAX_SKEW + 300)
    with pytest.raises(VerificationError, match="cosignature by w1.example is dated"):
        s.add_cosignature(note + ahead.line())
    assert s.add_cosignature(note + ws[0].cosign(note, [], 0).line()) == 1
