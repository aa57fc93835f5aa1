"""The consortium: a pinned genesis, quorum-signed membership changes, and the roster derived
from them.  Pure functions and frozen records, no I/O (docs/consortium.md).

Adversary: the ledger operator (or anyone on the path) serves whatever roster suits it -- a
self-made collective key, fake providers that pass "at least 2 providers", a second setup
naming nodes it controls.  Defence: every party and every verifier pins the **consortium
id** = SHA-256 of the canonical genesis document, and derives the current roster itself by
replaying the chain of membership changes from that genesis.  A roster member is only a key
that the founding members, or later an admission quorum of current members, signed for.

* :class:`Genesis` -- the founding document: the consortium's name, the log origin, every
  founding member (party id, role, Ed25519 key), the witness quorum (>= 1) and the
  admission rule (``quorum`` signatures by current members whose role is in ``roles``).
  :class:`SignedGenesis` carries one signature per founding member over
  ``GENESIS_DOMAIN || canonical(genesis)``; all must be present and valid.
* :class:`MembershipChange` -- admit members, revoke members, rotate keys, change the witness
  quorum or the admission rule (under the *old* rule).  It names the consortium, a sequence
  number and the digest of the previous link (the genesis id for the first change), is
  signed by an admission quorum of the current members over ``CHANGE_DOMAIN ||
  canonical(body)``, and carries a proof of possession (a signature over the same bytes) by
  every newly admitted key and every rotated-in key.
* :class:`Roster` -- the state after the genesis and a chain of changes.  ``apply`` raises
  :class:`VerificationError` (step ``"consortium"``, blaming the signer or member at fault)
  for a broken chain, an unknown, revoked or ineligible signer, a missing quorum or a
  missing proof of possession.  A revoked member's id can never be admitted again (its old
  signatures stay attributable).

What this module does not decide: the collective ElGamal key.  It comes from a key ceremony
logged after the genesis; ``Roster.compute_epoch`` counts the changes that touch the compute
nodes, each of which requires a new ceremony.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.signatures import SigningKey, VerifyKey
from statledger.protocol.canonical import canonical_bytes, parse_json, sha256_hex
from statledger.protocol.entries import ROLES, check_party_id

__all__ = [
    "GENESIS_DOMAIN",
    "CHANGE_DOMAIN",
    "TRUST_FORMAT",
    "Member",
    "AdmissionRule",
    "Genesis",
    "SignedGenesis",
    "MembershipChange",
    "Roster",
    "derive_roster",
    "RosterTimeline",
    "trust_document",
    "parse_trust_document",
]

GENESIS_DOMAIN = b"statledger/consortium/genesis/v1\n"
CHANGE_DOMAIN = b"statledger/consortium/change/v1\n"
TRUST_FORMAT = "statledger-trust/v2"
#: v2: the genesis pins the decryption threshold (``decryption_threshold``); a v1 genesis
#: (n-of-n keys, before the key ceremony on the log) is refused by name
VERSION = 2
#: A genesis or one change lists at most this many members (hundreds of small owners fit).
MAX_MEMBERS = 100_000
_STEP = "consortium"
#: Digests of signed geneses whose every founding signature verified.  A party re-derives the
#: roster for each query it reads (and step 6 again): with hundreds of founding owners that
#: is hundreds of Ed25519 checks each time, of the same bytes.
_VERIFIED_GENESES: set[str] = set()


def _obj(value: Any, keys: set[str], where: str,
         optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedError(f"{where}: expected a JSON object")
    have = set(value)
    missing = keys - have
    extra = have - keys - optional
    if missing:
        raise MalformedError(f"{where}: missing {sorted(missing)}")
    if extra:
        raise MalformedError(f"{where}: unknown fields {sorted(extra)}")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise MalformedError(f"{where}: expected an integer in [{lo}, {hi}]")
    return value


def _str(value: Any, where: str, max_len: int = 256) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= max_len:
        raise MalformedError(f"{where}: expected a non-empty string of at most {max_len} chars")
    return value


def _key(value: Any, where: str) -> VerifyKey:
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise MalformedError(f"{where}: expected 64 lowercase hex digits (an Ed25519 key)")
    try:
        return VerifyKey.from_bytes(bytes.fromhex(value))
    except ValueError:
        raise MalformedError(f"{where}: not hex") from None


def _list(value: Any, where: str, max_len: int = MAX_MEMBERS) -> list[Any]:
    if not isinstance(value, list) or len(value) > max_len:
        raise MalformedError(f"{where}: expected a list of at most {max_len} items")
    return value


def _sig_map(value: Any, where: str) -> dict[str, bytes]:
    if not isinstance(value, dict) or len(value) > MAX_MEMBERS:
        raise MalformedError(f"{where}: expected an object of party id -> signature")
    out: dict[str, bytes] = {}
    for pid, sig in value.items():
        check_party_id(pid, f"{where}.{pid}")
        if not isinstance(sig, str) or len(sig) != 128 or sig != sig.lower():
            raise MalformedError(f"{where}.{pid}: expected 128 lowercase hex digits")
        try:
            out[pid] = bytes.fromhex(sig)
        except ValueError:
            raise MalformedError(f"{where}.{pid}: not hex") from None
    return out


@dataclass(frozen=True)
class Member:
    """One party of the consortium: id, role and Ed25519 identity key (hex)."""

    party_id: str
    role: str
    sig_key: str

    def __post_init__(self) -> None:
        check_party_id(self.party_id, "member.party_id")
        if self.role not in ROLES:
            raise MalformedError(f"member {self.party_id}: role {self.role!r} is not one of "
                                 f"{list(ROLES)}")
        _key(self.sig_key, f"member {self.party_id}.sig_key")

    def verify_key(self) -> VerifyKey:
        return VerifyKey.from_bytes(bytes.fromhex(self.sig_key))

    def to_json_obj(self) -> dict[str, Any]:
        return {"party_id": self.party_id, "role": self.role, "sig_key": self.sig_key}

    @classmethod
    def from_json_obj(cls, obj: Any, where: str = "member") -> Member:
        o = _obj(obj, {"party_id", "role", "sig_key"}, where)
        if not isinstance(o["role"], str):
            raise MalformedError(f"{where}.role: expected a string")
        return cls(check_party_id(o["party_id"], f"{where}.party_id"), o["role"], o["sig_key"])


@dataclass(frozen=True)
class AdmissionRule:
    """A change needs ``quorum`` signatures by current members whose role is in ``roles``."""

    quorum: int
    roles: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(self.roles))  # hashed into consortium_id
        _int(self.quorum, "admission.quorum", 1, MAX_MEMBERS)
        if not self.roles or len(set(self.roles)) != len(self.roles) or any(
                r not in ROLES for r in self.roles) or list(self.roles) != sorted(self.roles):
            raise MalformedError(f"admission.roles: a sorted, non-empty set of {list(ROLES)}")

    def to_json_obj(self) -> dict[str, Any]:
        return {"quorum": self.quorum, "roles": list(self.roles)}

    @classmethod
    def from_json_obj(cls, obj: Any) -> AdmissionRule:
        o = _obj(obj, {"quorum", "roles"}, "admission")
        roles = _list(o["roles"], "admission.roles", len(ROLES))
        if not all(isinstance(r, str) for r in roles):
            raise MalformedError("admission.roles: expected role names")
        return cls(_int(o["quorum"], "admission.quorum", 1, MAX_MEMBERS), tuple(roles))


def _check_members(members: Sequence[Member], where: str) -> None:
    ids = [m.party_id for m in members]
    if len(set(ids)) != len(ids):
        raise MalformedError(f"{where}: a party id is listed twice")
    keys = [m.sig_key for m in members]
    if len(set(keys)) != len(keys):
        raise MalformedError(f"{where}: two members share one key")


@dataclass(frozen=True)
class Genesis:
    """The founding document; its canonical SHA-256 is the consortium id."""

    name: str
    origin: str
    members: tuple[Member, ...]
    witness_quorum: int
    admission: AdmissionRule
    #: ``T``: any ``T`` compute nodes decrypt, fewer learn nothing (default: all of them)
    decryption_threshold: int | None = None

    def __post_init__(self) -> None:
        # frozen for good: consortium_id is computed once from these fields
        object.__setattr__(self, "members", tuple(self.members))
        _str(self.name, "genesis.name")
        _str(self.origin, "genesis.origin")
        if not 1 <= len(self.members) <= MAX_MEMBERS:
            raise MalformedError("genesis.members: between 1 and 100000 members")
        _check_members(self.members, "genesis.members")
        ledgers = [m for m in self.members if m.role == "ledger"]
        if len(ledgers) != 1:
            raise MalformedError("genesis.members: exactly one member with role ledger (the log)")
        n_compute = sum(m.role == "compute" for m in self.members)
        if n_compute < 1:
            raise MalformedError("genesis.members: at least one compute node")
        _int(self.witness_quorum, "genesis.witness_quorum", 1, n_compute)
        if self.decryption_threshold is None:
            object.__setattr__(self, "decryption_threshold", n_compute)
        _int(self.decryption_threshold, "genesis.decryption_threshold", 1, n_compute)
        eligible = sum(m.role in self.admission.roles for m in self.members)
        if self.admission.quorum > eligible:
            raise MalformedError(f"genesis.admission: quorum {self.admission.quorum} but only "
                                 f"{eligible} founding members may sign changes")

    @property
    def ledger(self) -> Member:
        """The log: the one founding member with role ``ledger``."""
        return next(m for m in self.members if m.role == "ledger")

    def to_json_obj(self) -> dict[str, Any]:
        return {"v": VERSION, "kind": "genesis", "name": self.name, "origin": self.origin,
                "members": [m.to_json_obj() for m in self.members],
                "witness_quorum": self.witness_quorum,
                "decryption_threshold": self.decryption_threshold,
                "admission": self.admission.to_json_obj()}

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json_obj())

    @cached_property
    def consortium_id(self) -> str:
        """The canonical SHA-256 of the (frozen) document, computed once per object."""
        return sha256_hex(self.to_bytes())

    def signing_bytes(self) -> bytes:
        return GENESIS_DOMAIN + self.to_bytes()

    @classmethod
    def from_json_obj(cls, obj: Any) -> Genesis:
        if isinstance(obj, dict) and obj.get("v") == 1 and obj.get("kind") == "genesis":
            raise MalformedError("genesis: v1 (n-of-n keys) is no longer supported: found the "
                                 "consortium again with this version (statledger consortium "
                                 "init), which pins a decryption threshold")
        o = _obj(obj, {"v", "kind", "name", "origin", "members", "witness_quorum",
                       "decryption_threshold", "admission"}, "genesis")
        if type(o["v"]) is not int or o["v"] != VERSION or o["kind"] != "genesis":
            raise MalformedError(f"genesis: expected v {VERSION}, kind genesis")
        members = tuple(Member.from_json_obj(m, f"genesis.members[{i}]")
                        for i, m in enumerate(_list(o["members"], "genesis.members")))
        return cls(_str(o["name"], "genesis.name"), _str(o["origin"], "genesis.origin"), members,
                   _int(o["witness_quorum"], "genesis.witness_quorum", 1, MAX_MEMBERS),
                   AdmissionRule.from_json_obj(o["admission"]),
                   _int(o["decryption_threshold"], "genesis.decryption_threshold", 1,
                        MAX_MEMBERS))


@dataclass(frozen=True)
class SignedGenesis:
    """The genesis with every founding member's signature (hex) over its signing bytes."""

    genesis: Genesis
    signatures: Mapping[str, bytes] = field(default_factory=dict)

    def sign(self, party_id: str, key: SigningKey) -> SignedGenesis:
        member = self._member(party_id)
        if key.public_key() != member.verify_key():
            raise MalformedError(f"{party_id}: this key is not the member's key in the genesis")
        return replace(self, signatures={**self.signatures,
                                         party_id: key.sign(self.genesis.signing_bytes())})

    def _member(self, party_id: str) -> Member:
        for m in self.genesis.members:
            if m.party_id == party_id:
                return m
        raise MalformedError(f"{party_id} is not a founding member")

    def missing(self) -> list[str]:
        return [m.party_id for m in self.genesis.members if m.party_id not in self.signatures]

    def verify(self, expected_id: str | None = None) -> None:
        """Every founding member signed; and the id is the pinned one, if given."""
        if expected_id is not None and self.genesis.consortium_id != expected_id:
            raise VerificationError(
                f"genesis of consortium {self.genesis.consortium_id[:16]}..., not the pinned "
                f"{expected_id[:16]}...", step=_STEP)
        key = sha256_hex(self.to_bytes())
        if key in _VERIFIED_GENESES:  # the same signed bytes verified before: a pure check
            return
        extra = sorted(set(self.signatures) - {m.party_id for m in self.genesis.members})
        if extra:
            raise VerificationError(f"genesis signed by {extra[0]}, not a founding member",
                                    step=_STEP, party=extra[0])
        msg = self.genesis.signing_bytes()
        for m in self.genesis.members:
            sig = self.signatures.get(m.party_id)
            if sig is None:
                raise VerificationError(f"founding member {m.party_id} has not signed the genesis",
                                        step=_STEP, party=m.party_id)
            try:
                m.verify_key().verify(msg, sig, party=m.party_id)
            except (VerificationError, MalformedError):
                raise VerificationError(f"genesis signature of {m.party_id} does not verify",
                                        step=_STEP, party=m.party_id) from None
        if len(_VERIFIED_GENESES) >= 64:
            _VERIFIED_GENESES.clear()
        _VERIFIED_GENESES.add(key)

    def to_json_obj(self) -> dict[str, Any]:
        return {"genesis": self.genesis.to_json_obj(),
                "signatures": {p: s.hex() for p, s in sorted(self.signatures.items())}}

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json_obj())

    @classmethod
    def from_json_obj(cls, obj: Any) -> SignedGenesis:
        o = _obj(obj, {"genesis", "signatures"}, "signed genesis")
        return cls(Genesis.from_json_obj(o["genesis"]), _sig_map(o["signatures"], "signatures"))

    @classmethod
    def from_bytes(cls, data: bytes | str) -> SignedGenesis:
        return cls.from_json_obj(parse_json(data))


@dataclass(frozen=True)
class MembershipChange:
    """One link of the membership chain (see the module docstring)."""

    consortium: str
    seq: int
    prev: str
    admit: tuple[Member, ...] = ()
    revoke: tuple[str, ...] = ()
    rotate: tuple[tuple[str, str], ...] = ()  # (party id, new key hex)
    witness_quorum: int | None = None
    admission: AdmissionRule | None = None
    signatures: Mapping[str, bytes] = field(default_factory=dict)
    possession: Mapping[str, bytes] = field(default_factory=dict)
    #: re-share the collective key among the same compute nodes (new shares, same key)
    refresh: bool = False

    def __post_init__(self) -> None:
        for name, v in (("consortium", self.consortium), ("prev", self.prev)):
            if not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef"
                                                              for c in v):
                raise MalformedError(f"membership.{name}: expected a sha256 (64 lowercase hex)")
        _int(self.seq, "membership.seq", 1, 2**53 - 1)
        _check_members(self.admit, "membership.admit")
        for pid in self.revoke:
            check_party_id(pid, "membership.revoke")
        for pid, key in self.rotate:
            check_party_id(pid, "membership.rotate")
            _key(key, f"membership.rotate.{pid}")
        touched = ([m.party_id for m in self.admit] + list(self.revoke)
                   + [p for p, _ in self.rotate])
        if len(set(touched)) != len(touched):
            raise MalformedError("membership: a party is admitted, revoked or rotated twice")
        if not isinstance(self.refresh, bool):
            raise MalformedError("membership.refresh: expected true or false")
        if (not touched and self.witness_quorum is None and self.admission is None
                and not self.refresh):
            raise MalformedError("membership: the change changes nothing")
        if self.witness_quorum is not None:
            _int(self.witness_quorum, "membership.witness_quorum", 1, MAX_MEMBERS)

    def body_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": VERSION, "kind": "membership", "consortium": self.consortium, "seq": self.seq,
            "prev": self.prev, "admit": [m.to_json_obj() for m in self.admit],
            "revoke": list(self.revoke),
            "rotate": [{"party_id": p, "sig_key": k} for p, k in self.rotate]}
        if self.witness_quorum is not None:
            out["witness_quorum"] = self.witness_quorum
        if self.admission is not None:
            out["admission"] = self.admission.to_json_obj()
        if self.refresh:
            out["refresh"] = True
        return out

    def signing_bytes(self) -> bytes:
        return CHANGE_DOMAIN + canonical_bytes(self.body_json())

    @property
    def digest(self) -> str:
        """The link's id: SHA-256 of the canonical body (signatures excluded)."""
        return sha256_hex(canonical_bytes(self.body_json()))

    def sign(self, party_id: str, key: SigningKey) -> MembershipChange:
        return replace(self, signatures={**self.signatures,
                                         party_id: key.sign(self.signing_bytes())})

    def prove_possession(self, party_id: str, key: SigningKey) -> MembershipChange:
        return replace(self, possession={**self.possession,
                                         party_id: key.sign(self.signing_bytes())})

    def to_json_obj(self) -> dict[str, Any]:
        return {**self.body_json(),
                "signatures": {p: s.hex() for p, s in sorted(self.signatures.items())},
                "possession": {p: s.hex() for p, s in sorted(self.possession.items())}}

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.to_json_obj())

    @classmethod
    def from_json_obj(cls, obj: Any) -> MembershipChange:
        keys = {"v", "kind", "consortium", "seq", "prev", "admit", "revoke", "rotate",
                "signatures", "possession"}
        o = _obj(obj, keys, "membership", frozenset({"witness_quorum", "admission", "refresh"}))
        if "refresh" in o and o["refresh"] is not True:
            raise MalformedError("membership.refresh: only true may be written (omit it "
                                 "otherwise)")
        if type(o["v"]) is not int or o["v"] != VERSION or o["kind"] != "membership":
            raise MalformedError(f"membership: expected v {VERSION}, kind membership")
        admit = tuple(Member.from_json_obj(m, f"membership.admit[{i}]")
                      for i, m in enumerate(_list(o["admit"], "membership.admit")))
        revoke = tuple(_list(o["revoke"], "membership.revoke"))
        rotate = []
        for i, r in enumerate(_list(o["rotate"], "membership.rotate")):
            ro = _obj(r, {"party_id", "sig_key"}, f"membership.rotate[{i}]")
            rotate.append((ro["party_id"], ro["sig_key"]))
        wq = o.get("witness_quorum")
        adm = o.get("admission")
        return cls(o["consortium"], o["seq"], o["prev"], admit, revoke, tuple(rotate),
                   wq, None if adm is None else AdmissionRule.from_json_obj(adm),
                   _sig_map(o["signatures"], "membership.signatures"),
                   _sig_map(o["possession"], "membership.possession"),
                   refresh="refresh" in o)

    @classmethod
    def from_bytes(cls, data: bytes | str) -> MembershipChange:
        return cls.from_json_obj(parse_json(data))


@dataclass(frozen=True)
class Roster:
    """The consortium's state after its genesis and ``seq`` changes."""

    consortium_id: str
    origin: str
    members: Mapping[str, Member]
    revoked: frozenset[str]
    witness_quorum: int
    admission: AdmissionRule
    seq: int
    head: str
    compute_epoch: int = 0
    decryption_threshold: int = 1

    @classmethod
    def from_genesis(cls, signed: SignedGenesis, pinned_id: str | None = None) -> Roster:
        signed.verify(pinned_id)
        g = signed.genesis
        return cls(g.consortium_id, g.origin, {m.party_id: m for m in g.members}, frozenset(),
                   g.witness_quorum, g.admission, 0, g.consortium_id, 0,
                   g.decryption_threshold or 1)

    # -- queries ---------------------------------------------------------------------------
    def member(self, party_id: str, role: str | None = None, *, step: str = _STEP) -> Member:
        """The current member ``party_id`` (of ``role``), or VerificationError naming it."""
        if party_id in self.revoked:
            raise VerificationError(f"{party_id} was revoked from the consortium", step=step,
                                    party=party_id)
        m = self.members.get(party_id)
        if m is None:
            raise VerificationError(f"{party_id} is not a member of consortium "
                                    f"{self.consortium_id[:16]}...", step=step, party=party_id)
        if role is not None and m.role != role:
            raise VerificationError(f"{party_id} is a {m.role}, not a {role}", step=step,
                                    party=party_id)
        return m

    def of_role(self, role: str) -> list[Member]:
        return sorted((m for m in self.members.values() if m.role == role),
                      key=lambda m: m.party_id)

    @property
    def ledger(self) -> Member:
        return self.of_role("ledger")[0]

    def log_key(self) -> tuple[str, bytes]:
        """The log's checkpoint key as (name, Ed25519 public key): the ledger member's
        identity key, named by the log origin (the ledger signs checkpoints with it)."""
        return self.origin, self.ledger.verify_key().to_bytes()

    def witness_keys(self) -> list[tuple[str, bytes]]:
        """The witnesses as (name, Ed25519 public key): every compute member under its
        identity key (a compute node cosigns checkpoints with it); their quorum is
        ``witness_quorum``."""
        return [(m.party_id, m.verify_key().to_bytes()) for m in self.of_role("compute")]

    # -- the chain -------------------------------------------------------------------------
    def apply(self, change: MembershipChange) -> Roster:
        """The roster after ``change``; raises VerificationError if the change is not valid
        against this roster (chain, quorum, possession, consistency)."""
        if change.consortium != self.consortium_id:
            raise VerificationError("membership change of another consortium", step=_STEP)
        if change.seq != self.seq + 1 or change.prev != self.head:
            raise VerificationError(f"membership change {change.seq} does not extend the chain "
                                    f"at {self.seq} (a change was dropped, replayed or forked)",
                                    step=_STEP)
        msg = change.signing_bytes()
        valid: list[str] = []
        for pid, sig in sorted(change.signatures.items()):
            m = self.member(pid)  # unknown or revoked signers are refused, named
            if m.role not in self.admission.roles:
                raise VerificationError(f"{pid} ({m.role}) may not sign membership changes",
                                        step=_STEP, party=pid)
            try:
                m.verify_key().verify(msg, sig, party=pid)
            except VerificationError:
                raise VerificationError(f"membership signature of {pid} does not verify",
                                        step=_STEP, party=pid) from None
            valid.append(pid)
        if len(valid) < self.admission.quorum:
            raise VerificationError(f"membership change {change.seq} has {len(valid)} of the "
                                    f"{self.admission.quorum} signatures it needs", step=_STEP)
        members = dict(self.members)
        revoked = set(self.revoked)
        new_keys: dict[str, str] = {}
        compute_touched = change.refresh
        for m in change.admit:
            if m.party_id in members or m.party_id in revoked:
                raise VerificationError(f"{m.party_id} is already (or was) a member",
                                        step=_STEP, party=m.party_id)
            members[m.party_id] = m
            new_keys[m.party_id] = m.sig_key
            compute_touched |= m.role == "compute"
        for pid in change.revoke:
            m = self.member(pid)
            if m.role == "ledger":
                raise VerificationError("the log itself cannot be revoked; found a new "
                                        "consortium", step=_STEP, party=pid)
            del members[pid]
            revoked.add(pid)
            compute_touched |= m.role == "compute"
        for pid, key in change.rotate:
            m = self.member(pid)
            if m.role == "ledger":
                raise VerificationError("the log's key cannot be rotated (it names the log); "
                                        "found a new consortium", step=_STEP, party=pid)
            members[pid] = Member(pid, m.role, key)
            new_keys[pid] = key
            compute_touched |= m.role == "compute"
        for pid, key in new_keys.items():
            pop = change.possession.get(pid)
            if pop is None:
                raise VerificationError(f"no proof of possession for {pid}'s new key",
                                        step=_STEP, party=pid)
            try:
                Member(pid, members[pid].role, key).verify_key().verify(msg, pop, party=pid)
            except VerificationError:
                raise VerificationError(f"proof of possession of {pid} does not verify",
                                        step=_STEP, party=pid) from None
        extra = sorted(set(change.possession) - set(new_keys))
        if extra:
            raise VerificationError(f"proof of possession by {extra[0]}, whose key is not new",
                                    step=_STEP, party=extra[0])
        all_keys = [m.sig_key for m in members.values()]
        if len(set(all_keys)) != len(all_keys):
            raise VerificationError("two members would share one key", step=_STEP)
        admission = change.admission or self.admission
        n_compute = sum(m.role == "compute" for m in members.values())
        witness_quorum = change.witness_quorum or self.witness_quorum
        if n_compute < 1 or witness_quorum > n_compute:
            raise VerificationError(f"the change leaves {n_compute} compute node(s) for a witness "
                                    f"quorum of {witness_quorum}", step=_STEP)
        if self.decryption_threshold > n_compute:
            raise VerificationError(f"the change leaves {n_compute} compute node(s) for a "
                                    f"decryption threshold of {self.decryption_threshold}",
                                    step=_STEP)
        eligible = sum(m.role in admission.roles for m in members.values())
        if admission.quorum > eligible:
            raise VerificationError(f"the change leaves {eligible} members able to sign changes "
                                    f"for an admission quorum of {admission.quorum}", step=_STEP)
        return Roster(self.consortium_id, self.origin, members, frozenset(revoked),
                      witness_quorum, admission, change.seq, change.digest,
                      self.compute_epoch + int(compute_touched), self.decryption_threshold)


def derive_roster(signed: SignedGenesis, changes: Iterable[MembershipChange],
                  pinned_id: str | None = None) -> Roster:
    """Replay the chain from the (pinned) genesis; the roster every party acts on."""
    roster = Roster.from_genesis(signed, pinned_id)
    for change in changes:
        roster = roster.apply(change)
    return roster


@dataclass(frozen=True)
class RosterTimeline:
    """The roster at every point of a log: the genesis (entry 0) and the membership changes
    at their log indices.  :meth:`at` is the roster in force for an entry at ``index`` (every
    change logged *before* it applies), so a key revoked at index 40 signs nothing valid at
    index 41, and a member admitted at 40 signs nothing valid at 39."""

    rosters: tuple[tuple[int, Roster], ...]

    @classmethod
    def derive(cls, signed: SignedGenesis, changes: Iterable[tuple[int, MembershipChange]],
               pinned_id: str | None = None) -> RosterTimeline:
        roster = Roster.from_genesis(signed, pinned_id)
        out: list[tuple[int, Roster]] = [(0, roster)]
        for index, change in changes:
            if index <= out[-1][0]:
                raise VerificationError(f"membership change at log index {index} is not after "
                                        f"the previous one ({out[-1][0]})", step=_STEP)
            roster = roster.apply(change)
            out.append((index, roster))
        return cls(tuple(out))

    def at(self, index: int) -> Roster:
        """The roster an entry at log ``index`` is judged by (the genesis' for index 0)."""
        current = self.rosters[0][1]
        for at, roster in self.rosters[1:]:
            if at >= index:
                break
            current = roster
        return current

    @property
    def final(self) -> Roster:
        return self.rosters[-1][1]

    @property
    def consortium_id(self) -> str:
        return self.rosters[0][1].consortium_id


def trust_document(signed: SignedGenesis) -> dict[str, Any]:
    """The file a reviewer pins with ``statledger verify --trust``: the consortium id and its
    signed genesis (everything else is derived from the log)."""
    signed.verify()
    return {"format": TRUST_FORMAT, "consortium": signed.genesis.consortium_id,
            "genesis": signed.to_json_obj()}


def parse_trust_document(data: bytes | str) -> SignedGenesis:
    """Parse and check a trust file: the genesis hashes to the stated id, every founding
    member signed it."""
    o = _obj(parse_json(data), {"format", "consortium", "genesis"}, "trust file")
    if o["format"] != TRUST_FORMAT:
        raise MalformedError(f"trust file: format {o['format']!r}, expected {TRUST_FORMAT!r}")
    signed = SignedGenesis.from_json_obj(o["genesis"])
    signed.verify(_str(o["consortium"], "trust file.consortium", 64))
    return signed
