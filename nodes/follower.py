"""A party reads nothing from the ledger it has not checked itself.

Adversary: the ledger operator, or anyone on the path, serves entries, a roster or a
checkpoint that suit it -- a self-made setup, an entry that is not in the log everyone else
sees, a checkpoint nobody witnessed, or two different logs to two parties (a split view).
:class:`LogFollower` is how a compute node, a data owner and a querier read a query:

1. the consortium chain (the genesis, entry 0, and every membership change) is replayed
   from the genesis the party pins (its trust file): the roster is what the founding members
   and later the admission quorums signed, whatever the ledger says;
2. a checkpoint signed by the consortium's log key and cosigned by the roster's witness
   quorum (verification step 7's rule, :func:`statledger.ledger.note.verify_quorum`) that
   covers every entry the party uses; the ledger is asked for a fresh one when the latest
   does not;
3. that checkpoint is consistent with the last one this party accepted (RFC 9162
   consistency proof; same size => same root): a ledger that shows this party a different
   history than before -- a fork, a rollback, a split view -- is refused, and the accepted
   checkpoint is kept in the party's own SQLite state;
4. every entry comes with an inclusion proof against that checkpoint;
5. then the numbered steps (:func:`statledger.protocol.checks.check_query` with the pinned
   consortium id) run on the view, as before.

Every refusal raises :class:`~statledger.proofs.errors.VerificationError` naming the ledger.

What a follower keeps between reads, so that a poll costs what is new on the log and not
what it already checked (each a pure function of bytes it holds, never of what the ledger
says; a check that failed is never kept):

* the entries proven included (``proven``, when enabled): fetched and proven once;
* the roster timeline derived from the chain's bytes (the genesis, entry 0, and every
  membership change): derived again only when those bytes change -- a thousand founding
  members' genesis costs tens of milliseconds to re-encode and re-derive;
* the last checkpoint note whose log signature and witness quorum verified, with the roster
  keys it verified under: the same note text under the same keys is not verified again (a
  new note, new cosignatures or a new roster are);
* each query's previous round (a chained query's spec names it; the query id is the hash
  of the spec).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from statledger.ledger.checkpoint import open_checkpoint
from statledger.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from statledger.ledger.note import CosignatureVerifier, NoteVerifier, verify_quorum
from statledger.proofs.errors import MalformedError, StatledgerError, VerificationError
from statledger.protocol import chain
from statledger.protocol.consortium import RosterTimeline, SignedGenesis
from statledger.protocol.entries import Entry, GenesisEntry, MembershipEntry
from statledger.protocol.view import QueryView, parse_entries

if TYPE_CHECKING:  # pragma: no cover
    from statledger.nodes.ledger_client import LedgerClient

__all__ = ["LogFollower"]

_STEP = "ledger view"
#: At most this many proven entries are kept (``LogFollower.proven``); then it starts over.
MAX_PROVEN = 20_000
_SCHEMA = """CREATE TABLE IF NOT EXISTS accepted_checkpoint (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root TEXT NOT NULL)"""


def _refuse(reason: str) -> VerificationError:
    return VerificationError(reason, step=_STEP, party="ledger")


class LogFollower:
    """One party's checked view of the ledger (see the module docstring)."""

    def __init__(self, ledger: LedgerClient, genesis: SignedGenesis, state_db: Path) -> None:
        self.ledger = ledger
        self.genesis = genesis
        self.consortium_id: str = genesis.genesis.consortium_id
        self.origin: str = genesis.genesis.origin
        if str(state_db) != ":memory:":  # owner-only, whoever's umask (journals follow it)
            os.close(os.open(state_db, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(str(state_db), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        #: entries already proven included in an accepted checkpoint (index -> bytes), or
        #: None to read and prove every entry at every call.  Sound to keep: every checkpoint
        #: accepted later is proven consistent with the one they were proven against, so an
        #: entry proven once stays at its index.  Enabled by a pack of owners sharing this
        #: follower (nodes/owner.py).
        self.proven: dict[int, bytes] | None = None
        #: the chain rows the last roster timeline was derived from, and that timeline
        self._timeline: tuple[tuple[tuple[int, bytes], ...], RosterTimeline] | None = None
        #: (note text, log key, witness keys, quorum) of the last checkpoint that verified,
        #: and its (size, root)
        self._note: tuple[tuple[object, ...], tuple[int, bytes]] | None = None
        #: query id -> the previous round its spec names (None: not a chained round)
        self._previous: dict[str, str | None] = {}
        #: counters (tests read them, never timings): roster timelines derived, checkpoint
        #: notes whose signatures were checked
        self.derivations = 0
        self.notes_verified = 0

    def close(self) -> None:
        self._db.close()

    # -- the accepted checkpoint -------------------------------------------------------------
    def accepted(self) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT size, root FROM accepted_checkpoint WHERE origin = ?",
                               (self.origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes.fromhex(row[1]))

    def _accept(self, size: int, root: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO accepted_checkpoint VALUES (?, ?, ?)",
                         (self.origin, size, root.hex()))

    # -- reading -----------------------------------------------------------------------------
    def _roster(self, rows: dict[int, bytes]) -> RosterTimeline:
        """The roster timeline of the chain ``rows``; derived again only when their bytes
        differ from the last rows that derived one (a failure is never kept)."""
        key = tuple(sorted(rows.items()))
        last = self._timeline
        if last is not None and last[0] == key:
            return last[1]
        timeline = self._derive(rows)
        self._timeline = (key, timeline)
        return timeline

    def _derive(self, rows: dict[int, bytes]) -> RosterTimeline:
        self.derivations += 1
        chain: list[tuple[int, MembershipEntry]] = []
        genesis = None
        for index in sorted(rows):
            try:
                e = Entry.from_bytes(rows[index])
            except MalformedError as exc:
                raise _refuse(f"entry {index} served by the ledger: {exc}") from None
            if isinstance(e, GenesisEntry) and index == 0:
                genesis = e
            elif isinstance(e, MembershipEntry):
                chain.append((index, e))
        if genesis is None:
            raise _refuse("the ledger served no genesis as entry 0")
        if genesis.signed_genesis().genesis.consortium_id != self.consortium_id:
            raise _refuse("the log starts with another consortium's genesis than the pinned "
                          f"{self.consortium_id[:16]}...")
        try:
            return RosterTimeline.derive(self.genesis, [(i, m.change()) for i, m in chain],
                                         self.consortium_id)
        except VerificationError as exc:
            raise _refuse(f"membership chain: {exc.reason}") from None

    def checkpoint(self, covering: int, timeline: RosterTimeline) -> tuple[int, bytes]:
        """A witnessed checkpoint of size > ``covering``, consistent with the last accepted
        one; it becomes the accepted one.  Returns its (size, root)."""
        roster = timeline.final
        log_key = NoteVerifier(*roster.log_key())
        witnesses = [CosignatureVerifier(name, key) for name, key in roster.witness_keys()]
        # what a verified note is remembered under: its text and every key it was checked
        # with (a new roster, log key or witness set verifies it afresh)
        keys: tuple[object, ...] = (roster.log_key(), tuple(roster.witness_keys()),
                                    roster.witness_quorum)
        problem = "the ledger has signed no checkpoint"
        got: tuple[int, bytes] | None = None
        for attempt in range(3):
            # the latest checkpoint first; a fresh one when it does not cover the entries or
            # lacks the witness quorum (concurrent requests may race for the witnesses)
            note_text = (self.ledger.latest_checkpoint() if attempt == 0
                         else self.ledger.checkpoint())
            if note_text is None:
                continue
            last = self._note
            if last is not None and last[0] == (note_text, *keys):
                if last[1][0] <= covering:  # the same note: verified before, too small
                    problem = f"no checkpoint covers entry {covering}"
                    continue
                got = last[1]  # the very note text verified before under the same keys
                break
            self.notes_verified += 1
            try:
                cp, note = open_checkpoint(note_text, log_key, origin=self.origin)
            except StatledgerError as exc:
                raise _refuse(f"checkpoint not signed by the consortium's log: {exc}") from None
            if cp.size <= covering:
                problem = f"no checkpoint covers entry {covering}"
                continue
            try:
                verify_quorum(note, witnesses, roster.witness_quorum, step=_STEP,
                              party="ledger", kind="cosignature", signers="witnesses")
            except VerificationError as exc:
                problem = f"checkpoint of size {cp.size}: {exc.reason}"
                continue
            got = (cp.size, cp.root)
            self._note = ((note_text, *keys), got)
            break
        else:
            raise _refuse(problem)
        if got is None:  # pragma: no cover - the loop breaks only with a checkpoint
            raise _refuse(problem)
        size, root = got
        with self._lock:
            prev = self.accepted()
            if prev is not None:
                size0, root0 = prev
                if size < size0:
                    raise _refuse(f"the ledger shows a log of size {size}, this party "
                                  f"already accepted size {size0} (a rollback)")
                if size == size0 and root != root0:
                    raise _refuse(f"two different checkpoints of size {size} (a split "
                                  "view or a forked log)")
                if size > size0 and size0 > 0:
                    proof = self.ledger.consistency_proof(size0, size)
                    try:
                        verify_consistency(size0, size, root0, root, proof)
                    except StatledgerError as exc:
                        raise _refuse(f"checkpoint of size {size} is not consistent with "
                                      f"the accepted one of size {size0}: {exc}") from None
            self._accept(size, root)
        return size, root

    def entries(self, indices: list[int], *, chain: list[int] | None = None
                ) -> tuple[list[tuple[int, bytes]], RosterTimeline]:
        """The entries at ``indices`` and the consortium chain, each proven included in a
        witnessed checkpoint consistent with this party's history.  ``chain``: the chain's
        indices when the caller just asked the ledger for them (one request less)."""
        chain_idx = list(chain) if chain is not None else self.ledger.chain_indices()
        wanted = sorted(set(indices) | set(chain_idx) | {0})
        proven = dict(self.proven) if self.proven is not None else {}  # a snapshot
        new = [i for i in wanted if i not in proven]
        rows = dict(self.ledger.entries(new)) if new else {}
        if sorted(rows) != new:
            raise _refuse("the ledger did not serve every entry asked for")
        rows.update((i, proven[i]) for i in wanted if i in proven)
        timeline = self._roster({i: rows[i] for i in chain_idx + [0] if i in rows})
        if not new:  # every entry proven before, against an accepted checkpoint
            return sorted(rows.items()), timeline
        size, root = self.checkpoint(max(new), timeline)
        proofs = self.ledger.inclusion_proofs(new, size)
        for i in new:
            try:
                verify_inclusion(i, size, leaf_hash(rows[i]), proofs[i], root)
            except (StatledgerError, KeyError) as exc:
                raise _refuse(f"entry {i} is not in the witnessed log of size {size}: "
                              f"{exc}") from None
        if self.proven is not None:  # only once every new entry is proven
            if len(self.proven) + len(new) > MAX_PROVEN:  # bounded: re-read and re-proven
                self.proven.clear()
            self.proven.update((i, rows[i]) for i in new)
        return sorted(rows.items()), timeline

    def query_view(self, query_id: str) -> QueryView:
        """The query's entries and its roster, every one checked included (steps 5- follow
        with :func:`statledger.protocol.checks.check_query`)."""
        roster, chain, own = self.ledger.view_indices(query_id)  # one request
        rows, _ = self.entries(roster + own, chain=chain)
        return self.view_of(rows)

    def view_of(self, rows: list[tuple[int, bytes]]) -> QueryView:
        """The view of a query's ``rows`` (read by :meth:`entries`), with a chained round's
        previous round read and checked included too."""
        view = parse_entries(rows)
        prev = self._previous_round(view)
        if prev is None:
            return view
        # a chained round carries its previous round's query, result and endorsements
        # (protocol/chain.py)
        prev_rows, _ = self.entries(self.ledger.query_indices(prev))
        return parse_entries(sorted(set(rows) | set(chain.chain_rows(prev_rows, prev))))

    def _previous_round(self, view: QueryView) -> str | None:
        """:func:`_previous_round`, once per query id (the id is the hash of the spec and
        the querier, checked when the query entry is decoded: one id, one spec)."""
        if view.query is None:
            return None
        qid = view.query.query_id
        if qid not in self._previous:
            self._previous[qid] = _previous_round(view)
        return self._previous[qid]


def _previous_round(view: QueryView) -> str | None:
    """The previous round a chained query names (None if none or if the spec is malformed:
    step 8 says why)."""
    if view.query is None:
        return None
    try:
        return chain.previous_id(view.query.query_spec())
    except StatledgerError:
        return None
