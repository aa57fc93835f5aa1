"""Hostile-load benchmark: crafted JSON bodies and stalled clients (one JSON object on stdout).

Usage::

    python bench/bench_hostile.py                     # JSON + verify CLI + 200 stalled sockets
    python bench/bench_hostile.py --legacy-max-kb 128 # also time the old quadratic check
    python bench/bench_hostile.py --stalled 0         # no node process
    python bench/bench_hostile.py --stalled 1000 --legacy-max-kb 0   # the done-criterion

Sections of the output:

* ``json_ms``: best of 3 wall-clock milliseconds of ``parse_json`` (strict parse, depth check
  first) on each hostile payload at 64 KB, 128 KB and 1 MB (every one is refused or parsed);
* ``legacy_check_depth_s``: the check this replaced (a regex ``"(?:[^"\\]|\\.)*"`` removing
  strings, then a character loop), on the unterminated escaped-quote string, at 16 KB and
  doubling up to ``--legacy-max-kb`` (each in a subprocess, stopped after
  ``--legacy-timeout`` seconds), with the quadratic extrapolation to 1 MB;
* ``verify_cli_s``: ``python -m statledger verify`` on a crafted 1 MB certificate (exit code
  and wall time, interpreter start included);
* ``stalled``: a real ledger node (``python -m statledger.nodes.serve``) with ``--stalled``
  connections that sent half a request line: ``GET /v1/health`` latency while they are open
  (median and max of 20) and when the server had closed all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KB = 1024

PAYLOADS: dict[str, Callable[[int], str]] = {
    "escaped_quotes": lambda n: '"' + '\\"' * ((n - 1) // 2),
    "deep": lambda n: "[" * n,
    "mixed": lambda n: ('["\\"[{\\\\{' * (n // 8 + 1))[:n],
    "backslashes": lambda n: '"' + "\\" * (n - 1),
}

LEGACY = r'''
import re, sys, time
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
def check_depth(text, limit=64):
    depth = 0
    for ch in _STRING.sub("", text):
        if ch in "[{":
            depth += 1
            if depth > limit:
                raise ValueError("deep")
        elif ch in "]}":
            depth -= 1
n = int(sys.argv[1])
text = '"' + '\\"' * ((n - 1) // 2)
t0 = time.perf_counter()
check_depth(text)
print(time.perf_counter() - t0)
'''


def _best(fn: Callable[[], None], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_json() -> dict[str, dict[str, float]]:
    from statledger.proofs.errors import MalformedError
    from statledger.protocol.canonical import parse_json

    def run(text: str) -> None:
        try:
            parse_json(text.encode("utf-8"))
        except MalformedError:
            pass

    out: dict[str, dict[str, float]] = {}
    for name, make in PAYLOADS.items():
        out[name] = {}
        for size in (64 * KB, 128 * KB, 1024 * KB):
            text = make(size)
            out[name][f"{size // KB}KB"] = round(_best(lambda t=text: run(t)) * 1e3, 2)
    return out


def bench_legacy(max_kb: int, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    size = 16
    last: tuple[int, float] | None = None
    while size <= max_kb:
        try:
            proc = subprocess.run(  # noqa: S603 -- our own interpreter
                [sys.executable, "-c", LEGACY, str(size * KB)], capture_output=True,
                text=True, timeout=timeout, check=True)
            secs = float(proc.stdout.strip())
            out[f"{size}KB"] = round(secs, 3)
            last = (size, secs)
        except subprocess.TimeoutExpired:
            out[f"{size}KB"] = f">{timeout:.0f}"
            break
        size *= 2
    if last is not None:
        out["1MB_extrapolated_quadratic"] = round(last[1] * (1024 / last[0]) ** 2, 1)
    return out


def bench_verify_cli() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="statledger-hostile-") as tmp:
        path = Path(tmp) / "crafted.json"
        path.write_text('{"format": "statledger-certificate/v1", "entries": [{"data": "'
                        + '\\"' * (512 * KB), encoding="utf-8")
        t0 = time.perf_counter()
        proc = subprocess.run(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "statledger", "verify", str(path)], capture_output=True,
            text=True, timeout=600, cwd=str(ROOT))
        return {"bytes": path.stat().st_size, "exit_code": proc.returncode,
                "seconds": round(time.perf_counter() - t0, 3),
                "message": proc.stdout.strip()[:200]}


def bench_stalled(n: int, header_timeout: float, max_connections: int) -> dict[str, Any]:
    import httpx

    from statledger.nodes.launcher import init_cluster

    with tempfile.TemporaryDirectory(prefix="statledger-hostile-") as tmp:
        layout = init_cluster(tmp, n_compute=1, queriers=[])  # only the ledger serves
        led = layout.ledger
        host, port = led.url.removeprefix("http://").split(":")
        with open(Path(tmp) / "ledger.log", "wb") as log:
            proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
                [sys.executable, "-m", "statledger.nodes.serve", "--role", "ledger",
                 "--config", led.config_path, "--header-timeout", str(header_timeout),
                 "--max-connections", str(max_connections)],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        socks: list[socket.socket] = []
        try:
            with httpx.Client(timeout=5.0) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        http.get(led.url + "/v1/health")
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
                t_open = time.monotonic()
                for _ in range(n):
                    s = socket.create_connection((host, int(port)), timeout=5)
                    s.sendall(b"GET /v1/hea")
                    socks.append(s)

                def latencies() -> list[float]:
                    lat = []
                    for _ in range(20):
                        t0 = time.perf_counter()
                        http.get(led.url + "/v1/health").raise_for_status()
                        lat.append(time.perf_counter() - t0)
                    return lat

                during = latencies()
                closed_at = []
                for s in socks:
                    s.settimeout(header_timeout + 30)
                    while s.recv(4096):
                        pass
                    closed_at.append(time.monotonic() - t_open)
                after = latencies()
        finally:
            for s in socks:
                s.close()
            proc.terminate()
            proc.wait(timeout=10)
    return {
        "connections": n,
        "max_connections": max_connections,
        "header_timeout_s": header_timeout,
        "health_ms_while_stalled": {"median": round(statistics.median(during) * 1e3, 2),
                                    "max": round(max(during) * 1e3, 2)},
        "all_stalled_closed_after_s": round(max(closed_at), 2) if closed_at else None,
        "health_ms_after": {"median": round(statistics.median(after) * 1e3, 2),
                            "max": round(max(after) * 1e3, 2)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--legacy-max-kb", type=int, default=64,
                    help="time the old check up to this size (0: skip)")
    ap.add_argument("--legacy-timeout", type=float, default=120.0)
    ap.add_argument("--stalled", type=int, default=200,
                    help="stalled connections against a ledger node (0: skip)")
    ap.add_argument("--header-timeout", type=float, default=10.0,
                    help="the node's --header-timeout for the stalled run")
    ap.add_argument("--max-connections", type=int, default=None,
                    help="the node's --max-connections (default: 1000, or --stalled + 24 "
                         "when that is more: the health probe must fit beside them)")
    args = ap.parse_args(argv)
    result: dict[str, Any] = {"python": sys.version.split()[0],
                              "load_average_1min": os.getloadavg()[0]}
    result["json_ms"] = bench_json()
    if args.legacy_max_kb:
        result["legacy_check_depth_s"] = bench_legacy(args.legacy_max_kb, args.legacy_timeout)
    result["verify_cli_s"] = bench_verify_cli()
    if args.stalled:
        cap = args.max_connections or max(1000, args.stalled + 24)
        result["stalled"] = bench_stalled(args.stalled, args.header_timeout, cap)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
