"""The fabric node, as a package of parts: see :mod:`fabric.node.node` for the theory of operation.

Public names: :class:`Node`, :class:`Message`, :class:`PeerInfo`, :data:`Peer` (what a peer argument
accepts), :func:`members_of`, and the handler types :data:`Handler`, :data:`Service`, :data:`MemberListener`.
"""

from .membership import APP_LINK_IDLE, NodeMembership
from .message import Handler, MemberListener, Message, Peer, PeerInfo, Service, peer_id_bytes
from .node import Node, members_of
from .peers import HANDSHAKE_LANE
from .subscriptions import HANDLER_SLICE

__all__ = [
    "APP_LINK_IDLE",
    "HANDLER_SLICE",
    "HANDSHAKE_LANE",
    "Handler",
    "MemberListener",
    "Message",
    "Node",
    "NodeMembership",
    "Peer",
    "PeerInfo",
    "Service",
    "members_of",
    "peer_id_bytes",
]
