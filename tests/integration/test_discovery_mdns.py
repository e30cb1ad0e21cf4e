"""mDNS discovery with real python-zeroconf instances on 127.0.0.1 (three OS processes; bad TXT records)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from fabric.discovery import LocalNode, MdnsConfig, MdnsPlugin
from tests.integration.test_discovery_dns import run_without_blocking
from tests.integration.test_discovery_gossip import ids, start_child, wait_view
from tests.support import children


def unique_service_type() -> str:
    """A service type of our own, so concurrent runs on this host never see each other."""
    return f"_fft{random.randrange(16**6):06x}._tcp.local."


def test_three_processes_find_each_other_with_only_the_interface_configured() -> None:
    options = {"service_type": unique_service_type(), "interfaces": ["127.0.0.1"], "polling_interval": 0.5}
    with children() as started:
        nodes = [start_child(started, "mdns", f"m{i}", 23000 + 10 * i, options) for i in range(3)]
        all_ids = {node_id for _, node_id in nodes}
        for index, (child, node_id) in enumerate(nodes):
            view = wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me}, timeout=30)
            for cand in view:
                port_base = int(str(cand["seed"]).rsplit(":", 1)[1])
                assert port_base in {23000, 23010, 23020} - {23000 + 10 * index}
                assert cand["source"] == "mdns"
                assert cand["meta"] == {"role": "test"}
                endpoints = cand["endpoints"]
                assert isinstance(endpoints, dict)
                assert endpoints["events"] == f"tcp://127.0.0.1:{port_base + 4}"

        # A node that stops sends goodbye packets: the others drop it.
        leaver, leaver_id = nodes[0]
        leaver.stop()
        for child, node_id in nodes[1:]:
            wait_view(child, lambda v, me=node_id: ids(v) == all_ids - {me, leaver_id}, timeout=30)


def test_malformed_txt_records_are_counted_and_skipped() -> None:
    service_type = unique_service_type()

    def info(label: str, properties: dict[str, object]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            service_type,
            f"{label}.{service_type}",
            addresses=[socket.inet_aton("127.0.0.1")],
            port=24000,
            properties=properties,
            server=f"{label}.local.",
        )

    good_id = str(uuid.uuid4())
    records = [
        info("noid", {"name": "x", "ep.membership": "tcp://127.0.0.1:24000"}),
        info("badid", {"id": "not-a-uuid", "ep.membership": "tcp://127.0.0.1:24000"}),
        info("badep", {"id": str(uuid.uuid4()), "ep.membership": "udp://nowhere"}),
        info("binary", {"id": str(uuid.uuid4()), "name": b"\xff\xfe\xfd"}),
        info("version", {"fv": "99", "id": str(uuid.uuid4())}),
        # No ep.membership: the seed comes from the instance's address and SRV port.
        info("good", {"id": good_id, "name": "good"}),
    ]

    async def scenario() -> None:
        other = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
        plugin = MdnsPlugin(MdnsConfig.local(service_type=service_type))
        local = LocalNode(node_id=str(uuid.uuid4()), name="me", endpoints={"membership": "tcp://127.0.0.1:24100"})
        try:
            await plugin.start(local)
            # Probe all records concurrently (each probe takes about a second).
            announcing = await asyncio.gather(*(other.async_register_service(r) for r in records))
            await asyncio.gather(*announcing)
            deadline = time.monotonic() + 30
            while plugin.stats()["malformed"] < 5 or not await plugin.lookup():
                assert time.monotonic() < deadline, plugin.stats()
                await asyncio.sleep(0.1)
            found = await plugin.lookup()
            assert [c.node_id for c in found] == [good_id]
            assert found[0].seed == "tcp://127.0.0.1:24000"
            assert plugin.stats()["malformed"] == 5
        finally:
            await plugin.stop()
            await other.async_close()

    run_without_blocking(scenario())
