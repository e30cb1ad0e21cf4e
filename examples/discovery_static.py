"""Discovery with the ``static`` strategy: what the join path would be offered.

Run: python examples/discovery_static.py [SEED ...]
Seeds are membership endpoints (``tcp://10.0.0.5:7946``), ``host:port`` or a bare host (port 7946).
Needs no network: static discovery only normalizes and reports the list; it never contacts anyone.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from fabric.discovery import LocalNode, endpoints_from_port_base, registry


async def main(seeds: list[str]) -> None:
    me = LocalNode(node_id=str(uuid.uuid4()), name="example", endpoints=endpoints_from_port_base("127.0.0.1", 7946))
    plugin = registry.create("static", {"seeds": seeds})
    await plugin.start(me)
    try:
        for candidate in await plugin.lookup():  # this node's own seed (127.0.0.1:7946) is left out
            print(f"{candidate.source:7} {candidate.seed}")
        print("counters:", plugin.stats())
    finally:
        await plugin.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["127.0.0.1:7946", "10.0.0.5", "node-b.example:8000", "[::1]:9000"]))
