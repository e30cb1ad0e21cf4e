"""Composition: :class:`FoundationApp` builds one app's services and wires them; the lazy default app.

This is the only module that knows every service. Each service gets its collaborators as constructor
arguments (an :class:`AppEnv`, the telemetry it reports to, the settings it reads); no service module
imports another service's module to find them, and none imports this one.

1.x started one supervision tree (ProcessRegistry, ConfigServer, EventStore, TelemetryService,
infrastructure) under ``:production`` and let tests start isolated copies under ``{:test, ref}``. Here:

* :class:`FoundationApp` is one app: Config, Events, Telemetry, Infrastructure and a registry pair.
  Anyone may create one (``with FoundationApp() as app: ...``); it is independent of every other app.
* The *default app* (namespace ``"production"``) backs the 1.x facades ``foundation.Config``,
  ``foundation.Events``, ``foundation.Telemetry``, ``foundation.Infrastructure``,
  ``foundation.ServiceRegistry`` and ``foundation.ProcessRegistry``. Importing ``foundation`` does not
  create it: :func:`default_app` creates and initializes it on first use, once, under a lock (no thread
  is started). :func:`stats` tells whether it exists yet.
* :func:`start_app` creates a 1.x-style isolated test app: its own services, registered in the default
  app's registry under a fresh ``("test", uuid)`` namespace, stopped by
  ``ServiceRegistry.cleanup_test_namespace``.

``node`` is reserved for the 2.0 distributed features: ``foundation.attach(node)`` sets it to a running
fabric node; until then every app is local-only and ``node_name`` is ``"nonode@nohost"`` as on a
non-distributed BEAM node.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from importlib import metadata as _metadata
from types import TracebackType
from typing import Any

from foundation._clock import Clock, SystemClock
from foundation._config import ConfigServer
from foundation._error_context import ErrorContext
from foundation._errors import Error, FoundationError, raise_error
from foundation._events import EventStore
from foundation._infrastructure import Infrastructure
from foundation._ports import set_default_sink_provider
from foundation._registry import (
    Namespace,
    ProcessRegistryImpl,
    ServiceRegistryImpl,
    TestNamespace,
    check_namespace,
)
from foundation._service import AppEnv
from foundation._telemetry import TelemetryConfig, TelemetryService

__all__ = ["FoundationApp", "app", "default_app", "forget_app", "production", "start_app", "stats", "version"]

#: The registry name under which :func:`start_app` registers the app itself.
APP_SERVICE_NAME = "foundation_app"


class FoundationApp:
    """Config, Events, Telemetry, Infrastructure and registries for one namespace. Thread-safe.

    Creating an app starts nothing; :meth:`initialize` (or ``with app:``) starts its services.

    Args:
        namespace: ``"production"`` or ``("test", uuid)`` (see ``TestNamespace()``).
        clock: the time source for every service of this app (inject ``ManualClock`` in tests).
        telemetry_config: label allow-list, buckets, retention (see :class:`TelemetryConfig`).
        node_name: recorded in every event's ``node`` field.
        test_mode: allows ``reset_state()``; defaults to True for test namespaces only.
        process_registry: the ProcessRegistry the services register in; by default a new one owned by
            this app (``start_app`` passes the default app's, as 1.x test namespaces shared one registry).
    """

    def __init__(self, namespace: Namespace = "production", *, clock: Clock | None = None,
                 telemetry_config: TelemetryConfig | None = None, node_name: str = "nonode@nohost",
                 test_mode: bool | None = None, process_registry: ProcessRegistryImpl | None = None) -> None:
        ns = check_namespace(namespace)
        self.env = AppEnv(namespace=ns, clock=clock or SystemClock(), node_name=node_name,
                          test_mode=test_mode if test_mode is not None else ns != "production")
        # Reserved for foundation.attach(node) (2.0 distributed features); None = local only.
        self.node: Any = None
        # Built bottom-up; each service receives what it uses and nothing else.
        self.telemetry = TelemetryService(self.env, telemetry_config)
        self.events = EventStore(self.env, telemetry=self.telemetry, hot_settings=self._hot_settings)
        self.config = ConfigServer(self.env, events=self.events, telemetry=self.telemetry)
        self.infrastructure = Infrastructure(clock=self.env.clock, config=self.config, telemetry=self.telemetry)
        self.process_registry = process_registry if process_registry is not None \
            else ProcessRegistryImpl(self.env.clock)
        self.service_registry = ServiceRegistryImpl(self.process_registry, self.telemetry)
        self._lock = threading.Lock()

    def _hot_settings(self) -> Any:
        return self.config.get_with_default(("storage", "hot"), None)

    # -- identity ---------------------------------------------------------------------------------

    @property
    def namespace(self) -> Namespace:
        """``"production"`` or ``("test", uuid)``."""
        return self.env.namespace

    @property
    def clock(self) -> Clock:
        """The time source of every service of this app."""
        return self.env.clock

    @property
    def node_name(self) -> str:
        """The node name recorded in new events (set by ``foundation.attach``)."""
        return self.env.node_name

    @node_name.setter
    def node_name(self, value: str) -> None:
        self.env.node_name = value

    @property
    def test_mode(self) -> bool:
        """True if ``reset_state()`` is allowed."""
        return self.env.test_mode

    # -- lifecycle --------------------------------------------------------------------------------

    def initialize(self, config: Mapping[str, Any] | None = None) -> None:
        """Start config (with ``config`` deep-merged over the defaults), events, then telemetry; each is a
        no-op if already running, and register them in this app's ProcessRegistry under its namespace.

        Raises:
            ValidationFailed: ``config`` gives an invalid configuration (nothing is started).
        """
        with self._lock:
            self.config.initialize(config)
            self.events.initialize()
            self.telemetry.initialize()
            for svc in (self.config, self.events, self.telemetry):
                self.process_registry.register(self.namespace, svc.service_name, svc)

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
                self.process_registry.unregister(self.namespace, svc.service_name)

    def stop(self) -> None:
        """Alias of :meth:`shutdown` (called by ``cleanup_test_namespace``)."""
        self.shutdown()

    def is_alive(self) -> bool:
        """Registry liveness: True while the services are available."""
        return self.available()

    def __enter__(self) -> FoundationApp:
        self.initialize()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()

    # -- helpers bound to this app ----------------------------------------------------------------

    def error_context(self, module: str, function: str, **kwargs: Any) -> ErrorContext:
        """``ErrorContext.new`` on this app's clock and telemetry: ``with_context`` then reports the
        operation duration and error metrics here, not to the default app."""
        return ErrorContext.new(module, function, clock=self.clock, telemetry=self.telemetry, **kwargs)

    def collect_error_metrics(self, error: Error) -> None:
        """``error.collect_error_metrics()`` on this app's telemetry."""
        error.collect_error_metrics(self.telemetry)


def version() -> str:
    """The installed package version (``"0.1.0"`` when not installed)."""
    try:
        return _metadata.version("foundation-fabric")
    except _metadata.PackageNotFoundError:
        return "0.1.0"


# -- the default app ------------------------------------------------------------------------------

_default: FoundationApp | None = None
_default_lock = threading.Lock()
_start_lock = threading.Lock()


def default_app() -> FoundationApp:
    """The ``"production"`` app behind the public facades, created and initialized on the first call
    (thread-safe: concurrent first calls get the same app; nothing is created at import)."""
    global _default
    found = _default
    if found is not None:
        return found
    with _default_lock:
        if _default is None:
            fresh = FoundationApp("production")
            fresh.initialize()
            _default = fresh  # published only once initialized
        return _default


def production() -> FoundationApp:
    """Alias of :func:`default_app`."""
    return default_app()


def stats() -> dict[str, Any]:
    """``{"default_app_created": bool, "started_apps": int}``, without creating the default app.

    The default app is created lazily, by the first use of a facade (``foundation.Config`` ...), of a
    lifecycle function or of :func:`default_app`; ``started_apps`` counts the live :func:`start_app` apps.
    """
    found = _default
    started = 0
    if found is not None:
        registry = found.process_registry
        started = sum(1 for ns in registry.namespaces() if ns != "production"
                      and isinstance(registry.lookup(ns, APP_SERVICE_NAME), FoundationApp))
    return {"default_app_created": found is not None, "started_apps": started}


def _not_found(ns: Namespace) -> Any:
    return raise_error(Error.build(5001, "service_not_found", f"no app started for namespace {ns!r}",
                                   category="system", subcategory="discovery", context={"namespace": ns}))


def app(namespace: Namespace = "production") -> FoundationApp:
    """The app of ``namespace``: the default app for ``"production"``, else the live :func:`start_app` app.

    Raises:
        ServiceNotFound: no app was started for it (or it was cleaned up / shut down).
    """
    ns = check_namespace(namespace)
    owner = default_app()
    if ns == "production":
        return owner
    found = owner.process_registry.lookup(ns, APP_SERVICE_NAME)
    if not isinstance(found, FoundationApp):
        _not_found(ns)
    return found  # type: ignore[return-value]


def start_app(namespace: Namespace | None = None, *, config: Mapping[str, Any] | None = None,
              clock: Clock | None = None, telemetry_config: TelemetryConfig | None = None,
              node_name: str = "nonode@nohost", test_mode: bool | None = None) -> FoundationApp:
    """Create and initialize an isolated app (a fresh ``TestNamespace()`` when ``namespace`` is None),
    registered with its services in the default app's registry (``foundation.ProcessRegistry``).

    Its services, metrics and events are its own: nothing it does reaches the default app's telemetry.
    Stop it with ``ServiceRegistry.cleanup_test_namespace(app.namespace)`` or ``app.shutdown()``.

    Raises:
        FoundationError: ``already_exists`` when an app already runs in ``namespace``.
        ValidationFailed: ``config`` is invalid (nothing stays registered).
    """
    ns = check_namespace(namespace) if namespace is not None else TestNamespace()
    owner = default_app()
    registry = owner.process_registry
    with _start_lock:
        if ns == "production" or registry.registered(ns, APP_SERVICE_NAME):
            raise_error(Error.new("already_exists", f"an app already runs in {ns!r}", context={"namespace": ns}))
        new = FoundationApp(ns, clock=clock, telemetry_config=telemetry_config, node_name=node_name,
                            test_mode=test_mode, process_registry=registry)
        try:
            new.initialize(config)
        except BaseException:
            new.shutdown()
            raise
        registry.register(ns, APP_SERVICE_NAME, new)
    return new


def forget_app(namespace: Namespace) -> None:
    """Shut down and drop the app of a test namespace and everything registered there (no-op for
    ``"production"`` or an unknown namespace)."""
    ns = check_namespace(namespace)
    if ns == "production" or _default is None:
        return
    _default.service_registry.cleanup_test_namespace(ns)


# Metrics of helpers that were given no app (Error.collect_error_metrics(), ErrorContext.with_context on a
# context without telemetry) go to the default app -- resolved when such a metric is emitted, not now.
set_default_sink_provider(lambda: default_app().telemetry)
