"""Several fabric nodes in one OS process, driven over stdin/stdout, for bench/topology.py.

    python -m bench.overlay_host --prefix p0 --count 16 --overlay hyparview --dir /tmp/fftXXXX

Theory of operation
-------------------
The host starts ``--count`` :class:`fabric.Node` s (``NodeConfig.local()`` timers, bound on ``ipc://`` under
``--dir`` or on ``tcp://127.0.0.1`` ephemeral ports), prints ``{"event": "ready", ...}`` and then obeys one
command per stdin line, answering each with one JSON line on stdout (``{"event": "error", ...}`` when a
command fails). Every timestamp is ``time.monotonic()`` of this process: the parent runs on the same
machine, and on Linux ``time.monotonic()`` is ``CLOCK_MONOTONIC``, one system-wide clock shared by every
process (it is not per-process), so the parent can subtract its own readings from the host's. The
``clock`` command lets the parent check that assumption on every run.

Commands:

* ``clock`` -> ``{"event": "clock", "mono": t}``.
* ``join SEED N TIMEOUT`` -> at once ``{"event": "joining", "at": t}``; every local node joins through
  ``SEED`` and, when it sees ``N`` alive members (itself included), its time is noted; when all did:
  ``{"event": "formed", "times": [t per node], "pid": ...}``, or ``{"event": "error"}`` after ``TIMEOUT``
  seconds. Meanwhile a sampler records every change of each node's overlay neighbours (every
  ``--sample`` seconds) for ``history``.
* ``history`` -> ``{"event": "history", "changes": [[t, node_id, [neighbour ids]], ...]}``, and sampling stops.
* ``bcast I TAG`` -> node I broadcasts ``TAG`` on the ``events`` channel; ``{"event": "sent", "t0": t}``
  with ``t0`` read just before :meth:`fabric.Node.broadcast` is called.
* ``got TAG`` -> ``{"event": "got", "times": {node name: first delivery time}, "copies": n}`` (``copies``
  counts every delivery of ``TAG`` here, duplicates included).
* ``stats`` -> ``{"event": "stats", "sums": {...}}``: counters summed over the local nodes - the
  ``membership`` counters of :meth:`fabric.Node.stats` (Plumtree's prefixed ``tree_``), the node's own
  ``counters`` (prefixed ``node_``) and the ``events`` channel's ``sent`` / ``received``.
* ``members`` -> ``{"event": "members", "alive": [count per node]}``.
* ``quit`` (or end of stdin): every node stops, the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from fabric import Message, Node, NodeConfig, TransportConfig
from fabric.membership.config import MembershipConfig


def emit(**fields: Any) -> None:
    """Print one JSON event line (loop thread)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def bench_membership_config(**overrides: Any) -> MembershipConfig:
    """``MembershipConfig.local()`` with the periodic record refresh pushed out of the run (600 s): a refresh
    is a Plumtree broadcast of the node's record, and at 128 nodes and the local 30 s period about four of
    them per second would be counted in every measured broadcast's window."""
    return MembershipConfig.local(refresh_interval=600.0, record_ttl=1800.0, **overrides)


class Host:
    """The nodes of this process and the bench's observations of them (all on the asyncio loop)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.nodes: list[Node] = []
        self.deliveries: dict[str, dict[str, float]] = {}
        self.copies: dict[str, int] = {}
        self.history: list[list[Any]] = []
        self.sampling = False
        self._sampler: asyncio.Task[None] | None = None
        self._join: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create, subscribe and start every node."""
        a = self.args
        for i in range(a.count):
            name = f"{a.prefix}n{i}"
            if a.bind == "ipc":
                path = os.path.join(a.dir, name)
                os.makedirs(path, exist_ok=True)
                bind = f"ipc://{path}"
            else:
                bind = "tcp://127.0.0.1"
            node = Node(NodeConfig.local(
                name=name, overlay=a.overlay, bind=bind, membership=bench_membership_config(),
                # many nodes x 5 channels x peers in one process share one libzmq context
                transport=TransportConfig(max_sockets=65536, reconnect_ivl_max_ms=1000),
            ))

            def on_event(msg: Message, name: str = name) -> None:
                now = time.monotonic()
                value = msg.value()
                tag = value.get("tag") if isinstance(value, dict) else None
                if isinstance(tag, str):
                    self.copies[tag] = self.copies.get(tag, 0) + 1
                    self.deliveries.setdefault(tag, {}).setdefault(name, now)

            node.subscribe("events", on_event, inline=True)
            await node.start()
            self.nodes.append(node)

    async def _join_all(self, seed: str, n: int, timeout: float) -> None:
        times: list[float | None] = [None] * len(self.nodes)

        async def one(i: int) -> None:
            await self.nodes[i].join([seed], min_members=n, timeout=timeout)
            times[i] = time.monotonic()

        try:
            await asyncio.gather(*(one(i) for i in range(len(self.nodes))))
        except Exception as exc:
            alive = [len(node.alive_members()) for node in self.nodes]
            # who each short node knows but not as alive, and how many it knows at all (for the report)
            others = {node.name: {"known": len(node.members()),
                                  "not_alive": {m.name: m.status.value for m in node.members()
                                                if m not in node.alive_members()}}
                      for node in self.nodes if len(node.alive_members()) < n}
            emit(event="error", command="join", type=type(exc).__name__, message=str(exc), alive=alive,
                 short=others, stats={node.name: node.stats()["membership"] for node in self.nodes
                                      if node.name in others})
            return
        emit(event="formed", times=times, pid=os.getpid())

    async def _sample(self) -> None:
        last: dict[str, list[str]] = {}
        while self.sampling:
            now = time.monotonic()
            for node in self.nodes:
                current = sorted(p.id for p in node.neighbours())
                if last.get(node.id) != current:
                    last[node.id] = current
                    self.history.append([now, node.id, current])
            await asyncio.sleep(self.args.sample)

    def stats(self) -> dict[str, int]:
        """Counters summed over the local nodes (see the module docstring)."""
        sums: dict[str, int] = {}
        for node in self.nodes:
            st = node.stats()
            for key, value in st["membership"].items():
                if isinstance(value, int):
                    sums[key] = sums.get(key, 0) + value
            for key, value in st["counters"].items():
                if isinstance(value, int):
                    sums[f"node_{key}"] = sums.get(f"node_{key}", 0) + value
            events = st["channels"].get("events", {})
            for key in ("sent", "received"):
                sums[f"events_{key}"] = sums.get(f"events_{key}", 0) + int(events.get(key, 0))
        return sums

    async def command(self, line: str) -> bool:
        """Run one command line; False on ``quit``."""
        cmd, *rest = line.split()
        if cmd == "quit":
            return False
        if cmd == "clock":
            emit(event="clock", mono=time.monotonic())
        elif cmd == "join":
            seed, n, timeout = rest[0], int(rest[1]), float(rest[2])
            self.sampling = self.args.overlay != "full-mesh"
            emit(event="joining", at=time.monotonic())
            self._join = asyncio.create_task(self._join_all(seed, n, timeout))
            if self.sampling:
                self._sampler = asyncio.create_task(self._sample())
        elif cmd == "history":
            self.sampling = False
            if self._sampler is not None:
                await self._sampler
                self._sampler = None
            emit(event="history", changes=self.history)
        elif cmd == "bcast":
            node = self.nodes[int(rest[0])]
            t0 = time.monotonic()
            await node.broadcast({"tag": rest[1]})
            emit(event="sent", t0=t0)
        elif cmd == "got":
            emit(event="got", times=self.deliveries.get(rest[0], {}), copies=self.copies.get(rest[0], 0))
        elif cmd == "stats":
            emit(event="stats", sums=self.stats())
        elif cmd == "members":
            emit(event="members", alive=[len(node.alive_members()) for node in self.nodes])
        else:
            emit(event="error", command=cmd, type="UnknownCommand", message=line)
        return True

    async def stop(self) -> None:
        """Stop the sampler, the join task and every node."""
        self.sampling = False
        for task in (self._sampler, self._join):
            if task is not None and not task.done():
                task.cancel()
        for node in self.nodes:
            await node.stop()


async def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the nodes, obey stdin until ``quit`` or end of input."""
    parser = argparse.ArgumentParser(prog="python -m bench.overlay_host", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", required=True, help="node names are PREFIXn<i>")
    parser.add_argument("--count", type=int, default=8, help="nodes in this process")
    parser.add_argument("--overlay", default="hyparview", help="full-mesh or hyparview")
    parser.add_argument("--bind", choices=("ipc", "tcp"), default="ipc")
    parser.add_argument("--dir", default="/tmp", help="short directory for ipc:// socket files")
    parser.add_argument("--sample", type=float, default=0.02, help="neighbour sampling period, seconds")
    args = parser.parse_args(argv)
    host = Host(args)
    try:
        await host.start()
        emit(event="ready", seeds=[n.seed for n in host.nodes], ids=[n.id for n in host.nodes],
             names=[n.name for n in host.nodes], pid=os.getpid())
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = (await reader.readline()).decode().strip()
            if not line:
                if reader.at_eof():
                    break
                continue
            try:
                if not await host.command(line):
                    break
            except Exception as exc:  # reported to the parent, which fails the run with it
                emit(event="error", command=line, type=type(exc).__name__, message=str(exc))
    finally:
        await host.stop()


if __name__ == "__main__":
    asyncio.run(main())
