"""Vertically partitioned OLS end to end on real processes (protocol/vertical.py).

A local cluster from the Python API (``statledger.local(..., vertical=[(A, B)])``: 1 ledger,
2 compute nodes, the two owners of examples/vertical holding a slice of its CSVs, a pair
secret made for this session): owner A logs its rows, owner B its proved
products, owner A its block; the compute nodes check every owner proof and decrypt the
aggregates only; both owners endorse.  The coefficients equal the in-process protocol's and
numpy's least squares on the joined fixed-point rows; the certificate verifies offline.

Adversaries: a ledger serving owner A's rows entry that is not in the witnessed log (other
bytes, even validly signed by A) or under a checkpoint without the witness quorum is refused
by owner B's follower before B reads it; a vertical entry changed in a certificate (products,
tags, a block signed by the wrong owner) fails verification step 9 naming its owner.
"""

from __future__ import annotations

import csv
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from forge import Adversary, Forgery

from statledger.nodes.compute_service import query_view
from statledger.nodes.data import load_table
from statledger.nodes.follower import LogFollower
from statledger.nodes.ledger_client import LedgerClient
from statledger.proofs.dlog import discrete_log_many
from statledger.proofs.elgamal import keygen
from statledger.proofs.errors import VerificationError
from statledger.protocol import entries as E
from statledger.protocol import vertical as V
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic
from statledger.verifier.verify import TrustPolicy, verify_certificate

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
A, B = "provider-1", "provider-2"
MAX_ROWS = 128


def _slice(src: Path, dst: Path, keep: Any) -> None:
    with src.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    with dst.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(rows[0])
        w.writerows(r for i, r in enumerate(rows[1:]) if keep(i, r[0]))


def _spec() -> QuerySpec:
    obj = json.loads((EXAMPLES / "vertical_ols.json").read_text(encoding="utf-8"))
    obj["max_rows"] = MAX_ROWS
    return QuerySpec.parse(obj)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import statledger

    work = tmp_path_factory.mktemp("vertical")
    a_csv, b_csv = work / "a.csv", work / "b.csv"
    _slice(EXAMPLES / "vertical" / "diabetes_owner_a.csv", a_csv, lambda i, _p: i < 110)
    with a_csv.open(encoding="utf-8") as fh:
        a_ids = {r["pid"] for r in csv.DictReader(fh)}
    # B holds ids A also holds and ids A does not: only the joined rows count
    seen: list[int] = [0, 0]
    def keep_b(_i: int, pid: str) -> bool:
        k = 0 if pid in a_ids else 1
        seen[k] += 1
        return seen[k] <= (80 if k == 0 else 30)
    _slice(EXAMPLES / "vertical" / "diabetes_owner_b.csv", b_csv, keep_b)
    with statledger.local({A: a_csv, B: b_csv}, compute=2, threshold=None,
                          vertical=[(A, B)]) as session:
        spec = _spec()
        out = session.query(spec)
        yield {"cluster": session._cluster, "spec": spec, "out": out, "a": a_csv, "b": b_csv}


def _trust(cluster: Any) -> TrustPolicy:
    return TrustPolicy(cluster.genesis, "the test's trust")


def test_vertical_ols_through_the_cluster(run: dict[str, Any]) -> None:
    spec, out = run["spec"], run["out"]
    report = verify_certificate(out.certificate.to_bytes(), _trust(run["cluster"]))
    assert report.valid, (report.step, report.reason)
    assert out.contributors == [A, B]
    kinds = [E.Entry.from_bytes(e.data).KIND for e in out.certificate.entries]
    assert "submission" not in kinds
    order = [k for k in kinds if k.startswith("vertical_")]
    assert order == ["vertical_rows", "vertical_products", "vertical_block"]
    got = out.values

    # the same protocol in process, one key, the same files (tags differ, sums do not)
    ta, tb = load_table(run["a"]), load_table(run["b"])
    x, X = keygen()
    pair = secrets.token_bytes(32)
    qid = "0" * 64
    rows = V.a_rows(spec, qid, ta, V.OwnerConfig(A, {B: pair}), X)
    prods = V.b_products(spec, qid, tb, V.OwnerConfig(B, {A: pair}), X, rows)
    block = V.a_block(spec, qid, ta, V.OwnerConfig(A, {B: pair}), X, rows, prods)
    rel = V.release_ciphertexts(spec, rows, prods, block)
    plain = discrete_log_many([c.C2 - x * c.C1 for c in rel.ciphertexts], max(rel.bounds))
    ref = get_statistic(spec.statistic).decode(
        spec, V.assemble_totals(spec, rel.n, plain)).values
    assert {k: got[k] for k in ref} == ref  # bit for bit: the decoders are exact

    # and numpy's least squares on the joined, clipped, fixed-point rows
    ia = {p: i for i, p in enumerate(ta["pid"])}
    pairs = [(ia[p], j) for j, p in enumerate(tb["pid"]) if p in ia]
    assert got["n"] == len(pairs) == 80

    def col(name: str) -> np.ndarray:
        src, idx = ((ta, [p[0] for p in pairs]) if name in ("age", "bmi", "bp")
                    else (tb, [p[1] for p in pairs]))
        lo, hi = spec.bounds[name]
        v = np.clip(np.asarray(src[name], dtype=np.float64)[idx], lo, hi)
        return np.asarray(np.rint(v * spec.scale) / spec.scale)

    feats = ["age", "bmi", "bp", "s1", "s5"]
    design = np.column_stack([np.ones(len(pairs))] + [col(c) for c in feats])
    beta, *_ = np.linalg.lstsq(design, col("target"), rcond=None)
    assert np.allclose(got["coef"], beta, rtol=1e-6, atol=1e-9)


def test_tampered_vertical_entries_fail_step_9(run: dict[str, Any]) -> None:
    cluster = run["cluster"]
    adv = Adversary(cluster.base_dir, cluster.layout.origin)
    cert = run["out"].certificate.to_bytes()
    trust = _trust(cluster)

    def verdict(f: Forgery) -> tuple[int | None, str | None, str]:
        r = verify_certificate(f.build(), trust)
        assert not r.valid
        return r.step, r.party, str(r.reason)

    # B's products: one bit of its multiplication proof flipped, re-signed by B
    f = Forgery(adv, cert)
    i, e = f.find("vertical_products")
    raw = bytearray(bytes.fromhex(e.data))
    raw[len(raw) // 2] ^= 1
    f.resign(i, E.VerticalProductsEntry(e.query_id, e.provider, raw.hex()), B)
    assert verdict(f)[:2] == (9, B)

    # A's tags: two swapped (the same rows, another order), re-signed by A
    f = Forgery(adv, cert)
    i, e = f.find("vertical_rows")
    raw = bytearray(bytes.fromhex(e.data))
    t = V.TAG_BYTES
    raw[0:t], raw[t:2 * t] = raw[t:2 * t], raw[0:t]
    f.resign(i, E.VerticalRowsEntry(e.query_id, e.provider, raw.hex()), A)
    assert verdict(f)[:2] == (9, A)

    # A's block published under B's name (B signs it): the wrong owner
    f = Forgery(adv, cert)
    i, e = f.find("vertical_block")
    f.resign(i, E.VerticalBlockEntry(e.query_id, B, e.data), B)
    step, party, reason = verdict(f)
    assert (step, party) == (9, B) and "not by provider-1" in reason

    # truncated products: the strict decoding refuses it
    f = Forgery(adv, cert)
    i, e = f.find("vertical_products")
    f.resign(i, E.VerticalProductsEntry(e.query_id, e.provider, e.data[:-2]), B)
    assert verdict(f)[:2] == (9, B)


class _EvilLedger(LedgerClient):
    """The ledger operator as owner B's follower sees it: serves other bytes for owner A's
    rows entry (``forged``), or checkpoints stripped of their cosignatures."""

    forged: tuple[int, bytes] | None = None
    strip_cosignatures = False

    def entries(self, indices: Any) -> list[tuple[int, bytes]]:
        rows = super().entries(indices)
        if self.forged is None:
            return rows
        return [(i, self.forged[1] if i == self.forged[0] else d) for i, d in rows]

    def _strip(self, note: str | None) -> str | None:
        if note is None or not self.strip_cosignatures:
            return note
        body, _, sigs = note.partition("\n\n")
        return body + "\n\n" + "\n".join(sigs.splitlines()[:1]) + "\n"

    def latest_checkpoint(self) -> str | None:
        return self._strip(super().latest_checkpoint())

    def checkpoint(self) -> str:
        out = self._strip(super().checkpoint())
        assert out is not None
        return out


def test_owner_b_reads_a_rows_only_through_a_witnessed_checkpoint(
        run: dict[str, Any], tmp_path: Path) -> None:
    cluster, spec, qid = run["cluster"], run["spec"], run["out"].query_id
    adv = Adversary(cluster.base_dir, cluster.layout.origin)
    key = cluster.signing_key(B)

    def follower(evil: _EvilLedger, name: str) -> LogFollower:
        return LogFollower(evil, cluster.genesis, tmp_path / name)

    honest = _EvilLedger(cluster.url("ledger"), B, key, target="ledger")
    view = query_view(follower(honest, "honest.sqlite"), qid)  # the real log: accepted
    (ri, rows_entry), = [(i, e) for i, e in view.vertical if e.KIND == "vertical_rows"]
    rows = rows_entry.decode_rows(spec)

    # other rows under A's valid signature, not on the log: B's follower refuses them
    other = list(rows.tags)
    other[0], other[1] = other[1], other[0]
    forged = adv.sign(E.VerticalRowsEntry(qid, A, V.VerticalRows(
        tuple(other), rows.chunks).to_bytes().hex()), A)
    evil = _EvilLedger(cluster.url("ledger"), B, key, target="ledger")
    evil.forged = (ri, forged.to_bytes())
    with pytest.raises(VerificationError, match=f"entry {ri} is not in the witnessed log"):
        query_view(follower(evil, "forged.sqlite"), qid)

    # a checkpoint without the witnesses' cosignatures: nothing is read
    bare = _EvilLedger(cluster.url("ledger"), B, key, target="ledger")
    bare.strip_cosignatures = True
    with pytest.raises(VerificationError, match="cosignature|witness"):
        query_view(follower(bare, "bare.sqlite"), qid)
