"""Test-suite wide configuration.

* Each test folder sets its own marker (tests/unit -> ``unit`` ...), so ``pytest -m integration`` picks a tier.
* ``stress`` and ``benchmark`` are excluded by default (see ``addopts`` in setup.cfg).
* Hypothesis: the ``ci`` profile (selected when ``CI`` is set) has no deadline, since shared CI machines
  stall unpredictably; the ``dev`` profile keeps example counts small for a fast local loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
    )
    settings.register_profile("dev", deadline=None, max_examples=100)
    settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
except ImportError:  # pragma: no cover - hypothesis is part of the [test] extra
    pass

_TIERS = {"unit", "property", "integration", "smoke", "contract", "stress", "benchmark"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            rel = Path(str(item.fspath)).relative_to(root)
        except ValueError:
            continue
        if rel.parts and rel.parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, rel.parts[0]))
