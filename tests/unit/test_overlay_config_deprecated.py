"""The deprecated spellings of the record overlays' configuration (one release): ``OverlayConfig`` and
``NodeConfig(overlay_config=...)`` / ``overlay_config.X`` settings map onto ``MembershipConfig``."""

from __future__ import annotations

import dataclasses

import pytest

from fabric import NodeConfig
from fabric.errors import ConfigError
from fabric.membership import MembershipConfig
from fabric.membership.config import HyParViewConfig
from fabric.settings import SettingsError, load


def test_overlay_config_alias_builds_a_membership_config_with_renamed_fields() -> None:
    from fabric.membership import OverlayConfig

    with pytest.warns(DeprecationWarning, match="MembershipConfig"):
        cfg = OverlayConfig(tombstone_ttl=900.0, max_members=1000, relay_ttl=7)
    assert isinstance(cfg, MembershipConfig) and isinstance(cfg, OverlayConfig)
    assert (cfg.record_tombstone_ttl, cfg.max_records, cfg.relay_ttl) == (900.0, 1000, 7)
    assert (cfg.tombstone_ttl, cfg.max_members) == (120.0, 4096)  # full-mesh's keep their defaults
    with pytest.warns(DeprecationWarning):
        assert OverlayConfig.local() == MembershipConfig.local()
    with pytest.warns(DeprecationWarning):
        assert OverlayConfig.wan(sync_interval=40.0) == MembershipConfig.wan(sync_interval=40.0)
    with pytest.warns(DeprecationWarning):
        assert OverlayConfig.lan() == MembershipConfig()


def test_node_config_overlay_config_maps_onto_membership() -> None:
    with pytest.warns(DeprecationWarning, match="overlay_config"):
        node = NodeConfig(overlay_config=MembershipConfig.local(relay_ttl=9))
    assert node.membership == MembershipConfig.local(relay_ttl=9)
    assert "overlay_config" not in {f.name for f in dataclasses.fields(node)}  # not a field: the settings walk skips it
    # the preset's membership plus what the old overlay config set; nested configs merge field by field
    with pytest.warns(DeprecationWarning):
        node = NodeConfig.local(overlay_config=MembershipConfig(relay_ttl=7, hyparview=HyParViewConfig(active_max=8)))
    assert node.membership.relay_ttl == 7 and node.membership.hyparview.active_max == 8
    assert node.membership.heartbeat_interval == 0.2 and node.membership.hyparview.shuffle_interval == 5.0
    assert node.replace(call_timeout=1.0).membership == node.membership  # replace() does not re-apply it
    # both given and disagreeing: one detector configures every overlay now, so this is an error
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="heartbeat_interval"):
        NodeConfig(membership=MembershipConfig.local(), overlay_config=MembershipConfig.wan())
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="overlay_config.hyparview.active_max"):
        NodeConfig(membership=MembershipConfig(hyparview=HyParViewConfig(active_max=4)),
                   overlay_config=MembershipConfig(hyparview=HyParViewConfig(active_max=8)))


def test_overlay_config_settings_keys_are_read_as_membership() -> None:
    with pytest.warns(DeprecationWarning, match="use membership"):
        node = load(flags={"set": ("overlay_config.hyparview.active_max=9", "overlay_config.tombstone_ttl=700")}).node
    assert node.membership.hyparview.active_max == 9 and node.membership.record_tombstone_ttl == 700.0
    with pytest.warns(DeprecationWarning), pytest.raises(SettingsError, match="set membership.relay_ttl only"):
        load(flags={"set": ("membership.relay_ttl=3", "overlay_config.relay_ttl=4")})
