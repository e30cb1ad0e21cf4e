"""Fixtures for the Foundation 1.x contract tests: an isolated app on a manual clock per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import foundation
from foundation import FoundationApp, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ms=10_000)


@pytest.fixture
def fapp(clock: ManualClock) -> Iterator[FoundationApp]:
    app = foundation.start_app(clock=clock)
    try:
        yield app
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(app.namespace)
