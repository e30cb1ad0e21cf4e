"""The narrow interfaces Foundation services depend on, and the one hook to the default app's telemetry.

A leaf module: it imports nothing from ``foundation``. Services receive their collaborators as
constructor arguments typed with these protocols (a :class:`MetricsSink` for telemetry, an
:class:`EventSink` for audit events, a :class:`SettingsSource` for configuration), so no service module
imports another service module or the composition module (``_app``).

Free-standing 1.x helpers (``Error.collect_error_metrics()``, ``ErrorContext.with_context``) have no app
to talk to unless one is passed. They then report to :func:`default_sink`, which asks the provider that
the composition module installs with :func:`set_default_sink_provider` -- the telemetry of the lazily
created default app. Installing the provider creates nothing; without a provider the metrics are dropped
(:class:`NullSink`), so a leaf module used alone never starts an app.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["EventSink", "MetricsSink", "NullSink", "SettingsSource", "default_sink", "set_default_sink_provider"]


@runtime_checkable
class MetricsSink(Protocol):
    """Where a service records metrics: the ``execute``/``emit_*`` subset of the Telemetry service."""

    def execute(self, event_name: Sequence[str], measurements: Mapping[str, Any],
                metadata: Mapping[str, Any] | None = None) -> None:
        """Record ``measurements`` under ``event_name``."""
        ...

    def emit_counter(self, event_name: Sequence[str], metadata: Mapping[str, Any] | None = None, *,
                     value: float = 1) -> None:
        """Add ``value`` to the counter ``event_name``."""
        ...

    def emit_gauge(self, event_name: Sequence[str], value: float, metadata: Mapping[str, Any] | None = None) -> None:
        """Set the gauge ``event_name``."""
        ...


class SettingsSource(Protocol):
    """Where a service reads its settings: the ``get_with_default`` subset of the Config service."""

    def get_with_default(self, path: Sequence[str], default: Any) -> Any:
        """The value at ``path``, or ``default`` when it cannot be read (never raises)."""
        ...


class EventSink(Protocol):
    """Where a service records audit events: the ``new_event``/``store`` subset of the Events service."""

    def available(self) -> bool:
        """True while events can be stored."""
        ...

    def new_event(self, event_type: str, data: Any = None) -> Any:
        """A validated event of the sink's app."""
        ...

    def store(self, event: Any) -> int:
        """Store ``event``; return its id."""
        ...


class NullSink:
    """A :class:`MetricsSink` that drops everything (no default app provider installed)."""

    def execute(self, event_name: Sequence[str], measurements: Mapping[str, Any],
                metadata: Mapping[str, Any] | None = None) -> None:
        """Drop the measurement."""

    def emit_counter(self, event_name: Sequence[str], metadata: Mapping[str, Any] | None = None, *,
                     value: float = 1) -> None:
        """Drop the counter."""

    def emit_gauge(self, event_name: Sequence[str], value: float, metadata: Mapping[str, Any] | None = None) -> None:
        """Drop the gauge."""


_NULL = NullSink()
_provider: Callable[[], MetricsSink] | None = None
_provider_lock = threading.Lock()


def set_default_sink_provider(provider: Callable[[], MetricsSink] | None) -> None:
    """Install (or with None remove) the function :func:`default_sink` calls. The composition module
    installs ``lambda: default_app().telemetry``; the provider is only called when a metric is emitted."""
    global _provider
    with _provider_lock:
        _provider = provider


def default_sink() -> MetricsSink:
    """The telemetry that helpers without an explicit one report to (the default app's, created on first
    use), or a :class:`NullSink` when no provider is installed."""
    provider = _provider
    return _NULL if provider is None else provider()
