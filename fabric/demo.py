"""The one-command tour behind ``foundation-node demo``: a local cluster exercising every channel kind.

The scenario lives here (library) and reports through ``emit``; the CLI only renders. Every wait is
bounded, so the demo always ends by itself; it raises on a failed step, so the CLI exits non-zero.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable

from .config import NodeConfig
from .node import Message, Node

Emit = Callable[[str], None]


async def _until(predicate: Callable[[], bool], timeout: float, what: str, poke: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"demo: {what} did not happen within {timeout:g}s")
        if poke is not None:
            result = poke()
            if asyncio.iscoroutine(result):
                await result
        await asyncio.sleep(0.02)


async def run_demo(emit: Emit, *, names: tuple[str, ...] = ("alpha", "beta", "gamma"), bulk_mib: int = 8) -> None:
    """Start ``names`` as nodes on 127.0.0.1, form a cluster through the first one, exchange messages on
    every channel kind, then let the last node leave while the others notice."""
    t0 = time.monotonic()

    def say(text: str) -> None:
        emit(f"[{time.monotonic() - t0:6.3f}s] {text}")

    nodes = [Node(NodeConfig.local(name=name)) for name in names]
    inbox: dict[str, list[Message]] = {name: [] for name in names}
    for node in nodes:

        def keep(msg: Message, name: str = node.name) -> None:
            inbox[name].append(msg)

        for channel in ("coordination", "data", "events"):
            node.subscribe(channel, keep, inline=True)

        @node.service("greet")
        async def greet(request: str, name: str = node.name) -> str:
            return f"hello {request}, this is {name}"

    # What the first node sees of the cluster, as it happens.
    watcher = nodes[0]
    watcher.on_up(lambda m: say(f"{watcher.name} sees {m.name} up (incarnation {m.incarnation})"))
    watcher.on_down(lambda m, reason: say(f"{watcher.name} sees {m.name} down ({reason})"))

    try:
        for node in nodes:
            await node.start()
            say(f"started {node.name} ({node.id[:8]}) membership={node.seed} data={node.endpoints['data']}")
        seed = nodes[0]
        say(f"{', '.join(n.name for n in nodes[1:])} join through the seed {seed.seed}")
        await asyncio.gather(*(n.join([seed.seed], min_members=len(nodes), timeout=30) for n in nodes))
        await _until(lambda: all(len(n.alive_members()) == len(nodes) for n in nodes), 10, "full membership")
        say(
            "cluster formed: "
            + ", ".join(f"{n.name} sees [{', '.join(sorted(m.name for m in n.alive_members()))}]" for n in nodes)
        )

        # control channel: request/reply and one-way messages (ROUTER/DEALER)
        a, b = nodes[0], nodes[1]
        started = time.perf_counter()
        reply = await a.call(b.id, "greet", a.name)
        say(f"control  : {a.name} called greet on {b.name} -> {reply!r} ({(time.perf_counter() - started) * 1e6:.0f} us)")
        for node in nodes[1:]:
            await node.send(a.id, {"from": node.name, "text": "ready"}, channel="coordination")
        await _until(lambda: len(inbox[a.name]) >= len(nodes) - 1, 10, "control messages")
        for msg in inbox[a.name]:
            say(f"control  : {a.name} got {msg.value()} on lane {msg.lane}")

        # bulk channel: large payloads over PUSH/PULL lanes
        src, dst = nodes[-2], nodes[-1]
        blob = os.urandom(bulk_mib * 1024 * 1024)
        started = time.perf_counter()
        for lane_key in range(4):
            await src.send(dst.id, blob[lane_key::4], channel="data", key=lane_key)
        await _until(lambda: sum(m.channel == "data" for m in inbox[dst.name]) >= 4, 30, "bulk transfer")
        seconds = time.perf_counter() - started
        parts = sorted((m for m in inbox[dst.name] if m.channel == "data"), key=lambda m: m.lane)
        ok = all(hashlib.sha256(bytes(m.payload)).digest() == hashlib.sha256(blob[m.lane :: 4]).digest() for m in parts)
        say(
            f"bulk     : {src.name} -> {dst.name}: {bulk_mib} MiB over lanes {[m.lane for m in parts]} "
            f"in {seconds * 1000:.0f} ms ({bulk_mib / seconds:.0f} MiB/s), checksums {'match' if ok else 'DIFFER'}"
        )
        if not ok:
            raise RuntimeError("demo: bulk payload corrupted")

        # broadcast channel: PUB/SUB fan-out (subscribers join asynchronously, so publish until heard)
        def heard() -> bool:
            return all(any(m.channel == "events" for m in inbox[n.name]) for n in nodes[1:])

        await _until(heard, 10, "broadcast", poke=lambda: a.broadcast({"announcement": "hello cluster"}, topic=b"news"))
        for node in nodes[1:]:
            msg = next(m for m in inbox[node.name] if m.channel == "events")
            say(f"broadcast: {node.name} got {msg.value()} (topic {msg.topic.decode()!r}) from {a.name}")

        leaving = nodes[-1]
        say(f"{leaving.name} leaves the cluster")
        await leaving.stop()
        await _until(lambda: all(len(n.alive_members()) == len(nodes) - 1 for n in nodes[:-1]), 10, "leave")
        say(
            f"{leaving.name} left; "
            + ", ".join(f"{n.name} sees [{', '.join(sorted(m.name for m in n.alive_members()))}]" for n in nodes[:-1])
        )
        bad = sum(sum(n.errors.values()) for n in nodes)
        say(f"done: {sum(len(v) for v in inbox.values())} messages delivered, {bad} bad inputs")
    finally:
        for node in nodes:
            await node.stop()
