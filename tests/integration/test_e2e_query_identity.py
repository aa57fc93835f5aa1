"""Query identity: the querier is part of the query id (docs/queries.md).

Before, the id hashed the spec alone: whoever posted a spec first owned it, and a second
researcher could never run the identical spec.  Now two queriers asking the same spec run two
queries, each verifiable on its own; the same querier asking again resumes its own query.
"""

from __future__ import annotations

from typing import Any

from statledger.nodes.querier import Querier
from statledger.protocol.query import QuerySpec
from statledger.verifier.verify import verify_certificate

SPEC = {"version": 1, "statistic": "mean", "columns": ["bmi"],
        "bounds": {"bmi": [15.0, 50.0]}, "max_rows": 1000, "min_cell_size": 3}


def _querier(cluster: Any, pid: str) -> Querier:
    layout = cluster.layout
    return Querier(pid, cluster.signing_key(pid), cluster.url("ledger"),
                   {p.party_id: p.url for p in layout.compute},
                   {p.party_id: p.url for p in layout.providers}, trust=cluster.genesis)


def test_two_queriers_same_spec(e2e_cluster: Any, e2e_querier: Any) -> None:
    spec = QuerySpec.parse(SPEC)
    first = e2e_querier.run(spec, datasets="diabetes")
    with _querier(e2e_cluster, "querier-2") as q2:
        second = q2.run(spec, datasets="diabetes")
    assert first.query_id == spec.query_id_for("querier")
    assert second.query_id == spec.query_id_for("querier-2") != first.query_id
    for out, who in ((first, "querier"), (second, "querier-2")):
        report = verify_certificate(out.certificate.to_bytes(), source=who)
        assert report.valid, (report.step, report.reason)
        assert report.query_id == out.query_id
    # the same rows, an exact query: the same answer for both researchers
    assert first.result.to_dict() == second.result.to_dict()


def test_same_querier_resumes_its_own_query(e2e_cluster: Any, e2e_querier: Any) -> None:
    spec = QuerySpec.parse({**SPEC, "min_cell_size": 4})
    first = e2e_querier.run(spec, datasets="diabetes")
    again = e2e_querier.run(spec, datasets="diabetes")
    assert again.query_id == first.query_id
    assert again.result.to_dict() == first.result.to_dict()
    view_sizes = {len(out.certificate.entries) for out in (first, again)}
    assert len(view_sizes) == 1  # nothing new was added to the query
