"""A chaos test host: one fabric :class:`~fabric.Node` plus a workload client, in its own OS process.

Run as ``python -m fabric.testing.chaos.host --name h0 --node-id UUID --address A --port P --data-dir D
--peers JSON [--seed ENDPOINT ...]``; the :class:`~fabric.testing.chaos.cluster.Cluster` harness starts it
(inside the host's network namespace in namespace mode). It speaks JSON lines:

* stdout, unsolicited: ``{"event": "ready", "id", "pid", "incarnation"}``, then ``{"event": "joined"}``;
* stdin commands ``{"req": N, "cmd": C, ...}``, each answered by one ``{"req": N, ...}`` line:
  ``members`` -> ``{"alive": [names], "members": [{"name", "status", "incarnation"}]}``;
  ``workload`` with ``rate`` (operations per second, 0 stops) -> ``{"rate": R}``;
  ``stats`` -> ``{"stats": node.stats(), "health": node.health()}``; ``faults`` with ``drop_from`` /
  ``drop_to`` (host names) and ``loss_from`` / ``loss_to`` (host name or ``"*"`` -> probability) puts that
  :class:`~fabric.FaultPolicy` on the node's transport (no fields: clears it) -> ``{"faults": policy or
  None}`` (loopback mode's partitions and loss); ``quit`` stops the node and exits 0.

The node serves ``chaos.record`` (writes a :class:`~.history.Receipt`, then replies: the acknowledged
operation) and ``chaos.read`` (returns how many receipts this host holds), and records every ``send`` on
``coordination`` and every broadcast on ``events`` it receives. The workload issues, one at a time, writes
(50 %), reads (20 %), plain sends (25 %) and broadcasts (5 %) to a random member this node sees alive, and
records each in ``history.jsonl`` (see :mod:`fabric.testing.chaos.history`). Nothing is retried.

Clock skew (``--clock-skew S``): the process replaces :func:`time.time` with the real clock plus ``S``
seconds before the node is built. The fabric's liveness (heartbeats, phi, timeouts) runs on the event
loop's monotonic clock and does not see it; what does is everything wall-clock stamped: the node's
*incarnation* (wall-clock ms at construction, so a host restarted with its clock behind comes back with a
lower incarnation than its previous life), the PONG timestamps behind ``Node.clock_offset``, and topology
history stamps. The histories use the unskewed real clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import zlib
from typing import Any

from .history import Event, HistoryWriter, Receipt, real_time


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def _skew_clock(seconds: float) -> None:
    """Make :func:`time.time` (and only it) read ``seconds`` ahead of the real clock in this process."""
    if seconds:
        real = time.time

        def skewed() -> float:
            return real() + seconds

        time.time = skewed


class Host:
    """The node, its services, its workload and its history files."""

    def __init__(self, args: argparse.Namespace) -> None:
        from fabric import Node, NodeConfig

        self.args = args
        self.name: str = args.name
        self.peers: dict[str, str] = json.loads(args.peers)
        os.makedirs(args.data_dir, exist_ok=True)
        self.history = HistoryWriter(os.path.join(args.data_dir, "history.jsonl"))
        self.receipts = HistoryWriter(os.path.join(args.data_dir, "receipts.jsonl"))
        with open(os.path.join(args.data_dir, "receipts.jsonl"), encoding="utf-8") as f:
            self.received = sum(1 for _ in f)  # what chaos.read reports, across restarts
        loopback = args.address.startswith("127.")
        self.node = Node(
            NodeConfig.local(
                name=self.name, node_id=args.node_id, bind=f"tcp://{args.address}", port=args.port,
                insecure=not loopback, call_timeout=args.call_timeout,
            )
        )
        self.rng = random.Random(f"{args.seed_value}:{self.name}:{args.run}")
        self.seq = 0
        self.lane_seq: dict[tuple[str, str], int] = {}
        self.rate = 0.0
        self.workload: asyncio.Task[None] | None = None

    # -- server side ---------------------------------------------------------------------------------

    def _receipt(self, body: Any, kind: str | None = None) -> None:
        if not isinstance(body, dict):
            return
        try:
            r = Receipt(t=real_time(), host=self.name, op=str(body["op"]), sender=str(body["sender"]),
                        kind=kind or str(body["kind"]), seq=int(body["seq"]))
        except (KeyError, TypeError, ValueError):
            return  # not one of ours: counted nowhere, never raised
        self.receipts.write(r)
        self.received += 1

    async def _record(self, request: Any) -> str:
        self._receipt(request)
        return "ok"

    async def _read(self, request: Any) -> int:
        return self.received

    def _on_message(self, msg: Any) -> None:
        try:
            body = msg.value()
        except Exception:  # a payload that does not decode is not ours
            return
        self._receipt(body)

    # -- client side ---------------------------------------------------------------------------------

    def _body(self, kind: str, target: str) -> dict[str, Any]:
        self.seq += 1
        lane = (target, kind)
        self.lane_seq[lane] = self.lane_seq.get(lane, 0) + 1
        return {"op": f"{self.name}:{self.args.run}:{self.seq}", "sender": self.name, "kind": kind, "seq": self.lane_seq[lane]}

    async def _one(self) -> None:
        alive = [m.name for m in self.node.alive_members() if m.name != self.name and m.name in self.peers]
        roll = self.rng.random()
        kind = "write" if roll < 0.5 else "read" if roll < 0.7 else "send" if roll < 0.95 else "broadcast"
        if kind != "broadcast" and not alive:
            return
        target = "" if kind == "broadcast" else self.rng.choice(sorted(alive))
        body = self._body(kind, target or "*")
        op = body["op"]
        self.history.write(Event(t=real_time(), host=self.name, op=op, kind=kind, type="invoke", to=target))
        try:
            if kind == "write":
                value: Any = await self.node.call(self.peers[target], "chaos.record", body)
            elif kind == "read":
                value = await self.node.call(self.peers[target], "chaos.read", b"")
            elif kind == "send":
                value = await self.node.send(self.peers[target], body, channel="coordination", key=self.name)
            else:
                value = await self.node.broadcast(body, channel="events")
        except Exception as exc:
            self.history.write(Event(t=real_time(), host=self.name, op=op, kind=kind, type="fail", to=target,
                                     error=f"{type(exc).__name__}: {exc}"[:200]))
            return
        self.history.write(Event(t=real_time(), host=self.name, op=op, kind=kind, type="ok", to=target, value=value))

    async def _workload(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.rate > 0:
            await self._one()
            next_at = max(next_at + 1.0 / self.rate, loop.time() - 1.0)  # no catch-up burst after a stall
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    def _set_rate(self, rate: float) -> None:
        self.rate = max(0.0, rate)
        if self.rate > 0 and (self.workload is None or self.workload.done()):
            self.workload = asyncio.get_running_loop().create_task(self._workload())

    # -- lifecycle -----------------------------------------------------------------------------------

    async def _join(self) -> None:
        await self.node.join(self.args.seed, min_members=1, timeout=None)
        _emit({"event": "joined", "t": real_time()})

    def _faults(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``faults`` command: host names -> node ids, a seed of its own per host and run."""
        from fabric import FaultPolicy

        def ids(names: Any) -> list[str]:
            return [self.peers[n] for n in names]

        def probs(raw: Any) -> dict[str, float]:
            return {(k if k == "*" else self.peers[k]): float(v) for k, v in dict(raw).items()}

        try:
            policy = FaultPolicy(drop_from=ids(cmd.get("drop_from", [])), drop_to=ids(cmd.get("drop_to", [])),
                                 loss_from=probs(cmd.get("loss_from", {})), loss_to=probs(cmd.get("loss_to", {})),
                                 seed=zlib.crc32(f"{self.args.seed_value}:{self.name}:{self.args.run}:faults".encode()))
        except (KeyError, TypeError, ValueError) as exc:  # ConfigError is a ValueError
            return {"error": f"bad faults command: {type(exc).__name__}: {exc}"}
        self.node.set_transport_faults(policy)
        return {"faults": None if policy.empty else policy.describe()}

    def _members(self) -> dict[str, Any]:
        members = self.node.members()
        return {
            "alive": sorted(m.name for m in self.node.alive_members()),
            "members": [{"name": m.name, "status": str(m.status), "incarnation": m.incarnation} for m in members],
        }

    async def run(self) -> None:
        self.node.add_service("chaos.record", self._record)
        self.node.add_service("chaos.read", self._read)
        self.node.subscribe("coordination", self._on_message, inline=True)
        self.node.subscribe("events", self._on_message, inline=True)
        await self.node.start()
        _emit({"event": "ready", "id": self.node.id, "pid": os.getpid(), "incarnation": self.node.incarnation,
               "seed": self.node.seed, "t": real_time()})
        joiner = asyncio.get_running_loop().create_task(self._join())
        if self.args.rate:
            self._set_rate(self.args.rate)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    cmd = json.loads(line)
                    req = cmd.get("req")
                    name = cmd["cmd"]
                except (ValueError, KeyError, AttributeError):
                    _emit({"event": "error", "message": f"bad command line: {line[:80]!r}"})
                    continue
                if name == "quit":
                    break
                if name == "members":
                    _emit({"req": req, **self._members()})
                elif name == "workload":
                    self._set_rate(float(cmd.get("rate", 0)))
                    _emit({"req": req, "rate": self.rate})
                elif name == "faults":
                    _emit({"req": req, **self._faults(cmd)})
                elif name == "stats":
                    _emit({"req": req, "stats": self.node.stats(), "health": self.node.health()})
                else:
                    _emit({"req": req, "error": f"unknown command {name!r}"})
        finally:
            self.rate = 0
            joiner.cancel()
            if self.workload is not None:
                self.workload.cancel()
            await asyncio.gather(joiner, *([self.workload] if self.workload else []), return_exceptions=True)
            await self.node.stop()
            self.history.close()
            self.receipts.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m fabric.testing.chaos.host``."""
    parser = argparse.ArgumentParser(prog="python -m fabric.testing.chaos.host", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--node-id", required=True, help="UUID; the same across restarts")
    parser.add_argument("--address", required=True, help="IPv4 address to bind")
    parser.add_argument("--port", type=int, required=True, help="base TCP port; the same across restarts")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--peers", required=True, help='JSON {"name": "node id", ...} of every host')
    parser.add_argument("--seed", action="append", default=[], help="membership endpoint to join (repeatable)")
    parser.add_argument("--run", type=int, default=0, help="restart count (part of every operation id)")
    parser.add_argument("--rate", type=float, default=0.0, help="workload operations per second (0: until told)")
    parser.add_argument("--call-timeout", type=float, default=2.0)
    parser.add_argument("--clock-skew", type=float, default=0.0, help="seconds added to time.time() in this process")
    parser.add_argument("--rng-seed", dest="seed_value", default="0")
    args = parser.parse_args(argv)
    _skew_clock(args.clock_skew)
    host = Host(args)
    asyncio.run(host.run())


if __name__ == "__main__":
    main()
