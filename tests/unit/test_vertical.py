"""Vertically partitioned OLS and covariance, in process: real encryption, real proofs, a
single-key decryption in place of the nodes' threshold decryption.

Reference: statsmodels OLS (and numpy cov / corrcoef) on the joined *quantised* clipped rows
``to_fixed(clip(x)) / scale``, relative 1e-9.  Every accept test has reject twins playing
the adversary: a product with a different multiplier, A's entry truncated or bit-flipped,
duplicate ids, a missing column, a partner not allowed, a nearly constant column (support).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from statledger.proofs.dlog import discrete_log_many
from statledger.proofs.elgamal import Ciphertext, encrypt, keygen
from statledger.proofs.errors import MalformedError, PolicyError, VerificationError
from statledger.proofs.group import Scalar
from statledger.proofs.mulproof import multiply_with_proof
from statledger.protocol import vertical as V
from statledger.protocol.fixedpoint import clip, to_fixed
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get

A, B = "provider-1", "provider-2"
A_COLS = ["x1", "x2", "x3"]
B_COLS = ["z1", "z2", "y"]
BOUNDS = {"x1": [0, 10], "x2": [-5, 5], "x3": [0, 1], "z1": [0, 100], "z2": [-3, 3],
          "y": [-50, 150]}
SECRET = secrets.token_bytes(32)
QID = "q-vertical-test"


def make_spec(stat: str = "vertical_regression", **over: Any) -> QuerySpec:
    part = {"kind": "vertical", "id_column": "pid", "owners": [A, B],
            "columns": {A: A_COLS, B: B_COLS}}
    params: dict[str, Any] = {"partition": part}
    if stat == "vertical_regression":
        params |= {"target": "y", "features": ["x1", "x2", "x3", "z1", "z2"]}
    obj: dict[str, Any] = {
        "version": 1, "statistic": stat, "columns": [*A_COLS, *B_COLS],
        "bounds": BOUNDS, "scale": 64, "max_rows": 300, "min_cell_size": 5, "params": params,
    }
    obj.update(over)
    return QuerySpec.parse(obj)


def make_tables(seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"p{i:05d}" for i in rng.permutation(400)[:280]], dtype=object)
    a_ids, b_ids = ids[:220], ids[60:]  # 160 shared
    na = len(a_ids)
    ta = {"pid": a_ids, "x1": rng.uniform(0, 10, na), "x2": rng.normal(0, 2, na),
          "x3": (rng.uniform(size=na) < 0.4).astype(float)}
    nb = len(b_ids)
    tb = {"pid": b_ids[rng.permutation(nb)], "z1": rng.uniform(0, 100, nb),
          "z2": rng.normal(0, 1, nb)}
    # y depends on both owners' columns, through the shared ids
    xa = {pid: i for i, pid in enumerate(a_ids)}
    y = []
    for i, pid in enumerate(tb["pid"]):
        base = 0.3 * tb["z1"][i] - 2.0 * tb["z2"][i] + rng.normal(0, 3)
        if pid in xa:
            j = xa[pid]
            base += 4.0 * ta["x1"][j] + 1.5 * ta["x2"][j] - 6.0 * ta["x3"][j]
        y.append(base)
    tb["y"] = np.array(y)
    return ta, tb


@pytest.fixture(scope="module")
def key() -> tuple[Scalar, Any]:
    return keygen()


CFG_A = V.OwnerConfig(A, {B: SECRET})
CFG_B = V.OwnerConfig(B, {A: SECRET})


def run(spec: QuerySpec, ta: dict[str, Any], tb: dict[str, Any], key: tuple[Scalar, Any]
        ) -> tuple[V.VerticalRows, V.VerticalProducts, Any, list[int | None]]:
    x, X = key
    rows = V.a_rows(spec, QID, ta, CFG_A, X)
    V.verify_vertical(spec, QID, X, rows)
    prods = V.b_products(spec, QID, tb, CFG_B, X, rows)
    V.verify_vertical(spec, QID, X, rows, prods)
    block = V.a_block(spec, QID, ta, CFG_A, X, rows, prods)
    V.verify_vertical(spec, QID, X, rows, prods, block)
    rel = V.release_ciphertexts(spec, rows, prods, block)
    pts = [c.C2 - x * c.C1 for c in rel.ciphertexts]
    plain = discrete_log_many(pts, max(rel.bounds)) if pts else []
    for v, bnd in zip(plain, rel.bounds, strict=True):
        assert 0 <= v <= bnd
    return rows, prods, block, V.assemble_totals(spec, rel.n, plain)


def joined(spec: QuerySpec, ta: dict[str, Any], tb: dict[str, Any]) -> dict[str, np.ndarray]:
    """The joined quantised clipped rows, computed independently of the protocol."""
    ia = {p: i for i, p in enumerate(ta["pid"])}
    pairs = [(ia[p], j) for j, p in enumerate(tb["pid"]) if p in ia]
    out = {}
    for c in A_COLS + B_COLS:
        src, idx = (ta, [p[0] for p in pairs]) if c in A_COLS else (tb, [p[1] for p in pairs])
        vals, _ = clip(np.asarray(src[c], dtype=float)[idx], *BOUNDS[c])
        out[c] = to_fixed(vals, spec.scale) / spec.scale
    return out


@pytest.fixture(scope="module")
def fitted(key: tuple[Scalar, Any]) -> dict[str, Any]:
    spec = make_spec()
    ta, tb = make_tables()
    rows, prods, block, totals = run(spec, ta, tb, key)
    return {"spec": spec, "ta": ta, "tb": tb, "rows": rows, "prods": prods, "block": block,
            "totals": totals}


def test_ols_matches_statsmodels_on_joined_rows(fitted: dict[str, Any]) -> None:
    spec = fitted["spec"]
    res = get("vertical_regression").decode(spec, fitted["totals"]).to_dict()
    j = joined(spec, fitted["ta"], fitted["tb"])
    feats = ["x1", "x2", "x3", "z1", "z2"]
    X = sm.add_constant(np.column_stack([j[c] for c in feats]))
    ref = sm.OLS(j["y"], X).fit()
    assert res["n"] == len(j["y"]) == 160
    np.testing.assert_allclose(res["coef"], ref.params, rtol=1e-9)
    np.testing.assert_allclose(res["std_err"], ref.bse, rtol=1e-9)
    np.testing.assert_allclose(res["r_squared"], ref.rsquared, rtol=1e-9)
    np.testing.assert_allclose(res["f_statistic"], ref.fvalue, rtol=1e-9)
    np.testing.assert_allclose(res["p_value"], ref.pvalues, rtol=1e-6, atol=1e-300)


def test_covariance_matches_numpy(key: tuple[Scalar, Any]) -> None:
    spec = make_spec("vertical_covariance")
    ta, tb = make_tables(seed=11)
    *_, totals = run(spec, ta, tb, key)
    res = get("vertical_covariance").decode(spec, totals).to_dict()
    j = joined(spec, ta, tb)
    M = np.column_stack([j[c] for c in A_COLS + B_COLS])
    np.testing.assert_allclose(res["mean"], M.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res["covariance"], np.cov(M, rowvar=False), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(res["correlation"], np.corrcoef(M, rowvar=False), rtol=1e-9)


def test_entries_round_trip(fitted: dict[str, Any]) -> None:
    plan = V.VerticalPlan.of(fitted["spec"])
    rb = fitted["rows"].to_bytes()
    assert V.VerticalRows.from_bytes(rb, plan) == fitted["rows"]
    pb = fitted["prods"].to_bytes()
    assert V.VerticalProducts.from_bytes(pb, plan) == fitted["prods"]


def test_tags_hide_ids_and_are_per_query() -> None:
    assert V.row_tag(SECRET, QID, "p1") == V.row_tag(SECRET, QID, "p1")
    assert V.row_tag(SECRET, QID, "p1") != V.row_tag(SECRET, "other", "p1")
    assert V.row_tag(SECRET, QID, "p1") != V.row_tag(secrets.token_bytes(32), QID, "p1")


# ---------------------------------------------------------------------------- reject twins
def test_truncated_or_extended_rows_are_malformed(fitted: dict[str, Any]) -> None:
    plan = V.VerticalPlan.of(fitted["spec"])
    rb = fitted["rows"].to_bytes()
    for bad in (rb[:-1], rb + b"\x00", rb[1:]):
        with pytest.raises(MalformedError):
            V.VerticalRows.from_bytes(bad, plan)


def test_bit_flipped_rows_fail(fitted: dict[str, Any], key: tuple[Scalar, Any]) -> None:
    spec, plan = fitted["spec"], V.VerticalPlan.of(fitted["spec"])
    rb = bytearray(fitted["rows"].to_bytes())
    tag_zone = spec.max_rows * V.TAG_BYTES
    for pos in (5, tag_zone + 40, len(rb) - 7):  # a tag, a ciphertext, the proof
        flipped = bytearray(rb)
        flipped[pos] ^= 0x01
        try:
            rows = V.VerticalRows.from_bytes(bytes(flipped), plan)
        except MalformedError:
            continue  # a point that no longer decodes
        with pytest.raises(VerificationError, match="vertical-rows"):
            V.verify_vertical(spec, QID, key[1], rows, fitted["prods"])


def test_tags_must_be_sorted_and_distinct(fitted: dict[str, Any], key: tuple[Scalar, Any]
                                          ) -> None:
    rows = fitted["rows"]
    dup = dataclasses.replace(rows, tags=(rows.tags[0],) + rows.tags[:-1])
    with pytest.raises(VerificationError, match=f"vertical-rows / party {A}"):
        V.verify_vertical(fitted["spec"], QID, key[1], dup)
    short = dataclasses.replace(rows, tags=rows.tags[:-1])
    with pytest.raises(VerificationError, match="300 tags of 32 bytes expected"):
        V.verify_vertical(fitted["spec"], QID, key[1], short)
    fewer = dataclasses.replace(rows, chunks=rows.chunks[:-1])
    with pytest.raises(VerificationError, match="row chunks expected"):
        V.verify_vertical(fitted["spec"], QID, key[1], fewer)


def test_product_with_a_different_multiplier_fails(fitted: dict[str, Any],
                                                   key: tuple[Scalar, Any]) -> None:
    """B swaps one product for one of a different y (honestly proved on its own): fails."""
    spec, prods, rows = fitted["spec"], fitted["prods"], fitted["rows"]
    plan = V.VerticalPlan.of(spec)
    in_a = V.mask_rows(prods.mask, spec.max_rows)
    K = rows.ciphertexts(plan, in_a)
    other = [[secrets.randbelow(1 << plan.lb) for _ in in_a] for _ in plan.b_limbs]
    D2, _ = multiply_with_proof(key[1], K, other, b"whatever")
    swapped = [list(r) for r in prods.products]
    swapped[0][0] = D2[0][0]
    bad = dataclasses.replace(prods, products=tuple(tuple(r) for r in swapped))
    with pytest.raises(VerificationError, match=f"vertical-products / party {B}"):
        V.verify_vertical(spec, QID, key[1], rows, bad)
    # shifting a product by an encryption of 1 is caught too
    shifted = [list(r) for r in prods.products]
    shifted[-1][-1] = shifted[-1][-1] + encrypt(key[1], 1)
    bad = dataclasses.replace(prods, products=tuple(tuple(r) for r in shifted))
    with pytest.raises(VerificationError, match="vertical-products"):
        V.verify_vertical(spec, QID, key[1], rows, bad)


def test_mask_changed_after_proof_fails(fitted: dict[str, Any], key: tuple[Scalar, Any]
                                        ) -> None:
    """B cannot claim a different set of joined rows than it multiplied."""
    spec, prods = fitted["spec"], fitted["prods"]
    in_a = V.mask_rows(prods.mask, spec.max_rows)
    out = next(r for r in range(spec.max_rows) if r not in in_a)
    moved = V._mask_of([*in_a[1:], out], spec.max_rows)
    bad = dataclasses.replace(prods, mask=moved)
    with pytest.raises(VerificationError, match="vertical-products"):
        V.verify_vertical(spec, QID, key[1], fitted["rows"], bad)
    pad = bytearray(prods.mask)
    pad[-1] |= 0x80  # max_rows = 300: bits 300..303 are padding
    with pytest.raises(MalformedError, match="padding"):
        V.mask_rows(bytes(pad), spec.max_rows)


def test_block_bound_to_party_and_phase(fitted: dict[str, Any], key: tuple[Scalar, Any]
                                        ) -> None:
    """B's block cannot stand in for A's; A's block cannot be replayed for another query."""
    spec = fitted["spec"]
    with pytest.raises(VerificationError, match=f"vertical-block / party {A}"):
        V.verify_vertical(spec, QID, key[1], fitted["rows"], fitted["prods"],
                          fitted["prods"].block)
    x, X = key
    other = make_spec()
    ta, tb = make_tables()
    rows2 = V.a_rows(other, "q2", ta, CFG_A, X)
    prods2 = V.b_products(other, "q2", tb, CFG_B, X, rows2)
    with pytest.raises(VerificationError, match=f"vertical-block / party {A}"):
        V.verify_vertical(other, "q2", X, rows2, prods2, fitted["block"])


def test_rows_bound_to_query_id(fitted: dict[str, Any], key: tuple[Scalar, Any]) -> None:
    with pytest.raises(VerificationError, match="vertical-rows"):
        V.verify_vertical(fitted["spec"], "another-query", key[1], fitted["rows"])


def test_duplicate_ids_refused(key: tuple[Scalar, Any]) -> None:
    spec = make_spec()
    ta, tb = make_tables()
    ta["pid"] = ta["pid"].copy()
    ta["pid"][3] = ta["pid"][4]
    with pytest.raises(PolicyError, match=f"owner {A}: .*duplicate ids"):
        V.a_rows(spec, QID, ta, CFG_A, key[1])


def test_missing_column_refused(key: tuple[Scalar, Any], fitted: dict[str, Any]) -> None:
    spec = make_spec()
    ta, tb = make_tables()
    del tb["z2"]
    with pytest.raises(PolicyError, match=f"owner {B}: column 'z2' is missing"):
        V.b_products(spec, QID, tb, CFG_B, key[1], fitted["rows"])
    del ta["pid"]
    with pytest.raises(PolicyError, match=f"owner {A}: the id column 'pid' is missing"):
        V.a_rows(spec, QID, ta, CFG_A, key[1])


def test_partner_not_allowed(key: tuple[Scalar, Any], fitted: dict[str, Any]) -> None:
    spec = make_spec()
    ta, tb = make_tables()
    with pytest.raises(PolicyError, match="vertical partners do not allow"):
        V.a_rows(spec, QID, ta, V.OwnerConfig(A, {"provider-9": SECRET}), key[1])
    with pytest.raises(PolicyError, match="vertical partners do not allow"):
        V.b_products(spec, QID, tb, V.OwnerConfig(B, {}), key[1], fitted["rows"])
    with pytest.raises(PolicyError, match="only 'provider-1' publishes the rows"):
        V.a_rows(spec, QID, tb, CFG_B, key[1])


def test_wrong_pair_secret_joins_nothing(key: tuple[Scalar, Any], fitted: dict[str, Any]
                                         ) -> None:
    spec = make_spec()
    _, tb = make_tables()
    with pytest.raises(PolicyError, match="fewer joined rows than min_cell_size"):
        V.b_products(spec, QID, tb, V.OwnerConfig(B, {A: secrets.token_bytes(32)}), key[1],
                     fitted["rows"])


def test_indicator_column_refused_by_support_rule(key: tuple[Scalar, Any]) -> None:
    """The inherent risk: A's column is 1 on one joined row and 0 elsewhere, so sum(x*z)
    would be that row's z at B.  A's support rule refuses before anything is decrypted."""
    spec = make_spec()
    ta, tb = make_tables()
    shared = set(ta["pid"]) & set(tb["pid"])
    target = sorted(shared)[0]
    ta["x3"] = np.array([1.0 if p == target else 0.0 for p in ta["pid"]])
    rows = V.a_rows(spec, QID, ta, CFG_A, key[1])
    prods = V.b_products(spec, QID, tb, CFG_B, key[1], rows)
    with pytest.raises(PolicyError, match=f"owner {A}: column 'x3' .*support rule"):
        V.a_block(spec, QID, ta, CFG_A, key[1], rows, prods)
    # B guards its own columns the same way (complement of an indicator)
    tb["z2"] = np.array([0.0 if p == target else 1.0 for p in tb["pid"]])
    with pytest.raises(PolicyError, match=f"owner {B}: column 'z2' .*support rule"):
        V.b_products(spec, QID, tb, CFG_B, key[1], rows)


def test_too_many_rows_refused_without_count(key: tuple[Scalar, Any]) -> None:
    spec = make_spec(max_rows=100)
    ta, _ = make_tables()
    with pytest.raises(PolicyError, match=f"^site {A} has more rows than max_rows; "
                       "raise max_rows$") as exc:
        V.a_rows(spec, QID, ta, CFG_A, key[1])
    assert "220" not in str(exc.value)


def test_spec_validation() -> None:
    with pytest.raises(MalformedError, match="params.partition.owners"):
        make_spec(params={"target": "y", "features": ["x1"], "partition": {
            "kind": "vertical", "id_column": "pid", "owners": [A], "columns": {A: ["x1"]}}})
    with pytest.raises(MalformedError, match="params.partition.columns"):
        make_spec(params={"target": "y", "features": ["x1", "x2", "x3", "z1", "z2"],
                          "partition": {"kind": "vertical", "id_column": "pid",
                                        "owners": [A, B],
                                        "columns": {A: A_COLS, B: ["z1", "z2", "x1"]}}})
    with pytest.raises(MalformedError, match="max_rows"):
        make_spec(max_rows=2**30)
    with pytest.raises(MalformedError, match="vertically partitioned"):
        get("vertical_regression").encode(make_spec(), make_tables()[0])


def test_suppressed_when_join_is_small(key: tuple[Scalar, Any]) -> None:
    spec = make_spec()
    totals = V.assemble_totals(spec, 3, [])
    res = get("vertical_regression").decode(spec, totals).to_dict()
    assert res["n"] is None and res["coef"][0] is None


def test_release_holds_only_aggregates(fitted: dict[str, Any]) -> None:
    """Only sums over the joined rows are decrypted: no single row's ciphertext is released."""
    spec, rows = fitted["spec"], fitted["rows"]
    rel = V.release_ciphertexts(spec, rows, fitted["prods"], fitted["block"])
    singles = {c for ev in rows.chunks for limbs in ev.limbs for c in limbs}
    assert not singles & set(rel.ciphertexts)
    assert isinstance(rel.ciphertexts[0], Ciphertext)


# ---------------------------------------------------------------------------- the example
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_files_rebuild_from_bundled_diabetes() -> None:
    """examples/vertical/*.csv are the bundled diabetes rows split by columns (documented
    rule: owner A keeps rows i % 10 != 0, owner B rows i % 7 != 0, B's in hashed order)."""
    from statledger.protocol import datasets

    d = datasets.load("diabetes")
    n = len(d["age"])

    def fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else repr(float(v))

    a_rows = [i for i in range(n) if i % 10 != 0]
    b_rows = sorted((i for i in range(n) if i % 7 != 0),
                    key=lambda i: hashlib.sha256(f"b:{i}".encode()).hexdigest())
    for name, rows, cols in (("diabetes_owner_a.csv", a_rows, ["age", "bmi", "bp"]),
                             ("diabetes_owner_b.csv", b_rows, ["s1", "s5", "target"])):
        lines = [",".join(["pid", *cols])] + [
            ",".join([f"p{i:03d}", *(fmt(d[c][i]) for c in cols)]) for i in rows]
        assert (EXAMPLES / "vertical" / name).read_text() == "\n".join(lines) + "\n"


def test_example_vertical_ols_matches_statsmodels(key: tuple[Scalar, Any]) -> None:
    from statledger.nodes.data import load_table

    spec = QuerySpec.parse((EXAMPLES / "vertical_ols.json").read_text())
    ta = load_table(EXAMPLES / "vertical" / "diabetes_owner_a.csv")
    tb = load_table(EXAMPLES / "vertical" / "diabetes_owner_b.csv")
    a, b = spec.params["partition"]["owners"]
    x, X = key
    ca, cb = V.OwnerConfig(a, {b: SECRET}), V.OwnerConfig(b, {a: SECRET})
    rows = V.a_rows(spec, QID, ta, ca, X)
    prods = V.b_products(spec, QID, tb, cb, X, rows)
    block = V.a_block(spec, QID, ta, ca, X, rows, prods)
    V.verify_vertical(spec, QID, X, rows, prods, block)
    rel = V.release_ciphertexts(spec, rows, prods, block)
    plain = discrete_log_many([c.C2 - x * c.C1 for c in rel.ciphertexts], max(rel.bounds))
    res = get(spec.statistic).decode(spec, V.assemble_totals(spec, rel.n, plain)).to_dict()
    ia = {p: i for i, p in enumerate(ta["pid"])}
    pairs = [(ia[p], j) for j, p in enumerate(tb["pid"]) if p in ia]
    cols = {}
    for c in spec.columns:
        src, idx = (ta, [p[0] for p in pairs]) if c in ta else (tb, [p[1] for p in pairs])
        vals, _ = clip(np.asarray(src[c], dtype=float)[idx], *spec.bounds[c])
        cols[c] = to_fixed(vals, spec.scale) / spec.scale
    feats = spec.params["features"]
    ref = sm.OLS(cols["target"], sm.add_constant(np.column_stack([cols[c] for c in feats]))).fit()
    assert res["n"] == 340
    np.testing.assert_allclose(res["coef"], ref.params, rtol=1e-9)
    np.testing.assert_allclose(res["std_err"], ref.bse, rtol=1e-9)


# ---------------------------------------------------------------------------- entry kinds
def test_entry_kinds_round_trip_and_reject(fitted: dict[str, Any]) -> None:
    from statledger.proofs.signatures import SigningKey
    from statledger.protocol import entries as E

    spec = fitted["spec"]
    sk, other = SigningKey.generate(), SigningKey.generate()
    qid = "ab" * 32
    made = {
        "vertical_rows": E.VerticalRowsEntry(qid, A, fitted["rows"].to_bytes().hex()),
        "vertical_products": E.VerticalProductsEntry(qid, B, fitted["prods"].to_bytes().hex()),
        "vertical_block": E.VerticalBlockEntry(qid, A, fitted["block"].to_bytes().hex()),
    }
    for kind, entry in made.items():
        signed = E.sign(entry, sk)
        back = E.Entry.from_bytes(signed.to_bytes())
        assert type(back) is E.KINDS[kind] and back == signed
        E.verify_signature(back, sk.public_key(), entry.provider)
        with pytest.raises(VerificationError):
            E.verify_signature(back, other.public_key(), entry.provider)
    assert made["vertical_rows"].decode_rows(spec) == fitted["rows"]
    assert made["vertical_products"].decode_products(spec) == fitted["prods"]
    assert made["vertical_block"].decode_block(spec) == fitted["block"]
    # truncated data, the phases swapped, a bad provider id
    short = E.VerticalRowsEntry(qid, A, fitted["rows"].to_bytes()[:-1].hex())
    with pytest.raises(MalformedError):
        short.decode_rows(spec)
    swapped = E.VerticalProductsEntry(qid, B, fitted["block"].to_bytes().hex())
    with pytest.raises(MalformedError):
        swapped.decode_products(spec)
    with pytest.raises(MalformedError, match="vertical_block.provider"):
        E.VerticalBlockEntry(qid, "a b", "00")
    with pytest.raises(MalformedError, match="vertical_rows.data"):
        E.VerticalRowsEntry(qid, A, "zz")
