"""MembershipConfig: validation, presets, and the detection-time bound."""

from __future__ import annotations

import math

import pytest

from fabric.errors import ConfigError
from fabric.membership.config import MembershipConfig, detection_bound
from fabric.membership.detector import threshold_quantile


def test_presets_are_valid_and_ordered() -> None:
    local, lan, wan = MembershipConfig.local(), MembershipConfig.lan(), MembershipConfig.wan()
    assert lan == MembershipConfig()
    assert local.heartbeat_interval < lan.heartbeat_interval < wan.heartbeat_interval
    assert local.detection_bound() < lan.detection_bound() < wan.detection_bound()
    assert MembershipConfig.local(phi_threshold=12.0).phi_threshold == 12.0
    assert set(lan.as_dict()) >= {"heartbeat_interval", "phi_threshold", "tombstone_ttl", "join_retry_max"}


@pytest.mark.parametrize(
    "changes",
    [
        {"heartbeat_interval": 0},
        {"heartbeat_interval": math.inf},
        {"gossip_fanout": 0},
        {"window_size": 1},
        {"phi_threshold": -1.0},
        {"suspect_timeout": -0.1},
        {"join_retry_initial": 5.0, "join_retry_max": 1.0},
        {"tombstone_ttl": 2.0},
        {"gossip_fanout": True},
        {"indirect_probes": -1},
        {"probe_timeout": 0},
        {"local_health_max": 1.5},
        {"suspect_timeout": 2.0, "suspect_timeout_max": 1.0},
    ],
)
def test_invalid_values_name_the_field(changes: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="MembershipConfig"):
        MembershipConfig(**changes)  # type: ignore[arg-type]


def test_detection_bound_of_the_defaults_by_hand() -> None:
    cfg = MembershipConfig()
    # no loss, no jitter: mean 1.0 + pause 3.0 + y_8 * max(0.1, 1.0 / 4) + the longest suspicion 3.0
    # (nobody confirms it; with indirect_probes confirmations it is suspect_timeout = 1.0)
    expected = 1.0 + 3.0 + threshold_quantile(8.0) * 0.25 + 3.0
    assert detection_bound(cfg) == pytest.approx(expected)
    assert 8.2 < expected < 8.4
    # an observer with local health score h waits (1 + h) times longer
    assert cfg.detection_bound(health=2) == pytest.approx(expected + 2 * 3.0)
    with pytest.raises(ConfigError):
        cfg.detection_bound(health=cfg.local_health_max + 1)
    # latency, jitter and loss only ever lengthen it
    assert cfg.detection_bound(max_latency=0.1) == pytest.approx(expected + 0.1)
    assert cfg.detection_bound(jitter=0.2) > expected
    assert cfg.detection_bound(drop=0.01) > expected
    with pytest.raises(ConfigError):
        cfg.detection_bound(drop=1.0)


def test_one_configuration_class_for_every_overlay() -> None:
    """One class: the detector fields once, full-mesh's, the record overlays' and the nested views; the
    presets cover all of them (the values are those of the two former classes' presets)."""
    from dataclasses import fields

    from fabric.membership.config import HyParViewConfig, PlumtreeConfig

    names = [f.name for f in fields(MembershipConfig)]
    assert len(names) == len(set(names))
    assert {"heartbeat_interval", "suspect_timeout", "indirect_probes", "local_health_max", "gossip_interval",
            "tombstone_ttl", "grave_ttl", "record_ttl", "record_tombstone_ttl", "sync_interval", "relay_ttl",
            "max_members", "max_records", "hyparview", "plumtree"} <= set(names)
    local, lan, wan = MembershipConfig.local(), MembershipConfig.lan(), MembershipConfig.wan()
    assert (lan.hyparview, lan.plumtree) == (HyParViewConfig(), PlumtreeConfig())
    # pinned: the seeded simulations depend on these
    assert (local.heartbeat_interval, local.gossip_interval, local.tombstone_ttl, local.grave_ttl) == (0.2, 0.2, 30.0, 600.0)
    assert (local.announce_interval, local.refresh_interval, local.record_ttl, local.record_tombstone_ttl,
            local.sync_interval) == (0.1, 30.0, 100.0, 600.0, 2.0)
    assert (local.hyparview.shuffle_interval, local.plumtree.graft_timeout) == (5.0, 0.5)
    assert (lan.tombstone_ttl, lan.record_tombstone_ttl, lan.max_members, lan.max_records) == (120.0, 3600.0, 4096, 65536)
    assert (wan.heartbeat_interval, wan.sync_interval, wan.record_tombstone_ttl, wan.hyparview.shuffle_interval,
            wan.plumtree.lazy_interval) == (2.0, 30.0, 3600.0, 30.0, 2.0)
    flat = local.as_dict()
    assert flat["hyparview"]["active_max"] == 6 and flat["plumtree"]["lazy_interval"] == 0.2
    with pytest.raises(ConfigError, match="MembershipConfig.indirect_probes"):
        MembershipConfig(indirect_probes=-1)
    with pytest.raises(ConfigError, match="MembershipConfig.suspect_timeout_max"):
        MembershipConfig(suspect_timeout=2.0, suspect_timeout_max=1.0)
    with pytest.raises(ConfigError, match="MembershipConfig.max_records"):
        MembershipConfig(max_records=1)
