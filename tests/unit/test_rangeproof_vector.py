"""Range proof + linking proof through the statledger.proofs.vector API: accept tests and reject
twins."""

from __future__ import annotations

import secrets

import numpy as np
import pytest

from statledger.proofs import rangeproof as rp
from statledger.proofs import vector as V
from statledger.proofs.elgamal import Ciphertext, decrypt, keygen
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import FIELD, ORDER, G, H, Point, Scalar, base_mul, msm
from statledger.settings import reset_settings

CTX = b"query-1|provider-a"
# 2 values: an 8-bit power-of-two range and a signed range that needs the upper segment.
SMALL = [(0, 255), (-3, 9)]
# 4 values x 8 bits, as in the brief.
FOUR = [(0, 255)] * 4


@pytest.fixture(scope="module")
def key() -> tuple[Scalar, Point]:
    return keygen()


@pytest.fixture(scope="module")
def small_ev(key: tuple[Scalar, Point]) -> V.EncryptedVector:
    return V.encrypt_vector_with_proof(key[1], [200, -1], SMALL, CTX)


def _forge(
    X: Point,
    limbs: list[list[int]],
    ranges: list[tuple[int, int]],
    ct_limbs: list[list[int]] | None = None,
) -> V.EncryptedVector:
    """Test-only prover hook: commit/encrypt arbitrary limbs (no range check) and prove."""
    rs, layout = V._layout(ranges)
    return V._encrypt(X, limbs, rs, layout, CTX, ct_limbs)


# --------------------------------------------------------------------------------------------
# accept
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ranges, values",
    [
        (FOUR, [0, 255, 17, 128]),
        (SMALL, [0, 9]),
        ([(5, 5)], [5]),
        ([(0, 1)], [1]),
        ([(-(2**63), 2**63 - 1)], [-(2**63)]),
        ([(0, 2**64 - 1), (10, 70000)], [2**64 - 1, 70000]),
        ([(0, 2**32 - 1)] * 3, [2**32 - 1, 0, 123456789]),
    ],
)
def test_accept_and_roundtrip(key, ranges, values) -> None:
    X = key[1]
    ev = V.encrypt_vector_with_proof(X, values, ranges, CTX)
    data = ev.to_bytes()
    assert len(data) == V.EncryptedVector.encoded_size(ranges)
    ev2 = V.EncryptedVector.from_bytes(data, ranges)
    assert ev2 == ev and ev2.to_bytes() == data
    V.verify_encrypted_vector(X, ev2, ranges, CTX)
    # each limb ciphertext decrypts to the limb of u = v - lo
    for (lo, _hi), v, row in zip(ranges, values, ev.limbs, strict=True):
        limbs = [decrypt(key[0], c, 2**17) for c in row]
        assert V.decode_totals([limbs], [(lo, _hi)], 1) == [v]


def test_n_limbs_and_layout() -> None:
    assert V.n_limbs(0, 0) == 1
    assert V.n_limbs(0, 2**16 - 1) == 1
    assert V.n_limbs(0, 2**16) == 2
    assert V.n_limbs(-(2**63), 2**63 - 1) == 4
    assert V.LIMB_BITS == 16
    lay = rp.RangeLayout.from_spans([255, 12, 0])
    # 8 bits; 4 bits + 4-bit upper segment; 1 bit + 1-bit upper segment
    assert lay.segments == ((8, 0, 0), (4, 1, 0), (4, 1, -1), (1, 2, 0), (1, 2, -1))
    assert (lay.total_bits, lay.N, lay.rounds) == (18, 32, 5)
    for bad in ([], [-1], [2**rp.MAX_BITS], [True]):
        with pytest.raises(MalformedError):
            rp.RangeLayout.from_spans(bad)
    for bad_ranges in ([], [(3, 2)], [(0, 2**rp.MAX_BITS)], [(0,)], [(0.0, 1)]):
        with pytest.raises(MalformedError):
            V.EncryptedVector.encoded_size(bad_ranges)


# --------------------------------------------------------------------------------------------
# values outside their range: refused before proving, and forged proofs do not verify
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [256, -1, 2**8, 10**30])
def test_out_of_range_refused(key, value) -> None:
    with pytest.raises(MalformedError, match="outside its range"):
        V.encrypt_vector_with_proof(key[1], [value, 0], SMALL, CTX)
    with pytest.raises(MalformedError, match="outside its range"):
        V.encrypt_vector_with_proof(key[1], [0, 10], SMALL, CTX)  # hi + 1 of (-3, 9)
    with pytest.raises(MalformedError):
        V.encrypt_vector_with_proof(key[1], [0], SMALL, CTX)  # wrong count
    with pytest.raises(MalformedError):
        V.encrypt_vector_with_proof(key[1], [True, 0], SMALL, CTX)


@pytest.mark.parametrize(
    "ranges, limbs, desc",
    [
        ([(0, 200)], [[201]], "hi+1 (upper segment catches it)"),
        ([(0, 200)], [[-1]], "lo-1"),
        ([(0, 255)], [[256]], "2^b"),
        ([(-3, 9)], [[13]], "hi+1 of a shifted range"),
        ([(0, 2**32 - 1)], [[2**16, 0xFFFF]], "limb out of 16 bits, sum in range"),
        ([(0, 2**32 - 1)], [[-1, 1]], "negative limb, sum in range"),
        ([(0, 2**20)], [[0, 2**5]], "top limb wider than its segment"),
    ],
)
def test_forged_out_of_range_rejected(key, ranges, limbs, desc) -> None:
    ev = _forge(key[1], limbs, ranges)
    with pytest.raises(VerificationError, match="range-proof"):
        V.verify_encrypted_vector(key[1], ev, ranges, CTX)
    # and the same hook with in-range limbs does verify (the hook itself is sound)
    ok = _forge(key[1], [[0] * len(limbs[0])], ranges)
    V.verify_encrypted_vector(key[1], ok, ranges, CTX)


def test_ciphertext_of_other_value_fails_linking(key) -> None:
    ev = _forge(key[1], [[7], [3]], SMALL, ct_limbs=[[8], [3]])
    with pytest.raises(VerificationError, match="link-proof"):
        V.verify_encrypted_vector(key[1], ev, SMALL, CTX)


# --------------------------------------------------------------------------------------------
# mechanical mutations of the encoding
# --------------------------------------------------------------------------------------------


def test_every_byte_bit_flip_rejected(key, small_ev) -> None:
    data = small_ev.to_bytes()
    V.verify_encrypted_vector(key[1], V.EncryptedVector.from_bytes(data, SMALL), SMALL, CTX)
    accepted = []
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 1 << (pos % 8)
        try:
            ev = V.EncryptedVector.from_bytes(bytes(bad), SMALL)
            V.verify_encrypted_vector(key[1], ev, SMALL, CTX)
        except (MalformedError, VerificationError):
            continue
        accepted.append(pos)
    assert accepted == []


def test_truncated_extended_garbage(small_ev) -> None:
    data = small_ev.to_bytes()
    for bad in (
        data[:-1],
        data[:-33],
        data[1:],
        data + b"\x00",
        b"\x00" + data,
        data + data[-32:],
        b"",
        data[: len(data) // 2],
    ):
        with pytest.raises(MalformedError):
            V.EncryptedVector.from_bytes(bad, SMALL)
    with pytest.raises(MalformedError):
        V.EncryptedVector.from_bytes(bytearray(data).decode("latin1"), SMALL)  # type: ignore[arg-type]
    proof = small_ev.proof.to_bytes()
    rounds = small_ev.proof.rounds
    for bad in (proof[:-1], proof + b"\x01"):
        with pytest.raises(MalformedError):
            rp.RangeProof.from_bytes(bad, rounds)
    with pytest.raises(MalformedError):
        rp.RangeProof.from_bytes(proof, rounds + 1)


def _proof_fields(ev: V.EncryptedVector) -> list[tuple[int, int, str]]:
    """(offset in the vector encoding, length, kind) of every proof element."""
    base = len(ev.to_bytes()) - len(ev.proof.to_bytes())
    kinds = ["P"] * 4 + ["S"] * 3 + ["P"] * (2 * ev.proof.rounds) + ["S"] * 2 + ["P"] * 3
    kinds += ["S"] * 3
    out = []
    pos = base
    for k in kinds:
        n = 33 if k == "P" else 32
        out.append((pos, n, k))
        pos += n
    assert pos == len(ev.to_bytes())
    return out


def test_noncanonical_elements_rejected(key, small_ev) -> None:
    data = small_ev.to_bytes()
    for pos, n, kind in _proof_fields(small_ev):
        if kind == "S":
            s = int.from_bytes(data[pos : pos + n], "big")
            for repl in ((s + ORDER) % 2**256, ORDER, 2**256 - 1):
                if repl < ORDER:
                    continue
                bad = data[:pos] + repl.to_bytes(32, "big") + data[pos + n :]
                with pytest.raises(MalformedError):
                    V.EncryptedVector.from_bytes(bad, SMALL)
        else:
            for repl in (
                b"\x04" + data[pos + 1 : pos + n],
                b"\x02" + FIELD.to_bytes(32, "big"),
                b"\x02" + (FIELD + 1).to_bytes(32, "big")[-32:],
            ):
                bad = data[:pos] + repl + data[pos + n :]
                with pytest.raises(MalformedError):
                    V.EncryptedVector.from_bytes(bad, SMALL)
            # the identity is a canonical encoding but never a valid proof element here
            bad = data[:pos] + bytes(33) + data[pos + n :]
            ev = V.EncryptedVector.from_bytes(bad, SMALL)
            with pytest.raises(VerificationError):
                V.verify_encrypted_vector(key[1], ev, SMALL, CTX)
    # x not on the curve: 5 is not an x-coordinate of secp256k1 (5^3 + 7 = 132 non-square)
    cpos = 0
    bad = data[:cpos] + b"\x02" + (5).to_bytes(32, "big") + data[cpos + 33 :]
    with pytest.raises(MalformedError):
        V.EncryptedVector.from_bytes(bad, SMALL)


def test_replay_other_context_key_ranges(key, small_ev) -> None:
    X = key[1]
    V.verify_encrypted_vector(X, small_ev, SMALL, CTX)
    for ctx in (b"query-1|provider-b", b"query-2|provider-a", b"", CTX + b"\x00"):
        with pytest.raises(VerificationError, match="range-proof"):
            V.verify_encrypted_vector(X, small_ev, SMALL, ctx)
    _, X2 = keygen()
    with pytest.raises(VerificationError):
        V.verify_encrypted_vector(X2, small_ev, SMALL, CTX)
    with pytest.raises(MalformedError):
        V.verify_encrypted_vector(Point.identity(), small_ev, SMALL, CTX)
    # same shape, other ranges (shift, width, exactness)
    for ranges in (
        [(1, 256), (-3, 9)],
        [(0, 255), (-2, 10)],
        [(0, 255), (-3, 8)],
        [(0, 254), (-3, 9)],
    ):
        with pytest.raises(VerificationError):
            V.verify_encrypted_vector(X, small_ev, ranges, CTX)
    # other shape
    for ranges in ([(0, 255)], [(0, 2**16), (-3, 9)], SMALL + [(0, 1)]):
        with pytest.raises(VerificationError):
            V.verify_encrypted_vector(X, small_ev, ranges, CTX)
        with pytest.raises(MalformedError):
            V.EncryptedVector.from_bytes(small_ev.to_bytes(), ranges)


def test_swapped_fields(key) -> None:
    X = key[1]
    ranges = [(0, 2**32 - 1), (0, 2**32 - 1)]
    ev = V.encrypt_vector_with_proof(X, [0x00010002, 0x00030004], ranges, CTX)
    V.verify_encrypted_vector(X, ev, ranges, CTX)
    (a0, a1), (b0, b1) = ev.limbs
    (v0, v1), (w0, w1) = ev.commitments
    variants = [
        (((b0, b1), (a0, a1)), ev.commitments),  # ciphertexts swapped between values
        (ev.limbs, ((w0, w1), (v0, v1))),  # commitments swapped between values
        (((a1, a0), (b0, b1)), ev.commitments),  # limbs swapped within a value
        (ev.limbs, ((v1, v0), (w0, w1))),
        (((b0, b1), (a0, a1)), ((w0, w1), (v0, v1))),  # both swapped consistently
        (((Ciphertext(a0.C2, a0.C1), a1), (b0, b1)), ev.commitments),  # C1 <-> C2
    ]
    for limbs, coms in variants:
        bad = V.EncryptedVector(limbs, coms, ev.proof)
        with pytest.raises(VerificationError):
            V.verify_encrypted_vector(X, bad, ranges, CTX)
    # proof fields swapped: A <-> S, T1 <-> T2, L <-> R, a <-> b, z_a <-> z_b
    p = ev.proof
    import dataclasses

    for changes in (
        {"A": p.S, "S": p.A},
        {"T1": p.T2, "T2": p.T1},
        {"L": p.R, "R": p.L},
        {"a": p.b, "b": p.a},
        {"z_a": p.z_b, "z_b": p.z_a},
        {"A1": p.A3, "A3": p.A1},
        {"tau_x": p.mu, "mu": p.tau_x},
        {"L": p.L[::-1]},
    ):
        bad = V.EncryptedVector(ev.limbs, ev.commitments, dataclasses.replace(p, **changes))
        with pytest.raises(VerificationError):
            V.verify_encrypted_vector(X, bad, ranges, CTX)
    # a proof from another vector with the same ranges
    other = V.encrypt_vector_with_proof(X, [0x00010002, 0x00030004], ranges, CTX)
    with pytest.raises(VerificationError):
        V.verify_encrypted_vector(
            X, V.EncryptedVector(ev.limbs, ev.commitments, other.proof), ranges, CTX
        )


# --------------------------------------------------------------------------------------------
# batch verification, aggregation
# --------------------------------------------------------------------------------------------


def test_batch_accepts_and_names_culprit(key) -> None:
    X = key[1]
    items = []
    for i in range(4):
        ctx = b"q|p%d" % i
        items.append((X, V.encrypt_vector_with_proof(X, [i, i - 3], SMALL, ctx), SMALL, ctx))
    parties = ["p0", "p1", "p2", "p3"]
    V.verify_encrypted_vectors_batch(items, parties)
    V.verify_encrypted_vectors_batch([], None)
    # p2's vector replayed under the wrong context
    bad = list(items)
    bad[2] = (X, items[2][1], SMALL, b"q|p9")
    with pytest.raises(VerificationError, match="party p2"):
        V.verify_encrypted_vectors_batch(bad, parties)
    # p1 sends a vector whose ciphertext does not match its commitment
    bad = list(items)
    bad[1] = (X, _forge(X, [[1], [2]], SMALL, [[1], [3]]), SMALL, CTX)
    with pytest.raises(VerificationError, match="party p1") as err:
        V.verify_encrypted_vectors_batch(bad, parties)
    assert err.value.step == "link-proof" and err.value.party == "p1"
    with pytest.raises(VerificationError, match="party 3"):
        V.verify_encrypted_vectors_batch(items[:3] + [(X, items[0][1], SMALL, b"q|p3")])
    with pytest.raises(MalformedError):
        V.verify_encrypted_vectors_batch(items, parties[:2])


def test_aggregate_and_decode(key) -> None:
    x, X = key
    ranges = [(-100, 100), (0, 2**32 - 1)]
    rows = [[-100, 2**32 - 1], [100, 2**32 - 1], [7, 5]]
    evs = [V.encrypt_vector_with_proof(X, r, ranges, CTX) for r in rows]
    agg = V.aggregate(evs)
    sums = [[decrypt(x, c, 2**20) for c in row] for row in agg]
    assert V.decode_totals(sums, ranges, 3) == [sum(c) for c in zip(*rows, strict=True)]
    with pytest.raises(MalformedError):
        V.aggregate([])
    with pytest.raises(MalformedError):
        V.aggregate([evs[0], V.encrypt_vector_with_proof(X, [0], [(0, 1)], CTX)])
    with pytest.raises(MalformedError):
        V.decode_totals(sums[:1], ranges, 3)
    with pytest.raises(MalformedError):
        V.decode_totals([sums[0], sums[1][:1]], ranges, 3)
    with pytest.raises(MalformedError):
        V.decode_totals(sums, ranges, -1)


# --------------------------------------------------------------------------------------------
# the fast multi-scalar multiplication and the parallel paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [0, 3, 4, 5, 7, 8, 9])
def test_bucket_msm_matches_group_msm(monkeypatch, window) -> None:
    monkeypatch.setattr("statledger.proofs.msm.window_bits", lambda n: window)
    n = 150
    pts = [base_mul(Scalar.random()) for _ in range(n)]
    ks = [secrets.randbelow(ORDER) for _ in range(n)]
    ks[0] = 0
    ks[1] = ORDER - 1
    ks[2] = 1
    ks[3] = 2**255 + 12345
    got = rp._points_msm(ks, pts)
    assert got == msm([Scalar(k) for k in ks], pts)
    # adversarial: P and -P with equal scalars land in the same buckets and cancel
    P = pts[5]
    pts2 = [P, -P] * (n // 2)
    ks2 = [ks[7]] * len(pts2)
    assert rp._points_msm(ks2, pts2) == Point.identity()
    assert rp._points_msm(ks2 + [3], pts2 + [G]) == base_mul(Scalar(3))
    assert rp._points_msm([], []) == Point.identity()
    assert rp._points_msm([5, 0, ORDER], [H, G, G]) == H * Scalar(5)
    assert rp._points_msm([1, 1], [G, Point.identity()]) == G


def test_window_choice() -> None:
    assert rp._window_bits(10) == 0
    assert 5 <= rp._window_bits(8192) <= 9
    assert rp._window_bits(16384) >= rp._window_bits(2048) > 0


def test_parallel_paths_agree(key, monkeypatch) -> None:
    monkeypatch.setenv("STATLEDGER_RANGE_FOLD_THRESHOLD", "4")
    monkeypatch.setenv("STATLEDGER_RANGE_MSM_THRESHOLD", "64")
    monkeypatch.setenv("STATLEDGER_RANGE_PARALLEL", "true")
    reset_settings()
    X = key[1]
    ranges = [(0, 2**16 - 1)] * 16  # N = 256
    ev = V.encrypt_vector_with_proof(X, list(range(16)), ranges, CTX)
    V.verify_encrypted_vector(X, ev, ranges, CTX)
    n = 400
    raw = np.concatenate(
        [
            rp._raw_matrix(np.array([rp._addr(base_mul(Scalar(i + 1))._pk)], dtype=np.uint64))
            for i in range(n)
        ]
    )
    ks = [secrets.randbelow(ORDER) for _ in range(n)]
    par = rp._to_point(rp._msm_par(raw, ks))
    ser = rp._to_point(rp._msm_matrix(raw, ks))
    assert par == ser == base_mul(Scalar.reduce(sum((i + 1) * k for i, k in enumerate(ks))))
    rp.shutdown_pool()


def test_types_checked(key, small_ev) -> None:
    ev = small_ev
    with pytest.raises(TypeError):
        V.EncryptedVector(list(ev.limbs), ev.commitments, ev.proof)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        V.EncryptedVector(ev.limbs, ((G,), (b"x",)), ev.proof)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        V.EncryptedVector(ev.limbs, ev.commitments, ev.proof.to_bytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        V.verify_encrypted_vector(key[1], ev.to_bytes(), SMALL, CTX)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        V.verify_encrypted_vector(key[1], ev, SMALL, "ctx")  # type: ignore[arg-type]
    with pytest.raises(MalformedError):
        rp.RangeProof.from_bytes("00", 1)  # type: ignore[arg-type]


def test_generator_cache_pinned(tmp_path, monkeypatch) -> None:
    from statledger.proofs.group import generators

    monkeypatch.setenv("STATLEDGER_CACHE", str(tmp_path))
    # the pinned digests are those of the derivation (catches a change of generators())
    for N in (1, 2, 64):
        g = rp._array_from_points(generators(rp._LABEL_GVEC, N))
        h = rp._array_from_points(generators(rp._LABEL_HVEC, N))
        data = rp._generator_bytes(g, h, N)
        import hashlib

        assert hashlib.sha256(data).hexdigest() == rp._GEN_DIGESTS[N]
    assert sorted(rp._GEN_DIGESTS) == [2**k for k in range(16)]
    fresh = rp._Gens()
    gvec, hvec, Q = fresh.get(64)  # derives and writes the cache file
    path = tmp_path / "range-generators-v1-64.bin"
    assert path.stat().st_size == 2 * 64 * 65
    again = rp._Gens()
    loaded = rp._load_cached_generators(64)
    assert loaded is not None
    assert rp._generator_bytes(*loaded, 64) == rp._generator_bytes(gvec, hvec, 64)
    g2, h2, _ = again.get(64)
    assert rp._generator_bytes(g2, h2, 64) == path.read_bytes()
    # a tampered cache is ignored (and the generators are derived again)
    data = bytearray(path.read_bytes())
    data[70] ^= 1
    path.write_bytes(bytes(data))
    assert rp._load_cached_generators(64) is None
    g3, h3, _ = rp._Gens().get(64)
    assert rp._generator_bytes(g3, h3, 64) == rp._generator_bytes(gvec, hvec, 64)
    path.write_bytes(b"short")
    assert rp._load_cached_generators(64) is None
    assert rp._load_cached_generators(3) is None  # not a pinned size


def test_generators_threadsafe(tmp_path, monkeypatch) -> None:
    import threading

    monkeypatch.setenv("STATLEDGER_CACHE", str(tmp_path))
    gens = rp._Gens()
    out: list[bytes] = []

    def grab() -> None:
        g, h, _ = gens.get(32)
        out.append(rp._generator_bytes(g, h, 32))

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(out) == 4 and len(set(out)) == 1
    assert gens.n == 32
