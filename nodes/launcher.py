"""A local cluster of real processes on loopback (demo, ``statledger run``, integration tests).

:func:`init_cluster` writes keys (0600) and one TOML config per party under ``base_dir`` --
also what ``statledger node init`` uses -- and a ``cluster.json`` index of the layout.
:class:`Cluster` starts every service as ``python -m statledger.nodes.serve --role R --config FILE``
(``sys.executable``; output to ``base_dir/logs/<party>.log``) in parallel, waits for each
``/v1/health`` and for every party's ``party`` entry on the ledger, and stops them with
SIGTERM, then SIGKILL after a timeout (context manager; an ``atexit`` hook as a safety net).
``kill(party)`` and ``restart(party)`` exist for failure tests.

Layout::

    base_dir/cluster.json
    base_dir/consortium.json          the genesis, signed by every founding member
    base_dir/trust.json               the trust file every config pins (``trust = ...``)
    base_dir/<party>/config.toml      base_dir/<party>/identity.key ...
    base_dir/logs/<party>.log
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from statledger.nodes.config import (
    ComputeConfig,
    DatasetConfig,
    LedgerConfig,
    ProviderConfig,
    QuerierConfig,
    WitnessPeer,
    WitnessSettings,
    dump_config_toml,
)
from statledger.nodes.keys import (
    load_or_create_elgamal_share,
    load_or_create_identity_key,
)
from statledger.nodes.serve import PARENT_ENV
from statledger.proofs.errors import StatledgerError

__all__ = [
    "ClusterError",
    "PartyInfo",
    "ClusterLayout",
    "free_ports",
    "majority_quorum",
    "init_cluster",
    "found_consortium",
    "write_json",
    "load_layout",
    "Cluster",
]

LAYOUT_FILE = "cluster.json"
GENESIS_FILE = "consortium.json"
TRUST_FILE = "trust.json"
DEFAULT_ORIGIN = "statledger.local/log"


class ClusterError(StatledgerError):
    """A cluster that could not be created, started or stopped; names the party."""


@dataclass(frozen=True)
class PartyInfo:
    party_id: str
    role: str
    config_path: str
    data_dir: str
    url: str
    log_path: str

    @property
    def serves(self) -> bool:
        return self.role != "querier"


@dataclass
class ClusterLayout:
    base_dir: str
    origin: str
    parties: dict[str, PartyInfo] = field(default_factory=dict)

    def by_role(self, role: str) -> list[PartyInfo]:
        return [p for p in self.parties.values() if p.role == role]

    @property
    def ledger(self) -> PartyInfo:
        return self.by_role("ledger")[0]

    @property
    def compute(self) -> list[PartyInfo]:
        return self.by_role("compute")

    @property
    def providers(self) -> list[PartyInfo]:
        return self.by_role("provider")

    @property
    def queriers(self) -> list[PartyInfo]:
        return self.by_role("querier")

    def to_json(self) -> str:
        return json.dumps(
            {"base_dir": self.base_dir, "origin": self.origin,
             "parties": {k: asdict(v) for k, v in self.parties.items()}},
            indent=2, sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ClusterLayout:
        obj = json.loads(text)
        return cls(obj["base_dir"], obj["origin"],
                   {k: PartyInfo(**v) for k, v in obj["parties"].items()})


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct currently free TCP ports (sockets held open until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _witness_vkey(name: str, seed: bytes) -> str:
    """The C2SP cosignature verifier key of a witness (statledger.ledger.witness), if available."""
    try:
        from statledger.ledger import witness as _w
    except ImportError:
        return ""
    signer_cls = getattr(_w, "CosignatureSigner", None) or getattr(_w, "WitnessSigner", None)
    if signer_cls is None:
        return ""
    try:
        return str(signer_cls(name, seed).vkey())
    except Exception:  # noqa: BLE001 -- optional metadata only
        return ""


def _log_vkey(origin: str, seed: bytes) -> str:
    from statledger.ledger.note import NoteSigner

    return NoteSigner(origin, seed).vkey()


def majority_quorum(n_compute: int) -> int:
    """``floor(n/2) + 1``: the witness quorum ``statledger node init`` writes by default.

    Any two majorities share a witness, so two conflicting checkpoints (a split view) both
    reach quorum only if a witness cosigns both, which an honest witness never does; and the
    log still checkpoints with up to ``n - quorum`` witnesses down.  0 without compute nodes.
    """
    return n_compute // 2 + 1 if n_compute > 0 else 0


def found_consortium(
    base_dir: str | Path,
    origin: str,
    members: Iterable[tuple[str, str, Any]],
    *,
    witness_quorum: int,
    threshold: int | None = None,
    admission_quorum: int | None = None,
    admission_roles: tuple[str, ...] = ("compute",),
    name: str = "statledger consortium",
    sign: bool = True,
    genesis_out: Path | None = None,
) -> Any:
    """Write the consortium's genesis (``base_dir/consortium.json``) for ``members`` =
    ``(party id, role, identity SigningKey)``; with ``sign``, every member signs it (one
    machine holds every key: demos, tests, ``statledger node init``) and the trust file
    ``base_dir/trust.json`` is written too.  The admission quorum defaults to a majority of
    the members whose role may sign changes.  Returns the SignedGenesis."""
    from statledger.protocol.consortium import (
        AdmissionRule,
        Genesis,
        Member,
        SignedGenesis,
        trust_document,
    )

    base = Path(base_dir)
    listed = sorted(members, key=lambda m: (m[1], m[0]))
    ms = tuple(Member(pid, role, key.public_key().to_bytes().hex()) for pid, role, key in listed)
    roles = tuple(sorted(set(admission_roles)))
    eligible = sum(m.role in roles for m in ms)
    quorum = admission_quorum if admission_quorum is not None else eligible // 2 + 1
    genesis = Genesis(name, origin, ms, witness_quorum, AdmissionRule(quorum, roles),
                      threshold)
    signed = SignedGenesis(genesis)
    if sign:
        for pid, _role, key in listed:
            signed = signed.sign(pid, key)
    path = genesis_out if genesis_out is not None else base / GENESIS_FILE
    write_json(path, signed.to_json_obj())
    if sign:
        write_json(base / TRUST_FILE, trust_document(signed))
    return signed


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically (a temporary file renamed)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def init_cluster(
    base_dir: str | Path,
    *,
    n_compute: int = 3,
    providers: Mapping[str, Mapping[str, Any]] | None = None,
    queriers: Iterable[str] = ("querier",),
    origin: str = DEFAULT_ORIGIN,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    policies: Mapping[str, str | Path] | None = None,
    witness_quorum: int | None = None,
    threshold: int | None = None,
    log_level: str = "warning",
    max_body: int | None = None,
    port_base: int | None = None,
    relative_paths: bool = False,
    policy_templates: bool = False,
    compute_settings: Mapping[str, Any] | None = None,
    vertical_partners: Mapping[str, Mapping[str, str | Path]] | None = None,
) -> ClusterLayout:
    """Create keys and configs for a whole cluster under ``base_dir``; return its layout.

    ``providers`` maps a provider id to its datasets (``name -> path`` or ``name -> {"path":
    ..., "format": ..., "table": ...}``).  Compute nodes are ``compute-1..n``, the ledger is
    ``ledger``.  ``ports`` pins ports per party id; the others are picked free.  Existing key
    files are kept (so re-running init rewrites configs but never rotates keys).
    ``witness_quorum=None`` asks every compute node to cosign (the local test and demo
    clusters); ``statledger node init`` passes :func:`majority_quorum` unless told otherwise.
    ``threshold`` is the decryption threshold ``T`` the consortium pins (any ``T`` compute
    nodes decrypt; fewer learn nothing): default all of them.  ``port_base`` numbers the
    ports in order (ledger, compute nodes, providers) from it instead of picking free ones;
    ``relative_paths`` writes every path of a config relative to its folder (the deployment
    folder can move); ``policy_templates`` writes a strict, commented ``policy.toml`` for
    every provider without a policy (:mod:`statledger.nodes.policy_file`; an existing one is
    kept).  ``compute_settings`` are extra fields of every compute node's config (e.g.
    ``key_retire_grace``).  Configs are written 0600.
    """
    base = Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    (base / "logs").mkdir(exist_ok=True)
    providers = dict(providers or {})
    queriers = list(queriers)
    compute_ids = [f"compute-{i}" for i in range(1, n_compute + 1)]
    served = ["ledger", *compute_ids, *providers]
    all_ids = [*served, *queriers]
    if len(set(all_ids)) != len(all_ids):
        raise ClusterError("party ids must be distinct")
    pinned = dict(ports or {})
    if port_base is not None:
        if not 1 <= port_base <= 65535 - len(served) + 1:
            raise ClusterError(f"port base {port_base}: the {len(served)} served parties need "
                               f"ports {port_base}..{port_base + len(served) - 1} within "
                               "1..65535")
        pinned = {p: port_base + i for i, p in enumerate(served)} | pinned
    picked = iter(free_ports(len([p for p in served if p not in pinned]), host))
    port = {p: pinned[p] if p in pinned else next(picked) for p in served}
    url = {p: f"http://{host}:{port[p]}" for p in served}
    ledger_url = url["ledger"]

    if not compute_ids:
        raise ClusterError("a consortium needs at least one compute node (its witness)")
    # keys first: the genesis lists every public key
    id_keys = {pid: load_or_create_identity_key(base / pid / "identity.key") for pid in all_ids}
    log_seed = load_or_create_identity_key(base / "ledger" / "identity.key").to_bytes()
    log_vkey = _log_vkey(origin, log_seed)
    witnesses: dict[str, WitnessPeer] = {}
    for pid in compute_ids:
        load_or_create_elgamal_share(base / pid / "elgamal.key")
        wseed = load_or_create_identity_key(base / pid / "identity.key").to_bytes()
        witnesses[pid] = WitnessPeer(url=url[pid], key=_witness_vkey(pid, wseed))

    role_of = {"ledger": "ledger", **{c: "compute" for c in compute_ids},
               **{p: "provider" for p in providers}, **{q: "querier" for q in queriers}}
    layout = ClusterLayout(str(base), origin)
    quorum = len(compute_ids) if witness_quorum is None else witness_quorum
    try:
        found_consortium(base, origin, [(pid, role_of[pid], id_keys[pid]) for pid in all_ids],
                         witness_quorum=quorum, threshold=threshold)
    except StatledgerError as exc:
        raise ClusterError(f"consortium: {exc}") from None
    common: dict[str, Any] = {"host": host, "log_level": log_level,
                              "trust": base / TRUST_FILE}
    if max_body is not None:
        common["max_body"] = max_body

    def write(pid: str, cfg: Any) -> None:
        path = base / pid / "config.toml"
        text = dump_config_toml(cfg, relative_to=path.parent if relative_paths else None)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        layout.parties[pid] = PartyInfo(
            party_id=pid, role=role_of[pid], config_path=str(path), data_dir=str(base / pid),
            url=url.get(pid, ""), log_path=str(base / "logs" / f"{pid}.log"),
        )

    write("ledger", LedgerConfig(
        party_id="ledger", role="ledger", port=port["ledger"], data_dir=base / "ledger",
        origin=origin, witnesses=witnesses, witness_quorum=quorum, **common))
    peers_compute = {c: url[c] for c in compute_ids}
    for pid in compute_ids:
        write(pid, ComputeConfig(
            party_id=pid, role="compute", port=port[pid], data_dir=base / pid,
            ledger_url=ledger_url, peers={k: v for k, v in peers_compute.items() if k != pid},
            witness=WitnessSettings(origin=origin, log_key=log_vkey), **common,
            **dict(compute_settings or {})))
    for pid, datasets in providers.items():
        ds = {name: DatasetConfig(**(d if isinstance(d, Mapping) else {"path": d}))
              for name, d in datasets.items()}
        pol = (policies or {}).get(pid)
        if pol is None and policy_templates:
            pol = _policy_template(base / pid / "policy.toml", pid, queriers,
                                   [d.path for d in ds.values()])
        write(pid, ProviderConfig(
            party_id=pid, role="provider", port=port[pid], data_dir=base / pid,
            ledger_url=ledger_url, peers=peers_compute, datasets=ds,
            policy=Path(pol).resolve() if pol is not None else None,
            vertical_partners={k: Path(v).resolve() for k, v in
                               (vertical_partners or {}).get(pid, {}).items()},
            **common))
    all_peers = {p: url[p] for p in served if p != "ledger"}
    for pid in queriers:
        write(pid, QuerierConfig(
            party_id=pid, role="querier", port=0, data_dir=base / pid,
            ledger_url=ledger_url, peers=all_peers, **common))
    (base / LAYOUT_FILE).write_text(layout.to_json(), encoding="utf-8")
    return layout


def _policy_template(path: Path, party_id: str, queriers: list[str],
                     data: list[Path]) -> Path:
    """Write ``path`` (a strict ``policy.toml``) unless the owner already has one."""
    if not path.exists():
        from statledger.nodes.policy_file import dataset_columns, policy_template

        cols, problems = dataset_columns(data)
        path.write_text(policy_template(party_id, queriers, cols, problems), encoding="utf-8")
    return path


def load_layout(base_dir: str | Path) -> ClusterLayout:
    """Read ``base_dir/cluster.json`` written by :func:`init_cluster`."""
    p = Path(base_dir) / LAYOUT_FILE
    try:
        return ClusterLayout.from_json(p.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClusterError(f"{p}: not a cluster layout ({exc})") from None


def _tail(path: str, n: int = 30) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


class Cluster:
    """Start/stop a local cluster (see the module docstring).

    ``Cluster(base_dir, n_compute=3, providers={...})`` initialises ``base_dir`` when it has
    no ``cluster.json`` yet, else reuses it (keys, ports and state persist across runs).
    """

    def __init__(
        self,
        base_dir: str | Path,
        *,
        startup_timeout: float = 60.0,
        stop_timeout: float = 5.0,
        wait_registered: bool = True,
        env: Mapping[str, str] | None = None,
        pull: Iterable[str] = (),
        **init_kwargs: Any,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        #: providers started as owners that pull (``node serve --pull``, docs/owners.md):
        #: no port, no health route; started when they registered on the ledger
        self.pull = set(pull)
        if (self.base_dir / LAYOUT_FILE).exists() and not init_kwargs:
            self.layout = load_layout(self.base_dir)
        else:
            self.layout = init_cluster(self.base_dir, **init_kwargs)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.wait_registered = wait_registered
        self.env = dict(os.environ if env is None else env)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._atexit = False

    # -- helpers -------------------------------------------------------------------------
    @property
    def genesis(self) -> Any:
        """The cluster's pinned consortium (the SignedGenesis of ``base_dir/trust.json``)."""
        from statledger.protocol.consortium import parse_trust_document

        return parse_trust_document((self.base_dir / TRUST_FILE).read_bytes())

    def url(self, party_id: str) -> str:
        return self.layout.parties[party_id].url

    def config_path(self, party_id: str) -> Path:
        return Path(self.layout.parties[party_id].config_path)

    def signing_key(self, party_id: str) -> Any:
        from statledger.nodes.keys import load_identity_key

        return load_identity_key(Path(self.layout.parties[party_id].data_dir) / "identity.key")

    def client(self, target: str, as_party: str | None = None, **kw: Any) -> Any:
        """A :class:`~statledger.nodes.http.SignedClient` to ``target``, signed as ``as_party``."""
        from statledger.nodes.http import SignedClient

        if as_party is None:
            return SignedClient(self.url(target), **kw)
        return SignedClient(self.url(target), as_party, self.signing_key(as_party),
                            target=target, **kw)

    # -- lifecycle -----------------------------------------------------------------------
    def _spawn(self, party_id: str) -> subprocess.Popen[bytes]:
        info = self.layout.parties[party_id]
        logf = open(info.log_path, "ab")  # noqa: SIM115 -- handed to the child
        try:
            proc = subprocess.Popen(  # noqa: S603 -- fixed argv, our own interpreter
                [sys.executable, "-m", "statledger.nodes.serve", "--role", info.role,
                 "--config", info.config_path] + (["--pull"] if party_id in self.pull else []),
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**self.env, PARENT_ENV: str(os.getpid())}, cwd=str(self.base_dir),
                start_new_session=True,
            )
        finally:
            logf.close()
        self.procs[party_id] = proc
        return proc

    def _wait_healthy(self, party_ids: Iterable[str], deadline: float) -> None:
        pending = set(party_ids)
        with httpx.Client(timeout=2.0) as http:
            while pending:
                for pid in sorted(pending):
                    proc = self.procs[pid]
                    code = proc.poll()
                    if code is not None:
                        raise ClusterError(
                            f"{pid} exited with code {code} during startup; log tail:\n"
                            + _tail(self.layout.parties[pid].log_path))
                    try:
                        r = http.get(self.url(pid) + "/v1/health")
                        if r.status_code == 200:
                            pending.discard(pid)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    pid = sorted(pending)[0]
                    raise ClusterError(
                        f"{', '.join(sorted(pending))} not healthy after "
                        f"{self.startup_timeout:.0f} s; log tail of {pid}:\n"
                        + _tail(self.layout.parties[pid].log_path))
                if pending:
                    time.sleep(0.05)

    def _wait_registered(self, party_ids: Iterable[str], deadline: float) -> None:
        pending = set(party_ids)
        with httpx.Client(timeout=2.0) as http:
            while pending:
                try:
                    r = http.get(self.url("ledger") + "/v1/parties")
                    if r.status_code == 200:
                        pending -= set(r.json())
                except httpx.HTTPError:
                    pass
                if pending and time.monotonic() > deadline:
                    pid = sorted(pending)[0]
                    raise ClusterError(
                        f"{', '.join(sorted(pending))} not registered on the ledger after "
                        f"{self.startup_timeout:.0f} s; log tail of {pid}:\n"
                        + _tail(self.layout.parties[pid].log_path))
                if pending:
                    time.sleep(0.05)

    def start(self, only: Iterable[str] | None = None) -> Cluster:
        """Start every serving party (or those in ``only``) in parallel; wait for health and
        registration on the ledger."""
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        served = [p.party_id for p in self.layout.parties.values() if p.serves]
        if only is not None:
            wanted = set(only)
            unknown = wanted - set(served)
            if unknown:
                raise ClusterError(f"no such serving party: {', '.join(sorted(unknown))}")
            served = [p for p in served if p in wanted]
        for pid in served:
            if pid not in self.procs or self.procs[pid].poll() is not None:
                self._spawn(pid)
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._wait_healthy([p for p in served if p not in self.pull], deadline)
            if self.wait_registered:
                self._wait_registered([p for p in served if p != "ledger"], deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def register_queriers(self) -> None:
        """Queriers serve nothing, so each posts its own ``party`` entry (self-signed)."""
        from statledger.nodes.config import load_config
        from statledger.nodes.serve import register_self

        for p in self.layout.queriers:
            register_self(load_config(p.config_path))

    def start_and_set_up(self) -> Cluster:
        """:meth:`start`, register the queriers, then ask the ledger (signed as the first
        querier) to write the setup entry: it waits for the compute nodes' key ceremony.
        The cluster is stopped again if any of it fails."""
        self.start()
        try:
            self.register_queriers()
            if self.layout.queriers:
                with self.client("ledger", as_party=self.layout.queriers[0].party_id) as c:
                    c.post("/v1/setup")
        except BaseException:
            self.stop()
            raise
        return self

    def _stop_one(self, party_id: str, sig: int) -> None:
        proc = self.procs.get(party_id)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM every process, then SIGKILL whatever is still alive after the timeout."""
        for pid in list(self.procs):
            self._stop_one(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for pid, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._stop_one(pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def kill(self, party_id: str) -> None:
        """SIGKILL one party (a crash, for failure tests)."""
        self._stop_one(party_id, signal.SIGKILL)
        proc = self.procs.pop(party_id, None)
        if proc is not None:
            proc.wait(timeout=5)

    def terminate(self, party_id: str) -> None:
        """Stop one party cleanly (SIGTERM, SIGKILL after the timeout)."""
        proc = self.procs.get(party_id)
        if proc is None:
            return
        self._stop_one(party_id, signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            self._stop_one(party_id, signal.SIGKILL)
            proc.wait(timeout=5)
        self.procs.pop(party_id, None)

    def restart(self, party_id: str, *, hard: bool = False) -> None:
        """Stop (``hard``: SIGKILL) and start one party again; wait until it is healthy."""
        if hard:
            self.kill(party_id)
        else:
            self.terminate(party_id)
        self._spawn(party_id)
        if party_id not in self.pull:
            self._wait_healthy([party_id], time.monotonic() + self.startup_timeout)

    def alive(self, party_id: str) -> bool:
        proc = self.procs.get(party_id)
        return proc is not None and proc.poll() is None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
