"""MembershipConfig's record-overlay fields, HyParViewConfig, PlumtreeConfig: Partisan's defaults, presets,
validation."""

from __future__ import annotations

import pytest

from fabric.errors import ConfigError
from fabric.membership.config import HyParViewConfig, MembershipConfig, PlumtreeConfig


def test_defaults_are_partisans_and_the_papers() -> None:
    hv = MembershipConfig().hyparview
    assert (hv.active_max, hv.active_min, hv.passive_max, hv.arwl, hv.prwl) == (6, 3, 30, 6, 3)
    assert (hv.shuffle_ka, hv.shuffle_kp, hv.shuffle_interval) == (3, 4, 10.0)
    assert MembershipConfig().plumtree.lazy_interval == 1.0
    assert MembershipConfig().relay_ttl == 5
    assert MembershipConfig.lan() == MembershipConfig()


def test_presets_override_only_timers_and_stay_valid() -> None:
    local, wan = MembershipConfig.local(), MembershipConfig.wan()
    assert local.heartbeat_interval < MembershipConfig().heartbeat_interval < wan.heartbeat_interval
    assert local.hyparview.active_max == wan.hyparview.active_max == 6
    assert MembershipConfig.local(relay_ttl=7).relay_ttl == 7
    assert local.replace(sync_interval=3.0).sync_interval == 3.0
    flat = local.as_dict()
    assert flat["hyparview"]["active_max"] == 6 and flat["plumtree"]["graft_timeout"] == 0.5


@pytest.mark.parametrize("build, field", [
    (lambda: HyParViewConfig(active_max=0), "active_max"),
    (lambda: HyParViewConfig(active_min=7), "active_min"),
    (lambda: HyParViewConfig(prwl=7), "prwl"),
    (lambda: HyParViewConfig(shuffle_interval=0), "shuffle_interval"),
    (lambda: HyParViewConfig(probe_interval=-1), "probe_interval"),
    (lambda: PlumtreeConfig(cache_size=0), "cache_size"),
    (lambda: PlumtreeConfig(seen_ttl=1.0, cache_ttl=2.0), "seen_ttl"),
    (lambda: PlumtreeConfig(lazy_interval=float("nan")), "lazy_interval"),
    (lambda: MembershipConfig(record_ttl=10.0, refresh_interval=20.0), "record_ttl"),
    (lambda: MembershipConfig(relay_ttl=0), "relay_ttl"),
    (lambda: MembershipConfig(heartbeat_interval=True), "heartbeat_interval"),
    (lambda: MembershipConfig(join_retry_max=0.1, join_retry_initial=1.0), "join_retry_max"),
    (lambda: MembershipConfig(hyparview={"active_max": 6}), "hyparview"),  # type: ignore[arg-type]
])
def test_invalid_values_name_the_field(build: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build()  # type: ignore[operator]
