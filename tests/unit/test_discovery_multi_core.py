"""The multi strategy's merging, ageing and re-offers, driven by a manual clock (no I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import ClassVar

import dns.exception
import dns.resolver
import pytest

from fabric.clock import ManualClock
from fabric.discovery import (
    Candidate,
    CandidateMerger,
    CandidateUpdate,
    ConfigurationError,
    DiscoveryPlugin,
    LocalNode,
    MultiConfig,
    MultiDiscovery,
    StaticConfig,
    StaticPlugin,
)
from fabric.discovery.dns import is_real_answer

ME = LocalNode(node_id=str(uuid.uuid4()), name="me", endpoints={"membership": "tcp://10.0.0.100:7946"})
X = str(uuid.uuid4())


@dataclasses.dataclass(frozen=True)
class ScriptConfig:
    """No options: the test scripts the answers."""


class ScriptedPlugin(DiscoveryPlugin):
    """A backend whose answers the test sets: a list (a real answer) or None (the backend is down)."""

    name: ClassVar[str] = "scripted"
    config_type = ScriptConfig

    answer: list[Candidate] | None = None
    last_good: list[Candidate] = []

    async def _start(self, local: LocalNode) -> None:
        self.last_good = []

    async def _lookup(self) -> list[Candidate]:
        if self.answer is None:
            self._count("failures")
            return list(self.last_good)
        self._mark_success()
        self.last_good = list(self.answer)
        return list(self.answer)

    async def _stop(self) -> None:
        pass


class HangingPlugin(ScriptedPlugin):
    name: ClassVar[str] = "hanging"

    async def _lookup(self) -> list[Candidate]:
        await asyncio.sleep(3600)
        return []


def cand(last_octet: int, node_id: str | None = None, source: str = "scripted") -> Candidate:
    return Candidate(seed=f"tcp://10.0.0.{last_octet}:7946", node_id=node_id, source=source)


def test_merger_ages_out_sources_whose_backend_stopped_answering() -> None:
    merger = CandidateMerger(["dns", "gossip"], answer_ttl=10.0)
    merger.record("dns", [cand(1, source="dns"), cand(2, source="dns")], last_success=0.0)
    merger.record("gossip", [cand(2, X, source="gossip")], last_success=5.0)
    assert [(c.seed, c.source) for c in merger.merged(now=10.0)] == [
        ("tcp://10.0.0.1:7946", "dns"), ("tcp://10.0.0.2:7946", "dns+gossip"),
    ]
    assert merger.stale_sources(now=10.0) == []
    assert [(c.seed, c.source) for c in merger.merged(now=10.5)] == [("tcp://10.0.0.2:7946", "gossip")]
    assert merger.live_sources(now=10.5) == ["gossip"]
    merger.record("gossip", [], last_success=None)
    assert merger.merged(now=10.5) == [] and merger.stale_sources(10.5) == ["dns", "gossip"]
    with pytest.raises(ConfigurationError):
        merger.record("consul", [], 0.0)


def test_refresh_reports_changes_reoffers_and_failover() -> None:
    clock = ManualClock()
    first, second = ScriptedPlugin(clock=clock), ScriptedPlugin(clock=clock)
    multi = MultiDiscovery(MultiConfig(answer_ttl=30.0, reoffer_interval=10.0, auto_refresh=False),
                           plugins=[first, second], clock=clock)
    assert list(multi.sources()) == ["scripted", "scripted#2"]
    updates: list[CandidateUpdate] = []
    calls: list[str] = []

    async def async_subscriber(update: CandidateUpdate) -> None:
        calls.append(update.reason)

    def broken_subscriber(update: CandidateUpdate) -> None:
        raise RuntimeError("subscriber bug")

    async def scenario() -> None:
        multi.subscribe(broken_subscriber)
        multi.subscribe(updates.append)
        unsubscribe = multi.subscribe(async_subscriber)
        await multi.start(ME)
        assert await multi.refresh() is None  # nothing known yet: nothing to offer
        first.answer = [cand(1), cand(100)]  # 10.0.0.100 is this node: never offered
        second.answer = [cand(2)]
        update = await multi.refresh()
        assert update is not None and update.reason == "changed"
        assert [c.seed for c in update.added] == ["tcp://10.0.0.1:7946", "tcp://10.0.0.2:7946"]
        clock.advance(9.9)
        assert await multi.refresh() is None
        clock.advance(0.1)
        reoffer = await multi.refresh()
        assert reoffer is not None and reoffer.reason == "reoffer" and reoffer.added == reoffer.removed == ()
        unsubscribe()

        first.answer = None  # backend down: its last good answer stays for answer_ttl
        clock.advance(29.0)
        still = await multi.refresh()  # unchanged view (re-offered: due again)
        assert still is not None and still.reason == "reoffer" and len(still.candidates) == 2
        assert multi.sources() == {"scripted": True, "scripted#2": True}
        clock.advance(1.5)
        failover = await multi.refresh()
        assert failover is not None and failover.reason == "changed"
        assert [c.seed for c in failover.removed] == ["tcp://10.0.0.1:7946"]
        assert [c.seed for c in multi.candidates] == ["tcp://10.0.0.2:7946"]
        # three failed polls: the first refresh (before any answer was scripted) and the two above
        assert multi.stats()["scripted.failures"] == 3 and multi.stats()["changes"] == 2
        await multi.stop()

    asyncio.run(scenario())
    assert [u.reason for u in updates] == ["changed", "reoffer", "reoffer", "changed"]
    assert calls == ["changed", "reoffer"]


def test_a_hanging_child_is_bounded_and_does_not_block_the_others() -> None:
    clock = ManualClock()
    good = ScriptedPlugin(clock=clock)
    good.answer = [cand(7)]
    multi = MultiDiscovery(MultiConfig(lookup_timeout=0.05, auto_refresh=False),
                           plugins=[HangingPlugin(clock=clock), good], clock=clock)

    async def scenario() -> None:
        await multi.start(ME)
        assert [c.seed for c in await multi.lookup()] == ["tcp://10.0.0.7:7946"]
        assert multi.stats()["failures"] == 1
        await multi.stop()

    asyncio.run(scenario())


def test_auto_refresh_loop_and_watch_with_static_children() -> None:
    multi = MultiDiscovery(
        MultiConfig(polling_interval=0.01),
        plugins=[StaticPlugin(StaticConfig(seeds=("10.0.0.1",))), StaticPlugin(StaticConfig(seeds=("10.0.0.1", "10.0.0.2")))],
    )

    async def scenario() -> None:
        got: asyncio.Queue[CandidateUpdate] = asyncio.Queue()
        multi.subscribe(got.put_nowait)
        await multi.start(ME)
        update = await asyncio.wait_for(got.get(), timeout=10)
        assert [(c.seed, c.source) for c in update.candidates] == [
            ("tcp://10.0.0.1:7946", "static"), ("tcp://10.0.0.2:7946", "static"),
        ]
        async for view in multi.watch():
            assert len(view) == 2
            break
        await multi.stop()
        assert all(not c.running for c in multi.children)

    asyncio.run(scenario())


def test_child_start_failure_stops_the_started_ones() -> None:
    class Exploding(ScriptedPlugin):
        async def _start(self, local: LocalNode) -> None:
            raise ConfigurationError("bad local config")

    ok = ScriptedPlugin()
    multi = MultiDiscovery(MultiConfig(), plugins=[ok, Exploding()])

    async def scenario() -> None:
        with pytest.raises(ConfigurationError):
            await multi.start(ME)
        assert not ok.running

    asyncio.run(scenario())


def test_dns_answer_classification() -> None:
    assert is_real_answer(dns.resolver.NXDOMAIN())
    assert is_real_answer(dns.resolver.NoAnswer())
    assert not is_real_answer(dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]))
    assert not is_real_answer(dns.resolver.NoNameservers())
    assert not is_real_answer(dns.exception.Timeout())
    assert not is_real_answer(OSError("network unreachable"))
