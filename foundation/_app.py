"""``FoundationApp``: the services of one namespace, and the module-level lifecycle functions.

1.x started one supervision tree (ProcessRegistry, ConfigServer, EventStore, TelemetryService,
infrastructure) under ``:production`` and let tests start isolated copies under ``{:test, ref}``. Here a
:class:`FoundationApp` holds one namespace's services; the ``"production"`` app is created and started at
import (no threads are started, so this is cheap) and backs ``foundation.Config``, ``foundation.Events``,
``foundation.Telemetry`` and ``foundation.Infrastructure``. :func:`start_app` creates isolated apps, each
with its own clock and config.

``node`` is reserved for the 2.0 distributed features: ``foundation.attach(node)`` will set it to a running
fabric node; until then every app is local-only and ``node_name`` is ``"nonode@nohost"`` as on a
non-distributed BEAM node.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from importlib import metadata as _metadata
from typing import Any

from foundation._clock import Clock, SystemClock
from foundation._config import ConfigServer
from foundation._errors import FoundationError
from foundation._events import EventStore
from foundation._infrastructure import Infrastructure
from foundation._registry import (
    Namespace,
    ProcessRegistryImpl,
    ServiceRegistryImpl,
    TestNamespace,
    check_namespace,
)
from foundation._telemetry import TelemetryConfig, TelemetryService

__all__ = ["FoundationApp", "PROCESS_REGISTRY", "SERVICE_REGISTRY", "app", "forget_app", "production", "start_app"]

PROCESS_REGISTRY = ProcessRegistryImpl()
SERVICE_REGISTRY = ServiceRegistryImpl(PROCESS_REGISTRY)
_APPS: dict[Namespace, FoundationApp] = {}
_APPS_LOCK = threading.Lock()


class FoundationApp:
    """Config, Events, Telemetry and Infrastructure for one namespace. Thread-safe.

    Args:
        namespace: ``"production"`` or ``("test", uuid)`` (see ``TestNamespace()``).
        clock: the time source for every service of this app (inject ``ManualClock`` in tests).
        telemetry_config: label allow-list, buckets, retention (see :class:`TelemetryConfig`).
        node_name: recorded in every event's ``node`` field.
        test_mode: allows ``reset_state()``; defaults to True for test namespaces only.
    """

    def __init__(self, namespace: Namespace = "production", *, clock: Clock | None = None,
                 telemetry_config: TelemetryConfig | None = None, node_name: str = "nonode@nohost",
                 test_mode: bool | None = None) -> None:
        self.namespace = check_namespace(namespace)
        self.clock: Clock = clock or SystemClock()
        self.node_name = node_name
        self.test_mode = test_mode if test_mode is not None else self.namespace != "production"
        # Reserved for foundation.attach(node) (2.0 distributed features); None = local only.
        self.node: Any = None
        self.config = ConfigServer(self)
        self.events = EventStore(self)
        self.telemetry = TelemetryService(self, telemetry_config)
        self.infrastructure = Infrastructure(self)
        self._lock = threading.Lock()

    def initialize(self, config: Mapping[str, Any] | None = None) -> None:
        """Start config (with ``config`` deep-merged over the defaults), events, then telemetry; each is a
        no-op if already running, and register them in the ProcessRegistry under this namespace.

        Raises:
            ValidationFailed: ``config`` gives an invalid configuration (nothing is started).
        """
        with self._lock:
            self.config.initialize(config)
            self.events.initialize()
            self.telemetry.initialize()
            for svc in (self.config, self.events, self.telemetry):
                PROCESS_REGISTRY.register(self.namespace, svc.service_name, svc)

    def status(self) -> dict[str, Any]:
        """``{"config": ..., "events": ..., "telemetry": ...}``, each a service status or
        ``{"status": "stopped"}``."""
        out: dict[str, Any] = {}
        for key, svc in (("config", self.config), ("events", self.events), ("telemetry", self.telemetry)):
            try:
                out[key] = svc.status()
            except FoundationError:
                out[key] = {"status": "stopped"}
        return out

    def available(self) -> bool:
        """True only if config, events and telemetry are all running."""
        return self.config.available() and self.events.available() and self.telemetry.available()

    def health(self) -> dict[str, Any]:
        """``{"status": "healthy" | "degraded", "timestamp", "services", "foundation_available",
        "python_version", "version"}``; healthy means every service is running."""
        services = {k: v.get("status", "unknown") for k, v in self.status().items()}
        return {"status": "healthy" if all(s == "running" for s in services.values()) else "degraded",
                "timestamp": self.clock.wall().isoformat(), "services": services,
                "foundation_available": self.available(), "python_version": sys.version.split()[0],
                "version": version(), "namespace": self.namespace}

    def shutdown(self) -> None:
        """Stop every service and pool. Later calls raise ServiceUnavailable (telemetry emits are no-ops)
        until :meth:`initialize` starts fresh services again."""
        with self._lock:
            self.infrastructure.ConnectionManager.stop_all()
            for svc in (self.telemetry, self.events, self.config):
                svc.stop()
                PROCESS_REGISTRY.unregister(self.namespace, svc.service_name)

    def stop(self) -> None:
        """Alias of :meth:`shutdown` (called by ``cleanup_test_namespace``)."""
        self.shutdown()

    def is_alive(self) -> bool:
        """Registry liveness: True while the services are available."""
        return self.available()


def version() -> str:
    """The installed package version (``"0.1.0"`` when not installed)."""
    try:
        return _metadata.version("foundation-fabric")
    except _metadata.PackageNotFoundError:
        return "0.1.0"


def production() -> FoundationApp:
    """The ``"production"`` app behind the public facades."""
    return _PRODUCTION


def app(namespace: Namespace = "production") -> FoundationApp:
    """The app started for ``namespace``.

    Raises:
        ServiceNotFound: no app was started for it.
    """
    ns = check_namespace(namespace)
    with _APPS_LOCK:
        found = _APPS.get(ns)
    if found is None:
        from foundation._errors import Error, raise_error

        raise_error(Error.build(5001, "service_not_found", f"no app started for namespace {ns!r}",
                                category="system", subcategory="discovery", context={"namespace": ns}))
    return found


def start_app(namespace: Namespace | None = None, *, config: Mapping[str, Any] | None = None,
              clock: Clock | None = None, telemetry_config: TelemetryConfig | None = None,
              node_name: str = "nonode@nohost", test_mode: bool | None = None) -> FoundationApp:
    """Create and initialize an isolated app (a fresh ``TestNamespace()`` when ``namespace`` is None).

    Stop it with ``ServiceRegistry.cleanup_test_namespace(app.namespace)`` or ``app.shutdown()``.

    Raises:
        FoundationError: ``already_exists`` when an app already runs in ``namespace``.
    """
    ns = check_namespace(namespace) if namespace is not None else TestNamespace()
    new = FoundationApp(ns, clock=clock, telemetry_config=telemetry_config, node_name=node_name,
                        test_mode=test_mode)
    with _APPS_LOCK:
        if ns in _APPS:
            from foundation._errors import Error, raise_error

            raise_error(Error.new("already_exists", f"an app already runs in {ns!r}", context={"namespace": ns}))
        _APPS[ns] = new
    try:
        new.initialize(config)
    except BaseException:
        forget_app(ns)
        raise
    PROCESS_REGISTRY.register(ns, "foundation_app", new)
    return new


def forget_app(namespace: Namespace) -> None:
    """Shut down and drop the app of a test namespace (no-op if none)."""
    if namespace == "production":
        return
    with _APPS_LOCK:
        found = _APPS.pop(namespace, None)
    if found is not None:
        found.shutdown()


_PRODUCTION = FoundationApp("production")
_APPS["production"] = _PRODUCTION
_PRODUCTION.initialize()
