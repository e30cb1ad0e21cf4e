"""``Telemetry``: metrics recording, ``:telemetry``-style handlers and Prometheus export for one app.

Theory of operation. ``execute(name, measurements, metadata)`` is the single entry point; the helpers
(``emit_counter``, ``emit_gauge``, ``emit_histogram``, ``measure``/``span``) only shape measurements. Each
numeric measurement key becomes one *series family* of the metric ``name``; its kind comes from the key:
``counter``/``count`` are summed, ``histogram``/``duration`` go into real cumulative buckets (with sum,
count, min and max), ``gauge`` and any other numeric key keep the latest value (1.x averaged unknown keys
and histograms: fixed). A series is identified by the metadata keys in ``label_allowlist`` only, so ids
and other high-cardinality metadata never become labels; at most ``max_series_per_metric`` series exist
per metric (beyond that samples land in one ``overflow="true"`` series, counted). Series not updated for
``metric_retention_ms`` are dropped by a sweep that runs at most every ``cleanup_interval_ms`` on the
injected clock (1.x compared native units with ms and wiped everything each minute: fixed).

Handlers follow Erlang ``:telemetry``: ``attach(handler_id, event_name, fn, config)`` and
``attach_many``; ``fn(event_name, measurements, metadata, config)`` runs synchronously in the caller's
thread after the metric lock is released; a handler that raises is detached and counted, never
propagated. While the service is stopped, emits are silent no-ops (as in 1.x).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import re
import resource
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from foundation._errors import Error, raise_error, type_error, value_error
from foundation._service import AppEnv, Service

__all__ = ["Handler", "TelemetryConfig", "TelemetryService"]

log = logging.getLogger("foundation.telemetry")

Name = tuple[str, ...]
Handler = Callable[[Name, Mapping[str, Any], Mapping[str, Any], Any], None]
T = TypeVar("T")

_COUNTER_KEYS = frozenset({"counter", "count"})
_HISTOGRAM_KEYS = frozenset({"histogram", "duration"})
_STANDARD_KEYS = frozenset({"counter", "gauge", "histogram"})
# 1.x folded these counters to one integer at metrics.foundation.<last> in get_metrics/0.
_FOLDED = {
    ("foundation", "event_store", "events_stored"): "events_stored",
    ("foundation", "config_updates"): "config_updates",
    ("foundation", "config_resets"): "config_resets",
    ("foundation", "config_operations"): "config_operations",
}
_OVERFLOW_LABELS: tuple[tuple[str, str], ...] = (("overflow", "true"),)
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED_LABELS = frozenset({"le", "quantile", "overflow"})


@dataclass(frozen=True)
class TelemetryConfig:
    """Telemetry settings for one app. Validated on construction (``FoundationValueError``).

    Attributes:
        label_allowlist: metadata keys that become metric labels (valid Prometheus label names; ``le``,
            ``quantile`` and ``overflow`` are reserved). Everything else (ids, payloads) is
            kept only in ``get_metrics()["..."]["metadata"]``. Each listed key multiplies the series count
            by its number of distinct values, so list only low-cardinality keys.
        max_series_per_metric: cap on label combinations per metric; later combinations are folded into
            one ``overflow="true"`` series. Bounds memory and Prometheus scrape size.
        histogram_buckets: upper bounds for ``histogram`` values (unit: whatever you emit). More buckets
            give finer quantiles and a bigger scrape.
        duration_buckets_ns: upper bounds in nanoseconds for ``duration`` values (``measure``/``span``).
        metric_retention_ms: a series not updated for this long is dropped (1.x: 300_000); ``None``
            keeps series forever (then only ``max_series_per_metric`` bounds memory).
        cleanup_interval_ms: how often (at most) the retention sweep runs, on the app clock (1.x 60_000).
        enable_vm_metrics: record process gauges (RSS, threads) at start, like 1.x's ``[:vm, ...]`` gauges.
        prometheus_prefix: prepended to every exported metric name (e.g. ``"myapp_"``).
    """

    label_allowlist: tuple[str, ...] = ("event_type", "path", "namespace", "service", "result", "status",
                                        "reason", "category", "subcategory", "severity", "error_type",
                                        "module", "function", "operation", "pool", "name")
    max_series_per_metric: int = 1000
    histogram_buckets: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
                                            50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)
    duration_buckets_ns: tuple[float, ...] = (1e3, 1e4, 1e5, 5e5, 1e6, 5e6, 1e7, 5e7, 1e8, 5e8, 1e9, 5e9, 1e10)
    metric_retention_ms: int | None = 300_000
    cleanup_interval_ms: int = 60_000
    enable_vm_metrics: bool = True
    prometheus_prefix: str = ""

    def __post_init__(self) -> None:
        for label in self.label_allowlist:
            if not _LABEL_RE.fullmatch(label) or label.startswith("__") or label in _RESERVED_LABELS:
                raise value_error(f"{label!r} cannot be a Prometheus label", label=label)
        if self.max_series_per_metric < 1:
            raise value_error("max_series_per_metric must be >= 1")
        for buckets in (self.histogram_buckets, self.duration_buckets_ns):
            if not buckets or list(buckets) != sorted(set(buckets)) or any(math.isinf(b) for b in buckets):
                raise value_error("buckets must be non-empty, strictly increasing and finite")
        if self.metric_retention_ms is not None and self.metric_retention_ms <= 0:
            raise value_error("metric_retention_ms must be > 0 or None")
        if self.cleanup_interval_ms <= 0:
            raise value_error("cleanup_interval_ms must be > 0")

    @classmethod
    def local(cls) -> TelemetryConfig:
        """Defaults; the 1.x retention (5 minutes)."""
        return cls()

    @classmethod
    def lan(cls) -> TelemetryConfig:
        """Scraped by Prometheus: keep series until they stop being updated for an hour."""
        return cls(metric_retention_ms=3_600_000)

    @classmethod
    def wan(cls) -> TelemetryConfig:
        """Like :meth:`lan` but fewer series per metric, to keep scrapes small over slow links."""
        return cls(metric_retention_ms=3_600_000, max_series_per_metric=200)


def _kind_of(key: str) -> str:
    if key in _COUNTER_KEYS:
        return "counter"
    if key in _HISTOGRAM_KEYS:
        return "histogram"
    return "gauge"


@dataclass
class _Series:
    kind: str
    bounds: tuple[float, ...] = ()
    value: float = 0
    buckets: list[int] = field(default_factory=list)
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    updated_ms: int = 0

    def record(self, v: float, now: int) -> None:
        self.updated_ms = now
        if self.kind == "counter":
            self.value += v
        elif self.kind == "gauge":
            self.value = v
        else:
            if not self.buckets:
                self.buckets = [0] * (len(self.bounds) + 1)
            # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal").
            self.buckets[bisect.bisect_left(self.bounds, v)] += 1
            self.count += 1
            self.total += v
            self.minimum = min(self.minimum, v)
            self.maximum = max(self.maximum, v)


@dataclass
class _Metric:
    name: Name
    count: int = 0
    timestamp: int = 0
    measurements: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = field(default_factory=dict)
    overflowed: int = 0


@dataclass(frozen=True)
class _HandlerSpec:
    handler_id: str
    event_names: tuple[Name, ...]
    function: Handler
    config: Any


def _normalize_name(name: Any) -> Name:
    if isinstance(name, str) or not isinstance(name, list | tuple) or not name \
            or not all(isinstance(p, str) and p for p in name):
        raise type_error("an event name is a non-empty list/tuple of non-empty strings", name=repr(name))
    return tuple(name)


def _label_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        v = ".".join(str(x) for x in v)
    text = str(v)
    return text if len(text) <= 100 else text[:100]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _log_handler(name: Name, measurements: Mapping[str, Any], metadata: Mapping[str, Any], config: Any) -> None:
    log.debug("telemetry %s %r %r", ".".join(name), dict(measurements), dict(metadata))


class TelemetryService(Service):
    """The telemetry service of one app (public as ``foundation.Telemetry`` for ``"production"``).

    Thread-safe; call from any thread. Handlers run in the emitting thread.
    """

    service_name = "telemetry_service"
    unavailable_code = None
    forbidden_code = 7002

    def __init__(self, env: AppEnv, config: TelemetryConfig | None = None) -> None:
        super().__init__(env)
        self.config = config or TelemetryConfig()
        self._allow = frozenset(self.config.label_allowlist)
        self._metrics: dict[Name, _Metric] = {}
        self._handlers: dict[str, _HandlerSpec] = {}
        self._by_event: dict[Name, list[_HandlerSpec]] = {}
        self._handler_failures = 0
        self._last_cleanup_ms = 0

    def _on_start(self) -> None:
        self._metrics.clear()
        self._last_cleanup_ms = self._env.clock.monotonic_ms()

    def initialize(self) -> None:
        """Start the service (a no-op if running); records the VM gauges when enabled."""
        with self._lock:
            was_running = self._running
            self._start()
        if not was_running and self.config.enable_vm_metrics:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.emit_gauge(("vm", "memory"), usage.ru_maxrss * 1024, {})
            self.emit_gauge(("vm", "system_counts"), threading.active_count(), {})

    def status(self) -> dict[str, Any]:
        """``{"status", "metrics_count", "handlers_count", "handler_failures", "config"}``."""
        with self._lock:
            self._check_running()
            return {"status": "running", "metrics_count": len(self._metrics), "handlers_count": len(self._handlers),
                    "handler_failures": self._handler_failures, "config": self.config}

    # -- emitting ---------------------------------------------------------------------------------

    def execute(self, event_name: Sequence[str], measurements: Mapping[str, Any],
                metadata: Mapping[str, Any] | None = None) -> None:
        """Record ``measurements`` under ``event_name`` and run the handlers attached to exactly that name.

        A no-op while the service is stopped. Non-numeric measurements are kept in the metric's last
        ``measurements`` but make no series.

        Raises:
            FoundationTypeError: bad ``event_name``, or ``measurements``/``metadata`` not mappings.
        """
        name = _normalize_name(event_name)
        if not isinstance(measurements, Mapping):
            raise type_error("measurements must be a mapping")
        meta: Mapping[str, Any] = {} if metadata is None else metadata
        if not isinstance(meta, Mapping):
            raise type_error("metadata must be a mapping")
        with self._lock:
            if not self._running:
                return
            now = self._env.clock.monotonic_ms()
            self._record(name, measurements, meta, now)
            if now - self._last_cleanup_ms >= self.config.cleanup_interval_ms:
                self._cleanup(now)
            handlers = self._by_event.get(name)
            handlers = list(handlers) if handlers else None
        if handlers:
            self._dispatch(handlers, name, measurements, meta)

    def _record(self, name: Name, measurements: Mapping[str, Any], meta: Mapping[str, Any], now: int) -> None:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = _Metric(name, metadata=dict(meta))
        metric.count += 1
        metric.timestamp = now
        metric.measurements = dict(measurements)
        labels: tuple[tuple[str, str], ...] | None = None
        for key, v in measurements.items():
            if not isinstance(key, str) or not _is_number(v) or (isinstance(v, float) and math.isnan(v)):
                continue
            if labels is None:
                labels = tuple(sorted((k, _label_value(x)) for k, x in meta.items() if k in self._allow))
            skey = (key, labels)
            series = metric.series.get(skey)
            if series is None:
                if len(metric.series) >= self.config.max_series_per_metric:
                    metric.overflowed += 1
                    skey = (key, _OVERFLOW_LABELS)
                    series = metric.series.get(skey)
                if series is None:
                    kind = _kind_of(key)
                    bounds = (self.config.duration_buckets_ns if key == "duration" else
                              self.config.histogram_buckets) if kind == "histogram" else ()
                    series = metric.series[skey] = _Series(kind, bounds)
            series.record(v, now)

    def _cleanup(self, now: int) -> None:
        self._last_cleanup_ms = now
        retention = self.config.metric_retention_ms
        if retention is None:
            return
        cutoff = now - retention
        for name in list(self._metrics):
            metric = self._metrics[name]
            stale = [k for k, s in metric.series.items() if s.updated_ms < cutoff]
            for k in stale:
                del metric.series[k]
            if metric.timestamp < cutoff:
                del self._metrics[name]

    def cleanup_now(self) -> None:
        """Run the retention sweep immediately (it otherwise runs during emits)."""
        with self._lock:
            self._check_running_telemetry()
            self._cleanup(self._env.clock.monotonic_ms())

    def _check_running_telemetry(self) -> None:
        if not self._running:
            raise_error(Error.build(None, "service_unavailable", "telemetry_service is not running",
                                    category="system", subcategory="availability", severity="high"))

    def _dispatch(self, handlers: list[_HandlerSpec], name: Name, measurements: Mapping[str, Any],
                  meta: Mapping[str, Any]) -> None:
        for spec in handlers:
            try:
                spec.function(name, measurements, meta, spec.config)
            except Exception:
                # :telemetry detaches a failing handler so one bad subscriber cannot slow every emit.
                log.warning("telemetry handler %r failed on %s; detached", spec.handler_id, ".".join(name),
                            exc_info=True)
                with self._lock:
                    self._handler_failures += 1
                    self._remove_handler(spec.handler_id)

    def emit_counter(self, event_name: Sequence[str], metadata: Mapping[str, Any] | None = None, *,
                     value: float = 1) -> None:
        """``execute(name, {"counter": value}, metadata)`` (1.x facade had no value argument)."""
        self.execute(event_name, {"counter": value}, metadata)

    def emit_gauge(self, event_name: Sequence[str], value: float, metadata: Mapping[str, Any] | None = None) -> None:
        """``execute(name, {"gauge": value}, metadata)``."""
        self.execute(event_name, {"gauge": value}, metadata)

    def emit_histogram(self, event_name: Sequence[str], value: float,
                       metadata: Mapping[str, Any] | None = None) -> None:
        """``execute(name, {"histogram": value}, metadata)``.

        Raises:
            FoundationValueError: empty/non-string name, non-number value, non-mapping metadata (1.x ArgumentError).
        """
        if isinstance(event_name, str) or not isinstance(event_name, list | tuple) or not event_name \
                or not all(isinstance(p, str) and p for p in event_name):
            raise value_error("histogram name must be a non-empty list of non-empty strings")
        if not _is_number(value):
            raise value_error("histogram value must be a number")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise value_error("histogram metadata must be a mapping")
        self.execute(event_name, {"histogram": value}, metadata)

    def measure(self, event_name: Sequence[str], metadata: Mapping[str, Any], fn: Callable[[], T]) -> T:
        """Run ``fn``; emit ``name + ("stop",)`` with ``{"duration": ns}``, or ``name + ("exception",)`` with
        metadata ``error`` if it raises (then re-raise). Returns ``fn()``."""
        with self.span(event_name, metadata):
            return fn()

    @contextlib.contextmanager
    def span(self, event_name: Sequence[str], metadata: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Context-manager form of :meth:`measure` (durations from the app clock, in ns)."""
        name = _normalize_name(event_name)
        meta = dict(metadata or {})
        clock = self._env.clock
        start = clock.monotonic_ns()
        try:
            yield
        except BaseException as exc:
            self.execute((*name, "exception"), {"duration": clock.monotonic_ns() - start},
                         {**meta, "error": repr(exc), "kind": type(exc).__name__})
            raise
        self.execute((*name, "stop"), {"duration": clock.monotonic_ns() - start}, meta)

    def time_function(self, module: str, function: str, fn: Callable[[], T]) -> T:
        """``measure(("foundation", "function", "execution"), {"module", "function"}, fn)``."""
        return self.measure(("foundation", "function", "execution"), {"module": module, "function": function}, fn)

    def emit_performance(self, metric: str, value: float, metadata: Mapping[str, Any] | None = None) -> None:
        """Gauge ``("foundation", "performance", metric)``."""
        self.emit_gauge(("foundation", "performance", metric), value, metadata)

    def emit_system_event(self, event_type: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Counter ``("foundation", "system", event_type)``."""
        self.emit_counter(("foundation", "system", event_type), metadata)

    # -- handlers (Erlang :telemetry style) -------------------------------------------------------

    def attach(self, handler_id: str, event_name: Sequence[str], function: Handler, config: Any = None) -> None:
        """Run ``function(name, measurements, metadata, config)`` on every ``execute`` of ``event_name``.

        Raises:
            FoundationError: ``handler_already_exists`` when ``handler_id`` is taken.
        """
        self.attach_many(handler_id, [event_name], function, config)

    def attach_many(self, handler_id: str, event_names: Sequence[Sequence[str]], function: Handler,
                    config: Any = None) -> None:
        """:meth:`attach` for several event names under one id."""
        if not callable(function):
            raise type_error("handler must be callable")
        names = tuple(_normalize_name(n) for n in event_names)
        with self._lock:
            if handler_id in self._handlers:
                raise_error(Error.new("handler_already_exists", f"handler {handler_id!r} is already attached",
                                      context={"handler_id": handler_id}))
            spec = _HandlerSpec(handler_id, names, function, config)
            self._handlers[handler_id] = spec
            for n in names:
                self._by_event.setdefault(n, []).append(spec)

    def detach(self, handler_id: str) -> None:
        """Remove a handler.

        Raises:
            FoundationError: ``handler_not_found``.
        """
        with self._lock:
            if handler_id not in self._handlers:
                raise_error(Error.new("handler_not_found", f"no handler {handler_id!r}",
                                      context={"handler_id": handler_id}))
            self._remove_handler(handler_id)

    def _remove_handler(self, handler_id: str) -> None:
        spec = self._handlers.pop(handler_id, None)
        if spec is None:
            return
        for n in spec.event_names:
            rest = [s for s in self._by_event.get(n, []) if s.handler_id != handler_id]
            if rest:
                self._by_event[n] = rest
            else:
                self._by_event.pop(n, None)

    def list_handlers(self, prefix: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Handlers with an event name starting with ``prefix``: ``{id, event_name, function, config}``."""
        p = tuple(prefix)
        with self._lock:
            return [{"id": s.handler_id, "event_name": n, "function": s.function, "config": s.config}
                    for s in self._handlers.values() for n in s.event_names if n[:len(p)] == p]

    @staticmethod
    def _builtin_id(name: Name) -> str:
        return "foundation-handler:" + ".".join(name)

    def attach_handlers(self, event_names: Sequence[Sequence[str]], handler: Handler | None = None) -> None:
        """1.x ``attach_handlers/1``: one handler per name (default: a ``logging.debug`` line), idempotent."""
        for raw in event_names:
            name = _normalize_name(raw)
            with self._lock:
                if self._builtin_id(name) in self._handlers:
                    continue
                self.attach(self._builtin_id(name), name, handler or _log_handler)

    def detach_handlers(self, event_names: Sequence[Sequence[str]]) -> None:
        """Remove handlers installed by :meth:`attach_handlers` (missing ones are ignored)."""
        for raw in event_names:
            with self._lock:
                self._remove_handler(self._builtin_id(_normalize_name(raw)))

    # -- reading ----------------------------------------------------------------------------------

    @staticmethod
    def _aggregate(metric: _Metric) -> dict[str, Any]:
        entry: dict[str, Any] = {"count": metric.count, "timestamp": metric.timestamp,
                                 "measurements": dict(metric.measurements), "metadata": dict(metric.metadata)}
        if metric.overflowed:
            entry["overflowed"] = metric.overflowed
        by_key: dict[str, list[_Series]] = {}
        for (key, _labels), s in metric.series.items():
            by_key.setdefault(key, []).append(s)
        for key, series in by_key.items():
            kind = series[0].kind
            if kind == "counter":
                total = sum(s.value for s in series)
                entry[key] = int(total) if float(total).is_integer() else total
            elif kind == "gauge":
                entry[key] = max(series, key=lambda s: s.updated_ms).value
            else:
                bounds = series[0].bounds
                counts = [sum(s.buckets[i] if s.buckets else 0 for s in series) for i in range(len(bounds) + 1)]
                n = sum(s.count for s in series)
                entry[key] = {"count": n, "sum": sum(s.total for s in series),
                              "min": min(s.minimum for s in series) if n else None,
                              "max": max(s.maximum for s in series) if n else None,
                              "buckets": dict(zip([*bounds, math.inf], counts, strict=True))}
        return entry

    def get_metrics(self) -> dict[str, Any]:
        """All metrics nested by name (``("a","b","c")`` at ``m["a"]["b"]["c"]``) plus ``retrieved_at``.

        Each entry: ``count`` (emits), ``timestamp`` (ms), last ``measurements``, first ``metadata`` and,
        per numeric key, the aggregate over label series: a counter total, the latest gauge, or a histogram
        ``{count, sum, min, max, buckets}``. As in 1.x, ``foundation.events_stored``,
        ``foundation.config_updates``, ``config_resets`` and ``config_operations`` are plain int totals.

        Raises:
            ServiceUnavailable: the service is stopped.
        """
        with self._lock:
            self._check_running_telemetry()
            flat = {name: self._aggregate(m) for name, m in self._metrics.items()}
        out: dict[str, Any] = {}
        for name, entry in sorted(flat.items(), key=lambda kv: len(kv[0])):
            folded = _FOLDED.get(name)
            if folded is not None:
                out.setdefault("foundation", {})[folded] = entry.get("counter", 0)
                continue
            slot = out
            for part in name[:-1]:
                nxt = slot.get(part)
                if not isinstance(nxt, dict):
                    nxt = slot[part] = {}
                slot = nxt
            existing = slot.get(name[-1])
            slot[name[-1]] = {**existing, **entry} if isinstance(existing, dict) else entry
        out["retrieved_at"] = self._env.clock.monotonic_ms()
        return out

    def get_metrics_for(self, prefix: Sequence[str]) -> dict[Name, dict[str, Any]]:
        """Flat ``{name: entry}`` for metric names starting with ``prefix`` (1.x raised here: fixed)."""
        p = tuple(prefix)
        with self._lock:
            self._check_running_telemetry()
            return {n: self._aggregate(m) for n, m in self._metrics.items() if n[:len(p)] == p}

    def reset_metrics(self) -> None:
        """Forget every metric (handlers stay attached)."""
        with self._lock:
            self._metrics.clear()

    def reset_state(self) -> None:
        """Test mode only: metrics and handlers cleared. Raises SecurityViolation (7002) otherwise."""
        self._check_test_mode()
        with self._lock:
            self._metrics.clear()
            self._handlers.clear()
            self._by_event.clear()

    # -- Prometheus -------------------------------------------------------------------------------

    def collector(self) -> _PrometheusCollector:
        """A ``prometheus_client`` collector over this service's metrics, for your own ``CollectorRegistry``."""
        return _PrometheusCollector(self)

    def export_prometheus(self) -> str:
        """All metrics in the Prometheus text exposition format (``prometheus_client.generate_latest``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.collector())
        return generate_latest(registry).decode("utf-8")

    def _snapshot(self) -> list[tuple[Name, str, str, list[tuple[tuple[tuple[str, str], ...], _Series]]]]:
        with self._lock:
            out = []
            for name, metric in self._metrics.items():
                by_key: dict[str, list[tuple[tuple[tuple[str, str], ...], _Series]]] = {}
                for (key, labels), s in metric.series.items():
                    copy_s = _Series(s.kind, s.bounds, s.value, list(s.buckets), s.count, s.total, s.minimum,
                                     s.maximum, s.updated_ms)
                    by_key.setdefault(key, []).append((labels, copy_s))
                for key, items in by_key.items():
                    out.append((name, key, items[0][1].kind, items))
            return out


def _prom_name(prefix: str, name: Name, key: str) -> str:
    raw = prefix + "_".join(name) + ("" if key in _STANDARD_KEYS else "_" + key)
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_:") else "_" for c in raw)
    return "_" + cleaned if cleaned[0].isdigit() else cleaned


class _PrometheusCollector:
    """Builds metric families from a consistent snapshot on every scrape."""

    def __init__(self, service: TelemetryService) -> None:
        self._service = service

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        used: dict[str, str] = {}
        prefix = self._service.config.prometheus_prefix
        for name, key, kind, items in sorted(self._service._snapshot(), key=lambda t: (t[0], t[1])):
            pname = _prom_name(prefix, name, key)
            if pname in used or pname + "_total" in used or (kind == "counter" and pname.endswith("_total")):
                pname = f"{pname}_{key}_{kind}"
            used[pname] = kind
            label_names = sorted({k for labels, _ in items for k, _v in labels})
            doc = f"Foundation telemetry {'.'.join(name)} ({key})"
            family: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(pname, doc, labels=label_names)
            elif kind == "gauge":
                family = GaugeMetricFamily(pname, doc, labels=label_names)
            else:
                family = HistogramMetricFamily(pname, doc, labels=label_names)
            for labels, s in items:
                values = [dict(labels).get(k, "") for k in label_names]
                if isinstance(family, HistogramMetricFamily):
                    cumulative, running = [], 0
                    counts = s.buckets or [0] * (len(s.bounds) + 1)
                    for bound, c in zip([*s.bounds, math.inf], counts, strict=True):
                        running += c
                        cumulative.append(("+Inf" if math.isinf(bound) else repr(float(bound)), running))
                    family.add_metric(values, cumulative, s.total)
                else:
                    family.add_metric(values, s.value)
            yield family

