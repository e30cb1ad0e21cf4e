"""Kubernetes discovery against a local API server stand-in (HTTPS, test CA, bearer tokens, list + watch).

The fake (tests/integration/fakes/k8s_server.py) serves EndpointSlices the way the API server does:
chunked watch streams with resourceVersions, BOOKMARK events, 410 Gone (as an ERROR event, or as an
HTTP answer) after compaction. Real fabric nodes form a cluster from what the strategy offers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from fabric import Node, NodeConfig
from fabric.discovery import Candidate, LocalNode, registry
from fabric.discovery.kubernetes import KubernetesConfig, KubernetesPlugin
from tests.integration.fakes.k8s_server import (
    FakeKubernetes,
    make_pki,
    rotate_token,
    running_kubernetes,
    write_service_account,
)
from tests.integration.test_discovery_dns import Dnsmasq
from tests.integration.test_discovery_dns import run_without_blocking as _run_without_blocking
from tests.support import require_tool, short_tmpdir

ME = LocalNode(node_id=str(uuid.uuid4()), name="viewer", endpoints={"membership": "tcp://127.0.0.1:1"})


def run_without_blocking(scenario: Coroutine[Any, Any, None]) -> None:
    """Fail if a loop callback ran over 1 s or a thread leaked. (1 s, not the DNS tests' 0.25 s: the fake
    server's threads share this process's GIL, so a loaded machine stretches steps that never block;
    a plugin that waited synchronously on a blocking query or a watch would still hold the loop longer.)"""
    _run_without_blocking(scenario, limit=1.0)


class Cluster:
    """A fake API server plus a service-account directory for it."""

    def __init__(self, server: FakeKubernetes, pki: dict[str, str], workdir: str) -> None:
        self.server = server
        self.pki = pki
        self.sa = write_service_account(f"{workdir}/sa", pki, "token-1", "default")

    def options(self, **overrides: Any) -> dict[str, Any]:
        """Options for registry.create: our API server, our service-account files, fast timers."""
        return {"api_server": self.server.url, "service": "foundation", "watch_timeout": 30.0,
                "request_timeout": 2.0, "backoff_initial": 0.05, "backoff_max": 0.3, "polling_interval": 0.2,
                **self.sa, **overrides}

    def plugin(self, **overrides: Any) -> KubernetesPlugin:
        plugin = registry.create("kubernetes", self.options(**overrides))
        assert isinstance(plugin, KubernetesPlugin)
        return plugin


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require_tool("openssl")
    with short_tmpdir("ffk8s") as workdir, running_kubernetes(workdir) as (server, pki):
        yield Cluster(server, pki, workdir)


async def until(plugin: KubernetesPlugin, predicate: Callable[[list[Candidate]], bool], timeout: float = 10.0) -> list[Candidate]:
    """Wait for the plugin's view to satisfy ``predicate`` (woken by its change events), bounded."""
    seen: list[list[str]] = []

    async def follow() -> list[Candidate]:
        async for candidates in plugin.watch(poll_interval=0.2):
            seen.append([c.seed for c in candidates])
            if predicate(candidates):
                return candidates
        raise AssertionError("watch ended")

    try:
        return await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        raise AssertionError(f"views seen: {seen}; stats {plugin.stats()}") from None


async def until_true(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def ports_of(node: Node) -> dict[str, int]:
    """The node's channel ports, named after the channels (as the Service/Deployment name them)."""
    return {channel: int(endpoint.rsplit(":", 1)[1]) for channel, endpoint in node.endpoints.items()}


def test_nodes_form_a_cluster_and_follow_endpoints_added_removed_and_not_ready(cluster: Cluster) -> None:
    async def scenario() -> None:
        nodes = [Node(NodeConfig(name=f"pod-{i}", bind="tcp://127.0.0.1")) for i in range(4)]
        plugins: list[KubernetesPlugin] = []
        try:
            for node in nodes:
                await node.start()
            # One slice per pod: the pods' ports differ (ephemeral), and a slice has one port list.
            for node in nodes[:3]:
                cluster.server.put_slice(f"foundation-{node.name}", [{"ip": "127.0.0.1", "pod": node.name}],
                                         ports_of(node))
            for node in nodes:
                plugin = cluster.plugin()
                await plugin.start(LocalNode(node_id=node.id, name=node.name, endpoints=node.endpoints))
                plugins.append(plugin)

            async def join(node: Node, plugin: KubernetesPlugin, count: int) -> None:
                candidates = await until(plugin, lambda c: len([x for x in c if x.seed != node.seed]) >= count)
                for cand in candidates:
                    if cand.seed != node.seed and cand.seed not in {p.seed for p in node.peers()}:
                        await node.connect(cand.seed, timeout=5.0)

            for node, plugin in zip(nodes[:3], plugins[:3], strict=True):
                await join(node, plugin, 2)
            for node in nodes[:3]:
                await until_true(lambda n=node: len(n.peers()) == 2, f"{node.name} peers")  # type: ignore[misc]
            # The endpoints read from the named ports are exactly what the peers advertise.
            by_seed = {p.seed: p for p in nodes[0].peers()}
            for cand in await plugins[0].lookup():
                if cand.seed in by_seed:
                    assert dict(cand.endpoints) == dict(by_seed[cand.seed].endpoints)
                    assert cand.meta["pod"] == by_seed[cand.seed].name

            # A fourth pod's slice appears while the cluster runs: every node is offered it and links.
            cluster.server.put_slice(f"foundation-{nodes[3].name}", [{"ip": "127.0.0.1", "pod": nodes[3].name}],
                                     ports_of(nodes[3]))
            for node, plugin in zip(nodes, plugins, strict=True):
                await join(node, plugin, 3)
            for node in nodes:
                await until_true(lambda n=node: len(n.peers()) == 3, f"{node.name} peers")  # type: ignore[misc]

            # pod-1 turns not ready: no longer a candidate anywhere; still a linked peer (discovery is
            # not liveness). Then terminating (even if "ready" were true) and finally deleted.
            cluster.server.put_slice(f"foundation-{nodes[1].name}",
                                     [{"ip": "127.0.0.1", "pod": nodes[1].name, "ready": False}], ports_of(nodes[1]))
            for plugin in plugins:
                await until(plugin, lambda c: nodes[1].seed not in {x.seed for x in c})
            assert nodes[1].id in {p.id for p in nodes[0].peers()}
            cluster.server.put_slice(f"foundation-{nodes[1].name}",
                                     [{"ip": "127.0.0.1", "pod": nodes[1].name, "ready": True}], ports_of(nodes[1]))
            await until(plugins[0], lambda c: nodes[1].seed in {x.seed for x in c})
            cluster.server.put_slice(f"foundation-{nodes[1].name}", [
                {"ip": "127.0.0.1", "pod": nodes[1].name, "ready": True, "serving": True, "terminating": True}],
                ports_of(nodes[1]))
            await until(plugins[0], lambda c: nodes[1].seed not in {x.seed for x in c})
            cluster.server.delete_slice(f"foundation-{nodes[3].name}")
            await until(plugins[0], lambda c: {x.seed for x in c} == {nodes[2].seed})
            stats = plugins[0].stats()
            assert stats["lists"] == 1 and stats["events"] >= 4 and stats["failures"] == 0
        finally:
            for plugin in plugins:
                await plugin.stop()
            for node in nodes:
                await node.stop()

    run_without_blocking(scenario())


def test_watch_uses_resource_versions_and_bookmarks_and_relists_on_410(cluster: Cluster) -> None:
    server = cluster.server

    async def scenario() -> None:
        server.put_slice("s1", [{"ip": "10.0.0.1"}], {"membership": 7946})
        plugin = cluster.plugin(label_selector="kubernetes.io/service-name=foundation,app!=other")
        await plugin.start(ME)
        assert [c.seed for c in await plugin.lookup()] == ["tcp://10.0.0.1:7946"]
        await until_true(lambda: server.open_watches == 1, "watch open")
        watch = [r for r in server.requests if "watch=1" in r][-1]
        assert "allowWatchBookmarks=true" in watch and f"resourceVersion={server.resource_version}" in watch
        assert "labelSelector=kubernetes.io%2Fservice-name%3Dfoundation%2Capp%21%3Dother" in watch
        # A slice of another service changes: a new resourceVersion the watch does not show us; a
        # BOOKMARK carries it, so a later re-watch starts from there.
        server.put_slice("other", [{"ip": "10.9.9.9"}], {"membership": 7946}, service="other")
        server.bookmark()
        await until_true(lambda: plugin.stats()["bookmarks"] == 1, "bookmark")
        assert plugin.cache.resource_version == str(server.resource_version)

        # Compaction + ERROR event 410 in the open watch: list again, candidates kept meanwhile.
        server.expire_watches()
        server.put_slice("s2", [{"ip": "10.0.0.2"}], {"membership": 7946})
        await until(plugin, lambda c: len(c) == 2)
        await until_true(lambda: plugin.stats()["lists"] == 2, "relisted")
        assert plugin.stats()["relists"] == 1
        await plugin.stop()

        # The HTTP flavour: a watch from a compacted resourceVersion answered with HTTP 410.
        server.gone_as_http = True
        plugin2 = cluster.plugin(watch_timeout=1.0)
        await plugin2.start(ME)
        await until(plugin2, lambda c: len(c) == 2)
        await until_true(lambda: server.open_watches == 1, "watch open")
        # A change we do not see (another service) moves the server on; compaction then leaves our
        # resourceVersion behind. When the watch ends (timeoutSeconds=1) the re-watch gets HTTP 410.
        server.put_slice("other-2", [{"ip": "10.9.9.8"}], {"membership": 7946}, service="other")
        server.compact()
        await until_true(lambda: plugin2.stats()["lists"] == 2, "relist after HTTP 410")
        assert plugin2.stats()["relists"] == 1 and plugin2.stats()["failures"] == 0
        server.delete_slice("s1")
        await until(plugin2, lambda c: [x.seed for x in c] == ["tcp://10.0.0.2:7946"])
        await plugin2.stop()

    run_without_blocking(scenario())


def test_rotated_token_is_reread_after_a_401_and_an_expired_one_keeps_the_view(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    server = cluster.server

    async def scenario() -> None:
        server.put_slice("s1", [{"ip": "10.0.0.1"}], {"membership": 7946})
        plugin = cluster.plugin(token_reload_interval=3600.0)
        await plugin.start(ME)
        kept = await until(plugin, lambda c: len(c) == 1)
        assert plugin._tokens is not None and plugin._tokens.reads == 1
        await until_true(lambda: server.open_watches == 1, "watch open")
        # The kubelet rotates the token and the old one stops working.
        rotate_token(cluster.sa["token_file"], "token-2")
        server.tokens = {"token-2"}
        server.expire_watches()  # forces a new list with the old (cached) token: 401, re-read, retry
        server.put_slice("s2", [{"ip": "10.0.0.2"}], {"membership": 7946})
        # (The open watch may deliver s2 before its 410; the relist is what meets the old token.)
        tokens = plugin._tokens
        await until_true(lambda: plugin.stats()["unauthorized"] >= 1 and tokens.reads >= 2,
                         "401, then the token file read again")
        # A watch starts only after a successful list: the new token worked.
        await until_true(lambda: plugin.stats()["watches"] >= 2, "a list with the new token, then a watch")
        assert plugin.stats()["failures"] == 1
        assert len(await until(plugin, lambda c: len(c) == 2)) == 2
        # Now the token expires for good: 401 on every try, counted and retried; the view is kept.
        server.tokens = set()
        server.expire_watches()
        await until_true(lambda: plugin.stats()["unauthorized"] >= 4, "repeated 401s")
        assert len(await plugin.lookup()) == 2 and kept[0] in await plugin.lookup()
        await plugin.stop()

    with caplog.at_level(logging.WARNING, logger="fabric.discovery.kubernetes"):
        run_without_blocking(scenario())
    warnings = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert 1 <= len(warnings) <= 2, warnings  # rate-limited


def test_bad_answers_are_counted_retried_and_the_view_kept(cluster: Cluster) -> None:
    server = cluster.server

    async def scenario() -> None:
        server.put_slice("s1", [{"ip": "10.0.0.1"}], {"membership": 7946})
        server.put_slice("broken", [{"ip": "10.0.0.7"}], {"http": 80})  # no port named membership
        plugin = cluster.plugin(request_timeout=0.5)
        await plugin.start(ME)
        kept = await until(plugin, lambda c: len(c) == 1)
        assert plugin.stats()["malformed"] >= 1  # the slice without our port: skipped, counted
        failures = plugin.stats()["failures"]
        # The next list answers garbage JSON, then HTTP 500, then stalls past the timeout; the watch
        # after it sends a garbage line.
        await until_true(lambda: server.open_watches == 1, "watch open")
        server.inject("invalid_json", "http500", "slow:2", "ok", "invalid_json")
        server.expire_watches()
        await until_true(lambda: plugin.stats()["failures"] >= failures + 4, "four failures")
        assert plugin.stats()["malformed"] >= 3  # the broken slice, the garbage list, the garbage event
        assert await plugin.lookup() == kept
        server.put_slice("s2", [{"ip": "10.0.0.2"}], {"membership": 7946})
        await until(plugin, lambda c: len(c) == 2)
        await plugin.stop()

    run_without_blocking(scenario())


def test_tls_is_verified_and_rbac_denials_are_failures(cluster: Cluster) -> None:
    async def scenario(other_ca: str) -> None:
        cluster.server.put_slice("s1", [{"ip": "10.0.0.1"}], {"membership": 7946})
        wrong_ca = cluster.plugin(ca_file=other_ca)
        await wrong_ca.start(ME)
        await until_true(lambda: wrong_ca.stats()["failures"] >= 2, "TLS failures")
        assert await wrong_ca.lookup() == [] and wrong_ca.last_success is None
        await wrong_ca.stop()
        forbidden = cluster.plugin(namespace="kube-system")
        await forbidden.start(ME)
        await until_true(lambda: forbidden.stats()["failures"] >= 2, "403 failures")
        assert forbidden.last_success is None
        await forbidden.stop()
        # The namespace comes from the service-account file when not configured.
        own = cluster.plugin()
        await own.start(ME)
        assert own.namespace == "default" and len(await own.lookup()) == 1
        await own.stop()

    with short_tmpdir("ffca") as other:
        run_without_blocking(scenario(make_pki(other)["ca"]))


def test_dns_mode_reads_a_headless_service_through_the_dns_strategy() -> None:
    with short_tmpdir("ffk8sdns") as workdir:
        dnsmasq = Dnsmasq(workdir)
        name = "foundation.team-a.svc.cluster.test"
        dnsmasq.set_hosts([("10.1.0.1", name), ("10.1.0.2", name)])
        dnsmasq.start()
        try:

            async def scenario() -> None:
                plugin = registry.create("kubernetes", {
                    "mode": "dns", "service": "foundation", "namespace": "team-a", "cluster_domain": "cluster.test",
                    "port": 7946, "pod_ip": "10.1.0.2",
                    "dns": {"nameservers": ["127.0.0.1"], "nameserver_port": dnsmasq.port, "timeout": 2.0},
                })
                await plugin.start(ME)
                (cand,) = await plugin.lookup()  # our own pod IP is left out
                assert cand.seed == "tcp://10.1.0.1:7946" and cand.endpoints["data"] == "tcp://10.1.0.1:7949"
                assert cand.meta["dns_name"] == name and plugin.last_success is not None
                await plugin.stop()

            run_without_blocking(scenario())
        finally:
            dnsmasq.stop()


def test_config_requires_a_selector_and_never_reads_kubeconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    from fabric.discovery import ConfigurationError

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="service or label_selector"):
        KubernetesConfig()

    async def scenario() -> None:
        plugin = KubernetesPlugin(KubernetesConfig(service="x", namespace="default"))
        with pytest.raises(ConfigurationError, match="KUBERNETES_SERVICE_HOST"):
            await plugin.start(ME)  # out of a pod and no api_server: a clear error, not a kubeconfig

    asyncio.run(scenario())
