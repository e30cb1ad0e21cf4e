"""Real ZeroMQ between OS processes: channels, calls and their errors, clients (tcp:// and ipc://).

The node under test runs in a child process (tests/integration/node_child.py); the test's own node runs
in this process. Every wait is bounded; children are stopped by their own PID.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import zmq

from fabric import (
    BadRequest,
    BlockingClient,
    CallTimeout,
    Message,
    Node,
    NodeConfig,
    NoSuchService,
    Overloaded,
    RemoteHandlerError,
    Unreachable,
    VersionMismatch,
    wire,
)
from tests.support import Child, short_tmpdir

CHILD = os.path.join(os.path.dirname(__file__), "node_child.py")


class NodeChild:
    """A child node process speaking JSON lines."""

    def __init__(self, *args: str) -> None:
        self.child = Child.python(CHILD, *args)
        self.backlog: list[dict[str, Any]] = []  # lines read but not yet matched by expect()
        self.ready = self.expect("ready", timeout=30)

    def expect(self, event: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        """Return the first line (earlier unmatched ones included) with ``event`` and the ``match`` fields."""
        import time

        def matches(data: dict[str, Any]) -> bool:
            return data.get("event") == event and all(data.get(k) == v for k, v in match.items())

        for i, data in enumerate(self.backlog):
            if matches(data):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{event} {match} not seen from {self.child.args}")
            data = json.loads(self.child.readline(remaining))
            if data.get("event") == "error":
                raise AssertionError(f"child error: {data}")
            if matches(data):
                return data
            self.backlog.append(data)

    def command(self, line: str) -> None:
        self.child.send_line(line)

    @property
    def seed(self) -> str:
        return str(self.ready["endpoints"]["membership"])

    def stop(self) -> None:
        """Ask the node to stop gracefully (it leaves the cluster); SIGTERM only if it has not exited
        within 10 s."""
        import subprocess

        try:
            self.child.send_line("quit")
            self.child.proc.wait(10)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            pass
        self.child.stop()


@contextmanager
def node_child(*args: str) -> Iterator[NodeChild]:
    child = NodeChild(*args)
    try:
        yield child
    finally:
        child.stop()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


@contextmanager
def binds() -> Iterator[list[str]]:
    with short_tmpdir() as d:
        os.makedirs(f"{d}/a")
        os.makedirs(f"{d}/b")
        yield [f"ipc://{d}/a", f"ipc://{d}/b"]


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_all_channel_kinds_between_processes(transport: str) -> None:
    with binds() as ipc_binds:
        here_bind, child_bind = ("tcp://127.0.0.1", "tcp://127.0.0.1") if transport == "tcp" else ipc_binds
        with node_child("--name", "remote", "--bind", child_bind) as remote:
            assert remote.seed.startswith(transport)

            async def scenario() -> None:
                node = Node(NodeConfig.local(name="here", bind=here_bind))
                received: dict[str, list[Message]] = {"coordination": [], "data": []}
                arrived = asyncio.Event()

                def keep(msg: Message) -> None:
                    received[msg.channel].append(Message(msg.channel, msg.sender, bytes(msg.payload), msg.lane))
                    arrived.set()

                node.subscribe("coordination", keep, inline=True)
                node.subscribe("data", keep, inline=True)
                async with node:
                    peer = await node.connect(remote.seed)
                    assert peer.name == "remote" and peer.endpoints["data"].startswith(transport)
                    # control: 256 B, ordered
                    small = [os.urandom(256) for _ in range(50)]
                    for payload in small:
                        await node.send(peer.id, payload, channel="coordination")
                    for payload in small:
                        got = await asyncio.to_thread(remote.expect, "got", channel="coordination")
                        assert got["sha"] == hashlib.sha256(payload).hexdigest() and got["size"] == 256
                    # bulk: 16 MiB intact
                    big = os.urandom(16 * 1024 * 1024)
                    await node.send(peer.id, big, channel="data", key=b"k")
                    got = await asyncio.to_thread(remote.expect, "got", 60, channel="data")
                    assert got["size"] == len(big) and got["sha"] == hashlib.sha256(big).hexdigest()
                    # broadcast: the remote's SUB joins our PUB asynchronously, so publish until it sees one
                    seen = threading.Event()

                    def watch() -> dict[str, Any]:
                        data = remote.expect("got", 30, channel="events")
                        seen.set()
                        return data

                    watcher = asyncio.create_task(asyncio.to_thread(watch))
                    for _ in range(300):
                        await node.broadcast(b"tick", topic=b"t.")
                        if seen.is_set():
                            break
                        await asyncio.sleep(0.05)
                    got = await watcher
                    assert got["topic"] == "t." and got["sha"] == hashlib.sha256(b"tick").hexdigest()
                    # and the other way: remote -> here, 16 MiB on bulk and a control message
                    remote.command(f"send {node.id} data {16 * 1024 * 1024}")
                    sent = await asyncio.to_thread(remote.expect, "sent", 60)
                    remote.command(f"send {node.id} coordination 256")
                    sent_small = await asyncio.to_thread(remote.expect, "sent")
                    for _ in range(600):
                        if received["data"] and received["coordination"]:
                            break
                        arrived.clear()
                        try:
                            await asyncio.wait_for(arrived.wait(), 0.1)
                        except TimeoutError:
                            pass
                    assert hashlib.sha256(received["data"][0].payload).hexdigest() == sent["sha"]
                    assert hashlib.sha256(received["coordination"][0].payload).hexdigest() == sent_small["sha"]
                    assert node.stats()["errors"] == {}

            run(scenario())


def test_every_call_error_is_raised_as_documented() -> None:
    with node_child("--name", "remote", "--max-concurrent", "1") as remote:

        async def scenario() -> None:
            async with Node(NodeConfig.local(name="here")) as node:
                peer = await node.connect(remote.seed)
                assert await node.call(peer.id, "echo", {"a": [1, 2]}) == {"a": [1, 2]}
                assert await node.call(peer.id, "echo_sync", b"raw") == b"raw"
                with pytest.raises(NoSuchService):
                    await node.call(peer.id, "nope")
                with pytest.raises(RemoteHandlerError) as info:
                    await node.call(peer.id, "boom", 7)
                assert info.value.remote_type == "ValueError" and "boom: 7" in info.value.remote_message
                # max-concurrent 1: while one slow call runs, the next is shed with OVERLOADED
                first = asyncio.create_task(node.call(peer.id, "slow", 1.0, timeout=10))
                await asyncio.sleep(0)
                with pytest.raises(Overloaded):
                    for _ in range(100):  # the first request may not have reached the remote yet
                        await node.call(peer.id, "slow", 0.0, timeout=10)
                        await asyncio.sleep(0.02)
                assert await first == "done"
                with pytest.raises(Unreachable):
                    await node.call(wire.node_id_str(wire.new_node_id()), "echo")
                with pytest.raises(Unreachable):
                    await node.connect("tcp://127.0.0.1:1", timeout=0.3)
                # BAD_REQUEST: a request whose msgpack payload is invalid
                import fabric.node.calls as node_module  # where calls encode their requests

                real = node_module.encode_value
                node_module.encode_value = lambda value: (b"\xc1", wire.ContentType.MSGPACK)
                try:
                    with pytest.raises(BadRequest):
                        await node.call(peer.id, "echo", "x")
                finally:
                    node_module.encode_value = real
                # TIMEOUT (last of the calls: the slow handler keeps the only request slot busy)
                with pytest.raises(CallTimeout):
                    await node.call(peer.id, "slow", 1.0, timeout=0.2)
                # VERSION: a HELLO offering only a version the remote does not speak
                node._hello = lambda: wire.hello(  # type: ignore[method-assign]
                    node._id_bytes, role=wire.Role.MEMBER, incarnation=1, min_version=9, max_version=9
                )
                with pytest.raises(VersionMismatch) as vinfo:
                    await node.connect(remote.seed)
                assert "9..9" in str(vinfo.value)

        run(scenario())


def test_a_client_role_peer_calls_and_subscribes_without_becoming_a_member() -> None:
    with node_child("--name", "server") as server:
        with BlockingClient() as client:
            info = client.connect(server.seed)
            assert info.name == "server"
            assert client.call(info.id, "echo", {"q": 1}) == {"q": 1}
            got = threading.Event()
            client.subscribe("events", lambda msg: got.set())
            for _ in range(200):
                server.command("broadcast 64")
                server.expect("broadcast")
                if got.wait(0.05):
                    break
            assert got.is_set()
            server.command("stats")
            stats = server.expect("stats")
            assert stats["peers"] == [] and stats["clients"] == [client.id]


def test_a_raw_zeromq_dealer_speaks_the_documented_protocol() -> None:
    """A peer built from docs/protocol.md alone (pyzmq + msgpack, no fabric code on its side)."""
    import msgpack

    with node_child("--name", "server") as server:
        ctx = zmq.Context.instance()
        me = os.urandom(16)
        sock = ctx.socket(zmq.DEALER)
        sock.set(zmq.ROUTING_ID, b"\x02" + me + b"\x00")
        sock.set(zmq.LINGER, 0)
        sock.set(zmq.RCVTIMEO, 10000)
        try:
            sock.connect(server.seed)
            head = b"\xaa\xfb\x01\x01" + msgpack.packb({"s": me, "vn": 1, "vx": 1, "ro": 1, "in": 1}, use_bin_type=True)
            sock.send_multipart([head])
            welcome = sock.recv_multipart()
            assert welcome[0][:4] == b"\xaa\xfb\x01\x02"
            info = msgpack.unpackb(welcome[0][4:], raw=False)
            coord = info["ep"]["coordination"][1]
            sock2 = ctx.socket(zmq.DEALER)
            sock2.set(zmq.ROUTING_ID, b"\x02" + me + b"\x00")
            sock2.set(zmq.LINGER, 0)
            sock2.set(zmq.RCVTIMEO, 10000)
            try:
                sock2.connect(coord)
                call = b"\xaa\xfb\x01\x05" + msgpack.packb(
                    {"s": me, "c": "coordination", "sv": "echo", "i": 1, "ct": 1}, use_bin_type=True
                )
                sock2.send_multipart([call, msgpack.packb("hi")])
                reply_head, body = sock2.recv_multipart()
                assert reply_head[3] == 6 and msgpack.unpackb(reply_head[4:])["r"] == 1
                assert msgpack.unpackb(body) == "hi"
            finally:
                sock2.close()
        finally:
            sock.close()
