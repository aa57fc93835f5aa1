"""Deterministic CBOR (RFC 8949 section 4.2.1) for log entries, decoded strictly.

:func:`cbor_bytes` encodes a value of the entry data model -- ``None``, ``bool``, ``int``
(``|i| < 2**64``), finite ``float``, ``str``, ``bytes``, ``list``/``tuple`` and ``dict``
with ``str`` keys -- with the core deterministic rules: definite lengths, shortest integer
and length arguments, map keys sorted by the bytewise order of their encodings, floats in
their shortest exact form (preferred serialization), no tags.

:func:`parse_cbor` is the strict inverse: one item, nothing after it; no tags (bignums,
self-described CBOR, shared values, ... are all refused), no indefinite lengths, no
duplicate keys, only text-string map keys, no simple values other than false/true/null, no
NaN or infinities, at most :data:`MAX_DEPTH` nesting levels; and the input must be exactly
the deterministic encoding of what it decodes to (decode, re-encode, compare), which
refuses every non-shortest argument, unsorted map and long float form.  Each failure is a
:class:`~statledger.proofs.errors.MalformedError`.

Decoding uses the ``cbor2`` package (its C extension): declared lengths are read from the
input as it goes, never pre-allocated, so a hostile length costs nothing.
"""

from __future__ import annotations

import math
from typing import Any

import cbor2

from statledger.proofs.errors import MalformedError

__all__ = ["MAX_DEPTH", "cbor_bytes", "parse_cbor"]

#: Deepest nesting of arrays / maps accepted (the same bound as the JSON parser).
MAX_DEPTH = 64
_MAX_UINT = (1 << 64) - 1


def _reject_tag(*_args: object) -> Any:
    raise MalformedError("CBOR tags are not allowed")


# cbor2 decodes some tags itself (0-5, 25, 28-30, 35-37, 100, 256, 258, 260-261, 1004,
# 55799, ...); every tag it may know is overridden to raise, unknown ones go to tag_hook.
_NO_TAGS: dict[int, Any] = {t: _reject_tag for t in (*range(0, 1024), 1004, 55799)}


def _check(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedError(f"{path}: nesting deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, bool | str | bytes):
        return
    if isinstance(value, int):
        if not -_MAX_UINT - 1 <= value <= _MAX_UINT:
            raise MalformedError(f"{path}: integer beyond 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedError(f"{path}: {value!r} is not allowed")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise MalformedError(f"{path}: map key {k!r} is not a text string")
            _check(v, f"{path}.{k}", depth + 1)
        return
    raise MalformedError(f"{path}: CBOR item of type {type(value).__name__} is not allowed")


def cbor_bytes(value: Any) -> bytes:
    """Deterministic CBOR bytes of ``value`` (RFC 8949 section 4.2.1)."""
    _check(value, "$", 0)
    try:
        return bytes(cbor2.dumps(value, canonical=True))
    except (cbor2.CBORError, ValueError, TypeError) as exc:  # pragma: no cover - _check
        raise MalformedError(f"$: cannot encode as CBOR: {exc}") from None


def parse_cbor(data: bytes) -> Any:
    """Strictly decode one deterministic CBOR item (see the module docstring)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"CBOR: expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    if not raw:
        raise MalformedError("CBOR: empty input")
    try:
        value = cbor2.loads(raw, tag_hook=_reject_tag, semantic_decoders=_NO_TAGS,
                            max_depth=MAX_DEPTH + 1, allow_indefinite=False,
                            allow_duplicate_keys=False, strict_hashable_types=True)
    except MalformedError:
        raise
    except cbor2.CBORDecodeEOF:
        raise MalformedError("CBOR: truncated input") from None
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError,
            MemoryError) as exc:
        reason = exc.__cause__ if isinstance(exc.__cause__, MalformedError) else exc
        raise MalformedError(f"CBOR: {reason}") from None
    _check(value, "$", 0)
    if cbor_bytes(value) != raw:
        raise MalformedError("CBOR: not the deterministic encoding (RFC 8949 section 4.2.1): "
                             "trailing bytes, a non-shortest length or float, or unsorted "
                             "map keys")
    return value
