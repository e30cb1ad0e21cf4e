"""The same Node runs on the in-memory transport (one interface, two transports), faults included."""

from __future__ import annotations

import asyncio

from fabric import Node, NodeConfig
from fabric.transport.memory import AsyncioScheduler, Faults, MemoryNetwork


def test_nodes_form_a_cluster_call_broadcast_and_detect_a_crash_in_memory() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=7, faults=Faults(latency=0.001, jitter=0.001, duplicate=0.01))
        nodes = [Node(NodeConfig.local(name=f"m{i}"), transport=net.transport(f"m{i}")) for i in range(5)]
        for node in nodes:
            await node.start()
        assert nodes[0].seed == "mem://m0/membership"
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=5, timeout=20) for n in nodes))
        assert all(len(n.alive_members()) == 5 for n in nodes)
        nodes[1].add_service("echo", lambda request: request)
        assert await nodes[2].call(nodes[1].id, "echo", {"x": [1, 2]}) == {"x": [1, 2]}
        heard = asyncio.Event()
        nodes[3].subscribe("events", lambda msg: heard.set(), inline=True)
        for _ in range(100):
            await nodes[0].broadcast(b"tick")
            try:
                await asyncio.wait_for(heard.wait(), 0.05)
                break
            except TimeoutError:
                pass
        assert heard.is_set()
        downs: list[str] = []
        nodes[0].on_down(lambda member, reason: downs.append(f"{member.name}:{reason}"))
        net.crash("m4")
        for _ in range(400):
            if len(nodes[0].alive_members()) == 4:
                break
            await asyncio.sleep(0.025)
        assert {m.name for m in nodes[0].alive_members()} == {"m0", "m1", "m2", "m3"}
        await asyncio.sleep(0)  # let the ordered event pump run
        assert downs and downs[0].startswith("m4:")
        for node in nodes:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_probe_link_holds_the_membership_channel_only_and_grows_when_the_application_uses_it() -> None:
    from fabric.membership import Connect, Identity

    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=3)
        a, b = (Node(NodeConfig.local(name=n, overlay="hyparview"), transport=net.transport(n)) for n in "ab")
        await a.start()
        await b.start()
        got: asyncio.Queue[object] = asyncio.Queue()
        b.subscribe("coordination", lambda msg: got.put_nowait(msg.value()), inline=True)
        await asyncio.gather(a.join([a.seed], min_members=1, timeout=10), b.join([a.seed], min_members=2, timeout=10))
        await a.disconnect(b.id)  # forget the neighbour link, as if b were any non-neighbour member
        m = next(m for m in a.members() if m.name == "b")
        identity = Identity(m.node_id, m.name, m.incarnation, m.metadata, m.endpoints)
        assert a._membership is not None
        a._membership.driver.apply([Connect(identity, probe=True)])
        link = identity.node_id
        assert a._transport.connected_channels(link) == ["membership"]
        assert a.stats()["counters"]["probe_links_opened"] >= 1
        await a.send(b.id, "over a grown link", channel="coordination")
        received = await asyncio.wait_for(got.get(), 5)
        assert received == "over a grown link", received
        assert sorted(a._transport.connected_channels(link)) == sorted(a.endpoints)
        assert a.stats()["counters"]["probe_links_upgraded"] == 1
        await a.stop()
        await b.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_topology_manager_repairs_a_neighbour_link_dropped_under_the_overlay() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=5)
        nodes = [Node(NodeConfig.local(name=f"r{i}"), transport=net.transport(f"r{i}")) for i in range(3)]
        for node in nodes:
            await node.start()
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=3, timeout=20) for n in nodes))
        a, b = nodes[0], nodes[1]
        await a.disconnect(b.id)  # both sides drop the link (BYE); the full mesh still wants it
        assert b.id not in {p.id for p in a.peers()}
        for _ in range(400):
            if b.id in {p.id for p in a.peers()} and a.id in {p.id for p in b.peers()}:
                break
            await asyncio.sleep(0.025)
        assert b.id in {p.id for p in a.peers()} and a.id in {p.id for p in b.peers()}
        assert a.stats()["links"]["repaired"] >= 1
        assert all(len(n.alive_members()) == 3 for n in nodes)  # nobody was declared down meanwhile
        for node in nodes:
            await node.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
