"""Fault injection in the real transport: cut a node off, watch membership notice, heal, watch it re-merge.

Three nodes on 127.0.0.1. ``Node.set_transport_faults`` puts a ``FaultPolicy`` on a node's ZeroMQ
transport: here n0 drops what comes from n1 and n2, and they drop what comes from n0 (a 1/2 partition,
with no firewall and no root). Clearing the policies heals it. Also available in production builds;
off (and free) by default.
Run: python examples/transport_faults.py
"""

import asyncio

from fabric import FaultPolicy, Node, NodeConfig


async def until(check, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it holds (bounded)."""
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


def alive(node: Node) -> list[str]:
    return sorted(m.name for m in node.alive_members())


async def main() -> None:
    nodes = [Node(NodeConfig.local(name=f"n{i}")) for i in range(3)]
    for node in nodes:
        await node.start()
    try:
        await asyncio.gather(*(n.join([nodes[0].seed], min_members=3, timeout=30) for n in nodes[1:]))
        await until(lambda: all(alive(n) == ["n0", "n1", "n2"] for n in nodes))
        print("formed:", alive(nodes[0]))

        nodes[0].set_transport_faults(FaultPolicy(drop_from=[nodes[1].id, nodes[2].id]))
        for n in nodes[1:]:
            n.set_transport_faults(FaultPolicy(drop_from=[nodes[0].id]))
        await until(lambda: alive(nodes[0]) == ["n0"] and alive(nodes[1]) == ["n1", "n2"])
        dropped = nodes[1].stats()["transport"]["fault_dropped_in"]
        print("partitioned: n0 sees", alive(nodes[0]), "n1 sees", alive(nodes[1]), f"({dropped} messages dropped at n1)")

        for n in nodes:
            n.set_transport_faults(None)
        await until(lambda: all(alive(n) == ["n0", "n1", "n2"] for n in nodes))
        print("healed: every node sees", alive(nodes[2]))
    finally:
        for node in nodes:
            await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
