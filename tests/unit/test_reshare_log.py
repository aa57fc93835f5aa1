"""The key lifecycle on the log (step 6 by key epoch, docs/dkg.md "Key lifecycle"): after a
membership change that revokes a compute node (or asks for a refresh) the previous nodes
re-share the key; the ledger's ``rekey`` entry supersedes the setup for every later query.

Adversaries, each with its honest twin: a log operator whose rekey misstates the run
(verification keys, a new collective key), comes before the run's end, or has no change
behind it; a revoked node taking part in the resharing or decrypting afterwards; a query
logged before the rekey decrypted with the new shares; a second setup; a rekey before the
setup."""

from __future__ import annotations

from dataclasses import replace

from test_consortium_log import ALL_STEPS, Log, _fails, _steps
from test_entries_helpers import Ceremony
from test_protocol_checks import GENESIS_2OF3

from statledger.proofs.group import Point, Scalar, base_mul
from statledger.protocol import ceremony
from statledger.protocol import entries as E
from statledger.protocol.consortium import MembershipChange

CID = GENESIS_2OF3.genesis.consortium_id


def _founded() -> Log:
    """2-of-3 (node-a, node-b, node-c): genesis, transport keys, ceremony, setup."""
    return Log(genesis=GENESIS_2OF3).roster_entries()


def _change(log: Log, *, revoke: tuple[str, ...] = (), refresh: bool = False) -> int:
    c = MembershipChange(log.cid, log.roster.seq + 1, log.roster.head, revoke=revoke,
                         refresh=refresh)
    for s in ("node-a", "node-b"):
        c = c.sign(s, log.keys[s])
    return log.membership(c)


def _reshare(log: Log, *, extra: tuple[tuple[E.Entry, str], ...] = (),
             drop: tuple[tuple[str, str], ...] = (), rekey: bool = True,
             collective: Point | None = None, keys: list[Point] | None = None) -> Ceremony:
    """Log an honest resharing of the key in force among the roster's compute nodes, and the
    ``rekey`` entry the log writes for it (fields replaceable by the adversary)."""
    assert log.setup_entry is not None and log.ceremony_of_setup is not None
    params = ceremony.run_params(log.cid, log.roster, log.setup_entry)
    xs = {n: Scalar.random() for n in params.nodes}
    prior = {n: log.ceremony_of_setup.shares[n] for n in params.dealers}
    msgs = [m for m in ceremony.simulate(params, xs, prior) if (m[0], m[1]) not in drop]
    start = len(log.entries)
    for kind, node, message in msgs:
        log.add(E.KINDS[kind](node, message.hex()), node)  # type: ignore[call-arg]
    rows = list(enumerate(log.entries))[start:]
    for entry, signer in extra:
        log.add(entry, signer)
    result = ceremony.derive_from_log(params, {}, rows) if not drop else None
    shares = ({n: ceremony.key_share(params, {}, rows, n, xs[n]) for n in params.nodes}
              if result is not None else {})
    Y = result.collective_key if result else log.ceremony_of_setup.collective
    vks = dict(result.verification_keys) if result else {n: base_mul(Scalar(5))
                                                         for n in params.nodes}
    cer = Ceremony(params, params.nodes, params.threshold, tuple(log.entries[start:]), Y, vks,
                   shares)
    if rekey:
        entry = E.RekeyEntry(log.cid, params.nodes, params.threshold,
                             (collective or Y).to_bytes().hex(),
                             tuple((keys[i] if keys else vks[n]).to_bytes().hex()
                                   for i, n in enumerate(params.nodes)))
        log.add(entry, "ledger")
        log.setup_entry = entry
        log.ceremony_of_setup = cer
        log.compute = params.nodes
    return cer


def _query(log: Log) -> Log:
    log.query()
    log.submit("prov-1")
    log.submit("prov-2")
    return log


def test_revoke_a_compute_node_reshare_and_the_next_query_verifies() -> None:
    log = _founded()
    old = log.ceremony_of_setup
    _change(log, revoke=("node-c",))
    cer = _reshare(log)
    assert cer.nodes == ("node-a", "node-b") and cer.collective == old.collective
    rows = _query(log).finish().rows()
    details: dict[int, str] = {}
    from statledger.protocol.checks import check_query
    from statledger.protocol.view import parse_entries
    view = check_query(parse_entries(rows), pinned=CID, on_step=details.__setitem__)
    assert list(details) == ALL_STEPS
    assert "key epoch 2: 1 resharing(s) re-derived" in details[6]
    assert view.setup is not None and view.setup.KIND == "rekey"


def test_a_refresh_gives_new_shares_for_the_same_nodes() -> None:
    log = _founded()
    old = log.ceremony_of_setup
    _change(log, refresh=True)
    cer = _reshare(log)
    assert cer.nodes == old.nodes and cer.collective == old.collective
    assert all(cer.shares[n] != old.shares[n] for n in cer.nodes)
    assert _steps(_query(log).finish().rows(), pinned=CID) == ALL_STEPS


def test_a_query_logged_before_the_rekey_keeps_the_key_it_started_with() -> None:
    log = _founded()
    _query(log)
    before = log.ceremony_of_setup
    setup_before = log.setup_entry
    _change(log, revoke=("node-c",))
    _reshare(log)
    # its decryption shares come from the old epoch's key shares (the key in force at it)
    log.ceremony_of_setup, log.setup_entry = before, setup_before
    log.compute = before.nodes
    rows = log.finish(decrypting=("node-a", "node-b")).rows()
    assert _steps(rows, pinned=CID) == ALL_STEPS


def test_new_shares_do_not_decrypt_a_query_of_the_old_epoch() -> None:
    log = _founded()
    _query(log)
    _change(log, revoke=("node-c",))
    _reshare(log)  # log.ceremony_of_setup is now the new sharing
    rows = log.finish().rows()
    _fails(rows, 12, "researcher", "names node-a, whose decryption shares are invalid",
           pinned=CID)


def test_the_revoked_node_cannot_decrypt_after_the_rekey() -> None:
    log = _founded()
    old = log.ceremony_of_setup
    _change(log, revoke=("node-c",))
    _reshare(log)
    _query(log)
    new = log.ceremony_of_setup
    # node-c still holds its old share and publishes a decryption share with it
    mixed = Ceremony(new.params, ("node-a", "node-b", "node-c"), 2, new.entries,
                     new.collective, {**new.verification, "node-c": old.verification["node-c"]},
                     {**new.shares, "node-c": old.shares["node-c"]})
    log.ceremony_of_setup = mixed
    rows = log.finish(decrypting=("node-a", "node-b", "node-c"),
                      decryptors=("node-a", "node-b")).rows()
    _fails(rows, 12, "node-c", "node-c", pinned=CID)
    # its twin: the same query without node-c's share verifies
    log2 = _founded()
    _change(log2, revoke=("node-c",))
    _reshare(log2)
    assert _steps(_query(log2).finish().rows(), pinned=CID) == ALL_STEPS


def test_a_rekey_with_other_verification_keys_fails_step_6() -> None:
    log = _founded()
    _change(log, revoke=("node-c",))
    _reshare(log, keys=[base_mul(Scalar(7)), base_mul(Scalar(8))])
    rows = _query(log).rows()
    _fails(rows, 6, "ledger", "rekey.verification_keys are not the ones", pinned=CID,
           through=8)


def test_a_rekey_with_a_new_collective_key_fails_step_6() -> None:
    log = _founded()
    _change(log, revoke=("node-c",))
    _reshare(log, collective=base_mul(Scalar(99)))
    _fails(_query(log).rows(), 6, "ledger", "rekey.collective_key is not the key", pinned=CID,
           through=8)


def test_a_rekey_before_the_end_of_the_resharing_fails_step_6() -> None:
    log = _founded()
    _change(log, revoke=("node-c",))
    _reshare(log, drop=(("dkg_key", "node-b"),))
    _fails(_query(log).rows(), 6, "ledger", "the rekey precedes the end of the key ceremony",
           pinned=CID, through=8)


def test_a_rekey_without_a_change_fails_step_6() -> None:
    log = _founded()
    log.roster = replace(log.roster, compute_epoch=log.roster.compute_epoch + 1)  # not logged
    _reshare(log)
    _fails(_query(log).rows(), 6, "ledger", "without a membership change or refresh",
           pinned=CID, through=8)


def test_the_revoked_node_taking_part_in_the_resharing_fails_step_6() -> None:
    log = _founded()
    _change(log, revoke=("node-c",))
    # node-c, revoked, logs an ack of its own in the resharing
    ack = E.DkgAckEntry("node-c", ceremony.pack([b"\x00" * 32]).hex())
    _reshare(log, extra=((ack, "node-c"),))
    _fails(_query(log).rows(), 6, "node-c", "revoked", pinned=CID, through=8)


def test_a_second_setup_or_an_early_rekey_fails_step_5() -> None:
    log = _founded()
    _change(log, revoke=("node-c",))
    _reshare(log)
    rows = _query(log).rows()
    rekey_at = next(i for i, e in enumerate(log.entries) if e.KIND == "rekey")
    as_setup = E.sign(E.SetupEntry(**{f: getattr(log.entries[rekey_at], f) for f in (
        "consortium", "compute", "threshold", "collective_key", "verification_keys")}),
        log.keys["ledger"])
    forged = [(i, as_setup.to_bytes() if i == rekey_at else b) for i, b in rows]
    _fails(forged, 5, None, "two setup entries", pinned=CID)
    setup_at = next(i for i, e in enumerate(log.entries) if e.KIND == "setup")
    early = E.sign(E.RekeyEntry(**{f: getattr(log.entries[setup_at], f) for f in (
        "consortium", "compute", "threshold", "collective_key", "verification_keys")}),
        log.keys["ledger"])
    forged = [(i, early.to_bytes() if i == setup_at else b) for i, b in rows]
    _fails(forged, 5, None, "rekey entry before the setup", pinned=CID)
