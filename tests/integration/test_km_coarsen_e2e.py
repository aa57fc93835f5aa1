"""Kaplan-Meier coarsened before decryption, end to end through real processes (issue 12,
item 5): three owners (``statledger.local``: a ledger, 3 compute nodes with a 2-of-3 key,
one owner per site, HTTP on loopback), a 20-point grid, ``min_cell_size = 3``.

* the honest run: the PET gates every (group, grid point) events count; the release entry
  merges the small intervals; the certificate verifies; the result equals the in-process
  decode of what the rule releases (lifelines on the coarsened rows: tests/unit/
  test_km_coarsen.py); the one patient who dies alone at the last grid point, and every
  fine count of a merged interval, appear nowhere: the log carries only the group sums
  (decode every certificate entry: no total but the sums, no event count below k, no
  decryption share count beyond the sums' ciphertexts);
* the same curve asked again with another ``min_cell_size`` (another query id) on the same
  owners: refused by the owners' differencing history (its one-row cells differ from the
  first query's other cells by fewer than k rows; there is no repeat exemption:
  protocol/history.py), before anything is encrypted;
* a querier (this process) whose release rule frees a small interval alone, on a cluster
  of its own (fresh owner histories, so the query reaches the gate): every compute node
  (separate processes, the honest rule) refuses to decrypt, naming step 12 and the
  querier; nothing is decrypted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import statledger
from statledger.protocol import entries as E
from statledger.protocol import suppression
from statledger.protocol.checks import results_match
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.protocol.view import parse_entries
from statledger.verifier.certificate import parse_certificate
from statledger.verifier.verify import load_trust, verify_certificate

KM = get_statistic("kaplan_meier")
K = 3
W = 1 + 2 * 20  # one group's layout: rows after the grid, then (d, c) per grid point


def _pooled() -> pd.DataFrame:
    """Arm a: 40 patients, events spread thinly over t = 1..19 (many intervals with fewer
    than 3 events), and ONE patient who dies alone at t = 20, the last grid point.  Arm b:
    30 patients, 4 events at t = 5 and t = 10 each, the rest censored at t = 15."""
    rng = np.random.default_rng(2026)
    ta = rng.integers(1, 20, 39).astype(float)
    ea = (rng.random(39) < 0.6).astype(float)
    tb = np.array([5.0] * 4 + [10.0] * 4 + [15.0] * 22)
    eb = np.array([1.0] * 8 + [0.0] * 22)
    return pd.DataFrame({
        "time": np.concatenate([ta, [20.0], tb]),
        "event": np.concatenate([ea, [1.0], eb]),
        "arm": ["a"] * 40 + ["b"] * 30,
    })


def _sites(pooled: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {f"site{k + 1}": pooled.iloc[k::3].reset_index(drop=True) for k in range(3)}


def _kw(k: int) -> dict[str, Any]:
    return {"max_time": 20, "max_ties": 15, "group_by": ["arm"],
            "categories": {"arm": ["a", "b"]}, "max_rows": 100, "min_cell_size": k}


@pytest.fixture(scope="module")
def session() -> Iterator[statledger.Session]:
    with statledger.local(_sites(_pooled()), compute=3, threshold=2) as s:
        yield s


@pytest.fixture(scope="module")
def fresh() -> Iterator[statledger.Session]:
    """A second cluster: owners whose histories hold no earlier answer."""
    with statledger.local(_sites(_pooled()), compute=3, threshold=2) as s:
        yield s


def _clear(spec: QuerySpec) -> list[int]:
    tot = [0] * len(KM.layout(spec))
    for df in _sites(_pooled()).values():
        table = {c: (df[c].to_numpy(dtype=object) if c == "arm" else df[c].to_numpy(float))
                 for c in df.columns}
        tot = [a + b for a, b in zip(tot, KM.encode(spec, table), strict=True)]
    return tot


def test_the_coarsened_curve_verifies_and_no_fine_count_is_on_the_log(
        session: statledger.Session, tmp_path: Path) -> None:
    res = session.kaplan_meier("time", "event", **_kw(K))
    cert = res.certificate.to_bytes()
    trust = tmp_path / "trust.json"
    session.save_trust(trust)
    verify_certificate(cert, load_trust(trust)).raise_for_invalid()

    got = res.to_dict()
    entries = [E.Entry.from_bytes(e.data) for e in parse_certificate(cert).entries]
    query = next(e for e in entries if isinstance(e, E.QueryEntry))
    spec = QuerySpec.parse(query.spec)
    assert spec.min_cell_size == K and suppression.gated(spec)
    clear = _clear(spec)
    expected = KM.decode(spec, suppression.released_totals(spec, clear)).to_dict()
    assert results_match(expected, got) is None, results_match(expected, got)

    a, b = got["groups"]
    assert a["n"] == 40 and b["n"] == 30
    assert 20.0 not in a["times"] and 20.0 in a["truncated"] and a["merged"]
    assert min(a["events"][1:]) >= K and b["events"][1:] == [4, 4]
    assert clear[1 + 2 * 19] == 1  # the premise: one death alone at t = 20 in arm a

    # every entry of the certificate, decoded: the only counts are the group sums
    rel = next(e for e in entries if isinstance(e, E.ReleaseEntry))
    result = next(e for e in entries if isinstance(e, E.ResultEntry))
    agg = next(e for e in entries if isinstance(e, E.AggregateEntry))
    decision = suppression.decide(spec, rel.small_bits())
    assert rel.released == decision.released and rel.merged == decision.merged
    groups = decision.groups()
    sums = [sum(clear[j] for j in g) for g in groups]
    assert result.totals_int() == sums  # nothing but the sums is published
    members = {j for g in groups if len(g) > 1 for j in g}
    assert {1 + 2 * 19} <= members  # the lone death: only inside the tail sum
    for target, total in zip(rel.released, result.totals_int(), strict=True):
        if (target % W) % 2 == 1:  # an events sum
            assert total >= K
    n_agg = len(agg.decode_ciphertexts())
    for e in entries:
        if isinstance(e, E.DecryptionEntry):
            assert len(e.shares) == rel.ciphertexts < n_agg
        assert not isinstance(e, E.ResultEntry) or e is result
    # the result's decoded groups: no row of a merged or truncated point
    for grp in result.result["groups"]:
        if not grp["suppressed"]:
            assert min(grp["events"][1:]) >= K
            assert not set(grp["times"]) & (set(grp["merged"]) | set(grp["truncated"]))


def test_the_same_curve_asked_again_is_refused_by_the_owners(
        session: statledger.Session) -> None:
    """Runs after the honest run on the same owners: asking its small cells again under
    another query id is a differencing refusal (no repeat exemption), with no count."""
    session.kaplan_meier("time", "event", **_kw(K))  # the honest run, or its resume
    with pytest.raises(Exception) as ei:  # noqa: PT011 -- the API's error type is wrapped
        session.kaplan_meier("time", "event", **_kw(K + 1))
    msg = str(ei.value)
    assert "differ from those of the earlier exact query" in msg, msg
    assert "differential privacy" in msg
    reasons = re.findall(r"contribute: ([^;]*)", msg)
    assert len(reasons) == 3, msg  # every owner refuses, before anything is encrypted
    for reason in reasons:  # no count: only the earlier query's id prefix
        assert not re.search(r"\b\d+\b", re.sub(r"query [0-9a-f]{16}\.\.\.", "", reason)), reason


def test_a_querier_that_frees_a_small_interval_is_refused_by_every_node(
        fresh: statledger.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """The querier process is the adversary: its release splits a small interval off its
    merged group (decrypted alone).  The compute nodes re-derive the rule and refuse."""
    real = suppression.decide
    seen: dict[str, Any] = {}

    def split_one(spec: QuerySpec, small: Any) -> suppression.Release:
        honest = real(spec, small)
        target, first, *rest = honest.merged[0]
        merged = ((target, *rest), *honest.merged[1:]) if rest else honest.merged[1:]
        seen["spec"] = spec
        return suppression.Release(honest.small, tuple(sorted((*honest.released, first))),
                                   merged)

    monkeypatch.setattr("statledger.nodes.querier.suppression.decide", split_one)
    with pytest.raises(Exception) as ei:  # noqa: PT011 -- the API's error type is wrapped
        fresh.kaplan_meier("time", "event", **_kw(K + 1))
    msg = str(ei.value)
    assert "step 12" in msg and "release" in msg, msg
    querier = fresh._querier  # noqa: SLF001 -- the test reads the log the querier sees
    qid = seen["spec"].query_id_for(querier.party_id)
    view = parse_entries(querier.ledger.query_entries(qid))
    assert view.release is not None
    honest = real(seen["spec"], view.release[1].small_bits())
    assert view.release[1].released != honest.released  # the forged decision is logged...
    assert not view.decryptions and view.result is None  # ...and nobody decrypted
