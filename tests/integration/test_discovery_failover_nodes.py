"""Multi-strategy failover with real node processes: the first strategy's server (dnsmasq) is gone, and
three nodes still form a cluster through the second (UDP gossip beacons on 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.test_discovery_dns import DOMAIN, Dnsmasq
from tests.integration.test_discovery_gossip import free_udp_port
from tests.integration.test_node_processes import NodeChild
from tests.support import short_tmpdir


@pytest.fixture
def dead_dnsmasq() -> Iterator[Dnsmasq]:
    with short_tmpdir("fffo") as workdir:
        server = Dnsmasq(workdir)
        server.set_hosts([("127.0.0.1", f"nodes.{DOMAIN}")])
        server.start()
        server.stop()  # the first strategy's server goes away before the nodes start
        yield server


def test_three_node_processes_form_a_cluster_through_the_second_strategy(dead_dnsmasq: Dnsmasq) -> None:
    spec = {
        "strategy": "multi",
        "options": {
            "strategies": ["dns", "gossip"],
            "options": {
                "dns": {"query": f"nodes.{DOMAIN}", "port": 7946, "nameservers": ["127.0.0.1"],
                        "nameserver_port": dead_dnsmasq.port, "timeout": 0.5, "polling_interval": 0.5},
                "gossip": {"interface": "127.0.0.1", "port": free_udp_port(), "interval": 0.3, "secret": "s3cret"},
            },
        },
    }
    nodes = [NodeChild("--name", f"n{i}", "--discovery", json.dumps(spec), "--min-members", "3") for i in range(3)]
    try:
        for child in nodes:
            assert child.expect("joined", 60)["members"] == ["n0", "n1", "n2"]
    finally:
        for child in nodes:
            child.stop()
