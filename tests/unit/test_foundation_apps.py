"""The app model: nothing starts at import, the default app is lazy and thread-safe, apps are isolated."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

import foundation
from foundation import Error, ErrorContext, FoundationApp, ManualClock
from tests.support import REPO, python_env


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=python_env(), cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_starts_nothing_and_first_use_creates_the_default_app() -> None:
    out = _run("""
        import threading
        before = threading.active_count()
        import foundation
        import foundation._app as composition
        assert threading.active_count() == before, "import started a thread"
        assert composition._default is None, "import created the default app"
        assert foundation.stats() == {"default_app_created": False, "started_apps": 0}
        assert "Config" not in vars(foundation) and "Config" in dir(foundation)
        # explicit apps and the free-standing helpers do not need the default app either
        with foundation.FoundationApp(clock=foundation.ManualClock()) as app:
            app.config.update(["dev", "debug_mode"], True)
            app.collect_error_metrics(foundation.Error.new("timeout"))
        foundation.Utils.generate_id()
        foundation.Error.new("timeout").retry_delay(1)
        assert composition._default is None
        # first use of a facade creates and initializes it
        assert foundation.Config.get(["ai", "provider"]) == "mock"
        assert foundation.stats()["default_app_created"] is True
        assert foundation.ProcessRegistry.lookup("production", "config_server") is foundation.Config
        from foundation import Events
        assert Events is foundation.default_app().events
        assert threading.active_count() == before
        print("ok")
    """)
    assert out == "ok"


def test_concurrent_first_use_creates_one_default_app() -> None:
    out = _run("""
        import threading
        import foundation
        barrier = threading.Barrier(16)
        seen = []
        def first_use():
            barrier.wait()
            seen.append(foundation.default_app())
        threads = [threading.Thread(target=first_use) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 16 and len({id(a) for a in seen}) == 1
        assert seen[0].available() and foundation.Telemetry is seen[0].telemetry
        print("ok")
    """)
    assert out == "ok"


def test_error_metrics_without_a_default_provider_are_dropped() -> None:
    out = _run("""
        import foundation
        from foundation import _app, _ports
        _ports.set_default_sink_provider(None)
        foundation.Error.new("timeout").collect_error_metrics()  # no app to report to: a no-op
        assert _app._default is None
        print("ok")
    """)
    assert out == "ok"


class Proc:
    def is_alive(self) -> bool:
        return True


def _names(metrics: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every metric name in a ``get_metrics()`` tree (a node with ``measurements``, or a plain int total)."""
    found: set[tuple[str, ...]] = set()
    for key, value in metrics.items():
        if key == "retrieved_at":
            continue
        if isinstance(value, int) or (isinstance(value, dict) and "measurements" in value):
            found.add((*prefix, key))
        else:
            found |= _names(value, (*prefix, key))
    return found


@pytest.fixture
def two_apps() -> Iterator[tuple[FoundationApp, FoundationApp]]:
    own = FoundationApp(clock=ManualClock())  # an explicit app: its own registries
    own.initialize()
    started = foundation.start_app(clock=ManualClock())  # a 1.x test app in the default registry
    try:
        yield own, started
    finally:
        own.shutdown()
        foundation.ServiceRegistry.cleanup_test_namespace(started.namespace)


def test_apps_do_not_leak_into_each_other_or_the_default_app(two_apps: tuple[FoundationApp, FoundationApp]) -> None:
    own, started = two_apps
    default = foundation.default_app()
    default.telemetry.reset_metrics()
    own.telemetry.reset_metrics()
    started.telemetry.reset_metrics()

    # registry traffic, events, error metrics and a failing operation, all in `own`
    own.service_registry.register(own.namespace, "worker", Proc())
    assert isinstance(own.service_registry.lookup(own.namespace, "worker"), Proc)
    with pytest.raises(foundation.ServiceNotFound):
        own.service_registry.lookup(own.namespace, "missing")
    own.events.store(own.events.new_event("only_in_own", {"n": 1}))
    own.collect_error_metrics(Error.new("timeout"))
    with pytest.raises(foundation.FoundationError):
        ErrorContext.with_context(own.error_context("Billing", "charge"), lambda: 1 / 0)
    child = ErrorContext.child_context(own.error_context("Billing", "run"), "Billing", "step")
    assert ErrorContext.with_context(child, lambda: 7) == 7

    # the started app is reached through the default registry facade: still accounted to itself
    assert foundation.ServiceRegistry.lookup(started.namespace, "event_store") is started.events
    started.events.store(started.events.new_event("only_in_started", 1))

    own_names = _names(own.telemetry.get_metrics())
    assert {("foundation", "foundation", "registry", "lookup"), ("foundation", "foundation", "registry", "register"),
            ("foundation", "errors", "external", "timeout"), ("foundation", "errors", "system", "runtime"),
            ("foundation", "operations", "duration"), ("foundation", "events_stored")} <= own_names
    lookups = own.telemetry.get_metrics()["foundation"]["foundation"]["registry"]["lookup"]
    assert lookups["duration"]["count"] == 2
    started_names = _names(started.telemetry.get_metrics())
    assert ("foundation", "foundation", "registry", "lookup") in started_names
    assert not any(n[:2] in {("foundation", "errors"), ("foundation", "operations")} for n in started_names)
    default_names = _names(default.telemetry.get_metrics())
    assert not any(n[:3] == ("foundation", "foundation", "registry") or n[:2] == ("foundation", "errors")
                   or n[:2] == ("foundation", "operations") or n == ("foundation", "events_stored")
                   for n in default_names), default_names

    # events and registry entries stay in their app
    assert [e.event_type for e in own.events.query(event_type="only_in_own")] == ["only_in_own"]
    for other in (started, default):
        assert other.events.query(event_type="only_in_own") == []
    assert own.events.query(event_type="only_in_started") == []
    assert default.events.query(event_type="only_in_started") == []
    assert foundation.ProcessRegistry.lookup("production", "worker") is None
    assert foundation.ProcessRegistry.lookup("production", "config_server") is foundation.Config
    assert own.process_registry.lookup("production", "config_server") is own.config
    assert own.process_registry.lookup(started.namespace, "event_store") is None


def test_free_helpers_without_an_app_still_report_to_the_default_app() -> None:
    """The 1.x behaviour: Error.collect_error_metrics() and a plain ErrorContext go to the default app."""
    foundation.Telemetry.reset_metrics()
    Error.new("timeout").collect_error_metrics()
    ErrorContext.with_context(ErrorContext.new("M", "f"), lambda: None)
    names = _names(foundation.Telemetry.get_metrics())
    assert ("foundation", "errors", "external", "timeout") in names
    assert ("foundation", "operations", "duration") in names


def test_explicit_app_lifecycle_and_lookup() -> None:
    app = FoundationApp(clock=ManualClock())
    assert not app.available()  # creating an app starts nothing
    with app:
        assert app.available() and app.namespace == "production" and not app.test_mode
        assert app.service_registry.lookup("production", "telemetry_service") is app.telemetry
    assert not app.available()
    assert app.process_registry.list_services("production") == []
    started = foundation.start_app()
    try:
        assert foundation.app(started.namespace) is started
        assert foundation.stats()["started_apps"] >= 1
        with pytest.raises(foundation.FoundationError) as info:
            foundation.start_app(started.namespace)
        assert info.value.error_type == "already_exists"
    finally:
        foundation.ServiceRegistry.cleanup_test_namespace(started.namespace)
    with pytest.raises(foundation.ServiceNotFound):
        foundation.app(started.namespace)
    assert foundation.app() is foundation.default_app()
