"""Test helper: build malicious certificates with an adversary that holds EVERY key.

The adversary reads the cluster directory left by the real run (every party's Ed25519
identity seed, every compute node's transport key -- from which, with the key ceremony on
the log, it derives the node's threshold key share --, the log key = the ledger's identity
seed named by the origin).  A :class:`Forgery` starts from a real certificate, lets a test change,
add or drop entries (re-signing them with their author's key when asked), recomputes the
downstream protocol messages honestly (:meth:`Forgery.reissue`), and rebuilds a whole log
around them: a fresh Merkle tree (entries the certificate does not carry are filler
leaves), a checkpoint signed by the log key and cosigned by the witnesses.  Signatures,
inclusion proofs, the checkpoint and the cosignatures are therefore all valid, and only the
check a test targets can fail.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from statledger.ledger.checkpoint import Checkpoint
from statledger.ledger.merkle import inclusion_proof, leaf_hash, root_from_leaf_hashes
from statledger.ledger.note import Note, NoteSigner, Signature
from statledger.ledger.witness import CosignatureSigner
from statledger.nodes.keys import load_elgamal_share, load_identity_key
from statledger.nodes.ledger_client import LedgerClient
from statledger.proofs.errors import MalformedError
from statledger.proofs.group import Point, Scalar
from statledger.proofs.signatures import SigningKey
from statledger.protocol import calibration, ceremony, flow, noise
from statledger.protocol import entries as E
from statledger.protocol.checks import NOISE_STEPS, StepContext, run_steps
from statledger.protocol.consortium import Genesis, Member, SignedGenesis, trust_document
from statledger.protocol.query import QuerySpec
from statledger.protocol.view import parse_entries
from statledger.verifier.certificate import build_certificate, parse_certificate

__all__ = ["Adversary", "Forgery", "filler", "trust_bytes", "v1_trust_bytes"]


def filler(index: int) -> bytes:
    """Leaf data of a log position the certificate does not carry (any bytes will do)."""
    return f"forged-filler/{index}".encode()


class Adversary:
    """Every secret of one cluster directory."""

    def __init__(self, base_dir: Path, origin: str) -> None:
        self.base_dir = Path(base_dir)
        self.origin = origin

    def identity(self, party_id: str) -> SigningKey:
        return load_identity_key(self.base_dir / party_id / "identity.key")

    def share(self, node: str) -> Scalar:
        """``node``'s transport key (the ElGamal key of its party entry; not its key share:
        see :meth:`Forgery.key_shares`)."""
        return load_elgamal_share(self.base_dir / node / "elgamal.key")

    def log_signer(self) -> NoteSigner:
        return NoteSigner(self.origin, self.identity("ledger").to_bytes())

    def witness(self, node: str) -> CosignatureSigner:
        return CosignatureSigner(node, self.identity(node).to_bytes())

    def sign(self, entry: E.Entry, party_id: str) -> E.Entry:
        return E.sign(entry, self.identity(party_id))

    # -- the consortium ------------------------------------------------------------------
    def genesis(self) -> SignedGenesis:
        """The cluster's signed genesis (``base_dir/consortium.json``, entry 0 of its log)."""
        return SignedGenesis.from_bytes((self.base_dir / "consortium.json").read_bytes())

    def trust_file(self) -> bytes:
        """The cluster's own statledger-trust/v2 file (``base_dir/trust.json``)."""
        return (self.base_dir / "trust.json").read_bytes()

    def lookalike(self, *, fresh_keys: Iterable[str] | None = None, name: str | None = None,
                  witness_quorum: int | None = None) -> tuple[SignedGenesis,
                                                              dict[str, SigningKey]]:
        """ANOTHER consortium that looks like this one: the same party ids, roles and origin,
        with a fresh key for each party of ``fresh_keys`` (default: every party), and the
        name / witness quorum changed if given.  Fully signed (the fresh keys by their new
        owners, the kept ones by the adversary who holds them).  Returns it and every
        member's signing key."""
        signed = self.genesis()
        g = signed.genesis
        ids = [m.party_id for m in g.members]
        fresh = set(ids if fresh_keys is None else fresh_keys)
        keys = {pid: SigningKey.generate() if pid in fresh else self.identity(pid)
                for pid in ids}
        members = tuple(Member(m.party_id, m.role, keys[m.party_id].public_key().to_bytes().hex())
                        for m in g.members)
        other = SignedGenesis(Genesis(g.name if name is None else name, g.origin, members,
                                      g.witness_quorum if witness_quorum is None
                                      else witness_quorum, g.admission,
                                      g.decryption_threshold))
        for pid in ids:
            other = other.sign(pid, keys[pid])
        return other, keys


def trust_bytes(signed: SignedGenesis) -> bytes:
    """A statledger-trust/v2 file pinning ``signed``, as ``consortium export-trust`` writes."""
    return (json.dumps(trust_document(signed), indent=1, sort_keys=True) + "\n").encode()


def v1_trust_bytes(log_key: str, witness_keys: Sequence[str], quorum: int) -> bytes:
    """A retired statledger-trust/v1 file: a log key, witness keys and a quorum."""
    return json.dumps({"log_key": log_key, "witness_keys": list(witness_keys),
                       "quorum": quorum}).encode()


class Forgery:
    """A mutable copy of a certificate's entries inside a log the adversary rebuilds."""

    def __init__(self, adversary: Adversary, certificate: bytes) -> None:
        cert = parse_certificate(certificate)
        self.adv = adversary
        self.origin = cert.origin
        self.log_key = cert.log_key
        self.size = Checkpoint.parse(Note.parse(cert.checkpoint).text).size
        #: what the certificate carries, index -> leaf bytes
        self.items: dict[int, bytes] = {e.index: e.data for e in cert.entries}
        #: log positions whose leaf differs from what the certificate claims
        self.log_overrides: dict[int, bytes] = {}
        #: the witnesses that cosign by default: the compute nodes of the original setup
        self.witnesses: tuple[str, ...] = tuple(self.find("setup")[1].compute)

    # -- reading -------------------------------------------------------------------------
    def entry(self, index: int) -> E.Entry:
        return E.Entry.from_bytes(self.items[index])

    def all_entries(self) -> list[tuple[int, E.Entry]]:
        """Every carried entry that decodes, in log order."""
        out = []
        for i in sorted(self.items):
            try:
                out.append((i, self.entry(i)))
            except MalformedError:  # a test's deliberately broken entry
                continue
        return out

    def all(self, kind: str) -> list[tuple[int, Any]]:
        return [(i, e) for i, e in self.all_entries() if e.KIND == kind]

    def find(self, kind: str, **match: Any) -> tuple[int, Any]:
        for i, e in self.all(kind):
            if all(getattr(e, k) == v for k, v in match.items()):
                return i, e
        raise KeyError(f"no {kind} entry with {match}")

    def query(self) -> tuple[QuerySpec, E.QueryEntry]:
        _, q = self.find("query")
        return q.query_spec(), q

    # -- writing -------------------------------------------------------------------------
    def put(self, index: int, entry: E.Entry | bytes) -> None:
        self.items[index] = entry if isinstance(entry, bytes) else entry.to_bytes()
        if index >= self.size:
            self.size = index + 1

    def resign(self, index: int, entry: E.Entry, author: str) -> E.Entry:
        signed = self.adv.sign(entry, author)
        self.put(index, signed)
        return signed

    def drop(self, index: int) -> None:
        """Remove an entry from the certificate AND from the log (its leaf becomes filler)."""
        del self.items[index]

    def recommit(self, params_of: Callable[[str], noise.NoiseParams]) -> None:
        """Every node of the noise round commits again, to fresh bits with a valid 0/1
        proof, for (and carrying) the noise parameters ``params_of(node)``, re-signed by the
        node, each at its commitment's index.  If every node gets the same parameters, the
        coin shares are made again too, honestly, for the new set (so only the parameters
        can be wrong); otherwise they are left as they are (step 10 stops before them)."""
        spec, q = self.query()
        qid = q.query_id
        _, setup = self.find("setup")
        X = setup.collective_point()
        made: dict[str, noise.NoiseCommitment] = {}
        chosen: set[noise.NoiseParams] = set()
        for idx, c in self.all("noise_commit"):
            p = params_of(c.node)
            chosen.add(p)
            made[c.node] = noise.commit_noise(X, p, qid, c.node)
            self.resign(idx, E.NoiseCommitEntry.of(qid, made[c.node], p), c.node)
        if len(chosen) != 1:
            return
        (p,) = chosen
        first_coin = min((i for i, _ in self.all("noise_coin")), default=None)
        in_set = [n for n in setup.compute if n in made and (
            first_coin is None or self.find("noise_commit", node=n)[0] < first_coin)]
        base = flow.noise_coin_base(p, qid, [made[n] for n in in_set])
        shares = self.key_shares()
        for idx, e in self.all("noise_coin"):
            x, Y = shares[e.node]
            self.resign(idx, E.NoiseCoinEntry.of(qid, noise.make_coin_share(
                x, Y, base, qid, e.node)), e.node)

    # -- the honest downstream protocol --------------------------------------------------
    def key_shares(self, ctx: StepContext | None = None) -> dict[str, tuple[Scalar, Point]]:
        """Every compute node's key share ``x_j`` and verification key ``Y_j``: ``x_j``
        derived, as the node derives it, from the key ceremony the certificate carries (the
        entries before the setup) and the node's transport key.  ``ctx``: a context in which
        step 6 already ran on these entries (default: run it)."""
        if ctx is None:
            ctx = StepContext(parse_entries([(i, self.items[i]) for i, _ in self.all_entries()]))
            run_steps(ctx, NOISE_STEPS, through=6)
        view = ctx.view
        setup, at = ctx.setup(), view.setup_index
        assert at is not None
        params = ceremony.params_for(setup, ctx.timeline().at(at).compute_epoch)
        transport = {n: view.parties[n].elgamal_point() for n in setup.compute}
        rows = [(i, e) for i, e in view.dkg if i < at]
        return {n: (ceremony.key_share(params, transport, rows, n, self.adv.share(n)),
                    setup.verification_point(n)) for n in setup.compute}

    def reissue(
        self,
        *,
        tamper_shares: Callable[[str, list[Point]], list[Point]] | None = None,
        tamper_totals: Callable[[list[int]], list[int]] | None = None,
        tamper_result: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        decryptors: Sequence[str] | None = None,
    ) -> None:
        """Recompute aggregate, decryption shares, totals, result and endorsements from the
        current submissions and noise round, each signed by its author, each at the index
        of the entry it replaces.  Every node that logged a decryption entry decrypts again
        with its threshold key share; the totals combine the honest shares of
        ``decryptors`` (default: those the result names) with their Lagrange weights, and
        the result names them.  The hooks let a test corrupt exactly one of them (the DLEQ
        proofs and the totals stay those of the honest computation)."""
        spec, q = self.query()
        qid = q.query_id
        ranges = tuple(calibration.wire_layout(spec).ranges)  # the DP weights included
        _, setup = self.find("setup")
        subs = self.all("submission")
        contributions = [flow.Contribution(s.decode_vector(ranges), ranges) for _, s in subs]
        # the noise set's shares, derived from the log (steps 6, 8 and 10; docs/noise.md), on
        # the roster, the query and its noise entries (the rest is about to be re-issued)
        downstream = ("submission", "aggregate", "decryption", "result", "endorsement")
        ctx = StepContext(parse_entries([(i, self.items[i]) for i, e in self.all_entries()
                                         if e.KIND not in downstream]))
        run_steps(ctx, NOISE_STEPS, through=10)
        noise = [(i, None) for i in (ctx.noise.indices if ctx.noise is not None else [])]
        contributions += [flow.Contribution(ctx.contributions[i][1],
                                            tuple(ctx.contributions[i][2])) for i, _ in noise]
        agg = flow.aggregate(contributions)
        flat = flow.flatten(agg)
        aidx, _ = self.find("aggregate")
        self.resign(aidx, E.AggregateEntry(
            qid, tuple(i for i, _ in subs), tuple(i for i, _ in noise),
            tuple(c.to_bytes().hex() for c in flat)), q.querier)
        key_shares = self.key_shares(ctx)
        honest_shares: dict[str, list[Point]] = {}
        for didx, d in self.all("decryption"):
            x, Y = key_shares[d.node]
            shares, proof = flow.make_decryption(x, Y, flow.decryption_targets(spec, agg),
                                                 flow.decryption_context(qid, d.node))
            honest_shares[d.node] = list(shares)
            published = tamper_shares(d.node, list(shares)) if tamper_shares else shares
            self.resign(didx, E.DecryptionEntry(
                qid, d.node, tuple(s.to_bytes().hex() for s in published),
                proof.to_bytes().hex()), d.node)
        named = sorted(self.find("result")[1].decryptors if decryptors is None
                       else decryptors)
        totals = flow.decrypt_totals(spec, agg, [honest_shares[n] for n in named],
                                     [c.ranges for c in contributions],
                                     flow.combination_weights(setup, named))
        if tamper_totals is not None:
            totals = tamper_totals(list(totals))
        info = (None if ctx.noise is None else
                calibration.NoiseInfo(ctx.noise.params, len(ctx.noise.members)))
        result = calibration.decode(spec, totals, info).to_dict()
        if tamper_result is not None:
            result = tamper_result(copy.deepcopy(result))
        ridx, _ = self.find("result")
        res = self.resign(ridx, E.ResultEntry.for_totals(qid, totals, result, named),
                          q.querier)
        digest = E.result_digest(res.to_bytes())
        for eidx, en in self.all("endorsement"):
            self.resign(eidx, E.EndorsementEntry(qid, en.provider, digest), en.provider)

    # -- the log ---------------------------------------------------------------------------
    def leaves(self) -> list[bytes]:
        data = {**self.items, **self.log_overrides}
        return [leaf_hash(data.get(i, filler(i))) for i in range(self.size)]

    def checkpoint_body(self, leaves: Sequence[bytes] | None = None) -> str:
        hashes = self.leaves() if leaves is None else list(leaves)
        return Checkpoint(self.origin, self.size, root_from_leaf_hashes(hashes)).body()

    def sign_checkpoint(
        self,
        body: str,
        *,
        cosigners: Iterable[str] | None = None,
        log_signer: NoteSigner | None = None,
        extra: Iterable[Signature] = (),
    ) -> str:
        """The signed note: log signature + a cosignature by each of ``cosigners`` (default:
        every compute node of the setup entry) + ``extra`` signature lines."""
        if cosigners is None:
            cosigners = self.witnesses
        signer = log_signer or self.adv.log_signer()
        ts = int(time.time())
        sigs = [signer.sign(body)]
        sigs += [self.adv.witness(w).cosign(body, ts) for w in cosigners]
        sigs += list(extra)
        return Note(body, tuple(sigs)).to_text()

    def build(
        self,
        *,
        checkpoint: str | None = None,
        cosigners: Iterable[str] | None = None,
        log_signer: NoteSigner | None = None,
        log_key: str | None = None,
        extra: Iterable[Signature] = (),
    ) -> bytes:
        """The certificate bytes: every carried entry with its inclusion proof in the rebuilt
        tree, and a checkpoint over that tree (or ``checkpoint`` as given)."""
        hashes = self.leaves()
        if checkpoint is None:
            checkpoint = self.sign_checkpoint(self.checkpoint_body(hashes), cosigners=cosigners,
                                              log_signer=log_signer, extra=extra)
        triples = [(i, d, inclusion_proof(i, hashes)) for i, d in sorted(self.items.items())]
        return build_certificate(self.origin, log_key or self.log_key, checkpoint,
                                 triples).to_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def serve_cluster(cluster: Any, malicious_ledger: str | None = None,
                  **client: Any) -> Iterator[Any]:
    """Start ``cluster`` (its ledger as the ``malicious_ledger`` script when given:
    :func:`start_with_malicious_ledger`), register its queriers, run the setup as the
    first querier (``client``: options of that client, e.g. a timeout); yield it, and
    stop everything on exit.  For module fixtures."""
    from statledger.nodes.demo import register_queriers

    ledger_proc = None
    try:
        if malicious_ledger is not None:
            ledger_proc = start_with_malicious_ledger(cluster, malicious_ledger)
        else:
            cluster.start()
        register_queriers(cluster)
        with cluster.client("ledger", as_party=cluster.layout.queriers[0].party_id,
                            **client) as c:
            c.post("/v1/setup")
        yield cluster
    finally:
        cluster.stop()
        if ledger_proc is not None:
            ledger_proc.kill()
            ledger_proc.wait(10)


def start_with_malicious_ledger(cluster: Any, script: str) -> Any:
    """Start ``cluster``'s ledger as the Python ``script`` (a patched, malicious operator run
    with the ledger's config path as its argument), wait until it answers, then start every
    other serving party.  Returns the ledger's process (the caller kills it); its output goes
    to ``malicious-ledger.log`` next to the cluster."""
    import os
    import subprocess
    import sys

    import httpx

    from statledger.nodes.serve import PARENT_ENV

    base = cluster.base_dir
    with open(base / "malicious-ledger.log", "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", script, str(cluster.config_path("ledger"))], stdout=log,
            stderr=subprocess.STDOUT, env={**os.environ, PARENT_ENV: str(os.getpid())},
            cwd=str(base))
    deadline = time.monotonic() + 60
    url = cluster.url("ledger")
    while True:
        try:
            if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)
    cluster.start(only=[p for p in cluster.layout.parties
                        if p != "ledger" and cluster.layout.parties[p].serves])
    return proc


class ForgingLedger(LedgerClient):
    """The ledger (or the path to it) serving forged bytes at chosen indices."""

    forge: set[int] = set()

    def entries(self, indices: Any) -> list[tuple[int, bytes]]:
        out = []
        for i, data in super().entries(indices):
            if i in self.forge:
                data = data[:-40] + bytes([data[-40] ^ 1]) + data[-39:]
            out.append((i, data))
        return out
