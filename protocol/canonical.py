"""Canonical JSON bytes (RFC 8785, JCS) and a strict JSON parser.

Everything statledger hashes or signs is first turned into one unambiguous byte string:
RFC 8785 JSON Canonicalization Scheme via the ``rfc8785`` package (keys sorted by UTF-16
code units, ECMAScript number formatting, UTF-8, no whitespace).

Rules enforced here, on top of RFC 8785, each raising
:class:`~statledger.proofs.errors.MalformedError`
with the JSON path of the offending value:

* only ``None``, ``bool``, ``int``, ``float``, ``str``, ``list``/``tuple`` and ``dict`` with
  ``str`` keys;
* no NaN or infinities;
* integers must satisfy ``|i| < 2**53`` (I-JSON safe integers); larger integers travel as
  decimal strings; an integral float ``2**53 <= |x| < 1e21`` is rejected too, because JCS
  would write it as a bare (unsafe) integer;
* strings must be valid Unicode (no lone surrogates).

:func:`parse_json` is the strict inverse side: it rejects duplicate keys, ``NaN``/``Infinity``
literals, numbers that overflow to infinity, integers beyond ``2**53``, invalid UTF-8 and
lone surrogates.
"""

from __future__ import annotations

import hashlib
import json
import re
from itertools import accumulate
from typing import Any

import rfc8785

from statledger.proofs.errors import MalformedError

__all__ = ["MAX_SAFE_INT", "canonical_bytes", "sha256_hex", "parse_json", "check_json_value"]

MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 64


def _check_str(s: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedError(f"{path}: string is not valid Unicode ({exc.reason})") from None


def check_json_value(obj: Any, path: str = "$", _depth: int = 0) -> Any:
    """Check ``obj`` is canonicalizable and return a copy with tuples turned into lists."""
    if _depth > _MAX_DEPTH:
        raise MalformedError(f"{path}: nesting deeper than {_MAX_DEPTH}")
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        if abs(obj) > MAX_SAFE_INT:
            raise MalformedError(
                f"{path}: integer {obj} exceeds 2^53; encode it as a decimal string"
            )
        return int(obj)
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise MalformedError(f"{path}: {obj!r} is not representable in JSON")
        if MAX_SAFE_INT < abs(obj) < 1e21 and obj == int(obj):
            raise MalformedError(f"{path}: float {obj!r} would serialize as an integer beyond 2^53")
        return float(obj)
    if isinstance(obj, str):
        _check_str(obj, path)
        return obj
    if isinstance(obj, (list, tuple)):
        return [check_json_value(v, f"{path}[{i}]", _depth + 1) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise MalformedError(f"{path}: object key {k!r} is not a string")
            _check_str(k, f"{path}.{k!r}")
            out[k] = check_json_value(v, f"{path}.{k}", _depth + 1)
        return out
    raise MalformedError(f"{path}: type {type(obj).__name__} is not JSON")


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical bytes of a JSON value (see the module docstring for the rules)."""
    checked = check_json_value(obj)
    try:
        return bytes(rfc8785.dumps(checked))
    except (ValueError, TypeError) as exc:  # pragma: no cover - check_json_value catches these
        raise MalformedError(f"$: cannot canonicalize: {exc}") from None


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError("sha256_hex: data must be bytes")
    return hashlib.sha256(bytes(data)).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise MalformedError(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def _bad_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


def _parse_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise MalformedError(f"integer {text} exceeds 2^53; encode it as a decimal string")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise MalformedError(f"number {text} overflows a double")
    return value


#: Deepest nesting accepted.  Checked before ``json.loads``: a deeply nested document
#: ("[[[[...") could otherwise exhaust the C stack of the JSON decoder.
MAX_DEPTH = 64

# One JSON string, from its opening quote to its closing quote -- or to the end of the text
# when it is never closed (then ``json.loads`` refuses the text anyway).  Possessive
# quantifiers and a tail that always matches (``"``, or the end, possibly after one last
# backslash) mean a match never fails once it has started at a quote, so nothing is ever
# rescanned: removing every string costs one pass over the text, whatever it holds.  (A
# pattern that can fail, like ``"(?:[^"\\]|\\.)*"``, is retried from every quote of an
# unterminated run of escaped quotes: quadratic time, seconds for 64 KB.)
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def check_depth(text: str, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`MalformedError` if arrays/objects nest deeper than ``limit``.

    Linear time in ``len(text)`` for any input (three C-level passes: strings removed,
    everything but brackets removed, running depth), so it is safe on hostile bodies.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    deepest = max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)
    if deepest > limit:
        raise MalformedError(f"JSON nests deeper than {limit} levels")


def parse_json(data: bytes | str) -> Any:
    """Strictly parse JSON text; any deviation raises :class:`MalformedError`."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise MalformedError(f"JSON is not valid UTF-8: {exc.reason}") from None
    elif isinstance(data, str):
        text = data
    else:
        raise MalformedError(f"parse_json: expected bytes or str, got {type(data).__name__}")
    if text.startswith("\ufeff"):
        raise MalformedError("JSON must not start with a byte-order mark")
    check_depth(text)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_bad_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
        )
    except MalformedError:
        raise
    except (ValueError, RecursionError) as exc:
        raise MalformedError(f"invalid JSON: {exc}") from None
    return check_json_value(value)
