"""ServiceRegistry / ProcessRegistry: namespaces, isolation, health checks (§1.6)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import foundation
from foundation import FoundationApp, ProcessRegistry, ServiceRegistry, TestNamespace


class Proc:
    """A registrable 'process' with a liveness flag."""

    def __init__(self) -> None:
        self.alive = True
        self.stopped = False

    def is_alive(self) -> bool:
        return self.alive

    def stop(self) -> None:
        self.stopped = True
        self.alive = False


def test_register_lookup_unregister() -> None:
    ns = TestNamespace()
    p = Proc()
    ProcessRegistry.register(ns, "worker", p)
    ProcessRegistry.register(ns, "worker", p)  # same object again: fine
    assert ProcessRegistry.lookup(ns, "worker") is p
    assert ProcessRegistry.registered(ns, "worker") and ProcessRegistry.count_services(ns) == 1
    with pytest.raises(foundation.AlreadyRegistered) as info:
        ProcessRegistry.register(ns, "worker", Proc())
    assert info.value.existing is p
    ProcessRegistry.unregister(ns, "worker")
    assert ProcessRegistry.lookup(ns, "worker") is None
    assert ProcessRegistry.via_tuple(ns, "worker") == ("via", "ProcessRegistry", (ns, "worker"))


def test_dead_holder_is_absent_and_replaced() -> None:
    ns = TestNamespace()
    p = Proc()
    ProcessRegistry.register(ns, "svc", p)
    p.alive = False
    assert ProcessRegistry.lookup(ns, "svc") is None
    q = Proc()
    ProcessRegistry.register(ns, "svc", q)
    assert ProcessRegistry.get_all_services(ns) == {"svc": q}


def test_namespace_isolation() -> None:
    a, b = TestNamespace(), TestNamespace()
    pa, pb = Proc(), Proc()
    ProcessRegistry.register(a, "config_server", pa)
    ProcessRegistry.register(b, "config_server", pb)
    assert ProcessRegistry.lookup(a, "config_server") is pa and ProcessRegistry.lookup(b, "config_server") is pb
    assert ProcessRegistry.lookup("production", "config_server") is foundation.Config
    ServiceRegistry.cleanup_test_namespace(a)
    assert pa.stopped and not pb.stopped
    assert ProcessRegistry.list_services(a) == [] and ProcessRegistry.list_services(b) == ["config_server"]
    with pytest.raises(TypeError):
        ServiceRegistry.cleanup_test_namespace("production")


def test_app_namespaces_are_isolated(fapp: FoundationApp) -> None:
    other = foundation.start_app()
    try:
        fapp.config.update(["dev", "debug_mode"], True)
        fapp.events.store(fapp.events.new_event("only_here", 1))
        assert other.config.get(["dev", "debug_mode"]) is False
        assert foundation.Config.get(["dev", "debug_mode"]) is False
        assert other.events.query(event_type="only_here") == []
        assert foundation.Events.query(event_type="only_here") == []
        assert set(ProcessRegistry.list_services(fapp.namespace)) == {
            "config_server", "event_store", "telemetry_service", "foundation_app"}
        assert ServiceRegistry.lookup(fapp.namespace, "event_store") is fapp.events
        assert foundation.app(fapp.namespace) is fapp
    finally:
        ServiceRegistry.cleanup_test_namespace(other.namespace)
    assert not other.available()
    with pytest.raises(foundation.ServiceNotFound):
        foundation.app(other.namespace)


def test_bad_namespace_is_type_error() -> None:
    for ns in ("staging", ("test", "not-a-uuid"), ["test"]):
        with pytest.raises(TypeError):
            ProcessRegistry.register(ns, "x", Proc())  # type: ignore[arg-type]


def test_service_registry_lookup_error_5001() -> None:
    ns = TestNamespace()
    with pytest.raises(foundation.ServiceNotFound) as info:
        ServiceRegistry.lookup(ns, "missing")
    err = info.value.error
    assert (err.code, err.error_type, err.category, err.subcategory, err.severity) == (
        5001, "service_not_found", "system", "discovery", "medium")
    assert err.context == {"namespace": ns, "service": "missing"}


def test_service_registry_emits_telemetry() -> None:
    ns = TestNamespace()
    foundation.Telemetry.reset_metrics()
    ServiceRegistry.register(ns, "s", Proc())
    ServiceRegistry.lookup(ns, "s")
    m = foundation.Telemetry.get_metrics()["foundation"]["foundation"]["registry"]
    assert m["register"]["count"] == 1 and m["lookup"]["duration"]["count"] == 1
    assert m["lookup"]["metadata"] == {"namespace": "test", "service": "s", "result": "ok"}
    ServiceRegistry.cleanup_test_namespace(ns)


@pytest.mark.parametrize("check,reason", [
    (lambda p: False, ("health_check_failed", False)),
    (lambda p: "meh", ("health_check_failed", "meh")),
    (lambda p: 1 / 0, ("health_check_error", "ZeroDivisionError('division by zero')")),
])
def test_health_check_failures(check: Any, reason: Any) -> None:
    ns = TestNamespace()
    ServiceRegistry.register(ns, "s", Proc())
    with pytest.raises(foundation.HealthCheckFailed) as info:
        ServiceRegistry.health_check(ns, "s", check=check)
    assert info.value.reason == reason
    ServiceRegistry.cleanup_test_namespace(ns)


def test_health_check_pass_dead_and_timeout() -> None:
    ns = TestNamespace()
    p = Proc()
    ServiceRegistry.register(ns, "s", p)
    for ok in (lambda _: True, lambda _: None, lambda _: "ok", lambda _: ("ok", 1)):
        assert ServiceRegistry.health_check(ns, "s", check=ok) is p
    release = threading.Event()
    with pytest.raises(foundation.HealthCheckFailed) as info:
        ServiceRegistry.health_check(ns, "s", check=lambda _: release.wait(5), timeout=0.05)
    release.set()
    assert info.value.reason == "health_check_timeout"
    with pytest.raises(foundation.ServiceNotFound):
        ServiceRegistry.health_check(ns, "nope")
    ServiceRegistry.cleanup_test_namespace(ns)


def test_wait_for_service_wakes_on_register() -> None:
    ns = TestNamespace()
    p = Proc()
    started = threading.Event()
    result: list[Any] = []

    def waiter() -> None:
        started.set()
        result.append(ServiceRegistry.wait_for_service(ns, "late", timeout=10))

    t = threading.Thread(target=waiter)
    t.start()
    assert started.wait(5)
    ServiceRegistry.register(ns, "late", p)
    t.join(10)
    assert result == [p]
    with pytest.raises(foundation.ServiceTimeout) as info:
        ServiceRegistry.wait_for_service(ns, "never", timeout=0.01)
    assert info.value.error.error_type == "timeout"
    ServiceRegistry.cleanup_test_namespace(ns)


def test_service_info_and_stats() -> None:
    ns = TestNamespace()
    ServiceRegistry.register(ns, "a", Proc())
    info = ServiceRegistry.get_service_info(ns)
    assert info["total_services"] == 1 and info["healthy_services"] == 1
    assert info["services"]["a"]["alive"] is True
    stats = ProcessRegistry.stats()
    assert stats["production_services"] >= 3 and stats["test_namespaces"] >= 1
    assert {"total_services", "partitions", "partition_count", "memory_usage_bytes"} <= set(stats)
    ServiceRegistry.cleanup_test_namespace(ns)
