"""The key ceremony on the log (protocol/ceremony.py): which dkg_* entries count, in which
phase, and what each node logs next.  Each rule gets an adversary: a premature key
commitment, a late deal, a duplicate, an outsider, a forged complaint, a cheating dealer, a
dealer that stops after phase 1."""

from __future__ import annotations

import itertools

import pytest

from statledger.proofs.elgamal import encrypt
from statledger.proofs.errors import MalformedError, VerificationError
from statledger.proofs.group import Scalar, base_mul
from statledger.protocol import ceremony, dkg
from statledger.protocol.entries import KINDS, Entry

NODES = ("node-a", "node-b", "node-c")
CID = "cd" * 32


def _setup(threshold: int = 2, nodes: tuple[str, ...] = NODES):
    secrets_ = {n: Scalar.random() for n in nodes}
    keys = {n: base_mul(x) for n, x in secrets_.items()}
    params = ceremony.params_for(consortium=CID, nodes=nodes, threshold=threshold)
    return params, secrets_, keys


def _row(i: int, kind: str, node: str, message: bytes) -> tuple[int, Entry]:
    return i, KINDS[kind](node, message.hex())  # type: ignore[call-arg]


def _rows(msgs):
    return [_row(i, k, n, m) for i, (k, n, m) in enumerate(msgs)]


def _run(params, secrets_, keys, *, skip_key=(), tamper=None, reconstruct=False):
    """Drive every node with next_message until nobody acts (like the node loops do)."""
    rows: list[tuple[int, Entry]] = []
    while True:
        acted = False
        for n in params.nodes:
            act = ceremony.next_message(params, keys, rows, n, secrets_[n],
                                        reconstruct=reconstruct)
            if act is None or (n in skip_key and act[0] == "dkg_key"):
                continue
            kind, msg = act
            if tamper is not None:
                msg = tamper(kind, n, msg)
            rows.append(_row(len(rows), kind, n, msg))
            acted = True
        if not acted:
            return rows


def _check_threshold_key(params, keys, rows, secrets_) -> dkg.DkgResult:
    result = ceremony.derive_from_log(params, keys, rows)
    shares = {n: ceremony.key_share(params, keys, rows, n, secrets_[n]) for n in params.nodes}
    for n, x in shares.items():
        assert base_mul(x) == result.verification_keys[n]
    t = params.threshold
    msg = encrypt(result.collective_key, 41)
    for subset in itertools.combinations(params.nodes, t):
        pts = [params.point_of(n) for n in subset]
        lam = dkg.lagrange_at_zero(pts)
        x = sum((w * shares[n] for w, n in zip(lam, subset, strict=True)), Scalar(0))
        assert base_mul(x) == result.collective_key
        assert msg.C2 - x * msg.C1 == base_mul(Scalar(41))
    return result


def test_honest_ceremony_gives_a_t_of_n_key_any_t_decrypt() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    assert [k for k, _, _ in msgs] == ["dkg_deal"] * 3 + ["dkg_ack"] * 3 + ["dkg_key"] * 3
    result = _check_threshold_key(params, keys, _rows(msgs), secrets_)
    assert result.qual == NODES and not result.disqualified


def test_fewer_than_t_shares_do_not_give_the_key() -> None:
    params, secrets_, keys = _setup(threshold=3, nodes=NODES + ("node-d",))
    rows = _rows(ceremony.simulate(params, secrets_))
    result = ceremony.derive_from_log(params, keys, rows)
    shares = {n: ceremony.key_share(params, keys, rows, n, secrets_[n]) for n in params.nodes}
    lam = dkg.lagrange_at_zero([1, 2])
    x = lam[0] * shares["node-a"] + lam[1] * shares["node-b"]
    assert base_mul(x) != result.collective_key


def test_incomplete_ceremony_is_reported_with_who_it_waits_for() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    with pytest.raises(dkg.DkgIncomplete) as exc:
        ceremony.derive_from_log(params, keys, _rows(msgs[:2]))
    assert exc.value.party == "node-c" and "deal" in exc.value.reason
    with pytest.raises(dkg.DkgIncomplete) as exc:
        ceremony.derive_from_log(params, keys, _rows(msgs[:5]))
    assert exc.value.party == "node-c" and "ack" in exc.value.reason


def test_key_commitment_before_every_ack_aborts_the_ceremony() -> None:
    """A rushing node that publishes its Feldman values while complaints may still change
    QUAL: refused (the ledger never appends it; a log that holds it fails)."""
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    deals, acks, key_msgs = msgs[:3], msgs[3:6], msgs[6:]
    early = deals + acks[:2] + [key_msgs[0]] + acks[2:]
    with pytest.raises(VerificationError) as exc:
        ceremony.state_of(params, _rows(early))
    assert exc.value.party == "node-a" and "before every node acked" in exc.value.reason


def test_deal_after_the_first_ack_does_not_count() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    late = msgs[:2] + [msgs[3]] + [msgs[2]]
    st = ceremony.state_of(params, _rows(late))
    assert st.late_deals == ["node-c"] and "node-c" not in st.deals


@pytest.mark.parametrize("kind_pos", [0, 3, 6])
def test_a_second_message_of_one_kind_is_refused(kind_pos: int) -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    dup = msgs[: kind_pos + 1] + [msgs[kind_pos]] + msgs[kind_pos + 1:]
    with pytest.raises(VerificationError) as exc:
        ceremony.state_of(params, _rows(dup))
    assert exc.value.party == msgs[kind_pos][1]


def test_an_outsider_cannot_take_part() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    rows = _rows(msgs[:1]) + [_row(1, "dkg_deal", "mallory", msgs[1][2])]
    with pytest.raises(VerificationError) as exc:
        ceremony.state_of(params, rows)
    assert exc.value.party == "mallory"


def test_a_deal_carried_by_another_node_is_refused() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    rows = _rows(msgs[:1]) + [_row(1, "dkg_deal", "node-b", msgs[0][2])]
    with pytest.raises(VerificationError) as exc:
        ceremony.state_of(params, rows)
    assert exc.value.party == "node-b"


def test_an_ack_cannot_carry_another_nodes_complaint() -> None:
    params, secrets_, keys = _setup()
    msgs = ceremony.simulate(params, secrets_)
    deal_c = dkg.Deal.from_bytes(msgs[2][2], params)
    forged = dkg.disclose(params, deal_c, "node-a", secrets_["node-a"], keys["node-a"])
    rows = _rows(msgs[:3]) + [_row(3, "dkg_ack", "node-b", ceremony.pack(
        [ceremony.run_digest(params), forged.to_bytes()]))]
    with pytest.raises(VerificationError) as exc:
        ceremony.state_of(params, rows)
    assert exc.value.party == "node-b"


@pytest.mark.parametrize("bad", [b"", b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00",
                                 b"\x00\x00\x00\x01\x00\x00\x00\x05abc"])
def test_malformed_ack_payloads_are_refused(bad: bytes) -> None:
    with pytest.raises(MalformedError):
        ceremony.unpack(bad, "ack")


def test_cheating_dealer_is_disqualified_and_the_key_stays_consistent() -> None:
    """node-a deals shares that match none of its commitments (it swaps in node-b's): every
    node complains, the complaints are justified, node-a leaves QUAL, the key is the other
    two dealers' and still works T-of-N."""
    params, secrets_, keys = _setup()
    other = dkg.deal(params, "node-b", keys)[0]

    def tamper(kind: str, node: str, msg: bytes) -> bytes:
        if kind == "dkg_deal" and node == "node-a":
            d = dkg.Deal.from_bytes(msg, params)
            return dkg.Deal(d.dealer, other.commitments, d.shares).to_bytes()
        return msg

    rows = _run(params, secrets_, keys, tamper=tamper)
    acks = [e for _, e in rows if e.KIND == "dkg_ack"]
    assert all(ceremony.unpack(e.message_bytes(), "ack")[1:] for e in acks)  # all complained
    assert not any(e.KIND == "dkg_key" and e.node == "node-a" for _, e in rows)
    result = ceremony.derive_from_log(params, keys, rows)
    assert "node-a" in result.disqualified and result.qual == ("node-b", "node-c")
    _check_threshold_key(params, keys, rows, secrets_)
    # a disqualified node never discloses honest dealers' shares, whatever its patience
    assert ceremony.next_message(params, keys, rows, "node-a", secrets_["node-a"],
                                 reconstruct=True) is None


def test_a_false_complaint_changes_nothing() -> None:
    params, secrets_, keys = _setup()

    def tamper(kind: str, node: str, msg: bytes) -> bytes:
        if kind == "dkg_ack" and node == "node-c":  # node-c falsely accuses node-a
            return ceremony.pack([ceremony.run_digest(params),
                                  dkg.disclose(params, deal_a[0], "node-c", secrets_["node-c"],
                                               keys["node-c"]).to_bytes()])
        return msg

    deal_a: list[dkg.Deal] = []
    honest = ceremony.simulate(params, secrets_)
    deal_a.append(dkg.Deal.from_bytes(honest[0][2], params))
    rows = _rows([m if not (m[0] == "dkg_ack" and m[1] == "node-c")
                  else (m[0], m[1], tamper(m[0], m[1], m[2])) for m in honest])
    result = ceremony.derive_from_log(params, keys, rows)
    assert result.qual == NODES and "node-c" in result.ignored
    _check_threshold_key(params, keys, rows, secrets_)


def test_a_dealer_that_stops_after_phase_1_is_reconstructed_not_dropped() -> None:
    """Dropping it would let a rushing dealer choose, after seeing the others' A_i0, whether
    its contribution counts.  The others disclose their shares of it; the key is the one it
    would have been."""
    params, secrets_, keys = _setup()
    honest = ceremony.derive_from_log(params, keys, _rows(ceremony.simulate(params, secrets_)))
    rows = _run(params, secrets_, keys, skip_key=("node-c",))
    # a node whose own key commitment is not on the log does not disclose (a ledger hiding
    # every honest key commitment must not harvest honest polynomials)
    no_keys = [r for r in rows if r[1].KIND != "dkg_key"]
    act = ceremony.next_message(params, keys, no_keys, "node-a", secrets_["node-a"],
                                reconstruct=True)
    assert act is not None and act[0] == "dkg_key"
    with pytest.raises(dkg.DkgIncomplete) as exc:
        ceremony.derive_from_log(params, keys, rows)
    assert exc.value.party == "node-c"
    # patience over: the other nodes disclose their shares of node-c's polynomials
    for n in ("node-a", "node-b"):
        act = ceremony.next_message(params, keys, rows, n, secrets_[n], reconstruct=True)
        assert act is not None and act[0] == "dkg_disclosure"
        rows.append(_row(len(rows), act[0], n, act[1]))
    result = _check_threshold_key(params, keys, rows, secrets_)
    assert result.reconstructed == ("node-c",)
    assert result.collective_key == honest.collective_key  # deterministic dealing: same key


def test_a_restarted_node_deals_the_same_polynomials() -> None:
    params, secrets_, keys = _setup()
    d1 = ceremony.next_message(params, keys, [], "node-a", secrets_["node-a"])
    d2 = ceremony.next_message(params, keys, [], "node-a", secrets_["node-a"])
    assert d1 is not None and d2 is not None
    c1 = dkg.Deal.from_bytes(d1[1], params).commitments
    assert c1 == dkg.Deal.from_bytes(d2[1], params).commitments
    other = ceremony.params_for(consortium="ef" * 32, nodes=NODES, threshold=2)
    d3 = ceremony.next_message(other, keys, [], "node-a", secrets_["node-a"])
    assert d3 is not None and dkg.Deal.from_bytes(d3[1], other).commitments != c1


def test_params_bind_consortium_nodes_threshold_and_epoch() -> None:
    base = ceremony.params_for(consortium=CID, nodes=NODES, threshold=2)
    for other in (ceremony.params_for(consortium="ef" * 32, nodes=NODES, threshold=2),
                  ceremony.params_for(consortium=CID, nodes=NODES, threshold=3),
                  ceremony.params_for(consortium=CID, nodes=NODES[:2], threshold=2),
                  ceremony.params_for(consortium=CID, nodes=NODES, threshold=2, epoch=1)):
        assert other.context() != base.context()
    with pytest.raises(MalformedError):
        ceremony.params_for()


def test_an_ack_of_another_run_is_refused() -> None:
    """An ack is bound to its run (its first item is the run's digest): a node's "no
    complaint" of one ceremony is not its ack of another (the log would otherwise take a
    byte-identical copy for the new one), nor is an ack without the digest."""
    params, secrets_, keys = _setup()
    other = ceremony.params_for(consortium=CID, nodes=NODES, threshold=2, epoch=5)
    msgs = ceremony.simulate(params, secrets_)
    for payload in (ceremony.pack([ceremony.run_digest(other)]), ceremony.pack([])):
        rows = _rows(msgs[:3]) + [_row(3, "dkg_ack", "node-a", payload)]
        with pytest.raises(VerificationError, match="not bound to this run") as exc:
            ceremony.state_of(params, rows)
        assert exc.value.party == "node-a"
    assert ceremony.state_of(params, _rows(msgs[:4])).acks  # twin: the honest ack
