"""Graceful degradation for Config and Events (1.x ``Config.GracefulDegradation``,
``Events.GracefulDegradation``), reachable as ``Config.GracefulDegradation`` and
``Events.GracefulDegradation``.

Config: successful ``get_with_fallback`` reads are cached with their time; while the config service is
unavailable the cached value is served (entries older than ``ttl_ms``, default 300 000 as in 1.x, are
dropped by ``cleanup_expired_cache``). A failed ``update_with_fallback`` remembers the update per path
(the last value wins, so the pending set is bounded by the updatable paths) and ``retry_pending_updates``
replays them. Events: ``*_safe`` helpers never raise for service or data problems; events that could not
be stored wait in a bounded buffer (100, oldest dropped, as 1.x's process-dictionary buffer) until
``retry_buffered``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from foundation._clock import Clock
from foundation._errors import Error, FoundationError, raise_error
from foundation._utils import Utils, packb

# An Event of foundation._events; that module builds EventsFallback, so this one must not import it.
Event = Any

__all__ = ["ConfigFallback", "EventsFallback"]

log = logging.getLogger("foundation.graceful")


class ConfigFallback:
    """Config reads served from a cache while the config service is unavailable. Thread-safe."""

    def __init__(self, config: Any, clock: Clock, ttl_ms: int = 300_000) -> None:
        # ``config`` is the ConfigServer that builds this object (get/update are used).
        self._config = config
        self._clock = clock
        self.ttl_ms = ttl_ms
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], tuple[Any, int]] = {}
        self._pending: dict[tuple[Any, ...], tuple[Any, int]] = {}

    def initialize_fallback_system(self) -> None:
        """Start with an empty cache (1.x created its ETS table here)."""
        self.cleanup_fallback_system()

    def cleanup_fallback_system(self) -> None:
        """Drop the cache and the pending updates."""
        with self._lock:
            self._cache.clear()
            self._pending.clear()

    def get_with_fallback(self, path: Sequence[str]) -> Any:
        """``Config.get(path)``, cached; on failure the cached value.

        Raises:
            FoundationError: ``config_unavailable`` when the read fails and nothing is cached (the original
                error is chained).
        """
        key = tuple(path)
        try:
            value = self._config.get(path)
        except FoundationError as exc:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None:
                return cached[0]
            raise_error(Error.new("config_unavailable", f"config unavailable and {list(key)} not cached",
                                  context={"path": list(key), "reason": exc.error.error_type}), exc)
        with self._lock:
            self._cache[key] = (value, self._clock.monotonic_ms())
        return value

    def update_with_fallback(self, path: Sequence[str], value: Any) -> None:
        """``Config.update``; when the service is unavailable the update is remembered for
        :meth:`retry_pending_updates` and the error is still raised (as in 1.x)."""
        try:
            self._config.update(path, value)
        except FoundationError as exc:
            if exc.error.error_type == "service_unavailable":
                with self._lock:
                    self._pending[tuple(path)] = (value, self._clock.monotonic_ms())
            raise

    def retry_pending_updates(self) -> int:
        """Replay remembered updates; return how many succeeded (the others stay pending unless they
        are now rejected for good, e.g. by validation)."""
        with self._lock:
            pending = list(self._pending.items())
        done = 0
        for key, (value, _) in pending:
            try:
                self._config.update(key, value)
            except FoundationError as exc:
                if exc.error.error_type == "service_unavailable":
                    continue
                log.warning("dropping pending config update %s: %s", list(key), exc.error)
            else:
                done += 1
            with self._lock:
                if self._pending.get(key, (None, None))[0] is value:
                    del self._pending[key]
        return done

    def cleanup_expired_cache(self) -> int:
        """Drop cache entries older than ``ttl_ms``; return how many."""
        cutoff = self._clock.monotonic_ms() - self.ttl_ms
        with self._lock:
            old = [k for k, (_, ts) in self._cache.items() if ts < cutoff]
            for k in old:
                del self._cache[k]
        return len(old)

    def get_cache_stats(self) -> dict[str, int]:
        """``{total_entries, memory_bytes, config_cache_entries, pending_update_entries}``."""
        with self._lock:
            size = sum(Utils.deep_size(v) for v, _ in self._cache.values())
            return {"total_entries": len(self._cache) + len(self._pending), "memory_bytes": size,
                    "config_cache_entries": len(self._cache), "pending_update_entries": len(self._pending)}


class EventsFallback:
    """Event helpers that degrade instead of raising. Thread-safe."""

    def __init__(self, events: Any, buffer_size: int = 100) -> None:
        # ``events`` is the EventStore that builds this object (new_event/serialize/store/query are used).
        self._events = events
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self.buffer_dropped = 0

    def new_event_safe(self, event_type: str, data: Any = None, **opts: Any) -> Event:
        """``new_event``; if the data is invalid, an event whose data is a safe text preview instead."""
        events = self._events
        try:
            return events.new_event(event_type, data, **opts)
        except FoundationError as exc:
            preview = {"fallback": True, "reason": exc.error.error_type, "preview": Utils.safe_inspect(data, 500)}
            etype = event_type if isinstance(event_type, str) and event_type else "fallback_event"
            return events.new_event(etype, preview)

    def serialize_safe(self, event: Event) -> bytes:
        """``serialize``; on failure msgpack ``{"fallback": "json", "json": ...}`` or a minimal map."""
        try:
            blob: bytes = self._events.serialize(event)
            return blob
        except FoundationError:
            try:
                text = json.dumps(event.to_dict(), default=repr)
                return packb({"fallback": "json", "json": text})
            except (TypeError, ValueError):
                return packb({"fallback": "minimal", "event_type": str(event.event_type),
                              "event_id": event.event_id})

    def deserialize_safe(self, blob: bytes) -> Event | dict[str, Any]:
        """``deserialize``; a fallback form from :meth:`serialize_safe` (or garbage) comes back as a dict."""
        try:
            return self._events.deserialize(blob)
        except FoundationError as exc:
            import msgpack

            try:
                decoded = msgpack.unpackb(blob, raw=False, strict_map_key=False)
            except Exception:
                decoded = None
            if isinstance(decoded, Mapping) and "fallback" in decoded:
                return dict(decoded)
            return {"fallback": "undecodable", "reason": exc.error.error_type, "size": len(blob)}

    def store_safe(self, event: Event) -> int | None:
        """``store``; while the store is unavailable the event is buffered (bounded, oldest dropped) and
        ``None`` returned. Invalid events are logged and dropped (``None``)."""
        try:
            event_id: int = self._events.store(event)
            return event_id
        except FoundationError as exc:
            if exc.error.error_type == "service_unavailable":
                with self._lock:
                    if len(self._buffer) == self._buffer.maxlen:
                        self.buffer_dropped += 1
                    self._buffer.append(event)
            else:
                log.warning("store_safe dropped an invalid event: %s", exc.error)
            return None

    def retry_buffered(self) -> int:
        """Store buffered events (in order) now; return how many were stored."""
        with self._lock:
            pending, self._buffer = list(self._buffer), deque(maxlen=self._buffer.maxlen)
        stored = 0
        for i, event in enumerate(pending):
            try:
                self._events.store(event)
                stored += 1
            except FoundationError as exc:
                if exc.error.error_type == "service_unavailable":
                    with self._lock:
                        self._buffer.extendleft(reversed(pending[i:]))
                    break
        return stored

    def buffered(self) -> int:
        """Events waiting in the buffer."""
        with self._lock:
            return len(self._buffer)

    def query_safe(self, spec: Mapping[str, Any] | None = None, **kwargs: Any) -> tuple[list[Event], str | None]:
        """``(query(...), None)``, or ``([], warning)`` when the query fails (1.x ``{:ok, [], %{warning}}``)."""
        try:
            return self._events.query(spec, **kwargs), None
        except FoundationError as exc:
            return [], f"query failed: {exc.error.error_type}"
