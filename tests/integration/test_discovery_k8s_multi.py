"""``consul`` and ``kubernetes`` together in the ``multi`` strategy (merged candidates, failover), both
through ``discover()`` (the engine of ``foundation-node discover``) and through the node's own join path
(``Node.join(discovery=...)``), built from plain option dicts.

Two nodes are registered in a (fake) Consul agent and listed in (fake) Kubernetes EndpointSlices. The
merged view has one candidate per node (Consul's node id, both sources); when the Consul agent goes away,
its answer ages out and the same nodes keep coming from Kubernetes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fabric import Node, NodeConfig
from fabric.discovery import Candidate, LocalNode, MultiDiscovery, discover, registry
from fabric.discovery.consul import ConsulConfig, ConsulPlugin
from tests.integration.fakes.consul_server import FakeConsul
from tests.integration.fakes.k8s_server import running_kubernetes, write_service_account
from tests.integration.test_discovery_dns import run_without_blocking as _run_without_blocking
from tests.support import require_tool, short_tmpdir


def run_without_blocking(scenario: Coroutine[Any, Any, None]) -> None:
    """Fail if a loop callback ran over 1 s or a thread leaked. (1 s, not the DNS tests' 0.25 s: the fake
    server's threads share this process's GIL, so a loaded machine stretches steps that never block;
    a plugin that waited synchronously on a blocking query or a watch would still hold the loop longer.)"""
    _run_without_blocking(scenario, limit=1.0)



async def until(multi: MultiDiscovery, predicate: Callable[[list[Candidate]], bool], what: str,
                timeout: float = 10.0) -> list[Candidate]:
    deadline = time.monotonic() + timeout
    while not predicate(view := multi.candidates):
        assert time.monotonic() < deadline, f"{what}: {[(c.seed, c.source) for c in view]} {multi.stats()}"
        await asyncio.sleep(0.05)
    return view


def test_consul_and_kubernetes_merge_and_fail_over() -> None:
    require_tool("openssl")
    consul = FakeConsul().start()
    try:
        with short_tmpdir("ffmulti") as workdir, running_kubernetes(workdir) as (k8s, pki):
            sa = write_service_account(f"{workdir}/sa", pki, "token-1", "default")
            nodes = [LocalNode(node_id=str(uuid.uuid4()), name=f"pod-{i}",
                               endpoints={"membership": f"tcp://127.0.0.{i + 41}:7946"}) for i in range(2)]
            for node in nodes:
                k8s.put_slice(f"foundation-{node.name}", [{"ip": node.seed[6:].split(":")[0], "pod": node.name}],
                              {"membership": 7946})

            async def scenario() -> None:
                announcers = [ConsulPlugin(ConsulConfig.local(url=consul.url)) for _ in nodes]
                for plugin, node in zip(announcers, nodes, strict=True):
                    await plugin.start(node)
                multi = registry.create("multi", {
                    "strategies": ["consul", "kubernetes"],
                    "options": {
                        "consul": {"url": consul.url, "announce": False, "wait": 0.5, "request_timeout": 0.5,
                                   "backoff_initial": 0.05, "backoff_max": 0.2},
                        "kubernetes": {"api_server": k8s.url, "service": "foundation", "request_timeout": 1.0,
                                       "backoff_initial": 0.05, "backoff_max": 0.2, **sa},
                    },
                    "polling_interval": 0.1, "answer_ttl": 1.5, "reoffer_interval": 0,
                })
                assert isinstance(multi, MultiDiscovery)
                viewer = LocalNode(node_id=str(uuid.uuid4()), name="viewer", endpoints={"membership": "tcp://127.0.0.1:1"})
                await multi.start(viewer)
                try:
                    view = await until(multi, lambda v: len(v) == 2 and all(c.source == "consul+kubernetes" for c in v),
                                       "merged view")
                    assert {c.node_id for c in view} == {n.node_id for n in nodes}  # Consul's ids, K8s' pod names
                    assert {c.meta["pod"] for c in view} == {"pod-0", "pod-1"}
                    # The Consul agent goes away (the nodes stay registered in its last answer): that answer
                    # ages out after answer_ttl, and Kubernetes keeps supplying both nodes.
                    await asyncio.get_running_loop().run_in_executor(None, consul.close)
                    await until(multi, lambda v: multi.stats()["consul.failures"] >= 1, "consul failing")
                    assert {c.source for c in multi.candidates} == {"consul+kubernetes"}  # still within answer_ttl
                    view = await until(multi, lambda v: [c.source for c in v] == ["kubernetes", "kubernetes"],
                                       "failover to kubernetes")
                    assert {c.seed for c in view} == {n.seed for n in nodes}
                    assert multi.sources() == {"consul": False, "kubernetes": True}
                    assert multi.stats()["consul.failures"] >= 1
                finally:
                    await multi.stop()
                    for plugin in announcers:
                        await plugin.stop()  # the agent is gone: deregistration fails, logged, never raises

            run_without_blocking(scenario())
    finally:
        consul.close()


def test_discover_reports_consul_and_kubernetes_candidates_with_probes() -> None:
    require_tool("openssl")

    async def scenario(consul: FakeConsul, k8s_options: dict[str, object], k8s: object) -> None:
        node = Node(NodeConfig(name="target", bind="tcp://127.0.0.1"))
        await node.start()
        announcer = ConsulPlugin(ConsulConfig.local(url=consul.url))
        try:
            await announcer.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
            deadline = time.monotonic() + 10
            while announcer.stats()["passes"] < 1:  # registered and passing: healthy in Consul
                assert time.monotonic() < deadline, announcer.stats()
                await asyncio.sleep(0.02)
            report = await discover("consul", {"url": consul.url, "wait": 1.0}, probe_timeout=2.0)
            (found,) = report.candidates
            assert found.candidate.node_id == node.id and found.reachable
            assert {p.channel: p.status for p in found.probes} == {c: "zmtp" for c in node.endpoints}
            assert report.backend_answered and report.counters["registrations"] == 0  # discover never announces
            ports = {c: int(e.rsplit(":", 1)[1]) for c, e in node.endpoints.items()}
            k8s.put_slice("target", [{"ip": "127.0.0.1", "pod": "target"}], ports)  # type: ignore[attr-defined]
            report = await discover("kubernetes", k8s_options, probe_timeout=2.0)
            (found,) = report.candidates
            assert found.candidate.meta["pod"] == "target" and found.reachable
            assert report.counters["lists"] == 1
        finally:
            await announcer.stop()
            await node.stop()

    with short_tmpdir("ffdisc") as workdir, running_kubernetes(workdir) as (k8s, pki):
        sa = write_service_account(f"{workdir}/sa", pki, "token-1", "default")
        consul = FakeConsul().start()
        try:
            options = {"api_server": k8s.url, "service": "foundation", "request_timeout": 2.0, **sa}
            asyncio.run(scenario(consul, options, k8s))
        finally:
            consul.close()


def test_nodes_join_through_node_join_with_consul_and_with_kubernetes() -> None:
    """The node's own join path (``Node.join(discovery=...)``) over each backend: three nodes, one cluster."""
    require_tool("openssl")

    async def form(nodes: list[Node], plugins: list[object]) -> None:
        joined = await asyncio.gather(*(n.join(discovery=p, min_members=3, timeout=20) for n, p in zip(nodes, plugins, strict=True)))
        for node, members in zip(nodes, joined, strict=True):
            assert {m.name for m in members} == {n.name for n in nodes}, node.name

    async def scenario(consul: FakeConsul, k8s: object, sa: dict[str, str]) -> None:
        # Consul: each node registers itself through the plugin the join path starts.
        nodes = [Node(NodeConfig(name=f"c{i}", bind="tcp://127.0.0.1")) for i in range(3)]
        try:
            for node in nodes:
                await node.start()
            await form(nodes, [registry.create("consul", {"url": consul.url, "wait": 1.0, "ttl": 2.0}) for _ in nodes])
        finally:
            for node in nodes:
                await node.stop()  # stops the plugins: they deregister
        assert consul.service_ids() == set()
        # Kubernetes: the "controller" (the test) publishes each pod's slice.
        nodes = [Node(NodeConfig(name=f"k{i}", bind="tcp://127.0.0.1")) for i in range(3)]
        try:
            for node in nodes:
                await node.start()
                ports = {c: int(e.rsplit(":", 1)[1]) for c, e in node.endpoints.items()}
                k8s.put_slice(node.name, [{"ip": "127.0.0.1", "pod": node.name}], ports)  # type: ignore[attr-defined]
            options = {"api_server": k8s.url, "service": "foundation", "request_timeout": 2.0,  # type: ignore[attr-defined]
                       "backoff_max": 0.5, **sa}
            await form(nodes, [registry.create("kubernetes", options) for _ in nodes])
        finally:
            for node in nodes:
                await node.stop()

    with short_tmpdir("ffjoin") as workdir, running_kubernetes(workdir) as (k8s, pki):
        sa = write_service_account(f"{workdir}/sa", pki, "token-1", "default")
        consul = FakeConsul().start()
        try:
            asyncio.run(scenario(consul, k8s, sa))
        finally:
            consul.close()
