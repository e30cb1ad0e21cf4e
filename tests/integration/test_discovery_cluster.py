"""Real nodes form a cluster from DNS candidates (dnsmasq A records + one port base, headless-service style).

Discovery only suggests; the test plays the join path (connect to every candidate) that the node will
run itself once discovery is wired into it, and checks that the port-base convention discovery relies on
(channel i at P+i) matches what the real transport binds and advertises.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from fabric import Node, NodeConfig
from fabric.discovery import Candidate, DnsConfig, DnsPlugin, LocalNode
from tests.integration.test_discovery_dns import DOMAIN, Dnsmasq
from tests.support import short_tmpdir

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


async def join_candidates(node: Node, candidates: list[Candidate]) -> None:
    """The join path in miniature: link to every candidate not linked yet."""
    linked = {p.seed for p in node.peers()}
    for cand in candidates:
        if cand.seed not in linked:
            await node.connect(cand.seed, timeout=5.0)


async def until_peers(node: Node, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(node.peers()) < count:
        assert time.monotonic() < deadline, f"{node.name} has {len(node.peers())} peers, wants {count}"
        await asyncio.sleep(0.02)


def test_nodes_form_a_cluster_from_dns_and_pick_up_a_new_record(dnsmasq: Dnsmasq) -> None:
    port = free_port_base(HOSTS)
    dnsmasq.set_hosts([(host, NAME) for host in HOSTS[:3]])
    dnsmasq.start()

    async def scenario() -> None:
        nodes = [Node(NodeConfig(name=f"n{i}", bind=f"tcp://{host}", port=port)) for i, host in enumerate(HOSTS)]
        plugins: list[DnsPlugin] = []
        try:
            for node in nodes:
                await node.start()
                plugin = DnsPlugin(DnsConfig.local(NAME, port=port, nameservers=("127.0.0.1",),
                                                   nameserver_port=dnsmasq.port))
                await plugin.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
                plugins.append(plugin)

            for node, plugin in zip(nodes[:3], plugins[:3], strict=True):
                candidates = await plugin.lookup()
                assert len(candidates) == 2  # the other two; never itself
                await join_candidates(node, candidates)
            for node in nodes[:3]:
                await until_peers(node, 2)
            # The endpoints DNS derived from the port base are exactly what the peers advertise.
            by_seed = {p.seed: p for p in nodes[0].peers()}
            for cand in await plugins[0].lookup():
                assert dict(by_seed[cand.seed].endpoints) == dict(cand.endpoints)

            # A fourth node's record appears while the cluster runs: everyone is offered it and links.
            dnsmasq.set_hosts([(host, NAME) for host in HOSTS])
            dnsmasq.reload()
            for node, plugin in zip(nodes, plugins, strict=True):
                deadline = time.monotonic() + 10
                while len(candidates := await plugin.lookup()) < 3:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                await join_candidates(node, candidates)
            for node in nodes:
                await until_peers(node, 3)

            # The record goes away: discovery stops offering it, but the live member stays linked.
            dnsmasq.set_hosts([(host, NAME) for host in HOSTS[:3]])
            dnsmasq.reload()
            deadline = time.monotonic() + 10
            while f"tcp://{HOSTS[3]}:{port}" in {c.seed for c in await plugins[0].lookup()}:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert nodes[3].id in {p.id for p in nodes[0].peers()}
        finally:
            for plugin in plugins:
                await plugin.stop()
            for node in nodes:
                await node.stop()

    asyncio.run(scenario())
