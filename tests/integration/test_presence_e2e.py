"""Presence by PET and a gated histogram, end to end through real processes (issue 12).

The session cluster (tests/integration/conftest.py: 1 ledger, 3 compute nodes, 4 hospitals
holding the bundled diabetes sites, 1 querier; real processes over HTTP on loopback) runs two
exact queries and a reviewer verifies both certificates offline:

* ``set_union`` of ``sex`` over a declared universe with one element nobody has: the PET
  (``k = 1``) tests every per-element provider count for zero and *nothing* is decrypted --
  no decryption entry, no total in the result entry or the certificate; the members equal
  numpy's;
* a ``histogram`` of ``bmi`` whose last bin holds one person of the whole federation (bmi >=
  42, site 3): the bin and its complement (the first bin, by position) are withheld, only the
  other three bins are decrypted; every decryption entry covers exactly the released
  ciphertexts, and the result entry publishes exactly the released bins' counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from statledger.protocol import datasets, entries, suppression
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries

BINS = [10, 20, 25, 30, 42, 60]


def _pooled() -> dict[str, np.ndarray]:
    rows = [datasets.load("diabetes", s) for s in datasets.sites("diabetes")]
    return {k: np.concatenate([r[k] for r in rows]) for k in ("sex", "bmi")}


def _cert_entries(outcome: Any) -> list[entries.Entry]:
    return [entries.Entry.from_bytes(e.data) for e in outcome.certificate.entries]


@pytest.fixture(scope="module")
def runs(e2e_cluster: Any, e2e_querier: Any) -> dict[str, Any]:
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    trust = TrustPolicy(e2e_cluster.genesis, "the presence test's trust")
    union = QuerySpec.parse({
        "version": 1, "statistic": "set_union", "columns": ["sex"],
        "categories": {"sex": ["1", "2", "3"]}, "bounds": {"bmi": [10, 60]},
        "filters": [{"column": "bmi", "op": ">=", "value": 25}], "max_rows": 1000})
    hist = QuerySpec.parse({
        "version": 1, "statistic": "histogram", "columns": ["bmi"],
        "bounds": {"bmi": [10, 60]}, "params": {"bins": BINS}, "min_cell_size": 5,
        "max_rows": 1000})
    out: dict[str, Any] = {}
    for name, spec in (("union", union), ("hist", hist)):
        outcome = e2e_querier.run(spec, datasets="diabetes")
        report = verify_certificate(outcome.certificate.to_bytes(), trust)
        assert report.valid, (name, report.step, report.reason)
        rows = e2e_querier.ledger.query_entries(spec.query_id_for("querier"))
        out[name] = (spec, outcome, rows)
    return out


def test_set_union_decrypts_nothing_and_matches_numpy(runs: dict[str, Any]) -> None:
    spec, outcome, rows = runs["union"]
    assert suppression.gated(spec) and get_statistic("set_union").gate_k(spec) == 1
    pooled = _pooled()
    held = {str(int(s)) for s in pooled["sex"][pooled["bmi"] >= 25]}
    res = outcome.result.to_dict()
    assert res["members"] == [e for e in ["1", "2", "3"] if e in held] and "3" not in held
    assert "providers" not in res and "counts" not in res
    view = parse_entries(rows)
    assert view.release is not None
    rel = view.release[1]
    assert rel.small_bits() == [e not in held for e in ["1", "2", "3"]]
    assert rel.released == () and rel.ciphertexts == 0
    # one candidate per element (k = 1) in every PET step, whatever min_cell_size (5) says
    assert all(e.cells == 3 and len(e.blinded) == 3 for _, e in view.pets)
    # the per-element provider counts were never decrypted: no decryption entry, no total,
    # on the log or in the certificate
    assert not view.decryptions and view.result is not None
    assert view.result[1].totals == () and view.result[1].decryptors == ()
    in_cert = _cert_entries(outcome)
    assert not any(isinstance(e, entries.DecryptionEntry) for e in in_cert)
    assert all(e.totals == () for e in in_cert if isinstance(e, entries.ResultEntry))


def test_the_one_row_bin_is_never_decrypted(runs: dict[str, Any]) -> None:
    spec, outcome, rows = runs["hist"]
    pooled = _pooled()
    counts = np.histogram(pooled["bmi"], bins=BINS)[0].tolist()
    assert counts[-1] == 1  # the premise: one person in the last bin
    res = outcome.result.to_dict()
    # the one-row bin and its complement (the first bin by position) are withheld
    assert res["counts"] == [None, *counts[1:4], None]
    assert res["total_published"] == sum(counts[1:4])
    view = parse_entries(rows)
    assert view.release is not None
    rel = view.release[1]
    assert rel.small_bits() == [False, False, False, False, True]
    assert rel.released == (1, 2, 3)
    # what is on the log: the released bins' totals, and shares of their ciphertexts only
    assert view.result is not None and view.result[1].totals_int() == counts[1:4]
    assert view.aggregate is not None
    # one 16-bit limb per bin (max_rows 1000): the aggregate has one ciphertext per bin
    assert len(view.aggregate[1].decode_ciphertexts()) == len(counts)
    assert view.decryptions
    assert all(len(d.shares) == 3 for _, d in view.decryptions)
    for e in _cert_entries(outcome):
        if isinstance(e, entries.ResultEntry):
            assert e.totals_int() == counts[1:4]
