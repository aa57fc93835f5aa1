"""The verifier's progress hook: ``verify_certificate(..., progress=f)`` calls ``f(step,
detail)`` once per step that passed, in order, and never for the step that failed (the
integration test tests/integration/test_km_resolution.py follows all 15 steps of a real
certificate and ``statledger verify --verbose``'s progress lines).  No hook: no change."""

from __future__ import annotations

from statledger.verifier.certificate import build_certificate
from statledger.verifier.report import STEPS, Report
from statledger.verifier.verify import verify_certificate

# a well-formed container whose checkpoint is not signed by its log key: steps 1-2 pass,
# step 3 fails
RAW = build_certificate(
    "example.org/log", "example.org/log+0a0b0c0d+AAAA",
    "example.org/log\n3\nAAAA\n\n\u2014 example.org/log abcd\n",
    [(0, b"entry-0", [b"\x22" * 32, b"\x33" * 32])]).to_bytes()


def test_progress_follows_passed_steps_only() -> None:
    seen: list[tuple[int, str]] = []
    report = verify_certificate(RAW, progress=lambda n, d: seen.append((n, d)))
    assert not report.valid and report.step == 3
    assert [n for n, _ in seen] == [1, 2] == [s.step for s in report.steps if s.ok]
    assert seen[0][1] == "1 entries"
    quiet = verify_certificate(RAW)
    assert (quiet.step, quiet.reason) == (report.step, report.reason)


def test_report_hook_is_called_per_pass() -> None:
    calls: list[int] = []
    r = Report(source="x", progress=lambda n, _d: calls.append(n))
    r.passed(1, "a")
    r.passed(2)
    assert calls == [1, 2] and [s.title for s in r.steps] == [STEPS[1], STEPS[2]]
    assert "progress" not in r.to_json_obj()
