"""``ProcessRegistry`` and ``ServiceRegistry``: named objects per namespace (1.x §1.6).

A namespace is ``"production"`` or ``("test", uuid.UUID)`` (see :func:`TestNamespace`); keys are
``(namespace, service_name)``, so test namespaces never see production entries. Registered objects are
"processes": an object exposing ``is_alive()`` (a thread, a service, your own class) is treated as absent
once it reports dead and is then lazily removed, as 1.x did with dead pids. ``ServiceRegistry`` adds the
1.x error results (5001 ``service_not_found``), health checks, waiting and telemetry on top.

Every app owns a registry pair; the default app's pair is ``foundation.ProcessRegistry`` /
``foundation.ServiceRegistry``, and apps started with ``start_app`` share it (as 1.x test namespaces shared
the one Registry). Registry telemetry is accounted to the namespace's own app: an operation on a namespace
whose ``telemetry_service`` is registered goes to that service, anything else to the registry owner's
telemetry -- so a test app's lookups never show up in the default app's metrics.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from foundation._clock import Clock, SystemClock
from foundation._errors import Error, FoundationError, raise_error, type_error
from foundation._ports import MetricsSink, default_sink

__all__ = ["Namespace", "ProcessRegistryImpl", "ServiceRegistryImpl", "TestNamespace"]

Namespace = str | tuple[str, uuid.UUID]


def TestNamespace() -> tuple[str, uuid.UUID]:  # noqa: N802 - mirrors the 1.x {:test, make_ref()} idiom
    """A fresh isolated namespace ``("test", uuid4())``."""
    return ("test", uuid.uuid4())


def check_namespace(namespace: Any) -> Namespace:
    """Return ``namespace`` if it is ``"production"`` or ``("test", UUID)``; else raise FoundationTypeError."""
    if namespace == "production":
        return "production"
    if isinstance(namespace, tuple) and len(namespace) == 2 and namespace[0] == "test" \
            and isinstance(namespace[1], uuid.UUID):
        return namespace
    raise type_error("namespace must be 'production' or ('test', uuid.UUID)", namespace=repr(namespace))


def _check_service(service: Any) -> str:
    if not isinstance(service, str) or not service:
        raise type_error("service name must be a non-empty str", service=repr(service))
    return service


def _alive(obj: Any) -> bool:
    probe = getattr(obj, "is_alive", None)
    if probe is None:
        return True
    try:
        return bool(probe())
    except Exception:
        return False


def namespace_label(namespace: Namespace) -> str:
    """A low-cardinality label for telemetry: ``"production"`` or ``"test"``."""
    return "production" if namespace == "production" else "test"


class ProcessRegistryImpl:
    """The 1.x ProcessRegistry (public instance ``foundation.ProcessRegistry``). Thread-safe."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: dict[tuple[Namespace, str], tuple[Any, int]] = {}

    def _live(self, key: tuple[Namespace, str]) -> tuple[Any, int] | None:
        entry = self._entries.get(key)
        if entry is not None and not _alive(entry[0]):
            del self._entries[key]
            return None
        return entry

    def register(self, namespace: Namespace, service: str, obj: Any) -> None:
        """Register ``obj``. Re-registering the same object is a no-op; a dead holder is replaced.

        Raises:
            AlreadyRegistered: another live object holds the name (``.existing`` is it).
            FoundationTypeError: bad namespace or service name.
        """
        key = (check_namespace(namespace), _check_service(service))
        with self._lock:
            entry = self._live(key)
            if entry is not None and entry[0] is not obj:
                raise_error(Error.build(None, "already_registered", f"{service!r} is already registered",
                                        category="system", subcategory="discovery",
                                        context={"namespace": namespace, "service": service,
                                                 "existing": entry[0]}))
            if entry is None:
                self._entries[key] = (obj, self._clock.monotonic_ms())
            self._changed.notify_all()

    def lookup(self, namespace: Namespace, service: str) -> Any | None:
        """The live object registered under the name, or ``None`` (1.x ``:error``)."""
        key = (check_namespace(namespace), _check_service(service))
        with self._lock:
            entry = self._live(key)
            return None if entry is None else entry[0]

    def unregister(self, namespace: Namespace, service: str) -> None:
        """Remove the name (no error if absent)."""
        key = (check_namespace(namespace), _check_service(service))
        with self._lock:
            self._entries.pop(key, None)

    def _names(self, namespace: Namespace) -> list[str]:
        return sorted(svc for (ns, svc) in list(self._entries) if ns == namespace and self._live((ns, svc)))

    def list_services(self, namespace: Namespace) -> list[str]:
        """Names of live services in ``namespace``, sorted."""
        ns = check_namespace(namespace)
        with self._lock:
            return self._names(ns)

    def get_all_services(self, namespace: Namespace) -> dict[str, Any]:
        """``{name: object}`` for live services in ``namespace``."""
        ns = check_namespace(namespace)
        with self._lock:
            return {svc: self._entries[(ns, svc)][0] for svc in self._names(ns)}

    def namespaces(self) -> list[Namespace]:
        """Every namespace with at least one live entry (``"production"`` first, then test namespaces)."""
        with self._lock:
            live = {ns for ns, svc in list(self._entries) if self._live((ns, svc))}
        return sorted(live, key=lambda ns: (ns != "production", str(ns)))

    def registered(self, namespace: Namespace, service: str) -> bool:
        """True if a live object holds the name (1.x ``registered?/2``)."""
        return self.lookup(namespace, service) is not None

    def count_services(self, namespace: Namespace) -> int:
        """Number of live services in ``namespace``."""
        return len(self.list_services(namespace))

    @staticmethod
    def via_tuple(namespace: Namespace, service: str) -> tuple[str, str, tuple[Namespace, str]]:
        """``("via", "ProcessRegistry", (namespace, service))``, the 1.x registration key as data."""
        return ("via", "ProcessRegistry", (check_namespace(namespace), _check_service(service)))

    def registered_at(self, namespace: Namespace, service: str) -> int | None:
        """Monotonic ms when the live entry was registered, or None."""
        with self._lock:
            entry = self._live((namespace, service))
            return None if entry is None else entry[1]

    def cleanup_test_namespace(self, namespace: Namespace) -> None:
        """Stop (``.stop()`` if present) and remove every entry of a test namespace. No sleeping.

        Raises:
            FoundationTypeError: ``namespace`` is ``"production"`` or malformed.
        """
        ns = check_namespace(namespace)
        if ns == "production":
            raise type_error("cleanup_test_namespace only accepts a test namespace")
        with self._lock:
            victims = [(k, e[0]) for k, e in self._entries.items() if k[0] == ns]
            for k, _ in victims:
                del self._entries[k]
        for _, obj in victims:
            stop = getattr(obj, "stop", None)
            if callable(stop):
                try:
                    stop()
                except Exception:  # cleanup is best effort, like 1.x's stop/exit/kill ladder
                    continue

    def stats(self) -> dict[str, Any]:
        """``{total_services, production_services, test_namespaces, partitions, partition_count,
        memory_usage_bytes}`` (one partition: a single dict behind one lock)."""
        with self._lock:
            keys = [k for k in list(self._entries) if self._live(k)]
            return {"total_services": len(keys),
                    "production_services": sum(1 for ns, _ in keys if ns == "production"),
                    "test_namespaces": len({ns for ns, _ in keys if ns != "production"}),
                    "partitions": 1, "partition_count": 1,
                    "memory_usage_bytes": 200 * len(keys)}

    def wait_for(self, namespace: Namespace, service: str, timeout: float) -> Any | None:
        """Block until a live object holds the name or ``timeout`` seconds pass; return it or None."""
        key = (check_namespace(namespace), _check_service(service))
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                entry = self._live(key)
                if entry is not None:
                    return entry[0]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                # Woken by register(); the bounded wait also re-checks objects that died meanwhile.
                self._changed.wait(min(remaining, 0.05))


class ServiceRegistryImpl:
    """The 1.x ServiceRegistry (public instance ``foundation.ServiceRegistry``). Thread-safe.

    Emits ``("foundation", "foundation", "registry", "lookup")`` ``{duration}`` and ``(..., "register")``
    ``{count: 1}`` with metadata ``{namespace, service, result}`` on the telemetry of the namespace's app
    (its registered ``telemetry_service``), else on ``telemetry`` (the owning app's).

    Args:
        processes: the ProcessRegistry holding the entries.
        telemetry: where operations on namespaces without a running telemetry service are accounted
            (None: the default app's, as in 1.x; every app passes its own).
    """

    def __init__(self, processes: ProcessRegistryImpl, telemetry: MetricsSink | None = None) -> None:
        self._processes = processes
        self._telemetry = telemetry

    def _sink(self, namespace: Namespace) -> MetricsSink:
        try:
            own = self._processes.lookup(namespace, "telemetry_service")
        except FoundationError:  # malformed namespace: the caller's own check reports it
            own = None
        if isinstance(own, MetricsSink):
            return own
        return self._telemetry if self._telemetry is not None else default_sink()

    def _emit(self, op: str, measurements: dict[str, Any], namespace: Namespace, service: str, result: str) -> None:
        self._sink(namespace).execute(("foundation", "foundation", "registry", op), measurements,
                                      {"namespace": namespace_label(namespace), "service": service,
                                       "result": result})

    def register(self, namespace: Namespace, service: str, obj: Any) -> None:
        """See :meth:`ProcessRegistryImpl.register`."""
        try:
            self._processes.register(namespace, service, obj)
        except FoundationError:
            self._emit("register", {"count": 1}, namespace, service, "error")
            raise
        self._emit("register", {"count": 1}, namespace, service, "ok")

    def lookup(self, namespace: Namespace, service: str) -> Any:
        """The registered object.

        Raises:
            ServiceNotFound: 5001, ``context`` ``{namespace, service}``.
        """
        start = time.perf_counter_ns()
        obj = self._processes.lookup(namespace, service)
        self._emit("lookup", {"duration": time.perf_counter_ns() - start}, namespace, service,
                   "ok" if obj is not None else "not_found")
        if obj is None:
            raise_error(Error.build(5001, "service_not_found", f"Service {service!r} not found",
                                    category="system", subcategory="discovery", severity="medium",
                                    context={"namespace": namespace, "service": service}))
        return obj

    def unregister(self, namespace: Namespace, service: str) -> None:
        """Remove the name (no error if absent)."""
        self._processes.unregister(namespace, service)

    def list_services(self, namespace: Namespace) -> list[str]:
        """Names of live services in ``namespace``."""
        return self._processes.list_services(namespace)

    def via_tuple(self, namespace: Namespace, service: str) -> tuple[str, str, tuple[Namespace, str]]:
        """See :meth:`ProcessRegistryImpl.via_tuple`."""
        return self._processes.via_tuple(namespace, service)

    def cleanup_test_namespace(self, namespace: Namespace) -> None:
        """Stop and remove every entry of a test namespace (its app, registered as ``foundation_app`` by
        ``start_app``, is stopped with it)."""
        self._processes.cleanup_test_namespace(namespace)

    def health_check(self, namespace: Namespace, service: str, *, check: Callable[[Any], Any] | None = None,
                     timeout: float = 5.0) -> Any:
        """Look the service up, require it alive, run ``check(obj)`` (in a helper thread, bounded by
        ``timeout`` seconds); return the object.

        ``check`` passes on ``True``, ``None``, ``"ok"`` or ``("ok", _)``.

        Raises:
            ServiceNotFound: 5001.
            HealthCheckFailed: ``.reason`` is ``"process_dead"``, ``"health_check_timeout"``,
                ``("health_check_failed", value)`` or ``("health_check_error", repr(exc))``.
        """
        obj = self.lookup(namespace, service)

        def failed(reason: Any) -> Any:
            return raise_error(Error.build(None, "health_check_failed", f"health check of {service!r} failed",
                                           category="system", subcategory="health",
                                           context={"namespace": namespace, "service": service,
                                                    "reason": reason}))

        if not _alive(obj):
            failed("process_dead")
        if check is None:
            return obj
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(("value", check(obj)))
            except Exception as exc:
                outcome.append(("raised", exc))

        worker = threading.Thread(target=run, name=f"health-check-{service}", daemon=True)
        worker.start()
        worker.join(timeout)
        if not outcome:
            failed("health_check_timeout")
        tag, value = outcome[0]
        if tag == "raised":
            failed(("health_check_error", repr(value)))
        if value is True or value is None or value == "ok" or (isinstance(value, tuple) and value[:1] == ("ok",)):
            return obj
        return failed(("health_check_failed", value))

    def wait_for_service(self, namespace: Namespace, service: str, timeout: float = 5.0) -> Any:
        """Block until the service is registered (woken by ``register``, no polling loop); return it.

        Raises:
            ServiceTimeout: not registered within ``timeout`` seconds (``error_type`` ``timeout``).
        """
        obj = self._processes.wait_for(namespace, service, timeout)
        if obj is None:
            raise_error(Error.new("timeout", f"service {service!r} not registered within {timeout}s",
                                  context={"namespace": namespace, "service": service}))
        return obj

    def get_service_info(self, namespace: Namespace) -> dict[str, Any]:
        """``{namespace, services: {name: {object, alive, uptime_ms}}, total_services, healthy_services}``."""
        services = self._processes.get_all_services(namespace)
        now = self._processes._clock.monotonic_ms()
        info = {}
        for name, obj in services.items():
            since = self._processes.registered_at(namespace, name)
            info[name] = {"object": obj, "alive": _alive(obj), "uptime_ms": 0 if since is None else now - since}
        return {"namespace": namespace, "services": info, "total_services": len(info),
                "healthy_services": sum(1 for v in info.values() if v["alive"])}
