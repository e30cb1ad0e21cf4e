"""Pure parts of the consul strategy: registration, health entries -> candidates, index rules, config, backoff."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest

from fabric.discovery import ConfigurationError, LocalNode, MalformedInput, registry
from fabric.discovery._consul_backoff import Backoff
from fabric.discovery.consul import (
    ConsulConfig,
    ConsulPlugin,
    build_registration,
    candidate_from_entry,
    candidates_from_entries,
    next_index,
)

NODE_ID = str(uuid.uuid4())


def entry(meta: dict[str, str] | None = None, *, address: str = "10.0.0.5", port: int = 7946,
          node_address: str = "10.0.0.99", statuses: tuple[str, ...] = ("passing", "passing")) -> dict[str, Any]:
    """A /v1/health/service entry shaped like Consul's."""
    return {
        "Node": {"ID": str(uuid.uuid4()), "Node": "agent-1", "Address": node_address, "Datacenter": "dc1"},
        "Service": {"ID": f"foundation-{NODE_ID}", "Service": "foundation", "Tags": [], "Address": address,
                    "Port": port, "Meta": {"fv": "1", "node_id": NODE_ID, "node_name": "alpha"} if meta is None else meta},
        "Checks": [{"CheckID": "serfHealth", "Status": statuses[0]},
                   {"CheckID": f"service:foundation-{NODE_ID}", "Status": statuses[1]}],
    }


def test_registration_of_a_wildcard_bind_lets_consul_fill_the_address() -> None:
    local = LocalNode(node_id=NODE_ID, name="alpha", endpoints={"membership": "tcp://*:7946", "data": "tcp://*:7949"},
                      metadata={"zone": "a", "bad key": "x"}, public_key="pk")
    reg = build_registration(local, ConsulConfig(tags=("t1",)))
    assert reg.service_id == f"foundation-{NODE_ID}" and reg.check_id == f"service:foundation-{NODE_ID}"
    assert (reg.address, reg.port, reg.tags) == ("", 7946, ("t1",))
    assert reg.meta == {"fv": "1", "node_id": NODE_ID, "node_name": "alpha", "ep_membership": "tcp://*:7946",
                        "ep_data": "tcp://*:7949", "pk": "pk", "m_zone": "a"}
    assert reg.skipped == ("m_bad key",)
    check = reg.check(ConsulConfig(ttl=10.0, deregister_critical_after=90.0))
    assert check == {"CheckID": reg.check_id, "Name": "foundation TTL", "TTL": "10s",
                     "Notes": check["Notes"], "DeregisterCriticalServiceAfter": "90s"}
    assert reg.check(ConsulConfig(ttl=2.5, deregister_critical_after=None))["TTL"] == "2500ms"


def test_registration_address_override_and_meta_limits() -> None:
    endpoints = {"membership": "tcp://10.0.0.4:7000", **{f"c{i}": f"tcp://10.0.0.4:{8000 + i}" for i in range(70)}}
    reg = build_registration(LocalNode(node_id=NODE_ID, name="n", endpoints=endpoints), ConsulConfig(address="192.0.2.1"))
    assert reg.address == "192.0.2.1" and reg.port == 7000
    # Consul allows 64 pairs: fv, node_id, node_name, 71 endpoints = 74 -> 10 left out (membership kept).
    assert len(reg.meta) == 64 and len(reg.skipped) == 10 and "ep_membership" in reg.meta
    ipc = LocalNode(node_id=NODE_ID, name="n", endpoints={"membership": "ipc:///tmp/x/m"})
    assert build_registration(ipc, ConsulConfig()).port == 0
    with pytest.raises(ConfigurationError):
        build_registration(ipc, ConsulConfig(address="10.0.0.1"))


def test_entry_becomes_a_candidate_with_endpoints_from_meta() -> None:
    cand = candidate_from_entry(entry({"fv": "1", "node_id": NODE_ID, "node_name": "alpha",
                                       "ep_membership": "tcp://*:7946", "ep_data": "tcp://*:7949",
                                       "pk": "KEY", "m_zone": "eu"}))
    assert cand is not None
    assert cand.seed == "tcp://10.0.0.5:7946" and cand.node_id == NODE_ID and cand.name == "alpha"
    assert dict(cand.endpoints) == {"membership": "tcp://10.0.0.5:7946", "data": "tcp://10.0.0.5:7949"}
    assert cand.meta["public_key"] == "KEY" and cand.meta["zone"] == "eu" and cand.meta["consul_node"] == "agent-1"


def test_entry_without_service_address_uses_the_node_address_and_port() -> None:
    cand = candidate_from_entry(entry(address=""))
    assert cand is not None and cand.seed == "tcp://10.0.0.99:7946"
    assert dict(cand.endpoints) == {"membership": "tcp://10.0.0.99:7946"}
    ipv6 = candidate_from_entry(entry(address="fd00::5"))
    assert ipv6 is not None and ipv6.seed == "tcp://[fd00::5]:7946"


def test_unhealthy_entries_are_not_candidates() -> None:
    assert candidate_from_entry(entry(statuses=("passing", "critical"))) is None
    assert candidate_from_entry(entry(statuses=("warning", "passing"))) is None
    assert candidate_from_entry(entry(statuses=("passing", "warning")), only_passing=False) is not None


@pytest.mark.parametrize("bad", [
    "not an object",
    {"Node": {}, "Checks": []},
    entry({"fv": "2", "node_id": NODE_ID}),
    entry({"node_id": "not-a-uuid"}),
    entry({"node_id": NODE_ID, "ep_membership": "http://x"}),
    entry(address="", node_address="", port=7946),
    entry(port=0, meta={"node_id": NODE_ID}),
    entry(port=70000),
])
def test_malformed_entries_raise_malformed_input(bad: Any) -> None:
    with pytest.raises(MalformedInput):
        candidate_from_entry(bad)


def test_entries_are_sorted_and_bad_ones_reported() -> None:
    other = str(uuid.uuid4())
    entries = [entry({"node_id": other}, address="10.0.0.9"), entry({"fv": "9"}), entry()]
    found, problems = candidates_from_entries(entries)
    assert [c.seed for c in found] == ["tcp://10.0.0.5:7946", "tcp://10.0.0.9:7946"]
    assert len(problems) == 1 and "format" in problems[0]
    with pytest.raises(MalformedInput):
        candidates_from_entries({"not": "a list"})


def test_blocking_index_rules() -> None:
    assert next_index(0, "42") == (42, False)
    assert next_index(42, "42") == (42, False)  # a timed-out wait: same index
    assert next_index(42, "43") == (43, False)
    assert next_index(42, "7") == (0, True)  # went backwards: reset, next query does not block
    assert next_index(0, "0") == (1, False)  # never 0: a 0 index would never block
    for bad in ("", "-1", "abc", None, "1.5"):
        with pytest.raises(MalformedInput):
            next_index(0, bad)


def test_config_validation_and_presets() -> None:
    assert ConsulConfig.lan() == ConsulConfig()
    assert ConsulConfig.local().ttl == 2.0 and ConsulConfig.wan().ttl == 30.0
    assert ConsulConfig(ttl=9.0, pass_fraction=1 / 3).check_interval == pytest.approx(3.0)
    assert ConsulConfig(tags="a").tags == ("a",)  # type: ignore[arg-type]
    for bad in (
        {"service": "bad name"}, {"url": "ftp://x"}, {"url": "http://"}, {"url": "http://h:notaport"},
        {"ttl": 0.5}, {"pass_fraction": 0.5}, {"pass_fraction": 0}, {"wait": 601}, {"wait": 0},
        {"backoff_initial": 5, "backoff_max": 1}, {"key_file": "k.pem"}, {"token": ""}, {"tags": ("",)},
        {"verify": "yes"}, {"deregister_critical_after": -1}, {"request_timeout": True},
    ):
        with pytest.raises(ConfigurationError):
            ConsulConfig(**bad)


def test_registry_builds_consul_from_a_plain_dict() -> None:
    assert "consul" in registry.names() and "kubernetes" in registry.names()
    plugin = registry.create("consul", {"url": "https://consul.example:8501", "token": "t", "datacenter": "dc2",
                                        "ca_file": "/etc/ca.pem", "tags": ["a", "b"], "ttl": 15})
    assert isinstance(plugin, ConsulPlugin)
    assert plugin.config.tags == ("a", "b") and plugin.config.datacenter == "dc2"
    with pytest.raises(ConfigurationError, match="unknown option"):
        registry.create("consul", {"adress": "x"})


def test_backoff_grows_caps_jitters_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.failures == 0 and backoff.ceiling() == 0.0 and 0.25 <= backoff.next_delay() <= 0.5
    big = Backoff(initial=1.0, maximum=10.0)
    big.failures = 5000  # no float overflow after a very long outage
    assert big.ceiling() == 10.0
    for bad in ({"initial": 0}, {"maximum": 0.1}, {"multiplier": 0.5}):
        with pytest.raises(ConfigurationError):
            Backoff(**bad)  # type: ignore[arg-type]
