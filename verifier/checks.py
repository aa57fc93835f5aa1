"""Steps 5-15 of docs/verification.md over the entries of one query.

:func:`check_query` is used by the certificate verifier, by the log auditor and by the parties
themselves (a compute node checks steps 5-11 before it decrypts; a data owner checks 5-14
before it endorses a result).  Every failure raises :class:`VerificationError` with
``step="step N"`` and the party blamed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from statledger.proofs.errors import DecryptionError, MalformedError, VerificationError
from statledger.proofs.group import Point
from statledger.proofs.signatures import VerifyKey
from statledger.proofs.vector import EncryptedVector, verify_encrypted_vectors_batch
from statledger.protocol import flow
from statledger.protocol.entries import (
    AggregateEntry,
    DecryptionEntry,
    EndorsementEntry,
    Entry,
    NoiseEntry,
    PartyEntry,
    QueryEntry,
    ResultEntry,
    SetupEntry,
    SubmissionEntry,
    result_digest,
    verify_signature,
)
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic

__all__ = ["QueryView", "parse_entries", "check_query", "results_match", "StepHook"]

StepHook = Callable[[int, str], None]


def _fail(step: int, reason: str, party: str | None = None) -> VerificationError:
    return VerificationError(reason, step=f"step {step}", party=party)


@dataclass
class QueryView:
    """The parsed entries of one query and the roster they rely on."""

    ledger: PartyEntry | None = None
    setup: SetupEntry | None = None
    parties: dict[str, PartyEntry] = field(default_factory=dict)
    query: QueryEntry | None = None
    spec: QuerySpec | None = None
    submissions: list[tuple[int, SubmissionEntry]] = field(default_factory=list)
    noise: list[tuple[int, NoiseEntry]] = field(default_factory=list)
    aggregate: tuple[int, AggregateEntry] | None = None
    decryptions: list[tuple[int, DecryptionEntry]] = field(default_factory=list)
    result: tuple[int, ResultEntry, bytes] | None = None
    endorsements: list[tuple[int, EndorsementEntry]] = field(default_factory=list)
    totals: list[int] | None = None
    decoded: dict[str, Any] | None = None
    _keys: dict[str, VerifyKey] = field(default_factory=dict)

    def key_of(self, party: PartyEntry) -> VerifyKey:
        """The party's Ed25519 key, decoded (and validated) once per verification."""
        key = self._keys.get(party.party_id)
        if key is None:
            key = self._keys[party.party_id] = party.verify_key()
        return key

    @property
    def query_id(self) -> str | None:
        return self.query.query_id if self.query is not None else None

    def compute_nodes(self) -> list[PartyEntry]:
        if self.setup is None:
            raise _fail(6, "no setup entry")
        return [self.parties[p] for p in self.setup.compute]


def parse_entries(entries: Sequence[tuple[int, bytes]]) -> QueryView:
    """(5) Decode every entry canonically and sort it into a :class:`QueryView`."""
    view = QueryView()
    for index, data in entries:
        try:
            e = Entry.from_bytes(data)
        except MalformedError as exc:
            raise _fail(5, f"entry {index}: {exc}") from None
        if isinstance(e, PartyEntry):
            if e.party_id in view.parties:
                raise _fail(5, f"entry {index}: party {e.party_id} registered twice", e.party_id)
            view.parties[e.party_id] = e
            if e.role == "ledger":
                if view.ledger is not None:
                    raise _fail(5, f"entry {index}: two ledger parties", e.party_id)
                view.ledger = e
        elif isinstance(e, SetupEntry):
            if view.setup is not None:
                raise _fail(5, f"entry {index}: two setup entries")
            view.setup = e
        elif isinstance(e, QueryEntry):
            if view.query is not None:
                raise _fail(5, f"entry {index}: two query entries", e.querier)
            view.query = e
        elif isinstance(e, SubmissionEntry):
            view.submissions.append((index, e))
        elif isinstance(e, NoiseEntry):
            view.noise.append((index, e))
        elif isinstance(e, AggregateEntry):
            if view.aggregate is not None:
                raise _fail(5, f"entry {index}: two aggregate entries")
            view.aggregate = (index, e)
        elif isinstance(e, DecryptionEntry):
            view.decryptions.append((index, e))
        elif isinstance(e, ResultEntry):
            if view.result is not None:
                raise _fail(5, f"entry {index}: two result entries")
            view.result = (index, e, bytes(data))
        elif isinstance(e, EndorsementEntry):
            view.endorsements.append((index, e))
        else:  # pragma: no cover - Entry.from_bytes knows no other kinds
            raise _fail(5, f"entry {index}: unexpected kind {e.KIND}")
    return view


def _party(view: QueryView, party_id: str, role: str, step: int) -> PartyEntry:
    p = view.parties.get(party_id)
    if p is None:
        raise _fail(step, f"{party_id} is not a registered party", party_id)
    if p.role != role:
        raise _fail(step, f"{party_id} is registered as {p.role}, not {role}", party_id)
    return p


def _signed(view: QueryView, entry: Entry, author: str, role: str, step: int) -> None:
    key = view.key_of(_party(view, author, role, step))
    verify_signature(entry, key, author, step=f"step {step}")


def _check_roster(view: QueryView) -> list[Point]:
    # (6) ledger identity, setup signed by the ledger, compute keys with their PoKs,
    # collective key = sum of the listed compute keys.
    if view.ledger is None:
        raise _fail(6, "no ledger party entry")
    for p in view.parties.values():
        verify_signature(p, view.key_of(p), p.party_id, step="step 6")
    if view.setup is None:
        raise _fail(6, "no setup entry")
    verify_signature(view.setup, view.key_of(view.ledger), view.ledger.party_id, step="step 6")
    keys: list[Point] = []
    for node in view.setup.compute:
        p = _party(view, node, "compute", 6)
        p.verify_pok(step="step 6")
        keys.append(p.elgamal_point())
    if flow.collective_key(keys) != view.setup.collective_point():
        raise _fail(6, "setup.collective_key is not the sum of the compute nodes' keys",
                    view.ledger.party_id)
    return keys


def _check_query_entry(view: QueryView) -> QuerySpec:
    # (8) the query: signed by a registered querier; id = hash of the canonical spec (checked
    # when the entry was decoded); every other entry is about this query.
    if view.query is None:
        raise _fail(8, "no query entry")
    q = view.query
    _signed(view, q, q.querier, "querier", 8)
    spec = q.query_spec()
    for kind, items in (("submission", view.submissions), ("noise", view.noise),
                        ("decryption", view.decryptions), ("endorsement", view.endorsements)):
        for index, e in items:
            if e.query_id != q.query_id:
                raise _fail(8, f"{kind} entry {index} belongs to query "
                               f"{e.query_id}", e.claimed_author())
    if view.aggregate is not None and view.aggregate[1].query_id != q.query_id:
        raise _fail(8, "the aggregate belongs to another query", q.querier)
    if view.result is not None and view.result[1].query_id != q.query_id:
        raise _fail(8, "the result belongs to another query", q.querier)
    return spec


def _noise_ranges(spec: QuerySpec, n_nodes: int) -> list[tuple[int, int]] | None:
    plan = flow.noise_plan(spec, n_nodes)
    return None if plan is None else plan.ranges()


def check_query(
    view: QueryView,
    *,
    through: int = 15,
    on_step: StepHook | None = None,
    verify_range_proofs: bool = True,
) -> QueryView:
    """Run steps 6 and 8..``through`` on ``view`` (step 7 needs the checkpoint: see verify.py).

    ``on_step(n, detail)`` is called after each step passes.  Returns ``view`` with
    ``totals`` and ``decoded`` filled in when steps 13/14 ran.  ``verify_range_proofs=False``
    skips only the range proofs of steps 9-10 (a data owner endorsing a result relies on the
    compute nodes and every later verifier for them); every other check still runs.
    """

    def ok(step: int, detail: str) -> None:
        if on_step is not None:
            on_step(step, detail)

    keys = _check_roster(view)
    ok(6, f"{len(keys)} compute node keys with valid proofs of knowledge")
    spec = _check_query_entry(view)
    view.spec = spec
    qid = spec.query_id
    ok(8, f"query {qid[:16]}... ({spec.statistic}) by {view.query.querier}")  # type: ignore[union-attr]
    if through <= 8:
        return view
    stat = get_statistic(spec.statistic)
    layout = stat.layout(spec)
    ranges = list(layout.ranges)
    X = view.setup.collective_point()  # type: ignore[union-attr]

    # (9) submissions: signed, one per provider, decodable, range proofs valid.
    seen: set[str] = set()
    decoded: dict[int, tuple[str, EncryptedVector, list[tuple[int, int]]]] = {}
    batch: list[tuple[Point, EncryptedVector, list[tuple[int, int]], bytes]] = []
    parties: list[str] = []
    for index, s in view.submissions:
        _signed(view, s, s.provider, "provider", 9)
        if s.provider in seen:
            raise _fail(9, f"provider {s.provider} submitted twice", s.provider)
        seen.add(s.provider)
        try:
            ev = s.decode_vector(ranges)
        except MalformedError as exc:
            raise _fail(9, f"submission {index}: {exc}", s.provider) from None
        decoded[index] = (s.provider, ev, ranges)
        batch.append((X, ev, ranges, flow.submission_context(qid, s.provider)))
        parties.append(s.provider)
    if verify_range_proofs and view.submissions:
        _batch_verify(batch, parties, 9)
    ok(9, f"{len(view.submissions)} submissions"
       + (", every value proven in range" if verify_range_proofs else
          " (range proofs not re-checked here)"))
    if through <= 9:
        return view

    # (10) DP noise: one share per compute node iff the query asks for DP.
    noise_ranges = _noise_ranges(spec, len(keys))
    nodes_seen: set[str] = set()
    batch = []
    parties = []
    if noise_ranges is None and view.noise:
        raise _fail(10, "noise entries for a query without DP", view.noise[0][1].node)
    for index, n in view.noise:
        if view.setup is None or n.node not in view.setup.compute:
            raise _fail(10, f"noise entry {index} by {n.node}, not a compute node", n.node)
        _signed(view, n, n.node, "compute", 10)
        if n.node in nodes_seen:
            raise _fail(10, f"node {n.node} sent two noise shares", n.node)
        nodes_seen.add(n.node)
        if noise_ranges is None:  # pragma: no cover - handled above
            raise _fail(10, "unexpected noise")
        try:
            ev = n.decode_vector(noise_ranges)
        except MalformedError as exc:
            raise _fail(10, f"noise entry {index}: {exc}", n.node) from None
        decoded[index] = (n.node, ev, noise_ranges)
        batch.append((X, ev, noise_ranges, flow.noise_context(qid, n.node)))
        parties.append(n.node)
    if verify_range_proofs and batch:
        _batch_verify(batch, parties, 10)
    if noise_ranges is not None and view.aggregate is not None:
        missing = sorted(set(view.setup.compute) - nodes_seen)  # type: ignore[union-attr]
        if missing:
            raise _fail(10, f"no DP noise share from {', '.join(missing)}", missing[0])
    ok(10, "no DP requested" if noise_ranges is None
       else f"DP noise added in shares by the compute nodes (not a verifiable shuffle): "
            f"{len(view.noise)} discrete-Gaussian shares, each range-proven in "
            f"[-{noise_ranges[0][1]}, {noise_ranges[0][1]}]")
    if through <= 10:
        return view

    # (11) aggregate: lists exactly the certificate's contributions; recomputed.
    if view.aggregate is None:
        raise _fail(11, "no aggregate entry", view.query.querier)  # type: ignore[union-attr]
    aidx, agg = view.aggregate
    querier = view.query.querier  # type: ignore[union-attr]
    # The aggregate is recomputed below, but it is still the querier's signed statement: an
    # unchecked signature would be a field anyone (the log operator) could change.
    _signed(view, agg, querier, "querier", 11)
    if sorted(agg.submissions) != sorted(i for i, _ in view.submissions):
        raise _fail(11, "the aggregate does not list exactly the submissions", querier)
    if sorted(agg.noise) != sorted(i for i, _ in view.noise):
        raise _fail(11, "the aggregate does not list exactly the noise shares", querier)
    if len(view.submissions) < spec.min_providers:
        raise _fail(11, f"{len(view.submissions)} providers, the query needs at least "
                        f"{spec.min_providers}", querier)
    order = list(agg.submissions) + list(agg.noise)
    contributions = [flow.Contribution(decoded[i][1], tuple(decoded[i][2])) for i in order]
    agg_tree = flow.aggregate(contributions)
    recomputed = flow.flatten(agg_tree)
    if recomputed != agg.decode_ciphertexts():
        raise _fail(11, "the logged aggregate is not the sum of the contributions", querier)
    ok(11, f"aggregate of {len(view.submissions)} providers recomputed "
           f"({len(recomputed)} ciphertexts)")
    if through <= 11:
        return view

    # (12) decryption shares: one per compute node, batched DLEQ valid.
    by_node: dict[str, DecryptionEntry] = {}
    for index, d in view.decryptions:
        if d.node not in view.setup.compute:  # type: ignore[union-attr]
            raise _fail(12, f"decryption entry {index} by {d.node}, not a compute node", d.node)
        _signed(view, d, d.node, "compute", 12)
        if d.node in by_node:
            raise _fail(12, f"node {d.node} sent two decryption entries", d.node)
        by_node[d.node] = d
    shares_by_node = []
    for node, X_i in zip(view.setup.compute, keys, strict=True):  # type: ignore[union-attr]
        node_entry = by_node.get(node)
        if node_entry is None:
            raise _fail(12, f"no decryption shares from {node}", node)
        d = node_entry
        try:
            shares = d.share_points()
            proof = d.decode_proof()
        except MalformedError as exc:
            raise _fail(12, f"decryption entry: {exc}", node) from None
        flow.verify_decryption(X_i, recomputed, shares, proof,
                               flow.decryption_context(qid, node), party=node, step="step 12")
        shares_by_node.append(shares)
    ok(12, f"{len(shares_by_node)} nodes' decryption shares proven (batched DLEQ)")
    if through <= 12:
        return view

    # (13) totals: combine, exact discrete logs, recombine limbs, undo shifts.
    try:
        totals = flow.decrypt_totals(agg_tree, shares_by_node, [c.ranges for c in contributions])
    except DecryptionError as exc:
        raise _fail(13, f"the aggregate does not decrypt within its bounds: {exc}") from None
    view.totals = totals
    if view.result is None:
        if through >= 13:
            raise _fail(13, "no result entry", querier)
        return view  # pragma: no cover
    ridx, res, rbytes = view.result
    verify_signature(res, view.key_of(_party(view, querier, "querier", 13)), querier,
                     step="step 13")
    if res.totals_int() != totals:
        raise _fail(13, "the published totals are not the decryption of the aggregate", querier)
    ok(13, f"{len(totals)} totals decrypted exactly")
    if through <= 13:
        return view

    # (14) result: decoded again from the totals; every number recomputed.
    decoded_result = stat.decode(spec, totals).to_dict()
    view.decoded = decoded_result
    where = results_match(decoded_result, res.result)
    if where is not None:
        raise _fail(14, f"the published result differs from decode(totals) at {where}", querier)
    ok(14, "every number of the result recomputed from the totals")
    if through <= 14:
        return view

    # (15) endorsements: every contributing provider signed the result digest.
    digest = result_digest(rbytes)
    endorsed: set[str] = set()
    for index, en in view.endorsements:
        _signed(view, en, en.provider, "provider", 15)
        if en.provider in endorsed:
            raise _fail(15, f"provider {en.provider} endorsed twice", en.provider)
        if en.result_digest != digest:
            raise _fail(15, f"endorsement {index} signs another result", en.provider)
        endorsed.add(en.provider)
    contributors = {s.provider for _, s in view.submissions}
    extra = sorted(endorsed - contributors)
    if extra:
        raise _fail(15, f"endorsement by {extra[0]}, who did not contribute", extra[0])
    missing = sorted(contributors - endorsed)
    if missing:
        raise _fail(15, f"no endorsement from contributing provider {missing[0]}", missing[0])
    ok(15, f"{len(endorsed)} owners endorsed the result")
    return view


def _batch_verify(
    batch: list[tuple[Point, EncryptedVector, list[tuple[int, int]], bytes]],
    parties: list[str],
    step: int,
) -> None:
    try:
        verify_encrypted_vectors_batch(batch, parties)
    except VerificationError as exc:
        raise _fail(step, f"range proof: {exc.reason}", exc.party) from None


_REL_TOL = 1e-9
_ABS_TOL = 1e-12


def results_match(a: Any, b: Any, path: str = "result") -> str | None:
    """``None`` if ``a`` and ``b`` are the same JSON value (floats to 1e-9 relative), else
    the path of the first difference."""
    if isinstance(a, bool) or isinstance(b, bool):
        return None if a is b else path
    if isinstance(a, int | float) and isinstance(b, int | float):
        if isinstance(a, int) and isinstance(b, int):
            return None if a == b else path
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return path
        return None if math.isclose(fa, fb, rel_tol=_REL_TOL, abs_tol=_ABS_TOL) else path
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path} (keys)"
        for k in sorted(a):
            w = results_match(a[k], b[k], f"{path}.{k}")
            if w is not None:
                return w
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            w = results_match(x, y, f"{path}[{i}]")
            if w is not None:
                return w
        return None
    return None if a == b and type(a) is type(b) else path
