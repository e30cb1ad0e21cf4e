"""Client-role peers: call services and subscribe to broadcasts without being cluster members.

A :class:`Client` binds nothing. It says HELLO with role ``client`` to a node's membership endpoint; the
node answers WELCOME and records it as a client (never in its peers or membership). Its calls are
answered back over the connection they came in on, so a client behind NAT or a firewall works as long as
it can reach the node. The CLI uses this role; non-Python programs can too (docs/protocol.md).
"""

from __future__ import annotations

import os
from typing import Any

from .config import NodeConfig
from .node import Node, Service
from .wire import Role


class Client(Node):
    """A client-role peer (async API): ``connect``, ``call``, ``send``, ``subscribe``, ``ping``.

    >>> client = Client()                                  # doctest: +SKIP
    >>> await client.start()                               # doctest: +SKIP
    >>> server = await client.connect("tcp://127.0.0.1:7946")   # doctest: +SKIP
    >>> await client.call(server.id, "echo", {"hi": 1})    # doctest: +SKIP
    """

    _role = Role.CLIENT

    def __init__(self, config: NodeConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or NodeConfig(name=f"client-{os.getpid()}"), **kwargs)

    def add_service(self, name: str, fn: Service) -> None:
        """Clients bind nothing, so nobody could call their services: refused with a clear error."""
        raise TypeError("a Client cannot offer services; run a Node for that")
