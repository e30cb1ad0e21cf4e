"""A discovery-only node for multi-process tests: runs one strategy and reports what it sees.

Usage: python discovery_child.py --strategy NAME --name N --port-base P [--options JSON] [--node-id UUID]

Protocol on stdout (one JSON document per line after a keyword):
    READY <json {"node_id", "seed"}>   after start()
    VIEW <json [candidate dicts]>      now and whenever the candidate list changes
    STATS <json {counter: n}>          in answer to the stdin command ``stats``
stdin commands: ``stats``, ``view`` (print VIEW now), ``quit``. SIGTERM also stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import uuid

from fabric.discovery import CandidateUpdate, LocalNode, MultiDiscovery, endpoints_from_port_base, registry


def _emit(keyword: str, payload: object) -> None:
    sys.stdout.write(f"{keyword} {json.dumps(payload, sort_keys=True)}\n")
    sys.stdout.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--node-id", default=None)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args()

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def read_stdin() -> None:  # blocking reads stay off the loop
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "quit")

    threading.Thread(target=read_stdin, daemon=True).start()

    local = LocalNode(
        node_id=args.node_id or str(uuid.uuid4()),
        name=args.name,
        endpoints=endpoints_from_port_base(args.host, args.port_base),
        metadata={"role": "test"},
    )
    plugin = registry.create(args.strategy, json.loads(args.options))
    await plugin.start(local)
    _emit("READY", {"node_id": local.node_id, "seed": local.seed})

    def show(candidates: object) -> None:
        _emit("VIEW", [c.to_dict() for c in candidates])  # type: ignore[attr-defined]

    watcher: asyncio.Task[None] | None = None
    if isinstance(plugin, MultiDiscovery):

        def on_update(update: CandidateUpdate) -> None:
            if update.reason == "changed":
                show(update.candidates)

        plugin.subscribe(on_update)
        show(plugin.candidates)
    else:

        async def watch() -> None:
            async for candidates in plugin.watch():
                show(candidates)

        watcher = asyncio.create_task(watch())

    async def serve_commands() -> None:
        while True:
            command = await commands.get()
            if command == "stats":
                _emit("STATS", plugin.stats())
            elif command == "view":
                show(await plugin.lookup())
            elif command == "quit":
                stop.set()
                return

    server = asyncio.create_task(serve_commands())
    await stop.wait()
    server.cancel()
    await plugin.stop()
    if watcher is not None:
        watcher.cancel()
    _emit("STOPPED", {})


if __name__ == "__main__":
    asyncio.run(main())
