"""``Infrastructure``: circuit breakers, rate limiting, connection pools and ``execute_protected`` (1.x §1.8).

Theory of operation.

* Circuit breaker: a re-implementation of Erlang ``:fuse`` ``{standard, tolerance, refresh}`` with
  ``{reset, refresh}``. Each failure (the protected function raising) is a *melt* stamped with the clock;
  melts older than ``refresh`` ms are forgotten; when more than ``tolerance`` melts remain the fuse blows
  and rejects calls (5004) until ``refresh`` ms later, when it heals by itself (or on ``reset``).
* Rate limiter: fixed windows like Hammer. The bucket ``"foundation:{entity}:{operation}"`` counts allowed
  requests in the window ``[now - now % window, +window)``; the request that would exceed ``limit`` is
  denied (6001) and not counted. Buckets whose window has ended are swept every
  ``infrastructure.rate_limiting.cleanup_interval`` ms, so state stays bounded.
* Connection pool: ``size`` workers made up front by ``worker_factory``, up to ``max_overflow`` extra made
  on demand and closed on check-in (poolboy's rule); LIFO or FIFO reuse; a checkout waits on a condition
  variable up to ``timeout`` seconds. The worker always goes back, even when the function raises.
* ``execute_protected`` applies, in order, the rate limit, the breaker and the pool. Limits come from
  ``configure_protection(key, ...)`` when set, else from the app config's
  ``infrastructure.rate_limiting.default_rules`` (1.x hard-coded 100 per 60 s and ignored both).

All time comes from the app clock; no component starts a thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from foundation._clock import Clock
from foundation._errors import Error, FoundationError, raise_error, type_error, value_error
from foundation._ports import MetricsSink, SettingsSource

__all__ = ["CircuitBreakers", "ConnectionManager", "Infrastructure", "RateLimiter"]

T = TypeVar("T")


def _infra_error(code: int | None, error_type: str, message: str, *, subcategory: str = "infrastructure",
                 severity: str = "medium", retry: str | None = None, **context: Any) -> Error:
    return Error.build(code, error_type, message, category="system", subcategory=subcategory,
                       severity=severity, retry_strategy=retry, context=context)  # type: ignore[arg-type]


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


# -- circuit breaker --------------------------------------------------------------------------------


@dataclass
class _Fuse:
    tolerance: int
    refresh_ms: int
    melts: deque[int] = field(default_factory=deque)
    blown_until: int | None = None


class CircuitBreakers:
    """Named fuses of one app (1.x ``Infrastructure.CircuitBreaker``). Thread-safe."""

    def __init__(self, *, clock: Clock, telemetry: MetricsSink) -> None:
        self._clock = clock
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._fuses: dict[str, _Fuse] = {}

    def _emit(self, event: str, name: str, **meta: Any) -> None:
        self._telemetry.emit_counter(("foundation", "foundation", "infra", "circuit_breaker", event),
                                         {"name": name, **meta})

    @staticmethod
    def _check_name(name: Any, code: int) -> str:
        if not isinstance(name, str) or not name:
            raise_error(_infra_error(code, "invalid_input", "circuit breaker name must be a non-empty str",
                                     subcategory="validation", name=repr(name)))
        return name

    def start_fuse_instance(self, name: str, *, strategy: str = "standard", tolerance: int = 5,
                            refresh: int = 60_000) -> None:
        """Install a fuse that blows after more than ``tolerance`` failures within ``refresh`` ms and heals
        ``refresh`` ms after blowing. Installing an existing name is a no-op.

        Raises:
            SystemServiceError: 5009 ``invalid_input`` (bad name); FoundationValueError for a strategy other
                than ``"standard"`` or non-positive numbers (1.x silently used 5/60_000 instead).
        """
        self._check_name(name, 5009)
        if strategy != "standard" or not _pos_int(tolerance) or not _pos_int(refresh):
            raise value_error("fuse options: strategy='standard', tolerance and refresh positive ints",
                              strategy=strategy, tolerance=tolerance, refresh=refresh)
        with self._lock:
            if name in self._fuses:
                installed = False
            else:
                self._fuses[name] = _Fuse(tolerance, refresh)
                installed = True
        self._emit("fuse_installed" if installed else "fuse_already_installed", name)

    def installed(self, name: str) -> bool:
        """True if a fuse with this name exists."""
        with self._lock:
            return name in self._fuses

    def _heal_if_due(self, name: str, fuse: _Fuse, now: int) -> bool:
        if fuse.blown_until is not None and now >= fuse.blown_until:
            fuse.blown_until = None
            fuse.melts.clear()
            return True
        return False

    def _fuse(self, name: str, code: int) -> _Fuse:
        fuse = self._fuses.get(name)
        if fuse is None:
            raise_error(_infra_error(code, "circuit_breaker_not_found", f"circuit breaker {name!r} not found",
                                     name=name))
        return fuse

    def execute(self, name: str, fn: Callable[[], T], metadata: Mapping[str, Any] | None = None) -> T:
        """Run ``fn`` through the fuse and return its result (a returned value always counts as success).

        Raises:
            CircuitBreakerNotFound: 5005.
            CircuitBreakerBlown: 5004 (retry ``fixed_delay``).
            ProtectedOperationFailed: 5003 when ``fn`` raises (chained); the failure melts the fuse.
        """
        self._check_name(name, 5010)
        now = self._clock.monotonic_ms()
        with self._lock:
            if name not in self._fuses:
                missing = True
            else:
                missing = False
                fuse = self._fuses[name]
                healed = self._heal_if_due(name, fuse, now)
                blown = fuse.blown_until is not None
        if missing:
            self._emit("call_rejected", name, reason="not_found")
            raise_error(_infra_error(5005, "circuit_breaker_not_found", f"circuit breaker {name!r} not found",
                                     name=name))
        if healed:
            self._emit("state_change", name, status="ok")
        if blown:
            self._emit("call_rejected", name, reason="circuit_blown")
            raise_error(_infra_error(5004, "circuit_breaker_blown", f"circuit breaker {name!r} is blown",
                                     retry="fixed_delay", name=name))
        try:
            result = fn()
        except Exception as exc:
            self._melt(name, fuse)
            self._emit("call_executed", name, status="failed")
            raise_error(_infra_error(5003, "protected_operation_failed", f"protected operation failed: {exc!r}",
                                     name=name, exception=repr(exc)), exc)
        self._emit("call_executed", name, status="success")
        return result

    def _melt(self, name: str, fuse: _Fuse) -> None:
        now = self._clock.monotonic_ms()
        with self._lock:
            while fuse.melts and fuse.melts[0] <= now - fuse.refresh_ms:
                fuse.melts.popleft()
            fuse.melts.append(now)
            blew = fuse.blown_until is None and len(fuse.melts) > fuse.tolerance
            if blew:
                fuse.blown_until = now + fuse.refresh_ms
        if blew:
            self._emit("state_change", name, status="blown")

    def melt(self, name: str) -> None:
        """Record one failure without running anything (1.x ``:fuse.melt``). Raises 5005 if missing."""
        with self._lock:
            fuse = self._fuse(name, 5005)
        self._melt(name, fuse)

    def get_status(self, name: str) -> str:
        """``"ok"`` or ``"blown"``. Raises CircuitBreakerNotFound (5007), 5011 ``invalid_input``."""
        self._check_name(name, 5011)
        now = self._clock.monotonic_ms()
        with self._lock:
            fuse = self._fuse(name, 5007)
            self._heal_if_due(name, fuse, now)
            return "ok" if fuse.blown_until is None else "blown"

    def reset(self, name: str) -> None:
        """Heal the fuse and forget its failures. Raises CircuitBreakerNotFound (5013)."""
        self._check_name(name, 5011)
        with self._lock:
            fuse = self._fuse(name, 5013)
            fuse.blown_until = None
            fuse.melts.clear()
        self._emit("state_change", name, status="ok")

    def list(self) -> list[str]:
        """Installed fuse names."""
        with self._lock:
            return sorted(self._fuses)


# -- rate limiter -----------------------------------------------------------------------------------


@dataclass
class _Bucket:
    window_start: int
    window_ms: int
    limit: int
    count: int = 0


class RateLimiter:
    """Fixed-window rate limiting of one app (1.x ``Infrastructure.RateLimiter``). Thread-safe."""

    def __init__(self, *, clock: Clock, telemetry: MetricsSink, settings: SettingsSource) -> None:
        self._clock = clock
        self._telemetry = telemetry
        self._settings = settings
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = clock.monotonic_ms()

    @staticmethod
    def bucket_key(entity_id: Any, operation: Any) -> str:
        """``"foundation:{entity_id}:{operation}"``."""
        return f"foundation:{entity_id}:{operation}"

    def _emit(self, event: str, operation: Any, **meta: Any) -> None:
        self._telemetry.emit_counter(("foundation", "foundation", "infra", "rate_limiter", event),
                                         {"operation": str(operation), **meta})

    def _sweep(self, now: int) -> None:
        interval = self._settings.get_with_default(("infrastructure", "rate_limiting", "cleanup_interval"),
                                                     300_000)
        if now - self._last_sweep < interval:
            return
        self._last_sweep = now
        for key in [k for k, b in self._buckets.items() if now >= b.window_start + b.window_ms]:
            del self._buckets[key]

    def check_rate(self, entity_id: Any, operation: Any, limit: int, time_window_ms: int,
                   metadata: Mapping[str, Any] | None = None) -> None:
        """Count one request against ``limit`` per ``time_window_ms``.

        Raises:
            RateLimitExceeded: 6001 (retry ``fixed_delay``), context ``{entity_id, operation, limit,
                time_window_ms}``.
            FoundationValueError: non-positive ``limit`` or ``time_window_ms``.
        """
        if not _pos_int(limit) or not _pos_int(time_window_ms):
            raise value_error("limit and time_window_ms must be positive ints", limit=limit,
                              time_window_ms=time_window_ms)
        key = self.bucket_key(entity_id, operation)
        now = self._clock.monotonic_ms()
        with self._lock:
            self._sweep(now)
            start = now - now % time_window_ms
            bucket = self._buckets.get(key)
            if bucket is None or bucket.window_start != start or bucket.window_ms != time_window_ms:
                bucket = self._buckets[key] = _Bucket(start, time_window_ms, limit)
            bucket.limit = limit
            allowed = bucket.count < limit
            if allowed:
                bucket.count += 1
        if not allowed:
            self._emit("request_denied", operation)
            raise_error(_infra_error(6001, "rate_limit_exceeded", "Rate limit exceeded", subcategory="rate_limiting",
                                     retry="fixed_delay", entity_id=entity_id, operation=operation, limit=limit,
                                     time_window_ms=time_window_ms))
        self._emit("request_allowed", operation)

    def execute_with_limit(self, entity_id: Any, operation: Any, limit: int, time_window_ms: int,
                           fn: Callable[[], T], metadata: Mapping[str, Any] | None = None) -> T:
        """``check_rate`` then ``fn()``.

        Raises:
            RateLimitExceeded: 6001 (``fn`` not called).
            SystemServiceError: 6008 ``rate_limited_operation_failed`` when ``fn`` raises (chained).
        """
        self.check_rate(entity_id, operation, limit, time_window_ms, metadata)
        try:
            return fn()
        except Exception as exc:
            return raise_error(_infra_error(6008, "rate_limited_operation_failed", f"operation failed: {exc!r}",
                                            subcategory="rate_limiting", entity_id=entity_id,
                                            operation=operation), exc)

    def get_status(self, entity_id: Any, operation: Any) -> dict[str, Any]:
        """The real bucket state (1.x returned a fixed stub): ``{status: "available" | "rate_limited",
        current_count, limit, window_ms, remaining, reset_in_ms, entity_id, operation}``; counts are 0 and
        limits ``None`` for a bucket never used (or whose window ended)."""
        key = self.bucket_key(entity_id, operation)
        now = self._clock.monotonic_ms()
        with self._lock:
            b = self._buckets.get(key)
            if b is not None and now >= b.window_start + b.window_ms:
                b = None
            if b is None:
                return {"status": "available", "current_count": 0, "limit": None, "window_ms": None,
                        "remaining": None, "reset_in_ms": 0, "entity_id": entity_id, "operation": operation}
            return {"status": "rate_limited" if b.count >= b.limit else "available", "current_count": b.count,
                    "limit": b.limit, "window_ms": b.window_ms, "remaining": max(b.limit - b.count, 0),
                    "reset_in_ms": b.window_start + b.window_ms - now, "entity_id": entity_id,
                    "operation": operation}

    def reset(self, entity_id: Any, operation: Any) -> None:
        """Clear the bucket (1.x: a stub that cleared nothing)."""
        with self._lock:
            self._buckets.pop(self.bucket_key(entity_id, operation), None)
        self._emit("bucket_reset", operation)

    def bucket_count(self) -> int:
        """Number of buckets held (bounded by the cleanup sweep)."""
        with self._lock:
            return len(self._buckets)


# -- connection pool --------------------------------------------------------------------------------


class _Pool:
    def __init__(self, name: str, factory: Callable[..., Any], args: Mapping[str, Any], size: int,
                 max_overflow: int, strategy: str) -> None:
        self.name, self.factory, self.args = name, factory, dict(args)
        self.size, self.max_overflow, self.strategy = size, max_overflow, strategy
        self.cond = threading.Condition()
        self.idle: deque[Any] = deque(factory(**self.args) for _ in range(size))
        self.in_use = 0
        self.overflow = 0
        self.waiting = 0
        self.closed = False


def _close_worker(worker: Any) -> None:
    for method in ("close", "stop"):
        fn = getattr(worker, method, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                fn()
            return


class ConnectionManager:
    """Named worker pools of one app (1.x ``Infrastructure.ConnectionManager``). Thread-safe."""

    def __init__(self, *, telemetry: MetricsSink, settings: SettingsSource,
                 protection: Callable[[str], dict[str, Any] | None]) -> None:
        """``protection(name)`` gives the ``configure_protection`` limits of ``name`` (pool defaults)."""
        self._telemetry = telemetry
        self._settings = settings
        self._protection_of = protection
        self._lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}

    def _emit(self, event: str, name: str) -> None:
        self._telemetry.emit_counter(("foundation", "foundation", "connection_pool", event), {"pool": name})

    def start_pool(self, name: str, *, worker_factory: Callable[..., Any], size: int | None = None,
                   max_overflow: int | None = None, strategy: str | None = None,
                   worker_args: Mapping[str, Any] | None = None) -> None:
        """Create ``size`` workers with ``worker_factory(**worker_args)``.

        Omitted ``size``/``max_overflow``/``strategy`` come from ``configure_protection(name, ...)`` if set,
        else from config ``infrastructure.connection_pool.default_config``.

        Raises:
            PoolAlreadyExists: ``already_exists``.
            FoundationValueError: invalid size / overflow / strategy (1.x ``{:invalid_config, key, msg}``).
        """
        if not isinstance(name, str) or not name:
            raise type_error("pool name must be a non-empty str")
        if not callable(worker_factory):
            raise type_error("worker_factory must be callable")
        defaults = dict(self._settings.get_with_default(("infrastructure", "connection_pool", "default_config"),
                                                          {}) or {})
        protection = self._protection_of(name)
        if protection:
            defaults.update(protection.get("connection_pool", {}))
        size = size if size is not None else defaults.get("size", 5)
        max_overflow = max_overflow if max_overflow is not None else defaults.get("max_overflow", 10)
        strategy = strategy if strategy is not None else defaults.get("strategy", "lifo")
        if not _pos_int(size):
            raise value_error("size must be a positive int", key="size")
        if not isinstance(max_overflow, int) or isinstance(max_overflow, bool) or max_overflow < 0:
            raise value_error("max_overflow must be an int >= 0", key="max_overflow")
        if strategy not in ("lifo", "fifo"):
            raise value_error("strategy must be 'lifo' or 'fifo'", key="strategy")
        with self._lock:
            if name in self._pools:
                raise_error(_infra_error(None, "already_exists", f"pool {name!r} already exists",
                                         subcategory="connection_pool", pool=name))
            self._pools[name] = _Pool(name, worker_factory, worker_args or {}, size, max_overflow, strategy)
        self._emit("pool_started", name)

    def _pool(self, name: str) -> _Pool:
        with self._lock:
            pool = self._pools.get(name)
        if pool is None:
            raise_error(_infra_error(None, "pool_not_found", f"pool {name!r} not found",
                                     subcategory="connection_pool", pool=name))
        return pool

    def stop_pool(self, name: str) -> None:
        """Close idle workers now and busy ones on check-in. Raises PoolNotFound."""
        with self._lock:
            pool = self._pools.pop(name, None)
        if pool is None:
            raise_error(_infra_error(None, "pool_not_found", f"pool {name!r} not found",
                                     subcategory="connection_pool", pool=name))
        with pool.cond:
            pool.closed = True
            idle, pool.idle = list(pool.idle), deque()
            pool.cond.notify_all()
        for w in idle:
            _close_worker(w)
        self._emit("pool_stopped", name)

    def _checkout(self, pool: _Pool, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with pool.cond:
            pool.waiting += 1
            try:
                while True:
                    if pool.closed:
                        raise_error(_infra_error(None, "pool_not_found", f"pool {pool.name!r} was stopped",
                                                 subcategory="connection_pool", pool=pool.name))
                    if pool.idle:
                        pool.in_use += 1
                        return pool.idle.pop() if pool.strategy == "lifo" else pool.idle.popleft()
                    if pool.overflow < pool.max_overflow:
                        pool.overflow += 1
                        pool.in_use += 1
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._emit("timeout", pool.name)
                        raise_error(_infra_error(None, "checkout_timeout",
                                                 f"no worker free in pool {pool.name!r} within {timeout}s",
                                                 subcategory="connection_pool", pool=pool.name))
                    pool.cond.wait(remaining)
            finally:
                pool.waiting -= 1
        try:
            return pool.factory(**pool.args)  # overflow worker, made outside the lock
        except BaseException:
            with pool.cond:
                pool.overflow -= 1
                pool.in_use -= 1
                pool.cond.notify()
            raise

    def _checkin(self, pool: _Pool, worker: Any) -> None:
        close = False
        with pool.cond:
            pool.in_use -= 1
            if pool.closed:
                close = True
            elif pool.overflow > 0:
                pool.overflow -= 1  # poolboy dismisses an overflow worker on check-in
                close = True
            else:
                pool.idle.append(worker)
            pool.cond.notify()
        if close:
            _close_worker(worker)

    @contextlib.contextmanager
    def connection(self, name: str, timeout: float = 5.0) -> Iterator[Any]:
        """Check a worker out for the ``with`` block; it is always checked back in.

        Raises:
            PoolNotFound; CheckoutTimeout after ``timeout`` seconds.
        """
        pool = self._pool(name)
        worker = self._checkout(pool, timeout)
        self._emit("checkout", name)
        try:
            yield worker
        finally:
            self._checkin(pool, worker)
            self._emit("checkin", name)

    def with_connection(self, name: str, fn: Callable[[Any], T], timeout: float = 5.0) -> T:
        """``fn(worker)`` with a checked-out worker; exceptions from ``fn`` propagate unchanged.

        Raises:
            PoolNotFound; CheckoutTimeout after ``timeout`` seconds.
        """
        with self.connection(name, timeout) as worker:
            return fn(worker)

    def get_pool_status(self, name: str) -> dict[str, Any]:
        """``{size, max_overflow, overflow, available, in_use, waiting, strategy}`` (1.x mis-mapped these)."""
        pool = self._pool(name)
        with pool.cond:
            return {"size": pool.size, "max_overflow": pool.max_overflow, "overflow": pool.overflow,
                    "available": len(pool.idle), "in_use": pool.in_use, "waiting": pool.waiting,
                    "strategy": pool.strategy}

    def list_pools(self) -> list[str]:
        """Names of running pools."""
        with self._lock:
            return sorted(self._pools)

    def stop_all(self) -> None:
        """Stop every pool (app shutdown)."""
        for name in self.list_pools():
            with contextlib.suppress(FoundationError):
                self.stop_pool(name)


# -- facade -----------------------------------------------------------------------------------------


def _validate_protection(config: Any) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise value_error("protection config must be a mapping", reason="invalid_config_format")
    missing = [k for k in ("circuit_breaker", "rate_limiter", "connection_pool") if k not in config]
    if missing:
        raise value_error(f"missing keys {missing}", reason="missing_required_keys")
    cb, rl, cp = config["circuit_breaker"], config["rate_limiter"], config["connection_pool"]
    if not (isinstance(cb, Mapping) and _pos_int(cb.get("failure_threshold")) and _pos_int(cb.get("recovery_time"))):
        raise value_error("circuit_breaker needs positive failure_threshold and recovery_time",
                          reason="invalid_circuit_breaker_config")
    if not (isinstance(rl, Mapping) and _pos_int(rl.get("scale")) and _pos_int(rl.get("limit"))):
        raise value_error("rate_limiter needs positive scale and limit", reason="invalid_rate_limiter_config")
    mo = cp.get("max_overflow") if isinstance(cp, Mapping) else None
    if not (isinstance(cp, Mapping) and _pos_int(cp.get("size")) and isinstance(mo, int) and mo >= 0):
        raise value_error("connection_pool needs positive size and max_overflow >= 0",
                          reason="invalid_connection_pool_config")
    return {"circuit_breaker": dict(cb), "rate_limiter": dict(rl), "connection_pool": dict(cp)}


class Infrastructure:
    """The infrastructure facade of one app (public as ``foundation.Infrastructure`` for ``"production"``).

    ``CircuitBreaker``, ``RateLimiter`` and ``ConnectionManager`` are the component objects, named like the
    1.x modules. Thread-safe.
    """

    def __init__(self, *, clock: Clock, config: SettingsSource, telemetry: MetricsSink) -> None:
        """``config`` gives the ``infrastructure.*`` settings; ``telemetry`` receives the counters."""
        self._clock = clock
        self._settings = config
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._protection: dict[str, dict[str, Any]] = {}
        self.CircuitBreaker = CircuitBreakers(clock=clock, telemetry=telemetry)  # noqa: N815 - 1.x module name
        self.RateLimiter = RateLimiter(clock=clock, telemetry=telemetry, settings=config)  # noqa: N815
        self.ConnectionManager = ConnectionManager(  # noqa: N815
            telemetry=telemetry, settings=config, protection=self.protection_config)

    def _emit(self, event: str, **meta: Any) -> None:
        self._telemetry.emit_counter(("foundation", "foundation", "infrastructure", event), meta)

    def _enabled(self, component: str) -> bool:
        return bool(self._settings.get_with_default(("infrastructure", component, "enabled"), True))

    def execute_protected(
        self,
        key: str,
        fn: Callable[..., T],
        *,
        rate_limiter: tuple[str, Any] | None = None,
        circuit_breaker: str | None = None,
        connection_pool: str | None = None,
        timeout: float = 5.0,
    ) -> T:
        """Run ``fn`` behind rate limit -> circuit breaker -> pool, each optional.

        * ``rate_limiter=(rule, entity_id)``: the limit is ``configure_protection(key)``'s ``rate_limiter``
          ``{scale, limit}`` if set, else config ``infrastructure.rate_limiting.default_rules[rule]``;
          skipped when ``infrastructure.rate_limiting.enabled`` is false. With no argument but a configured
          protection, the rule is ``key`` and the entity ``key``.
        * ``circuit_breaker=name``: that fuse; with no argument but a configured protection, a fuse named
          ``key`` made from its ``failure_threshold``/``recovery_time``; skipped when disabled in config.
        * ``connection_pool=name``: ``fn(worker)`` is called with a checked-out worker, else ``fn()``.

        Raises:
            RateLimitExceeded (6001), CircuitBreakerBlown (5004), CircuitBreakerNotFound (5005),
            ProtectedOperationFailed (5003, fn raised under a breaker), PoolNotFound, CheckoutTimeout,
            FoundationError ``execution_error`` (fn raised without a breaker; chained),
            FoundationValueError (unknown rate-limit rule).
        """
        protection = self.protection_config(key)
        self._emit("execute_start", operation=key)
        try:
            if self._enabled("rate_limiting") and (rate_limiter is not None or protection):
                rule, entity = rate_limiter if rate_limiter is not None else (key, key)
                limit, scale = self._rate_limits(rule, protection)
                try:
                    self.RateLimiter.check_rate(entity, rule, limit, scale)
                except FoundationError:
                    self._emit("protection_triggered", operation=key, reason="rate_limited")
                    raise
            breaker = circuit_breaker
            if breaker is None and protection:
                breaker = key
                if not self.CircuitBreaker.installed(key):
                    cb = protection["circuit_breaker"]
                    self.CircuitBreaker.start_fuse_instance(key, tolerance=cb["failure_threshold"],
                                                            refresh=cb["recovery_time"])
            if breaker is not None and not self._enabled("circuit_breaker"):
                breaker = None

            def call() -> T:
                if connection_pool is not None:
                    return self.ConnectionManager.with_connection(connection_pool, fn, timeout)
                return fn()

            if breaker is not None:
                try:
                    result = self.CircuitBreaker.execute(breaker, call)
                except FoundationError as exc:
                    if exc.error_type == "circuit_breaker_blown":
                        self._emit("protection_triggered", operation=key, reason="circuit_blown")
                    raise
            else:
                try:
                    result = call()
                except FoundationError:
                    raise
                except Exception as exc:
                    raise_error(Error.new("execution_error", f"protected function raised {exc!r}",
                                          context={"key": key, "exception": repr(exc)}), exc)
        except BaseException:
            self._emit("execute_exception", operation=key)
            raise
        self._emit("execute_stop", operation=key)
        return result

    def _rate_limits(self, rule: str, protection: dict[str, Any] | None) -> tuple[int, int]:
        if protection:
            rl = protection["rate_limiter"]
            return rl["limit"], rl["scale"]
        rules = self._settings.get_with_default(("infrastructure", "rate_limiting", "default_rules"), {}) or {}
        spec = rules.get(rule)
        if not spec:
            raise value_error(f"no rate limiting rule {rule!r} in config or configure_protection",
                              rule=rule, known_rules=sorted(rules))
        return spec["limit"], spec["scale"]

    def configure_protection(self, key: str, config: Mapping[str, Any]) -> None:
        """Store (and from now on apply) the protection for ``key``: ``{"circuit_breaker":
        {failure_threshold, recovery_time}, "rate_limiter": {scale, limit}, "connection_pool": {size,
        max_overflow}}``. Replacing it re-creates the key's fuse with the new numbers.

        Raises:
            FoundationValueError: ``context["reason"]`` is ``missing_required_keys``, ``invalid_config_format``
                or ``invalid_<component>_config``.
        """
        validated = _validate_protection(config)
        with self._lock:
            self._protection[key] = validated
        with self.CircuitBreaker._lock:
            self.CircuitBreaker._fuses.pop(key, None)

    def protection_config(self, key: str) -> dict[str, Any] | None:
        """The stored protection for ``key`` or None."""
        with self._lock:
            cfg = self._protection.get(key)
            return None if cfg is None else {k: dict(v) for k, v in cfg.items()}

    def get_protection_config(self, key: str) -> dict[str, Any]:
        """The stored protection. Raises FoundationError ``not_configured`` (1.x ``{:error, :not_found}``)."""
        cfg = self.protection_config(key)
        if cfg is None:
            raise_error(Error.new("not_configured", f"no protection configured for {key!r}", context={"key": key}))
        return cfg

    def get_protection_status(self, key: str) -> dict[str, Any]:
        """Live status per layer (1.x returned ``unknown`` stubs): breaker ``"ok"``/``"blown"``/
        ``"not_installed"``, the rate-limit bucket status, the pool status or ``"not_started"``."""
        cfg = self.protection_config(key)
        breaker = self.CircuitBreaker.get_status(key) if self.CircuitBreaker.installed(key) else "not_installed"
        pool: Any = "not_started"
        if key in self.ConnectionManager.list_pools():
            pool = self.ConnectionManager.get_pool_status(key)
        return {"configured": cfg is not None, "circuit_breaker": breaker,
                "rate_limiter": self.RateLimiter.get_status(key, key), "connection_pool": pool}

    def list_protection_keys(self) -> list[str]:
        """Keys with a stored protection."""
        with self._lock:
            return sorted(self._protection)

    def initialize_circuit_breaker(self, name: str, config: Mapping[str, Any] | None = None) -> None:
        """Install fuse ``name`` from ``{failure_threshold, recovery_time}`` (defaults: config
        ``infrastructure.circuit_breaker.default_config``).

        Raises:
            FoundationValueError: ``invalid_name`` / ``invalid_configuration`` (``context["reason"]``).
            FoundationError: ``already_exists``.
        """
        if not isinstance(name, str) or not name:
            raise value_error("invalid circuit breaker name", reason="invalid_name")
        defaults = self._settings.get_with_default(("infrastructure", "circuit_breaker", "default_config"),
                                                     {"failure_threshold": 5, "recovery_time": 30_000}) or {}
        cfg = {**defaults, **(config or {})}
        if not (_pos_int(cfg.get("failure_threshold")) and _pos_int(cfg.get("recovery_time"))):
            raise value_error("failure_threshold and recovery_time must be positive ints",
                              reason="invalid_configuration")
        if self.CircuitBreaker.installed(name):
            raise_error(Error.new("already_exists", f"circuit breaker {name!r} already exists",
                                  context={"name": name}))
        self.CircuitBreaker.start_fuse_instance(name, tolerance=cfg["failure_threshold"],
                                                refresh=cfg["recovery_time"])

    def initialize_all_infra_components(self) -> list[str]:
        """Nothing to start (no background processes); returns ``[]`` like 1.x ``{:ok, []}``."""
        return []

    def get_infrastructure_status(self) -> dict[str, Any]:
        """``{fuse: "running", hammer: "configured", circuit_breakers, rate_limit_buckets, pools, timestamp}``."""
        return {"fuse": "running", "hammer": "configured", "circuit_breakers": self.CircuitBreaker.list(),
                "rate_limit_buckets": self.RateLimiter.bucket_count(), "pools": self.ConnectionManager.list_pools(),
                "timestamp": self._clock.monotonic_ms()}
