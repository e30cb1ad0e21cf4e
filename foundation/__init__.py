"""Foundation services: the Foundation 1.x API (Elixir) in Python, working in one process with no cluster.

Public names are CamelCase namespaces, as in 1.x::

    import foundation
    foundation.Config.get(["ai", "provider"])            # -> "mock"
    foundation.Config.update(["dev", "debug_mode"], True)
    event = foundation.Events.new_event("user_login", {"user": 42})
    foundation.Events.store(event)                        # -> event id
    foundation.Telemetry.emit_counter(["requests"], {"status": "ok"})

Success returns the value; failure raises :class:`FoundationError` whose ``.error`` is an :class:`Error`
with the 1.x code, category, severity and retry strategy. ``foundation.Config``/``Events``/``Telemetry``/
``Infrastructure`` are the services of the ``"production"`` app; :func:`start_app` gives an isolated app
(own namespace, clock and config) with the same methods. Implementation modules are private.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foundation._app import PROCESS_REGISTRY, SERVICE_REGISTRY, FoundationApp, app, production, start_app
from foundation._app import version as _version
from foundation._clock import Clock, ManualClock, SystemClock
from foundation._config import ConfigData, ConfigServer
from foundation._error_context import Breadcrumb, ErrorContext
from foundation._errors import (
    AlreadyExists,
    AlreadyRegistered,
    CheckoutTimeout,
    CircuitBreakerBlown,
    CircuitBreakerNotFound,
    ConfigError,
    ConfigPathNotFound,
    ConfigUpdateForbidden,
    DataError,
    Error,
    EventNotFound,
    ExternalError,
    FoundationError,
    FoundationTypeError,
    FoundationValueError,
    HealthCheckFailed,
    MaxAttemptsExceeded,
    PoolAlreadyExists,
    PoolNotFound,
    ProtectedOperationFailed,
    RateLimitExceeded,
    SecurityViolation,
    ServiceNotFound,
    ServiceTimeout,
    ServiceUnavailable,
    SystemServiceError,
    ValidationFailed,
    as_result,
)
from foundation._events import Event, EventStore
from foundation._infrastructure import Infrastructure as InfrastructureImpl
from foundation._registry import Namespace, ProcessRegistryImpl, ServiceRegistryImpl, TestNamespace
from foundation._telemetry import TelemetryConfig, TelemetryService
from foundation._utils import Utils

__all__ = [
    # namespaces (1.x modules)
    "Config", "Events", "Telemetry", "Error", "ErrorContext", "ServiceRegistry", "ProcessRegistry", "Utils",
    "Infrastructure",
    # 2.0 distribution
    "attach", "detach", "BEAM",
    # lifecycle
    "initialize", "status", "available", "health", "version", "shutdown",
    # apps, namespaces, time
    "FoundationApp", "start_app", "app", "TestNamespace", "Namespace", "Clock", "SystemClock", "ManualClock",
    # types
    "ConfigData", "Event", "Breadcrumb", "TelemetryConfig", "ConfigServer", "EventStore", "TelemetryService",
    "InfrastructureImpl", "ProcessRegistryImpl", "ServiceRegistryImpl", "as_result",
    # exceptions
    "FoundationError", "ConfigError", "DataError", "SystemServiceError", "ExternalError", "SecurityViolation",
    "FoundationTypeError", "FoundationValueError", "ConfigPathNotFound", "ConfigUpdateForbidden",
    "ValidationFailed", "EventNotFound", "ServiceUnavailable", "ServiceNotFound", "AlreadyRegistered",
    "AlreadyExists", "HealthCheckFailed", "ServiceTimeout", "MaxAttemptsExceeded", "CircuitBreakerBlown",
    "CircuitBreakerNotFound", "ProtectedOperationFailed", "RateLimitExceeded", "PoolNotFound",
    "PoolAlreadyExists", "CheckoutTimeout",
]

from ._distribution import BEAM, attach, detach  # noqa: E402  (after the app exists)

_app = production()
#: The production configuration service (1.x ``Foundation.Config``).
Config: ConfigServer = _app.config
#: The production event store (1.x ``Foundation.Events``).
Events: EventStore = _app.events
#: The production telemetry service (1.x ``Foundation.Telemetry``).
Telemetry: TelemetryService = _app.telemetry
#: The production infrastructure (1.x ``Foundation.Infrastructure``).
Infrastructure: InfrastructureImpl = _app.infrastructure
#: The process-wide registries (1.x ``Foundation.ServiceRegistry`` / ``Foundation.ProcessRegistry``).
ServiceRegistry: ServiceRegistryImpl = SERVICE_REGISTRY
ProcessRegistry: ProcessRegistryImpl = PROCESS_REGISTRY


def initialize(config: Mapping[str, Any] | None = None) -> None:
    """Start the production services (each a no-op if running); ``config`` is deep-merged over the
    defaults when the config service starts.

    Raises:
        ValidationFailed: the configuration is invalid.
    """
    _app.initialize(config)


def status() -> dict[str, Any]:
    """``{"config": ..., "events": ..., "telemetry": ...}`` service statuses of the production app."""
    return _app.status()


def available() -> bool:
    """True if config, events and telemetry are all running (1.x ``available?/0``)."""
    return _app.available()


def health() -> dict[str, Any]:
    """``{"status": "healthy" | "degraded", "timestamp", "services", ...}`` of the production app."""
    return _app.health()


def version() -> str:
    """The package version string (``"X.Y.Z"``)."""
    return _version()


def shutdown() -> None:
    """Stop the production services; :func:`initialize` starts them again with fresh state."""
    _app.shutdown()
