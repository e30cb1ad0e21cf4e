"""Bounded structures for what remote peers can make a node remember (issue 16, item 5).

* :class:`TokenBuckets` — rate limits per source (HELLO, client calls), with a bounded, least recently
  used table of sources: random source ids cost one bucket each, up to ``max_keys``.
* :class:`LruCounterMap` — a bounded mapping that forgets what was not used recently (``_last_seq``).
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
    """A mapping of at most ``max_size`` entries that forgets what was not used recently (a generational
    approximation of least-recently-used, cheap enough for the receive path: a hit is one dict lookup).

    Entries live in a *hot* generation and a *cold* one. A lookup that misses the hot one moves the entry
    up from the cold one; when the hot generation reaches half of ``max_size`` it becomes the cold one and
    whatever was still cold is forgotten (counted in :attr:`evictions`). So an entry used at least once
    per ``max_size / 2`` new keys is never forgotten, and the map never holds more than ``max_size``."""

    __slots__ = ("max_size", "hot", "_cold", "evictions")

    def __init__(self, max_size: int) -> None:
        if max_size < 2:
            raise ValueError("max_size must be >= 2")
        self.max_size = max_size
        self.hot: dict[K, V] = {}
        """The recent generation: read it directly on hot paths, call :meth:`miss` when a key is absent."""
        self._cold: dict[K, V] = {}
        self.evictions = 0
        """Entries forgotten because they were not used for a whole generation."""

    def __len__(self) -> int:
        return len(self.hot) + len(self._cold)

    def __contains__(self, key: object) -> bool:
        return key in self.hot or key in self._cold

    def get(self, key: K) -> V | None:
        """The value of ``key`` (None when absent); does not move it."""
        value = self.hot.get(key)
        return value if value is not None else self._cold.get(key)

    def miss(self, key: K) -> V | None:
        """``key`` is not in :attr:`hot`: take its value out of the cold generation (None when absent) and
        make room in the hot one, so that ``hot[key] = value`` may follow."""
        value = self._cold.pop(key, None)
        if len(self.hot) >= self.max_size // 2:
            self.evictions += len(self._cold)
            self._cold = self.hot
            self.hot = {}
        return value

    def swap(self, key: K, value: V) -> V | None:
        """Store ``value`` under ``key`` as recently used; return the previous value (None: absent)."""
        old = self.hot.get(key)
        if old is None:
            old = self.miss(key)
        self.hot[key] = value
        return old

    def clear(self) -> None:
        """Forget everything."""
        self.hot.clear()
        self._cold.clear()


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
