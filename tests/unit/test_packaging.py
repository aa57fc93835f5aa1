"""One namespace: statledger.* names, python -m statledger, and the settings object."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pydantic
import pytest

import statledger
from statledger import settings as S

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_distributions() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert cfg["project"]["dynamic"] == ["version"]
    assert cfg["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "statledger.__version__"}
    assert statledger.__version__.count(".") == 2


@pytest.mark.parametrize("name", ["proofs", "protocol", "ledger", "nodes", "verifier"])
def test_subpackage_is_the_top_level_folder(name: str) -> None:
    mod = __import__(f"statledger.{name}", fromlist=["_"])
    assert Path(mod.__file__).resolve() == (ROOT / name / "__init__.py").resolve()
    link = ROOT / "statledger" / name
    assert link.is_symlink() and link.readlink() == Path("..") / name


def test_import_statledger_is_cheap() -> None:
    code = ("import sys, statledger; "
            "print(sorted(m for m in sys.modules if m.startswith('statledger.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "['statledger.settings']"


def test_lazy_api_attribute() -> None:
    from statledger.verifier.verify import verify_certificate_file

    assert statledger.verify_certificate_file is verify_certificate_file
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        statledger.nope  # noqa: B018


def test_python_dash_m_statledger() -> None:
    r = subprocess.run([sys.executable, "-m", "statledger", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    for cmd in ("demo", "verify", "audit", "node"):
        assert cmd in r.stdout
    bad = subprocess.run([sys.executable, "-m", "statledger", "no-such-command"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode != 0 and "no-such-command" in bad.stderr


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATLEDGER_CACHE", str(tmp_path))
    monkeypatch.setenv("STATLEDGER_RANGE_PARALLEL", "false")
    monkeypatch.setenv("STATLEDGER_DLOG_TABLE_BITS", "16")
    S.reset_settings()
    s = S.get_settings()
    assert (s.cache, s.range_parallel, s.dlog_table_bits) == (tmp_path, False, 16)
    assert S.get_settings() is s  # read once

    from statledger.proofs import dlog, rangeproof

    assert dlog.cache_dir() == tmp_path
    assert rangeproof._parallel() is False


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CACHE", "RANGE_PARALLEL", "DLOG_TABLE_BITS"):
        monkeypatch.delenv(f"STATLEDGER_{var}", raising=False)
    S.reset_settings()
    s = S.get_settings()
    assert s.cache == Path.home() / ".cache" / "statledger"
    assert s.range_parallel is None
    assert s.dlog_table_bits == 20


@pytest.mark.parametrize(("var", "value"), [
    ("STATLEDGER_DLOG_TABLE_BITS", "abc"),
    ("STATLEDGER_DLOG_TABLE_BITS", "99"),
    ("STATLEDGER_RANGE_PARALLEL", "maybe"),
    ("STATLEDGER_RANGE_MSM_THRESHOLD", "0"),
    ("STATLEDGER_DLOG_BUILD_WORKERS", "-1"),
])
def test_malformed_setting_names_the_field(monkeypatch: pytest.MonkeyPatch, var: str,
                                           value: str) -> None:
    monkeypatch.setenv(var, value)
    S.reset_settings()
    with pytest.raises(pydantic.ValidationError) as err:
        S.get_settings()
    assert var.removeprefix("STATLEDGER_").lower() in str(err.value)


def test_configure_and_overridden_restore() -> None:
    base = S.get_settings()
    with S.overridden(range_parallel=True, range_fold_threshold=4) as s:
        assert (s.range_parallel, s.range_fold_threshold) == (True, 4)
        assert S.get_settings() is s
    assert S.get_settings() is base
    changed = S.configure(msm_parallel_threshold=7)
    assert changed.msm_parallel_threshold == 7 and changed.cache == base.cache
    assert S.configure(base) is base
    with pytest.raises(pydantic.ValidationError):
        S.configure(no_such_knob=1)
    with pytest.raises(pydantic.ValidationError):
        S.configure(range_fold_threshold=0)
    with pytest.raises(pydantic.ValidationError):  # frozen: change through configure only
        base.range_parallel = True  # type: ignore[misc]
