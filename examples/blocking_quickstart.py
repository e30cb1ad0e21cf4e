"""The same from synchronous code: BlockingNode runs the event loop in a background thread."""

from fabric import BlockingNode, NodeConfig

with BlockingNode(NodeConfig.local(name="server")) as server, BlockingNode(NodeConfig.local(name="client")) as node:
    server.add_service("add", lambda pair: pair[0] + pair[1])
    peer = node.connect(server.seed)
    print("2 + 3 =", node.call(peer.id, "add", [2, 3]))
