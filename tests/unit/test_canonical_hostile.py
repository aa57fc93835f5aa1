"""Hostile JSON: :func:`statledger.protocol.canonical.check_depth` / ``parse_json`` run in
linear time on any input, and ``statledger verify`` refuses a crafted 1 MB file promptly.

Timings here are relative (1 MB against 64 KB, best of several runs, a generous factor), never
absolute thresholds on a loaded machine; ``bench/bench_hostile.py`` prints the absolute
figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.proofs.errors import MalformedError
from statledger.protocol.canonical import MAX_DEPTH, check_depth, parse_json

ROOT = Path(__file__).resolve().parents[2]
KB = 1024


def _escaped_quotes(n: int) -> str:
    """An unterminated string of escaped quotes: ``"\\"\\"\\"...`` (n characters)."""
    return '"' + '\\"' * ((n - 1) // 2)


def _deep(n: int) -> str:
    return "[" * n


def _mixed(n: int) -> str:
    """Strings with escaped quotes and brackets inside, brackets outside, never closed."""
    unit = '["\\"[{\\\\' + "{"
    return (unit * (n // len(unit) + 1))[:n]


def _backslashes(n: int) -> str:
    """A string that ends in the middle of an escape."""
    return '"' + "\\" * (n - 1)


def _many_strings(n: int) -> str:
    """A valid array of many one-quote strings ``["\"", "\"", ...]`` (about n characters)."""
    return '["' + '", "'.join(['\\"'] * ((n - 4) // 6)) + '"]'


HOSTILE: dict[str, Callable[[int], str]] = {
    "escaped-quotes": _escaped_quotes,
    "deep": _deep,
    "mixed": _mixed,
    "backslashes": _backslashes,
    "many-strings": _many_strings,
}


def _reference_depth(text: str) -> int:
    """The deepest bracket nesting outside strings, by a plain one-character-at-a-time
    scanner (what check_depth must agree with)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse_or_refuse(text: str) -> None:
    try:
        parse_json(text.encode("utf-8"))
    except MalformedError:
        pass


def _best_time(fn: Callable[[], None], runs: int = 5) -> float:
    """Best CPU time of ``runs`` calls: CPU time of this process only, so other processes on
    a loaded CI machine do not count (wall time did, and made the ratio flaky)."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


# -- correctness -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_payloads_at_128k_refused_or_parsed(name: str) -> None:
    text = HOSTILE[name](128 * KB)
    assert len(text) <= 128 * KB
    if name == "many-strings":  # well-formed: parsed
        assert set(parse_json(text)) == {'"'}
        return
    with pytest.raises(MalformedError):
        parse_json(text.encode("utf-8"))


def test_deep_nesting_refused_with_the_depth_message() -> None:
    with pytest.raises(MalformedError, match=f"JSON nests deeper than {MAX_DEPTH} levels"):
        parse_json("[" * 100_000)
    with pytest.raises(MalformedError, match="nests deeper"):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    inner = '"' + "[" * 1000 + '\\"' + "{" * 1000 + '"'
    assert parse_json(f"[{inner}]") == ["[" * 1000 + '"' + "{" * 1000]
    check_depth('"\\\\"' + "[" * MAX_DEPTH)  # an escaped backslash closes nothing early
    with pytest.raises(MalformedError):
        check_depth('"\\\\"' + "[" * (MAX_DEPTH + 1))


def test_escaped_quote_strings_that_do_terminate_parse() -> None:
    text = '"' + '\\"' * 50_000 + '"'
    assert parse_json(text) == '"' * 50_000


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='[]{}"\\a,', max_size=60), st.integers(min_value=0, max_value=6))
def test_check_depth_agrees_with_a_plain_scanner(text: str, limit: int) -> None:
    expected_ok = _reference_depth(text) <= limit
    try:
        check_depth(text, limit)
        ok = True
    except MalformedError:
        ok = False
    assert ok == expected_ok, (text, limit)


# -- linear time ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_time_grows_linearly(name: str) -> None:
    """16x the input may cost at most ~4x more than 16x the time (quadratic would be 256x);
    the 50 ms slack absorbs timer granularity and cache noise on tiny inputs."""
    small, big = HOSTILE[name](64 * KB), HOSTILE[name](1024 * KB)
    _parse_or_refuse(small)  # warm up
    t_small = _best_time(lambda: _parse_or_refuse(small))
    t_big = _best_time(lambda: _parse_or_refuse(big))
    assert t_big <= 64 * t_small + 0.05, (name, t_small, t_big)


def test_old_quadratic_case_is_now_fast_in_absolute_terms() -> None:
    """The payload that froze a ledger for 41.5 s at 128 KB: now far below a second even on
    a loaded machine (the benchmark reports milliseconds)."""
    text = '"' + '\\"' * 64_000
    assert _best_time(lambda: _parse_or_refuse(text), runs=1) < 1.0


# -- statledger verify on crafted files ------------------------------------------------------


def _crafted_certificates(tmp_path: Path) -> list[Path]:
    mb = 1024 * KB
    files = {
        "escaped-quotes.json": _escaped_quotes(mb),
        "deep.json": _deep(mb),
        "cert-prefix.json": ('{"format": "statledger-certificate/v1", "entries": [{"data": "'
                             + '\\"' * (mb // 2)),
        "mixed.json": _mixed(mb),
    }
    out = []
    for name, text in files.items():
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out


def test_verify_cli_refuses_crafted_1mb_files_promptly(tmp_path: Path) -> None:
    files = _crafted_certificates(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for f in files:
        t0 = time.monotonic()
        proc = subprocess.run(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "statledger", "verify", str(f)],
            capture_output=True, text=True, timeout=60, cwd=str(ROOT), env=env)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 2, (f.name, proc.stdout, proc.stderr)
        assert elapsed < 5.0, (f.name, elapsed)
        assert "NOT A CERTIFICATE" in proc.stdout, (f.name, proc.stdout)
        assert "Traceback" not in proc.stdout + proc.stderr
        assert len(proc.stdout) < 1000  # the error names the problem, not the file's bytes
