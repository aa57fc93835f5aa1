"""The query specification (``QuerySpec``): what a researcher asks, versioned, canonical.

A spec is a JSON object; its RFC 8785 canonical bytes (all fields, defaults included) are
hashed with SHA-256, together with the querier's id, to give the ``query_id``
(:meth:`QuerySpec.query_id_for`); :attr:`QuerySpec.digest` hashes the spec alone.
Field-by-field documentation lives in ``docs/queries.md``.  Use :meth:`QuerySpec.parse`
(dict, JSON text or bytes): any invalid spec raises
:class:`~statledger.proofs.errors.MalformedError` whose message starts with the field path
(``bounds.age: ...``, ``params.features: ...``) and says why.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from statledger.proofs.errors import MalformedError, StatledgerError
from statledger.proofs.rangeproof import MAX_BITS as RANGE_PROOF_MAX_BITS
from statledger.protocol.canonical import canonical_bytes, check_json_value, parse_json, sha256_hex
from statledger.protocol.fixedpoint import DEFAULT_SCALE, MAX_FIXED, check_scale

__all__ = [
    "Filter",
    "NoPrivacy",
    "ZCDP",
    "ApproxDP",
    "Privacy",
    "Pull",
    "QuerySpec",
    "MAX_ENTRIES",
    "MAX_ENTRY_BITS",
    "MAX_CATEGORIES",
    "DEFAULT_MIN_CELL_SIZE",
    "DEFAULT_MIN_PROVIDERS",
    "DEFAULT_MAX_ROWS",
]

#: Largest encoded vector a query may declare.
#: Domain separator of the query id (see QuerySpec.query_id_for).
QUERY_ID_DOMAIN = "statledger/query-id/v1"
MAX_ENTRIES = 1 << 16
#: Largest width (bits of ``hi - lo``) of one declared entry range: what the range proofs
#: can prove (:data:`statledger.proofs.rangeproof.MAX_BITS`).
MAX_ENTRY_BITS = RANGE_PROOF_MAX_BITS
#: Largest number of declared categories of one column.
MAX_CATEGORIES = 1024
DEFAULT_MIN_CELL_SIZE = 5
DEFAULT_MIN_PROVIDERS = 2
DEFAULT_MAX_ROWS = 2**20
_MAX_MAX_ROWS = 2**32

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

Scalar = StrictInt | StrictFloat | StrictStr


class Filter(BaseModel):
    """One row filter ``column op value``; all filters of a spec are AND-ed."""

    model_config = _CONFIG

    column: StrictStr
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"]
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _check_shape(self) -> Filter:
        if self.op == "in":
            if not isinstance(self.value, list) or not self.value:
                raise MalformedError("value: op 'in' needs a non-empty list")
            if len(self.value) > MAX_CATEGORIES:
                raise MalformedError(f"value: more than {MAX_CATEGORIES} values")
        elif isinstance(self.value, list):
            raise MalformedError(f"value: op {self.op!r} needs a single value, not a list")
        return self

    def values(self) -> list[int | float | str]:
        """The filter value(s) as a list."""
        return list(self.value) if isinstance(self.value, list) else [self.value]


class NoPrivacy(BaseModel):
    """No differential privacy: the exact aggregate is released."""

    model_config = _CONFIG
    mechanism: Literal["none"]


class ZCDP(BaseModel):
    """rho-zero-concentrated DP (discrete Gaussian noise)."""

    model_config = _CONFIG
    mechanism: Literal["zcdp"]
    rho: Annotated[float, Field(gt=0.0, le=1e6)]


class ApproxDP(BaseModel):
    """(epsilon, delta)-DP; ``delta == 0`` means pure epsilon-DP."""

    model_config = _CONFIG
    mechanism: Literal["approx"]
    epsilon: Annotated[float, Field(gt=0.0, le=1e6)]
    delta: Annotated[float, Field(ge=0.0, lt=1.0)]


Privacy = Annotated[NoPrivacy | ZCDP | ApproxDP, Field(discriminator="mechanism")]

_Name = Annotated[StrictStr, Field(min_length=1, max_length=128)]


class Pull(BaseModel):
    """A pull-mode query (docs/owners.md): the owners find it on the log themselves.

    ``dataset`` is the name of the dataset the owners answer from; ``owners`` either lists
    the owners addressed or is ``"all"`` (every admitted owner holding that dataset);
    ``deadline`` (Unix seconds) is when the querier stops waiting for submissions."""

    model_config = _CONFIG
    dataset: _Name
    owners: Literal["all"] | Annotated[list[_Name], Field(min_length=1, max_length=10_000)]
    deadline: Annotated[StrictInt, Field(ge=1, le=2**40)]

    @model_validator(mode="after")
    def _check_owners(self) -> Pull:
        if isinstance(self.owners, list) and len(set(self.owners)) != len(self.owners):
            raise MalformedError("owners: duplicate owner")
        return self

    def addresses(self, owner: str) -> bool:
        """True if ``owner`` is asked to answer (listed, or every owner is)."""
        return self.owners == "all" or owner in self.owners


class QuerySpec(BaseModel):
    """A versioned query specification (see ``docs/queries.md``).

    Build it with :meth:`parse` (dict, JSON text or bytes), which raises
    :class:`MalformedError`; the pydantic constructor is strict (tuples for ``bounds``) and
    raises pydantic's ``ValidationError``.
    """

    model_config = _CONFIG

    version: Literal[1]
    statistic: _Name
    columns: Annotated[list[_Name], Field(max_length=256)] = Field(default_factory=list)
    filters: Annotated[list[Filter], Field(max_length=64)] = Field(default_factory=list)
    group_by: Annotated[list[_Name], Field(max_length=2)] = Field(default_factory=list)
    categories: dict[_Name, list[StrictStr]] = Field(default_factory=dict)
    bounds: dict[_Name, tuple[float, float]] = Field(default_factory=dict)
    scale: StrictInt = DEFAULT_SCALE
    privacy: Privacy = Field(default_factory=lambda: NoPrivacy(mechanism="none"))
    min_cell_size: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = DEFAULT_MIN_CELL_SIZE
    min_providers: Annotated[StrictInt, Field(ge=1, le=10_000)] = DEFAULT_MIN_PROVIDERS
    max_rows: Annotated[StrictInt, Field(ge=1, le=_MAX_MAX_ROWS)] = DEFAULT_MAX_ROWS
    params: dict[StrictStr, Any] = Field(default_factory=dict)
    #: pull mode (docs/owners.md); absent from the canonical bytes when None, so the ids of
    #: specs without it are what they always were
    pull: Pull | None = None

    # ------------------------------------------------------------------ validation
    @model_validator(mode="after")
    def _check(self) -> QuerySpec:
        check_scale(self.scale)
        if (self.pull is not None and isinstance(self.pull.owners, list)
                and len(self.pull.owners) < self.min_providers):
            raise MalformedError(f"pull.owners: {len(self.pull.owners)} owner(s) listed, "
                                 f"min_providers is {self.min_providers}")
        try:
            check_json_value(self.params, "params")
        except MalformedError:
            raise
        for col, (lo, hi) in self.bounds.items():
            if not lo < hi:
                raise MalformedError(f"bounds.{col}: lower bound {lo} must be < upper {hi}")
            if max(abs(lo), abs(hi)) * self.scale > MAX_FIXED:
                raise MalformedError(f"bounds.{col}: |bound| * scale exceeds 2^53; lower the scale")
        for col, cats in self.categories.items():
            if not cats:
                raise MalformedError(f"categories.{col}: needs at least one category")
            if len(cats) > MAX_CATEGORIES:
                raise MalformedError(f"categories.{col}: more than {MAX_CATEGORIES} values")
            if len(set(cats)) != len(cats):
                raise MalformedError(f"categories.{col}: duplicate category")
            if col in self.bounds:
                raise MalformedError(
                    f"categories.{col}: column is declared both numeric (bounds) and categorical"
                )
        if len(set(self.columns)) != len(self.columns):
            raise MalformedError("columns: duplicate column")
        for i, col in enumerate(self.columns):
            if not self.is_declared(col):
                raise MalformedError(
                    f"columns[{i}]: column {col!r} is not declared in bounds (numeric) "
                    "or categories (categorical)"
                )
        if len(set(self.group_by)) != len(self.group_by):
            raise MalformedError("group_by: duplicate column")
        for i, col in enumerate(self.group_by):
            if col not in self.categories:
                raise MalformedError(f"group_by[{i}]: column {col!r} has no declared categories")
            if col in self.columns:
                raise MalformedError(f"group_by[{i}]: column {col!r} is also in columns")
        for i, f in enumerate(self.filters):
            self._check_filter(i, f)
        self._check_statistic()
        return self

    def _check_filter(self, i: int, f: Filter) -> None:
        where = f"filters[{i}]"
        if f.column in self.bounds:
            for v in f.values():
                if isinstance(v, str):
                    raise MalformedError(
                        f"{where}.value: numeric column {f.column!r} needs numeric values"
                    )
        elif f.column in self.categories:
            if f.op not in ("==", "!=", "in"):
                raise MalformedError(
                    f"{where}.op: {f.op!r} is not allowed on categorical column {f.column!r}"
                )
            for v in f.values():
                if not isinstance(v, str) or v not in self.categories[f.column]:
                    raise MalformedError(
                        f"{where}.value: {v!r} is not a declared category of {f.column!r}"
                    )
        else:
            raise MalformedError(
                f"{where}.column: column {f.column!r} is not declared in bounds or categories"
            )

    def _check_statistic(self) -> None:
        # Imported lazily: statledger.protocol.stats imports this module.
        from statledger.protocol.stats import get

        get(self.statistic).validate(self)
        from statledger.protocol.calibration import check_dlog_bound, wire_layout

        layout = wire_layout(self)  # DP weights widen the ranges (docs/privacy.md)
        if len(layout.ranges) > MAX_ENTRIES:
            raise MalformedError(
                f"statistic: the encoded vector would have {len(layout.ranges)} entries "
                f"(> {MAX_ENTRIES}); declare fewer categories, bins or columns"
            )
        for label, (lo, hi) in zip(layout.labels, layout.ranges, strict=True):
            if (hi - lo).bit_length() > MAX_ENTRY_BITS:
                raise MalformedError(
                    f"statistic: entry {label!r} would be wider than {MAX_ENTRY_BITS} bits; "
                    "lower scale, bounds or max_rows"
                )
        check_dlog_bound(self)  # a DP entry is decrypted as one number (docs/privacy.md)

    # ------------------------------------------------------------------ helpers
    def is_declared(self, column: str) -> bool:
        """True if ``column`` is declared numeric (bounds) or categorical (categories)."""
        return column in self.bounds or column in self.categories

    def used_columns(self) -> list[str]:
        """Every column the query may read (what an owner's policy checks): the listed
        columns, group-by and filter columns, and every column declared with bounds or
        categories (statistic parameters may only name declared columns)."""
        used = set(self.columns) | set(self.group_by) | {f.column for f in self.filters}
        used |= set(self.bounds) | set(self.categories)
        return sorted(used)

    def is_numeric(self, column: str) -> bool:
        """True if ``column`` has public clipping bounds."""
        return column in self.bounds

    def is_categorical(self, column: str) -> bool:
        """True if ``column`` has declared categories."""
        return column in self.categories

    # ------------------------------------------------------------------ I/O
    @classmethod
    def parse(cls, obj: Any) -> QuerySpec:
        """Parse a spec from a dict, JSON text or JSON bytes; raise ``MalformedError``."""
        if isinstance(obj, QuerySpec):
            return obj
        if isinstance(obj, (str, bytes, bytearray, memoryview)):
            data = parse_json(bytes(obj) if not isinstance(obj, str) else obj)
        else:
            data = obj
        if not isinstance(data, dict):
            raise MalformedError("$: a query spec must be a JSON object")
        text = canonical_bytes(data)
        try:
            return cls.model_validate_json(text, strict=True)
        except ValidationError as exc:
            raise MalformedError(_describe(exc)) from None

    def to_json_obj(self) -> dict[str, Any]:
        """The spec as a plain JSON object, every field (defaults included)."""
        out: dict[str, Any] = self.model_dump(mode="json")
        if out.get("pull") is None:
            out.pop("pull", None)
        return out

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical bytes of :meth:`to_json_obj`."""
        return canonical_bytes(self.to_json_obj())

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the spec's canonical bytes alone: the same for every querier (an
        owner's history of answered specs keys on it; the query id does not)."""
        return sha256_hex(self.canonical_bytes())

    def query_id_for(self, querier: str) -> str:
        """The query id when ``querier`` asks this spec: SHA-256 of the canonical bytes of
        ``{"domain": "statledger/query-id/v1", "querier": querier, "spec": spec}``.

        The querier is part of the id, so a spec belongs to nobody: a second querier asking
        the identical spec runs its own query (its own entries, contexts, certificate and
        budget charge), and no querier can occupy or resume another's query.  The same
        querier asking the same spec again gets the same id, and so resumes its query instead
        of being charged twice.
        """
        if not isinstance(querier, str) or not querier:
            raise MalformedError("query id: the querier must be a non-empty party id")
        return sha256_hex(canonical_bytes(
            {"domain": QUERY_ID_DOMAIN, "querier": querier, "spec": self.to_json_obj()}))


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    for err in exc.errors():
        loc = _loc(err.get("loc", ()))
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, StatledgerError):
            msg = str(inner)
            parts.append(f"{loc}.{msg}" if loc else msg)
            continue
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc or '$'}: {msg}")
    return "; ".join(parts)


_TYPE_TAGS = frozenset({"int", "float", "str", "bool"})


def _loc(loc: tuple[int | str, ...]) -> str:
    """Field path of a pydantic error location, without union-member tags."""
    out: list[str] = []
    prev: int | str | None = None
    for p in loc:
        if isinstance(p, int):
            out[-1:] = [f"{out[-1]}[{p}]"] if out else [f"[{p}]"]
        elif prev == "privacy" and p in ("none", "zcdp", "approx"):
            pass
        elif p in _TYPE_TAGS or p.startswith(("list[", "function-", "tuple[")):
            pass
        else:
            out.append(p)
        prev = p
    return ".".join(out)
