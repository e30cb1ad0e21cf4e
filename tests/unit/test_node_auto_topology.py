"""Automatic topology (on the in-memory transport): full-mesh below the threshold, HyParView at it,
back to full-mesh only below threshold - hysteresis; one decider; the switch history in health()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from fabric import ConfigError, Node, NodeConfig
from fabric.transport.memory import AsyncioScheduler, MemoryNetwork
from tests.support import heartbeat_rounds


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


@pytest.mark.parametrize("seed", [3, 5, 7, 11])
def test_the_cluster_moves_to_hyparview_at_the_threshold_and_back_with_hysteresis(seed: int) -> None:
    async def scenario() -> None:
        net = MemoryNetwork(AsyncioScheduler(), seed=seed)

        def make(i: int) -> Node:
            cfg = NodeConfig.local(name=f"a{i}", auto_topology=True, auto_threshold=8, auto_hysteresis=3,
                                   auto_dwell=0.3, topology_cooldown=0.5)
            return Node(cfg, transport=net.transport(f"a{i}"))

        nodes = [make(i) for i in range(7)]
        for n in nodes:
            await n.start()
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=7, timeout=20) for n in nodes))
        await heartbeat_rounds(nodes, 10)  # >= 1.8 s of the nodes' timers: dwell and the 1 s check passed
        assert all(n.overlay == "full-mesh" for n in nodes)  # 7 < 8: stays a full mesh
        assert all(n.health()["topology"]["history"] == [] for n in nodes)
        extra = make(7)
        await extra.start()
        await extra.join([nodes[0].seed], min_members=8, timeout=20)
        nodes.append(extra)
        await until(lambda: all(n.overlay == "hyparview" for n in nodes) and all(len(n.alive_members()) == 8 for n in nodes))
        histories = [n.health()["topology"]["history"] for n in nodes]
        decided = [h[-1] for h in histories if h and h[-1]["reason"].startswith("auto:")]
        assert len(decided) == 1, histories  # one decider: the lowest node id
        assert decided[0]["from"] == "full-mesh" and decided[0]["to"] == "hyparview" and decided[0]["epoch"] == 1
        assert "8 members >= auto_threshold 8" in decided[0]["reason"]
        assert all(h[-1]["to"] == "hyparview" and h[-1]["epoch"] == 1 for h in histories)
        # members never dipped across the switch: the new overlay adopted the old one's members
        assert all(h[-1]["members"] >= 7 for h in histories)
        # 7 and 6 members are inside the hysteresis band: no change; 5 goes back to full-mesh
        for leaving in (nodes.pop(), nodes.pop()):
            await leaving.stop()
        await until(lambda: all(len(n.alive_members()) == 6 for n in nodes))
        await heartbeat_rounds(nodes, 10)
        assert all(n.overlay == "hyparview" for n in nodes)
        await nodes.pop().stop()
        await until(lambda: all(n.overlay == "full-mesh" for n in nodes) and all(len(n.alive_members()) == 5 for n in nodes))
        assert all(n.current_topology()["epoch"] == 2 for n in nodes)  # exactly two switches, no flapping
        for n in nodes:
            await n.stop()

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_auto_topology_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="auto_hysteresis"):
        NodeConfig(auto_topology=True, auto_threshold=8, auto_hysteresis=8)
    with pytest.raises(ConfigError, match="auto_topology"):
        NodeConfig(auto_topology=True, overlay="static")
    with pytest.raises(ConfigError, match="auto_dwell"):
        NodeConfig(auto_dwell=-1.0)
