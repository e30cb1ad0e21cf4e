"""Transports: the ZeroMQ transport and the in-memory transport, behind one interface."""

from .base import ChannelKind, ChannelSpec, Link, Receiver, Transport
from .faults import FaultPolicy, Faults

__all__ = ["ChannelKind", "ChannelSpec", "FaultPolicy", "Faults", "Link", "Receiver", "Transport"]
