"""The topology manager's reconciliation (pure: links, wanted set, gone set and time in, a plan out)."""

from __future__ import annotations

import pytest

from fabric.errors import ConfigError
from fabric.topology import TopologyManager

A, B, C, D = (bytes([i]) * 16 for i in range(1, 5))


def test_wanted_links_stay_and_missing_neighbour_links_are_repaired_with_backoff() -> None:
    m = TopologyManager(repair_backoff=5.0, interval=1.0)
    plan = m.reconcile(wanted={A, B}, linked={A: False}, gone=set(), now=0.0)
    assert plan.open == [B] and plan.close == []
    assert not m.due(0.5) and m.due(1.0)
    assert m.reconcile({A, B}, {A: False}, set(), 1.0).open == []  # within the backoff: no second dial
    assert m.reconcile({A, B}, {A: False}, set(), 6.0).open == [B]
    # a wanted neighbour held by a probe link only gets its full link
    assert m.reconcile({A}, {A: True}, set(), 20.0).open == [A]
    assert m.counters["repaired"] == 3


def test_links_to_gone_members_close_at_once_even_when_used() -> None:
    m = TopologyManager()
    m.used(C, 0.0)
    plan = m.reconcile(wanted={A}, linked={A: False, C: False, D: True}, gone={C, D}, now=0.0)
    assert sorted(plan.close) == [(C, "member gone"), (D, "member gone")]
    assert plan.open == []  # gone members are never repaired


def test_on_demand_links_close_when_idle_and_use_keeps_them() -> None:
    m = TopologyManager(idle_close=60.0)
    m.used(C, 0.0)
    assert m.in_use(C) and m.on_demand == 1
    m.touch(C, 50.0)
    m.touch(D, 50.0)  # not an on-demand link: touching does not make it one
    assert not m.in_use(D)
    assert m.reconcile(set(), {C: False}, set(), 100.0).close == []
    assert m.reconcile(set(), {C: False}, set(), 111.0).close == [(C, "idle")]
    m.forget(C)
    assert not m.in_use(C) and m.on_demand == 0
    # an on-demand link that became a neighbour is wanted: never idle-closed
    m.used(D, 0.0)
    assert m.reconcile({D}, {D: False}, set(), 500.0).close == []


def test_a_leaked_probe_link_closes_after_the_grace_but_a_full_link_nobody_wants_is_left_alone() -> None:
    m = TopologyManager(stray_grace=60.0)
    assert m.reconcile(set(), {C: True, D: False}, set(), 0.0).close == []
    assert m.reconcile(set(), {C: True, D: False}, set(), 59.0).close == []
    assert m.reconcile(set(), {C: True, D: False}, set(), 61.0).close == [(C, "stray probe")]
    # a probe link that becomes wanted again resets its grace
    m2 = TopologyManager(stray_grace=10.0)
    m2.reconcile(set(), {C: True}, set(), 0.0)
    m2.reconcile({C}, {C: True}, set(), 5.0)
    assert m2.reconcile(set(), {C: True}, set(), 12.0).close == []


def test_switch_holds_every_current_link_for_one_idle_period_and_state_stays_bounded() -> None:
    m = TopologyManager(idle_close=60.0)
    m.hold([A, B], 0.0)
    assert m.in_use(A) and m.in_use(B)
    assert m.reconcile(set(), {A: False, B: False}, set(), 30.0).close == []
    assert sorted(m.reconcile(set(), {A: False, B: False}, set(), 61.0).close) == [(A, "idle"), (B, "idle")]
    m.used(C, 0.0)
    m.reconcile(set(), {}, set(), 62.0)  # C's link is gone (closed elsewhere): forgotten
    assert not m.in_use(C)


@pytest.mark.parametrize("name", ["idle_close", "stray_grace", "repair_backoff", "interval"])
def test_bad_parameters_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        TopologyManager(**{name: 0})
