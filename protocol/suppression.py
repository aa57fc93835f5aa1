"""Suppression before decryption: the gate, the public release decision, partial decryption.

A statistic whose small cells must stay hidden names its *gate* entries
(:meth:`Statistic.gates`, e.g. the cell counts ``n`` of a crosstab of means) and a public
rule (:meth:`Statistic.release`) that says, from the gate totals alone, which entries may be
decrypted.  One query then decrypts in two phases (docs/privacy.md, "Suppression before
decryption"):

1. **gate** -- every compute node publishes decryption shares of the gate entries'
   ciphertexts only, with a batched DLEQ proof bound to (query, node) under its own domain
   (:data:`GATE_CONTEXT`, so a gate proof never passes as a decryption proof);
2. **release** -- the querier combines ``T`` valid gate entries, decrypts the gate totals
   and logs a ``release`` entry: the ``T`` nodes combined, the gate totals and the released
   entries ``{j : release(spec, gate totals)[j]}``.  Everyone re-derives it (step 12);
3. **decryption** -- every compute node checks the release entry itself (the same function,
   :func:`check_release`) and publishes decryption shares of the released entries'
   ciphertexts only: a withheld entry's ciphertexts get no share from any node, so its total
   is nowhere on the log and cannot be recomputed.  The result entry publishes the released
   entries' totals only; the decoder receives ``None`` for a withheld entry.

What this reveals: the gate totals (e.g. every cell count, small ones included: n = 1 is
public) -- never the withheld sums.  A test that reveals only "n < k" (blinded
plaintext-equality tests, shuffled) is not built yet; docs/privacy.md says so.

A statistic without gates decrypts everything in one phase, as before: no gate entry and no
release entry may appear for its queries.  Gated today: ``crosstab`` with a value column
(gates: the cell counts; withheld: the sums of suppressed cells), ``min``/``max`` (gates:
``n`` and ``providers``; withheld below ``min_cell_size``: everything else) and
``linear_regression`` (gate: ``n``; withheld below ``min_cell_size``: every sum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError
from statledger.protocol import calibration
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats import get as get_statistic

__all__ = [
    "GATE_CONTEXT",
    "Release",
    "gate_context",
    "gated",
    "gate_entries",
    "decide",
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
    """The statistic's gate entries (layout positions, increasing, no repeat)."""
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
    """The public decision: the gate totals and the entries that may be decrypted."""

    gate_totals: tuple[int, ...]
    released: tuple[int, ...]


def decide(spec: QuerySpec, gate_totals: Sequence[int]) -> Release:
    """The release decision for ``gate_totals`` (the decrypted gate entries as encrypted, in
    :func:`gate_entries` order): ``Statistic.release`` of their values in the statistic's own
    units (a DP query's wire totals unscaled and post-processed as the decoder sees them,
    :func:`statledger.protocol.calibration.unscale`), gate entries always released.  A pure
    function of public values: the querier, every compute node and the verifier run it and
    must agree."""
    stat = get_statistic(spec.statistic)
    gates = gate_entries(spec)
    if len(gate_totals) != len(gates):
        raise MalformedError(f"release: {len(gate_totals)} gate totals, the query has "
                             f"{len(gates)} gate entries")
    width = len(stat.layout(spec))
    wire = expand(width, gates, [int(v) for v in gate_totals])
    plain = [v for v in calibration.unscale(spec, wire) if v is not None]  # type: ignore[arg-type]
    flags = stat.release(spec, plain)
    if len(flags) != width:
        raise MalformedError(f"{spec.statistic}: release mask of {len(flags)} entries for a "
                             f"layout of {width}")
    if not all(flags[g] for g in gates):
        raise MalformedError(f"{spec.statistic}: a gate entry is not released")
    return Release(tuple(int(v) for v in gate_totals),
                   tuple(j for j, f in enumerate(flags) if f))


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
