"""Bind addresses: inproc:// (several nodes in one process), advertised hosts, wildcard binds."""

from __future__ import annotations

import asyncio

from fabric import Node, NodeConfig
from fabric.transport.zmq import ZmqTransport


def test_inproc_nodes_in_one_process_form_a_cluster_and_call() -> None:
    async def scenario() -> None:
        nodes = [Node(NodeConfig.local(name=f"p{i}", bind=f"inproc://t{i}-")) for i in range(3)]
        for node in nodes:
            await node.start()
        assert nodes[0].seed.startswith("inproc://t0-")
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=3, timeout=20) for n in nodes))
        nodes[2].add_service("who", lambda _r: "p2")
        assert await nodes[0].call(nodes[2].id, "who") == "p2"
        for node in nodes:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_advertise_replaces_the_host_peers_are_told() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="adv", advertise="127.0.0.9")) as node:
            assert all(ep.startswith("tcp://127.0.0.9:") for ep in node.endpoints.values())

    asyncio.run(scenario())


def test_a_wildcard_bind_advertises_a_reachable_address_not_the_wildcard() -> None:
    # Checked on the address logic alone: binding every interface is not something a test should do.
    transport = ZmqTransport(bind_address="tcp://0.0.0.0")
    advertised = transport._advertised("tcp://0.0.0.0:7946")
    assert not advertised.startswith("tcp://0.0.0.0") and advertised.endswith(":7946")
    assert ZmqTransport(advertise="node-a.example")._advertised("tcp://0.0.0.0:7946") == "tcp://node-a.example:7946"
