"""Client-role peers: call services and subscribe to broadcasts without being cluster members.

A :class:`Client` binds nothing. It says HELLO with role ``client`` to a node's membership endpoint; the
node answers WELCOME and records it as a client (never in its peers or membership). Its calls are
answered back over the connection they came in on, so a client behind NAT or a firewall works as long as
it can reach the node. The CLI uses this role; non-Python programs can too (docs/protocol.md).

A Client is not a Node: it shares the Node's parts (peers and handshake, outboxes, calls, subscriptions:
:class:`fabric.node.endpoint.Endpoint`) and has only what a client can do - no services, no
membership, no broadcast.
"""

from __future__ import annotations

import os

from .config import NodeConfig
from .node.endpoint import Endpoint
from .transport.base import Transport
from .wire import Role


class Client(Endpoint):
    """A client-role peer (async API): ``connect``, ``call``, ``send``, ``subscribe``, ``ping``,
    ``clock_offset``, ``disconnect``, ``peers``, ``stats``, ``health``.

    >>> client = Client()                                  # doctest: +SKIP
    >>> await client.start()                               # doctest: +SKIP
    >>> server = await client.connect("tcp://127.0.0.1:7946")   # doctest: +SKIP
    >>> await client.call(server.id, "echo", {"hi": 1})    # doctest: +SKIP
    """

    _role = Role.CLIENT

    def __init__(self, config: NodeConfig | None = None, *, transport: Transport | None = None) -> None:
        super().__init__(config or NodeConfig(name=f"client-{os.getpid()}"), transport=transport)
