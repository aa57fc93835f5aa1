"""Issue 15, the cost of a poll: what the ledger and a reader keep between two reads of the
same log (nodes/ledger_service.py ``EntryPages``, ``GET /v1/index``; nodes/follower.py).

A real ledger node (its store, its side tables, its FastAPI app served in process) and a
real :class:`LogFollower`.  The compute nodes, the log's witnesses, do not run here: their
cosignatures are made with their real identity keys in process (``_cosigned``), which is
also how the adversary below -- who holds every key of the cluster -- forges a history.

What is proven, by counters and bytes (never timings):

* a page of entries served from the ledger's cache is byte for byte the page a fresh node
  serves (and the documented JSON); a cache entry under a stale leaf hash is never served;
* a follower that polls an unchanged log derives its roster timeline once and verifies a
  checkpoint note once; a new note is verified again;
* ``GET /v1/index`` answers what the separate routes answer, in one request; a malformed
  query id is refused.

Adversary played: the ledger serves a reader tampered bytes from its page cache (refused:
not in the witnessed log), a forged history with the checkpoint size the reader verified
and cached (refused: a split view), the same note with a cosignature line broken (verified
afresh: the witness quorum is not met), a tampered or foreign genesis as entry 0 after a
timeline was cached (refused; the honest timeline stays the one kept).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from statledger.ledger.checkpoint import Checkpoint
from statledger.ledger.note import Note, NoteSigner
from statledger.ledger.witness import CosignatureSigner
from statledger.nodes.config import load_config
from statledger.nodes.follower import LogFollower
from statledger.nodes.http import RemoteError
from statledger.nodes.keys import load_identity_key
from statledger.nodes.launcher import init_cluster
from statledger.nodes.ledger_client import LedgerClient
from statledger.nodes.ledger_service import EntryPages, LedgerNode, create_ledger_app
from statledger.nodes.trust import pinned_genesis
from statledger.proofs.errors import VerificationError
from statledger.protocol import entries
from statledger.protocol.query import QuerySpec

WITNESSES = ("compute-1", "compute-2")
BASE_URL = "http://ledger.test"


def _spec(name: str) -> QuerySpec:
    # distinct queries: distinct quorums
    return QuerySpec.parse({"version": 1, "statistic": "count", "columns": [],
                            "min_providers": 2 + "abc".index(name),
                            "privacy": {"mechanism": "none"}})


class Env:
    """One cluster directory, its ledger node in process, its keys."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.layout = init_cluster(base, n_compute=len(WITNESSES), queriers=["querier"])
        self.config: Any = load_config(self.layout.parties["ledger"].config_path,
                                       role="ledger")
        self.genesis = pinned_genesis(self.config)
        self.node = LedgerNode(self.config)
        self.app = create_ledger_app(self.config, node=self.node)
        self.origin = self.config.origin

    def key(self, party: str) -> Any:
        return load_identity_key(self.base / party / "identity.key")

    def append(self, entry: entries.Entry, sender: str) -> int:
        idx, _, _ = self.node.append(entries.sign(entry, self.key(sender)).to_bytes(), sender)
        return idx

    def register_querier(self) -> int:
        pub = self.key("querier").public_key().to_bytes().hex()
        return self.append(entries.PartyEntry("querier", "querier", pub), "querier")

    def query(self, name: str) -> tuple[str, int]:
        entry = entries.QueryEntry.for_spec(_spec(name), "querier")
        return entry.query_id, self.append(entry, "querier")

    def cosigned(self, witnesses: tuple[str, ...] = WITNESSES) -> str:
        """What ``POST /v1/checkpoint`` stores: the log's checkpoint of the current tree,
        cosigned by ``witnesses`` (their real keys)."""
        parsed = Note.parse(self.node.store.sign_checkpoint())
        now = int(time.time())
        sigs = list(parsed.signatures) + [
            CosignatureSigner(w, self.key(w).to_bytes()).cosign(parsed.text, now)
            for w in witnesses]
        self.node.store.add_cosignature(Note(parsed.text, tuple(sigs)).to_text())
        note = self.node.store.latest_checkpoint()
        assert note is not None
        return note

    def forged_note(self, size: int, root: bytes) -> str:
        """A checkpoint of another history, signed by the log key and cosigned by every
        witness (the adversary holds every key)."""
        text = Checkpoint(self.origin, size, root).body()
        now = int(time.time())
        sigs = [NoteSigner(self.origin, self.key("ledger").to_bytes()).sign(text)] + [
            CosignatureSigner(w, self.key(w).to_bytes()).cosign(text, now) for w in WITNESSES]
        return Note(text, tuple(sigs)).to_text()


class LocalLedger(LedgerClient):
    """A reader's client of the in-process ledger app: every read goes through the real
    routes; ``POST /v1/checkpoint`` (which calls the witnesses over HTTP) is the in-process
    cosigning of :meth:`Env.cosigned`.  ``served`` overrides what a route serves (the
    adversary); ``asked`` counts the GET requests by path."""

    def __init__(self, env: Env, party: str = "querier") -> None:
        super().__init__(BASE_URL, party, env.key(party), target="ledger")
        self.http._client = TestClient(env.app, base_url=BASE_URL)
        self.env = env
        self.asked: Counter[str] = Counter()
        self.note: str | None = None  # a forged checkpoint served instead of the real one
        get = self.http.get

        def counting(path: str, params: dict[str, Any] | None = None) -> Any:
            self.asked[path] += 1
            return get(path, params)

        self.http.get = counting  # type: ignore[method-assign]

    def latest_checkpoint(self) -> str | None:
        return self.note if self.note is not None else super().latest_checkpoint()

    def checkpoint(self) -> str:
        return self.note if self.note is not None else self.env.cosigned()


def _poll(follower: LogFollower, qid: str) -> Any:
    """One reader's poll of a query, as :meth:`LogFollower.query_view` runs it (one index
    request, the chain's indices passed along), on a log that has no setup entry yet (the
    compute nodes' key ceremony does not run here: the consortium chain and the registered
    parties stand for the roster)."""
    out = follower.ledger.index(qid)
    roster = follower.ledger._ceremony_of(out)
    rows, _ = follower.entries(roster + list(out["query"]), chain=list(out["chain"]))
    return follower.view_of(rows)


@pytest.fixture()
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "c")
    yield e
    e.node.close()


# -- the ledger's page cache -------------------------------------------------------------------

def _expected(env: Env, start: int, end: int) -> list[dict[str, Any]]:
    return [{"index": e.index, "kind": e.kind, "data": base64.b64encode(e.data).decode("ascii")}
            for e in env.node.store.entries(start, end)]


def test_a_cached_page_is_byte_identical_to_a_fresh_one(env: Env, tmp_path: Path) -> None:
    env.register_querier()
    for name in ("a", "b", "c"):
        env.query(name)
    n = env.node.store.size()
    http = TestClient(env.app, base_url=BASE_URL)  # (no lifespan: the fixture closes)
    cold = http.get("/v1/entries", params={"start": 0, "end": n}).content
    warm = http.get("/v1/entries", params={"start": 0, "end": n}).content
    part = http.get("/v1/entries", params={"start": 1, "end": n - 1}).content
    default = http.get("/v1/entries", params={"start": 2}).content
    assert cold == warm
    # the documented JSON, as FastAPI would render it
    assert cold == JSONResponse(_expected(env, 0, n)).body
    assert json.loads(cold) == _expected(env, 0, n)
    assert part == JSONResponse(_expected(env, 1, n - 1)).body
    assert default == JSONResponse(_expected(env, 2, n)).body
    # a fresh node on the same log (cold cache) serves the same bytes
    env.node.close()
    fresh = LedgerNode(env.config)
    try:
        http = TestClient(create_ledger_app(env.config, node=fresh), base_url=BASE_URL)
        assert http.get("/v1/entries", params={"start": 0, "end": n}).content == warm
        # refusals unchanged: past the end, reversed
        assert http.get("/v1/entries", params={"start": 0, "end": n + 1}).status_code == 404
        assert http.get("/v1/entries", params={"start": 2, "end": 1}).status_code == 400
    finally:
        fresh.close()
    env.node = LedgerNode(env.config)  # for the fixture's close


def test_a_cache_entry_under_a_stale_leaf_hash_is_never_served(env: Env) -> None:
    env.register_querier()
    stored = env.node.store.entry(1)
    env.node.pages._frags[(1, bytes(32))] = EntryPages.encode(1, stored.kind, b"forged")
    page = env.node.pages.page(env.node.store.entries(0, 2))
    assert page == JSONResponse(_expected(env, 0, 2)).body


def test_the_cache_is_bounded(env: Env) -> None:
    env.register_querier()
    env.query("a")
    pages = EntryPages(max_bytes=1)  # every new entry starts the cache over
    rows = env.node.store.entries(0, env.node.store.size())
    assert pages.page(rows) == JSONResponse(_expected(env, 0, len(rows))).body
    assert len(pages._frags) == 1


def test_a_reader_refuses_tampered_bytes_from_the_page_cache(env: Env) -> None:
    env.register_querier()
    qid, qidx = env.query("a")
    env.cosigned()
    stored = env.node.store.entry(qidx)
    tampered = stored.data[:-40] + bytes([stored.data[-40] ^ 1]) + stored.data[-39:]
    # the malicious operator poisons its own cache under the right key
    env.node.pages._frags[(qidx, stored.leaf_hash)] = EntryPages.encode(qidx, stored.kind,
                                                                         tampered)
    follower = LogFollower(LocalLedger(env), env.genesis, Path(":memory:"))
    follower.proven = {}
    with pytest.raises(VerificationError, match=f"entry {qidx} is not in the witnessed log"):
        _poll(follower, qid)
    assert qidx not in follower.proven  # nothing tampered kept as proven
    # the twin: the honest bytes are read, proven and kept
    env.node.pages = EntryPages()
    view = _poll(follower, qid)
    assert view.query is not None and view.query_index == qidx
    assert follower.proven[qidx] == stored.data
    follower.close()


# -- one request per poll ----------------------------------------------------------------------

def test_the_index_route_answers_what_the_separate_routes_answer(env: Env) -> None:
    led = LocalLedger(env)
    with pytest.raises(RemoteError) as no_setup:  # as GET /v1/setup: 404 before the setup
        led.roster_indices()
    assert no_setup.value.status == 404
    env.register_querier()
    qid, _ = env.query("a")
    env.query("b")
    out = led.index(qid)
    assert out["chain"] == led.http.get("/v1/consortium")["chain"]
    ceremony = led.http.get("/v1/ceremony")
    assert (out["dkg"], out["setup"], out["setups"]) == (
        ceremony["dkg"], ceremony["setup"], ceremony["setups"])
    assert out["parties"] == sorted(p["index"] for p in led.http.get("/v1/parties").values())
    assert out["query"] == led.query_indices(qid)
    assert led.index("cd" * 32)["query"] == [] == led.query_indices("cd" * 32)
    assert "query" not in led.index()
    assert led.ceremony_indices() == sorted(set(out["chain"]) | set(out["parties"]))
    http = TestClient(env.app, base_url=BASE_URL)
    for bad in ("ab" * 31, "AB" * 32, "ab" * 32 + "0", "zz" * 32, ""):
        refused = http.get("/v1/index", params={"query": bad})
        assert refused.status_code == 400 and "query" in refused.text, bad


def test_a_poll_of_an_unchanged_log_costs_no_derivation_and_no_note_check(env: Env) -> None:
    env.register_querier()
    qid, qidx = env.query("a")
    env.cosigned()
    led = LocalLedger(env)
    follower = LogFollower(led, env.genesis, Path(":memory:"))
    # proven entries not kept: every poll reads and proves every entry against a checkpoint
    assert follower.proven is None
    for _ in range(3):
        view = _poll(follower, qid)
        assert view.query_index == qidx
    assert follower.derivations == 1
    assert follower.notes_verified == 1
    # one index request per poll (chain, roster and the query's entries together)
    assert led.asked["/v1/index"] == 3 and led.asked["/v1/consortium"] == 0
    # the log grows: the new note is verified, the unchanged chain is not derived again
    qid2, _ = env.query("b")
    env.cosigned()
    assert _poll(follower, qid2).query is not None
    assert follower.notes_verified == 2 and follower.derivations == 1
    follower.close()


def test_a_cached_note_does_not_let_a_forged_history_through(env: Env) -> None:
    env.register_querier()
    qid, _ = env.query("a")
    env.cosigned()
    led = LocalLedger(env)
    follower = LogFollower(led, env.genesis, Path(":memory:"))
    follower.proven = {}
    _poll(follower, qid)
    accepted = follower.accepted()
    assert accepted is not None
    size, root = accepted
    _, timeline = follower.entries([0])
    # another history of the very size this reader verified and cached
    led.note = env.forged_note(size, bytes(32 * [7]))
    with pytest.raises(VerificationError, match="split view"):
        follower.checkpoint(size - 1, timeline)
    # the cached note with one cosignature broken: verified afresh, the quorum is not met
    real = env.node.store.latest_checkpoint()
    assert real is not None
    parsed = Note.parse(real)
    broken = [s for s in parsed.signatures if s.name != WITNESSES[0]]
    led.note = Note(parsed.text, tuple(broken)).to_text() + "\u2014 compute-1 AAAA\n"
    with pytest.raises(VerificationError):
        follower.checkpoint(size - 1, timeline)
    led.note = Note(parsed.text, tuple(broken)).to_text()
    with pytest.raises(VerificationError, match="cosignature"):
        follower.checkpoint(size - 1, timeline)
    assert follower.accepted() == (size, root)  # the accepted history is kept
    # the honest note again: accepted (verified again: the cache held the last note seen)
    led.note = None
    assert follower.checkpoint(size - 1, timeline) == (size, root)
    follower.close()


def test_a_cached_timeline_does_not_let_a_tampered_genesis_through(env: Env,
                                                                   tmp_path: Path) -> None:
    follower = LogFollower(LocalLedger(env), env.genesis, Path(":memory:"))
    honest = env.node.store.entry(0).data
    first = follower._roster({0: honest})
    assert follower.derivations == 1
    # a founding member renamed (the entry's own signature is the inclusion proof's
    # business: LogFollower.entries proves every chain row included before it is used)
    assert honest.count(b"compute-2") >= 1
    tampered = honest.replace(b"compute-2", b"compute-9")
    with pytest.raises(VerificationError, match="entry 0|another consortium"):
        follower._roster({0: tampered})
    other = Env(tmp_path / "other")  # another consortium's genesis, validly signed
    try:
        with pytest.raises(VerificationError, match="another consortium"):
            follower._roster({0: other.node.store.entry(0).data})
    finally:
        other.node.close()
    # the failures were not kept: the honest chain is the cached one, not derived again
    assert follower._roster({0: honest}) is first
    assert follower.derivations == 3
    follower.close()
