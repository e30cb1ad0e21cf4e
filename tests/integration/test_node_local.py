"""Real ZeroMQ sockets in one process: links, leave, lanes, queue-full policies, blocking facade."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import msgpack
import pytest
import zmq

from fabric import BlockingNode, ChannelConfig, ChannelKind, Message, Node, NodeConfig, OnFull, Overloaded
from fabric.config import DEFAULT_CHANNELS


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


def test_leave_is_seen_at_once_and_a_peer_can_relink() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a:
            b = Node(NodeConfig.local(name="b"))
            await b.start()
            events: list[tuple[str, str]] = []
            a.on_peer(lambda kind, info: events.append((kind, info.name)))
            await b.connect(a.seed)
            await wait_for(lambda: len(a.peers()) == 1)
            # connecting again to an already linked seed answers over the existing link
            again = await b.connect(a.seed)
            assert again.id == a.id and len(b.peers()) == 1
            await b.stop()
            await wait_for(lambda: not a.peers())
            assert events == [("up", "b"), ("down", "b")]
            c = Node(NodeConfig.local(name="c"))
            async with c:
                await c.connect(a.seed)
                await wait_for(lambda: [p.name for p in a.peers()] == ["c"])

    run(scenario())


def test_one_key_stays_ordered_and_keys_spread_over_lanes() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a, Node(NodeConfig.local(name="b")) as b:
            got: list[Message] = []
            b.subscribe("data", got.append, inline=True)
            peer = await a.connect(b.seed)
            for i in range(400):
                await a.send(peer.id, msgpack.packb(i), channel="data", key=f"key-{i % 8}")
            await wait_for(lambda: len(got) == 400)
            per_key: dict[int, list[int]] = {}
            for msg in got:
                i = msgpack.unpackb(msg.payload)
                per_key.setdefault(i % 8, []).append(i)
            assert all(v == sorted(v) for v in per_key.values())
            lanes = {msg.lane for msg in got}
            assert len(lanes) > 1 and lanes <= {0, 1, 2, 3}

    run(scenario())


class _SilentPeer:
    """A raw ROUTER that completes the handshake and then never reads: its queue fills up."""

    def __init__(self) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.set(zmq.RCVHWM, 1)
        self.sock.set(zmq.RCVBUF, 4096)
        self.sock.set(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.get(zmq.LAST_ENDPOINT).decode()
        self.id = bytes(range(16))
        self.thread = threading.Thread(target=self._answer_hello, daemon=True)
        self.thread.start()

    def _answer_hello(self) -> None:
        if not self.sock.poll(10000):
            return
        route, _head = self.sock.recv_multipart()
        ep = {"membership": ["control", self.endpoint, 1], "coordination": ["control", self.endpoint, 1]}
        head = b"\xaa\xfb\x01\x02" + msgpack.packb({"s": self.id, "v": 1, "in": 1, "nm": "silent", "ep": ep})
        self.sock.send_multipart([route, head])

    def close(self) -> None:
        self.thread.join(10)
        self.sock.close(0)


@pytest.mark.parametrize("policy", [OnFull.DROP, OnFull.RAISE, OnFull.WAIT])
def test_queue_full_policies(policy: OnFull) -> None:
    channels = tuple(
        ChannelConfig("coordination", ChannelKind.CONTROL, sndhwm=1, rcvhwm=1, batching=False, on_full=policy, send_timeout=0.2)
        if c.name == "coordination"
        else c
        for c in DEFAULT_CHANNELS
    )
    silent = _SilentPeer()
    try:

        async def scenario() -> None:
            async with Node(NodeConfig.local(name="a", channels=channels)) as a:
                peer = await a.connect(silent.endpoint)
                blob = b"x" * 65536
                outcomes: list[Any] = []
                for _ in range(2000):  # bounded: kernel buffers hold at most a few MiB
                    try:
                        ok = await a.send(peer.id, blob)
                    except Overloaded as exc:
                        outcomes.append(exc)
                        break
                    if not ok:
                        outcomes.append(False)
                        break
                assert outcomes, "the queue never filled"
                if policy is OnFull.DROP:
                    assert outcomes == [False] and a.counters["dropped_full"] == 1
                else:
                    assert isinstance(outcomes[0], Overloaded)
                    assert ("stayed full" in str(outcomes[0])) == (policy is OnFull.WAIT)

        run(scenario())
    finally:
        silent.close()


def test_blocking_node_is_safe_from_many_threads() -> None:
    with BlockingNode(NodeConfig.local(name="server")) as server, BlockingNode(NodeConfig.local(name="caller")) as caller:
        server.add_service("double", lambda n: n * 2)
        peer = caller.connect(server.seed)
        results: list[int] = []
        lock = threading.Lock()

        def worker(base: int) -> None:
            for i in range(50):
                value = caller.call(peer.id, "double", base + i)
                with lock:
                    results.append(value)

        threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(results) == sorted(2 * (k * 1000 + i) for k in range(8) for i in range(50))


def test_slow_handlers_do_not_delay_liveness_traffic() -> None:
    async def scenario() -> None:
        async with Node(NodeConfig.local(name="a")) as a, Node(NodeConfig.local(name="b")) as b:
            release = threading.Event()
            started = threading.Event()

            def slow(_msg: Message) -> None:  # a blocking handler: runs on its worker thread
                started.set()
                release.wait(30)

            @b.service("slow_sync")
            def slow_sync(_req: object) -> str:
                release.wait(30)
                return "ok"

            b.subscribe("coordination", slow)
            peer = await a.connect(b.seed)
            await a.send(peer.id, b"block")
            pending = asyncio.create_task(a.call(peer.id, "slow_sync", timeout=30))
            await wait_for(started.is_set)
            # while both handlers block, the membership channel still answers pings
            rtts = [await a.ping(peer.id, timeout=2) for _ in range(20)]
            assert len(rtts) == 20
            release.set()
            assert await pending == "ok"

    run(scenario())


def test_client_records_stay_bounded_when_clients_vanish_without_bye() -> None:
    from fabric import LimitsConfig, wire

    async def scenario() -> None:
        async with Node(NodeConfig.local(name="server", limits=LimitsConfig(max_clients=10))) as server:
            ctx = zmq.Context.instance()
            socks = []
            try:
                for _ in range(30):  # 30 clients say HELLO and never BYE
                    sock = ctx.socket(zmq.DEALER)
                    sock.set(zmq.LINGER, 0)
                    sock.connect(server.seed)
                    sock.send_multipart(wire.hello(wire.new_node_id(), role=wire.Role.CLIENT, incarnation=1))
                    socks.append(sock)
                await wait_for(lambda: server.counters["received"] >= 30)
                assert len(server.clients()) == 10
            finally:
                for sock in socks:
                    sock.close()

    run(scenario())
