"""A party's view of the ledger node: append signed entries, read a query's entries back.

Thin wrapper over :class:`statledger.nodes.http.SignedClient` and the routes of
:mod:`statledger.nodes.ledger_service`.  No cryptography here beyond what the entries carry.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from statledger.nodes.http import RemoteError, SignedClient
from statledger.proofs.signatures import SigningKey
from statledger.protocol.entries import Entry

__all__ = ["LedgerClient", "NODE_READ_TIMEOUT", "NODE_APPEND_TIMEOUT", "NODE_BREAKER"]

# What a compute or provider node allows its ledger while a request waits (docs/deployment.md,
# "Hostile clients"): a read (an appended entry's range proofs are checked by the ledger, so
# appends get longer), then the node answers 503 + Retry-After; after a timeout the ledger
# is not asked again for NODE_BREAKER seconds, so the requests queued behind one that
# waited are answered at once.
NODE_READ_TIMEOUT = 15.0
NODE_APPEND_TIMEOUT = 60.0
NODE_BREAKER = 5.0


def _ranges(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Contiguous ``[start, end)`` runs of sorted unique indices."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


class LedgerClient:
    """``party_id``'s client of the ledger node at ``url`` whose party id is ``target``
    (requests are signed for that party only)."""

    def __init__(self, url: str, party_id: str, signing_key: SigningKey,
                 *, target: str, timeout: float = 120.0, append_timeout: float | None = None,
                 breaker: float = 0.0) -> None:
        self.url = url
        self.party_id = party_id
        self.target = target
        self.append_timeout = append_timeout
        self.http = SignedClient(url, party_id, signing_key, target=target, timeout=timeout,
                                 breaker=breaker)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LedgerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------------
    def append(self, entry: Entry) -> int:
        """Append one signed entry; idempotent for identical bytes.  Returns its index."""
        out = self.http.post("/v1/entries", content=entry.to_bytes(),
                             timeout=self.append_timeout)
        return int(out["index"])

    def checkpoint(self) -> str:
        """Ask the ledger to sign a checkpoint and collect the witnesses' cosignatures."""
        out = self.http.post("/v1/checkpoint")
        return str(out["checkpoint"])

    # -- reads ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = self.http.get("/v1/log")
        return out

    def entries(self, indices: Iterable[int]) -> list[tuple[int, bytes]]:
        """The bytes of the given entries, in index order."""
        out: list[tuple[int, bytes]] = []
        for start, end in _ranges(indices):
            pos = start
            while pos < end:
                stop = min(end, pos + 1000)
                rows = self.http.get("/v1/entries", params={"start": pos, "end": stop})
                for row in rows:
                    out.append((int(row["index"]), base64.b64decode(row["data"], validate=True)))
                pos = stop
        return out

    def query_indices(self, query_id: str) -> list[int]:
        try:
            out = self.http.get(f"/v1/queries/{query_id}/entries")
        except RemoteError as exc:
            if exc.status == 404:
                return []
            raise
        return [int(i) for i in out["indices"]]

    def queries_since(self, since: int) -> list[tuple[str, int]]:
        """(query id, index) of the queries logged at index >= ``since`` (a hint: an owner
        reads each query through :class:`statledger.nodes.follower.LogFollower`)."""
        out = self.http.get("/v1/queries", params={"since": since})
        return [(str(r["query_id"]), int(r["index"])) for r in out["queries"]]

    def chain_indices(self) -> list[int]:
        """Indices of the consortium's genesis and membership entries (a hint: what is read
        at them is checked by :class:`statledger.nodes.follower.LogFollower`)."""
        out = self.http.get("/v1/consortium")
        return [int(i) for i in out["chain"]]

    def index(self, query_id: str | None = None) -> dict[str, Any]:
        """Every hint of one poll in one request (``GET /v1/index``): the consortium chain,
        the registered parties, the key ceremony, the setups and, given ``query_id``, the
        query's entries."""
        params = {} if query_id is None else {"query": query_id}
        out: dict[str, Any] = self.http.get("/v1/index", params=params)
        return out

    @staticmethod
    def _ceremony_of(out: dict[str, Any]) -> list[int]:
        idx = [int(i) for i in out["parties"]] + [int(i) for i in out["dkg"]]
        if out.get("setup") is not None:
            idx.append(int(out["setup"]))
        idx.extend(int(i) for i in out.get("setups") or [])  # rekeys (docs/dkg.md)
        return sorted(set(idx) | {int(i) for i in out["chain"]})

    def _roster_of(self, out: dict[str, Any]) -> list[int]:
        if out.get("setup") is None:  # as GET /v1/setup answers while there is no setup
            raise RemoteError(404, "no setup entry on the log yet",
                              url=f"{self.url}/v1/index")
        return self._ceremony_of(out)

    def ceremony_indices(self) -> list[int]:
        """Indices of the consortium chain, every ``party`` entry, the key ceremony's
        ``dkg_*`` entries and the ``setup`` entry once written (hints: what is read at them is
        checked by :class:`statledger.nodes.follower.LogFollower`)."""
        return self._ceremony_of(self.index())

    def roster_indices(self) -> list[int]:
        """:meth:`ceremony_indices` once the setup is written (a 404 RemoteError before)."""
        return self._roster_of(self.index())

    def view_indices(self, query_id: str) -> tuple[list[int], list[int], list[int]]:
        """(:meth:`roster_indices`, :meth:`chain_indices`, :meth:`query_indices`) of
        ``query_id``, asked in one request (a 404 RemoteError before the setup)."""
        out = self.index(query_id)
        return (self._roster_of(out), sorted(int(i) for i in out["chain"]),
                [int(i) for i in out.get("query") or []])

    def latest_checkpoint(self) -> str | None:
        """The latest cosigned checkpoint the ledger serves (unchecked), or None."""
        try:
            out = self.http.get("/v1/checkpoint")
            return out if isinstance(out, str) else None
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        out = self.http.get("/v1/proofs/consistency", params={"size1": size1, "size2": size2})
        return [bytes.fromhex(h) for h in out["proof"]]

    def inclusion_proofs(self, indices: Iterable[int], size: int) -> dict[int, list[bytes]]:
        """Inclusion proofs of many entries against the tree of ``size`` (batched)."""
        wanted = sorted(set(indices))
        out: dict[int, list[bytes]] = {}
        for k in range(0, len(wanted), 500):
            part = wanted[k:k + 500]
            got = self.http.get("/v1/proofs/inclusions", params={
                "size": size, "indices": ",".join(str(i) for i in part)})
            for key, proof in got["proofs"].items():
                out[int(key)] = [bytes.fromhex(h) for h in proof]
        return out

    def query_entries(self, query_id: str) -> list[tuple[int, bytes]]:
        """Roster + every entry of the query (what :func:`statledger.protocol.checks.check_query`
        needs)."""
        return self.entries(self.roster_indices() + self.query_indices(query_id))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        out = self.http.get("/v1/proofs/inclusion", params={"index": index, "size": size})
        return [bytes.fromhex(h) for h in out["proof"]]

    def parties(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = self.http.get("/v1/parties")
        return out
