"""C2SP signed-note and tlog-checkpoint: known answer, round trips, malformed notes."""

from __future__ import annotations

import base64

import pytest

from statledger.ledger.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from statledger.ledger.merkle import EMPTY_ROOT
from statledger.ledger.note import (
    COSIGNATURE_MAX_SKEW,
    MAX_SIGNATURES,
    CosignatureVerifier,
    Note,
    NoteSigner,
    NoteVerifier,
    QuorumError,
    Signature,
    check_cosignature_time,
    check_quorum,
    key_id,
    open_note,
    parse_vkey,
    sign_note,
    verify_quorum,
)
from statledger.ledger.witness import CosignatureSigner
from statledger.proofs.errors import MalformedError, VerificationError

# Known answer from the Go sumdb/note package documentation (also used by C2SP tooling).
KAT_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
KAT_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3"
    "mFXmRKuwHjG1Yu72IneyaQM=\n"
)

SIGNER = NoteSigner("log.example/a", bytes(range(32)))
OTHER = NoteSigner("log.example/a", bytes(range(1, 33)))  # same name, other key


def test_known_answer_verifies() -> None:
    v = NoteVerifier.from_vkey(KAT_VKEY)
    assert v.vkey() == KAT_VKEY
    assert v.key_id.hex() == "530d903a"
    note, names = open_note(KAT_NOTE, [v])
    assert note.text == "This is an example message.\n" and names == ["example.com/foo"]
    assert note.to_text() == KAT_NOTE


def test_known_answer_twins() -> None:
    v = NoteVerifier.from_vkey(KAT_VKEY)
    with pytest.raises(VerificationError, match="invalid signature"):
        open_note(KAT_NOTE.replace("example message", "example massage"), [v])
    raw = base64.b64decode(KAT_NOTE.split(" ")[-1])
    for pos in (4, 30, 67):
        bad = bytearray(raw)
        bad[pos] ^= 1
        forged = KAT_NOTE.replace(KAT_NOTE.split(" ")[-1], base64.b64encode(bad).decode() + "\n")
        with pytest.raises(VerificationError):
            open_note(forged, [v])


def test_key_id_rule() -> None:
    import hashlib

    pub = SIGNER.public_key
    want = hashlib.sha256(b"log.example/a\n\x01" + pub).digest()[:4]
    assert key_id("log.example/a", 1, pub) == want == SIGNER.key_id
    name, got = parse_vkey(SIGNER.vkey(), 1)
    assert (name, got) == ("log.example/a", pub)
    assert NoteSigner.from_skey(SIGNER.skey()).vkey() == SIGNER.vkey()


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "log.example/a+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
        "log.example/a+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2kAA==",
        "example.com/foo+530d903",
        "example com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "example.com/fo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    ],
)
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(MalformedError):
        NoteVerifier.from_vkey(vkey)


def test_cosignature_vkey_type_is_not_a_note_key() -> None:
    raw = base64.b64encode(b"\x04" + SIGNER.public_key).decode()
    kid = key_id(SIGNER.name, 4, SIGNER.public_key).hex()
    with pytest.raises(MalformedError, match="type byte 0x01"):
        NoteVerifier.from_vkey(f"{SIGNER.name}+{kid}+{raw}")


def _good() -> str:
    return sign_note("hello\nworld\n", [SIGNER])


def test_round_trip_and_multiple_signers() -> None:
    other = NoteSigner("other.example/b", bytes(32))
    text = sign_note("a\n\nb\n", [SIGNER, other])  # text may contain a blank line
    note, names = open_note(text, [SIGNER.verifier(), other.verifier()])
    assert note.text == "a\n\nb\n" and names == ["log.example/a", "other.example/b"]
    assert Note.parse(text).to_text() == text
    # unknown signatures are ignored
    open_note(text, [SIGNER.verifier()])


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda s: s.replace("hello", "hel\x01lo"), "control character"),
        (lambda s: s.replace("hello", "hel\rlo"), "control character"),
        (lambda s: s.replace("hello", "hel\tlo"), "control character"),
        (lambda s: s + "garbage", "newline"),
        (lambda s: s + "garbage\n", "em dash"),
        (lambda s: s + "\n", "em dash|no signature"),
        (lambda s: s[:-1], "newline"),
        (lambda s: s.replace("world\n\n", "world\n"), "blank line|em dash"),
        (lambda s: s.replace("\u2014 ", "-- "), "em dash"),
        (lambda s: s.replace("\u2014 ", "\u2014"), "em dash"),
        (lambda s: s.replace("log.example/a ", "log.example/a  "), "name"),
        (lambda s: s.replace("log.example/a ", "log+example/a "), "space or"),
        (lambda s: s[:-3] + "!=\n", "base64"),
        (lambda s: s[:-2] + "\n", "base64"),
        (lambda s: s.replace(s.split(" ")[-1], "AAAA\n"), "too short"),
        (lambda s: s + s.split("\n\n")[1], "duplicate"),
        (lambda s: "\n" + s.split("\n\n")[1], "note text|blank line"),
        (lambda s: s.split("\n\n")[0] + "\n", "blank line"),
    ],
)
def test_malformed_notes(mutate, match) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(_good())
    with pytest.raises(MalformedError, match=match):
        Note.parse(bad)


def test_non_canonical_base64_and_utf8() -> None:
    good = _good()
    blob = good.split(" ")[-1].strip()
    raw = base64.b64decode(blob)
    # same bytes, but with non-zero padding bits -> not canonical
    noncanon = blob[:-2] + chr(ord(blob[-2]) + 1) + "="
    assert base64.b64decode(noncanon) == raw
    with pytest.raises(MalformedError, match="non-canonical"):
        Note.parse(good.replace(blob, noncanon))
    with pytest.raises(MalformedError, match="UTF-8"):
        Note.parse(good.encode().replace(b"hello", b"h\xffllo"))
    with pytest.raises(MalformedError, match="UTF-8"):
        Note.parse("hel\ud800lo\n\n" + good.split("\n\n")[1])


def test_unknown_key_and_bad_known_signature() -> None:
    good = _good()
    with pytest.raises(VerificationError, match="no signature from a known key"):
        open_note(good, [OTHER.verifier()])  # same name, different key id
    with pytest.raises(VerificationError, match="no signature from a known key"):
        open_note(good, [NoteSigner("x.example/other", bytes(range(32))).verifier()])
    with pytest.raises(VerificationError, match="no signature from a known key"):
        open_note(good, [])
    forged = Note("hello\nworld\n", (Signature(SIGNER.name, SIGNER.key_id, bytes(64)),)).to_text()
    with pytest.raises(VerificationError, match="invalid signature"):
        open_note(forged, [SIGNER.verifier()])
    short = Note("hello\nworld\n", (Signature(SIGNER.name, SIGNER.key_id, bytes(63)),)).to_text()
    with pytest.raises(VerificationError, match="63 bytes"):
        open_note(short, [SIGNER.verifier()])


def test_too_many_signatures() -> None:
    sigs = tuple(Signature(f"k{i}.example", b"\0\0\0\1", bytes(64)) for i in range(MAX_SIGNATURES))
    Note.parse(Note("t\n", sigs).to_text())
    more = (*sigs, Signature("one-more.example", b"\0\0\0\1", bytes(64)))
    with pytest.raises(MalformedError, match="limit"):
        Note.parse(Note("t\n", more).to_text())


def test_signer_refuses_bad_text() -> None:
    for text in ["", "no newline", "ctrl\x00\n"]:
        with pytest.raises(MalformedError):
            SIGNER.sign(text)


# -- checkpoints ----------------------------------------------------------------------------

ROOT = bytes(range(32))


def test_checkpoint_round_trip() -> None:
    cp = Checkpoint("log.example/a", 20852163, ROOT)
    assert cp.body() == "log.example/a\n20852163\n" + base64.b64encode(ROOT).decode() + "\n"
    assert Checkpoint.parse(cp.body()) == cp
    ext = Checkpoint("log.example/a", 0, EMPTY_ROOT, ("ext line",))
    assert Checkpoint.parse(ext.body()) == ext
    note = sign_checkpoint(cp, SIGNER)
    got, parsed = open_checkpoint(note, SIGNER.verifier())
    assert got == cp and parsed.text == cp.body()


@pytest.mark.parametrize(
    "body,match",
    [
        ("log.example/a\n01\n{r}\n", "canonical decimal"),
        ("log.example/a\n-1\n{r}\n", "canonical decimal"),
        ("log.example/a\n+1\n{r}\n", "canonical decimal"),
        ("log.example/a\n1 \n{r}\n", "canonical decimal"),
        ("log.example/a\n18446744073709551616\n{r}\n", "out of range"),
        ("log.example/a\n1\n{r}", "newline"),
        ("log.example/a\n1\n", "at least 3"),
        ("\n1\n{r}\n", "origin"),
        ("log example\n1\n{r}\n", "origin"),
        ("log.example/a\n1\n{short}\n", "32"),
        ("log.example/a\n1\n{r}\n\n", "extension"),
        ("log.example/a\n1\n{r}=\n", "base64"),
    ],
)
def test_malformed_checkpoints(body: str, match: str) -> None:
    r = base64.b64encode(ROOT).decode()
    short = base64.b64encode(ROOT[:31]).decode()
    with pytest.raises(MalformedError, match=match):
        Checkpoint.parse(body.format(r=r, short=short))


def test_checkpoint_wrong_origin_and_key() -> None:
    note = sign_checkpoint(Checkpoint("log.example/a", 3, ROOT), SIGNER)
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, SIGNER.verifier(), origin="log.example/b")
    with pytest.raises(VerificationError):
        open_checkpoint(note, OTHER.verifier())
    tampered = note.replace("\n3\n", "\n4\n")
    with pytest.raises(VerificationError):
        open_checkpoint(tampered, SIGNER.verifier())


# -- the one quorum rule (verify_quorum): open_note, witness policies and step 7 use it ------

A3 = [NoteSigner(f"w{i}.example", bytes([i + 7]) * 32) for i in range(3)]


def _signed_by(signers: list[NoteSigner]) -> Note:
    return Note.parse(sign_note("checkpoint\n", signers))


def test_quorum_met_returns_the_names() -> None:
    keys = [s.verifier() for s in A3]
    assert verify_quorum(_signed_by(A3[:2]), keys, 2, step="s") == ["w0.example", "w1.example"]
    assert verify_quorum(_signed_by(A3), keys, 1, step="s") == [s.name for s in A3]
    # a signer outside the key list is ignored, not counted
    stranger = NoteSigner("x.example", bytes(32))
    assert verify_quorum(_signed_by([A3[0], stranger]), keys, 1, step="s") == ["w0.example"]


def test_quorum_reject_twins() -> None:
    keys = [s.verifier() for s in A3]
    # one short of the quorum: QuorumError (a VerificationError) naming step, party, count
    with pytest.raises(QuorumError, match="found 2 valid signatures of 3 known keys, quorum "
                                          "is 3") as ei:
        verify_quorum(_signed_by(A3[:2]), keys, 3, step="step 7", party="ledger")
    assert ei.value.step == "step 7" and ei.value.party == "ledger"
    assert ei.value.valid == ("w0.example", "w1.example") and ei.value.quorum == 3
    with pytest.raises(QuorumError, match="no signature from a known key"):
        verify_quorum(_signed_by([NoteSigner("x.example", bytes(32))]), keys, 1, step="s")
    # a bad signature by a known key is an error of its own, blaming that key
    good = _signed_by(A3[:2])
    bad = Signature(good.signatures[1].name, good.signatures[1].key_id,
                    bytes([good.signatures[1].sig[0] ^ 1]) + good.signatures[1].sig[1:])
    forged = Note(good.text, (good.signatures[0], bad))
    with pytest.raises(VerificationError, match="invalid signature by w1.example") as ev:
        verify_quorum(forged, keys, 1, step="step 7", party="ledger")
    assert not isinstance(ev.value, QuorumError) and ev.value.party == "w1.example"


@pytest.mark.parametrize("quorum", [0, -1, True, 1.0, "1", None])
def test_quorum_below_one_is_refused(quorum: object) -> None:
    """A quorum of 0 would accept a note nobody signed: refused by name, everywhere."""
    keys = [s.verifier() for s in A3]
    with pytest.raises(MalformedError, match="quorum must be an integer >= 1"):
        verify_quorum(_signed_by(A3), keys, quorum, step="s")  # type: ignore[arg-type]
    with pytest.raises(MalformedError, match="witness_quorum must be an integer >= 1"):
        check_quorum(quorum, what="witness_quorum")


def test_quorum_above_the_keys_is_refused() -> None:
    assert check_quorum(3, 3) == 3
    with pytest.raises(MalformedError, match="quorum must be in 1..3"):
        check_quorum(4, 3)


# -- cosignature timestamps against a stated skew ---------------------------------------------

T = 1_800_000_000  # the reference clock of these tests


COSIGNERS = [CosignatureSigner(f"cw{i}.example", bytes([40 + i]) * 32) for i in range(3)]


def _cosigned(stamps: list[int]) -> tuple[Note, list[CosignatureVerifier]]:
    """A checkpoint-like note signed by the log, cosigned by witness i at ``stamps[i]``."""
    note = _signed_by([SIGNER])
    sigs = tuple(w.cosign(note.text, t) for w, t in zip(COSIGNERS, stamps, strict=False))
    return Note(note.text, note.signatures + sigs), [w.verifier() for w in COSIGNERS]


def test_cosignature_skew_is_stated() -> None:
    assert COSIGNATURE_MAX_SKEW == 600


@pytest.mark.parametrize("delta", [COSIGNATURE_MAX_SKEW, 1, 0, -1, -86_400 * 365 * 5])
def test_cosignature_time_accepted(delta: int) -> None:
    """Up to the skew into the future, and any past timestamp (an old certificate)."""
    check_cosignature_time(T + delta, "cw0.example", now=T)
    check_cosignature_time(0, "cw0.example", now=T)


@pytest.mark.parametrize("delta", [COSIGNATURE_MAX_SKEW + 1, 3600, 1 << 40])
def test_cosignature_time_future_beyond_skew_rejected(delta: int) -> None:
    with pytest.raises(VerificationError, match="cosignature by cw0.example is dated") as ei:
        check_cosignature_time(T + delta, "cw0.example", now=T)
    assert ei.value.party == "cw0.example" and ei.value.step == "cosignature"
    assert f"{COSIGNATURE_MAX_SKEW} s" in ei.value.reason


def test_cosignature_time_default_clock_is_now() -> None:
    import time

    check_cosignature_time(int(time.time()), "cw0.example")
    with pytest.raises(VerificationError, match="into the future"):
        check_cosignature_time(int(time.time()) + COSIGNATURE_MAX_SKEW + 120, "cw0.example")


def test_quorum_cosignature_exactly_at_skew_accepted() -> None:
    note, keys = _cosigned([T + COSIGNATURE_MAX_SKEW, T, T - 10])
    names = verify_quorum(note, keys, 3, step="step 7", party="ledger", kind="cosignature",
                          now=T)
    assert names == ["cw0.example", "cw1.example", "cw2.example"]


def test_quorum_cosignature_future_beyond_skew_rejected_naming_the_witness() -> None:
    note, keys = _cosigned([T, T + COSIGNATURE_MAX_SKEW + 1, T])
    with pytest.raises(VerificationError, match="invalid cosignature by cw1.example: "
                                                "cosignature by cw1.example is dated") as ei:
        verify_quorum(note, keys, 1, step="step 7", party="ledger", kind="cosignature",
                      now=T)
    assert not isinstance(ei.value, QuorumError)
    assert ei.value.party == "cw1.example" and ei.value.step == "step 7"
    # twin: checked later (the witness's clock was only ahead of ours), the same note passes
    verify_quorum(note, keys, 3, step="step 7", kind="cosignature", now=T + 1)
    # the direct verifier applies the same rule
    sig = next(s for s in note.signatures if s.name == "cw1.example")
    with pytest.raises(VerificationError, match="cw1.example"):
        keys[1].verify(note.text.encode(), sig.sig, now=T)
    keys[1].verify(note.text.encode(), sig.sig, now=T + 1)


def test_quorum_cosignature_default_clock_rejects_the_future() -> None:
    import time

    future = int(time.time()) + 10 * COSIGNATURE_MAX_SKEW
    note, keys = _cosigned([future])
    with pytest.raises(VerificationError, match="into the future"):
        verify_quorum(note, keys[:1], 1, step="s", kind="cosignature")
    # an unknown witness's future cosignature is ignored like any unknown key
    with pytest.raises(QuorumError, match="no cosignature from a known key"):
        verify_quorum(note, keys[1:], 1, step="s", kind="cosignature")


def test_quorum_old_cosignatures_accepted_years_later() -> None:
    note, keys = _cosigned([1_700_000_000, 1_600_000_000, 0])
    assert len(verify_quorum(note, keys, 3, step="s", kind="cosignature")) == 3
    assert len(verify_quorum(note, keys, 3, step="s", kind="cosignature",
                             now=T + 10**9)) == 3


@pytest.mark.parametrize("bit", [0, 1, 8, 31, 40, 62])
def test_cosignature_timestamp_bit_flip_rejected_by_signature(bit: int) -> None:
    """A flipped timestamp bit is refused by the signature, whether the new time is past,
    within the skew or far in the future (the signature is checked before the time)."""
    note, keys = _cosigned([T])
    good = note.signatures[1]
    stamp = int.from_bytes(good.sig[:8], "big") ^ (1 << bit)
    bad = Signature(good.name, good.key_id, stamp.to_bytes(8, "big") + good.sig[8:])
    forged = Note(note.text, (note.signatures[0], bad))
    with pytest.raises(VerificationError, match="invalid signature by cw0.example") as ei:
        verify_quorum(forged, keys[:1], 1, step="step 7", kind="cosignature", now=T)
    assert ei.value.party == "cw0.example"
    verify_quorum(note, keys[:1], 1, step="step 7", kind="cosignature", now=T)  # twin
