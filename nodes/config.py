"""Per-role node configuration, loaded from TOML (``tomllib``) into strict pydantic models.

One file per party.  Every model forbids unknown keys, so a typo in a config file is an error
that names the field, not a silently ignored setting.  Example (a compute node)::

    party_id = "compute-1"
    role = "compute"
    port = 8101
    data_dir = "compute-1"            # relative paths resolve against the config file's folder
    ledger_url = "http://127.0.0.1:8100"

    [peers]
    compute-2 = "http://127.0.0.1:8102"

    [witness]
    origin = "statledger.local/log"
    log_key = "statledger.local/log+1a2b3c4d+AQAA..."   # the log's note verifier key

Layout of ``data_dir`` (created on demand): ``identity.key`` (Ed25519, 0600; the ledger
also signs checkpoints with it, a compute node its witness cosignatures),
``elgamal.key`` (compute only, 0600), ``state.sqlite`` (the service's own state: nonces,
indexes), ``ledger.sqlite`` (ledger only: the log).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from statledger.proofs.errors import MalformedError

__all__ = [
    "ROLES",
    "PARTY_ID_PATTERN",
    "DEFAULT_MAX_BODY",
    "ConfigError",
    "WitnessPeer",
    "WitnessSettings",
    "DatasetConfig",
    "LedgerConfig",
    "ComputeConfig",
    "ProviderConfig",
    "QuerierConfig",
    "NodeConfig",
    "load_config",
    "parse_config",
    "dump_config_toml",
]

ROLES = ("ledger", "compute", "provider", "querier")
Role = Literal["ledger", "compute", "provider", "querier"]
PARTY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEFAULT_MAX_BODY = 16 * 1024 * 1024

PartyId = Annotated[str, Field(pattern=PARTY_ID_PATTERN)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]


class ConfigError(MalformedError):
    """A configuration file that is missing, not TOML, or does not match its role's schema."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WitnessPeer(_Strict):
    """A witness the ledger asks to cosign checkpoints (a compute node's witness endpoint)."""

    url: Url
    key: str = ""  # the witness's note verifier key (C2SP vkey), used to check cosignatures


class WitnessSettings(_Strict):
    """What a compute node needs to act as a witness for the log."""

    origin: str = Field(min_length=1)
    log_key: str = Field(min_length=1)  # the ledger's note verifier key / public key


class DatasetConfig(_Strict):
    """A provider's dataset: a CSV, Parquet or SQLite file (``table`` for SQLite).
    ``engine = "duckdb"`` encodes queries out of core (protocol/duckdb_encode.py; a
    warehouse larger than memory); ``memory_limit`` (e.g. ``"1GB"``) and ``threads`` cap it."""

    path: Path
    format: Literal["csv", "parquet", "sqlite"] | None = None  # None: from the file suffix
    table: str | None = None
    engine: Literal["pandas", "duckdb"] = "pandas"
    memory_limit: str | None = Field(default=None, pattern=r"^[0-9]+(\.[0-9]+)?\s*[KMGT]i?B$")
    threads: StrictInt | None = Field(default=None, ge=1, le=1024)


class _Common(_Strict):
    party_id: PartyId
    host: str = "127.0.0.1"
    port: StrictInt = Field(default=0, ge=0, le=65535)
    data_dir: Path
    max_body: StrictInt = Field(default=DEFAULT_MAX_BODY, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    #: the consortium this party pins: a statledger-trust/v2 file (`consortium export-trust`)
    trust: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def identity_key_path(self) -> Path:
        return self.data_dir / "identity.key"

    @property
    def state_db_path(self) -> Path:
        return self.data_dir / "state.sqlite"


class LedgerConfig(_Common):
    """The ledger node: hosts the log named ``origin``."""

    role: Literal["ledger"]
    # Not "statledger/..." nor "cosignature/...": the identity key also signs HTTP requests,
    # entries and cosignatures, whose messages start with those prefixes; a checkpoint's
    # text starts with the origin, so keeping the prefixes apart keeps the formats apart.
    origin: str = Field(min_length=1, pattern=r"^[^\s+]+$")
    witnesses: dict[PartyId, WitnessPeer] = Field(default_factory=dict)
    witness_quorum: StrictInt = Field(default=0, ge=0)

    @field_validator("origin")
    @classmethod
    def _origin_prefix(cls, v: str) -> str:
        if v.startswith(("statledger/", "cosignature/")):
            raise ValueError("origin must not start with 'statledger/' or 'cosignature/'")
        return v

    @model_validator(mode="after")
    def _quorum_reachable(self) -> LedgerConfig:
        if self.witness_quorum > len(self.witnesses):
            raise ValueError(
                f"witness_quorum {self.witness_quorum} exceeds the {len(self.witnesses)} "
                "configured witnesses")
        return self

    @property
    def ledger_db_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"


class ComputeConfig(_Common):
    """A computing node: one key share, a witness for the log."""

    role: Literal["compute"]
    ledger_url: Url
    peers: dict[PartyId, Url] = Field(default_factory=dict)
    witness: WitnessSettings | None = None
    #: seconds after the key ceremony's complaint round closes before this node discloses
    #: its shares of a qualified dealer that published no valid phase-2 values (docs/dkg.md)
    dkg_patience: int = Field(default=20, ge=1, le=3600)
    #: seconds a replaced key epoch's transport key is kept after the rekey entry (queries
    #: started under the old key can finish), then erased (docs/dkg.md, "Key lifecycle")
    key_retire_grace: int = Field(default=600, ge=0, le=7 * 86400)

    @property
    def elgamal_key_path(self) -> Path:
        return self.data_dir / "elgamal.key"


class ProviderConfig(_Common):
    """A data owner: datasets and a policy file."""

    role: Literal["provider"]
    ledger_url: Url
    peers: dict[PartyId, Url] = Field(default_factory=dict)
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    policy: Path | None = None
    #: vertically partitioned queries (docs/privacy.md): each partner this owner allows
    #: cross-products with, and the file holding the pair secret the two agreed out of band
    #: (hex, at least 16 bytes; never on the log).  A partner not listed is refused.
    vertical_partners: dict[PartyId, Path] = Field(default_factory=dict)


class QuerierConfig(_Common):
    """A researcher's client (no server; ``port`` unused)."""

    role: Literal["querier"]
    ledger_url: Url
    peers: dict[PartyId, Url] = Field(default_factory=dict)


NodeConfig = Annotated[
    LedgerConfig | ComputeConfig | ProviderConfig | QuerierConfig, Field(discriminator="role")
]
_ADAPTER: TypeAdapter[LedgerConfig | ComputeConfig | ProviderConfig | QuerierConfig] = (
    TypeAdapter(NodeConfig)
)

AnyConfig = LedgerConfig | ComputeConfig | ProviderConfig | QuerierConfig


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def _resolve(base: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """Resolve relative paths (data_dir, policy, dataset paths) against the config's folder."""
    out = dict(raw)

    def fix(v: Any) -> Any:
        if isinstance(v, str) and not Path(v).is_absolute():
            return str(base / v)
        return v

    for key in ("data_dir", "policy", "trust"):
        if key in out:
            out[key] = fix(out[key])
    ds = out.get("datasets")
    if isinstance(ds, dict):
        new: dict[str, Any] = {}
        for name, d in ds.items():
            if isinstance(d, str):
                d = {"path": d}
            if isinstance(d, dict) and "path" in d:
                d = {**d, "path": fix(d["path"])}
            new[name] = d
        out["datasets"] = new
    vp = out.get("vertical_partners")
    if isinstance(vp, dict):
        out["vertical_partners"] = {k: fix(v) for k, v in vp.items()}
    return out


def parse_config(raw: dict[str, Any], *, base_dir: Path | None = None,
                 role: str | None = None) -> AnyConfig:
    """Validate a config mapping; relative paths resolve against ``base_dir`` when given."""
    if not isinstance(raw, dict):
        raise ConfigError("config: expected a table at the top level")
    if role is not None:
        if role not in ROLES:
            raise ConfigError(f"config: unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if raw.get("role") != role:
            raise ConfigError(f"config: role is {raw.get('role')!r}, but {role!r} was asked for")
    if base_dir is not None:
        raw = _resolve(base_dir, raw)
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(f"config: {_describe(exc)}") from None


def load_config(path: str | Path, *, role: str | None = None) -> AnyConfig:
    """Load and validate one party's TOML config; raise :class:`ConfigError` naming the field."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config {p}: cannot read ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {p}: not valid TOML ({exc})") from None
    try:
        return parse_config(raw, base_dir=p.resolve().parent, role=role)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Path):
        v = str(v)
    if isinstance(v, str):
        esc = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{esc}"'
    raise ConfigError(f"config: cannot write {type(v).__name__} to TOML")


def _relative_paths(obj: Any, base: Path) -> Any:
    """Paths inside ``base``'s parent (the deployment folder) relative to ``base``; others
    (a dataset elsewhere on the machine) stay absolute."""
    if isinstance(obj, Path):
        rel = Path(os.path.relpath(obj.resolve(), base))
        return obj if rel.parts[:2] == ("..", "..") else rel
    if isinstance(obj, dict):
        return {k: _relative_paths(v, base) for k, v in obj.items()}
    return obj


def _toml_key(k: str) -> str:
    return k if all(c.isalnum() or c in "_-" for c in k) and k else _toml_value(k)


def dump_config_toml(cfg: AnyConfig, *, relative_to: Path | None = None) -> str:
    """Write a config back to TOML (the inverse of :func:`load_config` for absolute paths).

    ``relative_to`` (the folder the file will live in) writes the paths inside its parent
    folder relative to it, as :func:`load_config` resolves them: a deployment folder can
    then move as a whole."""
    data = cfg.model_dump(mode="python", exclude_none=True)
    if relative_to is not None:
        data = _relative_paths(data, relative_to.resolve())
    scalars: list[str] = []
    tables: list[str] = []

    def emit(prefix: str, obj: dict[str, Any]) -> None:
        lines: list[str] = []
        subs: list[tuple[str, dict[str, Any]]] = []
        for k, v in obj.items():
            if isinstance(v, dict):
                subs.append((k, v))
            else:
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        if prefix:
            tables.append(f"[{prefix}]\n" + "".join(x + "\n" for x in lines))
        else:
            scalars.extend(lines)
        for k, v in subs:
            emit(f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k), v)

    emit("", data)
    return "\n".join(scalars) + "\n\n" + "\n".join(tables)
