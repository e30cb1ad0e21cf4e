"""Transports: the ZeroMQ transport and the in-memory transport, behind one interface."""

from .base import ChannelKind, ChannelSpec, Link, Receiver, Transport

__all__ = ["ChannelKind", "ChannelSpec", "Link", "Receiver", "Transport"]
