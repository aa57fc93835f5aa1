"""statledger.proofs.signatures: Ed25519 sign/verify, RFC 8032 test 1, bit flips rejected, strict
sizes."""

from __future__ import annotations

import pytest

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey, VerifyKey

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
L = 2**252 + 27742317777372353535851937790883648493
P25519 = 2**255 - 19


def test_rfc8032_test1() -> None:
    sk = SigningKey.from_bytes(RFC_SEED)
    assert sk.public_key().to_bytes() == RFC_PUB
    assert sk.sign(b"") == RFC_SIG
    VerifyKey.from_bytes(RFC_PUB).verify(b"", RFC_SIG)
    with pytest.raises(VerificationError):
        VerifyKey.from_bytes(RFC_PUB).verify(b"\x00", RFC_SIG)


def test_sign_verify_roundtrip() -> None:
    sk = SigningKey.generate()
    vk = sk.public_key()
    msg = b"statledger/entry/v1\n{}"
    sig = sk.sign(msg)
    assert len(sig) == 64
    assert vk.verify(msg, sig) is None
    assert VerifyKey.from_bytes(vk.to_bytes()) == vk
    assert SigningKey.from_bytes(sk.to_bytes()).public_key() == vk
    assert SigningKey.generate().public_key() != vk
    assert "secret" in repr(sk) and sk.to_bytes().hex() not in repr(sk)


def test_every_bit_flip_rejected() -> None:
    sk = SigningKey.generate()
    vk = sk.public_key()
    msg = b"result digest 0123"
    sig = sk.sign(msg)
    for i in range(len(sig) * 8):
        bad = bytearray(sig)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(VerificationError, match="party p7"):
            vk.verify(msg, bytes(bad), party="p7")
    for i in range(len(msg) * 8):
        bad = bytearray(msg)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(VerificationError):
            vk.verify(bytes(bad), sig)
    raw = vk.to_bytes()
    for i in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[i // 8] ^= 1 << (i % 8)
        try:
            other = VerifyKey.from_bytes(bytes(bad))
        except MalformedError:
            continue
        with pytest.raises(VerificationError):
            other.verify(msg, sig)


def test_truncation_extension_and_swaps_rejected() -> None:
    sk = SigningKey.generate()
    vk = sk.public_key()
    msg = b"m"
    sig = sk.sign(msg)
    for bad in (sig[:-1], sig + b"\x00", b"\x00" + sig, b"", sig[:32]):
        with pytest.raises(MalformedError):
            vk.verify(msg, bad)
    with pytest.raises(VerificationError):
        vk.verify(msg, sig[32:] + sig[:32])  # R and S swapped
    with pytest.raises(VerificationError):
        vk.verify(msg + b"\x00", sig)  # trailing garbage on message
    with pytest.raises(VerificationError):
        SigningKey.generate().public_key().verify(msg, sig)  # wrong key
    with pytest.raises(VerificationError):
        vk.verify(msg, sk.sign(b"other"))  # signature of another message


def test_s_not_reduced_rejected() -> None:
    sk = SigningKey.generate()
    sig = sk.sign(b"m")
    s = int.from_bytes(sig[32:], "little") + L
    if s < 2**256:
        with pytest.raises(VerificationError):
            sk.public_key().verify(b"m", sig[:32] + s.to_bytes(32, "little"))


@pytest.mark.parametrize("s_value", [L, L + 1, 2**253, 2**256 - 1])
def test_s_at_or_above_l_rejected_by_our_check(s_value: int) -> None:
    # pycryptodome alone only rejects S > L; S = L (a second encoding of S = 0) must fail too,
    # by our explicit check (its message), for signatures and for the log's signed notes.
    sk = SigningKey.generate()
    sig = sk.sign(b"m")
    forged = sig[:32] + s_value.to_bytes(32, "little")
    with pytest.raises(VerificationError, match=r"S >= L"):
        sk.public_key().verify(b"m", forged)


def test_note_signatures_go_through_the_same_check() -> None:
    from statledger.ledger.note import NoteSigner

    signer = NoteSigner("example.org/log", bytes(range(32)))
    sig = signer._ed25519(b"text\n")
    signer.verifier()._ed25519_verify(b"text\n", sig)
    with pytest.raises(VerificationError, match="invalid signature"):
        signer.verifier()._ed25519_verify(b"text\n", sig[:32] + L.to_bytes(32, "little"))


@pytest.mark.parametrize("n", [0, 1, 31, 33, 64])
def test_wrong_sizes_malformed(n: int) -> None:
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes(bytes(n))
    with pytest.raises(MalformedError):
        SigningKey.from_bytes(bytes(n))


def test_bad_public_keys_malformed() -> None:
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes(P25519.to_bytes(32, "little"))  # y = p, non-canonical
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes((1).to_bytes(32, "little"))  # identity: small order
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes((P25519 - 1).to_bytes(32, "little"))  # (0, -1): order 2
    with pytest.raises(MalformedError):
        VerifyKey.from_bytes("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VerifyKey()
    with pytest.raises(TypeError):
        SigningKey()


def test_wrong_types() -> None:
    sk = SigningKey.generate()
    with pytest.raises(TypeError):
        sk.sign("text")  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        sk.public_key().verify("text", sk.sign(b"text"))  # type: ignore[arg-type]
