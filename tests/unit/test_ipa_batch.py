"""Batched range-proof verification: the lazily expanded generator-vector coefficients equal
the section 6.2 formula, merged point terms stay exact, and the batching weights must be
unpredictable (with predictable weights two wrong proofs cancel -- the attack the
``secrets`` weights stop)."""

from __future__ import annotations

import dataclasses
import secrets

import pytest

from statledger.proofs import rangeproof as rp
from statledger.proofs import vector as V
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import VerificationError
from statledger.proofs.group import ORDER, Scalar, base_mul

RANGES = [(0, 70_000), (-3, 2**20), (5, 5), (0, 2**33 - 1)]


@pytest.fixture(scope="module")
def items() -> list[tuple]:
    _, X = keygen()
    out = []
    for i in range(3):
        ctx = b"q|p%d" % i
        vals = [secrets.randbelow(hi - lo + 1) + lo for lo, hi in RANGES]
        out.append((X, V.encrypt_vector_with_proof(X, vals, RANGES, ctx), RANGES, ctx))
    return out


def test_expanded_coefficients_match_the_formula(items) -> None:
    X, ev, ranges, ctx = items[0]
    rng, _ = V._terms(X, ev, ranges, ctx, None)
    ((one, part),) = rng.vectors
    assert one == 1
    layout = V._layout(ranges)[1]
    N, z, a, b, yinv = part.N, part.z, part.a, part.b, part.yinv
    assert N == layout.N
    _, d = rp._segment_weights(layout, z)
    s = [1] * N
    for i in range(N):
        for k, u in enumerate(part.us):
            s[i] = s[i] * (u if (i >> k) & 1 else pow(u, -1, ORDER)) % ORDER
    w = secrets.randbelow(ORDER)
    gv, hv = [0] * N, [0] * N
    c = part.expand_into(w, gv, hv)
    got_g = [(v - c) % ORDER for v in gv]
    got_h = [(v + c) % ORDER for v in hv]
    assert got_g == [w * (-z - a * s[i]) % ORDER for i in range(N)]
    want_h = [w * (z + pow(yinv, i, ORDER) * (d[i] - b * s[N - 1 - i])) % ORDER for i in range(N)]
    assert got_h == want_h
    # twin: without d (the range weights) the H side differs
    assert got_h != [w * (z - pow(yinv, i, ORDER) * b * s[N - 1 - i]) % ORDER for i in range(N)]


def test_merged_points_stay_exact() -> None:
    P = base_mul(Scalar.random())
    P_copy = type(P).from_bytes(P.to_bytes())  # equal point, another object
    k = secrets.randbelow(ORDER - 1) + 1
    for pts, identity in (
        ([(k, P), (ORDER - k, P)], True),  # the same object: merged into 0
        ([(k, P), (ORDER - k, P_copy)], True),  # equal objects: cancel inside the MSM
        ([(k, P), (k, P)], False),
        ([(k, P), (ORDER - k + 1, P)], False),
    ):
        terms = rp.VerificationTerms.empty()
        terms.pts.extend(pts)
        assert rp._terms_is_identity(terms) is identity


def _shift_zb(ev: V.EncryptedVector, delta: int) -> V.EncryptedVector:
    p = ev.proof
    zb = Scalar((int(p.z_b) + delta) % ORDER)
    return V.EncryptedVector(ev.limbs, ev.commitments, dataclasses.replace(p, z_b=zb))


def test_predictable_weights_would_let_errors_cancel(items, monkeypatch) -> None:
    X = items[0][0]
    bad = list(items)
    bad[0] = (X, _shift_zb(items[0][1], +1), RANGES, items[0][3])
    bad[1] = (X, _shift_zb(items[1][1], -1), RANGES, items[1][3])
    names = ["p0", "p1", "p2"]
    for it, name in zip(bad[:2], names, strict=False):
        with pytest.raises(VerificationError, match="link"):
            V.verify_encrypted_vector(*it, party=name)
    # the adversary's world: every weight the same constant -> the two errors cancel
    with monkeypatch.context() as m:
        m.setattr(secrets, "randbits", lambda k: 12345)
        V.verify_encrypted_vectors_batch(bad, names)  # accepted: why weights must be secret
    # the real verifier draws them from secrets: rejected, the first culprit named
    with pytest.raises(VerificationError, match="party p0") as err:
        V.verify_encrypted_vectors_batch(bad, names)
    assert err.value.step == "link-proof"
    V.verify_encrypted_vectors_batch(items, names)
