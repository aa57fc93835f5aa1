"""``statledger verify`` and ``statledger audit`` on real and broken inputs (issue 6).

Exit codes: 0 all valid, 1 some invalid, 2 not a certificate at all -- always with a
message, never a traceback.  ``--json`` prints one object per file.  ``audit`` replays the
real ledger's SQLite file (passes: every query valid, the three counts shown) and a tampered
copy (fails: exit 1, the tampered query invalid).  Incomplete queries and step 7 of the audit
are in test_verifier_audit.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from forge import Adversary, Forgery, trust_bytes, v1_trust_bytes
from typer.testing import CliRunner

from statledger.nodes.cli import app
from statledger.protocol import entries as E
from statledger.protocol.cbor import cbor_bytes, parse_cbor
from statledger.verifier.certificate import MAGIC, parse_certificate

JSON_KEYS = {"file", "valid", "step", "reason", "party", "steps"}


def _cli(*args: str) -> tuple[int, str]:
    """Run the CLI in-process; stdout+stderr, exit code; fails on any uncaught exception."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}\n{result.output}")
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in out, out
    return result.exit_code, out


def _subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a fresh interpreter."""
    return subprocess.run(  # noqa: S603 -- fixed argv
        [sys.executable, "-m", "statledger", *args], capture_output=True, text=True,
        timeout=300, check=False)


def _json_lines(out: str) -> list[dict[str, Any]]:
    objs = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            objs.append(json.loads(line))
    return objs


@pytest.fixture(scope="module")
def certs(verifier_run: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Certificate files: the real ones, a forged-invalid one and malformed ones."""
    d = tmp_path_factory.mktemp("cli-certs")
    out: dict[str, Path] = {}
    for name, raw in verifier_run.certificates.items():
        out[name] = d / f"{name}.cert"
        out[name].write_bytes(raw)
    cert = parse_certificate(verifier_run.cert("mean"))
    entries = list(cert.entries)
    entries[3] = replace(entries[3], proof=(bytes(32), *entries[3].proof[1:]))
    out["not_in_log"] = d / "not_in_log.cert"
    out["not_in_log"].write_bytes(replace(cert, entries=tuple(entries)).to_bytes())
    return out


def _write(tmp: Path, name: str, data: bytes | str) -> Path:
    p = tmp / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# --------------------------------------------------------------------------------------
# verify: valid / invalid
# --------------------------------------------------------------------------------------


def test_verify_valid_human(certs: dict[str, Path]) -> None:
    code, out = _cli("verify", str(certs["mean"]))
    assert code == 0, out
    assert "VALID" in out and "INVALID" not in out
    assert "self-asserted" in out  # says which trust policy was used
    # one plain-language verdict by default; the numbered steps with --verbose
    assert "VALID: 4 data owners contributed" in out and "numbers unaltered" in out
    assert "compute nodes decrypted" in out
    assert "( 1) ok" not in out
    code, out = _cli("verify", "--verbose", str(certs["mean"]))
    assert code == 0, out
    for n in range(1, 16):
        assert f"({n:>2}) ok" in out


def test_verify_json_shape(certs: dict[str, Path]) -> None:
    code, out = _cli("verify", "--json", str(certs["mean"]), str(certs["not_in_log"]))
    assert code == 1, out
    objs = _json_lines(out)
    assert len(objs) == 2
    good, bad = objs
    for o in objs:
        assert JSON_KEYS <= set(o), o
        assert isinstance(o["steps"], list)
        for s in o["steps"]:
            assert {"step", "title", "ok", "detail"} <= set(s)
    assert good["valid"] is True and good["step"] is None and good["reason"] is None
    assert [s["step"] for s in good["steps"]] == list(range(1, 16))
    assert good["file"] == str(certs["mean"])
    assert bad["valid"] is False and bad["step"] == 4 and bad["party"] == "ledger"
    assert "not in the log" in bad["reason"]
    assert bad["steps"][-1] == {"step": 4, "title": bad["steps"][-1]["title"], "ok": False,
                                "detail": bad["reason"]}


def test_verify_invalid_human(certs: dict[str, Path]) -> None:
    code, out = _cli("verify", str(certs["not_in_log"]))
    assert code == 1
    assert "INVALID" in out and "step 4 failed" in out and "blamed: ledger" in out


def test_verify_all_real_certificates_subprocess(certs: dict[str, Path]) -> None:
    files = [str(certs[n]) for n in ("mean", "mean_other", "crosstab", "dp_sum")]
    proc = _subprocess("verify", "--json", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    objs = _json_lines(proc.stdout)
    assert [o["valid"] for o in objs] == [True] * 4
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------
# verify: not a certificate -> exit 2 with a message, never a traceback
# --------------------------------------------------------------------------------------


def _raw_cert(cert: Any, *, magic: bytes = MAGIC, count: int | None = None,
              records: list[tuple[int, bytes, list[bytes]]] | None = None,
              proof_count: int | None = None, texts: tuple[bytes, ...] | None = None) -> bytes:
    """The v2 layout written by hand, with no checks, so that any field can be wrong."""
    t = texts if texts is not None else (cert.origin.encode(), cert.log_key.encode(),
                                         cert.checkpoint.encode())
    recs = records if records is not None else [(e.index, e.data, list(e.proof))
                                                for e in cert.entries]
    out = [magic, struct.pack(">H", len(t[0])), t[0], struct.pack(">H", len(t[1])), t[1],
           struct.pack(">I", len(t[2])), t[2], struct.pack(">I", len(recs) if count is None
                                                           else count)]
    for i, data, proof in recs:
        out += [struct.pack(">QI", i, len(data)), data,
                bytes([len(proof) if proof_count is None else proof_count]), *proof]
    return b"".join(out)


def _malformed_inputs(verifier_run: Any) -> dict[str, bytes]:
    raw = verifier_run.cert("mean")
    cert = parse_certificate(raw)
    assert _raw_cert(cert) == raw
    recs = [(e.index, e.data, list(e.proof)) for e in cert.entries]
    first = recs[0]
    v1 = json.dumps({"format": "statledger-certificate/v1", "origin": cert.origin,
                     "log_key": cert.log_key, "checkpoint": cert.checkpoint,
                     "entries": []}).encode()
    return {
        "truncated": raw[: len(raw) // 2],
        "truncated-1": raw[:-1],
        "magic-only": MAGIC,
        "empty": b"",
        "binary": bytes(range(256)) * 4,
        "v1-json": v1,
        "v1-json-indented": b"\n " + v1,
        "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
        "wrong-version": raw.replace(b"certificate/v2", b"certificate/v3", 1),
        "wrong-magic": b"X" + raw[1:],
        "trailing-byte": raw + b"\x00",
        "count-zero": _raw_cert(cert, count=0, records=[]),
        "count-huge": _raw_cert(cert, count=2**32 - 1),
        "count-too-many": _raw_cert(cert, count=100_001),
        "count-one-more": _raw_cert(cert, count=len(recs) + 1),
        "count-one-less": _raw_cert(cert, count=len(recs) - 1),
        "origin-empty": _raw_cert(cert, texts=(b"", cert.log_key.encode(),
                                               cert.checkpoint.encode())),
        "origin-not-utf8": _raw_cert(cert, texts=(b"\xff\xfe", cert.log_key.encode(),
                                                  cert.checkpoint.encode())),
        "index-huge": _raw_cert(cert, records=[*recs[:-1], (2**64 - 1, *recs[-1][1:])]),
        "indices-unsorted": _raw_cert(cert, records=list(reversed(recs))),
        "index-repeated": _raw_cert(cert, records=[first, *recs]),
        "data-empty": _raw_cert(cert, records=[(first[0], b"", first[2]), *recs[1:]]),
        "proof-too-long": _raw_cert(cert, records=[(first[0], first[1], [bytes(32)] * 65),
                                                   *recs[1:]]),
        "proof-count-lies": _raw_cert(cert, proof_count=3),
    }


def test_malformed_inputs_exit_2(verifier_run: Any, tmp_path: Path) -> None:
    for name, data in _malformed_inputs(verifier_run).items():
        p = _write(tmp_path, f"{name}.cert", data)
        code, out = _cli("verify", str(p))
        assert code == 2, f"{name}: exit {code}: {out}"
        assert "NOT A CERTIFICATE" in out, f"{name}: {out}"
        code, out = _cli("verify", "--json", str(p))
        assert code == 2, f"{name}: exit {code}"
        (obj,) = _json_lines(out)
        assert JSON_KEYS <= set(obj)
        assert obj["valid"] is False and obj["step"] == 1 and obj["reason"], name


def test_malformed_inputs_subprocess_no_traceback(verifier_run: Any, tmp_path: Path) -> None:
    """A whole folder of malformed files through the real entry point: exit 2, a message per
    file, no traceback."""
    inputs = _malformed_inputs(verifier_run)
    for name, data in inputs.items():
        _write(tmp_path, f"{name}.cert", data)
    proc = _subprocess("verify", str(tmp_path))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("NOT A CERTIFICATE") == len(inputs)


def test_unreadable_paths_exit_2(tmp_path: Path) -> None:
    code, out = _cli("verify", str(tmp_path / "nope.cert"))
    assert code == 2 and "cannot read" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _cli("verify", str(empty))
    assert code == 2 and "no certificate files" in out


def test_non_canonical_point_inside_an_entry(verifier_run: Any, tmp_path: Path) -> None:
    """A point that is not canonical SEC1 inside an (authenticated) entry: a certificate, but
    an invalid one -- step 5 (or, unsigned, step 4) -- with exit 1 and a message.

    Bad points: x >= p, an off-curve x, the 0x04 uncompressed prefix, a wrong prefix.
    """
    adv = Adversary(verifier_run.base_dir, verifier_run.origin)
    p_field = 2**256 - 2**32 - 977
    bad_points = {
        "x-over-p": "02" + format(p_field + 1, "064x"),
        "off-curve": "02" + "00" * 31 + "05",
        "bad-prefix": "05" + "11" * 32,
        "uncompressed": "04" + "11" * 32,
    }
    for label, hx in bad_points.items():
        f = Forgery(adv, verifier_run.cert("mean"))
        sidx, setup = f.find("setup")
        obj = setup.to_wire_obj()
        obj["collective_key"] = bytes.fromhex(hx)
        unsigned = {k: v for k, v in obj.items() if k != "sig"}
        sig = adv.identity("ledger").sign(E.SIG_DOMAIN + _canonical(unsigned))
        f.put(sidx, _canonical({**unsigned, "sig": sig}))
        path = _write(tmp_path, f"{label}.cert", f.build())
        code, out = _cli("verify", "--json", str(path))
        (o,) = _json_lines(out)
        assert code == 1, f"{label}: {out}"
        assert o["step"] == 5 and "collective_key" in o["reason"], f"{label}: {o}"


def _canonical(obj: Any) -> bytes:
    from statledger.protocol.cbor import cbor_bytes

    return cbor_bytes(obj)


def test_directory_with_a_mix(certs: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "mix"
    (d / "sub").mkdir(parents=True)
    shutil.copy(certs["mean"], d / "a-valid.cert")
    shutil.copy(certs["not_in_log"], d / "b-invalid.cert")
    _write(d / "sub", "c-truncated.cert", certs["crosstab"].read_bytes()[:100])
    _write(d, "README.txt", "not a certificate and not *.cert: ignored")
    _write(d, "summary.json", "{}")
    code, out = _cli("verify", "--json", str(d))
    assert code == 2, out
    objs = {Path(o["file"]).name: o for o in _json_lines(out)}
    assert set(objs) == {"a-valid.cert", "b-invalid.cert", "c-truncated.cert"}
    assert objs["a-valid.cert"]["valid"] is True
    assert objs["b-invalid.cert"]["step"] == 4
    assert objs["c-truncated.cert"]["step"] == 1
    # valid + invalid only: exit 1
    (d / "sub" / "c-truncated.cert").unlink()
    code, _ = _cli("verify", str(d))
    assert code == 1


def test_trust_file(certs: dict[str, Path], verifier_run: Any, tmp_path: Path) -> None:
    adv = Adversary(verifier_run.base_dir, verifier_run.origin)
    # the consortium's trust file, exported by `statledger consortium export-trust` from the
    # cluster's signed genesis (and the one init_cluster wrote): accepted, pinned
    good = tmp_path / "trust.json"
    code, out = _cli("consortium", "export-trust", str(verifier_run.base_dir / "consortium.json"),
                     "--out", str(good))
    assert code == 0, out
    assert json.loads(good.read_bytes()) == json.loads(adv.trust_file())
    cid = adv.genesis().genesis.consortium_id
    for trust in (good, verifier_run.base_dir / "trust.json"):
        code, out = _cli("verify", "--trust", str(trust), str(certs["mean"]))
        assert code == 0, out
        assert "pinned by" in out and cid[:16] in out
    # another consortium's trust file: same party ids, roles and origin, other keys -- the
    # certificate comes from another log: rejected at step 2, exit 1
    lookalike, _ = adv.lookalike()
    bad = _write(tmp_path, "trust-other-consortium.json", trust_bytes(lookalike))
    code, out = _cli("verify", "--json", "--trust", str(bad), str(certs["mean"]))
    (o,) = _json_lines(out)
    assert code == 1 and o["valid"] is False and o["step"] == 2 and o["party"] == "ledger", o
    assert "another log than the pinned consortium" in o["reason"], o
    code, out = _cli("verify", "--trust", str(bad), str(certs["mean"]))
    assert code == 1 and "INVALID" in out and "step 2 failed" in out, out
    # another consortium with the same log key (one compute key differs): rejected at step 6
    same_log = adv.lookalike(fresh_keys=["compute-3"])[0]
    bad6 = _write(tmp_path, "trust-same-log.json", trust_bytes(same_log))
    code, out = _cli("verify", "--json", "--trust", str(bad6), str(certs["mean"]))
    (o,) = _json_lines(out)
    assert code == 1 and o["step"] == 6 and "not the pinned" in o["reason"], o
    # a retired v1 trust file, even with the right keys: refused by name, exit 2
    log_key = parse_certificate(certs["mean"].read_bytes()).log_key
    witnesses = [adv.witness(w).vkey() for w in ("compute-1", "compute-2", "compute-3")]
    v1 = _write(tmp_path, "trust-v1.json", v1_trust_bytes(log_key, witnesses, 3))
    code, out = _cli("verify", "--trust", str(v1), str(certs["mean"]))
    assert code == 2, out
    assert "error" in out and "statledger-trust/v1" in out and "export-trust" in out, out
    assert "VALID" not in out, out
    # unusable trust files: exit 2 with an error, never a verdict
    doc = json.loads(adv.trust_file())
    unsigned = copy.deepcopy(doc)
    unsigned["genesis"]["signatures"].pop("hospital-a")
    for name, content in {
        "not-json": "{",
        "empty-object": "{}",
        "wrong-format": json.dumps({**doc, "format": "statledger-trust/v3"}),
        "missing-genesis": json.dumps({k: v for k, v in doc.items() if k != "genesis"}),
        "id-of-another-consortium": json.dumps(
            {**doc, "consortium": lookalike.genesis.consortium_id}),
        "genesis-not-fully-signed": json.dumps(unsigned),
    }.items():
        p = _write(tmp_path, f"trust-{name}.json", content)
        code, out = _cli("verify", "--trust", str(p), str(certs["mean"]))
        assert code == 2 and "error" in out, f"{name}: {code} {out}"
        assert "VALID" not in out, f"{name}: {out}"
    code, out = _cli("verify", "--trust", str(tmp_path / "no-such-trust.json"),
                     str(certs["mean"]))
    assert code == 2 and "error" in out, out


# --------------------------------------------------------------------------------------
# audit
# --------------------------------------------------------------------------------------


def test_audit_real_ledger_passes(verifier_run: Any, tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(verifier_run.ledger_db, db)
    code, out = _cli("audit", "--json", str(db))
    assert code == 0, out
    summary = json.loads(out[out.index("{"):])
    assert summary["ok"] is True and summary["tree_ok"] is True
    assert summary["checkpoints"] >= 1
    qids = {q["query_id"] for q in summary["queries"]}
    assert set(verifier_run.query_ids.values()) <= qids
    assert all(q["valid"] and q["status"] == "valid" for q in summary["queries"])
    # the three counts, separately
    n = len(summary["queries"])
    assert (summary["valid"], summary["invalid"], summary["incomplete"]) == (n, 0, 0)
    code, out = _cli("audit", str(db))
    assert code == 0, out
    assert f"{n} queries: {n} valid, 0 invalid, 0 incomplete" in out


def _tamper(db: Path, mutate: Any) -> None:
    con = sqlite3.connect(db)
    try:
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                   ).fetchall():
            con.execute(f'DROP TRIGGER "{name}"')
        mutate(con)
        con.commit()
    finally:
        con.close()


def _entry_index(db: Path, kind: str) -> tuple[int, bytes]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT idx, data FROM entries ORDER BY idx").fetchall()
    finally:
        con.close()
    for idx, data in rows:
        if parse_cbor(bytes(data))["kind"] == kind:
            return int(idx), bytes(data)
    raise AssertionError(f"no {kind} entry")


@pytest.mark.parametrize("what", ["result-bytes", "submission-bit", "drop-last-entry"])
def test_audit_tampered_ledger_fails(verifier_run: Any, tmp_path: Path, what: str) -> None:
    db = tmp_path / "ledger.sqlite"
    shutil.copy(verifier_run.ledger_db, db)
    if what == "result-bytes":
        idx, data = _entry_index(db, "result")
        obj = parse_cbor(data)
        new = cbor_bytes({**obj, "totals": ["1" + obj["totals"][0], *obj["totals"][1:]]})
        assert new != data

        def mutate(con: sqlite3.Connection) -> None:
            con.execute("UPDATE entries SET data=? WHERE idx=?", (new, idx))
    elif what == "submission-bit":
        idx, data = _entry_index(db, "submission")
        obj = parse_cbor(data)
        vec = bytearray(obj["vector"])
        vec[10] ^= 0x01
        new = cbor_bytes({**obj, "vector": bytes(vec)})

        def mutate(con: sqlite3.Connection) -> None:
            con.execute("UPDATE entries SET data=? WHERE idx=?", (new, idx))
    else:
        def mutate(con: sqlite3.Connection) -> None:
            con.execute("DELETE FROM entries WHERE idx=(SELECT MAX(idx) FROM entries)")
    _tamper(db, mutate)
    code, out = _cli("audit", "--json", str(db))
    assert code == 1, out
    summary = json.loads(out[out.index("{"):])
    assert summary["ok"] is False
    assert summary["tree_ok"] is False, summary["tree_error"]
    if what != "drop-last-entry":
        bad = [q for q in summary["queries"] if q["status"] == "invalid"]
        assert len(bad) == 1, summary["queries"]
        assert isinstance(bad[0]["step"], int) and bad[0]["reason"], bad[0]
        assert summary["invalid"] == 1 and summary["incomplete"] == 0
        assert summary["valid"] == len(summary["queries"]) - 1


def test_audit_not_a_ledger_exit_2(tmp_path: Path) -> None:
    p = _write(tmp_path, "x.sqlite", b"not sqlite at all" * 100)
    code, out = _cli("audit", str(p))
    assert code == 2 and "error" in out
    code, out = _cli("audit", str(tmp_path / "missing.sqlite"))
    assert code == 2 and "error" in out

