"""A small, fixed-size run of the stress workload in the default suite (exact totals, consistent state)."""

from __future__ import annotations

from tests.stress.test_foundation_stress import check, hammer


def test_sixteen_threads_fixed_operation_count() -> None:
    result = hammer(16, ops=400, seed=11)
    check(result)
    assert sum(t.stored for t in result["tallies"]) > 0
