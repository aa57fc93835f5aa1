"""Property: a permutation of a valid event sequence is accepted iff it respects the order."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from test_statemachine_helpers import ROSTER, events, respects_partial_order  # noqa: E402

from statledger.proofs.errors import ProtocolError  # noqa: E402
from statledger.protocol.statemachine import Phase, advance, start  # noqa: E402

EV = {True: events(dp=True), False: events(dp=False)}


def _accepted(dp: bool, names: list[str]) -> bool:
    ev = EV[dp]
    if names[0] != "query":
        return False
    state = start(ev["query"], ROSTER)  # type: ignore[arg-type]
    try:
        for n in names[1:]:
            state = advance(state, ev[n])
    except ProtocolError:
        return False
    assert state.phase is Phase.ENDORSED
    return True


def _linear_extension(dp: bool, seed: int) -> list[str]:
    rng = random.Random(seed)
    names = list(EV[dp])
    groups: dict[int, list[str]] = {}
    rank = {"query": 0, "sub": 1, "commit": 1, "coin": 2, "aggregate": 3, "dec": 4,
            "result": 5, "end": 6}
    for n in names:
        groups.setdefault(rank[n.split(":")[0]], []).append(n)
    out: list[str] = []
    for r in sorted(groups):
        g = groups[r]
        rng.shuffle(g)
        out += g
    return out


@st.composite
def sequences(draw: st.DrawFn) -> tuple[bool, list[str]]:
    dp = draw(st.booleans())
    how = draw(st.sampled_from(["any", "valid", "near"]))
    if how == "any":
        return dp, draw(st.permutations(list(EV[dp])))
    seq = _linear_extension(dp, draw(st.integers(0, 2**32)))
    if how == "near":
        i = draw(st.integers(0, len(seq) - 2))
        j = draw(st.integers(i + 1, len(seq) - 1))
        seq[i], seq[j] = seq[j], seq[i]
    return dp, seq


@settings(max_examples=150, deadline=None)
@given(sequences())
def test_accepted_iff_respects_partial_order(case):
    dp, names = case
    assert _accepted(dp, names) == respects_partial_order(names)


def test_oracle_is_not_trivial():
    # the oracle itself says yes to the canonical order and no to its reverse
    for dp in (True, False):
        names = list(EV[dp])
        assert respects_partial_order(names) and _accepted(dp, names)
        assert not respects_partial_order(names[::-1]) and not _accepted(dp, names[::-1])
