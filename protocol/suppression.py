"""Suppression before decryption: the PET gate, the public release decision, partial decryption.

A statistic whose small cells must stay hidden names its *gate* entries
(:meth:`Statistic.gates`: row counts, e.g. the cell counts ``n`` of a crosstab) and a public
rule (:meth:`Statistic.release`) that says, from one bit per gate -- "this count is below
``min_cell_size``" -- which entries may be decrypted.  One query then decrypts in phases
(docs/privacy.md, "Suppression before decryption"; the construction: docs/notes/pet.md):

1. **pet** -- ``T`` distinct compute nodes in sequence each blind (a secret non-zero scalar
   per ciphertext, DLEQ-pair proof) and shuffle (re-encryption shuffle proof) the ``k``
   candidates ``Enc(n - j)``, ``j < k = min_cell_size``, of every gate count
   (:mod:`statledger.protocol.pet`); one ``pet`` entry per node;
2. **gate** -- every compute node publishes decryption shares of the *last* ``pet`` entry's
   ciphertexts only, with a batched DLEQ proof bound to (query, node) under its own domain
   (:data:`GATE_CONTEXT`, so a gate proof never passes as a decryption proof);
3. **release** -- the querier combines ``T`` valid gate entries: a gate is *small* iff one of
   its ``k`` plaintexts is zero (``0 <= n < k``: an empty cell is small); it logs a
   ``release`` entry with the ``T`` nodes combined, the small bits and the *release groups*
   (:meth:`Statistic.release_groups`, :func:`decide`): each a target position and members
   whose sum is decrypted as one number -- by default every entry ``release`` allows, alone;
   a coarsened Kaplan-Meier merges small intervals into the next one (the entry's ``merged``
   field lists the groups of several members).  Everyone re-derives it (step 12);
4. **decryption** -- every compute node checks the release entry itself (the same function,
   :func:`statledger.protocol.checks.check_release`) and publishes decryption shares of the
   release groups' ciphertexts only (:func:`select`: a group's members added limb by limb):
   a withheld entry (a small count included) gets no share from any node, and a merged
   member only inside its group's sum, so neither is anywhere on the log.  The result entry
   publishes the groups' totals only; the decoder receives each total at its target, 0 at
   the group's other members and ``None`` for a withheld entry (:func:`expand`).

What this reveals: one bit per gate, ``n < k`` (``k = Statistic.gate_k``: ``min_cell_size``,
or 1 for presence) -- never a withheld count or sum.
A query that asks for DP has no gates: its released numbers carry noise calibrated to the
budget (docs/privacy.md), and a PET cannot test a noisy count against a threshold.

A statistic without gates decrypts everything in one phase, as before: no pet, gate or
release entry may appear for its queries.  Gated today (exact queries): ``crosstab`` (gates:
the cell counts; withheld: every entry of a suppressed cell, its count included),
``min``/``max`` (gate: ``n``; withheld when small: everything), ``linear_regression``
(gate: ``n``; withheld when small: everything) and ``count``/``sum``/``mean``/``variance``/
``std`` with ``min_cell_size >= 2`` (gates: every group-by cell's ``n``; withheld: every entry
of a suppressed cell, as for ``crosstab``); with ``min_cell_size >= 2`` also ``histogram``
(gates: the bin counts; withheld: small bins and, in a line with exactly one, the first other
bin by position), ``covariance``/``correlation``/``cosine`` (gates: every cell's ``n``;
withheld: every entry of a suppressed cell) and ``logistic_irls``/``logistic_approx`` (gate:
``n``, every IRLS round; withheld when small: everything); and, whatever ``min_cell_size``,
the presence statistics ``set_union``/``set_intersection``/``bool_or``/``bool_and`` (gates:
every summed 0/1 indicator, tested with ``k = 1`` -- :meth:`Statistic.gate_k` -- so a bit
says only "the sum is 0"; withheld: everything, always -- the answer is read off the bits,
``Statistic.decode_gated``); and ``kaplan_meier`` with ``min_cell_size >= 2`` (gates: every
(group, grid point) events count; release groups: a run of small points summed with the next
non-small point, the trailing small run and the rows after the grid one censored sum; a group
without a non-small point withheld -- :mod:`statledger.protocol.stats.survival`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError
from statledger.protocol import flow, pet
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic

__all__ = [
    "GATE_CONTEXT",
    "Release",
    "release_groups",
    "everything",
    "released_totals",
    "gate_context",
    "gated",
    "gate_entries",
    "decide",
    "pet_inputs",
    "select",
    "sub_ranges",
    "expand",
]

GATE_CONTEXT = b"statledger/gate/v1\n"


def gate_context(query_id: str, node: str) -> bytes:
    """Binds a compute node's batched DLEQ proof on the gate ciphertexts to one query and
    one node, under a domain of its own (a gate proof is never a decryption proof)."""
    out = bytearray(GATE_CONTEXT)
    for p in (query_id, node):
        raw = p.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def gate_entries(spec: QuerySpec) -> list[int]:
    """The statistic's gate entries (layout positions, increasing, no repeat); none for a
    query that asks for DP (its noise is the disclosure control, docs/privacy.md)."""
    if spec.privacy.mechanism != "none":
        return []
    stat = get_statistic(spec.statistic)
    gates = list(stat.gates(spec))
    width = len(stat.layout(spec))
    if gates != sorted(set(gates)) or any(not 0 <= g < width for g in gates):
        raise MalformedError(f"{spec.statistic}: gate entries must be increasing layout "
                             "positions")  # a statistic bug, not an input error
    return gates


def gated(spec: QuerySpec) -> bool:
    """Whether the query decrypts in two phases (its statistic names gate entries)."""
    return bool(gate_entries(spec))


@dataclass(frozen=True)
class Release:
    """The public decision: one bit per gate (``n < min_cell_size``), the entries that may be
    decrypted (``released``: the release groups' target positions, increasing) and the groups
    with more than one member (``merged``: ``(target, other members...)`` per such group, by
    target; empty when every released entry is decrypted alone, as for every statistic but
    Kaplan-Meier)."""

    small: tuple[bool, ...]
    released: tuple[int, ...]
    merged: tuple[tuple[int, ...], ...] = ()

    def groups(self) -> list[tuple[int, ...]]:
        """Per released target (in :attr:`released` order), the members of its group,
        increasing (the target alone when it is not merged)."""
        return release_groups(self.released, self.merged)


def release_groups(released: Sequence[int], merged: Sequence[Sequence[int]]
                   ) -> list[tuple[int, ...]]:
    """Per target of ``released``, its group's members (increasing), from the ``merged``
    groups (``(target, other members...)``).  Raises :class:`MalformedError` when a merged
    group's target is not released, a position is in two groups, or a group repeats one."""
    by_target: dict[int, tuple[int, ...]] = {}
    seen: set[int] = set(int(j) for j in released)
    if len(seen) != len(released):
        raise MalformedError("release: a released position twice")
    for grp in merged:
        if len(grp) < 2:
            raise MalformedError("release: a merged group needs a target and another member")
        target, others = int(grp[0]), [int(j) for j in grp[1:]]
        if target not in seen or target in by_target:
            raise MalformedError("release: a merged group's target is not a released entry "
                                 "(or has two groups)")
        if others != sorted(set(others)) or any(j in seen for j in others):
            raise MalformedError("release: a position is in two release groups")
        seen.update(others)
        by_target[target] = tuple(sorted([target, *others]))
    return [by_target.get(int(j), (int(j),)) for j in released]


def everything(width: int) -> Release:
    """The decision of a query without gates: every entry decrypted alone."""
    return Release((), tuple(range(width)))


def decide(spec: QuerySpec, small: Sequence[bool]) -> Release:
    """The release decision for the PET bits ``small`` (one per gate, in
    :func:`gate_entries` order): ``Statistic.release_groups``.  A pure function of public
    values: the querier, every compute node and the verifier run it and must agree.  Checked
    here for every statistic: the groups are disjoint layout positions, each target one of
    its members, and a small gate is never decrypted alone (a singleton group)."""
    stat = get_statistic(spec.statistic)
    gates = gate_entries(spec)
    if len(small) != len(gates):
        raise MalformedError(f"release: {len(small)} gate bits, the query has "
                             f"{len(gates)} gate entries")
    width = len(stat.layout(spec))
    bits = [bool(b) for b in small]
    groups = sorted(stat.release_groups(spec, bits))
    released = tuple(t for t, _ in groups)
    merged = []
    for target, members in groups:
        ms = sorted(set(members))
        if len(ms) != len(members) or target not in ms or any(not 0 <= j < width for j in ms):
            raise MalformedError(f"{spec.statistic}: a release group outside the layout, "
                                 "repeating a member or without its target")
        if len(ms) > 1:
            merged.append((target, *[j for j in ms if j != target]))
    decision = Release(tuple(bits), released, tuple(merged))
    alone = {g[0] for g in decision.groups() if len(g) == 1}
    for g, b in zip(gates, bits, strict=True):
        if b and g in alone:
            raise MalformedError(f"{spec.statistic}: a small gate count is released")
    return decision


def pet_inputs(spec: QuerySpec, agg: Sequence[Sequence[Ciphertext]],
               contributions_ranges: Sequence[Sequence[tuple[int, int]]]
               ) -> list[list[Ciphertext]]:
    """The first PET node's inputs: per gate entry, ``Enc(n - j)`` for ``j < k`` (``k =
    Statistic.gate_k``: ``min_cell_size``, or 1 for a presence test) from its aggregated
    limbs (:func:`statledger.protocol.pet.count_ciphertext`, the shift of the
    contributions' lower bounds included).  Public: everyone re-derives them; the one place
    ``k`` is chosen (the chain's checks and the small bits take it from these inputs)."""
    out: list[list[Ciphertext]] = []
    k = get_statistic(spec.statistic).gate_k(spec)
    for g in gate_entries(spec):
        if not 0 <= g < len(agg):
            raise MalformedError("release: a gate outside the aggregate")
        shift = sum(int(r[g][0]) for r in contributions_ranges)
        out.append(pet.candidates(pet.count_ciphertext(agg[g], shift), k))
    return out


def _members(group: int | Sequence[int]) -> list[int]:
    return [int(group)] if isinstance(group, int) else [int(j) for j in group]


def select(agg: Sequence[Sequence[Ciphertext]], groups: Sequence[int | Sequence[int]]
           ) -> list[list[Ciphertext]]:
    """The aggregate restricted to the release ``groups`` (a position, or the members of a
    group): a lone entry keeps its limbs; a group's members are summed limb by limb (limb
    ``i`` of the sum is the sum of the members' limbs ``i``), so only the sum is decrypted."""
    out: list[list[Ciphertext]] = []
    for group in groups:
        members = _members(group)
        if not members or any(not 0 <= j < len(agg) for j in members):
            raise MalformedError("release: an entry outside the aggregate")
        limbs: list[Ciphertext] = list(agg[members[0]])
        for j in members[1:]:
            for i, ct in enumerate(agg[j]):
                if i < len(limbs):
                    limbs[i] = limbs[i] + ct
                else:
                    limbs.append(ct)
        out.append(limbs)
    return out


def sub_ranges(contributions_ranges: Sequence[Sequence[tuple[int, int]]],
               groups: Sequence[int | Sequence[int]]) -> list[list[tuple[int, int]]]:
    """Every contribution's ranges restricted to the release ``groups`` (noise ranges keep
    their limb maxima): what :func:`statledger.protocol.flow.decrypt_totals` needs for
    :func:`select`'s sub-aggregate.  A group's range is the members' ranges summed (the
    shift: the sum of their lower bounds), with the limb maxima of its limb-wise sum."""
    out: list[list[tuple[int, int]]] = []
    for ranges in contributions_ranges:
        row: list[tuple[int, int]] = []
        for group in groups:
            members = _members(group)
            if len(members) == 1:
                row.append(ranges[members[0]])
                continue
            per = flow.limb_bounds([[ranges[j] for j in members]])
            tops = [sum(p[i] for p in per if i < len(p)) for i in range(max(map(len, per)))]
            row.append(flow.NoiseRange(sum(int(ranges[j][0]) for j in members),
                                       sum(int(ranges[j][1]) for j in members), tops))
        out.append(row)
    return out


def expand(width: int, released: Sequence[int], totals: Sequence[int],
           groups: Sequence[Sequence[int]] | None = None) -> list[int | None]:
    """The full totals vector: ``totals`` (of the released groups, in order) at their target
    positions, 0 at a group's other members (public: the sum is at the target, nothing of
    the member was decrypted), ``None`` at every withheld one."""
    if len(released) != len(totals):
        raise MalformedError(f"{len(totals)} totals for {len(released)} released entries")
    members = [[int(j)] for j in released] if groups is None else [list(g) for g in groups]
    if len(members) != len(released):
        raise MalformedError("release: one group per released entry")
    out: list[int | None] = [None] * width
    for j, v, grp in zip(released, totals, members, strict=True):
        if not 0 <= j < width or any(not 0 <= m < width for m in grp) or j not in grp:
            raise MalformedError("release: an entry outside the layout")
        for m in grp:
            out[m] = 0
        out[j] = int(v)
    return out


def released_totals(spec: QuerySpec, totals: Sequence[int]) -> list[int | None]:
    """What a gated run publishes for the clear ``totals`` (in process, nothing encrypted):
    the PET bits ``totals[g] < Statistic.gate_k``, :func:`decide`, each release group's sum
    at its target (:func:`expand`).  The totals themselves when the query has no gates.  The
    reference the protocol's decryption must match (tests, the demo's expectations)."""
    gates = gate_entries(spec)
    if not gates:
        return list(totals)
    if any(not 0 <= g < len(totals) for g in gates):
        raise MalformedError("release: a gate outside the totals")
    k = get_statistic(spec.statistic).gate_k(spec)
    decision = decide(spec, [int(totals[g]) < k for g in gates])
    groups = decision.groups()
    sums = [sum(int(totals[j]) for j in grp) for grp in groups]
    return expand(len(totals), decision.released, sums, groups)
