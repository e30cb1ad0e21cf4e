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


def test_one_failure_detector_configuration_for_every_overlay() -> None:
    from dataclasses import fields

    from fabric.membership import OverlayConfig
    from fabric.membership.config import FailureDetectorConfig

    shared = {f.name for f in fields(FailureDetectorConfig)}
    assert {"heartbeat_interval", "phi_threshold", "suspect_timeout", "indirect_probes", "local_health_max"} <= shared
    for cls in (MembershipConfig, OverlayConfig):
        assert issubclass(cls, FailureDetectorConfig)
        for preset in ("local", "lan", "wan"):
            a, b = getattr(MembershipConfig, preset)(), getattr(OverlayConfig, preset)()
            assert {n: getattr(a, n) for n in shared} == {n: getattr(b, n) for n in shared}, preset
    # the shared validation names the concrete class
    with pytest.raises(ConfigError, match="OverlayConfig.indirect_probes"):
        OverlayConfig(indirect_probes=-1)
    with pytest.raises(ConfigError, match="MembershipConfig.suspect_timeout_max"):
        MembershipConfig(suspect_timeout=2.0, suspect_timeout_max=1.0)
