"""Hypothesis: entries round-trip for arbitrary valid fields; any byte change is caught."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.proofs.signatures import SigningKey
from statledger.protocol import entries as E

KEY = SigningKey.from_bytes(b"\x07" * 32)
VK = KEY.public_key()
QID = "ab" * 32
PTS = [base_mul(Scalar(k)).to_bytes().hex() for k in range(1, 6)] + ["00" * 33]

party_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True)
hexes = st.binary(min_size=1, max_size=64).map(bytes.hex)
SET = settings(max_examples=60, deadline=None)


@st.composite
def entries(draw: st.DrawFn) -> E.Entry:
    kind = draw(st.sampled_from(["submission", "noise_commit", "noise_coin", "aggregate",
                                 "result", "endorsement",
                                 "decryption", "setup", *E.DKG_KINDS]))
    pid = draw(party_ids)
    if kind == "submission":
        return E.SubmissionEntry(QID, pid, draw(hexes))
    if kind == "noise_commit":
        params = {k: draw(st.integers(0, 10**6)) for k in
                  ("n_nodes", "threshold", "entries", "summands", "summand_bits",
                   "uniform_bits")}  # a JSON object: the codec does not check its values
        return E.NoiseCommitEntry(QID, pid, draw(hexes), params)
    if kind == "noise_coin":
        return E.NoiseCoinEntry(QID, pid, draw(st.sampled_from(PTS[:-1])), "11" * 64)
    if kind == "endorsement":
        return E.EndorsementEntry(QID, pid, draw(st.binary(min_size=32, max_size=32)).hex())
    if kind == "decryption":
        shares = tuple(draw(st.lists(st.sampled_from(PTS), min_size=1, max_size=4)))
        return E.DecryptionEntry(QID, pid, shares, "11" * 64)
    if kind == "result":
        totals = draw(st.lists(st.integers(-(2**200), 2**200), min_size=1, max_size=5))
        res = draw(st.dictionaries(st.text(max_size=5), st.integers(-(2**53) + 1, 2**53 - 1) |
                                   st.text(max_size=5) | st.booleans(), max_size=4))
        decryptors = draw(st.sets(party_ids, min_size=1, max_size=4))
        return E.ResultEntry.for_totals(QID, totals, res, list(decryptors))
    if kind == "setup":
        compute = sorted(draw(st.sets(party_ids, min_size=1, max_size=5)))
        keys = tuple(draw(st.sampled_from(PTS[:-1])) for _ in compute)
        return E.SetupEntry(QID, tuple(compute), draw(st.integers(1, len(compute))),
                            draw(st.sampled_from(PTS[:-1])), keys)
    if kind in E.DKG_KINDS:
        return E.KINDS[kind](pid, draw(hexes))  # type: ignore[call-arg]
    idx = sorted(draw(st.sets(st.integers(0, 2**53 - 1), min_size=2, max_size=8)))
    cut = draw(st.integers(1, len(idx) - 1))
    cts = tuple(draw(st.lists(st.sampled_from(PTS), min_size=2, max_size=6, unique=False)))
    pairs = tuple(a + b for a, b in zip(cts[::2], cts[1::2], strict=False)) or (PTS[0] * 2,)
    return E.AggregateEntry(QID, tuple(idx[:cut]), tuple(idx[cut:]), pairs)


@SET
@given(entries())
def test_round_trip(e):
    s = E.sign(e, KEY)
    data = s.to_bytes()
    back = E.Entry.from_bytes(data)
    assert back == s and back.to_bytes() == data
    E.verify_signature(back, VK, "p")


@SET
@given(entries(), st.data())
def test_any_byte_change_is_caught(e, data):
    s = E.sign(e, KEY)
    raw = bytearray(s.to_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    raw[pos] = new
    try:
        back = E.Entry.from_bytes(bytes(raw))
    except MalformedError:
        return
    try:
        E.verify_signature(back, VK, "p")
    except VerificationError:
        return
    raise AssertionError("a modified entry decoded and verified")
