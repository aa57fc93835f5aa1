"""Property: random values and ranges survive encrypt -> verify -> aggregate -> decrypt ->
decode_totals exactly, for several contributors."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statledger.proofs import vector as V
from statledger.proofs.elgamal import decrypt, keygen

KEY = keygen()


@st.composite
def vectors(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[list[int]]]:
    m = draw(st.integers(1, 3))
    ranges = []
    for _ in range(m):
        lo = draw(st.integers(-(2**40), 2**40))
        width = draw(st.integers(0, 2 ** draw(st.integers(0, 40))))
        ranges.append((lo, lo + width))
    k = draw(st.integers(1, 3))
    rows = [[draw(st.integers(lo, hi)) for lo, hi in ranges] for _ in range(k)]
    return ranges, rows


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vectors())
def test_roundtrip_totals(case: tuple[list[tuple[int, int]], list[list[int]]]) -> None:
    ranges, rows = case
    x, X = KEY
    evs = []
    for i, row in enumerate(rows):
        ctx = b"q|p%d" % i
        ev = V.EncryptedVector.from_bytes(
            V.encrypt_vector_with_proof(X, row, ranges, ctx).to_bytes(), ranges
        )
        V.verify_encrypted_vector(X, ev, ranges, ctx)
        evs.append(ev)
    agg = V.aggregate(evs)
    sums = [[decrypt(x, c, 2**18) for c in limbs] for limbs in agg]
    assert all(0 <= s < len(rows) * 2**16 for r in sums for s in r)
    assert V.decode_totals(sums, ranges, len(rows)) == [sum(c) for c in zip(*rows, strict=True)]
