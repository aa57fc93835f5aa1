"""RFC 9162 Merkle tree hashing and proofs, as pure functions.

Hashing (RFC 9162 §2.1.1) with SHA-256::

    MTH({})      = SHA-256()
    leaf hash    = SHA-256(0x00 || d)                 (``LEAF_PREFIX``)
    node hash    = SHA-256(0x01 || left || right)     (``NODE_PREFIX``)
    MTH(D[n])    = node(MTH(D[0:k]), MTH(D[k:n])),  k = largest power of two < n

Proof *structure* is computed without any hash: every element of an inclusion proof
(§2.1.3.1 ``PATH``) or consistency proof (§2.1.4.1 ``PROOF``/``SUBPROOF``) is the root of a
leaf range ``[a, b)``, and every such range is the right-fold of its *perfect subtrees*
(aligned blocks of ``2**level`` leaves, named ``(level, index)``).  Generation therefore only
needs an accessor ``subtree(level, index) -> bytes``, which the SQLite store serves from
stored interior nodes in O(log n) reads (:mod:`statledger.ledger.store`); the list-based helpers
here
build that accessor over an in-memory list of leaf hashes.

Verification follows the RFC 9162 algorithms (§2.1.3.2 inclusion, §2.1.4.2 consistency)
and **raises**: :class:`RootMismatchError` (naming expected and calculated roots) when the
recomputed root differs, :class:`ProofError` for a proof that cannot be right for the stated
sizes (wrong number of elements, index out of range, ``sn != 0``), and
:class:`~statledger.proofs.errors.MalformedError` for hashes that are not 32 bytes.

Stated preconditions (all enforced with an explicit error):

* inclusion: ``0 <= index < size``; the proof has exactly ``len(PATH(index, size))``
  elements; a size-1 tree has the empty proof and root == leaf hash.
* consistency: ``0 < size1 <= size2``; ``size1 == 0`` is refused (a consistency proof from
  the empty tree proves nothing -- RFC 9162 §2.1.4 defines proofs only for ``0 < m``);
  ``size1 == size2`` requires the empty proof and ``root1 == root2``; otherwise the proof has
  exactly ``len(PROOF(size1, size2))`` elements and is non-empty.
* every root, leaf hash and proof element is exactly ``HASH_SIZE`` (32) bytes.  This also
  applies to the ``size1 == size2`` case, where a lenient verifier would only compare the two
  byte strings (see docs/ledger.md on the 12-byte placeholder probe).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from statledger.proofs.errors import MalformedError, VerificationError

__all__ = [
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "EMPTY_ROOT",
    "ProofError",
    "RootMismatchError",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "perfect_subtrees",
    "fold_subtrees",
    "inclusion_plan",
    "consistency_plan",
    "build_proof",
    "inclusion_proof",
    "consistency_proof",
    "verify_inclusion",
    "verify_consistency",
    "root_from_inclusion",
]

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1: leaf hashes are SHA-256(0x00 || leaf)
NODE_PREFIX = b"\x01"  # RFC 9162 §2.1.1: interior nodes are SHA-256(0x01 || left || right)
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()

_sha256 = hashlib.sha256

Subtree = tuple[int, int]
"""A perfect subtree ``(level, index)``: leaves ``[index << level, (index + 1) << level)``."""

LeafRange = tuple[int, int]
"""A half-open leaf range ``[a, b)`` whose RFC 9162 MTH is one proof element."""


class ProofError(VerificationError):
    """A proof that cannot be valid for the stated sizes (length, range, ``sn != 0``)."""


class RootMismatchError(VerificationError):
    """The root recomputed from a proof differs from the expected root."""

    def __init__(self, what: str, expected: bytes, calculated: bytes, *, step: str) -> None:
        self.expected = expected
        self.calculated = calculated
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, calculated {calculated.hex()}",
            step=step,
        )


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 §2.1.1 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _largest_pow2_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(a: int, b: int) -> list[Subtree]:
    """The perfect subtrees of the RFC 9162 split of ``[a, b)``, left to right.

    Precondition (always true for ranges produced by PATH/PROOF): ``a`` is a multiple of the
    largest power of two ``<= b - a``, so the RFC recursion splits ``[a, b)`` into the blocks of
    the binary expansion of ``b - a``, largest first.
    """
    if not 0 <= a < b:
        raise ValueError(f"empty or negative leaf range [{a}, {b})")
    out: list[Subtree] = []
    n = b - a
    pos = a
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            if pos & ((1 << level) - 1):
                raise ValueError(f"leaf range [{a}, {b}) is not aligned")
            out.append((level, pos >> level))
            pos += 1 << level
    return out


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """Right-fold perfect subtree hashes (left to right) into the range's MTH."""
    if not hashes:
        raise ValueError("no subtree hashes to fold")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_plan(index: int, size: int) -> list[LeafRange]:
    """Leaf ranges of RFC 9162 §2.1.3.1 ``PATH(index, D[size])``, leaf to root."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}", step="inclusion")
    outer: list[LeafRange] = []
    m, n, off = index, size, 0
    while n > 1:
        k = _largest_pow2_below(n)
        if m < k:
            outer.append((off + k, off + n))
            n = k
        else:
            outer.append((off, off + k))
            m -= k
            off += k
            n -= k
    outer.reverse()
    return outer


def consistency_plan(size1: int, size2: int) -> list[LeafRange]:
    """Leaf ranges of RFC 9162 §2.1.4.1 ``PROOF(size1, D[size2])``, in proof order.

    Requires ``0 < size1 <= size2``; equal sizes give the empty proof.
    """
    if not 0 < size1 <= size2:
        raise ProofError(
            f"consistency needs 0 < size1 <= size2, got size1={size1} size2={size2}",
            step="consistency",
        )
    outer: list[LeafRange] = []
    m, n, off, complete = size1, size2, 0, True
    while m != n:
        k = _largest_pow2_below(n)
        if m <= k:
            outer.append((off + k, off + n))
            n = k
        else:
            outer.append((off, off + k))
            m -= k
            off += k
            n -= k
            complete = False
    if not complete:
        outer.append((off, off + n))
    outer.reverse()
    return outer


def build_proof(plan: Sequence[LeafRange], subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """Materialise a proof plan with a perfect-subtree accessor ``subtree(level, index)``."""
    return [fold_subtrees([subtree(lv, ix) for lv, ix in perfect_subtrees(a, b)]) for a, b in plan]


def _list_accessor(leaf_hashes: Sequence[bytes]) -> Callable[[int, int], bytes]:
    cache: dict[Subtree, bytes] = {}

    def subtree(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hashes[index]
        key = (level, index)
        got = cache.get(key)
        if got is None:
            got = node_hash(subtree(level - 1, 2 * index), subtree(level - 1, 2 * index + 1))
            cache[key] = got
        return got

    return subtree


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 9162 MTH over a list of leaf hashes (the empty list gives ``EMPTY_ROOT``)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    parts = []
    for level, index in perfect_subtrees(0, n):
        row = list(leaf_hashes[index << level : (index + 1) << level])
        while len(row) > 1:
            it = iter(row)
            row = [_sha256(NODE_PREFIX + a + b).digest() for a, b in zip(it, it, strict=True)]
        parts.append(row[0])
    return fold_subtrees(parts)


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof of leaf ``index`` in the tree of ``leaf_hashes``."""
    return build_proof(inclusion_plan(index, len(leaf_hashes)), _list_accessor(leaf_hashes))


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof from ``size1`` to ``len(leaf_hashes)``."""
    return build_proof(consistency_plan(size1, len(leaf_hashes)), _list_accessor(leaf_hashes))


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise MalformedError(f"{what} must be {HASH_SIZE} bytes, got {got}")


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 64:
        raise MalformedError(f"{what} must be an integer in [0, 2^64), got {value!r}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-4: the root implied by an inclusion proof (raises on misuse)."""
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    _check_hash(leaf, "leaf hash")
    for i, p in enumerate(proof):
        _check_hash(p, f"inclusion proof element {i}")
    if index >= size:
        raise ProofError(f"leaf index {index} out of range for tree size {size}", step="inclusion")
    want = len(inclusion_plan(index, size))
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof has {len(proof)} elements, expected {want} for index {index} "
            f"in tree size {size}",
            step="inclusion",
        )
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:  # step 4a
            raise ProofError("inclusion proof longer than the path (sn == 0)", step="inclusion")
        if fn & 1 or fn == sn:  # step 4b
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # step 4c
        sn >>= 1
    if sn != 0:  # step 5
        raise ProofError("inclusion proof shorter than the path (sn != 0)", step="inclusion")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: check that ``leaf`` (a leaf *hash*) is at ``index`` in ``root``.

    Returns None or raises :class:`ProofError`, :class:`RootMismatchError` or
    :class:`~statledger.proofs.errors.MalformedError`.
    """
    _check_hash(root, "root")
    calculated = root_from_inclusion(index, size, leaf, proof)
    if calculated != root:
        raise RootMismatchError("inclusion root", root, calculated, step="inclusion")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: check that the tree ``(size2, root2)`` extends ``(size1, root1)``.

    Returns None or raises :class:`ProofError`, :class:`RootMismatchError` or
    :class:`~statledger.proofs.errors.MalformedError`.
    """
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    for i, p in enumerate(proof):
        _check_hash(p, f"consistency proof element {i}")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) < size1 ({size1})", step="consistency")
    if size1 == 0:
        raise ProofError(
            "size1 is 0: consistency with the empty tree proves nothing", step="consistency"
        )
    if size1 == size2:
        if proof:
            raise ProofError(
                f"size1 == size2 but the proof has {len(proof)} elements", step="consistency"
            )
        if root1 != root2:
            raise RootMismatchError("equal-size root", root1, root2, step="consistency")
        return
    want = len(consistency_plan(size1, size2))
    if len(proof) != want:
        raise ProofError(
            f"consistency proof has {len(proof)} elements, expected {want} for sizes "
            f"{size1} -> {size2}",
            step="consistency",
        )
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            raise ProofError("consistency proof longer than the path (sn == 0)", step="consistency")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 7
        raise ProofError("consistency proof shorter than the path (sn != 0)", step="consistency")
    if fr != root1:
        raise RootMismatchError("first root", root1, fr, step="consistency")
    if sr != root2:
        raise RootMismatchError("second root", root2, sr, step="consistency")
