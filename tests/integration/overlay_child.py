"""Several fabric nodes in one OS process, for overlay tests with real ZeroMQ sockets over ipc://.

    python overlay_child.py --prefix p1 --count 10 --overlay hyparview --dir /tmp/x [--seed ENDPOINT]
                            [--roles server,client,...] [--min-members N] [--timers local|lan] [--auto THRESHOLD]
                            [--overlays OVERLAY,OVERLAY,...] [--join-timeout SECONDS]

Prints JSON lines: ``{"event": "ready", "seeds": [...]}`` once bound, ``{"event": "joined"}`` when every
local node sees ``--min-members`` alive members, and per command: ``broadcast I`` (node I broadcasts;
``{"event": "broadcast"}``), ``received`` (``{"event": "received", "counts": {name: n}}``: broadcasts each
node received), ``call I TARGET_ID`` (node I calls service ``who`` on TARGET_ID), ``members``, ``stats``,
``topology``, ``switch I EXPECTED NEW``, ``callflow IDS`` / ``callstats``, ``quit``.
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
from fabric.membership import MembershipConfig


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--overlay", default="hyparview")
    parser.add_argument("--overlays", default="", help="comma-separated overlay per node (overrides --overlay)")
    parser.add_argument("--join-timeout", type=float, default=120.0)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--seed", default=None)
    parser.add_argument("--roles", default="")
    parser.add_argument("--min-members", type=int, default=1)
    parser.add_argument("--auto", type=int, default=0,
                        help="automatic topology with this auto_threshold (hysteresis a third of it, dwell 1 s)")
    parser.add_argument("--timers", choices=("local", "lan"), default="local",
                        help="membership timers: local() (5x faster, a few nodes per process) or lan() (the defaults)")
    args = parser.parse_args()
    roles = args.roles.split(",") if args.roles else ["server"] * args.count
    overlays = args.overlays.split(",") if args.overlays else [args.overlay] * args.count
    nodes: list[Node] = []
    counts: dict[str, int] = {}
    for i in range(args.count):
        name = f"{args.prefix}n{i}"
        path = os.path.join(args.dir, name)
        os.makedirs(path, exist_ok=True)
        node = Node(
            NodeConfig.local(
                name=name, overlay=overlays[i], overlay_role=roles[i], bind=f"ipc://{path}", topology_cooldown=1.0,
                # 10 nodes x 5 channels x peers: many sockets, one shared libzmq context per process
                transport=TransportConfig(max_sockets=65536, reconnect_ivl_max_ms=1000),
                **({"membership": MembershipConfig.lan()} if args.timers == "lan" else {}),
                **({"auto_topology": True, "auto_threshold": args.auto, "auto_hysteresis": args.auto // 3,
                    "auto_dwell": 1.0} if args.auto else {}),
            )
        )
        counts[name] = 0

        def on_event(msg: Message, name: str = name) -> None:
            counts[name] += 1

        node.subscribe("events", on_event, inline=True)
        node.add_service("who", lambda _req, name=name: name)
        await node.start()
        nodes.append(node)
    seed = args.seed or nodes[0].seed
    emit(event="ready", seeds=[n.seed for n in nodes], ids=[n.id for n in nodes], pid=os.getpid())
    started = time.monotonic()
    try:
        await asyncio.gather(*(n.join([seed], min_members=args.min_members, timeout=args.join_timeout) for n in nodes))
    except Exception as exc:  # reported to the test (a join timeout is what it checks)
        emit(event="error", command="join", type=type(exc).__name__, message=str(exc))
    else:
        emit(event="joined", neighbours=[len(n.neighbours()) for n in nodes], seconds=time.monotonic() - started)
    flows: list[tuple[dict[str, Any], asyncio.Task[None]]] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        cmd, *rest = line.split()
        try:
            if cmd == "broadcast":
                await nodes[int(rest[0])].broadcast({"from": nodes[int(rest[0])].name})
                emit(event="broadcast")
            elif cmd == "received":
                emit(event="received", counts=counts)
            elif cmd == "call":
                emit(event="called", reply=await nodes[int(rest[0])].call(rest[1], "who", timeout=10))
            elif cmd == "members":
                emit(event="members", alive=[len(n.alive_members()) for n in nodes])
            elif cmd == "stats":  # summed counters of every local node (overlay core and node)
                totals: dict[str, int] = {}
                for n in nodes:
                    st = n.stats()
                    for group in ("counters", "membership"):
                        for k, v in (st.get(group) or {}).items():
                            if isinstance(v, int):
                                totals[k] = totals.get(k, 0) + v
                emit(event="stats", totals=totals, cpu=time.process_time())
            elif cmd == "callflow":  # node 0 calls the given ids round-robin until "callstats"
                flow = {"ok": 0, "failed": [], "stop": False}
                targets = rest[0].split(",")

                async def call_loop(flow: dict[str, Any] = flow, targets: list[str] = targets) -> None:
                    i = 0
                    while not flow["stop"]:
                        try:
                            await nodes[0].call(targets[i % len(targets)], "who", timeout=10)
                            flow["ok"] += 1
                        except Exception as exc:  # recorded: the test asserts there are none
                            flow["failed"].append(f"{type(exc).__name__}: {exc}")
                        i += 1

                flows.append((flow, asyncio.create_task(call_loop())))
                emit(event="callflow")
            elif cmd == "callstats":
                flow, task = flows.pop()
                flow["stop"] = True
                await task
                emit(event="callstats", ok=flow["ok"], failed=flow["failed"])
            elif cmd == "switch":  # switch I EXPECTED NEW
                topo = await nodes[int(rest[0])].switch_topology(rest[1], rest[2])
                emit(event="switched", topology=topo)
            elif cmd == "topology":
                emit(event="topology", overlays=[n.overlay for n in nodes], endpoints=[n.endpoints for n in nodes],
                     history=[n.current_topology()["history"] for n in nodes],
                     epochs=[n.current_topology()["epoch"] for n in nodes],
                     neighbours=[len(n.neighbours()) for n in nodes], alive=[len(n.alive_members()) for n in nodes],
                     pid=os.getpid())
        except Exception as exc:
            emit(event="error", command=cmd, type=type(exc).__name__, message=str(exc))
    for node in nodes:
        await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
