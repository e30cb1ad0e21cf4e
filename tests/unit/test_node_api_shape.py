"""The Node's API shape (issue 14, "API shape" and defect 5), on the in-memory transport: one peer type
accepted everywhere, membership traffic counted on its channel, a static overlay that forms at start."""

from __future__ import annotations

import asyncio

import pytest

from fabric import Node, NodeConfig, Unreachable, wire
from fabric.transport.memory import AsyncioScheduler, MemoryNetwork


async def _cluster(net: MemoryNetwork, count: int, **overrides: object) -> list[Node]:
    nodes = [Node(NodeConfig.local(name=f"p{i}", **overrides), transport=net.transport(f"p{i}")) for i in range(count)]  # type: ignore[arg-type]
    for node in nodes:
        await node.start()
    await asyncio.gather(*(n.join([nodes[0].seed], min_members=count, timeout=20) for n in nodes))
    return nodes


def test_every_peer_argument_takes_a_member_a_peerinfo_the_id_text_or_the_id_bytes() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=5)
        a, b = await _cluster(net, 2)
        try:
            b.add_service("echo", lambda request: request)
            got: asyncio.Queue[object] = asyncio.Queue()
            b.subscribe("coordination", lambda msg: got.put_nowait(msg.value()), inline=True)
            member = next(m for m in a.alive_members() if m.name == "p1")
            info = next(p for p in a.peers() if p.name == "p1")
            assert isinstance(member.node_id, bytes)
            for peer in (member, info, b.id, member.node_id):
                assert await a.call(peer, "echo", {"via": type(peer).__name__}) == {"via": type(peer).__name__}
                assert await a.send(peer, type(peer).__name__)
                assert await asyncio.wait_for(got.get(), 5) == type(peer).__name__
                assert await a.ping(peer) >= 0
                rtt, _offset = await a.clock_offset(peer)
                assert rtt >= 0
            assert all(a.phi(peer) is not None for peer in (member, info, b.id, member.node_id))
            # bad peers get one clear error, never a TypeError from deep inside
            for bad in ("not-an-id", b"short", 42):
                with pytest.raises(Unreachable):
                    await a.call(bad, "echo")  # type: ignore[arg-type]
            with pytest.raises(Unreachable):
                await a.send(wire.node_id_str(wire.new_node_id()), b"x")
            await a.disconnect(member)
            assert all(p.name != "p1" for p in a.peers())
        finally:
            await asyncio.gather(a.stop(), b.stop())

    asyncio.run(scenario())


def test_membership_channel_counts_the_heartbeats_it_sends() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=6)
        nodes = await _cluster(net, 3)
        try:
            for _ in range(200):  # bounded poll: heartbeats flow every 0.2 s on the local preset
                if all(n.stats()["channels"]["membership"]["sent"] >= 5 for n in nodes):
                    break
                await asyncio.sleep(0.05)
            for node in nodes:
                channel = node.stats()["channels"]["membership"]
                assert channel["sent"] >= 5 and channel["received"] >= 5, channel
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))

    asyncio.run(scenario())


def test_a_static_overlay_forms_with_its_configured_members_at_start_without_join() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=8)
        members = tuple(f"mem://s{i}/membership" for i in range(3))
        nodes = [Node(NodeConfig.local(name=f"s{i}", overlay="static", static_members=members),
                      transport=net.transport(f"s{i}")) for i in range(3)]
        try:
            for node in nodes:
                await node.start()
            for _ in range(400):  # bounded poll of a positive condition; nobody called join()
                if all(len(n.alive_members()) == 3 for n in nodes):
                    break
                await asyncio.sleep(0.025)
            assert all(n.joined and len(n.alive_members()) == 3 for n in nodes)
            # join() with no arguments works too and returns at once
            assert len(await nodes[0].join(min_members=3, timeout=5)) == 3
        finally:
            await asyncio.gather(*(n.stop() for n in nodes))

    asyncio.run(scenario())
