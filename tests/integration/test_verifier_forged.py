"""Hand-made malicious certificates (issue 6, "Tests").

The adversary holds every key of the cluster (tests/integration/forge.py), so signatures,
inclusion proofs, the checkpoint and its cosignatures are all valid, and each certificate
breaks exactly one rule.  Each must be rejected at the expected step of docs/verification.md,
blaming the expected party.  The controls (a faithful rebuild, an honest re-issue) are
accepted, so a rejection below is due to the one change, never to the forging machinery.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from forge import Adversary, Forgery, trust_bytes, v1_trust_bytes

from statledger.ledger.checkpoint import Checkpoint, open_checkpoint
from statledger.ledger.note import Note, NoteSigner, NoteVerifier, Signature
from statledger.ledger.witness import CosignatureSigner
from statledger.proofs import sigma
from statledger.proofs.errors import MalformedError
from statledger.proofs.group import G, Scalar
from statledger.proofs.signatures import SigningKey
from statledger.proofs.vector import LIMB_BITS, _encrypt, _layout, encrypt_vector_with_proof
from statledger.protocol import calibration, flow
from statledger.protocol import entries as E
from statledger.protocol.query import QuerySpec
from statledger.verifier.certificate import parse_certificate
from statledger.verifier.report import Report
from statledger.verifier.verify import TrustPolicy, verify_certificate

CERTS = ["mean", "crosstab", "dp_sum"]


@pytest.fixture(scope="module")
def adversary(verifier_run: Any) -> Adversary:
    return Adversary(verifier_run.base_dir, verifier_run.origin)


@pytest.fixture
def forgery(verifier_run: Any, adversary: Adversary) -> Callable[[str], Forgery]:
    def make(name: str) -> Forgery:
        return Forgery(adversary, verifier_run.cert(name))

    return make


def _check(raw: str, step: int, party: str | None, match: str,
           trust: TrustPolicy | None = None) -> Report:
    """Rejected at ``step``, blaming ``party``, for a reason matching ``match``."""
    report = verify_certificate(raw, trust)
    summary = f"valid={report.valid} step={report.step} party={report.party}: {report.reason}"
    assert not report.valid, "forged certificate accepted"
    assert re.search(match, report.reason or ""), summary
    assert report.step == step, summary
    assert report.party == party, summary
    assert report.steps[-1].step == step and not report.steps[-1].ok, summary
    # every step before the failing one passed, in order
    assert [s.step for s in report.steps[:-1]] == sorted(s.step for s in report.steps[:-1])
    assert all(s.ok for s in report.steps[:-1])
    return report


def _valid(raw: str, trust: TrustPolicy | None = None) -> Report:
    report = verify_certificate(raw, trust)
    assert report.valid, f"step {report.step}: {report.reason} (party {report.party})"
    assert [s.step for s in report.steps] == list(range(1, 16))
    return report


# --------------------------------------------------------------------------------------
# controls: the forging machinery itself produces valid certificates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CERTS)
def test_control_rebuilt_log_is_valid(forgery: Callable[[str], Forgery], name: str) -> None:
    _valid(forgery(name).build())


@pytest.mark.parametrize("name", CERTS)
def test_control_reissued_downstream_is_valid(forgery: Callable[[str], Forgery],
                                              name: str) -> None:
    f = forgery(name)
    f.reissue()
    _valid(f.build())


def test_originals_are_valid(verifier_run: Any) -> None:
    for name, raw in verifier_run.certificates.items():
        report = _valid(raw)
        assert report.query_id == verifier_run.query_ids[name]


# --------------------------------------------------------------------------------------
# step 9: an out-of-range contribution with a forged proof
# --------------------------------------------------------------------------------------


def _out_of_range_vector(f: Forgery, provider: str, qid: str) -> str:
    spec, _ = f.query()
    ranges = list(calibration.wire_layout(spec).ranges)  # what owners encrypt (DP weights)
    _, setup = f.find("setup")
    X = setup.collective_point()
    rs, layout = _layout(ranges)
    limbs: list[list[int]] = []
    for j, (lo, hi) in enumerate(rs):
        u = (hi - lo + 1) if j == 0 else 0  # entry 0 is hi + 1: one past its range
        n = layout.n_limbs[j]
        row = [(u >> (LIMB_BITS * i)) & 0xFFFF for i in range(n - 1)]
        row.append(u >> (LIMB_BITS * (n - 1)))  # the top limb keeps the overflow
        limbs.append(row)
    ev = _encrypt(X, limbs, rs, layout, flow.submission_context(qid, provider))
    return ev.to_bytes().hex()


@pytest.mark.parametrize("name", ["mean", "dp_sum"])
def test_out_of_range_contribution(forgery: Callable[[str], Forgery], name: str) -> None:
    f = forgery(name)
    spec, qe = f.query()
    idx, sub = f.find("submission", provider="hospital-b")
    vec = _out_of_range_vector(f, "hospital-b", qe.query_id)
    f.resign(idx, E.SubmissionEntry(qe.query_id, "hospital-b", vec), "hospital-b")
    f.reissue()  # the aggregate, decryption and result follow the forged submission
    _check(f.build(), 9, "hospital-b", "range proof")


# --------------------------------------------------------------------------------------
# steps 12-15: decryption, totals, result, endorsements
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CERTS)
def test_wrong_decryption_share(forgery: Callable[[str], Forgery], name: str) -> None:
    """compute-2 publishes one wrong decryption share (its DLEQ proof is the honest one).
    The result names it among its decryptors: step 12 refuses the result, blaming the
    querier that combined shares which do not verify and naming compute-2."""
    f = forgery(name)

    def bad(node: str, shares: list[Any]) -> list[Any]:
        if node == "compute-2":
            shares[-1] = shares[-1] + G
        return shares

    f.reissue(tamper_shares=bad)
    assert "compute-2" in f.find("result")[1].decryptors
    _check(f.build(), 12, "querier",
           r"the result names compute-2, whose decryption shares are invalid \(decryption "
           "shares: ")


@pytest.mark.parametrize("name", CERTS)
def test_totals_off_by_one(forgery: Callable[[str], Forgery], name: str) -> None:
    f = forgery(name)

    def plus_one(totals: list[int]) -> list[int]:
        totals[0] += 1
        return totals

    f.reissue(tamper_totals=plus_one)  # the result is decode(totals + 1): consistent
    _check(f.build(), 13, "querier", "not the decryption")


def _numbers(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return []
    if isinstance(obj, int | float):
        return [path]
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    return [p for k, v in items for p in _numbers(v, (*path, k))]


def _set(obj: Any, path: tuple[Any, ...], fn: Callable[[Any], Any]) -> None:
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = fn(obj[path[-1]])


@pytest.mark.parametrize("name", CERTS)
def test_result_number_changed(forgery: Callable[[str], Forgery], name: str) -> None:
    """Every number of the published result, changed one at a time, is caught at step 14."""
    f0 = forgery(name)
    _, res = f0.find("result")
    paths = _numbers(res.result)
    assert paths, "the result has numbers"
    for path in paths:
        f = forgery(name)

        def change(result: dict[str, Any], path: tuple[Any, ...] = path) -> dict[str, Any]:
            _set(result, path, lambda v: v + 1 if isinstance(v, int) else v * 1.001 + 0.001)
            return result

        f.reissue(tamper_result=change)
        report = verify_certificate(f.build())
        assert not report.valid and report.step == 14 and report.party == "querier", (
            f"result{list(path)}: step {report.step}: {report.reason}")


def test_missing_owner_endorsement(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    idx, _ = f.find("endorsement", provider="hospital-c")
    f.drop(idx)
    _check(f.build(), 15, "hospital-c", "no endorsement")


def test_endorsement_of_another_result(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    idx, en = f.find("endorsement", provider="hospital-d")
    f.resign(idx, E.EndorsementEntry(en.query_id, "hospital-d", "ab" * 32), "hospital-d")
    _check(f.build(), 15, "hospital-d", "another result")


# --------------------------------------------------------------------------------------
# step 4: inclusion, and a checkpoint from a fork
# --------------------------------------------------------------------------------------


def test_entry_missing_from_the_log(forgery: Callable[[str], Forgery]) -> None:
    """The certificate carries the result entry, the log holds something else there."""
    f = forgery("mean")
    ridx, _ = f.find("result")
    f.log_overrides[ridx] = b"not the result"
    _check(f.build(), 4, "ledger", f"entry {ridx} is not in the log")


def test_entry_beyond_the_checkpoint(forgery: Callable[[str], Forgery],
                                     verifier_run: Any) -> None:
    f = forgery("mean")
    cert = parse_certificate(f.build())
    extra = replace(cert.entries[-1], index=f.size)  # one past the signed tree
    _check(replace(cert, entries=(*cert.entries, extra)).to_bytes(), 4, "ledger",
           "beyond the checkpoint")


def test_checkpoint_from_a_fork(forgery: Callable[[str], Forgery],
                                adversary: Adversary) -> None:
    """Two checkpoints of the same size, both signed by the log key and cosigned, with
    different roots: the certificate's proofs are for one tree, its checkpoint for the other."""
    honest = forgery("crosstab")
    fork = forgery("crosstab")
    outside = next(i for i in range(fork.size) if i not in fork.items)
    fork.log_overrides[outside] = b"a different history"
    cp_fork = fork.sign_checkpoint(fork.checkpoint_body())
    cp_honest = honest.sign_checkpoint(honest.checkpoint_body())
    log_key = NoteVerifier.from_vkey(honest.log_key)
    a, _ = open_checkpoint(cp_honest, log_key)
    b, _ = open_checkpoint(cp_fork, log_key)
    assert a.size == b.size and a.root != b.root
    _valid(honest.build(checkpoint=cp_honest))
    _check(honest.build(checkpoint=cp_fork), 4, "ledger", "not in the log")


def test_real_certificate_with_a_forked_checkpoint(verifier_run: Any,
                                                   adversary: Adversary) -> None:
    """The real certificate, whose checkpoint is swapped for a validly signed and cosigned
    one of the same size over another root."""
    cert = parse_certificate(verifier_run.cert("mean"))
    note = Note.parse(cert.checkpoint)
    cp = Checkpoint.parse(note.text)
    forked = Checkpoint(cp.origin, cp.size, bytes(32 - 1) + b"\x01").body()
    f = Forgery(adversary, verifier_run.cert("mean"))
    _check(replace(cert, checkpoint=f.sign_checkpoint(forked)).to_bytes(), 4, "ledger",
           "not in the log")


# --------------------------------------------------------------------------------------
# signatures by unregistered keys
# --------------------------------------------------------------------------------------


def _resign_with(f: Forgery, kind: str, match: dict[str, Any], key: SigningKey) -> None:
    idx, e = f.find(kind, **match)
    f.put(idx, E.sign(e, key))


@pytest.mark.parametrize(("kind", "match", "step", "party"), [
    ("query", {}, 8, "querier"),
    ("submission", {"provider": "hospital-a"}, 9, "hospital-a"),
    ("decryption", {"node": "compute-1"}, 12, "compute-1"),
    ("result", {}, 13, "querier"),
    ("endorsement", {"provider": "hospital-b"}, 15, "hospital-b"),
])
def test_signature_by_unregistered_key(forgery: Callable[[str], Forgery], kind: str,
                                       match: dict[str, Any], step: int, party: str) -> None:
    f = forgery("dp_sum")
    _resign_with(f, kind, match, SigningKey.generate())
    _check(f.build(), step, party, "signature does not verify")


@pytest.mark.parametrize("kind", ["noise_commit", "noise_coin"])
def test_noise_entry_signed_by_unregistered_key(forgery: Callable[[str], Forgery],
                                                kind: str) -> None:
    f = forgery("dp_sum")
    _resign_with(f, kind, {"node": "compute-3"}, SigningKey.generate())
    _check(f.build(), 10, "compute-3", f"{kind} entry: Ed25519 signature")


def test_submission_by_unregistered_provider(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    idx, s = f.find("submission", provider="hospital-d")
    stranger = E.SubmissionEntry(s.query_id, "hospital-z", s.vector)
    f.put(idx, E.sign(stranger, SigningKey.generate()))
    _check(f.build(), 9, "hospital-z", "hospital-z is not a member of consortium")


def test_party_entry_signed_by_another_key(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    idx, p = f.find("party", party_id="hospital-a")
    f.put(idx, E.sign(p, SigningKey.generate()))
    _check(f.build(), 6, "hospital-a", "party entry: Ed25519 signature")


# --------------------------------------------------------------------------------------
# replay of another query's submission
# --------------------------------------------------------------------------------------


def test_replayed_submission_verbatim(forgery: Callable[[str], Forgery]) -> None:
    """hospital-a's signed submission to ``mean_other`` presented in ``mean``."""
    f = forgery("mean")
    other = forgery("mean_other")
    _, theirs = other.find("submission", provider="hospital-a")
    idx, _ = f.find("submission", provider="hospital-a")
    f.put(idx, theirs)
    _check(f.build(), 8, "hospital-a", "belongs to query")


def test_replayed_vector_resigned(forgery: Callable[[str], Forgery]) -> None:
    """The same encrypted vector (same layout), re-wrapped for this query and signed again:
    its range proof is bound to the other query id."""
    f = forgery("mean")
    other = forgery("mean_other")
    _, theirs = other.find("submission", provider="hospital-a")
    spec, qe = f.query()
    idx, _ = f.find("submission", provider="hospital-a")
    f.resign(idx, E.SubmissionEntry(qe.query_id, "hospital-a", theirs.vector), "hospital-a")
    f.reissue()
    _check(f.build(), 9, "hospital-a", "range proof")


def test_submission_of_another_provider_copied(forgery: Callable[[str], Forgery]) -> None:
    """hospital-b's vector, signed by hospital-c as its own: bound to hospital-b."""
    f = forgery("mean")
    _, b = f.find("submission", provider="hospital-b")
    idx, _ = f.find("submission", provider="hospital-c")
    f.resign(idx, E.SubmissionEntry(b.query_id, "hospital-c", b.vector), "hospital-c")
    f.reissue()
    _check(f.build(), 9, "hospital-c", "range proof")


# --------------------------------------------------------------------------------------
# step 6: compute keys without a valid proof of knowledge
# --------------------------------------------------------------------------------------


def test_pok_for_another_party(forgery: Callable[[str], Forgery],
                               adversary: Adversary) -> None:
    f = forgery("mean")
    idx, p = f.find("party", party_id="compute-2")
    cid = f.find("setup")[1].consortium
    x = adversary.share("compute-2")
    pok = sigma.prove_schnorr(x, G * x, flow.keyreg_context(cid, "compute-1"))
    f.resign(idx, E.PartyEntry("compute-2", "compute", p.sig_key, p.elgamal_key,
                               pok.to_bytes().hex()), "compute-2")
    _check(f.build(), 6, "compute-2", "proof of knowledge")


def test_pok_for_another_consortium(forgery: Callable[[str], Forgery],
                                    adversary: Adversary) -> None:
    """compute-2's own key share, proven for another consortium: a proof is bound to one."""
    f = forgery("mean")
    idx, p = f.find("party", party_id="compute-2")
    other = adversary.lookalike(name="another consortium")[0].genesis.consortium_id
    x = adversary.share("compute-2")
    pok = sigma.prove_schnorr(x, G * x, flow.keyreg_context(other, "compute-2"))
    f.resign(idx, E.PartyEntry("compute-2", "compute", p.sig_key, p.elgamal_key,
                               pok.to_bytes().hex()), "compute-2")
    _check(f.build(), 6, "compute-2", "proof of knowledge")
    # the twin: the same share proven for this consortium is accepted
    cid = f.find("setup")[1].consortium
    pok = sigma.prove_schnorr(x, G * x, flow.keyreg_context(cid, "compute-2"))
    f.resign(idx, E.PartyEntry("compute-2", "compute", p.sig_key, p.elgamal_key,
                               pok.to_bytes().hex()), "compute-2")
    _valid(f.build())


def test_rogue_key(forgery: Callable[[str], Forgery], adversary: Adversary) -> None:
    """compute-3 registers X_3' = Y - X_1 - X_2 for a Y it alone knows (the rogue key of an
    n-of-n sum) and the setup states Y.  It cannot prove knowledge of log X_3': the proof it
    shows is for Y.  (Under the key ceremony Y is no sum of registered keys, but a transport
    key without a proof of knowledge is refused all the same.)"""
    f = forgery("mean")
    y = Scalar.random()
    Y = G * y
    _, p1 = f.find("party", party_id="compute-1")
    _, p2 = f.find("party", party_id="compute-2")
    idx, p3 = f.find("party", party_id="compute-3")
    rogue = Y - p1.elgamal_point() - p2.elgamal_point()
    sidx, setup = f.find("setup")
    pok = sigma.prove_schnorr(y, Y, flow.keyreg_context(setup.consortium, "compute-3"))
    f.resign(idx, E.PartyEntry("compute-3", "compute", p3.sig_key,
                               rogue.to_bytes().hex(), pok.to_bytes().hex()), "compute-3")
    f.resign(sidx, replace(setup, collective_key=Y.to_bytes().hex(), sig=None), "ledger")
    _check(f.build(), 6, "compute-3", "proof of knowledge")


def test_collective_key_not_the_sum(forgery: Callable[[str], Forgery]) -> None:
    """The log operator's setup states a collective key the key ceremony on the log did not
    produce: the real one plus G, or the n-of-n sum of the registered (transport) keys."""
    for wrong in ("plus G", "sum of the transport keys"):
        f = forgery("mean")
        sidx, setup = f.find("setup")
        if wrong == "plus G":
            key = setup.collective_point() + G
        else:
            key = flow.collective_key([f.find("party", party_id=n)[1].elgamal_point()
                                       for n in setup.compute])
        f.resign(sidx, replace(setup, collective_key=key.to_bytes().hex(), sig=None), "ledger")
        _check(f.build(), 6, "ledger",
               "collective_key is not the key the ceremony on the log produced")


def test_verification_key_not_the_ceremonys(forgery: Callable[[str], Forgery]) -> None:
    """The collective key is right, one node's Y_j is not (another point, or two nodes'
    keys swapped): a node could then prove decryption shares made with another share."""
    for how in ("plus G", "swapped"):
        f = forgery("mean")
        sidx, setup = f.find("setup")
        keys = list(setup.verification_keys)
        if how == "plus G":
            keys[1] = (setup.verification_points()[1] + G).to_bytes().hex()
        else:
            keys[0], keys[1] = keys[1], keys[0]
        f.resign(sidx, replace(setup, verification_keys=tuple(keys), sig=None), "ledger")
        _check(f.build(), 6, "ledger",
               "verification_keys are not the ones the ceremony on the log produced")


def test_threshold_not_the_consortiums(forgery: Callable[[str], Forgery]) -> None:
    """The setup states a lower threshold than the consortium's (fewer nodes would
    decrypt): refused whatever the keys."""
    f = forgery("mean")
    sidx, setup = f.find("setup")
    t = setup.threshold
    assert t >= 2, "the verifier cluster's threshold"
    f.resign(sidx, replace(setup, threshold=t - 1, sig=None), "ledger")
    _check(f.build(), 6, "ledger", f"the setup says threshold {t - 1}, the consortium's is {t}")


def test_ceremony_entry_signed_by_another_node(forgery: Callable[[str], Forgery],
                                               adversary: Adversary) -> None:
    """compute-2's key commitment signed with compute-1's identity key."""
    f = forgery("mean")
    idx, e = f.find("dkg_key", node="compute-2")
    f.put(idx, adversary.sign(replace(e, sig=None), "compute-1"))
    _check(f.build(), 6, "compute-2", "dkg_key entry: Ed25519 signature does not verify")


# --------------------------------------------------------------------------------------
# step 7: the witness quorum; steps 2/3/6: the log key
# --------------------------------------------------------------------------------------


def test_fewer_cosignatures_than_quorum(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    _valid(f.build(cosigners=["compute-1", "compute-2", "compute-3"]))
    _check(f.build(cosigners=["compute-1", "compute-3"]), 7, "ledger", "2 valid")
    _check(f.build(cosigners=[]), 7, "ledger", "0 valid")


def test_cosignature_by_unregistered_witness_key(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    impostor = CosignatureSigner("compute-3", SigningKey.generate().to_bytes())
    body = f.checkpoint_body()
    raw = f.build(cosigners=["compute-1", "compute-2"],
                  extra=[impostor.cosign(body, 1_700_000_000)])
    _check(raw, 7, "ledger", "2 valid")


def test_invalid_cosignature_by_registered_witness(forgery: Callable[[str], Forgery],
                                                   adversary: Adversary) -> None:
    f = forgery("mean")
    body = f.checkpoint_body()
    good = adversary.witness("compute-2").cosign(body, 1_700_000_000)
    bad = Signature(good.name, good.key_id, good.sig[:-1] + bytes([good.sig[-1] ^ 1]))
    _check(f.build(cosigners=["compute-1", "compute-3"], extra=[bad]), 7, "compute-2",
           "invalid cosignature")


def test_whole_fake_log_under_another_key(forgery: Callable[[str], Forgery]) -> None:
    """A self-consistent log signed by a key that is not the consortium's log key (the
    genesis' ledger member): the roster (6) names the log, step 7 refuses the checkpoint."""
    f = forgery("mean")
    fake = NoteSigner.generate(f.origin)
    _check(f.build(log_signer=fake, log_key=fake.vkey()), 7, "ledger",
           "not signed by the consortium's log")


def test_checkpoint_not_signed_by_the_log_key(forgery: Callable[[str], Forgery]) -> None:
    f = forgery("mean")
    fake = NoteSigner.generate(f.origin)
    _check(f.build(log_signer=fake), 3, "ledger", "no signature from a known key")


def _trust(data: bytes, source: str = "test-trust.json") -> TrustPolicy:
    return TrustPolicy.parse(data, source)


def test_trust_file_pins_the_log(verifier_run: Any, adversary: Adversary) -> None:
    raw = verifier_run.cert("mean")
    own = adversary.genesis()
    # the cluster's own trust file, and the same consortium exported again: accepted
    for data in (adversary.trust_file(), trust_bytes(own)):
        report = _valid(raw, _trust(data))
        assert report.trust.startswith(f"consortium {own.genesis.consortium_id[:16]}")
        assert "pinned by test-trust.json" in report.trust
    # ANOTHER consortium that looks the same (same party ids, roles, origin; other keys):
    # its log is another log -- refused at step 2
    lookalike, _ = adversary.lookalike()
    assert lookalike.genesis.consortium_id != own.genesis.consortium_id
    _check(raw, 2, "ledger", "another log than the pinned consortium",
           _trust(trust_bytes(lookalike)))
    # another consortium with the SAME log key (only a compute key differs, or only the
    # witness quorum): step 2 passes, the genesis on the log is not the pinned one (6)
    for other in (adversary.lookalike(fresh_keys=["compute-2"])[0],
                  adversary.lookalike(fresh_keys=[], witness_quorum=2)[0]):
        assert other.genesis.consortium_id != own.genesis.consortium_id
        report = _check(raw, 6, "ledger", "not the pinned", _trust(trust_bytes(other)))
        assert [s.step for s in report.steps if s.ok] == [1, 2, 3, 4, 5]
    # a retired v1 trust file (log key + witnesses + quorum) is refused by name, even when
    # its keys are right: it pins no consortium
    witnesses = [adversary.witness(w).vkey() for w in ("compute-1", "compute-2", "compute-3")]
    log_key = parse_certificate(raw).log_key
    with pytest.raises(MalformedError, match=r"statledger-trust/v1 .*no longer accepted"):
        _trust(v1_trust_bytes(log_key, witnesses, 3))
    # a trust file whose genesis is not fully signed, or whose id is not the genesis'
    doc = json.loads(trust_bytes(own))
    unsigned = copy.deepcopy(doc)
    unsigned["genesis"]["signatures"].pop("compute-1")
    with pytest.raises(MalformedError, match="compute-1 has not signed the genesis"):
        _trust(json.dumps(unsigned))
    wrong_id = {**doc, "consortium": lookalike.genesis.consortium_id}
    with pytest.raises(MalformedError, match="not the pinned"):
        _trust(json.dumps(wrong_id))
    forged_sig = copy.deepcopy(doc)
    forged_sig["genesis"]["signatures"]["compute-1"] = "00" * 64
    with pytest.raises(MalformedError, match="signature of compute-1 does not verify"):
        _trust(json.dumps(forged_sig))


# --------------------------------------------------------------------------------------
# who contributes: dropped submissions, non-contributors, missing noise
# --------------------------------------------------------------------------------------


def test_endorsement_by_a_non_contributor(forgery: Callable[[str], Forgery]) -> None:
    """hospital-d's submission is left out (aggregate, decryption and result recomputed
    without it) but its endorsement stays."""
    f = forgery("mean")
    idx, _ = f.find("submission", provider="hospital-d")
    f.drop(idx)
    f.reissue()
    _check(f.build(), 15, "hospital-d", "did not contribute")


def test_fewer_providers_than_min_providers(forgery: Callable[[str], Forgery]) -> None:
    """A single provider's submission presented as the aggregate of the query."""
    f = forgery("mean")
    for p in ("hospital-b", "hospital-c", "hospital-d"):
        f.drop(f.find("submission", provider=p)[0])
        f.drop(f.find("endorsement", provider=p)[0])
    f.reissue()
    _check(f.build(), 11, "querier", "1 providers, the query needs at least 2")


def _requery(f: Forgery, keep: tuple[str, ...], min_providers: int) -> None:
    """The same query asking for ``min_providers``: a new query id, so every entry of the
    query is made again -- fresh, honest submissions (with range proofs) by the providers in
    ``keep``, the others dropped, then the downstream entries re-issued."""
    spec, q = f.query()
    new = QuerySpec.parse({**spec.to_json_obj(), "min_providers": min_providers})
    qidx, _ = f.find("query")
    f.resign(qidx, E.QueryEntry.for_spec(new, q.querier), q.querier)
    ranges = list(calibration.wire_layout(new).ranges)
    X = f.find("setup")[1].collective_point()
    for p in ("hospital-a", "hospital-b", "hospital-c", "hospital-d"):
        sidx, _ = f.find("submission", provider=p)
        if p not in keep:
            f.drop(sidx)
            f.drop(f.find("endorsement", provider=p)[0])
            continue
        values = [min(hi, lo + 7) for lo, hi in ranges]
        ev = encrypt_vector_with_proof(X, values, ranges,
                                       flow.submission_context(new.query_id_for(q.querier), p))
        f.resign(sidx, E.SubmissionEntry(new.query_id_for(q.querier), p, ev.to_bytes().hex()), p)
    f.reissue()


def test_one_provider_with_min_providers_1_rejected_at_step_11(
        forgery: Callable[[str], Forgery]) -> None:
    """A query that asks for a single provider still needs two distinct ones: the floor of
    step 11 (MIN_PROVIDERS_FLOOR), not only the query's own min_providers."""
    f = forgery("mean")
    _requery(f, ("hospital-a",), min_providers=1)
    report = _check(f.build(), 11, "querier",
                    r"1 providers, the query needs at least 2 \(its min_providers 1 is below "
                    r"the floor of 2 distinct providers\)")
    assert [s.step for s in report.steps if s.ok] == list(range(1, 11))
    # the twin: the same min_providers = 1 query with a second provider is valid
    twin = forgery("mean")
    _requery(twin, ("hospital-a", "hospital-c"), min_providers=1)
    _valid(twin.build())


def test_missing_noise_commitment(forgery: Callable[[str], Forgery]) -> None:
    """A commitment dropped from the certificate: the noise set is smaller, its coin base
    another; the first coin share closed a set of fewer than T commitments (or, were there
    enough, its DLEQ would fail for the recomputed P): step 10 names that node."""
    f = forgery("dp_sum")
    setup = f.find("setup")[1]
    f.drop(f.find("noise_commit", node="compute-2")[0])
    first = f.all("noise_coin")[0][1].node
    if setup.threshold == len(setup.compute):
        _check(f.build(), 10, first, "at least")
    else:
        _check(f.build(), 10, first, "coin share")


def test_missing_coin_share(forgery: Callable[[str], Forgery]) -> None:
    """Fewer than T coin shares under an aggregate: the querier aggregated a noise round that
    had not completed (step 10)."""
    f = forgery("dp_sum")
    setup = f.find("setup")[1]
    for idx, _ in f.all("noise_coin")[setup.threshold - 1:]:
        f.drop(idx)
    _check(f.build(), 10, "querier", "before the noise round completed")


def test_noise_round_remade_with_parameters_not_private_enough(
        forgery: Callable[[str], Forgery]) -> None:
    """The compute nodes (with the operator) redo the noise round with parameters of their
    choosing, one summand where the querier's plan needs many: fresh bits with valid 0/1
    proofs, each commitment carrying the weak parameters and re-signed by its node, coin
    shares re-made for the new set.  Step 10 names the node of the first commitment."""
    f = forgery("dp_sum")
    first = f.all("noise_commit")[0][1]
    weak = replace(first.noise_params(), summands=1)
    f.recommit(lambda node: weak)
    _check(f.build(), 10, first.node, "not private enough")


def test_noise_round_with_two_parameter_sets(forgery: Callable[[str], Forgery]) -> None:
    """One node commits (validly) for other parameters than the others, each set private
    enough on its own: step 10 names that node."""
    f = forgery("dp_sum")
    commits = f.all("noise_commit")
    params = commits[0][1].noise_params()
    odd = commits[-1][1].node
    other = replace(params, summands=params.summands + 2)
    f.recommit(lambda node: other if node == odd else params)
    _check(f.build(), 10, odd, "differ")


def test_noise_round_remade_with_other_private_enough_parameters_is_valid(
        forgery: Callable[[str], Forgery]) -> None:
    """The twin: a round redone for parameters that are not the querier's calibration but
    pass the rule (more summands, more noise), with the downstream messages re-issued, is a
    valid certificate -- nobody's own calibration is the yardstick, the rule is."""
    f = forgery("dp_sum")
    params = f.all("noise_commit")[0][1].noise_params()
    other = replace(params, summands=params.summands + 2)
    f.recommit(lambda node: other)
    f.reissue()
    report = _valid(f.build())
    detail = next(s.detail for s in report.steps if s.step == 10)
    assert f"s={other.summands}," in detail, detail


def test_aggregate_listing_a_dropped_submission(forgery: Callable[[str], Forgery]) -> None:
    """The aggregate (honestly summed over four) while the certificate shows three."""
    f = forgery("mean")
    f.drop(f.find("submission", provider="hospital-a")[0])
    _check(f.build(), 11, "querier", "exactly the submissions")


def test_unknown_extra_signature_lines_are_ignored(forgery: Callable[[str], Forgery]) -> None:
    """C2SP signed notes may carry signatures by keys the verifier does not know; they add
    no fact and are ignored -- but they never count towards the quorum."""
    f = forgery("mean")
    stranger = NoteSigner.generate("someone-else")
    body = f.checkpoint_body()
    _valid(f.build(extra=[stranger.sign(body)]))
    _check(f.build(cosigners=["compute-1", "compute-2"], extra=[stranger.sign(body)]),
           7, "ledger", "2 valid")
