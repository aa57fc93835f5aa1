"""Request signing (statledger.nodes.auth): accept once, and a reject twin for every field."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.nodes import auth
from statledger.nodes.auth import (
    HEADER_NONCE,
    HEADER_PARTY,
    HEADER_SIGNATURE,
    HEADER_TIME,
    AuthError,
    NonceStore,
    ReplayError,
    sign_request,
    signing_payload,
    verify_request,
)
from statledger.proofs.errors import MalformedError
from statledger.proofs.signatures import SigningKey

NOW = 1_700_000_000
SK_A = SigningKey.from_bytes(bytes(range(32)))
SK_B = SigningKey.from_bytes(bytes(range(1, 33)))
KEYS = {"alice": SK_A.public_key(), "bob": SK_B.public_key()}
BODY = b'{"x": 1}'
TARGET = "/v1/entries?start=0&end=5"
ME = "ledger"  # the verifying service's party id (the requests' recipient)


def lookup(pid: str):
    return KEYS.get(pid)


def signed(**kw):
    args = {"now": NOW, "nonce": "00" * 16}
    args.update(kw)
    return sign_request(SK_A, "alice", "POST", TARGET, BODY, recipient=ME, **args)


def check(headers, method="POST", target=TARGET, body=BODY, now=NOW):
    return verify_request(headers, method, target, body, lookup, recipient=ME, now=now)


def test_accept():
    party, nonce, ts = check(signed())
    assert (party, nonce, ts) == ("alice", "00" * 16, NOW)


def test_payload_layout_is_pinned():
    p = signing_payload("POST", "/a?b=c", b"xyz", "12", "ab" * 16, sender="alice",
                        recipient="ledger")
    expected = (
        b"statledger/http/v2\nalice\nledger\nPOST\n/a?b=c\n"
        + hashlib.sha256(b"xyz").hexdigest().encode()
        + b"\n12\n"
        + b"ab" * 16
    )
    assert p == expected


def test_random_nonce_and_current_time():
    h1 = sign_request(SK_A, "alice", "GET", "/x", b"", recipient=ME)
    h2 = sign_request(SK_A, "alice", "GET", "/x", b"", recipient=ME)
    assert h1[HEADER_NONCE] != h2[HEADER_NONCE]
    assert len(h1[HEADER_NONCE]) == 32
    verify_request(h1, "GET", "/x", b"", lookup, recipient=ME)


@pytest.mark.parametrize(
    "what,mutate",
    [
        ("other known party", lambda h: h.update({HEADER_PARTY: "bob"})),
        ("unknown party", lambda h: h.update({HEADER_PARTY: "mallory"})),
        ("time +1", lambda h: h.update({HEADER_TIME: str(NOW + 1)})),
        ("time leading zero", lambda h: h.update({HEADER_TIME: "0" + str(NOW)})),
        ("time negative", lambda h: h.update({HEADER_TIME: "-" + str(NOW)})),
        ("nonce changed", lambda h: h.update({HEADER_NONCE: "01" + "00" * 15})),
        ("nonce uppercase", lambda h: h.update({HEADER_NONCE: "AB" * 16})),
        ("nonce short", lambda h: h.update({HEADER_NONCE: "00" * 15})),
        ("nonce long", lambda h: h.update({HEADER_NONCE: "00" * 17})),
        ("sig bit flip", lambda h: h.update(
            {HEADER_SIGNATURE: format(int(h[HEADER_SIGNATURE][:2], 16) ^ 1, "02x")
             + h[HEADER_SIGNATURE][2:]})),
        ("sig last bit flip", lambda h: h.update(
            {HEADER_SIGNATURE: h[HEADER_SIGNATURE][:-2]
             + format(int(h[HEADER_SIGNATURE][-2:], 16) ^ 0x80, "02x")})),
        ("sig truncated", lambda h: h.update({HEADER_SIGNATURE: h[HEADER_SIGNATURE][:-2]})),
        ("sig trailing garbage",
         lambda h: h.update({HEADER_SIGNATURE: h[HEADER_SIGNATURE] + "00"})),
        ("sig uppercase", lambda h: h.update({HEADER_SIGNATURE: h[HEADER_SIGNATURE].upper()})),
        ("sig of bob", lambda h: h.update(
            {HEADER_SIGNATURE: sign_request(SK_B, "alice", "POST", TARGET, BODY, recipient=ME,
                                            now=NOW, nonce="00" * 16)[HEADER_SIGNATURE]})),
        ("missing party", lambda h: h.pop(HEADER_PARTY)),
        ("missing time", lambda h: h.pop(HEADER_TIME)),
        ("missing nonce", lambda h: h.pop(HEADER_NONCE)),
        ("missing signature", lambda h: h.pop(HEADER_SIGNATURE)),
        ("party with space", lambda h: h.update({HEADER_PARTY: "ali ce"})),
    ],
)
def test_reject_header_twins(what, mutate):
    h = signed()
    mutate(h)
    with pytest.raises(AuthError) as info:
        check(h)
    assert info.value.status == 401


@pytest.mark.parametrize(
    "method,target,body",
    [
        ("PUT", TARGET, BODY),
        ("GET", TARGET, BODY),
        ("POST", "/v1/entries?start=0&end=6", BODY),
        ("POST", "/v1/entries", BODY),
        ("POST", "/v1/entries?end=5&start=0", BODY),
        ("POST", TARGET + "&x=1", BODY),
        ("POST", TARGET, BODY + b" "),
        ("POST", TARGET, BODY[:-1]),
        ("POST", TARGET, b""),
        ("POST", TARGET, b"X" + BODY),
        ("POST", TARGET, b'{"x": 2}'),
    ],
)
def test_reject_request_twins(method, target, body):
    with pytest.raises(AuthError, match="bad request signature"):
        check(signed(), method=method, target=target, body=body)


@pytest.mark.parametrize("delta,ok", [(0, True), (300, True), (-300, True), (301, False),
                                      (-301, False), (10_000, False), (-10_000, False)])
def test_time_window(delta, ok):
    h = signed(now=NOW + delta)
    if ok:
        check(h)
    else:
        with pytest.raises(AuthError, match="window"):
            check(h)


def test_unknown_party_message():
    h = sign_request(SK_A, "carol", "POST", TARGET, BODY, recipient=ME, now=NOW)
    with pytest.raises(AuthError, match="unknown party 'carol'"):
        check(h)


def test_sign_rejects_bad_inputs():
    with pytest.raises(MalformedError):
        sign_request(SK_A, "bad party", "GET", "/x", b"", recipient=ME)
    with pytest.raises(MalformedError):
        sign_request(SK_A, "alice", "GET", "relative/path", b"", recipient=ME)
    with pytest.raises(MalformedError):
        sign_request(SK_A, "alice", "GET", "/x y", b"", recipient=ME)
    with pytest.raises(MalformedError):
        sign_request(SK_A, "alice", "GET", "/x", b"", nonce="zz" * 16, recipient=ME)


def test_nonce_store_replay_and_prune(tmp_path):
    store = NonceStore(tmp_path / "n.sqlite", retain=600)
    store.check_and_store("alice", "00" * 16, NOW, now=NOW)
    with pytest.raises(ReplayError) as info:
        store.check_and_store("alice", "00" * 16, NOW, now=NOW)
    assert info.value.status == 409
    store.check_and_store("bob", "00" * 16, NOW, now=NOW)  # per party
    store.check_and_store("alice", "01" * 16, NOW, now=NOW)
    assert len(store) == 3
    assert store.prune(now=NOW + 601) == 3
    assert len(store) == 0
    store.close()
    # persisted across reopen
    s2 = NonceStore(tmp_path / "n.sqlite")
    s2.check_and_store("alice", "02" * 16, NOW, now=NOW)
    s2.close()
    s3 = NonceStore(tmp_path / "n.sqlite")
    with pytest.raises(ReplayError):
        s3.check_and_store("alice", "02" * 16, NOW, now=NOW)
    s3.close()


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=200), flip=st.integers(min_value=0, max_value=8 * 200 - 1))
def test_property_any_body_change_rejected(body, flip):
    h = sign_request(SK_A, "alice", "POST", "/p", body, recipient=ME, now=NOW)
    verify_request(h, "POST", "/p", body, lookup, recipient=ME, now=NOW)
    if not body:
        other = b"\x00"
    else:
        i = (flip // 8) % len(body)
        b = bytearray(body)
        b[i] ^= 1 << (flip % 8)
        other = bytes(b)
    with pytest.raises(AuthError):
        verify_request(h, "POST", "/p", other, lookup, recipient=ME, now=NOW)


def test_module_constants():
    assert auth.TIME_WINDOW == 300
    assert auth.DOMAIN == b"statledger/http/v2\n"
