"""A vertical query's owner entries in the query state machine (the ledger's append rule 5c)
and the combination of the nodes' shares of its release (protocol/vertical.py).

The machine takes ``vertical_rows`` (owner A), ``vertical_products`` (owner B),
``vertical_block`` (owner A) in that order, only for a vertical query, and the aggregate only
after the three, listing exactly them; every other order, author, or a submission to a
vertical query is refused.  Their proofs are verification step 9's (tests/integration/
test_e2e_vertical.py plays those adversaries)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_statemachine_helpers import ROSTER, _pt, events, sign

from statledger.proofs.elgamal import encrypt, keygen
from statledger.proofs.errors import DecryptionError, MalformedError, ProtocolError
from statledger.protocol import entries as E
from statledger.protocol import vertical as V
from statledger.protocol.query import QuerySpec
from statledger.protocol.statemachine import Phase, expected_next, replay
from statledger.protocol.stats import get as get_statistic

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vertical_ols.json"
A, B = "prov-1", "prov-2"


def _spec(owners: tuple[str, str] = (A, B)) -> QuerySpec:
    obj = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    part = obj["params"]["partition"]
    cols = part["columns"]
    part["columns"] = {owners[0]: cols[part["owners"][0]], owners[1]: cols[part["owners"][1]]}
    part["owners"] = list(owners)
    obj["max_rows"] = 64
    return QuerySpec.parse(obj)


SPEC = _spec()
QID = SPEC.query_id_for("researcher")
QUERY = sign(E.QueryEntry.for_spec(SPEC, "researcher"), "researcher")


def _v(kind: type[Any], who: str, qid: str = QID) -> E.Entry:
    return sign(kind(qid, who, "00"), who)


ROWS = _v(E.VerticalRowsEntry, A)
PRODS = _v(E.VerticalProductsEntry, B)
BLOCK = _v(E.VerticalBlockEntry, A)


def _agg(listed: tuple[int, ...]) -> E.Entry:
    return sign(E.AggregateEntry(QID, listed, (), (_pt(2) + _pt(3),)), "researcher")


def test_statistic_is_vertical_and_has_no_pet_gate() -> None:
    assert V.is_vertical(SPEC)
    assert not V.is_vertical(QuerySpec.parse({
        "version": 1, "statistic": "mean", "columns": ["x"], "bounds": {"x": [0, 1]},
        "max_rows": 10}))
    # n is public (the popcount of B's mask): no PET phase before decryption
    assert get_statistic(SPEC.statistic).gates(SPEC) == []


def test_owner_entries_in_order_then_aggregate_and_endorsements() -> None:
    st = replay([QUERY], ROSTER)
    assert expected_next(st) == [("vertical_rows", A)]
    st = replay([QUERY, ROWS], ROSTER)
    assert expected_next(st) == [("vertical_products", B)]
    st = replay([QUERY, ROWS, PRODS], ROSTER)
    assert expected_next(st) == [("vertical_block", A)]
    st = replay([QUERY, ROWS, PRODS, BLOCK], ROSTER)
    assert expected_next(st) == [("aggregate", None)]
    st = replay([QUERY, ROWS, PRODS, BLOCK, _agg((1, 2, 3))], ROSTER)
    assert st.phase is Phase.AGGREGATED and st.submitted == (A, B)
    assert ("endorsement", A) not in expected_next(st)


@pytest.mark.parametrize(("seq", "match"), [
    ([PRODS], "out of order"),                        # products before rows
    ([ROWS, BLOCK], "out of order"),                  # block before products
    ([ROWS, ROWS], "out of order"),                   # rows twice
    ([ROWS, PRODS, BLOCK, BLOCK], "out of order"),    # a fourth entry
    ([_v(E.VerticalRowsEntry, B)], f"only {A} writes it"),     # swapped owners
    ([ROWS, _v(E.VerticalProductsEntry, A)], f"only {B} writes it"),
    ([_v(E.VerticalRowsEntry, "prov-3")], f"only {A} writes it"),  # a third provider
    ([_v(E.VerticalRowsEntry, A, "ab" * 32)], "wrong query id"),
    ([ROWS, PRODS, _agg((1, 2))], "aggregate before the vertical entries"),
    ([ROWS, PRODS, BLOCK, _agg((1, 2, 4))], "vertical entries"),   # lists another entry
    ([ROWS, PRODS, BLOCK, _agg((1, 2, 3)), ROWS], "after the aggregate"),
])
def test_refused_orders(seq: list[E.Entry], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        replay([QUERY, *seq], ROSTER)


def test_submission_to_a_vertical_query_and_vertical_entry_to_another_query() -> None:
    ev = events(dp=False)
    sub = sign(E.SubmissionEntry(QID, A, "00"), A)
    with pytest.raises(ProtocolError, match="vertical query"):
        replay([QUERY, sub], ROSTER)
    other = ev["query"]
    assert isinstance(other, E.QueryEntry)
    with pytest.raises(ProtocolError, match="not vertical"):
        replay([other, _v(E.VerticalRowsEntry, A, other.query_id)], ROSTER)


def test_owner_outside_the_roster_is_refused_at_the_query() -> None:
    q = sign(E.QueryEntry.for_spec(_spec((A, "stranger")), "researcher"), "researcher")
    with pytest.raises(ProtocolError, match="stranger is not a provider"):
        replay([q], ROSTER)


def _release(values: list[int], bounds: list[int]) -> tuple[V.Release, Any]:
    x, X = keygen()
    cts = tuple(encrypt(X, v) for v in values)
    return V.Release(len(values), cts, tuple(bounds)), x


def test_decrypt_release_and_its_twins() -> None:
    from statledger.proofs.group import Scalar

    rel, x = _release([0, 7, 2**20], [1, 7, 2**21])
    one = Scalar(1)
    shares = [[x * c.C1 for c in rel.ciphertexts]]
    assert V.decrypt_release(rel, shares, [one]) == [0, 7, 2**20]
    over = V.Release(rel.n, rel.ciphertexts, (1, 6, 2**21))  # 7 > its bound 6
    with pytest.raises(DecryptionError, match="released ciphertext 1"):
        V.decrypt_release(over, shares, [one])
    with pytest.raises(MalformedError, match="release's size"):
        V.decrypt_release(rel, [shares[0][:-1]], [one])
    with pytest.raises(MalformedError, match="weights"):
        V.decrypt_release(rel, shares, [one, one])
    wrong = [[(x + one) * c.C1 for c in rel.ciphertexts]]  # a wrong key share
    with pytest.raises(DecryptionError):
        V.decrypt_release(rel, wrong, [one])
    assert V.decrypt_release(V.Release(0, (), ()), [[]], [one]) == []


def test_pull_mode_is_refused_for_a_vertical_spec() -> None:
    obj = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    obj["pull"] = {"owners": ["provider-1", "provider-2"], "dataset": "data",
                   "deadline": 4102444800}
    with pytest.raises(MalformedError, match="pull mode is not supported"):
        QuerySpec.parse(obj)


def test_cli_run_checks_the_two_owner_files_before_any_process_starts(tmp_path: Path) -> None:
    """`statledger run` on a vertical spec: exactly two files, the first is owner A
    (provider-1), the second owner B; each must hold the id column and its owner's columns;
    the spec's owners must be the local cluster's.  Exit 2 naming the file, nothing started."""
    from typer.testing import CliRunner

    from statledger.nodes.cli import app

    ex = EXAMPLE.parent
    a, b = ex / "vertical" / "diabetes_owner_a.csv", ex / "vertical" / "diabetes_owner_b.csv"

    def run(spec: Path, *files: Path) -> Any:
        return CliRunner().invoke(app, ["run", str(spec), "--data", *map(str, files)])

    r = run(EXAMPLE, a)
    assert r.exit_code == 2 and "exactly two data files" in r.output
    r = run(EXAMPLE, b, a)  # swapped: B's file has none of owner A's columns
    assert r.exit_code == 2 and "no column 'age'" in r.output and str(b) in r.output
    no_id = tmp_path / "a.csv"
    no_id.write_text(a.read_text(encoding="utf-8").replace("pid,", "id,", 1), encoding="utf-8")
    r = run(EXAMPLE, no_id, b)
    assert r.exit_code == 2 and "no column 'pid'" in r.output
    other = tmp_path / "spec.json"
    other.write_text(json.dumps(_spec().to_json_obj()), encoding="utf-8")  # owners prov-1/2
    r = run(other, a, b)
    assert r.exit_code == 2 and "provider-1 and provider-2" in r.output
