"""Bounded structures for what remote peers can make a node remember (issue 16, item 5).

* :class:`TokenBuckets` — rate limits per source (HELLO, client calls), with a bounded, least recently
  used table of sources: random source ids cost one bucket each, up to ``max_keys``.
* :class:`LruCounterMap` — a bounded mapping that forgets its least recently used entry (``_last_seq``).
* :func:`origin_of` — who a message came from as the connection says it (development mode: the routing
  id or the link the message arrived on, self-asserted but the same for every message of a connection).
* :class:`RateLimitedLog` — one WARNING line per interval for refused peer input.

Pure data structures: no I/O; the caller passes ``now`` (the node's loop clock). Loop thread only.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from ..transport.base import Link
from ..wire import ROUTING_CLIENT, ROUTING_MEMBER
from ..wire.types import NODE_ID_BYTES

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TokenBuckets:
    """Token-bucket rate limits keyed by source: each key may take ``rate`` tokens per second on
    average and ``burst`` back to back. At most ``max_keys`` buckets are kept; beyond it the least
    recently used is forgotten (counted in :attr:`evictions`), which at worst gives a forgotten source
    a fresh burst: memory stays bounded whatever ids a flood uses."""

    def __init__(self, rate: float, burst: float, max_keys: int = 4096) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate > 0, burst >= 1 and max_keys >= 1 required")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [tokens, last refill]
        self.evictions = 0
        """Buckets forgotten because the table was full."""
        self.refused = 0
        """Requests refused (no token left)."""

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, key: Hashable, now: float) -> bool:
        """Take one token for ``key`` at time ``now``; False (counted) when its bucket is empty."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.max_keys:
                buckets.popitem(last=False)
                self.evictions += 1
            bucket = buckets[key] = [self.burst, now]
        else:
            buckets.move_to_end(key)
            elapsed = now - bucket[1]
            if elapsed > 0:
                bucket[0] = min(self.burst, bucket[0] + elapsed * self.rate)
                bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return True
        self.refused += 1
        return False

    def forget(self, key: Hashable) -> None:
        """Drop ``key``'s bucket (the source left)."""
        self._buckets.pop(key, None)


class LruCounterMap(Generic[K, V]):
    """A mapping of at most ``max_size`` entries that forgets the least recently used one when a new key
    arrives at the limit (counted in :attr:`evictions`). :meth:`swap` is the one hot-path operation."""

    __slots__ = ("max_size", "_data", "evictions")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._data: OrderedDict[K, V] = OrderedDict()
        self.evictions = 0
        """Entries forgotten because the map was full."""

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: K) -> V | None:
        """The value of ``key`` (None when absent); does not change the order."""
        return self._data.get(key)

    def swap(self, key: K, value: V) -> V | None:
        """Store ``value`` under ``key`` as the most recently used entry; return the previous value."""
        data = self._data
        old = data.get(key)
        if old is None:
            if len(data) >= self.max_size:
                data.popitem(last=False)
                self.evictions += 1
        else:
            data.move_to_end(key)
        data[key] = value
        return old

    def clear(self) -> None:
        """Forget everything."""
        self._data.clear()


def origin_of(route: bytes | None, link: Link | None) -> bytes | None:
    """The node id the connection a message arrived on speaks for: the node id inside a fabric routing
    id (ROUTER arrivals), or the link key when the message came back on a link to a node. None when
    nothing names one (a foreign routing id, a temporary handshake link)."""
    if route is not None:
        if len(route) > NODE_ID_BYTES and route[0] in (ROUTING_MEMBER, ROUTING_CLIENT):
            return bytes(route[1 : 1 + NODE_ID_BYTES])
        return None
    if isinstance(link, bytes) and len(link) == NODE_ID_BYTES:
        return link
    return None


def is_client_route(route: bytes | None) -> bool:
    """True when ``route`` is the routing id of a client-role peer."""
    return route is not None and len(route) > NODE_ID_BYTES and route[0] == ROUTING_CLIENT


class RateLimitedLog:
    """At most one log line per ``interval`` seconds (the counters count every event)."""

    def __init__(self, logger: logging.Logger, interval: float = 1.0) -> None:
        self._log = logger
        self.interval = interval
        self._last = -float("inf")
        self.suppressed = 0
        """Lines not written since the last one."""

    def warning(self, now: float, msg: str, *args: Any) -> None:
        """Log ``msg % args`` at WARNING unless a line was written less than ``interval`` ago."""
        if now - self._last < self.interval:
            self.suppressed += 1
            return
        self._last = now
        if self.suppressed:
            msg += " (%d similar lines suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self._log.warning(msg, *args)


__all__ = ["LruCounterMap", "RateLimitedLog", "TokenBuckets", "is_client_route", "origin_of"]
