"""Top-level lifecycle (initialize/status/available/health/version/shutdown) and Utils (§1.1, §1.7)."""

from __future__ import annotations

import re
import uuid

import pytest

import foundation
from foundation import Utils


def test_status_available_health_version() -> None:
    assert foundation.available()
    status = foundation.status()
    assert set(status) == {"config", "events", "telemetry"}
    assert all(s["status"] == "running" for s in status.values())
    health = foundation.health()
    assert health["status"] == "healthy" and health["foundation_available"] is True
    assert set(health["services"]) == {"config", "events", "telemetry"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", foundation.version())


def test_shutdown_and_initialize_again() -> None:
    foundation.Config.update(["dev", "debug_mode"], True)
    foundation.shutdown()
    try:
        assert not foundation.available()
        assert foundation.health()["status"] == "degraded"
        with pytest.raises(foundation.ServiceUnavailable):
            foundation.Config.get(["dev", "debug_mode"])
        with pytest.raises(foundation.ServiceUnavailable):
            foundation.Events.query()
        foundation.Telemetry.emit_counter(["x"], {})  # silent while down, as in 1.x
    finally:
        foundation.initialize()
    assert foundation.available()
    assert foundation.Config.get(["dev", "debug_mode"]) is False  # fresh state after restart
    foundation.initialize({"dev": {"debug_mode": True}})  # already running: overrides ignored
    assert foundation.Config.get(["dev", "debug_mode"]) is False


def test_public_surface_is_curated() -> None:
    assert set(foundation.__all__) >= {"Config", "Events", "Telemetry", "Error", "ErrorContext", "ServiceRegistry",
                                       "ProcessRegistry", "Utils", "Infrastructure", "initialize", "status",
                                       "available", "health", "version", "shutdown", "FoundationError"}
    for name in foundation.__all__:
        assert hasattr(foundation, name), name


def test_ids_and_timestamps() -> None:
    ids = {Utils.generate_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(i > 0 for i in ids)
    cid = Utils.generate_correlation_id()
    assert len(cid) == 36 and cid == cid.lower() and uuid.UUID(cid).version == 4
    assert isinstance(Utils.monotonic_timestamp(), int) and isinstance(Utils.wall_timestamp(), int)


def test_truncate_and_sizes() -> None:
    assert Utils.truncate_if_large({"a": 1}) == {"a": 1}
    t = Utils.truncate_if_large("x" * 20_000)
    assert t["truncated"] is True and t["preview"] == "x" * 100 + "..." and t["original_size"] > 20_000
    assert len(Utils.truncate_if_large(list(range(5000)))["preview"]) == 10
    assert len(Utils.truncate_if_large({str(i): "v" * 100 for i in range(500)})["preview"]) == 5
    assert Utils.deep_size(object()) == 0 and Utils.deep_size([1, 2]) > 0


def test_nested_helpers() -> None:
    assert Utils.deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    assert Utils.get_nested({"a": {"b": None}}, ["a", "b"], "d") == "d"
    assert Utils.get_nested({"a": {"b": 2}}, ["a", "b"]) == 2
    src = {"a": {"b": 1}}
    assert Utils.put_nested(src, ["a", "c"], 2) == {"a": {"b": 1, "c": 2}} and src == {"a": {"b": 1}}
    assert Utils.sanitize_string("  a\r\n\tb   c ") == "a b c"
    assert Utils.stringify_keys({1: {2: "x"}}) == {"1": {"2": "x"}}
    assert Utils.atomize_keys({"a": 1}) == {"a": 1}


def test_blank_present_formatting() -> None:
    for v in (None, "", "  \n", [], {}, ()):
        assert Utils.blank(v) and not Utils.present(v)
    for v in (0, "x", [0], {"a": 1}, False):
        assert Utils.present(v)
    assert [Utils.format_duration(n) for n in (500, 1500, 2_500_000, 1_500_000_000)] == [
        "500ns", "1.5μs", "2.5ms", "1.5s"]
    assert [Utils.format_bytes(n) for n in (512, 1024, 1_572_864, 3 * 1024**3)] == [
        "512 B", "1.0 KB", "1.5 MB", "3.0 GB"]
    assert Utils.valid_positive_integer(3) and not Utils.valid_positive_integer(True)
    assert not Utils.valid_positive_integer(0) and not Utils.valid_positive_integer(1.0)


def test_retry() -> None:
    sleeps: list[float] = []
    attempts = iter([("error", "x"), ("error", "y"), ("ok", 7)])
    assert Utils.retry(lambda: next(attempts), max_attempts=3, base_delay=100, max_delay=150,
                       sleep=sleeps.append) == 7
    assert sleeps == [0.1, 0.15]
    assert Utils.retry(lambda: "plain", sleep=sleeps.append) == "plain"

    def always() -> None:
        raise foundation.FoundationError(foundation.Error.new("timeout"))

    with pytest.raises(foundation.MaxAttemptsExceeded) as info:
        Utils.retry(always, max_attempts=2, sleep=lambda s: None)
    assert info.value.error.context["last_error"].error_type == "timeout"
    with pytest.raises(ZeroDivisionError):  # other exceptions are not retried
        Utils.retry(lambda: 1 / 0, sleep=lambda s: None)


def test_measure_and_stats() -> None:
    result, micros = Utils.measure(lambda: sum(range(100)))
    assert result == 4950 and micros >= 0
    result, (before, after, diff) = Utils.measure_memory(lambda: [0] * 10_000)
    assert len(result) == 10_000 and diff == after - before
    assert Utils.process_stats()["thread_count"] >= 1 and "cpu_count" in Utils.system_stats()
    assert Utils.safe_inspect("x" * 500).endswith("...")


def test_every_public_method_is_documented() -> None:
    """1.x's contract test required @moduledoc and specs; here: a docstring on every public callable."""
    targets = [foundation.Config, foundation.Events, foundation.Telemetry, foundation.Infrastructure,
               foundation.Infrastructure.CircuitBreaker, foundation.Infrastructure.RateLimiter,
               foundation.Infrastructure.ConnectionManager, foundation.ServiceRegistry, foundation.ProcessRegistry,
               foundation.Config.GracefulDegradation, foundation.Events.GracefulDegradation,
               foundation.Error, foundation.ErrorContext, foundation.Utils]
    missing = []
    for target in targets:
        for name in dir(target):
            if name.startswith("_"):
                continue
            member = getattr(target, name)
            if callable(member) and not isinstance(member, type) and not (member.__doc__ or "").strip():
                missing.append(f"{type(target).__name__}.{name}")
    assert missing == []
    for name in foundation.__all__:
        obj = getattr(foundation, name)
        assert (obj.__doc__ or "").strip(), name
