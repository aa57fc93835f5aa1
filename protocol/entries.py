"""Log entry kinds: typed, strictly decoded, canonically encoded, Ed25519-signed.

Entry encoding version 2.  Every entry is a map ``{"v": 2, "kind": ..., <fields>, "sig": <64
bytes>}``; its bytes are the deterministic CBOR encoding of that map (RFC 8949 section 4.2.1,
:func:`statledger.protocol.cbor.cbor_bytes`), binary fields (keys, points, ciphertexts,
vectors, proofs, digests, the signature) as CBOR byte strings, and are the Merkle leaf data
of the log.  ``sig`` is the author's Ed25519 signature over::

    b"statledger/entry/v2\\n" + cbor_bytes(entry without "sig")

In Python the binary fields are lowercase hex strings (``entry.vector``, ``entry.sig``, ...);
:meth:`Entry.to_json_obj` is that readable view and :meth:`Entry.to_wire_obj` the map that is
encoded.  :meth:`Entry.from_bytes` is the exact inverse of :meth:`Entry.to_bytes`: a tag, an
indefinite length, a duplicate key, a missing or extra key, a wrong type (a float or a text
string where bytes or an integer are expected), a wrong length, a point off the curve, or
*any* byte that is not the deterministic encoding raise
:class:`~statledger.proofs.errors.MalformedError`; so does a version 1 entry (canonical JSON
with hex), named as such.  Heavy objects (encrypted vectors, ciphertexts, proofs) are checked
for their shape here and fully decoded by accessors that take what they need (the ranges).
Field-by-field documentation: ``docs/entries.md``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from statledger.proofs import sigma
from statledger.proofs.elgamal import Ciphertext
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Point
from statledger.proofs.shuffle import ShuffleProof
from statledger.proofs.signatures import SigningKey, VerifyKey
from statledger.protocol.canonical import MAX_SAFE_INT, canonical_bytes, sha256_hex
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.protocol.pet import PET_VERSION, PetBatch

if TYPE_CHECKING:  # pragma: no cover
    from statledger.proofs.elgamal import Ciphertext
    from statledger.proofs.vector import EncryptedVector
    from statledger.protocol.noise import CoinShare, NoiseCommitment, NoiseParams
    from statledger.protocol.query import QuerySpec

__all__ = [
    "ENTRY_VERSION",
    "SIG_DOMAIN",
    "ROLES",
    "KINDS",
    "Entry",
    "GenesisEntry",
    "MembershipEntry",
    "PartyEntry",
    "SetupEntry",
    "QueryEntry",
    "SubmissionEntry",
    "NoiseCommitEntry",
    "NoiseCoinEntry",
    "AggregateEntry",
    "DecryptionEntry",
    "ResultEntry",
    "EndorsementEntry",
    "GateEntry",
    "ReleaseEntry",
    "PetEntry",
    "DkgDealEntry",
    "DkgAckEntry",
    "DkgKeyEntry",
    "DkgDisclosureEntry",
    "DKG_KINDS",
    "VERTICAL_KINDS",
    "VerticalRowsEntry",
    "VerticalProductsEntry",
    "VerticalBlockEntry",
    "DkgTransportEntry",
    "RekeyEntry",
    "sign",
    "sign_entry",
    "verify_signature",
    "verify_entry_signature",
    "result_digest",
    "check_party_id",
]

ENTRY_VERSION = 2
SIG_DOMAIN = b"statledger/entry/v2\n"
ROLES = ("ledger", "compute", "provider", "querier")
MAX_LIST = 1 << 20
MAX_DECIMAL_DIGITS = 400

_PARTY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_HEX_RE = re.compile(r"^(?:[0-9a-f]{2})+$")
_DECIMAL_RE = re.compile(r"^(?:0|-?[1-9][0-9]*)$")
_POINT_HEX = 66
_CIPHERTEXT_HEX = 132
_SIG_HEX = 128
_KEY_HEX = 64
_DIGEST_HEX = 64

E = TypeVar("E", bound="Entry")


# ---------------------------------------------------------------------------------------
# field checks (each raises MalformedError naming the kind and field)
# ---------------------------------------------------------------------------------------


def _fail(kind: str, name: str, why: str) -> MalformedError:
    return MalformedError(f"{kind}.{name}: {why}")


def check_party_id(value: object, where: str = "party id") -> str:
    """A party id: 1-128 chars of ``[A-Za-z0-9._:@-]``, starting alphanumeric."""
    if not isinstance(value, str) or not _PARTY_ID_RE.fullmatch(value):
        raise MalformedError(f"{where}: {value!r} is not a valid party id")
    return value


def _party(kind: str, name: str, value: object) -> str:
    if not isinstance(value, str) or not _PARTY_ID_RE.fullmatch(value):
        raise _fail(kind, name, f"{value!r} is not a valid party id")
    return value


def _hex(kind: str, name: str, value: object, n_hex: int | None = None) -> str:
    if not isinstance(value, str):
        raise _fail(kind, name, "expected a lowercase hex string")
    if not _HEX_RE.fullmatch(value):
        raise _fail(kind, name, "not lowercase hex of whole bytes")
    if n_hex is not None and len(value) != n_hex:
        raise _fail(kind, name, f"expected {n_hex // 2} bytes, got {len(value) // 2}")
    return value


def _query_id(kind: str, value: object) -> str:
    return _hex(kind, "query_id", value, _DIGEST_HEX)


def _point(kind: str, name: str, value: object, *, allow_identity: bool = False) -> Point:
    h = _hex(kind, name, value, _POINT_HEX)
    try:
        p = Point.from_bytes(bytes.fromhex(h))
    except MalformedError as exc:
        raise _fail(kind, name, str(exc)) from None
    if p.is_identity() and not allow_identity:
        raise _fail(kind, name, "point at infinity is not allowed here")
    return p


def _decode(kind: str, name: str, value: object, decoder: Callable[[bytes], Any]) -> str:
    h = _hex(kind, name, value)
    try:
        decoder(bytes.fromhex(h))
    except MalformedError as exc:
        raise _fail(kind, name, str(exc)) from None
    return h


def _int(kind: str, name: str, value: object, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(kind, name, f"expected an integer, got {type(value).__name__}")
    if not lo <= value <= MAX_SAFE_INT:
        raise _fail(kind, name, f"{value} out of range [{lo}, {MAX_SAFE_INT}]")
    return value


def _seq(kind: str, name: str, value: object, *, allow_empty: bool) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(kind, name, "expected a list")
    if not value and not allow_empty:
        raise _fail(kind, name, "must not be empty")
    if len(value) > MAX_LIST:
        raise _fail(kind, name, f"more than {MAX_LIST} items")
    return tuple(value)


def _indices(kind: str, name: str, value: object, *, allow_empty: bool) -> tuple[int, ...]:
    items = _seq(kind, name, value, allow_empty=allow_empty)
    out = tuple(_int(kind, f"{name}[{i}]", v) for i, v in enumerate(items))
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise _fail(kind, name, "log indices must be strictly increasing")
    return out


def _json_object(kind: str, name: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(kind, name, "expected a JSON object")
    try:
        canonical_bytes(value)
    except MalformedError as exc:
        raise _fail(kind, name, str(exc)) from None
    return copy.deepcopy(value)


# ---------------------------------------------------------------------------------------
# decoded entries, by their exact bytes
# ---------------------------------------------------------------------------------------

#: Entries that decoded strictly, keyed by their exact bytes (decoding is a pure function
#: of them; entries are frozen).  A party reads the same entries many times per query (each
#: look at the log, each chained round); only *successful* decodings are kept, so bytes that
#: were refused are decoded, and refused, again.  Bounded by the bytes it holds.
_DECODED: dict[bytes, Entry] = {}
_DECODED_BYTES = [0]
_MAX_DECODED_BYTES = 64 << 20


def _remember(raw: bytes, entry: Entry) -> None:
    if _DECODED_BYTES[0] + len(raw) > _MAX_DECODED_BYTES:
        _DECODED.clear()
        _DECODED_BYTES[0] = 0
    if raw not in _DECODED:
        _DECODED[raw] = entry
        _DECODED_BYTES[0] += len(raw)


def _detached(entry: Entry) -> Entry:
    """``entry`` as its caller's own object: the JSON objects a kind holds (a query's spec,
    a result, noise parameters: dicts, mutable under the frozen dataclass) are deep copies,
    so no caller's change reaches the cached entry -- nor what another caller decodes from
    the same bytes.  Every other field is immutable and shared."""
    mutable = [f.name for f in fields(entry) if isinstance(getattr(entry, f.name), dict | list)]
    if not mutable:
        return entry
    own = copy.copy(entry)
    for name in mutable:
        object.__setattr__(own, name, copy.deepcopy(getattr(entry, name)))
    return own


# ---------------------------------------------------------------------------------------
# the base class
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """Base of every entry kind.  ``sig`` is ``None`` until :func:`sign` fills it."""

    KIND: ClassVar[str] = ""
    #: Fields that are bytes on the wire (hex strings in Python); ``True`` = a list of them.
    BINARY: ClassVar[dict[str, bool]] = {}
    sig: str | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.sig is not None:
            _hex(self.KIND, "sig", self.sig, _SIG_HEX)
        self._validate()

    def _validate(self) -> None:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    # -- JSON view / wire map / bytes ---------------------------------------------------

    def _fields_json(self) -> dict[str, Any]:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def to_json_obj(self, *, include_sig: bool = True) -> dict[str, Any]:
        """The readable view of the entry: binary fields as lowercase hex (``sig`` included
        when signed and asked for).  Not the wire form: see :meth:`to_wire_obj`."""
        obj: dict[str, Any] = {"v": ENTRY_VERSION, "kind": self.KIND}
        obj.update(self._fields_json())
        if include_sig and self.sig is not None:
            obj["sig"] = self.sig
        return obj

    def to_wire_obj(self, *, include_sig: bool = True) -> dict[str, Any]:
        """The map that is CBOR-encoded: :meth:`to_json_obj` with binary fields as bytes."""
        obj = self.to_json_obj(include_sig=include_sig)
        for name, is_list in (*self.BINARY.items(), ("sig", False)):
            if name in obj and obj[name] is not None:
                v = obj[name]
                obj[name] = [bytes.fromhex(h) for h in v] if is_list else bytes.fromhex(v)
        return obj

    def unsigned_bytes(self) -> bytes:
        """Deterministic CBOR bytes of the entry without ``sig``."""
        return cbor_bytes(self.to_wire_obj(include_sig=False))

    def signing_message(self) -> bytes:
        """``b"statledger/entry/v2\\n" + cbor_bytes(entry without sig)``."""
        return SIG_DOMAIN + self.unsigned_bytes()

    def to_bytes(self) -> bytes:
        """Deterministic CBOR bytes of the signed entry: the Merkle leaf data."""
        if self.sig is None:
            raise MalformedError(f"{self.KIND}: entry is not signed")
        return cbor_bytes(self.to_wire_obj())

    def digest(self) -> str:
        """SHA-256 (hex) of :meth:`to_bytes`."""
        return sha256_hex(self.to_bytes())

    def signature_bytes(self) -> bytes:
        if self.sig is None:
            raise MalformedError(f"{self.KIND}: entry is not signed")
        return bytes.fromhex(self.sig)

    def claimed_author(self) -> str | None:
        """The party id the entry names as its author, if it names one.

        ``setup`` (the ledger), ``aggregate`` and ``result`` (the querier of the query entry)
        do not carry their author; the caller resolves it from the roster / query entry.
        """
        return None

    @classmethod
    def _from_fields(cls: type[E], obj: dict[str, Any]) -> E:  # pragma: no cover
        raise NotImplementedError

    @staticmethod
    def _envelope(obj: object) -> tuple[type[Entry], dict[str, Any]]:
        """Version, kind and exact key set; returns the class and the fields (with sig)."""
        if not isinstance(obj, dict):
            raise MalformedError("entry: expected a map")
        if "v" not in obj or "kind" not in obj:
            raise MalformedError("entry: missing 'v' or 'kind'")
        v = obj["v"]
        if isinstance(v, bool) or not isinstance(v, int) or v != ENTRY_VERSION:
            raise MalformedError(f"entry: unsupported entry version {v!r} (this is entry "
                                 f"version {ENTRY_VERSION})")
        kind = obj["kind"]
        if not isinstance(kind, str) or kind not in KINDS:
            raise MalformedError(f"entry: unknown kind {kind!r}")
        cls = KINDS[kind]
        expected = cls._json_keys(obj)
        got = set(obj)
        if got != expected:
            missing = sorted(expected - got)
            extra = sorted(got - expected)
            raise MalformedError(f"{kind}: wrong keys (missing {missing}, unexpected {extra})")
        return cls, {k: obj[k] for k in expected if k not in ("v", "kind")}

    @staticmethod
    def from_json_obj(obj: object) -> Entry:
        """Strictly build the entry of its readable view (:meth:`to_json_obj`, hex fields)."""
        cls, body = Entry._envelope(obj)
        _hex(cls.KIND, "sig", body["sig"], _SIG_HEX)
        return cls._from_fields(body)

    @staticmethod
    def from_wire_obj(obj: object) -> Entry:
        """Strictly build the entry of its wire map (:meth:`to_wire_obj`, byte strings)."""
        cls, body = Entry._envelope(obj)
        k = cls.KIND
        for name, is_list in (*cls.BINARY.items(), ("sig", False)):
            if name not in body:
                continue
            v = body[name]
            if is_list:
                items = _seq(k, name, v, allow_empty=True)
                for i, b in enumerate(items):
                    if not isinstance(b, bytes):
                        raise _fail(k, f"{name}[{i}]", "expected a byte string")
                body[name] = [b.hex() for b in items]
            elif not isinstance(v, bytes):
                raise _fail(k, name, "expected a byte string")
            else:
                body[name] = v.hex()
        _hex(k, "sig", body["sig"], _SIG_HEX)
        return cls._from_fields(body)

    @classmethod
    def _json_keys(cls, obj: dict[str, Any]) -> set[str]:
        return {"v", "kind", "sig"} | {f.name for f in fields(cls) if f.name != "sig"}

    @staticmethod
    def from_bytes(data: bytes) -> Entry:
        """Strict decoding of a signed entry's bytes (the exact inverse of to_bytes)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError("entry: data must be bytes")
        raw = bytes(data)
        known = _DECODED.get(raw)  # the exact bytes decoded before (a dict compares them all)
        if known is not None:
            return _detached(known)
        if raw[:1] == b"{":
            raise MalformedError(
                "entry: this is a version 1 entry (canonical JSON, hex fields), no longer "
                f"accepted: entries are version {ENTRY_VERSION} (deterministic CBOR, "
                "docs/entries.md)")
        entry = Entry.from_wire_obj(parse_cbor(raw))
        if entry.to_bytes() != raw:
            raise MalformedError(f"{entry.KIND}: bytes are not the canonical encoding")
        _remember(raw, entry)
        return _detached(entry)


# ---------------------------------------------------------------------------------------
# the kinds
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyEntry(Entry):
    """Registration of a party's identity key (and, for compute nodes, its ElGamal key share)."""

    KIND: ClassVar[str] = "party"
    BINARY: ClassVar[dict[str, bool]] = {"sig_key": False, "elgamal_key": False, "pok": False}
    party_id: str
    role: str
    sig_key: str
    elgamal_key: str | None = None
    pok: str | None = None

    def _validate(self) -> None:
        k = self.KIND
        _party(k, "party_id", self.party_id)
        if not isinstance(self.role, str) or self.role not in ROLES:
            raise _fail(k, "role", f"{self.role!r} is not one of {list(ROLES)}")
        _hex(k, "sig_key", self.sig_key, _KEY_HEX)
        try:
            VerifyKey.from_bytes(bytes.fromhex(self.sig_key))
        except MalformedError as exc:
            raise _fail(k, "sig_key", str(exc)) from None
        if self.role == "compute":
            if self.elgamal_key is None or self.pok is None:
                raise _fail(k, "elgamal_key", "a compute node needs elgamal_key and pok")
            _point(k, "elgamal_key", self.elgamal_key)
            _decode(k, "pok", self.pok, sigma.SchnorrProof.from_bytes)
        elif self.elgamal_key is not None or self.pok is not None:
            raise _fail(k, "elgamal_key", f"role {self.role} carries no elgamal_key / pok")

    def _fields_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"party_id": self.party_id, "role": self.role,
                               "sig_key": self.sig_key}
        if self.role == "compute":
            out["elgamal_key"] = self.elgamal_key
            out["pok"] = self.pok
        return out

    @classmethod
    def _json_keys(cls, obj: dict[str, Any]) -> set[str]:
        keys = {"v", "kind", "sig", "party_id", "role", "sig_key"}
        if obj.get("role") == "compute":
            keys |= {"elgamal_key", "pok"}
        return keys

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> PartyEntry:
        return cls(obj["party_id"], obj["role"], obj["sig_key"], obj.get("elgamal_key"),
                   obj.get("pok"), sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.party_id

    def verify_key(self) -> VerifyKey:
        return VerifyKey.from_bytes(bytes.fromhex(self.sig_key))

    def elgamal_point(self) -> Point:
        """The compute node's key share ``X_i`` (MalformedError for other roles)."""
        if self.elgamal_key is None:
            raise MalformedError(f"party {self.party_id} ({self.role}) has no elgamal_key")
        return Point.from_bytes(bytes.fromhex(self.elgamal_key))

    def verify_pok(self, consortium: str, *, step: str | None = None) -> None:
        """Verify the Schnorr proof of knowledge of ``x_i`` for ``X_i``, bound to the
        consortium id and ``party_id``.

        Context = :func:`statledger.protocol.flow.keyreg_context` (``b"statledger/keyreg/v2\\n"``
        + length-prefixed consortium id and party id).  Raises :class:`VerificationError`
        blaming this party.
        """
        from statledger.protocol.flow import keyreg_context

        if self.pok is None:
            raise VerificationError("no proof of knowledge", step=step, party=self.party_id)
        X = self.elgamal_point()
        try:
            proof = sigma.SchnorrProof.from_bytes(bytes.fromhex(self.pok))
        except MalformedError as exc:
            raise VerificationError(f"malformed proof of knowledge: {exc}", step=step,
                                    party=self.party_id) from None
        try:
            sigma.verify_schnorr(X, proof, keyreg_context(consortium, self.party_id))
        except VerificationError as exc:
            raise VerificationError(f"proof of knowledge: {exc.reason}", step=step,
                                    party=self.party_id) from None


@dataclass(frozen=True)
class _DocumentEntry(Entry):
    """An entry that carries one consortium document (canonical JSON bytes in ``document``),
    appended and signed by the log.  Decoding checks only that the document parses and is
    its own canonical encoding; what it says is verification step 6's job."""

    BINARY: ClassVar[dict[str, bool]] = {"document": False}
    document: str

    @staticmethod
    def _parse(raw: bytes) -> Any:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def _validate(self) -> None:
        raw = bytes.fromhex(_hex(self.KIND, "document", self.document))
        try:
            doc = self._parse(raw)
        except MalformedError as exc:
            raise _fail(self.KIND, "document", str(exc)) from None
        if doc.to_bytes() != raw:
            raise _fail(self.KIND, "document", f"not the canonical encoding of the {self.KIND}")
        object.__setattr__(self, "_doc", doc)

    def _fields_json(self) -> dict[str, Any]:
        return {"document": self.document}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> Any:
        return cls(obj["document"], sig=obj["sig"])

    def _document(self) -> Any:
        return self.__dict__["_doc"]


@dataclass(frozen=True)
class GenesisEntry(_DocumentEntry):
    """Entry 0 of every log: the consortium's signed genesis
    (:class:`statledger.protocol.consortium.SignedGenesis`), appended and signed by the log
    (the genesis' ledger member).  The founding members' signatures inside the document are
    what a party or verifier checks; the outer signature only says which log appended it."""

    KIND: ClassVar[str] = "genesis"

    @staticmethod
    def _parse(raw: bytes) -> Any:
        from statledger.protocol.consortium import SignedGenesis

        return SignedGenesis.from_bytes(raw)

    @classmethod
    def of(cls, signed: Any) -> GenesisEntry:
        """The (unsigned) entry carrying ``signed`` (a SignedGenesis)."""
        return cls(signed.to_bytes().hex())

    def signed_genesis(self) -> Any:
        """The :class:`~statledger.protocol.consortium.SignedGenesis` (decoded, not verified)."""
        return self._document()

    def claimed_author(self) -> str | None:
        return str(self.signed_genesis().genesis.ledger.party_id)


@dataclass(frozen=True)
class MembershipEntry(_DocumentEntry):
    """One link of the consortium's membership chain
    (:class:`statledger.protocol.consortium.MembershipChange`), appended and signed by the
    log.  Its authority is the admission quorum's signatures inside the document, checked
    against the roster the chain derives."""

    KIND: ClassVar[str] = "membership"

    @staticmethod
    def _parse(raw: bytes) -> Any:
        from statledger.protocol.consortium import MembershipChange

        return MembershipChange.from_bytes(raw)

    @classmethod
    def of(cls, change: Any) -> MembershipEntry:
        """The (unsigned) entry carrying ``change`` (a MembershipChange)."""
        return cls(change.to_bytes().hex())

    def change(self) -> Any:
        """The :class:`~statledger.protocol.consortium.MembershipChange` (decoded, not
        verified)."""
        return self._document()


@dataclass(frozen=True)
class SetupEntry(Entry):
    """The key ceremony's outcome, signed by the log: the consortium id, the compute nodes
    (sorted: every compute member of the roster), the decryption threshold ``T`` (the
    roster's), the collective key ``Y`` and each node's public verification key ``Y_j``
    (aligned with ``compute``).  Nobody takes the log's word for it: every party re-derives
    ``Y`` and every ``Y_j`` from the distributed key generation's transcript on the log
    (:mod:`statledger.protocol.dkg`, docs/dkg.md)."""

    KIND: ClassVar[str] = "setup"
    BINARY: ClassVar[dict[str, bool]] = {"consortium": False, "collective_key": False,
                                         "verification_keys": True}
    consortium: str
    compute: tuple[str, ...]
    threshold: int
    collective_key: str
    verification_keys: tuple[str, ...]

    def _validate(self) -> None:
        k = self.KIND
        _hex(k, "consortium", self.consortium, _DIGEST_HEX)
        ids = _seq(k, "compute", self.compute, allow_empty=False)
        for i, p in enumerate(ids):
            _party(k, f"compute[{i}]", p)
        if list(ids) != sorted(set(ids)):
            raise _fail(k, "compute", "party ids must be sorted and unique")
        object.__setattr__(self, "compute", ids)
        _int(k, "threshold", self.threshold, 1)
        if self.threshold > len(ids):
            raise _fail(k, "threshold", "more than the number of compute nodes")
        _point(k, "collective_key", self.collective_key)
        vks = _seq(k, "verification_keys", self.verification_keys, allow_empty=False)
        if len(vks) != len(ids):
            raise _fail(k, "verification_keys", "one per compute node")
        for i, v in enumerate(vks):
            _point(k, f"verification_keys[{i}]", v)
        object.__setattr__(self, "verification_keys", vks)

    def _fields_json(self) -> dict[str, Any]:
        return {"consortium": self.consortium, "compute": list(self.compute),
                "threshold": self.threshold, "collective_key": self.collective_key,
                "verification_keys": list(self.verification_keys)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> SetupEntry:
        return cls(obj["consortium"], obj["compute"], obj["threshold"], obj["collective_key"],
                   obj["verification_keys"], sig=obj["sig"])

    def collective_point(self) -> Point:
        return Point.from_bytes(bytes.fromhex(self.collective_key))

    def verification_points(self) -> list[Point]:
        """``Y_j`` for every node of ``compute``, in that order."""
        return [Point.from_bytes(bytes.fromhex(v)) for v in self.verification_keys]

    def verification_point(self, node: str) -> Point:
        if node not in self.compute:
            raise _fail(self.KIND, "compute", f"{node} is not a compute node of the setup")
        return self.verification_points()[self.compute.index(node)]


@dataclass(frozen=True)
class RekeyEntry(SetupEntry):
    """The outcome of a *resharing* of the collective key (docs/dkg.md, "Key lifecycle"),
    signed by the log: the same fields as the setup -- the compute nodes after a membership
    change or a refresh, the threshold, the *unchanged* collective key ``Y`` and the new
    verification keys ``Y'_j``.  It supersedes the previous setup or rekey for every query
    logged after it; everyone re-derives it from that run's ``dkg_*`` entries."""

    KIND: ClassVar[str] = "rekey"


@dataclass(frozen=True)
class QueryEntry(Entry):
    """A query: its id (``QuerySpec.query_id_for(querier)``: the spec and the querier
    hashed together), the full spec, the querier."""

    KIND: ClassVar[str] = "query"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False}
    query_id: str
    spec: dict[str, Any]
    querier: str

    def _validate(self) -> None:
        from statledger.protocol.query import QuerySpec

        k = self.KIND
        _query_id(k, self.query_id)
        spec_obj = _json_object(k, "spec", self.spec)
        try:
            parsed = QuerySpec.parse(spec_obj)
        except MalformedError as exc:
            raise _fail(k, "spec", str(exc)) from None
        if parsed.canonical_bytes() != canonical_bytes(spec_obj):
            raise _fail(k, "spec", "not the normalised spec (every field, defaults included)")
        _party(k, "querier", self.querier)
        if parsed.query_id_for(self.querier) != self.query_id:
            raise _fail(k, "query_id", "is not the id of this spec asked by this querier")
        object.__setattr__(self, "spec", spec_obj)

    @classmethod
    def for_spec(cls, spec: QuerySpec, querier: str) -> QueryEntry:
        """The (unsigned) query entry of a parsed spec."""
        return cls(spec.query_id_for(querier), spec.to_json_obj(), querier)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "spec": copy.deepcopy(self.spec),
                "querier": self.querier}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> QueryEntry:
        return cls(obj["query_id"], obj["spec"], obj["querier"], sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.querier

    def query_spec(self) -> QuerySpec:
        from statledger.protocol.query import QuerySpec

        return QuerySpec.parse(self.spec)


@dataclass(frozen=True)
class SubmissionEntry(Entry):
    """A provider's encrypted, range-proven vector (hex of ``EncryptedVector.to_bytes()``)."""

    KIND: ClassVar[str] = "submission"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "vector": False}
    query_id: str
    provider: str
    vector: str

    def _validate(self) -> None:
        _query_id(self.KIND, self.query_id)
        _party(self.KIND, "provider", self.provider)
        _hex(self.KIND, "vector", self.vector)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "provider": self.provider, "vector": self.vector}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> SubmissionEntry:
        return cls(obj["query_id"], obj["provider"], obj["vector"], sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.provider

    def decode_vector(self, ranges: Sequence[tuple[int, int]], *, tail: int = 0
                      ) -> EncryptedVector:
        """Strictly decode the vector against the public ranges (MalformedError otherwise).
        ``tail``: the exact length of a validity proof the query asks after the vector (a
        one-hot proof, :func:`statledger.protocol.validity.tail_bytes`); it is not decoded
        here (:func:`statledger.protocol.validity.decode_submission`)."""
        from statledger.proofs.vector import EncryptedVector

        raw = bytes.fromhex(self.vector)
        want = EncryptedVector.encoded_size(list(ranges))
        if tail and len(raw) != want + tail:
            raise MalformedError(f"submission vector must be {want + tail} bytes "
                                 f"(vector and validity proof), got {len(raw)}")
        return EncryptedVector.from_bytes(raw[:want] if tail else raw, list(ranges))


@dataclass(frozen=True)
class NoiseCommitEntry(Entry):
    """Round 1 of a compute node's DP noise (docs/noise.md): ``commitment`` is the bytes of a
    :class:`statledger.protocol.noise.NoiseCommitment` -- ``EncryptedVector.to_bytes()`` of
    ``params.total_bits`` secret bits encrypted under the collective key, ranges ``(0, 1)``
    each, with one aggregated proof bound to (query, node, params) -- and ``params``, the
    noise parameters the querier chose (``NoiseParams.to_json_obj``): every commitment of a
    query carries the same, and everyone checks them (``flow.check_noise_params``)."""

    KIND: ClassVar[str] = "noise_commit"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "commitment": False}
    query_id: str
    node: str
    commitment: str
    params: dict[str, Any]

    def _validate(self) -> None:
        _query_id(self.KIND, self.query_id)
        _party(self.KIND, "node", self.node)
        _hex(self.KIND, "commitment", self.commitment)
        object.__setattr__(self, "params", _json_object(self.KIND, "params", self.params))

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "node": self.node, "commitment": self.commitment,
                "params": copy.deepcopy(self.params)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> NoiseCommitEntry:
        return cls(obj["query_id"], obj["node"], obj["commitment"], obj["params"],
                   sig=obj["sig"])

    @classmethod
    def of(cls, query_id: str, commitment: NoiseCommitment,
           params: NoiseParams) -> NoiseCommitEntry:
        """The (unsigned) entry of ``commitment`` (its node is the entry's ``node``)."""
        return cls(query_id, commitment.node, commitment.to_bytes().hex(),
                   params.to_json_obj())

    def noise_params(self) -> NoiseParams:
        """The carried noise parameters, strictly decoded (MalformedError otherwise)."""
        from statledger.protocol.noise import NoiseParams

        return NoiseParams.from_json_obj(self.params)

    def claimed_author(self) -> str | None:
        return self.node

    def decode_commitment(self, params: NoiseParams) -> NoiseCommitment:
        """Strictly decode the commitment for the query's public noise parameters (exactly
        ``params.total_bits`` bits; MalformedError otherwise)."""
        from statledger.proofs.vector import EncryptedVector
        from statledger.protocol.noise import NoiseCommitment

        ev = EncryptedVector.from_bytes(bytes.fromhex(self.commitment),
                                        [(0, 1)] * params.total_bits)
        return NoiseCommitment(self.node, ev)


@dataclass(frozen=True)
class NoiseCoinEntry(Entry):
    """Round 2 of a compute node's DP noise (docs/noise.md): its coin share
    ``D_i = x_i * P`` (a point, ``P`` the coin base of the query's noise set) and the
    Chaum--Pedersen proof (64 bytes) that ``log_P D_i`` is the node's key share."""

    KIND: ClassVar[str] = "noise_coin"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "coin_share": False,
                                         "proof": False}
    query_id: str
    node: str
    coin_share: str
    proof: str

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        _party(k, "node", self.node)
        _point(k, "coin_share", self.coin_share)
        _decode(k, "proof", self.proof, sigma.DLEQProof.from_bytes)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "node": self.node, "coin_share": self.coin_share,
                "proof": self.proof}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> NoiseCoinEntry:
        return cls(obj["query_id"], obj["node"], obj["coin_share"], obj["proof"],
                   sig=obj["sig"])

    @classmethod
    def of(cls, query_id: str, share: CoinShare) -> NoiseCoinEntry:
        """The (unsigned) entry of ``share`` (its node is the entry's ``node``)."""
        return cls(query_id, share.node, share.D.to_bytes().hex(), share.proof.to_bytes().hex())

    def claimed_author(self) -> str | None:
        return self.node

    def decode_share(self) -> CoinShare:
        """The coin share with its proof, strictly decoded."""
        from statledger.protocol.noise import CoinShare

        return CoinShare(self.node, Point.from_bytes(bytes.fromhex(self.coin_share)),
                         sigma.DLEQProof.from_bytes(bytes.fromhex(self.proof)))


@dataclass(frozen=True)
class AggregateEntry(Entry):
    """The limb-wise sum of the listed submissions and noise shares (publicly recomputable).

    ``ciphertexts`` is the row-major flattening (:func:`statledger.protocol.flow.flatten`) of the
    aggregate, one hex 66-byte ElGamal ciphertext ``C1 || C2`` per limb; both points are
    decoded strictly here.
    """

    KIND: ClassVar[str] = "aggregate"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "ciphertexts": True}
    query_id: str
    submissions: tuple[int, ...]
    noise: tuple[int, ...]
    ciphertexts: tuple[str, ...]

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        object.__setattr__(self, "submissions",
                           _indices(k, "submissions", self.submissions, allow_empty=False))
        object.__setattr__(self, "noise", _indices(k, "noise", self.noise, allow_empty=True))
        if set(self.submissions) & set(self.noise):
            raise _fail(k, "noise", "an index is listed as both submission and noise")
        cts = _seq(k, "ciphertexts", self.ciphertexts, allow_empty=False)
        for i, c in enumerate(cts):
            h = _hex(k, f"ciphertexts[{i}]", c, _CIPHERTEXT_HEX)
            _point(k, f"ciphertexts[{i}].C1", h[:_POINT_HEX], allow_identity=True)
            _point(k, f"ciphertexts[{i}].C2", h[_POINT_HEX:], allow_identity=True)
        object.__setattr__(self, "ciphertexts", cts)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "submissions": list(self.submissions),
                "noise": list(self.noise), "ciphertexts": list(self.ciphertexts)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> AggregateEntry:
        return cls(obj["query_id"], obj["submissions"], obj["noise"], obj["ciphertexts"],
                   sig=obj["sig"])

    def decode_ciphertexts(self) -> list[Ciphertext]:
        from statledger.proofs.elgamal import Ciphertext

        return [Ciphertext.from_bytes(bytes.fromhex(c)) for c in self.ciphertexts]


@dataclass(frozen=True)
class _SharesEntry(Entry):
    """A compute node's decryption shares ``D_k = x_i * C1_k`` of some ciphertexts and one
    batched DLEQ proof (the shape of ``decryption`` and ``gate`` entries)."""

    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "shares": True, "proof": False}
    query_id: str
    node: str
    shares: tuple[str, ...]
    proof: str

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        _party(k, "node", self.node)
        items = _seq(k, "shares", self.shares, allow_empty=False)
        for i, s in enumerate(items):
            _point(k, f"shares[{i}]", s, allow_identity=True)
        object.__setattr__(self, "shares", items)
        _decode(k, "proof", self.proof, sigma.DLEQBatchProof.from_bytes)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "node": self.node, "shares": list(self.shares),
                "proof": self.proof}

    @classmethod
    def _from_fields(cls: type[E], obj: dict[str, Any]) -> E:
        return cls(obj["query_id"], obj["node"], obj["shares"],  # type: ignore[call-arg,misc]
                   obj["proof"], sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.node

    def share_points(self) -> list[Point]:
        return [Point.from_bytes(bytes.fromhex(s)) for s in self.shares]

    def decode_proof(self) -> sigma.DLEQBatchProof:
        """The batched DLEQ proof, strictly decoded."""
        return sigma.DLEQBatchProof.from_bytes(bytes.fromhex(self.proof))


@dataclass(frozen=True)
class DecryptionEntry(_SharesEntry):
    """A compute node's decryption shares ``D_k = x_i * C1_k`` and one batched DLEQ proof."""

    KIND: ClassVar[str] = "decryption"


@dataclass(frozen=True)
class ResultEntry(Entry):
    """The decrypted integer totals (decimal strings) and the decoded result (plain JSON)."""

    KIND: ClassVar[str] = "result"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False}
    query_id: str
    totals: tuple[str, ...]
    result: dict[str, Any]
    #: the ``T`` compute nodes whose decryption shares were combined (sorted)
    decryptors: tuple[str, ...]

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        # empty totals and decryptors: a gated query whose release decision withholds every
        # entry (nothing decrypted; protocol/suppression.py); step 12 checks which case it is
        items = _seq(k, "totals", self.totals, allow_empty=True)
        for i, t in enumerate(items):
            if (not isinstance(t, str) or len(t) > MAX_DECIMAL_DIGITS
                    or not _DECIMAL_RE.fullmatch(t)):
                raise _fail(k, f"totals[{i}]", f"{t!r} is not a canonical decimal integer")
        object.__setattr__(self, "totals", items)
        object.__setattr__(self, "result", _json_object(k, "result", self.result))
        ds = _seq(k, "decryptors", self.decryptors, allow_empty=True)
        for n, d in enumerate(ds):
            _party(k, f"decryptors[{n}]", d)
        if list(ds) != sorted(set(ds)):
            raise _fail(k, "decryptors", "party ids must be sorted and unique")
        if bool(ds) != bool(items):
            raise _fail(k, "decryptors", "decrypting nodes without totals, or totals "
                                         "without decrypting nodes")
        object.__setattr__(self, "decryptors", ds)

    @classmethod
    def for_totals(cls, query_id: str, totals: Sequence[int], result: dict[str, Any],
                   decryptors: Sequence[str]) -> ResultEntry:
        return cls(query_id, tuple(str(int(t)) for t in totals), result,
                   tuple(sorted(decryptors)))

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "totals": list(self.totals),
                "result": copy.deepcopy(self.result), "decryptors": list(self.decryptors)}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> ResultEntry:
        return cls(obj["query_id"], obj["totals"], obj["result"], obj["decryptors"],
                   sig=obj["sig"])

    def totals_int(self) -> list[int]:
        return [int(t) for t in self.totals]


@dataclass(frozen=True)
class EndorsementEntry(Entry):
    """A provider's signature on the released result: ``result_digest`` = sha256(result bytes)."""

    KIND: ClassVar[str] = "endorsement"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "result_digest": False}
    query_id: str
    provider: str
    result_digest: str

    def _validate(self) -> None:
        _query_id(self.KIND, self.query_id)
        _party(self.KIND, "provider", self.provider)
        _hex(self.KIND, "result_digest", self.result_digest, _DIGEST_HEX)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "provider": self.provider,
                "result_digest": self.result_digest}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> EndorsementEntry:
        return cls(obj["query_id"], obj["provider"], obj["result_digest"], sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.provider


@dataclass(frozen=True)
class GateEntry(_SharesEntry):
    """Suppression before decryption, phase 1 (:mod:`statledger.protocol.suppression`): a
    compute node's decryption shares of the last ``pet`` entry's shuffled ciphertexts only
    (``k`` per gate cell, in order) and one batched DLEQ proof under the gate context."""

    KIND: ClassVar[str] = "gate"


@dataclass(frozen=True)
class PetEntry(Entry):
    """Suppression before decryption, the blinded shuffled PET (:mod:`statledger.protocol.pet`):
    one compute node's step of the chain for every gate cell, cells in gate order, ``k``
    ciphertexts per cell -- the inputs blinded in order (``blinded``, hex 66-byte
    ciphertexts, no identity point), one DLEQ-pair proof per blinded ciphertext
    (``blind_proofs``, 98 bytes each), the blinded ciphertexts re-encrypted and permuted
    (``shuffled``) and one shuffle proof per cell (``shuffle_proofs``), both kinds of proof
    in commitment form (``proof_version`` 2, :data:`statledger.protocol.pet.PET_VERSION`;
    an entry without it, version 1, is refused by name).  Its inputs are the previous
    ``pet`` entry's ``shuffled`` (log order), or the candidates ``Enc(n - j)`` for the
    first; step 12 re-derives them.  Every point and proof is decoded once, strictly, when
    the entry is built; :meth:`batches` hands the decoded cells out."""

    KIND: ClassVar[str] = "pet"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "blinded": True,
                                         "blind_proofs": True, "shuffled": True,
                                         "shuffle_proofs": True}
    query_id: str
    node: str
    blinded: tuple[str, ...]
    blind_proofs: tuple[str, ...]
    shuffled: tuple[str, ...]
    shuffle_proofs: tuple[str, ...]
    proof_version: int = PET_VERSION

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        _party(k, "node", self.node)
        v = self.proof_version
        if isinstance(v, bool) or not isinstance(v, int) or v != PET_VERSION:
            raise _fail(k, "proof_version", f"PET encoding version {v!r} is not accepted (this "
                                            f"is version {PET_VERSION}: commitment-form proofs)")
        lists: dict[str, tuple[str, ...]] = {}
        for name in ("blinded", "blind_proofs", "shuffled", "shuffle_proofs"):
            lists[name] = _seq(k, name, getattr(self, name), allow_empty=False)
            object.__setattr__(self, name, lists[name])
        width = len(lists["blinded"])
        if len(lists["blind_proofs"]) != width or len(lists["shuffled"]) != width:
            raise _fail(k, "blind_proofs", "blinded, blind_proofs and shuffled must have one "
                                           "item per ciphertext each")
        cells = len(lists["shuffle_proofs"])
        if width % cells:
            raise _fail(k, "shuffle_proofs", "one shuffle proof per cell of equal size expected")
        per_cell = width // cells

        def cts(name: str) -> list[Ciphertext]:
            out = []
            for i, c in enumerate(lists[name]):
                _hex(k, f"{name}[{i}]", c, _CIPHERTEXT_HEX)
                out.append(Ciphertext(_point(k, f"{name}[{i}]", c[:_POINT_HEX]),
                                      _point(k, f"{name}[{i}]", c[_POINT_HEX:])))
            return out

        def proofs(name: str, decoder: Callable[[bytes], Any]) -> list[Any]:
            out = []
            for i, h in enumerate(lists[name]):
                _hex(k, f"{name}[{i}]", h)
                try:
                    out.append(decoder(bytes.fromhex(h)))
                except MalformedError as exc:
                    raise _fail(k, f"{name}[{i}]", str(exc)) from None
            return out

        blinded, shuffled = cts("blinded"), cts("shuffled")
        blind_proofs = proofs("blind_proofs", sigma.DLEQPairProof.from_bytes)
        shuffle_proofs = proofs("shuffle_proofs",
                                lambda b: ShuffleProof.from_bytes(b, per_cell))
        # decoded once, here (strictly); batches() hands them out (immutable, not a field)
        object.__setattr__(self, "_batches", tuple(
            PetBatch(tuple(blinded[c * per_cell:(c + 1) * per_cell]),
                     tuple(blind_proofs[c * per_cell:(c + 1) * per_cell]),
                     tuple(shuffled[c * per_cell:(c + 1) * per_cell]),
                     shuffle_proofs[c])
            for c in range(cells)))

    @classmethod
    def _json_keys(cls, obj: dict[str, Any]) -> set[str]:
        if "proof_version" not in obj:
            raise MalformedError(
                "pet: a version 1 PET entry (challenge-response blinding and shuffle proofs, "
                "no 'proof_version') is no longer accepted: PET entries are version "
                f"{PET_VERSION} (commitment-form proofs, docs/notes/pet.md)")
        return super()._json_keys(obj)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "node": self.node, "blinded": list(self.blinded),
                "blind_proofs": list(self.blind_proofs), "shuffled": list(self.shuffled),
                "shuffle_proofs": list(self.shuffle_proofs),
                "proof_version": self.proof_version}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> PetEntry:
        return cls(obj["query_id"], obj["node"], obj["blinded"], obj["blind_proofs"],
                   obj["shuffled"], obj["shuffle_proofs"], obj["proof_version"],
                   sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.node

    @property
    def cells(self) -> int:
        return len(self.shuffle_proofs)

    def batches(self) -> list[PetBatch]:
        """The entry's per-cell :class:`statledger.protocol.pet.PetBatch` es, strictly
        decoded when the entry was built (MalformedError then)."""
        return list(self.__dict__["_batches"])

    @classmethod
    def of(cls, query_id: str, node: str, batches: Sequence[PetBatch]) -> PetEntry:
        """From per-cell :class:`statledger.protocol.pet.PetBatch` es (unsigned)."""
        return cls(query_id, node,
                   tuple(c.to_bytes().hex() for b in batches for c in b.blinded),
                   tuple(p.to_bytes().hex() for b in batches for p in b.blind_proofs),
                   tuple(c.to_bytes().hex() for b in batches for c in b.shuffled),
                   tuple(b.shuffle_proof.to_bytes().hex() for b in batches))


@dataclass(frozen=True)
class ReleaseEntry(Entry):
    """Suppression before decryption, the querier's decision: the ``T`` nodes whose gate
    shares (of the last ``pet`` entry's ciphertexts) were combined (sorted), the bit "this
    gate cell is small" per gate cell (``small``, 0 or 1: ``n < min_cell_size``, the only
    thing the PET reveals), the layout positions of the entries that may be decrypted
    (strictly increasing, possibly none), the release groups with more than one member
    (``merged``: per group ``[target, other members...]``, by increasing target; the target
    is a released position, the others are not released and in no other group: only the
    group's sum is decrypted, published at the target; empty unless the statistic merges,
    e.g. Kaplan-Meier's coarsened grid) and the number of the ciphertexts (limbs) decrypted:
    the share count of every decryption entry, which the log's append rule enforces.
    Re-derived by every compute node before it decrypts and by step 12."""

    KIND: ClassVar[str] = "release"
    BINARY: ClassVar[dict[str, bool]] = {"query_id": False}
    query_id: str
    decryptors: tuple[str, ...]
    small: tuple[int, ...]
    released: tuple[int, ...]
    ciphertexts: int
    merged: tuple[tuple[int, ...], ...] = ()

    def _validate(self) -> None:
        k = self.KIND
        _query_id(k, self.query_id)
        ds = _seq(k, "decryptors", self.decryptors, allow_empty=False)
        for n, d in enumerate(ds):
            _party(k, f"decryptors[{n}]", d)
        if list(ds) != sorted(set(ds)):
            raise _fail(k, "decryptors", "party ids must be sorted and unique")
        object.__setattr__(self, "decryptors", ds)
        items = _seq(k, "small", self.small, allow_empty=False)
        for i, b in enumerate(items):
            if isinstance(b, bool) or b not in (0, 1):
                raise _fail(k, f"small[{i}]", f"{b!r} is not 0 or 1")
        object.__setattr__(self, "small", items)
        rel = _indices(k, "released", self.released, allow_empty=True)
        if list(rel) != sorted(set(rel)):
            raise _fail(k, "released", "positions must be strictly increasing")
        object.__setattr__(self, "released", rel)
        groups = _seq(k, "merged", self.merged, allow_empty=True)
        merged: list[tuple[int, ...]] = []
        members: set[int] = set(rel)
        for i, grp in enumerate(groups):
            g = _seq(k, f"merged[{i}]", grp, allow_empty=False)
            g = tuple(_int(k, f"merged[{i}][{n}]", v) for n, v in enumerate(g))
            if len(g) < 2 or g[0] not in rel:
                raise _fail(k, f"merged[{i}]", "expected a released target and at least one "
                            "other member")
            if merged and g[0] <= merged[-1][0]:
                raise _fail(k, "merged", "groups must be ordered by strictly increasing target")
            others = g[1:]
            if list(others) != sorted(set(others)) or members & set(others):
                raise _fail(k, f"merged[{i}]", "members must be strictly increasing and in no "
                            "other group (nor released)")
            members |= set(others)
            merged.append(g)
        object.__setattr__(self, "merged", tuple(merged))
        if _int(k, "ciphertexts", self.ciphertexts) < len(rel):
            raise _fail(k, "ciphertexts", "fewer ciphertexts than released entries")

    @classmethod
    def of(cls, query_id: str, decryptors: Sequence[str], small: Sequence[bool],
           released: Sequence[int], ciphertexts: int,
           merged: Sequence[Sequence[int]] = ()) -> ReleaseEntry:
        return cls(query_id, tuple(sorted(decryptors)), tuple(int(bool(b)) for b in small),
                   tuple(int(j) for j in released), int(ciphertexts),
                   tuple(tuple(int(j) for j in g) for g in merged))

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "decryptors": list(self.decryptors),
                "small": list(self.small), "released": list(self.released),
                "ciphertexts": self.ciphertexts, "merged": [list(g) for g in self.merged]}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> ReleaseEntry:
        return cls(obj["query_id"], obj["decryptors"], obj["small"], obj["released"],
                   obj["ciphertexts"], obj["merged"], sig=obj["sig"])

    def small_bits(self) -> list[bool]:
        return [bool(b) for b in self.small]


# ---------------------------------------------------------------------------------------
# the distributed key generation (docs/dkg.md): logged before the setup entry
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DkgEntry(Entry):
    """A compute node's message of the key ceremony: ``node`` and one strictly encoded
    message of :mod:`statledger.protocol.dkg` (decoded against the ceremony's parameters by
    whoever checks it: :func:`statledger.protocol.ceremony.derive_from_log`)."""

    BINARY: ClassVar[dict[str, bool]] = {"message": False}
    node: str
    message: str

    def _validate(self) -> None:
        _party(self.KIND, "node", self.node)
        _hex(self.KIND, "message", self.message)

    def _fields_json(self) -> dict[str, Any]:
        return {"node": self.node, "message": self.message}

    @classmethod
    def _from_fields(cls: type[E], obj: dict[str, Any]) -> E:
        return cls(obj["node"], obj["message"], sig=obj["sig"])  # type: ignore[call-arg,misc]

    def claimed_author(self) -> str | None:
        return self.node

    def message_bytes(self) -> bytes:
        return bytes.fromhex(self.message)


@dataclass(frozen=True)
class DkgDealEntry(_DkgEntry):
    """Phase 1: a dealer's Pedersen commitments and its encrypted shares (``dkg.Deal``)."""

    KIND: ClassVar[str] = "dkg_deal"


@dataclass(frozen=True)
class DkgAckEntry(_DkgEntry):
    """Phase 1 closes: ``message`` = :func:`statledger.protocol.ceremony.pack` of the run's
    digest (:func:`~statledger.protocol.ceremony.run_digest`: the ack belongs to one run),
    then a node's complaints (``dkg.Disclosure`` of each share that failed its check; none =
    every deal was good)."""

    KIND: ClassVar[str] = "dkg_ack"


@dataclass(frozen=True)
class DkgKeyEntry(_DkgEntry):
    """Phase 2: a qualified dealer's Feldman values ``A_k`` with their proofs
    (``dkg.KeyCommit``)."""

    KIND: ClassVar[str] = "dkg_key"


@dataclass(frozen=True)
class DkgDisclosureEntry(_DkgEntry):
    """Reconstruction: a node discloses its share of a qualified dealer that did not publish
    valid phase-2 values (``dkg.Disclosure``)."""

    KIND: ClassVar[str] = "dkg_disclosure"


@dataclass(frozen=True)
class DkgTransportEntry(_DkgEntry):
    """Resharing only: a new node's fresh transport key for this run, with its proof of
    knowledge bound to the run (``dkg.TransportKey``); the previous one can then be erased."""

    KIND: ClassVar[str] = "dkg_transport"


@dataclass(frozen=True)
class _VerticalEntry(Entry):
    """One owner's phase of a vertically partitioned query (statledger.protocol.vertical):
    the hex of the phase's canonical bytes, decoded strictly against the query's plan."""

    BINARY: ClassVar[dict[str, bool]] = {"query_id": False, "data": False}
    query_id: str
    provider: str
    data: str

    def _validate(self) -> None:
        _query_id(self.KIND, self.query_id)
        _party(self.KIND, "provider", self.provider)
        _hex(self.KIND, "data", self.data)

    def _fields_json(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "provider": self.provider, "data": self.data}

    @classmethod
    def _from_fields(cls, obj: dict[str, Any]) -> Any:
        return cls(obj["query_id"], obj["provider"], obj["data"], sig=obj["sig"])

    def claimed_author(self) -> str | None:
        return self.provider


@dataclass(frozen=True)
class VerticalRowsEntry(_VerticalEntry):
    """Owner A's tags and encrypted, range-proved rows (phase 1)."""

    KIND: ClassVar[str] = "vertical_rows"

    def decode_rows(self, spec: QuerySpec) -> Any:
        from statledger.protocol.vertical import VerticalPlan, VerticalRows

        return VerticalRows.from_bytes(bytes.fromhex(self.data), VerticalPlan.of(spec))


@dataclass(frozen=True)
class VerticalProductsEntry(_VerticalEntry):
    """Owner B's mask, proved products and own block (phase 2)."""

    KIND: ClassVar[str] = "vertical_products"

    def decode_products(self, spec: QuerySpec) -> Any:
        from statledger.protocol.vertical import VerticalPlan, VerticalProducts

        return VerticalProducts.from_bytes(bytes.fromhex(self.data), VerticalPlan.of(spec))


@dataclass(frozen=True)
class VerticalBlockEntry(_VerticalEntry):
    """Owner A's own block over the joined rows (phase 3)."""

    KIND: ClassVar[str] = "vertical_block"

    def decode_block(self, spec: QuerySpec) -> EncryptedVector:
        from statledger.protocol.vertical import decode_a_block

        return decode_a_block(bytes.fromhex(self.data), spec)


VERTICAL_KINDS = ("vertical_rows", "vertical_products", "vertical_block")


DKG_KINDS = ("dkg_deal", "dkg_ack", "dkg_key", "dkg_disclosure", "dkg_transport")


KINDS: dict[str, type[Entry]] = {
    cls.KIND: cls
    for cls in (GenesisEntry, MembershipEntry, PartyEntry, SetupEntry, QueryEntry,
                SubmissionEntry, NoiseCommitEntry, NoiseCoinEntry, AggregateEntry,
                DecryptionEntry, ResultEntry, EndorsementEntry, GateEntry, ReleaseEntry,
                PetEntry)
}
KINDS.update({cls.KIND: cls for cls in (DkgDealEntry, DkgAckEntry, DkgKeyEntry,
                                          DkgDisclosureEntry, DkgTransportEntry, RekeyEntry)})
KINDS.update({cls.KIND: cls for cls in (VerticalRowsEntry, VerticalProductsEntry,
                                          VerticalBlockEntry)})


# ---------------------------------------------------------------------------------------
# signatures and digests
# ---------------------------------------------------------------------------------------


def sign(entry: E, signing_key: SigningKey) -> E:
    """Return ``entry`` with ``sig`` = Ed25519(signing_key, SIG_DOMAIN + unsigned bytes)."""
    if not isinstance(entry, Entry):
        raise MalformedError("sign: not an entry")
    sig = signing_key.sign(entry.signing_message()).hex()
    # the fields were validated when ``entry`` was built; only ``sig`` changes
    signed = copy.copy(entry)
    object.__setattr__(signed, "sig", sig)
    return signed


def verify_signature(entry: Entry, verify_key: VerifyKey, party: str | None = None,
                     *, step: str | None = None) -> None:
    """Raise :class:`VerificationError` (blaming ``party``) unless ``sig`` verifies."""
    if entry.sig is None:
        raise VerificationError(f"{entry.KIND} entry is not signed", step=step, party=party)
    try:
        verify_key.verify(entry.signing_message(), bytes.fromhex(entry.sig), party=party)
    except VerificationError as exc:
        raise VerificationError(f"{entry.KIND} entry: {exc.reason}", step=step,
                                party=party) from None


sign_entry = sign
verify_entry_signature = verify_signature


def result_digest(result: ResultEntry | bytes) -> str:
    """sha256 (hex) of the signed result entry's bytes: what an endorsement signs."""
    if isinstance(result, ResultEntry):
        return sha256_hex(result.to_bytes())
    if isinstance(result, bytes | bytearray | memoryview):
        entry = Entry.from_bytes(bytes(result))
        if not isinstance(entry, ResultEntry):
            raise MalformedError(f"result_digest: expected a result entry, got {entry.KIND}")
        return sha256_hex(bytes(result))
    raise MalformedError("result_digest: expected a ResultEntry or its bytes")
