"""Pure parts of the kubernetes strategy: EndpointSlices -> candidates, the watch cache, selectors, config,
the token source, and the splitting of a watch stream into events (fed from memory, no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fabric.clock import ManualClock
from fabric.discovery import ConfigurationError, MalformedInput, registry
from fabric.discovery.kubernetes import (
    EndpointSliceCache,
    JsonLines,
    KubernetesConfig,
    KubernetesPlugin,
    TokenSource,
    candidates_from_slice,
    candidates_from_slices,
    parse_label_selector,
)


def slice_obj(name: str = "s1", endpoints: list[dict[str, Any]] | None = None, ports: dict[str, int] | None = None,
              address_type: str = "IPv4", rv: str = "5") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                     "labels": {"kubernetes.io/service-name": "foundation"}},
        "addressType": address_type,
        "endpoints": endpoints if endpoints is not None else [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": "p1"},
             "nodeName": "worker-1", "zone": "z1"}],
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in (ports or {"membership": 7946}).items()],
    }


def test_endpoint_becomes_a_candidate_with_named_and_derived_ports() -> None:
    (cand,) = candidates_from_slice(slice_obj(ports={"membership": 7000, "data": 9000, "metrics": 9090}))
    assert cand.seed == "tcp://10.0.0.1:7000" and cand.name == "p1" and cand.node_id is None
    assert dict(cand.endpoints) == {"membership": "tcp://10.0.0.1:7000", "coordination": "tcp://10.0.0.1:7001",
                                    "gossip": "tcp://10.0.0.1:7002", "data": "tcp://10.0.0.1:9000",
                                    "events": "tcp://10.0.0.1:7004"}
    assert cand.meta == {"slice": "s1", "ready": "true", "serving": "true", "pod": "p1", "namespace": "ns",
                         "k8s_node": "worker-1", "zone": "z1"}
    (bare,) = candidates_from_slice(slice_obj(), derive_endpoints=False)
    assert dict(bare.endpoints) == {"membership": "tcp://10.0.0.1:7946"}
    (custom,) = candidates_from_slice(slice_obj(ports={"fabric": 8000}), port_name="fabric")
    assert custom.seed == "tcp://10.0.0.1:8000"


def test_readiness_conditions() -> None:
    endpoints = [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
        {"addresses": ["10.0.0.2"], "conditions": {"ready": False, "serving": False}},
        {"addresses": ["10.0.0.3"], "conditions": {}},  # unknown: read as ready (API docs)
        {"addresses": ["10.0.0.4"]},
        {"addresses": ["10.0.0.5"], "conditions": {"ready": False, "serving": True, "terminating": True}},
        {"addresses": ["10.0.0.6"], "conditions": {"ready": True, "terminating": True}},
        {"addresses": ["10.0.0.7", "10.0.0.8"], "conditions": {"ready": True}},  # fungible: the first
    ]
    seeds = [c.seed.split("//")[1].split(":")[0] for c in candidates_from_slice(slice_obj(endpoints=endpoints))]
    assert seeds == ["10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.0.7"]
    with_not_ready = candidates_from_slice(slice_obj(endpoints=endpoints), include_not_ready=True)
    assert [c.meta["ready"] for c in with_not_ready] == ["true", "false", "true", "true", "true"]


def test_ipv6_and_fqdn_slices() -> None:
    (v6,) = candidates_from_slice(slice_obj(address_type="IPv6",
                                            endpoints=[{"addresses": ["fd00::1"], "hostname": "pod-a"}]))
    assert v6.seed == "tcp://[fd00::1]:7946" and v6.name == "pod-a"
    (fqdn,) = candidates_from_slice(slice_obj(address_type="FQDN", endpoints=[{"addresses": ["a.example.com"]}]))
    assert fqdn.seed == "tcp://a.example.com:7946"


@pytest.mark.parametrize("bad", [
    slice_obj(ports={"http": 80}),                       # no membership port
    slice_obj(address_type="Unix"),
    slice_obj(endpoints=[{"addresses": []}]),
    slice_obj(endpoints=[{"conditions": "yes", "addresses": ["10.0.0.1"]}]),
    slice_obj(endpoints="many"),  # type: ignore[arg-type]
    {"metadata": {}},
    "garbage",
])
def test_malformed_slices_raise(bad: Any) -> None:
    with pytest.raises(MalformedInput):
        candidates_from_slice(bad)


def test_udp_port_with_our_name_is_not_ours() -> None:
    obj = slice_obj()
    obj["ports"] = [{"name": "membership", "port": 7946, "protocol": "UDP"}]
    with pytest.raises(MalformedInput):
        candidates_from_slice(obj)


def test_all_slices_merge_by_seed_and_report_bad_ones() -> None:
    slices = {"ns/a": slice_obj("a"), "ns/b": slice_obj("b"), "ns/c": slice_obj("c", ports={"x": 1})}
    found, problems = candidates_from_slices(slices)
    assert [c.seed for c in found] == ["tcp://10.0.0.1:7946"]  # the same pod in two slices: one candidate
    assert len(problems) == 1 and "ns/c" in problems[0]


def test_cache_follows_list_and_watch_events() -> None:
    cache = EndpointSliceCache()
    assert cache.resource_version is None
    cache.replace({"metadata": {"resourceVersion": "10"}, "items": [slice_obj("a", rv="9")]})
    assert set(cache.slices) == {"ns/a"} and cache.resource_version == "10"
    assert cache.apply({"type": "ADDED", "object": slice_obj("b", rv="11")}) == "changed"
    assert cache.apply({"type": "MODIFIED", "object": slice_obj("a", rv="12", endpoints=[])}) == "changed"
    assert cache.slices["ns/a"]["endpoints"] == []
    assert cache.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}}) == "bookmark"
    assert cache.resource_version == "20" and set(cache.slices) == {"ns/a", "ns/b"}
    assert cache.apply({"type": "DELETED", "object": slice_obj("b", rv="21")}) == "changed"
    assert set(cache.slices) == {"ns/a"} and cache.resource_version == "21"
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    assert cache.apply(gone) == "gone" and cache.resource_version is None
    assert set(cache.slices) == {"ns/a"}  # kept until the relist replaces it


@pytest.mark.parametrize("event", [
    {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}},
    {"type": "ADDED"},
    {"type": "WHAT", "object": slice_obj()},
    {"type": "ADDED", "object": {"metadata": {"name": "x"}}},  # no resourceVersion
    "garbage",
])
def test_cache_rejects_bad_events_and_keeps_its_state(event: Any) -> None:
    cache = EndpointSliceCache()
    cache.replace({"metadata": {"resourceVersion": "10"}, "items": [slice_obj("a")]})
    with pytest.raises(MalformedInput):
        cache.apply(event)
    assert cache.resource_version == "10" and set(cache.slices) == {"ns/a"}
    with pytest.raises(MalformedInput):
        cache.replace({"items": []})  # no resourceVersion


def test_label_selectors() -> None:
    assert parse_label_selector("app=foundation, tier!=web,ready,!legacy") == [
        ("app", "=", "foundation"), ("tier", "!=", "web"), ("ready", "exists", None), ("legacy", "!exists", None)]
    assert parse_label_selector("kubernetes.io/service-name==foundation") == [
        ("kubernetes.io/service-name", "=", "foundation")]
    for bad in ("", "app in (a,b)", "=x", "bad key=1"):
        with pytest.raises(ConfigurationError):
            parse_label_selector(bad)


def test_config_validation_presets_and_registry() -> None:
    assert KubernetesConfig(service="foundation").selector() == "kubernetes.io/service-name=foundation"
    assert KubernetesConfig(service="x", label_selector="app=y").selector() == "app=y"
    assert KubernetesConfig.lan(service="x") == KubernetesConfig(service="x")
    assert KubernetesConfig.local(service="x").backoff_max < KubernetesConfig(service="x").backoff_max
    for bad in ({}, {"mode": "dns"}, {"service": "Bad_Name"}, {"service": "x", "mode": "api"},
                {"service": "x", "namespace": "UPPER"}, {"service": "x", "channels": ("data",)},
                {"service": "x", "api_server": "ftp://h"}, {"service": "x", "watch_timeout": 0},
                {"service": "x", "backoff_initial": 9, "backoff_max": 1}, {"service": "x", "port": 0},
                {"service": "x", "dns": "nope"}, {"service": "x", "include_not_ready": "yes"}):
        with pytest.raises(ConfigurationError):
            KubernetesConfig(**bad)
    plugin = registry.create("kubernetes", {"service": "foundation", "namespace": "team-a",
                                            "channels": ["membership", "data"], "token_file": "/tmp/t"})
    assert isinstance(plugin, KubernetesPlugin) and plugin.config.channels == ("membership", "data")
    dns = registry.create("kubernetes", {"mode": "dns", "service": "foundation", "dns": {"nameservers": ["10.0.0.10"]}})
    assert isinstance(dns, KubernetesPlugin) and dns.config.mode == "dns"


def test_token_source_rereads_after_interval_and_after_invalidate(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    clock = ManualClock()
    tokens = TokenSource(str(token_file), reload_interval=60.0, clock=clock)

    async def scenario() -> None:
        assert await tokens.get() == "first"
        token_file.write_text("second")
        assert await tokens.get() == "first"  # cached within the interval
        clock.advance(60.0)
        assert await tokens.get() == "second"
        token_file.write_text("third")
        tokens.invalidate()  # a 401
        assert await tokens.get() == "third"
        token_file.unlink()
        tokens.invalidate()
        assert await tokens.get() is None  # no token: no Authorization header (kubectl proxy)
        assert tokens.reads == 4

    asyncio.run(scenario())


def test_watch_stream_records_split_across_reads_and_bounded() -> None:
    records = JsonLines(max_line=64)
    # A record split across reads is joined; a read may end one record and start the next; blank
    # lines (keep-alives) are skipped; the last record may lack its newline.
    assert records.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert records.feed(b':2}\n\n\r\n{"c') == [b'{"b":2}']
    assert records.feed(b'":3}') == []
    assert records.finish() == [b'{"c":3}']
    assert records.finish() == []
    with pytest.raises(MalformedInput):  # a server that never ends its record cannot exhaust memory
        for _ in range(10):
            records.feed(b"x" * 10)
    with pytest.raises(MalformedInput):
        JsonLines(max_line=4).feed(b"12345\n")
