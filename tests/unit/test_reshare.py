"""Resharing the collective key (protocol/dkg.py ``Prior``, protocol/ceremony.py): the
previous nodes still in the consortium deal their shares to the new node set under fresh
transport keys; the key ``Y`` stays, the verification keys change.

Adversaries: a dealer that re-shares something other than its share; a revoked node trying
to deal; a transport key replayed from another run; entries out of the run's order (a deal
before every transport key, a transport key after the first deal, a disclosure); a dealer
that sends a bad share; a dealer that stops after phase 1."""

from __future__ import annotations

import itertools

import pytest
from test_ceremony import _row, _rows

from statledger.proofs.elgamal import encrypt
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import ceremony, dkg
from statledger.protocol.entries import Entry

CID = "ab" * 32
OLD = ("node-a", "node-b", "node-c")


def _fresh(nodes=OLD, threshold=2):
    """A finished 2-of-3 ceremony: its result and every node's share."""
    params = ceremony.params_for(consortium=CID, nodes=nodes, threshold=threshold)
    xs = {n: Scalar.random() for n in nodes}
    keys = {n: base_mul(x) for n, x in xs.items()}
    rows = _rows(ceremony.simulate(params, xs))
    result = ceremony.derive_from_log(params, keys, rows)
    shares = {n: ceremony.key_share(params, keys, rows, n, xs[n]) for n in nodes}
    return params, result, shares


def _reshare_params(old_params, result, new_nodes, threshold, dealers, epoch=1):
    prior = dkg.Prior(old_params.nodes, old_params.threshold,
                      tuple(result.verification_keys[n] for n in old_params.nodes),
                      result.collective_key, tuple(sorted(dealers)))
    return dkg.DkgParams(CID, epoch, tuple(sorted(new_nodes)), threshold, prior)


def _combine(params, shares, subset) -> Scalar:
    lam = dkg.lagrange_at_zero([params.point_of(n) for n in subset])
    return sum((w * shares[n] for w, n in zip(lam, subset, strict=True)), Scalar(0))


def _drive(params, xs, prior_shares, *, skip=(), tamper=None):
    """Every party acts with next_message until nobody does (like the node loops)."""
    rows: list[tuple[int, Entry]] = []
    parties = sorted(set(params.nodes) | set(params.dealers))
    while True:
        acted = False
        for n in parties:
            act = ceremony.next_message(params, {}, rows, n, xs.get(n),
                                        prior_share=prior_shares.get(n))
            if act is None or (n, act[0]) in skip:
                continue
            kind, msg = act
            if tamper is not None:
                msg = tamper(kind, n, msg)
            rows.append(_row(len(rows), kind, n, msg))
            acted = True
        if not acted:
            return rows


def _check_new_sharing(params, rows, xs, Y) -> dict[str, Scalar]:
    result = ceremony.derive_from_log(params, {}, rows)
    assert result.collective_key == Y
    shares = {n: ceremony.key_share(params, {}, rows, n, xs[n]) for n in params.nodes}
    for n, s in shares.items():
        assert base_mul(s) == result.verification_keys[n]
    msg = encrypt(Y, 1234)  # data encrypted before the resharing still decrypts
    for subset in itertools.combinations(params.nodes, params.threshold):
        x = _combine(params, shares, subset)
        assert base_mul(x) == Y
        assert msg.C2 - x * msg.C1 == base_mul(Scalar(1234))
    for subset in itertools.combinations(params.nodes, params.threshold - 1):
        if subset:
            assert base_mul(_combine(params, shares, subset)) != Y
    return shares


def test_revoke_one_admit_one_keeps_the_key_and_any_t_new_nodes_decrypt() -> None:
    old, result, old_shares = _fresh()
    # node-c revoked, node-d admitted: node-a and node-b re-share to (a, b, d)
    params = _reshare_params(old, result, ("node-a", "node-b", "node-d"), 2,
                             ("node-a", "node-b"))
    xs = {n: Scalar.random() for n in params.nodes}
    prior = {n: old_shares[n] for n in params.dealers}
    msgs = ceremony.simulate(params, xs, prior)
    assert [k for k, _, _ in msgs] == (["dkg_transport"] * 3 + ["dkg_deal"] * 2
                                       + ["dkg_ack"] * 3 + ["dkg_key"] * 2)
    new = _check_new_sharing(params, _rows(msgs), xs, result.collective_key)
    # the new shares lie on a fresh polynomial: the revoked node's old share plus one new
    # share does not give the key (nor does mixing old and new shares of the same node)
    lam = dkg.lagrange_at_zero([3, 1])
    assert base_mul(lam[0] * old_shares["node-c"] + lam[1] * new["node-a"]) != \
        result.collective_key
    assert new["node-a"] != old_shares["node-a"]


def test_refresh_same_nodes_new_shares_same_key() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    xs = {n: Scalar.random() for n in OLD}
    rows = _drive(params, xs, old_shares)
    new = _check_new_sharing(params, rows, xs, result.collective_key)
    assert all(new[n] != old_shares[n] for n in OLD)
    got = ceremony.derive_from_log(params, {}, rows)
    assert got.verification_keys != result.verification_keys


def test_grow_to_more_nodes_and_another_threshold() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, ("node-a", "node-b", "node-c", "node-d", "node-e"),
                             3, OLD)
    xs = {n: Scalar.random() for n in params.nodes}
    rows = _drive(params, xs, old_shares)
    _check_new_sharing(params, rows, xs, result.collective_key)


def test_a_dealer_resharing_another_value_is_dropped(monkeypatch) -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    xs = {n: Scalar.random() for n in OLD}
    wrong = Scalar.random()

    def tamper(kind, node, msg):
        if node != "node-b" or kind not in ("dkg_deal", "dkg_key"):
            return msg
        # node-b deals ``wrong`` instead of its share (the library refuses to; the
        # adversary patches its own copy of the check away)
        with monkeypatch.context() as m:
            m.setattr(dkg.Prior, "verification_key", lambda self, n: base_mul(wrong))
            st = ceremony.state_of(params, rows_so_far)
            seed = b"\x07" * 32
            d, secret = dkg.deal(params, node, st.transport_keys(), seed=seed, constant=wrong)
            if kind == "dkg_deal":
                return d.to_bytes()
            return dkg.key_commit(params, st.deals[node][1], secret).to_bytes()

    rows_so_far: list[tuple[int, Entry]] = []
    parties = sorted(OLD)
    while True:
        acted = False
        for n in parties:
            try:
                act = ceremony.next_message(params, {}, rows_so_far, n, xs[n],
                                            prior_share=old_shares[n])
            except VerificationError:  # node-b's library will not commit to its forged deal
                assert n == "node-b"
                st = ceremony.state_of(params, rows_so_far)
                act = None if n in st.keys else ("dkg_key", b"")
            if act is None:
                continue
            rows_so_far.append(_row(len(rows_so_far), act[0], n, tamper(act[0], n, act[1])))
            acted = True
        if not acted:
            break
    got = ceremony.derive_from_log(params, {}, rows_so_far)
    assert got.qual == ("node-a", "node-c")  # node-b dropped, the key unchanged
    assert "previous verification key" in got.ignored["node-b"]
    assert got.collective_key == result.collective_key
    # with only two dealers (a 2-of-3 key after a revocation) the run cannot finish
    params2 = _reshare_params(old, result, ("node-a", "node-b", "node-d"), 2,
                              ("node-a", "node-b"))
    xs2 = {n: Scalar.random() for n in params2.nodes}
    rows2 = _drive(params2, xs2, old_shares, skip={("node-b", "dkg_key")})
    with pytest.raises(dkg.DkgIncomplete) as ei:
        ceremony.derive_from_log(params2, {}, rows2)
    assert ei.value.party == "node-b" and "1 of the 2" in ei.value.reason


def test_the_library_refuses_to_deal_a_value_that_is_not_the_share() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    keys = {n: base_mul(Scalar.random()) for n in OLD}
    with pytest.raises(MalformedError, match="previous share"):
        dkg.deal(params, "node-a", keys, constant=old_shares["node-b"])
    with pytest.raises(MalformedError, match="previous share"):
        dkg.deal(params, "node-a", keys)
    fresh = ceremony.params_for(consortium=CID, nodes=OLD, threshold=2)
    with pytest.raises(MalformedError, match="no previous share"):
        dkg.deal(fresh, "node-a", keys, constant=old_shares["node-a"])


def test_a_revoked_node_cannot_deal_or_ack() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, ("node-a", "node-b", "node-d"), 2,
                             ("node-a", "node-b"))
    xs = {n: Scalar.random() for n in params.nodes}
    rows = _drive(params, xs, old_shares)
    # node-c (revoked: not a dealer, not a node) tries to deal its old share
    keys = ceremony.state_of(params, rows).transport_keys()
    with pytest.raises(MalformedError, match="not a dealer"):
        dkg.deal(params, "node-c", keys, constant=old_shares["node-c"])
    forged = _row(len(rows), "dkg_deal", "node-c", b"\x01")
    with pytest.raises(VerificationError, match="not a dealer") as ei:
        ceremony.state_of(params, [rows[0], forged])
    assert ei.value.party == "node-c"
    ack = _row(len(rows), "dkg_ack", "node-c", ceremony.pack([b"\x00" * 32]))
    with pytest.raises(VerificationError, match="not a compute node") as ei:
        ceremony.state_of(params, [*rows[:6], ack])
    assert ei.value.party == "node-c"


def test_order_rules_of_a_resharing() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    xs = {n: Scalar.random() for n in OLD}
    msgs = ceremony.simulate(params, xs, old_shares)
    kinds = [k for k, _, _ in msgs]
    first_deal = kinds.index("dkg_deal")
    # a deal before every transport key
    early = [msgs[0], msgs[first_deal]]
    with pytest.raises(VerificationError, match="before every node's transport key"):
        ceremony.state_of(params, _rows(early))
    # a transport key after the first deal (a second one by the same node is refused too)
    late = [*msgs[:first_deal + 1], msgs[0]]
    with pytest.raises(VerificationError, match="after the first deal|two transport keys"):
        ceremony.state_of(params, _rows(late))
    # a disclosure, in any phase
    disc = ("dkg_disclosure", "node-a", b"\x02")
    with pytest.raises(VerificationError, match="in a resharing") as ei:
        ceremony.state_of(params, _rows([*msgs, disc]))
    assert ei.value.party == "node-a"
    # a transport key in a fresh ceremony
    fresh = ceremony.params_for(consortium=CID, nodes=OLD, threshold=2)
    with pytest.raises(VerificationError, match="fresh key ceremony"):
        ceremony.state_of(fresh, _rows([msgs[0]]))


def test_a_transport_key_from_another_run_or_node_is_refused() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    other_epoch = _reshare_params(old, result, OLD, 2, OLD, epoch=2)
    x = Scalar.random()
    replayed = dkg.transport_key(other_epoch, "node-a", x).to_bytes()
    with pytest.raises(VerificationError, match="transport key") as ei:
        ceremony.state_of(params, _rows([("dkg_transport", "node-a", replayed)]))
    assert ei.value.party == "node-a"
    theirs = dkg.transport_key(params, "node-b", x).to_bytes()
    with pytest.raises(VerificationError, match="carries node-b's key"):
        ceremony.state_of(params, _rows([("dkg_transport", "node-a", theirs)]))


def test_a_bad_share_is_complained_about_and_its_dealer_dropped() -> None:
    old, result, old_shares = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    xs = {n: Scalar.random() for n in OLD}

    def tamper(kind, node, msg):
        if kind != "dkg_deal" or node != "node-c":
            return msg
        d = dkg.Deal.from_bytes(msg, params)
        sh = d.shares[0]
        bad = dkg.EncryptedShare(sh.R, bytes([sh.ct[0] ^ 1]) + sh.ct[1:], sh.proof)
        return dkg.Deal(d.dealer, d.commitments, (bad, *d.shares[1:])).to_bytes()

    rows = _drive(params, xs, old_shares, tamper=tamper)
    got = ceremony.derive_from_log(params, {}, rows)
    assert "node-c" in got.disqualified and got.qual == ("node-a", "node-b")
    _check_new_sharing(params, rows, xs, result.collective_key)


def test_transport_key_codec_is_strict() -> None:
    old, result, _ = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    tk = dkg.transport_key(params, "node-a", Scalar.random())
    raw = tk.to_bytes()
    assert dkg.TransportKey.from_bytes(raw) == tk
    dkg.verify_transport_key(params, tk)
    for cut in (0, 1, len(raw) - 1):
        with pytest.raises(MalformedError):
            dkg.TransportKey.from_bytes(raw[:cut])
    with pytest.raises(MalformedError):
        dkg.TransportKey.from_bytes(raw + b"\x00")
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 0x01
        try:
            got = dkg.TransportKey.from_bytes(bytes(flipped))
        except MalformedError:
            continue
        with pytest.raises(VerificationError):
            dkg.verify_transport_key(params, got)
    with pytest.raises(MalformedError):
        dkg.transport_key(params, "node-z", Scalar.random())
    with pytest.raises(MalformedError):
        dkg.transport_key(params, "node-a", Scalar(0))


def test_prior_and_context_bind_the_previous_sharing() -> None:
    old, result, _ = _fresh()
    params = _reshare_params(old, result, OLD, 2, OLD)
    fresh = ceremony.params_for(consortium=CID, nodes=OLD, threshold=2)
    assert params.context() != fresh.context()
    vks = tuple(result.verification_keys[n] for n in OLD)
    other = dkg.Prior(OLD, 2, (vks[1], vks[0], vks[2]), result.collective_key, OLD)
    assert dkg.DkgParams(CID, 1, OLD, 2, other).context() != params.context()
    with pytest.raises(MalformedError, match="cannot re-share"):
        dkg.Prior(OLD, 2, vks, result.collective_key, ("node-a",))
    with pytest.raises(MalformedError, match="every dealer"):
        dkg.Prior(OLD, 2, vks, result.collective_key, ("node-a", "node-z"))
    with pytest.raises(MalformedError, match="one verification key"):
        dkg.Prior(OLD, 2, vks[:2], result.collective_key, OLD)
