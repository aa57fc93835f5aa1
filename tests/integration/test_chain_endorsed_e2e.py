"""A model reference rests on an established fit, on real processes (the shared e2e
cluster; protocol/chain.py ``check_established``, step 8).

Honest: the evaluation's certificate carries the fit's endorsements, one by every owner that
contributes to the evaluation, and verifies offline.  The adversary: a querier that logs,
for its own fit, a result with coefficients of its choosing (the ledger orders entries, it
does not re-check a result's numbers).  No owner endorses that result (their step 14
recomputes it), so when the querier then evaluates "its" model every owner refuses at step 8
before anything is encrypted, and the certificate of the attempt is rejected at step 8
naming the querier.  Before this rule the owners accepted the evaluation: its coefficients
are exactly the published (forged) ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from statledger.protocol.entries import EndorsementEntry, Entry, result_digest
from statledger.protocol.query import QuerySpec

FEATS = ["bmi", "s5"]
BOUNDS = {"bmi": [15.0, 50.0], "s5": [3.0, 6.5], "target": [25.0, 350.0]}


def _fit_spec(max_rows: int) -> QuerySpec:
    return QuerySpec.parse({
        "version": 1, "statistic": "linear_regression", "columns": [*FEATS, "target"],
        "bounds": BOUNDS, "params": {"target": "target", "features": FEATS},
        "scale": 1000, "max_rows": max_rows})


def test_an_evaluation_needs_the_fits_endorsements(e2e_cluster: Any, e2e_querier: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from statledger.nodes import querier as querier_module
    from statledger.nodes.querier import QueryFailed
    from statledger.protocol.stats.evaluation import evaluation_spec
    from statledger.verifier.verify import TrustPolicy, verify_certificate

    trust = TrustPolicy(e2e_cluster.genesis, "the test's trust")
    q = e2e_querier

    # honest: the evaluation carries the fit's endorsements and verifies
    fit = q.run(_fit_spec(997), datasets="diabetes")
    out = q.run(evaluation_spec(fit.spec, fit.query_id, fit.result.to_dict()),
                datasets="diabetes")
    report = verify_certificate(out.certificate.to_bytes(), trust)
    assert report.valid, (report.step, report.reason)
    fit_result = next(e.data for e in fit.certificate.entries
                      if Entry.from_bytes(e.data).KIND == "result")
    carried = [en for en in (Entry.from_bytes(e.data) for e in out.certificate.entries)
               if isinstance(en, EndorsementEntry) and en.query_id == fit.query_id]
    assert sorted(en.provider for en in carried) == sorted(out.contributors)
    assert all(en.result_digest == result_digest(fit_result) for en in carried)

    # the querier publishes coefficients of its choosing for its own fit
    real = querier_module.calibration.decode

    def forged_decode(spec: QuerySpec, totals: Sequence[int], noise: Any = None,
                      small: Any = None) -> Any:
        res = real(spec, totals, noise, small)
        if spec.statistic == "linear_regression":
            res.values["coef"] = [c * 3.0 for c in res.values["coef"]]
        return res

    spec = _fit_spec(998)
    with monkeypatch.context() as m:
        m.setattr(querier_module.calibration, "decode", forged_decode)
        with pytest.raises(QueryFailed, match="endorsement"):
            q.run(spec, datasets="diabetes")
    qid = spec.query_id_for("querier")
    view = q.follower.query_view(qid)
    assert view.result is not None and view.endorsements == []
    published = dict(view.result[1].result)
    # ... and evaluates "its" model: every owner refuses before it contributes
    ev = evaluation_spec(spec, qid, published)
    with pytest.raises(QueryFailed, match="did not endorse the previous result"):
        q.run(ev, datasets="diabetes")
    report = verify_certificate(q.certificate(ev.query_id_for("querier")).to_bytes(), trust)
    assert not report.valid and report.step == 8 and report.party == "querier"
    assert "not established" in (report.reason or "")
