"""Shared test set-up: each test sees the settings of its own environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from statledger.settings import reset_settings


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    # statledger.settings caches what it read from the environment; a test that sets
    # STATLEDGER_* with monkeypatch must see it, and must not leak it to the next test.
    reset_settings()
    yield
    reset_settings()
