"""statledger.proofs.transcript: every change to label, data, order, type or length split changes
the
challenge; challenges are absorbed; clone() forks; bad inputs are refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from statledger.proofs.group import ORDER, G, H, Point, Scalar, base_mul
from statledger.proofs.transcript import CHALLENGE_SCALAR_BYTES, Transcript

Script = Callable[[Transcript], None]


def _c(domain: bytes, script: Script) -> Scalar:
    t = Transcript(domain)
    script(t)
    return t.challenge_scalar(b"c")


def _msgs(*items: tuple[bytes, bytes]) -> Script:
    def run(t: Transcript) -> None:
        for lab, data in items:
            t.append_message(lab, data)

    return run


BASE = _c(b"d", _msgs((b"a", b"x"), (b"b", b"y")))


@pytest.mark.parametrize(
    "twin",
    [
        _msgs((b"a", b"x")),  # item dropped
        _msgs((b"a", b"x"), (b"b", b"y"), (b"c", b"")),  # item added (even empty)
        _msgs((b"b", b"y"), (b"a", b"x")),  # order swapped
        _msgs((b"a", b"y"), (b"b", b"x")),  # data swapped between labels
        _msgs((b"A", b"x"), (b"b", b"y")),  # label changed
        _msgs((b"a", b"x\x00"), (b"b", b"y")),  # trailing zero in data
        _msgs((b"a", b"xb"), (b"", b"y")),  # label/data boundary moved
        _msgs((b"ax", b""), (b"b", b"y")),  # label/data boundary moved
        _msgs((b"a", b"x"), (b"b", b"y"), (b"b", b"y")),  # duplicated item
    ],
)
def test_any_change_changes_challenge(twin: Script) -> None:
    assert _c(b"d", twin) != BASE


def test_length_split_twins() -> None:
    assert _c(b"d", _msgs((b"ab", b"c"))) != _c(b"d", _msgs((b"a", b"bc")))
    assert _c(b"d", _msgs((b"l", b"ab"), (b"l", b"c"))) != _c(
        b"d", _msgs((b"l", b"a"), (b"l", b"bc"))
    )
    assert _c(b"d", _msgs((b"l", b"abc"))) != _c(b"d", _msgs((b"l", b"ab"), (b"l", b"c")))


def test_domain_separates() -> None:
    assert _c(b"d2", _msgs((b"a", b"x"), (b"b", b"y"))) != BASE
    assert _c(b"", _msgs()) != _c(b"\x00", _msgs())


def test_types_are_separated() -> None:
    P = base_mul(Scalar(5))
    s = Scalar(5)

    def as_point(t: Transcript) -> None:
        t.append_point(b"v", P)

    def as_msg(t: Transcript) -> None:
        t.append_message(b"v", P.to_bytes())

    def as_vec(t: Transcript) -> None:
        t.append_points(b"v", [P])

    def as_scalar(t: Transcript) -> None:
        t.append_scalar(b"v", s)

    def as_sbytes(t: Transcript) -> None:
        t.append_message(b"v", s.to_bytes())

    def as_int(t: Transcript) -> None:
        t.append_int(b"v", 5)

    outs = {_c(b"d", f) for f in (as_point, as_msg, as_vec, as_scalar, as_sbytes, as_int)}
    assert len(outs) == 6


def test_points_vector_split_and_order() -> None:
    def one(t: Transcript) -> None:
        t.append_points(b"V", [G, H])

    def two(t: Transcript) -> None:
        t.append_points(b"V", [G])
        t.append_points(b"V", [H])

    def swapped(t: Transcript) -> None:
        t.append_points(b"V", [H, G])

    def with_identity(t: Transcript) -> None:
        t.append_points(b"V", [G, H, Point.identity()])

    assert len({_c(b"d", f) for f in (one, two, swapped, with_identity)}) == 4


def test_int_encoding_sign_and_size() -> None:
    vals = [0, 1, -1, 255, 256, -256, 2**64, -(2**64), 2**300]

    def f(v: int) -> Script:
        def run(t: Transcript) -> None:
            t.append_int(b"i", v)

        return run

    assert len({_c(b"d", f(v)) for v in vals}) == len(vals)


def test_challenges_absorbed_and_depend_on_each_other() -> None:
    t = Transcript(b"d")
    c1, c2 = t.challenge_scalar(b"c"), t.challenge_scalar(b"c")
    assert c1 != c2
    t2 = Transcript(b"d")
    t2.challenge_scalar(b"other")
    assert t2.challenge_scalar(b"c") != c1  # label of the earlier challenge matters
    t3 = Transcript(b"d")
    assert t3.challenge_bytes(b"c", 32) != t3.challenge_bytes(b"c", 32)
    # requesting a different length is a different challenge, not a prefix
    a, b = Transcript(b"d"), Transcript(b"d")
    assert a.challenge_bytes(b"c", 16) != b.challenge_bytes(b"c", 32)[:16]
    assert len(Transcript(b"d").challenge_scalars(b"c", 3)) == 3


def test_challenge_scalar_width_and_range() -> None:
    assert CHALLENGE_SCALAR_BYTES * 8 >= 256 + 128
    for i in range(50):
        t = Transcript(b"range")
        t.append_int(b"i", i)
        assert 0 <= int(t.challenge_scalar(b"c")) < ORDER


def test_clone_forks_independently() -> None:
    t = Transcript(b"d")
    t.append_message(b"a", b"x")
    u = t.clone()
    assert t.challenge_scalar(b"c") == u.challenge_scalar(b"c")
    t.append_message(b"b", b"1")
    u.append_message(b"b", b"2")
    assert t.challenge_scalar(b"c") != u.challenge_scalar(b"c")


def test_recording_does_not_change_outputs() -> None:
    a, b = Transcript(b"d"), Transcript(b"d", record=True)
    for t in (a, b):
        t.append_point(b"G", G)
    assert a.challenge_bytes(b"c", 40) == b.challenge_bytes(b"c", 40)
    assert b.recorded().startswith(b"D")
    with pytest.raises(ValueError):
        a.recorded()


def test_bad_inputs_refused() -> None:
    t = Transcript(b"d")
    with pytest.raises(TypeError):
        Transcript("d")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.append_message("a", b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.append_message(b"a", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.append_scalar(b"s", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.append_point(b"p", G.to_bytes())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        t.append_points(b"p", [G, 1])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        t.append_int(b"i", True)
    for n in (0, -1, 2**16 + 1):
        with pytest.raises(ValueError):
            t.challenge_bytes(b"c", n)
