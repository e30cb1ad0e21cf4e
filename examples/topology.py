"""Live topology: switch a running cluster's overlay by hand, then let it choose by size.

Six nodes on 127.0.0.1 form a full mesh; one switches the whole cluster to HyParView and back (the
compare-and-set form), then automatic mode moves a growing cluster to HyParView at its threshold.
Run: python examples/topology.py
"""

import asyncio

from fabric import Node, NodeConfig


async def until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it holds (bounded)."""
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def main() -> None:
    # auto_threshold 8: six nodes stay a full mesh; auto_dwell/cooldown short for the demo (defaults 30 s / 10 s)
    def config(name: str) -> NodeConfig:
        return NodeConfig.local(name=name, auto_topology=True, auto_threshold=8, auto_hysteresis=3, auto_dwell=1.0,
                                topology_cooldown=1.0)

    nodes = [Node(config(f"n{i}")) for i in range(6)]
    for node in nodes:
        await node.start()
    await asyncio.gather(*(n.join([nodes[0].seed], min_members=6, timeout=30) for n in nodes))
    first = nodes[0]
    print("formed:", first.current_topology()["overlay"], "with", len(first.alive_members()), "members")

    await nodes[3].switch_topology("full-mesh", "hyparview")       # by hand: only if it is still full-mesh
    await until(lambda: all(n.overlay == "hyparview" for n in nodes))
    print("switched by hand:", sorted({n.overlay for n in nodes}), "epoch", first.current_topology()["epoch"])
    await asyncio.sleep(1.1)                                        # the cooldown between two switches
    await nodes[3].switch_topology("hyparview", "full-mesh")
    await until(lambda: all(n.overlay == "full-mesh" for n in nodes))
    print("and back:", sorted({n.overlay for n in nodes}), "epoch", first.current_topology()["epoch"])

    for i in (6, 7):                                                # grow to the threshold: automatic mode acts
        node = Node(config(f"n{i}"))
        await node.start()
        await node.join([first.seed], min_members=i + 1, timeout=30)
        nodes.append(node)
    await until(lambda: all(n.overlay == "hyparview" and len(n.alive_members()) == 8 for n in nodes))
    decider = next(n for n in nodes if n.health()["topology"]["history"][-1]["reason"].startswith("auto:"))
    last = decider.health()["topology"]["history"][-1]             # every switch a node saw, with its reason
    print(f"automatic ({decider.name} decided): {last['from']} -> {last['to']} at epoch {last['epoch']}: {last['reason']}")
    print("neighbours of n0:", len(first.neighbours()), "of", len(first.alive_members()) - 1, "members")
    for node in nodes:
        await node.stop()


asyncio.run(main())
