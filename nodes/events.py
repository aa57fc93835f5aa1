"""Query events: one structured log line per thing a data owner's node does with a query.

``statledger.events`` logs at INFO whatever the node's ``log_level`` (``node serve`` sets it),
one JSON object per line after the usual ``time party INFO statledger.events:`` prefix::

    {"event": "refused", "query": "55e9…", "querier": "querier", "statistic": "mean",
     "columns": ["bmi"], "rho": null, "dataset": "diabetes", "reason": "column 'bmi' is …"}

Events: ``received`` (a contribution request for a query read from the log), ``refused``
(with the policy's reason), ``contributed`` (with the log index), ``endorsed``.  The line
carries what the query asked (public on the log anyway), never a row, a count or a value.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from statledger.proofs.errors import StatledgerError

__all__ = ["EVENTS_LOGGER", "query_event"]

EVENTS_LOGGER = "statledger.events"
_log = logging.getLogger(EVENTS_LOGGER)


def query_event(event: str, query_id: str, spec: Any = None, **fields: Any) -> None:
    """Log one event about ``query_id``; ``spec`` (a QuerySpec) adds statistic, columns, rho."""
    obj: dict[str, Any] = {"event": event, "query": query_id}
    if spec is not None:
        from statledger.protocol import flow

        obj["statistic"] = spec.statistic
        obj["columns"] = sorted(set(spec.used_columns()))
        try:
            rho = flow.privacy_rho(spec)
        except StatledgerError:  # pure epsilon-DP: refused, and the refusal says why
            rho = None
        obj["rho"] = float(rho) if rho is not None else None
    obj.update(fields)
    _log.info("%s", json.dumps(obj, sort_keys=False, default=str))
