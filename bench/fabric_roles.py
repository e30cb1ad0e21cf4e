"""Fabric side of the benchmarks: the same workloads as :mod:`bench.raw_roles`, through ``fabric.Node``.

Each role runs one node in its own process. Server roles start a node (binding every channel on
``tcp://127.0.0.1`` ephemeral ports) and print ``ready`` with its membership endpoint (the seed address);
client roles start their own node and ``connect`` to it. Throughput counts messages *delivered to the
subscribed handler*; latency times ``await node.call(...)`` from the caller's side.

Arguments (JSON) as in :mod:`bench.raw_roles`, plus ``batching`` (the node-wide switch), ``handler``
(``inline`` — a plain function run on the loop, the default here —, ``thread`` — a plain function on the
subscription's worker thread, the fabric's default for plain functions — or ``async``), ``keys`` (bulk:
partition keys used round-robin; 1 key = 1 lane), and for experiments ``data_hwm``, ``recv_budget``, ``io_thread_nice`` and
``io_threads`` (see :func:`_config`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

from bench.harness import Control, LoopLag, RateWindow, latency_summary
from fabric import Message, Node, NodeConfig, Overloaded, SecurityConfig
from fabric.security import load_public_key


class _Counter:
    """A subscription handler counting deliveries and bytes, with an optional measuring window.

    The window is observed *inside the handler* (every ``mask + 1`` messages), exactly like the raw
    receive loops, so its edges do not depend on when the event loop gets round to a timer: a node that
    is busy delivering a backlog may not run timers for a long while. ``first`` and ``done`` are set
    thread-safely (handlers run on the loop, or on a worker thread in ``thread`` mode).
    """

    __slots__ = ("n", "bytes", "first", "done", "t_first", "t_last", "window", "mask", "_loop")

    def __init__(self, window: RateWindow | None = None, mask: int = 0) -> None:
        self.n = 0
        self.bytes = 0
        self.first = asyncio.Event()
        self.done = asyncio.Event()
        self.t_first = 0.0
        self.t_last = 0.0
        self.window = window
        self.mask = mask
        self._loop = asyncio.get_running_loop()

    def __call__(self, msg: Message) -> None:
        self.n += 1
        self.bytes += len(msg.payload)
        window = self.window
        if self.n == 1:
            self.t_first = time.perf_counter()
            if window is not None:
                window.start(self.t_first)
            self._loop.call_soon_threadsafe(self.first.set)
        elif window is not None and not self.n & self.mask and not window.done:
            if window.observe(self.n, time.perf_counter()):
                self._loop.call_soon_threadsafe(self.done.set)

    def mark(self, msg: Message) -> None:
        """Like ``__call__`` but also stamps the last arrival (for rates measured until stop)."""
        self(msg)
        self.t_last = time.perf_counter()


def _config(name: str, args: dict[str, Any]) -> NodeConfig:
    """The default node config; ``batching`` and, for experiments, ``data_hwm`` (both of the data
    channel's HWMs; ``data_sndhwm`` / ``data_rcvhwm`` set one), ``recv_budget`` (transport) and
    ``io_threads=1`` (every channel on one libzmq I/O thread) and ``io_thread_nice`` (a list, see
    ``TransportConfig.io_thread_nice``) may override it."""
    config = NodeConfig(name=name, batching=bool(args.get("batching", True)))
    if args.get("data_hwm") or args.get("data_sndhwm") or args.get("data_rcvhwm"):
        data = config.channel("data")
        sndhwm = int(args.get("data_sndhwm") or args.get("data_hwm") or data.sndhwm)
        rcvhwm = int(args.get("data_rcvhwm") or args.get("data_hwm") or data.rcvhwm)
        channels = tuple(
            dataclasses.replace(c, sndhwm=sndhwm, rcvhwm=rcvhwm) if c.name == "data" else c for c in config.channels
        )
        config = config.replace(channels=channels)
    if args.get("recv_budget"):
        transport = dataclasses.replace(config.transport, recv_budget=int(args["recv_budget"]))
        config = config.replace(transport=transport)
    if args.get("io_thread_nice") is not None:
        transport = dataclasses.replace(config.transport, io_thread_nice=tuple(int(n) for n in args["io_thread_nice"]))
        config = config.replace(transport=transport)
    if args.get("io_threads") == 1:
        channels = tuple(dataclasses.replace(c, io_thread=0) for c in config.channels)
        transport = dataclasses.replace(config.transport, io_threads=1)
        config = config.replace(channels=channels, transport=transport)
    if args.get("curve_dir"):  # secure mode: DIR/<name>/ holds this role's keys, DIR/trust.toml trusts all
        config = config.replace(security=SecurityConfig(keys=f"{args['curve_dir']}/{name}",
                                                        trust=f"{args['curve_dir']}/trust.toml"))
    return config


_SERVER_OF = {"bench-tx": "bench-rx", "bench-client": "bench-server"}
"""The role each connecting role talks to (secure mode: its seed carries that role's public key)."""


async def _start(name: str, args: dict[str, Any]) -> Node:
    node = Node(_config(name, args))
    await node.start()
    return node


async def _until_stopped(ctl: Control, node: Node, *tasks: asyncio.Task[Any]) -> None:
    """Wait for the parent's stop, cancel ``tasks``, stop the node."""
    await ctl.wait_stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await node.stop()


async def _connect(name: str, args: dict[str, Any]) -> tuple[Node, str]:
    node = await _start(name, args)
    seed = args["endpoints"]["membership"]
    if args.get("curve_dir"):
        seed += "#" + load_public_key(f"{args['curve_dir']}/{_SERVER_OF[name]}/node.pub").decode()
    peer = await node.connect(seed)
    return node, peer.id


# -- a/b. one-way throughput ---------------------------------------------------------------------------


async def _throughput_rx(ctl: Control, args: dict[str, Any], channel: str) -> None:
    node = await _start("bench-rx", args)
    window = RateWindow(args["warmup"], args["duration"])
    counter = _Counter(window, mask=15 if channel != "data" else 0)
    mode = args.get("handler", "inline")
    if mode == "async":

        async def handler(msg: Message) -> None:
            counter(msg)

        node.subscribe(channel, handler)
    else:
        # "inline": a plain function run on the loop; "thread": the default for plain functions, run on
        # the subscription's own worker thread.
        node.subscribe(channel, counter, inline=mode == "inline")
    ctl.emit("ready", endpoints={"membership": node.endpoints["membership"]})
    await asyncio.wait_for(counter.first.wait(), args["first_timeout"])
    lag = LoopLag()
    lag.start()
    await asyncio.wait_for(counter.done.wait(), args["warmup"] + args["duration"] + 60.0)
    count, elapsed = window.count, window.elapsed
    value = count / elapsed if channel != "data" else (count * args["size"] / (1 << 20)) / elapsed
    ctl.emit("result", value=value, count=count, elapsed=elapsed, loop_lag_ms=lag.stop())
    await _until_stopped(ctl, node)


async def _throughput_tx(ctl: Control, args: dict[str, Any], channel: str) -> None:
    node, peer = await _connect("bench-tx", args)
    payload = os.urandom(args["size"])
    keys = [f"k{i}".encode() for i in range(int(args.get("keys", 1)))] if channel == "data" else [None]

    async def pump() -> None:
        # The stop flag is checked per message as well as cancelling the task: on Python 3.11 a
        # cancel() that races with the send queue gaining room is swallowed inside ``await send``.
        send = node.send
        stop = ctl.stop
        while not stop.is_set():
            for key in keys:
                try:
                    await send(peer, payload, channel=channel, key=key)
                except Overloaded:  # the queue stayed full for send_timeout: count it, keep the load on
                    overloaded[0] += 1

    overloaded = [0]
    await _until_stopped(ctl, node, asyncio.create_task(pump()))
    ctl.emit("final", overloaded=overloaded[0])


def control_rx(ctl: Control, args: dict[str, Any]) -> None:
    """Node subscribed to ``coordination``; reports msgs/s delivered to the handler."""
    asyncio.run(_throughput_rx(ctl, args, "coordination"))


def control_tx(ctl: Control, args: dict[str, Any]) -> None:
    """Node sending ``size``-byte messages on ``coordination`` as fast as ``send`` allows."""
    asyncio.run(_throughput_tx(ctl, args, "coordination"))


def bulk_rx(ctl: Control, args: dict[str, Any]) -> None:
    """Node subscribed to ``data``; reports MiB/s delivered to the handler."""
    asyncio.run(_throughput_rx(ctl, args, "data"))


def bulk_tx(ctl: Control, args: dict[str, Any]) -> None:
    """Node sending ``size``-byte messages on ``data`` under one key (one lane, like one PUSH socket)."""
    asyncio.run(_throughput_tx(ctl, args, "data"))


# -- c/d. call round trip (optionally behind a bulk stream) --------------------------------------------


async def _rtt_server(ctl: Control, args: dict[str, Any]) -> None:
    node = await _start("bench-server", args)

    @node.service("echo")
    async def echo(request: bytes) -> bytes:
        return request

    counter = _Counter()
    node.subscribe("data", counter.mark, inline=True)
    ctl.emit("ready", endpoints={"membership": node.endpoints["membership"]})
    await _until_stopped(ctl, node)
    span = counter.t_last - counter.t_first
    if counter.n > 1 and span > 0:
        ctl.emit("final", bulk_mib_s=(counter.bytes / (1 << 20)) / span)


async def _rtt_client(ctl: Control, args: dict[str, Any]) -> None:
    node, peer = await _connect("bench-client", args)
    payload = os.urandom(args["size"])
    tasks: list[asyncio.Task[Any]] = []
    overloaded = [0]
    if args.get("bulk_size"):
        bulk = os.urandom(args["bulk_size"])

        async def stream() -> None:
            while not ctl.stop.is_set():  # see _throughput_tx on why the flag as well as cancel()
                try:
                    await node.send(peer, bulk, channel="data", key=b"bulk")
                except Overloaded:
                    overloaded[0] += 1

        tasks.append(asyncio.create_task(stream()))
    call = node.call
    await call(peer, "echo", payload, timeout=args["first_timeout"])
    clock = time.perf_counter_ns
    end_warmup = clock() + int(args["warmup"] * 1e9)
    while clock() < end_warmup:
        await call(peer, "echo", payload, timeout=10.0)
    samples: list[int] = []
    end = clock() + int(args["duration"] * 1e9)
    while True:
        t0 = clock()
        await call(peer, "echo", payload, timeout=10.0)
        t1 = clock()
        samples.append(t1 - t0)
        if t1 >= end:
            break
    ctl.emit("result", **latency_summary(samples), bulk_overloaded=overloaded[0])
    await _until_stopped(ctl, node, *tasks)


def rtt_server(ctl: Control, args: dict[str, Any]) -> None:
    """Node with an ``echo`` service (and a ``data`` subscriber counting bulk for the head-of-line case)."""
    asyncio.run(_rtt_server(ctl, args))


def rtt_client(ctl: Control, args: dict[str, Any]) -> None:
    """Node calling ``echo``; with ``bulk_size`` a task streams that many bytes per message on ``data``."""
    asyncio.run(_rtt_client(ctl, args))


ROLES = {
    "fabric_control_rx": control_rx,
    "fabric_control_tx": control_tx,
    "fabric_bulk_rx": bulk_rx,
    "fabric_bulk_tx": bulk_tx,
    "fabric_rtt_server": rtt_server,
    "fabric_rtt_client": rtt_client,
    "fabric_hol_server": rtt_server,
    "fabric_hol_client": rtt_client,
}
"""Role name -> function, looked up by :mod:`bench.worker`."""

