"""Foundation fabric: a distributed messaging fabric over ZeroMQ.

Start here: :class:`Node` (async) or :class:`BlockingNode` (synchronous), configured by
:class:`NodeConfig`. docs/guide.md walks from a cluster in ten lines to channels, calls and broadcast.
"""

from .blocking import BlockingClient, BlockingNode
from .client import Client
from .config import DEFAULT_CHANNELS, MEMBERSHIP_CHANNEL, ChannelConfig, NodeConfig, OnFull, TransportConfig
from .errors import (
    BadRequest,
    CallError,
    CallTimeout,
    ConfigError,
    FabricError,
    InsecureBindError,
    NodeStateError,
    NoSuchService,
    Overloaded,
    ProtocolError,
    RemoteHandlerError,
    Unreachable,
    VersionMismatch,
)
from .node import Message, Node, PeerInfo
from .transport.base import ChannelKind

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CHANNELS",
    "MEMBERSHIP_CHANNEL",
    "BadRequest",
    "BlockingClient",
    "BlockingNode",
    "CallError",
    "CallTimeout",
    "ChannelConfig",
    "ChannelKind",
    "Client",
    "ConfigError",
    "FabricError",
    "InsecureBindError",
    "Message",
    "Node",
    "NodeConfig",
    "NodeStateError",
    "NoSuchService",
    "OnFull",
    "Overloaded",
    "PeerInfo",
    "ProtocolError",
    "RemoteHandlerError",
    "TransportConfig",
    "Unreachable",
    "VersionMismatch",
    "__version__",
]
