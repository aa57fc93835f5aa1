"""Publicly verifiable t-of-n distributed key generation, GJKR style (docs/dkg.md).

Reference: R. Gennaro, S. Jarecki, H. Krawczyk, T. Rabin, "Secure distributed key generation
for discrete-log based cryptosystems", J. Cryptology 20(1), 2007 (EUROCRYPT 1999), protocol
"New-DKG" (figure 2): phase 1 is Pedersen's verifiable secret sharing (hiding commitments, so
nobody's contribution depends on another's), phase 2 extracts ``y = g^x`` and reconstructs,
instead of dropping, a qualified dealer that stops.  Here every message is an entry on the
public log, so complaints are *publicly* decided (no honest-majority vote), and phase 2 needs
no complaints at all (a proof of representation replaces GJKR's share-vs-``A`` checks).

Notation (symbols as in the code; ``G`` the base point, ``H = pedersen_h()`` a second
generator with unknown ``log_G H``; ``n`` the group order; ``T`` the threshold; node
``params.nodes[j-1]`` has evaluation point ``j``; ``X_j = x_j G`` its *transport* key):

* Dealer ``i`` draws ``f_i(z) = sum_k a_k z^k`` and ``f'_i(z) = sum_k b_k z^k`` of degree
  ``T - 1`` (from ``secrets``, or from a caller's seed: :func:`deal`), publishes
  ``C_k = a_k G + b_k H`` (:class:`Deal`) and, for every node ``j`` (itself included),
  ``(s_ij, s'_ij) = (f_i(j), f'_i(j))`` encrypted to ``X_j``:
  ``R = rG``, ``ct = (s || s') XOR SHAKE-256(DOMAIN, "share", ctx, i, j, R, rX_j)``, with a
  Schnorr proof of knowledge of ``r`` (:class:`ShareProof`).  GJKR has no such proof (its
  shares travel on private channels); here it stops a dealer from reusing an honest dealer's
  ``R`` (or ``c*R + dG``), which would turn a complaint ``x_j R`` into a Diffie--Hellman
  oracle on ``x_j`` (docs/dkg.md, "Why the share randomness is proven").
* A share is good iff ``s G + s' H == sum_k j^k C_k`` (:func:`open_share`).
* Complaint / disclosure (:class:`Disclosure`): node ``j`` publishes ``K = x_j R_ij`` with a
  Chaum--Pedersen proof ``log_G X_j == log_{R_ij} K``; anyone decrypts the share.
* Phase 2 (:class:`KeyCommit`): a qualified dealer publishes ``A_k = a_k G`` and a proof of
  knowledge of ``(a_k, b_k)`` with ``A_k = a_k G`` and ``C_k - A_k = b_k H`` for every k
  (one Fiat--Shamir transcript).  By the binding of Pedersen commitments this fixes
  ``A_k`` to the G-part of ``C_k``, so the ``A_k`` agree with every good share.
* Output: ``Y = sum_{i in QUAL} A_i0``, ``Y_j = sum_{i in QUAL} sum_k j^k A_ik``, node ``j``'s
  key share ``x_j = sum_{i in QUAL} s_ij`` with ``x_j G = Y_j``; any ``T`` of them give
  ``x = sum_j lambda_j x_j`` with ``x G = Y`` (:func:`lagrange_at_zero`, :func:`combine`).

Transcript rules that :func:`derive` enforces (every failure is a
:class:`~statledger.proofs.errors.VerificationError` with ``step="dkg"`` and the culprit as
``party``; the reason starts with the rule number):

1. Deals: at most one per node of ``params.nodes``; a second deal by the same dealer, or a
   deal by a non-node, raises (``party`` = that dealer); so does a deal with the wrong number
   of commitments or shares.  A node with no deal is simply not in QUAL.  A deal whose
   share-randomness proof fails for any recipient is publicly at fault: the dealer is
   disqualified without any complaint (and honest nodes never disclose against it).
2. Complaints (phase 1): a :class:`Disclosure` by recipient ``j`` against dealer ``i``.
   Justified (the disclosed share fails the Pedersen check or is not two canonical scalars)
   -> dealer ``i`` disqualified.  Unjustified (the share is good), a bad DLEQ proof, a
   complaint by a non-node or against a party without a deal -> ignored and recorded in
   ``ignored``: a false complaint can neither block nor steer the DKG.
3. ``QUAL`` = dealers with a deal and no fault under rules 1-2.  ``|QUAL| >= T`` is required
   (so at least one honest dealer when at most ``T - 1`` are dishonest), else
   ``VerificationError`` step ``dkg``, reason "fewer than T qualified dealers".
   (:func:`qualified_dealers` returns this QUAL: what a node needs to know before phase 2.)
4. Phase 2: each QUAL dealer's :class:`KeyCommit` must verify against its deal.  A QUAL dealer
   whose KeyCommit is missing or invalid is *not* removed (that would let a rushing dealer
   bias ``Y`` after seeing the others' ``A_i0``): its two polynomials are interpolated from
   ``>= T`` valid disclosed shares (the phase-2 ``disclosures`` and the good shares revealed
   by unjustified phase-1 complaints; the ``T`` lowest evaluation points are used) and
   ``A_ik = a_k G``; with fewer than ``T``, :class:`DkgIncomplete` names that dealer.
   KeyCommits of non-QUAL dealers, unneeded disclosures and disclosures with a bad proof are
   ignored (recorded).
5. The caller (integration code) decides which log entries belong to which phase and checks
   that each entry's signed author is the ``dealer`` / ``recipient`` it names; :func:`derive`
   is a pure function of what it is given.  Its output does not depend on the order of the
   sequences it is given.

Resharing (``params.prior``, docs/dkg.md "Key lifecycle"): the dealers are the previous
nodes still members; dealer ``i`` deals ``f_i(0) = x̄_i`` (its previous share) and
``f'_i(0) = 0``, so ``C_0 = Y_i``.  Rule 3 needs ``prior.threshold`` qualified dealers.  Rule
4 counts a dealer whose key commitment verifies *and* has ``A_0 = Y_i``; the others are
dropped, not reconstructed (every constant is pinned: nothing to bias, and a reconstruction
would publish a previous share).  With ``lambda_i`` the Lagrange weights at 0 of the counted
dealers' previous points: ``Y = sum lambda_i A_i0`` (the previous key), ``Y'_j = sum_i
lambda_i sum_k j^k A_ik``, ``x'_j = sum_i lambda_i s_ij``.  New nodes encrypt to fresh
transport keys (:class:`TransportKey`, tag ``04``).

Encodings (big-endian; ``id`` = u8 length || ASCII party id; points 33 bytes, scalars 32):
``Deal`` = ``01 || id || u16 T || C_0..C_{T-1} || u16 N || N * (R || ct(64) || c || s)``;
``Disclosure`` = ``02 || id(dealer) || id(recipient) || K || c || s``;
``KeyCommit`` = ``03 || id || u16 T || A_0..A_{T-1} || c || z_0..z_{T-1} || z'_0..z'_{T-1}``.
Decoding is strict (:class:`~statledger.proofs.errors.MalformedError` for a wrong tag, length,
count, a point off the curve, a scalar >= n, trailing bytes).

Pure: no I/O, no clock.  Randomness: ``secrets`` (``Scalar.random`` for proof nonces and a
32-byte seed per deal, expanded with SHAKE-256), or the seed a caller passes to :func:`deal`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import (
    ORDER,
    G,
    Point,
    Scalar,
    base_mul,
    generator,
    msm,
    sum_points,
)
from statledger.proofs.sigma import (
    DLEQProof,
    SchnorrProof,
    prove_dleq,
    prove_schnorr,
    verify_dleq,
    verify_schnorr,
)
from statledger.proofs.transcript import Transcript
from statledger.protocol.entries import check_party_id

__all__ = [
    "DOMAIN",
    "KEY_COMMIT_DOMAIN",
    "SHARE_PROOF_DOMAIN",
    "STEP",
    "pedersen_h",
    "DkgParams",
    "Prior",
    "ShareProof",
    "EncryptedShare",
    "Deal",
    "DealSecret",
    "Disclosure",
    "KeyCommitProof",
    "KeyCommit",
    "TransportKey",
    "transport_key",
    "verify_transport_key",
    "DkgResult",
    "DkgIncomplete",
    "deal",
    "verify_deal",
    "open_share",
    "disclose",
    "disclosed_share",
    "key_commit",
    "verify_key_commit",
    "qualified_dealers",
    "derive",
    "node_secret",
    "lagrange_at_zero",
    "combine",
]

DOMAIN = b"statledger/dkg/v1"
KEY_COMMIT_DOMAIN = DOMAIN + b"/key-commit"
SHARE_PROOF_DOMAIN = DOMAIN + b"/share-randomness"
STEP = "dkg"

_H_LABEL = DOMAIN + b"/pedersen-H"
_CONSORTIUM_RE = re.compile(r"^[0-9a-f]{64}$")
_TAG_DEAL = 0x01
_TAG_DISCLOSURE = 0x02
_TAG_KEY_COMMIT = 0x03
_TAG_TRANSPORT = 0x04
_CT_BYTES = 64
_POINT = 33
_SCALAR = 32
_MAX_COUNT = 0xFFFF


def pedersen_h() -> Point:
    """``H = hash_to_curve(b"statledger/dkg/v1/pedersen-H")`` (RFC 9380, through
    :func:`statledger.proofs.group.generator`, which caches it).  Nobody knows ``log_G H``;
    it is distinct from the range proofs' ``group.H`` (domain separation)."""
    return generator(_H_LABEL)


def _fail(reason: str, party: str | None) -> VerificationError:
    return VerificationError(reason, step=STEP, party=party)


class DkgIncomplete(VerificationError):  # noqa: N818 - the name is part of the agreed API
    """Rule 4: a qualified dealer's phase-2 values are missing and fewer than ``T`` of its
    shares were validly disclosed, so the key cannot be derived (``party`` = that dealer)."""


def _lp(*parts: bytes) -> bytes:
    """Each part prefixed by its length (u64, big-endian): no two part lists collide."""
    return b"".join(struct.pack(">Q", len(p)) + p for p in parts)


def _int_in(v: object, lo: int, hi: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise MalformedError(f"{what} must be an int in [{lo}, {hi}]")
    return v


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def _check_nodes(nodes: object, what: str) -> tuple[str, ...]:
    if not isinstance(nodes, tuple) or not nodes:
        raise MalformedError(f"{what} must be a non-empty tuple of party ids")
    if len(nodes) > _MAX_COUNT:
        raise MalformedError(f"at most {_MAX_COUNT} {what}")
    for node in nodes:
        check_party_id(node, f"dkg {what}")
    if any(a >= b for a, b in zip(nodes, nodes[1:], strict=False)):
        raise MalformedError(f"{what} must be sorted and unique")
    return nodes


@dataclass(frozen=True)
class Prior:
    """The sharing a *resharing* re-deals (docs/dkg.md, "Key lifecycle"): the previous epoch's
    nodes (``nodes[k]`` had evaluation point ``k + 1``), its threshold, its verification keys
    ``Y_i`` (aligned with ``nodes``) and the collective key ``Y``; ``dealers`` are the previous
    nodes that re-share (those still members: a revoked node deals nothing)."""

    nodes: tuple[str, ...]
    threshold: int
    verification_keys: tuple[Point, ...]
    collective_key: Point
    dealers: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_nodes(self.nodes, "prior nodes")
        _int_in(self.threshold, 1, len(self.nodes), "prior threshold")
        _check_points(self.verification_keys, "prior verification keys")
        if len(self.verification_keys) != len(self.nodes):
            raise MalformedError("prior: one verification key per prior node")
        if not isinstance(self.collective_key, Point) or self.collective_key.is_identity():
            raise MalformedError("prior: the collective key must be a point, not the identity")
        _check_nodes(self.dealers, "dealers")
        if not set(self.dealers) <= set(self.nodes):
            raise MalformedError("prior: every dealer must be a prior node")
        if len(self.dealers) < self.threshold:
            raise MalformedError(f"prior: {len(self.dealers)} dealers cannot re-share a "
                                 f"{self.threshold}-of-{len(self.nodes)} key")

    def point_of(self, node: str) -> int:
        """The dealer's evaluation point in the previous sharing."""
        try:
            return self.nodes.index(node) + 1
        except ValueError:
            raise MalformedError(f"{node!r} is not a node of the prior sharing") from None

    def verification_key(self, node: str) -> Point:
        return self.verification_keys[self.point_of(node) - 1]


@dataclass(frozen=True)
class DkgParams:
    """Public parameters of one DKG run.  ``nodes[k]`` has evaluation point ``k + 1``.

    With ``prior`` the run is a *resharing* of an existing key (docs/dkg.md, "Key
    lifecycle"): the dealers are ``prior.dealers`` (each deals its previous share), the
    recipients ``nodes``, and the output keeps ``prior.collective_key``."""

    consortium: str
    epoch: int
    nodes: tuple[str, ...]
    threshold: int
    prior: Prior | None = None

    @property
    def dealers(self) -> tuple[str, ...]:
        """Who deals: every node (a fresh key) or the prior nodes that re-share."""
        return self.nodes if self.prior is None else self.prior.dealers

    @property
    def qual_threshold(self) -> int:
        """How many qualified dealers the run needs (rule 3): ``T`` for a fresh key, the
        prior threshold for a resharing (that many previous shares determine the key)."""
        return self.threshold if self.prior is None else self.prior.threshold

    def __post_init__(self) -> None:
        if self.prior is not None and not isinstance(self.prior, Prior):
            raise TypeError("prior must be a Prior")
        if not isinstance(self.consortium, str) or not _CONSORTIUM_RE.fullmatch(self.consortium):
            raise MalformedError("consortium must be 64 lowercase hex characters")
        _int_in(self.epoch, 0, 2**64 - 1, "epoch")
        _check_nodes(self.nodes, "nodes")
        _int_in(self.threshold, 1, len(self.nodes), "threshold")

    def point_of(self, node: str) -> int:
        """The 1-based evaluation point of ``node``; :class:`MalformedError` if unknown."""
        try:
            return self.nodes.index(node) + 1
        except ValueError:
            raise MalformedError(f"{node!r} is not a node of this DKG") from None

    def context(self) -> bytes:
        """Canonical bytes binding the domain, the consortium, the epoch, the node list and the
        threshold (every field length-prefixed)."""
        fresh = [
            DOMAIN,
            b"params",
            self.consortium.encode("ascii"),
            struct.pack(">Q", self.epoch),
            struct.pack(">I", self.threshold),
            struct.pack(">I", len(self.nodes)),
            *(n.encode("ascii") for n in self.nodes),
        ]
        p = self.prior
        if p is None:
            return _lp(*fresh)
        return _lp(
            *fresh,
            b"reshare",
            struct.pack(">I", p.threshold),
            struct.pack(">I", len(p.nodes)),
            *(n.encode("ascii") for n in p.nodes),
            *(Y.to_bytes() for Y in p.verification_keys),
            p.collective_key.to_bytes(),
            struct.pack(">I", len(p.dealers)),
            *(n.encode("ascii") for n in p.dealers),
        )

    def check_dealer(self, dealer: str) -> None:
        """:class:`MalformedError` unless ``dealer`` deals in this run."""
        if dealer not in self.dealers:
            raise MalformedError(f"{dealer!r} is not a dealer of this DKG")


def _dealer_word(params: DkgParams) -> str:
    return "node" if params.prior is None else "dealer (a previous node still a member)"


def _transport_list(params: DkgParams, transport_keys: Mapping[str, Point]) -> list[Point]:
    out = []
    for node in params.nodes:
        X = transport_keys.get(node)
        if not isinstance(X, Point):
            raise MalformedError(f"no transport key for node {node}")
        if X.is_identity():
            raise MalformedError(f"transport key of node {node} is the identity")
        out.append(X)
    return out


# --------------------------------------------------------------------------------------------
# Strict binary reader
# --------------------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("_d", "_i", "_what")

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise MalformedError(f"{what} encoding must be bytes")
        self._d = bytes(data)
        self._i = 0
        self._what = what

    def take(self, n: int) -> bytes:
        if self._i + n > len(self._d):
            raise MalformedError(f"{self._what}: truncated")
        out = self._d[self._i : self._i + n]
        self._i += n
        return out

    def tag(self, expected: int) -> None:
        got = self.take(1)[0]
        if got != expected:
            raise MalformedError(f"{self._what}: tag 0x{got:02x}, expected 0x{expected:02x}")

    def u16(self) -> int:
        v: int = struct.unpack(">H", self.take(2))[0]
        return v

    def party(self) -> str:
        raw = self.take(self.take(1)[0])
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedError(f"{self._what}: party id is not ASCII") from None
        return check_party_id(text, f"{self._what} party id")

    def point(self) -> Point:
        return Point.from_bytes(self.take(_POINT))

    def scalar(self) -> Scalar:
        return Scalar.from_bytes(self.take(_SCALAR))

    def end(self) -> None:
        if self._i != len(self._d):
            raise MalformedError(f"{self._what}: {len(self._d) - self._i} trailing bytes")


def _party_bytes(party: str) -> bytes:
    raw = party.encode("ascii")
    return bytes((len(raw),)) + raw


def _check_points(values: object, what: str) -> None:
    if not isinstance(values, tuple) or not all(isinstance(P, Point) for P in values):
        raise TypeError(f"{what} must be a tuple of Points")


def _check_scalars(values: object, what: str) -> None:
    if not isinstance(values, tuple) or not all(isinstance(s, Scalar) for s in values):
        raise TypeError(f"{what} must be a tuple of Scalars")


# --------------------------------------------------------------------------------------------
# Phase 1: deals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareProof:
    """Schnorr proof of knowledge of ``r`` with ``R = rG`` (domain ``SHARE_PROOF_DOMAIN``;
    statement: params context, dealer, recipient, ``G``, ``X_j``, ``R``, ``ct``).
    ``c || s``, 64 bytes."""

    c: Scalar
    s: Scalar

    SIZE = 2 * _SCALAR

    def __post_init__(self) -> None:
        if not isinstance(self.c, Scalar) or not isinstance(self.s, Scalar):
            raise TypeError("ShareProof fields must be Scalars")

    def to_bytes(self) -> bytes:
        return self.c.to_bytes() + self.s.to_bytes()

    @classmethod
    def _read(cls, r: _Reader) -> ShareProof:
        return cls(r.scalar(), r.scalar())


@dataclass(frozen=True)
class EncryptedShare:
    """``(s_ij, s'_ij)`` for one recipient: ``R = rG``, ``ct`` (64 bytes) and a
    :class:`ShareProof` of knowledge of ``r`` bound to the parameters, dealer, recipient,
    ``X_j`` and ``ct``.  Encoding ``R || ct || c || s`` (161 bytes)."""

    R: Point
    ct: bytes
    proof: ShareProof

    SIZE = _POINT + _CT_BYTES + ShareProof.SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.R, Point) or not isinstance(self.proof, ShareProof):
            raise TypeError("EncryptedShare needs a Point R and a ShareProof")
        if not isinstance(self.ct, bytes) or len(self.ct) != _CT_BYTES:
            raise MalformedError(f"share ciphertext must be {_CT_BYTES} bytes")

    def to_bytes(self) -> bytes:
        return self.R.to_bytes() + self.ct + self.proof.to_bytes()

    @classmethod
    def _read(cls, r: _Reader) -> EncryptedShare:
        R = r.point()
        ct = r.take(_CT_BYTES)
        return cls(R, ct, ShareProof._read(r))


@dataclass(frozen=True)
class Deal:
    """Phase 1, public: ``T`` commitments ``C_k = a_k G + b_k H`` and one encrypted share per
    node of ``params.nodes``, in that order (the dealer's own included)."""

    dealer: str
    commitments: tuple[Point, ...]
    shares: tuple[EncryptedShare, ...]

    def __post_init__(self) -> None:
        check_party_id(self.dealer, "deal dealer")
        _check_points(self.commitments, "deal commitments")
        if not isinstance(self.shares, tuple) or not all(
            isinstance(s, EncryptedShare) for s in self.shares
        ):
            raise TypeError("deal shares must be a tuple of EncryptedShares")
        if not 1 <= len(self.commitments) <= _MAX_COUNT or not 1 <= len(self.shares) <= _MAX_COUNT:
            raise MalformedError(f"a deal needs 1..{_MAX_COUNT} commitments and shares")

    def to_bytes(self) -> bytes:
        parts = [bytes((_TAG_DEAL,)), _party_bytes(self.dealer)]
        parts.append(struct.pack(">H", len(self.commitments)))
        parts.extend(C.to_bytes() for C in self.commitments)
        parts.append(struct.pack(">H", len(self.shares)))
        parts.extend(s.to_bytes() for s in self.shares)
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes, params: DkgParams) -> Deal:
        """Strict inverse of :meth:`to_bytes`; the counts must be ``params.threshold`` and
        ``len(params.nodes)``."""
        r = _Reader(data, "deal")
        r.tag(_TAG_DEAL)
        dealer = r.party()
        t = r.u16()
        if t != params.threshold:
            raise MalformedError(f"deal: {t} commitments, expected {params.threshold}")
        commitments = tuple(r.point() for _ in range(t))
        n = r.u16()
        if n != len(params.nodes):
            raise MalformedError(f"deal: {n} shares, expected {len(params.nodes)}")
        shares = tuple(EncryptedShare._read(r) for _ in range(n))
        r.end()
        return cls(dealer, commitments, shares)


@dataclass(frozen=True)
class DealSecret:
    """Kept by the dealer only: the coefficients of ``f`` (``a``) and ``f'`` (``b``)."""

    a: tuple[Scalar, ...] = field(repr=False)
    b: tuple[Scalar, ...] = field(repr=False)

    def __post_init__(self) -> None:
        _check_scalars(self.a, "DealSecret.a")
        _check_scalars(self.b, "DealSecret.b")
        if len(self.a) != len(self.b):
            raise MalformedError("DealSecret: a and b must have the same length")


def _eval(coeffs: Sequence[Scalar], j: int) -> Scalar:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * j + int(c)) % ORDER
    return Scalar(acc)


def _powers(j: int, count: int) -> list[Scalar]:
    out, v = [], 1
    for _ in range(count):
        out.append(Scalar(v))
        v = v * j % ORDER
    return out


def _pad(ctx: bytes, dealer: str, recipient: str, R: Point, K: Point) -> bytes:
    """``SHAKE-256(DOMAIN, "share", ctx, dealer, recipient, R, K)``, 64 bytes."""
    h = hashlib.shake_256(
        _lp(DOMAIN, b"share", ctx, dealer.encode("ascii"), recipient.encode("ascii"),
            R.to_bytes(), K.to_bytes())
    )
    return h.digest(_CT_BYTES)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _share_transcript(
    ctx: bytes, dealer: str, recipient: str, X: Point, R: Point, ct: bytes
) -> Transcript:
    t = Transcript(SHARE_PROOF_DOMAIN)
    t.append_message(b"context", ctx)
    t.append_message(b"dealer", dealer.encode("ascii"))
    t.append_message(b"recipient", recipient.encode("ascii"))
    t.append_point(b"G", G)
    t.append_point(b"X", X)
    t.append_point(b"R", R)
    t.append_message(b"ct", ct)
    return t


class _DealRng:
    """The dealer's randomness: SHAKE-256 of a 32+-byte seed (``secrets`` unless the caller
    supplies one), the parameters, the dealer and a label; 512 bits reduced mod n."""

    __slots__ = ("_prefix",)

    def __init__(self, seed: bytes, ctx: bytes, dealer: str) -> None:
        self._prefix = _lp(DOMAIN, b"deal-rng", seed, ctx, dealer.encode("ascii"))

    def scalar(self, label: bytes, *parts: bytes) -> Scalar:
        out = hashlib.shake_256(self._prefix + _lp(label, *parts)).digest(64)
        return Scalar.reduce(int.from_bytes(out, "big"))


def _disclosure_context(ctx: bytes, dealer: str, recipient: str) -> bytes:
    return _lp(DOMAIN, b"disclosure", ctx, dealer.encode("ascii"), recipient.encode("ascii"))


def deal(
    params: DkgParams,
    dealer: str,
    transport_keys: Mapping[str, Point],
    *,
    seed: bytes | None = None,
    constant: Scalar | None = None,
) -> tuple[Deal, DealSecret]:
    """Dealer ``dealer``'s phase-1 message and its secret polynomials.

    In a resharing (``params.prior``) ``constant`` is the dealer's previous share
    ``x̄_i``: ``f_i(0) = x̄_i`` and ``f'_i(0) = 0``, so ``C_0 = Y_i``, its previous
    verification key (refused if not).  A fresh run takes no ``constant``.

    Every random value (coefficients, share randomness ``r``, proof nonces) is derived from
    ``seed`` by SHAKE-256 (:class:`_DealRng`); without ``seed`` a fresh 32-byte one is drawn
    from ``secrets``.  A caller that passes ``seed`` (at least 32 secret, unpredictable bytes,
    used for this ``params`` and ``dealer`` only) gets the same deal back byte for byte, so a
    restarted dealer can re-create it; each proof nonce is derived from the whole statement
    it answers, so no two different statements ever share one.

    Cost: ``T`` commitments (T base + T variable multiplications) and, per node, two base
    and one variable multiplication (``R``, ``rX_j``, the proof)."""
    params.check_dealer(dealer)
    keys = _transport_list(params, transport_keys)
    if params.prior is None:
        if constant is not None:
            raise MalformedError("a fresh key ceremony deals no previous share")
    elif not isinstance(constant, Scalar) or (
            base_mul(constant) != params.prior.verification_key(dealer)):
        raise MalformedError(f"{dealer}: a resharing deals the dealer's previous share, "
                             "whose verification key is the prior one")
    if seed is None:
        seed = secrets.token_bytes(32)
    if not isinstance(seed, bytes) or len(seed) < 32:
        raise MalformedError("deal seed must be at least 32 bytes")
    ctx = params.context()
    rng = _DealRng(seed, ctx, dealer)
    T = params.threshold
    a = tuple(rng.scalar(b"a", struct.pack(">I", k)) for k in range(T))
    b = tuple(rng.scalar(b"b", struct.pack(">I", k)) for k in range(T))
    if constant is not None:  # resharing: f(0) = previous share, f'(0) = 0
        a = (constant, *a[1:])
        b = (Scalar(0), *b[1:])
    H = pedersen_h()
    commitments = tuple(base_mul(ak) + bk * H for ak, bk in zip(a, b, strict=True))
    shares = []
    for j, (node, X) in enumerate(zip(params.nodes, keys, strict=True), start=1):
        plain = _eval(a, j).to_bytes() + _eval(b, j).to_bytes()
        r = rng.scalar(b"r", node.encode("ascii"), X.to_bytes())
        R = base_mul(r)
        ct = _xor(plain, _pad(ctx, dealer, node, R, r * X))
        t = _share_transcript(ctx, dealer, node, X, R, ct)
        k = rng.scalar(b"nonce", node.encode("ascii"), X.to_bytes(), R.to_bytes(), ct)
        t.append_point(b"U", base_mul(k))
        c = t.challenge_scalar(b"c")
        shares.append(EncryptedShare(R, ct, ShareProof(c, k + c * r)))
    return Deal(dealer, commitments, tuple(shares)), DealSecret(a, b)


def _check_deal_shape(params: DkgParams, d: Deal) -> None:
    if not isinstance(d, Deal):
        raise TypeError(f"expected a Deal, got {type(d).__name__}")
    if len(d.commitments) != params.threshold:
        raise _fail(f"rule 1: deal has {len(d.commitments)} commitments, expected "
                    f"{params.threshold}", d.dealer)
    if len(d.shares) != len(params.nodes):
        raise _fail(f"rule 1: deal has {len(d.shares)} shares, expected {len(params.nodes)}",
                    d.dealer)


def _share_proof_ok(params: DkgParams, d: Deal, j: int, X: Point) -> bool:
    """``U = sG - cR`` and the recomputed challenge (``R`` must not be the identity)."""
    share = d.shares[j - 1]
    if share.R.is_identity():
        return False
    t = _share_transcript(params.context(), d.dealer, params.nodes[j - 1], X, share.R,
                          share.ct)
    t.append_point(b"U", base_mul(share.proof.s) - share.proof.c * share.R)
    return t.challenge_scalar(b"c") == share.proof.c


def verify_deal(params: DkgParams, d: Deal, transport_keys: Mapping[str, Point]) -> None:
    """The public checks of a deal (rule 1): the dealer is a node, the counts match, and every
    share's proof of knowledge of its randomness ``r`` verifies.  Raises ``party=dealer``.

    Cost: ``N`` Schnorr verifications (1 base + 1 variable multiplication each)."""
    _check_deal_shape(params, d)
    if d.dealer not in params.dealers:
        raise _fail(f"rule 1: deal by a party that is not a {_dealer_word(params)}", d.dealer)
    for j, X in enumerate(_transport_list(params, transport_keys), start=1):
        if not _share_proof_ok(params, d, j, X):
            raise _fail(f"rule 1: invalid proof of the share randomness for "
                        f"{params.nodes[j - 1]}", d.dealer)


def _commitment_at(d: Deal, j: int) -> Point:
    return msm(_powers(j, len(d.commitments)), list(d.commitments))


def _decrypt_check(
    params: DkgParams, d: Deal, j: int, K: Point
) -> tuple[Scalar, Scalar] | str:
    """Decrypt share ``j`` with the key point ``K``; the pair or the reason it is bad."""
    share = d.shares[j - 1]
    plain = _xor(share.ct, _pad(params.context(), d.dealer, params.nodes[j - 1], share.R, K))
    try:
        s, s2 = Scalar.from_bytes(plain[:_SCALAR]), Scalar.from_bytes(plain[_SCALAR:])
    except MalformedError:
        return "share does not decrypt to two canonical scalars"
    if base_mul(s) + s2 * pedersen_h() != _commitment_at(d, j):
        return "share fails the Pedersen check against the commitments"
    return s, s2


def open_share(params: DkgParams, deal: Deal, recipient: str, x: Scalar) -> tuple[Scalar, Scalar]:
    """Recipient's decryption of its share of ``deal`` (``x`` its transport secret key).

    Checks the dealer's proof of knowledge of ``r`` and ``s G + s' H == sum_k j^k C_k``;
    raises :class:`VerificationError` (``party`` = dealer) if either fails or the plaintext
    is not two canonical scalars.  On such a failure an honest node publishes
    :func:`disclose` as its complaint (unless the randomness proof failed: that fault is
    public already, and :func:`disclose` refuses)."""
    j = params.point_of(recipient)
    _check_deal_shape(params, deal)
    if not isinstance(x, Scalar):
        raise TypeError("transport secret key must be a Scalar")
    if not _share_proof_ok(params, deal, j, base_mul(x)):
        raise _fail(f"invalid proof of the share randomness for {recipient}", deal.dealer)
    out = _decrypt_check(params, deal, j, x * deal.shares[j - 1].R)
    if isinstance(out, str):
        raise _fail(f"share for {recipient}: {out}", deal.dealer)
    return out


# --------------------------------------------------------------------------------------------
# Complaints and disclosures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disclosure:
    """Recipient ``j`` reveals ``K = x_j R_ij``, the key of *one* encrypted share of dealer
    ``i``, with a DLEQ proof ``log_G X_j == log_{R_ij} K`` (context: params, dealer,
    recipient).  A phase-1 complaint and a phase-2 disclosure are both this."""

    dealer: str
    recipient: str
    K: Point
    proof: DLEQProof

    def __post_init__(self) -> None:
        check_party_id(self.dealer, "disclosure dealer")
        check_party_id(self.recipient, "disclosure recipient")
        if not isinstance(self.K, Point) or not isinstance(self.proof, DLEQProof):
            raise TypeError("Disclosure needs a Point K and a DLEQProof")

    def to_bytes(self) -> bytes:
        return (bytes((_TAG_DISCLOSURE,)) + _party_bytes(self.dealer)
                + _party_bytes(self.recipient) + self.K.to_bytes() + self.proof.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Disclosure:
        """Strict inverse of :meth:`to_bytes`."""
        r = _Reader(data, "disclosure")
        r.tag(_TAG_DISCLOSURE)
        dealer = r.party()
        recipient = r.party()
        K = r.point()
        proof = DLEQProof.from_bytes(r.take(DLEQProof.SIZE))
        r.end()
        return cls(dealer, recipient, K, proof)


def disclose(params: DkgParams, deal: Deal, recipient: str, x: Scalar, X: Point) -> Disclosure:
    """Publish the decryption key of ``recipient``'s share of ``deal`` (complaint, or phase-2
    help).  Refuses (``VerificationError``, ``party`` = dealer) when the dealer's proof of
    knowledge of that share's ``r`` fails: disclosing ``x R`` for an ``R`` the dealer cannot
    open would be a Diffie--Hellman oracle on ``x``.

    Phase-2 rule for the caller (docs/dkg.md, "Requirements on the integration"): an honest
    node discloses a share for reconstruction only once its *own* valid :class:`KeyCommit`
    is on the log, so that a censoring log cannot get every honest polynomial disclosed.
    Cost: 3 base + 3 variable multiplications."""
    j = params.point_of(recipient)
    _check_deal_shape(params, deal)
    if not isinstance(x, Scalar) or not isinstance(X, Point):
        raise TypeError("disclose needs the transport key pair (Scalar x, Point X)")
    if base_mul(x) != X:
        raise MalformedError("disclose: X is not x*G")
    if not _share_proof_ok(params, deal, j, X):
        raise _fail(f"invalid proof of the share randomness for {recipient}; not disclosing",
                    deal.dealer)
    R = deal.shares[j - 1].R
    K = x * R
    proof = prove_dleq(x, X, R, K, _disclosure_context(params.context(), deal.dealer, recipient))
    return Disclosure(deal.dealer, recipient, K, proof)


def disclosed_share(
    params: DkgParams, deal: Deal, disclosure: Disclosure, X_recipient: Point
) -> tuple[Scalar, Scalar] | None:
    """Check a disclosure and decrypt the share it opens.

    Raises :class:`VerificationError` (``party`` = recipient) if the DLEQ proof fails or the
    disclosure is not about this deal / by a node.  Returns ``(s, s')`` if the share passes
    the Pedersen check, ``None`` if the share is bad (the dealer is at fault: not canonical,
    fails the check, or the dealer's proof of knowledge of ``r`` fails).
    Cost: 1 Schnorr + 1 DLEQ verification + the Pedersen check (T + 2 multiplications)."""
    if not isinstance(disclosure, Disclosure):
        raise TypeError(f"expected a Disclosure, got {type(disclosure).__name__}")
    if disclosure.dealer != deal.dealer:
        raise _fail(f"disclosure about dealer {disclosure.dealer} checked against the deal of "
                    f"{deal.dealer}", disclosure.recipient)
    if disclosure.recipient not in params.nodes:
        raise _fail("disclosure by a party that is not a node", disclosure.recipient)
    j = params.point_of(disclosure.recipient)
    _check_deal_shape(params, deal)
    if not _share_proof_ok(params, deal, j, X_recipient):
        return None
    share = deal.shares[j - 1]
    ctx = params.context()
    try:
        verify_dleq(X_recipient, share.R, disclosure.K, disclosure.proof,
                    _disclosure_context(ctx, deal.dealer, disclosure.recipient))
    except VerificationError as exc:
        raise _fail(f"bad proof of the disclosed key: {exc.reason}",
                    disclosure.recipient) from exc
    out = _decrypt_check(params, deal, j, disclosure.K)
    return None if isinstance(out, str) else out


# --------------------------------------------------------------------------------------------
# Phase 2: key commitments
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCommitProof:
    """``c || z_0..z_{T-1} || z'_0..z'_{T-1}``: proof of knowledge of ``(a_k, b_k)`` with
    ``A_k = a_k G`` and ``C_k - A_k = b_k H`` for every k, one challenge ``c``."""

    c: Scalar
    z: tuple[Scalar, ...]
    z_b: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.c, Scalar):
            raise TypeError("KeyCommitProof.c must be a Scalar")
        _check_scalars(self.z, "KeyCommitProof.z")
        _check_scalars(self.z_b, "KeyCommitProof.z_b")

    def to_bytes(self) -> bytes:
        return b"".join(s.to_bytes() for s in (self.c, *self.z, *self.z_b))


@dataclass(frozen=True)
class KeyCommit:
    """Phase 2: ``A_k = a_k G`` for ``k < T`` and their :class:`KeyCommitProof`."""

    dealer: str
    A: tuple[Point, ...]
    proof: KeyCommitProof

    def __post_init__(self) -> None:
        check_party_id(self.dealer, "key commitment dealer")
        _check_points(self.A, "KeyCommit.A")
        if not isinstance(self.proof, KeyCommitProof):
            raise TypeError("KeyCommit.proof must be a KeyCommitProof")
        if not 1 <= len(self.A) <= _MAX_COUNT:
            raise MalformedError(f"a key commitment needs 1..{_MAX_COUNT} points")
        if len(self.proof.z) != len(self.A) or len(self.proof.z_b) != len(self.A):
            raise MalformedError("key commitment: proof size does not match the points")

    def to_bytes(self) -> bytes:
        return (bytes((_TAG_KEY_COMMIT,)) + _party_bytes(self.dealer)
                + struct.pack(">H", len(self.A)) + b"".join(P.to_bytes() for P in self.A)
                + self.proof.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, params: DkgParams | None = None) -> KeyCommit:
        """Strict inverse of :meth:`to_bytes`; with ``params``, the count must be ``T``."""
        r = _Reader(data, "key commitment")
        r.tag(_TAG_KEY_COMMIT)
        dealer = r.party()
        t = r.u16()
        if params is not None and t != params.threshold:
            raise MalformedError(f"key commitment: {t} points, expected {params.threshold}")
        if t == 0:
            raise MalformedError("key commitment: no points")
        A = tuple(r.point() for _ in range(t))
        c = r.scalar()
        z = tuple(r.scalar() for _ in range(t))
        z_b = tuple(r.scalar() for _ in range(t))
        r.end()
        return cls(dealer, A, KeyCommitProof(c, z, z_b))


def _key_commit_transcript(params: DkgParams, d: Deal, A: Sequence[Point]) -> Transcript:
    t = Transcript(KEY_COMMIT_DOMAIN)
    t.append_message(b"context", params.context())
    t.append_message(b"dealer", d.dealer.encode("ascii"))
    t.append_point(b"G", G)
    t.append_point(b"H", pedersen_h())
    t.append_points(b"C", d.commitments)
    t.append_points(b"A", A)
    return t


def key_commit(params: DkgParams, deal: Deal, secret: DealSecret) -> KeyCommit:
    """Phase 2 message of a qualified dealer.  Cost: 2T base + T variable multiplications."""
    _check_deal_shape(params, deal)
    T = params.threshold
    if len(secret.a) != T:
        raise MalformedError(f"DealSecret has {len(secret.a)} coefficients, expected {T}")
    H = pedersen_h()
    A = tuple(base_mul(a) for a in secret.a)
    t = _key_commit_transcript(params, deal, A)
    u = [Scalar.random() for _ in range(T)]
    v = [Scalar.random() for _ in range(T)]
    t.append_points(b"U", [base_mul(uk) for uk in u])
    t.append_points(b"V", [vk * H for vk in v])
    c = t.challenge_scalar(b"c")
    z = tuple(uk + c * ak for uk, ak in zip(u, secret.a, strict=True))
    z_b = tuple(vk + c * bk for vk, bk in zip(v, secret.b, strict=True))
    return KeyCommit(deal.dealer, A, KeyCommitProof(c, z, z_b))


def verify_key_commit(params: DkgParams, deal: Deal, kc: KeyCommit) -> None:
    """``U_k = z_k G - c A_k``, ``V_k = z'_k H - c (C_k - A_k)``, recompute ``c``.
    Raises :class:`VerificationError` (``party`` = dealer).  Cost: T base + 3T variable."""
    if not isinstance(kc, KeyCommit):
        raise TypeError(f"expected a KeyCommit, got {type(kc).__name__}")
    _check_deal_shape(params, deal)
    if kc.dealer != deal.dealer:
        raise _fail(f"key commitment of {kc.dealer} checked against the deal of {deal.dealer}",
                    kc.dealer)
    T = params.threshold
    if len(kc.A) != T:
        raise _fail(f"key commitment has {len(kc.A)} points, expected {T}", kc.dealer)
    H = pedersen_h()
    c = kc.proof.c
    U = [base_mul(z) - c * A for z, A in zip(kc.proof.z, kc.A, strict=True)]
    V = [zb * H - c * (C - A)
         for zb, C, A in zip(kc.proof.z_b, deal.commitments, kc.A, strict=True)]
    t = _key_commit_transcript(params, deal, kc.A)
    t.append_points(b"U", U)
    t.append_points(b"V", V)
    if t.challenge_scalar(b"c") != c:
        raise _fail("key commitment proof does not verify (A_k is not the G-part of C_k)",
                    kc.dealer)


# --------------------------------------------------------------------------------------------
# Resharing: a fresh transport key per run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransportKey:
    """A recipient's transport key for one resharing run, ``X = x G``, with a Schnorr proof
    of knowledge of ``x`` bound to the run (``params.context()``: consortium, epoch, nodes,
    prior) and the node.  Each run takes a new one so that the previous one can be erased
    (docs/dkg.md, "Key lifecycle").  ``04 || id || X || c || s``."""

    node: str
    X: Point
    proof: SchnorrProof

    def __post_init__(self) -> None:
        check_party_id(self.node, "transport key node")
        if not isinstance(self.X, Point) or not isinstance(self.proof, SchnorrProof):
            raise TypeError("TransportKey needs a Point X and a SchnorrProof")

    def to_bytes(self) -> bytes:
        return (bytes((_TAG_TRANSPORT,)) + _party_bytes(self.node) + self.X.to_bytes()
                + self.proof.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> TransportKey:
        """Strict inverse of :meth:`to_bytes`."""
        r = _Reader(data, "transport key")
        r.tag(_TAG_TRANSPORT)
        node = r.party()
        X = r.point()
        proof = SchnorrProof.from_bytes(r.take(SchnorrProof.SIZE))
        r.end()
        return cls(node, X, proof)


def _transport_context(params: DkgParams, node: str) -> bytes:
    return _lp(DOMAIN, b"transport", params.context(), node.encode("ascii"))


def transport_key(params: DkgParams, node: str, x: Scalar) -> TransportKey:
    """Node ``node``'s transport key for this run (``x`` fresh from ``secrets``, kept until
    the run's outcome is on the log, then erased).  Cost: 2 base multiplications."""
    params.point_of(node)
    if not isinstance(x, Scalar) or int(x) == 0:
        raise MalformedError("transport secret must be a non-zero Scalar")
    X = base_mul(x)
    return TransportKey(node, X, prove_schnorr(x, X, _transport_context(params, node)))


def verify_transport_key(params: DkgParams, tk: TransportKey) -> None:
    """The node is a recipient of this run and proves knowledge of its key for *this* run
    (a key replayed from another run or node fails).  Raises ``party`` = the node."""
    if not isinstance(tk, TransportKey):
        raise TypeError(f"expected a TransportKey, got {type(tk).__name__}")
    if tk.node not in params.nodes:
        raise _fail("transport key of a party that is not a node of this run", tk.node)
    try:
        verify_schnorr(tk.X, tk.proof, _transport_context(params, tk.node))
    except VerificationError as exc:
        raise _fail(f"transport key: {exc.reason}", tk.node) from None


# --------------------------------------------------------------------------------------------
# Lagrange
# --------------------------------------------------------------------------------------------


def _check_points_list(points: Sequence[int]) -> list[int]:
    pts = [_int_in(p, 1, ORDER - 1, "evaluation point") for p in points]
    if not pts:
        raise MalformedError("need at least one evaluation point")
    if len(set(pts)) != len(pts):
        raise MalformedError("evaluation points must be distinct")
    return pts


def lagrange_at_zero(points: Sequence[int]) -> list[Scalar]:
    """``lambda_j = prod_{m != j} m / (m - j) mod n`` for distinct points in ``[1, n)``, so
    that ``f(0) = sum_j lambda_j f(j)`` for every ``f`` of degree ``< len(points)``."""
    pts = _check_points_list(points)
    out = []
    for j in pts:
        num, den = 1, 1
        for m in pts:
            if m != j:
                num = num * m % ORDER
                den = den * (m - j) % ORDER
        out.append(Scalar(num * pow(den, -1, ORDER) % ORDER))
    return out


def combine(points: Sequence[int], values: Sequence[Point]) -> Point:
    """``sum_j lambda_j V_j`` (one msm): e.g. ``x C1`` from ``T`` decryption shares
    ``D_j = x_j C1``, or ``Y`` from ``T`` verification keys."""
    if len(points) != len(values):
        raise MalformedError(f"{len(points)} points but {len(values)} values")
    return msm(lagrange_at_zero(points), list(values))


def _interpolate(xs: Sequence[int], ys: Sequence[int]) -> list[int]:
    """Coefficients (low to high, mod n) of the polynomial of degree ``< len(xs)`` through
    ``(xs, ys)``: ``sum_j y_j N(z) / ((z - x_j) N'(x_j))`` with ``N(z) = prod (z - x_m)``."""
    m = len(xs)
    N = [1]
    for x in xs:  # N(z) *= (z - x)
        N = [(hi - x * lo) % ORDER for lo, hi in zip([*N, 0], [0, *N], strict=True)]
    coeffs = [0] * m
    for xj, yj in zip(xs, ys, strict=True):
        q = [0] * m  # N(z) / (z - xj), synthetic division
        q[m - 1] = N[m]
        for k in range(m - 1, 0, -1):
            q[k - 1] = (N[k] + xj * q[k]) % ORDER
        den = 1
        for xm in xs:
            if xm != xj:
                den = den * (xj - xm) % ORDER
        w = yj * pow(den, -1, ORDER) % ORDER
        coeffs = [(c + w * qk) % ORDER for c, qk in zip(coeffs, q, strict=True)]
    return coeffs


# --------------------------------------------------------------------------------------------
# Derivation from the log
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DkgResult:
    """What :func:`derive` decides from the log (every field derived, nothing trusted)."""

    qual: tuple[str, ...]
    disqualified: dict[str, str]
    ignored: dict[str, str]
    collective_key: Point
    verification_keys: dict[str, Point]
    reconstructed: tuple[str, ...]


def _reconstruct(params: DkgParams, d: Deal, shares: Mapping[int, tuple[Scalar, Scalar]]
                 ) -> tuple[Point, ...]:
    """``A_k = a_k G`` from the ``T`` lowest disclosed points (rule 4)."""
    js = sorted(shares)[: params.threshold]
    a = _interpolate(js, [int(shares[j][0]) for j in js])
    b = _interpolate(js, [int(shares[j][1]) for j in js])
    H = pedersen_h()
    A = tuple(base_mul(Scalar(ak)) for ak in a)
    for k, (Ak, bk, Ck) in enumerate(zip(A, b, d.commitments, strict=True)):
        if Ak + Scalar(bk) * H != Ck:  # only if the dealer knows log_G H
            raise _fail(f"rule 4: reconstructed coefficient {k} does not open C_{k}", d.dealer)
    return A


@dataclass
class _Phase1:
    by_dealer: dict[str, Deal]
    disqualified: dict[str, str]
    qual: tuple[str, ...]
    pool: dict[str, dict[int, tuple[Scalar, Scalar]]]  # good shares revealed, by dealer
    notes: dict[str, list[str]]

    def note(self, party: str, why: str) -> None:
        self.notes.setdefault(party, []).append(why)

    def usable(self, keys: Mapping[str, Point], disc: Disclosure, kind: str) -> Deal | None:
        """The deal a disclosure is about, or None (recorded) if it cannot count."""
        if not isinstance(disc, Disclosure):
            raise TypeError(f"expected a Disclosure, got {type(disc).__name__}")
        if disc.recipient not in keys:
            self.note(disc.recipient, f"{kind} by a party that is not a node")
            return None
        found = self.by_dealer.get(disc.dealer)
        if found is None:
            self.note(disc.recipient, f"{kind} about {disc.dealer}, which has no deal")
        return found


def _phase1(
    params: DkgParams,
    keys: Mapping[str, Point],
    deals: Sequence[Deal],
    complaints: Sequence[Disclosure],
) -> _Phase1:
    """Rules 1-3."""
    by_dealer: dict[str, Deal] = {}
    for d in deals:
        if not isinstance(d, Deal):
            raise TypeError(f"expected a Deal, got {type(d).__name__}")
        if d.dealer not in params.dealers:
            raise _fail(f"rule 1: deal by a party that is not a {_dealer_word(params)}", d.dealer)
        if d.dealer in by_dealer:
            raise _fail("rule 1: second deal by this dealer", d.dealer)
        _check_deal_shape(params, d)
        by_dealer[d.dealer] = d
    st = _Phase1(by_dealer, {}, (), {}, {})
    for dealer, d in by_dealer.items():
        bad = [node for j, node in enumerate(params.nodes, start=1)
               if not _share_proof_ok(params, d, j, keys[node])]
        if bad:
            st.disqualified[dealer] = ("rule 1: invalid proof of the share randomness for "
                                       + ", ".join(bad))

    justified: dict[str, set[str]] = {}
    for disc in complaints:
        target = st.usable(keys, disc, "complaint")
        if target is None or disc.dealer in st.disqualified:
            continue  # (a rule-1 fault is public already: nothing to decide)
        try:
            opened = disclosed_share(params, target, disc, keys[disc.recipient])
        except VerificationError as exc:
            st.note(disc.recipient, f"complaint about {disc.dealer} ignored: {exc.reason}")
            continue
        if opened is None:
            justified.setdefault(disc.dealer, set()).add(disc.recipient)
        else:
            st.note(disc.recipient, f"false complaint about {disc.dealer} (the share is good)")
            st.pool.setdefault(disc.dealer, {})[params.point_of(disc.recipient)] = opened
    for dealer, who in justified.items():
        st.disqualified[dealer] = f"rule 2: justified complaint by {', '.join(sorted(who))}"

    st.qual = tuple(sorted(d for d in by_dealer if d not in st.disqualified))
    T = params.qual_threshold
    if len(st.qual) < T:
        raise VerificationError(
            f"rule 3: fewer than T qualified dealers ({len(st.qual)} < T = {T})", step=STEP
        )
    return st


def qualified_dealers(
    params: DkgParams,
    transport_keys: Mapping[str, Point],
    deals: Sequence[Deal],
    complaints: Sequence[Disclosure],
) -> tuple[str, ...]:
    """QUAL after phase 1 (rules 1-3, exactly as :func:`derive` decides it): a node uses it to
    know whether to publish its :class:`KeyCommit`, and for which dealers a phase-2
    disclosure may be needed.  Raises like :func:`derive` for rules 1 and 3."""
    keys = dict(zip(params.nodes, _transport_list(params, transport_keys), strict=True))
    return _phase1(params, keys, deals, complaints).qual


def derive(
    params: DkgParams,
    transport_keys: Mapping[str, Point],
    deals: Sequence[Deal],
    complaints: Sequence[Disclosure],
    key_commits: Sequence[KeyCommit],
    disclosures: Sequence[Disclosure],
) -> DkgResult:
    """Apply the transcript rules 1-4 (module docstring) to the phase-1 ``deals`` and
    ``complaints`` and the phase-2 ``key_commits`` and ``disclosures``.

    Raises :class:`VerificationError` (``step="dkg"``) for rules 1 and 3,
    :class:`DkgIncomplete` for rule 4; everything else a party can do wrong is recorded in
    ``disqualified`` (dealers) or ``ignored`` (messages).  The result does not depend on the
    order of the four sequences."""
    keys = dict(zip(params.nodes, _transport_list(params, transport_keys), strict=True))
    T = params.threshold
    st = _phase1(params, keys, deals, complaints)
    if params.prior is not None:
        return _derive_reshare(params, params.prior, st, key_commits, disclosures)
    qual = st.qual

    # Rule 4: QUAL is fixed; a silent or lying dealer is reconstructed, not dropped.
    valid = _valid_key_commits(params, st, key_commits)
    missing = {i for i in qual if i not in valid}
    for disc in disclosures:
        target = st.usable(keys, disc, "disclosure")
        if target is None:
            continue
        if disc.dealer not in missing:
            st.note(disc.recipient, f"disclosure about {disc.dealer} not needed (not a QUAL "
                                    "dealer without a valid key commitment)")
            continue
        try:
            opened = disclosed_share(params, target, disc, keys[disc.recipient])
        except VerificationError as exc:
            st.note(disc.recipient, f"disclosure about {disc.dealer} ignored: {exc.reason}")
            continue
        if opened is None:
            st.note(disc.recipient, f"disclosed share of {disc.dealer} is bad and was not "
                                    "complained about in phase 1; not used")
            continue
        st.pool.setdefault(disc.dealer, {})[params.point_of(disc.recipient)] = opened
    short = sorted(i for i in missing if len(st.pool.get(i, {})) < T)
    if short:
        have = ", ".join(f"{i} has {len(st.pool.get(i, {}))}" for i in short)
        raise DkgIncomplete(
            f"rule 4: key commitment missing or invalid and fewer than T = {T} valid "
            f"disclosed shares ({have})", step=STEP, party=short[0],
        )
    A_of = {i: (valid[i].A if i in valid else _reconstruct(params, st.by_dealer[i], st.pool[i]))
            for i in qual}

    # Output: A_k = sum_i A_ik, Y = A_0, Y_j = sum_k j^k A_k.
    A_sum = [sum_points([A_of[i][k] for i in qual]) for k in range(T)]
    Y = A_sum[0]
    if Y.is_identity():
        raise VerificationError("collective key is the identity", step=STEP)
    vks = {node: msm(_powers(j, T), A_sum) for j, node in enumerate(params.nodes, start=1)}
    return DkgResult(
        qual=qual,
        disqualified=dict(sorted(st.disqualified.items())),
        ignored={p: "; ".join(sorted(set(why))) for p, why in sorted(st.notes.items())},
        collective_key=Y,
        verification_keys=vks,
        reconstructed=tuple(sorted(missing)),
    )


def _valid_key_commits(params: DkgParams, st: _Phase1, key_commits: Sequence[KeyCommit]
                       ) -> dict[str, KeyCommit]:
    """Rule 4's first half: the key commitment of each QUAL dealer that verifies against its
    deal -- in a resharing, whose constant term ``A_0`` is also the dealer's previous
    verification key ``Y_i`` (it re-shared its own share).  The others are recorded."""
    valid: dict[str, KeyCommit] = {}
    for kc in key_commits:
        if not isinstance(kc, KeyCommit):
            raise TypeError(f"expected a KeyCommit, got {type(kc).__name__}")
        if kc.dealer not in st.qual:
            st.note(kc.dealer, "key commitment of a dealer not in QUAL")
            continue
        try:
            verify_key_commit(params, st.by_dealer[kc.dealer], kc)
        except VerificationError as exc:
            st.note(kc.dealer, f"key commitment rejected: {exc.reason}")
            continue
        if params.prior is not None and kc.A[0] != params.prior.verification_key(kc.dealer):
            st.note(kc.dealer, "key commitment rejected: A_0 is not the dealer's previous "
                               "verification key (it did not re-share its share)")
            continue
        valid.setdefault(kc.dealer, kc)  # any two valid ones carry the same A (binding)
    return valid


def _reshare_weights(prior: Prior, dealers: Sequence[str]) -> list[Scalar]:
    """Lagrange weights at 0 of the dealers' *previous* evaluation points."""
    return lagrange_at_zero([prior.point_of(i) for i in dealers])


def _derive_reshare(
    params: DkgParams,
    prior: Prior,
    st: _Phase1,
    key_commits: Sequence[KeyCommit],
    disclosures: Sequence[Disclosure],
) -> DkgResult:
    """Rule 4 of a resharing (docs/dkg.md, "Key lifecycle").  A QUAL dealer counts once its
    key commitment verifies *and* its constant term ``A_0`` is its previous verification key
    ``Y_i`` (so ``f_i(0)`` is its previous share).  A dealer without such a commitment is
    dropped, not reconstructed: every dealer's constant term is pinned, so dropping one
    cannot bias anything, while reconstructing it would publish a previous share.  ``S`` =
    every counted dealer (at least ``prior.threshold``, else :class:`DkgIncomplete`);
    ``Y = sum_{i in S} lambda_i A_i0`` must be the prior key (it is, by the pinning), and
    ``Y'_j = sum_i lambda_i sum_k j^k A_ik``."""
    T = params.threshold
    valid = _valid_key_commits(params, st, key_commits)
    for disc in disclosures:
        if isinstance(disc, Disclosure):
            st.note(disc.recipient, "disclosure in a resharing (nothing is reconstructed)")
    S = sorted(valid)
    if len(S) < prior.threshold:
        waiting = [i for i in st.qual if i not in valid]
        raise DkgIncomplete(
            f"rule 4: {len(S)} of the {prior.threshold} re-shared previous shares needed "
            f"(waiting for {', '.join(waiting) or 'nobody: too few qualified dealers'})",
            step=STEP, party=waiting[0] if waiting else None,
        )
    lam = _reshare_weights(prior, S)
    A_sum = [msm(lam, [valid[i].A[k] for i in S]) for k in range(T)]
    if A_sum[0] != prior.collective_key:  # the pinned constants make this impossible
        raise VerificationError("rule 4: the re-shared key is not the previous collective key",
                                step=STEP)
    vks = {node: msm(_powers(j, T), A_sum) for j, node in enumerate(params.nodes, start=1)}
    return DkgResult(
        qual=tuple(S),
        disqualified=dict(sorted(st.disqualified.items())),
        ignored={p: "; ".join(sorted(set(why))) for p, why in sorted(st.notes.items())},
        collective_key=A_sum[0],
        verification_keys=vks,
        reconstructed=(),
    )


def node_secret(
    params: DkgParams, result: DkgResult, node: str, x_transport: Scalar, deals: Sequence[Deal]
) -> Scalar:
    """``x_j = sum_{i in QUAL} s_ij`` (opens the node's own shares of the QUAL deals); in a
    resharing ``x'_j = sum_{i in S} lambda_i s_ij`` over the counted dealers ``S``.

    Raises :class:`VerificationError`: ``party`` = a QUAL dealer whose share does not open
    (the node should have complained in phase 1), or ``party`` = ``node`` if
    ``x_j G != Y_j`` (the deals given are not the ones ``result`` was derived from)."""
    params.point_of(node)
    by_dealer: dict[str, Deal] = {}
    for d in deals:
        if not isinstance(d, Deal):
            raise TypeError(f"expected a Deal, got {type(d).__name__}")
        if d.dealer in by_dealer and by_dealer[d.dealer] != d:
            raise MalformedError(f"two different deals by {d.dealer}")
        by_dealer[d.dealer] = d
    acc = Scalar(0)
    weights = (_reshare_weights(params.prior, result.qual) if params.prior is not None
               else [Scalar(1)] * len(result.qual))
    for dealer, w in zip(result.qual, weights, strict=True):
        mine = by_dealer.get(dealer)
        if mine is None:
            raise MalformedError(f"no deal by QUAL dealer {dealer}")
        s, _ = open_share(params, mine, node, x_transport)
        acc = acc + w * s
    if base_mul(acc) != result.verification_keys[node]:
        raise _fail("key share does not match its verification key Y_j", node)
    return acc
