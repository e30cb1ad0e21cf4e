"""Foundation services: the Foundation 1.x API (Elixir) in Python, working in one process with no cluster.

Public names are CamelCase namespaces, as in 1.x::

    import foundation
    foundation.Config.get(["ai", "provider"])            # -> "mock"
    foundation.Config.update(["dev", "debug_mode"], True)
    event = foundation.Events.new_event("user_login", {"user": 42})
    foundation.Events.store(event)                        # -> event id
    foundation.Telemetry.emit_counter(["requests"], {"status": "ok"})

Success returns the value; failure raises :class:`FoundationError` whose ``.error`` is an :class:`Error`
with the 1.x code, category, severity and retry strategy.

Apps. ``foundation.Config``/``Events``/``Telemetry``/``Infrastructure``/``ServiceRegistry``/
``ProcessRegistry`` are the services of the *default app* (namespace ``"production"``). Importing
``foundation`` creates nothing: the default app is created and initialized on the first use of one of
those names or of the lifecycle functions (once, thread-safe; :func:`stats` tells whether it exists).
:class:`FoundationApp` is an explicit, independent app (``with FoundationApp() as app: app.config...``)
for tests and multi-tenant code; :func:`start_app` gives a 1.x-style isolated test app registered next
to the default one. Implementation modules are private.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from foundation._app import FoundationApp, app, default_app, start_app
from foundation._app import stats as _stats
from foundation._app import version as _version
from foundation._clock import Clock, ManualClock, SystemClock
from foundation._config import ConfigData, ConfigServer
from foundation._distribution import BEAM, attach, detach
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
    "FoundationApp", "start_app", "app", "default_app", "stats", "TestNamespace", "Namespace", "Clock",
    "SystemClock", "ManualClock",
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

# The 1.x facades: attributes of the default app, resolved on first access by __getattr__ below (the
# annotations only tell type checkers what they are).
#: The default app's configuration service (1.x ``Foundation.Config``).
Config: ConfigServer
#: The default app's event store (1.x ``Foundation.Events``).
Events: EventStore
#: The default app's telemetry service (1.x ``Foundation.Telemetry``).
Telemetry: TelemetryService
#: The default app's infrastructure (1.x ``Foundation.Infrastructure``).
Infrastructure: InfrastructureImpl
#: The default app's registries (1.x ``Foundation.ServiceRegistry`` / ``Foundation.ProcessRegistry``); apps
#: from :func:`start_app` register here too.
ServiceRegistry: ServiceRegistryImpl
ProcessRegistry: ProcessRegistryImpl

_FACADES: dict[str, Callable[[FoundationApp], Any]] = {
    "Config": lambda a: a.config,
    "Events": lambda a: a.events,
    "Telemetry": lambda a: a.telemetry,
    "Infrastructure": lambda a: a.infrastructure,
    "ServiceRegistry": lambda a: a.service_registry,
    "ProcessRegistry": lambda a: a.process_registry,
}


def __getattr__(name: str) -> Any:
    """PEP 562: the facades, from the default app (created on first use). Cached in the module once
    resolved; the default app keeps the same service objects across ``shutdown``/``initialize``."""
    get = _FACADES.get(name)
    if get is None:
        raise AttributeError(f"module 'foundation' has no attribute {name!r}")
    value = get(default_app())
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, including the facades not resolved yet (listing them creates nothing)."""
    return sorted(set(globals()) | set(_FACADES))


def stats() -> dict[str, Any]:
    """``{"default_app_created": bool, "started_apps": int}``; never creates the default app (it is
    created lazily, on the first use of a facade or a lifecycle function)."""
    return _stats()


def initialize(config: Mapping[str, Any] | None = None) -> None:
    """Start the default app's services (each a no-op if running); ``config`` is deep-merged over the
    defaults when the config service starts.

    Raises:
        ValidationFailed: the configuration is invalid.
    """
    default_app().initialize(config)


def status() -> dict[str, Any]:
    """``{"config": ..., "events": ..., "telemetry": ...}`` service statuses of the default app."""
    return default_app().status()


def available() -> bool:
    """True if config, events and telemetry are all running (1.x ``available?/0``)."""
    return default_app().available()


def health() -> dict[str, Any]:
    """``{"status": "healthy" | "degraded", "timestamp", "services", ...}`` of the default app."""
    return default_app().health()


def version() -> str:
    """The package version string (``"X.Y.Z"``)."""
    return _version()


def shutdown() -> None:
    """Stop the default app's services; :func:`initialize` starts them again with fresh state."""
    default_app().shutdown()
