"""Bad input never crashes the ledger parsers: random mutations of valid notes, checkpoints,
verifier keys and proof bundles either parse (and then round-trip exactly) or raise
MalformedError -- never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.ledger.bundle import ProofBundle
from statledger.ledger.checkpoint import Checkpoint, sign_checkpoint
from statledger.ledger.merkle import inclusion_proof, leaf_hash, root_from_leaf_hashes
from statledger.ledger.note import Note, NoteSigner, NoteVerifier, open_note
from statledger.ledger.witness import CosignatureSigner
from statledger.proofs.errors import MalformedError, VerificationError

LOG = NoteSigner("fuzz.example/log", bytes(range(32)))
W = CosignatureSigner("w.example", bytes(32))
LEAVES = [leaf_hash(b"%d" % i) for i in range(11)]
CP = Checkpoint("fuzz.example/log", 11, root_from_leaf_hashes(LEAVES))
NOTE = sign_checkpoint(CP, LOG)
NOTE_W = NOTE + W.cosign(CP.body(), 1_700_000_000).line()
BUNDLE = ProofBundle(4, b"4", tuple(inclusion_proof(4, LEAVES)), NOTE_W)
TEXTS = [NOTE, NOTE_W, BUNDLE.to_text(), BUNDLE.to_json(), LOG.vkey(), W.vkey()]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(TEXTS))
    raw = bytearray(base.encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "insert":
            raw.insert(pos, draw(st.sampled_from(b"\n \x00\x7f=+-A\xe2\x80\x94")))
        elif op == "delete" and raw:
            del raw[pos]
        else:
            del raw[pos:]
    return raw.decode("utf-8", errors="replace")


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_parsers_never_crash(text: str) -> None:
    for parse in (Note.parse, ProofBundle.from_text, ProofBundle.from_json, NoteVerifier.from_vkey):
        try:
            got = parse(text)  # type: ignore[operator]
        except MalformedError:
            continue
        if isinstance(got, Note):
            assert got.to_text() == text
            try:
                open_note(got, [LOG.verifier()])
            except VerificationError:
                pass
            try:
                Checkpoint.parse(got.text)
            except MalformedError:
                pass
        elif isinstance(got, ProofBundle) and parse is ProofBundle.from_text:
            assert got.to_text() == text
