"""Compact certificates (issue 16) and the caches of what a party already checked.

A certificate leaves out the shares no step combines (``verifier.certificate.left_out``):
the decryption entries of the nodes the result does not name and the gate entries of the
nodes the release decision does not name.  The verifier recomputes everything from what the
certificate carries; these tests play the querier that assembles the certificate (it drops,
adds, duplicates or reorders share entries) against one real 2-of-3 cluster on loopback
(the entries and inclusion proofs are the ledger's own, under one cosigned checkpoint).

The caches (Ed25519 keys and signatures, decoded entries, a follower's proven entries) are
played against by forging bytes at the same position: what differs from what was checked
is checked again, and refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from forge import ForgingLedger

from statledger.nodes.follower import LogFollower
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.proofs.signatures import ED25519_L, SigningKey, VerifyKey
from statledger.protocol.entries import DecryptionEntry, Entry, GateEntry
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import parse_entries
from statledger.verifier.certificate import (
    CertEntry,
    Certificate,
    left_out,
)
from statledger.verifier.verify import TrustPolicy, verify_certificate

HOSPITALS = ("hospital-a", "hospital-b")
MEAN = {"version": 1, "statistic": "mean", "columns": ["bmi"], "bounds": {"bmi": [15.0, 50.0]},
        "max_rows": 1000, "min_cell_size": 1}
CROSSTAB = {"version": 1, "statistic": "crosstab", "group_by": ["group"],
            "categories": {"group": ["control", "miR-137"]}, "bounds": {"time": [0.0, 80.0]},
            "params": {"value": "time"}, "min_cell_size": 2, "max_rows": 1000}


@dataclass
class Run:
    trust: TrustPolicy
    compact: dict[str, Certificate]
    full: dict[str, Certificate]
    cluster: Any


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from statledger.nodes.demo import provider_datasets, querier_for, start_cluster

    work = tmp_path_factory.mktemp("compact")
    policy = work / "policy.json"
    policy.write_text(json.dumps({"budget_rho": 10.0}), encoding="utf-8")
    providers = {p: d for p, d in provider_datasets().items() if p in HOSPITALS}
    cluster = start_cluster(work / "cluster", providers, n_compute=3, threshold=2,
                            policies=dict.fromkeys(providers, policy))
    try:
        out = Run(TrustPolicy(cluster.genesis, "the test cluster"), {}, {}, cluster)
        with querier_for(cluster) as q:
            for name, dataset, spec in (("mean", "diabetes", MEAN),
                                        ("crosstab", "waltons", CROSSTAB)):
                outcome = q.run(QuerySpec.parse(spec), datasets=dataset)
                out.compact[name] = outcome.certificate
                # the querier goes on once T nodes answered: wait for the third node's
                # shares to be logged too, so the full certificate has something to leave out
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    view = q.follower.query_view(outcome.query_id)
                    if len(view.decryptions) == 3 and (not view.gates or len(view.gates) == 3):
                        break
                    time.sleep(0.5)
                out.full[name] = q.certificate(outcome.query_id, compact=False)
        yield out
    finally:
        cluster.stop()


def _view(cert: Certificate) -> Any:
    return parse_entries([(e.index, e.data) for e in cert.entries])


def _rebuilt(cert: Certificate, records: list[CertEntry]) -> bytes:
    """The certificate with these records (written as given: no sorting)."""
    return Certificate(cert.origin, cert.log_key, cert.checkpoint, tuple(records)).to_bytes()


def _raw(cert: Certificate, records: list[CertEntry]) -> bytes:
    """The certificate's bytes with these records, in this order (bypasses the writer's own
    checks, to hand the parser what a hostile querier could write)."""
    head = cert.to_bytes()
    count_at = len(head) - sum(8 + 4 + len(e.data) + 1 + 32 * len(e.proof)
                               for e in cert.entries) - 4
    body = [head[:count_at], len(records).to_bytes(4, "big")]
    for e in records:
        body += [e.index.to_bytes(8, "big"), len(e.data).to_bytes(4, "big"), e.data,
                 bytes([len(e.proof)]), *e.proof]
    return b"".join(body)


def _compact_of(full: Certificate) -> list[CertEntry]:
    drop = left_out(_view(full))
    return [e for e in full.entries if e.index not in drop]


def _shares(cert: Certificate, kind: type[Entry]) -> dict[str, CertEntry]:
    out = {}
    for e in cert.entries:
        entry = Entry.from_bytes(e.data)
        if isinstance(entry, kind):
            out[entry.node] = e  # type: ignore[attr-defined]
    return out


def _check(raw: bytes, trust: TrustPolicy, step: int, words: str) -> None:
    report = verify_certificate(raw, trust)
    assert not report.valid, "a tampered certificate verified"
    assert report.step == step, (report.step, report.reason)
    assert words in (report.reason or ""), report.reason


# -- what is left out, and that both forms verify --------------------------------------------


def test_compact_certificate_is_the_full_one_without_the_uncombined_shares(run: Run) -> None:
    for name in ("mean", "crosstab"):
        compact, full = run.compact[name], run.full[name]
        for cert in (compact, full):
            report = verify_certificate(cert.to_bytes(), run.trust)
            assert report.valid, (name, report.step, report.reason)
        view = _view(full)
        drop = left_out(view)
        named = set(view.result[1].decryptors)
        assert len(named) == 2
        dropped_dec = {i for i, d in view.decryptions if d.node not in named}
        assert dropped_dec <= drop
        assert {e.index for e in compact.entries} == {e.index for e in full.entries} - drop
        assert len(compact.to_bytes()) < len(full.to_bytes())
    # the gated query also leaves out the gate shares of the node the release does not name
    view = _view(run.full["crosstab"])
    assert view.release is not None
    gated = set(view.release[1].decryptors)
    assert len(gated) == 2 and any(g.node not in gated for _, g in view.gates)
    assert {i for i, g in view.gates if g.node not in gated} <= left_out(view)


def test_nothing_is_left_out_without_a_result() -> None:
    assert left_out(parse_entries([])) == set()


# -- reject twins: dropped, extra, duplicated, reordered share entries ------------------------


def test_dropped_named_decryption_entry_fails_step_12(run: Run) -> None:
    full = run.full["mean"]
    named = _view(full).result[1].decryptors
    for node in named:
        idx = _shares(full, DecryptionEntry)[node].index
        records = [e for e in _compact_of(full) if e.index != idx]
        _check(_rebuilt(full, records), run.trust, 12,
               f"the result names {node}, which logged no decryption shares")


def test_dropped_named_gate_entry_fails_step_12(run: Run) -> None:
    full = run.full["crosstab"]
    rel = _view(full).release
    assert rel is not None
    node = rel[1].decryptors[0]
    idx = _shares(full, GateEntry)[node].index
    records = [e for e in _compact_of(full) if e.index != idx]
    _check(_rebuilt(full, records), run.trust, 12,
           f"the release decision names {node}, which logged no gate shares")


def test_extra_decryption_entry_genuine_verifies_forged_fails(run: Run) -> None:
    full = run.full["mean"]
    named = set(_view(full).result[1].decryptors)
    (other,) = [e for n, e in _shares(full, DecryptionEntry).items() if n not in named]
    compact = _compact_of(full)
    # the genuine entry back in: it is on the log, so the certificate still verifies
    report = verify_certificate(
        _rebuilt(full, sorted([*compact, other], key=lambda e: e.index)), run.trust)
    assert report.valid, (report.step, report.reason)
    # the same index with one byte of its shares flipped: not in the log (step 4)
    data = bytearray(other.data)
    data[len(data) // 2] ^= 1
    forged = CertEntry(other.index, bytes(data), other.proof)
    _check(_rebuilt(full, sorted([*compact, forged], key=lambda e: e.index)), run.trust, 4,
           f"entry {other.index} is not in the log")


def test_duplicated_decryption_entry_is_refused(run: Run) -> None:
    full = run.full["mean"]
    compact = _compact_of(full)
    shares = _shares(full, DecryptionEntry)
    named = sorted(_view(full).result[1].decryptors)
    first = shares[named[0]]
    # the same record twice: the file itself is refused (indices strictly increase)
    pos = compact.index(first)
    with pytest.raises(MalformedError, match="strictly increasing"):
        verify_certificate(_raw(full, [*compact[:pos + 1], first, *compact[pos + 1:]]),
                           run.trust)
    # a named node's entry copied to the index of the share entry left out: not the log's
    (other,) = [e for n, e in shares.items() if n not in named]
    copy = CertEntry(other.index, first.data, other.proof)
    _check(_rebuilt(full, sorted([*compact, copy], key=lambda e: e.index)), run.trust, 4,
           f"entry {other.index} is not in the log")


def test_swapped_decryption_entries_are_refused(run: Run) -> None:
    full = run.full["mean"]
    compact = _compact_of(full)
    a, b = (_shares(full, DecryptionEntry)[n] for n in sorted(_view(full).result[1].decryptors))
    i, j = compact.index(a), compact.index(b)
    # records out of order: refused as a file
    swapped = list(compact)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    with pytest.raises(MalformedError, match="strictly increasing"):
        verify_certificate(_raw(full, swapped), run.trust)
    # each entry's bytes under the other's index (and proof): not the log's (step 4)
    crossed = list(compact)
    crossed[i] = CertEntry(a.index, b.data, a.proof)
    crossed[j] = CertEntry(b.index, a.data, b.proof)
    _check(_rebuilt(full, crossed), run.trust, 4, "is not in the log")


# -- caches: what differs from what was checked is checked again ------------------------------


def test_signature_cache_rechecks_any_other_triple() -> None:
    sk, other = SigningKey.generate(), SigningKey.generate()
    vk = VerifyKey.from_bytes(sk.public_key().to_bytes())
    msg = b"statledger/test\nsome entry"
    sig = sk.sign(msg)
    vk.verify(msg, sig)
    vk.verify(msg, sig)  # the cached triple
    bad = bytearray(sig)
    bad[3] ^= 1
    for m, s, key in ((msg, bytes(bad), vk), (msg + b"!", sig, vk),
                      (msg, sig, other.public_key())):
        for _ in range(2):  # refused, and refused again (a failure is never cached)
            with pytest.raises(VerificationError):
                key.verify(m, s, party="forger")
    # S + L: the same point, an unreduced scalar; refused before any cache is consulted
    s_plus_l = sig[:32] + (int.from_bytes(sig[32:], "little") + ED25519_L).to_bytes(
        32, "little")
    with pytest.raises(VerificationError, match="not reduced"):
        vk.verify(msg, s_plus_l)


def test_key_cache_refuses_a_small_order_key_every_time() -> None:
    identity = (1).to_bytes(32, "little")  # the neutral point: of small order
    for _ in range(2):
        with pytest.raises(MalformedError, match="small order"):
            VerifyKey.from_bytes(identity)
    good = SigningKey.generate().public_key().to_bytes()
    assert VerifyKey.from_bytes(good) == VerifyKey.from_bytes(good)


def test_entry_cache_decodes_other_bytes_afresh(run: Run) -> None:
    full = run.full["mean"]
    e = _shares(full, DecryptionEntry)[_view(full).result[1].decryptors[0]]
    first = Entry.from_bytes(e.data)
    assert Entry.from_bytes(e.data) is first  # the same bytes: decoded once
    for pos in (0, len(e.data) // 2, len(e.data) - 1):
        data = bytearray(e.data)
        data[pos] ^= 0x01
        try:
            forged = Entry.from_bytes(bytes(data))
        except MalformedError:
            continue  # refused (and refused again: a failure is not kept)
        assert forged is not first and forged.to_bytes() == bytes(data)


def test_follower_cache_keeps_proven_bytes_and_refuses_forged_new_ones(run: Run) -> None:
    cluster = run.cluster
    target = cluster.genesis.genesis.ledger.party_id
    ledger = ForgingLedger(cluster.url("ledger"), "querier", cluster.signing_key("querier"),
                           target=target, timeout=60.0)
    follower = LogFollower(ledger, cluster.genesis, Path(":memory:"))
    follower.proven = {}
    try:
        qids = [str(_view(run.full[n]).query_id) for n in ("mean", "crosstab")]
        mean_idx = ledger.query_indices(qids[0])
        honest = follower.query_view(qids[0])
        assert set(mean_idx) <= set(follower.proven)
        # forged bytes at an index already proven: never read again, the view is unchanged
        ledger.forge = set(mean_idx)
        again = follower.query_view(qids[0])
        assert [e.to_bytes() for _, e in again.decryptions] == \
            [e.to_bytes() for _, e in honest.decryptions]
        # forged bytes at an index not proven yet: refused, and not kept as proven
        new = ledger.query_indices(qids[1])
        ledger.forge = {new[-1]}
        with pytest.raises(StatledgerError, match=f"entry {new[-1]} is not in the witnessed"):
            follower.query_view(qids[1])
        assert new[-1] not in follower.proven
        ledger.forge = set()
        assert follower.query_view(qids[1]).query_id == qids[1]
        assert new[-1] in follower.proven
    finally:
        follower.close()
        ledger.close()
