"""Hypothesis: distinct scripts of (label, data) messages give distinct challenges;
equal scripts give equal challenges (determinism)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.transcript import Transcript

items = st.lists(st.tuples(st.binary(max_size=6), st.binary(max_size=6)), max_size=4)


def _c(domain: bytes, script: list[tuple[bytes, bytes]]) -> bytes:
    t = Transcript(domain)
    for lab, data in script:
        t.append_message(lab, data)
    return t.challenge_bytes(b"c", 32)


@settings(max_examples=200, deadline=None)
@given(d1=st.binary(max_size=4), s1=items, d2=st.binary(max_size=4), s2=items)
def test_injective_on_scripts(
    d1: bytes, s1: list[tuple[bytes, bytes]], d2: bytes, s2: list[tuple[bytes, bytes]]
) -> None:
    same = (d1, s1) == (d2, s2)
    assert (_c(d1, s1) == _c(d2, s2)) == same


@settings(max_examples=50, deadline=None)
@given(d=st.binary(max_size=4), s=items)
def test_deterministic(d: bytes, s: list[tuple[bytes, bytes]]) -> None:
    assert _c(d, s) == _c(d, s)
