"""Automatic topology (on the in-memory transport): full-mesh below the threshold, HyParView at it,
back to full-mesh below threshold - hysteresis; one decider, decisions in health()."""

from __future__ import annotations

import asyncio

from fabric import Node, NodeConfig
from fabric.transport.memory import AsyncioScheduler, MemoryNetwork


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def test_the_cluster_moves_to_hyparview_at_the_threshold_and_back_with_hysteresis() -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=3)

        def make(i: int) -> Node:
            cfg = NodeConfig.local(name=f"a{i}", auto_topology=True, auto_threshold=8, auto_hysteresis=3,
                                   topology_cooldown=0.5)
            return Node(cfg, transport=net.transport(f"a{i}"))

        nodes = [make(i) for i in range(7)]
        for n in nodes:
            await n.start()
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=7, timeout=20) for n in nodes))
        await asyncio.sleep(1.0)
        assert all(n.overlay == "full-mesh" for n in nodes)  # 7 < 8: stays a full mesh
        extra = make(7)
        await extra.start()
        await extra.join([nodes[0].seed], min_members=8, timeout=20)
        nodes.append(extra)
        await until(lambda: all(n.overlay == "hyparview" for n in nodes) and all(len(n.alive_members()) == 8 for n in nodes))
        deciders = [n for n in nodes if n.health()["topology"]["last_auto_decision"]]
        assert len(deciders) == 1 and "full-mesh -> hyparview" in deciders[0].health()["topology"]["last_auto_decision"]
        # 7 and 6 members are inside the hysteresis band: no change; 5 goes back to full-mesh
        for leaving in (nodes.pop(), nodes.pop()):
            await leaving.stop()
        await until(lambda: all(len(n.alive_members()) == 6 for n in nodes))
        await asyncio.sleep(1.0)
        assert all(n.overlay == "hyparview" for n in nodes)
        await nodes.pop().stop()
        await until(lambda: all(n.overlay == "full-mesh" for n in nodes) and all(len(n.alive_members()) == 5 for n in nodes))
        for n in nodes:
            await n.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))
