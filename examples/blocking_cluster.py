"""A three-node cluster from synchronous code: BlockingNode has every method of Node (join, members,
membership events, calls to a Member ...), each a plain blocking call."""

import threading

from fabric import BlockingNode, NodeConfig

nodes = [BlockingNode(NodeConfig.local(name=f"sync-{i}")) for i in range(3)]
for node in nodes:
    node.start()
try:
    seed = nodes[0].seed
    came_up = threading.Event()
    nodes[0].on_up(lambda member: came_up.set())  # runs on the node's loop thread: keep it short
    for node in nodes:
        node.add_service("whoami", lambda _request, name=node.name: name)
    threads = [threading.Thread(target=n.join, args=([seed],), kwargs={"min_members": 3, "timeout": 30}) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("members:", sorted(m.name for m in nodes[0].alive_members()), "- an up event:", came_up.is_set())
    for member in nodes[0].alive_members():  # a Member (or its node_id bytes) names a peer everywhere
        if member.name != nodes[0].name:
            print(member.name, "answers", nodes[0].call(member, "whoami"))
    print("overlay:", nodes[0].current_topology()["overlay"])
finally:
    for node in nodes:
        node.stop()
