"""A raw-socket attacker in its own process, so the target's RSS is measured without the attacker's queues.

``python -m tests.integration.abuse_attacker MODE ENDPOINT COUNT [SIZE]`` connects one raw pyzmq socket,
sends COUNT messages, prints ``sent COUNT`` and keeps the connection open until a line arrives on stdin
(then closes and exits). Modes:

* ``send`` — SENDs on ``coordination`` from one fixed source id, SIZE-byte payloads (a slow subscriber);
* ``send-random`` — SENDs of one byte, each from a new random source id;
* ``ping-random`` — PINGs, each from a new random source id (PONGs are read and dropped);
* ``hello-client`` — client HELLOs, each from a new random id (answers read and dropped);
* ``subscribe`` — a SUB sending COUNT subscriptions of SIZE random bytes.
"""

from __future__ import annotations

import os
import sys
import threading

import zmq

from fabric import wire
from fabric.wire import Role


def main(argv: list[str]) -> int:
    mode, endpoint, count = argv[0], argv[1], int(argv[2])
    size = int(argv[3]) if len(argv) > 3 else 1
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = ctx.socket(zmq.SUB if mode == "subscribe" else zmq.DEALER)
    sock.set(zmq.LINGER, 5000)
    sock.set(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    stop = threading.Event()

    def drain() -> None:  # answers are read and dropped, so they cost this process nothing
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        while not stop.is_set():
            if poller.poll(100):
                try:
                    sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    pass

    if mode == "subscribe":
        for _ in range(count):
            sock.set(zmq.SUBSCRIBE, os.urandom(size))
    else:
        payload = os.urandom(size)
        fixed = os.urandom(16)
        for i in range(count):
            if mode == "send":
                frames = wire.send(fixed, "coordination", payload, seq=i + 1)
            elif mode == "send-random":
                frames = wire.send(os.urandom(16), "coordination", b"x", seq=7)
            elif mode == "ping-random":
                frames = wire.ping(os.urandom(16), msg_id=i, wall_ms=0)
            elif mode == "hello-client":
                frames = wire.hello(os.urandom(16), role=Role.CLIENT, incarnation=1, name="flood")
            else:
                raise SystemExit(f"unknown mode {mode!r}")
            sock.send_multipart(frames)
    print(f"sent {count}", flush=True)
    reader = None
    if mode != "subscribe":
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
    sys.stdin.readline()
    stop.set()
    if reader is not None:
        reader.join(5)
    sock.close()
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
