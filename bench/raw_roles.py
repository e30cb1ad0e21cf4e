"""Raw pyzmq baselines: what a hand-written application does with the same socket types and sizes.

Each role runs in its own process (see :mod:`bench.harness`). Server roles bind ``tcp://127.0.0.1`` on
ephemeral ports and print ``ready``; client roles connect to the endpoints they are given. Throughput is
counted where messages are *delivered* (the receiving loop), latency where calls are made (the caller).

Common arguments (JSON): ``warmup`` and ``duration`` (seconds, the measuring window), ``size`` (payload
bytes), ``first_timeout`` (seconds to wait for the first message), ``endpoints`` (clients only).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import msgpack
import zmq
import zmq.asyncio

from bench.harness import Control, LoopLag, RateWindow, latency_summary

_LOOPBACK = "tcp://127.0.0.1"
_SEND_TIMEOUT_MS = 100
"""Blocking sends give up after this long so a sender notices ``stop`` when its peer no longer reads."""


def _bind(sock: zmq.Socket[Any]) -> str:
    port = sock.bind_to_random_port(_LOOPBACK)
    return f"{_LOOPBACK}:{port}"


def _header(seq: int, source: bytes) -> bytes:
    """A small msgpack header like a hand-written app (or the fabric) puts in front of each payload."""
    header: bytes = msgpack.packb({"t": 1, "s": source, "c": "coordination", "q": seq})
    return header


# -- a. control channel throughput: synchronous DEALER -> ROUTER with a msgpack header ------------------


def sync_control_rx(ctl: Control, args: dict[str, Any]) -> None:
    """ROUTER receiver: decode each header, count deliveries in the window, report msgs/s."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.rcvtimeo = int(args["first_timeout"] * 1000)
    ctl.emit("ready", endpoints={"control": _bind(router)})
    unpackb = msgpack.unpackb
    recv = router.recv_multipart
    frames = recv()  # the first delivery starts the warm-up clock (raises zmq.Again on timeout)
    unpackb(frames[1])
    window = RateWindow(args["warmup"], args["duration"])
    clock = time.perf_counter
    window.start(clock())
    count = 1
    while True:
        frames = recv()
        unpackb(frames[1])
        count += 1
        if not count & 15 and window.observe(count, clock()):
            break
    ctl.emit("result", value=window.count / window.elapsed, count=window.count, elapsed=window.elapsed)
    ctl.stop.wait()
    router.close()
    ctx.term()


def sync_control_tx(ctl: Control, args: dict[str, Any]) -> None:
    """DEALER sender: msgpack header + payload per message, as fast as the high-water mark allows."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.sndtimeo = _SEND_TIMEOUT_MS
    dealer.connect(args["endpoints"]["control"])
    payload = os.urandom(args["size"])
    source = os.urandom(16)
    send = dealer.send_multipart
    seq = 0
    while not ctl.stop.is_set():
        try:
            for _ in range(256):
                send([_header(seq, source), payload])
                seq += 1
        except zmq.Again:
            continue
    dealer.close()
    ctx.term()


# -- a. control channel throughput: zmq.asyncio DEALER -> ROUTER (await per message) -------------------


async def _async_control_rx(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    ctl.emit("ready", endpoints={"control": _bind(router)})
    unpackb = msgpack.unpackb
    frames = await asyncio.wait_for(router.recv_multipart(), args["first_timeout"])
    unpackb(frames[1])
    lag = LoopLag()
    lag.start()
    window = RateWindow(args["warmup"], args["duration"])
    clock = time.perf_counter
    window.start(clock())
    count = 1
    while True:
        frames = await router.recv_multipart()
        unpackb(frames[1])
        count += 1
        if not count & 15 and window.observe(count, clock()):
            break
    ctl.emit(
        "result",
        value=window.count / window.elapsed,
        count=window.count,
        elapsed=window.elapsed,
        loop_lag_ms=lag.stop(),
    )
    await ctl.wait_stop()
    router.close()
    ctx.term()


async def _async_control_tx(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(args["endpoints"]["control"])
    payload = os.urandom(args["size"])
    source = os.urandom(16)

    async def pump() -> None:
        seq = 0
        while True:
            await dealer.send_multipart([_header(seq, source), payload])
            seq += 1

    task = asyncio.create_task(pump())
    await ctl.wait_stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    dealer.close()
    ctx.term()


def async_control_rx(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio ROUTER receiver (await recv per message); reports msgs/s."""
    asyncio.run(_async_control_rx(ctl, args))


def async_control_tx(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio DEALER sender (await send per message)."""
    asyncio.run(_async_control_tx(ctl, args))


# -- b. bulk throughput: PUSH -> PULL ------------------------------------------------------------------


def _malloc_like_fabric(args: dict[str, Any]) -> None:
    """With ``malloc_like_fabric``: the C allocator settings a fabric node applies to its process
    (``TransportConfig.malloc_trim_threshold``), so a comparison row can show the fabric's own overhead
    apart from what that process-wide setting buys. The default raw rows leave the allocator alone."""
    if args.get("malloc_like_fabric"):
        from fabric.config import TransportConfig
        from fabric.transport.zmq import tune_malloc

        tune_malloc(TransportConfig().malloc_trim_threshold)


def bulk_rx(ctl: Control, args: dict[str, Any]) -> None:
    """PULL receiver; reports MiB/s. ``zero_copy`` receives frames instead of copying into bytes."""
    _malloc_like_fabric(args)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.rcvtimeo = int(args["first_timeout"] * 1000)
    ctl.emit("ready", endpoints={"bulk": _bind(pull)})
    size = 0
    copy = not args.get("zero_copy", False)
    frame = pull.recv(copy=copy)
    while pull.rcvmore:
        frame = pull.recv(copy=copy)
    window = RateWindow(args["warmup"], args["duration"])
    clock = time.perf_counter
    window.start(clock())
    count = 1
    while True:
        frame = pull.recv(copy=copy)
        if args.get("header"):  # the payload is the last frame
            while frame.more if not copy else pull.rcvmore:
                frame = pull.recv(copy=copy)
        size = len(frame)
        count += 1
        if window.observe(count, clock()):
            break
    mib = window.count * size / (1 << 20)
    ctl.emit("result", value=mib / window.elapsed, count=window.count, elapsed=window.elapsed)
    ctl.stop.wait()
    pull.close()
    ctx.term()


def bulk_tx(ctl: Control, args: dict[str, Any]) -> None:
    """PUSH sender: the same ``size``-byte buffer as fast as the high-water mark allows.

    With ``zero_copy`` libzmq sends straight from the Python buffer (``copy=False``); without it pyzmq
    copies each message first (its default, what most applications do). With ``header`` (a byte count)
    each message is a small header frame and then the payload, the way a fabric bulk message is framed
    (its head frame for this benchmark is 40 bytes).
    """
    _malloc_like_fabric(args)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.sndtimeo = _SEND_TIMEOUT_MS
    push.connect(args["endpoints"]["bulk"])
    payload = os.urandom(args["size"])
    copy = not args.get("zero_copy", False)
    header = os.urandom(int(args.get("header", 0)))
    while not ctl.stop.is_set():
        try:
            if header:
                # SNDMORE: libzmq takes a multipart message whole or refuses its first frame, so a
                # refused header is simply sent again.
                push.send(header, zmq.SNDMORE)
                push.send(payload, 0, copy=copy)
            else:
                push.send(payload, 0, copy=copy)
        except zmq.Again:
            continue
    push.close()
    ctx.term()


async def _async_bulk_rx(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    ctl.emit("ready", endpoints={"bulk": _bind(pull)})
    frame = await asyncio.wait_for(pull.recv(copy=False), args["first_timeout"])
    window = RateWindow(args["warmup"], args["duration"])
    clock = time.perf_counter
    window.start(clock())
    count = 1
    size = len(frame)
    while True:
        frame = await pull.recv(copy=False)
        size = len(frame)
        count += 1
        if window.observe(count, clock()):
            break
    mib = window.count * size / (1 << 20)
    ctl.emit("result", value=mib / window.elapsed, count=window.count, elapsed=window.elapsed)
    await ctl.wait_stop()
    pull.close()
    ctx.term()


async def _async_bulk_tx(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.connect(args["endpoints"]["bulk"])
    payload = os.urandom(args["size"])

    async def pump() -> None:
        while not ctl.stop.is_set():
            await push.send(payload, copy=False)

    task = asyncio.create_task(pump())
    await ctl.wait_stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    push.close()
    ctx.term()


def async_bulk_rx(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio PULL receiver (zero-copy, await per message); reports MiB/s."""
    asyncio.run(_async_bulk_rx(ctl, args))


def async_bulk_tx(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio PUSH sender (zero-copy, await per message)."""
    asyncio.run(_async_bulk_tx(ctl, args))


# -- c. round trip: zmq.asyncio DEALER/ROUTER ping-pong ------------------------------------------------


async def _rtt_server(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    ctl.emit("ready", endpoints={"control": _bind(router)})

    async def echo() -> None:
        while True:
            await router.send_multipart(await router.recv_multipart())

    task = asyncio.create_task(echo())
    await ctl.wait_stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    router.close()
    ctx.term()


async def _rtt_client(ctl: Control, args: dict[str, Any]) -> None:
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(args["endpoints"]["control"])
    payload = os.urandom(args["size"])
    await asyncio.wait_for(_ping(dealer, payload), args["first_timeout"])
    samples = await _ping_window(dealer, payload, args["warmup"], args["duration"])
    ctl.emit("result", **latency_summary(samples))
    await ctl.wait_stop()
    dealer.close()
    ctx.term()


async def _ping(dealer: zmq.asyncio.Socket, payload: bytes) -> None:
    await dealer.send(payload)
    await dealer.recv()


async def _ping_window(dealer: zmq.asyncio.Socket, payload: bytes, warmup: float, duration: float) -> list[int]:
    clock = time.perf_counter_ns
    end_warmup = clock() + int(warmup * 1e9)
    while clock() < end_warmup:
        await _ping(dealer, payload)
    samples: list[int] = []
    end = clock() + int(duration * 1e9)
    while True:
        t0 = clock()
        await dealer.send(payload)
        await dealer.recv()
        t1 = clock()
        samples.append(t1 - t0)
        if t1 >= end:
            return samples


def rtt_server(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio ROUTER echoing every message back to its sender."""
    asyncio.run(_rtt_server(ctl, args))


def rtt_client(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio DEALER ping-pong; reports round-trip p50/p99 in microseconds."""
    asyncio.run(_rtt_client(ctl, args))


# -- d. head-of-line: control ping-pong while a PUSH/PULL streams large messages ----------------------


def _hol_context(args: dict[str, Any]) -> tuple[zmq.Context[Any], int, int]:
    """A context with ``io_threads`` I/O threads; with 2+, control on thread 1 and bulk on thread 2."""
    io_threads = int(args.get("io_threads", 1))
    ctx = zmq.Context(io_threads=io_threads)
    if io_threads >= 2:
        return ctx, 0b01, 0b10
    return ctx, 0, 0


def hol_server(ctl: Control, args: dict[str, Any]) -> None:
    """ROUTER echo (main thread) + PULL drain (own thread) in one context; final: bulk MiB/s received."""
    ctx, control_affinity, bulk_affinity = _hol_context(args)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.affinity = control_affinity
    router.rcvtimeo = 100
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.affinity = bulk_affinity
    pull.rcvtimeo = 100
    ctl.emit("ready", endpoints={"control": _bind(router), "bulk": _bind(pull)})
    received = [0, 0.0, 0.0]  # bytes, first arrival, last arrival

    def drain() -> None:
        while not ctl.stop.is_set():
            try:
                frame = pull.recv(copy=False)
            except zmq.Again:
                continue
            now = time.perf_counter()
            if not received[0]:
                received[1] = now
            received[0] += len(frame)
            received[2] = now

    thread = threading.Thread(target=drain, name="bulk-drain", daemon=True)
    thread.start()
    while not ctl.stop.is_set():
        try:
            router.send_multipart(router.recv_multipart())
        except zmq.Again:
            continue
    thread.join(timeout=5)
    span = received[2] - received[1]
    ctl.emit("final", bulk_mib_s=(received[0] / (1 << 20)) / span if span > 0 else 0.0)
    router.close()
    pull.close()
    ctx.term()


def hol_client(ctl: Control, args: dict[str, Any]) -> None:
    """DEALER ping-pong (main thread) while a PUSH thread streams ``bulk_size`` messages continuously."""
    ctx, control_affinity, bulk_affinity = _hol_context(args)
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.affinity = control_affinity
    dealer.rcvtimeo = int(args["first_timeout"] * 1000)
    dealer.connect(args["endpoints"]["control"])
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.affinity = bulk_affinity
    push.sndtimeo = _SEND_TIMEOUT_MS
    push.connect(args["endpoints"]["bulk"])
    bulk = os.urandom(args["bulk_size"])
    payload = os.urandom(args["size"])

    def stream() -> None:
        while not ctl.stop.is_set():
            try:
                push.send(bulk, copy=False)
            except zmq.Again:
                continue

    thread = threading.Thread(target=stream, name="bulk-stream", daemon=True)
    thread.start()
    clock = time.perf_counter_ns
    end_warmup = clock() + int(args["warmup"] * 1e9)
    while clock() < end_warmup:
        dealer.send(payload)
        dealer.recv()
    samples: list[int] = []
    end = clock() + int(args["duration"] * 1e9)
    while True:
        t0 = clock()
        dealer.send(payload)
        dealer.recv()
        t1 = clock()
        samples.append(t1 - t0)
        if t1 >= end:
            break
    ctl.emit("result", **latency_summary(samples))
    ctl.stop.wait()
    thread.join(timeout=5)
    dealer.close()
    push.close()
    ctx.term()


def _async_hol_context(args: dict[str, Any]) -> zmq.asyncio.Context:
    """The asyncio variant's context: two I/O threads (control on the first, bulk on the second). With
    ``nice_like_fabric`` the bulk one gets the priority a fabric node gives its bulk I/O thread
    (``TransportConfig.io_thread_nice``), so a comparison row can show what that setting buys a raw
    application too. The default raw rows leave thread priorities alone."""
    ctx = zmq.asyncio.Context(io_threads=2)
    if args.get("nice_like_fabric"):
        from fabric.config import TransportConfig
        from fabric.transport.zmq import renice_io_threads

        prefix = 8  # not the fabric's own prefix: this process has no fabric context, but be clear
        ctx.set(zmq.THREAD_NAME_PREFIX, prefix)
        ctx.socket(zmq.PAIR).close(0)  # starts the I/O threads
        renice_io_threads(TransportConfig().io_thread_nice, prefix=prefix)
    return ctx


async def _hol_async_server(ctl: Control, args: dict[str, Any]) -> None:
    ctx = _async_hol_context(args)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    router.affinity = 0b01
    pull = ctx.socket(zmq.PULL)
    pull.linger = 0
    pull.affinity = 0b10
    ctl.emit("ready", endpoints={"control": _bind(router), "bulk": _bind(pull)})
    received = [0, 0.0, 0.0]  # bytes, first arrival, last arrival

    async def echo() -> None:
        while True:
            await router.send_multipart(await router.recv_multipart())

    async def drain() -> None:
        while True:
            frame = await pull.recv(copy=False)
            now = time.perf_counter()
            if not received[0]:
                received[1] = now
            received[0] += len(frame)
            received[2] = now

    tasks = [asyncio.create_task(echo()), asyncio.create_task(drain())]
    await ctl.wait_stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    span = received[2] - received[1]
    ctl.emit("final", bulk_mib_s=(received[0] / (1 << 20)) / span if span > 0 else 0.0)
    router.close()
    pull.close()
    ctx.term()


async def _hol_async_client(ctl: Control, args: dict[str, Any]) -> None:
    ctx = _async_hol_context(args)
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.affinity = 0b01
    dealer.connect(args["endpoints"]["control"])
    push = ctx.socket(zmq.PUSH)
    push.linger = 0
    push.affinity = 0b10
    push.connect(args["endpoints"]["bulk"])
    bulk = os.urandom(args["bulk_size"])
    payload = os.urandom(args["size"])

    async def stream() -> None:
        while not ctl.stop.is_set():
            await push.send(bulk, copy=False)

    task = asyncio.create_task(stream())
    await asyncio.wait_for(_ping(dealer, payload), args["first_timeout"])
    samples = await _ping_window(dealer, payload, args["warmup"], args["duration"])
    ctl.emit("result", **latency_summary(samples))
    await ctl.wait_stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    dealer.close()
    push.close()
    ctx.term()


def hol_async_server(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio ROUTER echo + PULL drain as two tasks on one loop (io_threads=2 + ZMQ_AFFINITY)."""
    asyncio.run(_hol_async_server(ctl, args))


def hol_async_client(ctl: Control, args: dict[str, Any]) -> None:
    """zmq.asyncio ping-pong while a task on the same loop streams on PUSH (the fabric's structure)."""
    asyncio.run(_hol_async_client(ctl, args))


ROLES = {
    "raw_sync_control_rx": sync_control_rx,
    "raw_sync_control_tx": sync_control_tx,
    "raw_async_control_rx": async_control_rx,
    "raw_async_control_tx": async_control_tx,
    "raw_bulk_rx": bulk_rx,
    "raw_bulk_tx": bulk_tx,
    "raw_async_bulk_rx": async_bulk_rx,
    "raw_async_bulk_tx": async_bulk_tx,
    "raw_rtt_server": rtt_server,
    "raw_rtt_client": rtt_client,
    "raw_hol_server": hol_server,
    "raw_hol_client": hol_client,
    "raw_hol_async_server": hol_async_server,
    "raw_hol_async_client": hol_async_client,
}
"""Role name -> function, looked up by :mod:`bench.worker`."""
