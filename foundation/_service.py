"""The in-process actor base: one lock per service, a running flag, uniform ``service_unavailable`` errors.

1.x ran each service as a GenServer: calls were serialized, and a stopped service answered
``{:error, %Error{error_type: :service_unavailable}}``. Here each service is an object with an ``RLock``
(re-entrant, because a config update stores an event and emits telemetry while it holds its own lock);
``start``/``stop`` flip the running flag, and every public call checks it first.

A service knows nothing about the app that composes it: it gets an :class:`AppEnv` (namespace, clock,
node name, test mode) and, from its subclass constructor, the other services it talks to.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from foundation._clock import Clock, SystemClock
from foundation._errors import Error, raise_error
from foundation._registry import Namespace

__all__ = ["AppEnv", "Service"]


@dataclass
class AppEnv:
    """What every service of one app shares: not a service, just the app's identity and time source.

    ``node_name`` changes when the app is attached to a fabric node (``foundation.attach``); services read
    it at the moment they need it.

    Args:
        namespace: ``"production"`` or ``("test", uuid)``.
        clock: the time source of every service of the app.
        node_name: recorded in every event's ``node`` field.
        test_mode: allows ``reset_state()``.
    """

    namespace: Namespace = "production"
    clock: Clock = field(default_factory=SystemClock)
    node_name: str = "nonode@nohost"
    test_mode: bool = False


class Service:
    """Base class of the per-app services (config, events, telemetry).

    Subclasses set ``service_name`` (its registry name) and ``unavailable_code`` (the 1.x code of its
    ``service_unavailable`` error) and override :meth:`_on_start`.
    """

    service_name = "service"
    unavailable_code: int | None = None
    forbidden_code: int | None = None

    def __init__(self, env: AppEnv) -> None:
        self._env = env
        self._lock = threading.RLock()
        self._running = False
        self._started_at_ms = 0

    @property
    def env(self) -> AppEnv:
        """The namespace, clock and node name of the app this service belongs to."""
        return self._env

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._started_at_ms = self._env.clock.monotonic_ms()
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
                context={"service": self.service_name, "namespace": self._env.namespace},
            ))

    def _check_test_mode(self) -> None:
        if not self._env.test_mode:
            raise_error(Error.build(
                self.forbidden_code, "operation_forbidden", "reset_state is only allowed in test mode",
                category="security", subcategory="authorization", severity="high",
                context={"service": self.service_name},
            ))

    def _uptime_ms(self) -> int:
        return self._env.clock.monotonic_ms() - self._started_at_ms
