"""Consul discovery (Consul's HTTP API over httpx) against a local Consul agent stand-in (tests/integration/fakes).

Real HTTP on 127.0.0.1, the plugin's real request building and answer parsing, real fabric nodes. The
fake agent implements register/deregister, TTL checks that lapse, blocking health queries with
X-Consul-Index (and a snapshot restore that makes it go backwards), and ACL tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from fabric import Node, NodeConfig
from fabric.discovery import Candidate, LocalNode, registry
from fabric.discovery.consul import ConsulConfig, ConsulPlugin
from tests.integration.fakes.consul_server import FakeConsul, running_consul
from tests.integration.fakes.k8s_server import make_pki
from tests.integration.test_discovery_dns import run_without_blocking as _run_without_blocking
from tests.support import Child, children, require_tool, short_tmpdir


def run_without_blocking(scenario: Coroutine[Any, Any, None]) -> None:
    """Fail if a loop callback ran over 1 s or a thread leaked. (1 s, not the DNS tests' 0.25 s: the fake
    server's threads share this process's GIL, so a loaded machine stretches steps that never block;
    a plugin that waited synchronously on a blocking query or a watch would still hold the loop longer.)"""
    _run_without_blocking(scenario, limit=1.0)



def local(name: str, port: int) -> LocalNode:
    return LocalNode(node_id=str(uuid.uuid4()), name=name, endpoints={"membership": f"tcp://127.0.0.1:{port}"})


async def until(plugin: ConsulPlugin, predicate: Callable[[list[Candidate]], bool], timeout: float = 10.0) -> list[Candidate]:
    """Wait for the plugin's view to satisfy ``predicate``: woken by its change events, bounded."""
    seen: list[list[Candidate]] = []

    async def follow() -> list[Candidate]:
        async for candidates in plugin.watch(poll_interval=0.2):
            seen.append(candidates)
            if predicate(candidates):
                return candidates
        raise AssertionError("watch ended")

    try:
        return await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        raise AssertionError(f"views seen: {[[c.seed for c in v] for v in seen]}, stats {plugin.stats()}") from None


async def until_stat(plugin: ConsulPlugin, counter: str, at_least: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while plugin.stats()[counter] < at_least:
        assert time.monotonic() < deadline, plugin.stats()
        await asyncio.sleep(0.02)


async def until_true(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded, without blocking the loop) for a condition on the fake server's state."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def set_check(consul: FakeConsul, check_id: str, state: str, body: dict[str, str] | None = None) -> None:
    """What an operator (or another agent client) does to a TTL check: ``PUT /v1/agent/check/<state>/<id>``."""
    import urllib.request

    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(f"{consul.url}/v1/agent/check/{state}/{check_id}", method="PUT", data=data)
    await asyncio.get_running_loop().run_in_executor(None, lambda: urllib.request.urlopen(req, timeout=5).read())


@pytest.fixture
def consul() -> Iterator[FakeConsul]:
    with running_consul() as server:
        yield server


def test_registration_carries_node_id_endpoints_and_a_passing_ttl_check(consul: FakeConsul) -> None:
    me = LocalNode(node_id=str(uuid.uuid4()), name="alpha",
                   endpoints={"membership": "tcp://*:7946", "data": "tcp://*:7949", "bad.name": "tcp://*:7950"},
                   metadata={"zone": "eu-1"}, public_key="K" * 40)

    async def scenario() -> None:
        plugin = ConsulPlugin(ConsulConfig.local(url=consul.url, tags=("cluster-a",)))
        await plugin.start(me)
        await until_stat(plugin, "passes", 1)
        reg = plugin.registration
        assert reg is not None
        service = consul.services[reg.service_id]
        assert service["Service"] == "foundation" and service["Tags"] == ["cluster-a"]
        assert service["Address"] == ""  # wildcard bind: Consul uses the agent's address
        assert service["Port"] == 7946
        assert service["Meta"] == {"fv": "1", "node_id": me.node_id, "node_name": "alpha",
                                   "ep_membership": "tcp://*:7946", "ep_data": "tcp://*:7949",
                                   "pk": "K" * 40, "m_zone": "eu-1"}
        assert reg.skipped == ("ep_bad.name",)  # not a valid Consul meta key: left out, logged
        assert consul.check_status(reg.check_id) == "passing"
        # Another node sees us with the wildcard replaced by the agent's address.
        other = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False))
        await other.start(local("viewer", 1))
        (cand,) = await other.lookup()
        assert cand.node_id == me.node_id and cand.name == "alpha"
        assert cand.seed == "tcp://127.0.0.1:7946"
        assert dict(cand.endpoints) == {"membership": "tcp://127.0.0.1:7946", "data": "tcp://127.0.0.1:7949"}
        assert cand.meta["public_key"] == "K" * 40 and cand.meta["zone"] == "eu-1"
        assert cand.meta["datacenter"] == "dc1" and cand.source == "consul"
        await plugin.stop()
        assert reg.service_id not in consul.service_ids()  # deregistered on stop
        await until(other, lambda c: c == [])
        await other.stop()
        assert plugin.stats()["deregistrations"] == 1

    run_without_blocking(scenario())


def test_blocking_queries_follow_changes_and_survive_an_index_reset(consul: FakeConsul) -> None:
    async def scenario() -> None:
        viewer = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False, wait=30.0))
        await viewer.start(local("viewer", 1))
        assert await viewer.lookup() == []
        a = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=True))
        await a.start(local("a", 7001))
        # The viewer's blocking query (wait=30 s) returns as soon as a's check passes.
        await until(viewer, lambda c: [x.seed for x in c] == ["tcp://127.0.0.1:7001"], timeout=5.0)
        assert viewer.index > 0
        blocking = [p for m, p in consul.requests if "/health/service/" in p and "index=" in p]
        assert any("wait=30s" in p for p in blocking) and all("passing=1" in p for p in blocking)

        # A snapshot restore lowers the index and wakes every blocking query: the client resets to 0 (a
        # non-blocking read), then blocks again. (A query sent with an index above the server's blocks
        # for its whole wait, as on a real server: wait for the viewer to be blocked first.)
        await until_true(lambda: any(f"index={viewer.index}&wait=30s" in p for _, p in list(consul.requests)))
        before = viewer.index
        consul.restore_snapshot(index=3)
        await until_stat(viewer, "index_resets", 1, timeout=5.0)
        # ... then blocks again from the lower index.
        await until_true(lambda: 1 <= viewer.index < before
                         and any(f"index={viewer.index}&wait=30s" in p for _, p in list(consul.requests)))
        assert [x.seed for x in await viewer.lookup()] == ["tcp://127.0.0.1:7001"]
        # Changes after the reset are still seen at once.
        b = ConsulPlugin(ConsulConfig.local(url=consul.url))
        await b.start(local("b", 7002))
        await until(viewer, lambda c: len(c) == 2, timeout=5.0)
        for plugin in (a, b, viewer):
            await plugin.stop()

    run_without_blocking(scenario())


def test_ttl_transitions_warning_critical_and_passing_again(consul: FakeConsul) -> None:
    async def scenario() -> None:
        viewer = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False))
        await viewer.start(local("viewer", 1))
        node = ConsulPlugin(ConsulConfig.local(url=consul.url, ttl=30.0))
        await node.start(local("n", 7001))
        await until(viewer, lambda c: len(c) == 1)
        reg = node.registration
        assert reg is not None
        # A warning is not passing: the instance leaves the candidates (only_passing).
        await set_check(consul, reg.check_id, "warn")
        await until(viewer, lambda c: c == [])
        # The documented update endpoint: back to passing.
        await set_check(consul, reg.check_id, "update", {"Status": "passing", "Output": "ok"})
        await until(viewer, lambda c: len(c) == 1)
        # An explicit fail: critical at once.
        await set_check(consul, reg.check_id, "fail")
        await until(viewer, lambda c: c == [])
        assert consul.check_status(reg.check_id) == "critical"
        await set_check(consul, reg.check_id, "pass")
        await until(viewer, lambda c: len(c) == 1)
        # The TTL lapses (as if the node hung): critical, gone; the node's next pass brings it back.
        consul.expire_check(reg.check_id)
        await until_true(lambda: consul.check_status(reg.check_id) == "critical")
        await until(viewer, lambda c: c == [])
        await set_check(consul, reg.check_id, "pass")
        await until(viewer, lambda c: len(c) == 1)
        await node.stop()
        await viewer.stop()

    run_without_blocking(scenario())


def test_nodes_form_a_cluster_through_consul_and_a_lapsed_node_disappears(consul: FakeConsul) -> None:
    """Three in-process nodes and one node in a child process; SIGSTOP the child: its TTL lapses."""
    options = {"url": consul.url, "ttl": 1.0, "wait": 2.0, "request_timeout": 2.0, "backoff_initial": 0.1,
               "backoff_max": 1.0, "polling_interval": 0.2}

    async def scenario(child: Child) -> None:
        nodes = [Node(NodeConfig(name=f"n{i}", bind="tcp://127.0.0.1")) for i in range(3)]
        plugins: list[ConsulPlugin] = []
        try:
            for node in nodes:
                await node.start()
                plugin = registry.create("consul", options)
                assert isinstance(plugin, ConsulPlugin)
                await plugin.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
                plugins.append(plugin)
            # Child output is read off the loop: a blocking read here would stall the in-process nodes.
            loop = asyncio.get_running_loop()
            child_id = (await loop.run_in_executor(None, child.expect, "READY", 20)).split()[1]
            everyone = {n.id for n in nodes} | {child_id}
            # The join path: link to every candidate (by its seed).
            for node, plugin in zip(nodes, plugins, strict=True):
                candidates = await until(plugin, lambda c: len(c) == 3)
                assert {c.node_id for c in candidates} == everyone - {node.id}
                for cand in candidates:
                    if cand.seed not in {p.seed for p in node.peers()}:
                        await node.connect(cand.seed, timeout=5.0)
            for node in nodes:
                deadline = time.monotonic() + 10
                while {p.id for p in node.peers()} != everyone - {node.id}:
                    assert time.monotonic() < deadline, node.peers()
                    await asyncio.sleep(0.02)
            line = await loop.run_in_executor(None, child.expect, "PEERS", 10)
            while len(json.loads(line.split(" ", 1)[1])) < 3:
                line = await loop.run_in_executor(None, child.expect, "PEERS", 10)

            # The child hangs: it stops passing its TTL check, Consul marks it critical, and every node
            # stops offering it (discovery only: whether it is a live member is membership's business).
            os.kill(child.pid, signal.SIGSTOP)
            try:
                for plugin in plugins:
                    await until(plugin, lambda c: child_id not in {x.node_id for x in c} and len(c) == 2)
                assert consul.check_status(f"service:foundation-{child_id}") == "critical"
            finally:
                os.kill(child.pid, signal.SIGCONT)
            # It resumes, passes again, and is a candidate again.
            for plugin in plugins:
                await until(plugin, lambda c: child_id in {x.node_id for x in c})
        finally:
            for plugin in plugins:
                await plugin.stop()
            for node in nodes:
                await node.stop()

    with children() as procs:
        child = Child.python("-m", "tests.integration.fakes.discovery_node_child", "consul", json.dumps(options))
        procs.append(child)
        asyncio.run(scenario(child))
        child.stop()
    assert consul.service_ids() == set()  # every node, the child included, deregistered on the way out


def test_acl_token_checked_and_denials_counted(caplog: pytest.LogCaptureFixture) -> None:
    with running_consul(acl_tokens={"writer-token": "write", "reader-token": "read"}) as consul:

        async def scenario() -> None:
            good = ConsulPlugin(ConsulConfig.local(url=consul.url, token="writer-token"))
            await good.start(local("good", 7001))
            viewer = ConsulPlugin(ConsulConfig.local(url=consul.url, token="reader-token", announce=False))
            await viewer.start(local("viewer", 1))
            await until(viewer, lambda c: len(c) == 1)
            assert ("X-Consul-Token" not in str(consul.requests))  # tokens travel in headers, not URLs
            # An unknown (e.g. revoked) token: 403 "ACL not found" on every call; counted, retried, logged once.
            expired = ConsulPlugin(ConsulConfig.local(url=consul.url, token="revoked-token"))
            await expired.start(local("expired", 7003))
            await until_stat(expired, "register_failures", 2)
            await until_stat(expired, "failures", 4)
            assert expired.stats()["acl_denied"] >= 2 and await expired.lookup() == []
            # A read-only token can discover but not register: "Permission denied".
            reader = ConsulPlugin(ConsulConfig.local(url=consul.url, token="reader-token"))
            await reader.start(local("reader", 7002))
            await until_stat(reader, "register_failures", 1)
            assert [c.name for c in await reader.lookup()] == ["good"]
            # Anonymous reads are filtered to nothing, as with default_policy=deny: a real (empty) answer.
            anon = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False))
            await anon.start(local("anon", 1))
            assert await anon.lookup() == [] and anon.last_success is not None
            for plugin in (good, viewer, expired, reader, anon):
                await plugin.stop()

        with caplog.at_level(logging.WARNING, logger="fabric.discovery.consul"):
            run_without_blocking(scenario())
        denied = [r.getMessage() for r in caplog.records if "ACL not found" in r.getMessage()]
        assert 1 <= len(denied) <= 2, denied  # rate-limited: one line per kind of failure per 30 s
        assert any("Permission denied" in r.getMessage() for r in caplog.records)


def test_bad_answers_are_counted_retried_and_the_view_kept(consul: FakeConsul) -> None:
    async def scenario() -> None:
        node = ConsulPlugin(ConsulConfig.local(url=consul.url))
        await node.start(local("n", 7001))
        viewer = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False, request_timeout=0.5, wait=1.0))
        await viewer.start(local("viewer", 1))
        await until(viewer, lambda c: len(c) == 1)
        kept = await viewer.lookup()
        failures = viewer.stats()["failures"]
        # Garbage JSON, a 500, a garbage index header, a stalled agent (longer than the client allows).
        consul.inject("invalid_json", "http500", "garbage_index", "slow:3", only="wait=1s")  # the viewer's
        await node.stop()  # wakes the viewer's blocking query, which gets the first fault
        await until_stat(viewer, "failures", failures + 4, timeout=20)
        assert viewer.stats()["malformed"] >= 2  # invalid JSON and the index header
        # While the backend misbehaved, the last good view stayed.
        assert await viewer.lookup() == kept or await viewer.lookup() == []
        # It recovers: the next real answer (node gone) replaces the view.
        await until(viewer, lambda c: c == [])
        await viewer.stop()

    run_without_blocking(scenario())


def test_agent_restart_keeps_the_view_then_nodes_register_again() -> None:
    """The agent goes down (refused connections) and comes back empty on the same port."""
    first = FakeConsul().start()
    port = first.port
    second: FakeConsul | None = None
    try:

        async def scenario() -> None:
            nonlocal second
            node = ConsulPlugin(ConsulConfig.local(url=first.url))
            await node.start(local("n", 7001))
            viewer = ConsulPlugin(ConsulConfig.local(url=first.url, announce=False, wait=1.0, backoff_max=0.3))
            await viewer.start(local("viewer", 1))
            kept = await until(viewer, lambda c: len(c) == 1)
            failures = viewer.stats()["failures"]
            await asyncio.get_running_loop().run_in_executor(None, first.close)
            await until_stat(viewer, "failures", failures + 3)
            assert await viewer.lookup() == kept  # the node keeps its current candidates
            await until_stat(node, "pass_failures", 1)
            # The agent is back, knowing nothing: the node's failed pass makes it register again.
            second = FakeConsul(port=port).start()
            await until_stat(node, "registrations", 2)
            await until(viewer, lambda c: [x.name for x in c] == ["n"])
            assert viewer.stats()["malformed"] == 0
            await node.stop()
            await viewer.stop()

        run_without_blocking(scenario())
    finally:
        first.close()
        if second is not None:
            second.close()


def test_wrong_datacenter_is_a_failure_not_an_empty_answer(consul: FakeConsul) -> None:
    async def scenario() -> None:
        viewer = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False, datacenter="dc9"))
        await viewer.start(local("viewer", 1))
        await until_stat(viewer, "failures", 1)
        assert viewer.last_success is None
        await viewer.stop()

    run_without_blocking(scenario())


def test_tls_with_a_private_ca_and_a_client_certificate() -> None:
    require_tool("openssl")
    with short_tmpdir("ffctls") as workdir, short_tmpdir("ffctls2") as otherdir:
        pki = make_pki(workdir)
        other_ca = make_pki(otherdir)["ca"]
        with running_consul(pki=pki, require_client_cert=True) as consul:
            assert consul.url.startswith("https://")

            async def scenario() -> None:
                tls = {"url": consul.url, "ca_file": pki["ca"], "cert_file": pki["cert"], "key_file": pki["key"]}
                node = ConsulPlugin(ConsulConfig.local(**tls))
                await node.start(local("n", 7001))
                viewer = ConsulPlugin(ConsulConfig.local(**tls, announce=False))
                await viewer.start(local("viewer", 1))
                assert [c.name for c in await until(viewer, lambda c: len(c) == 1)] == ["n"]
                # The agent's certificate is not signed by the CA we trust: every request fails.
                wrong = ConsulPlugin(ConsulConfig.local(**{**tls, "ca_file": other_ca}, announce=False))
                await wrong.start(local("wrong", 1))
                await until_stat(wrong, "failures", 2)
                # No client certificate: the agent refuses the handshake.
                anonymous = ConsulPlugin(ConsulConfig.local(url=consul.url, ca_file=pki["ca"], announce=False))
                await anonymous.start(local("anon", 1))
                await until_stat(anonymous, "failures", 2)
                # verify=False skips the server check (development only); still needs the client cert here.
                unverified = ConsulPlugin(ConsulConfig.local(**{**tls, "ca_file": None}, verify=False, announce=False))
                await unverified.start(local("unverified", 1))
                assert len(await unverified.lookup()) == 1
                for plugin in (node, viewer, wrong, anonymous, unverified):
                    await plugin.stop()
                assert wrong.last_success is None and anonymous.last_success is None

            run_without_blocking(scenario())


def test_query_tags_filter_instances(consul: FakeConsul) -> None:
    async def scenario() -> None:
        blue = ConsulPlugin(ConsulConfig.local(url=consul.url, tags=("blue", "v2")))
        await blue.start(local("blue", 7001))
        green = ConsulPlugin(ConsulConfig.local(url=consul.url, tags=("green", "v2")))
        await green.start(local("green", 7002))
        only_blue = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False, query_tags=("blue", "v2")))
        await only_blue.start(local("viewer", 1))
        every_v2 = ConsulPlugin(ConsulConfig.local(url=consul.url, announce=False, query_tags=("v2",)))
        await every_v2.start(local("viewer2", 1))
        await until(every_v2, lambda c: len(c) == 2)
        assert [c.name for c in await until(only_blue, lambda c: len(c) >= 1)] == ["blue"]
        assert any("tag=blue&tag=v2" in p for _, p in list(consul.requests))
        for plugin in (blue, green, only_blue, every_v2):
            await plugin.stop()

    run_without_blocking(scenario())
