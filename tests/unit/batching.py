"""Test helper: drive the ledger's :class:`SubmissionBatcher` with concurrent submissions.

Every call is queued while a batch is marked as running, then all are let go together, so
the batcher checks them as one batch (the group commit the ledger does under load)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from statledger.nodes.ledger_service import SubmissionBatcher


def run_concurrently(batcher: SubmissionBatcher, calls: Sequence[tuple[Any, ...]]
                     ) -> dict[str, BaseException | None]:
    """``batcher.check(*call)`` for every call at once; per provider (the item's last
    field), None when accepted or the exception it raised."""
    out: dict[str, BaseException | None] = {}

    def one(call: tuple[Any, ...]) -> None:
        name = call[0][4]
        try:
            batcher.check(*call)
            out[name] = None
        except BaseException as exc:  # noqa: BLE001 - recorded for the asserts
            out[name] = exc

    with batcher._cv:
        batcher._busy = True
    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(batcher._queue) < len(calls) and time.monotonic() < deadline:
        time.sleep(0.01)
    with batcher._cv:
        batcher._busy = False
        batcher._cv.notify_all()
    for t in threads:
        t.join(60)
    return out
