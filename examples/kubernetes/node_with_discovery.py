"""A fabric node that joins whatever discovery offers: the program the example Deployment runs.

Environment (the Deployment sets the first three from the downward API / its ConfigMap):

* ``POD_IP`` -- the address other pods reach this one at (advertised; the strategy leaves it out);
* ``POD_NAME`` -- the node's human name;
* ``FOUNDATION_DISCOVERY`` -- a JSON file ``{"strategy": NAME, "options": {...}}`` (the options are those of
  ``fabric.discovery.registry.create``; docs/discovery.md);
* ``FOUNDATION_BIND`` (default ``tcp://0.0.0.0``) and ``FOUNDATION_PORT`` (default 7946): where to bind.

Every time the candidate list changes (and every ``reoffer`` seconds) it links to the candidates it is
not linked to yet. Discovery only suggests: a candidate that does not answer is logged and retried on
the next round. SIGTERM stops the strategy (deregistering where the backend has registrations) and
then the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal

from fabric import Node, NodeConfig
from fabric.discovery import LocalNode, registry

log = logging.getLogger("node_with_discovery")


async def main() -> None:
    with open(os.environ["FOUNDATION_DISCOVERY"], encoding="utf-8") as handle:
        settings = json.load(handle)
    pod_ip = os.environ.get("POD_IP") or None
    node = Node(NodeConfig(
        name=os.environ.get("POD_NAME", "foundation"),
        bind=os.environ.get("FOUNDATION_BIND", "tcp://0.0.0.0"),
        port=int(os.environ.get("FOUNDATION_PORT", "7946")),
        advertise=pod_ip,
        insecure=True,  # the pod network is the trust boundary until CURVE keys are configured
    ))
    await node.start()
    strategy = registry.create(settings["strategy"], settings.get("options", {}))
    await strategy.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
    log.info("node %s (%s) up at %s, discovery %s", node.name, node.id, node.seed, settings["strategy"])

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def join_loop() -> None:
        async for candidates in strategy.watch():
            linked = {peer.seed for peer in node.peers()}
            for cand in candidates:
                if cand.seed in linked or cand.seed == node.seed:
                    continue
                try:
                    peer = await node.connect(cand.seed, timeout=5.0)
                    log.info("linked to %s (%s) at %s", peer.name, peer.id, cand.seed)
                except Exception as exc:  # a stale or not-yet-listening candidate: retried next round
                    log.warning("could not link to %s: %s", cand.seed, exc)

    joiner = asyncio.create_task(join_loop())
    try:
        await stop.wait()
    finally:
        joiner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await joiner
        await strategy.stop()
        await node.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
