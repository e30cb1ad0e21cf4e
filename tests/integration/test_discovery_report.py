"""The discover engine: per-channel reachability probes against a real node, listen-only strategies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from fabric import Node, NodeConfig
from fabric.discovery import discover, probe_endpoint
from fabric.discovery.report import _classify_os_error
from tests.integration.test_discovery_cluster import free_port_base
from tests.integration.test_discovery_dns import DOMAIN, Dnsmasq
from tests.integration.test_discovery_gossip import free_udp_port, ids, start_child, wait_view
from tests.support import children, short_tmpdir


@pytest.fixture
def dnsmasq() -> Iterator[Dnsmasq]:
    with short_tmpdir("ffrep") as workdir:
        server = Dnsmasq(workdir)
        try:
            yield server
        finally:
            server.stop()


def dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_static_candidates_are_probed_zmtp_open_and_refused() -> None:
    async def scenario() -> None:
        async def not_zeromq(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            await writer.drain()
            writer.close()

        http = await asyncio.start_server(not_zeromq, "127.0.0.1", 0)
        http_port = http.sockets[0].getsockname()[1]
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        silent_port = silent.sockets[0].getsockname()[1]
        closed = dead_port()
        node = Node(NodeConfig(name="probed"))
        await node.start()
        try:
            report = await discover("static", {"seeds": [node.seed, f"127.0.0.1:{http_port}",
                                                         f"127.0.0.1:{silent_port}", f"127.0.0.1:{closed}"]},
                                    probe_timeout=2.0)
        finally:
            await node.stop()
            http.close()
            silent.close()
        status = {r.candidate.seed: (r.reachable, r.probes[0].status) for r in report.candidates}
        assert status == {
            node.seed: (True, "zmtp"),
            f"tcp://127.0.0.1:{http_port}": (False, "open"),
            f"tcp://127.0.0.1:{silent_port}": (False, "open"),
            f"tcp://127.0.0.1:{closed}": (False, "refused"),
        }
        assert report.backend_answered and report.counters["lookups"] == 1
        as_dict = report.to_dict()
        assert as_dict["candidates"][0]["probes"][0]["status"] == "zmtp"

    asyncio.run(scenario())


def test_dns_candidates_are_probed_on_every_channel(dnsmasq: Dnsmasq) -> None:
    port = free_port_base(["127.0.0.1"])
    name = f"probe.{DOMAIN}"
    dnsmasq.set_hosts([("127.0.0.1", name)])
    dnsmasq.start()

    async def scenario() -> None:
        node = Node(NodeConfig(name="everychannel", port=port))
        await node.start()
        try:
            report = await discover("dns", {"query": name, "port": port, "nameservers": ["127.0.0.1"],
                                            "nameserver_port": dnsmasq.port, "timeout": 1.0})
        finally:
            await node.stop()
        (only,) = report.candidates
        assert [(p.channel, p.status) for p in only.probes] == [
            ("membership", "zmtp"), ("coordination", "zmtp"), ("gossip", "zmtp"), ("data", "zmtp"), ("events", "zmtp"),
        ]
        # The same node is now stopped: a second look finds the record but nobody listening.
        after = await discover("dns", {"query": name, "port": port, "nameservers": ["127.0.0.1"],
                                       "nameserver_port": dnsmasq.port, "timeout": 1.0})
        assert {p.status for p in after.candidates[0].probes} == {"refused"}

    asyncio.run(scenario())


def test_discover_listens_without_announcing_itself() -> None:
    options = {"interface": "127.0.0.1", "port": free_udp_port(), "interval": 0.2, "candidate_ttl": 2.0}
    with children() as started:
        (a, a_id), (b, b_id) = (start_child(started, "gossip", f"r{i}", 26000 + 10 * i, options) for i in range(2))
        wait_view(a, lambda v: ids(v) == {b_id})
        report = asyncio.run(discover("gossip", options, settle=1.0, probe=False))
        assert {r.candidate.node_id for r in report.candidates} == {a_id, b_id}
        assert report.counters["beacons_sent"] == 0
        for child, other in ((a, b_id), (b, a_id)):
            # Every view a child printed so far (queued in order) holds at most the other child.
            child.send_line("view")
            seen: list[set[str]] = []
            wait_view(child, lambda v, seen=seen, other=other: seen.append(ids(v)) or ids(v) == {other})
            assert all(view <= {other} for view in seen)


def test_probe_edge_cases() -> None:
    async def scenario() -> None:
        skipped = await probe_endpoint("data", "ipc:///tmp/x")
        assert skipped.status == "skipped"
        # A name no resolver knows; on a host whose DNS is unreachable the lookup may time out instead.
        bad = await probe_endpoint("membership", "tcp://nohost.invalid:1", timeout=1.0)
        assert bad.status in {"unresolvable", "timeout"}

    asyncio.run(scenario())
    assert _classify_os_error(socket.gaierror(-2, "Name or service not known")) == "unresolvable"
    assert _classify_os_error(ConnectionRefusedError(111, "refused")) == "refused"
    assert _classify_os_error(OSError(101, "Network is unreachable")) == "unreachable"


def test_a_custom_prober_replaces_the_default() -> None:
    from fabric.discovery import Candidate, ChannelProbe, probe_candidate

    seen: list[tuple[str, str, float]] = []

    async def prober(channel: str, endpoint: str, timeout: float) -> ChannelProbe:
        seen.append((channel, endpoint, timeout))
        return ChannelProbe(channel, endpoint, "zmtp", "pretend ROUTER")

    cand = Candidate(seed="tcp://192.0.2.1:7946", endpoints={"data": "tcp://192.0.2.1:7949"})
    report = asyncio.run(probe_candidate(cand, 1.5, prober))
    assert report.reachable and [p.channel for p in report.probes] == ["membership", "data"]
    assert seen == [("membership", "tcp://192.0.2.1:7946", 1.5), ("data", "tcp://192.0.2.1:7949", 1.5)]
