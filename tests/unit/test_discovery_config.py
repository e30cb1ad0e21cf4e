"""Config validation and presets of every strategy, and the plugin registry (including entry points)."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
from pathlib import Path

import pytest

from fabric.discovery import (
    ConfigurationError,
    DiscoveryPlugin,
    DiscoveryRegistry,
    DnsConfig,
    DnsPlugin,
    GossipConfig,
    MdnsConfig,
    MultiConfig,
    MultiDiscovery,
    PluginLoadError,
    StaticConfig,
    StaticPlugin,
    UnknownPluginError,
    default_registry,
    registry,
)


@pytest.mark.parametrize(
    ("config_type", "kwargs"),
    [
        (StaticConfig, {"seeds": "10.0.0.1"}),
        (StaticConfig, {"seeds": (1,)}),
        (StaticConfig, {"default_port": 0}),
        (DnsConfig, {"query": ""}),
        (DnsConfig, {"query": "x", "record_type": "MX"}),
        (DnsConfig, {"query": "x", "port": 65534}),
        (DnsConfig, {"query": "x", "nameservers": ("dns.example",)}),
        (DnsConfig, {"query": "x", "nameserver_port": 70000}),
        (DnsConfig, {"query": "x", "polling_interval": 0}),
        (DnsConfig, {"query": "x", "timeout": -1}),
        (DnsConfig, {"query": "x", "srv_target_types": ("MX",)}),
        (MdnsConfig, {"service_type": "_foundation._tcp.example."}),
        (MdnsConfig, {"service_type": "_averyveryverylongname._tcp.local."}),
        (MdnsConfig, {"interfaces": ("eth0",)}),
        (MdnsConfig, {"ip_version": "v5"}),
        (MdnsConfig, {"instance_name": "x" * 64}),
        (GossipConfig, {"group": "10.0.0.1"}),
        (GossipConfig, {"group": "ff02::1"}),
        (GossipConfig, {"interface": "::1"}),
        (GossipConfig, {"ttl": 300}),
        (GossipConfig, {"ttl": True}),
        (GossipConfig, {"interval": 5.0, "candidate_ttl": 6.0}),
        (GossipConfig, {"secret": ""}),
        (GossipConfig, {"port": 0}),
        (MultiConfig, {"strategies": ("dns", "dns")}),
        (MultiConfig, {"strategies": ("multi",)}),
        (MultiConfig, {"strategies": ("dns",), "options": {"gossip": {}}}),
        (MultiConfig, {"answer_ttl": 0}),
        (MultiConfig, {"reoffer_interval": -1}),
    ],
)
def test_invalid_configs_are_rejected(config_type: type, kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        config_type(**kwargs)


def test_presets_override_only_what_differs() -> None:
    assert DnsConfig.local("a.test").polling_interval == 1.0
    assert DnsConfig.wan("a.test").timeout == 5.0
    assert DnsConfig.lan("a.test") == DnsConfig(query="a.test")
    assert GossipConfig.local().interface == "127.0.0.1"
    assert GossipConfig.local(port=5000).port == 5000
    assert GossipConfig.lan() == GossipConfig()
    assert MdnsConfig.local().interfaces == ("127.0.0.1",)
    assert MultiConfig.local().answer_ttl < MultiConfig.lan().answer_ttl
    # strings where sequences belong are accepted as one element
    assert DnsConfig(query="x", nameservers="127.0.0.1").nameservers == ("127.0.0.1",)  # type: ignore[arg-type]


def test_registry_builds_plugins_from_mappings() -> None:
    assert registry.names() == ["consul", "dns", "gossip", "kubernetes", "mdns", "multi", "static"]
    plugin = registry.create("static", {"seeds": ["10.0.0.1:7000"]})
    assert isinstance(plugin, StaticPlugin) and plugin.config.seeds == ("tcp://10.0.0.1:7000",)
    dns = registry.create("dns", {"query": "_f._tcp.x", "record_type": "SRV", "nameservers": ["127.0.0.1"]})
    assert isinstance(dns, DnsPlugin) and dns.config.nameservers == ("127.0.0.1",)
    multi = registry.create("multi", {"strategies": ["static", "dns"],
                                      "options": {"static": {"seeds": ["h"]}, "dns": {"query": "h.test"}}})
    assert isinstance(multi, MultiDiscovery) and [c.name for c in multi.children] == ["static", "dns"]
    with pytest.raises(ConfigurationError, match="unknown option"):
        registry.create("static", {"sedes": []})
    with pytest.raises(ConfigurationError):
        registry.create("static", 42)
    with pytest.raises(ConfigurationError):
        StaticPlugin(GossipConfig())


def test_unknown_strategy_names_the_known_ones() -> None:
    with pytest.raises(UnknownPluginError, match="known: consul, dns, gossip, kubernetes"):
        default_registry().get("consul-ish")


def test_register_rejects_non_plugins_and_duplicates() -> None:
    reg = DiscoveryRegistry()
    reg.register(StaticPlugin)
    reg.register(StaticPlugin)  # same class again is fine
    with pytest.raises(ConfigurationError):
        reg.register(DnsPlugin, "static")
    with pytest.raises(ConfigurationError):
        reg.register(object)  # type: ignore[arg-type]
    reg.register(DnsPlugin, "static", replace=True)
    assert reg.get("static") is DnsPlugin


def test_entry_point_plugins_are_found_and_broken_ones_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real installed distribution on sys.path, found by importlib.metadata like any pip-installed one.
    (tmp_path / "ff_thirdparty.py").write_text(textwrap.dedent('''
        import dataclasses
        from fabric.discovery import DiscoveryPlugin, Candidate

        @dataclasses.dataclass(frozen=True)
        class ListConfig:
            seed: str = "tcp://192.0.2.1:7946"

        class ListPlugin(DiscoveryPlugin):
            name = "thirdparty"
            config_type = ListConfig

            async def _start(self, local): pass
            async def _lookup(self): return [Candidate(seed=self.config.seed, source=self.name)]
            async def _stop(self): pass

        NOT_A_PLUGIN = 42
    '''))
    dist = tmp_path / "ff_thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ff-thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[foundation.discovery]\n"
        "thirdparty = ff_thirdparty:ListPlugin\n"
        "broken = ff_thirdparty_missing:Plugin\n"
        "notaplugin = ff_thirdparty:NOT_A_PLUGIN\n"
        "static = ff_thirdparty:ListPlugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        reg = default_registry()
        plugin_class = reg.get("thirdparty")
        assert issubclass(plugin_class, DiscoveryPlugin)
        assert reg.create("thirdparty", {"seed": "tcp://192.0.2.9:1"}).config.seed == "tcp://192.0.2.9:1"
        assert reg.get("static") is StaticPlugin  # built-ins are not replaced by entry points
        with pytest.raises(PluginLoadError, match="import failed"):
            reg.get("broken")
        with pytest.raises(PluginLoadError):
            reg.get("notaplugin")
        assert set(reg.load_errors) == {"broken", "notaplugin"}
    finally:
        sys.modules.pop("ff_thirdparty", None)


def test_dns_channels_option_must_start_with_membership() -> None:
    assert DnsConfig(query="x", channels=("membership", "extra")).channels == ("membership", "extra")
    for bad in (("data",), (), ("membership", "membership")):
        with pytest.raises(ConfigurationError):
            DnsConfig(query="x", channels=bad)
    with pytest.raises(ConfigurationError):
        DnsConfig(query="x", port=65530, channels=("membership", "a", "b", "c", "d", "e", "f"))


def test_discovery_errors_sit_under_the_fabric_root() -> None:
    from fabric.errors import ConfigError, FabricError

    assert issubclass(ConfigurationError, ConfigError) and issubclass(ConfigurationError, FabricError)
