"""``Events``: 1.x event creation, validation, msgpack serialization and the bounded in-memory store.

Theory of operation. An :class:`Event` is immutable. ``store`` re-validates it and inserts it under its
``event_id`` (an existing id is overwritten in place, as in 1.x); two secondary indexes (by type, by
correlation id) make the common queries proportional to the match count, not the store size. The store
is bounded by the app's ``storage.hot`` config: beyond ``max_events`` the oldest inserted events are
dropped (counted in ``events_dropped``), and every ``prune_interval`` ms a sweep drops events older than
``max_age_seconds`` (``events_expired``); both use the app's injected clock. ``store_batch`` validates
every event before inserting any, so a batch is all-or-nothing. Telemetry is emitted after the store lock
is released.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import msgpack

from foundation._errors import Error, FoundationError, raise_error, type_error, value_error
from foundation._graceful import EventsFallback
from foundation._ports import MetricsSink
from foundation._service import AppEnv, Service
from foundation._utils import Utils, packb

__all__ = ["Event", "EventStore"]

_MAX_DATA_BYTES = 1_000_000
_FORMAT_VERSION = 1
_ORDER_KEYS = (None, "event_id", "timestamp")
_FIELDS = ("event_type", "event_id", "timestamp", "wall_time", "node", "pid", "correlation_id", "parent_id", "data")
# Rough per-event bookkeeping cost (record, index entries) added to the encoded data size in stats().
_EVENT_OVERHEAD_BYTES = 400


@dataclass(frozen=True, slots=True)
class Event:
    """An event (1.x ``%Foundation.Types.Event{}``).

    ``timestamp`` is monotonic ms from the app clock; ``wall_time`` an aware UTC datetime; ``node`` the
    node name (``"nonode@nohost"`` until the app is attached to a fabric node); ``pid`` the OS process id;
    ``data`` any msgpack-encodable value (tuples come back as lists after deserialization).
    """

    event_type: str
    event_id: int
    timestamp: int
    wall_time: datetime | None = None
    node: str | None = None
    pid: int | None = None
    correlation_id: str | None = None
    parent_id: int | None = None
    data: Any = None

    def to_dict(self) -> dict[str, Any]:
        """All fields as a dict; ``wall_time`` as an ISO-8601 string (the msgpack wire form)."""
        out = {f: getattr(self, f) for f in _FIELDS}
        out["wall_time"] = self.wall_time.isoformat() if self.wall_time is not None else None
        return out


def _data_error(code: int, error_type: str, message: str, severity: str = "medium",
                subcategory: str = "validation", **context: Any) -> Error:
    return Error.build(code, error_type, message, category="data", subcategory=subcategory,
                       severity=severity, context=context)  # type: ignore[arg-type]


def _is_pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def validate_event(event: Any) -> int:
    """Validate an event with the 1.x rules; return its encoded data size in bytes.

    Raises:
        ValidationFailed: 2001 ``validation_failed`` (required field missing), 2002 ``type_mismatch``
            (wrong field type or data that msgpack cannot encode), 2003 ``data_too_large`` (> 1 MB encoded).
    """
    if not isinstance(event, Event):
        raise_error(_data_error(2005, "invalid_argument", "expected an Event", "high",
                                got=type(event).__name__))
    for name in ("event_type", "event_id", "timestamp"):
        if getattr(event, name) is None:
            raise_error(_data_error(2001, "validation_failed", f"Event field {name} is required", "high",
                                    field=name))
    checks: list[tuple[str, bool]] = [
        ("event_id", _is_pos_int(event.event_id)),
        ("event_type", isinstance(event.event_type, str) and event.event_type != ""),
        ("timestamp", isinstance(event.timestamp, int) and not isinstance(event.timestamp, bool)),
        ("wall_time", event.wall_time is None or isinstance(event.wall_time, datetime)),
        ("node", event.node is None or isinstance(event.node, str)),
        ("pid", event.pid is None or (isinstance(event.pid, int) and not isinstance(event.pid, bool))),
        ("correlation_id", event.correlation_id is None or isinstance(event.correlation_id, str)),
        ("parent_id", event.parent_id is None or _is_pos_int(event.parent_id)),
    ]
    for name, ok in checks:
        if not ok:
            raise_error(_data_error(2002, "type_mismatch", f"Event field {name} has the wrong type", field=name,
                                    value=Utils.safe_inspect(getattr(event, name))))
    try:
        size = len(packb(event.data))
    except (TypeError, ValueError, OverflowError) as exc:
        raise_error(_data_error(2002, "type_mismatch", f"Event data cannot be encoded: {exc}", field="data"), exc)
    if size > _MAX_DATA_BYTES:
        raise_error(_data_error(2003, "data_too_large", "Event data exceeds 1 MB", "high", size=size,
                                max_size=_MAX_DATA_BYTES))
    return size


@dataclass(slots=True)
class _Order:
    """Whether a sequence of events, in insertion order, is already sorted by timestamp / by id.

    Events usually arrive in timestamp and id order, so sorted queries can then skip sorting and stop
    after ``offset + limit`` matches. Removing events keeps a sorted sequence sorted.
    """

    last_ts: int | None = None
    ts_sorted: bool = True
    last_id: int = 0
    id_sorted: bool = True

    def add(self, event: Event) -> None:
        if self.last_ts is not None and event.timestamp < self.last_ts:
            self.ts_sorted = False
        if event.event_id < self.last_id:
            self.id_sorted = False
        self.last_ts, self.last_id = event.timestamp, event.event_id

    def presorted(self, order_by: str | None) -> bool:
        return order_by is None or (self.ts_sorted if order_by == "timestamp" else self.id_sorted)


class EventStore(Service):
    """The event store of one app (public as ``foundation.Events`` for ``"production"``).

    Thread-safe; every method may be called from any thread. Creation helpers (``new_event``,
    ``function_entry`` ...) and ``serialize``/``deserialize`` work while the store is stopped; store and
    query calls raise :class:`ServiceUnavailable` (3000) then.
    """

    service_name = "event_store"
    unavailable_code = 3000
    forbidden_code = 3002

    def __init__(self, env: AppEnv, *, telemetry: MetricsSink,
                 hot_settings: Callable[[], Mapping[str, Any] | None] = lambda: None) -> None:
        """``telemetry`` receives the ``events_stored`` counters; ``hot_settings()`` is read at each start
        for the ``storage.hot`` limits (``max_events``, ``max_age_seconds``, ``prune_interval``); the app
        passes its config's ``storage.hot`` (the config service is built after this store, since it
        records its audit events here)."""
        super().__init__(env)
        self._telemetry = telemetry
        self._hot_settings = hot_settings
        self._reset_storage()
        self._max_events = 100_000
        self._max_age_ms = 3_600_000
        self._prune_interval_ms = 60_000
        #: 1.x ``Foundation.Events.GracefulDegradation``: helpers that degrade instead of raising.
        self.GracefulDegradation = EventsFallback(self)  # noqa: N815 - 1.x module name

    def _reset_storage(self) -> None:
        self._events: dict[int, Event] = {}
        self._sizes: dict[int, int] = {}
        self._bytes = 0
        self._by_type: dict[str, dict[int, None]] = {}
        self._by_corr: dict[str, dict[int, None]] = {}
        self._order_all = _Order()
        self._order_by_type: dict[str, _Order] = {}
        self._order_by_corr: dict[str, _Order] = {}
        self._next_id = 1
        self._stored = 0
        self._pruned = 0
        self._dropped = 0
        self._expired = 0
        self._last_sweep_ms = self._env.clock.monotonic_ms()

    def _on_start(self) -> None:
        self._reset_storage()

    def initialize(self) -> None:
        """Start the store with the ``storage.hot`` limits of the app config; a no-op if running."""
        if self._running:
            return
        # Read the config before taking our own lock: the config service calls into the store while it
        # holds its lock (update -> store event), so the lock order is always config -> events.
        hot = self._hot_settings() or {}
        with self._lock:
            if self._running:
                return
            self._max_events = int(hot.get("max_events", 100_000))
            self._max_age_ms = int(hot.get("max_age_seconds", 3600)) * 1000
            self._prune_interval_ms = int(hot.get("prune_interval", 60_000))
            self._start()

    def status(self) -> dict[str, Any]:
        """``{"status": "running", "event_count", "next_id"}``. Raises ServiceUnavailable (3000)."""
        with self._lock:
            self._check_running()
            return {"status": "running", "event_count": len(self._events), "next_id": self._next_id}

    # -- creation (pure) --------------------------------------------------------------------------

    def new_event(
        self,
        event_type: str,
        data: Any = None,
        *,
        event_id: int | None = None,
        timestamp: int | None = None,
        wall_time: datetime | None = None,
        node: str | None = None,
        pid: int | None = None,
        correlation_id: str | None = None,
        parent_id: int | None = None,
    ) -> Event:
        """A validated event. Defaults: a fresh ``Utils.generate_id()``, the app clock's monotonic ms and
        wall time, the app's node name, ``os.getpid()``, and a new UUIDv4 correlation id per event.

        Raises:
            ValidationFailed: 2001/2002/2003 (see :func:`validate_event`).
        """
        clock = self._env.clock
        event = Event(
            event_type=event_type,
            event_id=Utils.generate_id() if event_id is None else event_id,
            timestamp=clock.monotonic_ms() if timestamp is None else timestamp,
            wall_time=clock.wall() if wall_time is None else wall_time,
            node=self._env.node_name if node is None else node,
            pid=os.getpid() if pid is None else pid,
            correlation_id=Utils.generate_correlation_id() if correlation_id is None else correlation_id,
            parent_id=parent_id,
            data=data,
        )
        validate_event(event)
        return event

    def debug_new_event(self, event_type: str, data: Any = None, **opts: Any) -> Event:
        """Same as :meth:`new_event` (1.x's raising variant; here every variant raises)."""
        return self.new_event(event_type, data, **opts)

    def function_entry(self, module: str, function: str, arity: int, args: Any, *,
                       caller_module: str | None = None, caller_function: str | None = None,
                       caller_line: int | None = None, **opts: Any) -> Event:
        """A ``function_entry`` event with data ``{call_id, module, function, arity, args (truncated),
        caller_module, caller_function, caller_line}``. Nothing is stored."""
        data = {"call_id": Utils.generate_id(), "module": module, "function": function, "arity": arity,
                "args": Utils.truncate_if_large(args), "caller_module": caller_module,
                "caller_function": caller_function, "caller_line": caller_line}
        return self.new_event("function_entry", data, **opts)

    def function_exit(self, module: str, function: str, arity: int, call_id: int, result: Any,
                      duration_ns: int, exit_reason: str) -> Event:
        """A ``function_exit`` event with data ``{call_id, module, function, arity, result, duration_ns,
        exit_reason}``. Nothing is stored."""
        data = {"call_id": call_id, "module": module, "function": function, "arity": arity,
                "result": Utils.truncate_if_large(result), "duration_ns": duration_ns, "exit_reason": exit_reason}
        return self.new_event("function_exit", data)

    def state_change(self, server: Any, callback: str, old_state: Any, new_state: Any, *,
                     trigger_message: Any = None, trigger_call_id: int | None = None, **opts: Any) -> Event:
        """A ``state_change`` event with data ``{server_pid, callback, old_state, new_state, state_diff
        ("no_change" | "changed"), trigger_message, trigger_call_id}``. Nothing is stored."""
        data = {"server_pid": server, "callback": callback, "old_state": Utils.truncate_if_large(old_state),
                "new_state": Utils.truncate_if_large(new_state),
                "state_diff": "no_change" if old_state == new_state else "changed",
                "trigger_message": trigger_message, "trigger_call_id": trigger_call_id}
        return self.new_event("state_change", data, **opts)

    # -- serialization (msgpack, never pickle) ----------------------------------------------------

    @staticmethod
    def serialize(event: Event, *, compress: bool = False) -> bytes:
        """The event as msgpack bytes ``{"v": 1, "e": fields}`` or, compressed, ``{"v": 1, "z": zlib(fields)}``.

        Raises:
            DataError: 3101 ``serialization_failed`` when the event cannot be encoded.
        """
        try:
            body = packb(event.to_dict())
            return packb({"v": _FORMAT_VERSION, "z": zlib.compress(body)} if compress
                         else {"v": _FORMAT_VERSION, "e": event.to_dict()})
        except (TypeError, ValueError, OverflowError, AttributeError) as exc:
            return raise_error(Error.new("serialization_failed", f"cannot serialize event: {exc}"), exc)

    @staticmethod
    def deserialize(blob: bytes) -> Event:
        """Decode and re-validate bytes from :meth:`serialize`.

        Raises:
            DataError: 3102 ``deserialization_failed`` (malformed bytes, unknown version, invalid event).
        """
        try:
            outer = msgpack.unpackb(blob, raw=False, strict_map_key=False)
            if not isinstance(outer, dict) or outer.get("v") != _FORMAT_VERSION:
                raise ValueError("unknown serialization format")
            fields = msgpack.unpackb(zlib.decompress(outer["z"]), raw=False, strict_map_key=False) \
                if "z" in outer else outer["e"]
            if not isinstance(fields, dict):
                raise ValueError("event body is not a map")
            kwargs = {f: fields.get(f) for f in _FIELDS}
            if kwargs["wall_time"] is not None:
                kwargs["wall_time"] = datetime.fromisoformat(kwargs["wall_time"])
            event = Event(**kwargs)  # type: ignore[arg-type]  # validate_event checks the types
            validate_event(event)
            return event
        except (ValueError, TypeError, KeyError, zlib.error, msgpack.ExtraData, FoundationError) as exc:
            return raise_error(Error.new("deserialization_failed", f"cannot deserialize event: {exc}"), exc)

    @staticmethod
    def serialized_size(event: Event) -> int:
        """``len(serialize(event))``."""
        return len(EventStore.serialize(event))

    # -- storage ----------------------------------------------------------------------------------

    def _insert(self, event: Event, size: int) -> None:
        eid = event.event_id
        old = self._events.pop(eid, None)
        if old is not None:  # same id: overwrite (1.x), re-inserted at the newest position
            self._unindex(old)
        self._events[eid] = event
        self._sizes[eid] = size
        self._bytes += size
        self._by_type.setdefault(event.event_type, {})[eid] = None
        if event.correlation_id is not None:
            self._by_corr.setdefault(event.correlation_id, {})[eid] = None
            corr_order = self._order_by_corr.get(event.correlation_id)
            if corr_order is None:
                corr_order = self._order_by_corr[event.correlation_id] = _Order()
            corr_order.add(event)
        self._order_all.add(event)
        order = self._order_by_type.get(event.event_type)
        if order is None:
            order = self._order_by_type[event.event_type] = _Order()
        order.add(event)
        self._next_id = max(self._next_id, eid) + 1
        self._stored += 1

    def _unindex(self, event: Event) -> None:
        eid = event.event_id
        self._bytes -= self._sizes.pop(eid, 0)
        bucket = self._by_type.get(event.event_type)
        if bucket is not None:
            bucket.pop(eid, None)
            if not bucket:
                del self._by_type[event.event_type]
                del self._order_by_type[event.event_type]
        if event.correlation_id is not None:
            cb = self._by_corr.get(event.correlation_id)
            if cb is not None:
                cb.pop(eid, None)
                if not cb:
                    del self._by_corr[event.correlation_id]
                    del self._order_by_corr[event.correlation_id]

    def _remove(self, eid: int) -> None:
        event = self._events.pop(eid)
        self._unindex(event)
        if not self._events:
            self._order_all = _Order()

    def _enforce_limits(self) -> None:
        while len(self._events) > self._max_events:
            self._remove(next(iter(self._events)))
            self._dropped += 1
        now = self._env.clock.monotonic_ms()
        if now - self._last_sweep_ms >= self._prune_interval_ms:
            self._sweep_expired(now)

    def _sweep_expired(self, now: int) -> int:
        self._last_sweep_ms = now
        cutoff = now - self._max_age_ms
        old = [eid for eid, e in self._events.items() if e.timestamp < cutoff]
        for eid in old:
            self._remove(eid)
        self._expired += len(old)
        return len(old)

    def expire_now(self) -> int:
        """Drop events older than ``storage.hot.max_age_seconds`` now (normally done every
        ``prune_interval`` ms during stores); return how many were dropped."""
        with self._lock:
            self._check_running()
            return self._sweep_expired(self._env.clock.monotonic_ms())

    def store(self, event: Event) -> int:
        """Validate and store ``event``; return its id. An existing id is overwritten (1.x).

        Raises:
            DataError: 2005 ``invalid_argument`` for a non-Event.
            ValidationFailed: 2001/2002/2003.
            ServiceUnavailable: 3000.
        """
        size = validate_event(event)
        with self._lock:
            self._check_running()
            self._insert(event, size)
            self._enforce_limits()
        self._telemetry.emit_counter(("foundation", "event_store", "events_stored"),
                                         {"event_type": event.event_type, "event_id": event.event_id})
        return event.event_id

    def store_batch(self, events: Sequence[Event]) -> list[int]:
        """Store all of ``events`` or none (every event is validated first); return their ids in order.

        Raises:
            FoundationTypeError: ``events`` is not a list/tuple.
            ValidationFailed / DataError: the first invalid event; nothing was stored.
            ServiceUnavailable: 3000.
        """
        if not isinstance(events, list | tuple):
            raise type_error("store_batch expects a list of events")
        sizes = [validate_event(e) for e in events]
        with self._lock:
            self._check_running()
            for event, size in zip(events, sizes, strict=True):
                self._insert(event, size)
            self._enforce_limits()
        if events:
            self._telemetry.emit_counter(("foundation", "event_store", "events_stored"),
                                             {"batch": True}, value=len(events))
        return [e.event_id for e in events]

    def get(self, event_id: int) -> Event:
        """The event with ``event_id``.

        Raises:
            FoundationTypeError: ``event_id`` is not a positive int (1.x FunctionClauseError).
            EventNotFound: 3001 ``not_found``.
            ServiceUnavailable: 3000.
        """
        if not _is_pos_int(event_id):
            raise type_error("event_id must be a positive int", event_id=repr(event_id))
        with self._lock:
            self._check_running()
            event = self._events.get(event_id)
        if event is None:
            raise_error(_data_error(3001, "not_found", f"Event {event_id} not found", "low", "retrieval",
                                    event_id=event_id))
        return event

    def query(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        event_type: str | None = None,
        time_range: tuple[int, int] | None = None,
        order_by: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events matching every given filter (1.x ``query/1``).

        ``event_type`` equality; ``time_range=(start, end)`` inclusive on ``timestamp``; ``order_by``
        ``"event_id"`` or ``"timestamp"`` ascending (ties keep insertion order; ``None`` = insertion order);
        then ``offset`` (>= 0) and ``limit`` (> 0). ``spec`` is the 1.x map form; its unknown keys are
        ignored and keyword arguments win. There is no correlation filter (use :meth:`get_by_correlation`).

        Raises:
            FoundationTypeError: ``spec`` is not a mapping.
            FoundationValueError: bad ``order_by``, ``offset``, ``limit`` or ``time_range``.
            ServiceUnavailable: 3000.
        """
        if spec is not None and not isinstance(spec, Mapping):
            raise type_error("query spec must be a mapping", spec=repr(spec))
        if spec is not None:
            event_type = event_type if event_type is not None else spec.get("event_type")
            time_range = time_range if time_range is not None else spec.get("time_range")
            order_by = order_by if order_by is not None else spec.get("order_by")
            offset = offset if offset is not None else spec.get("offset")
            limit = limit if limit is not None else spec.get("limit")
        if order_by not in _ORDER_KEYS:
            raise value_error("order_by must be 'event_id', 'timestamp' or None", order_by=repr(order_by))
        if offset is not None and (not isinstance(offset, int) or isinstance(offset, bool) or offset < 0):
            raise value_error("offset must be an int >= 0", offset=repr(offset))
        if limit is not None and not _is_pos_int(limit):
            raise value_error("limit must be an int > 0", limit=repr(limit))
        if time_range is not None and (not isinstance(time_range, list | tuple) or len(time_range) != 2):
            raise value_error("time_range must be (start, end)", time_range=repr(time_range))
        with self._lock:
            self._check_running()
            if event_type is not None:
                source: Iterable[Event] = (self._events[i] for i in self._by_type.get(event_type, {}))
            else:
                source = self._events.values()
            if time_range is not None:
                start, end = time_range
                source = (e for e in source if start <= e.timestamp <= end)
            order = self._order_all if event_type is None else self._order_by_type.get(event_type, _Order())
            presorted = order.presorted(order_by)
            if presorted and limit is not None:
                # Already in the requested order: stop scanning once offset + limit matches are found.
                found = list(itertools.islice(source, (offset or 0) + limit))
            else:
                found = list(source)
        if not presorted:
            found.sort(key=(lambda e: e.event_id) if order_by == "event_id" else (lambda e: e.timestamp))
        if offset:
            found = found[offset:]
        if limit is not None:
            found = found[:limit]
        return found

    def get_by_correlation(self, correlation_id: str) -> list[Event]:
        """Events with ``correlation_id``, by timestamp ascending. Raises ServiceUnavailable (3000)."""
        if not isinstance(correlation_id, str):
            raise type_error("correlation_id must be a str")
        with self._lock:
            self._check_running()
            found = [self._events[i] for i in self._by_corr.get(correlation_id, {})]
            order = self._order_by_corr.get(correlation_id)
            presorted = order is None or order.ts_sorted
        if not presorted:
            found.sort(key=lambda e: e.timestamp)
        return found

    def get_correlation_chain(self, correlation_id: str) -> list[Event]:
        """Same as :meth:`get_by_correlation` (as in 1.x)."""
        return self.get_by_correlation(correlation_id)

    def get_time_range(self, start: int, end: int) -> list[Event]:
        """``query(time_range=(start, end), order_by="timestamp")``."""
        return self.query(time_range=(start, end), order_by="timestamp")

    def get_recent(self, limit: int = 100) -> list[Event]:
        """The ``limit`` most recent events by timestamp, oldest of them first.

        (1.x returned the *oldest* ``limit`` events; fixed, see docs/compat.md.)
        """
        if not _is_pos_int(limit):
            raise value_error("limit must be an int > 0", limit=repr(limit))
        with self._lock:
            self._check_running()
            if self._order_all.ts_sorted:
                newest = list(itertools.islice(reversed(self._events.values()), limit))
                newest.reverse()
                return newest
        return self.query(order_by="timestamp")[-limit:]

    def prune_before(self, timestamp: int) -> int:
        """Delete events with ``timestamp`` strictly before ``timestamp``; return how many."""
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise type_error("timestamp must be an int")
        with self._lock:
            self._check_running()
            old = [eid for eid, e in self._events.items() if e.timestamp < timestamp]
            for eid in old:
                self._remove(eid)
            self._pruned += len(old)
            return len(old)

    def stats(self) -> dict[str, Any]:
        """``{events_stored, events_pruned, events_dropped, events_expired, start_time, current_event_count,
        uptime_ms, memory_usage_estimate (bytes), max_events}``. Raises ServiceUnavailable (3000)."""
        with self._lock:
            self._check_running()
            count = len(self._events)
            return {"events_stored": self._stored, "events_pruned": self._pruned,
                    "events_dropped": self._dropped, "events_expired": self._expired,
                    "start_time": self._started_at_ms, "current_event_count": count,
                    "uptime_ms": self._uptime_ms(),
                    "memory_usage_estimate": self._bytes + count * _EVENT_OVERHEAD_BYTES,
                    "max_events": self._max_events}

    def reset_state(self) -> None:
        """Test mode only: drop every event and counter. Raises SecurityViolation (3002) otherwise."""
        self._check_test_mode()
        with self._lock:
            self._check_running()
            self._reset_storage()

    # -- pure helpers (1.x EventLogic) -------------------------------------------------------------

    @staticmethod
    def extract_correlation_chain(events: Iterable[Event], correlation_id: str) -> list[Event]:
        """Events with ``correlation_id``, by timestamp."""
        return sorted((e for e in events if e.correlation_id == correlation_id), key=lambda e: e.timestamp)

    @staticmethod
    def group_by_correlation(events: Iterable[Event]) -> dict[str, list[Event]]:
        """``{correlation_id: [events by timestamp]}``; events without a correlation id are dropped."""
        groups: dict[str, list[Event]] = {}
        for e in events:
            if e.correlation_id is not None:
                groups.setdefault(e.correlation_id, []).append(e)
        for group in groups.values():
            group.sort(key=lambda e: e.timestamp)
        return groups

    @staticmethod
    def filter_by_time_range(events: Iterable[Event], start: int, end: int) -> list[Event]:
        """Events with ``start <= timestamp <= end``."""
        return [e for e in events if start <= e.timestamp <= end]

    @staticmethod
    def transform_event_data(event: Event, fn: Callable[[Any], Any]) -> Event:
        """A copy of ``event`` with ``data = fn(data)``."""
        return replace(event, data=fn(event.data))
