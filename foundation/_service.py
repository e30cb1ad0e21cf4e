"""The in-process actor base: one lock per service, a running flag, uniform ``service_unavailable`` errors.

1.x ran each service as a GenServer: calls were serialized, and a stopped service answered
``{:error, %Error{error_type: :service_unavailable}}``. Here each service is an object with an ``RLock``
(re-entrant, because a config update stores an event and emits telemetry while it holds its own lock);
``start``/``stop`` flip the running flag, and every public call checks it first.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from foundation._errors import Error, raise_error

if TYPE_CHECKING:
    from foundation._app import FoundationApp

__all__ = ["Service"]


class Service:
    """Base class of the per-app services (config, events, telemetry).

    Subclasses set ``service_name`` (its registry name) and ``unavailable_code`` (the 1.x code of its
    ``service_unavailable`` error) and override :meth:`_on_start`.
    """

    service_name = "service"
    unavailable_code: int | None = None
    forbidden_code: int | None = None

    def __init__(self, app: FoundationApp) -> None:
        self._app = app
        self._lock = threading.RLock()
        self._running = False
        self._started_at_ms = 0

    @property
    def app(self) -> FoundationApp:
        """The app (namespace) this service belongs to."""
        return self._app

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._started_at_ms = self._app.clock.monotonic_ms()
            self._on_start()
            self._running = True

    def _stop(self) -> None:
        with self._lock:
            self._running = False
            self._on_stop()

    def _on_start(self) -> None:
        """Reset state for a fresh start (called with the lock held)."""

    def _on_stop(self) -> None:
        """Release state on stop (called with the lock held)."""

    def available(self) -> bool:
        """True while the service is running (1.x ``available?/0``)."""
        return self._running

    def is_alive(self) -> bool:
        """Registry liveness hook: a stopped service counts as a dead process."""
        return self._running

    def stop(self) -> None:
        """Stop the service (registry cleanup calls this). Later calls raise ``ServiceUnavailable``."""
        self._stop()

    def _check_running(self) -> None:
        if not self._running:
            raise_error(Error.build(
                self.unavailable_code, "service_unavailable", f"{self.service_name} is not running",
                category="system", subcategory="availability", severity="high",
                context={"service": self.service_name, "namespace": self._app.namespace},
            ))

    def _check_test_mode(self) -> None:
        if not self._app.test_mode:
            raise_error(Error.build(
                self.forbidden_code, "operation_forbidden", "reset_state is only allowed in test mode",
                category="security", subcategory="authorization", severity="high",
                context={"service": self.service_name},
            ))

    def _uptime_ms(self) -> int:
        return self._app.clock.monotonic_ms() - self._started_at_ms
