"""Pure pieces of the Foundation services: clocks, config helpers, error mapping, histogram buckets."""

from __future__ import annotations

from datetime import timedelta

import pytest

import foundation
from foundation import ConfigData, Error, ManualClock, SystemClock
from foundation._config import check_path_security, check_value_security, diff_configs, new_config
from foundation._errors import exception_for
from foundation._telemetry import _prom_name, _Series


def test_manual_clock() -> None:
    clock = ManualClock(start_ms=5)
    wall = clock.wall()
    clock.advance(1.5)
    assert clock.monotonic_ms() == 6 and clock.monotonic_ns() == 6_500_000
    assert clock.wall() - wall == timedelta(microseconds=1500)
    clock.advance_ns(500_000)
    assert clock.monotonic_ms() == 7
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    a = clock.monotonic_ns()
    assert clock.monotonic_ns() >= a and clock.wall().tzinfo is not None
    assert isinstance(clock, foundation.Clock) and isinstance(ManualClock(), foundation.Clock)


def test_config_data_is_read_only_view() -> None:
    cfg = new_config()
    assert isinstance(cfg["ai"], ConfigData) and len(cfg) == 6 and "ai" in list(cfg)
    with pytest.raises(TypeError):
        cfg["ai"] = {}  # type: ignore[index]
    copy = cfg.to_dict()
    copy["ai"]["provider"] = "openai"
    assert cfg["ai"]["provider"] == "mock"
    assert cfg == new_config() and cfg != new_config({"dev": {"debug_mode": True}})
    assert cfg == cfg.to_dict()
    assert "ConfigData(" in repr(cfg)


def test_security_helpers() -> None:
    check_path_security(("ai", "provider"))
    check_value_security({"nested": [1, 2.5, None, True, "s", b"b", (1,)]})
    with pytest.raises(foundation.SecurityViolation):
        check_value_security({1: "non-str key"})
    with pytest.raises(foundation.SecurityViolation):
        check_value_security({1, 2})


def test_diff_of_added_and_removed_keys() -> None:
    assert diff_configs({"a": 1}, {"b": 2}) == {"a": {"old": 1, "new": None, "path": ["a"]},
                                                "b": {"old": None, "new": 2, "path": ["b"]}}


def test_exception_class_selection() -> None:
    assert type(exception_for(Error.new("timeout"))) is foundation.ServiceTimeout
    assert type(exception_for(Error.new("data_corruption"))) is foundation.DataError
    assert type(exception_for(Error.new("something_new"))) is foundation.FoundationError
    err = Error.build(1, "custom", "m", category="external", subcategory="x")
    assert type(exception_for(err)) is foundation.ExternalError
    exc = exception_for(Error.new("timeout"))
    assert exc.code == 4301 and exc.error_type == "timeout" and "[4301:timeout]" in str(exc)


def test_histogram_bucket_boundaries_are_le() -> None:
    s = _Series("histogram", (1.0, 2.0))
    for v in (0.5, 1.0, 1.5, 2.0, 3.0):
        s.record(v, 0)
    assert s.buckets == [2, 2, 1] and s.count == 5 and s.total == 8.0


def test_prometheus_names() -> None:
    assert _prom_name("", ("a", "b"), "counter") == "a_b"
    assert _prom_name("x_", ("a",), "latency") == "x_a_latency"
    assert _prom_name("", ("9lives", "ü"), "gauge") == "_9lives__"


def test_error_retry_delay_type_checked() -> None:
    with pytest.raises(TypeError):
        Error.new("timeout").retry_delay(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Error.new(5)  # type: ignore[arg-type]


def test_label_allowlist_must_be_prometheus_labels() -> None:
    for bad in ("my-key", "le", "__name__", "overflow", "9x"):
        with pytest.raises(ValueError):
            foundation.TelemetryConfig(label_allowlist=(bad,))
    assert foundation.TelemetryConfig(label_allowlist=("tenant",)).label_allowlist == ("tenant",)
