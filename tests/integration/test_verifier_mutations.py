"""Mutation suite (issue 6, "Tests"): every change to a real certificate is rejected.

For each certificate produced by the real pipeline (``verifier_run`` in conftest.py):

* the certificate (binary, ``statledger-certificate/v2``) is read into a document (origin,
  log key, checkpoint, entries with index, data bytes and proof hashes) and every leaf is
  mutated in turn -- character and bit flips (keeping base64 / hex alphabets in the
  checkpoint text so the change reaches the crypto), truncation, emptying, garbage before /
  after, +-1 on numbers -- and every list has items swapped, dropped, duplicated or
  truncated; the mutated document is written back in the v2 layout (mutations the layout
  cannot express, e.g. a string where an index goes, are skipped);
* the file as a whole gets garbage before / after and is truncated;
* every leaf of every entry's INNER map (CBOR -> map -> mutate -> re-encode) is mutated
  in the same way, wrong types included: rejected (the leaf no longer matches the signed
  tree);
* the same inner mutations inside a log the adversary rebuilt around them (valid inclusion,
  checkpoint and cosignatures; tests/integration/forge.py): still rejected, and never by the
  log layer -- each entry's own signature / encoding / recomputation must catch it.

"Rejected" means ``Report.valid is False`` or :class:`MalformedError` (not a certificate).
The originals are accepted.  Every leaf PATH is covered for every certificate; where a
string is long, the flipped positions are sampled (first, last, line boundaries, seeded
random positions).
"""

from __future__ import annotations

import base64
import copy
import random
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from forge import Adversary, Forgery

from statledger.proofs.errors import MalformedError
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.verifier.certificate import MAGIC, parse_certificate
from statledger.verifier.verify import verify_certificate

CERTS = ["mean", "crosstab", "dp_sum"]
Path = tuple[Any, ...]
Mutation = tuple[str, Callable[[Any], Any]]  # (label, doc -> mutated doc)

_HEX = "0123456789abcdef"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_B64_RE = re.compile(r"^[A-Za-z0-9+/]+=*$")


# --------------------------------------------------------------------------------------
# generic JSON mutation machinery
# --------------------------------------------------------------------------------------


def walk(obj: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every node (containers and leaves) with its path, depth first."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk(v, (*path, i))


def leaf_paths(obj: Any) -> list[Path]:
    return [p for p, v in walk(obj) if not isinstance(v, dict | list) or not v]


def get(obj: Any, path: Path) -> Any:
    for k in path:
        obj = obj[k]
    return obj


def replaced(doc: Any, path: Path, value: Any) -> Any:
    out = copy.deepcopy(doc)
    if not path:
        return value
    get(out, path[:-1])[path[-1]] = value
    return out


def _positions(s: str, rng: random.Random, budget: int) -> list[int]:
    """Positions to flip: all of a short string; else ends, line boundaries, random."""
    n = len(s)
    if n <= budget:
        return list(range(n))
    picks = {0, 1, n // 2, n - 2, n - 1}
    for m in re.finditer("\n", s):
        picks.update({max(0, m.start() - 1), min(n - 1, m.start() + 1)})
    target = min(n, len(picks) + budget)
    while len(picks) < target:
        picks.add(rng.randrange(n))
    return sorted(picks)


def _flip_char(s: str, i: int) -> str:
    c = s[i]
    if c in _HEX:
        alphabet = _HEX
    elif c in _B64:
        alphabet = _B64
    else:
        alphabet = "ab"
    new = alphabet[(alphabet.index(c) + 1) % len(alphabet)] if c in alphabet else "a"
    return s[:i] + new + s[i + 1:]


def string_mutations(s: str, rng: random.Random, budget: int) -> list[tuple[str, str]]:
    out = [(f"flip@{i}", _flip_char(s, i)) for i in _positions(s, rng, budget)]
    out += [("truncate-1", s[:-1]), ("truncate-half", s[: len(s) // 2]), ("empty", ""),
            ("garbage-after", s + "x"), ("garbage-before", "x" + s), ("upper", s.upper()),
            ("space-after", s + " ")]
    if len(s) >= 8 and _B64_RE.fullmatch(s) and len(s) % 4 == 0:
        raw = base64.b64decode(s)
        for i in sorted({0, len(raw) // 2, len(raw) - 1}):
            flipped = bytearray(raw)
            flipped[i] ^= 0x01
            out.append((f"bitflip@{i}", base64.b64encode(bytes(flipped)).decode()))
        out.append(("b64-truncate-4", s[:-4]))
        out.append(("b64-extra-block", s + "AAAA"))
    if _HEX_RE.fullmatch(s) and len(s) % 2 == 0 and s:
        out += [("hex-drop-byte", s[:-2]), ("hex-extra-byte", s + "00"),
                ("hex-bitflip-last", s[:-1] + _HEX[int(s[-1], 16) ^ 1])]
    return [(label, v) for label, v in out if v != s]


def bytes_mutations(b: bytes, rng: random.Random, budget: int) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for i in _positions(b.decode("latin-1"), rng, budget):
        flipped = bytearray(b)
        flipped[i] ^= 0x01
        out.append((f"flip@{i}", bytes(flipped)))
    out += [("truncate-1", b[:-1]), ("truncate-half", b[: len(b) // 2]), ("empty", b""),
            ("garbage-after", b + b"x"), ("garbage-before", b"x" + b), ("as-str", b.hex()),
            ("null", None)]
    return [(label, v) for label, v in out if v != b]


def value_mutations(v: Any, rng: random.Random, budget: int) -> list[tuple[str, Any]]:
    if isinstance(v, bytes):
        return bytes_mutations(v, rng, budget)
    if isinstance(v, bool):
        return [("not", not v), ("as-int", int(v)), ("null", None)]
    if isinstance(v, int):
        return [("+1", v + 1), ("-1", v - 1), ("negate", -v - 1), ("huge", 2**64 + v),
                ("as-str", str(v)), ("as-float", v + 0.5), ("null", None), ("as-bool", True)]
    if isinstance(v, float):
        return [("+1", v + 1), ("tiny", v * (1 + 1e-6) + 1e-9), ("as-str", repr(v)),
                ("as-int", int(v)), ("null", None)]
    if isinstance(v, str):
        muts: list[tuple[str, Any]] = list(string_mutations(v, rng, budget))
        return [*muts, ("as-int", 7), ("null", None), ("as-list", [v])]
    if v is None:
        return [("as-int", 0), ("as-str", "")]
    if isinstance(v, list):  # an empty list
        return [("one-item", [0]), ("null", None)]
    return [("extra-key", {"x": 1}), ("null", None)]  # an empty object


def container_mutations(v: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(v, dict) and v:
        for k in v:
            out.append((f"delete-key:{k}", {kk: vv for kk, vv in v.items() if kk != k}))
        out.append(("extra-key", {**v, "extra": 1}))
    elif isinstance(v, list) and v:
        out += [("drop-last", v[:-1]), ("drop-first", v[1:]), ("duplicate-first", [v[0], *v]),
                ("empty-list", [])]
        if len(v) >= 2:
            out.append(("swap-first", [v[1], v[0], *v[2:]]))
            out.append(("swap-last", [*v[:-2], v[-1], v[-2]]))
    return [(label, m) for label, m in out if m != v]


def mutations(
    doc: Any, seed: int, budget: Callable[[Path], int]
) -> Iterator[tuple[Path, str, Any]]:
    """(path, label, mutated document) for every leaf and container of ``doc``;
    ``budget(path)``: how many random character positions to flip in a long string."""
    rng = random.Random(seed)
    for path, v in walk(doc):
        if isinstance(v, dict | list) and v:
            muts = container_mutations(v)
        else:
            muts = value_mutations(v, rng, budget(path))
        for label, new in muts:
            yield path, label, replaced(doc, path, new)


def _budget(path: Path) -> int:
    """The checkpoint note is one string holding the whole log layer: flip more of it."""
    return 40 if path == ("checkpoint",) else 3


def to_doc(raw: bytes) -> dict[str, Any]:
    cert = parse_certificate(raw)
    return {"origin": cert.origin, "log_key": cert.log_key, "checkpoint": cert.checkpoint,
            "entries": [{"index": e.index, "data": e.data, "proof": list(e.proof)}
                        for e in cert.entries]}


def from_doc(doc: Any) -> bytes | None:
    """The v2 layout of a (mutated) document, unchecked; None if the layout cannot express
    it (a field of the wrong type, a missing key, a number out of its field's range)."""
    if not isinstance(doc, dict) or set(doc) != {"origin", "log_key", "checkpoint", "entries"}:
        return None
    try:
        texts = [doc[k].encode("utf-8") for k in ("origin", "log_key", "checkpoint")]
        out = [MAGIC, struct.pack(">H", len(texts[0])), texts[0],
               struct.pack(">H", len(texts[1])), texts[1],
               struct.pack(">I", len(texts[2])), texts[2], struct.pack(">I", len(doc["entries"]))]
        for e in doc["entries"]:
            if set(e) != {"index", "data", "proof"} or isinstance(e["index"], bool):
                return None
            out += [struct.pack(">QI", e["index"], len(e["data"])), bytes(e["data"]),
                    bytes([len(e["proof"])]), *(bytes(h) for h in e["proof"])]
            if not isinstance(e["data"], bytes) or any(not isinstance(h, bytes)
                                                       for h in e["proof"]):
                return None
    except (TypeError, KeyError, AttributeError, ValueError, struct.error, OverflowError):
        return None
    return b"".join(out)


def rejected(raw: bytes | None) -> tuple[bool, str]:
    if raw is None:
        return True, "not expressible in the v2 layout"
    try:
        report = verify_certificate(raw)
    except MalformedError as exc:
        return True, f"not a certificate: {exc}"
    if report.valid:
        return False, "ACCEPTED"
    return True, f"step {report.step}: {report.reason}"


def _fmt(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "<doc>"


# --------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CERTS)
def test_original_is_valid(verifier_run: Any, name: str) -> None:
    report = verify_certificate(verifier_run.cert(name))
    assert report.valid, f"step {report.step}: {report.reason}"


@pytest.mark.parametrize("name", CERTS)
def test_every_certificate_leaf_mutation_is_rejected(verifier_run: Any, name: str) -> None:
    doc = to_doc(verifier_run.cert(name))
    assert from_doc(doc) == verifier_run.cert(name)
    accepted: list[str] = []
    covered: set[Path] = set()
    count = 0
    for path, label, mutated in mutations(doc, seed=len(name), budget=_budget):
        ok, why = rejected(from_doc(mutated))
        count += 1
        covered.add(path)
        if not ok:
            accepted.append(f"{_fmt(path)} {label}")
    assert not accepted, f"{len(accepted)} of {count} mutations accepted: {accepted[:20]}"
    assert set(leaf_paths(doc)) <= covered
    assert count > 20 * len(doc["entries"])


@pytest.mark.parametrize("name", CERTS)
def test_whole_document_mutations_are_rejected(verifier_run: Any, name: str) -> None:
    raw = verifier_run.cert(name)
    variants: list[tuple[str, bytes]] = [
        ("garbage-before", b"x" + raw), ("garbage-after", raw + b"x"),
        ("second-document", raw + raw), ("bom", b"\xef\xbb\xbf" + raw), ("empty", b""),
        ("null", b"null"), ("list", b"[" + raw + b"]"), ("latin1", raw + b"\xff"),
        ("zero-after", raw + b"\x00"),
    ]
    for cut in (1, 2, 10, len(raw) // 3, len(raw) // 2, len(raw) - 3, len(raw) - 2,
                len(raw) - 1):
        variants.append((f"truncate@{cut}", raw[:cut]))
    for label, v in variants:
        ok, why = rejected(v)
        assert ok, f"{label}: {why}"
    # the layout has one spelling: parse and write back gives the same bytes
    assert parse_certificate(raw).to_bytes() == raw


def _inner_mutations(doc: dict[str, Any], seed: int) -> Iterator[tuple[int, Path, str, bytes]]:
    """(entry position, inner path, label, new leaf bytes) for every inner leaf/container."""
    import cbor2

    for pos, e in enumerate(doc["entries"]):
        inner = parse_cbor(e["data"])
        for path, label, mutated in mutations(inner, seed=seed + pos, budget=lambda _p: 3):
            try:
                data = cbor_bytes(mutated)
            except MalformedError:  # not encodable deterministically (huge int, ...)
                data = cbor2.dumps(mutated)
            yield pos, path, label, data


@pytest.mark.parametrize("name", CERTS)
def test_every_inner_entry_mutation_is_rejected(verifier_run: Any, name: str) -> None:
    doc = to_doc(verifier_run.cert(name))
    accepted: list[str] = []
    covered: dict[int, set[Path]] = {}
    count = 0
    for pos, path, label, data in _inner_mutations(doc, seed=7):
        m = copy.deepcopy(doc)
        m["entries"][pos]["data"] = data
        ok, why = rejected(from_doc(m))
        count += 1
        covered.setdefault(pos, set()).add(path)
        if not ok:
            accepted.append(f"entries[{pos}]{_fmt(path)} {label}")
    assert not accepted, f"{len(accepted)} of {count} inner mutations accepted: {accepted[:20]}"
    for pos, e in enumerate(doc["entries"]):
        inner = parse_cbor(e["data"])
        assert set(leaf_paths(inner)) <= covered[pos], f"entry {pos} not fully covered"


# --------------------------------------------------------------------------------------
# inner mutations inside a log rebuilt by an adversary holding the log's keys
# --------------------------------------------------------------------------------------


def _normalised(kind: str, role: str | None, path: Path) -> tuple[Any, ...]:
    """A path with list positions collapsed: one representative per field of a kind."""
    return (kind, role, *("*" if isinstance(p, int) else p for p in path))


#: leaf mutation families tried once per normalised path in a rebuilt log (each costs a
#: verification up to the step that catches it); every container family is tried too.
_REBUILT_FAMILIES = {"flip", "truncate-1", "as-int", "+1", "as-str", "not", "tiny", "null"}
_CONTAINER_FAMILIES = ("delete-key", "drop-", "swap-", "duplicate-", "empty-list", "extra-key")


@pytest.fixture(scope="module")
def adversary(verifier_run: Any) -> Adversary:
    return Adversary(verifier_run.base_dir, verifier_run.origin)


@pytest.mark.parametrize("name", CERTS)
def test_inner_mutations_in_a_rebuilt_log_are_rejected(verifier_run: Any,
                                                       adversary: Adversary,
                                                       name: str) -> None:
    """The log layer (inclusion, checkpoint, cosignatures) is forged around each mutated
    entry, so it passes; the entry's own checks (steps 5-15) must reject it.  One mutation
    per normalised field path (list positions collapsed) and per mutation family, cycling."""
    raw = verifier_run.cert(name)
    doc = to_doc(raw)
    base = Forgery(adversary, raw)
    indices = sorted(base.items)
    seen: set[tuple[Any, ...]] = set()
    accepted: list[str] = []
    log_layer: list[str] = []
    count = 0
    for pos, path, label, data in _inner_mutations(doc, seed=11):
        inner = parse_cbor(doc["entries"][pos]["data"])
        key = _normalised(inner["kind"], inner.get("role"), path)
        family = label.split("@")[0]
        if family not in _REBUILT_FAMILIES and not family.startswith(_CONTAINER_FAMILIES):
            continue
        if (key, family) in seen:
            continue
        seen.add((key, family))
        f = copy.copy(base)
        f.items = dict(base.items)
        f.log_overrides = {}
        f.put(indices[pos], data)
        ok, why = rejected(f.build())
        count += 1
        where = f"entries[{pos}]({inner['kind']}){_fmt(path)} {label}"
        if not ok:
            accepted.append(where)
        elif why.startswith(("step 2:", "step 3:", "step 4:")):
            log_layer.append(f"{where}: {why}")
    assert not accepted, f"{len(accepted)} of {count} accepted in a rebuilt log: {accepted[:20]}"
    assert not log_layer, f"caught only by the log layer: {log_layer[:10]}"
    assert count > 50
