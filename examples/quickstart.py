"""A cluster in ten lines: two nodes, a call, a message (run: python examples/quickstart.py)."""

import asyncio

from fabric import Node, NodeConfig


async def main() -> None:
    async with Node(NodeConfig.local(name="a")) as a, Node(NodeConfig.local(name="b")) as b:
        got = asyncio.Event()
        b.add_service("greet", lambda who: f"hello {who}")              # a service any node can call
        b.subscribe("coordination", lambda msg: (print("b got", msg.value()), got.set()), inline=True)
        peer = await a.connect(b.seed)                                  # link through b's seed address
        print(await a.call(peer.id, "greet", "a"))                      # request/reply on a control channel
        await a.send(peer.id, {"hi": 1}, channel="coordination")         # one-way; values travel as msgpack
        await asyncio.wait_for(got.wait(), 5)


asyncio.run(main())
