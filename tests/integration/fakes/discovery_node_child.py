"""Child process for the Consul/Kubernetes discovery tests: one real node that joins what discovery offers.

Usage: ``python -m tests.integration.fakes.discovery_node_child STRATEGY OPTIONS_JSON [NODE_ID]``

Runs a :class:`fabric.Node` on 127.0.0.1 (ephemeral ports) and the strategy; every time the candidate list
changes it links to the candidates it is not linked to yet (the join path in miniature). Prints lines:

* ``READY <node id> <membership endpoint>`` once the node and the strategy run;
* ``CANDIDATES <json list of seeds>`` on every candidate change;
* ``PEERS <json list of peer ids>`` whenever the set of linked peers changes.

Stops on SIGTERM or when stdin closes (the strategy deregisters).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys

from fabric import Node, NodeConfig
from fabric.discovery import LocalNode, registry


async def main(strategy: str, options: dict[str, object], node_id: str | None) -> None:
    node = Node(NodeConfig(name=f"child-{strategy}", bind="tcp://127.0.0.1", node_id=node_id))
    await node.start()
    plugin = registry.create(strategy, options)
    await plugin.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
    print(f"READY {node.id} {node.seed}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)

    async def follow() -> None:
        async for candidates in plugin.watch():
            print("CANDIDATES " + json.dumps(sorted(c.seed for c in candidates)), flush=True)
            linked = {p.seed for p in node.peers()}
            for cand in candidates:
                if cand.seed not in linked:
                    with contextlib.suppress(Exception):  # a stale candidate: discovery is not liveness
                        await node.connect(cand.seed, timeout=3.0)

    async def report_peers() -> None:
        last: list[str] | None = None
        while True:
            peers = sorted(p.id for p in node.peers())
            if peers != last:
                last = peers
                print("PEERS " + json.dumps(peers), flush=True)
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(follow()), asyncio.create_task(report_peers())]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await plugin.stop()
        await node.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
