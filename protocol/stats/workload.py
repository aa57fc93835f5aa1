"""Workload queries answered by the matrix mechanism: measure a public strategy, reconstruct
the workload by least squares (docs/statistics.md, "workload").

Spec.  ``columns`` lists categorical attributes with declared ``categories`` (their domains;
the full domain is their product).  The workload is one of

* ``params.marginals = k``: every k-way marginal of ``columns`` (each cell a counting query);
* ``params.queries = [...]``: explicit linear counting queries, each ``{"where": {col:
  [cats]}}`` (rows whose values lie in the listed categories) or ``{"terms": [{"coef": c,
  "where": {...}}, ...]}`` (an integer combination of such predicates), with an optional
  ``"name"``.

``params.strategy`` names what the owners measure (one block of counts per measured
marginal -- never the full-domain histogram unless the strategy asks for it):

* ``"identity"``: the marginal on every column, i.e. the full-domain histogram (only for
  domains of at most :data:`MAX_IDENTITY_CELLS` cells);
* ``"marginals"`` (default): the workload's own marginals (the maximal supports);
* ``"hdmm"``: an optimised strategy in the spirit of HDMM (McKenna et al., VLDB 2018): the
  workload's marginals plus every lower-order marginal below them (down to the total
  count), with integer per-block weights ``w_S`` in ``1..8`` (``0`` drops a lower-order
  block) chosen by a deterministic coordinate descent that minimises the workload's total
  squared error under the noise the distributed shares actually add (below).

Noise and accounting.  With DP every encoded cell of block ``S`` travels scaled by ``w_S``
(the per-entry calibration weights of :mod:`statledger.protocol.calibration`), so its wire
sensitivity is ``w_S``; the verifiable noise shares add the same noise (variance ``sigma^2``)
to every entry.  One row adds to exactly one cell of every block, so the privacy bound is
charged for one entry per block (``calibration.privacy_profile``): ``sigma^2`` scales with
``sum_S w_S^2`` and block ``S`` is measured with noise ``sigma / w_S`` in count units; the
weights move budget between blocks.

Reconstruction (exact; step 14 re-runs it bit for bit).  With ``A`` the stacked weighted
marginal operators and ``y`` the decrypted wire totals, ``x_hat = (A^T A)^+ A^T y``.  ``A^T A``
is a sum of Kronecker products of ``I`` and ``1 1^T``, diagonal in the basis
``E_U = (x)_{i in U} Q_i (x)_{i not in U} P_i`` (``P_i = 11^T / n_i``, ``Q_i = I - P_i``) with
eigenvalues ``lambda_U = sum_{S >= U} w_S^2 prod_{i not in S} n_i``.  The ``E_U`` component of
``x_hat`` is constant outside the axes of ``U`` and equals ``g_U = lambda_U^-1 sum_{S >= U} w_S
center_U(mean_{S - U}(y_S))``; the marginal on ``V`` of ``x_hat`` is ``prod_{i not in V} n_i
sum_{U <= V} g_U`` (broadcast).  Every step is rational (:class:`fractions.Fraction`) and is
rounded to a float once.  Standard errors: ``Var(q . x_hat) = sigma^2 sum_{U <= V}
lambda_U^-1 prod_{i not in U} n_i |center_U(mean_{V - U} q)|^2`` for a query ``q`` on the
marginal ``V``; ``se_unit`` reports its square root for ``sigma = 1`` (wire units) and the DP
report multiplies by the logged noise's ``sigma``.  Tests cross-check both against
``numpy.linalg.lstsq`` on the full domain.

Without DP every weight is 1, nothing is noised and the answers are the exact counts.  A
workload without DP releases every cell of every marginal exactly: no suppression applies,
so the spec must say ``min_cell_size: 1`` (an owner's policy may refuse it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from statledger.proofs.errors import MalformedError
from statledger.protocol.stats.base import (
    Layout,
    LocalReport,
    Statistic,
    StatResult,
    Table,
    check_totals,
    count_range,
    register,
    require_categorical,
    require_no_group_by,
    require_params,
    select_rows,
)
from statledger.protocol.stats.exact import sqrt_float, to_float

if TYPE_CHECKING:
    from statledger.protocol.query import QuerySpec

__all__ = [
    "Workload",
    "WorkloadPlan",
    "WorkloadQuery",
    "plan",
    "STRATEGIES",
    "MAX_IDENTITY_CELLS",
    "MAX_QUERIES",
    "MAX_WEIGHT",
]

STRATEGIES = ("identity", "marginals", "hdmm")
#: Largest full domain the identity strategy measures.
MAX_IDENTITY_CELLS = 4096
#: Most explicit queries (and most workload cells) one spec may ask.
MAX_QUERIES = 4096
#: Largest per-block weight of the optimised strategy.
MAX_WEIGHT = 8
#: Largest marginal one query may read (cells of its support).
MAX_SUPPORT_CELLS = 4096
#: Work bound of the exact decode: sum over queries of 2^|support| * cells(support).
MAX_DECODE_WORK = 1 << 21
#: Most blocks the optimised strategy may consider (the workload's marginals and below).
MAX_HDMM_BLOCKS = 128
_MAX_SWEEPS = 16

Subset = tuple[int, ...]
ObjArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class WorkloadQuery:
    """One linear counting query: ``coef`` over the cells (row-major) of the marginal on
    ``support`` (column indices, increasing)."""

    label: str
    support: Subset
    coef: tuple[int, ...]


@dataclass(frozen=True)
class WorkloadPlan:
    """Everything the spec fixes: columns, domain sizes, workload, strategy blocks, weights."""

    columns: tuple[str, ...]
    sizes: tuple[int, ...]
    queries: tuple[WorkloadQuery, ...]
    strategy: str
    blocks: tuple[Subset, ...]
    weights: tuple[int, ...]
    description: str

    def cells(self, s: Subset) -> int:
        return math.prod(self.sizes[i] for i in s)

    def block_offsets(self) -> list[int]:
        """Start of every block in the encoded vector (and the total length last)."""
        out = [0]
        for s in self.blocks:
            out.append(out[-1] + self.cells(s))
        return out

    def entry_weights(self) -> list[int]:
        return [w for s, w in zip(self.blocks, self.weights, strict=True)
                for _ in range(self.cells(s))]


# ---------------------------------------------------------------------------- the algebra
def _subsets(s: Subset) -> list[Subset]:
    return [c for k in range(len(s) + 1) for c in itertools.combinations(s, k)]


def _lambdas(sizes: Sequence[int], blocks: Sequence[Subset], weights: Sequence[int],
             us: Sequence[Subset]) -> dict[Subset, int]:
    """``lambda_U = sum_{S >= U} w_S^2 prod_{i not in S} n_i`` (an integer)."""
    d = len(sizes)
    out: dict[Subset, int] = {}
    for u in us:
        lam = 0
        for s, w in zip(blocks, weights, strict=True):
            if w and set(u) <= set(s):
                lam += w * w * math.prod(sizes[i] for i in range(d) if i not in s)
        out[u] = lam
    return out


def _center_mean(z: ObjArray, axes_of: Subset, keep: Subset) -> ObjArray:
    """``center_keep(mean_{axes_of - keep}(z))`` for a tensor ``z`` whose axes are the
    columns ``axes_of`` (in order); the result's axes are ``keep`` (in order)."""
    drop = tuple(k for k, i in enumerate(axes_of) if i not in keep)
    if drop:
        n = math.prod(z.shape[k] for k in drop)
        z = np.asarray(z.sum(axis=drop), dtype=object) / n
    z = np.asarray(z, dtype=object)
    for ax in range(z.ndim):
        z = z - np.asarray(z.sum(axis=ax, keepdims=True), dtype=object) / z.shape[ax]
    return z


def _broadcast(z: ObjArray, axes_of: Subset, target: Subset, sizes: Sequence[int]) -> ObjArray:
    """``z`` (axes ``axes_of`` subset of ``target``) repeated along the other target axes."""
    shape = [sizes[i] if i in axes_of else 1 for i in target]
    return np.broadcast_to(np.asarray(z, dtype=object).reshape(shape),
                           tuple(sizes[i] for i in target))


def _query_norms(p: WorkloadPlan, q: WorkloadQuery) -> dict[Subset, Fraction]:
    """``|center_U(mean_{V - U} q)|^2`` for every ``U <= V`` (independent of the weights)."""
    v = q.support
    arr = np.asarray([Fraction(c) for c in q.coef], dtype=object).reshape(
        tuple(p.sizes[i] for i in v) or ())
    out: dict[Subset, Fraction] = {}
    for u in _subsets(v):
        c = _center_mean(arr, v, u)
        out[u] = Fraction(sum((x * x for x in np.asarray(c, dtype=object).reshape(-1)),
                              Fraction(0)))
    return out


def _unit_variances(p: WorkloadPlan, lam: dict[Subset, int],
                    norms: Sequence[dict[Subset, Fraction]]) -> list[Fraction]:
    d = len(p.sizes)
    out: list[Fraction] = []
    for nq in norms:
        var = Fraction(0)
        for u, c2 in nq.items():
            if c2:
                var += c2 * math.prod(p.sizes[i] for i in range(d) if i not in u) / lam[u]
        out.append(var)
    return out


# ---------------------------------------------------------------------------- planning
def _parse_where(spec: QuerySpec, cols: Sequence[str], obj: Any, where: str
                 ) -> dict[int, list[int]]:
    if not isinstance(obj, dict) or not obj:
        raise MalformedError(f"{where}: needs an object column -> list of categories")
    out: dict[int, list[int]] = {}
    for col, cats in obj.items():
        if col not in cols:
            raise MalformedError(f"{where}.{col}: not one of the workload's columns")
        if not isinstance(cats, list) or not cats:
            raise MalformedError(f"{where}.{col}: needs a non-empty list of categories")
        index = {c: k for k, c in enumerate(spec.categories[col])}
        picked: list[int] = []
        for j, c in enumerate(cats):
            if not isinstance(c, str) or c not in index:
                raise MalformedError(f"{where}.{col}[{j}]: not a declared category of {col!r}")
            if index[c] in picked:
                raise MalformedError(f"{where}.{col}[{j}]: duplicate category")
            picked.append(index[c])
        out[cols.index(col)] = picked
    return out


def _explicit(spec: QuerySpec, cols: Sequence[str], sizes: Sequence[int]
              ) -> list[WorkloadQuery]:
    raw = spec.params["queries"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_QUERIES:
        raise MalformedError(f"params.queries: needs a list of 1..{MAX_QUERIES} queries")
    out: list[WorkloadQuery] = []
    for qi, q in enumerate(raw):
        where = f"params.queries[{qi}]"
        if not isinstance(q, dict):
            raise MalformedError(f"{where}: needs an object")
        unknown = set(q) - {"name", "where", "terms"}
        if unknown:
            raise MalformedError(f"{where}.{sorted(unknown)[0]}: unknown field")
        if ("where" in q) == ("terms" in q):
            raise MalformedError(f"{where}: needs exactly one of 'where' and 'terms'")
        name = q.get("name", f"q{qi}")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise MalformedError(f"{where}.name: needs a non-empty string of <= 128 chars")
        terms: list[tuple[int, dict[int, list[int]]]] = []
        if "where" in q:
            terms.append((1, _parse_where(spec, cols, q["where"], f"{where}.where")))
        else:
            tl = q["terms"]
            if not isinstance(tl, list) or not 1 <= len(tl) <= 64:
                raise MalformedError(f"{where}.terms: needs a list of 1..64 terms")
            for ti, t in enumerate(tl):
                tw = f"{where}.terms[{ti}]"
                if not isinstance(t, dict) or set(t) != {"coef", "where"}:
                    raise MalformedError(f"{tw}: needs exactly the fields 'coef' and 'where'")
                c = t["coef"]
                if isinstance(c, bool) or not isinstance(c, int) or not 0 < abs(c) <= 1 << 20:
                    raise MalformedError(f"{tw}.coef: needs a non-zero integer, |coef| <= 2^20")
                terms.append((c, _parse_where(spec, cols, t["where"], f"{tw}.where")))
        support = tuple(sorted({i for _, w in terms for i in w}))
        shape = tuple(sizes[i] for i in support)
        if math.prod(shape) > MAX_SUPPORT_CELLS:  # checked before any array is built
            raise MalformedError(f"{where}: the query reads a marginal of more than "
                                 f"{MAX_SUPPORT_CELLS} cells; use fewer columns")
        coef = np.zeros(shape, dtype=np.int64)
        for c, w in terms:
            sel = np.ones(shape, dtype=np.int64)
            for k, i in enumerate(support):
                mask = np.zeros(sizes[i], dtype=np.int64)
                if i in w:
                    mask[w[i]] = 1
                else:
                    mask[:] = 1
                sel = sel * mask.reshape([-1 if kk == k else 1 for kk in range(len(support))])
            coef = coef + c * sel
        out.append(WorkloadQuery(name, support, tuple(int(v) for v in coef.reshape(-1))))
    return out


def _marginal_queries(spec: QuerySpec, cols: Sequence[str], sizes: Sequence[int], k: int
                      ) -> list[WorkloadQuery]:
    out: list[WorkloadQuery] = []
    for support in itertools.combinations(range(len(cols)), k):
        n = math.prod(sizes[i] for i in support)
        for cell, values in enumerate(itertools.product(
                *(spec.categories[cols[i]] for i in support))):
            label = ", ".join(f"{cols[i]}={v}" for i, v in zip(support, values, strict=True))
            coef = [0] * n
            coef[cell] = 1
            out.append(WorkloadQuery(label or "total", support, tuple(coef)))
    return out


def _maximal(supports: Sequence[Subset]) -> list[Subset]:
    uniq = sorted(set(supports), key=lambda s: (len(s), s))
    return [s for s in uniq if not any(set(s) < set(t) for t in uniq)]


def _objective(p_sizes: Sequence[int], blocks: Sequence[Subset], weights: Sequence[int],
               us: Sequence[Subset], k_u: dict[Subset, Fraction]) -> Fraction | None:
    """Total workload variance in count units, up to the constant ``1 / (2 rho)``:
    ``(sum_S w_S^2) * sum_U K_U / lambda_U`` (None if some needed ``lambda_U`` is 0): one row
    moves one cell of every block, so the noise is calibrated for ``sum_S w_S^2``."""
    lam = _lambdas(p_sizes, blocks, weights, us)
    if any(lam[u] == 0 and k_u[u] for u in us):
        return None
    cost = sum(w * w for w in weights)
    return cost * sum((k_u[u] / lam[u] for u in us if k_u[u]), Fraction(0))


def _optimise(sizes: Sequence[int], workload_blocks: Sequence[Subset],
              queries: Sequence[WorkloadQuery], norms: Sequence[dict[Subset, Fraction]]
              ) -> tuple[list[Subset], list[int]]:
    """Deterministic coordinate descent over integer block weights (module docstring)."""
    closure = sorted({u for s in workload_blocks for u in _subsets(s)},
                     key=lambda s: (-len(s), s))
    blocks = list(closure)
    d = len(sizes)
    k_u: dict[Subset, Fraction] = dict.fromkeys(blocks, Fraction(0))
    for nq in norms:
        for u, c2 in nq.items():
            k_u[u] += c2 * math.prod(sizes[i] for i in range(d) if i not in u)
    start = MAX_WEIGHT // 2
    weights = [start if s in workload_blocks else 0 for s in blocks]
    best = _objective(sizes, blocks, weights, blocks, k_u)
    for _ in range(_MAX_SWEEPS):
        changed = False
        for j, s in enumerate(blocks):
            lo = 1 if s in workload_blocks else 0
            for w in range(lo, MAX_WEIGHT + 1):
                if w == weights[j]:
                    continue
                trial = weights[:j] + [w] + weights[j + 1:]
                val = _objective(sizes, blocks, trial, blocks, k_u)
                if val is not None and (best is None or val < best):
                    best, weights, changed = val, trial, True
        if not changed:
            break
    g = math.gcd(*weights)
    kept = [(s, w // g) for s, w in zip(blocks, weights, strict=True) if w]
    kept.sort(key=lambda sw: (-len(sw[0]), sw[0]))
    return [s for s, _ in kept], [w for _, w in kept]


_PLANS: dict[bytes, WorkloadPlan] = {}


def plan(spec: QuerySpec) -> WorkloadPlan:
    """The workload plan of ``spec`` (validated; a pure function of the spec, cached)."""
    key = spec.canonical_bytes()
    cached = _PLANS.get(key)
    if cached is not None:
        return cached
    p = _make_plan(spec)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[key] = p
    return p


def _make_plan(spec: QuerySpec) -> WorkloadPlan:
    require_params(spec, ("marginals", "queries", "strategy"))
    require_no_group_by(spec, "workload")
    cols = tuple(spec.columns)
    if not cols:
        raise MalformedError("columns: workload needs at least one categorical column")
    for i, c in enumerate(cols):
        require_categorical(spec, c, f"columns[{i}]")
    if spec.bounds:
        raise MalformedError("bounds: workload counts categorical columns only; remove bounds")
    sizes = tuple(len(spec.categories[c]) for c in cols)
    strategy = spec.params.get("strategy", "marginals")
    if strategy not in STRATEGIES:
        raise MalformedError(f"params.strategy: one of {', '.join(STRATEGIES)}")
    if ("marginals" in spec.params) == ("queries" in spec.params):
        raise MalformedError("params: workload needs exactly one of 'marginals' and 'queries'")
    if "marginals" in spec.params:
        k = spec.params["marginals"]
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(cols):
            raise MalformedError(f"params.marginals: needs an integer k in 0..{len(cols)}")
        n_cells = sum(math.prod(sizes[i] for i in s)
                      for s in itertools.combinations(range(len(cols)), k))
        if n_cells > MAX_QUERIES:
            raise MalformedError(f"params.marginals: the workload would have more than "
                                 f"{MAX_QUERIES} cells; use fewer columns or categories")
        queries = _marginal_queries(spec, cols, sizes, k)
        description = f"all {k}-way marginals of {', '.join(cols)}"
    else:
        queries = _explicit(spec, cols, sizes)
        description = f"{len(queries)} linear counting queries over {', '.join(cols)}"
    if spec.privacy.mechanism == "none" and spec.min_cell_size != 1:
        raise MalformedError(
            "min_cell_size: a workload without DP releases every cell exactly (no "
            "suppression); ask for DP, or set min_cell_size to 1 to accept exact small counts")
    work = sum((1 << len(q.support)) * math.prod(sizes[i] for i in q.support)
               for q in queries)
    if work > MAX_DECODE_WORK:
        raise MalformedError("params: the workload is too large to reconstruct exactly; ask "
                             "fewer queries or queries over fewer columns")
    full = tuple(range(len(cols)))
    if strategy == "identity":
        if math.prod(sizes) > MAX_IDENTITY_CELLS:
            raise MalformedError(f"params.strategy: identity measures the full domain, which "
                                 f"has more than {MAX_IDENTITY_CELLS} cells; use marginals")
        blocks, weights = [full], [1]
    else:
        blocks = _maximal([q.support for q in queries])
        weights = [1] * len(blocks)
        if strategy == "hdmm":
            if len({u for s in blocks for u in _subsets(s)}) > MAX_HDMM_BLOCKS:
                raise MalformedError(f"params.strategy: hdmm would weigh more than "
                                     f"{MAX_HDMM_BLOCKS} marginals; use marginals")
            pre = WorkloadPlan(cols, sizes, tuple(queries), strategy, tuple(blocks),
                               tuple(weights), description)
            norms = [_query_norms(pre, q) for q in queries]
            blocks, weights = _optimise(sizes, blocks, queries, norms)
    return WorkloadPlan(cols, sizes, tuple(queries), strategy, tuple(blocks), tuple(weights),
                        description)


# ---------------------------------------------------------------------------- reconstruction
def _components(p: WorkloadPlan, totals: Sequence[int], weights: Sequence[int]
                ) -> dict[Subset, ObjArray]:
    """``g_U`` for every ``U`` below a measured block (exact Fractions)."""
    offs = p.block_offsets()
    ys = [np.asarray([Fraction(v) for v in totals[offs[j]:offs[j + 1]]], dtype=object
                     ).reshape(tuple(p.sizes[i] for i in s) or ())
          for j, s in enumerate(p.blocks)]
    us = sorted({u for s in p.blocks for u in _subsets(s)}, key=lambda s: (len(s), s))
    lam = _lambdas(p.sizes, p.blocks, weights, us)
    g: dict[Subset, ObjArray] = {}
    for u in us:
        acc: ObjArray | None = None
        for s, w, y in zip(p.blocks, weights, ys, strict=True):
            if set(u) <= set(s):
                h = _center_mean(y, s, u) * w
                acc = h if acc is None else acc + h
        if acc is None or lam[u] == 0:  # pragma: no cover - u lies below a measured block
            raise MalformedError("workload: a strategy block is missing")
        g[u] = np.asarray(np.asarray(acc, dtype=object) / lam[u], dtype=object)
    return g


def _marginal(p: WorkloadPlan, g: dict[Subset, ObjArray], v: Subset) -> ObjArray:
    d = len(p.sizes)
    out = np.zeros(tuple(p.sizes[i] for i in v), dtype=object) + Fraction(0)
    for u in _subsets(v):
        out = out + _broadcast(g[u], u, v, p.sizes)
    return np.asarray(out * math.prod(p.sizes[i] for i in range(d) if i not in v),
                      dtype=object)


def reconstruct(p: WorkloadPlan, totals: Sequence[int], weights: Sequence[int]
                ) -> list[Fraction]:
    """Least-squares answers of the workload's queries, exact."""
    g = _components(p, totals, weights)
    marg: dict[Subset, list[Fraction]] = {}
    out: list[Fraction] = []
    for q in p.queries:
        if q.support not in marg:
            marg[q.support] = list(_marginal(p, g, q.support).reshape(-1))
        m = marg[q.support]
        out.append(sum((c * x for c, x in zip(q.coef, m, strict=True) if c), Fraction(0)))
    return out


def unit_variances(p: WorkloadPlan, weights: Sequence[int]) -> list[Fraction]:
    """``Var(answer) / sigma^2`` of every query (``sigma``: the wire noise sd)."""
    us = sorted({u for s in p.blocks for u in _subsets(s)}, key=lambda s: (len(s), s))
    lam = _lambdas(p.sizes, p.blocks, weights, us)
    cache: dict[tuple[Subset, tuple[int, ...]], dict[Subset, Fraction]] = {}
    norms: list[dict[Subset, Fraction]] = []
    for q in p.queries:
        key = (q.support, q.coef)
        if key not in cache:
            cache[key] = _query_norms(p, q)
        norms.append(cache[key])
    return _unit_variances(p, lam, norms)


# ---------------------------------------------------------------------------- the statistic
class Workload(Statistic):
    """A workload of linear counting queries by the matrix mechanism (module docstring)."""

    name = "workload"
    #: the decoder takes the wire totals (weights included) and un-weights them by least
    #: squares itself (no rounding or clamping first: that would bias the estimate)
    decodes_wire_totals: ClassVar[bool] = True

    def validate(self, spec: QuerySpec) -> None:
        plan(spec)

    def layout(self, spec: QuerySpec) -> Layout:
        p = plan(spec)
        labels: list[str] = []
        for s in p.blocks:
            for values in itertools.product(*(spec.categories[p.columns[i]] for i in s)):
                inner = ",".join(f"{p.columns[i]}={v}" for i, v in zip(s, values, strict=True))
                labels.append(f"n[{inner or 'all'}]")
        return Layout(labels, [count_range(spec)] * len(labels))

    def sensitivity(self, spec: QuerySpec) -> list[int]:
        return [1] * len(self.layout(spec))

    def dp_weights(self, spec: QuerySpec) -> list[int] | None:
        return plan(spec).entry_weights()

    def onehot_blocks(self, spec: QuerySpec) -> list[int]:
        """Cells per block: a one-record owner's vector is one-hot (or all zero) in each."""
        p = plan(spec)
        return [p.cells(s) for s in p.blocks]

    def encode_with_report(self, spec: QuerySpec, table: Table) -> tuple[list[int], LocalReport]:
        p = plan(spec)
        sel = select_rows(spec, table, categorical=list(p.columns))
        idx = []
        for c in p.columns:
            index = {v: k for k, v in enumerate(spec.categories[c])}
            idx.append(np.fromiter((index[v] for v in sel.labels[c]), dtype=np.int64,
                                   count=sel.n))
        out: list[int] = []
        for s in p.blocks:
            flat = np.zeros(sel.n, dtype=np.int64)
            for i in s:
                flat = flat * p.sizes[i] + idx[i]
            out.extend(int(v) for v in np.bincount(flat, minlength=p.cells(s)))
        return self._finish(spec, out, sel.report)

    def _weights(self, spec: QuerySpec) -> list[int]:
        from statledger.protocol.calibration import is_dp

        p = plan(spec)
        return list(p.weights) if is_dp(spec) else [1] * len(p.blocks)

    def value_sd(self, spec: QuerySpec, wire_sd: float) -> dict[str, float]:
        """Noise sd of every answer (``answers[i]``) for wire noise of sd ``wire_sd``."""
        p = plan(spec)
        var = unit_variances(p, self._weights(spec))
        return {f"answers[{i}]": wire_sd * sqrt_float(v) for i, v in enumerate(var)}

    def decode(self, spec: QuerySpec, totals: Sequence[int]) -> StatResult:
        p = plan(spec)
        t = check_totals(spec, self.layout(spec), totals)
        weights = self._weights(spec)
        answers = reconstruct(p, t, weights)
        se_unit = [sqrt_float(v) for v in unit_variances(p, weights)]
        values: dict[str, Any] = {
            "columns": {c: list(spec.categories[c]) for c in p.columns},
            "workload": p.description,
            "strategy": {
                "name": p.strategy,
                "blocks": [{"columns": [p.columns[i] for i in s], "weight": w}
                           for s, w in zip(p.blocks, weights, strict=True)],
                "cells": p.block_offsets()[-1],
            },
            "queries": [q.label for q in p.queries],
            "answers": [to_float(a) for a in answers],
            "se_unit": se_unit,
        }
        rows = [[q.label, to_float(a), se] for q, a, se in zip(p.queries, answers, se_unit,
                                                             strict=True)]
        notes = [f"strategy {p.strategy}: {len(p.blocks)} measured marginal(s), "
                 f"{p.block_offsets()[-1]} cells; answers by least squares on the "
                 "unrounded totals (noisy answers may be fractional or negative)",
                 "se/sigma: standard error per unit of the wire noise sd (no noise without DP)"]
        return StatResult(statistic=self.name, values=values,
                          title=f"workload: {p.description}",
                          header=["query", "answer", "se/sigma"], rows=rows, notes=notes)


register(Workload())
