"""Multi-strategy discovery: failover from a dead DNS server to gossip/static, with real components."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from fabric.clock import ManualClock
from fabric.discovery import (
    CandidateUpdate,
    DnsConfig,
    DnsPlugin,
    LocalNode,
    MultiConfig,
    MultiDiscovery,
    StaticConfig,
    StaticPlugin,
)
from tests.integration.test_discovery_dns import DOMAIN, SRV_NAME, Dnsmasq
from tests.integration.test_discovery_gossip import free_udp_port, ids, start_child, wait_stats, wait_view
from tests.support import children, short_tmpdir


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with short_tmpdir("ffmul") as workdir:
        server = Dnsmasq(workdir)
        try:
            yield server
        finally:
            server.stop()


def test_three_processes_keep_their_candidates_via_gossip_when_dns_dies(dnsmasq: Dnsmasq) -> None:
    bases = [25000, 25010, 25020]
    dnsmasq.set_hosts([("127.0.0.1", f"n{i}.{DOMAIN}") for i in range(3)])
    dnsmasq.start(srv=[(f"n{i}.{DOMAIN}", base) for i, base in enumerate(bases)])
    options = {
        "strategies": ["dns", "gossip"],
        "options": {
            "dns": {"query": SRV_NAME, "record_type": "SRV", "srv_target_types": ["A"],
                    "nameservers": ["127.0.0.1"], "nameserver_port": dnsmasq.port, "timeout": 1.0},
            "gossip": {"interface": "127.0.0.1", "port": free_udp_port(), "interval": 0.3,
                       "candidate_ttl": 2.0, "secret": "multi-secret"},
        },
        "polling_interval": 0.3,
        "answer_ttl": 1.5,
        "reoffer_interval": 1.0,
    }
    with children() as started:
        nodes = [start_child(started, "multi", f"x{i}", base, options) for i, base in enumerate(bases)]
        all_ids = {node_id for _, node_id in nodes}
        # Both strategies answer: DNS's anonymous SRV candidates fold into gossip's identified ones by seed.
        for child, node_id in nodes:
            wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me}
                      and all(set(str(c["source"]).split("+")) == {"dns", "gossip"} for c in v))

        dnsmasq.stop()
        # DNS is down: its last good answer ages out after answer_ttl; gossip still supplies every peer.
        for (child, node_id), base in zip(nodes, bases, strict=True):
            view = wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me}
                             and all(c["source"] == "gossip" for c in v))
            assert {str(c["seed"]) for c in view} == {f"tcp://127.0.0.1:{b}" for b in bases if b != base}
            counters = wait_stats(child, lambda s: s["dns.failures"] >= 1)
            assert counters["gossip.beacons_accepted"] > 0


def test_failover_ageing_and_reoffers_with_a_manual_clock(dnsmasq: Dnsmasq) -> None:
    name = f"nodes.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.61", name), ("127.0.0.62", name)])
    dnsmasq.start()
    clock = ManualClock(start=100.0)
    dns = DnsPlugin(DnsConfig.local(name, nameservers=("127.0.0.1",), nameserver_port=dnsmasq.port, timeout=1.0),
                    clock=clock)
    static = StaticPlugin(StaticConfig(seeds=("127.0.0.62", "127.0.0.70")), clock=clock)
    multi = MultiDiscovery(MultiConfig(answer_ttl=10.0, reoffer_interval=5.0, auto_refresh=False),
                           plugins=[dns, static], clock=clock)
    local = LocalNode(node_id=str(uuid.uuid4()), name="me", endpoints={"membership": "tcp://127.0.0.1:1"})
    updates: list[CandidateUpdate] = []

    async def scenario() -> None:
        multi.subscribe(updates.append)
        await multi.start(local)
        first = await multi.refresh()
        assert first is not None and first.reason == "changed"
        assert [(c.seed, c.source) for c in first.candidates] == [
            ("tcp://127.0.0.61:7946", "dns"), ("tcp://127.0.0.62:7946", "dns+static"), ("tcp://127.0.0.70:7946", "static"),
        ]
        clock.advance(1)
        assert await multi.refresh() is None  # nothing new, re-offer not due
        clock.advance(4)
        again = await multi.refresh()
        assert again is not None and again.reason == "reoffer" and again.candidates == first.candidates

        dnsmasq.stop()
        clock.advance(1)
        assert await multi.refresh() is None  # DNS failed, but its last good answer is still fresh
        assert multi.sources() == {"dns": True, "static": True}
        clock.advance(10)
        aged = await multi.refresh()
        assert aged is not None and aged.reason == "changed"
        assert [c.seed for c in aged.removed] == ["tcp://127.0.0.61:7946"]
        assert [(c.seed, c.source) for c in aged.candidates] == [
            ("tcp://127.0.0.62:7946", "static"), ("tcp://127.0.0.70:7946", "static"),
        ]
        assert multi.sources() == {"dns": False, "static": True}
        assert multi.stats()["dns.failures"] == 2

        dnsmasq.start()
        back = await multi.refresh()
        assert back is not None and [c.seed for c in back.added] == ["tcp://127.0.0.61:7946"]
        await multi.stop()
        assert [u.reason for u in updates] == ["changed", "reoffer", "changed", "changed"]

    asyncio.run(scenario())
