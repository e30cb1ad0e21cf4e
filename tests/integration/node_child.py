"""A fabric node in its own OS process, driven by line commands on stdin (used by integration tests).

Prints one JSON object per line on stdout: first ``{"event": "ready", "id", "name", "endpoints"}``, then
``{"event": "joined"}`` when ``--join`` is given, one line per membership event (``"member"``), per
message received and per command result. Commands (one per line on stdin):

* ``connect ENDPOINT`` -> ``{"event": "connected", "peer": ID}``
* ``send PEER CHANNEL SIZE`` -> sends SIZE pseudo-random bytes; ``{"event": "sent", "sha": ...}``
* ``broadcast SIZE`` -> one PUBLISH on ``events``; ``{"event": "broadcast", "sha": ...}``
* ``call PEER SERVICE`` -> ``{"event": "called", "reply": ...}``
* ``members`` -> ``{"event": "members", "members": [{name, id, incarnation, status}, ...]}``
* ``stats`` -> ``{"event": "stats", ...}`` (with ``--quiet``: ``tally`` counts distinct ``ok:`` payloads
  per channel, ``foreign`` counts any other payload delivered)
* ``sendmany PEER CHANNEL N TAG`` -> sends N payloads ``ok:TAG:i``; ``{"event": "sentmany", "accepted": n}``
  (how many ``send()`` calls returned True)
* ``quit`` -> stops the node and exits 0

Services: ``echo`` (async), ``echo_sync`` (thread pool), ``slow`` (sleeps the requested seconds),
``boom`` (raises ValueError).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
from typing import Any

from fabric import Message, Node, NodeConfig, SecurityConfig


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="child")
    parser.add_argument("--bind", default="tcp://127.0.0.1")
    parser.add_argument("--max-concurrent", type=int, default=1000)
    parser.add_argument("--quiet", action="store_true", help="count messages instead of printing each")
    parser.add_argument("--join", action="append", default=[], help="seed membership endpoint (repeatable)")
    parser.add_argument("--min-members", type=int, default=1)
    parser.add_argument("--node-id", default=None)
    parser.add_argument("--port", type=int, default=0, help="base TCP port (0: ephemeral)")
    parser.add_argument("--discovery", default=None, help='JSON {"strategy": NAME, "options": {...}}: join through it')
    parser.add_argument("--keys", default=None, help="secure mode: key directory (security.keys)")
    parser.add_argument("--trust", default=None, help="secure mode: trust file (security.trust)")
    parser.add_argument("--trust-reload", type=float, default=2.0, help="security.trust_reload_interval")
    args = parser.parse_args()
    tally: dict[str, set[bytes]] = {}
    foreign: dict[str, int] = {}
    node = Node(
        NodeConfig.local(
            name=args.name, bind=args.bind, max_concurrent_requests=args.max_concurrent, node_id=args.node_id,
            port=args.port,
            security=SecurityConfig(keys=args.keys, trust=args.trust, trust_reload_interval=args.trust_reload),
        )
    )

    def on_member(event: Any) -> None:
        member = getattr(event, "member", None)
        emit(
            event="member",
            kind=type(event).__name__,
            name=member.name if member else None,
            id=str(member.node_id.hex()) if member else None,
            incarnation=member.incarnation if member else None,
            reason=getattr(event, "reason", None),
            status=str(member.status) if member else None,
        )

    node.on_member_event(on_member)

    @node.service("echo")
    async def echo(request: Any) -> Any:
        return request

    @node.service("echo_sync")
    def echo_sync(request: Any) -> Any:
        return request

    @node.service("slow")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(float(seconds))
        return "done"

    @node.service("boom")
    def boom(request: Any) -> Any:
        raise ValueError(f"boom: {request!r}")

    def on_message(msg: Message) -> None:
        data = bytes(msg.payload)
        if args.quiet:
            if data.startswith(b"ok:"):
                tally.setdefault(msg.channel, set()).add(data)
            else:
                foreign[msg.channel] = foreign.get(msg.channel, 0) + 1
            return
        emit(event="got", channel=msg.channel, source=msg.source, size=len(data), sha=hashlib.sha256(data).hexdigest(),
             lane=msg.lane, topic=msg.topic.decode())

    for channel in ("coordination", "gossip", "data", "events"):
        node.subscribe(channel, on_message, inline=True)
    await node.start()
    emit(event="ready", id=node.id, name=node.name, endpoints=node.endpoints, pid=os.getpid(), incarnation=node.incarnation,
         security=node.health()["security"])
    if args.join or args.discovery:
        plugin = None
        if args.discovery:
            from fabric.discovery import registry

            spec = json.loads(args.discovery)
            plugin = registry.create(spec["strategy"], spec.get("options"))
        members = await node.join(args.join, discovery=plugin, min_members=args.min_members, timeout=60)
        emit(event="joined", members=sorted(m.name for m in members if str(m.status) == "alive"))

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        cmd, *rest = line.split()
        try:
            if cmd == "connect":
                info = await node.connect(rest[0])
                emit(event="connected", peer=info.id, name=info.name)
            elif cmd == "send":
                data = os.urandom(int(rest[2]))
                await node.send(rest[0], data, channel=rest[1], key=b"k")
                emit(event="sent", sha=hashlib.sha256(data).hexdigest())
            elif cmd == "sendmany":
                accepted = 0
                for i in range(int(rest[2])):
                    accepted += bool(await node.send(rest[0], f"ok:{rest[3]}:{i}".encode(), channel=rest[1]))
                emit(event="sentmany", accepted=accepted)
            elif cmd == "broadcast":
                data = os.urandom(int(rest[0]))
                await node.broadcast(data, topic=b"t.")
                emit(event="broadcast", sha=hashlib.sha256(data).hexdigest())
            elif cmd == "call":
                emit(event="called", reply=await node.call(rest[0], rest[1], "x"))
            elif cmd == "members":
                emit(
                    event="members",
                    members=[
                        {"name": m.name, "id": m.node_id.hex(), "incarnation": m.incarnation, "status": str(m.status)}
                        for m in node.members()
                    ],
                )
            elif cmd == "stats":
                emit(
                    event="stats",
                    **node.stats(),
                    peers=[p.id for p in node.peers()],
                    clients=[c.id for c in node.clients()],
                    tally={c: len(v) for c, v in tally.items()},
                    foreign=foreign,
                )
        except Exception as exc:  # report to the test instead of dying
            emit(event="error", command=cmd, type=type(exc).__name__, message=str(exc))
    await node.stop()


if __name__ == "__main__":
    asyncio.run(main())
