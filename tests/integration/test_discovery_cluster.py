"""Real nodes form a cluster from DNS candidates (dnsmasq A records + one port base, headless-service style).

Each node calls ``node.join(discovery=plugin)``: discovery only suggests seeds, membership does the rest.
The test also checks that the port-base convention discovery relies on (channel i at P+i) matches what
the real transport binds and advertises, and that a record that disappears never removes a live member.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from fabric import Node, NodeConfig
from fabric.discovery import DnsConfig, DnsPlugin
from tests.integration.test_discovery_dns import DOMAIN, Dnsmasq
from tests.support import heartbeat_rounds, short_tmpdir

HOSTS = ["127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"]
NAME = f"nodes.{DOMAIN}"


def free_port_base(hosts: list[str], width: int = 5) -> int:
    """A port P such that P..P+width-1 are free on every host (all nodes share one port base)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            base = int(probe.getsockname()[1])
        if base + width > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for host in hosts:
                for port in range(base, base + width):
                    sock = socket.socket()
                    sockets.append(sock)
                    sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port base")


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with short_tmpdir("ffclu") as workdir:
        server = Dnsmasq(workdir)
        try:
            yield server
        finally:
            server.stop()


async def until_members(node: Node, names: set[str], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while {m.name for m in node.alive_members()} != names:
        assert time.monotonic() < deadline, f"{node.name} sees {[m.name for m in node.alive_members()]}, wants {names}"
        await asyncio.sleep(0.02)


def test_nodes_form_a_cluster_from_dns_and_pick_up_a_new_record(dnsmasq: Dnsmasq) -> None:
    port = free_port_base(HOSTS)
    dnsmasq.set_hosts([(host, NAME) for host in HOSTS[:3]])
    dnsmasq.start()

    async def scenario() -> None:
        nodes = [Node(NodeConfig.local(name=f"n{i}", bind=f"tcp://{host}", port=port)) for i, host in enumerate(HOSTS)]
        plugins: list[DnsPlugin] = []
        try:
            for node in nodes:
                await node.start()
                plugins.append(
                    DnsPlugin(DnsConfig.local(NAME, port=port, nameservers=("127.0.0.1",), nameserver_port=dnsmasq.port))
                )
            # The first three nodes have records: they find each other and form the cluster.
            await asyncio.gather(
                *(node.join(discovery=plugin, min_members=3, timeout=30) for node, plugin in zip(nodes[:3], plugins, strict=False))
            )
            for node in nodes[:3]:
                await until_members(node, {"n0", "n1", "n2"})
                assert len(await plugins[0].lookup()) == 2  # the other two; never itself
            # The endpoints DNS derived from the port base are exactly what the peers advertise.
            by_seed = {p.seed: p for p in nodes[0].peers()}
            for cand in await plugins[0].lookup():
                assert dict(by_seed[cand.seed].endpoints) == dict(cand.endpoints)

            # A fourth node's record appears while the cluster runs: it joins through discovery alone.
            dnsmasq.set_hosts([(host, NAME) for host in HOSTS])
            dnsmasq.reload()
            await nodes[3].join(discovery=plugins[3], min_members=4, timeout=30)
            for node in nodes:
                await until_members(node, {"n0", "n1", "n2", "n3"})

            # The record goes away: discovery stops offering it, but the live member stays a member.
            dnsmasq.set_hosts([(host, NAME) for host in HOSTS[:3]])
            dnsmasq.reload()
            deadline = time.monotonic() + 10
            while f"tcp://{HOSTS[3]}:{port}" in {c.seed for c in await plugins[0].lookup()}:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await heartbeat_rounds(nodes, 5)  # several rounds on the nodes' own timers: nothing may change
            assert "n3" in {m.name for m in nodes[0].alive_members()}
            assert nodes[3].id in {p.id for p in nodes[0].peers()}
        finally:
            for node in nodes:
                await node.stop()  # stops its discovery plugin too
            for plugin in plugins:
                await plugin.stop()

    asyncio.run(scenario())
