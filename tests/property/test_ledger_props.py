"""Property tests: for random batch splits, the store's roots and proofs equal the pure RFC
9162 functions and verify; a random single-bit corruption of any proof is rejected."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from statledger.ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from statledger.ledger.store import LedgerStore
from statledger.proofs.errors import StatledgerError


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=90), min_size=1, max_size=6),
    stride=st.integers(min_value=1, max_value=4),
    data=st.data(),
)
def test_store_matches_pure_functions(batches: list[int], stride: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = LedgerStore(Path(tmp) / "p.db", "prop.example/log", bytes(32), stride=stride)
        leaves: list[bytes] = []
        for count in batches:
            base = len(leaves)
            s.append_many([("p", b"%d" % (base + i)) for i in range(count)])
            leaves += [leaf_hash(b"%d" % (base + i)) for i in range(count)]
        n = len(leaves)
        assert s.root() == root_from_leaf_hashes(leaves)
        size = data.draw(st.integers(min_value=1, max_value=n))
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        size1 = data.draw(st.integers(min_value=1, max_value=size))
        root = s.root(size)
        p = s.inclusion_proof(index, size)
        assert p == inclusion_proof(index, leaves[:size])
        verify_inclusion(index, size, leaves[index], p, root)
        c = s.consistency_proof(size1, size)
        assert c == consistency_proof(size1, leaves[:size])
        verify_consistency(size1, size, s.root(size1), root, c)
        if p:
            k = data.draw(st.integers(min_value=0, max_value=len(p) - 1))
            bit = data.draw(st.integers(min_value=0, max_value=255))
            bad = list(p)
            bad[k] = (int.from_bytes(bad[k], "big") ^ (1 << bit)).to_bytes(32, "big")
            try:
                verify_inclusion(index, size, leaves[index], bad, root)
            except StatledgerError:
                pass
            else:
                raise AssertionError("bit-flipped inclusion proof accepted")
        if c:
            k = data.draw(st.integers(min_value=0, max_value=len(c) - 1))
            bad = list(c)
            bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
            try:
                verify_consistency(size1, size, s.root(size1), root, bad)
            except StatledgerError:
                pass
            else:
                raise AssertionError("bit-flipped consistency proof accepted")
        s.close()
