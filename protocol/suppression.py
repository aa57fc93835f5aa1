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
   ``release`` entry with the ``T`` nodes combined, the small bits and the released entries
   ``{j : release(spec, small)[j]}``.  Everyone re-derives it (step 12);
4. **decryption** -- every compute node checks the release entry itself (the same function,
   :func:`statledger.protocol.checks.check_release`) and publishes decryption shares of the
   released entries' ciphertexts only: a withheld entry (a small count included) gets no
   share from any node, so its total is nowhere on the log and cannot be recomputed.  The
   result entry publishes the released entries' totals only; the decoder receives ``None``
   for a withheld entry.

What this reveals: one bit per gate, ``n < min_cell_size`` -- never a withheld count or sum.
A query that asks for DP has no gates: its released numbers carry noise calibrated to the
budget (docs/privacy.md), and a PET cannot test a noisy count against a threshold.

A statistic without gates decrypts everything in one phase, as before: no pet, gate or
release entry may appear for its queries.  Gated today (exact queries): ``crosstab`` (gates:
the cell counts; withheld: every entry of a suppressed cell, its count included),
``min``/``max`` (gate: ``n``; withheld when small: everything), ``linear_regression``
(gate: ``n``; withheld when small: everything) and ``count``/``sum``/``mean``/``variance``/
``std`` with ``min_cell_size >= 2`` (gates: every group-by cell's ``n``; withheld: every entry
of a suppressed cell, as for ``crosstab``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError
from statledger.protocol import pet
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic

__all__ = [
    "GATE_CONTEXT",
    "Release",
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
    """The public decision: one bit per gate (``n < min_cell_size``) and the entries that
    may be decrypted."""

    small: tuple[bool, ...]
    released: tuple[int, ...]


def decide(spec: QuerySpec, small: Sequence[bool]) -> Release:
    """The release decision for the PET bits ``small`` (one per gate, in
    :func:`gate_entries` order): ``Statistic.release``.  A pure function of public values:
    the querier, every compute node and the verifier run it and must agree."""
    stat = get_statistic(spec.statistic)
    gates = gate_entries(spec)
    if len(small) != len(gates):
        raise MalformedError(f"release: {len(small)} gate bits, the query has "
                             f"{len(gates)} gate entries")
    width = len(stat.layout(spec))
    bits = [bool(b) for b in small]
    flags = stat.release(spec, bits)
    if len(flags) != width:
        raise MalformedError(f"{spec.statistic}: release mask of {len(flags)} entries for a "
                             f"layout of {width}")
    for g, b in zip(gates, bits, strict=True):
        if b and flags[g]:
            raise MalformedError(f"{spec.statistic}: a small gate count is released")
    return Release(tuple(bits), tuple(j for j, f in enumerate(flags) if f))


def pet_inputs(spec: QuerySpec, agg: Sequence[Sequence[Ciphertext]],
               contributions_ranges: Sequence[Sequence[tuple[int, int]]]
               ) -> list[list[Ciphertext]]:
    """The first PET node's inputs: per gate entry, ``Enc(n - j)`` for ``j < min_cell_size``
    from its aggregated limbs (:func:`statledger.protocol.pet.count_ciphertext`, the shift
    of the contributions' lower bounds included).  Public: everyone re-derives them."""
    out: list[list[Ciphertext]] = []
    for g in gate_entries(spec):
        if not 0 <= g < len(agg):
            raise MalformedError("release: a gate outside the aggregate")
        shift = sum(int(r[g][0]) for r in contributions_ranges)
        out.append(pet.candidates(pet.count_ciphertext(agg[g], shift), spec.min_cell_size))
    return out


def select(agg: Sequence[Sequence[Ciphertext]], entries: Sequence[int]
           ) -> list[list[Ciphertext]]:
    """The aggregate restricted to ``entries`` (each entry keeps all its limbs)."""
    if any(not 0 <= j < len(agg) for j in entries):
        raise MalformedError("release: an entry outside the aggregate")
    return [list(agg[j]) for j in entries]


def sub_ranges(contributions_ranges: Sequence[Sequence[tuple[int, int]]],
               entries: Sequence[int]) -> list[list[tuple[int, int]]]:
    """Every contribution's ranges restricted to ``entries`` (noise ranges keep their limb
    maxima): what :func:`statledger.protocol.flow.decrypt_totals` needs for a sub-aggregate."""
    return [[r[j] for j in entries] for r in contributions_ranges]


def expand(width: int, released: Sequence[int], totals: Sequence[int]) -> list[int | None]:
    """The full totals vector: ``totals`` (of the released entries, in order) at their
    positions, ``None`` at every withheld one."""
    if len(released) != len(totals):
        raise MalformedError(f"{len(totals)} totals for {len(released)} released entries")
    out: list[int | None] = [None] * width
    for j, v in zip(released, totals, strict=True):
        if not 0 <= j < width:
            raise MalformedError("release: an entry outside the layout")
        out[j] = int(v)
    return out
