"""What the abuse tests share: raw attacker sockets (pyzmq, no fabric code on the sending side beyond the
wire encoder), memory and descriptor readings of this process, and polling helpers.

RSS is read from /proc/self/status (VmRSS), descriptors from /proc/self/fd: Linux only, no psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import zmq

from fabric import wire
from fabric.wire import Role
from tests.support import Child


def rss_mib() -> float:
    """This process's resident set size in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """Descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


def routing_id_for(node_id: bytes, *, client: bool = False, lane: int = 0) -> bytes:
    """A routing id shaped like a fabric node's (so the node attributes the connection to ``node_id``)."""
    return wire.routing_id(node_id, lane, role=Role.CLIENT if client else Role.MEMBER, incarnation=1, generation=7)


class Attacker:
    """A raw DEALER (or other socket) connected to a node's endpoint, on its own context."""

    def __init__(self, endpoint: str, kind: int = zmq.DEALER, *, routing_id: bytes | None = None,
                 sndhwm: int = 0) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sock = self.ctx.socket(kind)
        self.sock.set(zmq.LINGER, 2000)
        self.sock.set(zmq.SNDHWM, sndhwm)  # 0: no limit, everything handed over is sent
        self.sock.set(zmq.RCVHWM, 0)
        if routing_id is not None:
            self.sock.set(zmq.ROUTING_ID, routing_id)
        self.sock.connect(endpoint)

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv_all(self, timeout: float = 0.2) -> list[list[bytes]]:
        """Everything that arrives until ``timeout`` seconds pass without a message."""
        out = []
        while self.sock.poll(int(timeout * 1000)):
            out.append(self.sock.recv_multipart())
        return out

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()

    def __enter__(self) -> Attacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def member_hello(node_id: bytes, endpoints: dict[str, list[Any]], *, name: str = "mallory") -> list[bytes]:
    """A member HELLO advertising ``endpoints`` ({channel: [kind, endpoint, lanes]})."""
    return wire.hello(node_id, role=Role.MEMBER, incarnation=1, name=name, endpoints=endpoints)


def client_hello(node_id: bytes) -> list[bytes]:
    """A client HELLO (clients advertise no endpoints)."""
    return wire.hello(node_id, role=Role.CLIENT, incarnation=1, name="client")


def decode_answer(frames: list[bytes]) -> wire.Envelope:
    """A node's answer as read by a DEALER (no routing frame)."""
    return wire.decode(frames)


async def until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate`` on the loop until it holds; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def report(label: str, **figures: Any) -> None:
    """One line of figures in the test output (run pytest with -s to see them)."""
    print(f"[abuse] {label}: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in figures.items()))


@contextlib.asynccontextmanager
async def attacker_process(mode: str, endpoint: str, count: int, size: int = 1,
                           timeout: float = 300.0) -> AsyncIterator[Child]:
    """Run tests/integration/abuse_attacker.py in a child process until it has sent ``count`` messages;
    on exit it closes its socket and ends (stopped by its PID if it does not)."""
    child = Child.python("-m", "tests.integration.abuse_attacker", mode, endpoint, str(count), str(size))
    try:
        await asyncio.to_thread(child.expect, "sent", timeout)
        yield child
    finally:
        with contextlib.suppress(OSError, ValueError):
            child.send_line("")
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(child.proc.wait, 15)
        child.stop()
