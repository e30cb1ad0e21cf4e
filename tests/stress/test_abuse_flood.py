"""The resource attacks of issue 16 at the issue's sizes (stress tier: ``pytest -m stress tests/stress/
test_abuse_flood.py -s``). Same attacks as tests/integration/test_abuse_resources.py, with the default
limits, but each attacker runs in its own process (tests/integration/abuse_attacker.py), so the RSS
printed before and after is the node's alone (the figures docs/security.md quotes); each asserts its bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from fabric import Client, LimitsConfig, Message, Node, NodeConfig
from tests.integration.abuse_support import attacker_process, report, rss_mib, until


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 600))


def test_slow_subscriber_200k_messages_of_2k() -> None:
    sent = 200_000

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="b")) as b:
            gate = threading.Event()
            handled = [0]

            def slow(_msg: Message) -> None:
                gate.wait(120)
                handled[0] += 1

            unsubscribe = b.subscribe("coordination", slow)
            limit = b.config.limits.subscription_backlog
            before = rss_mib()
            async with attacker_process("send", b.endpoints["coordination"], sent, 2048):
                await until(lambda: b.counters["subscription_dropped"] + b.stats()["subscription_backlog"]["coordination"]
                            == sent, timeout=300, what="every message queued or dropped")
            peak = rss_mib()
            gate.set()
            await until(lambda: handled[0] == limit, timeout=60, what="backlog handled")
            unsubscribe()
            report("slow subscriber 200k x 2 KiB", sent=sent, queued=limit, dropped=b.counters["subscription_dropped"],
                   rss_before_mib=before, rss_peak_mib=peak, rss_after_mib=rss_mib())
            assert b.counters["subscription_dropped"] == sent - limit
            assert peak - before < 200  # was +725 MiB; 10,000 x 2 KiB queued is ~30 MiB with the objects

    run(scenario())


def test_200k_sends_and_200k_pings_from_random_source_ids() -> None:
    n = 200_000

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="b")) as b:
            before = rss_mib()
            async with attacker_process("send-random", b.endpoints["coordination"], n):
                await until(lambda: b.counters["undelivered"] == n, timeout=300, what="every SEND read")
            mid = rss_mib()
            async with attacker_process("ping-random", b.seed, n):
                await until(lambda: b.channel_counters["membership"][1] >= n, timeout=300, what="every PING read")
            usage = b.stats()["limits"]
            report("200k random-source SENDs + 200k PINGs", rss_before_mib=before, rss_after_sends_mib=mid,
                   rss_after_pings_mib=rss_mib(), seq_sources=usage["seq_sources"], seq_evictions=usage["seq_evictions"],
                   traffic_sources=usage["traffic_sources"])
            limits = b.config.limits
            assert usage["seq_sources"] <= limits.max_seq_sources
            assert usage["seq_evictions"] + usage["seq_sources"] == n
            assert usage["traffic_sources"] <= limits.max_traffic_sources

    run(scenario())


def test_5000_one_kib_and_short_subscriptions_on_the_events_port() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            before = rss_mib()
            async with attacker_process("subscribe", a.endpoints["events"], 5000, 1024):
                await until(lambda: a.stats()["transport"]["connections"]["events"]["disconnected"] >= 1,
                            what="1 KiB subscriber dropped")
            big = rss_mib()
            async with attacker_process("subscribe", a.endpoints["events"], 5000, 200):
                await until(lambda: a.stats()["transport"].get("subscription_resets", 0) >= 1, what="a reset")
                peak = rss_mib()
            await until(lambda: a.stats()["transport"]["subscriptions"]["events"] == 0, what="all freed")
            report("events-port subscriptions", rss_before_mib=before, rss_after_1kib_mib=big,
                   rss_peak_short_mib=peak, rss_after_mib=rss_mib(),
                   resets=a.stats()["transport"]["subscription_resets"])
            assert peak - before < 64  # was +237 MiB

    run(scenario())


async def _flood_hellos(a: Node, count: int) -> None:
    async with attacker_process("hello-client", a.seed, count):
        # every HELLO answered (a client recorded, perhaps evicted since) or dropped by the rate limit
        await until(lambda: a.counters["hello_rate_limited"] + a.counters["clients_evicted"] + len(a.clients()) > count,
                    timeout=120, what="every HELLO handled")


async def _hello_flood(limits: LimitsConfig, flood: int, prefill: int = 0) -> dict[str, float]:
    """Worst latency of a legitimate client's calls while ``flood`` client HELLOs arrive (after ``prefill``
    SENDs from random source ids, which filled the per-source tables the issue's run had filled)."""
    async with Node(NodeConfig.local(name="a", limits=limits)) as a, Client(NodeConfig.local(name="legit")) as legit:
        a.add_service("echo", lambda x: x)
        server = await legit.connect(a.seed)
        if prefill:
            async with attacker_process("send-random", a.endpoints["coordination"], prefill):
                await until(lambda: a.counters["undelivered"] >= prefill, timeout=300, what="prefill read")
        before = rss_mib()
        worst = 0.0
        calls = 0
        flooding = asyncio.ensure_future(_flood_hellos(a, flood))
        try:
            while not flooding.done() or calls < 20:
                started = time.perf_counter()
                await legit.call(server.id, "echo", calls, timeout=60)
                worst = max(worst, time.perf_counter() - started)
                calls += 1
            await flooding
        finally:
            flooding.cancel()
        return {"worst_call_ms": worst * 1000, "calls": calls, "rate_limited": a.counters["hello_rate_limited"],
                "clients": len(a.clients()), "evicted": a.counters["clients_evicted"],
                "rss_before_mib": before, "rss_after_mib": rss_mib()}


def test_6000_client_hellos_worst_legitimate_call() -> None:
    limited = run(_hello_flood(LimitsConfig(), 6000, prefill=200_000))
    report("6,000 client HELLOs after 200k random-source SENDs, default limits", **limited)
    # the same flood with the HELLO rate limits out of the way, for comparison (not asserted on)
    off = LimitsConfig(hello_rate=1e9, hello_burst=10**9, hello_rate_global=1e9)
    unlimited = run(_hello_flood(off, 6000, prefill=200_000))
    report("6,000 client HELLOs after 200k random-source SENDs, HELLO rate limits off", **unlimited)
    assert limited["clients"] <= LimitsConfig().max_clients
    assert unlimited["clients"] <= LimitsConfig().max_clients
