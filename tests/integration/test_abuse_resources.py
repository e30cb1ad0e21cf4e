"""Resource attacks in development mode (issue 16, "Tried as an attacker"), on real sockets.

Each attack from the issue, at a size that keeps this tier fast (tests/stress/test_abuse_flood.py runs
them at the issue's size): raw pyzmq sockets (or raw TCP) on 127.0.0.1 against a node in this process.
Every test asserts the structure stays within its limit and the counters equal what was sent, and prints
RSS (and descriptors) before and after (``pytest -s`` shows the ``[abuse]`` lines).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from typing import Any

import zmq

from fabric import Client, LimitsConfig, Message, Node, NodeConfig, Overloaded, wire
from fabric.admin import AdminService
from fabric.http import HttpEndpoint
from fabric.wire import MsgType
from tests.integration.abuse_support import (
    Attacker,
    client_hello,
    open_fds,
    report,
    routing_id_for,
    rss_mib,
    until,
)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_a_slow_subscriber_drops_beyond_its_backlog_instead_of_growing() -> None:
    """Issue: a slow subscriber's queue grew 31 -> 756 MiB for 200k x 2 KiB, the sender saw nothing."""
    sent, limit = 5000, 500

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="b", limits=LimitsConfig(subscription_backlog=limit))) as b:
            gate = threading.Event()
            handled: list[int] = []

            def slow(msg: Message) -> None:
                gate.wait(30)
                handled.append(len(msg.payload))

            unsubscribe = b.subscribe("coordination", slow)
            before = rss_mib()
            payload = os.urandom(2048)
            with Attacker(b.endpoints["coordination"]) as att:
                src = os.urandom(16)
                for i in range(sent):
                    att.send(wire.send(src, "coordination", payload, seq=i + 1))
                await until(lambda: b.counters["subscription_dropped"] + b.stats()["subscription_backlog"]["coordination"]
                            == sent, what="every message queued or dropped")
            peak = rss_mib()
            assert b.stats()["subscription_backlog"]["coordination"] == limit
            assert b.counters["subscription_dropped"] == sent - limit
            gate.set()
            await until(lambda: len(handled) == limit, what="the backlog handled")
            unsubscribe()
            report("slow subscriber", sent=sent, queued=limit, dropped=b.counters["subscription_dropped"],
                   rss_before_mib=before, rss_peak_mib=peak)

    run(scenario())


def test_random_source_ids_and_pings_stay_within_their_tables() -> None:
    """Issue: 200k SENDs with random source ids (+71 MiB) and 200k PINGs (+39 MiB) were never freed."""
    sends, pings, table = 20000, 20000, 1000

    async def scenario() -> None:
        limits = LimitsConfig(max_seq_sources=table, max_traffic_sources=table)
        async with Node(NodeConfig.local(name="b", limits=limits)) as b:
            before = rss_mib()
            with Attacker(b.endpoints["coordination"]) as att:
                for _ in range(sends):
                    att.send(wire.send(os.urandom(16), "coordination", b"x", seq=1))
                await until(lambda: b.counters["undelivered"] == sends, what="every SEND read")
            with Attacker(b.seed) as att:
                for i in range(pings):
                    att.send(wire.ping(os.urandom(16), msg_id=i, wall_ms=0))
                await until(lambda: b.channel_counters["membership"][1] >= pings, what="every PING read")
                pongs = await asyncio.to_thread(att.recv_all, 0.3)
            usage = b.stats()["limits"]
            after = rss_mib()
            assert usage["seq_sources"] <= table and usage["seq_evictions"] + usage["seq_sources"] == sends
            assert usage["traffic_sources"] <= table
            assert b.counters["traffic_notes_evicted"] > 0
            assert len(pongs) == pings
            report("random source ids", sends=sends, pings=pings, seq_sources=usage["seq_sources"],
                   seq_evictions=usage["seq_evictions"], traffic_sources=usage["traffic_sources"],
                   rss_before_mib=before, rss_after_mib=after)

    run(scenario())


def test_spoofed_sequence_numbers_count_one_jump_not_a_huge_gap() -> None:
    """Issue: spoofed sequence numbers pushed ``seq_gaps`` to 2.4e14."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="b")) as b:
            with Attacker(b.endpoints["coordination"]) as att:
                src = os.urandom(16)
                for seq in (1, 10, 2**62, 2**62 + 1, 2**63):
                    att.send(wire.send(src, "coordination", b"x", seq=seq))
                await until(lambda: b.counters["undelivered"] == 5, what="five SENDs read")
            assert b.counters["seq_gaps"] == 8
            assert b.counters["seq_jumps"] == 2

    run(scenario())


def test_subscriptions_on_the_events_port_are_bounded_and_freed() -> None:
    """Issue: 5,000 one-KiB subscriptions on the events port cost +237 MiB, kept after disconnect."""

    async def scenario() -> None:
        limits = LimitsConfig(max_subscriptions=100)
        async with Node(NodeConfig.local(name="a", limits=limits)) as a, Node(NodeConfig.local(name="b")) as b:
            await b.join([a.seed], min_members=2, timeout=20)
            got: list[bytes] = []
            b.subscribe("events", lambda m: got.append(bytes(m.payload)), inline=True)
            await until(lambda: a.stats()["transport"]["subscriptions"]["events"] == 1, what="b subscribed")
            before = rss_mib()
            events = a.endpoints["events"]
            # 1 KiB subscriptions: beyond max_subscription_bytes, libzmq drops the connection at once
            with Attacker(events, zmq.SUB) as big:
                for _ in range(50):
                    big.sock.set(zmq.SUBSCRIBE, os.urandom(1024))
                await until(lambda: a.stats()["transport"]["connections"]["events"]["disconnected"] >= 1,
                            what="the 1 KiB subscriber dropped")
            # many short ones: beyond max_subscriptions every subscriber is dropped (and comes back)
            with Attacker(events, zmq.SUB) as many:
                for _ in range(1500):
                    many.sock.set(zmq.SUBSCRIBE, os.urandom(200))
                await until(lambda: a.stats()["transport"].get("subscription_resets", 0) >= 1, what="a reset")
                peak = rss_mib()
            await until(lambda: a.stats()["transport"]["subscriptions"]["events"] == 1,
                        what="only b's subscription left")
            after = rss_mib()
            # b resubscribed on its own: broadcasts reach it again
            deadline = time.monotonic() + 20
            while b"still here" not in got:
                assert time.monotonic() < deadline, "b receives broadcasts again"
                await a.broadcast(b"still here")
                await asyncio.sleep(0.05)
            report("events-port subscriptions", resets=a.stats()["transport"]["subscription_resets"],
                   held=a.stats()["transport"]["subscriptions"]["events"],
                   rss_before_mib=before, rss_peak_mib=peak, rss_after_mib=after)
            assert peak - before < 64

    run(scenario())


def _zmtp_dealer_greeting() -> bytes:
    """A ZMTP 3.0 NULL greeting plus READY(Socket-Type=DEALER), as raw bytes."""
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
    prop = bytes([11]) + b"Socket-Type" + struct.pack(">I", 6) + b"DEALER"
    body = bytes([5]) + b"READY" + prop
    return greeting + bytes([0x04, len(body)]) + body


def _stall(port: int, announced: int, sent: int) -> socket.socket:
    """A raw TCP connection that announces a frame of ``announced`` bytes and sends ``sent`` of them."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(_zmtp_dealer_greeting())
    s.sendall(bytes([0x02]) + struct.pack(">Q", announced))  # a long message frame
    chunk = b"\x00" * (1 << 20)
    left = sent
    while left > 0:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        left -= n
    return s


def _closed_by_peer(s: socket.socket, timeout: float = 5.0) -> bool:
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_connections_stalling_short_of_a_huge_frame_are_bounded_by_max_message_size() -> None:
    """Issue: 8 connections stalling one byte short of a 64 MiB frame held +512 MiB."""

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            port = int(a.endpoints["coordination"].rsplit(":", 1)[1])
            limit = a.config.limits.control_max_message_size
            before = rss_mib()
            # announcing 64 MiB on a control channel: libzmq refuses it before buffering anything
            oversized = [await asyncio.to_thread(_stall, port, 64 << 20, 1024) for _ in range(8)]
            closed = [await asyncio.to_thread(_closed_by_peer, s) for s in oversized]
            for s in oversized:
                s.close()
            assert all(closed)
            # stalling one byte short of the control limit: each holds at most the limit
            stalls = [await asyncio.to_thread(_stall, port, limit - 16, limit - 17) for _ in range(8)]
            await asyncio.sleep(0.3)  # not asserted on: lets the node's I/O thread take the bytes in
            held = rss_mib()
            for s in stalls:
                s.close()
            report("stalled frames", oversized_refused=sum(closed), stalls=len(stalls),
                   limit_mib=limit / (1 << 20), rss_before_mib=before, rss_with_stalls_mib=held)
            assert held - before < 8 * limit / (1 << 20) + 32

    run(scenario())


def test_a_client_hello_flood_is_rate_limited_and_calls_stay_answered() -> None:
    """Issue: after 6,000 client HELLOs the worst legitimate call took 14.2 s."""
    flood = 6000

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a, Client(NodeConfig.local(name="legit")) as legit:
            a.add_service("echo", lambda x: x)
            server = await legit.connect(a.seed)
            before = rss_mib()
            worst = 0.0
            calls = 0
            with Attacker(a.seed) as att:
                sender = asyncio.ensure_future(asyncio.to_thread(
                    lambda: [att.send(client_hello(os.urandom(16))) for _ in range(flood)]))
                while not sender.done() or calls < 20:
                    started = time.perf_counter()
                    assert await legit.call(server.id, "echo", calls, timeout=30) == calls
                    worst = max(worst, time.perf_counter() - started)
                    calls += 1
                await sender
                answered: list[list[bytes]] = []
                deadline = time.monotonic() + 60
                while len(answered) + a.counters["hello_rate_limited"] < flood:
                    assert time.monotonic() < deadline, "every HELLO answered or counted"
                    answered += await asyncio.to_thread(att.recv_all, 0.1)
            limited = a.counters["hello_rate_limited"]
            report("client HELLO flood", hellos=flood, answered=len(answered), rate_limited=limited,
                   clients=len(a.clients()), legit_calls=calls, worst_call_ms=worst * 1000,
                   rss_before_mib=before, rss_after_mib=rss_mib())
            assert len(answered) + limited == flood
            assert len(a.clients()) <= a.config.limits.max_clients

    run(scenario())


def test_client_calls_beyond_the_rate_are_answered_overloaded() -> None:
    sent = 300

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", limits=LimitsConfig(client_call_rate=50.0))) as a:
            a.add_service("echo", lambda x: x)
            me = os.urandom(16)
            with Attacker(a.seed, routing_id=routing_id_for(me, client=True)) as att:
                att.send(client_hello(me))
                for i in range(sent):
                    att.send(wire.call(me, "echo", b"x", msg_id=i + 1, channel="membership"))
                answers = await _read(att, sent + 1)
            kinds = [wire.decode(f).type for f in answers]
            overloaded = sum(1 for f in answers if wire.decode(f).type == MsgType.ERROR
                             and wire.decode(f).header["ec"] == Overloaded.code)
            assert kinds.count(MsgType.WELCOME) == 1
            assert overloaded == a.counters["client_calls_limited"] > 0
            assert kinds.count(MsgType.REPLY) + overloaded == sent

    run(scenario())


async def _read(att: Attacker, count: int, timeout: float = 30.0) -> list[list[bytes]]:
    """Read ``count`` messages from an attacker socket (off the loop); AssertionError after ``timeout``."""
    out: list[list[bytes]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"{len(out)} of {count} answers"
        out += await asyncio.to_thread(att.recv_all, 0.1)
    return out


def test_clients_that_never_say_bye_expire() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", limits=LimitsConfig(client_expiry=0.5))) as a:
            with Attacker(a.seed) as att:
                for _ in range(5):
                    att.send(client_hello(os.urandom(16)))
                await until(lambda: len(a.clients()) == 5 or a.counters["clients_expired"] > 0, what="clients recorded")
                await until(lambda: a.counters["clients_expired"] == 5, what="stale clients expired")
            assert a.clients() == [] and a.stats()["limits"]["clients"] == 0

    run(scenario())


def test_client_records_are_bounded_by_max_clients() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", limits=LimitsConfig(max_clients=50))) as a:
            with Attacker(a.seed) as att:
                for _ in range(200):
                    att.send(client_hello(os.urandom(16)))
                await until(lambda: a.counters["clients_evicted"] == 150, what="clients beyond the limit evicted")
            assert len(a.clients()) == 50

    run(scenario())


def test_http_rejections_are_exported_on_metrics() -> None:
    """Issue: HTTP rejections were counted but not on /metrics."""

    async def request(port: int, raw: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        data = await reader.read()
        writer.close()
        return data

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            http = HttpEndpoint()
            await http.start()
            http.attach(AdminService(a))
            try:
                assert (await request(http.port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400")
                assert (await request(http.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
                assert (await request(http.port, b"GET /nope HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
                assert (await request(http.port, b"GET /metrics HTTP/1.1\r\n\r\n" + b"")).startswith(b"HTTP/1.1 200")
                body = (await request(http.port, b"GET /metrics HTTP/1.1\r\n\r\n")).decode()
            finally:
                await http.close()
            assert 'fabric_http_rejected_total{reason="bad_request_line"} 1.0' in body
            assert 'fabric_http_rejected_total{reason="method_not_allowed"} 1.0' in body
            assert 'fabric_http_rejected_total{reason="not_found"} 1.0' in body
            assert 'fabric_limit_usage{structure="seq_sources"}' in body

    run(scenario())


def test_descriptors_do_not_grow_with_refused_hellos() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a", limits=LimitsConfig(max_peers=1))) as a:
            fds = open_fds()
            with Attacker(a.seed) as att:
                for i in range(50):
                    eps = {"membership": ["control", f"tcp://127.0.0.1:{20000 + i}", 1]}
                    att.send(wire.hello(os.urandom(16), role=wire.Role.MEMBER, incarnation=1, name="m", endpoints=eps))
                await until(lambda: a.counters["peers_refused"] == 49, what="49 refused")
            assert len(a.peers()) == 1
            assert open_fds() - fds < 20

    run(scenario())
