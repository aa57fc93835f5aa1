"""ElectionGuard 1.4.0 side of the range-proof comparison (runs inside bench/.eg-venv, Python 3.10).

Times what ElectionGuard does for one bounded value bit: ElGamal-encrypt a 0/1 selection and
make its disjunctive Chaum-Pedersen proof, then verify the proof (``is_valid``).  A 32-bit
value encoded the way ElectionGuard can is 32 such selections.

ElectionGuard's INFO logging is switched off for the main figures: its ``log_info`` formats
every message with ``inspect.stack()`` even when nothing is printed, which would dominate the
timing.  A few samples with the library's default logging are also reported for reference.

Usage: python electionguard_bench.py [samples] [--quiet-only]   -> one JSON object on stdout.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time


def _bench(samples: int) -> dict[str, float]:
    from electionguard.chaum_pedersen import make_disjunctive_chaum_pedersen
    from electionguard.elgamal import elgamal_encrypt, elgamal_keypair_random
    from electionguard.group import rand_q

    keypair = elgamal_keypair_random()
    K = keypair.public_key
    Qbar = rand_q()  # stands for the extended base hash
    enc_prove: list[float] = []
    verify: list[float] = []
    enc_prove_cpu: list[float] = []
    verify_cpu: list[float] = []
    for i in range(samples):
        bit = i % 2
        c0 = time.process_time()
        t0 = time.perf_counter()
        nonce = rand_q()
        ct = elgamal_encrypt(bit, nonce, K)
        if ct is None:
            raise RuntimeError("encryption failed")
        proof = make_disjunctive_chaum_pedersen(ct, nonce, K, Qbar, rand_q(), bit)
        t1 = time.perf_counter()
        c1 = time.process_time()
        ok = proof.is_valid(ct, K, Qbar)
        t2 = time.perf_counter()
        c2 = time.process_time()
        if not ok:
            raise RuntimeError("ElectionGuard proof did not verify")
        enc_prove.append(t1 - t0)
        verify.append(t2 - t1)
        enc_prove_cpu.append(c1 - c0)
        verify_cpu.append(c2 - c1)
    # CPU time per call is below the process clock's resolution on some systems: use means
    return {
        "encrypt_prove_ms": 1000 * statistics.median(enc_prove),
        "verify_ms": 1000 * statistics.median(verify),
        "encrypt_prove_cpu_ms": 1000 * statistics.mean(enc_prove_cpu),
        "verify_cpu_ms": 1000 * statistics.mean(verify_cpu),
        "samples": samples,
    }


def _logging_off() -> None:
    import electionguard.elgamal as eg_elgamal
    import electionguard.logs as eg_logs

    def _nothing(*_a: object, **_k: object) -> None:
        return None

    for mod in (eg_logs, eg_elgamal):
        for name in ("log_info", "log_debug"):
            if hasattr(mod, name):
                setattr(mod, name, _nothing)
    logging.getLogger("electionguard").setLevel(logging.WARNING)


def main() -> None:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    quiet_only = "--quiet-only" in sys.argv
    import electionguard

    # default logging (INFO to a stream handler): a few samples, output discarded
    logging.getLogger("electionguard").handlers[:] = [logging.NullHandler()]
    logged = None if quiet_only else _bench(max(10, samples // 10))
    _logging_off()
    quiet = _bench(samples)
    # element sizes: 4096-bit p, 256-bit q; the proof has 4 elements mod p and 5 mod q
    proof_bytes = 4 * 512 + 5 * 32
    ciphertext_bytes = 2 * 512
    print(
        json.dumps(
            {
                "electionguard_version": getattr(electionguard, "__version__", "1.4.0"),
                "python": sys.version.split()[0],
                "logging_off": quiet,
                "logging_on_null_handler": logged,
                "selection_proof_bytes": proof_bytes,
                "selection_ciphertext_bytes": ciphertext_bytes,
            }
        )
    )


if __name__ == "__main__":
    main()
