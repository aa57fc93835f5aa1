"""Vertically partitioned data: row alignment, per-row encryption and proved products.

Statistics ``vertical_regression`` and ``vertical_covariance``
(:mod:`statledger.protocol.stats.vertical`); the design, what each party learns and the
inherent risk are in ``docs/privacy.md`` ("Vertically partitioned data"), the proof in
``docs/notes/mulproof.md``.

Three phases, each one signed entry on the log, each checked by :func:`verify_vertical`:

1. **Rows (owner A, ``vertical_rows``).**  A maps every id to the tag ``HMAC-SHA256(k_AB,
   query id, id)`` (``k_AB``: the pair secret the two owners agreed out of band; never on the
   log, never seen by the querier or the nodes), pads its tag list to ``max_rows`` with random
   tags (its row count stays hidden), sorts the rows by tag and publishes the tags and, per row,
   its shifted values ``u_v = to_fixed(clip(v)) - lo_v`` in ``[0, w_v]`` encrypted under the
   collective key in 16-bit limbs with aggregated range proofs (chunks of
   :attr:`VerticalPlan.chunk_rows` rows, :mod:`statledger.proofs.vector`).  Dummy rows
   encrypt 0.
2. **Products (owner B, ``vertical_products``).**  B reads A's entry, computes its own tags
   and publishes the public bitmap ``mask`` of A's rows it also holds (``I``, ``n = |I|``).
   For each of its columns ``w`` B splits ``u_w`` into :func:`b_limb_bits`-bit limbs and
   publishes, for every limb column ``(v, a)`` of A and limb ``(w, b)`` of B, ``D = sum_{r in
   I} y_{w,b,r} K_{r,v,a}`` re-randomised, with ONE batched proof of correct multiplication
   (:mod:`statledger.proofs.mulproof`), and its own block (``sum u_w``, ``sum u_w u_w'`` over
   ``I``) as a range-proved encrypted vector.
3. **Block (owner A, ``vertical_block``).**  A locates its rows in ``mask`` and publishes
   ``sum u_v u_v'`` over ``I`` for its own column pairs, range-proved.

Nothing else is published: A's sums over ``I`` are the homomorphic sums of its row
ciphertexts over ``mask`` (anyone recomputes them), ``n`` is the popcount of ``mask``.  Only
these aggregates are ever decrypted (:func:`release_ciphertexts`); :func:`assemble_totals`
turns the plaintexts into the statistic's released block.

Bounds: a product's plaintext is at most ``max_rows * (2^a - 1) * (2^lb - 1) < 2^36``
(``a`` the widest limb of A's columns, ``lb`` from :func:`b_limb_bits`), which the default
discrete-log table solves in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from statledger.proofs.dlog import discrete_log_many
from statledger.proofs.elgamal import CIPHERTEXT_BYTES, Ciphertext, join_limbs
from statledger.proofs.errors import (
    DecryptionError,
    MalformedError,
    PolicyError,
    VerificationError,
)
from statledger.proofs.group import Point, Scalar, msm
from statledger.proofs.mulproof import MulProof, multiply_with_proof, verify_products
from statledger.proofs.rangeproof import LIMB_BITS, RangeLayout
from statledger.proofs.vector import (
    EncryptedVector,
    decode_totals,
    encrypt_vector_with_proof,
    n_limbs,
    verify_encrypted_vector,
    verify_encrypted_vectors_batch,
)
from statledger.protocol.calibration import too_many_rows
from statledger.protocol.query import QuerySpec
from statledger.protocol.stats.base import LocalReport, Table, select_rows
from statledger.protocol.stats.vertical import (
    PRODUCT_BITS,
    Partition,
    b_limb_bits,
    block_columns,
    block_layout,
    gram_col,
    pair_index,
    partition_of,
)
from statledger.protocol.stats.vertical import is_vertical_statistic as is_vertical

__all__ = [
    "CHUNK_BITS",
    "PRODUCT_BITS",
    "TAG_BYTES",
    "OwnerConfig",
    "Release",
    "VerticalPlan",
    "VerticalProducts",
    "VerticalRows",
    "a_block",
    "a_rows",
    "assemble_totals",
    "b_limb_bits",
    "b_products",
    "decode_a_block",
    "decrypt_release",
    "is_vertical",
    "joined_rows",
    "local_report",
    "mask_rows",
    "release_ciphertexts",
    "row_tag",
    "verify_vertical",
]

#: Proved bits per chunk of owner A's entry (one aggregated range proof per chunk): a chunk
#: holds as many rows as fit, so that the proof's bit vector (padded to a power of two) is
#: nearly full.
CHUNK_BITS = 1 << 14
TAG_BYTES = 32
_TAG_DOMAIN = b"statledger/vertical-id/v1"
_CTX_DOMAIN = b"statledger/vertical/v1"


def _lp(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _context(query_id: str, party: str, part: str, index: int = 0, bound: bytes = b"") -> bytes:
    """Proof context: domain, query id, party, phase, chunk index and ``bound`` (a chunk's
    tags), length-prefixed, so a proof cannot be replayed elsewhere or re-tagged."""
    return (_lp(_CTX_DOMAIN) + _lp(query_id.encode()) + _lp(party.encode()) + _lp(part.encode())
            + struct.pack(">Q", index) + _lp(bound))


def _rows_context(query_id: str, party: str, c: int, per: int, tags: Sequence[bytes]) -> bytes:
    return _context(query_id, party, "rows", c, b"".join(tags[c * per : (c + 1) * per]))


def row_tag(secret: bytes, query_id: str, pid: str) -> bytes:
    """``HMAC-SHA256(k_AB, domain || query id || id)`` (length-prefixed fields): the same id
    gives the same tag at both owners, fresh per query; without ``k_AB`` it is random."""
    msg = _lp(_TAG_DOMAIN) + _lp(query_id.encode()) + _lp(pid.encode())
    return hmac.new(secret, msg, hashlib.sha256).digest()


@dataclass(frozen=True)
class OwnerConfig:
    """One owner's side of a vertical pairing: its id and, per allowed partner, the pair
    secret, agreed out of band.  A partner not listed is refused."""

    owner: str
    partners: Mapping[str, bytes]

    def secret_for(self, spec: QuerySpec, part: Partition) -> bytes:
        if self.owner not in part.owners:
            raise PolicyError(f"owner {self.owner}: not an owner of this vertical query")
        partner = part.b if self.owner == part.a else part.a
        key = self.partners.get(partner)
        if key is None:
            raise PolicyError(f"owner {self.owner}: its vertical partners do not allow "
                              f"cross-products with {partner!r}")
        if not isinstance(key, bytes) or len(key) < 16:
            raise PolicyError(f"owner {self.owner}: the pair secret for {partner!r} must be "
                              "at least 16 bytes")
        return key


@dataclass(frozen=True)
class VerticalPlan:
    """Public shape of a vertical query, from the spec only."""

    spec: QuerySpec
    part: Partition
    a_cols: tuple[str, ...]
    b_cols: tuple[str, ...]
    widths: Mapping[str, int]
    a_limbs: tuple[tuple[str, int, int], ...]  # (column, limb index, limb bits)
    b_limbs: tuple[tuple[str, int], ...]  # (column, limb index)
    lb: int

    @classmethod
    def of(cls, spec: QuerySpec) -> VerticalPlan:
        part = partition_of(spec)
        lb = b_limb_bits(spec)
        a_cols = tuple(part.columns[part.a])
        b_cols = tuple(part.columns[part.b])
        widths = {}
        for c in (*a_cols, *b_cols):
            g = gram_col(spec, c)
            widths[c] = g.hi - g.lo
        a_limbs: list[tuple[str, int, int]] = []
        for c in a_cols:
            nl = n_limbs(0, widths[c])
            bits = max(1, widths[c].bit_length())
            for i in range(nl):
                a_limbs.append((c, i, LIMB_BITS if i < nl - 1 else bits - LIMB_BITS * (nl - 1)))
        b_limbs = [(c, i) for c in b_cols
                   for i in range(-(-max(1, widths[c].bit_length()) // lb))]
        return cls(spec, part, a_cols, b_cols, widths, tuple(a_limbs), tuple(b_limbs), lb)

    @property
    def chunks(self) -> int:
        return -(-self.spec.max_rows // self.chunk_rows)

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk: ``CHUNK_BITS // (proved bits of one row)``, at least 1."""
        row_bits = RangeLayout.from_spans([self.widths[v] for v in self.a_cols]).total_bits
        return max(1, min(self.spec.max_rows, CHUNK_BITS // row_bits))

    def chunk_ranges(self, c: int) -> list[tuple[int, int]]:
        per = self.chunk_rows
        rows = min(per, self.spec.max_rows - c * per)
        return [(0, self.widths[v]) for _ in range(rows) for v in self.a_cols]

    def b_block_labels(self) -> list[tuple[str, ...]]:
        """B's own entries: ``(w,)`` sums then ``(w, w')`` products, block order."""
        return self._own(self.b_cols, sums=True)

    def a_block_labels(self) -> list[tuple[str, ...]]:
        """A's own entries: ``(v, v')`` products only (its sums come from the mask)."""
        return self._own(self.a_cols, sums=False)

    def _own(self, cols: Sequence[str], *, sums: bool) -> list[tuple[str, ...]]:
        names = block_columns(self.spec)
        mine = [c for c in names if c in cols]
        out: list[tuple[str, ...]] = [(c,) for c in mine] if sums else []
        for i, j in pair_index(len(names)):
            if names[i] in cols and names[j] in cols:
                out.append((names[i], names[j]))
        return out

    def own_ranges(self, labels: Sequence[tuple[str, ...]]) -> list[tuple[int, int]]:
        m = self.spec.max_rows
        out = []
        for lab in labels:
            w = self.widths[lab[0]] if len(lab) == 1 else self.widths[lab[0]] * self.widths[lab[1]]
            out.append((0, m * w))
        return out


# ---------------------------------------------------------------------------- entries
@dataclass(frozen=True)
class VerticalRows:
    """Owner A's phase-1 entry: ``max_rows`` tags (sorted) and the encrypted row chunks."""

    tags: tuple[bytes, ...]
    chunks: tuple[EncryptedVector, ...]

    def to_bytes(self) -> bytes:
        return b"".join(self.tags) + b"".join(c.to_bytes() for c in self.chunks)

    @classmethod
    def from_bytes(cls, data: bytes, plan: VerticalPlan) -> VerticalRows:
        """Strict: the length is fixed by the spec."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("vertical rows must be bytes")
        data = bytes(data)
        m = plan.spec.max_rows
        sizes = [EncryptedVector.encoded_size(plan.chunk_ranges(c)) for c in range(plan.chunks)]
        want = m * TAG_BYTES + sum(sizes)
        if len(data) != want:
            raise MalformedError(f"vertical rows must be {want} bytes, got {len(data)}")
        tags = tuple(data[i * TAG_BYTES : (i + 1) * TAG_BYTES] for i in range(m))
        pos = m * TAG_BYTES
        chunks = []
        for c, size in enumerate(sizes):
            chunks.append(EncryptedVector.from_bytes(data[pos : pos + size], plan.chunk_ranges(c)))
            pos += size
        return cls(tags, tuple(chunks))

    def ciphertexts(self, plan: VerticalPlan, rows: Sequence[int]) -> list[list[Ciphertext]]:
        """``K[r][(v, a)]``: limb ``a`` of column ``v`` of each row in ``rows``."""
        k = len(plan.a_cols)
        per = plan.chunk_rows
        out = []
        for r in rows:
            ev = self.chunks[r // per]
            base = (r % per) * k
            out.append([c for j in range(k) for c in ev.limbs[base + j]])
        return out


def _mask_bytes(m: int) -> int:
    return -(-m // 8)


def _mask_of(rows: Sequence[int], m: int) -> bytes:
    bits = bytearray(_mask_bytes(m))
    for r in rows:
        bits[r // 8] |= 1 << (r % 8)
    return bytes(bits)


def mask_rows(mask: bytes, m: int) -> list[int]:
    """Rows set in ``mask`` (strict: exact length, padding bits zero)."""
    if len(mask) != _mask_bytes(m):
        raise MalformedError(f"mask must be {_mask_bytes(m)} bytes")
    if m % 8 and mask[-1] >> (m % 8):
        raise MalformedError("mask: padding bits must be zero")
    return [r for r in range(m) if mask[r // 8] >> (r % 8) & 1]


@dataclass(frozen=True)
class VerticalProducts:
    """Owner B's phase-2 entry: the mask, the products ``D[(v,a)][(w,b)]``, their proof and
    B's own range-proved block."""

    mask: bytes
    products: tuple[tuple[Ciphertext, ...], ...]
    proof: MulProof
    block: EncryptedVector

    def to_bytes(self) -> bytes:
        return (self.mask + b"".join(c.to_bytes() for row in self.products for c in row)
                + self.proof.to_bytes() + self.block.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, plan: VerticalPlan) -> VerticalProducts:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("vertical products must be bytes")
        data = bytes(data)
        mb = _mask_bytes(plan.spec.max_rows)
        if len(data) < mb:
            raise MalformedError("vertical products: truncated mask")
        mask = data[:mb]
        n = len(mask_rows(mask, plan.spec.max_rows))
        if n == 0:
            raise MalformedError("vertical products: empty mask")
        mA, kB = len(plan.a_limbs), len(plan.b_limbs)
        branges = plan.own_ranges(plan.b_block_labels())
        want = (mb + mA * kB * CIPHERTEXT_BYTES + MulProof.encoded_size(mA, kB, n)
                + EncryptedVector.encoded_size(branges))
        if len(data) != want:
            raise MalformedError(f"vertical products must be {want} bytes, got {len(data)}")
        pos = mb
        prods = []
        for _ in range(mA):
            prods.append(tuple(
                Ciphertext.from_bytes(data[pos + CIPHERTEXT_BYTES * j :
                                           pos + CIPHERTEXT_BYTES * (j + 1)])
                for j in range(kB)))
            pos += CIPHERTEXT_BYTES * kB
        psize = MulProof.encoded_size(mA, kB, n)
        proof = MulProof.from_bytes(data[pos : pos + psize], mA, kB, n)
        pos += psize
        block = EncryptedVector.from_bytes(data[pos:], branges)
        return cls(mask, tuple(prods), proof, block)


# ---------------------------------------------------------------------------- owners
@dataclass(frozen=True)
class _Local:
    ids: list[str]
    u: dict[str, np.ndarray]  # shifted fixed-point values, int64, >= 0
    at: np.ndarray  # the table row of each local row (the selected rows, in order)
    n_rows: int  # rows in the owner's table
    report: LocalReport  # the selection's report (clip counts of the owner's columns)


def _local(plan: VerticalPlan, table: Table, owner: str, cols: Sequence[str]) -> _Local:
    spec = plan.spec
    idc = plan.part.id_column
    if idc not in table:
        raise PolicyError(f"owner {owner}: the id column {idc!r} is missing")
    for c in cols:
        if c not in table:
            raise PolicyError(f"owner {owner}: column {c!r} is missing")
    sel = select_rows(spec, table, numeric=list(cols))
    raw = list(np.asarray(table[idc], dtype=object))
    if len(raw) != sel.report.n_rows:
        raise PolicyError(f"owner {owner}: the id column and the data columns differ in length")
    selected = sel.report.selected
    if selected is None:  # pragma: no cover - select_rows always sets it
        raise MalformedError("row selection did not report the selected rows")
    ids: list[str] = []
    for keep, v in zip(selected.tolist(), raw, strict=True):
        if v is None or (isinstance(v, float) and v != v) or str(v) == "":
            raise PolicyError(f"owner {owner}: the id column {idc!r} has missing ids")
        if keep:
            ids.append(str(v))
    if len(set(map(str, raw))) != len(raw):
        raise PolicyError(f"owner {owner}: the id column {idc!r} has duplicate ids")
    if len(ids) > spec.max_rows:
        raise too_many_rows(owner)
    u = {c: sel.fixed[c].astype(np.int64) - gram_col(spec, c).lo for c in cols}
    return _Local(ids, u, np.flatnonzero(selected), len(raw), sel.report)


def local_report(spec: QuerySpec, table: Table, owner: str) -> LocalReport:
    """This owner's local report on its own columns of ``spec`` (never published; the same
    selection and checks as each of its phases): the provider buckets its clip counts, or
    withholds them (:func:`statledger.protocol.calibration.clip_report`), for the querier.
    The counts are over the owner's selected rows (what it encodes), not the joined ones: a
    count over the join would tell the querier something about which of this owner's rows
    the partner holds."""
    plan = VerticalPlan.of(spec)
    if owner not in plan.part.owners:
        raise PolicyError(f"owner {owner}: not an owner of this vertical query")
    return _local(plan, table, owner, plan.a_cols if owner == plan.part.a else plan.b_cols
                  ).report


def _support_check(spec: QuerySpec, owner: str, local: _Local, rows: Sequence[int],
                   cols: Sequence[str]) -> None:
    """Refuse when a column is nearly constant over the joined rows: fewer than
    ``min_cell_size`` rows differ from its most frequent value (an indicator of one row, or
    its complement, would let the partner's value at that row be read off a cross-product)."""
    idx = np.asarray(rows, dtype=np.intp)
    if len(idx) < spec.min_cell_size:
        raise PolicyError(f"owner {owner}: fewer joined rows than min_cell_size")
    for c in cols:
        vals = local.u[c][idx]
        _, counts = np.unique(vals, return_counts=True)
        if len(vals) - int(counts.max()) < spec.min_cell_size:
            raise PolicyError(f"owner {owner}: column {c!r} differs from its most frequent "
                              "value on fewer than min_cell_size joined rows (support rule)")


def a_rows(spec: QuerySpec, query_id: str, table: Table, cfg: OwnerConfig,
           X: Point) -> VerticalRows:
    """Phase 1 (owner A): tags, padding and the encrypted, range-proved rows."""
    plan = VerticalPlan.of(spec)
    if cfg.owner != plan.part.a:
        raise PolicyError(f"owner {cfg.owner}: only {plan.part.a!r} publishes the rows")
    key = cfg.secret_for(spec, plan.part)
    local = _local(plan, table, cfg.owner, plan.a_cols)
    m = spec.max_rows
    rows: list[tuple[bytes, int]] = [(row_tag(key, query_id, pid), i)
                                     for i, pid in enumerate(local.ids)]
    rows += [(secrets.token_bytes(TAG_BYTES), -1) for _ in range(m - len(rows))]
    rows.sort()
    if len({t for t, _ in rows}) != m:  # pragma: no cover - 2^-128
        raise MalformedError("tag collision; retry")
    tags = tuple(t for t, _ in rows)
    chunks = []
    for c in range(plan.chunks):
        vals: list[int] = []
        for _, i in rows[c * plan.chunk_rows : (c + 1) * plan.chunk_rows]:
            vals += [0 if i < 0 else int(local.u[v][i]) for v in plan.a_cols]
        chunks.append(encrypt_vector_with_proof(X, vals, plan.chunk_ranges(c),
                                                _rows_context(query_id, plan.part.a, c,
                                                              plan.chunk_rows, tags)))
    return VerticalRows(tags, tuple(chunks))


def _matched(plan: VerticalPlan, rows: VerticalRows, key: bytes, query_id: str,
             local: _Local) -> dict[int, int]:
    """``{row of A's entry: local row}`` for the ids both owners hold."""
    where = {t: r for r, t in enumerate(rows.tags)}
    out: dict[int, int] = {}
    for i, pid in enumerate(local.ids):
        r = where.get(row_tag(key, query_id, pid))
        if r is not None:
            out[r] = i
    return out


def _block(plan: VerticalPlan, local: _Local, rows: Sequence[int],
           labels: Sequence[tuple[str, ...]]) -> list[int]:
    idx = np.asarray(rows, dtype=np.intp)
    out = []
    for lab in labels:
        a = [int(v) for v in local.u[lab[0]][idx].tolist()]
        if len(lab) == 1:
            out.append(sum(a))
        else:
            b = [int(v) for v in local.u[lab[1]][idx].tolist()]
            out.append(sum(x * y for x, y in zip(a, b, strict=True)))
    return out


def joined_rows(spec: QuerySpec, query_id: str, table: Table, cfg: OwnerConfig,
                rows: VerticalRows, products: VerticalProducts | None = None) -> np.ndarray:
    """The rows of this owner's table that the query's released aggregates cover, as a mask
    over the table (its exact-answer history, :mod:`statledger.protocol.history`): its
    selected rows whose ids are in the join -- owner B: those it finds in A's entry (its
    mask); owner A: those B's mask names (``products``).  Not the owner's own selection:
    the partner's rows also pick the join (its table, its missing values), so two queries
    with the same selection at A can release sums over joined sets one person apart."""
    plan = VerticalPlan.of(spec)
    own = plan.a_cols if cfg.owner == plan.part.a else plan.b_cols
    key = cfg.secret_for(spec, plan.part)
    local = _local(plan, table, cfg.owner, own)
    match = _matched(plan, rows, key, query_id, local)
    if products is not None:
        match = {r: match[r] for r in mask_rows(products.mask, spec.max_rows) if r in match}
    out = np.zeros(local.n_rows, dtype=bool)
    out[local.at[np.asarray(sorted(match.values()), dtype=np.intp)]] = True
    return out


def b_products(spec: QuerySpec, query_id: str, table: Table, cfg: OwnerConfig, X: Point,
               rows: VerticalRows) -> VerticalProducts:
    """Phase 2 (owner B), on A's entry as read from a witnessed checkpoint (the caller's
    follower) and verified by the caller with :func:`verify_vertical`."""
    plan = VerticalPlan.of(spec)
    if cfg.owner != plan.part.b:
        raise PolicyError(f"owner {cfg.owner}: only {plan.part.b!r} publishes the products")
    key = cfg.secret_for(spec, plan.part)
    local = _local(plan, table, cfg.owner, plan.b_cols)
    match = _matched(plan, rows, key, query_id, local)
    in_a = sorted(match)
    mine = [match[r] for r in in_a]
    _support_check(spec, cfg.owner, local, mine, plan.b_cols)
    idx = np.asarray(mine, dtype=np.intp)
    ys: list[list[int]] = []
    for c, b in plan.b_limbs:
        vals = local.u[c][idx].tolist()
        ys.append([(int(v) >> (plan.lb * b)) & ((1 << plan.lb) - 1) for v in vals])
    K = rows.ciphertexts(plan, in_a)
    D, proof = multiply_with_proof(X, K, ys, _context(query_id, plan.part.b, "products"))
    labels = plan.b_block_labels()
    block = encrypt_vector_with_proof(X, _block(plan, local, mine, labels),
                                      plan.own_ranges(labels),
                                      _context(query_id, plan.part.b, "block"))
    return VerticalProducts(_mask_of(in_a, spec.max_rows), D, proof, block)


def a_block(spec: QuerySpec, query_id: str, table: Table, cfg: OwnerConfig, X: Point,
            rows: VerticalRows, products: VerticalProducts) -> EncryptedVector:
    """Phase 3 (owner A): its own column products over the joined rows, after the support
    rule on its columns (nothing is decrypted before this entry exists)."""
    plan = VerticalPlan.of(spec)
    if cfg.owner != plan.part.a:
        raise PolicyError(f"owner {cfg.owner}: only {plan.part.a!r} publishes this block")
    key = cfg.secret_for(spec, plan.part)
    local = _local(plan, table, cfg.owner, plan.a_cols)
    match = _matched(plan, rows, key, query_id, local)
    in_mask = mask_rows(products.mask, spec.max_rows)
    if not set(in_mask) <= set(match):
        raise PolicyError(f"owner {cfg.owner}: the mask names rows that are not mine")
    mine = [match[r] for r in in_mask]
    _support_check(spec, cfg.owner, local, mine, plan.a_cols)
    labels = plan.a_block_labels()
    if not labels:  # pragma: no cover - a_cols is never empty
        raise MalformedError("owner A has no columns")
    return encrypt_vector_with_proof(X, _block(plan, local, mine, labels),
                                     plan.own_ranges(labels),
                                     _context(query_id, plan.part.a, "block"))


def decode_a_block(data: bytes, spec: QuerySpec) -> EncryptedVector:
    """Strictly decode owner A's phase-3 block against the spec's plan."""
    plan = VerticalPlan.of(spec)
    return EncryptedVector.from_bytes(data, plan.own_ranges(plan.a_block_labels()))


# ---------------------------------------------------------------------------- checks
def verify_vertical(spec: QuerySpec, query_id: str, X: Point, rows: VerticalRows,
                    products: VerticalProducts | None = None,
                    block: EncryptedVector | None = None) -> None:
    """Every check of the three entries (those given); raises :class:`VerificationError`
    naming the phase and the owner it blames."""
    plan = VerticalPlan.of(spec)
    a, b = plan.part.a, plan.part.b
    m = spec.max_rows
    if len(rows.tags) != m or any(len(t) != TAG_BYTES for t in rows.tags):
        raise VerificationError(f"{m} tags of {TAG_BYTES} bytes expected",
                                step="vertical-rows", party=a)
    if list(rows.tags) != sorted(set(rows.tags)):
        raise VerificationError("tags must be distinct and sorted", step="vertical-rows", party=a)
    if len(rows.chunks) != plan.chunks:
        raise VerificationError(f"{plan.chunks} row chunks expected", step="vertical-rows",
                                party=a)
    try:
        verify_encrypted_vectors_batch(
            [(X, ev, plan.chunk_ranges(c),
              _rows_context(query_id, a, c, plan.chunk_rows, rows.tags))
             for c, ev in enumerate(rows.chunks)], [a] * plan.chunks)
    except VerificationError as exc:
        raise VerificationError(f"row range proof: {exc.reason}", step="vertical-rows",
                                party=a) from None
    if products is None:
        return
    try:
        in_a = mask_rows(products.mask, m)
    except MalformedError as exc:
        raise VerificationError(str(exc), step="vertical-products", party=b) from None
    if not in_a:
        raise VerificationError("empty mask", step="vertical-products", party=b)
    K = rows.ciphertexts(plan, in_a)
    if len(products.products) != len(plan.a_limbs) or any(
            len(r) != len(plan.b_limbs) for r in products.products):
        raise VerificationError("products matrix has the wrong shape", step="vertical-products",
                                party=b)
    try:
        verify_products(X, K, products.products, products.proof,
                        _context(query_id, b, "products"), party=b)
    except VerificationError as exc:
        raise VerificationError(exc.reason, step="vertical-products", party=b) from None
    try:
        verify_encrypted_vector(X, products.block, plan.own_ranges(plan.b_block_labels()),
                                _context(query_id, b, "block"), party=b)
    except VerificationError as exc:
        raise VerificationError(f"block: {exc.reason}", step="vertical-products",
                                party=b) from None
    if block is None:
        return
    try:
        verify_encrypted_vector(X, block, plan.own_ranges(plan.a_block_labels()),
                                _context(query_id, a, "block"), party=a)
    except VerificationError as exc:
        raise VerificationError(f"block: {exc.reason}", step="vertical-block", party=a) from None


# ---------------------------------------------------------------------------- release
@dataclass(frozen=True)
class Release:
    """The aggregate ciphertexts to decrypt, each with its discrete-log bound."""

    n: int
    ciphertexts: tuple[Ciphertext, ...]
    bounds: tuple[int, ...]


def release_ciphertexts(spec: QuerySpec, rows: VerticalRows, products: VerticalProducts,
                        block: EncryptedVector) -> Release:
    """What is decrypted, in a fixed order: A's limb sums over the mask, the products, B's
    block limbs, A's block limbs.  Nothing when ``n < min_cell_size`` (only ``n``, public)."""
    plan = VerticalPlan.of(spec)
    in_a = mask_rows(products.mask, spec.max_rows)
    n = len(in_a)
    if n < spec.min_cell_size:
        return Release(n, (), ())
    K = rows.ciphertexts(plan, in_a)
    cts: list[Ciphertext] = []
    bounds: list[int] = []
    for col, (_c, _i, bits) in enumerate(plan.a_limbs):
        acc = Ciphertext.zero()
        for row in K:
            acc = acc + row[col]
        cts.append(acc)
        bounds.append(n * ((1 << bits) - 1))
    for (_c, _i, bits), prow in zip(plan.a_limbs, products.products, strict=True):
        cts.extend(prow)
        bounds.extend([n * ((1 << bits) - 1) * ((1 << plan.lb) - 1)] * len(prow))
    for ev in (products.block, block):
        for limbs in ev.limbs:
            cts.extend(limbs)
            bounds.extend([(1 << LIMB_BITS) - 1] * len(limbs))
    return Release(n, tuple(cts), tuple(bounds))


def assemble_totals(spec: QuerySpec, n: int, plain: Sequence[int]) -> list[int | None]:
    """The statistic's released block (layout of :mod:`statledger.protocol.stats.vertical`)
    from ``n`` and the plaintexts of :func:`release_ciphertexts`, in its order."""
    plan = VerticalPlan.of(spec)
    layout = block_layout(spec)
    if n < spec.min_cell_size:
        return [n] + [None] * (len(layout) - 1)
    pos = 0

    def take(count: int) -> list[int]:
        nonlocal pos
        if pos + count > len(plain):
            raise MalformedError("plaintexts: fewer than the release has")
        out = [int(v) for v in plain[pos : pos + count]]
        pos += count
        return out

    a_sums: dict[str, list[int]] = {}
    for (c, _i, _bits), v in zip(plan.a_limbs, take(len(plan.a_limbs)), strict=True):
        a_sums.setdefault(c, []).append(v)
    cross: dict[tuple[str, str], int] = {}
    for c, i, _bits in plan.a_limbs:
        for (w, bb), v in zip(plan.b_limbs, take(len(plan.b_limbs)), strict=True):
            cross[(c, w)] = cross.get((c, w), 0) + (v << (LIMB_BITS * i + plan.lb * bb))
    own: dict[tuple[str, ...], int] = {}
    for labels in (plan.b_block_labels(), plan.a_block_labels()):
        ranges = plan.own_ranges(labels)
        shape = [n_limbs(lo, hi) for lo, hi in ranges]
        limbs = [take(k) for k in shape]
        own.update(zip(labels, decode_totals(limbs, ranges, 1), strict=True))
    if pos != len(plain):
        raise MalformedError("plaintexts: more than the release has")
    names = block_columns(spec)
    totals: list[int | None] = [n]
    for c in names:
        totals.append(join_limbs(a_sums[c], LIMB_BITS) if c in a_sums else own[(c,)])
    for i, j in pair_index(len(names)):
        cv, cw = names[i], names[j]
        if (cv, cw) in own:
            totals.append(own[(cv, cw)])
        else:
            totals.append(cross[(cv, cw)] if (cv, cw) in cross else cross[(cw, cv)])
    return totals


def decrypt_release(release: Release, shares_by_node: Sequence[Sequence[Point]],
                    weights: Sequence[Scalar]) -> list[int]:
    """Combine ``T`` nodes' shares of :attr:`Release.ciphertexts` (Lagrange ``weights``) and
    take exact discrete logs, each within its :attr:`Release.bounds` entry, else
    :class:`DecryptionError`.  The querier and verification step 13 both call this."""
    if len(weights) != len(shares_by_node):
        raise MalformedError(f"{len(weights)} weights for {len(shares_by_node)} nodes' shares")
    cts = release.ciphertexts
    for shares in shares_by_node:
        if len(shares) != len(cts):
            raise MalformedError("decryption shares do not match the release's size")
    if not cts:
        return []
    points = [ct.C2 - msm(list(weights), [shares[j] for shares in shares_by_node])
              for j, ct in enumerate(cts)]
    values = discrete_log_many(points, max(release.bounds))
    for j, (v, bound) in enumerate(zip(values, release.bounds, strict=True)):
        if not 0 <= v <= bound:
            raise DecryptionError(f"released ciphertext {j}: plaintext outside its bound "
                                  f"{bound}")
    return [int(v) for v in values]
