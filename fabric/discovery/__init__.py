"""Discovery: plugins that produce *candidate* peers for the join path. Discovery is never liveness.

Strategies (``registry.names()``): ``static``, ``dns`` (A/AAAA/SRV), ``mdns`` (zeroconf), ``gossip``
(UDP multicast beacons), ``consul`` (agent registration + blocking health queries), ``kubernetes``
(EndpointSlices list + watch, or headless-service DNS), ``multi`` (several at once, merged, with failover
and re-offers), plus third-party plugins registered under the entry-point group ``foundation.discovery``.
``consul`` and ``kubernetes`` load on first use (``fabric.discovery.consul.ConsulConfig``,
``fabric.discovery.kubernetes.KubernetesConfig``), so importing the fabric does not import their clients.
See docs/discovery.md.

Quick use (on the node's asyncio loop)::

    from fabric.discovery import LocalNode, registry

    plugin = registry.create("static", {"seeds": ["10.0.0.5:7946"]})
    await plugin.start(LocalNode(node_id=..., name="a", endpoints={"membership": "tcp://*:7946"}))
    candidates = await plugin.lookup()
    await plugin.stop()
"""

from __future__ import annotations

from .base import (
    CHANNEL_ORDER,
    DEFAULT_MEMBERSHIP_PORT,
    MEMBERSHIP_CHANNEL,
    Candidate,
    Clock,
    ConfigurationError,
    DiscoveryError,
    DiscoveryPlugin,
    LocalNode,
    MalformedInput,
    MissingDependencyError,
    PluginLoadError,
    PluginStateError,
    UnknownPluginError,
    concretize_endpoint,
    config_from_mapping,
    endpoints_from_port_base,
    format_tcp_endpoint,
    merge_candidates,
    parse_tcp_endpoint,
)
from .beacon import Beacon, BeaconCodec, BeaconTable
from .dns import DnsConfig, DnsPlugin
from .gossip import GossipConfig, GossipPlugin
from .mdns import MdnsConfig, MdnsPlugin
from .multi import CandidateMerger, CandidateUpdate, MultiConfig, MultiDiscovery
from .registry import ENTRY_POINT_GROUP, DiscoveryRegistry
from .report import CandidateReport, ChannelProbe, DiscoveryReport, discover, probe_candidate, probe_endpoint
from .static import StaticConfig, StaticPlugin

__all__ = [
    "CHANNEL_ORDER",
    "DEFAULT_MEMBERSHIP_PORT",
    "ENTRY_POINT_GROUP",
    "MEMBERSHIP_CHANNEL",
    "Beacon",
    "BeaconCodec",
    "BeaconTable",
    "Candidate",
    "CandidateMerger",
    "CandidateReport",
    "ChannelProbe",
    "CandidateUpdate",
    "Clock",
    "ConfigurationError",
    "DiscoveryError",
    "DiscoveryPlugin",
    "DiscoveryRegistry",
    "DiscoveryReport",
    "DnsConfig",
    "DnsPlugin",
    "GossipConfig",
    "GossipPlugin",
    "LocalNode",
    "MalformedInput",
    "MdnsConfig",
    "MdnsPlugin",
    "MissingDependencyError",
    "MultiConfig",
    "MultiDiscovery",
    "PluginLoadError",
    "PluginStateError",
    "StaticConfig",
    "StaticPlugin",
    "UnknownPluginError",
    "concretize_endpoint",
    "config_from_mapping",
    "default_registry",
    "discover",
    "endpoints_from_port_base",
    "format_tcp_endpoint",
    "merge_candidates",
    "parse_tcp_endpoint",
    "probe_candidate",
    "probe_endpoint",
    "registry",
]


def default_registry() -> DiscoveryRegistry:
    """A new registry holding the built-in strategies (entry points load on first unknown name)."""
    reg = DiscoveryRegistry()
    for plugin in (StaticPlugin, DnsPlugin, MdnsPlugin, GossipPlugin, MultiDiscovery):
        reg.register(plugin)
    return reg


#: The process-wide registry the node and the CLI use.
registry = default_registry()
