"""Pure parts of the discovery contract: candidates, local node, endpoints, merging, config mapping."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

import pytest

from fabric.clock import ManualClock
from fabric.discovery import (
    CHANNEL_ORDER,
    Candidate,
    ConfigurationError,
    DiscoveryError,
    LocalNode,
    PluginStateError,
    StaticConfig,
    StaticPlugin,
    concretize_endpoint,
    config_from_mapping,
    endpoints_from_port_base,
    format_tcp_endpoint,
    merge_candidates,
    parse_tcp_endpoint,
)
from fabric.discovery.base import RateLimitedLog
from fabric.discovery.static import normalize_seed

A, B = str(uuid.uuid4()), str(uuid.uuid4())


def test_candidate_is_immutable_hashable_and_validated() -> None:
    endpoints = {"membership": "tcp://10.0.0.5:7946"}
    cand = Candidate(seed="tcp://10.0.0.5:7946", node_id=A, endpoints=endpoints, meta={"k": "v"}, source="dns")
    endpoints["data"] = "tcp://x:1"  # the candidate copied its input
    assert "data" not in cand.endpoints
    with pytest.raises(TypeError):
        cand.endpoints["x"] = "y"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cand.seed = "tcp://other:1"  # type: ignore[misc]
    twin = Candidate(seed="tcp://10.0.0.5:7946", node_id=A, endpoints=dict(endpoints_ := {"membership": "tcp://10.0.0.5:7946"}),
                     meta={"k": "v"}, source="dns")
    assert twin == cand and hash(twin) == hash(cand) and len({twin, cand}) == 1
    assert endpoints_ == dict(twin.endpoints)
    assert cand.key == A
    assert Candidate(seed="tcp://h:1").key == "tcp://h:1"
    assert cand.to_dict()["endpoints"] == {"membership": "tcp://10.0.0.5:7946"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": "10.0.0.5:7946"},
        {"seed": "udp://h:1"},
        {"seed": "tcp://h:1", "node_id": "not-a-uuid"},
        {"seed": "tcp://h:1", "endpoints": {"data": "h:2"}},
        {"seed": "tcp://h:1", "meta": {"k": 1}},
    ],
)
def test_candidate_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Candidate(**kwargs)  # type: ignore[arg-type]


def test_errors_share_one_root() -> None:
    assert issubclass(ConfigurationError, DiscoveryError) and issubclass(ConfigurationError, ValueError)
    assert issubclass(PluginStateError, DiscoveryError)


def test_local_node_needs_a_membership_endpoint_and_uuid() -> None:
    node = LocalNode(node_id=A, name="a", endpoints={"membership": "tcp://*:7946"})
    assert node.seed == "tcp://*:7946"
    with pytest.raises(ConfigurationError):
        LocalNode(node_id=A, name="a", endpoints={"data": "tcp://*:7949"})
    with pytest.raises(ConfigurationError):
        LocalNode(node_id="a", name="a", endpoints={"membership": "tcp://*:7946"})


def test_endpoint_helpers() -> None:
    assert format_tcp_endpoint("::1", 7946) == "tcp://[::1]:7946"
    assert parse_tcp_endpoint("tcp://[::1]:7946") == ("::1", 7946)
    assert parse_tcp_endpoint("tcp://host.example:1") == ("host.example", 1)
    for bad in ("ipc:///tmp/x", "tcp://host", "tcp://host:0", "tcp://host:99999", "tcp://:5"):
        with pytest.raises(ConfigurationError):
            parse_tcp_endpoint(bad)
    ports = endpoints_from_port_base("10.0.0.5", 7946)
    assert list(ports) == list(CHANNEL_ORDER)
    assert ports["membership"] == "tcp://10.0.0.5:7946" and ports["events"] == "tcp://10.0.0.5:7950"
    with pytest.raises(ConfigurationError):
        endpoints_from_port_base("h", 65533)
    assert concretize_endpoint("tcp://*:7946", "10.1.1.1") == "tcp://10.1.1.1:7946"
    assert concretize_endpoint("tcp://0.0.0.0:7946", "fe80::1") == "tcp://[fe80::1]:7946"
    assert concretize_endpoint("tcp://10.0.0.9:7946", "10.1.1.1") == "tcp://10.0.0.9:7946"
    assert concretize_endpoint("ipc:///tmp/a", "10.1.1.1") == "ipc:///tmp/a"


def test_merge_by_node_id_and_fold_anonymous_by_seed() -> None:
    dns_a = Candidate(seed="tcp://10.0.0.1:7946", name="a.svc", meta={"dns_name": "a.svc"}, source="dns")
    dns_c = Candidate(seed="tcp://10.0.0.3:7946", source="dns")
    gossip_a = Candidate(seed="tcp://10.0.0.1:7946", node_id=A, name="alpha",
                         endpoints={"membership": "tcp://10.0.0.1:7946", "data": "tcp://10.0.0.1:7949"},
                         meta={"role": "x"}, source="gossip")
    mdns_a = Candidate(seed="tcp://10.0.0.1:7946", node_id=A, meta={"public_key": "k"}, source="mdns")
    gossip_b = Candidate(seed="tcp://10.0.0.2:7946", node_id=B, source="gossip")
    static_c = Candidate(seed="tcp://10.0.0.3:7946", source="static")
    merged = merge_candidates([dns_a, dns_c, gossip_a, mdns_a, gossip_b, static_c])
    assert [c.key for c in merged] == [A, "tcp://10.0.0.3:7946", B]
    a = merged[0]
    assert a.node_id == A and a.name == "a.svc"  # first occurrence wins the name
    assert a.source == "dns+gossip+mdns"
    assert dict(a.meta) == {"dns_name": "a.svc", "role": "x", "public_key": "k"}
    assert a.endpoints["data"] == "tcp://10.0.0.1:7949"
    assert merged[1].source == "dns+static"
    assert merge_candidates([]) == []


def test_merge_does_not_fold_two_identified_nodes_sharing_a_seed() -> None:
    # A restarted node (new id, same address) is a different node until membership says otherwise.
    old = Candidate(seed="tcp://10.0.0.1:7946", node_id=A, source="gossip")
    new = Candidate(seed="tcp://10.0.0.1:7946", node_id=B, source="mdns")
    assert len(merge_candidates([old, new])) == 2


def test_config_from_mapping() -> None:
    cfg = config_from_mapping(StaticConfig, {"seeds": ["a:1", "tcp://b:2"], "default_port": 9000})
    assert cfg.seeds == ("tcp://a:1", "tcp://b:2")
    with pytest.raises(ConfigurationError, match="unknown option"):
        config_from_mapping(StaticConfig, {"seed": ["a"]})


def test_rate_limited_log_suppresses_within_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    log = RateLimitedLog(logging.getLogger("test.discovery"), clock, interval=10)
    with caplog.at_level(logging.WARNING, logger="test.discovery"):
        assert log.warning("k", "down %s", 1)
        assert not log.warning("k", "down %s", 2)
        assert not log.warning("k", "down %s", 3)
        assert log.warning("other", "other")
        clock.advance(10)
        assert log.warning("k", "down %s", 4)
    assert [r.getMessage() for r in caplog.records] == ["down 1", "other", "down 4 (2 similar suppressed)"]


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("10.0.0.5", "tcp://10.0.0.5:7946"),
        ("10.0.0.5:8000", "tcp://10.0.0.5:8000"),
        ("node-a.example", "tcp://node-a.example:7946"),
        ("[::1]:9000", "tcp://[::1]:9000"),
        ("[::1]", "tcp://[::1]:7946"),
        ("::1", "tcp://[::1]:7946"),
        ("tcp://h:1", "tcp://h:1"),
        ("ipc:///tmp/n1", "ipc:///tmp/n1"),
    ],
)
def test_normalize_seed(text: str, endpoint: str) -> None:
    assert normalize_seed(text) == endpoint


@pytest.mark.parametrize("bad", ["", "udp://h:1", "h:port", "h:0", "[::1]x", ":7946", "ipc://"])
def test_normalize_seed_rejects(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_seed(bad)


def test_static_plugin_life_cycle_skips_itself_and_watch_ends_on_stop() -> None:
    local = LocalNode(node_id=A, name="a", endpoints={"membership": "tcp://10.0.0.1:7946"})
    plugin = StaticPlugin(StaticConfig(seeds=("10.0.0.1", "10.0.0.2", "10.0.0.2:7946")))

    async def scenario() -> None:
        with pytest.raises(PluginStateError):
            await plugin.lookup()
        await plugin.start(local)
        with pytest.raises(PluginStateError):
            await plugin.start(local)
        assert [c.seed for c in await plugin.lookup()] == ["tcp://10.0.0.2:7946"]
        seen = []
        async for cands in plugin.watch():
            seen.append(cands)
            await plugin.stop()
        assert len(seen) == 1 and seen[0][0].source == "static"
        await plugin.stop()  # idempotent
        assert plugin.stats()["lookups"] == 2 and not plugin.running

    asyncio.run(scenario())
