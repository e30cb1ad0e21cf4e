"""Infrastructure: circuit breaker (fuse), rate limiter, connection pool, execute_protected (§1.8)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import foundation
from foundation import FoundationApp, ManualClock


def _fail() -> None:
    raise RuntimeError("down")


def test_fuse_blows_after_tolerance_and_heals(fapp: FoundationApp, clock: ManualClock) -> None:
    cb = fapp.infrastructure.CircuitBreaker
    cb.start_fuse_instance("db", tolerance=2, refresh=1000)
    cb.start_fuse_instance("db", tolerance=9, refresh=9)  # already installed: no-op
    assert cb.execute("db", lambda: 42) == 42
    for _ in range(3):  # more than `tolerance` melts within `refresh` blow the fuse
        with pytest.raises(foundation.ProtectedOperationFailed) as info:
            cb.execute("db", _fail)
        assert info.value.error.code == 5003 and isinstance(info.value.__cause__, RuntimeError)
    assert cb.get_status("db") == "blown"
    with pytest.raises(foundation.CircuitBreakerBlown) as blown:
        cb.execute("db", lambda: 1)
    assert (blown.value.error.code, blown.value.error.retry_strategy) == (5004, "fixed_delay")
    clock.advance(1000)
    assert cb.get_status("db") == "ok"
    assert cb.execute("db", lambda: "back") == "back"


def test_melts_outside_window_are_forgotten(fapp: FoundationApp, clock: ManualClock) -> None:
    cb = fapp.infrastructure.CircuitBreaker
    cb.start_fuse_instance("svc", tolerance=1, refresh=100)
    for _ in range(5):
        with pytest.raises(foundation.ProtectedOperationFailed):
            cb.execute("svc", _fail)
        clock.advance(150)
        assert cb.get_status("svc") == "ok"


def test_returned_error_counts_as_success(fapp: FoundationApp) -> None:
    cb = fapp.infrastructure.CircuitBreaker
    cb.start_fuse_instance("r", tolerance=1, refresh=1000)
    for _ in range(5):
        assert cb.execute("r", lambda: ("error", "x")) == ("error", "x")
    assert cb.get_status("r") == "ok"


def test_fuse_not_found_codes_and_reset(fapp: FoundationApp) -> None:
    cb = fapp.infrastructure.CircuitBreaker
    with pytest.raises(foundation.CircuitBreakerNotFound) as a:
        cb.execute("none", lambda: 1)
    with pytest.raises(foundation.CircuitBreakerNotFound) as b:
        cb.get_status("none")
    with pytest.raises(foundation.CircuitBreakerNotFound) as c:
        cb.reset("none")
    assert (a.value.error.code, b.value.error.code, c.value.error.code) == (5005, 5007, 5013)
    with pytest.raises(foundation.FoundationError) as bad:
        cb.get_status("")
    assert bad.value.error.code == 5011
    with pytest.raises(ValueError):
        cb.start_fuse_instance("x", strategy="fault_injection")
    cb.start_fuse_instance("z", tolerance=1, refresh=10_000)
    for _ in range(2):
        with pytest.raises(foundation.ProtectedOperationFailed):
            cb.execute("z", _fail)
    assert cb.get_status("z") == "blown"
    cb.reset("z")
    assert cb.get_status("z") == "ok"


def test_rate_limiter_fixed_window(fapp: FoundationApp, clock: ManualClock) -> None:
    rl = fapp.infrastructure.RateLimiter
    clock.advance(1000 - clock.monotonic_ms() % 1000)  # align to a window start
    for _ in range(3):
        rl.check_rate("user1", "upload", 3, 1000)
    with pytest.raises(foundation.RateLimitExceeded) as info:
        rl.check_rate("user1", "upload", 3, 1000)
    err = info.value.error
    assert (err.code, err.retry_strategy) == (6001, "fixed_delay")
    assert err.context == {"entity_id": "user1", "operation": "upload", "limit": 3, "time_window_ms": 1000}
    rl.check_rate("user2", "upload", 3, 1000)  # entities are independent
    rl.check_rate("user1", "download", 3, 1000)  # operations too
    status = rl.get_status("user1", "upload")
    assert status["status"] == "rate_limited" and status["current_count"] == 3 and status["remaining"] == 0
    clock.advance(1000)
    rl.check_rate("user1", "upload", 3, 1000)
    rl.reset("user1", "upload")  # 1.x reset was a stub
    assert rl.get_status("user1", "upload")["current_count"] == 0


def test_execute_with_limit(fapp: FoundationApp) -> None:
    rl = fapp.infrastructure.RateLimiter
    assert rl.execute_with_limit("e", "op", 1, 60_000, lambda: "ran") == "ran"
    with pytest.raises(foundation.RateLimitExceeded):
        rl.execute_with_limit("e", "op", 1, 60_000, lambda: "never")
    with pytest.raises(foundation.FoundationError) as info:
        rl.execute_with_limit("e", "op2", 1, 60_000, _fail)
    assert info.value.error.code == 6008


def test_rate_limit_buckets_are_swept(fapp: FoundationApp, clock: ManualClock) -> None:
    rl = fapp.infrastructure.RateLimiter
    for i in range(100):
        rl.check_rate(f"user{i}", "op", 5, 1000)
    assert rl.bucket_count() == 100
    clock.advance(300_000)
    rl.check_rate("fresh", "op", 5, 1000)
    assert rl.bucket_count() == 1


class Worker:
    made = 0

    def __init__(self, **kwargs: Any) -> None:
        Worker.made += 1
        self.kwargs = kwargs
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_pool_checkout_overflow_and_status(fapp: FoundationApp) -> None:
    cm = fapp.infrastructure.ConnectionManager
    cm.start_pool("http", worker_factory=Worker, size=2, max_overflow=1, worker_args={"base_url": "u"})
    with pytest.raises(foundation.AlreadyExists):
        cm.start_pool("http", worker_factory=Worker)
    assert cm.list_pools() == ["http"]
    assert cm.with_connection("http", lambda w: w.kwargs["base_url"]) == "u"
    with cm.connection("http") as a, cm.connection("http") as b, cm.connection("http") as c:
        assert len({id(a), id(b), id(c)}) == 3
        status = cm.get_pool_status("http")
        assert (status["in_use"], status["overflow"], status["available"]) == (3, 1, 0)
        with pytest.raises(foundation.CheckoutTimeout):
            cm.with_connection("http", lambda w: None, timeout=0.01)
    status = cm.get_pool_status("http")
    assert (status["in_use"], status["overflow"], status["available"], status["size"]) == (0, 0, 2, 2)
    with pytest.raises(KeyError):
        cm.with_connection("http", lambda w: {}["missing"])
    assert cm.get_pool_status("http")["in_use"] == 0  # always checked back in
    cm.stop_pool("http")
    with pytest.raises(foundation.PoolNotFound):
        cm.with_connection("http", lambda w: None)
    with pytest.raises(ValueError):
        cm.start_pool("bad", worker_factory=Worker, strategy="random")


def test_pool_waiter_is_woken_by_checkin(fapp: FoundationApp) -> None:
    cm = fapp.infrastructure.ConnectionManager
    cm.start_pool("one", worker_factory=Worker, size=1, max_overflow=0, strategy="fifo")
    got: list[Any] = []
    with cm.connection("one") as w:
        t = threading.Thread(target=lambda: got.append(cm.with_connection("one", lambda x: x, timeout=10)))
        t.start()
        while cm.get_pool_status("one")["waiting"] == 0 and t.is_alive():
            t.join(0.001)
    t.join(10)
    assert got == [w]


def test_execute_protected_layers(fapp: FoundationApp) -> None:
    infra = fapp.infrastructure
    infra.ConnectionManager.start_pool("pool", worker_factory=Worker, size=1, max_overflow=0)
    infra.CircuitBreaker.start_fuse_instance("cb", tolerance=1, refresh=60_000)
    result = infra.execute_protected("k", lambda w: type(w).__name__, rate_limiter=("api_calls", "u1"),
                                     circuit_breaker="cb", connection_pool="pool")
    assert result == "Worker"
    with pytest.raises(foundation.FoundationError) as info:
        infra.execute_protected("k", _fail)
    assert info.value.error.error_type == "execution_error" and isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError):
        infra.execute_protected("k", lambda: 1, rate_limiter=("no_such_rule", "u"))


def test_execute_protected_applies_configured_limits(fapp: FoundationApp) -> None:
    infra = fapp.infrastructure
    # file_operations is 10 per 1_000 ms in the config (1.x hard-coded 100 per 60 s: Q, fixed).
    for _ in range(10):
        infra.execute_protected("files", lambda: None, rate_limiter=("file_operations", "u"))
    with pytest.raises(foundation.RateLimitExceeded) as info:
        infra.execute_protected("files", lambda: None, rate_limiter=("file_operations", "u"))
    assert info.value.error.context["limit"] == 10 and info.value.error.context["time_window_ms"] == 1000
    fapp.config.update(["infrastructure", "rate_limiting", "enabled"], False)
    assert infra.execute_protected("files", lambda: "free", rate_limiter=("file_operations", "u")) == "free"


def test_configure_protection_is_applied(fapp: FoundationApp) -> None:
    infra = fapp.infrastructure
    cfg = {"circuit_breaker": {"failure_threshold": 1, "recovery_time": 5000},
           "rate_limiter": {"scale": 60_000, "limit": 4}, "connection_pool": {"size": 1, "max_overflow": 0}}
    infra.configure_protection("payments", cfg)
    assert infra.list_protection_keys() == ["payments"]
    assert infra.get_protection_config("payments")["rate_limiter"] == {"scale": 60_000, "limit": 4}
    for _ in range(2):
        with pytest.raises(foundation.ProtectedOperationFailed):
            infra.execute_protected("payments", _fail)
    for _ in range(2):  # rate-limit admissions 3 and 4 of 4, rejected by the blown fuse
        with pytest.raises(foundation.CircuitBreakerBlown):
            infra.execute_protected("payments", lambda: 1)
    with pytest.raises(foundation.RateLimitExceeded):  # the 5th in the window never reaches the fuse
        infra.execute_protected("payments", lambda: 1)
    status = infra.get_protection_status("payments")
    assert status["configured"] and status["circuit_breaker"] == "blown"
    assert status["rate_limiter"]["current_count"] == 4
    infra.ConnectionManager.start_pool("payments", worker_factory=Worker)
    assert infra.ConnectionManager.get_pool_status("payments")["size"] == 1  # from the protection config
    for bad, reason in (({}, "missing_required_keys"), ("x", "invalid_config_format"),
                        ({**cfg, "rate_limiter": {"scale": 0, "limit": 1}}, "invalid_rate_limiter_config")):
        with pytest.raises(ValueError) as info:
            infra.configure_protection("p2", bad)  # type: ignore[arg-type]
        assert info.value.error.context["reason"] == reason  # type: ignore[attr-defined]
    with pytest.raises(foundation.FoundationError):
        infra.get_protection_config("unknown")


def test_initialize_circuit_breaker_and_status(fapp: FoundationApp) -> None:
    infra = fapp.infrastructure
    infra.initialize_circuit_breaker("svc")
    with pytest.raises(foundation.AlreadyExists):
        infra.initialize_circuit_breaker("svc")
    with pytest.raises(ValueError):
        infra.initialize_circuit_breaker("bad", {"failure_threshold": 0})
    with pytest.raises(ValueError):
        infra.initialize_circuit_breaker("")
    assert infra.initialize_all_infra_components() == []
    status = infra.get_infrastructure_status()
    assert status["fuse"] == "running" and status["circuit_breakers"] == ["svc"]
    metrics = fapp.telemetry.get_metrics()["foundation"]["foundation"]["infra"]["circuit_breaker"]
    assert metrics["fuse_installed"]["counter"] == 1
