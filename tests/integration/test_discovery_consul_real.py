"""Opt-in: the consul strategy against a real Consul agent. Skipped unless ``CONSUL_HTTP_ADDR`` is set.

Run: ``CONSUL_HTTP_ADDR=http://127.0.0.1:8500 [CONSUL_HTTP_TOKEN=...] [CONSUL_CACERT=ca.pem] pytest
tests/integration/test_discovery_consul_real.py``. It registers two instances of a service with a
random name (with ``service:write`` on it needed), checks that each sees the other, then deregisters.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from fabric.discovery import LocalNode
from fabric.discovery.consul import ConsulConfig, ConsulPlugin

ADDRESS = os.environ.get("CONSUL_HTTP_ADDR", "")
pytestmark = pytest.mark.skipif(not ADDRESS, reason="set CONSUL_HTTP_ADDR to test against a real Consul agent")


def config(service: str) -> ConsulConfig:
    url = ADDRESS if "://" in ADDRESS else f"http://{ADDRESS}"
    return ConsulConfig(service=service, url=url, token=os.environ.get("CONSUL_HTTP_TOKEN") or None,
                        ca_file=os.environ.get("CONSUL_CACERT") or None, ttl=10.0, wait=5.0,
                        deregister_critical_after=60.0, backoff_max=2.0, polling_interval=0.5)


def test_two_instances_see_each_other_and_deregister() -> None:
    service = f"foundation-test-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        nodes = [LocalNode(node_id=str(uuid.uuid4()), name=f"real-{i}",
                           endpoints={"membership": f"tcp://127.0.0.1:{47000 + i}"}) for i in range(2)]
        plugins = [ConsulPlugin(config(service)) for _ in nodes]
        try:
            for plugin, node in zip(plugins, nodes, strict=True):
                await plugin.start(node)
            deadline = time.monotonic() + 30
            while [len(await p.lookup()) for p in plugins] != [1, 1]:
                assert time.monotonic() < deadline, [p.stats() for p in plugins]
                await asyncio.sleep(0.2)
            assert (await plugins[0].lookup())[0].node_id == nodes[1].node_id
            await plugins[1].stop()
            deadline = time.monotonic() + 30
            while await plugins[0].lookup():
                assert time.monotonic() < deadline, plugins[0].stats()
                await asyncio.sleep(0.2)
        finally:
            for plugin in plugins:
                await plugin.stop()

    asyncio.run(scenario())
