"""Error and ErrorContext: codes, categories, severities, retry strategies and delays (§1.5)."""

from __future__ import annotations

import asyncio
import math

import pytest

import foundation
from foundation import Error, ErrorContext, FoundationApp, ManualClock

TABLE = [
    ("invalid_config_structure", 1101, "high", "config", "structure"),
    ("missing_required_field", 1102, "high", "config", "structure"),
    ("invalid_config_value", 1201, "medium", "config", "validation"),
    ("constraint_violation", 1202, "medium", "config", "validation"),
    ("range_error", 1203, "low", "config", "validation"),
    ("config_not_found", 1301, "high", "config", "access"),
    ("config_update_forbidden", 1401, "medium", "config", "runtime"),
    ("initialization_failed", 2101, "critical", "system", "initialization"),
    ("service_unavailable", 2102, "high", "system", "initialization"),
    ("resource_exhausted", 2201, "high", "system", "resources"),
    ("dependency_failed", 2301, "high", "system", "dependencies"),
    ("internal_error", 2401, "critical", "system", "runtime"),
    ("serialization_failed", 3101, "medium", "data", "serialization"),
    ("deserialization_failed", 3102, "medium", "data", "serialization"),
    ("type_mismatch", 3201, "low", "data", "validation"),
    ("format_error", 3202, "low", "data", "validation"),
    ("validation_failed", 3203, "medium", "data", "validation"),
    ("invalid_input", 3204, "low", "data", "validation"),
    ("data_corruption", 3301, "critical", "data", "corruption"),
    ("data_not_found", 3401, "low", "data", "not_found"),
    ("network_error", 4101, "medium", "external", "network"),
    ("external_service_error", 4201, "medium", "external", "service"),
    ("timeout", 4301, "medium", "external", "timeout"),
    ("authentication_failed", 4401, "high", "external", "auth"),
]

STRATEGY = {
    "timeout": "exponential_backoff", "network_error": "exponential_backoff",
    "external_service_error": "fixed_delay", "invalid_config_value": "no_retry", "data_corruption": "no_retry",
    "internal_error": "no_retry", "initialization_failed": "no_retry", "service_unavailable": "immediate",
    "authentication_failed": "immediate", "resource_exhausted": "immediate", "range_error": "fixed_delay",
    "config_update_forbidden": "fixed_delay", "type_mismatch": "fixed_delay",
}


@pytest.mark.parametrize("etype,code,severity,category,subcategory", TABLE)
def test_error_table(etype: str, code: int, severity: str, category: str, subcategory: str) -> None:
    err = Error.new(etype)
    assert (err.code, err.severity, err.category, err.subcategory) == (code, severity, category, subcategory)
    assert err.message and err.timestamp.tzinfo is not None
    assert all(isinstance(a, str) for a in err.recovery_actions)


@pytest.mark.parametrize("etype,strategy", sorted(STRATEGY.items()))
def test_retry_strategy_rules(etype: str, strategy: str) -> None:
    assert Error.new(etype).retry_strategy == strategy


def test_unknown_type() -> None:
    err = Error.new("test_error", "msg")
    assert (err.code, err.severity, err.category, err.subcategory, err.message) == (
        9999, "medium", "unknown", "unknown", "msg")
    assert Error.new("whatever").message == "Unknown error"


def test_retry_delays() -> None:
    exp = Error.new("timeout")
    assert [exp.retry_delay(a) for a in range(7)] == [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
    assert exp.retry_delay(10_000) == 30_000
    assert Error.new("range_error").retry_delay(3) == 1000
    assert Error.new("service_unavailable").retry_delay(3) == 0
    assert Error.new("internal_error").retry_delay(0) == math.inf
    assert not Error.new("internal_error").is_retryable() and Error.new("timeout").is_retryable()


def test_escalation_string_and_recovery() -> None:
    assert Error.new("authentication_failed").should_escalate()
    assert Error.new("internal_error").should_escalate()
    assert not Error.new("timeout").should_escalate()
    err = Error.new("timeout", "slow", context={"operation": "fetch"})
    assert str(err).startswith("[4301:timeout] slow | Context: {")
    assert str(err).endswith(" | Severity: medium")
    assert err.recovery_actions == ["Increase timeout value", "Check network latency", "Review service performance",
                                    "Review fetch implementation"]
    assert Error.new("format_error").recovery_actions == ["Check logs for details", "Review error context",
                                                          "Contact support if needed"]


def test_stacktrace_capped_at_10() -> None:
    def recurse(n: int) -> None:
        if n == 0:
            raise RuntimeError("deep")
        recurse(n - 1)

    with pytest.raises(RuntimeError) as info:
        recurse(20)
    assert len(Error.new("internal_error", stacktrace=info.value).stacktrace or []) == 10


def test_error_result_and_wrap_error() -> None:
    kind, err = Error.error_result("data_not_found")
    assert kind == "error" and err.code == 3401
    kind, wrapped = Error.wrap_error(("error", err), "external_service_error", "outer", context={"x": 1})
    assert wrapped.code == 3401 and wrapped.context["wrapped_by"] == "external_service_error"
    assert wrapped.context["wrapper_message"] == "outer" and wrapped.context["wrapper_context"] == {"x": 1}
    kind, raw = Error.wrap_error(("error", "econnrefused"), "network_error")
    assert raw.code == 4101 and raw.context["original_reason"] == "econnrefused"
    assert Error.wrap_error(("ok", 1), "timeout") == ("ok", 1)
    assert Error.wrap_error(foundation.FoundationError(err), "timeout")[1].context["wrapped_by"] == "timeout"


def test_exception_tree() -> None:
    for cls in (foundation.ConfigError, foundation.DataError, foundation.SystemServiceError,
                foundation.ExternalError, foundation.SecurityViolation, foundation.ValidationFailed,
                foundation.FoundationTypeError, foundation.RateLimitExceeded, foundation.CheckoutTimeout):
        assert issubclass(cls, foundation.FoundationError)
    assert issubclass(foundation.FoundationTypeError, TypeError)
    assert issubclass(foundation.FoundationValueError, ValueError)
    assert foundation.as_result(lambda: 1) == ("ok", 1)


def test_collect_error_metrics() -> None:
    foundation.Telemetry.reset_metrics()
    Error.new("timeout").collect_error_metrics()
    assert foundation.Telemetry.get_metrics()["foundation"]["errors"]["external"]["timeout"]["counter"] == 1


def test_error_context_breadcrumbs(clock: ManualClock) -> None:
    ctx = ErrorContext.new("Mod", "run", metadata={"a": 1}, clock=clock)
    assert len(ctx.breadcrumbs) == 1 and len(ctx.correlation_id) == 36
    clock.advance(5)
    child = ErrorContext.child_context(ctx, "Mod", "step", {"b": 2})
    assert child.correlation_id == ctx.correlation_id and child.metadata == {"a": 1, "b": 2}
    assert [b.function for b in child.breadcrumbs] == ["run", "step"]
    more = child.add_breadcrumb("Other", "f").add_metadata({"c": 3})
    assert len(more.breadcrumbs) == 3 and more.metadata["c"] == 3 and len(child.breadcrumbs) == 2
    clock.advance(1)
    assert more.format_breadcrumbs() == "Mod.run (6.0ms ago) -> Mod.step (1.0ms ago) -> Other.f (1.0ms ago)"
    assert ctx.get_operation_duration() == 6


def test_with_context_success_and_failure(clock: ManualClock) -> None:
    ctx = ErrorContext.new("Mod", "op", clock=clock)
    assert ErrorContext.get_current_context() is None
    assert ErrorContext.with_context(ctx, lambda: ErrorContext.get_current_context()) is ctx
    assert ErrorContext.get_current_context() is None

    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(foundation.FoundationError) as info:
        ErrorContext.with_context(ctx, boom)
    err = info.value.error
    assert (err.code, err.error_type, err.severity) == (2401, "internal_error", "critical")
    assert err.context["exception_type"] == "ValueError"
    assert err.context["operation_context"]["correlation_id"] == ctx.correlation_id
    assert isinstance(info.value.__cause__, ValueError)


def test_context_follows_asyncio_tasks(clock: ManualClock) -> None:
    async def main() -> list[str | None]:
        async def worker(name: str) -> str | None:
            with ErrorContext.scope(ErrorContext.new("W", name, clock=clock)):
                await asyncio.sleep(0)
                current = ErrorContext.get_current_context()
                return current.function if current else None

        return list(await asyncio.gather(worker("a"), worker("b")))

    assert asyncio.run(main()) == ["a", "b"]


def test_enhance_error_and_add_context(clock: ManualClock) -> None:
    ctx = ErrorContext.new("M", "f", clock=clock)
    assert ErrorContext.enhance_error("econnrefused", ctx).code == 9999
    enhanced = ErrorContext.enhance_error(("error", Error.new("timeout")), ctx)
    assert enhanced.correlation_id == ctx.correlation_id and "operation_context" in enhanced.context
    assert ErrorContext.add_context(("ok", 1), ctx) == ("ok", 1)
    assert ErrorContext.add_context("ok", {"x": 1}) == "ok"
    _, err = ErrorContext.add_context(("error", Error.new("timeout")), {"x": 1}, {"y": 2})
    assert err.context["x"] == 1 and err.context["y"] == 2


def test_service_errors_carry_codes(fapp: FoundationApp) -> None:
    with pytest.raises(foundation.FoundationError) as info:
        fapp.events.get(99)
    assert isinstance(info.value.error, Error) and info.value.error.code == 3001
